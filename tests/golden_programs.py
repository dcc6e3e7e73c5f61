"""The functions whose generated code and traces are kept as golden files, and the check that
compares a rendering with its file (``SXAD_UPDATE_GOLDEN=1`` rewrites the files instead)."""
from __future__ import annotations

import math
import os
import pathlib

import numpy as np

GOLDEN = pathlib.Path(__file__).parent / "golden"


def assert_matches_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SXAD_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with SXAD_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; review the diff"


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
