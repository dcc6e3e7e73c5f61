"""Arrays in native code: their values, the heap their buffers come from, loop nests, and the
lowering of every array primitive (a table keyed by ``Prim``, as ``lowering.LOWERING``).

An array value in the kernel is an ``ArrayVal``: a data pointer, the shape and the strides as
LLVM values (strides counted in *elements*; the ABI's byte strides are converted at the kernel
boundary, which is exact because the entry point only takes aligned arrays). An op either
allocates a fresh C-contiguous buffer for its result (it then *owns* it) or makes a *view* of
its array argument (``transpose``, ``expand_dims``, ``broadcast_like`` of an array): same
buffer, other shape and strides, owning nothing. Who frees what is decided in ``kernel.py``
(see ``codegen.kernel.Ownership``); this file only allocates.

The heap: every buffer comes from ``sxad.acquire`` (malloc, or calloc for zeros), which also
records it in a per-call registry; ``sxad.release`` frees one and forgets it. The kernel's exit
block calls ``sxad.release_all``, so a fault anywhere (a shape mismatch deep in a loop) leaks
nothing; array results are forgotten (``sxad.disown``) just before a successful return, as their
buffers then belong to the caller. The registry is a stack searched from the top: buffers are
mostly freed in the reverse order of their allocation, so a release finds its buffer in a step
or two.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from llvmlite import ir

from sxad.ir import BOOL, F32, F64, I64, Op, Prim, ScalarType, Type, dtype_of, is_array, \
    rank_of

from . import vmath
from .blas import emit_gemm
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

    @property
    def rank(self) -> int:
        return len(self.shape)


class Context(Protocol):
    """What array lowerings use of the kernel builder (``values``: the IR values lowered so
    far, for fused groups)."""

    values: dict

    b: ir.IRBuilder
    module: ir.Module
    heap: ir.Value
    info: ir.Value

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function: ...

    def fail_if(self, cond: ir.Value, fault: Fault) -> None: ...

    def fail_with(self, cond: ir.Value, fault: Fault, info: Sequence[ir.Value]) -> None: ...

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


def heap_functions(module: ir.Module) -> dict[str, ir.Function]:
    """``sxad.acquire``/``release``/``disown``/``release_all``, emitted once per module."""
    if "sxad.acquire" in module.globals:
        return {n: module.globals[f"sxad.{n}"] for n in ("acquire", "release", "disown",
                                                        "release_all")}
    malloc = _declare(module, "malloc", PTR, [INT64])
    calloc = _declare(module, "calloc", PTR, [INT64, INT64])
    realloc = _declare(module, "realloc", PTR, [PTR, INT64])
    free = _declare(module, "free", ir.VoidType(), [PTR])
    fns = {"acquire": _emit_acquire(module, malloc, calloc, realloc),
           "release": _emit_remove(module, "release", free),
           "disown": _emit_remove(module, "disown", None),
           "release_all": _emit_release_all(module, free)}
    return fns


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, ir.FunctionType(ret, args),
                                                               name)


def _internal(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(ret, args), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    return fn


def _heap_field(b: ir.IRBuilder, heap: ir.Value, k: int) -> ir.Value:
    return b.gep(heap, [ir.Constant(INT32, 0), ir.Constant(INT32, k)], source_etype=HEAP_TYPE)


def _emit_acquire(module: ir.Module, malloc: ir.Function, calloc: ir.Function,
                  realloc: ir.Function) -> ir.Function:
    """``ptr acquire(heap, bytes, zeroed)``: a new buffer recorded in the heap, or NULL."""
    fn = _internal(module, "sxad.acquire", PTR, [PTR, INT64, INT1])
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
    fn = _internal(module, f"sxad.{name}", ir.VoidType(), [PTR, PTR])
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
    fn = _internal(module, "sxad.release_all", ir.VoidType(), [PTR])
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
    """A fresh C-contiguous array of ``shape`` from the heap (zero-filled if ``zeroed``)."""
    b = cx.b
    strides, count = contiguous_strides(b, shape)
    acquire = heap_functions(cx.module)["acquire"]
    nbytes = _checked_bytes(cx, shape, ELEM_SIZE[dtype])
    data = b.call(acquire, [cx.heap, nbytes, ir.Constant(INT1, int(zeroed))], name="buffer")
    cx.fail_if(b.icmp_unsigned("==", data, ir.Constant(PTR, None)), Fault.NO_MEMORY)
    return ArrayVal(dtype, data, list(shape), strides)


def _checked_bytes(cx: Context, shape: Sequence[ir.Value], size: int) -> ir.Value:
    """``size·∏shape`` bytes; a product beyond 2⁶³ (broadcast views can have any lengths) is
    ``Fault.NO_MEMORY`` rather than a wrapped, too small buffer."""
    b = cx.b
    multiply = cx.declare("llvm.umul.with.overflow.i64",
                          ir.LiteralStructType([INT64, INT1]), [INT64, INT64])
    total: ir.Value = _i(size)
    overflow: ir.Value = ir.Constant(INT1, 0)
    for n in shape:
        pair = b.call(multiply, [total, n])
        total = b.extract_value(pair, 0)
        overflow = b.or_(overflow, b.extract_value(pair, 1))
    overflow = b.or_(overflow, b.icmp_signed("<", total, ZERO))
    cx.fail_if(overflow, Fault.NO_MEMORY)
    return total


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
            label: str = "i", vectorize: bool = True) -> list[ir.Value]:
    """``for i in range(n)`` carrying ``init`` through ``body(i, carried) -> next``; returns
    the final carried values. Bottom-tested behind a guard: the shape LLVM vectorizes.
    ``vectorize=False`` tells LLVM to leave the loop as it is (neither vectorized nor
    unrolled): for the strided fallbacks of loops that have a contiguous fast path, whose
    vectorized copies would cost compile time and gain little."""
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
    if not vectorize:
        branch.set_metadata("llvm.loop", _plain_loop(cx.module))
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


def _plain_loop(module: ir.Module) -> ir.MDValue:
    """A fresh ``!llvm.loop`` node (self-referential, as LLVM wants) disabling vectorization
    and unrolling."""
    options = [module.add_metadata([ir.MetaDataString(module, name), ir.Constant(INT1, 0)])
               for name in ("llvm.loop.vectorize.enable",)]
    options.append(module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")]))
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


def elementwise_loop(cx: Context, dtype: ScalarType, rank: int,
                     operands: Sequence[ArrayVal | ir.Value],
                     compute: Callable[[list[ir.Value]], ir.Value]) -> ArrayVal:
    """A new array of the broadcast shape holding ``compute(elements)`` at every index; scalar
    operands are passed as they are. Two versions, chosen at run time:

    rows     along the last axis every operand is contiguous, or statically of length 1
             (``ArrayVal.ones``: a keepdims reduction, ``expand_dims``) and then read once per
             row: softmax's ``x - max(x, axis=1, keepdims=True)``, a bias added to each row.
             When every operand is C-contiguous and none is broadcast, the whole array is one
             row. LLVM vectorizes the row loop.
    strided  anything else: loops over every axis (vectorized only for vectors, to keep compile
             time down: an unusual layout costs speed, not correctness)."""
    b = cx.b
    shape, strides = broadcast(cx, operands, rank)
    out = allocate(cx, dtype, shape)
    arrays = [x for x in operands if isinstance(x, ArrayVal)]
    hoisted = [x.rank == 0 or x.rank - 1 in x.ones for x in arrays]

    def gather(load_one: Callable[[int, ArrayVal], ir.Value]) -> list[ir.Value]:
        values, k = [], 0
        for x in operands:
            if isinstance(x, ArrayVal):
                values.append(load_one(k, x))
                k += 1
            else:
                values.append(x)
        return values

    general, done = cx.new_block("strided"), cx.new_block("elementwise.end")
    if rank == 0:
        b.branch(general)
    else:
        inner_ok: ir.Value = b.icmp_signed("==", shape[-1], ONE)   # one column: any strides
        contiguous: ir.Value = ir.Constant(INT1, 1)
        for k, x in enumerate(arrays):
            if not hoisted[k]:
                contiguous = b.and_(contiguous, b.icmp_signed("==", strides[k][-1], ONE))
        outer, inner = list(shape[:-1]), shape[-1]
        if rank >= 2 and not any(hoisted):    # all C-contiguous: the whole array is one row
            flat = all_contiguous(cx, shape, strides)
            outer = [b.select(flat, ONE, n) for n in outer]
            inner = b.select(flat, contiguous_strides(b, shape)[1], inner)
        rows_body = cx.new_block("rows.body")
        b.cbranch(b.or_(inner_ok, contiguous), rows_body, general)
        b.position_at_end(rows_body)

        def row(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            start = [*index, ZERO]
            fixed = {k: load(b, x.dtype, element_pointer(b, x, start, strides[k]))
                     for k, x in enumerate(arrays) if hoisted[k]}
            bases = {k: element_pointer(b, x, start, strides[k])
                     for k, x in enumerate(arrays) if not hoisted[k]}
            target = element_pointer(b, out, start)

            def body(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                values = gather(lambda k, x: fixed[k] if hoisted[k] else load(
                    b, x.dtype, b.gep(bases[k], [i], source_etype=MEM_TYPE[x.dtype])))
                store(b, dtype, compute(values),
                      b.gep(target, [i], source_etype=MEM_TYPE[dtype]))
                return []
            counted(cx, inner, [], body, label="e")
            return []
        nest(cx, outer, [], row)
        b.branch(done)
    b.position_at_end(general)

    def strided_body(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        values = gather(lambda k, x: load(b, x.dtype, element_pointer(b, x, index, strides[k])))
        store(b, dtype, compute(values), element_pointer(b, out, index))
        return []
    nest(cx, shape, [], strided_body, vectorize=rank <= 1)
    b.branch(done)
    b.position_at_end(done)
    out.ones = _common_ones(operands, rank)
    return out


def _common_ones(operands: Sequence[ArrayVal | ir.Value], rank: int) -> frozenset[int]:
    """The result axes of length 1 in every operand that has them (so in the result)."""
    arrays = [x for x in operands if isinstance(x, ArrayVal)]
    return frozenset(k for k in range(rank) if all(
        k - (rank - x.rank) in x.ones for x in arrays if k - (rank - x.rank) >= 0))


def write_into(cx: Context, target: ArrayVal, value: ArrayVal) -> None:
    """Copy ``value`` into ``target``'s buffer (an argument updated in place); their shapes
    must be equal (else ``Fault.SHAPE``). ``value`` is a fresh buffer, so they never overlap."""
    b = cx.b
    bad: ir.Value = ir.Constant(INT1, 0)
    for n, m in zip(target.shape, value.shape):
        bad = b.or_(bad, b.icmp_signed("!=", n, m))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.BROADCAST_TO, [value, target]))

    def body(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        store(b, target.dtype, load(b, value.dtype, element_pointer(b, value, index)),
              element_pointer(b, target, index))
        return []
    nest(cx, target.shape, [], body)


def copy(cx: Context, array: ArrayVal) -> ArrayVal:
    """A fresh C-contiguous copy (what escapes a block when the value is not the block's to
    give away)."""
    return elementwise_loop(cx, array.dtype, array.rank, [array], lambda xs: xs[0])


# --------------------------------------------------------------------------- the lowerings

Value = ArrayVal | ir.Value
ArrayLower = Callable[[Context, Op, list[Value]], Value]


def lower_elementwise(cx: Context, op: Op, xs: list[Value]) -> Value:
    """Any scalar primitive on arrays: one loop applying its scalar lowering."""
    result = op.result.type
    return elementwise_loop(cx, dtype_of(result), rank_of(result), xs,
                            lambda values: lower_in_loop(cx, op, values))


def lower_group(cx: Context, ops: Sequence[Op]) -> ArrayVal:
    """A fused group (``codegen.fusion``): one loop whose body evaluates every op of ``ops``
    on scalars; inputs are the values the group reads but does not make."""
    made = {r for op in ops for r in op.results}
    inputs: list[object] = []
    for op in ops:
        for a in op.args:
            if a not in made and a not in inputs:
                inputs.append(a)
    operands = [cx.values[a] for a in inputs]

    def compute(values: list[ir.Value]) -> ir.Value:
        env = dict(zip(inputs, values))
        for op in ops:
            env[op.result] = lower_in_loop(cx, op, [env[a] for a in op.args])
        return env[ops[-1].result]
    result = ops[-1].result.type
    return elementwise_loop(cx, dtype_of(result), rank_of(result), operands, compute)


def lower_in_loop(cx: Context, op: Op, values: list[ir.Value]) -> ir.Value:
    """A scalar op inside an array loop: ``vmath``'s vectorizable form when it has one."""
    found = vmath.lower(cx, op.prim, values)
    return found if found is not None else lower_scalar(cx, op, values)




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
                    frozenset(k for k, p in enumerate(perm) if p in x.ones))


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
        return elementwise_loop(cx, x_type(op), rank, [x, like], lambda v: v[0])
    b = cx.b
    lead = rank - x.rank
    bad: ir.Value = ir.Constant(INT1, 0)
    strides = [ZERO] * lead
    for n, a, s in zip(like.shape[lead:], x.shape, x.strides):
        a_is_one = b.icmp_signed("==", a, ONE)
        bad = b.or_(bad, b.and_(b.not_(a_is_one), b.icmp_signed("!=", a, n)))
        strides.append(b.select(a_is_one, ZERO, s))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.BROADCAST_TO, [x, like]))
    return ArrayVal(x.dtype, x.data, list(like.shape), strides, like.ones)


