"""Matrix products for native code: numpy's bundled OpenBLAS, or a blocked LLVM kernel.

numpy wheels ship OpenBLAS (``numpy.libs/libscipy_openblas64_*.so``) exporting the CBLAS
interface with 64-bit integers (``scipy_cblas_dgemm64_``…). ``register()`` finds it through
ctypes and gives its functions stable names (``sxad.blas.dgemm``…) with ``llvm.add_symbol``,
so the IR, and the object code cached on disk, never holds an address.

``emit_gemm``/``emit_gemv`` emit a row-major call at the builder's position. gemm: every
product calls the runtime library's dispatcher ``sxad.rt.gemm.<t>``, which runs the packed,
register-blocked kernel ``sxad.rt.gemmk.<t>`` (``codegen.gemm``: Goto/BLIS style, an MR×NR
tile of C held in vector registers, A and B packed into zero-padded panels with vector loads
and in-register transposes; a C narrow enough computed as Cᵀ = op(B)ᵀ·op(A)ᵀ; a C one vector
wide by the skinny kernel, which packs only op(B)), on the thread pool (``codegen.threads``)
from ``PARALLEL_WORK`` (2²⁰) on: one part per thread, along C's columns or its rows
(whichever leaves the busiest thread less work, packing included), the operand all parts need
whole packed once by all threads. OpenBLAS runs a product only while the kernel is being built
(on a cold machine) and then from 2¹⁹ multiply-adds on it splits it between its threads, which
spin on the core the pool's worker needs (a kernel calling both made the MNIST step bimodal,
2.5 ms or 5 ms). Products below 2¹⁹ went to OpenBLAS until the kernel beat it there too (the
table: 1.2–2× at 16³–128×64×128, both dtypes; the digits step 0.038 → 0.032 ms). Without
OpenBLAS (another numpy build) or with ``SXAD_BLAS=0`` kernels call ``sxad.rt.gemmk.<t>``
directly. gemv: OpenBLAS, else a vectorizable loop emitted into the module (once per dtype).

Why (f32 GFLOP/s, or µs of the product less the ~1.2 µs of a ctypes call; this 2-core AVX-512
EPYC (Zen 5, ~265 GFLOP/s a core); numpy's OpenBLAS 0.3.31 runs its Haswell kernels here):

    shape m×n×k           OpenBLAS 1t  OpenBLAS 2t  kernel 1t  kernel 2t
    256×512×784 NT            125          244         233        411–453
    512×512×256 TN            126          237         229        386–439
    256×10×512 NT (skinny)     73          128         113        202
    10×512×256 TN (skinny)     54           81         121        220
    128×128×64 NT (digits)    112          190         155       (serial)
    128×10×128 NT (digits)    4.5 µs       —          3.0 µs    (serial)
    128×128×10 NN (digits)    2.9 µs       —          2.0 µs    (serial)
    64³ / 16³                 4.9 / 0.7 µs  —          2.7 / 0.1 µs
    1024×1024×1024            125          245         234        444–458

OpenBLAS threads: numpy's OpenBLAS starts one thread per core, and with 2 threads its gemm
falls below its 1-thread speed when the other core is busy. ``register()`` leaves the thread
count alone unless ``SXAD_BLAS_THREADS`` is set (it is process-wide: numpy's own matmul shares
it); ``set_threads`` changes it.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from sxad.ir import F32, F64, Type

# the IR helpers and the one-thread kernel this module's library functions build on
from .gemm import (INT1, INT32, INT64, KC, LL_FLOAT, NULL, PTR, GemmEmitter, _declare,
                   _element, _fma, _i, _i32, _loop, _max, _min, _new_function, _round_up,
                   _scaled_store, _sum_loop, emitter)

LETTER: dict[Type, str] = {F64: "d", F32: "s"}

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112     # CBLAS enum values
#: stable symbol name -> the CBLAS function of numpy's OpenBLAS
SYMBOLS = {f"sxad.blas.{t}{f}": f"scipy_cblas_{t}{f}64_" for t in "sd" for f in ("gemm", "gemv")}
_THREADS_FUNCTION = "scipy_openblas_set_num_threads64_"
_THREADS_QUERY = "scipy_openblas_get_num_threads64_"

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_registered = False


# --------------------------------------------------------------------------- finding OpenBLAS

def library_paths() -> list[str]:
    """Candidate OpenBLAS libraries bundled with numpy (wheel layouts of numpy 1.x and 2.x)."""
    root = os.path.dirname(np.__file__)
    patterns = [os.path.join(root, "..", "numpy.libs", "libscipy_openblas*.so*"),
                os.path.join(root, ".libs", "libscipy_openblas*.so*"),
                os.path.join(root, "..", "numpy.libs", "libopenblas*.so*"),
                os.path.join(root, ".libs", "libopenblas*.so*")]
    return sorted(path for pattern in patterns for path in glob.glob(pattern))


def _open_library() -> ctypes.CDLL | None:
    """The first candidate that exports every CBLAS function we call."""
    for path in library_paths():
        try:
            lib = ctypes.CDLL(path)    # numpy loaded it already: the same handle
        except OSError:
            continue
        if all(hasattr(lib, name) for name in SYMBOLS.values()):
            return lib
    return None


def register() -> bool:
    """Make the ``sxad.blas.*`` symbols resolvable (once); whether OpenBLAS was found.

    Must run before object code calling them is loaded; ``emit_gemm`` calls it, so a module
    that calls BLAS has always registered it when it is built in this process."""
    global _library, _registered
    with _lock:
        if not _registered:
            _library = _open_library()
            if _library is not None:
                for name, cname in SYMBOLS.items():
                    function = getattr(_library, cname)
                    llvm.add_symbol(name, ctypes.cast(function, ctypes.c_void_p).value)
                threads = os.environ.get("SXAD_BLAS_THREADS", "").strip()
                if threads:
                    _set_threads(int(threads))
            _registered = True
        return _library is not None


def available() -> bool:
    """Whether the emitters call OpenBLAS: it was found and ``SXAD_BLAS`` is not ``0``."""
    return os.environ.get("SXAD_BLAS", "1").strip() != "0" and register()


def _set_threads(count: int) -> None:
    if _library is not None and hasattr(_library, _THREADS_FUNCTION):
        function = getattr(_library, _THREADS_FUNCTION)
        function.argtypes, function.restype = [ctypes.c_int], None
        function(count)


def set_threads(count: int) -> None:
    """OpenBLAS's thread count, for the whole process (numpy's matmul included)."""
    register()
    with _lock:
        _set_threads(count)


def threads() -> int | None:
    """OpenBLAS's thread count, or None without OpenBLAS."""
    if not register() or not hasattr(_library, _THREADS_QUERY):
        return None
    function = getattr(_library, _THREADS_QUERY)
    function.restype = ctypes.c_int
    return int(function())


