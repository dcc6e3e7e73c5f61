"""Helpers shared by the forward and reverse transforms."""
from __future__ import annotations

from typing import Any

from ..ir import Block, Func, Op, Prim, Value, is_array
from ..prims import RULES, Emitter, rule_for


def named(b: Emitter, value: Value, hint: str, since: int | None = None) -> Value:
    """Name an unnamed ``value`` ``hint``, so generated code reads well.

    Only values made by ``b.ops[since:]`` are renamed (default: the last op alone); nothing
    outside those ops may refer to them yet, and uses among them are rewritten.
    """
    if not hint or value.hint:
        return value
    start = len(b.ops) - 1 if since is None else since
    for k in range(len(b.ops) - 1, max(start, 0) - 1, -1):
        if b.ops[k].results == (value,):
            break
    else:
        return value
    renamed = Value(value.type, hint)
    b.ops[k] = b.ops[k].replace(results=(renamed,))
    for n in range(k + 1, len(b.ops)):
        op = b.ops[n]
        if value in op.args:
            b.ops[n] = op.replace(args=tuple(renamed if a is value else a for a in op.args))
    return renamed


def suffixed(value: Value, suffix: str, fallback: str = "") -> str:
    """The hint of a derivative of ``value``: ``x`` → ``x_bar``."""
    base = value.hint or fallback
    return f"{base}_{suffix}" if base else ""


def defined_in(block: Block) -> set[Value]:
    """Values a block defines at its own level: params and the results of its ops."""
    out = set(block.params)
    for op in block.ops:
        out.update(op.results)
    return out


def max_slot(block: Block) -> int:
    """The largest tape slot used in ``block`` (and its regions), or -1."""
    slots = [op.attr("slot") for op in block.walk() if op.attr("slot") is not None]
    return max(slots, default=-1)


def const_value(op: Op) -> object:
    return op.attr("value")


def loop_parts(op: Op) -> tuple[tuple[Value, ...], list[tuple[Value, ...]], Block]:
    """(initial values, the param tuples of each region, the body) of a for/while op."""
    if op.prim is Prim.FOR:
        body = op.regions[0]
        return op.args[3:], [body.params[1:]], body
    cond, body = op.regions
    return op.args, [cond.params, body.params], body


# --------------------------------------------------------------------------- the tape

def tape_of(op: Op) -> int:
    """Which tape a push or pop acts on: 0 unless its ``tape`` attr says otherwise."""
    return op.attr("tape") or 0


def tape_attrs(slot: int, tape: int) -> tuple[tuple[str, Any], ...]:
    """The attrs of a new push or pop: ``slot``, and ``tape`` when it is not tape 0 (so the
    programs of a first transform read as before)."""
    return (("slot", slot),) + ((("tape", tape),) if tape else ())


def next_tape(block: Block) -> int:
    """A tape no push or pop of ``block`` uses: a transform of a derivative program keeps its
    own entries apart from the tape the program already uses (see ``reverse``)."""
    used = [tape_of(op) for op in block.walk() if op.prim in (Prim.PUSH, Prim.POP)]
    return max(used, default=-1) + 1


# --------------------------------------------------------------------------- shapes

def shape_sources(func: Func) -> dict[Value, Value]:
    """For array values whose shape is provably another's: value → a value of the same type
    and shape defined before it (or around its block). Following the map from a value ends at
    the earliest such value known. Sources: ``Rule.shape_from`` (``set_index``'s result has
    ``x``'s shape), elementwise ops whose array operands all share one shape, branches yielding
    values of one shape, and loop-carried values whose every iteration keeps the initial
    value's shape (``x = set_index(x, …)`` in a loop: proved by induction over the body)."""
    out: dict[Value, Value] = {}
    _shape_block(func.body, out)
    return out


def shape_root(sources: dict[Value, Value], value: Value) -> Value:
    while value in sources:
        value = sources[value]
    return value


def _shape_block(block: Block, out: dict[Value, Value]) -> None:
    for op in block.ops:
        if op.prim in (Prim.FOR, Prim.WHILE):
            _shape_loop(op, out)
        elif op.prim is Prim.IF:
            for region in op.regions:
                _shape_block(region, out)
            for j, result in enumerate(op.results):
                roots = {shape_root(out, region.yields[j]) for region in op.regions}
                root = roots.pop()
                if not roots and _same_type(root, result):  # defined around the branches
                    out[result] = root
        elif len(op.results) == 1 and not op.regions:
            source = _shape_arg(op, out)
            if source is not None:
                out[op.result] = source


def _same_type(source: Value, value: Value) -> bool:
    return is_array(value.type) and source.type == value.type and source is not value


def _shape_arg(op: Op, out: dict[Value, Value]) -> Value | None:
    """The argument of ``op`` whose shape and type its result has, if known."""
    if op.prim in (Prim.PUSH, Prim.POP, Prim.CONST):
        return None
    k = rule_for(op.prim).shape_from
    if k is not None:
        return op.args[k] if _same_type(op.args[k], op.result) else None
    if op.prim not in RULES:
        return None
    arrays = [a for a in op.args if is_array(a.type)]
    if not arrays or not _same_type(arrays[0], op.result):
        return None
    root = shape_root(out, arrays[0])
    return arrays[0] if all(shape_root(out, a) is root for a in arrays[1:]) else None


def _shape_loop(op: Op, out: dict[Value, Value]) -> None:
    """Assume each array carried value keeps its initial value's shape; keep the assumptions
    the body proves (its yield has the shape of the initial value), drop the others and redo
    the body under the rest, until what is assumed is proved."""
    init, param_sets, body = loop_parts(op)
    assumed = [j for j, v in enumerate(init) if is_array(v.type)]
    before = set(out)
    while True:
        for key in set(out) - before:
            del out[key]
        for j in assumed:
            for params in param_sets:
                out[params[j]] = init[j]
        for region in op.regions:
            _shape_block(region, out)
        kept = [j for j in assumed
                if shape_root(out, body.yields[j]) is shape_root(out, init[j])]
        if kept == assumed:
            break
        assumed = kept
    for j in assumed:
        out[op.results[j]] = init[j]
