"""Floor 2: every primitive's rules, side by side.

For each primitive: its type rule, its evaluation (numpy scalar semantics), its tangent rule
(``jvp``), its adjoint rule (``vjp``), its Python printing and its sympy form. Control flow
(``if``/``for``/``while``) and the tape (``push``/``pop``) are structural: the transforms in
``sxad.ad`` handle them, and their entries here say so.

Rule signatures (``b`` is an ``Emitter`` that appends to the program being built):

``jvp(b, xs, dxs, ys) -> Value | None``  ``dxs[i]`` is ``None`` where ``xs[i]`` has no tangent.
``vjp(b, yb, xs, ys) -> tuple[Value | None, ...]``  one cotangent contribution per argument.
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .ir import BOOL, F64, I64, BlockBuilder, Prim, Type, Value

Jvp = Callable[..., Optional[Value]]
Vjp = Callable[..., tuple]

# Python operator precedence, for the source printer.
PREC_COND, PREC_OR, PREC_AND, PREC_NOT, PREC_CMP = 1, 2, 3, 4, 5
PREC_ADD, PREC_MUL, PREC_UNARY, PREC_POW, PREC_ATOM = 10, 11, 12, 13, 20

NUMPY_TYPE = {F64: np.float64, I64: np.int64, BOOL: np.bool_}


class RuleError(TypeError):
    """A primitive was given arguments its type rule rejects, or lacks a rule."""


@dataclass(frozen=True)
class Rule:
    prim: Prim
    arity: int
    type: Callable[[Sequence[Type]], Type] | None
    eval: Callable[..., Any] | None
    python: str | None          # format template over the arguments, ``{0}``, ``{1}``
    prec: int = PREC_ATOM       # precedence of the printed form
    sym: Callable[..., Any] | None = None   # sympy form: sym(sp, *args)
    jvp: Jvp | None = None
    vjp: Vjp | None = None
    differentiable: bool = True  # False: the derivative is zero everywhere it exists
    structural: bool = False     # handled by the transforms themselves (regions, tape)


RULES: dict[Prim, Rule] = {}


def rule_for(prim: Prim, transform: str = "evaluation") -> Rule:
    """The rule of ``prim``; a clear error if it lacks the one ``transform`` needs."""
    rule = RULES.get(prim)
    if rule is None:
        raise RuleError(f"primitive '{prim}' has no rules ({transform} needs them)")
    return rule


# --------------------------------------------------------------------------- type rules

def _same(*allowed: Type) -> Callable[[Sequence[Type]], Type]:
    def check(ts: Sequence[Type]) -> Type:
        if len(set(ts)) != 1 or ts[0] not in allowed:
            raise RuleError(f"expected {len(ts)} arguments of one type in "
                            f"{', '.join(map(str, allowed))}, got {', '.join(map(str, ts))}")
        return ts[0]
    return check


def _compare(ts: Sequence[Type]) -> Type:
    _same(F64, I64, BOOL)(ts)
    return BOOL


def _select(ts: Sequence[Type]) -> Type:
    if ts[0] is not BOOL or ts[1] != ts[2]:
        raise RuleError(f"select needs (bool, T, T), got {', '.join(map(str, ts))}")
    return ts[1]


NUM = _same(F64, I64)
REAL = _same(F64)
LOGIC = _same(BOOL)


# --------------------------------------------------------------------------- registration

def _register(prim: Prim, arity: int, type_: Any, eval_: Any, python: str | None,
              prec: int = PREC_ATOM, sym: Any = None, jvp: Any = None, vjp: Any = None,
              differentiable: bool = True, structural: bool = False) -> None:
    RULES[prim] = Rule(prim, arity, type_, eval_, python, prec, sym, jvp, vjp,
                       differentiable, structural)


def _zero_jvp(b: "Emitter", xs: Sequence[Value], dxs: Sequence, ys: Sequence[Value]) -> None:
    """ẏ = 0"""
    return None


def _zero_vjp(b: "Emitter", yb: Value, xs: Sequence[Value], ys: Sequence[Value]) -> tuple:
    """x̄ += 0"""
    return (None,) * len(xs)


def smooth_unary(prim: Prim, eval_: Any, python: str, sym: Any,
                 derivative: Callable[["Emitter", Value, Value], Value]) -> None:
    """A real function y = f(x) whose rules are ẏ = ẋ·f'(x) and x̄ += ȳ·f'(x)."""
    def jvp(b: Emitter, xs, dxs, ys):
        return b.mul(dxs[0], derivative(b, xs[0], ys[0]))

    def vjp(b: Emitter, yb, xs, ys):
        return (b.mul(yb, derivative(b, xs[0], ys[0])),)

    jvp.__doc__ = f"ẏ = ẋ · {derivative.__doc__}"
    vjp.__doc__ = f"x̄ += ȳ · {derivative.__doc__}"
    _register(prim, 1, REAL, eval_, python, PREC_ATOM, sym, jvp, vjp)


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
    return b.cast(dxs[0], ys[0].type) if ys[0].type is F64 and xs[0].type is F64 else None


def _cast_vjp(b, yb, xs, ys):
    """x̄ += cast(ȳ) between real types; zero otherwise"""
    return (b.cast(yb, xs[0].type) if xs[0].type is F64 else None,)


_register(Prim.CAST, 1, None, None, "{t}({0})", PREC_ATOM, None, _cast_jvp, _cast_vjp)


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
    return b.mul(p, b.pow(x, b.sub(p, b.const(1.0))))


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
        zero = b.zero(ys[0].type)
        return b.select(_pick_first(b, prim, xs), dxs[0] or zero, dxs[1] or zero)

    def vjp(b, yb, xs, ys):
        """x̄ of the argument chosen += ȳ"""
        first, zero = _pick_first(b, prim, xs), b.zero(yb.type)
        return (b.select(first, yb, zero), b.select(first, zero, yb))
    return jvp, vjp


def _select_jvp(b, xs, dxs, ys):
    """ẏ = ȧ if c else ḃ"""
    zero = b.zero(ys[0].type)
    return b.select(xs[0], dxs[1] or zero, dxs[2] or zero)


def _select_vjp(b, yb, xs, ys):
    """ā += ȳ if c else 0; b̄ += 0 if c else ȳ"""
    zero = b.zero(yb.type)
    return (None, b.select(xs[0], yb, zero), b.select(xs[0], zero, yb))


def _abs_jvp(b, xs, dxs, ys):
    """ẏ = ẋ·sign(x)"""
    return b.mul(dxs[0], b.sign(xs[0]))


def _abs_vjp(b, yb, xs, ys):
    """x̄ += ȳ·sign(x)"""
    return (b.mul(yb, b.sign(xs[0])),)


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
_register(Prim.SELECT, 3, _select, lambda c, a, e: a if c else e, "{1} if {0} else {2}",
          PREC_COND, lambda sp, c, a, e: sp.Piecewise((a, c), (e, True)),
          _select_jvp, _select_vjp)

for _prim, _fn, _text, _prec in [
        (Prim.LT, np.less, "{0} < {1}", PREC_CMP), (Prim.LE, np.less_equal, "{0} <= {1}", PREC_CMP),
        (Prim.GT, np.greater, "{0} > {1}", PREC_CMP),
        (Prim.GE, np.greater_equal, "{0} >= {1}", PREC_CMP),
        (Prim.EQ, np.equal, "{0} == {1}", PREC_CMP), (Prim.NE, np.not_equal, "{0} != {1}", PREC_CMP)]:
    _register(_prim, 2, _compare, _fn, _text, _prec, None, _zero_jvp, _zero_vjp,
              differentiable=False)
_register(Prim.AND, 2, LOGIC, np.logical_and, "{0} and {1}", PREC_AND, None,
          _zero_jvp, _zero_vjp, differentiable=False)
_register(Prim.OR, 2, LOGIC, np.logical_or, "{0} or {1}", PREC_OR, None,
          _zero_jvp, _zero_vjp, differentiable=False)
_register(Prim.NOT, 1, LOGIC, np.logical_not, "not {0}", PREC_NOT, None,
          _zero_jvp, _zero_vjp, differentiable=False)


def _d_exp(b, x, y):
    """exp(x), reusing y"""
    return y


def _d_expm1(b, x, y):
    """(y + 1)"""
    return b.add(y, b.const(1.0))


def _d_sin(b, x, y):
    """cos(x)"""
    return b.cos(x)


def _d_cos(b, x, y):
    """−sin(x)"""
    return b.neg(b.sin(x))


def _d_tan(b, x, y):
    """(1 + y²)"""
    return b.add(b.const(1.0), b.mul(y, y))


def _d_sinh(b, x, y):
    """cosh(x)"""
    return b.cosh(x)


def _d_cosh(b, x, y):
    """sinh(x)"""
    return b.sinh(x)


def _d_tanh(b, x, y):
    """(1 − y²)"""
    return b.sub(b.const(1.0), b.mul(y, y))


def _den_log(b, x, y):
    """x"""
    return x


def _den_log1p(b, x, y):
    """1 + x"""
    return b.add(b.const(1.0), x)


def _den_sqrt(b, x, y):
    """2·y"""
    return b.mul(b.const(2.0), y)


def _den_asin(b, x, y):
    """√(1 − x²)"""
    return b.sqrt(b.sub(b.const(1.0), b.mul(x, x)))


def _den_acos(b, x, y):
    """−√(1 − x²)"""
    return b.neg(_den_asin(b, x, y))


def _den_atan(b, x, y):
    """1 + x²"""
    return b.add(b.const(1.0), b.mul(x, x))


smooth_unary(Prim.EXP, np.exp, "np.exp({0})", lambda sp, a: sp.exp(a), _d_exp)
smooth_unary(Prim.EXPM1, np.expm1, "np.expm1({0})", lambda sp, a: sp.exp(a) - 1, _d_expm1)
smooth_unary(Prim.SIN, np.sin, "np.sin({0})", lambda sp, a: sp.sin(a), _d_sin)
smooth_unary(Prim.COS, np.cos, "np.cos({0})", lambda sp, a: sp.cos(a), _d_cos)
smooth_unary(Prim.TAN, np.tan, "np.tan({0})", lambda sp, a: sp.tan(a), _d_tan)
smooth_unary(Prim.SINH, np.sinh, "np.sinh({0})", lambda sp, a: sp.sinh(a), _d_sinh)
smooth_unary(Prim.COSH, np.cosh, "np.cosh({0})", lambda sp, a: sp.cosh(a), _d_cosh)
smooth_unary(Prim.TANH, np.tanh, "np.tanh({0})", lambda sp, a: sp.tanh(a), _d_tanh)
quotient_unary(Prim.LOG, np.log, "np.log({0})", lambda sp, a: sp.log(a), _den_log)
quotient_unary(Prim.LOG1P, np.log1p, "np.log1p({0})", lambda sp, a: sp.log(1 + a), _den_log1p)
quotient_unary(Prim.SQRT, np.sqrt, "np.sqrt({0})", lambda sp, a: sp.sqrt(a), _den_sqrt)
quotient_unary(Prim.ASIN, np.arcsin, "np.arcsin({0})", lambda sp, a: sp.asin(a), _den_asin)
quotient_unary(Prim.ACOS, np.arccos, "np.arccos({0})", lambda sp, a: sp.acos(a), _den_acos)
quotient_unary(Prim.ATAN, np.arctan, "np.arctan({0})", lambda sp, a: sp.atan(a), _den_atan)

for _prim in (Prim.IF, Prim.FOR, Prim.WHILE, Prim.PUSH, Prim.POP):
    _register(_prim, -1, None, None, None, structural=True)


# --------------------------------------------------------------------------- emitter

class Emitter(BlockBuilder):
    """A block builder that types each op by its rule: ``b.mul(x, y)``, ``b.const(1.0)``."""

    def emit(self, prim: Prim, *args: Value, hint: str = "") -> Value:
        rule = rule_for(prim)
        try:
            result_type = rule.type([a.type for a in args])
        except RuleError as err:
            raise RuleError(f"{prim}: {err}") from None
        return self.op(prim, args, [result_type], hints=[hint])[0]

    def const(self, value: Any, type_: Type | None = None, hint: str = "") -> Value:
        if type_ is None:
            type_ = BOOL if isinstance(value, (bool, np.bool_)) else (
                I64 if isinstance(value, (int, np.integer)) else F64)
        value = {F64: float, I64: int, BOOL: bool}[type_](value)
        return self.op(Prim.CONST, (), [type_], attrs=[("value", value)], hints=[hint])[0]

    def zero(self, type_: Type) -> Value:
        return self.const(0, type_)

    def cast(self, value: Value, type_: Type, hint: str = "") -> Value:
        if value.type == type_:
            return value
        return self.op(Prim.CAST, (value,), [type_], hints=[hint])[0]


def _method(prim: Prim) -> Callable[..., Value]:
    def method(self: Emitter, *args: Value, hint: str = "") -> Value:
        return self.emit(prim, *args, hint=hint)
    method.__name__ = prim.value
    return method


for _prim, _rule in RULES.items():
    if _rule.type is not None and _prim not in (Prim.CAST,):
        _name = _prim.value + ("_" if keyword.iskeyword(_prim.value) else "")
        setattr(Emitter, _name, _method(_prim))


def evaluate(op: Any, args: Sequence[Any]) -> Any:
    """The value of a scalar op on numpy scalars (the interpreter's reference semantics)."""
    if op.prim is Prim.CONST:
        return _const_eval(op)
    if op.prim is Prim.CAST:
        return NUMPY_TYPE[op.results[0].type](args[0])
    rule = rule_for(op.prim)
    return rule.eval(*args)


__all__ = ["Emitter", "RULES", "Rule", "RuleError", "evaluate", "rule_for", "NUMPY_TYPE"]


def result_types(op: Any) -> Sequence[Any] | None:
    """The result types ``op``'s rule gives its arguments (for ``ir.verify``)."""
    if op.prim in (Prim.CONST, Prim.CAST, Prim.POP):
        return None
    if op.prim is Prim.PUSH:
        return ()
    return (rule_for(op.prim).type([a.type for a in op.args]),)
