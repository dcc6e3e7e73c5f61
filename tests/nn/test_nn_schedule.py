"""The batching schedules of sections 3.7.1–3.7.3 and the training loop that runs them."""
from __future__ import annotations

import numpy as np
import pytest

from sxad.nn import batches, train

N, BATCH = 1280, 128  # the seed's example at the end of 3.7.3


def epoch(n: int, variant: str, batch_size: int = BATCH, seed: int = 0) -> list[np.ndarray]:
    return list(batches(n, variant, batch_size, np.random.default_rng(seed)))


def assert_each_point_once(batch_list: list[np.ndarray], n: int) -> None:
    seen = np.concatenate(batch_list)
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_mbsgd_1280_points_batch_128_gives_10_batches_covering_every_point_once():
    """'1280 / 128 = 10 … every data point is seen exactly once in each epoch.'"""
    got = epoch(N, "mbsgd")
    assert len(got) == 10
    assert all(len(b) == BATCH for b in got)
    assert_each_point_once(got, N)


def test_mbsgd_reshuffles_every_epoch():
    """'The next epoch … the entire dataset is replenished, shuffled, and divided again.'"""
    rng = np.random.default_rng(1)
    first, second = (np.concatenate(list(batches(N, "mbsgd", BATCH, rng))) for _ in range(2))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(N))  # shuffled, not in data order


def test_mbsgd_keeps_a_short_last_batch():
    got = epoch(1000, "mbsgd")
    assert [len(b) for b in got] == [128] * 7 + [104]
    assert_each_point_once(got, 1000)


def test_fbgd_is_one_batch_of_everything():
    """3.7.1: 'only one set of weight updates for each epoch'."""
    got = epoch(N, "fbgd")
    assert len(got) == 1
    np.testing.assert_array_equal(got[0], np.arange(N))


def test_sgd_is_one_point_per_update_in_random_order():
    """3.7.2: 'we perform m updates per epoch', shuffling 'the training set for every epoch'."""
    got = epoch(N, "sgd")
    assert len(got) == N and all(b.shape == (1,) for b in got)
    assert_each_point_once(got, N)
    assert not np.array_equal(np.concatenate(got), np.arange(N))


def test_batches_are_reproducible_from_the_generator_seed():
    for variant in ("sgd", "mbsgd"):
        a, b = epoch(N, variant, seed=5), epoch(N, variant, seed=5)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("bad", [dict(variant="adam"), dict(variant="mbsgd", batch_size=0)])
def test_bad_schedules_fail_at_the_call(bad):
    with pytest.raises(ValueError):
        batches(N, **bad)


class Recorder:
    """A step that updates nothing and records which points each update saw."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def __call__(self, params, xb, yb) -> float:
        assert xb.ndim == 2 and xb.shape[0] == yb.shape[0]  # always a leading batch axis
        self.calls.append(xb[:, 0].astype(int))
        params[0] += 1  # the step owns the parameters and updates them in place
        return float(np.mean(yb))


@pytest.mark.parametrize("variant, updates_per_epoch", [("mbsgd", 10), ("fbgd", 1), ("sgd", N)])
def test_train_runs_the_schedule(variant, updates_per_epoch):
    x = np.arange(N, dtype=float)[:, None] * np.ones((1, 3))  # row i holds i: the index
    y = np.linspace(0.0, 1.0, N)
    step, params, epochs = Recorder(), [0], 3
    history = train(step, params, (x, y), variant, BATCH, epochs, np.random.default_rng(0))
    assert params[0] == len(step.calls) == epochs * updates_per_epoch
    for e in range(epochs):
        assert_each_point_once(step.calls[e * updates_per_epoch:(e + 1) * updates_per_epoch], N)
    # the epoch's loss weights each step's batch mean by its size: here exactly mean(y)
    np.testing.assert_allclose(history, [np.mean(y)] * epochs, rtol=1e-12)


def test_train_reports_each_epoch_and_stops_when_asked():
    x, y = np.zeros((N, 2)), np.zeros(N)
    seen: list[tuple[int, float]] = []

    def on_epoch(e: int, loss: float) -> bool:
        seen.append((e, loss))
        return e == 2
    history = train(lambda p, xb, yb: 0.5, [], (x, y), "fbgd", epochs=10, on_epoch=on_epoch)
    assert seen == [(0, 0.5), (1, 0.5), (2, 0.5)]
    assert history == [0.5, 0.5, 0.5]


def test_train_passes_every_data_array_batched():
    x, y, w = np.zeros((N, 2)), np.zeros(N), np.arange(N, dtype=float)
    got: list[int] = []
    train(lambda p, xb, yb, wb: got.append(len(wb)) or 0.0, [], (x, y, w), "mbsgd", BATCH,
          rng=np.random.default_rng(0))
    assert got == [BATCH] * 10


def test_train_rejects_data_of_different_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        train(lambda p, xb, yb: 0.0, [], (np.zeros((5, 2)), np.zeros(4)))
