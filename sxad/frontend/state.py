"""What lowering knows at a point of the program: variables, exit flags, the return value."""
from __future__ import annotations

import ast
import types
from dataclasses import dataclass, field
from typing import Callable, Union

from ..ir import Loc, Type, Value, is_array
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


@dataclass(frozen=True)
class Stale(Unbound):
    """A variable whose array may have changed under it: it may share memory with an array
    updated in place (on some paths only, or through a view sxad cannot re-derive), so its
    value is unknown when sxad compiles. Reading it is an error; assigning it rebinds."""

    message: str = ""


# A variable holds a value, or a tuple of them (``params = (W, b)``, ``x.shape``), nested.
Bound = Union[Value, tuple]


@dataclass
class State:
    env: dict[str, Bound | Unbound]
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

    def bind(self, name: str, value: Bound, loc: Loc | None) -> None:
        self.env[name] = value
        if loc is not None:
            self.where[name] = loc


@dataclass
class Returns:
    """The return signature of one function, joined over its ``return`` statements so far."""

    types: tuple[Type, ...] | None = None
    is_tuple: bool = False
    first: ast.Return | None = None
    tracked: int = 0  # the last ``tracked`` values are the argument arrays' final values

    def record(self, src: Source, node: ast.Return, is_tuple: bool,
               types_: tuple[Type, ...]) -> None:
        if self.types is None:
            self.types, self.is_tuple, self.first = types_, is_tuple, node
            return
        if is_tuple != self.is_tuple or len(types_) != len(self.types):
            raise src.error(node, f"this `return` gives {_shape(is_tuple, len(types_))} but the "
                                  f"`return` at line {src.loc(self.first).line} gives "
                                  f"{_shape(self.is_tuple, len(self.types))}")
        from .promotion import join_types, merge_message
        joined = []
        for k, (a, b) in enumerate(zip(self.types, types_)):
            t = join_types(a, b)
            if t is None:
                what = "the updated argument" if k >= len(types_) - self.tracked else \
                    f"result {k}" if is_tuple else "the result"
                raise src.error(node, merge_message(what, a, b) + f" (see the `return` at line "
                                                                  f"{src.loc(self.first).line})")
            joined.append(t)
        self.types = tuple(joined)


def _shape(is_tuple: bool, n: int) -> str:
    return f"a tuple of {n}" if is_tuple else "a single value"


@dataclass
class Shared:
    """What one ``lower`` call shares across the functions it inlines."""

    consts: dict[Value, object] = field(default_factory=dict)  # values known at lowering time
    stack: list[types.CodeType] = field(default_factory=list)  # functions being lowered
    sources: dict[types.CodeType, Source] = field(default_factory=dict)
    current: tuple[Source, ast.AST] | None = None  # the node being lowered, for internal errors
    # Arrays are mutable objects in Python: an in-place update (``W -= g``, ``x[i] = v``) gives
    # a new value of the same object, and every name bound to the object sees it. ``objects``
    # maps such a new value to the object's first value (absent: its own object).
    objects: dict[Value, Value] = field(default_factory=dict)
    views: dict[Value, str] = field(default_factory=dict)  # values numpy would give as views
    # A view made by basic indexing, a transpose or a reshape: the array it views (its first
    # state) and how to make it from a state of that array. An in-place update of the array
    # makes the view again from the new state, as numpy's view would show the update.
    derived: dict[Value, tuple[Value, Callable[[Value], Value]]] = field(default_factory=dict)
    # The array objects a value may share memory with besides its own (a merge of ``x`` and a
    # new array, a view of ``x``): an in-place update of one of them leaves it unknown (Stale).
    maybe: dict[Value, frozenset[Value]] = field(default_factory=dict)
    inputs: set[Value] = field(default_factory=set)  # the parameters of the lowered function
    carried: dict[Value, str] = field(default_factory=dict)  # a loop param's object -> its name
    # Scalars numpy would hold as numpy scalars (``np.sum(x)``, ``np.exp(s)``, ``x[i]``): numpy
    # 2 types them strongly, unlike Python numbers (see promotion.py).
    strong: set[Value] = field(default_factory=set)

    def object_of(self, v: Value) -> Value:
        return self.objects.get(v, v)

    def sharing(self, v: object) -> frozenset[Value]:
        """The array objects ``v`` is, or may share memory with (none for a number)."""
        if not isinstance(v, Value) or not is_array(v.type):
            return frozenset()
        return frozenset({self.object_of(v)}) | self.maybe.get(v, frozenset())

    def source(self, fn: types.FunctionType) -> Source:
        code = getattr(fn, "__code__", None)
        src = self.sources.get(code)
        if src is None or src.fn is not fn:
            src = read_source(fn)
            self.sources[src.fn.__code__] = src
        return src


# A loop carries variables, and the items of tuple variables named by their path ("params.1").

def get_path(env: dict, name: str) -> object:
    """The variable ``name``, or the tuple item it names ("params.1"); None if there is none."""
    head, *path = name.split(".")
    value = env.get(head)
    for k in path:
        if not (isinstance(value, tuple) and int(k) < len(value)):
            return None
        value = value[int(k)]
    return value


def set_path(env: dict, name: str, value: Value) -> None:
    """Bind ``name`` (a variable, or an item of a tuple variable) to ``value``."""
    head, *path = name.split(".")
    env[head] = _replaced(env[head], [int(k) for k in path], value)


def _replaced(bound: object, path: list[int], value: Value) -> object:
    if not path:
        return value
    k = path[0]
    return (*bound[:k], _replaced(bound[k], path[1:], value), *bound[k + 1:])


def flat_env(env: dict) -> list[tuple[str, object]]:
    """Every variable, tuples as their items (``params.0``, …)."""
    out = []

    def visit(name: str, bound: object) -> None:
        if isinstance(bound, tuple):
            for k, part in enumerate(bound):
                visit(f"{name}.{k}", part)
        else:
            out.append((name, bound))
    for name, bound in env.items():
        visit(name, bound)
    return out
