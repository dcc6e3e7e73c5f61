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
        before = _jobs()
        got = compiled(*args)
        assert _jobs() > before, fn.__name__        # it really ran on the pool
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, _serially(compiled, *args), err_msg=fn.__name__)
        _close(got, fn(*args))


def test_small_and_empty_arrays_stay_on_the_caller(rng):
    compiled = sxad.jit(rows_plus_vector)
    before = _jobs()
    for shape in [(3, 4), (0, 301), (333, 0), (1, 1)]:
        x, b = rng.standard_normal(shape), rng.standard_normal(shape[1])
        _close(compiled(x, b), rows_plus_vector(x, b))
    assert _jobs() == before