# --------------------------------------------------------------------------- emitters

def _flag(value: bool | ir.Value) -> ir.Value:
    return ir.Constant(INT1, int(value)) if isinstance(value, bool) else value


def _scalar(fty: ir.Type, value: float | ir.Value) -> ir.Value:
    return ir.Constant(fty, float(value)) if isinstance(value, (int, float)) else value


def _use_blas(blas: bool | None) -> bool:
    return available() if blas is None else blas and register()


def emit_gemm(cx, dtype: Type, trans_a: bool | ir.Value, trans_b: bool | ir.Value,
              m: ir.Value, n: ir.Value, k: ir.Value, alpha: float | ir.Value, a: ir.Value,
              lda: ir.Value, b: ir.Value, ldb: ir.Value, beta: float | ir.Value, c: ir.Value,
              ldc: ir.Value, *, blas: bool | None = None) -> None:
    """C := alpha·op(A)·op(B) + beta·C, row-major; op(A) is m×k, op(B) k×n, C m×n; ``lda``…
    in elements. ``trans_*``: Python bools or i1 values. C is not read when beta is 0 (as
    BLAS). ``blas``: None follows ``available()``; False forces the LLVM kernel."""
    fty = LL_FLOAT[dtype]
    ta, tb = _flag(trans_a), _flag(trans_b)
    alpha, beta = _scalar(fty, alpha), _scalar(fty, beta)
    own = [ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc]
    types = [t for _, t in _gemm_arguments(fty)]
    if not _use_blas(blas):
        cx.b.call(_declare(cx.module, kernel_symbol(dtype), ir.VoidType(), types), own)
        return
    cx.b.call(_declare(cx.module, gemm_symbol(dtype), ir.VoidType(), types), own)


