"""sxad.trace reproduces the seed chapter's Tables 3.1 and 3.2 row for row (values to 3
decimals), eq. 3.44 with the user's names, and Example 3.1's back-propagation formulas."""
from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import sxad
from golden_programs import eq_3_44
from sxad.tracing import Trace, statement
from tolerances import TOL

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED_ATOL = TOL["seed"]["atol"]


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


# Table 3.1, left and right, as (name, statement, value). The seed writes "v̇₀ cos v₀" for our
# "v̇₀ × cos v₀"; its "v₅ = 10.693 + 0.959" is our "10.693 − (−0.959)" (v₃ = sin 5 < 0).
TABLE_3_1 = [
    (("v₋₁", "x₁", 2.0), ("v̇₋₁", "ẋ₁", 1.0)),
    (("v₀", "x₂", 5.0), ("v̇₀", "ẋ₂", 0.0)),
    (("v₁", "ln v₋₁", math.log(2)), ("v̇₁", "v̇₋₁/v₋₁", 0.5)),
    (("v₂", "v₋₁ × v₀", 10.0), ("v̇₂", "v̇₋₁ × v₀ + v₋₁ × v̇₀", 5.0)),
    (("v₃", "sin v₀", math.sin(5)), ("v̇₃", "v̇₀ × cos v₀", 0.0)),
    (("v₄", "v₁ + v₂", 10.693), ("v̇₄", "v̇₁ + v̇₂", 5.5)),
    (("v₅", "v₄ − v₃", 11.652), ("v̇₅", "v̇₄ − v̇₃", 5.5)),
    (("y", "v₅", 11.652), ("ẏ", "v̇₅", 5.5)),
]

# Table 3.2's right column: (name, chain rule, statement, value). The seed writes the
# statements "v̄₅ × (1)", "v̄₅ × (−1)", "v̄₃ cos v₀ + v̄₂ v₋₁"; ours come from sxad's rules.
TABLE_3_2 = [
    ("v̄₅", "ȳ", "ȳ", 1.0),
    ("v̄₄", "v̄₅ ∂v₅/∂v₄", "v̄₅", 1.0),
    ("v̄₃", "v̄₅ ∂v₅/∂v₃", "−v̄₅", -1.0),
    ("v̄₁", "v̄₄ ∂v₄/∂v₁", "v̄₄", 1.0),
    ("v̄₂", "v̄₄ ∂v₄/∂v₂", "v̄₄", 1.0),
    ("v̄₀", "v̄₃ ∂v₃/∂v₀ + v̄₂ ∂v₂/∂v₀", "v̄₃ × cos v₀ + v̄₂ × v₋₁", 1.716),
    ("v̄₋₁", "v̄₂ ∂v₂/∂v₋₁ + v̄₁ ∂v₁/∂v₋₁", "v̄₂ × v₀ + v̄₁/v₋₁", 5.5),
    ("x̄₂", "", "v̄₀", 1.716),
    ("x̄₁", "", "v̄₋₁", 5.5),
]


def test_table_3_1_row_for_row():
    t = sxad.trace(f, 2.0, 5.0, wrt=0, mode="forward")
    assert len(t.primal) == len(t.derivative) == len(TABLE_3_1)
    for (left, right), row_l, row_r in zip(TABLE_3_1, t.primal, t.derivative):
        for (name, text, value), row in ((left, row_l), (right, row_r)):
            assert row.name == name
            assert text in (row.alias, row.expr)
            assert float(row.value) == pytest.approx(value, abs=SEED_ATOL)
    assert t.derivatives == (("ẏ", 5.5),)


def test_table_3_1_numbers_as_the_seed_prints_them():
    t = sxad.trace(f, 2.0, 5.0)
    lines = [statement(r) for r in t.primal]
    assert lines[2:5] == ["v₁ = ln v₋₁ = ln 2 = 0.693", "v₂ = v₋₁ × v₀ = 2 × 5 = 10",
                          "v₃ = sin v₀ = sin 5 = −0.959"]
    assert lines[-1] == "y = v₅ = 11.652"
    right = [statement(r) for r in t.derivative]
    assert right[:3] == ["v̇₋₁ = ẋ₁ = 1", "v̇₀ = ẋ₂ = 0", "v̇₁ = v̇₋₁/v₋₁ = 1/2 = 0.5"]
    assert right[3] == "v̇₂ = v̇₋₁ × v₀ + v₋₁ × v̇₀ = 1 × 5 + 2 × 0 = 5"
    assert right[4] == "v̇₃ = v̇₀ × cos v₀ = 0 × cos 5 = 0"


