"""The training loop and its batching schedule: the seed's full-batch GD (3.7.1), SGD (3.7.2)
and mini-batch SGD (3.7.3).

The loop is plain Python that runs once per update; the work of an update is the user's
``step(params, xb, yb) -> loss``, which updates ``params`` in place (that is the function sxad
compiles). Every batch is an array of indices, so a batch always has a leading batch axis (SGD
gives batches of one point) and one compiled step serves all three variants.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

VARIANTS = ("fbgd", "sgd", "mbsgd")


def batches(n: int, variant: str = "mbsgd", batch_size: int = 32,
            rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """The index batches of one epoch over n points, one per update:

    - ``"fbgd"``: one batch of all n points (one update per epoch);
    - ``"sgd"``: n batches of one point, in a fresh random order;
    - ``"mbsgd"``: the points reshuffled, then cut into batches of ``batch_size`` (the last
      one shorter when ``batch_size`` does not divide n).

    Shuffling and cutting samples without replacement: each point is in exactly one batch.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    if variant == "mbsgd" and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if variant == "fbgd":
        return iter([np.arange(n)])
    order = (rng if rng is not None else np.random.default_rng()).permutation(n)
    size = 1 if variant == "sgd" else batch_size
    return (order[start:start + size] for start in range(0, n, size))


def train(step: Callable[..., float], params, data: Sequence[np.ndarray],
          variant: str = "mbsgd", batch_size: int = 32, epochs: int = 1,
          rng: np.random.Generator | None = None,
          on_epoch: Callable[[int, float], bool | None] | None = None) -> list[float]:
    """Run ``epochs`` epochs of ``step(params, xb, yb)`` over ``data = (x, y)`` (or any tuple
    of arrays with the points along axis 0, each passed to ``step`` as its batch) and return
    each epoch's loss: the mean of the step losses weighted by batch size, i.e. the mean
    per-point loss when ``step`` returns its batch's mean. ``on_epoch(epoch, loss)`` is called
    after each epoch; returning True stops training early."""
    n = len(data[0])
    if any(len(d) != n for d in data):
        raise ValueError(f"data arrays differ in length: {[len(d) for d in data]}")
    rng = rng if rng is not None else np.random.default_rng()
    history = []
    for epoch in range(epochs):
        total = 0.0
        for idx in batches(n, variant, batch_size, rng):
            total += float(step(params, *[d[idx] for d in data])) * len(idx)
        history.append(total / n)
        if on_epoch is not None and on_epoch(epoch, history[-1]):
            break
    return history