def _unbroadcast(cx: Context, op: Op, xs: list[Value]) -> Value:
    """``ct`` summed over the axes where ``like`` was broadcast: every element of ``ct`` is
    added into the element of the result it was broadcast from."""
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
    out = allocate(cx, dtype, like.shape, zeroed=True)
    out.ones = like.ones
    target = [ZERO] * lead + [b.select(b.icmp_signed("==", n, ONE), ZERO, s)
                              for n, s in zip(like.shape, out.strides)]
    # along the last axis ct's elements either go to distinct elements of out (kept) or all to
    # one (summed: like's last length is 1): two vectorizable row loops, chosen at run time
    summed = b.icmp_signed("==", target[-1], ZERO)
    keep_rows, sum_rows, done = (cx.new_block(n) for n in ("unbroadcast.keep",
                                                          "unbroadcast.sum", "unbroadcast.end"))
    b.cbranch(summed, sum_rows, keep_rows)
    b.position_at_end(keep_rows)
    accumulate(cx, Prim.REDUCE_SUM, ct, out, target)
    b.branch(done)
    b.position_at_end(sum_rows)

    def row(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        start = [*index, ZERO]
        total = _row_total(cx, Prim.REDUCE_SUM, ct, start)
        where = element_pointer(b, out, start, target)
        store(b, dtype, _combine(cx, Prim.REDUCE_SUM, load(b, dtype, where), total), where)
        return []
    nest(cx, ct.shape[:-1], [], row)
    b.branch(done)
    b.position_at_end(done)
    return out


def _row_total(cx: Context, prim: Prim, x: ArrayVal, start: list[ir.Value]) -> ir.Value:
    """The reduction of ``x`` along its last axis from index ``start`` (the row's first)."""
    b = cx.b
    base = element_pointer(b, x, start)
    stride = x.strides[-1]

    def body(j: ir.Value, carried: list[ir.Value]) -> list[ir.Value]:
        at = b.gep(base, [b.mul(j, stride)], source_etype=MEM_TYPE[x.dtype])
        return [_combine(cx, prim, carried[0], load(b, x.dtype, at))]
    return counted(cx, x.shape[-1], [_identity(prim, x.dtype)], body, label="r")[0]


def accumulate(cx: Context, prim: Prim, x: ArrayVal, out: ArrayVal,
               target: Sequence[ir.Value]) -> None:
    """``out[map(i)] = combine(out[map(i)], x[i])`` for every index ``i`` of ``x``, where
    ``target`` are out's strides over x's axes (0 along the axes summed away). Row by row: when
    x's and out's last strides are 1, the row loop is a plain vectorizable ``out_row ⊕= x_row``;
    otherwise a loop over every axis."""
    b = cx.b
    fast, slow, done = (cx.new_block(n) for n in ("rows.unit", "rows.strided", "rows.end"))
    unit = b.and_(b.icmp_signed("==", x.strides[-1], ONE), b.icmp_signed("==", target[-1], ONE))
    b.cbranch(b.or_(unit, b.icmp_signed("==", x.shape[-1], ONE)), fast, slow)
    b.position_at_end(fast)
    etype = MEM_TYPE[x.dtype]

    def row(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        start = [*index, ZERO]
        source = element_pointer(b, x, start)
        sink = element_pointer(b, out, start, target)

        def body(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            at = b.gep(sink, [j], source_etype=etype)
            value = load(b, x.dtype, b.gep(source, [j], source_etype=etype))
            store(b, x.dtype, _combine(cx, prim, load(b, x.dtype, at), value), at)
            return []
        counted(cx, x.shape[-1], [], body, label="a")
        return []
    nest(cx, x.shape[:-1], [], row)
    b.branch(done)
    b.position_at_end(slow)

    def each(index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        at = element_pointer(b, out, index, target)
        value = load(b, x.dtype, element_pointer(b, x, index))
        store(b, x.dtype, _combine(cx, prim, load(b, x.dtype, at), value), at)
        return []
    nest(cx, x.shape, [], each, vectorize=False)
    b.branch(done)
    b.position_at_end(done)


# reductions

_IDENTITY = {Prim.REDUCE_SUM: (0.0, 0), Prim.REDUCE_PROD: (1.0, 1),
             Prim.REDUCE_MAX: (float("-inf"), -(2 ** 63)),
             Prim.REDUCE_MIN: (float("inf"), 2 ** 63 - 1)}


def _identity(prim: Prim, dtype: ScalarType) -> ir.Constant:
    real, integer = _IDENTITY[prim]
    return ir.Constant(LL_TYPE[dtype], integer if dtype is I64 else real)


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


def _fill(cx: Context, out: ArrayVal, value: ir.Value) -> None:
    """Every element of the fresh (contiguous) ``out`` set to ``value``."""
    b = cx.b

    def body(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        store(b, out.dtype, value, b.gep(out.data, [i], source_etype=MEM_TYPE[out.dtype]))
        return []
    counted(cx, contiguous_strides(b, out.shape)[1], [], body, label="fill")


def _reduce_all(cx: Context, x: ArrayVal, prim: Prim) -> ir.Value:
    _check_not_empty(cx, prim, x.shape)
    b = cx.b

    def body(index: list[ir.Value], carried: list[ir.Value]) -> list[ir.Value]:
        return [_combine(cx, prim, carried[0], load(b, x.dtype, element_pointer(b, x, index)))]
    return nest(cx, x.shape, [_identity(prim, x.dtype)], body)[0]


def _reduce(cx: Context, op: Op, xs: list[Value]) -> Value:
    """The kept axes outside, the reduced ones inside with the accumulator in a register."""
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
    if x.rank - 1 not in axes:   # the last axis kept: add whole rows of x into rows of out
        target, kept_strides = [], iter(out_strides)
        for k in range(x.rank):
            target.append(ZERO if k in axes else next(kept_strides))
        _fill(cx, out, _identity(prim, x.dtype))
        accumulate(cx, prim, x, out, target)
        return out

    def outer(kept_index: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        def inner(reduced_index: list[ir.Value], carried: list[ir.Value]) -> list[ir.Value]:
            full = [ZERO] * x.rank
            for k, i in zip(kept, kept_index):
                full[k] = i
            for k, i in zip(axes, reduced_index):
                full[k] = i
            value = load(b, x.dtype, element_pointer(b, x, full))
            return [_combine(cx, prim, carried[0], value)]
        (total,) = nest(cx, [x.shape[k] for k in axes], [_identity(prim, x.dtype)], inner)
        store(b, x.dtype, total, element_pointer(b, out, kept_index, out_strides))
        return []
    nest(cx, [x.shape[k] for k in kept], [], outer)
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


_float_gemm = emit_gemm   # numpy's OpenBLAS, or codegen/blas.py's blocked LLVM kernel


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _blas_operand(cx: Context, x: ArrayVal) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value]:
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
    a_data, lda, trans_a, scratch_a = _blas_operand(cx, a)
    c_data, ldb, trans_b, scratch_c = _blas_operand(cx, c)
    if c.rank == 1:    # (1, k) read transposed
        trans_b = b.not_(trans_b)
    m = a.shape[0] if a.rank == 2 else ONE
    n = c.shape[1] if c.rank == 2 else ONE
    dims = ([m] if a.rank == 2 else []) + ([n] if c.rank == 2 else [])
    dtype = a.dtype
    gemm = _loop_gemm if dtype is I64 else _float_gemm
    one, zero = _identity(Prim.REDUCE_PROD, dtype), _identity(Prim.REDUCE_SUM, dtype)
    if not dims:   # vector · vector: a scalar, through one element of scratch memory
        with b.goto_entry_block():
            target = b.alloca(MEM_TYPE[dtype], name="dot")
            target.type = PTR
        ldc: ir.Value = ONE
    else:
        out = allocate(cx, dtype, dims)
        target, ldc = out.data, _max(b, n, ONE)
    gemm(cx, dtype, trans_a, trans_b, m, n, k, one, a_data, lda, c_data, ldb, zero, target, ldc)
    for scratch in (scratch_a, scratch_c):
        release_if_any(cx, scratch)
    return b.load(target, typ=MEM_TYPE[dtype]) if not dims else out


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
    rule = ARRAY_LOWERING.get(op.prim)
    if rule is not None:
        return rule(cx, op, xs)
    if op.prim in LOWERING:
        return lower_elementwise(cx, op, xs)
    raise CodegenError(f"primitive '{op.prim}' has no LLVM lowering for arrays")


from .indexing import INDEXING_LOWERING, is_index_view  # noqa: E402  (it builds on this module)

ARRAY_LOWERING.update(INDEXING_LOWERING)
