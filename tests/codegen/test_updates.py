"""codegen.updates: ``W -= lr * (A @ B)`` accumulates into W inside the product (one gemm with
beta = 1) when that is safe, and runs as the separate ops otherwise — same values either way
(against numpy), nothing written when the call faults, aliasing and views handled."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import sxad
from codegen.updates import find_updates
from sxad.api import _Key, _program, _current   # the program a jit call compiles


def sgd(W, A, B, lr):
    W -= lr * (A @ B)
    return lr


def ascent(W, A, B, lr):
    W += (A @ B) * lr
    return lr


def plain(W, A, B):
    W -= A @ B
    return 0.0


def two_layers(W1, b1, W2, A, B, C, lr):
    W1 -= lr * (A @ B)
    b1 -= lr * np.sum(A, axis=0)
    W2 -= lr * (C.T @ A)
    return lr


def chained(W1, W2, A, B, lr):
    W1 -= lr * (A @ W2)      # reads W2, updated by a folded product: W1's is not folded
    W2 -= lr * (B @ A)
    return lr


def reads_itself(W, B, lr):
    W -= lr * (W.T @ B)
    return lr


def _matrices(rng, dtype, *shapes):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _llvm(fn, *args) -> str:
    return sxad.source(sxad.jit(fn), *args, stage="llvm")


def _folded(text: str) -> bool:
    """Whether a gemm of the kernel accumulates into its C (beta = 1)."""
    return re.search(r"call void @\"?sxad\.(rt\.gemm|blas\.[sd]gemm)[^\n]*"
                     r"(float|double) 1\.0+e\+00, ptr", text) is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [sgd, ascent])
def test_an_update_is_folded_into_its_product(fn, dtype):
    rng = np.random.default_rng(0)
    W, A, B = _matrices(rng, dtype, (48, 40), (48, 33), (33, 40))
    lr = dtype(0.25)
    want = W - lr * (A @ B) if fn is sgd else W + (A @ B) * lr
    jitted = sxad.jit(fn)
    jitted(W, A, B, lr)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(W, want, rtol=tol, atol=tol)
    assert _folded(_llvm(fn, W, A, B, lr))


def test_large_products_fold_on_the_kernel():
    """Past ``blas.PARALLEL_WORK`` the product runs on sxad's kernel on two threads, W as its
    C."""
    rng = np.random.default_rng(1)
    W, A, B = _matrices(rng, np.float32, (256, 512), (256, 300), (300, 512))
    want = W - np.float32(0.01) * (A @ B)
    sxad.jit(sgd)(W, A, B, np.float32(0.01))
    np.testing.assert_allclose(W, want, rtol=1e-5, atol=1e-5)
    assert _folded(_llvm(sgd, W, A, B, np.float32(0.01)))


def test_without_a_scale():
    rng = np.random.default_rng(2)
    W, A, B = _matrices(rng, np.float64, (30, 20), (30, 7), (7, 20))
    want = W - A @ B
    sxad.jit(plain)(W, A, B)
    np.testing.assert_allclose(W, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["strided", "transposed"])
def test_an_argument_of_another_layout_takes_the_separate_ops(layout):
    """W's rows not contiguous (a column slice, a transpose): the product goes to a fresh
    array, then into W, as without folding."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((40, 60))[:, ::2] if layout == "strided" else \
        np.asfortranarray(rng.standard_normal((30, 30)))
    A, B = _matrices(rng, np.float64, (W.shape[0], 9), (9, W.shape[1]))
    want = W - 0.5 * (A @ B)
    sxad.jit(sgd)(W, A, B, 0.5)
    np.testing.assert_allclose(W, want, rtol=1e-12, atol=1e-12)


def test_an_operand_sharing_memory_with_the_argument():
    """A passed as W too: the product must read W's old values (numpy computes the right side
    first); the overlap check sends it to the separate ops."""
    rng = np.random.default_rng(4)
    W, B = _matrices(rng, np.float64, (20, 20), (20, 20))
    want = W - 0.5 * (W @ B)
    sxad.jit(sgd)(W, W, B, 0.5)
    np.testing.assert_allclose(W, want, rtol=1e-12, atol=1e-12)


def test_an_update_reading_its_own_argument():
    rng = np.random.default_rng(5)
    W, B = _matrices(rng, np.float64, (16, 16), (16, 16))
    want = W - 0.5 * (W.T @ B)
    sxad.jit(reads_itself)(W, B, 0.5)
    np.testing.assert_allclose(W, want, rtol=1e-12, atol=1e-12)


