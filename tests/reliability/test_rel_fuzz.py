"""Fuzzing: random Python functions, inside and outside the subset, with random arguments —
scalar programs, then array programs (``fuzz_arrays.py``) in the same time budget. Each must end
in a correct result or a documented exception, never another exception type and never a crash or
hang of the interpreter. The programs run in a subprocess (``fuzz_driver.py``); the numbers tried
are printed in the terminal summary, one line for scalar and one for array programs. The array
checker itself is tested below on known answers, so the fuzzing test cannot pass because the
checker sees nothing.

``SXAD_FUZZ_SECONDS`` (default 10) sets the budget, ``SXAD_FUZZ_SEED`` replays a run. In CI the
seed is fixed (as hypothesis is there), so a red build replays; locally each run explores anew."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from . import fuzz_arrays

DRIVER = os.path.join(os.path.dirname(__file__), "fuzz_driver.py")
SECONDS = float(os.environ.get("SXAD_FUZZ_SECONDS", "10"))
HANG = 120 + 4 * SECONDS   # far beyond any program's run time: the process is stuck
CI_SEED = 20261129


def _death(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def test_fuzzed_programs_end_in_a_result_or_a_documented_error(tmp_path, summary):
    report, current = tmp_path / "report.json", tmp_path / "current.py"
    command = [sys.executable, DRIVER, "--seconds", str(SECONDS), "--report", str(report),
               "--current", str(current)]
    seed = os.environ.get("SXAD_FUZZ_SEED") or (CI_SEED if os.environ.get("CI") else None)
    if seed is not None:
        command += ["--seed", str(seed)]
    env = dict(os.environ, SXAD_CACHE_DIR=str(tmp_path / "cache"))
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the fuzzing process hung; it was running:\n{current.read_text()}")
    if done.returncode != 0:
        running = current.read_text() if current.exists() else "(nothing yet)"
        pytest.fail(f"the fuzzing process died ({_death(done.returncode)}) while running:\n"
                    f"{running}\n{done.stderr[-4000:]}")
    result = json.loads(report.read_text())
    summary.append(_line("sxad fuzzing", result["tried"], result["outcomes"], result))
    summary.append(_line("sxad array fuzzing", result["array_tried"], result["array_outcomes"],
                         result))
    kinds = "; ".join(f"{n} × {kind}" for kind, n in result["failure_kinds"].items())
    failures = "\n\n".join(f"[{f['kind']}] {f['what']}\nargs = {f['args']}\n{f['source']}"
                           for f in result["failures"])
    assert not result["failures"], f"seed {result['seed']}: {kinds}\n\n{failures}"
    assert result["tried"] >= 20, "the run tried too few programs to mean anything"
    assert result["array_tried"] >= 10, "the run tried too few array programs"
    assert result["array_outcomes"].get("array jit: same as numpy", 0) >= 5, \
        "too few array results were compared with numpy's"


def _line(what: str, tried: int, outcomes: dict[str, int], result: dict) -> str:
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items(),
                                                                key=lambda item: -item[1]))
    return f"{what}: {tried} programs tried (seed {result['seed']}, whole run " \
           f"{result['seconds']:.1f} s): {counts}"


# --------------------------------------------------------------------------- the array checker

def test_the_array_checker_sees_wrong_dtypes_shapes_values_and_structure():
    x = np.array([1.0, np.nan, np.inf])
    assert fuzz_arrays.compare(x.copy(), x, []) is None   # nan and inf where numpy has them
    assert "dtype" in fuzz_arrays.compare(x.astype(np.float32), x, [])
    assert "shape" in fuzz_arrays.compare(x[:2], x, [])
    assert "values" in fuzz_arrays.compare(np.array([1.0, 0.0, np.inf]), x, [])
    assert "values" in fuzz_arrays.compare(np.array([1.0, np.nan, -np.inf]), x, [])
    assert "values" in fuzz_arrays.compare(x + 1e-6, x, [])
    assert fuzz_arrays.compare(x * (1 + 1e-12), x, []) is None   # ulps of a transcendental
    assert "tuple" in fuzz_arrays.compare(x, (x, 1.0), [])
    assert "dtype" in fuzz_arrays.compare(np.int64(3), 3.0, [])
    assert fuzz_arrays.compare(3.0, np.float64(3.0), []) is None   # a float is a float64
    assert "values" in fuzz_arrays.compare(np.array([1, 2]), np.array([1, 3]), [])


def test_the_array_checker_widens_the_tolerance_only_where_numpy_itself_moves():
    e, nudged = np.array([1.0, 2.0]), np.array([1.0, 2.5])   # element 1 is ill-conditioned
    assert fuzz_arrays.compare(np.array([1.0, 3.0]), e, [nudged]) is None
    assert fuzz_arrays.compare(np.array([1.5, 2.0]), e, [nudged]) is not None
    assert fuzz_arrays.compare(np.array([1.0, 2.0]), e, [e[:1]]) is None   # shape flips


def test_the_array_checker_sees_a_missed_in_place_update():
    before, after = np.zeros(3), np.ones(3)
    assert fuzz_arrays.compare_args((before, 1.0), (after, 1.0)) is not None
    assert fuzz_arrays.compare_args((after.copy(), 1.0), (after, 1.0)) is None


def test_a_fault_in_unused_code_is_told_from_a_missing_error():
    source = "def generated(x, y, w, i, j, s):\n    r = x[i]\n    a = x * 2.0\n    return a\n"
    program = fuzz_arrays.ArrayProgram(source, pair=False, outside=False)
    fn = fuzz_arrays.load_array_program(source, 0, {"np": np})
    spec = fuzz_arrays.ArgsSpec(fuzz_arrays.ArraySpec((3,), "f64", "c", 1, False), 1.0, 1.0,
                                7, 0, 0.5)
    case = fuzz_arrays.Case(program, fn, {"np": np}, report=None)
    error = fuzz_arrays.numpy_run(fn, spec.build(False)).value
    assert isinstance(error, IndexError)
    x = spec.x.build()
    assert case._no_error_kind(error, spec, x * 2.0).startswith("an error in code whose result")
    assert case._no_error_kind(error, spec, x * 3.0) == "a value where numpy raises"


def test_argument_layouts_are_what_they_say():
    spec = fuzz_arrays.ArraySpec((3, 2), "f32", "c", 5, False)
    base = spec.build()
    for layout, check in [("step", lambda a: a.strides[0] == 2 * base.strides[0]),
                          ("transposed", lambda a: a.flags.f_contiguous),
                          ("reversed", lambda a: a.strides[0] < 0),
                          ("fortran", lambda a: a.flags.f_contiguous),
                          ("readonly", lambda a: not a.flags.writeable)]:
        array = fuzz_arrays.ArraySpec((3, 2), "f32", layout, 5, False).build()
        assert check(array), layout
        assert np.array_equal(array, base) and array.dtype == np.float32, layout
