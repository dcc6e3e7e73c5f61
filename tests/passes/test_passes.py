"""Each optimization pass on small hand-built IR (compared as printed IR), the pipeline and
its environment switches."""
from __future__ import annotations

import numpy as np
import pytest

from sxad.backends.interpreter import interpret
from sxad.ir import BOOL, F64, I64, Func, Prim, Value, format_func, verify
from sxad.passes import PIPELINE, ROUND, cse, dce, fold, optimize, simplify, with_pass
from sxad.prims import Emitter, result_types


def body(func: Func) -> str:
    """The printed IR without its header line, ops joined by '; ' (regions keep newlines)."""
    verify(func, result_types)
    lines = format_func(func).splitlines()[1:]
    return "\n".join(line[2:] for line in lines)


def flat(func: Func) -> str:
    return "; ".join(line.strip() for line in body(func).splitlines())


def xy() -> tuple[Emitter, Value, Value]:
    x, y = Value(F64, "x"), Value(F64, "y")
    return Emitter([x, y]), x, y


def make(b: Emitter, results, tuple_result: bool = False) -> Func:
    return verify(Func("f", b.finish(results), tuple(p.hint for p in b.params), tuple_result),
                  result_types)


# --------------------------------------------------------------------------- fold

def test_fold_evaluates_with_numpy_semantics():
    b, x, y = xy()
    s = b.add(b.const(2.0), b.const(3.0), hint="s")
    z = b.div(b.const(1.0), b.const(0.0), hint="z")
    w = b.cast(b.lt(b.const(1), b.const(2)), F64, hint="w")
    bad = b.pow(b.const(2), b.const(-1), hint="bad")  # numpy raises at run time: stays
    out = dce(fold(make(b, [b.mul(x, s), z, w, bad])))
    assert flat(out) == ("s: f64 = const 5.0; z: f64 = const inf; w: f64 = const 1.0; "
                         "v: i64 = const 2; v_1: i64 = const -1; bad: i64 = pow(v, v_1); "
                         "v_2: f64 = mul(x, s); return v_2, z, w, bad")


def test_fold_takes_the_branch_of_a_constant_condition():
    b, x, y = xy()
    then, other = Emitter(), Emitter()
    (r,) = b.op(Prim.IF, [b.lt(b.const(1.0), b.const(2.0))], [F64], hints=["r"],
                regions=[then.finish([then.mul(x, y, hint="t")]), other.finish([y])])
    assert flat(dce(fold(make(b, [b.add(r, x)])))) == \
        "t: f64 = mul(x, y); v: f64 = add(t, x); return v"


def test_fold_skips_loops_that_never_run():
    b, x, y = xy()
    i, a = Value(I64, "i"), Value(F64, "a")
    loop = Emitter([i, a])
    (r,) = b.op(Prim.FOR, [b.const(5), b.const(2), b.const(1), y], [F64], hints=["a"],
                regions=[loop.finish([loop.mul(a, x)])])
    k, w = Value(F64, "w"), Value(F64, "w")
    cond, again = Emitter([k]), Emitter([w])
    (q,) = b.op(Prim.WHILE, [x], [F64], hints=["w"],
                regions=[cond.finish([cond.gt(cond.const(0.0), cond.const(1.0))]),
                         again.finish([again.exp(w)])])
    assert flat(dce(fold(make(b, [r, q])))) == "return y, x"


def test_fold_keeps_loops_that_may_run():
    b, x, y = xy()
    i, a = Value(I64, "i"), Value(F64, "a")
    loop = Emitter([i, a])
    (r,) = b.op(Prim.FOR, [b.const(0), b.const(2), b.const(1), y], [F64], hints=["a"],
                regions=[loop.finish([loop.mul(a, x)])])
    assert "for i in range" in body(fold(make(b, [r])))


def test_fold_select_on_a_constant_condition():
    b, x, y = xy()
    out = fold(make(b, [b.select(b.const(False), x, y)]))
    assert flat(dce(out)) == "return y"


