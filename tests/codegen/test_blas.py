"""codegen.blas: gemm and gemv through numpy's OpenBLAS and through the LLVM kernels (forced by
the ``blas=False`` argument and by ``SXAD_BLAS=0``), against numpy on random matrices with
transposes, strided leading dimensions, alpha/beta, empty dimensions."""
from __future__ import annotations

import ctypes
import itertools
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from codegen import blas, compiler, helpers, runtime, threads
from codegen import gemm as kernel
from codegen.kernel import declare
from sxad.ir import F32, F64

PTR = ir.PointerType()
INT64 = ir.IntType(64)
DTYPES = {F64: np.float64, F32: np.float32}
C_FLOAT = {F64: ctypes.c_double, F32: ctypes.c_float}
TOL = {F64: dict(rtol=1e-12, atol=1e-12), F32: dict(rtol=2e-5, atol=2e-5)}
HAVE_BLAS = blas.register()
#: how each wrapper reaches its product: OpenBLAS, the kernel by argument, the kernel by env
KINDS = ["blas", "kernel", "env"]


class Cx:
    def __init__(self, module: ir.Module, builder: ir.IRBuilder) -> None:
        self.module, self.b = module, builder

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return declare(self.module, name, ret, args)


def _wrapper(module: ir.Module, name: str, scalar_args: list[ir.Type], emit) -> None:
    """A C function whose i64 arguments 0/1 at the flag positions become i1 flags."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), scalar_args), name)
    b = ir.IRBuilder(fn.append_basic_block())
    emit(Cx(module, b), fn.args)
    b.ret_void()


def _flag(cx: Cx, value: ir.Value) -> ir.Value:
    return cx.b.icmp_signed("!=", value, INT64(0))


def gemm_args(dtype) -> list[ir.Type]:
    fty = blas.LL_FLOAT[dtype]
    return [INT64] * 5 + [fty, PTR, INT64, PTR, INT64, fty, PTR, INT64]


def gemv_args(dtype) -> list[ir.Type]:
    fty = blas.LL_FLOAT[dtype]
    return [INT64] * 3 + [fty, PTR, INT64, PTR, INT64, fty, PTR, INT64]


def emit_all(module: ir.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    for dtype in DTYPES:
        for kind in KINDS:
            use = {"blas": True, "kernel": False, "env": None}[kind]
            with monkeypatch.context() as patch:
                if kind == "env":
                    patch.setenv("SXAD_BLAS", "0")

                def gemm(cx, a, dtype=dtype, use=use):
                    blas.emit_gemm(cx, dtype, _flag(cx, a[0]), _flag(cx, a[1]), *a[2:], blas=use)

                def gemv(cx, a, dtype=dtype, use=use):
                    blas.emit_gemv(cx, dtype, _flag(cx, a[0]), *a[1:], blas=use)
                if kind != "blas" or HAVE_BLAS:
                    _wrapper(module, f"gemm_{kind}_{dtype}", gemm_args(dtype), gemm)
                    _wrapper(module, f"gemv_{kind}_{dtype}", gemv_args(dtype), gemv)


@pytest.fixture(scope="module")
def compiled():
    """(ctypes functions by (op, kind, dtype), the module as emitted, optimized text)."""
    module = ir.Module(name="blas_test")
    module.triple = llvm.get_process_triple()
    module.data_layout = str(runtime.shared_target_machine().target_data)
    with pytest.MonkeyPatch.context() as patch:
        emit_all(module, patch)
    emitted = str(module)
    runtime.register_symbols()
    helpers.ensure([blas.kernel_symbol(dtype) for dtype in DTYPES])   # first: then the
    helpers.ensure([blas.gemm_symbol(dtype) for dtype in DTYPES])     # dispatchers use it
    llmod = compiler.parse(emitted)
    compiler.optimize(llmod)
    optimized = str(llmod)
    engine = llvm.create_mcjit_compiler(llmod, runtime.target_machine())
    engine.finalize_object()
    functions = {"engine": engine}
    for dtype, c_float in C_FLOAT.items():
        ptr, i64 = ctypes.c_void_p, ctypes.c_int64
        types = {"gemm": [i64] * 5 + [c_float, ptr, i64, ptr, i64, c_float, ptr, i64],
                 "gemv": [i64] * 3 + [c_float, ptr, i64, ptr, i64, c_float, ptr, i64]}
        for op, args in types.items():
            for kind in KINDS:
                address = engine.get_function_address(f"{op}_{kind}_{dtype}")
                if address:
                    functions[op, kind, dtype] = ctypes.CFUNCTYPE(None, *args)(address)
    return functions, emitted, optimized


def get(compiled, op: str, kind: str, dtype):
    functions = compiled[0]
    if kind == "blas" and not HAVE_BLAS:
        pytest.skip("numpy has no bundled OpenBLAS here")
    return functions[op, kind, dtype]


def strided(rng: np.random.Generator, rows: int, cols: int, dtype, pad: int) -> np.ndarray:
    """A rows×cols view whose leading dimension is cols + pad (a non-trivial lda)."""
    return rng.standard_normal((rows, cols + pad)).astype(DTYPES[dtype])[:, :cols]


def ld(x: np.ndarray) -> int:
    return max(1, x.strides[0] // x.itemsize)


def gemm(function, a, b, c, ta, tb, alpha, beta) -> None:
    m, k = a.shape[::-1] if ta else a.shape
    n = b.shape[0] if tb else b.shape[1]
    function(int(ta), int(tb), m, n, k, alpha, a.ctypes.data, ld(a), b.ctypes.data, ld(b),
             beta, c.ctypes.data, ld(c))


#: ... with (300, 10, 64) and (33, 2, 40): C narrow enough that the kernel computes Cᵀ
SHAPES = [(1, 1, 1), (7, 5, 3), (37, 53, 300), (128, 64, 10), (130, 90, 270), (9, 130, 17),
          (300, 10, 64), (33, 2, 40)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_gemm_against_numpy(compiled, kind, dtype):
    function = get(compiled, "gemm", kind, dtype)
    rng = np.random.default_rng(3)
    for m, n, k in SHAPES:
        for ta in (False, True):
            for tb in (False, True):
                a = strided(rng, *((k, m) if ta else (m, k)), dtype, pad=3)
                b = strided(rng, *((n, k) if tb else (k, n)), dtype, pad=1)
                c = strided(rng, m, n, dtype, pad=5)
                before = c.copy()
                alpha, beta = 0.75, -1.5
                gemm(function, a, b, c, ta, tb, alpha, beta)
                op_a = (a.T if ta else a).astype(np.float64)
                op_b = (b.T if tb else b).astype(np.float64)
                want = alpha * (op_a @ op_b) + beta * before
                np.testing.assert_allclose(c, want, **TOL[dtype],
                                           err_msg=f"{kind} {m}x{n}x{k} ta={ta} tb={tb}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_gemm_edges(compiled, kind, dtype):
    """beta = 0 does not read C (nan there stays out), k = 0 scales C, m = 0 writes nothing."""
    function = get(compiled, "gemm", kind, dtype)
    rng = np.random.default_rng(4)
    a, b = strided(rng, 20, 33, dtype, 0), strided(rng, 33, 41, dtype, 0)
    c = np.full((20, 41), np.nan, DTYPES[dtype])
    gemm(function, a, b, c, False, False, 1.0, 0.0)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, **TOL[dtype])
    before = c.copy()
    empty_a, empty_b = np.zeros((20, 0), DTYPES[dtype]), np.zeros((0, 41), DTYPES[dtype])
    gemm(function, empty_a, empty_b, c, False, False, 1.0, 2.0)
    np.testing.assert_allclose(c, 2 * before, **TOL[dtype])
    untouched = c.copy()
    gemm(function, np.zeros((0, 33), DTYPES[dtype]), b, c[:0], False, False, 1.0, 0.0)
    assert np.array_equal(c, untouched)


def test_gemm_large_blocks(compiled):
    """Sizes past the kernel's KC and MC blocks (several packed panels, beta applied once)."""
    function = get(compiled, "gemm", "kernel", F32)
    rng = np.random.default_rng(5)
    m, n, k = kernel.MC + 37, 300, kernel.KC * 2 + 11
    a, b = strided(rng, m, k, F32, 0), strided(rng, k, n, F32, 0)
    c = strided(rng, m, n, F32, 0)
    before = c.copy()
    gemm(function, a, b, c, False, False, 1.0, 1.0)
    want = a.astype(np.float64) @ b.astype(np.float64) + before
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_gemv_against_numpy(compiled, kind, dtype):
    function = get(compiled, "gemv", kind, dtype)
    rng = np.random.default_rng(6)
    for m, n in [(1, 1), (5, 3), (64, 200), (301, 17)]:
        for trans in (False, True):
            for inc in (1, 3):
                a = strided(rng, m, n, dtype, pad=2)
                x = rng.standard_normal((m if trans else n) * inc).astype(DTYPES[dtype])
                y = rng.standard_normal((n if trans else m) * inc).astype(DTYPES[dtype])
                before = y.copy()
                function(int(trans), m, n, 0.5, a.ctypes.data, ld(a), x.ctypes.data, inc,
                         2.0, y.ctypes.data, inc)
                op_a = (a.T if trans else a).astype(np.float64)
                want = before.astype(np.float64)
                want[::inc] = 0.5 * (op_a @ x[::inc]) + 2.0 * before[::inc]
                np.testing.assert_allclose(y, want, **TOL[dtype],
                                           err_msg=f"{kind} {m}x{n} trans={trans} inc={inc}")
        y = np.full(m, np.nan, DTYPES[dtype])        # beta = 0: y is not read
        x = rng.standard_normal(n).astype(DTYPES[dtype])
        function(0, m, n, 1.0, a.ctypes.data, ld(a), x.ctypes.data, 1, 0.0, y.ctypes.data, 1)
        np.testing.assert_allclose(y, a.astype(np.float64) @ x, **TOL[dtype])


