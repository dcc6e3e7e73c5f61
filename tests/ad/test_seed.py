"""The seed chapter's worked numbers, through the public API."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sxad
from oracles import assert_close


def seed_f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def test_table_3_1_forward_mode():
    """Table 3.1: y = 11.652 and ẏ = 5.5 for ẋ₁ = 1 at (2, 5)."""
    y, y_dot = sxad.jvp(seed_f, (2.0, 5.0), (1.0, 0.0))
    assert_close(y, 11.652, "seed")
    assert_close(y_dot, 5.5, "seed")
    assert sxad.grad(seed_f, wrt=0, mode="forward")(2.0, 5.0) == pytest.approx(5.5)


def test_table_3_2_reverse_mode():
    """Table 3.2: x̄₁ = 5.5 and x̄₂ = 1.716 in one reverse pass."""
    value, (x1_bar, x2_bar) = sxad.value_and_grad(seed_f, wrt=(0, 1))(2.0, 5.0)
    assert_close(value, 11.652, "seed")
    assert_close(x1_bar, 5.5, "seed")
    assert_close(x2_bar, 1.716, "seed")
    exact = (1 / 2.0 + 5.0, 2.0 - math.cos(5.0))
    assert_close((x1_bar, x2_bar), exact, "modes")


def test_mission_example_decorator():
    @sxad.grad
    def f(x1, x2):
        return np.log(x1) + x1 * x2 - np.sin(x2)
    assert f(2.0, 5.0) == pytest.approx(5.5)
    text = sxad.source(f)
    assert "def " in text and "x1_bar" in text


def eq_3_43(x):
    return np.exp(np.exp(x) + np.exp(x) ** 2) + np.sin(np.exp(x) + np.exp(x) ** 2)


def eq_3_44(x):
    a = np.exp(x)
    b = a ** 2
    c = a + b
    d = np.exp(c)
    e = np.sin(c)
    return d + e


@pytest.mark.parametrize("fn", [eq_3_43, eq_3_44])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_equations_3_43_and_3_44(fn, mode):
    """f'(x) = (exp(c) + cos(c))·(a + 2a²) with a = exp(x), c = a + a²."""
    x = 0.3
    a = math.exp(x)
    c = a + a * a
    expected = (math.exp(c) + math.cos(c)) * (a + 2 * a * a)
    assert_close(sxad.grad(fn, mode=mode)(x), expected, "modes")


def example_3_1_loss(w11_1, w12_1, w10_1, w21_1, w22_1, w20_1, w11_2, w12_2, w10_2, a1, a2, y):
    """The 2-2-1 network of Example 3.1: sigmoid hidden layer, identity output, ½(y − a)²."""
    z1 = w11_1 * a1 + w12_1 * a2 + w10_1
    h1 = 1.0 / (1.0 + np.exp(-z1))
    z2 = w21_1 * a1 + w22_1 * a2 + w20_1
    h2 = 1.0 / (1.0 + np.exp(-z2))
    out = w11_2 * h1 + w12_2 * h2 + w10_2
    return 0.5 * (y - out) ** 2


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_example_3_1_closed_form_gradients(mode):
    w = dict(w11_1=0.15, w12_1=-0.2, w10_1=0.35, w21_1=0.25, w22_1=0.3, w20_1=-0.35,
             w11_2=0.4, w12_2=0.45, w10_2=0.6)
    a1, a2, y = 0.05, 0.1, 0.01
    args = (*w.values(), a1, a2, y)
    names = tuple(w)
    grads = dict(zip(names, sxad.grad(example_3_1_loss, wrt=names, mode=mode)(*args)))

    def sig(z):
        return 1 / (1 + math.exp(-z))
    h1 = sig(w["w11_1"] * a1 + w["w12_1"] * a2 + w["w10_1"])
    h2 = sig(w["w21_1"] * a1 + w["w22_1"] * a2 + w["w20_1"])
    out = w["w11_2"] * h1 + w["w12_2"] * h2 + w["w10_2"]
    delta = out - y  # ∂L/∂a₁⁽²⁾ = a₁⁽²⁾ − y
    expected = {
        "w11_2": delta * h1, "w12_2": delta * h2, "w10_2": delta,
        "w11_1": delta * w["w11_2"] * (1 - h1) * h1 * a1,
        "w12_1": delta * w["w11_2"] * (1 - h1) * h1 * a2,
        "w10_1": delta * w["w11_2"] * (1 - h1) * h1,
        "w21_1": delta * w["w12_2"] * (1 - h2) * h2 * a1,
        "w22_1": delta * w["w12_2"] * (1 - h2) * h2 * a2,
        "w20_1": delta * w["w12_2"] * (1 - h2) * h2,
    }
    for name in names:
        assert_close(grads[name], expected[name], "modes", name)
