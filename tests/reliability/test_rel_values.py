"""Values: compiled code follows numpy's scalar semantics — float division by zero and ``log`` of
a negative give inf/nan, int64 wraps on overflow, int division by zero gives 0 — and never
crashes; the few run-time errors are exceptions; a reverse-mode tape that would outgrow its
limit stops with a ``MemoryError`` naming the limit (docs/RELIABILITY.md, "Values")."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import codegen
import sxad

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _numpy(fn, *args):
    """``fn`` on numpy scalars, quietly: the reference."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*(np.int64(a) if type(a) is int else np.float64(a) for a in args))


def _same(got, expected) -> bool:
    return (math.isnan(got) and math.isnan(expected)) or got == expected


def divide(x, y):
    return x / y


def floor_divide(x, y):
    return x // y


def modulo(x, y):
    return x % y


def logarithm(x):
    return np.log(x)


def math_log(x):
    return math.log(x)


def math_sqrt(x):
    return math.sqrt(x)


def times(x, y):
    return x * y


def plus(x, y):
    return x + y


def negate(x):
    return -x


def absolute(x):
    return abs(x)


def cube(x):
    return x ** 3


def to_int(x):
    return int(x)


FLOAT_CASES = [(divide, (1.0, 0.0)), (divide, (-1.0, 0.0)), (divide, (0.0, 0.0)),
               (divide, (1, 0)), (floor_divide, (1.0, 0.0)), (modulo, (1.0, 0.0)),
               (logarithm, (-1.0,)), (logarithm, (0.0,)), (logarithm, (-math.inf,)),
               (divide, (math.inf, math.inf)), (times, (0.0, math.inf))]
INT_CASES = [(floor_divide, (7, 0)), (modulo, (7, 0)), (floor_divide, (INT64_MIN, -1)),
             (modulo, (INT64_MIN, -1)), (times, (2 ** 62, 4)), (plus, (INT64_MAX, 1)),
             (negate, (INT64_MIN,)), (absolute, (INT64_MIN,)), (cube, (2 ** 40,)),
             (floor_divide, (-7, 2)), (modulo, (-7, 2))]


@pytest.mark.parametrize("fn, args", FLOAT_CASES + INT_CASES,
                         ids=[f"{fn.__name__}{args}" for fn, args in FLOAT_CASES + INT_CASES])
def test_results_follow_numpy(fn, args):
    got = sxad.jit(fn)(*args)
    assert type(got) is (int if all(type(a) is int for a in args) and fn is not divide
                         else float)
    assert _same(got, _numpy(fn, *args))


def test_math_functions_follow_numpy_not_math():
    """``math.log(-1.0)`` raises in Python; compiled, it is numpy's nan (documented)."""
    assert math.isnan(sxad.jit(math_log)(-1.0)) and math.isnan(sxad.jit(math_sqrt)(-1.0))


def test_int_of_nan_or_inf_is_numpys_cast():
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [int(np.float64(v).astype(np.int64)) for v in (math.nan, math.inf, 1e300)]
    assert [sxad.jit(to_int)(v) for v in (math.nan, math.inf, 1e300)] == expected


@pytest.mark.parametrize("x, y", [(1.0, 0.0), (0.0, 0.0), (-1.0, 0.0)])
def test_derivatives_at_singular_points_are_inf_or_nan_not_a_crash(x, y):
    value, grads = sxad.value_and_grad(divide, wrt=(0, 1))(x, y)
    assert _same(value, _numpy(divide, x, y))
    assert all(math.isinf(g) or math.isnan(g) for g in grads)
    assert sxad.grad(logarithm)(0.0) == math.inf
    assert sxad.grad(logarithm)(-1.0) == -1.0   # the rule 1/x, where log itself is nan


def power(n, k):
    return n ** k


def stepped(n, step):
    total = 0
    for i in range(0, n, step):
        total += i
    return total


def test_run_time_errors_are_exceptions():
    with pytest.raises(ValueError, match="range\\(\\) arg 3 must not be zero"):
        sxad.jit(stepped)(5, 0)
    assert sxad.jit(stepped)(5, 2) == 6
    assert sxad.jit(power)(2, 3) == 8.0   # a run-time exponent makes it a float power
    assert sxad.jit(power)(2, -1) == 0.5


# --------------------------------------------------------------------------- the tape limit

def runaway(x):
    """A loop that would run for a very long time, keeping values for the derivative."""
    k = 0
    while k >= 0:   # k wraps around after 2**63 iterations
        x = np.sin(x) * 1.0000001
        k += 1
    return x


def long_for(x, n):
    for i in range(n):
        x = np.sin(x)
    return x


@pytest.fixture
def small_tape():
    before = codegen.tape_limit()
    codegen.set_tape_limit(1 << 22)   # 4 MiB
    yield 1 << 22
    codegen.set_tape_limit(before)


def test_a_runaway_while_loop_stops_at_the_tape_limit(small_tape):
    g = sxad.grad(runaway)
    with pytest.raises(MemoryError, match=f"SXAD_TAPE_LIMIT = {small_tape} bytes"):
        g(0.5)
    with pytest.raises(MemoryError, match="SXAD_TAPE_LIMIT"):
        g(0.5)   # the installed kernel, the same
    long = sxad.grad(long_for)
    assert long(0.5, 1000) == pytest.approx(sxad.grad(long_for, mode="forward")(0.5, 1000))
    with pytest.raises(MemoryError, match="SXAD_TAPE_LIMIT"):
        long(0.5, 10 ** 7)
    assert long(0.5, 1000) == pytest.approx(sxad.grad(long_for, mode="forward")(0.5, 1000))


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_a_failed_tape_is_freed(small_tape):
    g = sxad.grad(runaway)
    with pytest.raises(MemoryError):
        g(0.5)
    before = _resident_bytes()
    for _ in range(30):
        with pytest.raises(MemoryError):
            g(0.5)
    assert _resident_bytes() - before < 10 * small_tape, "failed calls leaked their tapes"


def test_the_limit_is_set_by_the_environment(tmp_path):
    script = ("import sxad, numpy as np\n"
              "def f(x):\n    k = 0\n    while k >= 0:\n        x = np.sin(x)\n"
              "        k += 1\n    return x\n"
              "try:\n    sxad.grad(f)(0.5)\nexcept MemoryError as err:\n    print(err)\n")
    path = tmp_path / "runaway.py"
    path.write_text(script)
    env = dict(os.environ, SXAD_TAPE_LIMIT="65536", SXAD_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "SXAD_TAPE_LIMIT = 65536 bytes" in done.stdout, done.stderr
    env["SXAD_TAPE_LIMIT"] = "lots"
    done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "SXAD_TAPE_LIMIT must be a positive number of bytes, got 'lots'" in done.stderr


def test_set_tape_limit_rejects_nonsense():
    with pytest.raises(ValueError, match="positive number of bytes"):
        codegen.set_tape_limit(0)
