"""The runtime library: generic array loops compiled once, shared by every kernel.

A kernel emits inline only what is worth specialising, the fused elementwise loops over
contiguous rows (``arrays.elementwise_loop``). The shape-generic loop nests — copies between
any layouts (escaping values, a strided operand made contiguous, ``reshape``, writing an
argument in place) and reductions into any target (``reduce_*``, ``unbroadcast``) — are calls
to the helpers below. Each helper is a small LLVM module of its own, optimized, turned into
object code, cached on disk (``<key>.rto`` entries of ``sxad.diskcache``, keyed like kernels by
the code generator's source and the host) and loaded into its own MCJIT engine the first time a
kernel needs it in this process; ``llvm.add_symbol`` then makes its name resolvable, so kernel
objects (fresh or from the disk cache) link to it like to libc. Which helpers a kernel needs is
read from its object code's undefined symbols (``compiler.load_objects`` calls ``ensure``).

The ABI of every helper: arrays of rank ≤ 4 padded to rank 4 (leading axes of length 1, stride
0), shapes and strides (in elements) passed as i64 arguments:

    void sxad.rt.copy.<bytes>(n0…n3, ptr src, src strides s0…s3, ptr dst, dst strides d0…d3)
        dst[i] = src[i] for every index i < n (bytes: the element size 1, 4 or 8; the buffers do
        not overlap). One memcpy when both are C-contiguous, 16×16 tiles when the last two
        axes are transposed between them, else row by row.
    void sxad.rt.<sum|prod|max|min>.<f32|f64|i64>(n0…n3, ptr x, x strides, ptr out,
                                                  out strides t0…t3, i64 fill)
        out[0:fill] = identity; then out[t·i] = out[t·i] ⊕ x[i] for every index i < n
        (t is 0 along the axes summed away). Rows summed into one element keep the total in a
        register; rows added into rows are plain vectorizable loops.
    sxad.rt.acquire / allocate / release / disown / release_all (module ``sxad.rt.heap``)
        the per-call heap of ``codegen.arrays``.
    sxad.rt.parallel_for / pool_set_threads / pool_info / pool_threads (``sxad.rt.pool``)
        the thread pool of ``codegen.threads``.
    void sxad.rt.gemm.<f32|f64>(i1 ta, i1 tb, i64 m, n, k, T alpha, ptr a, i64 lda, ptr b,
                                i64 ldb, T beta, ptr c, i64 ldc)
        ``codegen.blas``' packed gemm kernel, on the pool's threads for large products.

Every module's engine lives as long as the process (the pool's workers run its code).

The library is compiled at O2 with vectorization (four accumulators in reductions, and the
narrower epilogue loop for short rows that kernels go without).
"""
from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any, Callable, Sequence

import llvmlite.binding as llvm
from llvmlite import ir

from sxad.diskcache import DiskCache, digest
from sxad.ir import F32, F64, I64, Prim, ScalarType

from .folding import FoldingBuilder
from .lowering import CodegenError

INT1 = ir.IntType(1)
INT64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()
RANK = 4                 # every helper works on rank-4 arrays; lower ranks are padded
PREFIX = "sxad.rt."

_REDUCTIONS = {Prim.REDUCE_SUM: "sum", Prim.REDUCE_PROD: "prod", Prim.REDUCE_MAX: "max",
               Prim.REDUCE_MIN: "min"}
_DTYPES: dict[str, ScalarType] = {"f32": F32, "f64": F64, "i64": I64}
_SIZES = (1, 4, 8)

_objects = DiskCache(".rto", b"SXADRTO1")
#: The library is compiled at O2 (with vectorization): its loops are simple, and O3 doubles
#: the compile time for no measurable gain.
LEVEL = 2
#: What this process did: ``compiled``, ``disk_hits``… (the helpers' own counts).
stats = _objects.stats


# --------------------------------------------------------------------------- kernel side

def copy_name(size: int) -> str:
    return f"{PREFIX}copy.{size}"


def reduce_name(prim: Prim, dtype: ScalarType) -> str:
    if prim not in _REDUCTIONS or dtype.name not in _DTYPES:
        raise CodegenError(f"no native {prim} of {dtype} arrays")
    return f"{PREFIX}{_REDUCTIONS[prim]}.{dtype.name}"