def _call_openblas(cx, dtype: Type, ta: ir.Value, tb: ir.Value, m: ir.Value, n: ir.Value,
                   k: ir.Value, alpha: ir.Value, a: ir.Value, lda: ir.Value, b: ir.Value,
                   ldb: ir.Value, beta: ir.Value, c: ir.Value, ldc: ir.Value) -> None:
    fty = LL_FLOAT[dtype]
    cblas = _declare(cx.module, f"sxad.blas.{LETTER[dtype]}gemm", ir.VoidType(),
                     [INT32] * 3 + [INT64] * 3 + [fty, PTR, INT64, PTR, INT64, fty, PTR, INT64])
    # OpenBLAS checks leading dimensions even where it reads nothing (an empty operand, k = 0:
    # C := beta·C); give it ones it accepts then
    bd = cx.b
    widest = _max(bd, _max(bd, m, n), _i(1))
    no_k = bd.icmp_signed("<=", k, _i(0))
    lda, ldb = (bd.select(no_k, widest, _max(bd, ld, _i(1))) for ld in (lda, ldb))
    ldc = _max(bd, ldc, _i(1))
    bd.call(cblas, [ir.Constant(INT32, ROW_MAJOR), _trans_enum(bd, ta), _trans_enum(bd, tb),
                    m, n, k, alpha, a, lda, b, ldb, beta, c, ldc])


def emit_gemv(cx, dtype: Type, trans: bool | ir.Value, m: ir.Value, n: ir.Value,
              alpha: float | ir.Value, a: ir.Value, lda: ir.Value, x: ir.Value,
              incx: ir.Value, beta: float | ir.Value, y: ir.Value, incy: ir.Value, *,
              blas: bool | None = None) -> None:
    """y := alpha·op(A)·x + beta·y, A m×n row-major (op(A) = Aᵀ when ``trans``: x has m
    elements, y n); ``incx``, ``incy`` > 0 element strides. y is not read when beta is 0."""
    fty = LL_FLOAT[dtype]
    trans = _flag(trans)
    alpha, beta = _scalar(fty, alpha), _scalar(fty, beta)
    own = [trans, m, n, alpha, a, lda, x, incx, beta, y, incy]
    if not _use_blas(blas):
        cx.b.call(gemv_function(cx.module, dtype), own)
        return
    cblas = _declare(cx.module, f"sxad.blas.{LETTER[dtype]}gemv", ir.VoidType(),
                     [INT32, INT32, INT64, INT64, fty, PTR, INT64, PTR, INT64, fty, PTR, INT64])
    cx.b.call(cblas, [ir.Constant(INT32, ROW_MAJOR), _trans_enum(cx.b, trans), m, n, alpha, a,
                      _max(cx.b, lda, _i(1)), x, incx, beta, y, incy])


def _trans_enum(b: ir.IRBuilder, flag: ir.Value) -> ir.Value:
    return b.select(flag, ir.Constant(INT32, TRANS), ir.Constant(INT32, NO_TRANS))


#: Products of at least this many multiply-adds (m·n·k) are split between threads (smaller ones
#: run on the caller). 2²⁰
#: rather than 2²¹: the MNIST step's 10-class products (1.3·10⁶) 35 → 20 µs each, the step
#: 1.97 → 1.92 ms; the digits step's 128×128×64 ones too (0.056 → 0.051 ms).
PARALLEL_WORK = 1 << 20


def gemm_symbol(dtype: Type) -> str:
    """The gemm kernels call for large products when OpenBLAS is there (module of the same
    name), with ``gemm_function``'s arguments: the runtime library's kernel once it is
    loaded, OpenBLAS until then (``emit_gemm_dispatch``)."""
    return f"sxad.rt.gemm.{dtype}"


