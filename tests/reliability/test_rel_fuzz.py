"""Fuzzing: random Python functions, inside and outside the subset, with random arguments. Each
must end in a correct result or a documented exception, never another exception type and never
a crash or hang of the interpreter. The programs run in a subprocess (``fuzz_driver.py``); the
number tried is printed in the terminal summary.

``SXAD_FUZZ_SECONDS`` (default 10) sets the budget, ``SXAD_FUZZ_SEED`` replays a run. In CI the
seed is fixed (as hypothesis is there), so a red build replays; locally each run explores anew."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

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
    outcomes = ", ".join(f"{n} {what}" for what, n in sorted(result["outcomes"].items(),
                                                               key=lambda item: -item[1]))
    summary.append(f"sxad fuzzing: {result['tried']} programs tried in {result['seconds']:.1f} s "
                   f"(seed {result['seed']}): {outcomes}")
    failures = "\n\n".join(f"{f['what']}\nargs = {f['args']}\n{f['source']}"
                           for f in result["failures"])
    assert not result["failures"], f"seed {result['seed']}:\n{failures}"
    assert result["tried"] >= 20, "the run tried too few programs to mean anything"
