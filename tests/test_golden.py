"""Golden files of the generated adjoint source, reviewed as diffs.

Regenerate after an intended change with ``SXAD_UPDATE_GOLDEN=1 python -m pytest
tests/test_golden.py`` and review ``git diff tests/golden``.
"""
from __future__ import annotations

import math
import os
import pathlib

import numpy as np
import pytest

import sxad

GOLDEN = pathlib.Path(__file__).parent / "golden"


def seed(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def eq_3_44(x):
    a = np.exp(x)
    b = a ** 2
    c = a + b
    d = np.exp(c)
    e = np.sin(c)
    return d + e


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def power_sum(x, n):
    s = 0.0
    p = 1.0
    for i in range(n):
        p = p * x
        s = s + p / (i + 1)
    return s


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


def piecewise(x, y):
    if x > y:
        r = x * np.exp(-y)
    elif x > 0:
        r = np.sqrt(x) + y
    else:
        r = -x * y
    return r


def nested_loops(x, n):
    s = x
    for i in range(n):
        for j in range(i):
            s = np.sin(s) * x + j
    return s


def kinks(x, y):
    return max(x, y) * abs(x - y) + min(x * x, 1.0)


def softplus_loss(w, b, x, y):
    z = w * x + b
    return math.log1p(math.exp(z)) - y * z


def early_exit(x, n):
    for i in range(n):
        x = x * 1.5
        if x > 10.0:
            return x - 10.0
    return x


def mse_2_2_1(w1, w2, v1, v2, a1, y):
    h1 = 1.0 / (1.0 + np.exp(-w1 * a1))
    h2 = 1.0 / (1.0 + np.exp(-w2 * a1))
    out = v1 * h1 + v2 * h2
    return 0.5 * (y - out) ** 2


CASES = {
    "seed": (seed, (2.0, 5.0), (0, 1)),
    "eq_3_44": (eq_3_44, (0.3,), 0),
    "sigmoid": (sigmoid, (0.5,), 0),
    "power_sum": (power_sum, (0.9, 4), 0),
    "newton_sqrt": (newton_sqrt, (2.0,), 0),
    "piecewise": (piecewise, (0.5, 1.0), (0, 1)),
    "nested_loops": (nested_loops, (0.7, 3), 0),
    "kinks": (kinks, (0.5, 1.5), (0, 1)),
    "softplus_loss": (softplus_loss, (0.5, 0.1, 2.0, 1.0), (0, 1)),
    "early_exit": (early_exit, (1.2, 8), 0),
    "mse_2_2_1": (mse_2_2_1, (0.1, 0.2, 0.3, 0.4, 0.5, 1.0), (0, 1, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_adjoint_matches_golden_file(name):
    fn, args, wrt = CASES[name]
    text = sxad.source(fn, *args, wrt=wrt)
    path = GOLDEN / f"{name}.py"
    if os.environ.get("SXAD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with SXAD_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"generated adjoint of {name} changed; review the diff"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_program_runs_and_agrees_with_grad(name):
    fn, args, wrt = CASES[name]
    namespace = {"np": np}
    exec((GOLDEN / f"{name}.py").read_text(), namespace)
    program = next(v for k, v in namespace.items() if k.endswith("_vjp"))
    with np.errstate(all="ignore"):
        out = program(*(np.float64(a) if isinstance(a, float) else a for a in args), 1.0)
    expected = sxad.grad(fn, wrt=wrt)(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    np.testing.assert_allclose(out[1:], expected, rtol=1e-12)