def kernel_symbol(dtype: Type) -> str:
    """The runtime library's gemm kernel (module of the same name), on the pool's threads
    when the product is large enough (``emit_gemm_library``)."""
    return f"sxad.rt.gemmk.{dtype}"


def install_symbol(dtype: Type) -> str:
    """``void (ptr kernel)``: the dispatcher of ``dtype`` calls ``kernel`` from now on."""
    return f"sxad.rt.gemm_install.{dtype}"


#: The dtypes whose dispatcher calls the kernel by now (else OpenBLAS).
installed: set[Type] = set()


def install_kernel(dtype: Type) -> None:
    """Give the freshly loaded dispatcher of ``dtype`` its kernel (``helpers`` calls this on
    load): now when the kernel's object code is on disk, else once it is built in the
    background once the kernel being compiled is loaded (``prefetch.after_compile``)."""
    from . import helpers, prefetch
    name = kernel_symbol(dtype)

    def install() -> None:
        helpers.ensure([name])
        setter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(
            llvm.address_of_symbol(install_symbol(dtype)))
        setter(llvm.address_of_symbol(name))
        installed.add(dtype)
    if name in helpers.loaded() or helpers.cached(name):
        install()
    else:
        prefetch.after_compile(install)


def emit_gemm_dispatch(module: ir.Module, dtype: Type) -> None:
    """``gemm_symbol(dtype)`` and ``install_symbol(dtype)`` into ``module``: a product goes
    to the kernel installed in a global (an acquire load), or to OpenBLAS while none is.

    Why: the kernel's module takes ~0.25 s of LLVM to compile, once per machine, and any
    kernel with a matmul links to it. Through the dispatcher, a first call on a cold machine
    does not wait for it: ``after_dispatch_loaded`` builds it on a background thread and
    installs it when it is ready (products meanwhile run on OpenBLAS, whose results differ
    from the kernel's in the last bits); from the disk cache it is installed before the
    first call."""
    fty = LL_FLOAT[dtype]
    slot = ir.GlobalVariable(module, INT64, f"{gemm_symbol(dtype)}.kernel")   # an address
    slot.linkage, slot.initializer = "internal", _i(0)
    fn, b = _new_function(module, gemm_symbol(dtype), ir.VoidType(), _gemm_arguments(fty))
    fn.linkage = "external"
    address = b.load_atomic(slot, "acquire", 8, typ=INT64)
    with b.if_else(b.icmp_unsigned("!=", address, _i(0))) as (ours, theirs):
        with ours:   # llvmlite calls through a typed function pointer
            b.call(b.inttoptr(address, fn.function_type.as_pointer()), list(fn.args))
        with theirs:
            _call_openblas(_Cx(module, b), dtype, *fn.args)
    b.ret_void()
    install, ib = _new_function(module, install_symbol(dtype), ir.VoidType(), [("kernel", PTR)])
    install.linkage = "external"
    ib.store_atomic(ib.ptrtoint(install.args[0], INT64), slot, "release", 8)
    ib.ret_void()


def _gemm_arguments(fty: ir.Type) -> list[tuple[str, ir.Type]]:
    return [("ta", INT1), ("tb", INT1), ("m", INT64), ("n", INT64), ("k", INT64),
            ("alpha", fty), ("a", PTR), ("lda", INT64), ("b", PTR), ("ldb", INT64),
            ("beta", fty), ("c", PTR), ("ldc", INT64)]


def emit_gemm_library(module: ir.Module, dtype: Type) -> None:
    """``kernel_symbol(dtype)`` into ``module``: the one-thread kernel (``gemm_function``) for
    products under ``PARALLEL_WORK`` multiply-adds; larger ones, oriented as that kernel would
    (``GemmEmitter.turned``), are split into one part per thread (``emit_split``)."""
    from . import threads
    kernel = emitter(module, dtype)
    split = emit_split(module, kernel)
    fn, b = _new_function(module, kernel_symbol(dtype), ir.VoidType(),
                          _gemm_arguments(kernel.fty))
    fn.linkage = "external"
    ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc = fn.args
    count_threads = _declare(module, threads.POOL_THREADS, INT64, [])
    small = b.icmp_signed("<", b.mul(b.mul(m, n), k), _i(PARALLEL_WORK))
    with b.if_then(small):
        b.call(kernel.fn, list(fn.args))
        b.ret_void()
    team = b.call(count_threads, [])
    with b.if_then(b.icmp_signed("<", team, _i(2))):
        b.call(kernel.fn, list(fn.args))
        b.ret_void()
    with b.if_else(kernel.turned(b, m, n)) as (then, otherwise):
        with then:
            b.call(split, [b.not_(tb), b.not_(ta), n, m, k, alpha, bm, ldb, a, lda, beta, c,
                           _i(1), ldc, team])
        with otherwise:
            b.call(split, [ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc, _i(1), team])
    b.ret_void()


