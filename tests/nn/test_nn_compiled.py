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


def summed_sigmoid(z):
    return np.sum(sigmoid(z))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_sigmoid_derivative_stays_finite_where_it_saturates(dtype, mode):
    """σ' = σ(1 − σ) even where e^(−z) overflows (z below −88 in float32, −709 in float64):
    sxad recognises 1/(1 + e^(−z)) as one function (``logistic``) whose rule reads only σ.
    Applying the four ops' own rules there gave ȳ/d·σ·e = 0·inf = nan, and a saturated unit
    poisoned every gradient. Checked natively and as the Python sxad.source prints, against
    σ(1 − σ) in float64 and, where it is not negligible, finite differences."""
    z = np.array([-2000.0, -800.0, -100.0, -20.0, -1.5, 0.0, 0.3, 4.0, 30.0, 800.0], dtype)
    grad = sxad.grad(summed_sigmoid, mode=mode)
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
        native = grad(z)
    assert native.dtype == dtype and np.all(np.isfinite(native))
    if mode == "reverse":
        namespace = {"np": np}
        exec(sxad.source(grad, z), namespace)
        with np.errstate(over="ignore"):
            printed = namespace["summed_sigmoid_vjp"](z, dtype(1.0))[1]
        np.testing.assert_allclose(native, printed, rtol=1e-6 if dtype is np.float32 else 1e-14)
    np.testing.assert_allclose(native, s * (1.0 - s), rtol=1e-5 if dtype is np.float32 else 1e-12,
                               atol=1e-7 if dtype is np.float32 else 1e-15)
    moderate = np.abs(z) < 5
    h = 1e-3 if dtype is np.float32 else 1e-6
    wide = z.astype(np.float64)
    with np.errstate(over="ignore"):
        fd = (1 / (1 + np.exp(-(wide + h))) - 1 / (1 + np.exp(-(wide - h)))) / (2 * h)
    np.testing.assert_allclose(native[moderate], fd[moderate], rtol=1e-4)


def test_a_sigmoid_layer_keeps_only_its_activation():
    """The adjoint of a sigmoid layer reads σ, not e^(−z) and 1 + e^(−z): the forward pass
    computes one array per layer (``sxad.source`` shows no exp in the derivative's use)."""
    z = np.zeros((4, 3))
    text = sxad.source(sxad.grad(summed_sigmoid), z)
    assert "np.exp(" in text and text.count("np.exp(") == 1, text
    assert "* (1.0 - " in text, text
