"""A fully connected network over a flat tuple of parameters ``(W1, b1, W2, b2, …)``.

Weights are stored as the seed writes them: ``W`` of layer l has shape (units of l, units of
l − 1), so one point's pre-activation is the seed's column-vector z = W·a + b. A batch holds
its points as rows (x of shape (n, d), the numpy convention ``x[batch]`` relies on), so the
same layer on a batch is ``a @ W.T + b``: the transpose of the seed's W·aᵀ.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .activations import relu


def dense(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = W·a + b for each row ``a`` of the batch."""
    return a @ W.T + b


def mlp_forward(params: tuple[np.ndarray, ...], x: np.ndarray,
                activation: Callable[[np.ndarray], np.ndarray] = relu) -> np.ndarray:
    """The network's output for a batch ``x``: ``activation`` after every hidden layer, none
    after the last, so the result is the output layer's z (logits for the logit losses, the
    prediction itself with an identity output as in Example 3.1)."""
    a = x
    layers = len(params) // 2
    for k in range(layers - 1):
        a = activation(dense(a, params[2 * k], params[2 * k + 1]))
    return dense(a, params[2 * layers - 2], params[2 * layers - 1])
