"""``SXAD_BOUNDS_CHECK=0`` (indices unchecked, for speed) and the runtime library of shared loops
(``codegen.helpers``): which kernels call it, that it is loaded once, cached on disk, and that
strided and broadcast layouts take the copy path correctly."""
from __future__ import annotations

import re

import numpy as np
import pytest

import codegen
from codegen import arrays, cache, helpers
from native_arrays import check_native
from sxad.ir import F32, F64, I64, ArrayType, Func, Prim, Value
from sxad.prims import Emitter


def gather_program() -> Func:
    """``x[i, :]`` and ``x[ia, ib]``: an integer item and an index-array pair."""
    x, i = Value(ArrayType(F64, 2), "x"), Value(I64, "i")
    ia, ib = Value(ArrayType(I64, 1), "ia"), Value(ArrayType(I64, 1), "ib")
    b = Emitter([x, i, ia, ib])
    row = b.index(x, i, spec=("i",))
    picked = b.index(x, ia, ib, spec=("a", "a"))
    return Func("gather", b.finish([b.reduce_sum(row), picked]), ("x", "i", "ia", "ib"), True)


X = np.arange(12.0).reshape(3, 4)
IN_RANGE = [(X, 1, np.array([0, 2, -1]), np.array([3, 0, 1])),
            (X, -1, np.array([2, 2]), np.array([-4, 3]))]


def fault_branches(text: str) -> int:
    """How many branches of the module (the kernel and its outlined loops) lead to an index
    fault."""
    return len(re.findall(r'label %"fail\.index[.0-9]*"', text))


def test_out_of_range_raises_index_error_with_checks(monkeypatch):
    monkeypatch.delenv("SXAD_BOUNDS_CHECK", raising=False)
    func = gather_program()
    kernel = codegen.compile_native(func)
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        kernel(X, 3, np.array([0]), np.array([0]))
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 1 with size 4"):
        kernel(X, 0, np.array([0]), np.array([4]))
    assert fault_branches(codegen.llvm_source(func, optimized=False)) == 3


def test_unchecked_kernels_have_no_bounds_checks_and_agree(monkeypatch):
    func = gather_program()
    monkeypatch.delenv("SXAD_BOUNDS_CHECK", raising=False)
    checked = codegen.compile_kernel(func)
    monkeypatch.setenv("SXAD_BOUNDS_CHECK", "0")
    assert fault_branches(codegen.llvm_source(func, optimized=False)) == 0
    unchecked = codegen.compile_kernel(func)
    assert unchecked.key != checked.key          # a separate cache entry
    assert unchecked.entry is not checked.entry
    for args in IN_RANGE:
        for got, want in zip(unchecked.entry(*args), checked.entry(*args)):
            np.testing.assert_array_equal(got, want)
        check_native(func, list(args), unchecked.entry)
    monkeypatch.setenv("SXAD_BOUNDS_CHECK", "1")
    assert codegen.compile_kernel(func) is checked   # the flag is read at each compilation


def test_kernels_call_the_runtime_library():
    """Reductions, unbroadcast and copies are calls into the shared library, not loops of the
    kernel; the library's modules are loaded once per process."""
    x = Value(ArrayType(F32, 2), "x")
    b = Emitter([x])
    total = b.reduce_sum(b.exp(x), axes=(1,))
    peak = b.reduce_max(x, axes=(0,), keepdims=True)
    func = Func("uses_library", b.finish([total, peak, b.transpose(x)]), ("x",), True)
    text = codegen.llvm_source(func, optimized=False)
    called = set(re.findall(r'call void @"(sxad\.rt\.[a-z0-9.]+)"', text))
    assert {"sxad.rt.sum.f32", "sxad.rt.max.f32", "sxad.rt.copy.4"} <= called
    rng = np.random.default_rng(1)
    check_native(func, [rng.normal(size=(5, 7)).astype(np.float32)])
    assert {"sxad.rt.sum.f32", "sxad.rt.max.f32", "sxad.rt.copy.4",
            "sxad.rt.heap"} <= helpers.loaded()
    compiled = helpers.stats["compiled"]
    check_native(func, [rng.normal(size=(2, 3)).astype(np.float32)])
    helpers.ensure(["sxad.rt.sum.f32", "sxad.rt.heap"])
    assert helpers.stats["compiled"] == compiled


def test_library_objects_are_cached_on_disk():
    name = "sxad.rt.min.i64"
    helpers.ensure([name])
    assert helpers._objects.load(helpers.key(name)) is not None
    assert cache.directory().joinpath(helpers.key(name) + ".rto").is_file()


@pytest.mark.parametrize("dtype", [F64, F32, I64], ids=str)
def test_strided_and_broadcast_operands_take_the_copy_path(dtype):
    """Elementwise loops read rows; transposed, reversed and last-axis-broadcast operands are
    first copied by the library (the results must not change)."""
    x, y = Value(ArrayType(dtype, 2), "x"), Value(ArrayType(dtype, 1), "y")
    b = Emitter([x, y])
    col = b.expand_dims(y, axes=(0,))           # (1, n): broadcast down the rows
    outs = [b.add(b.transpose(x), y), b.mul(x, b.transpose(col)), b.sub(b.transpose(x), col)]
    func = Func(f"layouts_{dtype}", b.finish(outs), ("x", "y"), True)
    np_dtype = {F64: np.float64, F32: np.float32, I64: np.int64}[dtype]
    base = np.arange(30).reshape(5, 6).astype(np_dtype)
    check_native(func, [base[:, :5], np.arange(5).astype(np_dtype)])
    check_native(func, [base[::-1, ::2][:3, :3], np.arange(3).astype(np_dtype)[::-1]])