#: The most memory the threads of a split product share for the operand packed once (else
#: each packs its own copy, block by block, while it is in its cache). The MNIST step's
#: products (≤ 0.8 MB) 3.5% faster shared; 1024² (4 MB) 2% slower.
SHARED_BYTES = 2 << 20
#: ... and the fewest elements worth a job of their own (packing 2¹⁶ takes about what a
#: round trip through the pool does; the 10-class products' shared operand has ~8000).
SHARED_ELEMENTS = 1 << 16


def emit_split(module: ir.Module, em: "GemmEmitter") -> ir.Function:
    """``void split(strided arguments, i64 team)``: C's columns (or rows) cut into one part per
    thread, whichever leaves the busiest thread less (``_split_by_columns``), in whole tiles so
    that no two threads share one. The operand every part needs whole (op(A) when split by
    columns, else op(B)) is packed once, by all threads (``pack_all``), when its size is
    between ``SHARED_ELEMENTS`` and ``SHARED_BYTES``; then each part packs its own panels of
    the other and runs the loops on the shared one."""
    from . import threads
    mr, nr = em.mr, em.nr
    fields = [t for _, t in em.strided_arguments()] + [INT1, PTR]    # + by columns, shared
    record = ir.LiteralStructType(fields)
    pack_all = _emit_pack_all(module, em, record)
    part = _emit_part(module, em, record)
    fn, b = _new_function(module, f"{kernel_symbol(em.dtype)}.split", ir.VoidType(),
                          em.strided_arguments() + [("team", INT64)])
    *args, team = fn.args
    ta, tb, m, n, k = args[:5]
    narrow = em.narrow(b, n)     # the skinny kernel on each part's rows: nothing shared
    by_cols = b.and_(b.not_(narrow), _split_by_columns(b, m, n, k, team, mr, nr))
    whole = b.select(by_cols, _round_up(b, m, mr), _round_up(b, n, nr))
    size = b.mul(b.mul(whole, k), _i(em.size))
    malloc = _declare(module, "malloc", PTR, [INT64])
    free = _declare(module, "free", ir.VoidType(), [PTR])
    fits = b.and_(b.not_(narrow), b.and_(
        b.icmp_signed("<=", size, _i(SHARED_BYTES)),
        b.icmp_signed(">=", b.mul(whole, k), _i(SHARED_ELEMENTS))))
    allocated = b.call(malloc, [b.select(fits, size, _i(1))])
    shared = b.select(fits, allocated, NULL)
    slot = b.alloca(record)
    for f, value in enumerate([*args, by_cols, shared]):
        b.store(value, b.gep(slot, [_i32(0), _i32(f)]))
    cx = _Cx(module, b)
    with b.if_then(b.icmp_unsigned("!=", shared, NULL)):
        panels = b.sdiv(whole, b.select(by_cols, _i(mr), _i(nr)))
        units = b.mul(b.sdiv(b.add(k, _i(KC - 1)), _i(KC)), panels)
        threads.emit_parallel_for(cx, pack_all, slot, units, _max(b, b.sdiv(units, b.mul(
            team, _i(4))), _i(1)))
    blocks = b.select(by_cols, b.sdiv(b.add(n, _i(nr - 1)), _i(nr)),
                      b.sdiv(b.add(m, _i(mr - 1)), _i(mr)))
    # one part per thread: grain = blocks / threads makes parallel_for cut `team` parts
    threads.emit_parallel_for(cx, part, slot, blocks, b.sdiv(blocks, team))
    b.call(free, [allocated])
    b.ret_void()
    return fn


