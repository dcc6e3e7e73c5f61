"""The array ABI at the entry point and the memory of native array code: what an array argument
must be (else the fallback), array results that own their memory, faults that name shapes, no
leak on any path, bounded memory in long loops, and the cost of a call."""
from __future__ import annotations

import os
import sys
import timeit

import numpy as np
import pytest

import codegen
from native_arrays import check_native
from ir_builders import loop
from sxad.ad.reverse import vjp_program
from sxad.backends.interpreter import interpret
from sxad.ir import F32, F64, I64, ArrayType, Func, Value
from sxad.prims import Emitter


def vec(dtype=F64, rank=1, name="x") -> Value:
    return Value(ArrayType(dtype, rank), name)


@pytest.fixture(scope="module")
def affine():
    """f(A: f64[:,:], v: f64[:]) -> (A·2 + v, sum(A))."""
    a, v = vec(F64, 2, "A"), vec(F64, 1, "v")
    b = Emitter([a, v])
    func = Func("affine", b.finish([b.add(b.mul(a, b.const(2.0)), v), b.reduce_sum(a)]),
                ("A", "v"), True)
    return func, codegen.compile_kernel(func)


@pytest.fixture(scope="module")
def running():
    """A 10⁴-step-capable loop making arrays each step, and its adjoint (a tape of arrays)."""
    x, n = vec(), Value(I64, "n")
    b = Emitter([x, n])

    def body(e, i, s):
        t = e.tanh(e.add(e.mul(s, e.const(0.9)), e.mul(x, e.const(0.1))))
        u = e.transpose(e.expand_dims(t, axes=(1,)))          # views of t
        return [e.div(t, e.add(e.reduce_sum(e.mul(u, u)), e.const(1.0)))]
    (s,) = loop(b, b.const(0), n, b.const(1), [x], body)
    func = Func("running", b.finish([b.reduce_sum(s)]), ("x", "n"))
    adjoint = vjp_program(func, [0])
    return func, codegen.compile_native(func), adjoint, codegen.compile_native(adjoint)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


A = np.arange(6.0).reshape(2, 3)
V = np.array([1.0, -1.0, 0.5])


def test_array_results_own_their_memory(affine):
    func, kernel = affine
    out, total = check_native(func, [A, V], kernel.entry)
    assert isinstance(out, np.ndarray) and type(total) is float
    assert out.flags.writeable and out.flags.c_contiguous and out.flags.aligned
    assert type(out.base).__name__ == "PyCapsule"
    out[0, 0] = 99.0                     # ours to change; the argument is untouched
    assert A[0, 0] == 0.0


class Sub(np.ndarray):
    pass


@pytest.mark.parametrize("make", [
    lambda: (A.view(Sub), V), lambda: (np.asfortranarray(A), V[::-1][::-1]),
    lambda: (np.broadcast_to(V, (2, 3)), V),              # stride 0, read-only: fine
    lambda: (A[:, ::2], V[:2]), lambda: (np.zeros((0, 3)), V),
], ids=["subclass", "fortran", "broadcast", "strided", "empty"])
def test_ndarrays_of_any_layout_are_taken(affine, make):
    func, kernel = affine
    check_native(func, list(make()), kernel.entry)


@pytest.mark.parametrize("args", [
    (A.astype(np.float32), V), (A.astype(np.int64), V), (A, V.astype(">f8")),   # dtype
    (A[0], V), (A, A), (A[None], V),                                              # rank
    (A.tolist(), V), (A, 1.0), (None, V), (np.float64(1.0), V),                   # not arrays
    (A, np.frombuffer(b"\0" + V.tobytes(), dtype=np.float64, count=3, offset=1)),  # unaligned
], ids=["f32", "i64", "big-endian", "rank-1", "rank-2", "rank-3", "list", "float", "None",
        "scalar", "unaligned"])
def test_what_it_cannot_take_goes_to_the_fallback(affine, args):
    func, kernel = affine
    assert kernel.entry(*args) is NotImplemented
    seen = []
    bound = codegen.bind_fallback(kernel, lambda *a: seen.append(a) or "fallback")
    assert bound(*args) == "fallback" and len(seen) == 1


def test_a_shape_mismatch_names_the_shapes(affine):
    func, kernel = affine
    with pytest.raises(ValueError, match=r"broadcast together with shapes \(2,3\) \(4,\)"):
        kernel.entry(A, np.ones(4))


def test_faults_name_shapes_and_empty_reductions():
    a, c = vec(F64, 2, "a"), vec(F64, 1, "c")
    b = Emitter([a, c])
    func = Func("faulty", b.finish([b.matmul(a, c), b.reduce_max(c)]), ("a", "c"), True)
    kernel = codegen.compile_native(func)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2,3\) and \(2,\) are not aligned"):
        kernel(A, np.ones(2))
    with pytest.raises(ValueError, match="zero-size array to reduction operation maximum"):
        kernel(np.ones((2, 0)), np.ones(0))
    for got, want in zip(kernel(A, V), interpret(func, [A, V])):
        np.testing.assert_allclose(got, want)