# --------------------------------------------------------------------------- simplify

RULE_CASES = {
    "x + 0": (lambda b, x, y, c: b.add(x, b.const(0.0)), "return x"),
    "0 + x": (lambda b, x, y, c: b.add(b.const(0.0), x), "return x"),
    "x - 0": (lambda b, x, y, c: b.sub(x, b.const(0.0)), "return x"),
    "0 - x": (lambda b, x, y, c: b.sub(b.const(0.0), x), "v: f64 = neg(x); return v"),
    "x * 1": (lambda b, x, y, c: b.mul(x, b.const(1.0)), "return x"),
    "1 * x": (lambda b, x, y, c: b.mul(b.const(1.0), x), "return x"),
    "x * -1": (lambda b, x, y, c: b.mul(x, b.const(-1.0)), "v: f64 = neg(x); return v"),
    "x / 1": (lambda b, x, y, c: b.div(x, b.const(1.0)), "return x"),
    "x / -1": (lambda b, x, y, c: b.div(x, b.const(-1.0)), "v: f64 = neg(x); return v"),
    "-(-x)": (lambda b, x, y, c: b.neg(b.neg(x)), "return x"),
    "a + (-b)": (lambda b, x, y, c: b.add(x, b.neg(y)), "v: f64 = sub(x, y); return v"),
    "(-a) + b": (lambda b, x, y, c: b.add(b.neg(x), y), "v: f64 = sub(y, x); return v"),
    "a - (-b)": (lambda b, x, y, c: b.sub(x, b.neg(y)), "v: f64 = add(x, y); return v"),
    "a + -2": (lambda b, x, y, c: b.add(x, b.const(-2.0)),
               "v: f64 = const 2.0; v_1: f64 = sub(x, v); return v_1"),
    "(-a) * b": (lambda b, x, y, c: b.mul(b.neg(x), y),
                 "v: f64 = mul(x, y); v_1: f64 = neg(v); return v_1"),
    "a * (-b)": (lambda b, x, y, c: b.mul(x, b.neg(y)),
                 "v: f64 = mul(x, y); v_1: f64 = neg(v); return v_1"),
    "(-a) / b": (lambda b, x, y, c: b.div(b.neg(x), y),
                 "v: f64 = div(x, y); v_1: f64 = neg(v); return v_1"),
    "(-a) * (-b)": (lambda b, x, y, c: b.mul(b.neg(x), b.neg(y)), "v: f64 = mul(x, y); return v"),
    "x ** 0": (lambda b, x, y, c: b.pow(x, b.const(0.0)), "v: f64 = const 1.0; return v"),
    "x ** 1": (lambda b, x, y, c: b.pow(x, b.const(1.0)), "return x"),
    "x ** 2": (lambda b, x, y, c: b.pow(x, b.const(2.0)), "v: f64 = mul(x, x); return v"),
    "x ** 0.5": (lambda b, x, y, c: b.pow(x, b.const(0.5)), "v: f64 = sqrt(x); return v"),
    "x ** -1": (lambda b, x, y, c: b.pow(x, b.const(-1.0)),
                "v: f64 = const 1.0; v_1: f64 = div(v, x); return v_1"),
    "select(c, a, a)": (lambda b, x, y, c: b.select(c, x, x), "return x"),
    "not not c": (lambda b, x, y, c: b.cast(b.not_(b.not_(c)), F64),
                  "v: f64 = cast(c); return v"),
    "select(c, True, False)": (
        lambda b, x, y, c: b.cast(b.select(c, b.const(True), b.const(False)), F64),
        "v: f64 = cast(c); return v"),
    "c and True": (lambda b, x, y, c: b.cast(b.and_(c, b.const(True)), F64),
                   "v: f64 = cast(c); return v"),
    "cast(cast(bool))": (lambda b, x, y, c: b.cast(b.cast(c, I64), F64),
                         "v: f64 = cast(c); return v"),
    # the logistic idiom, either order of the sum
    "1 / (1 + exp(-x))": (
        lambda b, x, y, c: b.div(b.const(1.0), b.add(b.const(1.0), b.exp(b.neg(x)))),
        "v: f64 = logistic(x); return v"),
    "1 / (exp(-x) + 1)": (
        lambda b, x, y, c: b.div(b.const(1.0), b.add(b.exp(b.neg(x)), b.const(1.0))),
        "v: f64 = logistic(x); return v"),
    "2 / (1 + exp(-x))": (
        lambda b, x, y, c: b.div(b.const(2.0), b.add(b.const(1.0), b.exp(b.neg(x)))),
        "v: f64 = const 2.0; v_1: f64 = const 1.0; v_2: f64 = neg(x); v_3: f64 = exp(v_2); "
        "v_4: f64 = add(v_1, v_3); v_5: f64 = div(v, v_4); return v_5"),
    "1 / (1 + exp(x))": (
        lambda b, x, y, c: b.div(b.const(1.0), b.add(b.const(1.0), b.exp(x))),
        "v: f64 = const 1.0; v_1: f64 = const 1.0; v_2: f64 = exp(x); v_3: f64 = add(v_1, v_2); "
        "v_4: f64 = div(v, v_3); return v_4"),
    # kept: exact arithmetic would change inf and nan
    "x * 0": (lambda b, x, y, c: b.mul(x, b.const(0.0)),
              "v: f64 = const 0.0; v_1: f64 = mul(x, v); return v_1"),
    "x - x": (lambda b, x, y, c: b.sub(x, x), "v: f64 = sub(x, x); return v"),
    "x * 2": (lambda b, x, y, c: b.mul(x, b.const(2.0)),
              "v: f64 = const 2.0; v_1: f64 = mul(x, v); return v_1"),
    "cast(cast(f64 -> i64) -> f64)": (lambda b, x, y, c: b.cast(b.cast(x, I64), F64),
                                      "v: i64 = cast(x); v_1: f64 = cast(v); return v_1"),
}


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_simplify_rule(case):
    build, expected = RULE_CASES[case]
    x, y, c = Value(F64, "x"), Value(F64, "y"), Value(BOOL, "c")
    b = Emitter([x, y, c])
    original = make(b, [build(b, x, y, c)])
    out = dce(simplify(original))
    assert flat(out) == expected
    for args in [(1.5, -2.0, True), (-0.5, 3.0, False), (np.inf, np.nan, True)]:
        np.testing.assert_equal(interpret(out, args), interpret(original, args))


