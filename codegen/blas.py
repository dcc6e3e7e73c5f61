"""Matrix products for native code: numpy's bundled OpenBLAS, or a blocked LLVM kernel.

numpy wheels ship OpenBLAS (``numpy.libs/libscipy_openblas64_*.so``) exporting the CBLAS
interface with 64-bit integers (``scipy_cblas_dgemm64_``…). ``register()`` finds it through
ctypes and gives its functions stable names (``sxad.blas.dgemm``…) with ``llvm.add_symbol``,
so the IR, and the object code cached on disk, never holds an address.

``emit_gemm``/``emit_gemv`` emit a row-major call at the builder's position. gemm: products of
at least ``OWN_WORK`` multiply-adds (m·n·k ≥ 2¹⁹) call the runtime library's packed,
register-blocked kernel ``sxad.rt.gemm.<t>`` (Goto/BLIS style: an MR×NR tile of C held in
vector registers, A and B packed into zero-padded panels with vector loads and in-register
transposes; a C narrow enough is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ, which pads fewer columns into
tiles), which runs on the thread pool (``codegen.threads``) from ``PARALLEL_WORK`` (2²⁰) on:
one part per thread, along C's columns or its rows (whichever leaves the busiest thread
less work, packing included), the operand all parts need whole packed once by all threads.
Smaller products call OpenBLAS, whose small-matrix path costs ~0.05 µs at 4×4×4 and which
runs them on one thread (OpenBLAS splits a product between its threads only from m·n·k ≥
2¹⁹ on). That bound matters: OpenBLAS's threads spin for a while after a product, on the
core the pool's worker needs; a kernel calling both made the MNIST step bimodal (2.5 ms or
5 ms, median 4.2). Without OpenBLAS (another numpy build) or with ``SXAD_BLAS=0`` every
product goes to the kernel. gemv: OpenBLAS, else a vectorizable loop emitted into the module
(once per dtype).

Why the rule (f32 GFLOP/s, this 2-core AVX-512 EPYC (Zen 5, ~265 GFLOP/s a core), best of
9; numpy's OpenBLAS 0.3.31 runs its Haswell kernels here):

    shape m×n×k           OpenBLAS 1t  OpenBLAS 2t  kernel 1t  kernel 2t
    256×512×784 NT            125          244         233        411–453
    512×512×256 TN            126          237         229        386–439
    256×10×512 NT (skinny)     73          128          62–73    (serial)
    10×512×256 TN (skinny)     54           81          76       (serial)
    128×128×64 NT (digits)    112          190         155       (serial)
    128×10×128 NT (digits)     62           61          43       (OpenBLAS)
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
from contextlib import contextmanager
from typing import Iterator

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from sxad.ir import F32, F64, Type

INT1 = ir.IntType(1)
INT32 = ir.IntType(32)
INT64 = ir.IntType(64)
PTR = ir.PointerType()
LL_FLOAT: dict[Type, ir.Type] = {F64: ir.DoubleType(), F32: ir.FloatType()}
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

def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(
        module, ir.FunctionType(ret, args), name)


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
    kernel = _declare(cx.module, gemm_symbol(dtype), ir.VoidType(), types)
    bd = cx.b
    large = bd.icmp_signed(">=", bd.mul(bd.mul(m, n), k), _i(OWN_WORK))
    with bd.if_else(large) as (ours, theirs):
        with ours:
            bd.call(kernel, own)
        with theirs:
            _call_openblas(cx, dtype, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


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


# --------------------------------------------------------------------------- IR helpers

def _i(value: int) -> ir.Constant:
    return ir.Constant(INT64, value)


@contextmanager
def _loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int = 1,
          name: str = "i") -> Iterator[ir.Value]:
    """for (i = start; i < stop; i += step): a guarded, bottom-tested loop (the shape LLVM's
    vectorizer expects); yields i."""
    fn = b.function
    before = b.block
    body = fn.append_basic_block(f"{name}.body")
    after = fn.append_basic_block(f"{name}.end")
    b.cbranch(b.icmp_signed("<", start, stop), body, after)
    b.position_at_end(body)
    index = b.phi(INT64, name=name)
    index.add_incoming(start, before)
    yield index
    following = b.add(index, _i(step), name=f"{name}.next")
    index.add_incoming(following, b.block)
    b.cbranch(b.icmp_signed("<", following, stop), body, after)
    b.position_at_end(after)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _new_function(module: ir.Module, name: str, ret: ir.Type, args: list[tuple[str, ir.Type]],
                  ) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(module, ir.FunctionType(ret, [t for _, t in args]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    for arg, (arg_name, _) in zip(fn.args, args):
        arg.name = arg_name
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _element(b: ir.IRBuilder, fty: ir.Type, base: ir.Value, index: ir.Value) -> ir.Value:
    return b.gep(base, [index], source_etype=fty)


def _matrix_index(b: ir.IRBuilder, trans: ir.Value, row: ir.Value, col: ir.Value,
                  ld: ir.Value) -> ir.Value:
    """The offset of op(M)[row, col] in a row-major M with leading dimension ld."""
    return b.select(trans, b.add(b.mul(col, ld), row), b.add(b.mul(row, ld), col))


def _scaled_store(b: ir.IRBuilder, fty: ir.Type, pointer: ir.Value, value: ir.Value,
                  beta: ir.Value, beta_zero: ir.Value) -> None:
    """*pointer = value + beta·*pointer, without reading it into the sum when beta is 0 (a nan
    in an uninitialised output must not leak in)."""
    old = b.load(pointer, typ=fty)
    b.store(b.select(beta_zero, value, b.call(_fma(b.module, fty), [beta, old, value])), pointer)


def _fma(module: ir.Module, ty: ir.Type) -> ir.Function:
    if isinstance(ty, ir.VectorType):
        suffix = f"v{ty.count}{'f64' if isinstance(ty.element, ir.DoubleType) else 'f32'}"
    else:
        suffix = "f64" if isinstance(ty, ir.DoubleType) else "f32"
    return _declare(module, f"llvm.fma.{suffix}", ty, [ty] * 3)


def _transpose(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """G vectors of C elements (G ≤ C, powers of two) holding a G×C matrix → G vectors whose
    concatenation is its transpose (C×G, row-major). Each round interleaves vector i with
    vector i + G/2 (a riffle of the whole array, which rotates the bits of an element's index
    by one): log2 G rounds turn index r·C + c into c·G + r."""
    count = rows[0].type.count
    low = [x for i in range(count // 2) for x in (i, count + i)]
    high = [x + count // 2 for x in low]
    mask_type = ir.VectorType(INT32, count)
    half = len(rows) // 2
    for _ in range(len(rows).bit_length() - 1):
        rows = [b.shuffle_vector(rows[i], rows[i + half], ir.Constant(mask_type, mask))
                for i in range(half) for mask in (low, high)]
    return rows


# --------------------------------------------------------------------------- the gemm kernel

def vector_bits() -> int:
    """The widest vector registers of the host, which the micro-kernel's tile is made of."""
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 512
    return 256 if features.get("avx") else 128


