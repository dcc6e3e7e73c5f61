"""Lowering a ``Func`` to a plain C-ABI LLVM function, the *kernel*:

    i32 kernel(<params>, ptr out0, ptr out1, …[, ptr info])

Scalars come in by value (f64 as ``double``, f32 as ``float``, i64 as ``int64_t``, bool as
``uint8_t`` 0/1) and each result is stored through its out-pointer (same types). An array comes
in as a pointer to its descriptor ``{ptr data; int64_t shape[rank]; int64_t strides[rank]}``
(strides in bytes, multiples of the element size; any strides, so views are not copied), and an
array result is such a descriptor that the kernel fills: a C-contiguous buffer from ``malloc``
that the caller owns afterwards (and frees with ``free``). A kernel of a program with arrays
takes a last argument, ``int64_t info[faults.INFO_SLOTS]``, which it fills when it fails with a
fault of ``faults.DESCRIBED`` (shapes, an index). The return value is a ``Fault`` code, 0 when
all went well; results are written only then. The kernel touches no Python state, so any C
caller can use it.

Structured control flow becomes basic blocks with phis. Every fault branches to one exit block,
which frees the tape (if the function has one) and every array buffer still held (see
``codegen.ownership`` for who frees what on the normal paths), and returns the code, so no path
leaks memory.
"""
from __future__ import annotations

from typing import Callable, Sequence

from llvmlite import ir

from sxad.ir import BOOL, F32, F64, I64, ArrayType, Block, Func, Op, Prim, Type, Value, \
    is_array, name_all

from . import arrays, updates
from .arrays import ArrayVal
from .faults import INFO_SLOTS, Fault
from .folding import FoldingBuilder
from .fusion import Groups, find_groups
from .lowering import DOUBLE, FLOAT, INT1, INT64, LL_TYPE, lower_scalar
from .ownership import Plan, plan
from .runtime import TAPE_LIMIT_SYMBOL

INT8 = ir.IntType(8)
INT32 = ir.IntType(32)
PTR = ir.PointerType()
#: How scalars cross the C ABI (bool as a byte, as C's ``_Bool``/``uint8_t``).
ABI_TYPE: dict[Type, ir.Type] = {F64: DOUBLE, F32: FLOAT, I64: INT64, BOOL: INT8}
TAPE_INITIAL_SLOTS = 64


def abi_type(type_: Type) -> ir.Type:
    """How a value of ``type_`` crosses the C ABI: an array as a pointer to its descriptor."""
    return PTR if is_array(type_) else ABI_TYPE[type_]


def branch_weights(module: ir.Module, taken: int, not_taken: int) -> ir.MDValue:
    """``!prof`` metadata for a conditional branch (built once: add_metadata is slow)."""
    return module.add_metadata([ir.MetaDataString(module, "branch_weights"),
                                ir.Constant(INT32, taken), ir.Constant(INT32, not_taken)])


RARE = 1 << 20   # weight of the common side of a branch whose other side is a fault


def kernel_type(func: Func) -> ir.FunctionType:
    params = [abi_type(p.type) for p in func.params] + [PTR] * len(func.results)
    return ir.FunctionType(INT32, params + [PTR] * uses_arrays(func))


def writes_in_place(func: Func) -> bool:
    """Whether the kernel writes the final values of the arguments ``func`` updates
    (``Func.mutated``, all arrays) into those arguments' buffers."""
    return bool(func.mutated) and all(is_array(func.params[p].type) for p in func.mutated)


def stack(b: ir.IRBuilder, type_: ir.Type, name: str) -> ir.Value:
    """An alloca of ``type_`` as an opaque pointer (llvmlite would type it ``type_*``)."""
    slot = b.alloca(type_, name=name)
    slot.type = PTR
    return slot