def test_simplify_reaches_a_fixed_point_and_works_inside_regions():
    b, x, y = xy()
    then, other = Emitter(), Emitter()
    inner = then.mul(then.neg(then.neg(x)), then.const(1.0))
    (r,) = b.op(Prim.IF, [b.gt(x, y)], [F64], hints=["r"],
                regions=[then.finish([then.add(then.const(0.0), inner)]), other.finish([y])])
    out = dce(simplify(make(b, [r])))
    assert body(out) == "\n".join([
        "v: bool = gt(x, y)",
        "r: f64 = if v:",
        "    yield x",
        "else:",
        "    yield y",
        "return r"])


# --------------------------------------------------------------------------- cse

def test_cse_merges_equal_ops_and_constants_even_swapped():
    b, x, y = xy()
    p = b.mul(x, y, hint="p")
    q = b.mul(y, x, hint="q")
    r = b.add(b.mul(p, b.const(2.0)), b.mul(q, b.const(2.0)))
    assert flat(dce(cse(make(b, [r])))) == (
        "p: f64 = mul(x, y); v: f64 = const 2.0; v_1: f64 = mul(p, v); "
        "v_2: f64 = add(v_1, v_1); return v_2")


def test_cse_keeps_order_sensitive_ops_apart():
    b, x, y = xy()
    out = dce(cse(make(b, [b.sub(x, y), b.sub(y, x), b.const(0.0), b.const(-0.0)])))
    assert flat(out) == ("v: f64 = sub(x, y); v_1: f64 = sub(y, x); v_2: f64 = const 0.0; "
                         "v_3: f64 = const -0.0; return v, v_1, v_2, v_3")


