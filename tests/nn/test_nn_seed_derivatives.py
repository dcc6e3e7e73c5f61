"""The loss derivatives of eq. 3.53 and 3.55, and the activations' derivatives, out of
sxad.grad in both modes. sxad differentiates scalar code today, so these use the library's
elementwise functions on scalars, called as a user would call them (inlined into the loss);
the batched losses take the same path once arrays compile."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sxad
from nn.numeric import assert_close
from sxad.nn import identity, leaky_relu, log_loss, relu, sigmoid, softplus, squared_error, tanh

MODES = ["forward", "reverse"]
POINTS = [(1.0, 0.3), (0.0, 0.8), (-0.5, 2.0)]  # (y, a)


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("y, a", POINTS)
def test_eq_3_53_squared_error(mode, y, a):
    """∂/∂a ½(y − a)² = a − y."""
    assert_close(sxad.grad(squared_error, wrt=1, mode=mode)(y, a), a - y, "modes")


def half_sum_of_squares(a1, a2, a3, y1, y2, y3):
    """Eq. 3.53's ½ Σ_j (y_j − a_j)² over three points."""
    return squared_error(y1, a1) + squared_error(y2, a2) + squared_error(y3, a3)


@pytest.mark.parametrize("mode", MODES)
def test_eq_3_53_the_sum_drops_out(mode):
    """Only the j = i term depends on a_i, so ∂/∂a_i = a_i − y_i for each i."""
    a, y = (0.3, -1.2, 2.5), (1.0, 0.5, 2.0)
    got = sxad.grad(half_sum_of_squares, wrt=(0, 1, 2), mode=mode)(*a, *y)
    assert_close(got, np.subtract(a, y), "modes")


def mean_log_loss(a1, a2, a3, y1, y2, y3):
    """Eq. 3.54 over three points."""
    return (log_loss(y1, a1) + log_loss(y2, a2) + log_loss(y3, a3)) / 3.0


@pytest.mark.parametrize("mode", MODES)
def test_eq_3_55_binary_cross_entropy(mode):
    """∂L_BCE/∂a_i = (1/n)·(a_i − y_i) / (a_i(1 − a_i))."""
    a, y = np.array([0.3, 0.9, 0.55]), np.array([1.0, 0.0, 1.0])
    got = sxad.grad(mean_log_loss, wrt=(0, 1, 2), mode=mode)(*a, *y)
    assert_close(got, (a - y) / (a * (1 - a)) / 3, "modes")
    one = sxad.grad(log_loss, wrt=1, mode=mode)(0.0, 0.8)   # n = 1
    assert_close(one, 0.8 / (0.8 * 0.2), "modes")


def bce_of_sigmoid(z, y):
    """One point's BCE of a sigmoid output a = σ(z)."""
    return log_loss(y, sigmoid(z))


def bce_of_logit(z, y):
    """The same loss in the form ``sigmoid_cross_entropy`` computes: softplus(z) − y·z."""
    return softplus(z) - y * z


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loss", [bce_of_sigmoid, bce_of_logit])
@pytest.mark.parametrize("z, y", [(0.7, 1.0), (-1.3, 0.0), (2.2, 0.0), (-0.4, 1.0)])
def test_bce_with_a_sigmoid_output_gives_a_minus_y(mode, loss, z, y):
    """Eq. 3.55 times σ' = a(1 − a): ∂L/∂z = a − y, the denominator cancels."""
    assert_close(sxad.grad(loss, mode=mode)(z, y), sig(z) - y, "modes")


def leaky_relu_02(z):
    return leaky_relu(z, slope=0.2)


# activation: its derivative in closed form
DERIVATIVES = {
    identity: lambda z: 1.0,
    sigmoid: lambda z: sig(z) * (1 - sig(z)),      # σ' = σ(1 − σ), Example 3.1
    tanh: lambda z: 1 - math.tanh(z) ** 2,
    relu: lambda z: float(z > 0),
    leaky_relu: lambda z: 1.0 if z > 0 else 0.01,
    leaky_relu_02: lambda z: 1.0 if z > 0 else 0.2,
    softplus: sig,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("f", DERIVATIVES, ids=lambda f: f.__name__)
def test_activation_derivatives(mode, f):
    g = sxad.grad(f, mode=mode)
    for z in (-1.7, -0.2, 0.4, 2.5):
        assert_close(g(z), DERIVATIVES[f](z), "modes", f"{f.__name__}'({z})")


def example_3_1_loss(w11_1, w12_1, w10_1, w21_1, w22_1, w20_1, w11_2, w12_2, w10_2, a1, a2, y):
    """Example 3.1 built from the library's pieces: sigmoid hidden layer, identity output."""
    a1_1 = sigmoid(w11_1 * a1 + w12_1 * a2 + w10_1)
    a2_1 = sigmoid(w21_1 * a1 + w22_1 * a2 + w20_1)
    a1_2 = identity(w11_2 * a1_1 + w12_2 * a2_1 + w10_2)
    return squared_error(y, a1_2)


@pytest.mark.parametrize("mode", MODES)
def test_example_3_1_gradients_from_the_library(mode):
    w = (0.15, -0.2, 0.35, 0.25, 0.3, -0.35, 0.4, -0.45, 0.6)
    a1, a2, y = 0.05, 0.1, 0.01
    h1 = sig(w[0] * a1 + w[1] * a2 + w[2])
    h2 = sig(w[3] * a1 + w[4] * a2 + w[5])
    err = w[6] * h1 + w[7] * h2 + w[8] - y        # ∂L/∂a₁⁽²⁾ = a₁⁽²⁾ − y
    d1, d2 = err * w[6] * (1 - h1) * h1, err * w[7] * (1 - h2) * h2
    expected = (d1 * a1, d1 * a2, d1, d2 * a1, d2 * a2, d2, err * h1, err * h2, err)
    got = sxad.grad(example_3_1_loss, wrt=tuple(range(9)), mode=mode)(*w, a1, a2, y)
    assert_close(got, expected, "modes")
