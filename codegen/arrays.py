"""Arrays in native code: their values, the heap their buffers come from, loop nests, and the
lowering of every array primitive (a table keyed by ``Prim``, as ``lowering.LOWERING``).

An array value in the kernel is an ``ArrayVal``: a data pointer, the shape and the strides as
LLVM values (strides counted in *elements*; the ABI's byte strides are converted at the kernel
boundary, which is exact because the entry point only takes aligned arrays). An op either
allocates a fresh C-contiguous buffer for its result (it then *owns* it) or makes a *view* of
its array argument (``transpose``, ``expand_dims``, ``broadcast_like`` of an array): same
buffer, other shape and strides, owning nothing. Who frees what is decided in ``kernel.py``
(see ``codegen.kernel.Ownership``); this file only allocates.

The heap: every buffer comes from ``sxad.rt.allocate`` (malloc, or calloc for zeros; in the
runtime library, ``codegen.helpers``), which also records it in a per-call registry;
``sxad.rt.release`` frees one and forgets it. The kernel's exit block calls
``sxad.rt.release_all``, so a fault anywhere (a shape mismatch deep in a loop) leaks
nothing; array results are forgotten (``sxad.rt.disown``) just before a successful return, as their
buffers then belong to the caller. The registry is a stack searched from the top: buffers are
mostly freed in the reverse order of their allocation, so a release finds its buffer in a step
or two.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Callable, Protocol, Sequence

from llvmlite import ir

from sxad.ir import BOOL, F32, F64, I64, Block, Op, Prim, ScalarType, Type, dtype_of, \
    is_array, rank_of

from . import helpers, vmath
from .regions import free_values
from .blas import emit_gemm
from .threads import emit_parallel_for
from .faults import INFO_SLOTS, Fault, ShapeKind
from .lowering import DOUBLE, FLOAT, INT1, INT64, LL_TYPE, LOWERING, CodegenError, \
    lower_scalar

INT8 = ir.IntType(8)
INT32 = ir.IntType(32)
PTR = ir.PointerType()
#: How elements are stored in memory (numpy's layout: a bool is one byte, 0 or 1).
MEM_TYPE: dict[Type, ir.Type] = {F64: DOUBLE, F32: FLOAT, I64: INT64, BOOL: INT8}
ELEM_SIZE: dict[Type, int] = {F64: 8, F32: 4, I64: 8, BOOL: 1}
LOG2_SIZE = {8: 3, 4: 2, 1: 0}


def _i(value: int) -> ir.Constant:
    return ir.Constant(INT64, value)


ZERO, ONE = _i(0), _i(1)
NULL = ir.Constant(PTR, None)


@dataclass
class ArrayVal:
    """An array in registers: data pointer, shape and strides (in elements)."""

    dtype: ScalarType
    data: ir.Value
    shape: list[ir.Value]
    strides: list[ir.Value] = field(default_factory=list)
    #: Axes known at compile time to have length 1 (after a keepdims reduction or an
    #: ``expand_dims``): loops read such an operand once per row instead of at each element.
    ones: frozenset[int] = frozenset()
    #: Axes known at compile time to have stride 0 (a view broadcast along them: each of
    #: ``broadcast_like``'s leading axes, and those where its operand has length 1).
    repeated: frozenset[int] = frozenset()

    @property
    def rank(self) -> int:
        return len(self.shape)

    def constant_rows(self) -> bool:
        """Whether every row (along the last axis) holds one value, known at compile time:
        loops then read it once per row."""
        return self.rank == 0 or self.rank - 1 in self.ones or self.rank - 1 in self.repeated


class Context(Protocol):
    """What array lowerings use of the kernel builder (``values``: the IR values lowered so
    far, for fused groups)."""

    values: dict

    b: ir.IRBuilder
    module: ir.Module
    heap: ir.Value
    info: ir.Value
    bounds_check: bool   # whether indices are checked (``indexing.bounds_checked``)

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function: ...

    def fail_if(self, cond: ir.Value, fault: Fault) -> None: ...

    def fail_with(self, cond: ir.Value, fault: Fault, info: Sequence[ir.Value]) -> None: ...

    def fail_code(self, code: ir.Value) -> None: ...

    def new_block(self, label: str) -> ir.Block: ...


# --------------------------------------------------------------------------- descriptors

def descriptor_size(rank: int) -> int:
    """Bytes of the ABI descriptor ``{ptr data; i64 shape[rank]; i64 strides[rank]}``."""
    return 8 + 16 * rank


def _field(b: ir.IRBuilder, desc: ir.Value, offset: int) -> ir.Value:
    return b.gep(desc, [_i(offset)], source_etype=INT8)


def load_descriptor(b: ir.IRBuilder, desc: ir.Value, dtype: ScalarType, rank: int) -> ArrayVal:
    """An argument array from its descriptor (byte strides become element strides)."""
    data = b.load(_field(b, desc, 0), typ=PTR)
    shape = [b.load(_field(b, desc, 8 + 8 * k), typ=INT64) for k in range(rank)]
    shift = _i(LOG2_SIZE[ELEM_SIZE[dtype]])
    strides = [b.ashr(b.load(_field(b, desc, 8 + 8 * (rank + k)), typ=INT64), shift)
               for k in range(rank)]
    return ArrayVal(dtype, data, shape, strides)


def store_descriptor(b: ir.IRBuilder, desc: ir.Value, array: ArrayVal) -> None:
    b.store(array.data, _field(b, desc, 0))
    size = _i(ELEM_SIZE[array.dtype])
    for k, (n, s) in enumerate(zip(array.shape, array.strides)):
        b.store(n, _field(b, desc, 8 + 8 * k))
        b.store(b.mul(s, size), _field(b, desc, 8 + 8 * (array.rank + k)))


# --------------------------------------------------------------------------- the heap

HEAP_TYPE = ir.LiteralStructType([PTR, INT64, INT64])   # items, size, capacity
HEAP_INITIAL = 16


#: The heap's functions, defined once in the runtime library (``helpers``, module
#: ``sxad.rt.heap``) and called by every kernel: name -> (return type, argument types).
HEAP_FUNCTIONS: dict[str, tuple[ir.Type, list[ir.Type]]] = {
    "acquire": (PTR, [PTR, INT64, INT1]),
    "allocate": (PTR, [PTR, INT64, INT1, INT64, INT64, INT64, INT64]),
    "release": (ir.VoidType(), [PTR, PTR]),
    "disown": (ir.VoidType(), [PTR, PTR]),
    "release_all": (ir.VoidType(), [PTR]),
}
HEAP_PREFIX = "sxad.rt."


def heap_functions(module: ir.Module) -> dict[str, ir.Function]:
    """The heap's functions as declared in a kernel's ``module`` (a fresh buffer is
    ``noalias``: loops writing it need no alias checks)."""
    found = {}
    for name, (ret, args) in HEAP_FUNCTIONS.items():
        symbol = HEAP_PREFIX + name
        fn = module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(ret, args), symbol)
            fn.attributes.add("nounwind")
            if ret == PTR:
                fn.return_value.attributes.add("noalias")
        found[name] = fn
    return found


def emit_heap_library(module: ir.Module) -> None:
    """Define the heap's functions in ``module`` (the runtime library's ``sxad.rt.heap``)."""
    malloc = _declare(module, "malloc", PTR, [INT64])
    calloc = _declare(module, "calloc", PTR, [INT64, INT64])
    realloc = _declare(module, "realloc", PTR, [PTR, INT64])
    free = _declare(module, "free", ir.VoidType(), [PTR])
    acquire = _emit_acquire(module, malloc, calloc, realloc)
    _emit_allocate(module, acquire)
    _emit_remove(module, "release", free)
    _emit_remove(module, "disown", None)
    _emit_release_all(module, free)


def _emit_allocate(module: ir.Module, acquire: ir.Function) -> ir.Function:
    """``ptr allocate(heap, element size, zeroed, n0, n1, n2, n3)``: ``acquire`` of
    ``size·n0·n1·n2·n3`` bytes; NULL when that product does not fit in 63 bits (broadcast views
    can have any lengths: a wrapped, too small buffer must never be made) or memory is out."""
    fn = _internal(module, HEAP_PREFIX + "allocate", *HEAP_FUNCTIONS["allocate"])
    fn.return_value.attributes.add("noalias")
    heap, size, zeroed, *shape = fn.args
    entry, ok, fail = (fn.append_basic_block(n) for n in ("entry", "ok", "fail"))
    b = ir.IRBuilder(entry)
    multiply = _declare(module, "llvm.umul.with.overflow.i64",
                        ir.LiteralStructType([INT64, INT1]), [INT64, INT64])
    total: ir.Value = size
    overflow: ir.Value = ir.Constant(INT1, 0)
    for n in shape:
        pair = b.call(multiply, [total, n])
        total = b.extract_value(pair, 0)
        overflow = b.or_(overflow, b.extract_value(pair, 1))
    overflow = b.or_(overflow, b.icmp_signed("<", total, ZERO))
    b.cbranch(overflow, fail, ok)
    b.position_at_end(ok)
    b.ret(b.call(acquire, [heap, total, zeroed]))
    ir.IRBuilder(fail).ret(ir.Constant(PTR, None))
    return fn


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, ir.FunctionType(ret, args),
                                                               name)


def _internal(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    """A function of the runtime library (exported: kernels call it by name)."""
    fn = ir.Function(module, ir.FunctionType(ret, args), name)
    fn.attributes.add("nounwind")
    return fn


def _heap_field(b: ir.IRBuilder, heap: ir.Value, k: int) -> ir.Value:
    return b.gep(heap, [ir.Constant(INT32, 0), ir.Constant(INT32, k)], source_etype=HEAP_TYPE)


def _emit_acquire(module: ir.Module, malloc: ir.Function, calloc: ir.Function,
                  realloc: ir.Function) -> ir.Function:
    """``ptr acquire(heap, bytes, zeroed)``: a new buffer recorded in the heap, or NULL."""
    fn = _internal(module, HEAP_PREFIX + "acquire", *HEAP_FUNCTIONS["acquire"])
    fn.return_value.attributes.add("noalias")   # a fresh buffer: loops need no alias checks
    heap, nbytes, zeroed = fn.args
    entry, grow, record, fail = (fn.append_basic_block(n) for n in ("entry", "grow", "record",
                                                                    "fail"))
    b = ir.IRBuilder(entry)
    size = b.load(_heap_field(b, heap, 1), typ=INT64)
    capacity = b.load(_heap_field(b, heap, 2), typ=INT64)
    b.cbranch(b.icmp_unsigned("==", size, capacity), grow, record)
    b.position_at_end(grow)
    wanted = b.select(b.icmp_unsigned("==", capacity, ZERO), _i(HEAP_INITIAL),
                      b.shl(capacity, ONE))
    items = b.load(_heap_field(b, heap, 0), typ=PTR)
    moved = b.call(realloc, [items, b.shl(wanted, _i(3))])
    grown = fn.append_basic_block("grown")
    b.cbranch(b.icmp_unsigned("==", moved, ir.Constant(PTR, None)), fail, grown)
    b.position_at_end(grown)
    b.store(moved, _heap_field(b, heap, 0))
    b.store(wanted, _heap_field(b, heap, 2))
    b.branch(record)
    b.position_at_end(record)
    # malloc(0) may return NULL: ask for at least a byte
    at_least_one = b.select(b.icmp_unsigned("==", nbytes, ZERO), ONE, nbytes)
    zero_bb, plain_bb, got = (fn.append_basic_block(n) for n in ("calloc", "malloc", "got"))
    b.cbranch(zeroed, zero_bb, plain_bb)
    b.position_at_end(zero_bb)
    zeros = b.call(calloc, [at_least_one, ONE])
    b.branch(got)
    b.position_at_end(plain_bb)
    plain = b.call(malloc, [at_least_one])
    b.branch(got)
    b.position_at_end(got)
    buffer = b.phi(PTR)
    buffer.add_incoming(zeros, zero_bb)
    buffer.add_incoming(plain, plain_bb)
    stored = fn.append_basic_block("stored")
    b.cbranch(b.icmp_unsigned("==", buffer, ir.Constant(PTR, None)), fail, stored)
    b.position_at_end(stored)
    items = b.load(_heap_field(b, heap, 0), typ=PTR)
    b.store(buffer, b.gep(items, [size], source_etype=PTR))
    b.store(b.add(size, ONE), _heap_field(b, heap, 1))
    b.ret(buffer)
    ir.IRBuilder(fail).ret(ir.Constant(PTR, None))
    return fn


def _emit_remove(module: ir.Module, name: str, free: ir.Function | None) -> ir.Function:
    """``void release(heap, p)`` (forget and free ``p``) or ``disown`` (only forget it)."""
    fn = _internal(module, HEAP_PREFIX + name, *HEAP_FUNCTIONS[name])
    heap, pointer = fn.args
    entry, head, body, found, done = (fn.append_basic_block(n) for n in (
        "entry", "head", "body", "found", "done"))
    b = ir.IRBuilder(entry)
    size = b.load(_heap_field(b, heap, 1), typ=INT64)
    items = b.load(_heap_field(b, heap, 0), typ=PTR)
    b.branch(head)
    b.position_at_end(head)
    at = b.phi(INT64)
    at.add_incoming(size, entry)
    b.cbranch(b.icmp_unsigned("==", at, ZERO), done, body)
    b.position_at_end(body)
    k = b.sub(at, ONE)
    slot = b.gep(items, [k], source_etype=PTR)
    at.add_incoming(k, body)
    b.cbranch(b.icmp_unsigned("==", b.load(slot, typ=PTR), pointer), found, head)
    b.position_at_end(found)
    top = b.sub(size, ONE)
    b.store(b.load(b.gep(items, [top], source_etype=PTR), typ=PTR), slot)   # the top fills the gap
    b.store(top, _heap_field(b, heap, 1))
    b.branch(done)
    b.position_at_end(done)
    if free is not None:
        b.call(free, [pointer])
    b.ret_void()
    return fn


def _emit_release_all(module: ir.Module, free: ir.Function) -> ir.Function:
    fn = _internal(module, HEAP_PREFIX + "release_all", *HEAP_FUNCTIONS["release_all"])
    (heap,) = fn.args
    entry, head, body, done = (fn.append_basic_block(n) for n in ("entry", "head", "body",
                                                                  "done"))
    b = ir.IRBuilder(entry)
    size = b.load(_heap_field(b, heap, 1), typ=INT64)
    items = b.load(_heap_field(b, heap, 0), typ=PTR)
    b.branch(head)
    b.position_at_end(head)
    at = b.phi(INT64)
    at.add_incoming(ZERO, entry)
    b.cbranch(b.icmp_unsigned("<", at, size), body, done)
    b.position_at_end(body)
    b.call(free, [b.load(b.gep(items, [at], source_etype=PTR), typ=PTR)])
    at.add_incoming(b.add(at, ONE), body)
    b.branch(head)
    b.position_at_end(done)
    b.call(free, [items])
    b.ret_void()
    return fn


def allocate(cx: Context, dtype: ScalarType, shape: Sequence[ir.Value],
             zeroed: bool = False) -> ArrayVal:
    """A fresh C-contiguous array of ``shape`` from the heap (zero-filled if ``zeroed``); no
    memory, or a size beyond 2⁶³ bytes, is ``Fault.NO_MEMORY``."""
    b = cx.b
    strides, count = contiguous_strides(b, shape)
    data = b.call(heap_functions(cx.module)["allocate"],
                  [cx.heap, _i(ELEM_SIZE[dtype]), ir.Constant(INT1, int(zeroed)),
                   *helpers.pad(shape, ONE)], name="buffer")
    cx.fail_if(b.icmp_unsigned("==", data, ir.Constant(PTR, None)), Fault.NO_MEMORY)
    return ArrayVal(dtype, data, list(shape), strides)


def release(cx: Context, array: ArrayVal) -> None:
    cx.b.call(heap_functions(cx.module)["release"], [cx.heap, array.data])


def disown(cx: Context, array: ArrayVal) -> None:
    cx.b.call(heap_functions(cx.module)["disown"], [cx.heap, array.data])


def contiguous_strides(b: ir.IRBuilder, shape: Sequence[ir.Value]) -> tuple[list[ir.Value],
                                                                             ir.Value]:
    """C-order strides (in elements) of ``shape``, and its element count."""
    strides: list[ir.Value] = []
    count: ir.Value = ONE
    for n in reversed(shape):
        strides.insert(0, count)
        count = b.mul(count, n)
    return strides, count


# --------------------------------------------------------------------------- elements

def element_pointer(b: ir.IRBuilder, array: ArrayVal, index: Sequence[ir.Value],
                    strides: Sequence[ir.Value] | None = None) -> ir.Value:
    offset: ir.Value = ZERO
    for i, s in zip(index, strides if strides is not None else array.strides):
        offset = b.add(offset, b.mul(i, s))
    return b.gep(array.data, [offset], source_etype=MEM_TYPE[array.dtype])


def load(b: ir.IRBuilder, dtype: Type, pointer: ir.Value) -> ir.Value:
    value = b.load(pointer, typ=MEM_TYPE[dtype])
    return b.icmp_unsigned("!=", value, ir.Constant(INT8, 0)) if dtype is BOOL else value


def store(b: ir.IRBuilder, dtype: Type, value: ir.Value, pointer: ir.Value) -> None:
    b.store(b.zext(value, INT8) if dtype is BOOL else value, pointer)


# --------------------------------------------------------------------------- loops

def counted(cx: Context, n: ir.Value, init: Sequence[ir.Value],
            body: Callable[[ir.Value, list[ir.Value]], list[ir.Value]],
            label: str = "i", vectorize: bool = True, tuned: bool = False) -> list[ir.Value]:
    """``for i in range(n)`` carrying ``init`` through ``body(i, carried) -> next``; returns
    the final carried values. Bottom-tested behind a guard: the shape LLVM vectorizes. No
    array loop is unrolled (the vector loop's interleaving is unrolling enough; unrolled
    remainders cost compile time and gain nothing on rows of tens to thousands of elements);
    ``vectorize=False`` also keeps LLVM from vectorizing it: for strided loops, whose vector
    versions would cost compile time and gain little. ``tuned``: four vector iterations at
    once (interleaving: several accumulators, which a reduction's dependent chain of adds
    needs), for the runtime library's reductions."""
    b = cx.b
    before = b.block
    loop, done = cx.new_block(f"{label}.loop"), cx.new_block(f"{label}.end")
    b.cbranch(b.icmp_signed(">", n, ZERO), loop, done)
    b.position_at_end(loop)
    i = b.phi(INT64, label)
    carried = [b.phi(v.type) for v in init]
    following = body(i, list(carried))
    nxt = b.add(i, ONE)
    latch = b.block
    branch = b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    branch.set_metadata("llvm.loop", _loop_id(cx.module, vectorize, 4 if tuned else 0))
    i.add_incoming(ZERO, before)
    i.add_incoming(nxt, latch)
    b.position_at_end(done)
    results = []
    for phi, first, then in zip(carried, init, following):
        phi.add_incoming(first, before)
        phi.add_incoming(then, latch)
        result = b.phi(first.type)
        result.add_incoming(first, before)
        result.add_incoming(then, latch)
        results.append(result)
    return results


