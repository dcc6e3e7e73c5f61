"""Each array primitive natively against the interpreter: reductions over every axis set (nan
and ties as numpy), matmul in every shape case and layout, broadcasting over random shapes,
the shape primitives, integer and bool arrays, casts."""
from __future__ import annotations

import numpy as np
import pytest

import codegen
from native_arrays import check_native
from sxad.ir import BOOL, F32, F64, I64, ArrayType, Func, Prim, Value
from sxad.prims import Emitter

AXES = [None, (0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]
REDUCTIONS = [Prim.REDUCE_SUM, Prim.REDUCE_MAX, Prim.REDUCE_MIN, Prim.REDUCE_PROD]


def arr(dtype, rank, name):
    return Value(ArrayType(dtype, rank), name)


_built: dict = {}


def once(key, build):
    """Build and compile a program once per session."""
    if key not in _built:
        func = build()
        _built[key] = (func, codegen.compile_native(func))
    return _built[key]


def reductions(prim: Prim, dtype) -> Func:
    """Every axis set, with and without keepdims, of one reduction: 14 results."""
    x = arr(dtype, 3, "x")
    b = Emitter([x])
    outs = [b.emit(prim, x, axes=axes, keepdims=keep) for axes in AXES for keep in (False, True)]
    return Func(f"all_{prim}_{dtype}", b.finish(outs), ("x",), True)


@pytest.mark.parametrize("dtype", [F64, F32, I64], ids=str)
@pytest.mark.parametrize("prim", REDUCTIONS, ids=str)
def test_reductions_on_every_axis(prim, dtype):
    func, kernel = once((prim, dtype), lambda: reductions(prim, dtype))
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(2, 3, 4)) if dtype is I64 else rng.normal(size=(2, 3, 4))
    x = x.astype({F64: np.float64, F32: np.float32, I64: np.int64}[dtype])
    check_native(func, [x], kernel)
    check_native(func, [x.transpose(2, 0, 1).copy().transpose(1, 2, 0)], kernel)   # a view


@pytest.mark.parametrize("prim", [Prim.REDUCE_MAX, Prim.REDUCE_MIN], ids=str)
def test_max_and_min_propagate_nan_and_keep_ties(prim):
    func, kernel = once((prim, F64), lambda: reductions(prim, F64))
    x = np.zeros((2, 3, 4))
    x[0, 1, 2] = np.nan
    x[1, 2, :] = [np.inf, -np.inf, 0.0, -0.0]
    check_native(func, [x], kernel)


def test_empty_sums_and_products():
    func, kernel = once((Prim.REDUCE_SUM, F64), lambda: reductions(Prim.REDUCE_SUM, F64))
    check_native(func, [np.zeros((2, 0, 3))], kernel)
    func, kernel = once((Prim.REDUCE_PROD, F64), lambda: reductions(Prim.REDUCE_PROD, F64))
    check_native(func, [np.zeros((0, 2, 3))], kernel)


def matmuls(dtype) -> Func:
    m, n, u, v = arr(dtype, 2, "M"), arr(dtype, 2, "N"), arr(dtype, 1, "u"), arr(dtype, 1, "v")
    b = Emitter([m, n, u, v])
    outs = [b.matmul(m, n), b.matmul(m, v), b.matmul(u, n), b.matmul(u, u)]
    return Func(f"matmuls_{dtype}", b.finish(outs), ("M", "N", "u", "v"), True)


LAYOUTS = {
    "contiguous": lambda a: a,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "strided": lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=-1)[::2, ::2]
    if a.ndim == 2 else np.repeat(a, 3)[::3],
    "reversed": lambda a: a[::-1, ::-1].copy()[::-1, ::-1] if a.ndim == 2 else a[::-1].copy()[::-1],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [F64, F32, I64], ids=str)
