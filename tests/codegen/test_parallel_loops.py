"""Fused elementwise loops over large arrays run on the thread pool (``arrays.RowLoop.call``):
chunks split rows anywhere, and every element is computed once, exactly as serially."""
import numpy as np
import pytest

import sxad
from codegen import threads


def rows_plus_vector(x, b):
    return np.tanh(x) * 2.0 + b


def rows_plus_column(x, c):
    return np.exp(-x * x) - c


def flat(x):
    return 1.0 / (1.0 + np.exp(-x))


def rank_3(x, c):
    return np.sqrt(x * x + c)


def transposed(x, y):
    return x.T * np.sin(y)


def _cases(rng, dtype):
    n = lambda *shape: rng.standard_normal(shape).astype(dtype)   # noqa: E731
    return [(rows_plus_vector, (n(333, 301), n(301))),
            (rows_plus_column, (n(333, 301), n(333, 1))),
            (flat, (n(100_003),)),
            (rank_3, (n(7, 50, 301), np.abs(n(50, 1)))),
            (transposed, (n(301, 333), n(333, 301)))]


def _jobs() -> int:
    return threads.info()["jobs"]


def _serially(compiled, *args):
    threads.set_threads(1)
    try:
        before = _jobs()
        out = compiled(*args)
        assert _jobs() == before
        return out
    finally:
        threads.set_threads(threads.default_threads())


def _close(got, want):
    tol = 1e-6 if got.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_loops_on_the_pool_give_the_serial_bits(dtype, rng):
    if threads.default_threads() < 2:
        pytest.skip("one CPU: loops run on their caller")
    for fn, args in _cases(rng, dtype):
        compiled = sxad.jit(fn)
        compiled(*args)
        threads.set_threads(threads.default_threads())   # no backing off from earlier contention
        before = _jobs()
        got = compiled(*args)
        assert _jobs() > before, fn.__name__        # it really ran on the pool
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, _serially(compiled, *args), err_msg=fn.__name__)
        _close(got, fn(*args))


def test_a_loaded_machine_gives_the_same_bits(rng):
    """With both CPUs busy elsewhere, workers are descheduled mid-chunk and the pool may back
    off to serial loops (``threads.WAIT_SLACK``; set_threads forgets it): results are the same
    bits either way."""
    if threads.default_threads() < 2:
        pytest.skip("one CPU: loops run on their caller")
    x = rng.standard_normal(200_003)
    compiled = sxad.jit(flat)
    want = compiled(x)
    threads.set_adaptive(True)    # as outside the test suite
    hog = _Hog()                  # both CPUs busy: workers get descheduled
    try:
        for _ in range(200):
            np.testing.assert_array_equal(compiled(x), want)
    finally:
        hog.stop()
        threads.set_adaptive(False)
    threads.set_threads(threads.default_threads())
    assert threads.info()["penalty"] == 0
    before = _jobs()
    compiled(x)
    assert _jobs() == before + 1


class _Hog:
    """Two busy subprocesses (plain Python loops) for the duration of a test."""

    def __init__(self) -> None:
        import subprocess
        import sys
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(2)]

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def test_small_and_empty_arrays_stay_on_the_caller(rng):
    compiled = sxad.jit(rows_plus_vector)
    before = _jobs()
    for shape in [(3, 4), (0, 301), (333, 0), (1, 1)]:
        x, b = rng.standard_normal(shape), rng.standard_normal(shape[1])
        _close(compiled(x, b), rows_plus_vector(x, b))
    assert _jobs() == before


def _twin_loops(x, y):
    return np.tanh(x) * 2.0 + x, np.tanh(y) * 2.0 + y


def _different_loops(x, y):
    return np.tanh(x) * 2.0 + x, np.exp(y) * 2.0 + y


def test_identical_loops_are_compiled_once():
    """``arrays.shared``: a kernel emitting the same loop twice keeps one function for both."""
    import re
    x, y = np.linspace(-1, 1, 5), np.linspace(0, 2, 5)
    count = {}
    for fn in (_twin_loops, _different_loops):
        text = sxad.source(sxad.jit(fn), x, y, stage="llvm")
        count[fn] = len(re.findall(r'define internal void @"?sxad\.chunk', text))
        for got, want in zip(sxad.jit(fn)(x, y), fn(x, y)):
            np.testing.assert_allclose(got, want, rtol=1e-15)
    assert count[_twin_loops] == 1 and count[_different_loops] == 2
