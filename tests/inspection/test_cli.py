"""The ``sxad`` command end to end, through a subprocess: each command's success path, each
error path with its message and exit status (0 ok, 1 failed, 2 usage), ``--help``."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

PROGRAM = '''
import numpy as np


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def power(x, n):
    p = 1.0
    for i in range(n):
        p = p * x
    return p


def kinked(x):
    return np.floor(x) + x     # sxad: derivative 1; differences across the step at 1.0: huge


def listy(x):
    return [x][0]


def positive(x):
    return x > 0.0


K = 3

if __name__ == "__main__":
    raise SystemExit("this must not run when sxad loads the file")
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "prog.py").write_text(PROGRAM)
    (folder / "broken.py").write_text("def f(x:\n    return x\n")
    (folder / "raises.py").write_text("raise RuntimeError('boom at import')\n")
    (folder / "notes.txt").write_text("not python\n")
    return folder


def environment(**changes: str) -> dict[str, str]:
    """This process's environment with the checkout first on the path."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **changes}


def sxad(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    env = environment(NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "sxad", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def ok(*args: str, cwd: pathlib.Path | None = None) -> str:
    out = sxad(*args, cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout


# --------------------------------------------------------------------------- success paths

def test_show_prints_the_adjoint_program(files):
    out = ok("show", f"{files}/prog.py:f")
    assert out.startswith("def f_vjp(x1, x2, y_bar):") and "x2_bar" in out


def test_show_stages_and_modes(files):
    out = ok("show", "prog.py:f", "--stage", "tangent-ir", "--mode", "forward", "--wrt", "x2",
             cwd=files)
    assert out.startswith("func f_jvp(x1: f64, x2: f64, x2_dot: f64):")
    out = ok("show", "prog.py:power", "--stage", "ir", "--args", "2.0,3", cwd=files)
    assert "func power(x: f64, n: i64):" in out and "for i in range" in out


def test_trace_prints_table_3_2(files):
    out = ok("trace", "prog.py:f", "--args", "2.0,5.0", "--mode", "reverse", cwd=files)
    assert "Reverse Adjoint (Derivative) Trace" in out
    assert "x̄₂ = v̄₀ = 1.716" in out and "x̄₁ = v̄₋₁ = 5.5" in out


def test_trace_forward_markdown_and_options(files):
    out = ok("trace", "prog.py:f", "--args", "2.0,5.0", "--format", "markdown", cwd=files)
    assert "| v₋₁ = x₁ = 2 | v̇₋₁ = ẋ₁ = 1 |" in out
    assert "| y = v₅ = 11.652 | ẏ = v̇₅ = 5.5 |" in out
    out = ok("trace", "prog.py:power", "--args", "1.5,30", "--names", "user",
             "--max-iterations", "2", "--digits", "2", cwd=files)
    assert "[… 28 more iterations, not shown …]" in out and "ẏ = ṗ⁽²⁹⁾ = 3.84e6" in out


def test_grad_prints_value_and_gradient(files):
    out = ok("grad", "prog.py:f", "--args", "2.0,5.0", cwd=files)
    assert out.splitlines() == ["f(x1 = 2.0, x2 = 5.0) = 11.652071455223084",
                                "∂f/∂x1 = 5.5", "∂f/∂x2 = 1.7163378145367738"]
    out = ok("grad", "prog.py:power", "--args", "-1.5,3", "--mode", "forward", cwd=files)
    assert out.splitlines()[1] == "∂power/∂x = 6.75"


def test_check_passes(files):
    out = ok("check", "prog.py:f", "--args", "2.0,5.0", cwd=files)
    assert "ok: all 2 arguments agree" in out


def test_check_failing_exits_1(files):
    out = sxad("check", "prog.py:kinked", "--args", "1.0", cwd=files)
    assert out.returncode == 1
    assert "FAILED: 1 of 1 disagree: x" in out.stdout and out.stderr == ""


# --------------------------------------------------------------------------- error paths

USAGE_ERRORS = [
    (("grad", "missing.py:f", "--args", "1.0"), "missing.py: no such file"),
    (("grad", "prog.py:g", "--args", "1.0"), "prog.py has no function `g` (it defines: f,"),
    (("grad", "prog.py", "--args", "1.0"), "expected FILE.py:FUNC"),
    (("grad", "prog.py:K", "--args", "1.0"), "`K` in prog.py is 'int', not a function"),
    (("grad", "broken.py:f", "--args", "1.0"), "broken.py:1: syntax error"),
    (("grad", "raises.py:f", "--args", "1.0"), "running it failed: RuntimeError: boom"),
    (("grad", "notes.txt:f", "--args", "1.0"), "cannot be loaded as a Python file"),
    (("grad", "prog.py:f", "--args", "2.0,abc"), "--args: 'abc' is not a number"),
    (("grad", "prog.py:f", "--args", "2.0"), "f takes 2 argument(s) (x1, x2); --args gave 1"),
    (("grad", "prog.py:f", "--args", "2.0,5.0", "--wrt", "z"), "f has no argument 'z'"),
    (("grad", "prog.py:power", "--args", "2.0,3", "--wrt", "n"), "(write 3.0)"),
    (("grad", "prog.py:f", "--args", "2,5"), "no float argument"),
    (("trace", "prog.py:f", "--args", "2.0,5.0", "--mode", "forward", "--wrt", "x1,x2"),
     "forward-mode trace follows one input"),
    (("trace", "prog.py:f", "--args", "2.0,5.0", "--digits", "40"), "--digits from 0 to 17"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS, ids=[m[:24] for _, m in USAGE_ERRORS])
def test_usage_errors_exit_2(files, args, message):
    out = sxad(*args, cwd=files)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert out.stderr.startswith(f"sxad {args[0]}: error: ")
    assert message in out.stderr


@pytest.mark.parametrize("args, message", [
    (("grad", "--args", "1.0"), "the following arguments are required: FILE.py:FUNC"),
    (("trace", "prog.py:f"), "the following arguments are required: --args"),
    (("show", "prog.py:f", "--stage", "asm"), "invalid choice: 'asm'"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    ((), "the following arguments are required: COMMAND"),
])
def test_bad_command_lines_exit_2(files, args, message):
    out = sxad(*args, cwd=files)
    assert out.returncode == 2 and message in out.stderr and "usage: sxad" in out.stderr


@pytest.mark.parametrize("args, message", [
    (("grad", "prog.py:listy", "--args", "1.0"),
     f"UnsupportedError: prog.py:{PROGRAM.splitlines().index('    return [x][0]') + 1}:12: "
     f"subscripts"),
    (("grad", "prog.py:positive", "--args", "1.0"), "returns a bool"),
])
def test_functions_sxad_cannot_handle_exit_1(files, args, message):
    out = sxad(*args, cwd=files)
    assert out.returncode == 1 and out.stdout == ""
    assert message in out.stderr.replace(str(files) + os.sep, "")


def test_help_for_each_command(files):
    assert "COMMAND" in ok("--help") and "Exit status" in ok("--help")
    assert ok("--version").startswith("sxad ")
    for command in ("show", "trace", "grad", "check"):
        out = ok(command, "--help")
        assert out.startswith(f"usage: sxad {command}") and "FILE.py:FUNC" in out


def test_console_script_when_installed(files):
    script = shutil.which("sxad")
    if script is None:
        pytest.skip("the sxad console script is not installed (pip install -e .)")
    out = subprocess.run([script, "grad", "prog.py:f", "--args", "2.0,5.0"], cwd=files,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "∂f/∂x1 = 5.5" in out.stdout


def test_highlighted_when_rich_is_there(files):
    pytest.importorskip("rich")
    env = environment()
    env.pop("NO_COLOR", None)
    for args in (("show", "prog.py:f"), ("trace", "prog.py:f", "--args", "2.0,5.0")):
        out = subprocess.run([sys.executable, "-m", "sxad", *args, "--color", "always"],
                             capture_output=True, text=True, env=env, cwd=files, timeout=120)
        assert out.returncode == 0 and "\x1b[" in out.stdout
    plain = sxad("show", "prog.py:f", cwd=files)  # piped: plain text
    assert "\x1b[" not in plain.stdout


def test_in_process_main_returns_the_status(files, capsys):
    from sxad.cli import main
    assert main(["grad", str(files / "prog.py") + ":f", "--args", "2.0,5.0"]) == 0
    assert "∂f/∂x2 = 1.7163378145367738" in capsys.readouterr().out
    assert main(["grad", str(files / "nope.py") + ":f", "--args", "2.0"]) == 2
    assert "no such file" in capsys.readouterr().err