def test_f32_scalars_cross_as_float32():
    s, d, n = Value(F32, "s"), Value(F64, "d"), Value(I64, "n")
    b = Emitter([s, d, n])
    r = b.add(b.exp(s), b.cast(d, F32))
    func = Func("f32s", b.finish([r, b.cast(s, F64), b.cast(s, I64), b.cast(n, F32),
                                  b.mod(s, b.cast(n, F32)), b.pow(s, b.const(0.5, F32))]),
                ("s", "d", "n"), True)
    got = check_native(func, [np.float32(1.7), 2.5, 3])
    assert [type(v) for v in got] == [np.float32, float, int, np.float32, np.float32, np.float32]
    assert codegen.compile_native(func)(1.7, 2.5, 3) is NotImplemented   # a float is no f32


def test_a_long_loop_making_arrays_keeps_memory_bounded(running):
    func, kernel, _, _ = running
    x = np.random.default_rng(1).normal(size=10_000)      # 80 kB per array
    check_native(func, [x, 5], kernel)
    before = rss_mb()
    kernel(x, 10_000)            # ~3 arrays per step: 2.4 GB if each step kept its arrays
    assert rss_mb() - before < 50


def test_the_tape_of_arrays_is_freed_after_each_call(running):
    func, _, adjoint, kernel = running
    x = np.random.default_rng(2).normal(size=10_000)
    check_native(adjoint, [x, 20, 1.0], kernel)
    kernel(x, 1000, 1.0)
    before = rss_mb()
    for _ in range(10):          # 80 MB of tape each
        kernel(x, 1000, 1.0)
    assert rss_mb() - before < 50


def test_a_fault_inside_a_loop_frees_every_array():
    """A negative integer power fails at step 500 of a loop that allocates in every step and
    pushes nothing: each failed call must give back what it held."""
    x, n = vec(I64), Value(I64, "n")
    b = Emitter([x, n])

    def body(e, i, s):
        return [e.add(s, e.pow(x, e.sub(e.const(500), i)))]
    (s,) = loop(b, b.const(0), n, b.const(1), [x], body)
    func = Func("fails_late", b.finish([s]), ("x", "n"))
    kernel = codegen.compile_native(func)
    x_ = np.ones(20_000, dtype=np.int64)
    np.testing.assert_array_equal(kernel(x_, 10), interpret(func, [x_, 10])[0])
    with pytest.raises(ValueError, match="negative integer powers"):
        kernel(x_, 1000)
    before = rss_mb()
    for _ in range(30):          # 160 kB per array, ~500 arrays per call if leaked
        with pytest.raises(ValueError):
            kernel(x_, 1000)
    assert rss_mb() - before < 30


def test_results_and_arguments_keep_their_reference_counts(affine):
    func, kernel = affine
    a, v = A.copy(), V.copy()
    before = sys.getrefcount(a), sys.getrefcount(v)
    for _ in range(1000):
        out, _ = kernel.entry(a, v)
    assert sys.getrefcount(out) == 2 and (sys.getrefcount(a), sys.getrefcount(v)) == before


def test_passing_an_array_costs_well_under_a_microsecond():
    x = vec()
    b = Emitter([x])
    total = codegen.compile_native(Func("total", b.finish([b.reduce_sum(x)]), ("x",)))
    b = Emitter([x])
    double = codegen.compile_native(Func("double", b.finish([b.add(x, x)]), ("x",)))
    small = np.ones(4)
    ns = {name: min(timeit.repeat(lambda: f(small), number=20_000, repeat=5)) / 20_000 * 1e9
          for name, f in (("array in, float out", total), ("array in, array out", double))}
    print(ns)
    assert ns["array in, float out"] < 1000 and ns["array in, array out"] < 2000


def test_updated_arguments_are_written_in_place():
    """``W -= 0.1·g`` (``Func.mutated``): the kernel writes W's final value into W's buffer,
    a view included, and returns W itself; a read-only W goes to the fallback."""
    w, g = vec(F64, 2, "W"), vec(F64, 2, "g")
    b = Emitter([w, g])
    w2 = b.sub(w, b.mul(g, b.const(0.1)))
    func = Func("step", b.finish([b.reduce_sum(w2), w2]), ("W", "g"), False, (0,))
    kernel = codegen.compile_kernel(func)
    assert kernel.writes_in_place
    grad = np.arange(6.0).reshape(2, 3)
    for weights in (np.ones((2, 3)), np.ones((3, 2)).T, np.ones((2, 6))[:, ::2]):
        want = interpret(func, [weights, grad])
        total, same = kernel.entry(weights, grad)
        assert same is weights and total == want[0]
        np.testing.assert_allclose(weights, want[1])
    frozen = np.ones((2, 3))
    frozen.flags.writeable = False
    assert kernel.entry(frozen, grad) is NotImplemented


def test_arrays_on_the_tape_count_against_the_tape_limit(running):
    """A 1000-step adjoint of a 10⁴-element loop keeps ~80 MB of arrays on its tape: with a
    1 MB limit it fails cleanly (and frees what it held), then runs again under the default."""
    _, _, adjoint, kernel = running
    x = np.random.default_rng(3).normal(size=10_000)
    limit = codegen.tape_limit()
    codegen.set_tape_limit(1 << 20)
    try:
        with pytest.raises(MemoryError, match="SXAD_TAPE_LIMIT"):
            kernel(x, 1000, 1.0)
    finally:
        codegen.set_tape_limit(limit)
    np.testing.assert_allclose(kernel(x, 3, 1.0)[1], interpret(adjoint, [x, 3, 1.0])[1])