def pad(values: Sequence[ir.Value], fill: ir.Value) -> list[ir.Value]:
    """``values`` of a rank ≤ 4 array as rank 4 (leading axes first)."""
    if len(values) > RANK:
        raise CodegenError(f"arrays of rank {len(values)}: native code takes rank ≤ {RANK}")
    return [fill] * (RANK - len(values)) + list(values)


def call(cx: Any, name: str, args: list[ir.Value]) -> None:
    """Call helper ``name`` (declared in the kernel's module) at the builder's position."""
    fn = cx.declare(name, VOID, [a.type for a in args])
    cx.b.call(fn, args)


# --------------------------------------------------------------------------- helper bodies

class FunctionContext:
    """The little of a kernel context that ``arrays``' loop builders use: a builder at the
    entry of ``fn``, declarations in its module, new blocks."""

    def __init__(self, module: ir.Module, fn: ir.Function) -> None:
        self.module, self.fn = module, fn
        self.b = FoldingBuilder(fn.append_basic_block("entry"))

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        existing = self.module.globals.get(name)
        return existing if existing is not None else ir.Function(
            self.module, ir.FunctionType(ret, args), name)

    def new_block(self, label: str) -> ir.Block:
        return self.fn.append_basic_block(label)


def _function(module: ir.Module, name: str, args: list[ir.Type]) -> tuple[ir.Function, FunctionContext]:
    fn = ir.Function(module, ir.FunctionType(VOID, args), name)
    fn.attributes.add("nounwind")
    for arg in fn.args:
        if arg.type == PTR:
            arg.add_attribute("noalias")
    return fn, FunctionContext(module, fn)


def _offset(b: ir.IRBuilder, index: Sequence[ir.Value], strides: Sequence[ir.Value]) -> ir.Value:
    offset: ir.Value = ir.Constant(INT64, 0)
    for i, s in zip(index, strides):
        offset = b.add(offset, b.mul(i, s))
    return offset


def _c_contiguous(b: ir.IRBuilder, shape: Sequence[ir.Value],
                  strides: Sequence[ir.Value]) -> ir.Value:
    want: ir.Value = ir.Constant(INT64, 1)
    ok: ir.Value = ir.Constant(INT1, 1)
    for n, s in zip(reversed(shape), reversed(strides)):
        ok = b.and_(ok, b.or_(b.icmp_signed("==", n, ir.Constant(INT64, 1)),
                              b.icmp_signed("==", s, want)))
        want = b.mul(want, n)
    return ok


def _memcpy(cx: FunctionContext, dst: ir.Value, src: ir.Value, nbytes: ir.Value) -> None:
    fn = cx.declare("llvm.memcpy.p0.p0.i64", VOID, [PTR, PTR, INT64, INT1])
    cx.b.call(fn, [dst, src, nbytes, ir.Constant(INT1, 0)])


def _emit_copy(module: ir.Module, name: str, size: int) -> None:
    etype = ir.IntType(8 * size)        # elements are copied as bits
    fn, cx = _function(module, name, [INT64] * RANK + [PTR] + [INT64] * RANK + [PTR] +
                       [INT64] * RANK)
    b = cx.b
    shape, src, src_strides = fn.args[:RANK], fn.args[RANK], fn.args[RANK + 1:2 * RANK + 1]
    dst, dst_strides = fn.args[2 * RANK + 1], fn.args[2 * RANK + 2:]
    count: ir.Value = ir.Constant(INT64, size)
    for n in shape:
        count = b.mul(count, n)
    whole = b.and_(_c_contiguous(b, shape, src_strides), _c_contiguous(b, shape, dst_strides))
    one = ir.Constant(INT64, 1)
    # a transpose of the last two axes: src contiguous along axis 2, dst along axis 3
    swapped = b.and_(b.and_(b.icmp_signed("==", src_strides[2], one),
                            b.icmp_signed("==", dst_strides[3], one)),
                     b.icmp_signed("!=", src_strides[3], one))
    with b.if_else(whole) as (at_once, other):
        with at_once:
            _memcpy(cx, dst, src, count)
        with other:
            with b.if_else(swapped) as (tiled, by_rows):
                with tiled:
                    _tiled_transpose(cx, etype, shape, src, src_strides, dst, dst_strides)
                with by_rows:
                    _copy_rows(cx, etype, size, shape, src, src_strides, dst, dst_strides)
    b.ret_void()