def nest(cx: Context, shape: Sequence[ir.Value], init: Sequence[ir.Value],
         body: Callable[[list[ir.Value], list[ir.Value]], list[ir.Value]],
         vectorize: bool = True) -> list[ir.Value]:
    """Loops over every index of ``shape`` (the last axis innermost), carrying ``init``."""
    def level(k: int, index: list[ir.Value], carried: list[ir.Value]) -> list[ir.Value]:
        if k == len(shape):
            return body(index, carried)
        return counted(cx, shape[k], carried, lambda i, c: level(k + 1, [*index, i], c),
                       label=f"i{k}", vectorize=vectorize)
    return level(0, [], list(init))


def _loop_id(module: ir.Module, vectorize: bool, interleave: int = 0) -> ir.MDValue:
    """A fresh ``!llvm.loop`` node (self-referential, as LLVM wants) disabling unrolling, and
    vectorization unless ``vectorize``; ``interleave``: that many vector iterations at once
    (several accumulators of a reduction), else LLVM's choice."""
    options = [module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])]
    if interleave:
        options.append(module.add_metadata([ir.MetaDataString(module,
                                                              "llvm.loop.interleave.count"),
                                            ir.Constant(INT32, interleave)]))
    if not vectorize:
        options.append(module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"),
                                            ir.Constant(INT1, 0)]))
    node = ir.MDValue(module, options, name=str(len(module.metadata)))
    node.operands = (node, *options)
    return node


