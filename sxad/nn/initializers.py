"""Initial weights. These run once in plain Python before training, so they are not part of
what sxad compiles; each takes an ``np.random.Generator`` so that a seed reproduces a run."""
from __future__ import annotations

import numpy as np


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int,
                   dtype=np.float64) -> np.ndarray:
    """W (fan_out, fan_in) uniform in ±√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010): keeps
    the variance of activations and of gradients roughly equal across tanh/sigmoid layers."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_out, fan_in)).astype(dtype)


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int,
              dtype=np.float64) -> np.ndarray:
    """W (fan_out, fan_in) normal with standard deviation √(2 / fan_in) (He et al. 2015):
    ReLU zeroes half its inputs, and the factor 2 makes up for it."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in)).astype(dtype)


def init_mlp(rng: np.random.Generator, sizes, init=he_normal,
             dtype=np.float64) -> tuple[np.ndarray, ...]:
    """``(W1, b1, …, WL, bL)`` for layer widths ``sizes`` = (inputs, hidden…, outputs); the
    weights drawn by ``init``, the biases zero."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(init(rng, fan_in, fan_out, dtype))
        params.append(np.zeros(fan_out, dtype=dtype))
    return tuple(params)
