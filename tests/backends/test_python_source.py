"""The Python source backend: exact text for small programs, and the generated code run
against the interpreter (hand-built programs and random ones)."""
from __future__ import annotations

import inspect
import linecache
import os
import sys
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sxad.backends.interpreter import interpret
from sxad.backends.python_source import compile_python, to_python
from sxad.ir import BOOL, F64, I64, Func, Prim, Value, verify
from sxad.passes import optimize
from sxad.prims import Emitter, result_types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "passes"))
from random_ir import arguments, build, same  # noqa: E402

NUMPY = {F64: np.float64, I64: np.int64, BOOL: np.bool_}


def check(func: Func, *args) -> str:
    """The source of ``func``, after checking that running it equals interpreting it."""
    verify(func, result_types)
    source = to_python(func)
    run = compile_python(func)
    with np.errstate(all="ignore"):
        out = run(*(NUMPY[p.type](a) for p, a in zip(func.params, args)))
    out = out if isinstance(out, tuple) else (out,)
    assert same(out, interpret(func, args)), source
    return source


def params(*spec: str) -> list[Value]:
    """``params("x:f64", "n:i64")``"""
    types = {"f64": F64, "i64": I64, "bool": BOOL}
    return [Value(types[t], n) for n, t in (s.split(":") for s in spec)]


def func(name: str, b: Emitter, results, tuple_result: bool = False) -> Func:
    return Func(name, b.finish(results), tuple(p.hint for p in b.params), tuple_result)


def text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- straight line

def test_single_use_values_are_inlined_with_minimal_parentheses():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    t = b.mul(x, y, hint="t")
    r = b.add(t, b.sin(y), hint="r")
    assert check(func("f", b, [r]), 2.0, 3.0) == text(
        "def f(x, y):",
        "    return x * y + np.sin(y)")


@pytest.mark.parametrize("build_expr, expected", [
    (lambda b, x, y: b.mul(b.add(x, y), b.sub(x, y)), "(x + y) * (x - y)"),
    (lambda b, x, y: b.sub(x, b.sub(y, x)), "x - (y - x)"),
    (lambda b, x, y: b.sub(b.sub(x, y), x), "x - y - x"),
    (lambda b, x, y: b.div(x, b.mul(x, y)), "x / (x * y)"),
    (lambda b, x, y: b.pow(x, b.const(-1.0)), "x ** (-1.0)"),
    (lambda b, x, y: b.pow(b.neg(x), b.const(2.0)), "(-x) ** 2.0"),
    (lambda b, x, y: b.pow(b.pow(x, y), x), "(x ** y) ** x"),
    (lambda b, x, y: b.pow(x, b.pow(y, x)), "x ** (y ** x)"),
    (lambda b, x, y: b.neg(b.add(x, y)), "-(x + y)"),
    (lambda b, x, y: b.neg(b.neg(x)), "-(-x)"),
    (lambda b, x, y: b.mul(x, b.const(-2.0)), "x * (-2.0)"),
    (lambda b, x, y: b.add(x, b.neg(y)), "x + (-y)"),
    (lambda b, x, y: b.exp(b.add(x, y)), "np.exp(x + y)"),
    (lambda b, x, y: b.select(b.lt(x, y), x, b.select(b.gt(x, y), y, x)),
     "x if x < y else (y if x > y else x)"),
    (lambda b, x, y: b.select(b.not_(b.lt(x, y)), x, y), "x if not (x < y) else y"),
    (lambda b, x, y: b.select(b.eq(b.lt(x, y), b.gt(x, y)), x, y),
     "x if (x < y) == (x > y) else y"),
    (lambda b, x, y: b.select(b.or_(b.and_(b.lt(x, y), b.gt(x, y)), b.lt(y, x)), x, y),
     "x if x < y and x > y or y < x else y"),
    (lambda b, x, y: b.select(b.and_(b.lt(x, y), b.or_(b.gt(x, y), b.lt(y, x))), x, y),
     "x if x < y and (x > y or y < x) else y"),
    (lambda b, x, y: b.add(b.cast(b.floordiv(b.cast(x, I64), b.const(2)), F64), y),
     "np.float64(np.int64(x) // 2) + y"),
    (lambda b, x, y: b.mul(b.abs(x), b.emit(Prim.MAX, x, y)), "abs(x) * np.maximum(x, y)"),
])
def test_precedence(build_expr, expected):
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    source = check(func("f", b, [build_expr(b, x, y)]), 1.5, -0.5)
    assert source == text("def f(x, y):", f"    return {expected}")


