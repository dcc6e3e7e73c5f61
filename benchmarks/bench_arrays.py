"""Array benchmarks (a script, not a test): prints a markdown table.

    python benchmarks/bench_arrays.py [--quick]

1. fused elementwise chains against numpy (one pass over memory against numpy's temporaries),
   10⁴ and 10⁶ elements, float32 and float64: a reduction,
   ``np.sum(np.tanh(x) * np.exp(-x * x) + 1 / (1 + np.exp(-x)))``, and the same chain giving an
   array; target: sxad ≥ 3× numpy;
2. value and gradient of log-sum-exp and of a Gaussian-mixture log-likelihood
   (``tests/arrays/corpus_arrays.py``) against sxad's own primal (target ratio ≤ 3) and against
   numpy's primal;
3. a matmul-heavy function, a 2-layer MLP forward on 512×512, against numpy (target: within 10%;
   both call the same OpenBLAS).

sxad runs large loops on its thread pool (every core, ``SXAD_THREADS``); part 1 also shows
sxad on one thread, against numpy's one. PyTorch (eager) and JAX (``jit``) rows appear when
they are installed, each with its own default threads. Times are the best of several repeats
(the machine is shared: the minimum is the least disturbed run).
"""
from __future__ import annotations

import argparse
import os
import sys
import timeit
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

# The corpus lives with the tests; the repository root comes first so that ``codegen`` is the
# package, not the tests' folder of that name.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import sxad  # noqa: E402
from arrays.corpus_arrays import gaussian_mixture, logsumexp  # noqa: E402

ROWS: list[tuple[str, str, str]] = []
QUICK = False


# ---------------------------------------------------------------- the functions
def chain_sum(x):
    return np.sum(np.tanh(x) * np.exp(-x * x) + 1 / (1 + np.exp(-x)))


def chain_map(x):
    return np.tanh(x) * np.exp(-x * x) + 1 / (1 + np.exp(-x))


def mlp_forward(x, W1, b1, W2, b2):
    return np.tanh(x @ W1 + b1) @ W2 + b2


def logsumexp_numpy_grad(x):
    """The gradient by hand, for the table's reference: softmax(x)."""
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


# ---------------------------------------------------------------- measuring
def best(fn: Callable[[], object], budget: float = 0.25) -> float:
    """Seconds per call: the best of repeats of a batch sized to take ~``budget`` seconds."""
    fn()
    once = min(timeit.repeat(fn, number=1, repeat=3))
    number = max(1, int(budget / max(once, 1e-7)))
    repeat = 3 if QUICK else 7
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def row(what: str, seconds: float | None, note: str = "") -> None:
    value = "—" if seconds is None else fmt(seconds)
    ROWS.append((what, value, note))
    print(f"{what:62s} {value:>12s}  {note}", file=sys.stderr)


LATER: list[Callable[[], None]] = []


def framework(name: str, make: Callable[[], Callable[[], object]], ours: float) -> None:
    """A PyTorch or JAX row, measured after every sxad and numpy row: their thread pools,
    once started, compete with OpenBLAS's threads and sxad's loops on a small machine."""
    def measure() -> None:
        try:
            seconds = best(make())
        except ImportError as err:
            row(name, None, f"not installed ({err.name})")
        except Exception as err:  # a benchmark reports what failed and goes on
            row(name, None, f"failed: {type(err).__name__}: {str(err)[:80]}")
        else:
            row(name, seconds, f"time / sxad = {seconds / ours:.2f} (> 1: sxad faster)")
    LATER.append(measure)


@contextmanager
def one_thread() -> Iterator[None]:
    """sxad's loops on their caller only (the pool set to one thread)."""
    from codegen import threads
    threads.set_threads(1)
    try:
        yield
    finally:
        threads.set_threads(threads.default_threads())


def torch_fn(fn, *arrays):
    import torch
    tensors = [torch.from_numpy(a) for a in arrays]
    return lambda: fn(torch, *tensors)


def jax_fn(fn, *arrays):
    import jax
    jax.config.update("jax_enable_x64", True)
    jitted = jax.jit(lambda *a: fn(jax.numpy, *a))
    inputs = [jax.numpy.asarray(a) for a in arrays]
    return lambda: jax.block_until_ready(jitted(*inputs))


def versus(label: str, ours: float, other: float | None, target: str = "") -> str:
    if other is None:
        return ""
    return f"{label}: sxad {other / ours:.2f}× faster" + (f" ({target})" if target else "")


# ---------------------------------------------------------------- 1. fused elementwise chains
def chain_lib(lib, x):
    return lib.sum(lib.tanh(x) * lib.exp(-x * x) + 1 / (1 + lib.exp(-x)))


def chain_map_lib(lib, x):
    return lib.tanh(x) * lib.exp(-x * x) + 1 / (1 + lib.exp(-x))


def elementwise() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for n in (10 ** 4, 10 ** 6):
            x = rng.normal(size=n).astype(dtype)
            name = f"{np.dtype(dtype).name}, n = 10^{int(np.log10(n))}"
            for fn, lib_fn, kind in ((chain_sum, chain_lib, "sum of chain"),
                                     (chain_map, chain_map_lib, "chain, array out")):
                f = sxad.jit(fn)
                f32 = dtype is np.float32
                np.testing.assert_allclose(f(x), fn(x), rtol=1e-4 if f32 else 1e-10,
                                           atol=1e-6 if f32 else 1e-14)
                ours = best(lambda: f(x))
                with one_thread():
                    single = best(lambda: f(x))
                numpy = best(lambda: fn(x))
                row(f"{kind}, {name}: sxad", ours,
                    versus("numpy", ours, numpy, "target ≥ 3×"))
                row(f"{kind}, {name}: sxad, 1 thread", single, versus("numpy", single, numpy))
                row(f"{kind}, {name}: numpy", numpy)
                framework(f"{kind}, {name}: PyTorch eager",
                          lambda x=x, lib_fn=lib_fn: torch_fn(lib_fn, x), ours)
                framework(f"{kind}, {name}: JAX jit",
                          lambda x=x, lib_fn=lib_fn: jax_fn(lib_fn, x), ours)