# --------------------------------------------------------------------------- faults with shapes

def shape_info(kind: ShapeKind, operands: Sequence[ArrayVal | ir.Value]) -> list[ir.Value]:
    """The fault info of a shape mismatch: kind, count, then (rank, dims…) per operand."""
    info: list[ir.Value] = [_i(int(kind)), _i(len(operands))]
    for x in operands:
        shape = x.shape if isinstance(x, ArrayVal) else []
        dims = list(shape) + [ZERO] * (4 - len(shape))
        info += [_i(len(shape)), *dims]
    return info[:INFO_SLOTS]


def broadcast(cx: Context, operands: Sequence[ArrayVal | ir.Value],
              rank: int) -> tuple[list[ir.Value], list[list[ir.Value]]]:
    """numpy's broadcasting at run time: the result's shape and, per array operand, its
    strides over that shape (0 along broadcast axes). A mismatch is ``Fault.SHAPE``."""
    b = cx.b
    arrays = [x for x in operands if isinstance(x, ArrayVal)]
    shape: list[ir.Value] = []
    bad: ir.Value = ir.Constant(INT1, 0)
    for k in range(rank):
        n: ir.Value = ONE
        for x in arrays:
            j = k - (rank - x.rank)
            if j < 0:
                continue
            a = x.shape[j]
            a_is_one = b.icmp_signed("==", a, ONE)
            clash = b.and_(b.icmp_signed("!=", n, ONE), b.icmp_signed("!=", a, n))
            bad = b.or_(bad, b.and_(b.not_(a_is_one), clash))
            n = b.select(a_is_one, n, a) if n is not ONE else a
        shape.append(n)
    if len(arrays) > 1:
        cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.BROADCAST, arrays))
    strides = []
    for x in arrays:
        lead = rank - x.rank
        strides.append([ZERO] * lead + [
            b.select(b.icmp_signed("==", a, ONE), ZERO, s) for a, s in zip(x.shape, x.strides)])
    return shape, strides


def all_contiguous(cx: Context, shape: Sequence[ir.Value],
                   operand_strides: Sequence[Sequence[ir.Value]]) -> ir.Value:
    """Whether every operand covers ``shape`` C-contiguously (no axis broadcast): then one flat
    loop over the elements serves, which LLVM vectorizes."""
    b = cx.b
    want, _ = contiguous_strides(b, shape)
    ok: ir.Value = ir.Constant(INT1, 1)
    for strides in operand_strides:
        for n, s, w in zip(shape, strides, want):
            ok = b.and_(ok, b.or_(b.icmp_signed("==", n, ONE), b.icmp_signed("==", s, w)))
    return ok


Compute = Callable[["Context", list[ir.Value]], ir.Value]


def elementwise_loop(cx: Context, dtype: ScalarType, rank: int,
                     operands: Sequence[ArrayVal | ir.Value], compute: Compute,
                     outline: bool = True) -> ArrayVal:
    """A new array of the broadcast shape holding ``compute(cx, elements)`` at every index;
    scalar operands are passed as they are. One loop nest, over rows: along the last axis every
    operand is contiguous, or statically of length 1 (``ArrayVal.ones``: a keepdims reduction,
    ``expand_dims``) and then read once per row — softmax's ``x - max(x, axis=1,
    keepdims=True)``, a bias added to each row. When every operand is C-contiguous and none is
    broadcast, the whole array is one row. LLVM vectorizes the row loop. An operand of any
    other layout (a transposed or strided view, a broadcast along the last axis) is first
    copied into a C-contiguous temporary of the broadcast shape by the runtime library's copy
    (``helpers``): an unusual layout costs a copy, not a second version of the loop.

    With ``outline`` (``compute`` cannot fault), the loop nest is a function of its own
    (``RowLoop``), called here: the kernel around it then holds no loop of its own and may be
    compiled without optimization (``kernel.straight_line``)."""
    b = cx.b
    shape, strides = broadcast(cx, operands, rank)
    out = allocate(cx, dtype, shape)
    out.ones = _common_ones(operands, rank)
    arrays = [x for x in operands if isinstance(x, ArrayVal)]
    hoisted = [x.constant_rows() for x in arrays]
    if rank == 0:
        values = _gather(operands, lambda k, x: load(b, x.dtype, x.data))
        store(b, dtype, compute(cx, values), out.data)
        return out
    arrays, strides, scratch = _rows_ready(cx, shape, arrays, strides, hoisted)
    outer, inner = list(shape[:-1]), shape[-1]
    if rank >= 2 and not any(hoisted):    # all C-contiguous: the whole array is one row
        flat = all_contiguous(cx, shape, strides)
        outer = [b.select(flat, ONE, n) for n in outer]
        inner = b.select(flat, contiguous_strides(b, shape)[1], inner)
    loop = RowLoop(dtype, operands, arrays, strides, hoisted, out, outer, inner, compute)
    if outline:
        loop.call(cx)
    else:
        loop.emit(cx)
    for buffer in scratch:
        release_if_any(cx, buffer)
    return out


def _gather(operands: Sequence[ArrayVal | ir.Value],
            load_one: Callable[[int, ArrayVal], ir.Value]) -> list[ir.Value]:
    """The elements of ``operands`` (arrays through ``load_one(k, x)``, scalars as they are)."""
    values, k = [], 0
    for x in operands:
        if isinstance(x, ArrayVal):
            values.append(load_one(k, x))
            k += 1
        else:
            values.append(x)
    return values