@pytest.mark.parametrize("value, type_, literal", [
    (2.0, F64, "2.0"), (3, I64, "3"), (True, BOOL, "True"), (np.inf, F64, "np.inf"),
    (-np.inf, F64, "-np.inf"), (np.nan, F64, "np.nan"), (1e-300, F64, "1e-300"),
    (-0.0, F64, "-0.0"), (-7, I64, "-7"),
])
def test_constants_are_literals(value, type_, literal):
    b = Emitter([])
    assert check(func("c", b, [b.const(value, type_)])) == text("def c():", f"    return {literal}")


def test_a_value_used_twice_gets_a_name_and_dead_code_is_not_printed():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    t = b.mul(x, y, hint="t")
    b.exp(x, hint="unused")
    assert check(func("f", b, [b.add(t, t)]), 2.0, 3.0) == text(
        "def f(x, y):",
        "    t = x * y",
        "    return t + t")


def test_tuple_results():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    assert check(func("f", b, [b.mul(x, y), y]), 2.0, 3.0) == text(
        "def f(x, y):",
        "    out = x * y",
        "    return out, y")
    b = Emitter([x, y])
    assert check(func("g", b, [x], tuple_result=True), 2.0, 3.0) == text(
        "def g(x, y):",
        "    return (x,)")


def test_names_avoid_keywords_and_the_names_the_code_uses():
    x, lam, np_ = Value(F64, "x̄"), Value(F64, "lambda"), Value(F64, "np")
    b = Emitter([x, lam, np_])
    t = b.mul(x, lam, hint="max")
    source = check(Func("f", b.finish([b.add(t, b.mul(t, np_))]), ("x_bar", "lam", "np_")),
                   1.0, 2.0, 3.0)
    assert source == text(
        "def f(x_bar, lam, np_):",
        "    max_1 = x_bar * lam",
        "    return max_1 + max_1 * np_")


# --------------------------------------------------------------------------- control flow

def test_if_assigning_a_variable_in_one_branch():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    then, other = Emitter(), Emitter()
    (r,) = b.op(Prim.IF, [b.gt(x, y)], [F64], hints=["x"],
                regions=[then.finish([then.mul(x, then.const(2.0), hint="x")]), other.finish([x])])
    f = func("f", b, [b.add(r, y)])
    assert check(f, 3.0, 1.0) == check(f, 0.0, 1.0) == text(
        "def f(x, y):",
        "    if x > y:",
        "        x = x * 2.0",
        "    return x + y")


def test_if_else_and_elif():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    inner_then, inner_else = Emitter(), Emitter()
    inner_r = inner_then.add(inner_then.sqrt(x), y, hint="r")
    inner_e = inner_else.mul(inner_else.neg(x), y, hint="r")
    other = Emitter()
    (r2,) = other.op(Prim.IF, [other.gt(x, other.const(0.0))], [F64], hints=["r"],
                     regions=[inner_then.finish([inner_r]), inner_else.finish([inner_e])])
    then = Emitter()
    (r,) = b.op(Prim.IF, [b.gt(x, y)], [F64], hints=["r"],
                regions=[then.finish([then.mul(x, then.exp(then.neg(y)), hint="r")]),
                         other.finish([r2])])
    f = func("piecewise", b, [r])
    expected = text(
        "def piecewise(x, y):",
        "    if x > y:",
        "        r = x * np.exp(-y)",
        "    elif x > 0.0:",
        "        r = np.sqrt(x) + y",
        "    else:",
        "        r = -x * y",
        "    return r")
    for args in [(2.0, 1.0), (0.5, 1.0), (-1.0, 1.0)]:
        assert check(f, *args) == expected


def test_if_with_an_empty_then_branch_negates_its_condition():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    then, other = Emitter(), Emitter()
    (r,) = b.op(Prim.IF, [b.gt(x, y)], [F64], hints=["y"],
                regions=[then.finish([y]), other.finish([other.mul(y, x, hint="y")])])
    assert check(func("f", b, [r]), 1.0, 2.0) == text(
        "def f(x, y):",
        "    if not (x > y):",
        "        y = y * x",
        "    return y")