def test_which_path_is_emitted(compiled):
    """The OpenBLAS wrappers' gemm calls the runtime library's dispatcher (to its kernel, or to
    OpenBLAS while that is being built) and gemv the stable symbols; blas=False and SXAD_BLAS=0
    call only the kernel; gemv's kernel is emitted into the module once per dtype however often
    it is used."""
    _, emitted, _ = compiled
    calls = lambda name: set(re.findall(
        r"call [^@]*@\"?([\w.]+)", re.search(rf"define void @\"?{name}\"?\(.*?\n}}\n",
                                             emitted, re.S).group(0)))
    for dtype in DTYPES:
        for kind in ("kernel", "env"):
            assert calls(f"gemm_{kind}_{dtype}") == {blas.kernel_symbol(dtype)}
            assert calls(f"gemv_{kind}_{dtype}") == {f"sxad.gemv.{dtype}"}
        if HAVE_BLAS:
            assert calls(f"gemm_blas_{dtype}") == {blas.gemm_symbol(dtype)}   # the dispatcher
        assert emitted.count(f'define internal void @"sxad.gemv.{dtype}"(') == 1
        assert "sxad.gemm." not in emitted.replace("sxad.rt.gemm.", "")


def test_kernel_is_vectorized():
    """The gemm kernel's driver (the micro-kernel inlined by now) works on whole vector
    registers."""
    llmod = compiler.parse(helpers.module_text(blas.kernel_symbol(F64)))
    compiler.optimize(llmod, helpers.LEVEL)
    width = kernel.tile(F64)[2]
    body = re.search(r"define [^@]*@\"?sxad\.gemm\.f64\.strided\"?\(.*?\n}\n", str(llmod),
                     re.S).group(0)
    assert f"<{width} x double>" in body and f"llvm.fma.v{width}f64" in body