@dataclass
class RowLoop:
    """The loop nest of ``elementwise_loop``: ``out[start + i] = compute(operands at start + i)``
    for every row ``start`` of ``outer`` and every ``i < inner``."""

    dtype: ScalarType
    operands: Sequence[ArrayVal | ir.Value]
    arrays: list[ArrayVal]
    strides: list[list[ir.Value]]
    hoisted: list[bool]
    out: ArrayVal
    outer: list[ir.Value]
    inner: ir.Value
    compute: Compute

    def emit(self, cx: Context) -> None:
        """The whole nest at the builder's position."""
        nest(cx, self.outer, [], lambda index, _: self.row(cx, index, ZERO, self.inner))

    def emit_elements(self, cx: Context, lo: ir.Value, hi: ir.Value) -> None:
        """The elements ``[lo, hi)`` of the nest, counted in row-major order over
        ``outer × inner``: the rows they touch, the first and the last maybe in part."""
        b = cx.b
        work, done = cx.new_block("chunk"), cx.new_block("chunk.end")
        b.cbranch(b.icmp_signed(">", hi, lo), work, done)   # an empty array: no row to divide by
        b.position_at_end(work)
        first, last = b.sdiv(lo, self.inner), b.sdiv(b.sub(hi, ONE), self.inner)
        start_column, end_column = b.srem(lo, self.inner), b.add(b.srem(b.sub(hi, ONE),
                                                                        self.inner), ONE)

        def segment(k: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            r = b.add(first, k)
            begin = b.select(b.icmp_signed("==", r, first), start_column, ZERO)
            end = b.select(b.icmp_signed("==", r, last), end_column, self.inner)
            self.row(cx, _unravel(b, r, self.outer), begin, b.sub(end, begin))
            return []
        counted(cx, b.add(b.sub(last, first), ONE), [], segment, label="row", vectorize=False)
        b.branch(done)
        b.position_at_end(done)

    def row(self, cx: Context, index: list[ir.Value], column: ir.Value, length: ir.Value) -> None:
        """``length`` elements of the row at ``index`` (of ``outer``) from ``column`` on."""
        b, arrays, strides, hoisted = cx.b, self.arrays, self.strides, self.hoisted
        row_start, start = [*index, ZERO], [*index, column]
        fixed = {k: load(b, x.dtype, element_pointer(b, x, row_start, strides[k]))
                 for k, x in enumerate(arrays) if hoisted[k]}
        bases = {k: element_pointer(b, x, start, strides[k])
                 for k, x in enumerate(arrays) if not hoisted[k]}
        target = element_pointer(b, self.out, start)

        def body(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            values = _gather(self.operands, lambda k, x: fixed[k] if hoisted[k] else load(
                b, x.dtype, b.gep(bases[k], [i], source_etype=MEM_TYPE[x.dtype])))
            store(b, self.dtype, self.compute(cx, values),
                  b.gep(target, [i], source_etype=MEM_TYPE[self.dtype]))
            return []
        counted(cx, length, [], body, label="e")

    def call(self, cx: Context) -> None:
        """The nest as a function of its own (``outline``), run over the elements on the
        thread pool (``threads.parallel_for``; serially when the arrays are small)."""
        total = ONE
        for n in self.outer:
            total = cx.b.mul(total, n)
        total = cx.b.mul(total, self.inner)
        widest = F64 if any(x.dtype is F64 for x in self.arrays) else self.dtype
        outline_parallel(cx, self, lambda lcx, loop, lo, hi: loop.emit_elements(lcx, lo, hi),
                         total, widest, noalias=(self.out.data,))


def _unravel(b: ir.IRBuilder, flat: ir.Value, shape: Sequence[ir.Value]) -> list[ir.Value]:
    """The row-major index of position ``flat`` in ``shape``."""
    index = []
    for n in reversed(shape):
        index.append(b.srem(flat, n))
        flat = b.sdiv(flat, n)
    return index[::-1]


def map_values(obj: object, f: Callable[[ir.Value], ir.Value]) -> object:
    """``obj`` (LLVM values in lists, tuples, dicts, ``ArrayVal``s and dataclasses) with every
    LLVM value ``v`` replaced by ``f(v)``; anything else is kept."""
    if isinstance(obj, ir.Value):
        return f(obj)
    if isinstance(obj, ArrayVal):
        return replace(obj, data=f(obj.data), shape=[f(n) for n in obj.shape],
                       strides=[f(s) for s in obj.strides])
    if isinstance(obj, list):
        return [map_values(v, f) for v in obj]
    if isinstance(obj, tuple):
        return tuple(map_values(v, f) for v in obj)
    if isinstance(obj, dict):
        return {k: map_values(v, f) for k, v in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{fl.name: map_values(getattr(obj, fl.name), f)
                               for fl in fields(obj)})
    return obj


def outline(cx: Context, captured: object, emit: Callable[["Context", Any], None],
            can_fail: bool = False, noalias: Sequence[ir.Value] = ()) -> None:
    """Emit ``emit(lcx, captured')`` into a new internal function and call it here: a loop
    nest of its own, optimized even when the kernel is not (``kernel.straight_line``).
    ``captured`` holds every LLVM value of the kernel the body reads (anything else it uses
    must be a constant); each becomes an argument (``noalias`` ones marked so: fresh buffers,
    which loops then need not check against the others). With ``can_fail`` the function
    returns a fault code (0: none) and fills the kernel's fault info; the kernel leaves with
    the code."""
    inputs = _captured_inputs(captured)
    fn = _outlined(cx, inputs, [PTR] if can_fail else [], noalias, INT32 if can_fail else None)
    inner = _LoopContext(cx.module, fn, fn.args[-1] if can_fail else None,
                         getattr(cx, "bounds_check", True))
    emit(inner, _rebind(captured, inputs, fn))
    if can_fail:
        inner.b.ret(ir.Constant(INT32, 0))
        code = cx.b.call(shared(cx.module, fn), [*inputs, cx.info])
        cx.fail_code(code)
    else:
        inner.b.ret_void()
        cx.b.call(shared(cx.module, fn), inputs)


#: How long a parallel chunk should run at least (ns; 3 µs: an f64 exp chain of 10⁴ elements
#: splits, the digits step's 128×128 loops do not): the pool's dispatch costs ~0.2 µs while
#: its workers spin and ~2 µs once they sleep, and a chunk of a descheduled worker is waited for.
PARALLEL_NS = 3_000
#: ns per element and unit of ``_work`` (an LLVM instruction of the loop's function), measured
#: on AVX-512 (2 cores): f32 add/sigmoid/exp-chain loops at 39/65/128 units run 0.07/0.14/0.43
#: ns per element, f64 at 39/70/146 units 0.14/0.43/1.36 (half the lanes, longer polynomials).
NS_PER_WORK = {F32: 0.0025}
NS_PER_WORK_ELSE = 0.006


def outline_parallel(cx: Context, captured: object,
                     emit: Callable[["Context", Any, ir.Value, ir.Value], None],
                     count: ir.Value, dtype: ScalarType, noalias: Sequence[ir.Value] = ()) -> None:
    """``emit(lcx, captured', lo, hi)`` (which cannot fault) in a function of its own, as
    ``outline``, taking the range ``[lo, hi)`` of ``[0, count)`` it covers; run here over all
    of it on the thread pool. The pool calls a trampoline that reads the captured values from
    8-byte slots on the kernel's stack. Chunks run ``PARALLEL_NS`` at least, estimated from the
    size of the function and ``dtype``: a cheap loop parallelizes from larger arrays on than an
    exp-heavy one (an f32 sigmoid from ~37 000 elements, an f64 exp chain from ~7 000)."""
    inputs = _captured_inputs(captured)
    fn = _outlined(cx, inputs, [INT64, INT64], noalias)
    inner = _LoopContext(cx.module, fn, None, getattr(cx, "bounds_check", True))
    emit(inner, _rebind(captured, inputs, fn), fn.args[-2], fn.args[-1])
    inner.b.ret_void()
    fn = shared(cx.module, fn)
    ns = _work(fn) * NS_PER_WORK.get(dtype, NS_PER_WORK_ELSE)
    _on_pool(cx, fn, inputs, count, _i(max(1, int(PARALLEL_NS / ns))))


def _on_pool(cx: Context, fn: ir.Function, inputs: list[ir.Value], count: ir.Value,
             grain: ir.Value) -> None:
    """``fn(*inputs, lo, hi)`` over ``[0, count)`` on the thread pool, in chunks of ``grain``
    or more: through a trampoline reading ``inputs`` from 8-byte slots on the stack."""
    trampoline = shared(cx.module, _trampoline(cx.module, fn, [v.type for v in inputs]))
    frame = _entry_alloca(cx.b, ir.ArrayType(INT64, max(1, len(inputs))))
    for k, value in enumerate(inputs):
        cx.b.store(value, _slot(cx.b, frame, k))
    emit_parallel_for(cx, trampoline, frame, count, grain)


def _captured_inputs(captured: object) -> list[ir.Value]:
    """The distinct non-constant LLVM values in ``captured``, in order."""
    inputs: dict[int, ir.Value] = {}
    map_values(captured, lambda v: v if isinstance(v, ir.Constant)
               else inputs.setdefault(id(v), v))
    return list(inputs.values())


def _rebind(captured: object, inputs: list[ir.Value], fn: ir.Function) -> object:
    slot = {id(v): k for k, v in enumerate(inputs)}
    return map_values(captured, lambda v: v if isinstance(v, ir.Constant) else fn.args[slot[id(v)]])


def _outlined(cx: Context, inputs: list[ir.Value], extra: list[ir.Type],
              noalias: Sequence[ir.Value], returns: ir.Type | None = None) -> ir.Function:
    """An internal, never inlined function taking ``inputs`` and then ``extra``."""
    fn = ir.Function(cx.module, ir.FunctionType(returns or ir.VoidType(),
                                                [v.type for v in inputs] + extra),
                     cx.module.get_unique_name("sxad.loop"))
    fn.linkage = "internal"
    for attribute in ("nounwind", "noinline"):
        fn.attributes.add(attribute)
    marked = {id(v) for v in noalias}
    for arg, value in zip(fn.args, inputs):
        if id(value) in marked:
            arg.add_attribute("noalias")
    return fn


def shared(module: ir.Module, fn: ir.Function) -> ir.Function:
    """``fn``, finished, or the function of ``module`` that was emitted identical to it (then
    ``fn`` is dropped): the adjoint often repeats a loop (the digits step had 5 twins among 29
    outlined functions), and each costs LLVM time on a cold compile. Identical: the same text,
    up to the function's own name and its loops' metadata nodes (compared by their options)."""
    nodes = {f"!{m.name}": m for m in module.metadata}

    def node(match: "re.Match[str]") -> str:
        found = nodes.get(match.group(0))
        if found is None:
            return match.group(0)
        return "!{" + ",".join(str(o) for o in found.operands if o is not found) + "}"
    text = re.sub(r"!\d+", node, str(fn).replace(f'@"{fn.name}"', "@F"))
    seen = module.__dict__.setdefault("_sxad_shared", {})
    twin = seen.get(text)
    if twin is None:
        seen[text] = fn
        return fn
    del module.globals[fn.name]
    return twin


def _trampoline(module: ir.Module, fn: ir.Function, types: list[ir.Type]) -> ir.Function:
    """``void (ptr frame, i64 lo, i64 hi)``: ``fn(*frame, lo, hi)``, the values of ``types``
    read from the frame's 8-byte slots."""
    pool_body = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, INT64, INT64]),
                            module.get_unique_name("sxad.chunk"))
    pool_body.linkage = "internal"
    pool_body.attributes.add("nounwind")
    b = ir.IRBuilder(pool_body.append_basic_block("entry"))
    frame, lo, hi = pool_body.args
    values = [b.load(_slot(b, frame, k), typ=t) for k, t in enumerate(types)]
    b.call(fn, [*values, lo, hi])
    b.ret_void()
    return pool_body


def _slot(b: ir.IRBuilder, frame: ir.Value, k: int) -> ir.Value:
    """The ``k``-th 8-byte slot of a frame (every captured value fits one: pointers, i64,
    doubles, floats, bools)."""
    return b.gep(frame, [_i(k)], source_etype=INT64)


def _entry_alloca(b: ir.IRBuilder, ty: ir.Type) -> ir.Value:
    """A stack slot in the entry block of the builder's function (once, even when the
    builder is inside a loop)."""
    entry = b.block.function.entry_basic_block
    at = ir.IRBuilder(entry)
    if entry.instructions:
        at.position_before(entry.instructions[0])
    slot = at.alloca(ty)
    slot.type = PTR   # an opaque pointer, as every pointer here (llvmlite types allocas)
    return slot


def _work(fn: ir.Function) -> int:
    """A loop function's cost per element, roughly: its instructions, divisions counted as
    the eight they cost."""
    count = 0
    for block in fn.blocks:
        for instruction in block.instructions:
            count += 8 if instruction.opname == "fdiv" else 1
    return count


class _LoopContext(helpers.FunctionContext):
    """The context of an outlined loop (``RowLoop.call``, ``outline``): a builder in its
    function; a fault returns its code (after writing ``info``), when the function may fail."""

    def __init__(self, module: ir.Module, fn: ir.Function, info: ir.Value | None = None,
                 bounds_check: bool = True) -> None:
        super().__init__(module, fn)
        self.info, self.bounds_check = info, bounds_check

    def fail_if(self, cond: ir.Value, fault: Fault) -> None:
        self.fail_with(cond, fault, [])

    def fail_with(self, cond: ir.Value, fault: Fault, info: Sequence[ir.Value]) -> None:
        if self.info is None:
            raise CodegenError("this outlined loop cannot fault")   # a bug of its caller
        failing, ok = self.new_block(f"fail.{fault.name.lower()}"), self.new_block("ok")
        self.b.cbranch(cond, failing, ok)
        tail = ir.IRBuilder(failing)
        for k, value in enumerate(info[:INFO_SLOTS]):
            tail.store(value, tail.gep(self.info, [_i(k)], source_etype=INT64))
        tail.ret(ir.Constant(INT32, int(fault)))
        self.b.position_at_end(ok)


