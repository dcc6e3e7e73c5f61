"""MLP training-step benchmark (a script, not a test): prints a markdown table.

    python benchmarks/bench_mlp.py [--quick]

Milliseconds per training step — forward pass, softmax cross-entropy, backward pass, SGD update
in place — for two sizes, float32, sigmoid hidden layers:

- digits: 64-128-10, batch 128 (the shape of ``examples/mlp_digits.py``);
- MNIST-sized: 784-512-512-10, batch 256, random data.

Rows: sxad (the step compiled whole into one kernel), a hand-written numpy backprop, and
PyTorch / JAX (``jax.jit`` with donated buffers) when installed. The "sgemm bound" row is the
step's matrix-product FLOPs at the machine's measured sgemm rate (the fastest of numpy's
OpenBLAS and sxad's own kernel on 1024² products, both on every core, in a process of their own,
and sxad's kernel timed again between the runs of sxad's step, under the same load), the floor
a matmul-bound step cannot beat. Also: the first call's compile
time, cold and from the on-disk cache, each in a fresh process (Python's bytecode of sxad
written beforehand, as an installed package has it).

Every row is measured in a fresh process of its own (``--row``): a framework's threads keep
spinning for a while after its work (OpenBLAS's, PyTorch's OpenMP team, XLA's pool) and, on a
small machine, slow whichever framework is measured next. Each such process runs with glibc's
malloc keeping freed blocks up to 256 MB (``MALLOC_MMAP_THRESHOLD_``…), the setting sxad's
runtime makes at import (``codegen.runtime.keep_large_blocks``): with glibc's defaults every
large temporary is mapped and its pages faulted in anew, which cost numpy's MNIST step 6.7 ms
instead of 4.2 here; the rows compare the computations, not the allocator settings.
"""
from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
import textwrap
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

SIZES = {"digits": ((64, 128, 10), 128), "mnist": ((784, 512, 512, 10), 256)}
LR = np.float32(0.1)


def make_problem(sizes: tuple[int, ...], batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(np.float32))
        params.append(np.zeros(fan_out, np.float32))
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    return params, x, y


