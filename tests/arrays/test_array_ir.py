"""Array types through the IR: the type rules (and verify) accept what numpy accepts and reject
the rest, programs round-trip through serialization, the interpreter checks argument ranks,
and forward over reverse (second derivatives of array programs) agrees with differences."""
from __future__ import annotations

import numpy as np
import pytest

from arrays.harness import array, flat, numpy_value
from arrays.test_array_ad import column_and_row, loop_with_tape, matmuls, softmax
from oracles import assert_close
from sxad.ad.forward import jvp_program
from sxad.ad.reverse import vjp_program
from sxad.backends.interpreter import interpret
from sxad.ir import (BOOL, F32, F64, I64, ArrayType, Func, Op, Prim, Value, VerifyError,
                     format_func, verify)
from sxad.ir.serialize import dumps, loads
from sxad.prims import Emitter, RuleError, result_types


def test_array_types_print_and_know_their_dtype() -> None:
    assert str(ArrayType(F64, 2)) == "f64[:,:]" and str(ArrayType(I64, 0)) == "i64[]"
    assert ArrayType(F32, 1).is_float and F32.is_float and not ArrayType(BOOL, 3).is_float
    with pytest.raises(ValueError):
        ArrayType(F64, 5)


def test_elementwise_types_broadcast_scalars_and_ranks() -> None:
    x, m, s = array(F64, 1, "x"), array(F64, 2, "m"), Value(F64, "s")
    b = Emitter([x, m, s])
    assert b.add(x, m).type == ArrayType(F64, 2)
    assert b.mul(s, x).type == ArrayType(F64, 1)
    assert b.lt(x, s).type == ArrayType(BOOL, 1)
    assert b.reduce_sum(m, axes=(1,)).type == ArrayType(F64, 1)
    assert b.reduce_sum(m).type is F64
    assert b.reduce_max(m, axes=(0, 1), keepdims=True).type == ArrayType(F64, 2)
    assert b.matmul(x, x).type is F64 and b.matmul(m, x).type == ArrayType(F64, 1)
    with pytest.raises(RuleError):
        b.add(x, Value(F32, "f"))            # one dtype: the frontend casts
    with pytest.raises(RuleError):
        b.reduce_sum(m, axes=(2,))           # no axis 2
    with pytest.raises(RuleError):
        b.matmul(x, s)                       # a scalar is no matrix
    with pytest.raises(RuleError):
        b.reduce_sum(x, keepdim=True)        # a misspelt attribute


def test_verify_rejects_a_wrong_result_rank() -> None:
    x = array(F64, 2, "x")
    bad = Op(Prim.REDUCE_SUM, (x,), (Value(ArrayType(F64, 2)),),
             (("axes", (0,)), ("keepdims", False)))
    func = Func("bad", Emitter([x]).finish([]), ("x",))
    func = func.with_body(func.body.__class__((x,), (bad,), bad.results))
    with pytest.raises(VerifyError, match="reduce_sum"):
        verify(func, result_types)


@pytest.mark.parametrize("case", [softmax, matmuls, loop_with_tape], ids=lambda c: c.__name__)
def test_programs_round_trip_through_serialization(case) -> None:
    func, args = case(F32)
    for program in (func, vjp_program(func, [0])):
        again = verify(loads(dumps(program)), result_types)
        assert format_func(again) == format_func(program)
        if program is func:
            assert_close(flat(interpret(again, args)), flat(interpret(func, args)), "backends")


def test_the_interpreter_checks_argument_ranks() -> None:
    func, _ = softmax(F64)
    with pytest.raises(ValueError, match="f64\\[:,:\\]"):
        interpret(func, [np.ones(3)])


@pytest.mark.parametrize("case", [column_and_row, softmax, matmuls], ids=lambda c: c.__name__)
def test_forward_over_reverse_gives_hessian_vector_products(case) -> None:
    func, args = case(F64)
    wrt = [i for i, p in enumerate(func.params) if p.type.is_float]
    adjoint = vjp_program(func, wrt)
    second = jvp_program(adjoint, wrt)
    verify(second, result_types)
    rng = np.random.default_rng(3)
    outs = interpret(func, args)
    c = [numpy_value(rng.normal(size=np.shape(v)), r.type) for v, r in zip(outs, func.results)]
    t = [numpy_value(rng.normal(size=np.shape(args[i])), func.params[i].type) for i in wrt]
    k = len(wrt)
    hv = interpret(second, [*args, *c, *t])[-k:]
    n = len(func.results)

    def grads(step: float) -> np.ndarray:
        moved = list(args)
        for i, d in zip(wrt, t):
            moved[i] = args[i] + step * d
        return flat(interpret(adjoint, [*moved, *c])[n:])
    h = 1e-4
    want = (8 * (grads(h) - grads(-h)) - (grads(2 * h) - grads(-2 * h))) / (12 * h)
    assert_close(flat(hv), want, "finite-difference", f"{func.name}: H·t")