def test_cse_is_scoped():
    """An outer value is reused inside a branch; a branch's value is not reused after it."""
    b, x, y = xy()
    outer = b.exp(x, hint="outer")
    then, other = Emitter(), Emitter()
    (r,) = b.op(Prim.IF, [b.gt(x, y)], [F64], hints=["r"],
                regions=[then.finish([then.add(then.exp(x), then.sin(y, hint="s"))]),
                         other.finish([other.sin(y, hint="s")])])
    after = b.sin(y, hint="after")
    out = dce(cse(make(b, [b.add(b.add(r, outer), after)])))
    assert body(out) == "\n".join([
        "outer: f64 = exp(x)",
        "v: bool = gt(x, y)",
        "r: f64 = if v:",
        "    s: f64 = sin(y)",
        "    v_1: f64 = add(outer, s)",
        "    yield v_1",
        "else:",
        "    s_1: f64 = sin(y)",
        "    yield s_1",
        "after: f64 = sin(y)",
        "v_2: f64 = add(r, outer)",
        "v_3: f64 = add(v_2, after)",
        "return v_3"])


def test_cse_never_merges_tape_ops_or_control_flow():
    b, x, y = xy()
    for _ in range(2):
        b.op(Prim.PUSH, [x], [], attrs=[("slot", 0)])
    p1, = b.op(Prim.POP, [], [F64], attrs=[("slot", 0)])
    p2, = b.op(Prim.POP, [], [F64], attrs=[("slot", 0)])
    ifs = []
    for _ in range(2):
        then, other = Emitter(), Emitter()
        ifs += b.op(Prim.IF, [b.gt(x, y)], [F64], regions=[then.finish([x]), other.finish([y])])
    out = cse(make(b, [p1, p2, *ifs]))
    prims = [op.prim for op in out.body.ops]
    assert prims.count(Prim.PUSH) == 2 and prims.count(Prim.POP) == 2
    assert prims.count(Prim.IF) == 2 and prims.count(Prim.GT) == 1


# --------------------------------------------------------------------------- dce

def test_dce_drops_unused_values_and_if_results():
    b, x, y = xy()
    b.exp(x)
    then, other = Emitter(), Emitter()
    r1, r2 = b.op(Prim.IF, [b.gt(x, y)], [F64, F64], hints=["a", "b"],
                  regions=[then.finish([then.sin(x), then.cos(x, hint="unused")]),
                           other.finish([y, other.tan(y)])])
    assert body(dce(make(b, [r1]))) == "\n".join([
        "v: bool = gt(x, y)",
        "a: f64 = if v:",
        "    v_1: f64 = sin(x)",
        "    yield v_1",
        "else:",
        "    yield y",
        "return a"])


def carried(live_result: bool) -> Func:
    """for i in range(n): s = s + 1; t = t * x (t feeds s only if ``live_result``)."""
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])
    i, s, t = Value(I64, "i"), Value(F64, "s"), Value(F64, "t")
    loop = Emitter([i, s, t])
    s2 = loop.add(s, loop.const(1.0), hint="s")
    t2 = loop.mul(t, loop.mul(x, s), hint="t")
    rs, rt = b.op(Prim.FOR, [b.const(0), n, b.const(1), x, x], [F64, F64], hints=["s", "t"],
                  regions=[loop.finish([s2, t2])])
    return make(b, [rt if live_result else x])


def test_dce_keeps_carried_values_something_live_reads():
    out = dce(carried(live_result=True))
    assert len(out.body.ops[-1].results) == 2  # t needs s


