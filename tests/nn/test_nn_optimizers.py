"""The optimizer updates: their formulas, purity, the in-place idiom, and convergence on a
quadratic."""
from __future__ import annotations

import numpy as np

from nn.numeric import assert_close
from sxad.nn import adam_update, sgd_momentum_update, sgd_update

RNG_SEED = 5


def test_sgd_update_eq_3_57():
    w, g = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    assert_close(sgd_update(w, g, 0.1), [0.95, -2.4], "backends")


def test_momentum_velocity_under_a_constant_gradient():
    """With g constant, v_t = −α·g·(1 − μᵗ)/(1 − μ): a geometric sum of the past steps."""
    w, v, g = np.zeros(3), np.zeros(3), np.array([1.0, -2.0, 0.5])
    lr, mu = 0.1, 0.9
    for t in range(1, 6):
        w, v = sgd_momentum_update(w, g, v, lr, mu)
        assert_close(v, -lr * g * (1 - mu ** t) / (1 - mu), "backends")


def test_adam_first_step_is_lr_times_sign():
    """After bias correction m̂₁ = g and v̂₁ = g², so the first step is α·g/(|g| + ε)."""
    w, g = np.zeros(4), np.array([3.0, -0.01, 250.0, -7.0])
    new, m, v = adam_update(w, g, np.zeros(4), np.zeros(4), 1, lr=0.01)
    assert_close(new, -0.01 * g / (np.abs(g) + 1e-8), "modes")
    assert np.allclose(new, -0.01 * np.sign(g), rtol=1e-5)  # ε is negligible unless |g| is tiny
    assert_close(m, 0.1 * g, "backends")
    assert_close(v, 0.001 * g * g, "backends")


def test_updates_are_pure_and_work_in_place():
    rng = np.random.default_rng(RNG_SEED)
    W, g, v = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    before = W.copy(), g.copy(), v.copy()
    new_W, new_v = sgd_momentum_update(W, g, v, 0.1, 0.9)
    for now, then in zip((W, g, v), before):
        np.testing.assert_array_equal(now, then)  # arguments untouched
    buffers = W, v
    W[:], v[:] = sgd_momentum_update(W, g, v, 0.1, 0.9)  # the in-place idiom
    assert buffers[0] is W and buffers[1] is v
    np.testing.assert_array_equal(W, new_W)
    np.testing.assert_array_equal(v, new_v)


def quadratic_minimum_reached(update) -> np.ndarray:
    """Minimise ½(w − c)ᵀ diag(h) (w − c) from w = 0; the gradient is h ⊙ (w − c)."""
    c, h = np.array([1.0, -2.0, 3.0]), np.array([1.0, 4.0, 0.5])
    w = np.zeros(3)
    state = (np.zeros(3), np.zeros(3))
    for t in range(1, 2001):
        w, state = update(w, h * (w - c), state, t)
    return w - c


def test_momentum_and_adam_minimise_a_quadratic():
    def momentum(w, g, state, t):
        w, v = sgd_momentum_update(w, g, state[0], 0.05, 0.9)
        return w, (v, state[1])

    def adam(w, g, state, t):
        w, m, v = adam_update(w, g, state[0], state[1], t, lr=0.05)
        return w, (m, v)
    for update in (momentum, adam):
        assert np.max(np.abs(quadratic_minimum_reached(update))) < 1e-4