def tile(dtype: Type) -> tuple[int, int, int]:
    """(MR, NR, W): the micro-kernel's C tile is MR rows × NR columns, NR = 2 vectors of W.
    MR·NR/W accumulators + 2 B vectors + 1 broadcast fit the 16 (32 with AVX-512) registers."""
    width = vector_bits() // (64 if dtype == F64 else 32)
    rows = 8 if vector_bits() == 512 else 6
    return rows, 2 * width, width


KC, MC, NC = 256, 96, 4096      # the k, m, n block sizes of the packed panels (L1/L2/L3)
#: Products of at least this many multiply-adds (m·n·k) go to the LLVM kernel rather than
#: to OpenBLAS, which runs smaller ones on one thread (see the module docstring).
OWN_WORK = 1 << 19
#: ... and are split between threads from this many on (smaller ones run on the caller). 2²⁰
#: rather than 2²¹: the MNIST step's 10-class products (1.3·10⁶) 35 → 20 µs each, the step
#: 1.97 → 1.92 ms; the digits step's 128×128×64 ones too (0.056 → 0.051 ms).
PARALLEL_WORK = 1 << 20


def gemm_function(module: ir.Module, dtype: Type) -> ir.Function:
    """The one-thread kernel ``void sxad.gemm.<t>(i1 ta, i1 tb, i64 m, n, k, T alpha, ptr a,
    i64 lda, ptr b, i64 ldb, T beta, ptr c, i64 ldc)``, emitted into ``module`` once."""
    return _emitter(module, dtype).fn


