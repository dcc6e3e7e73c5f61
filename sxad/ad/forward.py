"""Forward mode: the tangent program.

``jvp_program(f, wrt)`` builds a function taking ``f``'s arguments followed by one tangent per
differentiated argument, and returning ``f``'s results followed by one tangent per float result.
Each op is followed by its tangent rule (``sxad.prims``); control flow carries tangents next to
the values they belong to; the tape (in derivative programs being differentiated again) stores
each active value's tangent right after it.
"""
from __future__ import annotations

import itertools
from typing import Sequence

from ..ir import Block, Func, Op, Prim, Value
from ..prims import Emitter, rule_attrs, rule_for
from .activity import varied
from .common import max_slot, named, suffixed, tape_attrs, tape_of
from .shift import shift_edges


def jvp_program(func: Func, wrt: Sequence[int]) -> Func:
    """The tangent program of ``func`` with respect to the arguments at positions ``wrt``."""
    seeds = [func.params[i] for i in wrt]
    transform = _Forward(func, seeds)
    tangents = [Value(p.type, suffixed(p, "dot")) for p in seeds]
    transform.tangent.update(zip(seeds, tangents))
    b = Emitter([*func.params, *tangents])
    transform.block_ops(func.body, b)
    outs = [transform.tangent_or_zero(b, r) for r in func.results if r.type.is_float]
    name = f"{func.name}_jvp"
    return Func(name, b.finish([*func.results, *outs]),
                (*func.arg_names, *(f"{func.arg_names[i]}_dot" for i in wrt)), func.tuple_result)


class _Forward:
    def __init__(self, func: Func, seeds: Sequence[Value]) -> None:
        self.varied = varied(func, seeds)
        self.cut = shift_edges(func)  # uses of a shift no output depends on: constants here
        self.tangent: dict[Value, Value] = {}
        self.slots = itertools.count(max_slot(func.body) + 1)
        self.tangent_slot: dict[object, object] = {}

    def tangent_or_zero(self, b: Emitter, value: Value) -> Value:
        return self.tangent.get(value) or b.zeros_like(value)

    def block_ops(self, block: Block, b: Emitter) -> None:
        for op in block.ops:
            self.op(op, b)

    def region(self, block: Block, params: Sequence[Value], yields_of: Sequence[Value]) -> Block:
        """Transform ``block`` with extra ``params``; it yields its values then the tangents of
        ``yields_of`` (the block's own yields whose tangents the op carries)."""
        b = Emitter([*block.params, *params])
        self.block_ops(block, b)
        return b.finish([*block.yields, *(self.tangent_or_zero(b, y) for y in yields_of)])

    def op(self, op: Op, b: Emitter) -> None:
        handler = _CONTROL.get(op.prim)
        if handler is not None:
            handler(self, op, b)
            return
        b.append(op)
        result = op.results[0] if op.results else None
        if result is None or result not in self.varied:
            return
        rule = rule_for(op.prim, "forward mode (jvp)")
        dxs = [None if (op, k) in self.cut else self.tangent.get(a)
               for k, a in enumerate(op.args)]
        if all(dx is None for dx in dxs):
            return   # every tangent reaching it was cut (a max shift): its tangent is zero
        dy = rule.jvp(b, op.args, dxs, op.results, **rule_attrs(rule, op))
        if dy is not None:
            self.tangent[result] = named(b, dy, suffixed(result, "dot"))

    def active_results(self, op: Op) -> list[int]:
        return [j for j, r in enumerate(op.results) if r in self.varied]

    def new_tangents(self, values: Sequence[Value]) -> list[Value]:
        made = [Value(v.type, suffixed(v, "dot")) for v in values]
        self.tangent.update(zip(values, made))
        return made

    def if_op(self, op: Op, b: Emitter) -> None:
        js = self.active_results(op)
        regions = [self.region(r, (), [r.yields[j] for j in js]) for r in op.regions]
        tangents = [Value(op.results[j].type, suffixed(op.results[j], "dot")) for j in js]
        b.append(op.replace(results=(*op.results, *tangents), regions=tuple(regions)))
        self.tangent.update(zip((op.results[j] for j in js), tangents))

    def for_op(self, op: Op, b: Emitter) -> None:
        js = self.active_results(op)
        body = op.regions[0]
        init = [self.tangent_or_zero(b, op.args[3 + j]) for j in js]
        params = self.new_tangents([body.params[1 + j] for j in js])
        new_body = self.region(body, params, [body.yields[j] for j in js])
        self._emit_loop(op, b, js, init, (new_body,))

    def while_op(self, op: Op, b: Emitter) -> None:
        js = self.active_results(op)
        cond, body = op.regions
        init = [self.tangent_or_zero(b, op.args[j]) for j in js]
        ignored = [Value(cond.params[j].type, suffixed(cond.params[j], "dot")) for j in js]
        new_cond = Block((*cond.params, *ignored), cond.ops, cond.yields)
        params = self.new_tangents([body.params[j] for j in js])
        new_body = self.region(body, params, [body.yields[j] for j in js])
        self._emit_loop(op, b, js, init, (new_cond, new_body))

    def _emit_loop(self, op: Op, b: Emitter, js: list[int], init: list[Value],
                   regions: tuple[Block, ...]) -> None:
        tangents = [Value(op.results[j].type, suffixed(op.results[j], "dot")) for j in js]
        b.append(op.replace(args=(*op.args, *init), results=(*op.results, *tangents),
                            regions=regions))
        self.tangent.update(zip((op.results[j] for j in js), tangents))

    def push_op(self, op: Op, b: Emitter) -> None:
        b.append(op)
        value = op.args[0]
        if value in self.varied:
            slot = next(self.slots)
            self.tangent_slot[op.attr("slot")] = slot
            b.op(Prim.PUSH, [self.tangent_or_zero(b, value)], [], attrs=tape_attrs(slot, tape_of(op)))

    def pop_op(self, op: Op, b: Emitter) -> None:
        slot = self.tangent_slot.get(op.attr("slot"))
        if slot is not None:  # its tangent was pushed last, so it comes off first
            (dot,) = b.op(Prim.POP, [], [op.result.type], attrs=tape_attrs(slot, tape_of(op)),
                          hints=[suffixed(op.result, "dot")])
            self.tangent[op.result] = dot
        b.append(op)


_CONTROL = {Prim.IF: _Forward.if_op, Prim.FOR: _Forward.for_op, Prim.WHILE: _Forward.while_op,
            Prim.PUSH: _Forward.push_op, Prim.POP: _Forward.pop_op}
