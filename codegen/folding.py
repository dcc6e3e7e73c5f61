"""An ``ir.IRBuilder`` that folds integer arithmetic on constants as it emits.

Shape code is full of ``i·1``, ``0 + i·s``, ``false or c``, ``n == 1`` on a padded axis of
length 1…; LLVM removes them in an optimized function, but a kernel compiled at O0
(``kernel.straight_line``) would carry every one into instruction selection, and every pass
of an optimized one pays for them too. Only integers and booleans are folded (exactly, with
two's-complement wrapping); floats are left to LLVM.
"""
from __future__ import annotations

from typing import Any, Callable

from llvmlite import ir

_SIGNED: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _int(value: ir.Value) -> int | None:
    """The value of an integer constant, else None."""
    if isinstance(value, ir.Constant) and isinstance(value.type, ir.IntType) and \
            isinstance(value.constant, (int, bool)) and not isinstance(value.constant, float):
        return int(value.constant)
    return None


def _wrap(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if bits > 1 and value >> (bits - 1) else value


def _const(type_: ir.IntType, value: int) -> ir.Constant:
    return ir.Constant(type_, _wrap(value, type_.width) if type_.width > 1 else value & 1)


class FoldingBuilder(ir.IRBuilder):
    """``add``, ``sub``, ``mul``, ``and_``, ``or_``, ``not_``, ``icmp_*`` and ``select`` of
    integer constants (or with an identity or absorbing constant) give a value, not an
    instruction."""

    def add(self, lhs: ir.Value, rhs: ir.Value, name: str = "", **kw: Any) -> ir.Value:
        a, b = _int(lhs), _int(rhs)
        if a is not None and b is not None:
            return _const(lhs.type, a + b)
        if a == 0:
            return rhs
        if b == 0:
            return lhs
        return super().add(lhs, rhs, name, **kw)

    def sub(self, lhs: ir.Value, rhs: ir.Value, name: str = "", **kw: Any) -> ir.Value:
        a, b = _int(lhs), _int(rhs)
        if a is not None and b is not None:
            return _const(lhs.type, a - b)
        if b == 0:
            return lhs
        return super().sub(lhs, rhs, name, **kw)

    def mul(self, lhs: ir.Value, rhs: ir.Value, name: str = "", **kw: Any) -> ir.Value:
        a, b = _int(lhs), _int(rhs)
        if a is not None and b is not None:
            return _const(lhs.type, a * b)
        folded = _identity_absorbing(lhs, rhs, identity=1, absorbing=0)
        return folded if folded is not None else super().mul(lhs, rhs, name, **kw)

    def and_(self, lhs: ir.Value, rhs: ir.Value, name: str = "", **kw: Any) -> ir.Value:
        folded = _identity_absorbing(lhs, rhs, identity=1, absorbing=0) \
            if lhs.type == ir.IntType(1) else None
        return folded if folded is not None else super().and_(lhs, rhs, name, **kw)

    def or_(self, lhs: ir.Value, rhs: ir.Value, name: str = "", **kw: Any) -> ir.Value:
        folded = _identity_absorbing(lhs, rhs, identity=0, absorbing=1) \
            if lhs.type == ir.IntType(1) else None
        return folded if folded is not None else super().or_(lhs, rhs, name, **kw)

    def not_(self, value: ir.Value, name: str = "") -> ir.Value:
        a = _int(value)
        if a is not None and value.type == ir.IntType(1):
            return _const(value.type, 1 - (a & 1))
        return super().not_(value, name)

    def icmp_signed(self, cmpop: str, lhs: ir.Value, rhs: ir.Value, name: str = "") -> ir.Value:
        a, b = _int(lhs), _int(rhs)
        if a is not None and b is not None:
            return ir.Constant(ir.IntType(1), int(_SIGNED[cmpop](a, b)))
        if lhs is rhs and cmpop in ("==", "<=", ">="):
            return ir.Constant(ir.IntType(1), 1)
        return super().icmp_signed(cmpop, lhs, rhs, name)

    def icmp_unsigned(self, cmpop: str, lhs: ir.Value, rhs: ir.Value,
                      name: str = "") -> ir.Value:
        a, b = _int(lhs), _int(rhs)
        if a is not None and b is not None and isinstance(lhs.type, ir.IntType):
            mask = (1 << lhs.type.width) - 1
            return ir.Constant(ir.IntType(1), int(_SIGNED[cmpop](a & mask, b & mask)))
        return super().icmp_unsigned(cmpop, lhs, rhs, name)

    def select(self, cond: ir.Value, lhs: ir.Value, rhs: ir.Value, name: str = "",
               flags: Any = ()) -> ir.Value:
        c = _int(cond)
        if c is not None:
            return lhs if c & 1 else rhs
        if lhs is rhs:
            return lhs
        return super().select(cond, lhs, rhs, name, flags)


def _identity_absorbing(lhs: ir.Value, rhs: ir.Value, identity: int,
                        absorbing: int) -> ir.Value | None:
    """``x op absorbing`` → absorbing, ``x op identity`` → x (either side), for an operation
    with those constants (``mul``: 1 and 0; ``and``: 1 and 0; ``or``: 0 and 1); else None."""
    a, b = _int(lhs), _int(rhs)
    if a == absorbing or b == absorbing:
        return _const(lhs.type, absorbing)
    if a == identity:
        return rhs
    if b == identity:
        return lhs
    return None