def test_dce_drops_a_loop_nobody_reads():
    assert flat(dce(carried(live_result=False))) == "return x"


def test_dce_drops_a_dead_carried_value_feeding_only_itself():
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])
    i, s, t = Value(I64, "i"), Value(F64, "s"), Value(F64, "t")
    loop = Emitter([i, s, t])
    rs, rt = b.op(Prim.FOR, [b.const(0), n, b.const(1), x, x], [F64, F64], hints=["s", "t"],
                  regions=[loop.finish([loop.add(s, loop.const(1.0)), loop.mul(t, x)])])
    out = dce(make(b, [rt]))
    assert body(out) == "\n".join([
        "v: i64 = const 0",
        "v_1: i64 = const 1",
        "t_1: f64 = for i in range(v, n, v_1) carry (t = x):",
        "    v_2: f64 = mul(t, x)",
        "    yield v_2",
        "return t_1"])


def test_dce_removes_push_pop_pairs_whose_value_nobody_reads():
    b, x, y = xy()
    b.op(Prim.PUSH, [b.exp(x)], [], attrs=[("slot", 0)])
    b.op(Prim.PUSH, [y], [], attrs=[("slot", 1)])
    (kept,) = b.op(Prim.POP, [], [F64], attrs=[("slot", 1)])
    (dropped,) = b.op(Prim.POP, [], [F64], attrs=[("slot", 0)])
    b.sin(dropped)
    out = dce(make(b, [kept]))
    assert flat(out) == "push(y) {slot=1}; v: f64 = pop() {slot=1}; return v"
    assert interpret(out, (1.0, 2.0)) == (2.0,)


def tape_loops(use_popped: bool) -> Func:
    """Push x in one loop, pop it in another; the popped values feed a sum, or nothing."""
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])
    i = Value(I64, "i")
    forward = Emitter([i])
    forward.op(Prim.PUSH, [forward.exp(x)], [], attrs=[("slot", 0)])
    b.op(Prim.FOR, [b.const(0), n, b.const(1)], [], regions=[forward.finish([])])
    j, s = Value(I64, "j"), Value(F64, "s")
    back = Emitter([j, s])
    (p,) = back.op(Prim.POP, [], [F64], attrs=[("slot", 0)], hints=["p"])
    s2 = back.add(s, p) if use_popped else back.mul(s, x)
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), x], [F64], hints=["s"],
                attrs=[("reverse", True)], regions=[back.finish([s2])])
    return make(b, [r])


def test_dce_keeps_loops_with_tape_ops():
    out = dce(tape_loops(use_popped=True))
    assert [op.prim for op in out.body.walk()].count(Prim.PUSH) == 1
    assert interpret(out, (0.5, 3)) == interpret(tape_loops(True), (0.5, 3))


def test_dce_removes_a_tape_pair_and_then_the_loop_that_only_pushed():
    out = dce(tape_loops(use_popped=False))
    assert body(out) == "\n".join([
        "v: i64 = const 0",
        "v_1: i64 = const 1",
        "s_1: f64 = for j in reversed range(v, n, v_1) carry (s = x):",
        "    v_2: f64 = mul(s, x)",
        "    yield v_2",
        "return s_1"])


# --------------------------------------------------------------------------- the pipeline

def test_pipeline_is_named_and_optimize_runs_it():
    assert [name for name, _ in PIPELINE] == [name for name, _ in ROUND] * 2
    assert [name for name, _ in ROUND] == ["fold", "simplify", "cse", "dce"]
    b, x, y = xy()
    t = b.mul(b.add(x, b.const(0.0)), b.pow(y, b.const(2.0)))
    u = b.mul(x, b.mul(y, y))
    out = optimize(make(b, [b.add(t, u)]))
    assert flat(out) == ("v: f64 = mul(y, y); v_1: f64 = mul(x, v); v_2: f64 = add(v_1, v_1); "
                         "return v_2")