def test_an_update_reading_another_s_argument_is_not_folded():
    rng = np.random.default_rng(6)
    W1, W2, A, B = _matrices(rng, np.float64, (10, 12), (12, 12), (10, 12), (12, 10))
    program = _program_of(chained, W1, W2, A, B, 0.1)
    assert [u.param for u in find_updates(program).values()] == [1]
    want1 = W1 - 0.1 * (A @ W2)
    want2 = W2 - 0.1 * (B @ A)
    sxad.jit(chained)(W1, W2, A, B, 0.1)
    np.testing.assert_allclose(W1, want1, rtol=1e-12)
    np.testing.assert_allclose(W2, want2, rtol=1e-12)


def test_a_fault_leaves_every_argument_as_it_was():
    """b1's update has the wrong shape: the call raises, and W1, W2 (updated by products that
    would run in place) are untouched."""
    rng = np.random.default_rng(7)
    W1, W2, A, B, C = _matrices(rng, np.float64, (8, 6), (5, 6), (8, 6), (6, 6), (8, 5))
    b1 = np.zeros(4)
    before = [x.copy() for x in (W1, b1, W2)]
    program = _program_of(two_layers, W1, np.zeros(6), W2, A, B, C, 0.1)
    assert len(find_updates(program)) == 2
    with pytest.raises(ValueError):
        sxad.jit(two_layers)(W1, b1, W2, A, B, C, 0.1)
    for x, old in zip((W1, b1, W2), before):
        assert np.array_equal(x, old)


def test_a_fault_in_a_folded_product_leaves_the_arguments():
    rng = np.random.default_rng(8)
    W1, W2, A, B, C = _matrices(rng, np.float64, (8, 6), (5, 6), (8, 6), (7, 6), (8, 5))
    b1 = np.zeros(6)
    before = [x.copy() for x in (W1, b1, W2)]
    with pytest.raises(ValueError, match="matmul|shape"):
        sxad.jit(two_layers)(W1, b1, W2, A, B, C, 0.1)      # A @ B: 6 ≠ 7
    for x, old in zip((W1, b1, W2), before):
        assert np.array_equal(x, old)


def test_two_layers_against_numpy():
    rng = np.random.default_rng(9)
    W1, W2, A, B, C = _matrices(rng, np.float32, (64, 32), (16, 32), (64, 48), (48, 32),
                                (64, 16))
    A = A[:, :32].copy()
    B = rng.standard_normal((32, 32)).astype(np.float32)
    b1 = np.ones(32, np.float32)
    lr = np.float32(0.1)
    want = (W1 - lr * (A @ B), b1 - lr * A.sum(axis=0), W2 - lr * (C.T @ A))
    sxad.jit(two_layers)(W1, b1, W2, A, B, C, lr)
    for got, expected in zip((W1, b1, W2), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _program_of(fn, *args):
    """The optimized primal program a jit call of ``fn`` compiles for ``args``."""
    from sxad.api import _arg_names, _type_of
    names = _arg_names(fn)
    types = tuple(_type_of(fn, n, a) for n, a in zip(names, args))
    return _program(_Key(fn, types, "primal", (), _current(fn).number))


PROBE = """
import sys
sys.path[:0] = [{root!r}, {here!r}]
import numpy as np
import sxad
from codegen import prefetch
from test_updates import sgd

def kilobytes(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

def peak_growth(W, A, B):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                          # the peak (VmHWM) := the current size
    before = kilobytes("VmRSS:")
    step(W, A, B, np.float32(0.1))
    return (kilobytes("VmHWM:") - before) // 1024    # MB

n = 4096
rng = np.random.default_rng(0)
A = rng.standard_normal((n, 4)).astype(np.float32)
B = rng.standard_normal((4, n)).astype(np.float32)
W = np.ones((n, n), np.float32)              # 64 MB, in place: no 64 MB temporary
step = sxad.jit(sgd)
step(np.ones((64, 64), np.float32), A[:64], B[:, :64], np.float32(0.1))   # compiled
prefetch.wait()          # the runtime library built in the background (its peak counts too)
folded = peak_growth(W, A, B)
separate = peak_growth(np.asfortranarray(W), A, B)   # columns contiguous: not in place
print(folded, separate)
"""


def test_a_folded_update_makes_no_temporary():
    """Measured by the process's peak memory during the call (Linux's VmHWM, reset before): a
    64 MB W updated in place adds nothing; the same update on a Fortran-ordered W (the
    separate ops: product, then W - lr·product) adds the product and the result, 128 MB."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    # glibc's default malloc: a 64 MB block is mapped afresh (with sxad's setting it may reuse
    # memory the compiler freed, already resident)
    done = subprocess.run([sys.executable, "-c", PROBE.format(root=root, here=here)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, SXAD_MALLOPT="0"))
    assert done.returncode == 0, done.stderr
    folded, separate = map(int, done.stdout.split())
    assert folded < 16 and separate > 100, (folded, separate)