def test_matmul_every_case_and_layout(dtype, layout):
    func, kernel = once(("matmul", dtype), lambda: matmuls(dtype))
    rng = np.random.default_rng(4)
    np_dtype = {F64: np.float64, F32: np.float32, I64: np.int64}[dtype]
    shapes = [(3, 5), (5, 4), (5,), (5,)]
    args = [LAYOUTS[layout](rng.integers(-4, 5, size=s).astype(np_dtype)) for s in shapes]
    check_native(func, args, kernel)
    empty = [np.zeros(s, dtype=np_dtype) for s in [(3, 0), (0, 4), (0,), (0,)]]
    check_native(func, empty, kernel)


def broadcasting(dtype) -> Func:
    x, y, z = arr(dtype, 3, "x"), arr(dtype, 2, "y"), arr(dtype, 1, "z")
    b = Emitter([x, y, z])
    s = b.add(b.mul(x, y), z)
    c = b.gt(y, z)
    return Func(f"broadcasting_{dtype}", b.finish([s, b.select(b.lt(s, x), s, x), c,
                                                   b.unbroadcast(s, y), b.unbroadcast(s, z),
                                                   b.broadcast_like(z, s)]), ("x", "y", "z"),
                True)


@pytest.mark.parametrize("dtype", [F64, I64], ids=str)
def test_broadcasting_over_random_shapes(dtype):
    func, kernel = once(("broadcast", dtype), lambda: broadcasting(dtype))
    rng = np.random.default_rng(5)
    np_dtype = np.float64 if dtype is F64 else np.int64
    for _ in range(40):
        full = rng.integers(0, 4, size=3)
        shapes = [tuple(n if rng.random() < 0.6 else 1 for n in full[3 - r:]) for r in (3, 2, 1)]
        args = [rng.integers(-5, 5, size=s).astype(np_dtype) for s in shapes]
        check_native(func, args, kernel)
    with pytest.raises(ValueError, match=r"shapes \(2,3,4\) \(3,5\)"):
        kernel(np.zeros((2, 3, 4), np_dtype), np.zeros((3, 5), np_dtype), np.zeros(4, np_dtype))


def test_shape_primitives_and_views():
    x, y = arr(F64, 2, "x"), arr(F64, 3, "y")
    b = Emitter([x, y])
    t = b.transpose(x)
    e = b.expand_dims(t, axes=(0, 2))
    outs = [t, e, b.transpose(y, perm=(1, 2, 0)), b.dim(y, axis=1), b.zeros_like(t),
            b.mul(b.broadcast_like(b.expand_dims(x, axes=(0,)), y), y),
            b.expand_dims(b.reduce_sum(x), axes=(0, 1))]
    func = Func("shapes", b.finish(outs), ("x", "y"), True)
    kernel = codegen.compile_native(func)
    rng = np.random.default_rng(6)
    check_native(func, [rng.normal(size=(3, 4)), rng.normal(size=(2, 3, 4))], kernel)
    with pytest.raises(ValueError, match=r"cannot broadcast an array of shape \(1,3,4\)"):
        kernel(rng.normal(size=(3, 4)), rng.normal(size=(2, 3, 5)))


def test_bool_and_integer_arrays_and_casts():
    x, k, p = arr(F32, 2, "x"), arr(I64, 1, "k"), arr(BOOL, 2, "p")
    b = Emitter([x, k, p])
    wide = b.cast(x, F64)
    outs = [b.and_(p, b.gt(x, b.const(0.0, F32))), b.not_(p), b.cast(p, I64),
            b.floordiv(k, b.const(3)), b.mod(k, b.const(-3)), b.cast(wide, F32),
            b.cast(b.mul(wide, b.cast(k, F64)), I64), b.cast(k, F32), b.cast(x, BOOL),
            b.select(p, x, b.neg(x)), b.reduce_sum(b.cast(p, I64))]
    func = Func("dtypes", b.finish(outs), ("x", "k", "p"), True)
    rng = np.random.default_rng(7)
    args = [(rng.normal(size=(2, 5)) * 1e3).astype(np.float32),
            np.array([-7, -1, 0, 2, 2 ** 62], dtype=np.int64), rng.random((2, 5)) < 0.5]
    args[0][0, :2] = [np.nan, 0.0]
    check_native(func, args)