def uses_arrays(func: Func) -> bool:
    """Whether any value of ``func`` is an array (its kernel then takes the ``info`` argument)."""
    def arrays_in(block: Block) -> bool:
        return any(is_array(p.type) for p in block.params) or any(
            any(is_array(v.type) for v in (*op.args, *op.results)) or
            any(arrays_in(r) for r in op.regions) for op in block.ops)
    return arrays_in(func.body)


def has_tape(func: Func) -> bool:
    return any(op.prim in (Prim.PUSH, Prim.POP) for op in func.body.walk())


def has_loops(func: Func) -> bool:
    return any(op.prim in (Prim.FOR, Prim.WHILE) for op in func.body.walk())


def straight_line(func: Func) -> bool:
    """Whether the kernel of ``func`` is compiled without optimization: an array program
    without loops, whose own code runs once per call (unboxing, shape checks, allocations,
    calls of BLAS, of the runtime library and of its row loops — the outlined functions that
    do the work, optimized as always: ``arrays.RowLoop``). Optimizing it would cost more
    compile time than it could ever save."""
    return uses_arrays(func) and not has_loops(func)


def declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type],
            var_arg: bool = False) -> ir.Function:
    """The function ``name`` of ``module``, declared on first use."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret, args, var_arg=var_arg), name)


def declare_global(module: ir.Module, name: str, type_: ir.Type) -> ir.GlobalVariable:
    """The external global ``name`` of ``module`` (defined by ``runtime``), declared on first use."""
    existing = module.globals.get(name)
    return existing if existing is not None else ir.GlobalVariable(module, type_, name)


def emit_kernel(module: ir.Module, func: Func, symbol: str,
                bounds_check: bool = True) -> ir.Function:
    """The kernel of ``func``; without ``bounds_check`` indices are not checked (see
    ``indexing.bounds_checked``)."""
    return _KernelBuilder(module, func, symbol, bounds_check).fn


class _KernelBuilder:
    """Walks the function's blocks in program order, emitting into one LLVM function."""

    def __init__(self, module: ir.Module, func: Func, symbol: str,
                 bounds_check: bool = True) -> None:
        self.module = module
        self.bounds_check = bounds_check
        self.fn = ir.Function(module, kernel_type(func), symbol)
        self.fn.attributes.add("nounwind")
        if straight_line(func):
            self.fn.attributes.add("noinline")
            self.fn.attributes.add("optnone")
        self.names = name_all(func)
        self.b = FoldingBuilder(self.fn.append_basic_block("entry"))
        self.exit = self.fn.append_basic_block("exit")
        self.unlikely = branch_weights(module, 1, RARE)
        self.exits: list[tuple[Fault | ir.Value, ir.Block]] = []
        self.values: dict[Value, ir.Value | ArrayVal] = {}
        self.moves: set[int] = set()   # argument positions the current op may move (ownership)
        #: the current block's products computed transposed (``arrays.transposed_products``)
        self.transposed_products: set[Op] = set()
        self.with_arrays = uses_arrays(func)
        if self.with_arrays:
            self.info = self.fn.args[-1]
            self.info.name = "info"
            self.heap = stack(self.b, arrays.HEAP_TYPE, "heap")
            self.b.store(ir.Constant(arrays.HEAP_TYPE, [None, 0, 0]), self.heap)
        params = self.unpack_params(func)
        self.params = params
        self.tape = _Tape(self) if has_tape(func) else None
        #: products that update an argument (``codegen.updates``), run at the write-back
        self.updates = updates.find_updates(func) if self.with_arrays and \
            writes_in_place(func) else {}
        self.store_results(func, self.block(func.body, params, top=True))
        self.leave(Fault.NONE)
        self.finish_exit()

    def unpack_params(self, func: Func) -> list[ir.Value | ArrayVal]:
        """The parameters as IR values (a bool arrives as a byte, an array as a descriptor)."""
        values: list[ir.Value | ArrayVal] = []
        for param, arg in zip(func.params, self.fn.args):
            arg.name = self.names[param]
            if isinstance(param.type, ArrayType):
                arg.add_attribute("noalias")
                values.append(arrays.load_descriptor(self.b, arg, param.type.dtype,
                                                     param.type.rank))
                continue
            zero = ir.Constant(INT8, 0)
            values.append(self.b.icmp_unsigned("!=", arg, zero) if param.type is BOOL else arg)
        return values

    def store_results(self, func: Func, results: list[ir.Value | ArrayVal | None]) -> None:
        """Each result through its out-pointer; array buffers (all owned and contiguous: the
        body's yields are moved or copied) pass to the caller. The final value of an argument
        the function updates in place (``Func.mutated``) is written into the argument's own
        buffer instead (its out-pointer is left alone): all shapes are checked, then the
        updates run (``codegen.updates``), then the other values are copied, so that a fault
        leaves every argument as it was."""
        outs = self.fn.args[len(func.params):len(func.params) + len(func.results)]
        in_place = dict(zip(range(len(func.results) - len(func.mutated), len(func.results)),
                            func.mutated)) if writes_in_place(func) else {}
        copied = [(self.params[in_place[k]], results[k]) for k in in_place
                  if func.results[k] not in self.updates]
        for target, value in copied:
            arrays.check_same_shape(self, target, value)
        if self.updates:
            updates.lower_updates(self, list(self.updates.values()), [t for t, _ in copied])
        for target, value in copied:
            arrays.copy_into(self, target, value)
            arrays.release(self, value)
        for k, (value, ir_value, out) in enumerate(zip(func.results, results, outs)):
            out.name = "out." + self.names[value]
            out.add_attribute("noalias")
            if k in in_place:
                continue
            if isinstance(ir_value, ArrayVal):
                arrays.store_descriptor(self.b, out, ir_value)
                arrays.disown(self, ir_value)
                continue
            stored = self.b.zext(ir_value, INT8) if value.type is BOOL else ir_value
            self.b.store(stored, out)

    # -- the Context of lowering rules

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return declare(self.module, name, ret, args)

    def fail_if(self, cond: ir.Value, fault: Fault) -> None:
        """Leave the kernel with ``fault`` when ``cond`` holds; continue in a new block."""
        ok = self.fn.append_basic_block(f"no.{fault.name.lower()}")
        self.b.cbranch(cond, self.exit, ok).set_metadata("prof", self.unlikely)
        self.exits.append((fault, self.b.block))
        self.b.position_at_end(ok)

    def fail_with(self, cond: ir.Value, fault: Fault, info: Sequence[ir.Value]) -> None:
        """``fail_if`` that first writes ``info`` (i64 values) to the kernel's fault info."""
        ok, failing = (self.fn.append_basic_block(n) for n in (
            f"no.{fault.name.lower()}", f"fail.{fault.name.lower()}"))
        self.b.cbranch(cond, failing, ok).set_metadata("prof", self.unlikely)
        tail = ir.IRBuilder(failing)
        for k, value in enumerate(info[:INFO_SLOTS]):
            tail.store(value, tail.gep(self.info, [ir.Constant(INT64, k)], source_etype=INT64))
        tail.branch(self.exit)
        self.exits.append((fault, failing))
        self.b.position_at_end(ok)

    def fail_code(self, code: ir.Value) -> None:
        """Leave the kernel with the fault ``code`` (an i32 from an outlined loop that already
        wrote the fault info) unless it is 0."""
        ok = self.fn.append_basic_block("no.fault")
        self.b.cbranch(self.b.icmp_unsigned("!=", code, ir.Constant(INT32, 0)), self.exit,
                       ok).set_metadata("prof", self.unlikely)
        self.exits.append((code, self.b.block))
        self.b.position_at_end(ok)

    def leave(self, fault: Fault) -> None:
        self.b.branch(self.exit)
        self.exits.append((fault, self.b.block))

    def finish_exit(self) -> None:
        self.b.position_at_end(self.exit)
        code = self.b.phi(INT32, "fault")
        for fault, block in self.exits:
            code.add_incoming(fault if isinstance(fault, ir.Value) else
                              ir.Constant(INT32, int(fault)), block)
        if self.tape is not None:
            self.tape.free()
        if self.with_arrays:
            self.b.call(arrays.heap_functions(self.module)["release_all"], [self.heap])
        self.b.ret(code)

    # -- blocks and ops

    def block(self, block: Block, args: Sequence[ir.Value | ArrayVal],
              owned_params: tuple[Value, ...] = (), top: bool = False
              ) -> list[ir.Value | ArrayVal | None]:
        """Lower ``block``; its yields, arrays moved or copied so that the receiver owns them.
        In the function's body (``top``), the ops of ``self.updates`` are left for
        ``store_results`` (their yields are None here)."""
        for param, arg in zip(block.params, args):
            self.values[param] = arg
        groups = find_groups(block) if self.with_arrays else Groups()
        if top and self.updates:
            self.updates = updates.unfused(groups, self.updates)
        deferred = updates.deferred_ops(self.updates) if top else frozenset()
        outer_products = self.transposed_products
        self.transposed_products = arrays.transposed_products(block) if self.with_arrays \
            else set()
        buffers = plan(block, owned_params, groups, deferred) if self.with_arrays else Plan()
        self.free(buffers, -1)
        for i, op in enumerate(block.ops):
            if op in groups.root_of or op in deferred:
                continue   # computed inside its group's loop, or at the write-back
            self.moves = {pos for at, pos in buffers.moves if at == i}
            if op in groups.members:
                self.values[op.result] = arrays.lower_group(self, groups.members[op])
                self.free(buffers, i)
                continue
            results = _STRUCTURED.get(op.prim, _KernelBuilder.scalar)(self, op)
            for value, ir_value in zip(op.results, results):
                self.values[value] = ir_value
            self.free(buffers, i)
        yields = [None if top and v in self.updates else
                  self.escaping(self.values[v], pos in buffers.moved_yields)
                  for pos, v in enumerate(block.yields)]
        self.free(buffers, len(block.ops))
        self.transposed_products = outer_products
        return yields

    def free(self, buffers: Plan, at: int) -> None:
        for value in buffers.frees.get(at, ()):
            arrays.release(self, self.values[value])
        for value, source in buffers.maybe.get(at, ()):
            mine, theirs = self.values[value].data, self.values[source].data
            with self.b.if_then(self.b.icmp_unsigned("!=", mine, theirs)):
                arrays.release(self, self.values[value])

    def escaping(self, value: ir.Value | ArrayVal, moved: bool) -> ir.Value | ArrayVal:
        """What leaves a block: a moved buffer as it is, any other array as a fresh copy."""
        if isinstance(value, ArrayVal) and not moved:
            return arrays.copy(self, value)
        return value

    def args(self, op: Op) -> list[ir.Value | ArrayVal]:
        return [self.values[a] for a in op.args]

    def scalar(self, op: Op) -> list[ir.Value | ArrayVal]:
        xs = self.args(op)
        if any(isinstance(x, ArrayVal) for x in xs) or is_array(op.result.type):
            return [arrays.lower_array(self, op, xs)]
        result = lower_scalar(self, op, xs)
        if isinstance(result, ir.Instruction) and not result.name:
            result.name = self.names[op.result]
        return [result]

    def new_block(self, label: str) -> ir.Block:
        return self.fn.append_basic_block(label)

    def phis(self, values: Sequence[Value]) -> list[ir.PhiInstr | ArrayVal]:
        """A phi per value; an array's is an ``ArrayVal`` of phis (data, shape, strides)."""
        phis: list[ir.PhiInstr | ArrayVal] = []
        for v in values:
            name = self.names[v]
            if not isinstance(v.type, ArrayType):
                phis.append(self.b.phi(LL_TYPE[v.type], name))
                continue
            rank = v.type.rank
            phis.append(ArrayVal(v.type.dtype, self.b.phi(PTR, name),
                                 [self.b.phi(INT64, f"{name}.n{k}") for k in range(rank)],
                                 [self.b.phi(INT64, f"{name}.s{k}") for k in range(rank)]))
        return phis

    def escaping_args(self, op: Op) -> list[ir.Value | ArrayVal]:
        """A loop's arguments, its initial arrays moved into it or copied."""
        moves = self.moves
        return [self.escaping(self.values[a], pos in moves) for pos, a in enumerate(op.args)]

    def if_(self, op: Op) -> list[ir.Value]:
        then, other = op.regions
        then_bb, else_bb, merge = (self.new_block(f"if.{n}") for n in ("then", "else", "end"))
        self.b.cbranch(self.values[op.args[0]], then_bb, else_bb)
        arms = []
        for region, start in ((then, then_bb), (other, else_bb)):
            self.b.position_at_end(start)
            yields = self.block(region, ())
            arms.append((yields, self.b.block))
            self.b.branch(merge)
        self.b.position_at_end(merge)
        results = self.phis(op.results)
        for yields, end in arms:
            for phi, value in zip(results, yields):
                incoming(phi, value, end)
        return results

    def for_(self, op: Op) -> list[ir.Value]:
        """range(lo, hi, step) as a counted loop: k = 0 … trips-1, i = start + k·stride."""
        b = self.b
        lo, hi, step, *init = self.escaping_args(op)
        self.fail_if(b.icmp_signed("==", step, ir.Constant(INT64, 0)), Fault.ZERO_STEP)
        trips = self.trip_count(lo, hi, step)
        start, stride = lo, step
        if op.attr("reverse"):  # the last index first: lo + (trips - 1)·step
            start = b.add(lo, b.mul(b.sub(trips, ir.Constant(INT64, 1)), step), "last")
            stride = b.neg(step)
        before = b.block
        head, body, done = (self.new_block(f"for.{n}") for n in ("head", "body", "end"))
        b.branch(head)
        b.position_at_end(head)
        count = b.phi(INT64, "k")
        region = op.regions[0]
        index = b.phi(INT64, self.names[region.params[0]])
        carried = self.phis(op.results)
        b.cbranch(b.icmp_unsigned("<", count, trips), body, done)
        b.position_at_end(body)
        yields = self.block(region, [index, *carried], region.params[1:])
        next_count, next_index = b.add(count, ir.Constant(INT64, 1)), b.add(index, stride)
        b.branch(head)
        for phi, first, then in zip([count, index, *carried], [ir.Constant(INT64, 0), start, *init],
                                    [next_count, next_index, *yields]):
            incoming(phi, first, before)
            incoming(phi, then, b.block)
        b.position_at_end(done)
        return carried

    def trip_count(self, lo: ir.Value, hi: ir.Value, step: ir.Value) -> ir.Value:
        """len(range(lo, hi, step)) for step != 0, in unsigned arithmetic so that no span
        overflows (range(-2**63, 2**63 - 1) has 2**64 - 1 indices)."""
        b, zero, one = self.b, ir.Constant(INT64, 0), ir.Constant(INT64, 1)
        up = b.icmp_signed(">", step, zero)
        nonempty = b.select(up, b.icmp_signed("<", lo, hi), b.icmp_signed(">", lo, hi))
        span = b.select(up, b.sub(hi, lo), b.sub(lo, hi))
        stride = b.select(up, step, b.neg(step))
        trips = b.add(b.udiv(b.sub(span, one), stride), one)
        return b.select(nonempty, trips, zero, "trips")

    def while_(self, op: Op) -> list[ir.Value]:
        b = self.b
        cond, body = op.regions
        init = self.escaping_args(op)
        before = b.block
        head, body_bb, done = (self.new_block(f"while.{n}") for n in ("head", "body", "end"))
        b.branch(head)
        b.position_at_end(head)
        carried = self.phis(op.results)
        (go,) = self.block(cond, carried)
        b.cbranch(go, body_bb, done)
        b.position_at_end(body_bb)
        yields = self.block(body, carried, body.params)
        b.branch(head)
        for phi, first, then in zip(carried, init, yields):
            incoming(phi, first, before)
            incoming(phi, then, b.block)
        b.position_at_end(done)
        return carried

    def push(self, op: Op) -> list[ir.Value]:
        """A scalar in one slot; an array as its data pointer, shape and strides, its buffer
        moved to the tape (or a copy of it: see ``codegen.ownership``)."""
        assert self.tape is not None
        value = self.escaping(self.values[op.args[0]], 0 in self.moves)
        if not isinstance(value, ArrayVal):
            self.tape.push(value, op.args[0].type)
            return []
        self.tape.account(self.array_bytes(value), growing=True)
        for slot in [self.b.ptrtoint(value.data, INT64), *value.shape, *value.strides]:
            self.tape.push(slot, I64)
        return []

    def array_bytes(self, value: ArrayVal) -> ir.Value:
        count = arrays.contiguous_strides(self.b, value.shape)[1]
        return self.b.mul(count, ir.Constant(INT64, arrays.ELEM_SIZE[value.dtype]))

    def pop(self, op: Op) -> list[ir.Value | ArrayVal]:
        assert self.tape is not None
        type_ = op.result.type
        if not isinstance(type_, ArrayType):
            return [self.tape.pop(type_)]
        rank = type_.rank
        slots = [self.tape.pop(I64) for _ in range(1 + 2 * rank)][::-1]
        data = self.b.inttoptr(slots[0], PTR)
        value = ArrayVal(type_.dtype, data, slots[1:1 + rank], slots[1 + rank:])
        self.tape.account(self.b.neg(self.array_bytes(value)), growing=False)
        return [value]


