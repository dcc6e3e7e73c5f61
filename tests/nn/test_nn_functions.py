"""Activations and losses against straightforward reference formulas, and their known
derivatives against finite differences, all in plain numpy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nn.numeric import assert_close, elementwise_derivative, numeric_gradient
from sxad.nn import (binary_cross_entropy, identity, leaky_relu, log_loss, log_softmax, mse,
                     relu, sigmoid, sigmoid_cross_entropy, softmax, softmax_cross_entropy,
                     softplus, squared_error, tanh)

RNG_SEED = 11


def away_from_zero(rng: np.random.Generator, shape) -> np.ndarray:
    """Points at least 0.1 from the kinks of relu and leaky relu."""
    return rng.uniform(0.1, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# name: (function, reference value of one element, known derivative as a function of z)
ACTIVATIONS = {
    "identity": (identity, lambda z: z, lambda z: np.ones_like(z)),
    "sigmoid": (sigmoid, sig, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    "tanh": (tanh, math.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (relu, lambda z: max(z, 0.0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (leaky_relu, lambda z: z if z > 0 else 0.01 * z,
                   lambda z: np.where(z > 0, 1.0, 0.01)),
    "leaky_relu_0.2": (lambda z: leaky_relu(z, 0.2), lambda z: z if z > 0 else 0.2 * z,
                       lambda z: np.where(z > 0, 1.0, 0.2)),
    "softplus": (softplus, lambda z: math.log1p(math.exp(z)), sigmoid),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_values_and_derivatives(name):
    f, reference, derivative = ACTIVATIONS[name]
    z = away_from_zero(np.random.default_rng(RNG_SEED), (6, 5))
    expected = np.vectorize(reference)(z)
    assert_close(f(z), expected, "backends")
    assert f(z).shape == z.shape
    assert_close(f(0.7), reference(0.7), "backends")  # scalars too
    assert_close(elementwise_derivative(f, z), derivative(z), "finite-difference")


def test_saturating_activations_stay_finite():
    z = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(over="ignore"):  # e^1000 overflows to inf inside σ, giving its limit 0
        s = sigmoid(z)
    np.testing.assert_array_equal(s[[0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(softplus(z)[[0, 4]], [0.0, 1000.0])


def test_softmax_rows():
    z = np.random.default_rng(RNG_SEED).normal(size=(4, 5))
    p = softmax(z)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert_close(p, expected, "backends")
    assert_close(p.sum(axis=1), np.ones(4), "backends")
    assert_close(softmax(z + 100.0), p, "backends")  # shift-invariant
    assert_close(softmax(z[1]), p[1], "backends")     # one vector is one row
    assert_close(log_softmax(z), np.log(p), "backends")
    big = softmax(np.array([[1000.0, 0.0, 1000.0]]))  # max-subtracted: no overflow
    np.testing.assert_allclose(big, [[0.5, 0.0, 0.5]])


def test_softmax_jacobian():
    """∂p/∂z applied to a direction t is p ⊙ (t − ⟨p, t⟩) row by row: diag(p) − p·pᵀ."""
    rng = np.random.default_rng(RNG_SEED)
    z, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    p = softmax(z)
    along = elementwise_derivative(lambda s: softmax(z + s * t), np.zeros((3, 4)))
    expected = p * (t - np.sum(p * t, axis=1, keepdims=True))
    assert_close(along, expected, "finite-difference")


# --------------------------------------------------------------------------- losses

def test_mse_is_half_the_mean_square_eq_3_52():
    rng = np.random.default_rng(RNG_SEED)
    y, a = rng.normal(size=8), rng.normal(size=8)
    assert_close(mse(y, a), 0.5 * np.mean((y - a) ** 2), "backends")
    assert_close(squared_error(y, a), 0.5 * (y - a) ** 2, "backends")
    # several outputs per point: summed within a point, averaged over the points
    Y, A = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    assert_close(mse(Y, A), np.mean([0.5 * np.sum((Y[j] - A[j]) ** 2) for j in range(8)]),
                 "backends")


def test_mse_gradient_eq_3_53():
    """∂/∂a_i of the mean of ½(y_j − a_j)² is (a_i − y_i)/n."""
    rng = np.random.default_rng(RNG_SEED)
    for shape in [(8,), (8, 3)]:
        y, a = rng.normal(size=shape), rng.normal(size=shape)
        assert_close(numeric_gradient(lambda s: mse(y, s), a), (a - y) / shape[0],
                     "finite-difference")


def test_binary_cross_entropy_eq_3_54():
    rng = np.random.default_rng(RNG_SEED)
    y, a = rng.integers(0, 2, size=8).astype(float), rng.uniform(0.05, 0.95, size=8)
    n = len(y)
    literal = -sum(y[j] * math.log(a[j]) + (1 - y[j]) * math.log(1 - a[j]) for j in range(n)) / n
    assert_close(binary_cross_entropy(y, a), literal, "backends")
    assert_close(log_loss(y, a), -(y * np.log(a) + (1 - y) * np.log(1 - a)), "backends")


def test_binary_cross_entropy_gradient_eq_3_55():
    """∂L_BCE/∂a_i = (1/n)·(a_i − y_i) / (a_i(1 − a_i))."""
    rng = np.random.default_rng(RNG_SEED)
    y, a = rng.integers(0, 2, size=8).astype(float), rng.uniform(0.05, 0.95, size=8)
    expected = (a - y) / (a * (1 - a)) / len(a)
    assert_close(numeric_gradient(lambda s: binary_cross_entropy(y, s), a), expected,
                 "finite-difference")


def test_sigmoid_cross_entropy_is_bce_of_the_sigmoid():
    rng = np.random.default_rng(RNG_SEED)
    z, y = rng.normal(scale=3.0, size=(8, 1)), rng.integers(0, 2, size=(8, 1)).astype(float)
    assert_close(sigmoid_cross_entropy(z, y), binary_cross_entropy(y, sigmoid(z)), "modes")
    # the seed's closed form for a sigmoid output, averaged over the batch: (a − y)/n
    assert_close(numeric_gradient(lambda s: sigmoid_cross_entropy(s, y), z),
                 (sigmoid(z) - y) / len(z), "finite-difference")
    # finite where σ rounds to 0 or 1 and the plain form would take log(0)
    extreme = sigmoid_cross_entropy(np.array([-800.0, 800.0]), np.array([1.0, 0.0]))
    assert_close(extreme, 800.0, "backends")


def test_softmax_cross_entropy():
    rng = np.random.default_rng(RNG_SEED)
    z, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    literal = -np.mean([math.log(p[i, labels[i]]) for i in range(6)])
    assert_close(softmax_cross_entropy(z, labels), literal, "modes")
    one_hot = np.eye(4)[labels]
    assert_close(numeric_gradient(lambda s: softmax_cross_entropy(s, labels), z),
                 (p - one_hot) / 6, "finite-difference")
    # log-sum-exp form: huge logits give the exact answer, not inf or nan
    huge = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    assert_close(softmax_cross_entropy(huge, np.array([0, 0])), 500.0, "backends")