def _emitter(module: ir.Module, dtype: Type) -> "_GemmEmitter":
    """The kernel's functions in ``module`` (emitted on first use)."""
    emitters = module.__dict__.setdefault("sxad_gemm", {})
    if dtype not in emitters:
        emitters[dtype] = _GemmEmitter(module, dtype, f"sxad.gemm.{dtype}")
    return emitters[dtype]


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
    (``_GemmEmitter.turned``), are split into one part per thread (``emit_split``)."""
    from . import threads
    emitter = _emitter(module, dtype)
    split = emit_split(module, emitter)
    fn, b = _new_function(module, kernel_symbol(dtype), ir.VoidType(),
                          _gemm_arguments(emitter.fty))
    fn.linkage = "external"
    ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc = fn.args
    count_threads = _declare(module, threads.POOL_THREADS, INT64, [])
    small = b.icmp_signed("<", b.mul(b.mul(m, n), k), _i(PARALLEL_WORK))
    with b.if_then(small):
        b.call(emitter.fn, list(fn.args))
        b.ret_void()
    team = b.call(count_threads, [])
    with b.if_then(b.icmp_signed("<", team, _i(2))):
        b.call(emitter.fn, list(fn.args))
        b.ret_void()
    with b.if_else(emitter.turned(b, m, n)) as (then, otherwise):
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


def emit_split(module: ir.Module, em: "_GemmEmitter") -> ir.Function:
    """``void split(strided arguments, i64 team)``: C's columns (or rows) cut into one part per
    thread, whichever leaves the busiest thread less (``_split_by_columns``), in whole tiles so
    that no two threads share one. The operand every part needs whole (op(A) when split by
    columns, else op(B)) is packed once, by all threads (``pack_all``), when its size is
    between ``SHARED_ELEMENTS`` and ``SHARED_BYTES``; then each part packs its own panels of
    the other and runs the loops on the shared one."""
    from . import threads
    fty, mr, nr = em.fty, em.mr, em.nr
    fields = [t for _, t in em.strided_arguments()] + [INT1, PTR]    # + by columns, shared
    record = ir.LiteralStructType(fields)
    pack_all = _emit_pack_all(module, em, record)
    part = _emit_part(module, em, record)
    fn, b = _new_function(module, f"{kernel_symbol(em.dtype)}.split", ir.VoidType(),
                          em.strided_arguments() + [("team", INT64)])
    *args, team = fn.args
    ta, tb, m, n, k = args[:5]
    by_cols = _split_by_columns(b, m, n, k, team, mr, nr)
    whole = b.select(by_cols, _round_up(b, m, mr), _round_up(b, n, nr))
    size = b.mul(b.mul(whole, k), _i(em.size))
    malloc = _declare(module, "malloc", PTR, [INT64])
    free = _declare(module, "free", ir.VoidType(), [PTR])
    fits = b.and_(b.icmp_signed("<=", size, _i(SHARED_BYTES)),
                  b.icmp_signed(">=", b.mul(whole, k), _i(SHARED_ELEMENTS)))
    shared = b.select(fits, b.call(malloc, [b.select(fits, size, _i(1))]), NULL)
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
    b.call(free, [shared])
    b.ret_void()
    return fn


def _chunk_function(module: ir.Module, em: "_GemmEmitter", suffix: str, record: ir.Type
                    ) -> tuple[ir.Function, ir.IRBuilder, list[ir.Value]]:
    """A ``parallel_for`` body over ``emit_split``'s record: (function, builder, [lo, hi,
    *the record's fields])."""
    fn, b = _new_function(module, f"{kernel_symbol(em.dtype)}.{suffix}", ir.VoidType(),
                          [("args", PTR), ("lo", INT64), ("hi", INT64)])
    slot, lo, hi = fn.args
    return fn, b, [lo, hi, *(b.load(b.gep(slot, [_i32(0), _i32(f)], source_etype=record), typ=t)
                             for f, t in enumerate(record.elements))]


def _emit_pack_all(module: ir.Module, em: "_GemmEmitter", record: ir.Type) -> ir.Function:
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


def _emit_part(module: ir.Module, em: "_GemmEmitter", record: ir.Type) -> ir.Function:
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


def _round_up(b: ir.IRBuilder, x: ir.Value, to: int) -> ir.Value:
    return b.mul(b.sdiv(b.add(x, _i(to - 1)), _i(to)), _i(to))


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


def _i32(value: int) -> ir.Constant:
    return ir.Constant(INT32, value)


NULL = ir.Constant(PTR, None)


