"""The max shift of log-sum-exp (and of log-softmax, softmax) is a constant to the derivatives
(``sxad.ad.shift``): its uses are cut, the adjoint computes nothing for it, and the derivatives
stay exact — checked against finite differences in reverse mode, forward mode and ``jvp``, on
the idiom's variants and on look-alikes that must not be cut."""
from __future__ import annotations

import numpy as np
import pytest

import sxad
from sxad.ad.shift import shift_edges
from sxad.frontend import lower
from sxad.ir import ArrayType, F64
from sxad.nn import log_softmax, softmax, softmax_cross_entropy


def lse_none(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def lse_rows(x):  # the corpus' form: keepdims, then m[:, 0]
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1)))


def lse_rows_no_keepdims(x):
    m = np.max(x, axis=1)
    return np.sum(np.log(np.sum(np.exp(x - m[:, None]), axis=1)) + m)


def lse_columns(x):  # axis 0 without keepdims: m broadcasts from the right
    m = np.max(x, axis=0)
    return np.sum(np.log(np.sum(np.exp(x - m), axis=0)) + m)


def lse_keepdims_both(x):
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(x - m), axis=1, keepdims=True)) + m)


def lse_all_keepdims(x):
    m = np.max(x, keepdims=True)
    return np.sum(m + np.log(np.sum(np.exp(x - m), keepdims=True)))


def lse_squeeze(x):
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(np.squeeze(m, axis=1) + np.log(np.sum(np.exp(x - m), axis=1)))


def lse_min_shift(x):  # any shift cancels, not only the max
    m = np.min(x, axis=1, keepdims=True)
    return np.sum(m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1)))


def log_softmax_weighted(x):
    return np.sum(np.cos(x) * log_softmax(x))


def softmax_weighted(x):
    return np.sum(np.cos(x) * softmax(x))


def cross_entropy(x):
    return softmax_cross_entropy(x, np.arange(x.shape[0]) % x.shape[1])


def shift_used_too(x):  # m is also used for itself: its own adjoint stays
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1))) + np.sum(m * m)


# Look-alikes that depend on the shift: nothing may be cut.
def wrong_axis(x):  # summed along the axis the shift varies on
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(x - m), axis=0)))


def not_added_back(x):
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(x - m), axis=1)))


def added_back_twice(x):
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(2.0 * m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1)))


def shifted_escapes(x):  # x - m is used outside the idiom
    m = np.max(x, axis=1, keepdims=True)
    d = x - m
    return np.sum(m[:, 0] + np.log(np.sum(np.exp(d), axis=1))) + np.sum(d * d)


def other_row(x):  # the shift added back is another row's
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(m[::-1, 0] + np.log(np.sum(np.exp(x - m), axis=1)))


CUT = [lse_none, lse_rows, lse_rows_no_keepdims, lse_columns, lse_keepdims_both,
       lse_all_keepdims, lse_squeeze, lse_min_shift, log_softmax_weighted, softmax_weighted,
       cross_entropy, shift_used_too]
KEPT = [wrong_axis, not_added_back, added_back_twice, shifted_escapes, other_row]


def data(fn) -> np.ndarray:
    x = np.random.default_rng(7).normal(size=(4, 3))
    x[1, 2] = x[1, 0]  # a tie for the maximum: the cut must not matter there either
    return x


def finite_difference(fn, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fn(x + e) - fn(x - e)) / (2 * h)
    return g


def cut_count(fn) -> int:
    x = data(fn)
    return len(shift_edges(lower(fn, (ArrayType(F64, x.ndim),))))


@pytest.mark.parametrize("fn", CUT, ids=lambda f: f.__name__)
def test_the_shift_is_cut(fn):
    assert cut_count(fn) >= 1


@pytest.mark.parametrize("fn", KEPT, ids=lambda f: f.__name__)
def test_look_alikes_keep_the_shift(fn):
    assert cut_count(fn) == 0


@pytest.mark.parametrize("fn", CUT + KEPT, ids=lambda f: f.__name__)
def test_derivatives_match_finite_differences(fn):
    x = data(fn)
    expected = finite_difference(fn, x)
    value, g = sxad.value_and_grad(fn)(x)
    np.testing.assert_allclose(value, fn(x), rtol=1e-12)
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(sxad.grad(fn, mode="forward")(x), expected, rtol=1e-6, atol=1e-8)
    direction = np.random.default_rng(3).normal(size=x.shape)
    _, tangent = sxad.jvp(fn, (x,), (direction,))
    np.testing.assert_allclose(tangent, np.sum(expected * direction), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fn", [lse_rows, lse_none, log_softmax_weighted, cross_entropy],
                         ids=lambda f: f.__name__)
def test_the_adjoint_does_nothing_for_the_shift(fn):
    """The maximum's own adjoint (the mask ``x == m``) is gone from the program."""
    text = sxad.source(sxad.grad(fn), data(fn), stage="adjoint-ir")
    assert "reduce_max" in text and " eq(" not in text


def test_a_shift_used_for_itself_keeps_its_adjoint():
    text = sxad.source(sxad.grad(shift_used_too), data(shift_used_too), stage="adjoint-ir")
    assert " eq(" in text


def test_hessian_of_log_sum_exp():
    """Forward over reverse: the adjoint has no idiom left, and its shift's tangent cancels."""
    x = np.random.default_rng(5).normal(size=5)
    p = np.exp(x - x.max())
    p /= p.sum()
    np.testing.assert_allclose(sxad.hessian(lse_none)(x), np.diag(p) - np.outer(p, p),
                               rtol=1e-9, atol=1e-12)


def test_gaussian_mixture_gradient():
    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from arrays.corpus_arrays import gaussian_mixture
    rng = np.random.default_rng(2)
    args = [rng.normal(size=20), rng.normal(size=3), 0.3 * rng.normal(size=3),
            rng.normal(size=3)]
    _, grads = sxad.value_and_grad(gaussian_mixture, wrt=(0, 1, 2, 3))(*args)
    for i, g in enumerate(grads):
        def f(v, i=i):
            moved = list(args)
            moved[i] = v
            return gaussian_mixture(*moved)
        np.testing.assert_allclose(g, finite_difference(f, args[i]), rtol=1e-6, atol=1e-8)
