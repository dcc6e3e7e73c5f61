"""Threads: many threads making their first call of a function at once compile it once and all
get the right answer; kernels with loops release the GIL while they run, so other Python
threads go on meanwhile (docs/RELIABILITY.md, "Concurrency"). No timing is asserted."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import codegen
import sxad
from sxad import api

THREADS = 8


def _together(work, n: int = THREADS) -> list:
    """``work(k)`` in ``n`` threads released at the same moment; their results in order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def run(k: int) -> None:
        barrier.wait()
        try:
            results[k] = work(k)
        except BaseException as err:   # noqa: BLE001 — reported by the test
            errors.append(err)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def looped(x, n):
    s = 0.0
    for i in range(n):
        s = s + np.sin(x * i) * x
    return s


def test_first_calls_in_many_threads_compile_once():
    g = sxad.grad(looped)
    kernels, compiled = api.stats["kernels"], codegen.cache.stats["compiled"]
    results = _together(lambda k: g(0.5, 200))
    assert api.stats["kernels"] == kernels + 1
    assert codegen.cache.stats["compiled"] == compiled + 1
    assert results == [g(0.5, 200)] * THREADS
    assert results[0] == pytest.approx(sxad.grad(looped, mode="forward")(0.5, 200), rel=1e-12)


def test_threads_share_nothing_but_the_compiled_code():
    """Different functions and signatures at once; each thread's tape is its own."""
    def straight(x, y):
        return x * y + np.exp(x)

    def work(k: int):
        if k % 2:
            return sxad.value_and_grad(straight, wrt=(0, 1))(0.25 * k, 2.0)
        return sxad.grad(looped)(0.1 * k, 50 + k)
    expected = [work(k) for k in range(THREADS)]
    for _ in range(3):
        assert _together(work) == expected


def spin(x, n):
    k = 0
    while k < n:
        x = np.sin(x) + 0.5
        k += 1
    return x


def test_loop_kernels_release_the_gil_and_straight_line_kernels_keep_it():
    assert "PyEval_SaveThread" in sxad.source(spin, 0.5, 10, stage="llvm")
    straight = sxad.source(lambda x: x * 2.0 + 1.0, 0.5, stage="llvm")
    assert "PyEval_SaveThread" not in straight


def _main_thread_ran_during(call) -> bool:
    """Whether this thread got to run Python while another thread was inside ``call()``.

    With a huge switch interval Python never takes the GIL from a thread: it changes hands
    only when its holder blocks or releases it. This thread waits for the worker to start
    (releasing the GIL); the worker then calls the kernel without yielding. If the kernel
    keeps the GIL, this thread can run only once the worker has finished; if it releases it,
    this thread runs while ``call()`` is still in progress."""
    started, finished = threading.Event(), threading.Event()

    def worker() -> None:
        started.set()
        call()
        finished.set()
    before = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait()
        during = not finished.is_set()
        thread.join()
    finally:
        sys.setswitchinterval(before)
    return during


def test_python_runs_while_a_kernel_runs():
    jitted, grad = sxad.jit(spin), sxad.grad(spin)
    jitted(0.5, 10), grad(0.5, 10)   # compiled and installed first
    assert any(_main_thread_ran_during(lambda: jitted(0.5, 20_000_000)) for _ in range(3))
    assert any(_main_thread_ran_during(lambda: grad(0.5, 2_000_000)) for _ in range(3))


def test_the_probe_sees_a_kernel_that_keeps_the_gil():
    """The same probe on a builtin that holds the GIL while it works: never during."""
    data = np.random.default_rng(0).random(200_000)
    assert not _main_thread_ran_during(lambda: sorted(data.tolist()))


def test_threads_run_kernels_side_by_side_correctly():
    expected = sxad.grad(spin)(0.3, 20_000)
    assert _together(lambda k: sxad.grad(spin)(0.3, 20_000), 4) == [expected] * 4


@pytest.fixture
def small_tape():
    before = codegen.tape_limit()
    codegen.set_tape_limit(1 << 20)
    yield
    codegen.set_tape_limit(before)


def test_a_fault_in_one_thread_leaves_the_others_alone(small_tape):
    g = sxad.grad(spin)
    expected = g(0.3, 1000)

    def work(k: int):
        if k % 2:
            with pytest.raises(MemoryError):
                g(0.3, 10 ** 9)
            return None
        return g(0.3, 1000)
    assert _together(work) == [expected, None] * (THREADS // 2)
