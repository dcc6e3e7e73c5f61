"""Activity analysis: which values carry derivative information.

A value is *varied* when it depends differentiably on the inputs being differentiated, and
*useful* when an output depends differentiably on it. Only values that are both (*active*) get
tangents or adjoints; everything else costs no derivative work. Both analyses run to a fixed
point over the whole function, so loop-carried values and tape pairs need no special order.

``cut`` edges (op, argument position) carry nothing: a shift no result depends on
(``shift.shift_edges``) is a constant to the derivatives, so it is not useful through them.
"""
from __future__ import annotations

from typing import Callable, Iterable

from ..ir import Block, Func, Op, Prim, Value
from ..prims import rule_for
from .common import loop_parts

Edge = tuple[Op, int]


def _differentiable(op: Op) -> bool:
    return rule_for(op.prim, "activity analysis").differentiable


def _fixed_point(func: Func, start: Iterable[Value], sweep: Callable[..., None],
                 *extra: object) -> set[Value]:
    """Grow the float values of ``start`` by whole-function ``sweep``s until nothing changes."""
    out = {v for v in start if v.type.is_float}
    pairs: dict[object, Value] = {}  # tape slot → the value its push or pop carries
    while True:
        size = len(out)
        sweep(func.body, out, pairs, *extra)
        if len(out) == size:
            return out


def varied(func: Func, seeds: Iterable[Value]) -> set[Value]:
    """Values that depend differentiably on ``seeds``."""
    return _fixed_point(func, seeds, _forward_block)


def _mark(out: set[Value], value: Value, condition: bool) -> None:
    if condition and value.type.is_float:
        out.add(value)


def _forward_block(block: Block, out: set[Value], pushed: dict[object, Value]) -> None:
    for op in block.ops:
        if op.prim is Prim.IF:
            for region in op.regions:
                _forward_block(region, out, pushed)
            for j, r in enumerate(op.results):
                _mark(out, r, any(region.yields[j] in out for region in op.regions))
        elif op.prim in (Prim.FOR, Prim.WHILE):
            _forward_loop(op, out, pushed)
        elif op.prim is Prim.PUSH:
            pushed[op.attr("slot")] = op.args[0]
        elif op.prim is Prim.POP:
            source = pushed.get(op.attr("slot"))
            _mark(out, op.result, source is not None and source in out)
        elif _differentiable(op):
            for r in op.results:
                _mark(out, r, any(a in out for a in op.args))


def _forward_loop(op: Op, out: set[Value], pushed: dict[object, Value]) -> None:
    init, param_sets, body = loop_parts(op)
    for j, value in enumerate(init):
        carried = value in out or body.yields[j] in out
        for params in param_sets:
            _mark(out, params[j], carried)
        _mark(out, op.results[j], carried)
    for region in op.regions:
        _forward_block(region, out, pushed)


def useful(func: Func, sinks: Iterable[Value], cut: frozenset[Edge] = frozenset()) -> set[Value]:
    """Values on which ``sinks`` depend differentiably (through edges not ``cut``)."""
    return _fixed_point(func, sinks, _backward_block, cut)


def _backward_block(block: Block, out: set[Value], popped: dict[object, Value],
                    cut: frozenset[Edge]) -> None:
    for op in reversed(block.ops):
        if op.prim is Prim.IF:
            for region in op.regions:
                for r, y in zip(op.results, region.yields):
                    _mark(out, y, r in out)
                _backward_block(region, out, popped, cut)
        elif op.prim in (Prim.FOR, Prim.WHILE):
            _backward_loop(op, out, popped, cut)
        elif op.prim is Prim.POP:
            popped[op.attr("slot")] = op.result
        elif op.prim is Prim.PUSH:
            source = popped.get(op.attr("slot"))
            _mark(out, op.args[0], source is not None and source in out)
        elif _differentiable(op) and any(r in out for r in op.results):
            for k, a in enumerate(op.args):
                _mark(out, a, (op, k) not in cut)


def _backward_loop(op: Op, out: set[Value], popped: dict[object, Value],
                   cut: frozenset[Edge]) -> None:
    init, param_sets, body = loop_parts(op)
    for j, value in enumerate(init):
        live = op.results[j] in out or any(params[j] in out for params in param_sets)
        _mark(out, body.yields[j], live)
        _mark(out, value, live)
    _backward_block(body, out, popped, cut)


def active(func: Func, wrt: Iterable[Value], outputs: Iterable[Value],
           cut: frozenset[Edge] = frozenset()) -> set[Value]:
    """Values that are both varied (by ``wrt``) and useful (to ``outputs``)."""
    return varied(func, wrt) & useful(func, outputs, cut)
