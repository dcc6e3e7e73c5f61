"""Helpers shared by the forward and reverse transforms."""
from __future__ import annotations

from ..ir import Block, Op, Value
from ..prims import Emitter


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
