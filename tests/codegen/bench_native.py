"""Measurements of the native backend (run as a script; prints, asserts nothing):
per-call time of a builtin, compile time cold, from the disk cache, from memory.

    python tests/codegen/bench_native.py
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import timeit

sys.path[:0] = [os.path.dirname(__file__), os.path.join(os.path.dirname(__file__), "..", "..")]
os.environ["SXAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="sxad-bench-")
atexit.register(shutil.rmtree, os.environ["SXAD_CACHE_DIR"], True)

import codegen  # noqa: E402
from codegen import cache  # noqa: E402
from sxad.ir import F64  # noqa: E402

import native_programs as P  # noqa: E402


def per_call_ns(fn, *args, number: int = 200_000) -> float:
    timer = timeit.Timer(lambda: fn(*args))
    return min(timer.repeat(7, number)) / number * 1e9


def ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    scalar = P.make_func("axy", [("x", F64), ("y", F64)],
                         lambda b, x, y: [b.add(b.mul(x, y), b.sin(x))])
    first = ms(lambda: codegen.compile_native(scalar))
    native = codegen.compile_native(scalar)

    def python(x, y):
        return x * y + math.sin(x)
    stmt = "native(1.5, 2.5)"
    loop_ns = min(timeit.Timer(stmt, globals={"native": native}).repeat(7, 1_000_000)) * 1e3
    print(f"per call, 2-arg scalar builtin (timeit '{stmt}'): {loop_ns:.1f} ns")
    print(f"per call, through a lambda:        {per_call_ns(native, 1.5, 2.5):.1f} ns")
    print(f"per call, plain Python x*y + sin(x): {per_call_ns(python, 1.5, 2.5):.1f} ns")
    print(f"first compile in the process (one-time setup included): {first:.1f} ms")
    programs = [("2-arg scalar", lambda: scalar), ("nested loops", P.nested_loops),
                ("tape round trip", P.tape_roundtrip), ("every f64 unary", P.f64_unary_all)]
    for label, build in programs:
        func = build()
        cold, disk, memory = [], [], []
        for _ in range(5):
            cache.clear()
            cold.append(ms(lambda: codegen.compile_kernel(func)))
            cache.memory.clear()
            disk.append(ms(lambda: codegen.compile_kernel(func)))
            memory.append(ms(lambda: codegen.compile_kernel(func)))
        print(f"{label:16s} compile cold {statistics.median(cold):6.1f} ms | disk hit "
              f"{statistics.median(disk):5.2f} ms | memory hit {statistics.median(memory):5.2f} ms")
    print(dict(cache.stats))


if __name__ == "__main__":
    main()
