"""What lowering knows at a point of the program: variables, exit flags, the return value."""
from __future__ import annotations

import ast
import types
from dataclasses import dataclass, field
from typing import Union

from ..ir import Loc, Type, Value, join
from .source import Source, read_source

# The ways control can leave a statement list early. ``continued`` and ``broke`` belong to the
# innermost loop; ``returned`` to the function. Each is False (no path has left), True (every
# path has) or a bool ``Value`` (decided at run time).
FLAGS = ("continued", "broke", "returned")

Flag = Union[bool, Value]


@dataclass(frozen=True)
class Unbound:
    """A variable that is not assigned on every path to here."""

    where: Loc | None  # an assignment that does not reach every path


@dataclass
class State:
    env: dict[str, Value | Unbound]
    flags: dict[str, Flag] = field(default_factory=lambda: dict.fromkeys(FLAGS, False))
    ret: tuple[Value, ...] | None = None  # the return value, once some path has returned
    exited: bool = False  # every path has left (flags can't tell: several are run-time values)
    where: dict[str, Loc] = field(default_factory=dict)  # the latest assignment of each name

    def copy(self) -> "State":
        return State(dict(self.env), dict(self.flags), self.ret, self.exited, dict(self.where))

    @property
    def dead(self) -> bool:
        """Whether no path reaches here (code at this point is unreachable)."""
        return self.exited or any(f is True for f in self.flags.values())

    @property
    def has_returned(self) -> bool:
        """Whether every path has returned: then variables no longer matter."""
        return self.flags["returned"] is True

    def run_time_flags(self) -> list[tuple[str, Value]]:
        return [(k, f) for k, f in self.flags.items() if isinstance(f, Value)]

    def bind(self, name: str, value: Value, loc: Loc | None) -> None:
        self.env[name] = value
        if loc is not None:
            self.where[name] = loc


@dataclass
class Returns:
    """The return signature of one function, joined over its ``return`` statements so far."""

    types: tuple[Type, ...] | None = None
    is_tuple: bool = False
    first: ast.Return | None = None

    def record(self, src: Source, node: ast.Return, is_tuple: bool,
               types_: tuple[Type, ...]) -> None:
        if self.types is None:
            self.types, self.is_tuple, self.first = types_, is_tuple, node
            return
        if is_tuple != self.is_tuple or len(types_) != len(self.types):
            raise src.error(node, f"this `return` gives {_shape(is_tuple, len(types_))} but the "
                                  f"`return` at line {src.loc(self.first).line} gives "
                                  f"{_shape(self.is_tuple, len(self.types))}")
        self.types = tuple(join(a, b) for a, b in zip(self.types, types_))


def _shape(is_tuple: bool, n: int) -> str:
    return f"a tuple of {n}" if is_tuple else "a single value"


@dataclass
class Shared:
    """What one ``lower`` call shares across the functions it inlines."""

    consts: dict[Value, object] = field(default_factory=dict)  # values known at lowering time
    stack: list[types.CodeType] = field(default_factory=list)  # functions being lowered
    sources: dict[types.CodeType, Source] = field(default_factory=dict)
    current: tuple[Source, ast.AST] | None = None  # the node being lowered, for internal errors

    def source(self, fn: types.FunctionType) -> Source:
        code = getattr(fn, "__code__", None)
        src = self.sources.get(code)
        if src is None or src.fn is not fn:
            src = read_source(fn)
            self.sources[src.fn.__code__] = src
        return src
