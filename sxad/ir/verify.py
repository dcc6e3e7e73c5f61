"""The IR's invariants, checked: single definition, definition before use (through scopes),
and types that agree across regions and, given a type rule, across every op."""
from __future__ import annotations

from typing import Callable, Sequence

from .core import Block, Func, Op, Value
from .prim import Prim
from .types import BOOL, I64, Type

TypeRule = Callable[[Op], Sequence[Type] | None]


class VerifyError(AssertionError):
    """The IR breaks an invariant; the message names the op."""


def verify(func: Func, type_rule: TypeRule | None = None) -> Func:
    """Raise ``VerifyError`` if ``func`` breaks an invariant; return it unchanged otherwise."""
    _Verifier(type_rule).block(func.body, frozenset())
    return func


class _Verifier:
    def __init__(self, type_rule: TypeRule | None) -> None:
        self.type_rule = type_rule
        self.defined: set[Value] = set()

    def define(self, value: Value, where: str) -> None:
        if value in self.defined:
            raise VerifyError(f"{value!r} defined twice ({where})")
        self.defined.add(value)

    def block(self, block: Block, visible: frozenset[Value]) -> None:
        scope = set(visible)
        for p in block.params:
            self.define(p, "block parameter")
            scope.add(p)
        for op in block.ops:
            for a in op.args:
                if a not in scope:
                    raise VerifyError(f"{op.prim}: argument {a!r} is not defined before use")
            self.regions(op, frozenset(scope))
            self.types(op)
            for r in op.results:
                self.define(r, str(op.prim))
                scope.add(r)
        for y in block.yields:
            if y not in scope:
                raise VerifyError(f"yield of {y!r}, which is not defined before use")

    def regions(self, op: Op, scope: frozenset[Value]) -> None:
        for region in op.regions:
            self.block(region, scope)
        result_types = [r.type for r in op.results]
        if op.prim is Prim.IF:
            _expect(op, [a.type for a in op.args] == [BOOL], "condition must be one bool")
            for region in op.regions:
                _expect(op, not region.params, "branches take no parameters")
                _expect(op, _types(region.yields) == result_types, "branch yields != results")
        elif op.prim is Prim.FOR:
            body, = op.regions
            _expect(op, _types(op.args[:3]) == [I64] * 3, "range bounds must be i64")
            carried = _types(op.args[3:])
            _expect(op, _types(body.params) == [I64] + carried, "body params != (i64, carried)")
            _expect(op, _types(body.yields) == carried == result_types, "carried types differ")
        elif op.prim is Prim.WHILE:
            cond, body = op.regions
            carried = _types(op.args)
            _expect(op, _types(cond.params) == carried == _types(body.params), "params differ")
            _expect(op, _types(cond.yields) == [BOOL], "condition must yield one bool")
            _expect(op, _types(body.yields) == carried == result_types, "carried types differ")
        elif op.regions:
            raise VerifyError(f"{op.prim} must not own regions")

    def types(self, op: Op) -> None:
        if self.type_rule is None or op.regions:
            return
        expected = self.type_rule(op)
        if expected is not None and list(expected) != _types(op.results):
            raise VerifyError(f"{op.prim}({', '.join(str(a.type) for a in op.args)}) gives "
                              f"{', '.join(map(str, expected))}, not "
                              f"{', '.join(str(r.type) for r in op.results)}")


def _types(values: Sequence[Value]) -> list[Type]:
    return [v.type for v in values]


def _expect(op: Op, ok: bool, message: str) -> None:
    if not ok:
        raise VerifyError(f"{op.prim}: {message}")
