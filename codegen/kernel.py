"""Lowering a ``Func`` to a plain C-ABI LLVM function, the *kernel*:

    i32 kernel(<params>, ptr out0, ptr out1, …)

Scalars come in by value (f64 as ``double``, i64 as ``int64_t``, bool as ``uint8_t`` 0/1) and
each result is stored through its out-pointer (same types). The return value is a ``Fault``
code, 0 when all went well; results are written only then. The kernel touches no Python state,
so any C caller can use it.

Structured control flow becomes basic blocks with phis. Every fault branches to one exit block,
which frees the tape (if the function has one) and returns the code, so no path leaks it.
"""
from __future__ import annotations

from typing import Callable, Sequence

from llvmlite import ir

from sxad.ir import BOOL, F64, I64, Block, Func, Op, Prim, Type, Value, name_all

from .faults import Fault
from .lowering import DOUBLE, INT1, INT64, LL_TYPE, lower_scalar
from .runtime import TAPE_LIMIT_SYMBOL

INT8 = ir.IntType(8)
INT32 = ir.IntType(32)
PTR = ir.PointerType()
#: How scalars cross the C ABI (bool as a byte, as C's ``_Bool``/``uint8_t``).
ABI_TYPE: dict[Type, ir.Type] = {F64: DOUBLE, I64: INT64, BOOL: INT8}
TAPE_INITIAL_SLOTS = 64


def branch_weights(module: ir.Module, taken: int, not_taken: int) -> ir.MDValue:
    """``!prof`` metadata for a conditional branch (built once: add_metadata is slow)."""
    return module.add_metadata([ir.MetaDataString(module, "branch_weights"),
                                ir.Constant(INT32, taken), ir.Constant(INT32, not_taken)])


RARE = 1 << 20   # weight of the common side of a branch whose other side is a fault


def kernel_type(func: Func) -> ir.FunctionType:
    params = [ABI_TYPE[p.type] for p in func.params] + [PTR] * len(func.results)
    return ir.FunctionType(INT32, params)


def has_tape(func: Func) -> bool:
    return any(op.prim in (Prim.PUSH, Prim.POP) for op in func.body.walk())


def has_loops(func: Func) -> bool:
    return any(op.prim in (Prim.FOR, Prim.WHILE) for op in func.body.walk())


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


def emit_kernel(module: ir.Module, func: Func, symbol: str) -> ir.Function:
    return _KernelBuilder(module, func, symbol).fn


