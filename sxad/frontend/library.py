"""The scalar functions of ``math``, ``numpy`` and the builtins that lower to primitives.

Keyed by the function object itself, so any import alias works (``import numpy as np``,
``from math import sin as s``). Each entry says how to lower a call given its argument values.
"""
from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..ir import BOOL, F32, F64, I64, Prim, Value, dtype_of, is_array

if TYPE_CHECKING:
    from .expressions import Expressions

Lower = Callable[["Expressions", Sequence[Value]], Value]


@dataclass(frozen=True)
class Builtin:
    name: str          # as a user writes it, for messages
    lower: Lower
    min_args: int
    max_args: int | None  # None: any number
    scalar_only: bool = False  # `math.exp`, `float`: Python raises on an array
    instead: str = ""          # a hint for the array case



def _real(prim: Prim) -> Lower:
    """f(x) on floats: ints and bools are converted first (an f32 stays f32)."""
    return lambda lw, xs: lw.b.emit(prim, lw.real(xs[0]))


def _real2(prim: Prim) -> Lower:
    return lambda lw, xs: lw.b.emit(prim, *lw.numeric(xs[0], xs[1], real=True))


def _chain(prim: Prim) -> Lower:
    """max/min/hypot of 2 or more arguments, folded from the left."""
    def lower(lw: "Expressions", xs: Sequence[Value]) -> Value:
        xs = lw.numeric(*xs, real=prim is Prim.HYPOT)
        result = xs[0]
        for x in xs[1:]:
            result = lw.b.emit(prim, result, x)
        return result
    return lower


def _log(lw: "Expressions", xs: Sequence[Value]) -> Value:
    """``math.log(x)``, or ``log(x)/log(base)`` with a base."""
    result = lw.b.log(lw.real(xs[0]))
    if len(xs) == 2:
        result = lw.b.div(*lw.numeric(result, lw.b.log(lw.real(xs[1]))))
    return result


def _log_base(base: float) -> Lower:
    return lambda lw, xs: lw.b.div(*lw.numeric(lw.b.log(lw.real(xs[0])),
                                               lw.const(math.log(base))))


def _abs(lw: "Expressions", xs: Sequence[Value]) -> Value:
    """``abs``: of a numpy bool (an array, or an element of one) that bool, as numpy's
    ``__abs__`` gives; of a Python bool an int."""
    if dtype_of(xs[0].type) is BOOL and (is_array(xs[0].type) or xs[0] in lw.shared.strong):
        return xs[0]
    (x,) = lw.numeric(xs[0])
    return lw.b.abs(x)


def _np_abs(lw: "Expressions", xs: Sequence[Value]) -> Value:
    """``np.abs``: of any bool (a Python one too) that bool."""
    if dtype_of(xs[0].type) is BOOL:
        return xs[0]
    return _abs(lw, xs)


def _sign(lw: "Expressions", xs: Sequence[Value]) -> Value:
    if dtype_of(xs[0].type) is BOOL:   # numpy: no loop for bools (a UFuncTypeError)
        raise lw.fail("numpy's sign is not defined on booleans (use `.astype(int)` first)")
    (x,) = lw.numeric(xs[0])
    return lw.b.sign(x)


def _square(lw: "Expressions", xs: Sequence[Value]) -> Value:
    (x,) = lw.numeric(xs[0])
    return lw.b.mul(x, x)


#: Whether this numpy's ``np.floor``/``np.ceil`` give integers and bools back as they are (numpy
#: ≥ 2.3) rather than as floats.
NP_ROUNDING_KEEPS_INTS = np.floor(np.int64(1)).dtype.kind == "i"


def _rounding(prim: Prim, to_int: bool) -> Lower:
    """``math.floor`` gives an int (FLOOR, then a cast); ``np.floor`` keeps a float's dtype,
    and an int's or a bool's as the installed numpy does (``NP_ROUNDING_KEEPS_INTS``)."""
    def lower(lw: "Expressions", xs: Sequence[Value]) -> Value:
        x = xs[0]
        if not dtype_of(x.type).is_float:
            if to_int:
                return lw.to_dtype(x, I64)
            return lw.copy(x) if NP_ROUNDING_KEEPS_INTS else lw.to_dtype(x, F64)
        y = lw.b.emit(prim, x)
        return lw.to_dtype(y, I64) if to_int else y
    return lower


def _trunc(lw: "Expressions", xs: Sequence[Value]) -> Value:
    return lw.to_dtype(xs[0], I64)  # a cast from float truncates toward zero, as int() does


def _to_float(lw: "Expressions", xs: Sequence[Value]) -> Value:
    return lw.to_dtype(xs[0], F64)


def _to_f32(lw: "Expressions", xs: Sequence[Value]) -> Value:
    return lw.to_dtype(xs[0], F32)


def _logical(prim: Prim) -> Lower:
    """``np.logical_and`` and the like: on the truth (``!= 0``) of each argument."""
    return lambda lw, xs: lw.b.emit(prim, *(lw.mask(x) for x in xs))


def _isnan(lw: "Expressions", xs: Sequence[Value]) -> Value:
    return lw.b.ne(xs[0], xs[0])  # NaN is the one value unequal to itself


def _to_bool(lw: "Expressions", xs: Sequence[Value]) -> Value:
    return lw.truthy(xs[0])


def _pow(lw: "Expressions", xs: Sequence[Value]) -> Value:
    return lw.power(xs[0], xs[1])


def _clip(lw: "Expressions", xs: Sequence[Value]) -> Value:
    x, lo, hi = lw.numeric(*xs)
    return lw.b.min(lw.b.max(x, lo), hi)


