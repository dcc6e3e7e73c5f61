"""Appending ops to a block under construction."""
from __future__ import annotations

from typing import Any, Sequence

from .core import Block, Loc, Op, Value
from .prim import Prim
from .types import Type


class BlockBuilder:
    """Collects ops in order; ``finish`` seals them into a ``Block``."""

    def __init__(self, params: Sequence[Value] = ()) -> None:
        self.params = tuple(params)
        self.ops: list[Op] = []
        self.loc: Loc | None = None  # stamped on every op appended while set

    def append(self, op: Op) -> tuple[Value, ...]:
        if op.loc is None and self.loc is not None:
            op = op.replace(loc=self.loc)
        self.ops.append(op)
        return op.results

    def op(self, prim: Prim, args: Sequence[Value], result_types: Sequence[Type],
           attrs: Sequence[tuple[str, Any]] = (), regions: Sequence[Block] = (),
           hints: Sequence[str] = ()) -> tuple[Value, ...]:
        hints = tuple(hints) or ("",) * len(result_types)
        results = tuple(Value(t, h) for t, h in zip(result_types, hints))
        return self.append(Op(prim, tuple(args), results, tuple(attrs), tuple(regions)))

    def finish(self, yields: Sequence[Value]) -> Block:
        return Block(self.params, tuple(self.ops), tuple(yields))