class _GemmEmitter:
    """Goto's loop nest: for each NC block of columns, each KC block of k: pack op(B) into
    NR-wide panels; for each MC block of rows: pack op(A) into MR-high panels and run the
    micro-kernel over the tiles. Packed panels are zero-padded, so edge tiles compute a whole
    tile and store the part inside C."""

    def __init__(self, module: ir.Module, dtype: Type, name: str) -> None:
        self.module, self.dtype = module, dtype
        self.fty = LL_FLOAT[dtype]
        self.size = 8 if dtype == F64 else 4
        self.mr, self.nr, self.w = tile(dtype)
        self.vty = ir.VectorType(self.fty, self.w)
        self.mc = MC // self.mr * self.mr
        self.nc = NC // self.nr * self.nr
        self.micro = self.emit_micro(f"{name}.micro")
        self.pack_a = self.emit_pack(f"{name}.pack_a", self.mr)
        self.pack_b = self.emit_pack(f"{name}.pack_b", self.nr)
        self.naive = self.emit_naive(f"{name}.naive")
        self.driver = self.emit_driver(f"{name}.strided")
        self.fn = self.emit_oriented(name)

    # -- the micro-kernel: C[0:rows, 0:cols] = alpha·Ap·Bp + beta·C (an MR×NR buffer for
    #    edge tiles is passed in: no alloca)

    def emit_micro(self, name: str) -> ir.Function:
        fty, vty, mr, nr, w = self.fty, self.vty, self.mr, self.nr, self.w
        fn, b = _new_function(self.module, name, ir.VoidType(), [
            ("kb", INT64), ("ap", PTR), ("bp", PTR), ("c", PTR), ("rs", INT64), ("cs", INT64),
            ("alpha", fty), ("beta", fty), ("rows", INT64), ("cols", INT64), ("buffer", PTR)])
        kb, ap, bp, c, rs, cs, alpha, beta, rows, cols, buffer = fn.args
        for pointer in (ap, bp, c, buffer):
            pointer.add_attribute("noalias")
        fma = _fma(self.module, vty)
        zero = ir.Constant(vty, None)
        vectors = nr // w
        self.prefetch_tile(b, c, rs, cs, kb)
        entry = b.block
        body = fn.append_basic_block("k.body")
        done = fn.append_basic_block("k.end")
        b.cbranch(b.icmp_signed(">", kb, _i(0)), body, done)
        b.position_at_end(body)
        p = b.phi(INT64, name="p")
        acc = [[b.phi(vty, name=f"acc{i}.{v}") for v in range(vectors)] for i in range(mr)]
        b_row = _element(b, fty, bp, b.mul(p, _i(nr)))
        b_vectors = [b.load(_element(b, fty, b_row, _i(v * w)), typ=vty, align=self.size)
                     for v in range(vectors)]
        a_col = _element(b, fty, ap, b.mul(p, _i(mr)))
        new_acc = []
        for i in range(mr):
            a_value = b.load(_element(b, fty, a_col, _i(i)), typ=fty)
            splat = self.splat(b, a_value)
            new_acc.append([b.call(fma, [splat, b_vectors[v], acc[i][v]])
                            for v in range(vectors)])
        p_next = b.add(p, _i(1))
        p.add_incoming(_i(0), entry)
        p.add_incoming(p_next, b.block)
        for i in range(mr):
            for v in range(vectors):
                acc[i][v].add_incoming(zero, entry)
                acc[i][v].add_incoming(new_acc[i][v], b.block)
        b.cbranch(b.icmp_signed("<", p_next, kb), body, done)
        b.position_at_end(done)
        final = [[b.phi(vty) for _ in range(vectors)] for _ in range(mr)]
        for i in range(mr):
            for v in range(vectors):
                final[i][v].add_incoming(zero, entry)
                final[i][v].add_incoming(new_acc[i][v], body)
        self.store_tile(fn, b, final, buffer, c, rs, cs, alpha, beta, rows, cols)
        return fn

    def prefetch_tile(self, b: ir.IRBuilder, c: ir.Value, rs: ir.Value, cs: ir.Value,
                      kb: ir.Value) -> None:
        """Ask for the C tile's cache lines (for writing) before a long k loop: they are read
        or written only after it (1024³: 4% faster; a 10-long loop slower)."""
        prefetch = _declare(self.module, "llvm.prefetch.p0", ir.VoidType(),
                            [PTR, INT32, INT32, INT32])
        line = 64 // self.size
        with b.if_then(b.and_(b.icmp_signed("==", cs, _i(1)), b.icmp_signed(">=", kb, _i(64)))):
            for i in range(self.mr):
                row = _element(b, self.fty, c, b.mul(_i(i), rs))
                for at in range(0, self.nr, line):
                    b.call(prefetch, [_element(b, self.fty, row, _i(at)), _i32(1), _i32(3),
                                      _i32(1)])

    def splat(self, b: ir.IRBuilder, value: ir.Value) -> ir.Value:
        vector = b.insert_element(ir.Constant(self.vty, ir.Undefined), value, ir.Constant(INT32, 0))
        mask = ir.Constant(ir.VectorType(INT32, self.w), [0] * self.w)
        return b.shuffle_vector(vector, ir.Constant(self.vty, ir.Undefined), mask)

    def store_tile(self, fn: ir.Function, b: ir.IRBuilder, acc: list[list[ir.Value]],
                   buffer: ir.Value, c: ir.Value, rs: ir.Value, cs: ir.Value, alpha: ir.Value,
                   beta: ir.Value, rows: ir.Value, cols: ir.Value) -> None:
        """A whole tile of a C with unit column stride straight into C with vector stores;
        an edge tile, or any tile of a transposed C, through a buffer."""
        fty, vty, mr, nr, w = self.fty, self.vty, self.mr, self.nr, self.w
        beta_zero = b.fcmp_ordered("==", beta, ir.Constant(fty, 0.0))
        alpha_v = self.splat(b, alpha)
        beta_v = self.splat(b, beta)
        whole = b.and_(b.and_(b.icmp_signed("==", rows, _i(mr)), b.icmp_signed("==", cols, _i(nr))),
                       b.icmp_signed("==", cs, _i(1)))
        with b.if_else(whole) as (then, otherwise):
            with then:      # C is not read when beta is 0 (the first k block's tiles)
                with b.if_else(beta_zero) as (overwrite, accumulate):
                    for branch, reads in ((overwrite, False), (accumulate, True)):
                        with branch:
                            self.store_whole(b, acc, c, rs, alpha_v, beta_v if reads else None)
            with otherwise:
                for i in range(mr):
                    for v in range(len(acc[i])):
                        pointer = _element(b, fty, buffer, _i(i * nr + v * w))
                        b.store(b.fmul(alpha_v, acc[i][v]), pointer, align=self.size)
                with _loop(b, _i(0), rows, name="i") as i:
                    with _loop(b, _i(0), cols, name="j") as j:
                        value = b.load(_element(b, fty, buffer, b.add(b.mul(i, _i(nr)), j)),
                                       typ=fty)
                        pointer = _element(b, fty, c, b.add(b.mul(i, rs), b.mul(j, cs)))
                        _scaled_store(b, fty, pointer, value, beta, beta_zero)
        b.ret_void()

    def store_whole(self, b: ir.IRBuilder, acc: list[list[ir.Value]], c: ir.Value,
                    rs: ir.Value, alpha_v: ir.Value, beta_v: ir.Value | None) -> None:
        """C[i, :] = alpha·acc[i] (+ beta·C[i, :] unless ``beta_v`` is None), vector stores."""
        fty, vty, w = self.fty, self.vty, self.w
        for i in range(self.mr):
            row = _element(b, fty, c, b.mul(_i(i), rs))
            for v in range(len(acc[i])):
                pointer = _element(b, fty, row, _i(v * w))
                value = b.fmul(alpha_v, acc[i][v])
                if beta_v is not None:
                    old = b.load(pointer, typ=vty, align=self.size)
                    value = b.call(_fma(self.module, vty), [beta_v, old, value])
                b.store(value, pointer, align=self.size)

    # -- packing: dst[panel][p][e] = op(M)[start + panel·width + e, p0 + p], 0 beyond `count`

    def emit_pack(self, name: str, width: int) -> ir.Function:
        """Packs `count` rows (of op(A), or columns of op(B), called with the roles swapped:
        op(B)[p, j] = Bᵀ[j, p]) × kb into panels `width` high. Whole panels are copied with
        vector loads: a row p of a panel is `width` consecutive elements of M when ``trans``,
        else `width` rows of M are read a vector at a time and transposed in registers. The
        last, partial panel repeats its last row (zeroed), element by element."""
        fn, b = _new_function(self.module, name, ir.VoidType(), [
            ("dst", PTR), ("src", PTR), ("ld", INT64), ("trans", INT1), ("start", INT64),
            ("count", INT64), ("p0", INT64), ("kb", INT64)])
        dst, src, ld, trans, start, count, p0, kb = fn.args
        for pointer in (dst, src):
            pointer.add_attribute("noalias")
        whole = b.mul(b.sdiv(count, _i(width)), _i(width))
        with b.if_else(trans) as (along, across):
            with along:
                self.pack_along(b, width, dst, src, ld, start, whole, p0, kb)
            with across:
                self.pack_across(b, width, dst, src, ld, start, whole, p0, kb)
        self.pack_edge(b, width, dst, src, ld, trans, start, whole, count, p0, kb)
        b.ret_void()
        return fn

    def pack_along(self, b: ir.IRBuilder, width: int, dst: ir.Value, src: ir.Value,
                   ld: ir.Value, start: ir.Value, whole: ir.Value, p0: ir.Value,
                   kb: ir.Value) -> None:
        """Whole panels of M[r, c] = src[c·ld + r]: row p of a panel is one vector load."""
        fty, vty = self.fty, ir.VectorType(self.fty, width)
        first = _element(b, fty, src, b.add(b.mul(p0, ld), start))
        with _loop(b, _i(0), whole, step=width, name="along") as panel:
            out = _element(b, fty, dst, b.mul(panel, kb))
            column = _element(b, fty, first, panel)
            with _loop(b, _i(0), kb, name="pa") as p:
                value = b.load(_element(b, fty, column, b.mul(p, ld)), typ=vty, align=self.size)
                b.store(value, _element(b, fty, out, b.mul(p, _i(width))), align=self.size)

    def pack_across(self, b: ir.IRBuilder, width: int, dst: ir.Value, src: ir.Value,
                    ld: ir.Value, start: ir.Value, whole: ir.Value, p0: ir.Value,
                    kb: ir.Value) -> None:
        """Whole panels of M[r, c] = src[r·ld + c]: groups of G rows (G the largest power of
        two dividing `width`, at most a vector) × one vector of C columns are loaded and
        transposed with shuffles (``_transpose``): each result vector holds C/G consecutive
        p of the group, stored G elements a time. Columns past the last whole vector are
        copied element by element."""
        fty, w = self.fty, self.w
        group = min(width & -width, w)
        per = w // group                    # p per transposed vector
        vectors = b.mul(b.sdiv(kb, _i(w)), _i(w))
        with _loop(b, _i(0), whole, step=width, name="across") as panel:
            out = _element(b, fty, dst, b.mul(panel, kb))
            rows = [_element(b, fty, src, b.add(b.mul(b.add(start, b.add(panel, _i(e))), ld), p0))
                    for e in range(width)]
            with _loop(b, _i(0), vectors, step=w, name="pv") as pv:
                for g in range(0, width, group):
                    loaded = [b.load(_element(b, fty, rows[g + e], pv), typ=self.vty,
                                     align=self.size) for e in range(group)]
                    for q, value in enumerate(_transpose(b, loaded)):
                        if group == width:      # the p of a vector are consecutive rows
                            at = b.add(b.mul(pv, _i(width)), _i(q * w))
                            b.store(value, _element(b, fty, out, at), align=self.size)
                            continue
                        for t in range(per):
                            part = value if per == 1 else b.shuffle_vector(
                                value, ir.Constant(self.vty, ir.Undefined),
                                ir.Constant(ir.VectorType(INT32, group),
                                            list(range(t * group, (t + 1) * group))))
                            p = b.add(pv, _i(q * per + t))
                            at = b.add(b.mul(p, _i(width)), _i(g))
                            b.store(part, _element(b, fty, out, at), align=self.size)
            with _loop(b, vectors, kb, name="pt") as p:
                for e in range(width):
                    value = b.load(_element(b, fty, rows[e], p), typ=fty)
                    b.store(value, _element(b, fty, out, b.add(b.mul(p, _i(width)), _i(e))))

    def pack_edge(self, b: ir.IRBuilder, width: int, dst: ir.Value, src: ir.Value,
                  ld: ir.Value, trans: ir.Value, start: ir.Value, whole: ir.Value,
                  count: ir.Value, p0: ir.Value, kb: ir.Value) -> None:
        """The partial last panel (rows whole … count), zero-padded to `width`."""
        fty = self.fty
        last = b.sub(count, _i(1))
        zero = ir.Constant(fty, 0.0)
        with _loop(b, whole, count, step=width, name="panel") as panel:
            out = _element(b, fty, dst, b.mul(panel, kb))
            with _loop(b, _i(0), kb, name="p") as p:
                column = b.add(p0, p)
                for e in range(width):
                    index = b.add(panel, _i(e))
                    inside = b.icmp_signed("<=", index, last)
                    clamped = b.add(start, b.select(inside, index, last))
                    offset = _matrix_index(b, trans, clamped, column, ld)
                    value = b.load(_element(b, fty, src, offset), typ=fty)
                    target = _element(b, fty, out, b.add(b.mul(p, _i(width)), _i(e)))
                    b.store(b.select(inside, value, zero), target)

    # -- without memory for the panels: the plain triple loop

    def emit_naive(self, name: str) -> ir.Function:
        fty = self.fty
        fn, b = _new_function(self.module, name, ir.VoidType(), self.strided_arguments())
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, rs, cs = fn.args
        beta_zero = b.fcmp_ordered("==", beta, ir.Constant(fty, 0.0))
        with _loop(b, _i(0), m, name="i") as i:
            with _loop(b, _i(0), n, name="j") as j:
                before = b.block
                total = self.dot(fn, b, k, a, lda, ta, i, bm, ldb, tb, j, before)
                pointer = _element(b, fty, c, b.add(b.mul(i, rs), b.mul(j, cs)))
                _scaled_store(b, fty, pointer, b.fmul(alpha, total), beta, beta_zero)
        b.ret_void()
        return fn

    def dot(self, fn: ir.Function, b: ir.IRBuilder, k: ir.Value, a: ir.Value, lda: ir.Value,
            ta: ir.Value, i: ir.Value, bm: ir.Value, ldb: ir.Value, tb: ir.Value,
            j: ir.Value, before: ir.Block) -> ir.Value:
        fty = self.fty
        body = fn.append_basic_block("dot.body")
        done = fn.append_basic_block("dot.end")
        zero = ir.Constant(fty, 0.0)
        b.cbranch(b.icmp_signed(">", k, _i(0)), body, done)
        b.position_at_end(body)
        p, total = b.phi(INT64), b.phi(fty)
        x = b.load(_element(b, fty, a, _matrix_index(b, ta, i, p, lda)), typ=fty)
        y = b.load(_element(b, fty, bm, _matrix_index(b, tb, p, j, ldb)), typ=fty)
        following = b.call(_fma(self.module, fty), [x, y, total])
        p_next = b.add(p, _i(1))
        for phi, start, step in ((p, _i(0), p_next), (total, zero, following)):
            phi.add_incoming(start, before)
            phi.add_incoming(step, body)
        b.cbranch(b.icmp_signed("<", p_next, k), body, done)
        b.position_at_end(done)
        result = b.phi(fty)
        result.add_incoming(zero, before)
        result.add_incoming(following, body)
        return result

    # -- the driver

    def arguments(self) -> list[tuple[str, ir.Type]]:
        fty = self.fty
        return [("ta", INT1), ("tb", INT1), ("m", INT64), ("n", INT64), ("k", INT64),
                ("alpha", fty), ("a", PTR), ("lda", INT64), ("b", PTR), ("ldb", INT64),
                ("beta", fty), ("c", PTR), ("ldc", INT64)]

    def strided_arguments(self) -> list[tuple[str, ir.Type]]:
        """``arguments`` with C[i, j] at c + i·rs + j·cs (a transposed C: rs = 1)."""
        return self.arguments()[:-1] + [("rs", INT64), ("cs", INT64)]

    def emit_oriented(self, name: str) -> ir.Function:
        """The kernel: C := alpha·op(A)·op(B) + beta·C, or, when C's shape pads fewer
        elements into whole MR×NR tiles that way, Cᵀ := alpha·op(B)ᵀ·op(A)ᵀ + beta·Cᵀ (a
        256×10 C computes 256×32 tiles, its transpose 16×256: half the work)."""
        mr, nr = self.mr, self.nr
        fn, b = _new_function(self.module, name, ir.VoidType(), self.arguments())
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc = fn.args
        with b.if_else(self.turned(b, m, n)) as (then, otherwise):
            with then:
                b.call(self.driver, [b.not_(tb), b.not_(ta), n, m, k, alpha, bm, ldb, a, lda,
                                     beta, c, _i(1), ldc, NULL, NULL])
            with otherwise:
                b.call(self.driver, [ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc,
                                     _i(1), NULL, NULL])
        b.ret_void()
        return fn

    def turned(self, b: ir.IRBuilder, m: ir.Value, n: ir.Value) -> ir.Value:
        """Whether to compute Cᵀ: when that pads a fifth fewer elements into whole tiles (its
        tiles are then stored element by element)."""
        upright = b.mul(_round_up(b, m, self.mr), _round_up(b, n, self.nr))
        turned = b.mul(_round_up(b, n, self.mr), _round_up(b, m, self.nr))
        return b.icmp_signed("<", b.mul(turned, _i(5)), b.mul(upright, _i(4)))

    def emit_driver(self, name: str) -> ir.Function:
        """Goto's loops; ``packed_a`` / ``packed_b``, when not null, hold all of op(A) / op(B)
        packed already (``pack_all``: the threads of a split product share them)."""
        fty, mr, nr = self.fty, self.mr, self.nr
        fn, b = _new_function(self.module, name, ir.VoidType(), self.strided_arguments() + [
            ("packed_a", PTR), ("packed_b", PTR)])
        ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, rs, cs, packed_a, packed_b = fn.args
        plain = list(fn.args)[:-2]
        malloc = _declare(self.module, "malloc", PTR, [INT64])
        free = _declare(self.module, "free", ir.VoidType(), [PTR])
        empty = b.or_(b.icmp_signed("<=", m, _i(0)), b.icmp_signed("<=", n, _i(0)))
        with b.if_then(empty):
            b.ret_void()
        with b.if_then(b.icmp_signed("<=", k, _i(0))):     # C := beta·C
            b.call(self.naive, plain)
            b.ret_void()
        kc = _min(b, k, _i(KC))
        a_count = b.mul(_round_up(b, _min(b, m, _i(self.mc)), mr), kc)
        # the packed A panels, then room for one tile (the micro-kernel's edge buffer)
        a_bytes = b.mul(b.add(a_count, _i(mr * nr)), _i(self.size))
        b_bytes = b.mul(b.mul(_round_up(b, _min(b, n, _i(self.nc)), nr), kc), _i(self.size))
        a_pack = b.call(malloc, [a_bytes])
        b_pack = b.call(malloc, [b_bytes])
        missing = b.or_(b.icmp_unsigned("==", a_pack, ir.Constant(PTR, None)),
                        b.icmp_unsigned("==", b_pack, ir.Constant(PTR, None)))
        with b.if_then(missing):
            b.call(free, [a_pack])
            b.call(free, [b_pack])
            b.call(self.naive, plain)
            b.ret_void()
        edge = _element(b, fty, a_pack, a_count)
        not_tb = b.not_(tb)
        null = ir.Constant(PTR, None)
        own_a, own_b = (b.icmp_unsigned("==", x, null) for x in (packed_a, packed_b))
        m_all, n_all = _round_up(b, m, mr), _round_up(b, n, nr)
        with _loop(b, _i(0), n, step=self.nc, name="jc") as jc:
            nb = _min(b, b.sub(n, jc), _i(self.nc))
            with _loop(b, _i(0), k, step=KC, name="pc") as pc:
                kb = _min(b, b.sub(k, pc), _i(KC))
                # op(B)[p, j] read as the rows j of op(B)ᵀ: transposed unless tb
                with b.if_then(own_b):
                    b.call(self.pack_b, [b_pack, bm, ldb, not_tb, jc, nb, pc, kb])
                b_block = b.select(own_b, b_pack, _element(
                    b, fty, packed_b, b.add(b.mul(pc, n_all), b.mul(jc, kb))))
                beta_now = b.select(b.icmp_signed("==", pc, _i(0)), beta, ir.Constant(fty, 1.0))
                with _loop(b, _i(0), m, step=self.mc, name="ic") as ic:
                    mb = _min(b, b.sub(m, ic), _i(self.mc))
                    with b.if_then(own_a):
                        b.call(self.pack_a, [a_pack, a, lda, ta, ic, mb, pc, kb])
                    a_block = b.select(own_a, a_pack, _element(
                        b, fty, packed_a, b.add(b.mul(pc, m_all), b.mul(ic, kb))))
                    with _loop(b, _i(0), nb, step=nr, name="jr") as jr:
                        cols = _min(b, b.sub(nb, jr), _i(nr))
                        b_panel = _element(b, fty, b_block, b.mul(jr, kb))
                        with _loop(b, _i(0), mb, step=mr, name="ir") as ir_:
                            rows = _min(b, b.sub(mb, ir_), _i(mr))
                            a_panel = _element(b, fty, a_block, b.mul(ir_, kb))
                            row, col = b.add(ic, ir_), b.add(jc, jr)
                            tile_c = _element(b, fty, c, b.add(b.mul(row, rs), b.mul(col, cs)))
                            b.call(self.micro, [kb, a_panel, b_panel, tile_c, rs, cs, alpha,
                                                beta_now, rows, cols, edge])
        b.call(free, [a_pack])
        b.call(free, [b_pack])
        b.ret_void()
        return fn


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
                before = b.block
                body = fn.append_basic_block("dot.body")
                done = fn.append_basic_block("dot.end")
                b.cbranch(b.icmp_signed(">", n, _i(0)), body, done)
                b.position_at_end(body)
                j, total = b.phi(INT64), b.phi(fty)
                aij = b.load(_element(b, fty, row, j), typ=fty)
                xj = b.load(_element(b, fty, x, b.mul(j, incx)), typ=fty)
                following = b.fadd(total, b.fmul(aij, xj, flags=flags), flags=flags)
                j_next = b.add(j, _i(1))
                for phi, start, step in ((j, _i(0), j_next), (total, zero, following)):
                    phi.add_incoming(start, before)
                    phi.add_incoming(step, body)
                b.cbranch(b.icmp_signed("<", j_next, n), body, done)
                b.position_at_end(done)
                result = b.phi(fty)
                result.add_incoming(zero, before)
                result.add_incoming(following, body)
                pointer = _element(b, fty, y, b.mul(i, incy))
                _scaled_store(b, fty, pointer, b.fmul(alpha, result), beta, beta_zero)
    b.ret_void()
    return fn
