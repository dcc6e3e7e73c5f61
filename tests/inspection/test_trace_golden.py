"""Golden files of the trace renderings (text, Markdown, HTML), reviewed as diffs.

Regenerate after an intended change with ``SXAD_UPDATE_GOLDEN=1 python -m pytest
tests/inspection/test_trace_golden.py`` and review ``git diff tests/golden``.
"""
from __future__ import annotations

import pytest

import sxad
from golden_programs import (assert_matches_golden, eq_3_44, newton_sqrt, piecewise,
                             power_sum, seed, sigmoid)


def network(w11_1, w12_1, w10_1, w21_1, w22_1, w20_1, w11_2, w12_2, w10_2, a1_0, a2_0, y):
    z1_1 = w11_1 * a1_0 + w12_1 * a2_0 + w10_1
    a1_1 = sigmoid(z1_1)
    z2_1 = w21_1 * a1_0 + w22_1 * a2_0 + w20_1
    a2_1 = sigmoid(z2_1)
    a1_2 = w11_2 * a1_1 + w12_2 * a2_1 + w10_2
    return 0.5 * (y - a1_2) ** 2


NETWORK = (0.15, 0.2, 0.35, 0.25, 0.3, 0.35, 0.4, 0.45, 0.6, 0.05, 0.1, 0.01)

# file name → (function, arguments, trace options, rendering)
CASES = {
    "trace_seed_forward.txt": (seed, (2.0, 5.0), {}, "text"),
    "trace_seed_reverse.txt": (seed, (2.0, 5.0), dict(wrt=(0, 1), mode="reverse"), "text"),
    "trace_seed_forward.md": (seed, (2.0, 5.0), {}, "markdown"),
    "trace_seed_reverse.md": (seed, (2.0, 5.0), dict(wrt=(0, 1), mode="reverse"), "markdown"),
    "trace_seed_reverse.html": (seed, (2.0, 5.0), dict(wrt=(0, 1), mode="reverse"), "html"),
    "trace_eq_3_44_user.txt": (eq_3_44, (1.0,), dict(names="user"), "text"),
    "trace_eq_3_44_reverse.md": (eq_3_44, (1.0,), dict(mode="reverse"), "markdown"),
    "trace_power_sum_capped.txt": (power_sum, (0.9, 9), dict(max_iterations=3), "text"),
    "trace_power_sum_reverse.md": (power_sum, (0.9, 9), dict(mode="reverse",
                                                             max_iterations=3), "markdown"),
    "trace_newton_sqrt_reverse.txt": (newton_sqrt, (2.0,), dict(mode="reverse",
                                                                names="user"), "text"),
    "trace_piecewise_reverse.txt": (piecewise, (0.5, 1.0), dict(wrt=(0, 1), mode="reverse"),
                                    "text"),
    "trace_network_reverse.md": (network, NETWORK, dict(wrt=tuple(range(9)), mode="reverse",
                                                        names="user"), "markdown"),
}


def render(name: str) -> str:
    fn, args, options, kind = CASES[name]
    t = sxad.trace(fn, *args, **options)
    assert not t.warnings
    text = {"text": t.to_text, "markdown": t.to_markdown, "html": t.to_html}[kind]()
    return text if text.endswith("\n") else text + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_trace_rendering_matches_golden_file(name):
    assert_matches_golden(name, render(name))


def test_str_is_the_text_rendering():
    t = sxad.trace(seed, 2.0, 5.0)
    assert str(t) == repr(t) == t.to_text()
    assert t._repr_html_() == t.to_html()
