"""Building the runtime library ahead of need, and off the caller's path.

The first kernel with arrays a machine ever compiles also compiles the runtime-library modules
it calls (``helpers``: ~20–35 ms of LLVM each; the digits training step needs six). Which ones
is known only once the kernel's code exists, after parsing, differentiation and emitting LLVM
IR — Python work during which LLVM sits idle. ``prefetch`` guesses them from the argument
types (the heap and the pool; for each float dtype its copy, sums and maxima — reductions,
softmax, log-sum-exp — and, given a matrix, its gemm) and compiles the ones missing from the
disk cache on a background thread while that Python work runs. llvmlite serializes every LLVM
call behind one lock, so the two threads never run LLVM at once: the gain is the overlap with
Python work, not two compilers. A wrong guess costs a module compiled for later use.

``later`` runs any such build in the background: the gemm kernel (~0.25 s of LLVM) is built
that way while products run on OpenBLAS (``blas.emit_gemm_dispatch``), started only once the
kernel being compiled is loaded (``after_compile``): it would otherwise hold llvmlite's lock
while that kernel waits to compile.

On a machine whose cache holds the library (every call but the very first), ``prefetch`` only
checks a few file names.
"""
from __future__ import annotations

import atexit
import threading
from typing import Callable, Iterable

from sxad.ir import F32, F64, ArrayType, Prim

from . import blas, helpers, threads
from .arrays import ELEM_SIZE

_started: set[str] = set()
_threads: list[threading.Thread] = []
_deferred: list[Callable[[], object]] = []
_lock = threading.Lock()


def predicted(arrays: Iterable[ArrayType]) -> list[str]:
    """The runtime-library modules a kernel taking ``arrays`` is likely to call: the heap and
    the pool; for each float dtype its copy, sums and maxima (reductions, softmax, log-sum-exp)
    and, given a matrix, its gemm (the dispatcher to OpenBLAS, or without OpenBLAS the kernel
    itself)."""
    arrays = list(arrays)
    wanted = [f"{helpers.PREFIX}heap", threads.MODULE] if arrays else []
    for dtype in sorted({a.dtype for a in arrays} & {F32, F64}, key=lambda d: d.name):
        wanted += [helpers.copy_name(ELEM_SIZE[dtype]), helpers.reduce_name(Prim.REDUCE_SUM, dtype),
                   helpers.reduce_name(Prim.REDUCE_MAX, dtype)]
        if any(a.dtype is dtype and a.rank >= 2 for a in arrays):
            wanted.append(blas.gemm_symbol(dtype) if blas.available() else blas.kernel_symbol(dtype))
    return list(dict.fromkeys(wanted))


def prefetch(arrays: Iterable[ArrayType]) -> threading.Thread | None:
    """Start building, on a background thread, the predicted modules of ``arrays`` that are
    neither loaded nor on disk; returns the thread (None: nothing to build)."""
    library = helpers.library()
    with _lock:
        missing = [name for name in predicted(arrays) if name not in _started
                   and name not in helpers.loaded() and not helpers.cached(name)]
        if not missing:
            return None
        _started.update(missing)
        symbols = [symbol for name in missing for symbol in library[name][1]]
    return later(lambda: helpers.ensure(symbols))


def after_compile(task: Callable[[], object]) -> None:
    """Run ``task`` on a background thread once the kernel being compiled now is loaded
    (``compiled``): a long build (the gemm kernel, ~0.25 s of LLVM) started during a first
    call would hold llvmlite's lock while that call's own kernel waits to compile."""
    with _lock:
        _deferred.append(task)


def compiled() -> None:
    """A kernel has been compiled and loaded: start the deferred builds."""
    with _lock:
        tasks, _deferred[:] = list(_deferred), []
    for task in tasks:
        later(task)


def later(task: Callable[[], object]) -> threading.Thread:
    """Run ``task`` (building runtime-library modules) on a background thread; its errors
    are dropped: whoever needs the module next builds it again and reports them in context.
    The interpreter waits for the thread at exit (never LLVM running under its shutdown)."""
    def run() -> None:
        try:
            task()
        except Exception:   # noqa: BLE001
            pass
    thread = threading.Thread(target=run, name="sxad-prefetch", daemon=True)
    with _lock:
        if not _threads:
            atexit.register(wait)
        _threads.append(thread)
    thread.start()
    return thread


def wait() -> None:
    """Wait until everything started in the background is built."""
    for thread in list(_threads):
        thread.join()