def _chunk_function(module: ir.Module, em: "GemmEmitter", suffix: str, record: ir.Type
                    ) -> tuple[ir.Function, ir.IRBuilder, list[ir.Value]]:
    """A ``parallel_for`` body over ``emit_split``'s record: (function, builder, [lo, hi,
    *the record's fields])."""
    fn, b = _new_function(module, f"{kernel_symbol(em.dtype)}.{suffix}", ir.VoidType(),
                          [("args", PTR), ("lo", INT64), ("hi", INT64)])
    slot, lo, hi = fn.args
    return fn, b, [lo, hi, *(b.load(b.gep(slot, [_i32(0), _i32(f)], source_etype=record), typ=t)
                             for f, t in enumerate(record.elements))]


def _emit_pack_all(module: ir.Module, em: "GemmEmitter", record: ir.Type) -> ir.Function:
    """Chunks [lo, hi) of the (k block, panel) pairs of the shared operand, packed as the
    driver reads ``packed_a``/``packed_b``: k block ``pc`` at ``pc·whole``, then panels."""
    fty, mr, nr = em.fty, em.mr, em.nr
    fn, b, values = _chunk_function(module, em, "pack_all", record)
    lo, hi, ta, tb, m, n, k, _, a, lda, bm, ldb, _, _, _, _, by_cols, shared = values
    width = b.select(by_cols, _i(mr), _i(nr))
    extent = b.select(by_cols, m, n)
    whole = b.select(by_cols, _round_up(b, m, mr), _round_up(b, n, nr))
    panels = b.sdiv(whole, width)
    with _loop(b, lo, hi, name="unit") as unit:
        pc = b.mul(b.sdiv(unit, panels), _i(KC))
        start = b.mul(b.srem(unit, panels), width)
        kb = _min(b, b.sub(k, pc), _i(KC))
        count = _min(b, b.sub(extent, start), width)
        dst = _element(b, fty, shared, b.add(b.mul(pc, whole), b.mul(start, kb)))
        with b.if_else(by_cols) as (columns, rows):
            with columns:
                b.call(em.pack_a, [dst, a, lda, ta, start, count, pc, kb])
            with rows:
                b.call(em.pack_b, [dst, bm, ldb, b.not_(tb), start, count, pc, kb])
    b.ret_void()
    return fn


def _emit_part(module: ir.Module, em: "GemmEmitter", record: ir.Type) -> ir.Function:
    """Blocks [lo, hi) of C's columns (NR wide) or rows (MR high): the driver on them."""
    fty, mr, nr = em.fty, em.mr, em.nr
    fn, b, values = _chunk_function(module, em, "part", record)
    lo, hi, ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, rs, cs, by_cols, shared = values
    with b.if_else(by_cols) as (columns, rows):
        with columns:
            j0 = b.mul(lo, _i(nr))
            width = b.sub(_min(b, b.mul(hi, _i(nr)), n), j0)
            b_at = _element(b, fty, bm, b.select(tb, b.mul(j0, ldb), j0))
            b.call(em.driver, [ta, tb, m, width, k, alpha, a, lda, b_at, ldb, beta,
                               _element(b, fty, c, b.mul(j0, cs)), rs, cs, shared, NULL])
        with rows:
            i0 = b.mul(lo, _i(mr))
            height = b.sub(_min(b, b.mul(hi, _i(mr)), m), i0)
            a_at = _element(b, fty, a, b.select(ta, i0, b.mul(i0, lda)))
            b.call(em.driver, [ta, tb, height, n, k, alpha, a_at, lda, bm, ldb, beta,
                               _element(b, fty, c, b.mul(i0, rs)), rs, cs, NULL, shared])
    b.ret_void()
    return fn


#: What packing one element costs, in multiply-adds of the micro-kernel (~0.25 cycles against
#: 32 multiply-adds a cycle).
PACK_COST = 8