def test_a_value_reuses_the_variable_of_a_same_named_operand_that_dies():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    x_bar = b.mul(y, b.cos(x), hint="x_bar")
    x_bar2 = b.add(b.add(x_bar, x_bar), y, hint="x_bar")
    assert check(func("f", b, [b.mul(x_bar2, x_bar2)]), 2.0, 3.0) == text(
        "def f(x, y):",
        "    x_bar = y * np.cos(x)",
        "    x_bar = x_bar + x_bar + y",
        "    return x_bar * x_bar")


def test_named_results_of_several_are_assigned_before_the_return():
    x, y = params("x:f64", "y:f64")
    b = Emitter([x, y])
    value = b.mul(x, y)
    assert check(func("f", b, [value, b.sin(y, hint="x_bar"), b.cos(x, hint="y_bar")]),
                 2.0, 3.0) == text(
        "def f(x, y):",
        "    out = x * y",
        "    x_bar = np.sin(y)",
        "    y_bar = np.cos(x)",
        "    return out, x_bar, y_bar")


def test_if_inside_a_loop_updates_the_carried_variable_in_place():
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    i, s = Value(I64, "i"), Value(F64, "s")
    body = Emitter([i, s])
    then, other = Emitter(), Emitter()
    (s2,) = body.op(Prim.IF, [body.gt(x, body.cast(i, F64))], [F64], hints=["s"],
                    regions=[then.finish([then.add(s, x, hint="s")]),
                             other.finish([other.mul(s, other.const(2.0), hint="s")])])
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(1.0)], [F64], hints=["s"],
                regions=[body.finish([s2])])
    assert check(func("f", b, [r]), 1.5, 4) == text(
        "def f(x, n):",
        "    s = 1.0",
        "    for i in range(n):",
        "        if x > np.float64(i):",
        "            s = s + x",
        "        else:",
        "            s = s * 2.0",
        "    return s")


def counted_sum() -> Func:
    """s = 0.0; for i in range(n): s = s + x * i"""
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    i, s = Value(I64, "i"), Value(F64, "s")
    body = Emitter([i, s])
    s2 = body.add(s, body.mul(x, body.cast(i, F64), hint="t"), hint="s")
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(0.0)], [F64], hints=["s"],
                regions=[body.finish([s2])])
    return func("counted", b, [r])


def test_for_loop_keeps_one_name_for_its_carried_variable():
    assert check(counted_sum(), 1.5, 4) == text(
        "def counted(x, n):",
        "    s = 0.0",
        "    for i in range(n):",
        "        s = s + x * np.float64(i)",
        "    return s")


@pytest.mark.parametrize("lo, step, reverse, header", [
    (0, 1, False, "for _ in range(n):"),
    (2, 1, False, "for _ in range(2, n):"),
    (0, 2, False, "for _ in range(0, n, 2):"),
    (5, -1, True, "for _ in reversed(range(5, n, -1)):"),
])
def test_range_forms(lo, step, reverse, header):
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    i, s = Value(I64, "i"), Value(F64, "x")
    body = Emitter([i, s])
    (r,) = b.op(Prim.FOR, [b.const(lo), n, b.const(step), x], [F64], hints=["x"],
                attrs=[("reverse", True)] if reverse else [],
                regions=[body.finish([body.mul(s, body.const(1.5), hint="x")])])
    assert check(func("f", b, [r]), 1.0, 4) == text(
        "def f(x, n):", f"    {header}", "        x = x * 1.5", "    return x")


def test_loops_one_after_another_share_their_index_name():
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    s = x
    for prim in (Prim.ADD, Prim.MUL):
        i, c = Value(I64, "i"), Value(F64, "s")
        body = Emitter([i, c])
        (s,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), s], [F64], hints=["s"],
                    regions=[body.finish([body.emit(prim, c, body.cast(i, F64), hint="s")])])
    assert check(func("f", b, [s]), 0.5, 4) == text(
        "def f(x, n):",
        "    s = x",
        "    for i in range(n):",
        "        s = s + np.float64(i)",
        "    for i in range(n):",
        "        s = s * np.float64(i)",
        "    return s")


def fibonacci() -> Func:
    (n,) = params("n:i64")
    b = Emitter([n])
    i, a, c = Value(I64, "i"), Value(F64, "a"), Value(F64, "b")
    body = Emitter([i, a, c])
    ra, _ = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(0.0), b.const(1.0)], [F64, F64],
                 hints=["a", "b"], regions=[body.finish([c, body.add(a, c, hint="b")])])
    return func("fib", b, [ra])


def test_carried_values_in_a_cycle_update_simultaneously():
    assert check(fibonacci(), 10) == text(
        "def fib(n):",
        "    a = 0.0",
        "    b = 1.0",
        "    for _ in range(n):",
        "        a, b = b, a + b",
        "    return a")