def test_table_3_2_row_for_row():
    t = sxad.trace(f, 2.0, 5.0, wrt=(0, 1), mode="reverse")
    assert [r.name for r in t.primal] == [n for (n, _, _), _ in TABLE_3_1]  # the same left
    assert len(t.derivative) == len(TABLE_3_2)
    for (name, chain, expr, value), row in zip(TABLE_3_2, t.derivative):
        assert (row.name, row.chain, row.expr) == (name, chain, expr)
        assert float(row.value) == pytest.approx(value, abs=SEED_ATOL)
    assert dict(t.derivatives) == pytest.approx({"x̄₁": 5.5, "x̄₂": 1.7163378145367738})
    assert statement(t.derivative[0]) == "v̄₅ = ȳ = 1"
    assert statement(t.derivative[-1]) == "x̄₁ = v̄₋₁ = 5.5"


def test_table_3_2_only_the_requested_gradient_rows():
    t = sxad.trace(f, 2.0, 5.0, wrt="x1", mode="reverse")
    assert [r.name for r in t.derivative][-1] == "x̄₁"
    assert "x̄₂" not in [r.name for r in t.derivative]


def test_forward_mode_with_respect_to_x2():
    t = sxad.trace(f, 2.0, 5.0, wrt="x2")
    assert [statement(r) for r in t.derivative[:2]] == ["v̇₋₁ = ẋ₁ = 0", "v̇₀ = ẋ₂ = 1"]
    (name, value), = t.derivatives
    assert value == pytest.approx(2.0 - math.cos(5.0))


def test_eq_3_44_shows_the_users_names():
    t = sxad.trace(eq_3_44, 1.0)
    aliases = [r.alias for r in t.primal]
    assert aliases[:6] == ["x", "a", "b", "c", "d", "e"]
    assert statement(t.primal[1]) == "v₁ = a = exp v₀ = exp 1 = 2.718"
    assert statement(t.derivative[2]) == "v̇₂ = ḃ = v̇₁ × (2 × v₁) = 2.718 × (2 × 2.718) = 14.778"
    user = sxad.trace(eq_3_44, 1.0, names="user")
    assert [r.name for r in user.primal] == ["x", "a", "b", "c", "d", "e", "v₁", "y"]
    assert statement(user.primal[3]) == "c = a + b = 2.718 + 7.389 = 10.107"


def test_eq_3_44_derivative_matches_the_closed_form():
    x = 0.3
    a = math.exp(x)
    c = a + a * a
    expected = (math.exp(c) + math.cos(c)) * (1 + 2 * a) * a
    for mode in ("forward", "reverse"):
        (_, value), = sxad.trace(eq_3_44, x, mode=mode).derivatives
        assert value == pytest.approx(expected, rel=1e-12)


def test_trace_is_a_dataclass_of_rows():
    t = sxad.trace(f, 2.0, 5.0)
    assert isinstance(t, Trace)
    assert t.arguments == (("x₁", 2.0), ("x₂", 5.0))
    assert t.seeds == (("ẋ₁", 1.0), ("ẋ₂", 0.0))
    assert t.outputs[0][0] == "y" and t.outputs[0][1] == pytest.approx(11.652071455223084)
    assert t.headers == ("Forward Primal Trace", "Forward Tangent (Derivative) Trace")
    assert not t.warnings


def test_example_script_prints_the_tables_and_the_network():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "seed_tables.py")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "x̄₁ = v̄₋₁ = 5.5" in out.stdout and "ẏ = v̇₅ = 5.5" in out.stdout
    assert "w̄₁₁⁽²⁾" in out.stdout  # the network, with the seed's names of its weights
    for line in out.stdout.split("The seed's closed forms against the trace:")[1].splitlines():
        if line.strip():
            seed, trace = line.split("seed ")[1].split(", trace ")
            assert float(seed) == pytest.approx(float(trace), abs=1e-9)