def _where(lw: "Expressions", xs: Sequence[Value]) -> Value:
    cond = lw.mask(xs[0])
    a, c = lw.same_type(xs[1], xs[2])
    return lw.b.select(cond, a, c)


_SMOOTH = {  # name in math, name in numpy, primitive
    "exp": ("exp", Prim.EXP), "log1p": ("log1p", Prim.LOG1P), "expm1": ("expm1", Prim.EXPM1),
    "sqrt": ("sqrt", Prim.SQRT), "sin": ("sin", Prim.SIN), "cos": ("cos", Prim.COS),
    "tan": ("tan", Prim.TAN), "asin": ("arcsin", Prim.ASIN), "acos": ("arccos", Prim.ACOS),
    "atan": ("arctan", Prim.ATAN), "sinh": ("sinh", Prim.SINH), "cosh": ("cosh", Prim.COSH),
    "tanh": ("tanh", Prim.TANH),
}


def _entries() -> list[tuple[Any, Builtin]]:
    out: list[tuple[Any, Builtin]] = []

    def add(obj: Any, name: str, lower: Lower, lo: int = 1, hi: int | None = -1) -> None:
        scalar_only = name.startswith("math.") or name in _SCALAR_BUILTINS
        instead = _INSTEAD.get(name, f" (use `np.{name[5:]}`)" if name.startswith("math.") else "")
        out.append((obj, Builtin(name, lower, lo, lo if hi == -1 else hi, scalar_only, instead)))

    for m_name, (np_name, prim) in _SMOOTH.items():
        add(getattr(math, m_name), f"math.{m_name}", _real(prim))
        add(getattr(np, np_name), f"np.{np_name}", _real(prim))
    add(math.log, "math.log", _log, 1, 2)
    add(np.log, "np.log", _log)
    for base in (2, 10):
        add(getattr(math, f"log{base}"), f"math.log{base}", _log_base(base))
        add(getattr(np, f"log{base}"), f"np.log{base}", _log_base(base))
    add(math.atan2, "math.atan2", _real2(Prim.ATAN2), 2)
    add(np.arctan2, "np.arctan2", _real2(Prim.ATAN2), 2)
    add(math.hypot, "math.hypot", _chain(Prim.HYPOT), 2, None)
    add(np.hypot, "np.hypot", _chain(Prim.HYPOT), 2)
    add(math.fabs, "math.fabs", _real(Prim.ABS))
    add(np.fabs, "np.fabs", _real(Prim.ABS))
    add(np.abs, "np.abs", _np_abs)  # np.absolute is the same object
    add(builtins.abs, "abs", _abs)
    add(np.sign, "np.sign", _sign)
    add(np.square, "np.square", _square)
    add(math.pow, "math.pow", _real2(Prim.POW), 2)
    add(np.power, "np.power", _pow, 2)
    add(builtins.pow, "pow", _pow, 2)
    add(math.floor, "math.floor", _rounding(Prim.FLOOR, True))
    add(math.ceil, "math.ceil", _rounding(Prim.CEIL, True))
    add(np.floor, "np.floor", _rounding(Prim.FLOOR, False))
    add(np.ceil, "np.ceil", _rounding(Prim.CEIL, False))
    add(math.trunc, "math.trunc", _trunc)
    add(builtins.max, "max", _chain(Prim.MAX), 2, None)
    add(builtins.min, "min", _chain(Prim.MIN), 2, None)
    add(np.maximum, "np.maximum", _chain(Prim.MAX), 2)
    add(np.minimum, "np.minimum", _chain(Prim.MIN), 2)
    add(np.where, "np.where", _where, 3)
    add(builtins.float, "float", _to_float)
    add(np.float64, "np.float64", _to_float)
    add(builtins.int, "int", _trunc)
    add(np.int64, "np.int64", _trunc)
    add(builtins.bool, "bool", _to_bool)
    add(np.float32, "np.float32", _to_f32)
    add(np.logical_and, "np.logical_and", _logical(Prim.AND), 2)
    add(np.logical_or, "np.logical_or", _logical(Prim.OR), 2)
    add(np.logical_xor, "np.logical_xor", _logical(Prim.NE), 2)
    add(np.logical_not, "np.logical_not", _logical(Prim.NOT))
    add(np.isnan, "np.isnan", _isnan)
    return out


# Builtins that Python applies to numbers only (``max(a, b)`` compares whole arrays).
_SCALAR_BUILTINS = {"max", "min", "float", "int", "bool"}
_INSTEAD = {"max": " (use `np.maximum` elementwise, `np.max` to reduce)",
            "min": " (use `np.minimum` elementwise, `np.min` to reduce)",
            "float": " (use `x.astype(np.float64)`)", "int": " (use `x.astype(np.int64)`)",
            "bool": "", "math.fabs": " (use `np.abs`)", "math.pow": " (use `**`)",
            "math.floor": " (use `np.floor`)", "math.ceil": " (use `np.ceil`)",
            "math.trunc": " (use `np.trunc`)", "math.asin": " (use `np.arcsin`)",
            "math.acos": " (use `np.arccos`)", "math.atan": " (use `np.arctan`)",
            "math.atan2": " (use `np.arctan2`)"}


_TABLE: dict[int, tuple[Any, Builtin]] = {id(obj): (obj, entry) for obj, entry in _entries()}


def lookup(obj: Any) -> Builtin | None:
    """The entry for the function object ``obj``, if it is one sxad knows."""
    found = _TABLE.get(id(obj))
    return found[1] if found is not None and found[0] is obj else None

