"""Parameter updates as pure functions: each takes a parameter, its gradient and the
optimizer's state, and returns the new parameter and state without touching its arguments.

To update in place (a training step that owns its arrays), assign into the arrays:
``W[:], vW[:] = sgd_momentum_update(W, gW, vW, lr, 0.9)``.
"""
from __future__ import annotations

import numpy as np


def sgd_update(w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """w − α·g: eq. 3.57 (and 3.89/3.91/3.94, given the gradient of the batch's mean loss)."""
    return w - lr * g


def sgd_momentum_update(w: np.ndarray, g: np.ndarray, v: np.ndarray, lr: float,
                        momentum: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Classical momentum: v ← μ·v − α·g, w ← w + v. Returns (w, v); start with v = 0."""
    v = momentum * v - lr * g
    return w + v, v


def adam_update(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999,
                eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam (Kingma & Ba 2015) for the ``t``-th update (t = 1, 2, …): moving averages of g and
    g², each divided by 1 − βᵗ so that their start at 0 does not bias the first steps.
    Returns (w, m, v); start with m = v = 0."""
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    m_hat = m / (1.0 - b1 ** t)
    v_hat = v / (1.0 - b2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
