"""Lowering preserves meaning: for every corpus function, the IR interpreted gives what Python
computes, the IR verifies and prints. Plus checks of the IR's shape."""
from __future__ import annotations

import math

import numpy as np
import pytest

from corpus import CORPUS, Case
from sxad.backends.interpreter import interpret
from sxad.frontend import fingerprint, lower
from sxad.ir import BOOL, F64, I64, Func, Prim, format_func, verify
from sxad.prims import result_types


def _prims(func: Func) -> list[Prim]:
    return [op.prim for op in func.body.walk()]


def _hints(func: Func) -> set[str]:
    return {r.hint for op in func.body.walk() for r in op.results}


@pytest.mark.parametrize("case", CORPUS, ids=[c.ids for c in CORPUS])
def test_lowered_function_computes_what_python_computes(case: Case) -> None:
    func = verify(lower(case.fn, case.types), result_types)
    got = interpret(func, case.args)
    expected = case.fn(*case.args)
    if func.tuple_result:
        assert isinstance(expected, tuple) and len(got) == len(expected)
    else:
        assert len(got) == 1
        expected = (expected,)
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float),
                               rtol=1e-12, atol=0.0)
    assert format_func(func).startswith("func ")
    assert all(op.loc is not None for op in func.body.walk())


def test_corpus_is_broad() -> None:
    assert len({c.fn for c in CORPUS}) >= 70
    for case in CORPUS:
        assert case.wrt and all(isinstance(case.args[k], float) for k in case.wrt), case.ids


# --------------------------------------------------------------------------- shape of the IR

def test_params_and_results_follow_the_signature() -> None:
    from corpus import seed_f, tuple_return
    func = lower(seed_f, [F64, F64])
    assert func.arg_names == ("x1", "x2")
    assert [p.hint for p in func.params] == ["x1", "x2"]
    assert [r.type for r in func.results] == [F64] and not func.tuple_result
    pair = lower(tuple_return, [F64, F64])
    assert pair.tuple_result and len(pair.results) == 2


def test_values_are_named_after_variables() -> None:
    def f(x):
        scaled = x * 2.0
        shifted = scaled + 1.0
        return shifted
    func = lower(f, [F64])
    assert {"scaled", "shifted"} <= _hints(func)
    assert "scaled = mul(x, " in format_func(func).replace(": f64", "")


def test_ops_carry_source_locations() -> None:
    def f(x):
        y = x * 2.0
        return math.sin(y)
    func = lower(f, [F64])
    first = f.__code__.co_firstlineno
    mul = next(op for op in func.body.walk() if op.prim is Prim.MUL)
    sin = next(op for op in func.body.walk() if op.prim is Prim.SIN)
    assert mul.loc.file == __file__
    assert (mul.loc.line, mul.loc.col) == (first + 1, 13)  # `x * 2.0` at column 13
    assert (sin.loc.line, sin.loc.col) == (first + 2, 16)
    assert all(op.loc is not None for op in func.body.walk())


def test_loop_without_exits_has_no_flags() -> None:
    from corpus import for_sum, halving, nested_loops
    for fn, types in [(for_sum, [F64, I64]), (nested_loops, [F64, I64]), (halving, [F64])]:
        func = lower(fn, types)
        assert Prim.IF not in _prims(func)
        assert not {"broke", "returned", "continued"} & _hints(func)
    assert Prim.FOR in _prims(lower(for_sum, [F64, I64]))
    assert Prim.WHILE not in _prims(lower(for_sum, [F64, I64]))


def test_early_return_outside_loops_needs_no_flag() -> None:
    from corpus import early_return, multiple_returns
    for fn in (early_return, multiple_returns):
        func = lower(fn, [F64])
        ifs = [op for op in func.body.walk() if op.prim is Prim.IF]
        assert len(ifs) == (1 if fn is early_return else 2)
        assert not {"returned"} & _hints(func)


def test_break_turns_for_into_while_with_a_flag() -> None:
    from corpus import break_in_for
    func = lower(break_in_for, [F64, I64])
    assert Prim.FOR not in _prims(func) and Prim.WHILE in _prims(func)
    assert "broke" in _hints(func)


def test_continue_needs_no_carried_flag() -> None:
    from corpus import continue_in_for
    func = lower(continue_in_for, [F64, I64])
    (loop,) = [op for op in func.body.ops if op.prim is Prim.FOR]
    assert [p.hint for p in loop.regions[0].params] == ["i", "s"]