class _KernelBuilder:
    """Walks the function's blocks in program order, emitting into one LLVM function."""

    def __init__(self, module: ir.Module, func: Func, symbol: str) -> None:
        self.module = module
        self.fn = ir.Function(module, kernel_type(func), symbol)
        self.fn.attributes.add("nounwind")
        self.names = name_all(func)
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.exit = self.fn.append_basic_block("exit")
        self.unlikely = branch_weights(module, 1, RARE)
        self.exits: list[tuple[Fault, ir.Block]] = []
        self.values: dict[Value, ir.Value] = {}
        params = self.unpack_params(func)
        self.tape = _Tape(self) if has_tape(func) else None
        self.store_results(func, self.block(func.body, params))
        self.leave(Fault.NONE)
        self.finish_exit()

    def unpack_params(self, func: Func) -> list[ir.Value]:
        """The parameters as IR values (a bool arrives as a byte)."""
        values = []
        for param, arg in zip(func.params, self.fn.args):
            arg.name = self.names[param]
            zero = ir.Constant(INT8, 0)
            values.append(self.b.icmp_unsigned("!=", arg, zero) if param.type is BOOL else arg)
        return values

    def store_results(self, func: Func, results: list[ir.Value]) -> None:
        outs = self.fn.args[len(func.params):]
        for value, ir_value, out in zip(func.results, results, outs):
            out.name = "out." + self.names[value]
            out.add_attribute("noalias")
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

    def leave(self, fault: Fault) -> None:
        self.b.branch(self.exit)
        self.exits.append((fault, self.b.block))

    def finish_exit(self) -> None:
        self.b.position_at_end(self.exit)
        code = self.b.phi(INT32, "fault")
        for fault, block in self.exits:
            code.add_incoming(ir.Constant(INT32, int(fault)), block)
        if self.tape is not None:
            self.tape.free()
        self.b.ret(code)

    # -- blocks and ops

    def block(self, block: Block, args: Sequence[ir.Value]) -> list[ir.Value]:
        for param, arg in zip(block.params, args):
            self.values[param] = arg
        for op in block.ops:
            results = _STRUCTURED.get(op.prim, _KernelBuilder.scalar)(self, op)
            for value, ir_value in zip(op.results, results):
                self.values[value] = ir_value
        return [self.values[v] for v in block.yields]

    def args(self, op: Op) -> list[ir.Value]:
        return [self.values[a] for a in op.args]

    def scalar(self, op: Op) -> list[ir.Value]:
        result = lower_scalar(self, op, self.args(op))
        if isinstance(result, ir.Instruction) and not result.name:
            result.name = self.names[op.result]
        return [result]

    def new_block(self, label: str) -> ir.Block:
        return self.fn.append_basic_block(label)

    def phis(self, values: Sequence[Value]) -> list[ir.PhiInstr]:
        return [self.b.phi(LL_TYPE[v.type], self.names[v]) for v in values]

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
                phi.add_incoming(value, end)
        return results

    def for_(self, op: Op) -> list[ir.Value]:
        """range(lo, hi, step) as a counted loop: k = 0 … trips-1, i = start + k·stride."""
        b = self.b
        lo, hi, step, *init = self.args(op)
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
        yields = self.block(region, [index, *carried])
        next_count, next_index = b.add(count, ir.Constant(INT64, 1)), b.add(index, stride)
        b.branch(head)
        for phi, first, then in zip([count, index, *carried], [ir.Constant(INT64, 0), start, *init],
                                    [next_count, next_index, *yields]):
            phi.add_incoming(first, before)
            phi.add_incoming(then, b.block)
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
        before = b.block
        head, body_bb, done = (self.new_block(f"while.{n}") for n in ("head", "body", "end"))
        b.branch(head)
        b.position_at_end(head)
        carried = self.phis(op.results)
        (go,) = self.block(cond, carried)
        b.cbranch(go, body_bb, done)
        b.position_at_end(body_bb)
        yields = self.block(body, carried)
        b.branch(head)
        for phi, first, then in zip(carried, self.args(op), yields):
            phi.add_incoming(first, before)
            phi.add_incoming(then, b.block)
        b.position_at_end(done)
        return carried

    def push(self, op: Op) -> list[ir.Value]:
        assert self.tape is not None
        self.tape.push(self.values[op.args[0]], op.args[0].type)
        return []

    def pop(self, op: Op) -> list[ir.Value]:
        assert self.tape is not None
        return [self.tape.pop(op.result.type)]


_STRUCTURED: dict[Prim, Callable[[_KernelBuilder, Op], list[ir.Value]]] = {
    Prim.IF: _KernelBuilder.if_, Prim.FOR: _KernelBuilder.for_, Prim.WHILE: _KernelBuilder.while_,
    Prim.PUSH: _KernelBuilder.push, Prim.POP: _KernelBuilder.pop,
}


class _Tape:
    """A growable stack of 8-byte slots on the C heap: malloc at entry, realloc doubling when
    full, free in the kernel's exit block. Its state lives in allocas that LLVM promotes.

    Growth stops at the tape limit (the global ``runtime.TAPE_LIMIT_SYMBOL``, in bytes, read
    when growing): the kernel then fails with ``Fault.TAPE_LIMIT`` instead of taking all memory.
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
        kb.fail_if(b.icmp_unsigned("==", base, ir.Constant(PTR, None)), Fault.NO_MEMORY)

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
    return b.zext(value, INT64) if type_ is BOOL else value


def _from_slot(b: ir.IRBuilder, slot: ir.Value, type_: Type) -> ir.Value:
    if type_ is F64:
        return b.bitcast(slot, DOUBLE)
    return b.trunc(slot, INT1) if type_ is BOOL else slot