TILE = 16   # a transposing copy moves TILE×TILE blocks: both sides' lines stay in cache


def _tiled_transpose(cx: FunctionContext, etype: ir.Type, shape: Sequence[ir.Value], src: ir.Value,
                     src_strides: Sequence[ir.Value], dst: ir.Value,
                     dst_strides: Sequence[ir.Value]) -> None:
    """The copy when the last two axes are transposed between src and dst (reading src's
    columns one element at a time would miss the cache on every read): block by block."""
    from .arrays import counted, nest
    b = cx.b
    tile = ir.Constant(INT64, TILE)

    def blocks(n: ir.Value) -> ir.Value:
        return b.sdiv(b.add(n, ir.Constant(INT64, TILE - 1)), tile)

    def outer(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        source = b.gep(src, [_offset(b, index, src_strides)], source_etype=etype)
        target = b.gep(dst, [_offset(b, index, dst_strides)], source_etype=etype)

        def block(pair: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            first = [b.mul(p, tile) for p in pair]
            extent = [b.select(b.icmp_signed("<", b.sub(n, f), tile), b.sub(n, f), tile)
                      for n, f in zip(shape[2:], first)]

            def column(c: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                col = b.add(first[1], c)
                from_col = b.gep(source, [b.mul(col, src_strides[3])], source_etype=etype)
                to_col = b.gep(target, [col], source_etype=etype)

                def one(r: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                    row = b.add(first[0], r)
                    value = b.load(b.gep(from_col, [row], source_etype=etype), typ=etype)
                    b.store(value, b.gep(to_col, [b.mul(row, dst_strides[2])],
                                         source_etype=etype))
                    return []
                counted(cx, extent[0], [], one, label="r", vectorize=False)
                return []
            counted(cx, extent[1], [], column, label="c", vectorize=False)
            return []
        nest(cx, [blocks(shape[2]), blocks(shape[3])], [], block, vectorize=False)
        return []
    nest(cx, shape[:2], [], outer, vectorize=False)


def _copy_rows(cx: FunctionContext, etype: ir.Type, size: int, shape: Sequence[ir.Value],
               src: ir.Value, src_strides: Sequence[ir.Value], dst: ir.Value,
               dst_strides: Sequence[ir.Value]) -> None:
    """The copy row by row (a memcpy per row where both rows are contiguous)."""
    from .arrays import counted, nest
    b = cx.b

    def row(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        source = b.gep(src, [_offset(b, index, src_strides)], source_etype=etype)
        target = b.gep(dst, [_offset(b, index, dst_strides)], source_etype=etype)
        unit = b.and_(b.icmp_signed("==", src_strides[-1], ir.Constant(INT64, 1)),
                      b.icmp_signed("==", dst_strides[-1], ir.Constant(INT64, 1)))
        with b.if_else(unit) as (rows, strided):
            with rows:
                _memcpy(cx, target, source, b.mul(shape[-1], ir.Constant(INT64, size)))
            with strided:
                def one(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                    value = b.load(b.gep(source, [b.mul(j, src_strides[-1])],
                                         source_etype=etype), typ=etype)
                    b.store(value, b.gep(target, [b.mul(j, dst_strides[-1])],
                                         source_etype=etype))
                    return []
                counted(cx, shape[-1], [], one, label="j", vectorize=False)
        return []
    nest(cx, shape[:-1], [], row, vectorize=False)


def _emit_reduce(module: ir.Module, name: str, prim: Prim, dtype: ScalarType) -> None:
    from .arrays import MEM_TYPE, _combine, _identity, counted, load, nest, store
    etype = MEM_TYPE[dtype]
    fn, cx = _function(module, name, [INT64] * RANK + [PTR] + [INT64] * RANK + [PTR] +
                       [INT64] * RANK + [INT64])
    b = cx.b
    shape, x, x_strides = fn.args[:RANK], fn.args[RANK], fn.args[RANK + 1:2 * RANK + 1]
    out, target, fill = fn.args[2 * RANK + 1], fn.args[2 * RANK + 2:3 * RANK + 2], fn.args[-1]
    identity = _identity(prim, dtype)
    one = ir.Constant(INT64, 1)

    def clear(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        store(b, dtype, identity, b.gep(out, [i], source_etype=etype))
        return []
    counted(cx, fill, [], clear, label="fill")
    x_step, t_step, n = x_strides[-1], target[-1], shape[-1]

    def row(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        source = b.gep(x, [_offset(b, index, x_strides)], source_etype=etype)
        sink = b.gep(out, [_offset(b, index, target)], source_etype=etype)

        def total(step: ir.Value | None) -> Callable[[ir.Value, list[ir.Value]], list[ir.Value]]:
            def body(j: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                at = b.gep(source, [j if step is None else b.mul(j, step)], source_etype=etype)
                return [_combine(cx, prim, acc[0], load(b, dtype, at))]
            return body

        def into(x_at: ir.Value | None, t_at: ir.Value | None
                 ) -> Callable[[ir.Value, list[ir.Value]], list[ir.Value]]:
            def body(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                at = b.gep(sink, [j if t_at is None else b.mul(j, t_at)], source_etype=etype)
                value = load(b, dtype, b.gep(source, [j if x_at is None else b.mul(j, x_at)],
                                                 source_etype=etype))
                store(b, dtype, _combine(cx, prim, load(b, dtype, at), value), at)
                return []
            return body
        summed = b.icmp_signed("==", t_step, ir.Constant(INT64, 0))
        with b.if_else(summed) as (to_one, to_row):
            with to_one:   # the whole row into one element: the total in a register
                with b.if_else(b.icmp_signed("==", x_step, one)) as (unit, strided):
                    with unit:
                        fast = counted(cx, n, [identity], total(None), label="r",
                                       tuned=True)[0]
                        fast_end = b.block
                    with strided:
                        slow = counted(cx, n, [identity], total(x_step), label="rs",
                                       vectorize=False)[0]
                        slow_end = b.block
                got = b.phi(etype if dtype is not I64 else INT64)
                got.add_incoming(fast, fast_end)
                got.add_incoming(slow, slow_end)
                store(b, dtype, _combine(cx, prim, load(b, dtype, sink), got), sink)
            with to_row:   # row into row
                unit = b.and_(b.icmp_signed("==", x_step, one), b.icmp_signed("==", t_step, one))
                with b.if_else(unit) as (rows, strided):
                    with rows:
                        counted(cx, n, [], into(None, None), label="a", tuned=True)
                    with strided:
                        counted(cx, n, [], into(x_step, t_step), label="as", vectorize=False)
        return []
    nest(cx, shape[:-1], [], row, vectorize=False)
    b.ret_void()


def _library() -> dict[str, tuple[Callable[[ir.Module], None], tuple[str, ...]]]:
    """Module name -> (what emits it, the symbols it defines)."""
    from . import blas, threads
    from .arrays import HEAP_FUNCTIONS, HEAP_PREFIX, emit_heap_library
    table: dict[str, tuple[Callable[[ir.Module], None], tuple[str, ...]]] = {
        f"{PREFIX}heap": (emit_heap_library, tuple(HEAP_PREFIX + n for n in HEAP_FUNCTIONS)),
        threads.MODULE: (threads.emit_pool_library, threads.SYMBOLS)}
    for dtype in (F32, F64):
        name, kernel = blas.gemm_symbol(dtype), blas.kernel_symbol(dtype)
        table[name] = (lambda m, d=dtype: blas.emit_gemm_dispatch(m, d),
                       (name, blas.install_symbol(dtype)))
        table[kernel] = (lambda m, d=dtype: blas.emit_gemm_library(m, d), (kernel,))
    for size in _SIZES:
        name = copy_name(size)
        table[name] = (lambda m, n=name, size=size: _emit_copy(m, n, size), (name,))
    for prim in _REDUCTIONS:
        for dtype in _DTYPES.values():
            name = reduce_name(prim, dtype)
            table[name] = (lambda m, n=name, p=prim, d=dtype: _emit_reduce(m, n, p, d), (name,))
    return table


_LIBRARY: dict[str, tuple[Callable[[ir.Module], None], tuple[str, ...]]] = {}
_MODULE_OF: dict[str, str] = {}


def library() -> dict[str, tuple[Callable[[ir.Module], None], tuple[str, ...]]]:
    """The runtime library's modules (built on first use: ``arrays`` builds on this file)."""
    if not _LIBRARY:
        _LIBRARY.update(_library())
        _MODULE_OF.update({sym: mod for mod, (_, syms) in _LIBRARY.items() for sym in syms})
    return _LIBRARY


def symbols() -> list[str]:
    """Every symbol the runtime library defines."""
    library()
    return sorted(_MODULE_OF)


# --------------------------------------------------------------------------- loading

_lock = threading.RLock()
_engines: dict[str, Any] = {}   # helper name -> the MCJIT engine holding its code (kept alive)


def _after_load() -> dict[str, Callable[[], None]]:
    """What runs once a module is loaded: the pool learns its thread count (a runtime
    setting, so not compiled into the cached object)."""
    from . import blas, threads
    return {threads.MODULE: threads.configure,
            **{blas.gemm_symbol(d): (lambda d=d: blas.install_kernel(d)) for d in (F32, F64)}}


def module_text(name: str) -> str:
    """The unoptimized LLVM IR of the runtime library's module ``name``."""
    from .runtime import shared_target_machine
    module = ir.Module(name=name)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(shared_target_machine().target_data)
    library()[name][0](module)
    return str(module)


def key(name: str) -> str:
    from . import cache
    from .runtime import versions
    return digest(cache.FORMAT, versions(), cache.generator_digest(), "helper", name)


def cached(name: str) -> bool:
    """Whether module ``name``'s object code is in the disk cache (a file check, unverified)."""
    return _objects.path(key(name)).exists()


def ensure(names: Sequence[str]) -> None:
    """Load the runtime library's modules defining any of ``names`` (other names are ignored)
    into this process, once."""
    library()
    wanted = sorted({_MODULE_OF[n] for n in names if n in _MODULE_OF} - set(_engines))
    if not wanted:
        return
    with _lock:
        for name in wanted:
            if name not in _engines:
                _load(name)


def loaded() -> frozenset[str]:
    return frozenset(_engines)


def _load(name: str) -> None:
    from .compiler import elf_symbols
    from .runtime import register_symbols, target_machine, unresolved
    register_symbols()
    key_ = key(name)
    obj = _objects.load(key_)
    if obj is not None and _defines(obj, library()[name][1], elf_symbols) is False:
        stats["disk_rejected"] += 1
        obj = None
    if obj is None:
        obj = _compile(module_text(name))
        stats["compiled"] += 1
        _objects.store(key_, obj)
    table = elf_symbols(obj)
    if table is not None:
        ensure(sorted(table[0]))     # the library modules it calls (the gemm calls the pool)
        missing = unresolved(sorted(table[0]))
        if missing:
            raise CodegenError(f"runtime library {name} needs symbols nothing defines: "
                               f"{', '.join(missing)}")
    engine = _shared_engine(target_machine)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    for symbol in library()[name][1]:
        address = engine.get_function_address(symbol)
        if not address:
            raise CodegenError(f"helper object lacks {symbol}")
        llvm.add_symbol(symbol, address)
    _engines[name] = engine
    hook = _after_load().get(name)
    if hook is not None:
        hook()


_engine: list[Any] = []


def _shared_engine(target_machine: Callable[[], Any]) -> Any:
    """The one MCJIT engine holding every loaded module of the library (an engine per module
    cost ~1.5 ms of a warm start each). Never freed, not even at interpreter shutdown: the
    pool's workers outlive every Python object (a sleeping worker returns into this code), so
    it is leaked on purpose."""
    if not _engine:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))
        _engine.append(engine)
    return _engine[0]


def _compile(text: str) -> bytes:
    """Object code of a library module. Its reductions often run over short rows (softmax over
    ten classes): the vector loop is followed by a narrower one here (epilogue vectorization,
    off for kernels: ``runtime``)."""
    from .compiler import compile_object
    llvm.set_option("sxad", "-enable-epilogue-vectorization=true")
    try:
        return compile_object(text, LEVEL)
    finally:
        llvm.set_option("sxad", "-enable-epilogue-vectorization=false")


def _defines(obj: bytes, names: Sequence[str], elf_symbols: Callable) -> bool | None:
    """Whether ``obj`` is ELF object code defining ``names`` (None: not ELF, cannot tell)."""
    try:
        table = elf_symbols(obj)
    except CodegenError:
        return False
    if table is None:
        return False if sys.platform.startswith("linux") else None
    return set(names) <= table[1]


def clear() -> None:
    """Delete the helpers' disk entries (the loaded ones stay loaded)."""
    _objects.clear()