def _rows_ready(cx: Context, shape: list[ir.Value], arrays: list[ArrayVal],
                strides: list[list[ir.Value]], hoisted: list[bool]
                ) -> tuple[list[ArrayVal], list[list[ir.Value]], list[ir.Value]]:
    """The operands as the row loop reads them: each one hoisted or contiguous along the last
    axis (or all rows of one element) as it is; any other (rarely) copied into a C-contiguous
    temporary of the broadcast shape. Returns the operands, their strides over ``shape`` and
    the temporaries to release (NULL where none was made)."""
    b = cx.b
    ok: ir.Value = b.icmp_signed("==", shape[-1], ONE)   # one column: any strides
    weights = cx.module.add_metadata([ir.MetaDataString(cx.module, "branch_weights"),
                                      ir.Constant(INT32, 1), ir.Constant(INT32, 1 << 20)])
    arrays, strides, scratch = list(arrays), [list(s) for s in strides], []
    for k, x in enumerate(arrays):
        if hoisted[k]:
            continue
        needed = b.and_(b.not_(ok), b.icmp_signed("!=", strides[k][-1], ONE))
        here = b.block
        copying, ready = cx.new_block("operand.copy"), cx.new_block("operand.ready")
        b.cbranch(needed, copying, ready).set_metadata("prof", weights)
        b.position_at_end(copying)
        temp = allocate(cx, x.dtype, shape)
        copy_elements(cx, shape, x, strides[k], temp.data, temp.strides)
        copied = b.block
        b.branch(ready)
        b.position_at_end(ready)
        data = b.phi(PTR, "operand")
        merged = [b.phi(INT64) for _ in strides[k]]
        made = b.phi(PTR, "scratch")
        for phi, mine, theirs in zip([data, *merged, made], [x.data, *strides[k], NULL],
                                     [temp.data, *temp.strides, temp.data]):
            phi.add_incoming(mine, here)
            phi.add_incoming(theirs, copied)
        arrays[k] = ArrayVal(x.dtype, data, list(x.shape), x.strides, x.ones)
        strides[k] = merged
        scratch.append(made)
    return arrays, strides, scratch

def _common_ones(operands: Sequence[ArrayVal | ir.Value], rank: int) -> frozenset[int]:
    """The result axes of length 1 in every operand that has them (so in the result)."""
    arrays = [x for x in operands if isinstance(x, ArrayVal)]
    return frozenset(k for k in range(rank) if all(
        k - (rank - x.rank) in x.ones for x in arrays if k - (rank - x.rank) >= 0))


def check_same_shape(cx: Context, target: ArrayVal, value: ArrayVal) -> None:
    """``Fault.SHAPE`` unless ``value`` has ``target``'s shape: an argument's final value is
    copied into it (``copy_into``) only after every such check passed."""
    b = cx.b
    bad: ir.Value = ir.Constant(INT1, 0)
    for n, m in zip(target.shape, value.shape):
        bad = b.or_(bad, b.icmp_signed("!=", n, m))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.BROADCAST_TO, [value, target]))


def copy_into(cx: Context, target: ArrayVal, value: ArrayVal) -> None:
    """Copy ``value`` into ``target``'s buffer (an argument updated in place; shapes checked by
    ``check_same_shape``). ``value`` is a fresh buffer, so they never overlap."""
    copy_elements(cx, target.shape, value, value.strides, target.data, target.strides)


def copy(cx: Context, array: ArrayVal) -> ArrayVal:
    """A fresh C-contiguous copy (what escapes a block when the value is not the block's to
    give away)."""
    out = allocate(cx, array.dtype, array.shape)
    out.ones = array.ones
    copy_elements(cx, array.shape, array, array.strides, out.data, out.strides)
    return out


def copy_elements(cx: Context, shape: Sequence[ir.Value], source: ArrayVal,
                  source_strides: Sequence[ir.Value], target: ir.Value,
                  target_strides: Sequence[ir.Value]) -> None:
    """``target[i] = source[i]`` for every index of ``shape`` (strides in elements; the two
    buffers do not overlap): a call of the runtime library's copy."""
    helpers.call(cx, helpers.copy_name(ELEM_SIZE[source.dtype]), [
        *helpers.pad(shape, ONE), source.data, *helpers.pad(source_strides, ZERO), target,
        *helpers.pad(target_strides, ZERO)])


def reduce_into(cx: Context, prim: Prim, x: ArrayVal, target: ir.Value,
                target_strides: Sequence[ir.Value], fill: ir.Value) -> None:
    """``target[0:fill] = identity``, then ``target[t·i] ⊕= x[i]`` for every index ``i`` of
    ``x`` (``t``: ``target_strides``, 0 along the axes reduced away): the runtime library's
    reduction."""
    helpers.call(cx, helpers.reduce_name(prim, x.dtype), [
        *helpers.pad(x.shape, ONE), x.data, *helpers.pad(x.strides, ZERO), target,
        *helpers.pad(target_strides, ZERO), fill])


# --------------------------------------------------------------------------- the lowerings

Value = ArrayVal | ir.Value
ArrayLower = Callable[[Context, Op, list[Value]], Value]


def lower_elementwise(cx: Context, op: Op, xs: list[Value]) -> Value:
    """Any scalar primitive on arrays: one loop applying its scalar lowering."""
    result = op.result.type
    return elementwise_loop(cx, dtype_of(result), rank_of(result), xs,
                            lambda lcx, values: lower_in_loop(lcx, op, values),
                            outline=not may_fault([op]))


def lower_group(cx: Context, ops: Sequence[Op]) -> Value:
    """A fused group (``codegen.fusion``): one loop whose body evaluates every op of ``ops``
    on scalars; inputs are the values the group reads but does not make. A group ending in a
    reduction gives the reduction's result (``lower_fused_reduction``)."""
    root = ops[-1]
    if root.prim in _FUSED_REDUCTIONS and not may_fault(ops):
        return lower_fused_reduction(cx, ops)
    if root.prim in _FUSED_REDUCTIONS:   # a fault needs the kernel: the array, then its sum
        x = lower_group(cx, ops[:-1]) if len(ops) > 2 else \
            lower_elementwise(cx, ops[0], [cx.values[a] for a in ops[0].args])
        result = ARRAY_LOWERING[root.prim](cx, root, [x, *[cx.values[a] for a in root.args[1:]]])
        release(cx, x)
        return result
    inputs = _group_inputs(ops)
    operands = [cx.values[a] for a in inputs]
    result = ops[-1].result.type
    return elementwise_loop(cx, dtype_of(result), rank_of(result), operands,
                            _group_compute(ops, inputs, ops[-1].result),
                            outline=not may_fault(ops))


def may_fault(ops: Sequence[Op]) -> bool:
    """Whether the scalar lowering of one of ``ops`` can fail (integer power: a negative
    exponent is numpy's ValueError)."""
    return any(op.prim is Prim.POW and dtype_of(op.args[1].type) is I64 for op in ops)


def lower_in_loop(cx: Context, op: Op, values: list[ir.Value]) -> ir.Value:
    """A scalar op inside an array loop: ``vmath``'s vectorizable form when it has one."""
    found = vmath.lower(cx, op.prim, values)
    return found if found is not None else lower_scalar(cx, op, values)

# --------------------------------------------------------------------------- fused reductions

#: A reduction fused into its producer's loop (``codegen.fusion``) runs over blocks of this
#: many elements at least, each into partial results of its own, combined in block order: the
#: blocks depend on the shapes only, so the result does not depend on the number of threads.
REDUCE_BLOCK = 1 << 13
#: Rows at most this long are reduced along through a tile on the stack: their elements are
#: computed by a vector loop, which a loop of a few iterations carrying a sum would not be.
SHORT_ROW = 64
_FUSED_REDUCTIONS = frozenset({Prim.REDUCE_SUM, Prim.REDUCE_PROD, Prim.REDUCE_MAX,
                               Prim.REDUCE_MIN, Prim.UNBROADCAST})


