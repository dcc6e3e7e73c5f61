"""Control flow and the tape: native kernels against the interpreter (and plain Python where the
interpreter would be too slow)."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import codegen
from sxad.backends.interpreter import interpret

import native_programs as P

RANGES = list(itertools.product([-7, -1, 0, 3, 10], [-9, 0, 1, 5, 12], [-3, -2, -1, 1, 2, 5]))


@pytest.fixture(scope="module")
def folds():
    return {reverse: (P.range_fold(reverse), codegen.compile_native(P.range_fold(reverse)))
            for reverse in (False, True)}


def as_python(values):
    return tuple(v.item() for v in values)


@pytest.mark.parametrize("reverse", [False, True])
def test_range_any_step(folds, reverse):
    func, native = folds[reverse]
    for lo, hi, step in RANGES:
        assert native(lo, hi, step) == as_python(interpret(func, (lo, hi, step))), (lo, hi, step)


@pytest.mark.parametrize("reverse", [False, True])
def test_range_trip_count_at_the_limits(folds, reverse):
    _, native = folds[reverse]
    for lo, hi, step in [(P.INT64_MIN, P.INT64_MAX, 2 ** 62),
                         (P.INT64_MAX, P.INT64_MIN, -(2 ** 61)),
                         (P.INT64_MIN, P.INT64_MAX, P.INT64_MAX), (P.INT64_MAX - 2, P.INT64_MAX, 1),
                         (P.INT64_MIN + 3, P.INT64_MIN, P.INT64_MIN), (5, 5, P.INT64_MIN)]:
        indices = range(lo, hi, step)
        acc = 0
        for i in (reversed(indices) if reverse else indices):
            acc = (acc * 3 + i + 2 ** 63) % 2 ** 64 - 2 ** 63   # int64 wrap-around
        assert native(lo, hi, step) == (acc, len(indices)), (lo, hi, step)


@pytest.mark.parametrize("reverse", [False, True])
def test_zero_step_raises_like_range(folds, reverse):
    func, native = folds[reverse]
    with pytest.raises(ValueError, match="range\\(\\) arg 3 must not be zero"):
        interpret(func, (0, 10, 0))
    with pytest.raises(ValueError, match="range\\(\\) arg 3 must not be zero"):
        native(0, 10, 0)
    with pytest.raises(ValueError):   # raised even when the loop would run zero times
        native(10, 0, 0)
    assert native(0, 3, 1) == as_python(interpret(func, (0, 3, 1)))  # and fine afterwards


def test_nested_loops_with_branch():
    func = P.nested_loops()
    native = codegen.compile_native(func)
    for x, n in [(0.3, 0), (0.3, 1), (0.7, 6), (-1.1, 13)]:
        assert P.same_bits(native(x, n), interpret(func, (x, n))[0]), (x, n)


def test_loops_inside_branches():
    func = P.loop_in_branch()
    native = codegen.compile_native(func)
    for args in [(0.5, 0, True), (0.5, 7, True), (3.0, 4, False), (200.0, 4, False),
                 (-0.5, 2, False)]:
        got, want = native(*args), as_python(interpret(func, args))
        assert type(got) is tuple and got == want, args


def test_while_with_if():
    func = P.collatz()
    native = codegen.compile_native(func)
    for m in [1, 2, 3, 6, 7, 27, 97, 871, -5, 0]:
        assert native(m) == int(interpret(func, (m,))[0]), m


def test_tuple_of_one():
    native = codegen.compile_native(P.one_tuple())
    assert native(1.25) == (2.5,)


@pytest.fixture(scope="module")
def tape():
    return P.tape_roundtrip(), codegen.compile_native(P.tape_roundtrip())


def test_tape_against_interpreter(tape):
    func, native = tape
    for x, n in [(0.5, 0), (0.5, 1), (1.5, 7), (-0.3, 130)]:
        got, want = native(x, n), as_python(interpret(func, (x, n)))
        assert P.same_bits(got[0], want[0]) and got[1] == want[1], (x, n)


def test_tape_grows_many_times(tape):
    _, native = tape
    for n in (64, 65, 200_000):   # the tape starts with 64 slots; 3 pushes per iteration
        acc, check = native(0.25, n)
        want = P.tape_reference(0.25, n)
        assert check == 0 and P.same_bits(acc, want[0]), n


OUT_OF_MEMORY = """
import resource, sys
sys.path[:0] = [{root!r}, {here!r}]
import codegen, native_programs as P
stress = codegen.compile_native(P.tape_stress())
assert stress(100_000) == (100_000, 100_000 * 99_999 // 2)
with open("/proc/self/statm") as f:
    virtual = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (virtual + (256 << 20), resource.RLIM_INFINITY))
try:
    stress(200_000_000)            # 1.6 GB of tape
except MemoryError:
    print("MemoryError")
print(stress(1000))                # the failed call freed its tape; the kernel still works
"""


def test_tape_out_of_memory_is_memory_error():
    here = os.path.dirname(__file__)
    script = OUT_OF_MEMORY.format(root=os.path.join(here, "..", ".."), here=here)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["MemoryError", "(1000,", "499500)"]


def test_pop_of_empty_tape_raises_not_crashes():
    native = codegen.compile_native(P.pop_empty())
    with pytest.raises(IndexError):
        interpret(P.pop_empty(), (1.0,))
    with pytest.raises(IndexError, match="empty tape"):
        native(1.0)


def test_llvm_source():
    func = P.tape_roundtrip()
    raw = codegen.llvm_source(func, optimized=False)
    assert '@"sxad.kernel.tape_roundtrip"' in raw and "malloc" in raw and "alloca" in raw
    optimized = codegen.llvm_source(func)
    kernel = next(part for part in optimized.split("\ndefine ") if "@sxad.kernel." in part[:200])
    assert "alloca" not in kernel.split("\n}")[0]   # the tape's state lives in registers
    assert np.isfinite(codegen.compile_native(func)(0.5, 10)[0])