def test_a_carried_value_still_needed_is_not_overwritten_early():
    """a' = a + 1 is computed before b' = a * 2 reads a: a' cannot be written into a."""
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    i, a, c = Value(I64, "i"), Value(F64, "a"), Value(F64, "b")
    body = Emitter([i, a, c])
    a2 = body.add(a, body.const(1.0), hint="a")
    c2 = body.add(body.mul(a, body.const(2.0)), c, hint="b")
    ra, rb = b.op(Prim.FOR, [b.const(0), n, b.const(1), x, x], [F64, F64], hints=["a", "b"],
                  regions=[body.finish([body.mul(a2, a2, hint="a"), c2])])
    source = check(func("f", b, [ra, rb]), 0.5, 3)
    assert source == text(
        "def f(x, n):",
        "    a = x",
        "    b = x",
        "    for _ in range(n):",
        "        a_1 = a + 1.0",
        "        b = a * 2.0 + b",
        "        a = a_1 * a_1",
        "    return a, b")


def test_nested_loops():
    """s = x; for i in range(n): for j in range(i): s = sin(s) * x + j"""
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    i, s = Value(I64, "i"), Value(F64, "s")
    outer = Emitter([i, s])
    j, s_in = Value(I64, "j"), Value(F64, "s")
    inner = Emitter([j, s_in])
    s_new = inner.add(inner.mul(inner.sin(s_in), x), inner.cast(j, F64), hint="s")
    (s_out,) = outer.op(Prim.FOR, [outer.const(0), i, outer.const(1), s], [F64], hints=["s"],
                        regions=[inner.finish([s_new])])
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), x], [F64], hints=["s"],
                regions=[outer.finish([s_out])])
    assert check(func("nested", b, [r]), 0.7, 3) == text(
        "def nested(x, n):",
        "    s = x",
        "    for i in range(n):",
        "        for j in range(i):",
        "            s = np.sin(s) * x + np.float64(j)",
        "    return s")


def newton(multi_statement_condition: bool) -> Func:
    (a,) = params("a:f64")
    b = Emitter([a])
    cx, bx = Value(F64, "x"), Value(F64, "x")
    cond = Emitter([cx])
    if multi_statement_condition:
        d = cond.sub(cond.mul(cx, cx), a, hint="d")
        test = cond.gt(cond.mul(d, d), cond.mul(cond.const(1e-20), a))
    else:
        test = cond.gt(cond.abs(cond.sub(cond.mul(cx, cx), a)), cond.mul(cond.const(1e-12), a))
    body = Emitter([bx])
    x_new = body.mul(body.const(0.5), body.add(bx, body.div(a, bx)), hint="x")
    (r,) = b.op(Prim.WHILE, [a], [F64], hints=["x"],
                regions=[cond.finish([test]), body.finish([x_new])])
    return func("newton", b, [r])


def test_while_with_a_one_expression_condition():
    assert check(newton(False), 2.0) == text(
        "def newton(a):",
        "    x = a",
        "    while abs(x * x - a) > 1e-12 * a:",
        "        x = 0.5 * (x + a / x)",
        "    return x")


def test_while_with_statements_in_its_condition():
    assert check(newton(True), 2.0) == text(
        "def newton(a):",
        "    x = a",
        "    while True:",
        "        d = x * x - a",
        "        if not (d * d > 1e-20 * a):",
        "            break",
        "        x = 0.5 * (x + a / x)",
        "    return x")


def test_tape_push_and_pop():
    x, n = params("x:f64", "n:i64")
    b = Emitter([x, n])
    i, s = Value(I64, "i"), Value(F64, "s")
    body = Emitter([i, s])
    body.op(Prim.PUSH, [s], [], attrs=[("slot", 0)])
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), x], [F64], hints=["s"],
                regions=[body.finish([body.mul(s, x, hint="s")])])
    i2, g = Value(I64, "i"), Value(F64, "x_bar")
    back = Emitter([i2, g])
    (saved,) = back.op(Prim.POP, [], [F64], attrs=[("slot", 0)], hints=["s"])
    g2 = back.add(g, back.mul(saved, back.cast(i2, F64)), hint="x_bar")
    (rg,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(0.0)], [F64], hints=["x_bar"],
                 attrs=[("reverse", True)], regions=[back.finish([g2])])
    assert check(func("tape", b, [r, rg]), 1.1, 4) == text(
        "def tape(x, n):",
        "    _tape = []",
        "    s = x",
        "    for _ in range(n):",
        "        _tape.append(s)",
        "        s = s * x",
        "    x_bar = 0.0",
        "    for i in reversed(range(n)):",
        "        s_1 = _tape.pop()",
        "        x_bar = x_bar + s_1 * np.float64(i)",
        "    return s, x_bar")


