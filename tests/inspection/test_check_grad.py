"""sxad.check_grad: sxad's gradients pass, a deliberately wrong hand-written gradient fails
(on the argument it gets wrong), and the report gives each argument's error."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sxad
from sxad.check import ArgumentCheck, GradCheck


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def right_gradient(x1, x2):
    return 1 / x1 + x2, x1 - np.cos(x2)


def wrong_gradient(x1, x2):
    return 1 / x1 + x2, x1 + np.cos(x2)  # the sign of sin's derivative forgotten


def loop(x, n):
    s = 0.0
    for i in range(n):
        s = s + np.sin(x * i)
    return s


def test_sxad_gradient_passes_in_both_modes():
    for mode in ("reverse", "forward"):
        report = sxad.check_grad(f, 2.0, 5.0, mode=mode)
        assert isinstance(report, GradCheck) and report.ok and report
        assert set(report.errors) == {"x1", "x2"}
        assert max(report.errors.values()) < 1e-9
        assert report.checked == f"sxad ({mode} mode)"


def test_a_wrong_hand_written_gradient_is_caught():
    report = sxad.check_grad(f, 2.0, 5.0, grad_fn=wrong_gradient)
    assert not report and not report.ok
    assert [r.name for r in report.failed] == ["x2"]
    assert report["x1"].ok and report["x1"].rel_error < 1e-9
    wrong = report["x2"]
    assert wrong.gradient == pytest.approx(2.0 + math.cos(5.0))
    assert wrong.numeric == pytest.approx(2.0 - math.cos(5.0), rel=1e-9)
    assert wrong.rel_error > 0.1
    text = str(report)
    assert "FAILED: 1 of 2 disagree: x2" in text and "wrong_gradient" in text


def test_a_right_hand_written_gradient_passes():
    assert sxad.check_grad(f, 2.0, 5.0, grad_fn=right_gradient).ok


def test_grad_fn_for_some_arguments():
    only_x2 = sxad.check_grad(f, 2.0, 5.0, wrt="x2", grad_fn=lambda x1, x2: x1 - np.cos(x2))
    assert only_x2.ok and [r.name for r in only_x2] == ["x2"]
    full = sxad.check_grad(f, 2.0, 5.0, wrt=1, grad_fn=right_gradient)  # one per argument
    assert full.ok and full[0].name == "x2"
    with pytest.raises(ValueError, match="grad_fn returned 3 value"):
        sxad.check_grad(f, 2.0, 5.0, grad_fn=lambda x1, x2: (1.0, 2.0, 3.0))


def test_int_arguments_are_not_checked():
    report = sxad.check_grad(loop, 0.7, 5)
    assert [r.name for r in report] == ["x"] and report.ok
    with pytest.raises(TypeError, match="not a float"):
        sxad.check_grad(loop, 0.7, 5, wrt="n")
    with pytest.raises(TypeError, match="no float argument"):
        sxad.check_grad(loop, 1, 5)


def test_tolerances_and_non_finite_values():
    report = sxad.check_grad(f, 2.0, 5.0, grad_fn=wrong_gradient, rtol=1.0)
    assert report.ok  # a 100% tolerance lets the wrong sign through
    nan = sxad.check_grad(f, -2.0, 5.0)  # log(−2): nan, so nothing can be checked
    assert not nan.ok and math.isinf(nan["x1"].rel_error)
    assert isinstance(nan.results[0], ArgumentCheck)


def test_bad_calls():
    with pytest.raises(TypeError, match="takes 2 argument"):
        sxad.check_grad(f, 2.0)
    with pytest.raises(TypeError, match="return one number"):
        sxad.check_grad(lambda x: (x, x), 1.0, grad_fn=lambda x: 1.0)