@pytest.mark.parametrize("dtype", [F64, F32, I64], ids=str)
def test_products_read_transposed_are_computed_transposed(dtype):
    """``transpose(a @ c)`` (the adjoint's ``W̄ = (xᵀ @ δ)ᵀ``) is computed as ``cᵀ @ aᵀ`` into a
    contiguous buffer; a product also read otherwise is not."""
    a, c = Value(ArrayType(dtype, 2), "a"), Value(ArrayType(dtype, 2), "c")
    b = Emitter([a, c])
    product = b.matmul(b.transpose(a), c)
    only_transposed = b.transpose(product)
    shared = b.matmul(a, b.transpose(c))
    outs = [b.add(only_transposed, b.cast(b.const(1.0), dtype)), b.transpose(shared),
            b.mul(shared, shared)]
    func = Func(f"transposed_products_{dtype}", b.finish(outs), ("a", "c"), True)
    np_dtype = {F64: np.float64, F32: np.float32, I64: np.int64}[dtype]
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, size=(5, 3)).astype(np_dtype)
    y = rng.integers(-3, 4, size=(5, 4)).astype(np_dtype)
    assert [op.result for op in arrays.transposed_products(func.body)] == [product]
    check_native(func, [x, y[:, :3]])
    check_native(func, [x[::-1], y[:, :3][::-1]])           # views: read as BLAS operands
    check_native(func, [x.T.copy().T, y[:, ::-1][:, :3]])


def kernel_attributes(func: Func) -> str:
    text = codegen.llvm_source(func, optimized=False)
    return next(line for line in text.splitlines() if line.startswith('define i32 @"sxad.kernel'))


def test_straight_line_array_kernels_are_not_optimized_but_their_loops_are():
    """A loop-free array program's kernel runs once per call: compiled at O0 (``optnone``),
    its loops outlined into optimized functions; a kernel with a loop is optimized whole."""
    x, n = Value(ArrayType(F64, 1), "x"), Value(I64, "n")
    b = Emitter([x, n])
    y = b.exp(b.mul(x, x))
    picked = b.index(y, b.arange(b.const(0), n, b.const(1)), spec=("a",))
    flat = Func("flat", b.finish([picked]), ("x", "n"))
    assert "optnone" in kernel_attributes(flat)
    text = codegen.llvm_source(flat, optimized=False)
    loops = re.findall(r'define internal (?:void|i32) @"sxad\.loop[.0-9]*"\(([^)]*)\) ([a-z ]*)',
                       text)
    assert len(loops) == 3   # the rows of exp(x·x), arange's fill, the gather
    assert all("optnone" not in attrs for _, attrs in loops)
    check_native(flat, [np.linspace(-1, 1, 7), 5])
    with pytest.raises(IndexError, match="index 7 is out of bounds for axis 0 with size 7"):
        codegen.compile_native(flat)(np.linspace(-1, 1, 7), 8)

    i, s = Value(I64, "i"), Value(F64, "s")
    body = Emitter([i, s])
    s2 = body.add(s, body.reduce_sum(x))
    b = Emitter([x, n])
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(0.0)], [F64],
                regions=[body.finish([s2])], hints=["s"])
    looped = Func("looped", b.finish([r]), ("x", "n"))
    assert "optnone" not in kernel_attributes(looped)
    check_native(looped, [np.arange(4.0), 3])


def test_rows_broadcast_along_the_last_axis_are_read_once_per_row():
    """``broadcast_like`` of a keepdims value (the softmax adjoint's ``ȳ/Σ`` spread over the
    row) is a stride-0 view, read once per row (``ArrayVal.repeated``), with the right values
    for leading axes too."""
    x = Value(ArrayType(F32, 2), "x")
    b = Emitter([x])
    total = b.reduce_sum(x, axes=(1,), keepdims=True)
    spread = b.broadcast_like(b.div(b.cast(b.const(1.0), F32), total), x)
    column = b.broadcast_like(b.reduce_max(x, axes=(0,)), x)       # a leading broadcast axis
    func = Func("repeated_rows", b.finish([b.mul(spread, x), b.sub(x, column)]), ("x",), True)
    text = codegen.llvm_source(func, optimized=False)
    assert len(re.findall(r'call void @"sxad\.loop', text)) == 3    # 1/Σ, the mul, the sub
    # a copy path for x in the mul, for x and the column in the sub; none for the spread rows
    assert len(re.findall(r'^operand\.copy[.0-9]*:', text, re.M)) == 3
    rng = np.random.default_rng(5)
    check_native(func, [rng.uniform(0.5, 2.0, size=(6, 10)).astype(np.float32)])
    check_native(func, [rng.uniform(0.5, 2.0, size=(4, 12)).astype(np.float32)[:, ::2]])


def test_malloc_keeps_large_blocks_unless_told_not_to(monkeypatch):
    """Temporaries of megabytes are reused by glibc instead of mmapped and faulted in on every
    call (``runtime.keep_large_blocks``); ``SXAD_MALLOPT=0`` leaves malloc alone."""
    from codegen import runtime
    import platform
    monkeypatch.setenv("SXAD_MALLOPT", "0")
    assert runtime.keep_large_blocks() is False
    monkeypatch.delenv("SXAD_MALLOPT")
    if platform.libc_ver()[0] == "glibc":
        assert runtime.keep_large_blocks() is True