def test_nothing_moves_across_a_tape_op_or_into_a_loop():
    x, y, n = params("x:f64", "y:f64", "n:i64")
    b = Emitter([x, y, n])
    t = b.mul(x, y, hint="t")
    b.op(Prim.PUSH, [x], [], attrs=[("slot", 0)])
    (p,) = b.op(Prim.POP, [], [F64], attrs=[("slot", 0)], hints=["p"])
    u = b.exp(y, hint="u")
    i, s = Value(I64, "i"), Value(F64, "s")
    body = Emitter([i, s])
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), p], [F64], hints=["s"],
                regions=[body.finish([body.add(s, u, hint="s")])])
    assert check(func("f", b, [b.add(t, r)]), 1.0, 2.0, 3) == text(
        "def f(x, y, n):",
        "    _tape = []",
        "    t = x * y",
        "    _tape.append(x)",
        "    p = _tape.pop()",
        "    u = np.exp(y)",
        "    s = p",
        "    for _ in range(n):",
        "        s = s + u",
        "    return t + s")


def test_an_unused_pop_still_pops():
    (x,) = params("x:f64")
    b = Emitter([x])
    b.op(Prim.PUSH, [x], [], attrs=[("slot", 0)])
    b.op(Prim.POP, [], [F64], attrs=[("slot", 0)])
    assert check(func("f", b, [x]), 1.0) == text(
        "def f(x):", "    _tape = []", "    _tape.append(x)", "    _tape.pop()", "    return x")


# --------------------------------------------------------------------------- numpy semantics

def test_python_scalars_never_decide_division_or_powers():
    """1.0 / 0.0 raises in Python but is inf in numpy; p starts as a Python float."""
    (n,) = params("n:i64")
    b = Emitter([n])
    i, p = Value(I64, "i"), Value(F64, "p")
    body = Emitter([i, p])
    halved = body.div(p, body.const(0.0), hint="p")
    k = body.cast(body.floordiv(i, body.const(0)), F64)
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(1.0)], [F64], hints=["p"],
                regions=[body.finish([body.add(halved, k, hint="p")])])
    z = b.div(b.const(1.0), b.const(0.0))
    q = b.pow(b.const(-8.0), b.const(1.0 / 3.0))
    source = check(func("f", b, [r, z, q]), 3)
    assert source == text(
        "def f(n):",
        "    p = np.float64(1.0)",
        "    for i in range(n):",
        "        p = p / 0.0 + np.float64(np.int64(i) // 0)",
        "    y0 = np.float64(1.0) / 0.0",
        "    y1 = np.float64(-8.0) ** 0.3333333333333333",
        "    return p, y0, y1")


def test_compiled_function_shows_its_source_in_tracebacks():
    (n,) = params("n:i64")
    b = Emitter([n])
    f = func("bad_power", b, [b.pow(n, b.const(-1))])
    run = compile_python(f)
    assert inspect.getsource(run) == to_python(f)
    with pytest.raises(ValueError) as info:
        run(np.int64(2))
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert frame.filename == "<sxad bad_power>"
    assert frame.line == "return n ** (-1)"
    assert linecache.getline(frame.filename, frame.lineno).strip() == "return n ** (-1)"


def test_compile_python_takes_a_name():
    run = compile_python(counted_sum(), name="counted_again")
    assert run.__name__ == "counted_again"
    assert run(np.float64(1.0), np.int64(3)) == 3.0


# --------------------------------------------------------------------------- random programs

@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_programs_run_as_interpreted(data):
    """Random programs, and the same optimized; shared hints make the printer try (and have
    to refuse) coalescing unrelated values."""
    program = build(data.draw, python_safe=True, mix_hints=True)
    args = data.draw(arguments())
    expected = interpret(program, args)
    for f in (program, optimize(program)):
        run = compile_python(f)
        with np.errstate(all="ignore"):
            out = run(np.float64(args[0]), np.float64(args[1]), np.int64(args[2]))
        out = out if isinstance(out, tuple) else (out,)
        assert same(out, expected), to_python(f)
