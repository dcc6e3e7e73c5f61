"""Numeric typing made explicit with casts: Python's rules for scalars (bool < int < float) and
numpy 2's for arrays.

numpy 2 promotes the dtypes of arrays among themselves (``i64`` with ``f32`` gives ``f64``) and
treats Python scalars as *weak*: ``x32 * 2.0`` stays ``f32``, ``i64_array * 2.5`` becomes
``f64``. Here every scalar operand of an expression with an array in it is weak, and so is a
literal, an int or bool among floats, and an ``f64`` scalar beside an ``f32`` one (an ``f64``
scalar is usually a Python float: a literal, or an argument such as a learning rate): its kind
(bool < int < float) can raise the result's kind, never its precision. Numpy scalars (a full
reduction, ``x[i]``, ``np.exp`` of a number, arithmetic on those) are strongly typed, as in
numpy: ``np.exp(s) * x32`` is ``f64``. Where a value's origin is lost (a variable merged after
an ``if`` or carried by a loop) it counts as a Python number.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import ast
import numpy as np

from ..errors import UnsupportedError
from ..ir import (BOOL, F32, F64, I64, ArrayType, Prim, ScalarType, Type, Value, dtype_of,
                  is_array, join, rank_of, with_dtype)
from ..prims import NUMPY_TYPE, Emitter
from .source import Source
from .state import Shared

KIND = {BOOL: 0, I64: 1, F32: 2, F64: 2}
_FROM_NUMPY = {np.dtype(t): s for s, t in NUMPY_TYPE.items()}
_PYTHON = {F64: float, F32: float, I64: int, BOOL: bool}
_ARITH = {ast.Add: Prim.ADD, ast.Sub: Prim.SUB, ast.Mult: Prim.MUL, ast.FloorDiv: Prim.FLOORDIV,
          ast.Mod: Prim.MOD}
_BITS = {ast.BitAnd: Prim.AND, ast.BitOr: Prim.OR, ast.BitXor: Prim.NE}
OPERATOR_TEXT = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
                 ast.RShift: ">>", ast.MatMult: "@", ast.Invert: "~", ast.Is: "is",
                 ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def join_dtypes(a: ScalarType, b: ScalarType) -> ScalarType:
    """numpy's promotion of two strongly typed dtypes (``i64`` and ``f32`` give ``f64``)."""
    if a == b:
        return a
    return _FROM_NUMPY[np.promote_types(NUMPY_TYPE[a], NUMPY_TYPE[b])]


def join_types(a: Type, b: Type) -> Type | None:
    """The type of a variable that holds ``a`` on one path and ``b`` on another; None if no
    type holds both (a scalar and an array, arrays of different ranks)."""
    if is_array(a) != is_array(b) or rank_of(a) != rank_of(b):
        return None
    if not is_array(a):   # `s = 0.0; s += x32[i]`: numpy's s becomes a float32 scalar
        return F32 if {a, b} == {F32, F64} else join(a, b)
    return ArrayType(join_dtypes(a.dtype, b.dtype), a.rank)


def merge_message(name: str, a: Type, b: Type) -> str:
    """Why ``name`` cannot hold both ``a`` and ``b``."""
    def what(t: Type) -> str:
        return f"an array {t}" if is_array(t) else f"a scalar {t}"
    return (f"`{name}` is {what(a)} on one path and {what(b)} on another; sxad needs one type "
            f"(and rank) per variable: start it as an array of the right rank (`np.zeros_like(x)`,"
            f" `np.zeros(n)`) rather than a number")