@dataclass
class ReduceLoop(RowLoop):
    """A ``RowLoop`` whose elements are combined (``prim``) into a target instead of stored:
    the element at index ``i`` into ``out.data[target · i]`` (``target``: strides over
    ``outer + [inner]``, 0 along reduced axes; along the last axis 0 or 1). ``fresh``
    (an i64, nonzero): each row's targets are written by that row alone, and not read first."""

    prim: Prim = Prim.REDUCE_SUM
    target: list[ir.Value] = field(default_factory=list)
    fresh: ir.Value = ZERO

    def row(self, cx: Context, index: list[ir.Value], column: ir.Value, length: ir.Value) -> None:
        b, arrays, strides, hoisted = cx.b, self.arrays, self.strides, self.hoisted
        etype = MEM_TYPE[self.dtype]
        row_start, start = [*index, ZERO], [*index, column]
        fixed = {k: load(b, x.dtype, element_pointer(b, x, row_start, strides[k]))
                 for k, x in enumerate(arrays) if hoisted[k]}
        bases = {k: element_pointer(b, x, start, strides[k])
                 for k, x in enumerate(arrays) if not hoisted[k]}
        target = element_pointer(b, self.out, start, self.target)
        fresh = b.icmp_signed("!=", self.fresh, ZERO)

        def value(i: ir.Value) -> ir.Value:
            return self.compute(cx, _gather(self.operands, lambda k, x: fixed[k] if hoisted[k]
                                            else load(b, x.dtype, b.gep(bases[k], [i],
                                                                        source_etype=MEM_TYPE[x.dtype]))))

        def each(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            at = b.gep(target, [i], source_etype=etype)
            store(b, self.dtype, _combine(cx, self.prim, load(b, self.dtype, at), value(i)), at)
            return []

        def stored(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            store(b, self.dtype, value(i), b.gep(target, [i], source_etype=etype))
            return []
        with b.if_else(b.icmp_signed("==", self.target[-1], ZERO)) as (along, across):
            with along:   # the row's sum: in a register
                first = b.select(fresh, _identity(self.prim, self.dtype), load(b, self.dtype, target))
                with b.if_else(b.icmp_signed("<=", length, _i(SHORT_ROW))) as (short, long):
                    with short:   # stored first (a loop LLVM vectorizes), then summed
                        tile = _entry_alloca(b, ir.ArrayType(etype, SHORT_ROW))

                        def kept(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                            store(b, self.dtype, value(i), b.gep(tile, [i], source_etype=etype))
                            return []
                        counted(cx, length, [], kept)
                        (part,) = counted(cx, length, [first], lambda i, acc: [_combine(
                            cx, self.prim, acc[0],
                            load(b, self.dtype, b.gep(tile, [i], source_etype=etype)))])
                        store(b, self.dtype, part, target)
                    with long:
                        (total,) = counted(cx, length, [first], lambda i, acc: [
                            _combine(cx, self.prim, acc[0], value(i))])
                        store(b, self.dtype, total, target)
            with across:
                with b.if_else(fresh) as (alone, into):
                    with alone:
                        counted(cx, length, [], stored)
                    with into:
                        counted(cx, length, [], each)


def _group_inputs(ops: Sequence[Op], skip: Op | None = None) -> list[object]:
    """The values the ops read but do not make (``skip``'s arguments but the first excepted)."""
    made = {r for op in ops for r in op.results}
    inputs: list[object] = []
    for op in ops:
        for a in (op.args[:1] if op is skip else op.args):
            if a not in made and a not in inputs:
                inputs.append(a)
    return inputs


def _group_compute(ops: Sequence[Op], inputs: list[object], result: object) -> Compute:
    def compute(lcx: Context, values: list[ir.Value]) -> ir.Value:
        env = dict(zip(inputs, values))
        for op in ops:
            env[op.result] = lower_in_loop(lcx, op, [env[a] for a in op.args])
        return env[result]
    return compute


def _reduction_target(cx: Context, root: Op, shape: list[ir.Value], dtype: ScalarType
                      ) -> tuple[ArrayVal | None, ir.Value, list[ir.Value]]:
    """Where ``root`` reduces an array of ``shape`` into: its fresh result (``None``: a number,
    then the returned pointer is one element on the stack), the data pointer and the target
    strides over ``shape``."""
    b, rank = cx.b, len(shape)
    if root.prim is Prim.UNBROADCAST:
        like = cx.values[root.args[1]]
        axes = tuple(range(rank)) if not isinstance(like, ArrayVal) else None
    else:
        like, axes = None, root.attr("axes")
        axes = tuple(range(rank)) if axes is None else tuple(axes)
        _check_not_empty(cx, root.prim, [shape[k] for k in axes])
    if not is_array(root.result.type):
        with b.goto_entry_block():
            total = b.alloca(MEM_TYPE[dtype], name="total")
            total.type = PTR
        return None, total, [ZERO] * rank
    if axes is None:   # unbroadcast to an array: the axes where ``like`` has length 1
        lead = rank - like.rank
        bad: ir.Value = ir.Constant(INT1, 0)
        for n, c in zip(like.shape, shape[lead:]):
            bad = b.or_(bad, b.and_(b.icmp_signed("!=", n, ONE), b.icmp_signed("!=", n, c)))
        cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.UNBROADCAST,
                                                  [ArrayVal(dtype, NULL, shape), like]))
        out = allocate(cx, dtype, like.shape)
        out.ones = like.ones
        return out, out.data, [ZERO] * lead + [b.select(b.icmp_signed("==", n, ONE), ZERO, s)
                                               for n, s in zip(like.shape, out.strides)]
    keepdims = root.attr("keepdims")
    kept = [k for k in range(rank) if k not in axes]
    out = allocate(cx, dtype, [ONE if k in axes else shape[k] for k in range(rank)]
                   if keepdims else [shape[k] for k in kept])
    out.ones = frozenset(axes) if keepdims else frozenset()
    strides = iter(out.strides if not keepdims else
                   [s for k, s in enumerate(out.strides) if k not in axes])
    return out, out.data, [ZERO if k in axes else next(strides) for k in range(rank)]


def lower_fused_reduction(cx: Context, ops: Sequence[Op]) -> Value:
    """A group ending in a reduction (``codegen.fusion``): the elementwise ops' values are
    combined into the reduction's result in their loop, never stored. Rows whose targets are
    their own (no outer axis reduced: a sum along the last axis, an unbroadcast between equal
    shapes) run in parallel over whole rows; otherwise fixed blocks of ``REDUCE_BLOCK``
    elements or more reduce into partial results, combined in order after."""
    root, b = ops[-1], cx.b
    inputs = _group_inputs(ops, root)
    operands = [cx.values[a] for a in inputs]
    rank, dtype = rank_of(root.args[0].type), dtype_of(root.args[0].type)
    compute = _group_compute(ops[:-1], inputs, root.args[0])
    shape, strides = broadcast(cx, operands, rank)
    out, data, target = _reduction_target(cx, root, shape, dtype)
    arrays = [x for x in operands if isinstance(x, ArrayVal)]
    hoisted = [x.constant_rows() for x in arrays]
    arrays, strides, scratch = _rows_ready(cx, shape, arrays, strides, hoisted)
    outer, inner = list(shape[:-1]), shape[-1]
    if out is None and rank >= 2 and not any(hoisted):   # a number: contiguous is one row
        flat = all_contiguous(cx, shape, strides)
        outer = [b.select(flat, ONE, n) for n in outer]
        inner = b.select(flat, contiguous_strides(b, shape)[1], inner)
    loop = ReduceLoop(dtype, operands, arrays, strides, hoisted, ArrayVal(dtype, NULL, []),
                      outer, inner, compute,
                      Prim.REDUCE_SUM if root.prim is Prim.UNBROADCAST else root.prim, target)
    size = ONE if out is None else contiguous_strides(b, out.shape)[1]
    rows = ONE
    for n in outer:
        rows = b.mul(rows, n)
    total = b.mul(rows, inner)
    own_rows = b.icmp_signed(">", inner, ZERO)
    for n, t in zip(outer, target):
        own_rows = b.and_(own_rows, b.or_(b.icmp_signed("==", n, ONE),
                                          b.icmp_signed("!=", t, ZERO)))
    long_rows = b.and_(b.icmp_signed("==", target[-1], ZERO),
                       b.icmp_signed(">=", inner, _i(REDUCE_BLOCK)))
    by_rows = b.and_(own_rows, b.not_(long_rows))
    block = _max(b, _i(REDUCE_BLOCK), b.mul(size, _i(16)))
    blocks = b.select(by_rows, ZERO, b.sdiv(b.add(total, b.sub(block, ONE)), block))
    partials = allocate(cx, dtype, [b.mul(blocks, size)])
    captured = (loop, data, partials.data, b.zext(by_rows, INT64), size, total, block, blocks)
    outline(cx, captured, lambda lcx, c: _reduce_driver(lcx, *c), noalias=(data,))
    release(cx, partials)
    for buffer in scratch:
        release_if_any(cx, buffer)
    return load(b, dtype, data) if out is None else out


def _reduce_driver(cx: Context, loop: ReduceLoop, data: ir.Value, partials: ir.Value,
                   by_rows: ir.Value, size: ir.Value, total: ir.Value, block: ir.Value,
                   blocks: ir.Value) -> None:
    """The outlined body of ``lower_fused_reduction``, once the target is allocated."""
    b, dtype = cx.b, loop.dtype
    etype = MEM_TYPE[dtype]
    accumulate, inputs = _accumulate_function(cx, loop)
    ns = _work(accumulate) * NS_PER_WORK.get(dtype, NS_PER_WORK_ELSE)
    per_element = max(1, int(PARALLEL_NS / ns))   # elements per chunk, as outline_parallel

    def row_chunk(lcx: Context, args: list[ir.Value], lo: ir.Value, hi: ir.Value) -> None:
        lb = lcx.b
        *values, out, inner, count = args

        def whole(k: ir.Value) -> ir.Value:   # each row goes to the chunk its start is in
            return _min(lb, lb.mul(lb.sdiv(lb.add(k, lb.sub(inner, ONE)), inner), inner), count)
        lb.call(accumulate, [*values, whole(lo), whole(hi), out, ONE])

    def block_chunk(lcx: Context, args: list[ir.Value], lo: ir.Value, hi: ir.Value) -> None:
        lb = lcx.b
        *values, base, width, count, size_ = args

        def one(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            j = lb.add(lo, j)
            part = lb.gep(base, [lb.mul(j, size_)], source_etype=etype)
            _fill(lcx, dtype, _identity(loop.prim, dtype), part, size_)
            start = lb.mul(j, width)
            lb.call(accumulate, [*values, start, _min(lb, lb.add(start, width), count), part, ZERO])
            return []
        counted(lcx, lb.sub(hi, lo), [], one, label="block", vectorize=False)

    with b.if_else(b.icmp_signed("!=", by_rows, ZERO)) as (rowwise, blockwise):
        with rowwise:
            _pool_call(cx, [*inputs, data, loop.inner, total], row_chunk, total, _i(per_element))
        with blockwise:
            _fill(cx, dtype, _identity(loop.prim, dtype), data, size)
            grain = _max(b, ONE, b.sdiv(_i(per_element), block))
            _pool_call(cx, [*inputs, partials, block, total, size], block_chunk, blocks, grain)

            def combine(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                part = b.gep(partials, [b.mul(j, size)], source_etype=etype)

                def add(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                    at = b.gep(data, [i], source_etype=etype)
                    x = load(b, dtype, b.gep(part, [i], source_etype=etype))
                    store(b, dtype, _combine(cx, loop.prim, load(b, dtype, at), x), at)
                    return []
                counted(cx, size, [], add)
                return []
            counted(cx, blocks, [], combine, label="part", vectorize=False)


def _accumulate_function(cx: Context, loop: ReduceLoop) -> tuple[ir.Function, list[ir.Value]]:
    """``void(inputs…, lo, hi, target, fresh)``: the elements ``[lo, hi)`` of ``loop``
    combined into ``target``; and the inputs (the values of ``cx`` the loop reads)."""
    inputs = _captured_inputs(loop)
    fn = _outlined(cx, inputs, [INT64, INT64, PTR, INT64], ())
    fn.args[-2].add_attribute("noalias")
    lcx = _LoopContext(cx.module, fn, None, getattr(cx, "bounds_check", True))
    bound = replace(_rebind(loop, inputs, fn), out=ArrayVal(loop.dtype, fn.args[-2], []),
                    fresh=fn.args[-1])
    bound.emit_elements(lcx, fn.args[-4], fn.args[-3])
    lcx.b.ret_void()
    return shared(cx.module, fn), inputs


def _pool_call(cx: Context, values: list[ir.Value],
               emit: Callable[[Context, list[ir.Value], ir.Value, ir.Value], None],
               count: ir.Value, grain: ir.Value) -> None:
    """``emit(lcx, values', lo, hi)`` in a function of its own, run over ``[0, count)`` on the
    thread pool in chunks of ``grain`` or more (``outline_parallel`` with the grain given)."""
    fn = _outlined(cx, values, [INT64, INT64], ())
    lcx = _LoopContext(cx.module, fn, None, getattr(cx, "bounds_check", True))
    emit(lcx, list(fn.args[:len(values)]), fn.args[-2], fn.args[-1])
    lcx.b.ret_void()
    _on_pool(cx, shared(cx.module, fn), values, count, grain)


def _fill(cx: Context, dtype: ScalarType, value: ir.Value, base: ir.Value, n: ir.Value) -> None:
    """``base[0:n] = value``."""
    def one(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        store(cx.b, dtype, value, cx.b.gep(base, [i], source_etype=MEM_TYPE[dtype]))
        return []
    counted(cx, n, [], one)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)



def _dim(cx: Context, op: Op, xs: list[Value]) -> Value:
    return xs[0].shape[op.attr("axis")]


def _zeros_like(cx: Context, op: Op, xs: list[Value]) -> Value:
    out = allocate(cx, xs[0].dtype, xs[0].shape, zeroed=True)
    out.ones = xs[0].ones
    return out


def _transpose(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A view: the axes permuted."""
    x = xs[0]
    perm = op.attr("perm")
    perm = tuple(reversed(range(x.rank))) if perm is None else perm
    return ArrayVal(x.dtype, x.data, [x.shape[k] for k in perm], [x.strides[k] for k in perm],
                    frozenset(k for k, p in enumerate(perm) if p in x.ones),
                    frozenset(k for k, p in enumerate(perm) if p in x.repeated))


def _expand_dims(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A view with axes of length 1 inserted (``axes`` are positions in the result)."""
    x, axes = xs[0], set(op.attr("axes"))
    rank = rank_of(op.result.type)
    if not isinstance(x, ArrayVal):   # a scalar: a one-element array
        out = allocate(cx, x_type(op), [ONE] * rank)
        store(cx.b, out.dtype, x, out.data)
        return out
    shape, strides, ones, rest = [], [], set(axes), iter(enumerate(zip(x.shape, x.strides)))
    for k in range(rank):
        if k in axes:
            n, s = ONE, ZERO
        else:
            j, (n, s) = next(rest)
            if j in x.ones:
                ones.add(k)
        shape.append(n)
        strides.append(s)
    return ArrayVal(x.dtype, x.data, shape, strides, frozenset(ones))


def x_type(op: Op) -> ScalarType:
    return dtype_of(op.args[0].type)


def _broadcast_like(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A view with stride 0 along broadcast axes (a scalar is written out: it has no memory)."""
    x, like = xs
    rank = like.rank
    if not isinstance(x, ArrayVal):
        return elementwise_loop(cx, x_type(op), rank, [x, like], lambda lcx, v: v[0])
    b = cx.b
    lead = rank - x.rank
    bad: ir.Value = ir.Constant(INT1, 0)
    strides = [ZERO] * lead
    for n, a, s in zip(like.shape[lead:], x.shape, x.strides):
        a_is_one = b.icmp_signed("==", a, ONE)
        bad = b.or_(bad, b.and_(b.not_(a_is_one), b.icmp_signed("!=", a, n)))
        strides.append(b.select(a_is_one, ZERO, s))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.BROADCAST_TO, [x, like]))
    repeated = frozenset(range(lead)) | frozenset(lead + j for j in x.ones)
    return ArrayVal(x.dtype, x.data, list(like.shape), strides, like.ones, repeated)


def _unbroadcast(cx: Context, op: Op, xs: list[Value], view: bool = False) -> Value:
    """``ct`` summed over the axes where ``like`` was broadcast: every element of ``ct`` is
    added into the element of the result it was broadcast from. With ``view`` (the op is
    ``is_maybe_view``), where nothing was broadcast the result is ``ct`` itself, not a copy:
    the ownership plan then frees it only when its buffer is not ``ct``'s."""
    ct, like = xs
    b = cx.b
    if not isinstance(ct, ArrayVal):
        return ct
    dtype = ct.dtype
    if not isinstance(like, ArrayVal):   # a scalar: the sum of everything
        return _reduce_all(cx, ct, Prim.REDUCE_SUM)
    lead = ct.rank - like.rank
    bad: ir.Value = ir.Constant(INT1, 0)
    for n, c in zip(like.shape, ct.shape[lead:]):
        bad = b.or_(bad, b.and_(b.icmp_signed("!=", n, ONE), b.icmp_signed("!=", n, c)))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.UNBROADCAST, [ct, like]))
    out = allocate(cx, dtype, like.shape)
    out.ones = like.ones
    target = [ZERO] * lead + [b.select(b.icmp_signed("==", n, ONE), ZERO, s)
                              for n, s in zip(like.shape, out.strides)]
    size = contiguous_strides(b, out.shape)[1]
    if lead:
        reduce_into(cx, Prim.REDUCE_SUM, ct, out.data, target, size)
        return out
    # Nothing was broadcast when the shapes are equal (what the passes could not prove):
    # then ct itself (a view) or a copy, not a reduction into zeros.
    same: ir.Value = ir.Constant(INT1, 1)
    for n, c in zip(like.shape, ct.shape):
        same = b.and_(same, b.icmp_signed("==", n, c))
    if view:
        return _view_or_sum(cx, ct, like, same, target, size)
    with b.if_else(same) as (equal, other):
        with equal:
            copy_elements(cx, out.shape, ct, ct.strides, out.data, out.strides)
        with other:
            reduce_into(cx, Prim.REDUCE_SUM, ct, out.data, target, size)
    return out


def _view_or_sum(cx: Context, ct: ArrayVal, like: ArrayVal, same: ir.Value,
                 target: list[ir.Value], size: ir.Value) -> ArrayVal:
    """``ct`` itself when ``same``, else ``ct`` summed into a fresh array of ``like``'s shape."""
    b = cx.b
    with b.if_else(same) as (equal, other):
        with equal:
            equal_end = b.block
        with other:
            out = allocate(cx, ct.dtype, like.shape)
            reduce_into(cx, Prim.REDUCE_SUM, ct, out.data, target, size)
            other_end = b.block

    def merged(mine: ir.Value, fresh: ir.Value) -> ir.Value:
        phi = b.phi(mine.type)
        phi.add_incoming(mine, equal_end)
        phi.add_incoming(fresh, other_end)
        return phi
    return ArrayVal(ct.dtype, merged(ct.data, out.data), list(like.shape),
                    [merged(s, t) for s, t in zip(ct.strides, out.strides)], like.ones)


def is_maybe_view(op: Op) -> bool:
    """An unbroadcast whose result may be its operand itself (same rank: nothing broadcast
    when the shapes turn out equal, which the passes could not prove): ``ct`` is then not
    copied. Only as an op of its own (a fused group's unbroadcast makes a fresh array)."""
    return op.prim is Prim.UNBROADCAST and all(is_array(a.type) for a in op.args) and \
        rank_of(op.args[0].type) == rank_of(op.args[1].type)


# reductions

_IDENTITY = {Prim.REDUCE_SUM: (0.0, 0), Prim.REDUCE_PROD: (1.0, 1),
             Prim.REDUCE_MAX: (float("-inf"), -(2 ** 63)),
             Prim.REDUCE_MIN: (float("inf"), 2 ** 63 - 1)}


def _identity(prim: Prim, dtype: ScalarType) -> ir.Constant:
    real, integer = _IDENTITY[prim]
    return ir.Constant(LL_TYPE[dtype], integer if dtype == I64 else real)   # == : a rebound copy


def _combine(cx: Context, prim: Prim, acc: ir.Value, x: ir.Value) -> ir.Value:
    """One step of a reduction. Sums and products may be reassociated (LLVM then keeps
    several partial sums in vector lanes, as numpy's pairwise sum keeps eight); max and min
    are np.maximum/np.minimum, so a nan anywhere is the result."""
    b = cx.b
    integer = acc.type == INT64
    if prim is Prim.REDUCE_SUM:
        return b.add(acc, x) if integer else b.fadd(acc, x, flags=("reassoc",))
    if prim is Prim.REDUCE_PROD:
        return b.mul(acc, x) if integer else b.fmul(acc, x, flags=("reassoc",))
    if integer:
        cmp = ">=" if prim is Prim.REDUCE_MAX else "<="
        return b.select(b.icmp_signed(cmp, acc, x), acc, x)
    # IEEE maximum/minimum propagate nan, as numpy's max/min do, and LLVM vectorizes them as
    # reductions (the select form of np.maximum it does not); of ±0 they take +0 (max), -0
    # (min), which compare equal to numpy's choice
    name = "maximum" if prim is Prim.REDUCE_MAX else "minimum"
    suffix = "f32" if acc.type == FLOAT else "f64"
    return b.call(cx.declare(f"llvm.{name}.{suffix}", acc.type, [acc.type, acc.type]), [acc, x])


def _check_not_empty(cx: Context, prim: Prim, dims: Sequence[ir.Value]) -> None:
    """max/min of nothing has no value: numpy's ValueError."""
    if prim not in (Prim.REDUCE_MAX, Prim.REDUCE_MIN) or not dims:
        return
    b = cx.b
    empty: ir.Value = ir.Constant(INT1, 0)
    for n in dims:
        empty = b.or_(empty, b.icmp_signed("==", n, ZERO))
    cx.fail_with(empty, Fault.EMPTY_REDUCTION, [_i(int(prim is Prim.REDUCE_MIN))])


def _reduce_all(cx: Context, x: ArrayVal, prim: Prim) -> ir.Value:
    """The reduction of every element, through one element of scratch memory."""
    _check_not_empty(cx, prim, x.shape)
    b = cx.b
    with b.goto_entry_block():
        total = b.alloca(MEM_TYPE[x.dtype], name="total")
        total.type = PTR
    reduce_into(cx, prim, x, total, [ZERO] * x.rank, ONE)
    return load(b, x.dtype, total)


def _reduce(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A fresh result filled with the identity, every element of ``x`` combined into the
    element its kept axes select (the runtime library's reduction)."""
    (x,) = xs
    b, prim = cx.b, op.prim
    axes = op.attr("axes")
    axes = tuple(range(x.rank)) if axes is None else tuple(axes)
    keepdims = op.attr("keepdims")
    if not is_array(op.result.type):
        return _reduce_all(cx, x, prim)
    kept = [k for k in range(x.rank) if k not in axes]
    _check_not_empty(cx, prim, [x.shape[k] for k in axes])
    out_shape = [ONE if k in axes else x.shape[k] for k in range(x.rank)] if keepdims else \
        [x.shape[k] for k in kept]
    out = allocate(cx, x.dtype, out_shape)
    out.ones = frozenset(set(axes) | x.ones) if keepdims else frozenset(
        j for j, k in enumerate(kept) if k in x.ones)
    out_strides = [s for k, s in zip(range(x.rank), out.strides) if k not in axes] \
        if keepdims else out.strides
    target, kept_strides = [], iter(out_strides)
    for k in range(x.rank):
        target.append(ZERO if k in axes else next(kept_strides))
    reduce_into(cx, prim, x, out.data, target, contiguous_strides(b, out.shape)[1])
    return out


# matmul

def _loop_gemm(cx: Context, dtype: ScalarType, trans_a: ir.Value, trans_b: ir.Value,
               m: ir.Value, n: ir.Value, k: ir.Value, alpha: ir.Value, a: ir.Value,
               lda: ir.Value, b_: ir.Value, ldb: ir.Value, beta: ir.Value, c: ir.Value,
               ldc: ir.Value) -> None:
    """C = op(A)·op(B), row-major, with ``blas.emit_gemm``'s arguments (alpha must be 1 and
    beta 0): the plain loop nest integer matrices use (BLAS has none), i-p-j order so that
    the innermost loop runs along rows of B and C."""
    b = cx.b
    etype = MEM_TYPE[dtype]
    zero = _identity(Prim.REDUCE_SUM, dtype)

    def at(base: ir.Value, ld: ir.Value, row: ir.Value, col: ir.Value,
           trans: ir.Value) -> ir.Value:
        offset = b.select(trans, b.add(b.mul(col, ld), row), b.add(b.mul(row, ld), col))
        return b.gep(base, [offset], source_etype=etype)
    no = ir.Constant(INT1, 0)

    def clear(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        b.store(zero, at(c, ldc, index[0], index[1], no))
        return []
    nest(cx, [m, n], [], clear)

    def row(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        i, p = index
        scale = b.load(at(a, lda, i, p, trans_a), typ=etype)

        def column(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            where = at(c, ldc, i, j, no)
            term = b.load(at(b_, ldb, p, j, trans_b), typ=etype)
            if dtype is I64:
                b.store(b.add(b.load(where, typ=etype), b.mul(scale, term)), where)
            else:
                b.store(b.fadd(b.load(where, typ=etype), b.fmul(scale, term)), where)
            return []
        counted(cx, n, [], column, label="j")
        return []
    nest(cx, [m, k], [], row)


def _int_gemm(cx: Context, dtype: ScalarType, *args: ir.Value) -> None:
    """``_loop_gemm`` as a loop function of its own (``outline``)."""
    outline(cx, list(args), lambda lcx, mapped: _loop_gemm(lcx, dtype, *mapped))


_float_gemm = emit_gemm   # numpy's OpenBLAS, or codegen/blas.py's blocked LLVM kernel


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def blas_operand(cx: Context, x: ArrayVal) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value]:
    """(data, leading dimension, transposed?, scratch) of ``x`` as a BLAS matrix: ``x``
    itself when rows or columns are contiguous (``x.T`` is read transposed, not copied), else
    a C-contiguous copy, released after the product (scratch; NULL when there was none). A
    vector is a one-row matrix."""
    b = cx.b
    shape, strides = (x.shape, x.strides) if x.rank == 2 else ([ONE, x.shape[0]],
                                                               [ZERO, x.strides[0]])
    (r, c), (sr, sc) = shape, strides
    r_one, c_one = b.icmp_signed("<=", r, ONE), b.icmp_signed("<=", c, ONE)
    rows_ok = b.and_(b.or_(c_one, b.icmp_signed("==", sc, ONE)),
                     b.or_(r_one, b.icmp_signed(">=", sr, _max(b, c, ONE))))
    cols_ok = b.and_(b.or_(r_one, b.icmp_signed("==", sr, ONE)),
                     b.or_(c_one, b.icmp_signed(">=", sc, _max(b, r, ONE))))
    row_ld = b.select(r_one, _max(b, c, ONE), sr)
    col_ld = b.select(c_one, _max(b, r, ONE), sc)
    trans_here = b.not_(rows_ok)   # columns contiguous: read x as the transpose of xᵀ
    ld_here = b.select(rows_ok, row_ld, col_ld)
    here, other, done = b.block, cx.new_block("matmul.copy"), cx.new_block("matmul.operand")
    b.cbranch(b.or_(rows_ok, cols_ok), done, other)
    b.position_at_end(other)
    copied = copy(cx, x)
    ld_copied = copied.strides[0] if x.rank == 2 else _max(b, c, ONE)
    copied_end = b.block
    b.branch(done)
    b.position_at_end(done)
    data, ld, trans, scratch = (b.phi(t, n) for t, n in ((PTR, "operand"), (INT64, "ld"),
                                                         (INT1, "trans"), (PTR, "scratch")))
    for phi, mine, theirs in ((data, x.data, copied.data), (ld, ld_here, ld_copied),
                              (trans, trans_here, ir.Constant(INT1, 0)),
                              (scratch, ir.Constant(PTR, None), copied.data)):
        phi.add_incoming(mine, here)
        phi.add_incoming(theirs, copied_end)
    return data, ld, trans, scratch


def _matmul(cx: Context, op: Op, xs: list[Value]) -> Value:
    """Every case as one row-major gemm: a vector on the left is a (1, k) matrix, on the right
    a (k, 1) one (the transpose of a one-row matrix)."""
    a, c = xs
    b = cx.b
    k = a.shape[-1]
    cx.fail_with(b.icmp_signed("!=", k, c.shape[0]), Fault.SHAPE,
                 shape_info(ShapeKind.MATMUL, [a, c]))
    a_data, lda, trans_a, scratch_a = blas_operand(cx, a)
    c_data, ldb, trans_b, scratch_c = blas_operand(cx, c)
    if c.rank == 1:    # (1, k) read transposed
        trans_b = b.not_(trans_b)
    m = a.shape[0] if a.rank == 2 else ONE
    n = c.shape[1] if c.rank == 2 else ONE
    dims = ([m] if a.rank == 2 else []) + ([n] if c.rank == 2 else [])
    dtype = a.dtype
    gemm = _int_gemm if dtype is I64 else _float_gemm
    one, zero = _identity(Prim.REDUCE_PROD, dtype), _identity(Prim.REDUCE_SUM, dtype)
    if not dims:   # vector · vector: a scalar, through one element of scratch memory
        with b.goto_entry_block():
            target = b.alloca(MEM_TYPE[dtype], name="dot")
            target.type = PTR
        ldc: ir.Value = ONE
    elif op in getattr(cx, "transposed_products", ()):
        # C is only read transposed: compute Cᵀ = op(B)ᵀ·op(A)ᵀ into a C-contiguous (n, m)
        # buffer and give C as its transposed view, so the transpose is contiguous
        out = allocate(cx, dtype, [n, m])
        gemm(cx, dtype, b.not_(trans_b), b.not_(trans_a), n, m, k, one, c_data, ldb, a_data,
             lda, zero, out.data, _max(b, m, ONE))
        for scratch in (scratch_a, scratch_c):
            release_if_any(cx, scratch)
        return ArrayVal(dtype, out.data, [m, n], [ONE, m])
    else:
        out = allocate(cx, dtype, dims)
        target, ldc = out.data, _max(b, n, ONE)
    gemm(cx, dtype, trans_a, trans_b, m, n, k, one, a_data, lda, c_data, ldb, zero, target, ldc)
    for scratch in (scratch_a, scratch_c):
        release_if_any(cx, scratch)
    return b.load(target, typ=MEM_TYPE[dtype]) if not dims else out


def transposed_products(block: Block) -> set[Op]:
    """The matrix products of ``block`` whose result is used once, by a transpose of its two
    axes (the adjoint's ``transpose(xᵀ @ ct)``): ``_matmul`` computes them transposed."""
    producer = {op.result: op for op in block.ops if op.prim is Prim.MATMUL and
                rank_of(op.args[0].type) == 2 and rank_of(op.args[1].type) == 2}
    uses: dict[object, list[Op | None]] = {}
    for op in block.ops:
        for a in op.args:
            uses.setdefault(a, []).append(op)
        for region in op.regions:
            for v in free_values(region):
                uses.setdefault(v, []).append(None)
    for y in block.yields:
        uses.setdefault(y, []).append(None)
    found = set()
    for value, op in producer.items():
        users = uses.get(value, [])
        if len(users) == 1 and users[0] is not None and users[0].prim is Prim.TRANSPOSE and \
                users[0].attr("perm") in (None, (1, 0)):
            found.add(op)
    return found


def release_if_any(cx: Context, buffer: ir.Value) -> None:
    """Release ``buffer`` unless it is NULL."""
    b = cx.b
    with b.if_then(b.icmp_unsigned("!=", buffer, ir.Constant(PTR, None))):
        b.call(heap_functions(cx.module)["release"], [cx.heap, buffer])


# --------------------------------------------------------------------------- the table

#: Array-only primitives. Every primitive of ``lowering.LOWERING`` also works on arrays
#: elementwise (``lower_elementwise``).
ARRAY_LOWERING: dict[Prim, ArrayLower] = {
    Prim.DIM: _dim,
    Prim.ZEROS_LIKE: _zeros_like,
    Prim.TRANSPOSE: _transpose,
    Prim.EXPAND_DIMS: _expand_dims,
    Prim.BROADCAST_LIKE: _broadcast_like,
    Prim.UNBROADCAST: _unbroadcast,
    Prim.REDUCE_SUM: _reduce,
    Prim.REDUCE_MAX: _reduce,
    Prim.REDUCE_MIN: _reduce,
    Prim.REDUCE_PROD: _reduce,
    Prim.MATMUL: _matmul,
}


def is_view(op: Op) -> bool:
    """Whether ``op``'s result shares its first argument's buffer (owns nothing). The kernel's
    ownership analysis and the lowerings agree through this one predicate."""
    return (op.prim in _VIEWS and is_array(op.args[0].type)) or is_index_view(op)


_VIEWS = frozenset({Prim.TRANSPOSE, Prim.EXPAND_DIMS, Prim.BROADCAST_LIKE})


def lower_array(cx: Context, op: Op, xs: list[Value]) -> Value:
    """The value of an op with an array argument or result."""
    if is_maybe_view(op):
        return _unbroadcast(cx, op, xs, view=True)
    rule = ARRAY_LOWERING.get(op.prim)
    if rule is not None:
        return rule(cx, op, xs)
    if op.prim in LOWERING:
        return lower_elementwise(cx, op, xs)
    raise CodegenError(f"primitive '{op.prim}' has no LLVM lowering for arrays")


from .indexing import INDEXING_LOWERING, is_index_view  # noqa: E402  (it builds on this module)

ARRAY_LOWERING.update(INDEXING_LOWERING)
