"""Helpers the passes share: value substitution and effect queries over structured IR."""
from __future__ import annotations

from typing import Iterable

from ..ir import EFFECTS, Block, Func, Op, Value


class Subst:
    """A value-to-value replacement map; lookups follow chains (a → b → c gives c).

    A named value replaced by an unnamed one hands it its name (``hints``), so generated code
    keeps the user's and the derivative names (``x_bar``) through rewrites."""

    def __init__(self) -> None:
        self.map: dict[Value, Value] = {}
        self.hints: dict[Value, str] = {}

    def __setitem__(self, old: Value, new: Value) -> None:
        if old is not new:
            self.map[old] = new
            if old.hint and not new.hint:
                self.hints.setdefault(new, old.hint)

    def __getitem__(self, value: Value) -> Value:
        while value in self.map:
            value = self.map[value]
        return value

    def all(self, values: Iterable[Value]) -> tuple[Value, ...]:
        return tuple(self[v] for v in values)


def has_effects(op: Op) -> bool:
    """Whether ``op`` is a push or pop, or owns one anywhere in its regions."""
    return op.prim in EFFECTS or any(block_has_effects(r) for r in op.regions)


def block_has_effects(block: Block) -> bool:
    return any(has_effects(op) for op in block.ops)


def is_pure(op: Op) -> bool:
    """A scalar op without regions or effects: free to drop, merge or move."""
    return not op.regions and op.prim not in EFFECTS


def adopt_hints(func: Func, hints: dict[Value, str]) -> Func:
    """``func`` with each value in ``hints`` renamed (a new value with that hint)."""
    if not hints:
        return func
    renamed = {v: Value(v.type, h) for v, h in hints.items() if not v.hint}

    def values(vs: tuple[Value, ...]) -> tuple[Value, ...]:
        return tuple(renamed.get(v, v) for v in vs)

    def block(b: Block) -> Block:
        ops = tuple(op.replace(args=values(op.args), results=values(op.results),
                               regions=tuple(block(r) for r in op.regions)) for op in b.ops)
        return Block(values(b.params), ops, values(b.yields))
    return func.with_body(block(func.body))