F32_PRIMS = [Prim.EXP, Prim.LOG, Prim.LOG1P, Prim.EXPM1, Prim.SQRT, Prim.SIN, Prim.COS, Prim.TAN,
             Prim.ASIN, Prim.ACOS, Prim.ATAN, Prim.SINH, Prim.COSH, Prim.TANH]


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in float32 units in the last place (0 where equal or both nan)."""
    g, w = (np.asarray(v, np.float32).view(np.int32).astype(np.int64) for v in (got, want))
    g, w = (np.where(v < 0, -(2 ** 31) - v, v) for v in (g, w))
    same = (np.asarray(got) == np.asarray(want)) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0, np.abs(g - w))


@pytest.mark.parametrize("where", ["array loop", "scalar"])
def test_f32_functions_within_their_ulps(where):
    """f32 results against numpy's float32 within ``codegen.ULPS_F32`` (``vmath.ULPS`` for what
    array loops take from vmath)."""
    from codegen import vmath
    from sxad.backends.interpreter import interpret
    x = arr(F32, 1, "x") if where == "array loop" else Value(F32, "x")
    b = Emitter([x])
    func = Func(f"f32_{where[0]}", b.finish([b.emit(p, x) for p in F32_PRIMS]), ("x",), True)
    kernel = codegen.compile_native(func)
    rng = np.random.default_rng(8)
    xs = np.concatenate([rng.uniform(-1, 1, 500), rng.uniform(-10, 10, 500),
                         np.exp(rng.uniform(-30, 30, 500))]).astype(np.float32)
    inputs = [[xs]] if where == "array loop" else [[v] for v in xs[::7]]
    with np.errstate(all="ignore"):
        for args in inputs:
            for prim, got, want in zip(F32_PRIMS, kernel(*args), interpret(func, args)):
                bound = codegen.ULPS_F32[prim]
                if where == "array loop":
                    bound = vmath.ULPS.get((prim, F32), bound)
                assert np.max(ulps(got, want)) <= bound, (prim, where)


# --------------------------------------------------------------------------- indexing

def indexing() -> Func:
    x, i, j, k = arr(F64, 3, "x"), Value(I64, "i"), Value(I64, "j"), Value(I64, "k")
    ia, ib, v = arr(I64, 1, "ia"), arr(I64, 2, "ib"), arr(F64, 1, "v")
    b = Emitter([x, i, j, k, ia, ib, v])
    outs = [
        b.index(x, i, spec=("i",)), b.index(x, i, j, k, spec=("i", "i", "i")),
        b.index(x, i, j, k, spec=("s110", "i")), b.index(x, k, spec=("s001",)),
        b.index(x, spec=(":", "s000")), b.index(x, j, k, i, spec=(":", "s101", "i")),
        b.index(x, ia, spec=("a",)), b.index(x, ia, ib, spec=(":", "a", "a")),
        b.index(x, i, ia, spec=("i", "a")),
        b.set_index(x, v, i, spec=("i", ":")), b.set_index(x, b.const(7.0), ia, spec=(":", "a")),
        b.index_add(v, x, ia, ia, spec=("a", "a")),
        b.index_add(b.index(x, i, spec=("i",)), x, i, spec=("i",)),
        b.reshape(x, b.const(-1)), b.reshape(x, b.const(4), b.const(-1)),
        b.reshape_like(b.transpose(x), b.reshape(x, b.const(4), b.const(3), b.const(2))),
        b.squeeze(b.index(x, i, b.add(i, b.const(1)), spec=("s110",)), axes=(0,)),
        b.full(b.const(2.5), b.abs(i), b.abs(j)), b.arange(i, j, k),
        b.arange(b.const(0.5), b.const(3.0), b.const(0.25)),
        b.arange(b.cast(i, F64), b.cast(j, F64), b.cast(k, F64))]
    return Func("indexing", b.finish(outs), ("x", "i", "j", "k", "ia", "ib", "v"), True)


X3 = np.arange(24.0).reshape(2, 3, 4)


@pytest.mark.parametrize("args", [
    (X3, 1, 2, 2, np.array([0, -1, 1]), np.array([[0], [2], [-3]]), np.arange(4.0)),
    (X3, -2, -1, -2, np.array([1, 1, 0]), np.array([[1, 2, 0]]), np.array([5.0])),
    (X3[::-1, :, ::-1].copy()[::-1, :, ::-1], 0, 0, 1, np.array([0, 0, 0]),
     np.array([[1, 2, 0]]), np.array([5.0])),
], ids=["positive", "negative", "view"])
def test_indexing_reshaping_and_creation(args):
    func, kernel = once("indexing", indexing)
    check_native(func, list(args), kernel)


@pytest.mark.parametrize("args, error, message", [
    ((X3, 5, 2, 3), IndexError, "index 5 is out of bounds for axis 0 with size 2"),
    ((X3, 1, 2, 0), ValueError, "slice step cannot be zero"),
    ((X3, 1, 2, 1, np.array([0, 3])), IndexError,
     "index 3 is out of bounds for axis 0 with size 2"),
    ((X3, 1, 1, 1, np.array([0, 1]), np.array([[0, 1, 2]])), ValueError,
     r"shapes \(2,\) \(1,3\)"),
])
def test_indexing_faults(args, error, message):
    func, kernel = once("indexing", indexing)
    defaults = (X3, 1, 2, 2, np.array([0]), np.array([[0]]), np.arange(4.0))
    with pytest.raises(error, match=message):
        kernel(*args, *defaults[len(args):])


def test_derivatives_through_indexing():
    """Cross-entropy with p[arange(n), y], a set_index, a reshape: the adjoint program
    (index_add, set_index of zeros, reshape_like) natively."""
    from sxad.ad.reverse import vjp_program
    z, y, w = arr(F64, 2, "z"), arr(I64, 1, "y"), arr(F64, 1, "w")
    b = Emitter([z, y, w])
    n = b.dim(z, axis=0)
    p = b.exp(b.sub(z, b.reduce_max(z, axes=(1,), keepdims=True)))
    p = b.div(p, b.reduce_sum(p, axes=(1,), keepdims=True))
    picked = b.index(p, b.arange(b.const(0), n, b.const(1)), y, spec=("a", "a"))
    z2 = b.set_index(z, b.mul(w, b.const(2.0)), b.const(0), spec=("i",))
    flat = b.reshape(z2, b.const(-1))
    loss = b.add(b.neg(b.reduce_sum(b.log(picked))), b.reduce_sum(b.mul(flat, flat)))
    func = Func("cross_entropy", b.finish([loss]), ("z", "y", "w"))
    adjoint = vjp_program(func, [0, 2])
    rng = np.random.default_rng(9)
    args = [rng.normal(size=(4, 3)), np.array([0, 2, 1, 2]), rng.normal(size=3)]
    check_native(func, args)
    check_native(adjoint, [*args, 1.0])


def test_rank_zero_arrays():
    """A rank-0 array argument (only where the user passes one): elementwise, reduced, boxed."""
    x, v = arr(F64, 0, "x"), arr(F64, 1, "v")
    b = Emitter([x, v])
    y = b.add(b.mul(x, b.const(2.0)), b.const(1.0))
    func = Func("rank0", b.finish([y, b.reduce_sum(y), b.mul(x, v), b.expand_dims(x, axes=(0,))]),
                ("x", "v"), True)
    got = check_native(func, [np.array(1.5), np.arange(3.0)])
    assert got[0].shape == () and isinstance(got[0], np.ndarray)
