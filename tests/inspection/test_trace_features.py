"""sxad.trace beyond the seed: every corpus function in both modes (against sxad's own
programs and finite differences), loops and their cap, branches, names, errors, the API."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import sxad
from corpus import CORPUS
from oracles import assert_close, finite_difference
from sxad.tracing import Row, statement

CASES = [pytest.param(case, id=case.ids) for case in CORPUS]


def float_outputs(case) -> int:
    out = case.fn(*case.args)
    return sum(isinstance(v, float) for v in (out if isinstance(out, tuple) else (out,)))


@pytest.mark.parametrize("case", CASES)
def test_corpus_traces_agree_with_sxad_and_finite_differences(case):
    """Each trace is checked against sxad's tangent/adjoint program as it is made (a mismatch
    is a warning); here also against central differences of the plain function."""
    forward = sxad.trace(case.fn, *case.args, wrt=case.wrt[0], mode="forward")
    assert not forward.warnings
    for t in (forward.to_text(), forward.to_markdown(), forward.to_html()):
        assert t
    if float_outputs(case) != 1 or isinstance(case.fn(*case.args), tuple):
        return
    reverse = sxad.trace(case.fn, *case.args, wrt=case.wrt, mode="reverse", names="user")
    assert not reverse.warnings
    fd = finite_difference(case.fn, case.args, case.wrt)
    assert_close([v for _, v in reverse.derivatives], fd, "finite-difference")
    assert_close(forward.derivatives[0][1], fd[0], "finite-difference")


def power(x, n):
    p = 1.0
    for i in range(n):
        p = p * x
    return p


def test_loops_show_each_iteration_capped_with_a_note():
    t = sxad.trace(power, 1.1, 50, names="user")
    notes = [r.note for r in t.primal if r.note]
    assert notes == ["for i = 0", "for i = 1", "for i = 2", "for i = 3", "for i = 4",
                     "… 44 more iterations, not shown …", "for i = 49"]
    assert statement(t.primal[-1]) == "y = p⁽⁴⁹⁾ = 117.391"
    (_, dot), = t.derivatives
    assert dot == pytest.approx(50 * 1.1 ** 49)
    everything = sxad.trace(power, 1.1, 50, max_iterations=None)
    assert len([r for r in everything.primal if r.note]) == 50


def test_reverse_sweep_lists_iterations_backwards():
    t = sxad.trace(power, 1.1, 4, mode="reverse", names="user")
    notes = [r.note for r in t.derivative if r.note]
    assert notes == ["for i = 3", "for i = 2", "for i = 1", "for i = 0"]
    assert statement(t.derivative[0]) == "p̄‴ = ȳ = 1"
    capped = sxad.trace(power, 1.1, 40, mode="reverse", max_iterations=2)
    notes = [r.note for r in capped.derivative if r.note]
    assert notes == ["for i = 39", "… 38 more iterations, not shown …", "for i = 0"]
    (_, bar), = capped.derivatives
    assert bar == pytest.approx(40 * 1.1 ** 39)


def test_a_long_adjoint_sum_is_abridged():
    t = sxad.trace(power, 1.1, 9, mode="reverse")
    (row,) = [r for r in t.derivative if r.name == "v̄₋₁"]  # x is used in every iteration
    assert "… (6 more)" in row.chain and row.chain.count("∂") == 6  # 3 terms of 9 shown
    assert row.value == pytest.approx(9 * 1.1 ** 8)


def clipped(x):
    if x > 1.0:
        y = np.log(x)
    else:
        y = x - 1.0
    return y * 2.0


def test_only_the_branch_taken_appears_under_a_note():
    t = sxad.trace(clipped, 2.0)
    lines = [statement(r) for r in t.primal]
    assert "[if" not in lines[0]
    assert lines[2] == "if v₁ (true)" and lines[3].startswith("v₂ = y = ln v₀")
    assert not any("−" in line for line in lines)
    other = sxad.trace(clipped, 0.5)
    assert "if v₁ (false)" in [statement(r) for r in other.primal]


def two_outputs(x, y):
    return x * y, x + y


def with_ints(x, n):
    return x * n + n // 2


def test_several_outputs_forward_and_ints():
    t = sxad.trace(two_outputs, 2.0, 3.0)
    assert [r.name for r in t.primal[-2:]] == ["out₁", "out₂"]
    assert [name for name, _ in t.derivatives] == ["out_dot₁", "out_dot₂"]
    assert [v for _, v in t.derivatives] == [3.0, 1.0]
    ints = sxad.trace(with_ints, 2.0, 5)
    assert ints.derivative[1] == Row()  # n has no tangent
    assert "int" not in statement(ints.primal[2])


def test_errors_are_clear():
    def f(x1, x2):
        return x1 * x2
    with pytest.raises(ValueError, match="mode must be"):
        sxad.trace(f, 1.0, 2.0, mode="sideways")
    with pytest.raises(ValueError, match="one direction"):
        sxad.trace(f, 1.0, 2.0, wrt=(0, 1))
    with pytest.raises(TypeError, match="not a float"):
        sxad.trace(with_ints, 1.0, 2, wrt="n")
    with pytest.raises(TypeError, match="takes 2 argument"):
        sxad.trace(f, 1.0)
    with pytest.raises(ValueError, match="one float output"):
        sxad.trace(two_outputs, 1.0, 2.0, mode="reverse")
    with pytest.raises(ValueError, match="names must be"):
        sxad.trace(f, 1.0, 2.0, names="greek")
    with pytest.raises(sxad.UnsupportedError):
        sxad.trace(lambda x: [x][0], 1.0)


def test_digits_and_decorated_functions():
    def f(x):
        return x * 3.14159265
    t = sxad.trace(sxad.grad(f), 1.0, digits=6)
    assert statement(t.primal[1], t.digits) == "v₁ = v₀ × 3.14159 = 1 × 3.141593 = 3.141593"


def test_trace_is_the_function_of_sxad_tracing():
    import sxad.tracing as module
    assert sxad.trace is module.trace
    assert "wrt" in str(__import__("inspect").signature(sxad.trace))
    assert sxad.trace(power, 2.0, 3).derivatives[0][1] == pytest.approx(12.0)


def test_import_sxad_stays_light():
    code = ("import sys, sxad; sxad.__all__; "
            "print(sorted(m for m in ('sympy', 'llvmlite', 'numpy') if m in sys.modules))")
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_a_disagreement_with_sxads_own_program_is_a_warning(monkeypatch):
    import sxad.tracing as module
    monkeypatch.setattr(module, "_compiled", lambda *args: [99.0])
    t = sxad.trace(power, 2.0, 3)
    assert t.warnings == ("sxad's tangent program gives ẏ = 99.0, this trace 12.0",)
    assert t.to_text().endswith("warning: sxad's tangent program gives ẏ = 99.0, this trace 12.0")
    assert "<strong>warning:</strong>" in t.to_html() and "> warning:" in t.to_markdown()
