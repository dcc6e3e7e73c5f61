"""The frontend on numpy code: operators with broadcasting, numpy functions and methods,
reductions, matmul, shapes and creation. Each function is lowered, interpreted, and compared
with calling it on numpy arrays (the oracle: values, dtypes and shapes); the differentiable
ones are also differentiated forward and backward (tests/arrays/harness.py: central
differences and the dot-product test)."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from arrays.harness import check_derivatives
from sxad.backends.interpreter import interpret
from sxad.errors import UnsupportedError
from sxad.frontend import lower
from sxad.ir import BOOL, F32, F64, I64, ArrayType, Func, Prim, Type, dtype_of, verify
from sxad.prims import NUMPY_TYPE, result_types

_DTYPES = {"f64": F64, "f32": F32, "i64": I64, "bool": BOOL}


def spec_type(spec: Any) -> Type:
    """``("f64", (3, 4))`` an array; ``"f64"`` a scalar."""
    if isinstance(spec, str):
        return _DTYPES[spec]
    return ArrayType(_DTYPES[spec[0]], len(spec[1]))


def make_args(specs: Sequence[Any], seed: int = 0, positive: bool = False) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        t = spec_type(spec)
        dtype = NUMPY_TYPE[t.dtype if isinstance(t, ArrayType) else t]
        shape = () if isinstance(spec, str) else spec[1]
        if dtype is np.bool_:
            v = rng.random(shape) > 0.5
        elif dtype is np.int64:
            v = rng.integers(0, 3, size=shape)
        else:
            v = rng.uniform(0.5, 1.5, size=shape) if positive else rng.normal(size=shape)
        out.append(np.asarray(v, dtype=dtype) if shape else dtype(v).item())  # Python scalars
    return out


def check(fn: Callable, specs: Sequence[Any], positive: bool = False, grad: bool = True,
          args: Sequence[Any] | None = None) -> Func:
    """Lower ``fn`` for ``specs``, compare with numpy; differentiate if ``grad``."""
    func = verify(lower(fn, [spec_type(s) for s in specs]), result_types)
    args = list(args) if args is not None else make_args(specs, positive=positive)
    copies = [np.copy(a) if isinstance(a, np.ndarray) else a for a in args]
    expected = fn(*copies)
    got = interpret(func, args)
    expected = expected if func.tuple_result else (expected,)
    expected = tuple(expected) + tuple(copies[k] for k in func.mutated)
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        e_arr = np.asarray(e)
        assert np.shape(g) == e_arr.shape, (fn.__name__, np.shape(g), e_arr.shape)
        if isinstance(e, (np.ndarray, np.generic)):
            assert np.asarray(g).dtype == e_arr.dtype, (fn.__name__, np.asarray(g).dtype,
                                                         e_arr.dtype)
        tol = 1e-5 if e_arr.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(np.asarray(g, dtype=float), e_arr.astype(float),
                                   rtol=tol, atol=tol)
    if grad:   # f64 programs: f32 ones are checked against them (check_f32)
        assert all(dtype_of(p.type) is not F32 for p in func.params)
        check_derivatives(func, args)
    return func


def prims(func: Func) -> list[Prim]:
    return [op.prim for op in func.body.walk()]


def A(dtype: str, *shape: int) -> tuple:
    return (dtype, shape)


# --------------------------------------------------------------------------- operators

def elementwise(x, y, s):
    return x * y + s * x - y / 2.0 + x ** 2 - (-y) + 3


def broadcasting(M, v, c):
    return (M + v) * c[:, None] - v[None, :] + c[:, np.newaxis] * 0.5 + M[..., 0:1]


def mlp(W1, b1, W2, b2, X):
    h = np.tanh(X @ W1 + b1)
    out = h @ W2 + b2
    z = out - out.max(axis=1, keepdims=True)
    p = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    return np.mean(p ** 2) * 2.0


def comparisons(x, y):
    m = (x > y) & (x > 0) | ~(y < -1.0)
    return np.where(m, x, y * 2.0) + (x >= 0.1) * x


def relu_layer(W, x):
    return np.maximum(W @ x, 0.0).sum()


@pytest.mark.parametrize("fn, specs", [
    (elementwise, [A("f64", 3), A("f64", 3), "f64"]),
    (elementwise, [A("f64", 2, 3), A("f64", 3), "f64"]),
    (broadcasting, [A("f64", 2, 3), A("f64", 3), A("f64", 2)]),
    (mlp, [A("f64", 3, 4), A("f64", 4), A("f64", 4, 2), A("f64", 2), A("f64", 5, 3)]),
    (comparisons, [A("f64", 4), A("f64", 4)]),
    (relu_layer, [A("f64", 3, 4), A("f64", 4)]),
], ids=lambda v: getattr(v, "__name__", None))
def test_operators_and_broadcasting(fn, specs) -> None:
    check(fn, specs)


def f32_stays_f32(x, y, n):
    z = 1.0 / (1.0 + np.exp(-x)) * 2 + y * 0.5 - n
    return np.sum(z * z) / len(x)


def int_arrays(a, b):
    return a * b + a // 2 - b % 3, a / 2, a * 1.5


def bool_arithmetic(m, x):
    return m * x + m.sum()


def test_f32_arrays_stay_f32_with_python_scalars() -> None:
    func = check(f32_stays_f32, [A("f32", 4), A("f32", 4), "i64"], grad=False)
    assert all(r.type in (F32, ArrayType(F32, 1)) for op in func.body.walk() for r in op.results
               if op.prim not in (Prim.DIM, Prim.CONST) and r.type not in (I64,))


def mixed_precision(x32, y64, i, lr):
    z = x32 * y64 + x32.sum() + i * x32         # f32 with f64 or i64 arrays: f64
    x32 -= lr * x32                              # a Python float keeps f32 in place
    return z, x32 * 2, np.sum(x32) * lr, x32 > 0.5


def test_mixed_precision_follows_numpy_2() -> None:
    func = check(mixed_precision, [A("f32", 3), A("f64", 3), A("i64", 3), "f64"], grad=False)
    assert [r.type for r in func.results] == [ArrayType(F64, 1), ArrayType(F32, 1), F32,
                                              ArrayType(BOOL, 1), ArrayType(F32, 1)]


def test_int_and_bool_arrays_follow_numpy() -> None:
    check(int_arrays, [A("i64", 5), A("i64", 5)], grad=False)
    check(bool_arithmetic, [A("bool", 5), A("f64", 5)])


# --------------------------------------------------------------------------- numpy functions

def unary_zoo(x):
    return (np.exp(x) + np.log(x) + np.sqrt(x) + np.sin(x) + np.cos(x) + np.tanh(x) + np.abs(x)
            + np.log1p(x) + np.expm1(x) + np.arctan(x) + np.square(x) + np.power(x, 3)
            + np.log10(x) + np.sinh(x) + np.cosh(x) + np.sign(x) * 0.5 + np.hypot(x, 2.0))


def binary_zoo(x, y):
    return (np.maximum(x, y) + np.minimum(x, 0.5) + np.clip(x, -0.5, 0.5) + np.clip(y, 0, None)
            + np.logaddexp(x, y) + np.where(x > y, x, 0.0) + np.arctan2(x, y) + abs(y))


def reductions(x):
    return (np.sum(x) + x.sum(axis=0).sum() + np.mean(x, axis=1).prod() + x.max() + np.min(x)
            + np.max(x, axis=(0, 1)) + x.mean(axis=-1, keepdims=True).sum()
            + np.sum(x, axis=(0, -1), keepdims=True).sum() + np.prod(x, 0).sum()
            + np.var(x, axis=0).sum() + x.std() + np.linalg.norm(x))


def reductions_3d(x):
    return np.sum(x, axis=(0, 2)) * np.max(x, axis=1).sum(axis=-1).sum() \
        + x.mean((1,)).min(axis=0).sum()


def softmax_xent(z, onehot):
    z = z - np.max(z, axis=-1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    return -np.mean(np.sum(onehot * logp, axis=1))


def any_all(x):
    return np.any(x > 1.0), np.all(x > -5.0), np.any(x > 0, axis=0)


@pytest.mark.parametrize("fn, specs, positive", [
    (unary_zoo, [A("f64", 2, 3)], True),
    (binary_zoo, [A("f64", 4), A("f64", 4)], False),
    (reductions, [A("f64", 3, 4)], True),
    (reductions_3d, [A("f64", 2, 3, 4)], False),
    (softmax_xent, [A("f64", 4, 3), A("f64", 4, 3)], False),
], ids=lambda v: getattr(v, "__name__", None))
def test_numpy_functions(fn, specs, positive) -> None:
    check(fn, specs, positive=positive)


def test_any_all_give_bools() -> None:
    check(any_all, [A("f64", 3, 2)], grad=False)


def matmuls(A_, B, u, v):
    return (A_ @ B).sum() + (A_ @ v) @ u * 0 + u @ A_ @ v + v @ v + np.dot(u, A_).sum() \
        + np.matmul(A_, B).sum() + np.dot(2.0, v).sum() + np.outer(u, v).sum() + A_.dot(v).sum()


def transposes(M, T3):
    return (M.T @ M).sum() + np.transpose(M).sum() + np.transpose(T3, (1, 0, 2)).sum(axis=0) \
        + T3.transpose(2, 0, 1).sum(axis=(1, 2)).sum() + (M.T * M.T).sum()


def test_matmul_in_all_shape_cases() -> None:
    check(matmuls, [A("f64", 3, 4), A("f64", 4, 2), A("f64", 3), A("f64", 4)])
    check(transposes, [A("f64", 3, 4), A("f64", 3, 2, 2)])


# --------------------------------------------------------------------------- shapes and creation

def shapes(x, y):
    n, m = x.shape
    k = y.shape[0] + len(y) + x.ndim + x.size + np.ndim(y) + np.size(x) + np.shape(x)[-1]
    return x.sum() * n + m * k


def creation(x, n):
    z = np.zeros(x.shape) + np.ones((x.shape[0], 3)).sum() + np.full(x.shape, 2.0)
    a = np.zeros(n) + np.arange(n) + np.arange(1, n + 1, 2).sum()
    e = np.zeros_like(x) + np.ones_like(x) * x + np.full_like(x, 0.5) + np.empty_like(x) * 0
    return (z * x + e, a, np.zeros(3, dtype=np.float32), np.ones(2, dtype=int),
            np.arange(0.0, 1.0, 0.25))


def reshapes(x, v):
    y = x.reshape(-1) * 2.0
    z = x.reshape(x.shape[1], x.shape[0]) + np.reshape(x, (x.shape[1], -1))
    w = x.reshape((1, -1)).sum() + x.ravel().sum() + x.flatten().prod() + np.ravel(x).max()
    b = np.broadcast_to(v, x.shape) * x + np.broadcast_to(2.0, (2, x.shape[1]))
    return y.sum() + z.sum() + w + np.expand_dims(v, 0).sum() + np.squeeze(x[None], axis=0).sum() \
        + b.sum()


def casts(x, i):
    y = x.astype(np.float32)
    return y * 2.0, i.astype(np.float64) * x, (x > 0).astype(float), np.float32(x) + y


def test_shapes_len_and_ndim() -> None:
    check(shapes, [A("f64", 3, 4), A("f64", 5)])


def test_creation() -> None:
    check(creation, [A("f64", 3, 2), "i64"], grad=False)


def test_reshape_and_casts() -> None:
    check(reshapes, [A("f64", 2, 3), A("f64", 3)])
    check(casts, [A("f64", 4), A("i64", 4)], grad=False)


# --------------------------------------------------------------------------- errors

def bad_axis(x):
    return np.sum(x, axis=2)


def bad_matmul(x, y):
    return x @ y


def bad_kwarg(x):
    return np.sum(x, where=x > 0)


def bad_scalar_index(s):
    return s[0]


def too_many_indices(x):
    return x[0, 1, 2]


def bad_math_on_array(x):
    return math.exp(x)


def bad_if_on_array(x):
    if x > 0:
        return x
    return -x


def bad_merge(x, c):
    y = 0.0
    if c > 0:
        y = x
    return y


def bad_loop_merge(x, n):
    s = 0.0
    for i in range(n):
        s = s + x
    return s


def bad_unsupported_numpy(x):
    return np.cumsum(x)


def bad_squeeze(x):
    return np.squeeze(x)


def bad_int_inplace(a, x):
    a += x
    return a


def bad_view_update(W):
    row = W[0]
    row += 1.0
    return W.sum()


def bad_transpose_axes(x):
    return np.transpose(x, (0, 1, 2))


@pytest.mark.parametrize("fn, specs, message, snippet", [
    (bad_axis, [A("f64", 2, 3)], "axis 2 is out of bounds for an array of rank 2", "axis=2"),
    (bad_matmul, [A("f64", 2, 2, 2), A("f64", 2)], "matmul of arrays of rank 3 and 1", "x @ y"),
    (bad_matmul, [A("f64", 2), "f64"], "needs two arrays", "x @ y"),
    (bad_kwarg, [A("f64", 2)], "argument `where` of `np.sum` is not supported", "x > 0"),
    (bad_scalar_index, ["f64"], "subscript of a number: `s` is a f64", "s[0]"),
    (too_many_indices, [A("f64", 2, 2)], "too many indices: 3 for an array of rank 2", "0, 1, 2"),
    (bad_math_on_array, [A("f64", 2)], "`math.exp` takes a number, not an array", "exp(x)"),
    (bad_if_on_array, [A("f64", 2)], "truth value of an array", "if x > 0"),
    (bad_merge, [A("f64", 2), "f64"], "`y` is an array f64[:] on one path and a scalar f64",
     "if c > 0"),
    (bad_loop_merge, [A("f64", 2), "i64"], "`s` is a scalar f64 on one path and an array",
     "for i in range(n)"),
    (bad_unsupported_numpy, [A("f64", 2)], "`np.cumsum` is not supported", "np.cumsum"),
    (bad_squeeze, [A("f64", 1, 2)], "`squeeze` needs `axis=`", "np.squeeze(x)"),
    (bad_int_inplace, [A("i64", 2), A("f64", 2)], "refuses the cast", "a += x"),
    (bad_view_update, [A("f64", 2, 2)], "view", "row += 1.0"),
    (bad_transpose_axes, [A("f64", 2, 2)], "do not match an array of rank 2", "(0, 1, 2)"),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_errors_name_the_place(fn, specs, message, snippet) -> None:
    with pytest.raises(UnsupportedError) as info:
        lower(fn, [spec_type(s) for s in specs])
    err = info.value
    assert message in err.what, str(err)
    assert err.loc is not None and err.loc.file == __file__, str(err)
    assert snippet in err.source_line, str(err)
    assert err.loc.col - 1 <= err.source_line.index(snippet) + len(snippet), str(err)


def test_array_parameters_are_checked() -> None:
    with pytest.raises(TypeError, match="rank 0 to 4"):
        lower(elementwise, [ArrayType(F64, 1), "f64", F64])


# --------------------------------------------------------------------------- models as written

def logistic_regression(w, b, X, y):
    z = X @ w + b
    p = 1 / (1 + np.exp(-z))
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def attention(Q, K, V):
    scores = Q @ K.T / np.sqrt(Q.shape[-1])
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return (w @ V).sum()


def batchnorm(x, gamma, beta):
    eps = 1e-5
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    return (gamma * (x - mu) / np.sqrt(var + eps) + beta).std()


def conv1d(x, w):
    n, k = len(x), len(w)
    out = np.zeros(n - k + 1)
    for i in range(n - k + 1):
        out[i] = np.dot(x[i:i + k], w)
    return np.sum(out ** 2)


def huber(r):
    delta = 1.0
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r ** 2, delta * (a - 0.5 * delta)).sum()


def rnn(Wx, Wh, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(Wx @ xs[t] + Wh @ h)
    return h.sum()


def pairwise(X):
    d = X[:, None, :] - X[None, :, :]
    return np.sqrt((d ** 2).sum(-1) + 1e-3).sum()


def running_sum(x):
    out = np.empty_like(x)
    acc = 0.0
    for i in range(len(x)):
        acc += x[i]
        out[i] = acc
    return np.sum(out * x)


@pytest.mark.parametrize("fn, specs", [
    (logistic_regression, [A("f64", 3), "f64", A("f64", 5, 3), A("f64", 5)]),
    (attention, [A("f64", 4, 3), A("f64", 5, 3), A("f64", 5, 2)]),
    (batchnorm, [A("f64", 6, 3), A("f64", 3), A("f64", 3)]),
    (conv1d, [A("f64", 7), A("f64", 3)]),
    (huber, [A("f64", 6)]),
    (rnn, [A("f64", 3, 2), A("f64", 3, 3), A("f64", 4, 2), A("f64", 3)]),
    (pairwise, [A("f64", 4, 2)]),
    (running_sum, [A("f64", 5)]),
], ids=lambda v: getattr(v, "__name__", None))
def test_models_as_numpy_users_write_them(fn, specs) -> None:
    check(fn, specs, positive=fn is logistic_regression)