def _split_by_columns(b: ir.IRBuilder, m: ir.Value, n: ir.Value, k: ir.Value, team: ir.Value,
                      mr: int, nr: int) -> ir.Value:
    """Whether to split C's columns between the threads (each packs all of op(A)) rather than
    its rows (each packs all of op(B)): the split whose busiest thread does less, counting
    its multiply-adds (whole tiles: 25 column blocks make parts of 13 and 12) and packing.
    512×784×256 splits by rows (64 row blocks, 32 each): 5% less than by columns."""
    def busiest(along: ir.Value, width: int, across: ir.Value) -> ir.Value:
        part = b.mul(b.sdiv(b.add(b.sdiv(b.add(along, _i(width - 1)), _i(width)),
                                  b.sub(team, _i(1))), team), _i(width))
        packed = b.add(b.mul(across, k), b.mul(part, k))
        return b.add(b.mul(b.mul(part, across), k), b.mul(packed, _i(PACK_COST)))
    return b.icmp_signed("<=", busiest(n, nr, m), busiest(m, mr, n))


class _Cx:
    def __init__(self, module: ir.Module, builder: ir.IRBuilder) -> None:
        self.module, self.b = module, builder

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return _declare(module=self.module, name=name, ret=ret, args=args)


# --------------------------------------------------------------------------- the gemv kernel

def gemv_function(module: ir.Module, dtype: Type) -> ir.Function:
    """``void sxad.gemv.<t>(i1 trans, i64 m, n, T alpha, ptr a, i64 lda, ptr x, i64 incx,
    T beta, ptr y, i64 incy)``, emitted into ``module`` once. Row products are summed with
    ``reassoc`` so that they vectorize (BLAS fixes no summation order either)."""
    name = f"sxad.gemv.{dtype}"
    if name in module.globals:
        return module.globals[name]
    fty = LL_FLOAT[dtype]
    fn, b = _new_function(module, name, ir.VoidType(), [
        ("trans", INT1), ("m", INT64), ("n", INT64), ("alpha", fty), ("a", PTR), ("lda", INT64),
        ("x", PTR), ("incx", INT64), ("beta", fty), ("y", PTR), ("incy", INT64)])
    trans, m, n, alpha, a, lda, x, incx, beta, y, incy = fn.args
    for pointer in (a, x, y):
        pointer.add_attribute("noalias")
    beta_zero = b.fcmp_ordered("==", beta, ir.Constant(fty, 0.0))
    zero = ir.Constant(fty, 0.0)
    flags = ("reassoc", "contract")
    with b.if_else(trans) as (then, otherwise):
        with then:      # y[j] = beta·y[j] + Σ_i alpha·x[i]·A[i, j]: axpy over rows
            with _loop(b, _i(0), n, name="j0") as j:
                pointer = _element(b, fty, y, b.mul(j, incy))
                _scaled_store(b, fty, pointer, zero, beta, beta_zero)
            with _loop(b, _i(0), m, name="i") as i:
                xi = b.load(_element(b, fty, x, b.mul(i, incx)), typ=fty)
                scale = b.fmul(alpha, xi)
                row = _element(b, fty, a, b.mul(i, lda))
                with _loop(b, _i(0), n, name="j") as j:
                    pointer = _element(b, fty, y, b.mul(j, incy))
                    aij = b.load(_element(b, fty, row, j), typ=fty)
                    total = b.call(_fma(module, fty), [scale, aij, b.load(pointer, typ=fty)])
                    b.store(total, pointer)
        with otherwise:     # y[i] = beta·y[i] + alpha·(A[i, :] · x)
            with _loop(b, _i(0), m, name="i") as i:
                row = _element(b, fty, a, b.mul(i, lda))

                def term(j: ir.Value, total: ir.Value) -> ir.Value:
                    aij = b.load(_element(b, fty, row, j), typ=fty)
                    xj = b.load(_element(b, fty, x, b.mul(j, incx)), typ=fty)
                    return b.fadd(total, b.fmul(aij, xj, flags=flags), flags=flags)
                result = _sum_loop(b, fty, n, term)
                pointer = _element(b, fty, y, b.mul(i, incy))
                _scaled_store(b, fty, pointer, b.fmul(alpha, result), beta, beta_zero)
    b.ret_void()
    return fn
