"""Plain-numpy oracles for the sxad.nn tests: finite differences on arrays (the 4-point stencil
of tests/oracles.py, one element at a time), and the tolerance each kind of check uses."""
from __future__ import annotations

from typing import Callable

import numpy as np

from oracles import assert_close
from tolerances import FD_STEP

__all__ = ["assert_close", "elementwise_derivative", "numeric_gradient"]


def _step(x: np.ndarray) -> np.ndarray:
    return FD_STEP * np.maximum(1.0, np.abs(x))


def elementwise_derivative(f: Callable, z: np.ndarray) -> np.ndarray:
    """f'(z) for an elementwise f, every element at once."""
    h = _step(z)
    return (8 * (f(z + h) - f(z - h)) - (f(z + 2 * h) - f(z - 2 * h))) / (12 * h)


def numeric_gradient(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """∂f/∂x for a scalar-valued f of an array, one element at a time."""
    grad = np.zeros_like(x, dtype=float)
    for i in np.ndindex(x.shape):
        h = _step(x[i])

        def at(delta: float) -> float:
            moved = x.astype(float)
            moved[i] += delta
            return float(f(moved))
        grad[i] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
    return grad
