"""The IR layer: the verifier rejects each broken invariant; the printer is stable."""
from __future__ import annotations

import pytest

from sxad.ir import BOOL, F64, I64, Block, Func, Op, Prim, Value, VerifyError, format_func, verify
from sxad.prims import Emitter, RuleError, result_types


def simple() -> Func:
    x = Value(F64, "x")
    b = Emitter([x])
    y = b.mul(b.sin(x), x, hint="y")
    return Func("f", b.finish([y]), ("x",))


def test_well_formed_function_verifies():
    verify(simple(), result_types)


def test_use_before_definition_is_rejected():
    x, t = Value(F64, "x"), Value(F64, "t")
    body = Block((x,), (Op(Prim.SIN, (t,), (Value(F64),)),), ())
    with pytest.raises(VerifyError, match="not defined before use"):
        verify(Func("f", body, ("x",)))


def test_double_definition_is_rejected():
    x, y = Value(F64, "x"), Value(F64, "y")
    ops = (Op(Prim.SIN, (x,), (y,)), Op(Prim.COS, (x,), (y,)))
    with pytest.raises(VerifyError, match="defined twice"):
        verify(Func("f", Block((x,), ops, (y,)), ("x",)))


def test_region_values_do_not_escape():
    x, inner = Value(F64, "x"), Value(F64, "inner")
    then = Block((), (Op(Prim.SIN, (x,), (inner,)),), (inner,))
    other = Block((), (), (x,))
    c, r = Value(BOOL), Value(F64)
    ops = (Op(Prim.CONST, (), (c,), (("value", True),)),
           Op(Prim.IF, (c,), (r,), (), (then, other)),
           Op(Prim.COS, (inner,), (Value(F64),)))
    with pytest.raises(VerifyError, match="not defined before use"):
        verify(Func("f", Block((x,), ops, (r,)), ("x",)))


def test_type_mismatch_is_rejected():
    x, n = Value(F64, "x"), Value(I64, "n")
    bad = Op(Prim.ADD, (x, n), (Value(F64),))
    with pytest.raises(RuleError):
        verify(Func("f", Block((x, n), (bad,), bad.results), ("x", "n")), result_types)


def test_branch_yield_types_must_match_results():
    x, c = Value(F64, "x"), Value(BOOL, "c")
    n = Value(I64, "n")
    then = Block((), (Op(Prim.CONST, (), (n,), (("value", 1),)),), (n,))
    ops = (Op(Prim.IF, (c,), (Value(F64),), (), (then, Block((), (), (x,)))),)
    with pytest.raises(VerifyError, match="branch yields"):
        verify(Func("f", Block((x, c), ops, ()), ("x", "c")))


def test_emitter_types_ops_by_their_rules():
    b = Emitter([Value(F64, "x"), Value(I64, "n")])
    x, n = b.params
    with pytest.raises(RuleError, match="add"):
        b.add(x, n)
    assert b.lt(n, b.const(3)).type is BOOL
    assert b.cast(n, F64).type is F64


def test_printer_is_deterministic_and_uses_hints():
    text = format_func(simple())
    assert text == format_func(simple())
    assert text.splitlines() == ["func f(x: f64):", "  v: f64 = sin(x)", "  y: f64 = mul(v, x)",
                                 "  return y"]
