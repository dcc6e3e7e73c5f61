"""Reductions fused into the loop of the elementwise ops making their input
(``codegen.fusion``, ``arrays.lower_fused_reduction``), and cheap ops recomputed in each loop
reading them: results equal numpy's for every axis, keepdims, broadcast, transposed and strided
operands, f32/f64, small and large (thread pool) arrays, and the same bits whatever the thread
count."""
import numpy as np
import pytest

import sxad
from codegen import threads
from codegen.fusion import find_groups
from sxad import api
from sxad.frontend import lower
from sxad.ir import Prim


def full(x, c):
    return np.sum(np.exp(x * 0.5) - c)


def axis0(x, c):
    return np.sum(np.tanh(x) * c, axis=0)


def axis0_keep(x, c):
    return np.sum(np.tanh(x) * c, axis=0, keepdims=True)


def axes_all_keep(x, c):
    return np.sum(x * x + c, axis=(0, 1), keepdims=True)


def product(x, c):
    return np.prod(1.0 + 0.001 * np.sin(x - c), axis=0)


def transposed(x, c):
    return np.sum(np.cos(x.T) + c, axis=0)


def middle(x, c):
    return np.sum(np.sqrt(x * x + 1.0) * c, axis=1)


def shared(x, c):
    """``h`` recomputed in three loops, two of them reductions; never stored."""
    h = 0.5 * x
    return np.sum(h * c, axis=0) + np.sum(h), h * x


def chain(x, c):
    """A chain of recomputed ops (each reading at most the one wide array, ``x``)."""
    z = (x - c) / 2.0
    w = 0.5 * z * z
    return np.sum(w, axis=0), np.sum(w * c), z + w


def along(x, c):   # the last axis: not fused (kept unfused on purpose), still right
    return np.sum(np.exp(x - c), axis=-1)


def grad_case(mu, x):
    z = (x[:, None] - mu) / 1.5
    return np.sum(np.log(np.sum(np.exp(-0.5 * z * z), axis=1)))


def _args(fn, rng, n, dtype):
    g = lambda *s: rng.standard_normal(s).astype(dtype)   # noqa: E731
    if fn is transposed:
        return g(7, n), g(7)
    if fn is middle:
        return g(n, 3, 5), g(3, 5)
    return g(n, 7), g(7)


def _groups(fn, args):
    func = lower(fn, [api._type_of(fn, f"a{k}", a) for k, a in enumerate(args)])
    return find_groups(func.body)


def _reduction_roots(fn, args):
    return [r.prim for r in _groups(fn, args).members if r.prim in
            (Prim.REDUCE_SUM, Prim.REDUCE_PROD, Prim.UNBROADCAST)]


CASES = [full, axis0, axis0_keep, axes_all_keep, product, transposed, middle, shared, chain,
         along]


def _close(got, want, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 5, 40_000])
@pytest.mark.parametrize("fn", CASES, ids=lambda f: f.__name__)
def test_fused_reduction_equals_numpy(fn, n, dtype, rng):
    args = _args(fn, rng, n, dtype)
    got, want = sxad.jit(fn)(*args), fn(*args)
    for g, w in zip(got if isinstance(want, tuple) else [got],
                    want if isinstance(want, tuple) else [want]):
        assert np.shape(g) == np.shape(w)
        assert np.asarray(g).dtype == np.asarray(w).dtype
        _close(np.asarray(g), np.asarray(w), dtype)


@pytest.mark.parametrize("fn", [f for f in CASES if f is not along], ids=lambda f: f.__name__)
def test_the_reduction_is_fused(fn, rng):
    assert _reduction_roots(fn, _args(fn, rng, 4, np.float64))


def test_cheap_ops_are_recomputed_not_stored(rng):
    groups = _groups(shared, _args(shared, rng, 4, np.float64))
    half = [op for op in groups.root_of if op.prim is Prim.MUL and
            any(a.type.__class__.__name__ != "ArrayType" for a in op.args)]
    assert half, "0.5 * x is fused"
    (h,) = half
    assert sum(h in ops for ops in groups.members.values()) == 3   # in every loop reading it


def test_last_axis_sums_are_left_to_the_library(rng):
    assert not _reduction_roots(along, _args(along, rng, 4, np.float64))


@pytest.mark.parametrize("layout", ["strided", "transposed", "broadcast"])
def test_unusual_layouts(layout, rng):
    x = rng.standard_normal((300, 14))
    c = rng.standard_normal(7)
    if layout == "strided":
        x = x[:, ::2]
    elif layout == "transposed":
        x = np.ascontiguousarray(x[:, :7].T).T
    else:
        x = np.broadcast_to(rng.standard_normal(7), (300, 7))
    for fn in (full, axis0, axis0_keep, axes_all_keep):
        _close(sxad.jit(fn)(x, c), fn(x, c), np.float64)


def test_empty_arrays(rng):
    c = rng.standard_normal(7)
    for shape in [(0, 7)]:
        x = np.zeros(shape)
        for fn in (full, axis0, axis0_keep, axes_all_keep, product):
            np.testing.assert_array_equal(sxad.jit(fn)(x, c), fn(x, c))
    x, c0 = np.zeros((5, 0)), np.zeros(0)
    for fn in (full, axis0, axis0_keep, axes_all_keep, product):
        np.testing.assert_array_equal(sxad.jit(fn)(x, c0), fn(x, c0))


def test_the_same_bits_on_any_number_of_threads(rng):
    x, c = rng.standard_normal((200_000, 7)), rng.standard_normal(7)
    for fn in (full, axis0, shared, chain):
        compiled = sxad.jit(fn)
        many = compiled(x, c)
        threads.set_threads(1)
        try:
            one = compiled(x, c)
        finally:
            threads.set_threads(threads.default_threads())
        for a, b in zip(many if isinstance(many, tuple) else [many],
                        one if isinstance(one, tuple) else [one]):
            np.testing.assert_array_equal(a, b)
        _close(np.asarray(many if not isinstance(many, tuple) else many[0]),
               np.asarray(fn(x, c) if not isinstance(many, tuple) else fn(x, c)[0]), np.float64)


def test_unbroadcast_fused_in_a_gradient(rng):
    mu, x = rng.standard_normal(6), rng.standard_normal(30_000)
    value, (g,) = sxad.value_and_grad(grad_case, wrt=(0,))(mu, x)
    np.testing.assert_allclose(value, grad_case(mu, x), rtol=1e-12)
    eps = 1e-6
    numeric = [(grad_case(mu + eps * e, x) - grad_case(mu - eps * e, x)) / (2 * eps)
               for e in np.eye(6)]
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-5)
