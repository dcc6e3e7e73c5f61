"""End to end: a small MLP learns a 2-class problem through ``train`` and the optimizers.

The gradient comes from a backward pass written by hand *here*, as the oracle (checked against
finite differences below); the library has none. When arrays compile, sxad's gradient of the
same loss replaces ``backward`` and nothing else changes.
"""
from __future__ import annotations

import numpy as np
import pytest

from nn.numeric import assert_close, numeric_gradient
from sxad.nn import (adam_update, init_mlp, mlp_forward, sgd_momentum_update, sigmoid,
                     sigmoid_cross_entropy, tanh, train)

N, BATCH, HIDDEN = 1280, 128, 16
RNG_SEED = 2024


def disc_problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points of a standard normal in the plane; class 1 inside the circle of radius √(2 ln 2),
    which holds half of them. No single layer separates the classes (Theorem 3.1's point)."""
    x = rng.normal(size=(N, 2))
    y = (np.sum(x * x, axis=1) < 2 * np.log(2.0)).astype(float)[:, None]  # (n, 1) like the logits
    return x, y


def loss_fn(params, x, y):
    return sigmoid_cross_entropy(mlp_forward(params, x, tanh), y)


def backward(params, x, y):
    """∂loss/∂params for one tanh hidden layer and a sigmoid output, by the chain rule of
    section 3.6: δ⁽²⁾ = (a − y)/n (eq. 3.55 with a sigmoid output), δ⁽¹⁾ = δ⁽²⁾W₂ ⊙ (1 − h²)."""
    W1, b1, W2, b2 = params
    h = np.tanh(x @ W1.T + b1)
    delta2 = (sigmoid(h @ W2.T + b2) - y) / len(x)
    delta1 = (delta2 @ W2) * (1.0 - h * h)
    return delta1.T @ x, delta1.sum(axis=0), delta2.T @ h, delta2.sum(axis=0)


def accuracy(params, x, y) -> float:
    return float(np.mean((mlp_forward(params, x, tanh) > 0.0) == (y > 0.5)))


def momentum_step(lr: float, momentum: float, params):
    velocity = [np.zeros_like(p) for p in params]

    def step(params, xb, yb):
        loss = loss_fn(params, xb, yb)
        for p, g, v in zip(params, backward(params, xb, yb), velocity):
            p[:], v[:] = sgd_momentum_update(p, g, v, lr, momentum)
        return loss
    return step


def adam_step(lr: float, params):
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = [0]

    def step(params, xb, yb):
        loss = loss_fn(params, xb, yb)
        t[0] += 1
        for p, g, mp, vp in zip(params, backward(params, xb, yb), m, v):
            p[:], mp[:], vp[:] = adam_update(p, g, mp, vp, t[0], lr)
        return loss
    return step


def start(seed: int = RNG_SEED):
    rng = np.random.default_rng(seed)
    x, y = disc_problem(rng)
    return rng, x, y, init_mlp(rng, [2, HIDDEN, 1])


def test_the_oracle_backward_pass_is_the_gradient():
    rng, x, y, params = start()
    for p in params:
        p += rng.normal(scale=0.3, size=p.shape)  # nonzero biases too
    x, y = x[:20], y[:20]
    for k, grad in enumerate(backward(params, x, y)):
        def loss_of(value, k=k):
            moved = list(params)
            moved[k] = value
            return loss_fn(moved, x, y)
        assert_close(grad, numeric_gradient(loss_of, params[k]), "finite-difference")


def test_mbsgd_with_momentum_learns_the_disc():
    rng, x, y, params = start()
    before = accuracy(params, x, y)
    history = train(momentum_step(0.5, 0.9, params), params, (x, y), "mbsgd", BATCH, 60, rng)
    assert len(history) == 60
    assert history[-1] < 0.25 * history[0]
    assert accuracy(params, x, y) > 0.96 > before + 0.2


def test_adam_learns_the_disc():
    rng, x, y, params = start()
    history = train(adam_step(0.02, params), params, (x, y), "mbsgd", BATCH, 60, rng)
    assert history[-1] < 0.25 * history[0]
    assert accuracy(params, x, y) > 0.96


@pytest.mark.parametrize("variant, epochs, lr", [("fbgd", 60, 0.5), ("sgd", 2, 0.01)])
def test_fbgd_and_sgd_learn_too(variant, epochs, lr):
    rng, x, y, params = start()
    history = train(momentum_step(lr, 0.9, params), params, (x, y), variant, BATCH, epochs, rng)
    assert history[-1] < 0.5 * history[0]
    assert accuracy(params, x, y) > 0.9