# ---------------------------------------------------------------- the hand-written baseline
def numpy_step(params: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: np.float32) -> float:
    """Backpropagation written out by hand (the seed's eq. 3.6x), updating params in place."""
    acts = [x]
    layers = len(params) // 2
    for k in range(layers):
        z = acts[-1] @ params[2 * k].T + params[2 * k + 1]
        acts.append(z if k == layers - 1 else 1.0 / (1.0 + np.exp(-z)))
    logits = acts[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.mean(shifted[np.arange(n), y] - np.log(total[:, 0]))
    delta = e / total
    delta[np.arange(n), y] -= 1.0
    delta /= n
    for k in reversed(range(layers)):
        a = acts[k]
        dW = delta.T @ a
        db = delta.sum(axis=0)
        if k > 0:
            delta = (delta @ params[2 * k]) * a * (1.0 - a)
        params[2 * k] -= lr * dW
        params[2 * k + 1] -= lr * db
    return float(loss)


def torch_step_factory(params, x, y):
    import torch
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    xt, yt = torch.tensor(x), torch.tensor(y)

    def step():
        a = xt
        layers = len(ps) // 2
        for k in range(layers):
            a = a @ ps[2 * k].T + ps[2 * k + 1]
            if k < layers - 1:
                a = torch.sigmoid(a)
        loss = torch.nn.functional.cross_entropy(a, yt)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            for p, g in zip(ps, grads):
                p -= LR * g
        return loss
    return step


def jax_step_factory(params, x, y):
    import jax
    import jax.numpy as jnp

    def loss_fn(ps, x, y):
        a = x
        layers = len(ps) // 2
        for k in range(layers):
            a = a @ ps[2 * k].T + ps[2 * k + 1]
            if k < layers - 1:
                a = jax.nn.sigmoid(a)
        logp = jax.nn.log_softmax(a)
        return -jnp.mean(logp[jnp.arange(x.shape[0]), y])

    @jax.jit
    def update(ps, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(ps, x, y)
        return [p - LR * g for p, g in zip(ps, grads)], loss

    update = jax.jit(update, donate_argnums=0)
    state = {"ps": [jnp.asarray(p) for p in params]}
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def step():
        state["ps"], loss = update(state["ps"], xj, yj)
        return loss.block_until_ready()
    return step


def sxad_step_factory(params, x, y):
    from mlp_digits import make_step  # the example's step: user-level Python, compiled whole
    step = make_step(len(params) // 2, activation="sigmoid", loss="softmax_ce", optimizer="sgd")
    ps = [p.copy() for p in params]
    return lambda: step(tuple(ps), (), x, y, LR)


# ---------------------------------------------------------------- measuring
#: Timed runs per row, the best kept (the sgemm rate likewise): on a shared machine the best of
#: 5 still varied by ±3% between invocations, of 15 by about ±1.5%.
REPEATS = 15


def ms_per_step(step, number: int) -> float:
    step()
    runs = timeit.repeat(step, number=number, repeat=REPEATS)
    return min(runs) / number * 1e3


def ms_and_sgemm(step, number: int) -> tuple[float, float]:
    """``ms_per_step``, and sxad's 1024² sgemm rate timed between its runs: the step and the
    bound it is compared with measured under the same load (on a shared machine, the rate
    measured in another process a few seconds apart differed by up to 7%)."""
    import sxad
    from codegen import prefetch
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    square = sxad.jit(_square)
    step(), square(a)
    prefetch.wait()
    steps, products = [], []
    for _ in range(REPEATS):
        steps.append(timeit.timeit(step, number=number))
        products.append(timeit.timeit(lambda: square(a), number=5))
    return min(steps) / number * 1e3, 2 * 1024 ** 3 / (min(products) / 5) / 1e9


def sgemm_gflops() -> tuple[float, str]:
    """The machine's sgemm rate: the faster of numpy's OpenBLAS and sxad's kernel (1024²)."""
    import sxad
    from codegen import prefetch
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    ours = sxad.jit(_square)
    ours(a)
    prefetch.wait()                      # sxad's gemm kernel built (on a cold machine)
    rates = {}   # sxad's first: OpenBLAS's threads spin on after its products
    for name, fn in (("sxad's kernel", lambda: ours(a)), ("numpy's OpenBLAS", lambda: a @ a)):
        best = min(timeit.repeat(fn, number=5, repeat=REPEATS)) / 5
        rates[name] = 2 * 1024 ** 3 / best / 1e9
    name = max(rates, key=rates.get)
    return rates[name], name


def _square(a):
    return a @ a


def matmul_flops(sizes: tuple[int, ...], batch: int) -> float:
    """Forward z = a·Wᵀ per layer, backward dW = δᵀ·a per layer and δ·W for all but the first."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(2 * batch * i * o for i, o in pairs)
    backward = forward + sum(2 * batch * i * o for i, o in pairs[1:])
    return forward + backward


FRAMEWORKS = {"sxad": ("sxad (one compiled step)", sxad_step_factory),
              "numpy": ("numpy (hand-written backprop)",
                        lambda p, x, y: (lambda: numpy_step(p, x, y, LR))),
              "torch": ("PyTorch (eager, autograd)", torch_step_factory),
              "jax": ("JAX (jit, donated buffers)", jax_step_factory)}


def one_row(framework: str, label: str, quick: bool) -> str:
    """``--row``: ms per step of one framework at one size, in this process: a number, or
    why there is none."""
    sizes, batch = SIZES[label]
    params, x, y = make_problem(sizes, batch)
    number = 20 if label == "mnist" else 200
    number = max(2, number // 10) if quick else number
    try:
        step = FRAMEWORKS[framework][1]([p.copy() for p in params], x, y)
        if framework == "sxad":
            return repr(ms_and_sgemm(step, number))
        return repr(ms_per_step(step, number))
    except ImportError as err:
        return f"not installed ({err.name})"
    except Exception as err:  # a benchmark reports what failed and goes on
        return f"failed: {type(err).__name__}: {str(err)[:80]}"


#: glibc's malloc as sxad's runtime sets it (codegen.runtime.LARGE_BLOCK), for every row
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(512 << 20)}


def in_fresh_process(*args: str) -> str:
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                          capture_output=True, text=True, env=dict(os.environ, **MALLOC))
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        return f"failed: {lines[-1][:80]}"
    return done.stdout.strip().splitlines()[-1]


def try_row(framework: str, label: str, quick: bool
            ) -> tuple[str, float | None, str, float | None]:
    """(name, ms per step or None, why not, sxad's sgemm rate measured alongside or None)."""
    out = in_fresh_process("--row", framework, label, *(["--quick"] if quick else []))
    name = FRAMEWORKS[framework][0]
    try:
        value = ast.literal_eval(out)
    except (ValueError, SyntaxError):
        return name, None, out, None
    ms, rate = value if isinstance(value, tuple) else (value, None)
    return name, float(ms), "", rate


def size_table(label: str, quick: bool, rate: tuple[float, str]) -> list[tuple[str, str, str]]:
    gflops, source = rate
    sizes, batch = SIZES[label]
    rows = [try_row(framework, label, quick) for framework in FRAMEWORKS]
    alongside = rows[0][3]
    if alongside is not None and alongside > gflops:
        gflops, source = alongside, "sxad's kernel, timed between the step's runs"
    base = rows[1][1]
    out = []
    for name, ms, note, _ in rows:
        if ms is None:
            out.append((f"{label}: {name}", "—", note))
        else:
            ratio = f"{ms / base:.2f}× numpy" if base else ""
            out.append((f"{label}: {name}", f"{ms:.3f} ms", ratio))
    bound = matmul_flops(sizes, batch) / (gflops * 1e9) * 1e3
    ours = rows[0][1]
    against = f"; sxad's step {ours / bound:.2f}× it" if ours else ""
    out.append((f"{label}: sgemm bound", f"{bound:.3f} ms",
                f"{matmul_flops(sizes, batch) / 1e6:.0f} MFLOP at {gflops:.0f} GFLOP/s "
                f"({source}, 1024²){against}"))
    return out


COMPILE_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {examples!r})
    import numpy as np
    t0 = time.perf_counter()
    from mlp_digits import make_step
    import sxad
    {preload}
    step = make_step(1, activation="sigmoid", loss="softmax_ce", optimizer="sgd")
    rng = np.random.default_rng(0)
    ps = (np.zeros((128, 64), np.float32), np.zeros(128, np.float32),
          np.zeros((10, 128), np.float32), np.zeros(10, np.float32))
    x = rng.standard_normal((128, 64)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    t1 = time.perf_counter()
    step(ps, (), x, y, np.float32(0.1))
    print(time.perf_counter() - t1)
""")


def compile_times() -> list[tuple[str, str, str]]:
    """Each in a fresh process, with Python's bytecode of sxad, codegen and the example
    written first, as an installed package has it (an editable install under
    PYTHONDONTWRITEBYTECODE, as on our CI machines, recompiles ~25 stale modules from source
    in every process: ~80 ms more)."""
    import compileall
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
    import codegen
    import sxad
    for package in (sxad, codegen):
        compileall.compile_dir(os.path.dirname(package.__file__), quiet=1)
    compileall.compile_dir(examples, quiet=1, maxlevels=0)
    scripts = [COMPILE_SCRIPT.format(examples=examples, preload=preload)
               for preload in ("", "", "import codegen  # LLVM and the native backend loaded")]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SXAD_CACHE_DIR=cache)
        times = []
        for script in scripts:
            done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                  text=True)
            if done.returncode != 0:
                return [("first call of the digits step", "—",
                         "failed: " + done.stderr.strip().splitlines()[-1][:80])]
            times.append(float(done.stdout.strip()))
    return [("first call of the digits step, cold", f"{times[0] * 1e3:.0f} ms",
             "transform + optimize + LLVM compile"),
            ("first call, from the on-disk cache", f"{times[1] * 1e3:.0f} ms",
             "fresh process, importing llvmlite and codegen on the way"),
            ("first call, from the on-disk cache, codegen imported", f"{times[2] * 1e3:.0f} ms",
             "fresh process")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--row", nargs=2, metavar=("FRAMEWORK", "SIZE"),
                        help="print one row's ms per step, measured in this process (for "
                             "sxad: and the sgemm rate timed between its runs)")
    parser.add_argument("--sgemm", action="store_true",
                        help="print the sgemm rate, measured in this process")
    args = parser.parse_args()
    if args.row:
        print(one_row(*args.row, args.quick))
        return
    if args.sgemm:
        print(repr(sgemm_gflops()))
        return
    gflops = ast.literal_eval(in_fresh_process("--sgemm"))
    rows = size_table("digits", args.quick, gflops) + size_table("mnist", args.quick, gflops)
    rows += compile_times()
    print("| measurement | time | note |\n|---|---|---|")
    for what, value, note in rows:
        print(f"| {what} | {value} | {note} |")


if __name__ == "__main__":
    main()