def test_with_pass_inserts_a_pass_in_every_round():
    def symbolic(func: Func) -> Func:
        return func
    pipeline = with_pass(("symbolic", symbolic), after="simplify")
    assert [name for name, _ in pipeline] == ["fold", "simplify", "symbolic", "cse", "dce"] * 2


def test_dump_ir_after_passes(monkeypatch, capsys):
    b, x, y = xy()
    f = make(b, [b.add(x, b.const(0.0))])
    monkeypatch.setenv("SXAD_DUMP_IR", "dce")
    optimize(f)
    err = capsys.readouterr().err
    assert err.count("# --- f: after dce") == 2 and "after fold" not in err
    assert "func f(x: f64, y: f64):\n  return x\n" in err
    monkeypatch.setenv("SXAD_DUMP_IR", "1")
    optimize(f)
    assert capsys.readouterr().err.count("# --- f: after") == len(PIPELINE)
    monkeypatch.delenv("SXAD_DUMP_IR")
    optimize(f)
    assert capsys.readouterr().err == ""


def test_verify_after_each_pass_names_the_pass(monkeypatch):
    from sxad.ir import VerifyError

    def broken(func: Func) -> Func:
        return func.with_body(func.body.__class__(func.params, (), (Value(F64, "ghost"),)))
    b, x, y = xy()
    monkeypatch.setenv("SXAD_VERIFY", "1")
    with pytest.raises(VerifyError, match="after pass 'broken'"):
        optimize(make(b, [x]), [("broken", broken)])


def test_simplify_moves_a_transpose_of_a_product_onto_its_operands():
    """(xᵀ @ g)ᵀ → gᵀ @ x: the adjoint of ``x @ W.T`` w.r.t. W without a transposed result; a
    transpose undone by another vanishes. Values agree with the unsimplified program."""
    from sxad.ir import ArrayType
    x, g = Value(ArrayType(F64, 2), "x"), Value(ArrayType(F64, 2), "g")
    b = Emitter([x, g])
    y = b.transpose(b.matmul(b.transpose(x), g), perm=(1, 0))
    z = b.transpose(b.transpose(x, perm=(1, 0)), perm=(1, 0))
    func = make(b, [y, z])
    simplified = verify(dce(simplify(func)), result_types)
    prims = [op.prim for op in simplified.body.ops]
    assert prims.count(Prim.TRANSPOSE) == 1 and prims[-1] is Prim.MATMUL, format_func(simplified)
    assert simplified.results[1] is x
    rng = np.random.default_rng(0)
    args = [rng.normal(size=(4, 3)), rng.normal(size=(4, 2))]
    for got, want in zip(interpret(simplified, args), interpret(func, args)):
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_simplify_lets_elementwise_ops_broadcast_by_themselves():
    """op(broadcast_like(a, y), y) → op(a, y) and op(expand_dims(s), y) → op(s, y) for a scalar
    s: no full-size broadcast array is made. Values and shapes agree with the unsimplified
    program."""
    from sxad.ir import ArrayType
    y, row, s = Value(ArrayType(F64, 2), "y"), Value(ArrayType(F64, 1), "row"), Value(F64, "s")
    b = Emitter([y, row, s])
    spread = b.mul(b.broadcast_like(row, y), y)
    grown = b.lt(y, b.expand_dims(s, axes=(0,)))
    kept = b.add(b.expand_dims(s, axes=(0,)), row)
    func = make(b, [spread, grown, kept])
    simplified = verify(dce(simplify(func)), result_types)
    prims = [op.prim for op in simplified.body.ops]
    assert Prim.BROADCAST_LIKE not in prims and Prim.EXPAND_DIMS not in prims, \
        format_func(simplified)
    rng = np.random.default_rng(1)
    args = [rng.normal(size=(3, 4)), rng.normal(size=4), 0.25]
    for got, want in zip(interpret(simplified, args), interpret(func, args)):
        np.testing.assert_array_equal(got, want)
        assert np.shape(got) == np.shape(want)
