"""The seed chapter's network results with sxad.nn compiled on arrays: Example 3.1's gradients in
matrix form against the seed's closed forms, Theorem 3.1 through sxad.jit, and the loss
derivatives of eq. 3.53 and 3.55 from sxad.grad on arrays, in both modes."""
from __future__ import annotations

import numpy as np
import pytest

import sxad
from nn.numeric import assert_close
from nn.test_nn_network import SIZES, collapse, random_params
from sxad.nn import binary_cross_entropy, identity, mlp_forward, mse, sigmoid

# Example 3.1 (as tests/ad/test_seed.py writes it with scalars): W⁽¹⁾ is 2×2, W⁽²⁾ is 1×2.
W1 = np.array([[0.15, -0.2], [0.25, 0.3]])
B1 = np.array([0.35, -0.35])
W2 = np.array([[0.4, 0.45]])
B2 = np.array([0.6])
X = np.array([[0.05, 0.1]])          # one data point, as a row
Y = np.array([[0.01]])


def example_3_1_loss(W1, b1, W2, b2, x, y):
    """Sigmoid hidden layer, identity output, ½(y − a)² (eq. 3.52 with c = ½, one point)."""
    return mse(y, mlp_forward((W1, b1, W2, b2), x, sigmoid))


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_example_3_1_gradients_in_matrix_form(mode):
    """Backpropagation as the seed derives it: δ⁽²⁾ = a⁽²⁾ − y, ∂L/∂W⁽²⁾ = δ⁽²⁾ a⁽¹⁾ᵀ,
    δ⁽¹⁾ = W⁽²⁾ᵀ δ⁽²⁾ ⊙ a⁽¹⁾(1 − a⁽¹⁾), ∂L/∂W⁽¹⁾ = δ⁽¹⁾ xᵀ, and the biases get the δs."""
    grads = sxad.grad(example_3_1_loss, wrt=(0, 1, 2, 3), mode=mode)(W1, B1, W2, B2, X, Y)
    a1 = 1.0 / (1.0 + np.exp(-(W1 @ X[0] + B1)))
    a2 = W2 @ a1 + B2
    delta2 = a2 - Y[0]
    delta1 = (W2.T @ delta2) * a1 * (1.0 - a1)
    expected = (np.outer(delta1, X[0]), delta1, np.outer(delta2, a1), delta2)
    for got, want, name in zip(grads, expected, ("W1", "b1", "W2", "b2")):
        assert got.shape == want.shape, name
        assert_close(got, want, "modes", name)


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s) - 1}-layers")
def test_theorem_3_1_compiled(sizes):
    """A compiled identity-activation network equals the collapsed single layer W̄x + b̄."""
    rng = np.random.default_rng(7)
    params = random_params(rng, sizes)
    forward = sxad.jit(lambda_free_forward)
    x = rng.normal(size=(5, sizes[0]))
    W_bar, b_bar = collapse(params)
    assert_close(forward(params, x), x @ W_bar.T + b_bar, "modes")


def lambda_free_forward(params, x):
    return mlp_forward(params, x, identity)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_eq_3_53_and_3_55_on_arrays(mode):
    """∂/∂a of the batch losses: (a − y)/n for MSE (eq. 3.53) and (a − y)/(a(1 − a))/n for
    binary cross-entropy (eq. 3.55), n data points."""
    rng = np.random.default_rng(3)
    y = rng.uniform(0.0, 1.0, size=(6, 1))
    a = rng.uniform(0.1, 0.9, size=(6, 1))
    n = a.shape[0]
    assert_close(sxad.grad(mse, wrt=1, mode=mode)(y, a), (a - y) / n, "modes")
    assert_close(sxad.grad(binary_cross_entropy, wrt=1, mode=mode)(y, a),
                 (a - y) / (a * (1.0 - a)) / n, "modes")