def incoming(phi: ir.PhiInstr | ArrayVal, value: ir.Value | ArrayVal, block: ir.Block) -> None:
    """``phi.add_incoming``, component by component for an array."""
    if not isinstance(phi, ArrayVal):
        phi.add_incoming(value, block)
        return
    assert isinstance(value, ArrayVal)
    for p, v in zip([phi.data, *phi.shape, *phi.strides],
                    [value.data, *value.shape, *value.strides]):
        p.add_incoming(v, block)


_STRUCTURED: dict[Prim, Callable[[_KernelBuilder, Op], list[ir.Value]]] = {
    Prim.IF: _KernelBuilder.if_, Prim.FOR: _KernelBuilder.for_, Prim.WHILE: _KernelBuilder.while_,
    Prim.PUSH: _KernelBuilder.push, Prim.POP: _KernelBuilder.pop,
}


class _Tape:
    """A growable stack of 8-byte slots on the C heap: malloc at entry, realloc doubling when
    full, free in the kernel's exit block. Its state lives in allocas that LLVM promotes.

    Growth stops at the tape limit (the global ``runtime.TAPE_LIMIT_SYMBOL``, in bytes, read
    when growing): the kernel then fails with ``Fault.TAPE_LIMIT`` instead of taking all memory.
    The arrays on the tape (held by their slots' data pointers) count against the same limit.
    """

    def __init__(self, kb: _KernelBuilder) -> None:
        self.kb = kb
        b, module = kb.b, kb.module
        self.malloc = declare(module, "malloc", PTR, [INT64])
        self.realloc = declare(module, "realloc", PTR, [PTR, INT64])
        self.free_fn = declare(module, "free", ir.VoidType(), [PTR])
        self.base, self.size, self.capacity = (b.alloca(t, name=n) for t, n in (
            (PTR, "tape.base"), (INT64, "tape.size"), (INT64, "tape.capacity")))
        base = b.call(self.malloc, [ir.Constant(INT64, 8 * TAPE_INITIAL_SLOTS)])
        b.store(base, self.base)
        b.store(ir.Constant(INT64, 0), self.size)
        b.store(ir.Constant(INT64, TAPE_INITIAL_SLOTS), self.capacity)
        self.array_bytes = b.alloca(INT64, name="tape.array_bytes")
        b.store(ir.Constant(INT64, 0), self.array_bytes)
        kb.fail_if(b.icmp_unsigned("==", base, ir.Constant(PTR, None)), Fault.NO_MEMORY)

    def account(self, delta: ir.Value, growing: bool) -> None:
        """Add ``delta`` bytes of arrays to the tape's count; growing beyond the limit fails."""
        kb, b = self.kb, self.kb.b
        total = b.add(b.load(self.array_bytes, typ=INT64), delta)
        if growing:
            limit = b.load(declare_global(kb.module, TAPE_LIMIT_SYMBOL, INT64), typ=INT64)
            kb.fail_if(b.icmp_unsigned(">", total, limit), Fault.TAPE_LIMIT)
        b.store(total, self.array_bytes)

    def push(self, value: ir.Value, type_: Type) -> None:
        kb, b = self.kb, self.kb.b
        size, capacity = b.load(self.size, typ=INT64), b.load(self.capacity, typ=INT64)
        grow, store = kb.new_block("tape.grow"), kb.new_block("tape.push")
        b.cbranch(b.icmp_unsigned("==", size, capacity), grow, store).set_metadata(
            "prof", kb.unlikely)
        b.position_at_end(grow)
        doubled = b.shl(capacity, ir.Constant(INT64, 1))
        limit = b.load(declare_global(kb.module, TAPE_LIMIT_SYMBOL, INT64), typ=INT64)
        limit = b.lshr(limit, ir.Constant(INT64, 3))    # in slots
        wanted = b.select(b.icmp_unsigned("<", limit, doubled), limit, doubled, "tape.wanted")
        kb.fail_if(b.icmp_unsigned("<=", wanted, capacity), Fault.TAPE_LIMIT)
        # On failure the old block stays in tape.base, so the exit block still frees it.
        bytes_ = b.shl(wanted, ir.Constant(INT64, 3))
        moved = b.call(self.realloc, [b.load(self.base, typ=PTR), bytes_])
        kb.fail_if(b.icmp_unsigned("==", moved, ir.Constant(PTR, None)), Fault.NO_MEMORY)
        b.store(moved, self.base)
        b.store(wanted, self.capacity)
        b.branch(store)
        b.position_at_end(store)
        slot = b.gep(b.load(self.base, typ=PTR), [size], source_etype=INT64)
        b.store(_to_slot(b, value, type_), slot)
        b.store(b.add(size, ir.Constant(INT64, 1)), self.size)

    def pop(self, type_: Type) -> ir.Value:
        kb, b = self.kb, self.kb.b
        size = b.load(self.size, typ=INT64)
        kb.fail_if(b.icmp_unsigned("==", size, ir.Constant(INT64, 0)), Fault.TAPE_UNDERFLOW)
        top = b.sub(size, ir.Constant(INT64, 1))
        b.store(top, self.size)
        slot = b.gep(b.load(self.base, typ=PTR), [top], source_etype=INT64)
        return _from_slot(b, b.load(slot, typ=INT64), type_)

    def free(self) -> None:
        self.kb.b.call(self.free_fn, [self.kb.b.load(self.base, typ=PTR)])


def _to_slot(b: ir.IRBuilder, value: ir.Value, type_: Type) -> ir.Value:
    if type_ is F64:
        return b.bitcast(value, INT64)
    if type_ is F32:
        return b.zext(b.bitcast(value, INT32), INT64)
    return b.zext(value, INT64) if type_ is BOOL else value


def _from_slot(b: ir.IRBuilder, slot: ir.Value, type_: Type) -> ir.Value:
    if type_ is F64:
        return b.bitcast(slot, DOUBLE)
    if type_ is F32:
        return b.bitcast(b.trunc(slot, INT32), FLOAT)
    return b.trunc(slot, INT1) if type_ is BOOL else slot
