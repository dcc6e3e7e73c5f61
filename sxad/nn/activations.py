"""Activation functions, elementwise on scalars and arrays alike (``softmax`` row-wise).

Each is one numpy expression, written the way the seed chapter writes it, so that sxad can
differentiate it (the scalar ones already compile: ``sxad.grad(sigmoid)(0.3)``).
"""
from __future__ import annotations

import numpy as np

#: What the elementwise functions take and give: an array, or a scalar.
Array = np.ndarray | float


def identity(z: Array) -> Array:
    """σ(z) = z: the linear activation of Theorem 3.1 and of Example 3.1's output layer."""
    return z


def sigmoid(z: Array) -> Array:
    """σ(z) = 1 / (1 + e^(−z)); σ' = σ(1 − σ). For z below about −709 (−88 in float32),
    e^(−z) overflows to inf and σ is exactly 0, its limit (numpy may warn about the overflow).
    sxad compiles this spelling as one function (``logistic``) whose derivative is σ(1 − σ),
    0 there; where σ rounds to 1 (z above ~17 in float32, ~37 in float64) it is 0 as well."""
    return 1.0 / (1.0 + np.exp(-z))


def tanh(z: Array) -> Array:
    """tanh(z); tanh' = 1 − tanh². A function of its own so it can be passed as an
    ``activation`` like the others."""
    return np.tanh(z)


def relu(z: Array) -> Array:
    """max(z, 0); the derivative is 1 for z > 0, 0 for z < 0."""
    return np.maximum(z, 0.0)


def leaky_relu(z: Array, slope: float = 0.01) -> Array:
    """z for z > 0, slope·z otherwise (``np.where``, so any slope works, not only < 1)."""
    return np.where(z > 0.0, z, slope * z)


def softplus(z: Array) -> Array:
    """log(1 + e^z), computed as max(z, 0) + log1p(e^(−|z|)) so that no exp overflows;
    softplus' = σ."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax(z) along the last axis, as z − max − log Σ e^(z − max): subtracting the
    row maximum keeps every exponent ≤ 0, so nothing overflows."""
    shifted = z - np.max(z, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """e^(z_j) / Σ_k e^(z_k) along the last axis (each row of a batch), max-subtracted."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)
