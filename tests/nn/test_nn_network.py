"""Networks: Theorem 3.1 (identity activations collapse to one layer), ``mlp_forward`` against
the seed's Example 3.1, and the initialisers."""
from __future__ import annotations

from functools import reduce

import numpy as np
import pytest

from nn.numeric import assert_close
from sxad.nn import (dense, glorot_uniform, he_normal, identity, init_mlp, mlp_forward, relu,
                     sigmoid, tanh)

RNG_SEED = 31


def random_params(rng: np.random.Generator, sizes: list[int], biases: bool = True):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.normal(size=(fan_out, fan_in)))
        params.append(rng.normal(size=fan_out) if biases else np.zeros(fan_out))
    return tuple(params)


def product(mats: list[np.ndarray]) -> np.ndarray:
    """∏ W^(j) for mats = [W^(i), …, W^(k)], written as the seed writes it: W^(k)·…·W^(i)."""
    return reduce(lambda acc, W: W @ acc, mats)


def collapse(params) -> tuple[np.ndarray, np.ndarray]:
    """Theorem 3.1's single layer: W̄ = ∏_{i=1}^{L+1} W^(i) and
    b̄ = Σ_{i=1}^{L} (∏_{j=i+1}^{L+1} W^(j))·b^(i) + b^(L+1)."""
    Ws, bs = list(params[0::2]), list(params[1::2])
    W_bar = product(Ws)
    b_bar = sum(product(Ws[i + 1:]) @ bs[i] for i in range(len(Ws) - 1)) + bs[-1]
    return W_bar, b_bar


SIZES = [[4, 3], [4, 6, 3], [5, 7, 2, 3], [3, 8, 8, 8, 2]]  # 1 to 4 computational layers


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s) - 1}-layers")
def test_theorem_3_1_with_biases(sizes):
    """Case 2: O = W̄·x + b̄, for a batch of points (rows) and for one column vector."""
    rng = np.random.default_rng(RNG_SEED)
    params = random_params(rng, sizes)
    W_bar, b_bar = collapse(params)
    assert W_bar.shape == (sizes[-1], sizes[0])
    x = rng.normal(size=(16, sizes[0]))
    assert_close(mlp_forward(params, x, identity), x @ W_bar.T + b_bar, "modes")
    point = x[0]
    assert_close(mlp_forward(params, point, identity), W_bar @ point + b_bar, "modes")


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s) - 1}-layers")
def test_theorem_3_1_without_biases(sizes):
    """Case 1: O = W̄·x, W̄ the product of the weight matrices, and b̄ vanishes."""
    rng = np.random.default_rng(RNG_SEED)
    params = random_params(rng, sizes, biases=False)
    W_bar, b_bar = collapse(params)
    assert not np.any(b_bar)
    x = rng.normal(size=(16, sizes[0]))
    assert_close(mlp_forward(params, x, identity), x @ W_bar.T, "modes")


def test_a_nonlinear_activation_does_not_collapse():
    """The theorem's point: with tanh, no single layer reproduces the network."""
    rng = np.random.default_rng(RNG_SEED)
    params = random_params(rng, [4, 6, 3])
    W_bar, b_bar = collapse(params)
    x = rng.normal(size=(16, 4))
    assert np.max(np.abs(mlp_forward(params, x, tanh) - (x @ W_bar.T + b_bar))) > 0.1


def test_mlp_forward_is_the_layers_composed():
    rng = np.random.default_rng(RNG_SEED)
    W1, b1, W2, b2, W3, b3 = params = random_params(rng, [3, 5, 4, 2])
    x = rng.normal(size=(7, 3))
    h1 = np.maximum(W1 @ x.T + b1[:, None], 0.0)          # the seed's column-vector form
    h2 = np.maximum(W2 @ h1 + b2[:, None], 0.0)
    expected = (W3 @ h2 + b3[:, None]).T
    assert_close(mlp_forward(params, x, relu), expected, "modes")
    assert_close(mlp_forward(params, x), expected, "modes")  # relu is the default
    assert_close(dense(x, W1, b1), x @ W1.T + b1, "backends")


def test_example_3_1_forward_pass():
    """Example 3.1's 2-2-1 network: sigmoid hidden layer, identity output, its equations."""
    w11_1, w12_1, w10_1, w21_1, w22_1, w20_1 = 0.15, -0.2, 0.35, 0.25, 0.3, -0.35
    w11_2, w12_2, w10_2 = 0.4, -0.45, 0.6
    a1_0, a2_0 = 0.05, 0.1
    a1_1 = 1 / (1 + np.exp(-(w11_1 * a1_0 + w12_1 * a2_0 + w10_1)))
    a2_1 = 1 / (1 + np.exp(-(w21_1 * a1_0 + w22_1 * a2_0 + w20_1)))
    a1_2 = w11_2 * a1_1 + w12_2 * a2_1 + w10_2
    params = (np.array([[w11_1, w12_1], [w21_1, w22_1]]), np.array([w10_1, w20_1]),
              np.array([[w11_2, w12_2]]), np.array([w10_2]))
    out = mlp_forward(params, np.array([[a1_0, a2_0]]), sigmoid)
    assert out.shape == (1, 1)
    assert_close(out[0, 0], a1_2, "backends")


def test_glorot_uniform_bounds_and_variance():
    rng = np.random.default_rng(RNG_SEED)
    W = glorot_uniform(rng, 300, 200)
    limit = np.sqrt(6 / 500)
    assert W.shape == (200, 300) and np.all(np.abs(W) <= limit)
    assert np.var(W) == pytest.approx(limit ** 2 / 3, rel=0.03)  # U(−l, l) has variance l²/3


def test_he_normal_scale():
    W = he_normal(np.random.default_rng(RNG_SEED), 250, 400)
    assert W.shape == (400, 250)
    assert np.mean(W) == pytest.approx(0.0, abs=0.005)
    assert np.std(W) == pytest.approx(np.sqrt(2 / 250), rel=0.02)


def test_init_mlp_shapes_dtypes_and_seeds():
    params = init_mlp(np.random.default_rng(3), [2, 16, 8, 1], glorot_uniform, np.float32)
    assert [p.shape for p in params] == [(16, 2), (16,), (8, 16), (8,), (1, 8), (1,)]
    assert all(p.dtype == np.float32 for p in params)
    assert not any(np.any(b) for b in params[1::2])
    again = init_mlp(np.random.default_rng(3), [2, 16, 8, 1], glorot_uniform, np.float32)
    assert all(np.array_equal(p, q) for p, q in zip(params, again))
    assert mlp_forward(params, np.ones((5, 2), np.float32)).shape == (5, 1)