# ---------------------------------------------------------------- 2. value and gradient
def logsumexp_lib(lib, x):
    m = lib.max(x)
    return m + lib.log(lib.sum(lib.exp(x - m)))


def mixture_lib(lib, x, mu, log_sigma, logits):
    sigma = lib.exp(log_sigma)
    z = (x[:, None] - mu) / sigma
    log_w = logits - lib.log(lib.sum(lib.exp(logits)))
    comp = log_w - 0.5 * z * z - log_sigma - 0.5 * np.log(2.0 * np.pi)
    m = comp.amax(1, keepdim=True) if lib.__name__ == "torch" else lib.max(comp, axis=1,
                                                                            keepdims=True)
    return lib.sum(m[:, 0] + lib.log(lib.sum(lib.exp(comp - m), axis=1)))


def torch_value_and_grad(fn, arrays, wrt):
    import torch
    tensors = [torch.from_numpy(a) for a in arrays]

    def run():
        leaves = [t.detach().requires_grad_(i in wrt) for i, t in enumerate(tensors)]
        value = fn(torch, *leaves)
        grads = torch.autograd.grad(value, [leaves[i] for i in wrt])
        return float(value.detach()), [g.numpy() for g in grads]
    return run


def jax_value_and_grad(fn, arrays, wrt):
    import jax
    jax.config.update("jax_enable_x64", True)
    vg = jax.jit(jax.value_and_grad(lambda *a: fn(jax.numpy, *a), argnums=wrt))
    inputs = [jax.numpy.asarray(a) for a in arrays]
    return lambda: jax.block_until_ready(vg(*inputs))


def gradients() -> None:
    rng = np.random.default_rng(1)
    n = 10 ** 6
    k = 8
    problems = [("log-sum-exp, n = 10^6", logsumexp, logsumexp_lib, (rng.normal(size=n),), (0,)),
                (f"Gaussian mixture, n = 10^5, k = {k}", gaussian_mixture, mixture_lib,
                 (rng.normal(size=10 ** 5), rng.normal(size=k), 0.3 * rng.normal(size=k),
                  rng.normal(size=k)), (0, 1, 2, 3))]
    for name, fn, lib_fn, args, wrt in problems:
        primal = sxad.jit(fn)
        vg = sxad.value_and_grad(fn, wrt=wrt)
        value, _ = vg(*args)
        np.testing.assert_allclose(value, fn(*args), rtol=1e-10)
        t_primal = best(lambda: primal(*args))
        t_vg = best(lambda: vg(*args))
        t_numpy = best(lambda: fn(*args))
        row(f"{name}: sxad primal", t_primal, versus("numpy primal", t_primal, t_numpy))
        row(f"{name}: sxad value_and_grad", t_vg,
            f"value_and_grad / primal = {t_vg / t_primal:.2f} (target ≤ 3); "
            f"/ numpy primal = {t_vg / t_numpy:.2f}")
        row(f"{name}: numpy primal", t_numpy)
        framework(f"{name}: PyTorch eager value and grad",
                  lambda a=args, w=wrt, g=lib_fn: torch_value_and_grad(g, a, w), t_vg)
        framework(f"{name}: JAX jit(value_and_grad)",
                  lambda a=args, w=wrt, g=lib_fn: jax_value_and_grad(g, a, w), t_vg)


# ---------------------------------------------------------------- 3. matmul-heavy
def mlp_lib(lib, x, W1, b1, W2, b2):
    return lib.tanh(x @ W1 + b1) @ W2 + b2


def matmul_heavy() -> None:
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        n = 512
        args = tuple(a.astype(dtype) for a in (
            rng.normal(size=(n, n)), rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n),
            rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n)))
        f = sxad.jit(mlp_forward)
        np.testing.assert_allclose(f(*args), mlp_forward(*args),
                                   rtol=1e-3 if dtype is np.float32 else 1e-9, atol=1e-4)
        ours = best(lambda: f(*args))
        numpy = best(lambda: mlp_forward(*args))
        name = f"2-layer MLP forward 512×512, {np.dtype(dtype).name}"
        row(f"{name}: sxad", ours, f"sxad / numpy = {ours / numpy:.2f} (target ≤ 1.10)")
        row(f"{name}: numpy", numpy)
        framework(f"{name}: PyTorch eager",
                  lambda a=args: torch_fn(mlp_lib, *a), ours)
        framework(f"{name}: JAX jit", lambda a=args: jax_fn(mlp_lib, *a), ours)


def main() -> None:
    global QUICK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", choices=["elementwise", "gradients", "matmul"],
                        help="one part of the table")
    options = parser.parse_args()
    QUICK = options.quick
    parts = {"elementwise": elementwise, "gradients": gradients, "matmul": matmul_heavy}
    for name, part in parts.items():
        if options.only in (None, name):
            part()
    for measure in LATER:
        measure()
    print("| measurement | time | note |\n|---|---|---|")
    for what, value, note in ROWS:
        print(f"| {what} | {value} | {note} |")


if __name__ == "__main__":
    main()
