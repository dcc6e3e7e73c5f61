"""examples/mlp_digits.py end to end: the compiled training step reaches ≥ 97% test accuracy on
scikit-learn's digits for a fixed seed, every flag combination trains, the curves are written.
The step is one compiled function (sxad.jit over sxad.value_and_grad); its gradients are checked
against a hand-written numpy backprop here, and through sxad.nn's own tests elsewhere."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is in the dev extra: pip install -e '.[dev]'")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import mlp_digits  # noqa: E402
from bench_mlp import make_problem, numpy_step  # noqa: E402


def test_reaches_97_percent_on_digits() -> None:
    result = mlp_digits.run(mlp_digits.parse_args(["--plot", "", "--quiet", "--seed", "0"]))
    assert result["accuracy"] >= 0.97, result["accuracy"]
    assert result["losses"][-1] < 0.1 * result["losses"][0]


def test_one_step_equals_hand_written_backprop() -> None:
    """The compiled step's update equals the seed's backpropagation written out in numpy."""
    params, x, y = make_problem((8, 6, 5, 3), 7, seed=1)
    ours = tuple(p.copy() for p in params)
    theirs = [p.copy() for p in params]
    step = mlp_digits.make_step(3, "sigmoid", "softmax_ce", "sgd")
    loss = step(ours, (), x, y, np.float32(0.1))
    want = numpy_step(theirs, x, y, np.float32(0.1))
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    for got, expected in zip(ours, theirs):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("flags", [
    ["--optimizer", "momentum", "--activation", "tanh"],
    ["--optimizer", "adam", "--activation", "relu", "--hidden", "32", "16"],
    ["--variant", "fbgd", "--activation", "leaky_relu", "--lr", "0.5"],
    ["--variant", "sgd", "--loss", "mse", "--lr", "0.1"],
])
def test_flag_combinations_train(flags, tmp_path) -> None:
    path = str(tmp_path / "curves.png")
    result = mlp_digits.run(mlp_digits.parse_args(
        flags + ["--epochs", "3", "--plot", path, "--quiet", "--seed", "1"]))
    assert result["losses"][-1] < result["losses"][0], result["losses"]
    assert result["accuracy"] > 0.5
    with open(path, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