def test_openblas_found():
    """numpy's wheels bundle OpenBLAS: when its file is there, it must be found and usable."""
    if not blas.library_paths():
        pytest.skip("this numpy has no bundled OpenBLAS")
    assert blas.register()
    assert all(llvm.address_of_symbol(name) for name in blas.SYMBOLS)
    assert blas.threads() >= 1


# --------------------------------------------------------------------------- on the pool

ODD = (1, 7, 33, 257, 1000)


@pytest.fixture
def pool_threads():
    """Sets the pool's thread count for a test; restores the default after it."""
    yield threads.set_threads
    threads.set_threads(threads.default_threads())


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_kernel_on_the_pool_against_numpy(compiled, pool_threads, dtype, count):
    """Every combination of odd sizes, all four transposes, beta 0 and not: products of
    ``PARALLEL_WORK`` multiply-adds and more are split (by columns or by rows)."""
    function = get(compiled, "gemm", "kernel", dtype)
    pool_threads(count)
    rng = np.random.default_rng(7)
    # views of one random block (leading dimension 1003): drawing per product costs seconds
    block = rng.standard_normal((3, 1000, 1003)).astype(DTYPES[dtype])
    wide = block.astype(np.float64)
    split = 0
    for m, n, k in itertools.product(ODD, repeat=3):
        if m * n * k > 1000 * 1000 * 33:
            continue                   # bigger ones are split alike, only slower
        for ta, tb in itertools.product((False, True), repeat=2):
            shape_a, shape_b = (k, m) if ta else (m, k), (n, k) if tb else (k, n)
            a, b = block[0, :shape_a[0], :shape_a[1]], block[1, :shape_b[0], :shape_b[1]]
            c = block[2, :m, :n].copy()
            a64, b64 = wide[0, :shape_a[0], :shape_a[1]], wide[1, :shape_b[0], :shape_b[1]]
            beta = 0.0 if (m + n + k + ta) % 2 else 0.5
            before = c.copy()
            jobs = threads.info()["jobs"]
            gemm(function, a, b, c, ta, tb, 1.5, beta)
            parallel = threads.info()["jobs"] - jobs
            large = m * n * k >= blas.PARALLEL_WORK
            # two jobs when the threads share an operand packed once (one job packs it)
            assert parallel in ((1, 2) if large and count == 2 else (0,)), (m, n, k)
            split += large
            want = 1.5 * ((a64.T if ta else a64) @ (b64.T if tb else b64)) + beta * before
            tol = TOL[dtype] if dtype is F64 else dict(rtol=1e-4, atol=2e-5 * np.sqrt(k))
            np.testing.assert_allclose(c, want, **tol, err_msg=f"{m}x{n}x{k} {ta} {tb}")
    assert split >= 40          # not vacuous: many products took the split path



