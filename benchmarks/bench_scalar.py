"""Scalar benchmarks (a script, not a test): prints a markdown table.

    python benchmarks/bench_scalar.py

1. per-call time of ``sxad.grad(f, wrt=(0, 1))`` on the seed function against a hand-written
   Python gradient, and against JAX ``jit(grad)`` / PyTorch eager when they are installed;
2. gradient/primal time ratio on a loop of 10⁶ iterations;
3. compile time of a gradient, cold and from the on-disk cache, each in a fresh process.
"""
from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import timeit

import numpy as np

import sxad

ROWS: list[tuple[str, str, str]] = []


def seed(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def seed_grad_by_hand(x1, x2):
    return 1.0 / x1 + x2, x1 - np.cos(x2)


def seed_grad_by_hand_math(x1, x2):
    return 1.0 / x1 + x2, x1 - math.cos(x2)


def long_loop(x, n):
    s = 0.0
    for i in range(n):
        s = s + np.sin(x * i) * x
    return s


def per_call_ns(fn, *args, number=200_000) -> float:
    fn(*args)
    runs = timeit.repeat(lambda: fn(*args), number=number, repeat=7)
    return min(runs) / number * 1e9


def row(what: str, value: str, note: str = "") -> None:
    ROWS.append((what, value, note))
    print(f"{what:55s} {value:>14s}  {note}", file=sys.stderr)


def call_overhead() -> None:
    g = sxad.grad(seed, wrt=(0, 1))
    ours = per_call_ns(g, 2.0, 5.0)
    row("sxad.grad(seed, wrt=(0, 1)) per call", f"{ours:.0f} ns")
    hand = per_call_ns(seed_grad_by_hand, 2.0, 5.0)
    row("hand-written Python gradient (np.cos)", f"{hand:.0f} ns", f"sxad is {hand / ours:.1f}x")
    hand_math = per_call_ns(seed_grad_by_hand_math, 2.0, 5.0)
    row("hand-written Python gradient (math.cos)", f"{hand_math:.0f} ns",
        f"sxad is {hand_math / ours:.1f}x")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jg = jax.jit(jax.grad(lambda a, b: jax.numpy.log(a) + a * b - jax.numpy.sin(b),
                              argnums=(0, 1)))
        t = per_call_ns(lambda a, b: [float(v) for v in jg(a, b)], 2.0, 5.0, number=5_000)
        row("JAX jit(grad) per call", f"{t:.0f} ns", f"sxad is {t / ours:.0f}x faster")
    except ImportError:
        row("JAX jit(grad) per call", "not installed")
    try:
        import torch

        def torch_grad(a, b):
            x1 = torch.tensor(a, dtype=torch.float64, requires_grad=True)
            x2 = torch.tensor(b, dtype=torch.float64, requires_grad=True)
            (torch.log(x1) + x1 * x2 - torch.sin(x2)).backward()
            return float(x1.grad), float(x2.grad)
        t = per_call_ns(torch_grad, 2.0, 5.0, number=2_000)
        row("PyTorch eager backward per call", f"{t:.0f} ns", f"sxad is {t / ours:.0f}x faster")
    except ImportError:
        row("PyTorch eager backward per call", "not installed")


def loop_ratio() -> None:
    n = 1_000_000
    primal, grad = sxad.jit(long_loop), sxad.grad(long_loop)
    t_primal = min(timeit.repeat(lambda: primal(0.3, n), number=3, repeat=5)) / 3
    t_grad = min(timeit.repeat(lambda: grad(0.3, n), number=3, repeat=5)) / 3
    row("loop of 10^6 iterations: primal", f"{t_primal * 1e3:.2f} ms")
    row("loop of 10^6 iterations: gradient", f"{t_grad * 1e3:.2f} ms",
        f"gradient/primal = {t_grad / t_primal:.2f}")


COMPILE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    t0 = time.perf_counter()
    import numpy as np, sxad
    from benchmarks.bench_scalar import long_loop
    g = sxad.grad(long_loop)
    t1 = time.perf_counter()
    g(0.3, 10)
    t2 = time.perf_counter()
    print(t2 - t1)
""")


def compile_times() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SXAD_CACHE_DIR=cache)
        script = COMPILE.format(root=root)
        runs = [float(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                     capture_output=True, text=True).stdout) for _ in range(4)]
    row("first gradient call, cold (transform + compile)", f"{runs[0] * 1e3:.0f} ms",
        "fresh process, empty cache")
    row("first gradient call, from the disk cache", f"{statistics.median(runs[1:]) * 1e3:.0f} ms",
        "fresh process: no transform, no LLVM compile; ~25 ms of it loads llvmlite")


def main() -> None:
    call_overhead()
    loop_ratio()
    compile_times()
    print("| measurement | value | note |\n|---|---|---|")
    for what, value, note in ROWS:
        print(f"| {what} | {value} | {note} |")


if __name__ == "__main__":
    main()