class Typing(ABC):
    src: Source
    shared: Shared
    b: Emitter

    @abstractmethod
    def error(self, node: ast.AST, what: str) -> UnsupportedError:
        """An error at ``node``."""

    def fail(self, what: str) -> UnsupportedError:
        """An error at the node being lowered."""
        if self.shared.current is None:
            return UnsupportedError(what)
        where, node = self.shared.current
        return where.error(node, what)

    # ----------------------------------------------------------------------- constants

    def const(self, value: Any, type_: Type | None = None, hint: str = "") -> Value:
        v = self.b.const(value, type_, hint=hint)
        self.shared.consts[v] = _PYTHON[v.type](value)
        return v

    def known(self, v: Value) -> Any:
        """The value of ``v`` if it is a constant, else None."""
        return self.shared.consts.get(v)

    def static_bool(self, v: Value) -> bool | None:
        value = self.known(v)
        return None if value is None else bool(value)

    def zero_of(self, t: Type) -> Value:
        """A placeholder of type ``t`` for a path that never uses it (a zero; for an array,
        a zero of shape (1, …, 1): the real shape is unknown there)."""
        if not is_array(t):
            return self.const(0, t)
        return self.b.expand_dims(self.const(0, t.dtype), axes=tuple(range(t.rank)))

    # ----------------------------------------------------------------------- conversions

    def convert(self, v: Value, type_: Type) -> Value:
        if v.type == type_:
            return v
        if rank_of(v.type) != rank_of(type_) or is_array(v.type) != is_array(type_):
            raise self.fail(merge_message(v.hint or "this value", v.type, type_))
        value = self.known(v)
        if value is not None:  # fold: cast(const) is a const of the new type
            return self.const(_cast(value, v.type, type_), type_, hint=v.hint)
        return self.b.cast(v, type_)

    def to_dtype(self, v: Value, dtype: ScalarType) -> Value:
        """``v`` with element type ``dtype``, its rank kept."""
        return self.convert(v, with_dtype(v.type, dtype))

    def truthy(self, v: Value) -> Value:
        """Python's truth of a number: ``v != 0``; an array has none."""
        if is_array(v.type):
            raise self.fail(f"the truth value of an array ({v.type}) is ambiguous: reduce it "
                            f"first (`np.any`, `np.all`, `np.sum(...) > 0`)")
        return self.mask(v)

    def mask(self, v: Value) -> Value:
        """``v != 0`` elementwise (bools as they are)."""
        if dtype_of(v.type) is BOOL:
            return v
        value = self.known(v)
        if value is not None:
            return self.const(bool(value))
        return self.b.ne(v, self.const(0, dtype_of(v.type)))

    def numpy_scalar(self, result: Any, *operands: Any, always: bool = True,
                     since: int | None = None) -> Any:
        """Mark a scalar ``result`` as a numpy scalar: ``always``, or if an operand is one or
        an array (``w @ w`` of two vectors is an ``np.float64``, which stays float64 against
        an ``np.float32``); with ``since``, only if an op appended since then made it
        (``np.sum(s)`` of a number gives ``s`` itself, which stays what it was)."""
        if isinstance(result, Value) and not is_array(result.type) and (
                always or any(v in self.shared.strong or
                              (isinstance(v, Value) and is_array(v.type)) for v in operands)):
            if since is None or any(result in op.results for op in self.b.ops[since:]):
                self.shared.strong.add(result)
        return result

    def promoted(self, vs: Sequence[Value]) -> ScalarType:
        """The element type an operation on ``vs`` computes in (module docstring)."""
        arrays = any(is_array(v.type) for v in vs)
        f32 = any(v.type is F32 for v in vs)

        def weak(v: Value) -> bool:
            return not is_array(v.type) and v not in self.shared.strong and (
                arrays or self.known(v) is not None or v.type in (I64, BOOL) or
                (f32 and v.type is F64))
        strong = [v for v in vs if not weak(v)] or list(vs)
        d = dtype_of(strong[0].type)
        for v in strong[1:]:
            d = join_dtypes(d, dtype_of(v.type)) if arrays else join(d, v.type)
        for v in vs:
            if KIND[dtype_of(v.type)] > KIND[d]:
                d = F64 if KIND[dtype_of(v.type)] == 2 else I64
        return d

    def same_type(self, *vs: Value) -> list[Value]:
        """The values converted to their promoted element type (bools stay bools)."""
        d = self.promoted(vs)
        return [self.to_dtype(v, d) for v in vs]

    def numeric(self, *vs: Value, real: bool = False) -> list[Value]:
        """For arithmetic: the promoted type, with bools as ints (and ints as floats if
        ``real``)."""
        d = self.promoted(vs)
        if d is BOOL:
            d = I64
        if real and not d.is_float:
            d = F64
        return [self.to_dtype(v, d) for v in vs]

    def real(self, v: Value) -> Value:
        """``v`` as a float (f32 stays f32)."""
        return v if dtype_of(v.type).is_float else self.to_dtype(v, F64)

    def power(self, base: Value, exponent: Value) -> Value:
        """``**``: ints stay ints for a constant exponent ≥ 0, and wherever numpy computes
        (an array or a numpy scalar operand), which refuses negative exponents at run time
        (the int ``pow`` raises); Python's ints give a float for an unknown exponent."""
        numpy = any(is_array(v.type) or v in self.shared.strong for v in (base, exponent))
        base, exponent = self.numeric(base, exponent)
        if not dtype_of(base.type).is_float:
            k = self.known(exponent)
            if not ((k is not None and k >= 0) or numpy):
                base, exponent = self.numeric(base, exponent, real=True)
        return self.b.pow(base, exponent)

    def binary(self, op: ast.operator, left: Value, right: Value, node: ast.AST) -> Value:
        return self.numpy_scalar(self._binary(op, left, right, node), left, right, always=False)

    def _binary(self, op: ast.operator, left: Value, right: Value, node: ast.AST) -> Value:
        if isinstance(op, ast.Div):
            return self.b.div(*self.numeric(left, right, real=True))
        if isinstance(op, ast.Pow):
            return self.power(left, right)
        if isinstance(op, ast.MatMult):
            return self.matmul(left, right, node)
        if type(op) in _BITS and dtype_of(left.type) is BOOL and dtype_of(right.type) is BOOL:
            return self.b.emit(_BITS[type(op)], left, right)
        prim = _ARITH.get(type(op))
        if prim is None:
            raise self.error(node, f"operator `{OPERATOR_TEXT.get(type(op), '?')}` "
                                   f"is not supported" + (" (only on bools)" if type(op) in _BITS
                                                          else ""))
        numpy = any(is_array(v.type) or v in self.shared.strong for v in (left, right))
        if prim in _BOOL_ARRAY and self.promoted((left, right)) is BOOL and numpy:
            # numpy's bools, arrays or scalars (``x[i]`` of a bool array); Python's are ints
            if _BOOL_ARRAY[prim] is None:   # numpy: no `-` on bools (Python's gives ints)
                raise self.error(node, "numpy cannot subtract booleans (use `^` or "
                                       "`np.logical_xor`, or `.astype(int)` first)")
            return self.b.emit(_BOOL_ARRAY[prim], left, right)  # numpy: `+` is or, `*` and
        left, right = self.numeric(left, right)
        folded = self._fold_int(prim, left, right)
        return folded if folded is not None else self.b.emit(prim, left, right)

    def _fold_int(self, prim: Prim, left: Value, right: Value) -> Value | None:
        """Integer arithmetic on constants, done now: tuple positions (``params[2 * k + 1]``)
        and loop bounds (``len(params) // 2``) must be known when sxad compiles."""
        a, c = self.known(left), self.known(right)
        if left.type is not I64 or right.type is not I64 or a is None or c is None:
            return None
        if prim in (Prim.FLOORDIV, Prim.MOD) and c == 0:
            return None
        value = _INT_FOLD[prim](a, c)
        return self.const(value) if -2 ** 63 <= value < 2 ** 63 else None

    @abstractmethod
    def matmul(self, a: Value, c: Value, node: ast.AST) -> Value:
        """``a @ c`` (arrays.py)."""


_BOOL_ARRAY = {Prim.ADD: Prim.OR, Prim.MUL: Prim.AND, Prim.SUB: None}
_INT_FOLD = {Prim.ADD: lambda a, c: a + c, Prim.SUB: lambda a, c: a - c,
             Prim.MUL: lambda a, c: a * c, Prim.FLOORDIV: lambda a, c: a // c,
             Prim.MOD: lambda a, c: a % c}


def _cast(value: Any, source: Type, target: Type) -> Any:
    """A constant converted as the cast op converts at run time: numpy's cast, so ``int(1e300)``
    or ``int(nan)`` is -2**63 (Python's ``int`` would be unbounded, or raise)."""
    with np.errstate(all="ignore"):
        return NUMPY_TYPE[target](NUMPY_TYPE[source](value)).item()