@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_narrow_products_take_the_skinny_kernel(compiled, pool_threads, dtype):
    """A C at most one vector wide (or high: computed as Cᵀ) runs the skinny kernel, which
    packs only op(B): blocks of rows (the last one shifted back to end at C's last row, its
    rows stored once: beta applied once), fewer rows than a block, even and odd k (two sets
    of accumulators), every transpose, on one thread and split by rows over two."""
    module = ir.Module(name="skinny")
    em = kernel.emitter(module, dtype)
    driver = re.search(r'define internal void @"sxad.gemm.\w+.strided"\(.*?\n}\n', str(module),
                       re.S).group(0)
    assert f'@"sxad.gemm.{dtype}.skinny"' in driver
    function = get(compiled, "gemm", "kernel", dtype)
    rng = np.random.default_rng(11)
    block = rng.standard_normal((3, 300, 301)).astype(DTYPES[dtype])
    wide = block.astype(np.float64)
    blocks = (em.mr, 2 * em.mr)
    sizes = sorted({1, em.w - 1, em.w} | {r + d for r in blocks for d in (-1, 0, 1)}
                   | {2 * r + 1 for r in blocks})
    for count in (1, 2):
        pool_threads(count)
        widths, depths = (1, em.w // 2 + 1, em.w), (1, 2, 3, 64, 300)
        for m, n, k, ta, tb in itertools.product(sizes, widths, depths, (False, True),
                                                 (False, True)):
            if ta == tb and k == 300 and m > 2 * em.mr:
                continue          # enough large ones
            for mm, nn in ((m, n), (n, m)):
                shape_a, shape_b = (k, mm) if ta else (mm, k), (nn, k) if tb else (k, nn)
                a, b = block[0, :shape_a[0], :shape_a[1]], block[1, :shape_b[0], :shape_b[1]]
                beta = 0.0 if (mm + k) % 2 else -0.5
                c = block[2, :mm, :nn].copy()
                before = c.copy()
                if beta == 0.0:
                    c[...] = np.nan          # not read
                gemm(function, a, b, c, ta, tb, 1.25, beta)
                a64, b64 = wide[0, :shape_a[0], :shape_a[1]], wide[1, :shape_b[0], :shape_b[1]]
                want = 1.25 * ((a64.T if ta else a64) @ (b64.T if tb else b64)) + beta * before
                tol = TOL[dtype] if dtype is F64 else dict(rtol=1e-4, atol=2e-5 * np.sqrt(k))
                np.testing.assert_allclose(c, want, **tol, err_msg=f"{mm}x{nn}x{k} {ta} {tb}")

@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_every_product_leaves_openblas(compiled, pool_threads, dtype):
    """Through the OpenBLAS wrapper, once sxad's kernel is installed every product runs on it
    (bit for bit what the kernel path gives; OpenBLAS sums in another order): small ones on
    the caller, those past ``PARALLEL_WORK`` on the pool."""
    through_blas = get(compiled, "gemm", "blas", dtype)
    ours = get(compiled, "gemm", "kernel", dtype)
    pool_threads(2)
    rng = np.random.default_rng(8)
    for m, n, k in [(256, 512, 784), (64, 64, 64), (128, 10, 128), (7, 5, 3)]:
        a, b = strided(rng, m, k, dtype, 0), strided(rng, n, k, dtype, 0)
        c = np.full((m, n), np.nan, DTYPES[dtype])
        jobs = threads.info()["jobs"]
        gemm(through_blas, a, b, c, False, True, 1.0, 0.0)
        assert bool(threads.info()["jobs"] - jobs) == (m * n * k >= blas.PARALLEL_WORK)
        mine = np.full_like(c, np.nan)
        gemm(ours, a, b, mine, False, True, 1.0, 0.0)
        np.testing.assert_array_equal(c, mine, err_msg=f"{m}x{n}x{k}")


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_kernel_for_narrower_vectors(monkeypatch, dtype):
    """The kernel as emitted for a 256-bit (AVX2) host: 6-row tiles, whose A panels are packed
    two rows at a time, 16 (f32) or 8 (f64) columns. It runs here too (AVX-512 has AVX2)."""
    monkeypatch.setattr(kernel, "vector_bits", lambda: 256)
    assert kernel.tile(dtype)[0] == 6
    module = ir.Module(name=f"narrow_{dtype}")
    module.triple = llvm.get_process_triple()
    module.data_layout = str(runtime.shared_target_machine().target_data)
    kernel.gemm_function(module, dtype).linkage = "external"
    llmod = compiler.parse(str(module))
    compiler.optimize(llmod)
    engine = llvm.create_mcjit_compiler(llmod, runtime.target_machine())
    engine.finalize_object()
    flag, ptr, i64, c_float = ctypes.c_bool, ctypes.c_void_p, ctypes.c_int64, C_FLOAT[dtype]
    function = ctypes.CFUNCTYPE(None, flag, flag, i64, i64, i64, c_float, ptr, i64, ptr, i64,
                                c_float, ptr, i64)(
        engine.get_function_address(f"sxad.gemm.{dtype}"))
    rng = np.random.default_rng(9)
    for m, n, k in [(13, 40, 37), (300, 10, 70), (6, 16, 8), (50, 3, 300)]:
        for ta, tb in itertools.product((False, True), repeat=2):
            a = strided(rng, *((k, m) if ta else (m, k)), dtype, pad=2)
            b = strided(rng, *((n, k) if tb else (k, n)), dtype, pad=1)
            c = strided(rng, m, n, dtype, pad=3)
            before = c.copy()
            function(ta, tb, m, n, k, 0.5, a.ctypes.data, ld(a), b.ctypes.data, ld(b), 2.0,
                     c.ctypes.data, ld(c))
            want = 0.5 * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b)) + 2 * before
            np.testing.assert_allclose(c, want, **TOL[dtype], err_msg=f"{m}x{n}x{k} {ta} {tb}")


@pytest.mark.parametrize("m, n, k, shared", [(256, 512, 784, True), (1100, 1100, 600, False)])
def test_split_products_share_the_operand_packed_once(compiled, pool_threads, m, n, k, shared):
    """Split between two threads, the operand both need whole is packed once, by both (a job
    of its own) when it fits ``SHARED_BYTES``; past that each thread packs its own copy."""
    function = get(compiled, "gemm", "kernel", F32)
    pool_threads(2)
    rng = np.random.default_rng(10)
    a, b = strided(rng, m, k, F32, 3), strided(rng, n, k, F32, 0)
    assert (min(m, n) * k * 4 <= blas.SHARED_BYTES) == shared
    c = np.full((m, n), np.nan, np.float32)
    jobs = threads.info()["jobs"]
    gemm(function, a, b, c, False, True, 1.0, 0.0)
    assert threads.info()["jobs"] - jobs == (2 if shared else 1)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.T.astype(np.float64),
                               rtol=1e-4, atol=1e-3)
