"""Common subexpression elimination with scoped tables.

A value computed in an enclosing block is reused inside regions; a value computed inside a
region is forgotten when the region ends (it is not visible after it). Constants are merged
too. Tape ops and control flow are never merged.
"""
from __future__ import annotations

from collections import ChainMap
from typing import Hashable

from ..ir import Block, Func, Op, Prim, Value
from .rewrite import Subst, adopt_hints, is_pure

# Operand order does not change these results (IEEE addition and multiplication commute).
COMMUTATIVE = frozenset({Prim.ADD, Prim.MUL, Prim.EQ, Prim.NE, Prim.AND, Prim.OR})

Table = ChainMap  # key -> the value first computing it, one map per enclosing block


def cse(func: Func) -> Func:
    merger = _Cse()
    return adopt_hints(func.with_body(merger.block(func.body, ChainMap())), merger.subst.hints)


class _Cse:
    def __init__(self) -> None:
        self.subst = Subst()

    def block(self, block: Block, table: Table) -> Block:
        ops: list[Op] = []
        for op in block.ops:
            op = op.replace(args=self.subst.all(op.args))
            if op.regions:
                op = op.replace(regions=tuple(self.block(r, table.new_child())
                                              for r in op.regions))
            elif is_pure(op):
                key = _key(op)
                if key in table:
                    self.subst[op.result] = table[key]
                    continue
                table[key] = op.result
            ops.append(op)
        return Block(block.params, tuple(ops), self.subst.all(block.yields))


def _key(op: Op) -> Hashable:
    """What makes two pure ops compute the same value."""
    args: tuple[Value, ...] = op.args
    if op.prim in COMMUTATIVE:
        args = tuple(sorted(args, key=id))
    # repr tells 0.0 from -0.0 (which compare equal) and matches nan with nan
    attrs = tuple((k, type(v), repr(v)) for k, v in op.attrs)
    return (op.prim, args, attrs, tuple(r.type for r in op.results))