def test_conditional_expression_is_an_if_not_a_select() -> None:
    from corpus import log_if_positive
    func = lower(log_if_positive, [F64])
    assert Prim.IF in _prims(func) and Prim.SELECT not in _prims(func)
    (branch,) = [op for op in func.body.ops if op.prim is Prim.IF]
    assert Prim.LOG in [op.prim for op in branch.regions[0].ops]
    assert Prim.LOG not in [op.prim for op in branch.regions[1].ops]


def test_and_or_on_bools_are_primitives() -> None:
    def f(x, y):
        return 1.0 if x > 0 and y > 0 or x < -1 else 2.0
    func = lower(f, [F64, F64])
    assert {Prim.AND, Prim.OR} <= set(_prims(func))


def test_typing_follows_python() -> None:
    def f(n, m, b):
        return n // m, n % m, n / m, n ** 2, n ** m, b + b, -b, n * 1.5
    func = lower(f, [I64, I64, BOOL])
    assert [r.type for r in func.results] == [I64, I64, F64, I64, F64, I64, I64, F64]


def test_math_floor_gives_an_int_and_numpy_floor_a_float() -> None:
    def f(x):
        return math.floor(x), np.floor(x), math.ceil(x), np.ceil(x)
    assert [r.type for r in lower(f, [F64]).results] == [I64, F64, I64, F64]


def test_numpy_rounding_of_ints_follows_the_installed_numpy() -> None:
    def f(n, flag):
        return np.floor(n), np.ceil(n), np.floor(flag)
    want = [np.asarray(v).dtype for v in f(np.int64(3), np.bool_(True))]   # numpy ≥ 2.3 keeps ints
    got = lower(f, [I64, BOOL]).results
    assert [{I64: np.int64, F64: np.float64, BOOL: np.bool_}[r.type] for r in got] == want


def test_carried_type_is_widened() -> None:
    from corpus import widen_int_to_float, widen_twice
    for fn in (widen_int_to_float, widen_twice):
        func = lower(fn, [F64, I64])
        assert func.results[0].type is F64
        loop = next(op for op in func.body.ops if op.prim is Prim.FOR)
        assert all(t is F64 for t in (r.type for r in loop.results))


def test_specialised_on_argument_types() -> None:
    def f(x):
        return x * 2
    assert lower(f, [I64]).results[0].type is I64
    assert lower(f, [F64]).results[0].type is F64
    assert lower(f, [BOOL]).results[0].type is I64


def test_constant_conditions_are_folded() -> None:
    from corpus import global_constants
    assert Prim.IF not in _prims(lower(global_constants, [F64]))


def test_wrong_argument_types_raise_type_error() -> None:
    from corpus import seed_f
    with pytest.raises(TypeError, match="2 arguments"):
        lower(seed_f, [F64])
    with pytest.raises(TypeError, match="x1"):
        lower(seed_f, ["f64", F64])


# --------------------------------------------------------------------------- fingerprint

def test_fingerprint_is_stable_and_sees_dependencies() -> None:
    from corpus import call_chain, closure_scaled, make_scaled, seed_f
    assert fingerprint(seed_f) == fingerprint(seed_f)
    assert fingerprint(seed_f) != fingerprint(call_chain)
    assert fingerprint(closure_scaled) != fingerprint(make_scaled(3.0))
    assert fingerprint(make_scaled(2.5)) == fingerprint(closure_scaled)


def test_fingerprint_follows_globals_and_callees() -> None:
    namespace: dict = {}
    code = "K = 2.0\ndef h(x):\n    return x * K\ndef f(x):\n    return h(x) + 1\n"
    import linecache
    linecache.cache["<fingerprint-test>"] = (len(code), None, code.splitlines(True),
                                             "<fingerprint-test>")
    exec(compile(code, "<fingerprint-test>", "exec"), namespace)
    before = fingerprint(namespace["f"])
    namespace["K"] = 3.0
    assert fingerprint(namespace["f"]) != before
    namespace["K"] = 2.0
    assert fingerprint(namespace["f"]) == before
    assert interpret(lower(namespace["f"], [F64]), [1.5]) == (np.float64(4.0),)


def test_float_of_a_string_constant() -> None:
    def f(x):
        best = float("inf")
        return min(best, x) + (x < float("-inf"))
    assert interpret(lower(f, [F64]), [2.5]) == (np.float64(2.5),)
