"""Checks shared by the array tests: a hand-built program's tangent and adjoint programs verify,
agree with central differences along random directions and with each other (the dot-product
test), survive ``optimize`` and print as Python that computes the same."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest

from oracles import assert_close
from sxad.ad.forward import jvp_program
from sxad.ad.reverse import vjp_program
from sxad.backends.interpreter import interpret
from sxad.backends.python_source import compile_python
from sxad.ir import ArrayType, Func, Type, Value, verify
from sxad.passes import DERIVATIVE_PIPELINE, optimize
from sxad.prims import NUMPY_TYPE, result_types

STEP = 1e-4


def array(dtype: Type, rank: int, name: str) -> Value:
    return Value(ArrayType(dtype, rank), name)


def numpy_value(value: Any, type_: Type) -> Any:
    """``value`` as an argument of ``type_``."""
    if isinstance(type_, ArrayType):
        return np.asarray(value, dtype=NUMPY_TYPE[type_.dtype])
    return NUMPY_TYPE[type_](value)


def flat(values: Sequence[Any]) -> np.ndarray:
    if not values:
        return np.zeros(0)
    return np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in values])


def float_params(func: Func) -> list[int]:
    return [i for i, p in enumerate(func.params) if p.type.is_float]


def float_results(func: Func, outputs: Sequence[Any]) -> list[Any]:
    return [v for v, r in zip(outputs, func.results) if r.type.is_float]


def random_like(rng: np.random.Generator, values: Sequence[Any], types: Sequence[Type]) -> list:
    return [numpy_value(rng.normal(size=np.shape(v)), t) for v, t in zip(values, types)]


def derivatives(func: Func, args: Sequence[Any], seed: int = 0):
    """(J·t, Jᵀ·c, t, c, the programs) for random directions t and cotangents c."""
    verify(func, result_types)
    wrt = float_params(func)
    tangent, adjoint = jvp_program(func, wrt), vjp_program(func, wrt)
    verify(tangent, result_types)
    verify(adjoint, result_types)
    rng = np.random.default_rng(seed)
    outputs = interpret(func, args)
    floats = float_results(func, outputs)
    t = random_like(rng, [args[i] for i in wrt], [func.params[i].type for i in wrt])
    c = random_like(rng, floats, [r.type for r in func.results if r.type.is_float])
    n = len(func.results)
    jt = interpret(tangent, [*args, *t])
    jtc = interpret(adjoint, [*args, *c])
    for got, want in zip((*jt[:n], *jtc[:n]), (*outputs, *outputs)):
        np.testing.assert_array_equal(got, want)  # the primal results are unchanged
    return list(jt[n:]), list(jtc[n:]), t, c, (tangent, adjoint)


def directional_difference(func: Func, args: Sequence[Any], wrt: Sequence[int],
                           t: Sequence[Any]) -> np.ndarray:
    """d/ds f(args + s·t) at s = 0, by the 4-point central stencil."""
    def at(s: float) -> np.ndarray:
        moved = list(args)
        for i, d in zip(wrt, t):
            moved[i] = args[i] + s * d
        return flat(float_results(func, interpret(func, moved)))
    h = STEP
    return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)


def check_derivatives(func: Func, args: Sequence[Any]) -> None:
    """Tangent vs differences, adjoint vs tangent (dot-product test), f64."""
    jt, jtc, t, c, _ = derivatives(func, args)
    wrt = float_params(func)
    assert_close(flat(jt), directional_difference(func, args, wrt, t), "finite-difference",
                 f"{func.name}: J·t against central differences")
    assert_close(flat(jt) @ flat(c), flat(t) @ flat(jtc), "modes",
                 f"{func.name}: <J t, c> = <t, J^T c>")


def check_f32(func32: Func, args32: Sequence[Any], func64: Func, args64: Sequence[Any]) -> None:
    """An f32 program's derivatives against the same program's in f64, and its dot-product
    test; every f32 value stays f32."""
    jt, jtc, t, c, programs = derivatives(func32, args32)
    outputs = float_results(func32, interpret(func32, args32))
    for v, out in zip(jt, outputs):  # a tangent has its output's dtype (f32 unless promoted)
        assert np.asarray(v).dtype == np.asarray(out).dtype, (np.asarray(v).dtype, out)
    for v in jtc:  # an adjoint has its f32 input's dtype
        assert np.asarray(v).dtype == np.float32, np.asarray(v).dtype
    wrt = float_params(func64)
    tangent, adjoint = jvp_program(func64, wrt), vjp_program(func64, wrt)
    n = len(func64.results)
    t64 = [np.asarray(v, dtype=np.float64) for v in t]
    c64 = [np.asarray(v, dtype=np.float64) for v in c]
    want_jt = interpret(tangent, [*args64, *t64])[n:]
    want_jtc = interpret(adjoint, [*args64, *c64])[n:]
    assert_close(flat(jt), flat(want_jt), "f32", f"{func32.name}: f32 tangent vs f64")
    assert_close(flat(jtc), flat(want_jtc), "f32", f"{func32.name}: f32 adjoint vs f64")
    assert_close(flat(jt) @ flat(c), flat(t) @ flat(jtc), "f32-modes",
                 f"{func32.name}: f32 dot-product test")


def check_backends(func: Func, args: Sequence[Any]) -> None:
    """The program and its derivative programs: optimized, and printed as Python, give what
    the interpreter gives."""
    _, _, t, c, (tangent, adjoint) = derivatives(func, args)
    for program, inputs in ((func, args), (tangent, [*args, *t]), (adjoint, [*args, *c])):
        want = interpret(program, inputs)
        optimized = verify(optimize(program, DERIVATIVE_PIPELINE), result_types)
        assert_close(flat(interpret(optimized, inputs)), flat(want), "modes",
                     f"{program.name}: optimized vs not")
        with np.errstate(all="ignore"):
            got = compile_python(program)(*inputs)
        got = got if isinstance(got, tuple) and (program.tuple_result or len(program.results) > 1) \
            else (got,)
        assert_close(flat(got), flat(want), "backends", f"{program.name}: Python vs interpreter")
        for g, w in zip(got, want):
            assert np.shape(g) == np.shape(w), (program.name, np.shape(g), np.shape(w))


def derivative_tests(cases: Sequence[Any]) -> tuple[Any, Any, Any]:
    """The three checks every hand-built case gets, as parametrized tests a test module binds
    to its own names: f64 derivatives (``check_derivatives``), f32 against f64 (``check_f32``),
    optimized and generated Python (``check_backends``). A case maps a float dtype to
    ``(func, args)``."""
    from sxad.ir import F32, F64
    over_cases = pytest.mark.parametrize("case", cases, ids=lambda c: c.__name__)

    @over_cases
    def test_f64_derivatives(case: Any) -> None:
        check_derivatives(*case(F64))

    @over_cases
    def test_f32_derivatives_match_f64(case: Any) -> None:
        check_f32(*case(F32), *case(F64))

    @over_cases
    def test_optimized_and_python_agree(case: Any) -> None:
        check_backends(*case(F64))

    return test_f64_derivatives, test_f32_derivatives_match_f64, test_optimized_and_python_agree
