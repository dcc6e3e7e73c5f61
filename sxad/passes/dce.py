"""Dead code elimination through regions.

A backward sweep keeps what the results need: pure ops whose values are used, control ops
shrunk to the results someone uses (a loop-carried value is live if its result is used after
the loop, or if the loop uses its parameter for something live: a fixed point), and every
push and pop. Then the tape: a push/pop pair (one ``slot``) whose popped value nobody uses is
removed as a pair, and the sweep runs again, since the pushed value may now be dead too.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

from ..ir import Block, Func, Op, Prim, Value
from .rewrite import has_effects

T = TypeVar("T")


def dce(func: Func) -> Func:
    while True:
        func = func.with_body(_Sweep().block(func.body, [True] * len(func.results)))
        dead = _dead_tape_slots(func)
        if not dead:
            return func
        func = func.with_body(_drop_tape_ops(func.body, dead))


def _keep(values: Sequence[T], mask: Sequence[bool]) -> tuple[T, ...]:
    return tuple(v for v, m in zip(values, mask) if m)


class _Sweep:
    def __init__(self) -> None:
        self.live: set[Value] = set()  # only grows, so re-sweeping a loop body is safe

    def block(self, block: Block, yields: Sequence[bool],
              params: Sequence[bool] | None = None) -> Block:
        self.live.update(_keep(block.yields, yields))
        kept = [new for new in map(self.op, reversed(block.ops)) if new is not None]
        params = [True] * len(block.params) if params is None else params
        return Block(_keep(block.params, params), tuple(reversed(kept)),
                     _keep(block.yields, yields))

    def op(self, op: Op) -> Op | None:
        control = _CONTROL.get(op.prim)
        if control is not None:
            return control(self, op)
        if op.prim in (Prim.PUSH, Prim.POP) or any(r in self.live for r in op.results):
            self.live.update(op.args)
            return op
        return None

    def used(self, values: Sequence[Value]) -> list[bool]:
        return [v in self.live for v in values]

    def if_(self, op: Op) -> Op | None:
        mask = self.used(op.results)
        if not any(mask) and not has_effects(op):
            return None
        regions = tuple(self.block(r, mask) for r in op.regions)
        self.live.add(op.args[0])
        return op.replace(results=_keep(op.results, mask), regions=regions)

    def for_(self, op: Op) -> Op | None:
        mask = self.used(op.results)
        if not any(mask) and not has_effects(op):
            return None
        (body,) = op.regions
        while True:
            new_body = self.block(body, mask, [True, *mask])
            grown = [m or p in self.live for m, p in zip(mask, body.params[1:])]
            if grown == mask:
                break
            mask = grown
        bounds, init = op.args[:3], _keep(op.args[3:], mask)
        self.live.update(bounds + init)
        return op.replace(args=bounds + init, results=_keep(op.results, mask),
                          regions=(new_body,))

    def while_(self, op: Op) -> Op | None:
        mask = self.used(op.results)
        if not any(mask) and not has_effects(op):
            return None
        cond, body = op.regions
        while True:
            new_cond = self.block(cond, [True], mask)
            new_body = self.block(body, mask, mask)
            grown = [m or c in self.live or b in self.live
                     for m, c, b in zip(mask, cond.params, body.params)]
            if grown == mask:
                break
            mask = grown
        init = _keep(op.args, mask)
        self.live.update(init)
        return op.replace(args=init, results=_keep(op.results, mask),
                          regions=(new_cond, new_body))


_CONTROL = {Prim.IF: _Sweep.if_, Prim.FOR: _Sweep.for_, Prim.WHILE: _Sweep.while_}


def _dead_tape_slots(func: Func) -> set:
    """Slots all of whose pops give values nobody uses."""
    used: set[Value] = set(func.results)
    pops: list[Op] = []
    for op in func.body.walk():
        used.update(op.args)
        used.update(y for r in op.regions for y in r.yields)
        if op.prim is Prim.POP and op.attr("slot") is not None:
            pops.append(op)
    dead = {op.attr("slot") for op in pops}
    return dead - {op.attr("slot") for op in pops if op.result in used}


def _drop_tape_ops(block: Block, slots: set) -> Block:
    ops = []
    for op in block.ops:
        if op.prim in (Prim.PUSH, Prim.POP) and op.attr("slot") in slots:
            continue
        if op.regions:
            op = op.replace(regions=tuple(_drop_tape_ops(r, slots) for r in op.regions))
        ops.append(op)
    return Block(block.params, tuple(ops), block.yields)
