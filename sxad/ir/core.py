"""IR data: values, ops, blocks and functions. Frozen; passes build new IR.

Control flow is structured. An op may own regions (blocks); a block has parameters, a list of
ops and the values it yields. Blocks see every value defined in the blocks around them
(implicit capture, as in MLIR's ``scf`` dialect). The region conventions:

``if``    args ``(cond,)``; regions ``(then, else)``, no params; each yields the results.
``for``   args ``(lo, hi, step, *init)``; region ``(body,)`` with params ``(i, *carried)``,
          yielding the next carried values; results are the final carried values.
          Attr ``reverse=True`` runs ``reversed(range(lo, hi, step))``.
``while`` args ``init``; regions ``(cond, body)``, both with params ``carried``; ``cond``
          yields one bool, ``body`` the next carried values; results the final ones.
``push``  args ``(v,)``, no results; ``pop`` no args, one result. Attr ``slot`` pairs them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .prim import Prim
from .types import Type


@dataclass(frozen=True)
class Loc:
    """A source position, for error messages. Lines and columns count from 1."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, eq=False)
class Value:
    """An SSA value. Identity is the object; ``hint`` seeds its printed name."""

    type: Type
    hint: str = ""

    def __repr__(self) -> str:
        return f"<{self.hint or 'v'}:{self.type}@{id(self) & 0xFFFF:04x}>"


@dataclass(frozen=True, eq=False)
class Block:
    params: tuple[Value, ...]
    ops: tuple["Op", ...]
    yields: tuple[Value, ...]

    def walk(self) -> Iterator["Op"]:
        """Every op in this block and in the regions of its ops, in program order."""
        for op in self.ops:
            yield op
            for region in op.regions:
                yield from region.walk()


@dataclass(frozen=True, eq=False)
class Op:
    prim: Prim
    args: tuple[Value, ...]
    results: tuple[Value, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    regions: tuple[Block, ...] = ()
    loc: Loc | None = field(default=None, compare=False)

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def result(self) -> Value:
        (value,) = self.results
        return value

    def replace(self, **changes: Any) -> "Op":
        fields = dict(prim=self.prim, args=self.args, results=self.results,
                      attrs=self.attrs, regions=self.regions, loc=self.loc)
        fields.update(changes)
        return Op(**fields)


@dataclass(frozen=True, eq=False)
class Func:
    """A function: its body's params are the arguments, its yields the results."""

    name: str
    body: Block
    arg_names: tuple[str, ...]
    tuple_result: bool = False  # the source returns a tuple (even of one value)
    #: Positions of the arguments the function updates in place (``W -= lr * dW``, ``x[i] = v``).
    #: Their final values are the last ``len(mutated)`` results, in this order; the caller (API,
    #: native entry) writes them back into the argument arrays.
    mutated: tuple[int, ...] = ()

    @property
    def params(self) -> tuple[Value, ...]:
        return self.body.params

    @property
    def results(self) -> tuple[Value, ...]:
        return self.body.yields

    def with_body(self, body: Block) -> "Func":
        return Func(self.name, body, self.arg_names, self.tuple_result, self.mutated)

    @property
    def returned(self) -> tuple[Value, ...]:
        """The results the source returns (without the written-back arguments)."""
        return self.results[:len(self.results) - len(self.mutated)]
