"""Floor 2: every primitive's rules, side by side.

For each primitive: its type rule, its evaluation (numpy semantics), its tangent rule
(``jvp``), its adjoint rule (``vjp``), its Python printing and its sympy form. Control flow
(``if``/``for``/``while``) and the tape (``push``/``pop``) are structural: the transforms in
``sxad.ad`` handle them, and their entries here say so.

Rule signatures (``b`` is an ``Emitter`` that appends to the program being built):

``jvp(b, xs, dxs, ys) -> Value | None``  ``dxs[i]`` is ``None`` where ``xs[i]`` has no tangent.
``vjp(b, yb, xs, ys) -> tuple[Value | None, ...]``  one cotangent contribution per argument.
Rules of primitives with attributes (``axes``, ``perm``) also take ``attrs=`` (a dict).

Arrays: every primitive of ``RULES`` also acts elementwise on arrays, with numpy broadcasting
(arguments share one dtype; a scalar broadcasts against any array). Its tangent and adjoint
rules are written once, for scalars; ``_broadcasting`` fits what they give to the shapes:
an adjoint contribution goes through ``unbroadcast(c, like=x)`` (sums over the axes where ``x``
was broadcast), a tangent that may not cover the result's shape through ``broadcast_like``.
Array-only primitives (reductions, shapes, ``matmul``) live in ``ARRAY_RULES``: ``RULES`` is what
the native backend lowers today, ``rule_for`` looks in both.
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .ir import (BOOL, F32, F64, I64, ArrayType, BlockBuilder, Prim, Type, Value, dtype_of,
                 is_array, rank_of)

Jvp = Callable[..., Optional[Value]]
Vjp = Callable[..., tuple]

# Python operator precedence, for the source printer.
PREC_COND, PREC_OR, PREC_AND, PREC_NOT, PREC_CMP = 1, 2, 3, 4, 5
PREC_ADD, PREC_MUL, PREC_UNARY, PREC_POW, PREC_ATOM = 10, 11, 12, 13, 20

NUMPY_TYPE = {F64: np.float64, F32: np.float32, I64: np.int64, BOOL: np.bool_}


class RuleError(TypeError):
    """A primitive was given arguments its type rule rejects, or lacks a rule."""


@dataclass(frozen=True)
class Rule:
    prim: Prim
    arity: int
    type: Callable[..., Type] | None   # type(arg types) or type(arg types, attrs)
    eval: Callable[..., Any] | None
    python: str | None          # format template over the arguments, ``{0}``, ``{1}``
    prec: int = PREC_ATOM       # precedence of the printed form
    sym: Callable[..., Any] | None = None   # sympy form: sym(sp, *args)
    jvp: Jvp | None = None
    vjp: Vjp | None = None
    differentiable: bool = True  # False: the derivative is zero everywhere it exists
    structural: bool = False     # handled by the transforms themselves (regions, tape)
    attrs: tuple[tuple[str, Any], ...] = ()  # the attributes it takes, with their defaults
    # Attrs as text for ``python``. The Python backend also passes ``_nargs`` (the op's argument
    # count) and ``_dtype`` (its result's element type); a rule reads them with a default.
    fields: Callable[[dict], dict[str, str]] | None = None
    array_python: str | None = None  # the Python form on arrays, where it differs
    variadic: bool = False  # takes ``arity`` arguments, then any number more (dims, indices)
    # Argument positions read only for their shape (and static type), never their elements:
    # ``like`` operands. The reverse sweep answers them without storing the value.
    shape_only: frozenset[int] = frozenset()
    # The result has the shape (and type) of this argument: ``set_index``'s ``x``.
    shape_from: int | None = None


RULES: dict[Prim, Rule] = {}        # scalar primitives (elementwise on arrays too)
ARRAY_RULES: dict[Prim, Rule] = {}  # array-only primitives


def rule_for(prim: Prim, transform: str = "evaluation") -> Rule:
    """The rule of ``prim``; a clear error if it lacks the one ``transform`` needs."""
    rule = RULES.get(prim) or ARRAY_RULES.get(prim)
    if rule is None:
        raise RuleError(f"primitive '{prim}' has no rules ({transform} needs them)")
    return rule


# --------------------------------------------------------------------------- type rules

def _shaped(dtype: Type, ts: Sequence[Type]) -> Type:
    """``dtype``, or an array of it with the largest rank among ``ts`` if any is an array."""
    if not any(is_array(t) for t in ts):
        return dtype
    return ArrayType(dtype, max(rank_of(t) for t in ts))


def _same(*allowed: Type, result: Type | None = None) -> Callable[..., Type]:
    """Elementwise: arguments of one dtype in ``allowed`` (scalars or arrays, broadcasting)."""
    def check(ts: Sequence[Type], attrs: Any = None) -> Type:
        dtypes = {dtype_of(t) for t in ts}
        if len(dtypes) != 1 or dtype_of(ts[0]) not in allowed:
            raise RuleError(f"expected {len(ts)} arguments of one type in "
                            f"{', '.join(map(str, allowed))}, got {', '.join(map(str, ts))}")
        return _shaped(result or dtype_of(ts[0]), ts)
    return check


_compare = _same(F64, F32, I64, BOOL, result=BOOL)


def _select(ts: Sequence[Type], attrs: Any = None) -> Type:
    if dtype_of(ts[0]) is not BOOL or dtype_of(ts[1]) != dtype_of(ts[2]):
        raise RuleError(f"select needs (bool, T, T), got {', '.join(map(str, ts))}")
    return _shaped(dtype_of(ts[1]), ts)


NUM = _same(F64, F32, I64)
REAL = _same(F64, F32)
LOGIC = _same(BOOL)


# --------------------------------------------------------------------------- registration

def _register(prim: Prim, arity: int, type_: Any, eval_: Any, python: str | None,
              prec: int = PREC_ATOM, sym: Any = None, jvp: Any = None, vjp: Any = None,
              differentiable: bool = True, structural: bool = False,
              array_python: str | None = None) -> None:
    if arity >= 2 and jvp is not None and not structural:
        jvp, vjp = _broadcasting(prim, jvp, vjp)
    RULES[prim] = Rule(prim, arity, type_, eval_, python, prec, sym, jvp, vjp,
                       differentiable, structural, array_python=array_python)


# Tangent rules that may give a value not covering the result's shape: ``ẋ₀ + ẋ₁`` with only
# ẋ₀ present has ``x₀``'s shape. The others always involve every argument (or ``y``).
_PARTIAL_TANGENT = frozenset({Prim.ADD, Prim.SUB, Prim.MOD})


def _broadcasting(prim: Prim, jvp: Jvp, vjp: Vjp) -> tuple[Jvp, Vjp]:
    """``jvp``/``vjp`` of an elementwise prim, fitted to numpy broadcasting: a tangent is
    broadcast to the result's shape where it may not cover it, an adjoint contribution summed
    back to its argument's shape (``unbroadcast``) unless that is surely the result's shape."""
    def fitted_jvp(b: Emitter, xs, dxs, ys):
        dy = jvp(b, xs, dxs, ys)
        y = ys[0]
        if dy is None or not is_array(y.type):
            return dy
        arrays = [k for k, x in enumerate(xs) if is_array(x.type)]
        covers = dy.type == y.type and (len(arrays) == 1 or (
            prim not in _PARTIAL_TANGENT or all(dxs[k] is not None for k in arrays)))
        return dy if covers else b.broadcast_like(dy, y)

    def fitted_vjp(b: Emitter, yb, xs, ys):
        bars = vjp(b, yb, xs, ys)
        if not is_array(ys[0].type):
            return bars
        arrays = [x for x in xs if is_array(x.type)]
        return tuple(c if c is None or (arrays == [x] and c.type == x.type)
                     else b.unbroadcast(c, x) for c, x in zip(bars, xs))
    fitted_jvp.__doc__, fitted_vjp.__doc__ = jvp.__doc__, vjp.__doc__
    return fitted_jvp, fitted_vjp


def _zero_jvp(b: "Emitter", xs: Sequence[Value], dxs: Sequence, ys: Sequence[Value]) -> None:
    """ẏ = 0"""
    return None


def _zero_vjp(b: "Emitter", yb: Value, xs: Sequence[Value], ys: Sequence[Value]) -> tuple:
    """x̄ += 0"""
    return (None,) * len(xs)


def smooth_unary(prim: Prim, eval_: Any, python: str, sym: Any,
                 derivative: Callable[["Emitter", Value, Value], Value],
                 prec: int = PREC_ATOM) -> None:
    """A real function y = f(x) whose rules are ẏ = ẋ·f'(x) and x̄ += ȳ·f'(x)."""
    def jvp(b: Emitter, xs, dxs, ys):
        return b.mul(dxs[0], derivative(b, xs[0], ys[0]))

    def vjp(b: Emitter, yb, xs, ys):
        return (b.mul(yb, derivative(b, xs[0], ys[0])),)

    jvp.__doc__ = f"ẏ = ẋ · {derivative.__doc__}"
    vjp.__doc__ = f"x̄ += ȳ · {derivative.__doc__}"
    _register(prim, 1, REAL, eval_, python, prec, sym, jvp, vjp)


def quotient_unary(prim: Prim, eval_: Any, python: str, sym: Any,
                   denominator: Callable[["Emitter", Value, Value], Value]) -> None:
    """A real function whose derivative is 1/g(x): ẏ = ẋ/g(x) and x̄ += ȳ/g(x)."""
    def jvp(b: Emitter, xs, dxs, ys):
        return b.div(dxs[0], denominator(b, xs[0], ys[0]))

    def vjp(b: Emitter, yb, xs, ys):
        return (b.div(yb, denominator(b, xs[0], ys[0])),)

    jvp.__doc__ = f"ẏ = ẋ / ({denominator.__doc__})"
    vjp.__doc__ = f"x̄ += ȳ / ({denominator.__doc__})"
    _register(prim, 1, REAL, eval_, python, PREC_ATOM, sym, jvp, vjp)


def _sum(b: "Emitter", terms: Sequence[Value | None]) -> Value | None:
    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for term in present[1:]:
        total = b.add(total, term)
    return total


# --------------------------------------------------------------------------- the rules

def _const_eval(op: Any) -> Any:
    return NUMPY_TYPE[op.results[0].type](op.attr("value"))


_register(Prim.CONST, 0, None, None, None, differentiable=False)


def _cast_jvp(b, xs, dxs, ys):
    """ẏ = cast(ẋ) between real types; zero otherwise"""
    return b.cast(dxs[0], ys[0].type) if ys[0].type.is_float and xs[0].type.is_float else None


def _cast_vjp(b, yb, xs, ys):
    """x̄ += cast(ȳ) between real types; zero otherwise"""
    return (b.cast(yb, xs[0].type) if xs[0].type.is_float else None,)


_register(Prim.CAST, 1, None, None, "{t}({0})", PREC_ATOM, None, _cast_jvp, _cast_vjp,
          array_python="{0}.astype({t})")


def _add_jvp(b, xs, dxs, ys):
    """ẏ = ẋ₀ + ẋ₁"""
    return _sum(b, dxs)


def _add_vjp(b, yb, xs, ys):
    """x̄₀ += ȳ; x̄₁ += ȳ"""
    return (yb, yb)


def _sub_jvp(b, xs, dxs, ys):
    """ẏ = ẋ₀ − ẋ₁"""
    if dxs[1] is None:
        return dxs[0]
    return b.neg(dxs[1]) if dxs[0] is None else b.sub(dxs[0], dxs[1])


def _sub_vjp(b, yb, xs, ys):
    """x̄₀ += ȳ; x̄₁ += −ȳ"""
    return (yb, b.neg(yb))


def _mul_jvp(b, xs, dxs, ys):
    """ẏ = ẋ₀·x₁ + x₀·ẋ₁"""
    return _sum(b, [dxs[0] and b.mul(dxs[0], xs[1]), dxs[1] and b.mul(xs[0], dxs[1])])


def _mul_vjp(b, yb, xs, ys):
    """x̄₀ += ȳ·x₁; x̄₁ += ȳ·x₀"""
    return (b.mul(yb, xs[1]), b.mul(yb, xs[0]))


def _div_jvp(b, xs, dxs, ys):
    """ẏ = (ẋ₀ − y·ẋ₁) / x₁"""
    return b.div(_sub_jvp(b, xs, [dxs[0], dxs[1] and b.mul(ys[0], dxs[1])], ys), xs[1])


def _div_vjp(b, yb, xs, ys):
    """x̄₀ += ȳ / x₁; x̄₁ += −ȳ·y / x₁"""
    q = b.div(yb, xs[1])
    return (q, b.neg(b.mul(q, ys[0])))


def _neg_jvp(b, xs, dxs, ys):
    """ẏ = −ẋ"""
    return b.neg(dxs[0])


def _neg_vjp(b, yb, xs, ys):
    """x̄ += −ȳ"""
    return (b.neg(yb),)


def _mod_jvp(b, xs, dxs, ys):
    """ẏ = ẋ₀ − floor(x₀/x₁)·ẋ₁"""
    return _sub_jvp(b, xs, [dxs[0], dxs[1] and b.mul(b.floordiv(xs[0], xs[1]), dxs[1])], ys)


def _mod_vjp(b, yb, xs, ys):
    """x̄₀ += ȳ; x̄₁ += −ȳ·floor(x₀/x₁)"""
    return (yb, b.neg(b.mul(yb, b.floordiv(xs[0], xs[1]))))


def _pow_jvp(b, xs, dxs, ys):
    """ẏ = ẋ·p·x^(p−1) + ṗ·y·log(x)"""
    x, p = xs
    return _sum(b, [dxs[0] and b.mul(dxs[0], _pow_dx(b, x, p)),
                    dxs[1] and b.mul(dxs[1], b.mul(ys[0], b.log(x)))])


def _pow_vjp(b, yb, xs, ys):
    """x̄ += ȳ·p·x^(p−1); p̄ += ȳ·y·log(x)"""
    x, p = xs
    return (b.mul(yb, _pow_dx(b, x, p)), b.mul(yb, b.mul(ys[0], b.log(x))))


def _pow_dx(b: "Emitter", x: Value, p: Value) -> Value:
    return b.mul(p, b.pow(x, b.sub(p, b.const_like(1.0, p))))


def _atan2_vjp(b, yb, xs, ys):
    """ā += ȳ·c/(a²+c²); c̄ += −ȳ·a/(a²+c²)  for y = atan2(a, c)"""
    a, c = xs
    q = b.div(yb, b.add(b.mul(a, a), b.mul(c, c)))
    return (b.mul(q, c), b.neg(b.mul(q, a)))


def _atan2_jvp(b, xs, dxs, ys):
    """ẏ = (ȧ·c − a·ċ)/(a²+c²)"""
    a, c = xs
    num = _sub_jvp(b, xs, [dxs[0] and b.mul(dxs[0], c), dxs[1] and b.mul(a, dxs[1])], ys)
    return b.div(num, b.add(b.mul(a, a), b.mul(c, c)))


def _hypot_jvp(b, xs, dxs, ys):
    """ẏ = (ȧ·a + ċ·c)/y"""
    return b.div(_sum(b, [d and b.mul(d, x) for d, x in zip(dxs, xs)]), ys[0])


def _hypot_vjp(b, yb, xs, ys):
    """ā += ȳ·a/y; c̄ += ȳ·c/y"""
    q = b.div(yb, ys[0])
    return (b.mul(q, xs[0]), b.mul(q, xs[1]))


def _pick_first(b: "Emitter", prim: Prim, xs: Sequence[Value]) -> Value:
    """Whether max/min takes its first argument (ties go to the first)."""
    return b.emit(Prim.GE if prim is Prim.MAX else Prim.LE, xs[0], xs[1])


def _extremum(prim: Prim):
    def jvp(b, xs, dxs, ys):
        """ẏ = ẋ of the argument chosen"""
        zero = b.zero(dtype_of(ys[0].type))
        return b.select(_pick_first(b, prim, xs), dxs[0] or zero, dxs[1] or zero)

    def vjp(b, yb, xs, ys):
        """x̄ of the argument chosen += ȳ"""
        first, zero = _pick_first(b, prim, xs), b.zero(dtype_of(yb.type))
        return (b.select(first, yb, zero), b.select(first, zero, yb))
    return jvp, vjp


def _select_jvp(b, xs, dxs, ys):
    """ẏ = ȧ if c else ḃ"""
    zero = b.zero(dtype_of(ys[0].type))
    return b.select(xs[0], dxs[1] or zero, dxs[2] or zero)


def _select_vjp(b, yb, xs, ys):
    """ā += ȳ if c else 0; b̄ += 0 if c else ȳ"""
    zero = b.zero(dtype_of(yb.type))
    return (None, b.select(xs[0], yb, zero), b.select(xs[0], zero, yb))


def _abs_jvp(b, xs, dxs, ys):
    """ẏ = ẋ·sign(x)"""
    return b.mul(dxs[0], b.sign(xs[0]))


def _abs_vjp(b, yb, xs, ys):
    """x̄ += ȳ·sign(x)"""
    return (b.mul(yb, b.sign(xs[0])),)


def _np_select(c: Any, a: Any, e: Any) -> Any:
    if np.ndim(c) or np.ndim(a) or np.ndim(e):
        return np.where(c, a, e)
    return a if c else e


def _np_floordiv(a: Any, c: Any) -> Any:
    return np.floor_divide(a, c)


_register(Prim.ADD, 2, NUM, np.add, "{0} + {1}", PREC_ADD, lambda sp, a, c: a + c,
          _add_jvp, _add_vjp)
_register(Prim.SUB, 2, NUM, np.subtract, "{0} - {1}", PREC_ADD, lambda sp, a, c: a - c,
          _sub_jvp, _sub_vjp)
_register(Prim.MUL, 2, NUM, np.multiply, "{0} * {1}", PREC_MUL, lambda sp, a, c: a * c,
          _mul_jvp, _mul_vjp)
_register(Prim.DIV, 2, REAL, np.divide, "{0} / {1}", PREC_MUL, lambda sp, a, c: a / c,
          _div_jvp, _div_vjp)
_register(Prim.NEG, 1, NUM, np.negative, "-{0}", PREC_UNARY, lambda sp, a: -a,
          _neg_jvp, _neg_vjp)
_register(Prim.FLOORDIV, 2, NUM, _np_floordiv, "{0} // {1}", PREC_MUL,
          lambda sp, a, c: sp.floor(a / c), _zero_jvp, _zero_vjp, differentiable=False)
_register(Prim.MOD, 2, NUM, np.mod, "{0} % {1}", PREC_MUL,
          lambda sp, a, c: a - c * sp.floor(a / c), _mod_jvp, _mod_vjp)
_register(Prim.POW, 2, NUM, np.power, "{0} ** {1}", PREC_POW, lambda sp, a, c: a ** c,
          _pow_jvp, _pow_vjp)
_register(Prim.ATAN2, 2, REAL, np.arctan2, "np.arctan2({0}, {1})", PREC_ATOM,
          lambda sp, a, c: sp.atan2(a, c), _atan2_jvp, _atan2_vjp)
_register(Prim.HYPOT, 2, REAL, np.hypot, "np.hypot({0}, {1})", PREC_ATOM,
          lambda sp, a, c: sp.sqrt(a * a + c * c), _hypot_jvp, _hypot_vjp)
_register(Prim.MAX, 2, NUM, np.maximum, "np.maximum({0}, {1})", PREC_ATOM,
          lambda sp, a, c: sp.Max(a, c), *_extremum(Prim.MAX))
_register(Prim.MIN, 2, NUM, np.minimum, "np.minimum({0}, {1})", PREC_ATOM,
          lambda sp, a, c: sp.Min(a, c), *_extremum(Prim.MIN))
_register(Prim.ABS, 1, NUM, np.abs, "abs({0})", PREC_ATOM, lambda sp, a: sp.Abs(a),
          _abs_jvp, _abs_vjp)
_register(Prim.SIGN, 1, NUM, np.sign, "np.sign({0})", PREC_ATOM, lambda sp, a: sp.sign(a),
          _zero_jvp, _zero_vjp, differentiable=False)
_register(Prim.FLOOR, 1, REAL, np.floor, "np.floor({0})", PREC_ATOM,
          lambda sp, a: sp.floor(a), _zero_jvp, _zero_vjp, differentiable=False)
_register(Prim.CEIL, 1, REAL, np.ceil, "np.ceil({0})", PREC_ATOM,
          lambda sp, a: sp.ceiling(a), _zero_jvp, _zero_vjp, differentiable=False)
_register(Prim.SELECT, 3, _select, _np_select, "{1} if {0} else {2}",
          PREC_COND, lambda sp, c, a, e: sp.Piecewise((a, c), (e, True)),
          _select_jvp, _select_vjp, array_python="np.where({0}, {1}, {2})")

for _prim, _fn, _text, _prec in [
        (Prim.LT, np.less, "{0} < {1}", PREC_CMP), (Prim.LE, np.less_equal, "{0} <= {1}", PREC_CMP),
        (Prim.GT, np.greater, "{0} > {1}", PREC_CMP),
        (Prim.GE, np.greater_equal, "{0} >= {1}", PREC_CMP),
        (Prim.EQ, np.equal, "{0} == {1}", PREC_CMP), (Prim.NE, np.not_equal, "{0} != {1}", PREC_CMP)]:
    _register(_prim, 2, _compare, _fn, _text, _prec, None, _zero_jvp, _zero_vjp,
              differentiable=False)
_register(Prim.AND, 2, LOGIC, np.logical_and, "{0} and {1}", PREC_AND, None,
          _zero_jvp, _zero_vjp, differentiable=False,
          array_python="np.logical_and({0}, {1})")
_register(Prim.OR, 2, LOGIC, np.logical_or, "{0} or {1}", PREC_OR, None,
          _zero_jvp, _zero_vjp, differentiable=False, array_python="np.logical_or({0}, {1})")
_register(Prim.NOT, 1, LOGIC, np.logical_not, "not {0}", PREC_NOT, None,
          _zero_jvp, _zero_vjp, differentiable=False, array_python="np.logical_not({0})")


def _d_exp(b, x, y):
    """exp(x), reusing y"""
    return y


def _d_expm1(b, x, y):
    """(y + 1)"""
    return b.add(y, b.const_like(1.0, y))


def _d_sin(b, x, y):
    """cos(x)"""
    return b.cos(x)


def _d_cos(b, x, y):
    """−sin(x)"""
    return b.neg(b.sin(x))


def _d_tan(b, x, y):
    """(1 + y²)"""
    return b.add(b.const_like(1.0, y), b.mul(y, y))


def _d_sinh(b, x, y):
    """cosh(x)"""
    return b.cosh(x)


def _d_cosh(b, x, y):
    """sinh(x)"""
    return b.sinh(x)


def _d_tanh(b, x, y):
    """(1 − y²)"""
    return b.sub(b.const_like(1.0, y), b.mul(y, y))


def _d_logistic(b, x, y):
    """y·(1 − y)"""
    return b.mul(y, b.sub(b.const_like(1.0, y), y))


def _logistic(x: Any) -> Any:
    """1 / (1 + e^(−x)), evaluated as written (numpy's float32 stays float32)."""
    return 1.0 / (1.0 + np.exp(np.negative(x)))


def _den_log(b, x, y):
    """x"""
    return x


def _den_log1p(b, x, y):
    """1 + x"""
    return b.add(b.const_like(1.0, x), x)


def _den_sqrt(b, x, y):
    """2·y"""
    return b.mul(b.const_like(2.0, y), y)


def _den_asin(b, x, y):
    """√(1 − x²)"""
    return b.sqrt(b.sub(b.const_like(1.0, x), b.mul(x, x)))


def _den_acos(b, x, y):
    """−√(1 − x²)"""
    return b.neg(_den_asin(b, x, y))


def _den_atan(b, x, y):
    """1 + x²"""
    return b.add(b.const_like(1.0, x), b.mul(x, x))


smooth_unary(Prim.EXP, np.exp, "np.exp({0})", lambda sp, a: sp.exp(a), _d_exp)
smooth_unary(Prim.EXPM1, np.expm1, "np.expm1({0})", lambda sp, a: sp.exp(a) - 1, _d_expm1)
smooth_unary(Prim.SIN, np.sin, "np.sin({0})", lambda sp, a: sp.sin(a), _d_sin)
smooth_unary(Prim.COS, np.cos, "np.cos({0})", lambda sp, a: sp.cos(a), _d_cos)
smooth_unary(Prim.TAN, np.tan, "np.tan({0})", lambda sp, a: sp.tan(a), _d_tan)
smooth_unary(Prim.SINH, np.sinh, "np.sinh({0})", lambda sp, a: sp.sinh(a), _d_sinh)
smooth_unary(Prim.COSH, np.cosh, "np.cosh({0})", lambda sp, a: sp.cosh(a), _d_cosh)
smooth_unary(Prim.TANH, np.tanh, "np.tanh({0})", lambda sp, a: sp.tanh(a), _d_tanh)
smooth_unary(Prim.LOGISTIC, _logistic, "1.0 / (1.0 + np.exp(-{0}))",
             lambda sp, a: 1 / (1 + sp.exp(-a)), _d_logistic, prec=PREC_MUL)
quotient_unary(Prim.LOG, np.log, "np.log({0})", lambda sp, a: sp.log(a), _den_log)
quotient_unary(Prim.LOG1P, np.log1p, "np.log1p({0})", lambda sp, a: sp.log(1 + a), _den_log1p)
quotient_unary(Prim.SQRT, np.sqrt, "np.sqrt({0})", lambda sp, a: sp.sqrt(a), _den_sqrt)
quotient_unary(Prim.ASIN, np.arcsin, "np.arcsin({0})", lambda sp, a: sp.asin(a), _den_asin)
quotient_unary(Prim.ACOS, np.arccos, "np.arccos({0})", lambda sp, a: sp.acos(a), _den_acos)
quotient_unary(Prim.ATAN, np.arctan, "np.arctan({0})", lambda sp, a: sp.atan(a), _den_atan)

for _prim in (Prim.IF, Prim.FOR, Prim.WHILE, Prim.PUSH, Prim.POP):
    _register(_prim, -1, None, None, None, structural=True)


# --------------------------------------------------------------------------- array-only rules

def _register_array(prim: Prim, arity: int, type_: Any, eval_: Any, python: str,
                    jvp: Any, vjp: Any, prec: int = PREC_ATOM, differentiable: bool = True,
                    attrs: tuple[tuple[str, Any], ...] = (),
                    fields: Callable[[dict], dict[str, str]] | None = None,
                    shape_only: frozenset[int] = frozenset(),
                    shape_from: int | None = None) -> None:
    ARRAY_RULES[prim] = Rule(prim, arity, type_, eval_, python, prec, None, jvp, vjp,
                             differentiable, attrs=attrs, fields=fields, shape_only=shape_only,
                             shape_from=shape_from)


def _array_arg(prim: str, t: Type, dtypes: Sequence[Type] = (F64, F32, I64, BOOL)) -> ArrayType:
    if not is_array(t) or t.dtype not in dtypes:
        raise RuleError(f"{prim} needs an array of {', '.join(map(str, dtypes))}, got {t}")
    return t


def _axes(attrs: dict, rank: int) -> tuple[int, ...]:
    """The ``axes`` attribute checked against ``rank``; None means every axis."""
    axes = attrs.get("axes")
    if axes is None:
        return tuple(range(rank))
    axes = tuple(axes)
    if list(axes) != sorted(set(axes)) or any(not 0 <= a < rank for a in axes):
        raise RuleError(f"axes {axes} are not sorted distinct axes of a rank-{rank} array")
    return axes


def _scalar_or_array(dtype: Type, rank: int) -> Type:
    """Rank 0 is a scalar: what a full reduction or ``vector @ vector`` gives, as in numpy."""
    return ArrayType(dtype, rank) if rank else dtype


# unbroadcast / broadcast_like: the pair every broadcasting op's derivative goes through

def np_unbroadcast(ct: Any, like: Any) -> Any:
    """``ct`` summed over the axes where an array of ``like``'s shape was broadcast to it."""
    shape = np.shape(like)
    ct = np.asarray(ct)
    lead = ct.ndim - len(shape)
    if lead:
        ct = ct.sum(axis=tuple(range(lead)))
    ones = tuple(k for k, n in enumerate(shape) if n == 1 and ct.shape[k] != 1)
    return ct.sum(axis=ones, keepdims=True) if ones else ct


def _unbroadcast_type(ts: Sequence[Type], attrs: Any = None) -> Type:
    ct, like = ts
    if dtype_of(ct) != dtype_of(like) or rank_of(ct) < rank_of(like):
        raise RuleError(f"unbroadcast needs a cotangent of the like's dtype and at least its "
                        f"rank, got {ct}, {like}")
    return like


def _unbroadcast_jvp(b, xs, dxs, ys):
    """ẏ = unbroadcast(ċt, like)"""
    return dxs[0] and b.unbroadcast(dxs[0], xs[1])


def _unbroadcast_vjp(b, yb, xs, ys):
    """c̄t += broadcast_like(ȳ, ct)"""
    return (b.broadcast_like(yb, xs[0]), None)


def _broadcast_like_type(ts: Sequence[Type], attrs: Any = None) -> Type:
    x, like = ts
    if not is_array(like) or rank_of(x) > like.rank:
        raise RuleError(f"broadcast_like needs an array of at least the rank of {x}, got {like}")
    return ArrayType(dtype_of(x), like.rank)


def _broadcast_like_jvp(b, xs, dxs, ys):
    """ẏ = broadcast_like(ẋ, like)"""
    return dxs[0] and b.broadcast_like(dxs[0], xs[1])


def _broadcast_like_vjp(b, yb, xs, ys):
    """x̄ += unbroadcast(ȳ, x)"""
    return (b.unbroadcast(yb, xs[0]), None)


_register_array(Prim.UNBROADCAST, 2, _unbroadcast_type, np_unbroadcast,
                "_unbroadcast({0}, {1})", _unbroadcast_jvp, _unbroadcast_vjp,
                shape_only=frozenset({1}), shape_from=1)
_register_array(Prim.BROADCAST_LIKE, 2, _broadcast_like_type,
                lambda x, like: np.broadcast_to(x, np.shape(like)),
                "np.broadcast_to({0}, np.shape({1}))", _broadcast_like_jvp, _broadcast_like_vjp,
                shape_only=frozenset({1}), shape_from=1)


# shapes

def _expand_dims_type(ts: Sequence[Type], attrs: dict) -> Type:
    (x,) = ts
    rank = rank_of(x) + len(attrs["axes"])
    if rank > 4:
        raise RuleError(f"expand_dims of {x} by {attrs['axes']} passes rank 4")
    _axes(attrs, rank)
    return ArrayType(dtype_of(x), rank)


def _expand_dims_jvp(b, xs, dxs, ys, attrs):
    """ẏ = expand_dims(ẋ)"""
    return dxs[0] and b.expand_dims(dxs[0], **attrs)


def _expand_dims_vjp(b, yb, xs, ys, attrs):
    """x̄ += sum(ȳ over the new axes)"""
    return (b.reduce_sum(yb, **attrs),)


def _dim_type(ts: Sequence[Type], attrs: dict) -> Type:
    x = _array_arg("dim", ts[0])
    if not 0 <= attrs["axis"] < x.rank:
        raise RuleError(f"dim: no axis {attrs['axis']} in {x}")
    return I64


def _zeros_like_type(ts: Sequence[Type], attrs: Any = None) -> Type:
    return _array_arg("zeros_like", ts[0])


def _transpose_type(ts: Sequence[Type], attrs: dict) -> Type:
    x = _array_arg("transpose", ts[0])
    if sorted(_perm(attrs, x.rank)) != list(range(x.rank)):
        raise RuleError(f"transpose: {attrs['perm']} is no permutation of {x.rank} axes")
    return x


def _perm(attrs: dict, rank: int) -> tuple[int, ...]:
    perm = attrs.get("perm")
    return tuple(reversed(range(rank))) if perm is None else tuple(perm)


def _transpose_jvp(b, xs, dxs, ys, attrs):
    """ẏ = transpose(ẋ, perm)"""
    return dxs[0] and b.transpose(dxs[0], **attrs)


def _transpose_vjp(b, yb, xs, ys, attrs):
    """x̄ += transpose(ȳ, perm⁻¹)"""
    perm = _perm(attrs, rank_of(xs[0].type))
    return (b.transpose(yb, perm=tuple(int(k) for k in np.argsort(perm))),)


def _axis_text(attrs: dict) -> dict[str, str]:
    axes, keep = attrs.get("axes"), attrs.get("keepdims")
    text = "" if axes is None else f", axis={axes[0] if len(axes) == 1 else tuple(axes)}"
    return {"axis": text + (", keepdims=True" if keep else "")}


_register_array(Prim.EXPAND_DIMS, 1, _expand_dims_type,
                lambda x, axes: np.expand_dims(x, tuple(axes)), "np.expand_dims({0}, {axes})",
                _expand_dims_jvp, _expand_dims_vjp, attrs=(("axes", (0,)),),
                fields=lambda a: {"axes": str(tuple(a["axes"]))})
_register_array(Prim.DIM, 1, _dim_type, lambda x, axis: np.int64(np.shape(x)[axis]),
                "{0}.shape[{axis}]", _zero_jvp, _zero_vjp, differentiable=False,
                attrs=(("axis", 0),), fields=lambda a: {"axis": str(a["axis"])},
                shape_only=frozenset({0}))
_register_array(Prim.ZEROS_LIKE, 1, _zeros_like_type, np.zeros_like, "np.zeros_like({0})",
                _zero_jvp, _zero_vjp, differentiable=False, shape_only=frozenset({0}),
                shape_from=0)
_register_array(Prim.TRANSPOSE, 1, _transpose_type,
                lambda x, perm: np.transpose(x, perm), "np.transpose({0}{perm})",
                _transpose_jvp, _transpose_vjp, attrs=(("perm", None),),
                fields=lambda a: {"perm": "" if a["perm"] is None else f", {tuple(a['perm'])}"})


# reductions

def _reduce_type(name: str, dtypes: Sequence[Type]) -> Callable[..., Type]:
    def check(ts: Sequence[Type], attrs: dict) -> Type:
        x = _array_arg(name, ts[0], dtypes)
        axes = _axes(attrs, x.rank)
        if attrs["keepdims"]:
            return x
        return _scalar_or_array(x.dtype, x.rank - len(axes))
    return check


def _kept(b: "Emitter", y: Value, x: Value, attrs: dict) -> Value:
    """A reduction's result (or its cotangent) with the reduced axes back, as size 1."""
    if attrs["keepdims"]:
        return y
    return b.expand_dims(y, axes=_axes(attrs, rank_of(x.type)))


def _sum_jvp(b, xs, dxs, ys, attrs):
    """ẏ = sum(ẋ)"""
    return dxs[0] and b.reduce_sum(dxs[0], **attrs)


def _sum_vjp(b, yb, xs, ys, attrs):
    """x̄ += ȳ broadcast back over the reduced axes"""
    return (b.broadcast_like(_kept(b, yb, xs[0], attrs), xs[0]),)


def _argmax_weights(b: "Emitter", x: Value, y: Value, attrs: dict) -> Value:
    """1/k where x equals the extremum of its slice (k of them tie there), else 0."""
    mask = b.cast(b.eq(x, _kept(b, y, x, attrs)), x.type)
    count = b.reduce_sum(mask, axes=attrs["axes"], keepdims=True)
    return b.div(mask, count)


def _extremum_jvp(b, xs, dxs, ys, attrs):
    """ẏ = sum(w·ẋ), w = 1/k at the k positions equal to the extremum, else 0"""
    if dxs[0] is None:
        return None
    return b.reduce_sum(b.mul(_argmax_weights(b, xs[0], ys[0], attrs), dxs[0]), **attrs)


def _extremum_vjp(b, yb, xs, ys, attrs):
    """x̄ += w·ȳ, w = 1/k at the k positions equal to the extremum (ties split evenly)"""
    return (b.mul(_argmax_weights(b, xs[0], ys[0], attrs), _kept(b, yb, xs[0], attrs)),)


def _prod_jvp(b, xs, dxs, ys, attrs):
    """ẏ = sum(ẋ·y/x)  (undefined where some x = 0)"""
    x = xs[0]
    if dxs[0] is None:
        return None
    return b.reduce_sum(b.div(b.mul(dxs[0], _kept(b, ys[0], x, attrs)), x), **attrs)


def _prod_vjp(b, yb, xs, ys, attrs):
    """x̄ += ȳ·y/x  (undefined where some x = 0)"""
    x = xs[0]
    return (b.div(_kept(b, b.mul(yb, ys[0]), x, attrs), x),)


_REDUCE_ATTRS = (("axes", None), ("keepdims", False))
for _prim, _fn, _jvp, _vjp in [(Prim.REDUCE_SUM, "sum", _sum_jvp, _sum_vjp),
                               (Prim.REDUCE_MAX, "max", _extremum_jvp, _extremum_vjp),
                               (Prim.REDUCE_MIN, "min", _extremum_jvp, _extremum_vjp),
                               (Prim.REDUCE_PROD, "prod", _prod_jvp, _prod_vjp)]:
    _register_array(_prim, 1, _reduce_type(_fn, (F64, F32, I64)),
                    lambda x, axes, keepdims, _f=getattr(np, _fn): _f(
                        x, axis=None if axes is None else tuple(axes), keepdims=keepdims),
                    f"np.{_fn}({{0}}{{axis}})", _jvp, _vjp, attrs=_REDUCE_ATTRS,
                    fields=_axis_text)


# linear algebra

def _matmul_type(ts: Sequence[Type], attrs: Any = None) -> Type:
    a, c = ts
    ranks = (rank_of(a), rank_of(c))
    if dtype_of(a) != dtype_of(c) or dtype_of(a) not in (F64, F32, I64) or \
            not (is_array(a) and is_array(c)) or ranks not in _MATMUL_RANK:
        raise RuleError(f"matmul needs vectors or matrices of one dtype, got {a}, {c}")
    return _scalar_or_array(a.dtype, _MATMUL_RANK[ranks])


_MATMUL_RANK = {(1, 1): 0, (2, 1): 1, (1, 2): 1, (2, 2): 2}


def _matmul_jvp(b, xs, dxs, ys):
    """ẏ = ȧ·c + a·ċ"""
    a, c = xs
    return _sum(b, [dxs[0] and b.matmul(dxs[0], c), dxs[1] and b.matmul(a, dxs[1])])


def _outer(b: "Emitter", u: Value, v: Value) -> Value:
    """u ⊗ v for vectors: u[:, None] · v[None, :]"""
    return b.mul(b.expand_dims(u, axes=(1,)), b.expand_dims(v, axes=(0,)))


def _matmul_vjp(b, yb, xs, ys):
    """ā += ȳ·cᵀ; c̄ += aᵀ·ȳ  (outer products and scalings for the vector cases)"""
    a, c = xs
    ranks = (rank_of(a.type), rank_of(c.type))
    if ranks == (1, 1):
        return (b.mul(yb, c), b.mul(yb, a))
    if ranks == (2, 1):
        return (_outer(b, yb, c), b.matmul(yb, a))
    if ranks == (1, 2):
        return (b.matmul(c, yb), _outer(b, a, yb))
    return (b.matmul(yb, b.transpose(c)), b.matmul(b.transpose(a), yb))


_register_array(Prim.MATMUL, 2, _matmul_type, np.matmul, "{0} @ {1}", _matmul_jvp,
                _matmul_vjp, prec=PREC_MUL)


# --------------------------------------------------------------------------- emitter

class Emitter(BlockBuilder):
    """A block builder that types each op by its rule: ``b.mul(x, y)``, ``b.const(1.0)``,
    ``b.reduce_sum(x, axes=(0,))``."""

    def emit(self, prim: Prim, *args: Value, hint: str = "", **attrs: Any) -> Value:
        rule = rule_for(prim)
        unknown = set(attrs) - {k for k, _ in rule.attrs}
        if unknown:
            raise RuleError(f"{prim} takes no attribute {', '.join(sorted(unknown))}")
        full = tuple((k, _attr_value(attrs.get(k, default))) for k, default in rule.attrs)
        try:
            result_type = _type_of(rule, [a.type for a in args], full)
        except RuleError as err:
            raise RuleError(f"{prim}: {err}") from None
        return self.op(prim, args, [result_type], attrs=full, hints=[hint])[0]

    def const(self, value: Any, type_: Type | None = None, hint: str = "") -> Value:
        if type_ is None:
            type_ = BOOL if isinstance(value, (bool, np.bool_)) else (
                I64 if isinstance(value, (int, np.integer)) else F64)
        value = _PYTHON[type_](NUMPY_TYPE[type_](value))  # an f32 constant holds an f32 value
        return self.op(Prim.CONST, (), [type_], attrs=[("value", value)], hints=[hint])[0]

    def const_like(self, value: Any, like: Value, hint: str = "") -> Value:
        """A scalar constant of ``like``'s element type (it broadcasts against ``like``)."""
        return self.const(value, dtype_of(like.type), hint)

    def zero(self, type_: Type) -> Value:
        return self.const(0, type_)

    def zeros_like(self, value: Value, hint: str = "") -> Value:
        """A zero of ``value``'s type and shape: a constant for a scalar."""
        if not is_array(value.type):
            return self.const(0, value.type, hint)
        return self.emit(Prim.ZEROS_LIKE, value, hint=hint)

    def cast(self, value: Value, type_: Type, hint: str = "") -> Value:
        """``value`` as ``type_``; for an array, ``type_`` may name the element type alone."""
        if is_array(value.type) and not is_array(type_):
            type_ = ArrayType(type_, value.type.rank)
        if value.type == type_:
            return value
        return self.op(Prim.CAST, (value,), [type_], hints=[hint])[0]


_PYTHON = {F64: float, F32: float, I64: int, BOOL: bool}


def _attr_value(value: Any) -> Any:
    """Attributes are hashable plain data: axes as tuples of ints, specs of strings."""
    if isinstance(value, (list, tuple)):
        return tuple(v if isinstance(v, str) else int(v) for v in value)
    return value


def _type_of(rule: Rule, types: list[Type], attrs: tuple[tuple[str, Any], ...]) -> Type:
    if rule.attrs:
        return rule.type(types, dict(attrs))
    return rule.type(types)


def rule_attrs(rule: Rule, op: Any) -> dict[str, Any]:
    """The keyword arguments ``op``'s derivative rules take: ``attrs=`` if it has any."""
    return {"attrs": dict(op.attrs)} if rule.attrs else {}


def _method(prim: Prim) -> Callable[..., Value]:
    def method(self: Emitter, *args: Value, hint: str = "", **attrs: Any) -> Value:
        return self.emit(prim, *args, hint=hint, **attrs)
    method.__name__ = prim.value
    return method


for _prim, _rule in [*RULES.items(), *ARRAY_RULES.items()]:
    _name = _prim.value + ("_" if keyword.iskeyword(_prim.value) else "")
    if _rule.type is not None and _prim is not Prim.CAST and not hasattr(Emitter, _name):
        setattr(Emitter, _name, _method(_prim))


def evaluate(op: Any, args: Sequence[Any]) -> Any:
    """The value of an op on numpy values (the interpreter's reference semantics): numpy
    scalars for scalar types, ndarrays of the exact dtype for array types."""
    result = op.results[0].type
    if op.prim is Prim.CONST:
        return _const_eval(op)
    if op.prim is Prim.CAST:
        if is_array(result):
            return np.asarray(args[0]).astype(NUMPY_TYPE[result.dtype])
        return NUMPY_TYPE[result](args[0])
    rule = rule_for(op.prim)
    value = rule.eval(*args, **dict(op.attrs)) if rule.attrs else rule.eval(*args)
    if is_array(result):
        return np.asarray(value, dtype=NUMPY_TYPE[result.dtype])
    if op.prim in ARRAY_RULES:
        return NUMPY_TYPE[result](value)
    return value


__all__ = ["ARRAY_RULES", "Emitter", "RULES", "Rule", "RuleError", "evaluate", "rule_attrs",
           "rule_for", "NUMPY_TYPE"]


def result_types(op: Any) -> Sequence[Any] | None:
    """The result types ``op``'s rule gives its arguments (for ``ir.verify``)."""
    if op.prim in (Prim.CONST, Prim.POP):
        return None
    if op.prim is Prim.PUSH:
        return ()
    if op.prim is Prim.CAST:  # any element type, the argument's rank
        (x,), (y,) = op.args, op.results
        return (ArrayType(dtype_of(y.type), x.type.rank) if is_array(x.type) else
                dtype_of(y.type),)
    return (_type_of(rule_for(op.prim), [a.type for a in op.args], op.attrs),)


from . import array_prims  # noqa: E402,F401  (registers the indexing and shape rules)
