"""Loss functions. The seed's losses take ``(y, a)`` in its order (the true value, then the
prediction); the logit losses take ``(logits, labels)``.

Convention (seed eq. 3.52.2 with c = ½, eq. 3.56 and 3.87): the loss of one data point is
summed over its output units, and a batch's loss is the *mean over its data points* (axis 0).
So the per-point derivative is eq. 3.53's a − y, and the batch loss's is (a − y)/n; a batch's
gradient is the mean of the per-point gradients, as eq. 3.94 wants.
"""
from __future__ import annotations

import numpy as np

from .activations import Array, log_softmax, softplus


def squared_error(y: Array, a: Array) -> Array:
    """½(y − a)², elementwise: one point's quadratic loss (eq. 3.53: ∂/∂a = a − y)."""
    return 0.5 * (y - a) ** 2


def mse(y: np.ndarray, a: np.ndarray) -> float:
    """(1/n) Σ_j ½(y_j − a_j)² over the n data points (rows) of ``a``: eq. 3.52.2 with
    c = ½, averaged as in eq. 3.87. For one output per point it is ½·mean((y − a)²)."""
    return np.sum(squared_error(y, a)) / a.shape[0]


def one_hot_like(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Targets for ``mse`` on a classification task: row i is 1 at column ``labels[i]`` and 0
    elsewhere, shaped and typed like ``logits`` (n, k)."""
    targets = np.zeros_like(logits)
    targets[np.arange(logits.shape[0]), labels] = 1.0
    return targets


def log_loss(y: Array, a: Array) -> Array:
    """−(y log a + (1 − y) log(1 − a)), elementwise: one point's binary cross-entropy, with
    ``a`` the predicted probability of class 1 (eq. 3.55: ∂/∂a = (a − y) / (a(1 − a)))."""
    return -(y * np.log(a) + (1.0 - y) * np.log(1.0 - a))


def binary_cross_entropy(y: np.ndarray, a: np.ndarray) -> float:
    """Eq. 3.54: the mean of ``log_loss`` over the n data points. ``a`` must lie in (0, 1);
    when ``a`` comes out of a sigmoid, ``sigmoid_cross_entropy`` on the logits is safer."""
    return np.sum(log_loss(y, a)) / a.shape[0]


def sigmoid_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """``binary_cross_entropy(labels, sigmoid(logits))`` without forming σ: per point
    softplus(z) − y·z, which never takes the log of 0. ∂/∂z = (σ(z) − y)/n."""
    return np.sum(softplus(logits) - labels * logits) / logits.shape[0]


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """−(1/n) Σ_i log softmax(z_i)[y_i] for logits (n, k) and integer labels (n,), in
    log-sum-exp form. ∂/∂z = (softmax(z) − onehot(y))/n."""
    n = logits.shape[0]
    log_p = log_softmax(logits)
    return -np.sum(log_p[np.arange(n), labels]) / n
