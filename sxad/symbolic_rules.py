"""The sympy boundary: IR ops as sympy expressions and back, the cost model, and the algebra the
symbolic pass searches with.

Sympy is imported lazily (``sympy_module``) so that ``import sxad`` stays fast, and sympy objects
never enter the IR: expressions are lowered to a ``Plan`` of ``(Prim, args)`` steps, which the
pass turns into ops. Forward translation uses each primitive's ``sym`` form from ``sxad.prims``;
the way back is derived from those same forms (``exp(a)`` came from ``Prim.EXP``, so ``exp`` goes
back to ``Prim.EXP``), plus the few shapes that are not a single function call (``x**2`` is a
multiplication, ``log(1 + u)`` is ``log1p(u)``, ``exp(u) - 1`` is ``expm1(u)``, ``sqrt(a²+c²)`` is
``hypot(a, c)``) so that a rewrite never trades an accurate primitive for a naive formula.
"""
from __future__ import annotations

import cmath
import functools
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Mapping

from .ir import Prim, Value
from .prims import RULES

Expr = Any  # a sympy expression; sympy is imported lazily, so no static type here

# Scalar float prims with an exact algebraic meaning. Others (abs, floor, max, select, ...) are
# opaque leaves to the pass: their sympy forms (Abs, Piecewise, ...) do not pay for themselves.
ALGEBRAIC = frozenset({
    Prim.ADD, Prim.SUB, Prim.MUL, Prim.DIV, Prim.NEG, Prim.POW, Prim.EXP, Prim.LOG, Prim.LOG1P,
    Prim.EXPM1, Prim.SQRT, Prim.SIN, Prim.COS, Prim.TAN, Prim.SINH, Prim.COSH, Prim.TANH,
    Prim.ASIN, Prim.ACOS, Prim.ATAN, Prim.ATAN2, Prim.HYPOT})

# What one op costs, in rough units of an add. Transcendentals dwarf a division, which is several
# times a multiplication (latency on current x86: add/mul ~4 cycles, div ~14, exp/log ~40-100).
OP_COST: dict[Prim, float] = {Prim.CONST: 0.0, Prim.ADD: 1.0, Prim.SUB: 1.0, Prim.NEG: 1.0,
                              Prim.MUL: 1.0, Prim.DIV: 4.0, Prim.SQRT: 6.0, Prim.POW: 30.0}
TRANSCENDENTAL_COST = 20.0
for _prim in ALGEBRAIC:
    OP_COST.setdefault(_prim, TRANSCENDENTAL_COST)

# Ops defined only on part of the reals (or with poles): a rewrite may apply them only to
# arguments the original already applied them to. The key names the domain restriction.
PARTIAL = {Prim.DIV: "div", Prim.LOG: "log", Prim.LOG1P: "log", Prim.SQRT: "sqrt",
           Prim.ASIN: "asin", Prim.ACOS: "acos", Prim.POW: "pow", Prim.TAN: "tan"}

# Costlier than an add and a multiply: trees containing one of these are worth a sympy search.
EXPENSIVE = frozenset(p for p, c in OP_COST.items() if c > 1.0)

MISSING_COST = 50.0  # a symbol with no value in scope: the candidate is not finished yet
FACTOR_LIMIT = 120   # larger expressions are only cancelled, never factored (time)


@functools.cache
def sympy_module() -> Any:
    """Sympy, imported on first use (it takes a third of a second)."""
    import sympy
    return sympy


def leaf_symbol(name: str) -> Expr:
    return sympy_module().Symbol(name, real=True)


NICE = 2 ** 20  # numerators and denominators of constants sympy may fold together


def constant(value: float) -> Expr | None:
    """The exact rational a float constant stands for, if it is a simple one (2, 0.5, 3.25):
    sums and products of those stay exact floats. None for the rest (0.1, 0.15, inf): sympy
    would fold 0.4·0.15 into a rational no float equals, so the pass holds them as symbols."""
    if value != value or value in (float("inf"), float("-inf")):
        return None
    number = sympy_module().Rational(value)
    return number if abs(number.p) <= NICE and number.q <= NICE else None


def translate(prim: Prim, args: list[Expr]) -> Expr:
    """The sympy form of ``prim`` applied to ``args`` (the rule table's ``sym``)."""
    return RULES[prim].sym(sympy_module(), *args)


@functools.cache
def _functions() -> dict[Any, Prim]:
    """Sympy function class -> the prim whose ``sym`` form is that one function call."""
    sp = sympy_module()
    a, c = sp.symbols("a c", real=True)
    table = {}
    for prim in sorted(ALGEBRAIC, key=str):
        rule = RULES[prim]
        args = (a,) if rule.arity == 1 else (a, c)
        form = rule.sym(sp, *args)
        if isinstance(form, sp.Function) and form.args == args:
            table[form.func] = prim
    return table


# --------------------------------------------------------------------------- lowering

Ref = Any  # a Value already in scope, or the int index of a planned step


@dataclass
class Plan:
    """An expression lowered to IR steps: ``steps[i] = (prim, args, const value)``."""

    steps: list[tuple[Prim, tuple[Ref, ...], float | None]] = field(default_factory=list)
    used: dict[Value, int] = field(default_factory=dict)      # values in scope it reads
    partial: list[tuple[str, Expr]] = field(default_factory=list)  # (domain kind, argument)
    missing: int = 0                                           # symbols not in scope
    result: Ref = None

    def op_cost(self) -> float:
        return sum(OP_COST[prim] for prim, _, _ in self.steps) + MISSING_COST * self.missing


class Unlowerable(Exception):
    """The expression uses something with no IR primitive (pi, Abs, Piecewise, ...)."""


def lower(expr: Expr, lookup: Mapping[Expr, Value], negated: Mapping[Expr, Value],
          constants: Mapping[Expr, float]) -> Plan:
    """Plan ``expr`` as IR steps, reusing values in scope (``lookup``: expression -> value;
    ``negated``: −expression -> value, for ``-v`` as one negation; ``constants``: symbols that
    stand for float constants)."""
    lowering = _Lowering(lookup, negated, constants)
    plan = lowering.plan
    plan.result = lowering.value(expr)
    return plan


class _Lowering:
    def __init__(self, lookup: Mapping[Expr, Value], negated: Mapping[Expr, Value],
                 constants: Mapping[Expr, float]) -> None:
        self.sp = sympy_module()
        self.lookup = lookup
        self.negated = negated
        self.constants = constants
        self.memo: dict[Expr, Ref] = {}
        self.plan = Plan()

    def step(self, prim: Prim, *args: Ref, const: float | None = None) -> Ref:
        self.plan.steps.append((prim, args, const))
        return len(self.plan.steps) - 1

    def use(self, value: Value) -> Value:
        self.plan.used[value] = self.plan.used.get(value, 0) + 1
        return value

    def value(self, e: Expr) -> Ref:
        ref = self.memo.get(e)
        if ref is None:
            ref = self.memo[e] = self._value(e)
        return ref

    def _value(self, e: Expr) -> Ref:
        found = self.lookup.get(e)
        if found is not None:
            return self.use(found)
        if e.is_Number or e.is_NumberSymbol:
            return self.number(e)
        negated = self.negated.get(e)
        if negated is not None:
            return self.step(Prim.NEG, self.use(negated))
        if e in self.constants:
            return self.step(Prim.CONST, const=self.constants[e])
        if e.is_Symbol:
            self.plan.missing += 1
            return self.step(Prim.CONST, const=0.0)  # a placeholder: the plan is unfinished
        if e.is_Add:
            return self.add(e)
        if e.is_Mul:
            return self.mul(e)
        if e.is_Pow:
            return self.power(e)
        return self.call(e)

    def number(self, e: Expr) -> Ref:
        sp = self.sp
        if e is sp.E:
            return self.step(Prim.EXP, self.step(Prim.CONST, const=1.0))
        if not e.is_Rational:
            raise Unlowerable(str(e))
        exact = exact_float(e)
        if exact is not None:
            return self.step(Prim.CONST, const=exact)
        if e.is_Integer:
            raise Unlowerable(f"{e} has no exact float")
        p, q = (self.number(sp.Integer(n)) for n in (e.p, e.q))  # exact p/q, not a rounded one
        return self.step(Prim.DIV, p, q)

    def add(self, e: Expr) -> Ref:
        """A sum as adds and subtracts, its compound terms combined before its plain ones
        (symbols, numbers): an accumulation ``x̄ + (a − a/d)`` then adds a finished increment
        to ``x̄`` rather than cancelling ``a`` against ``a/d`` in a total that holds ``x̄``."""
        terms = _fuse_expm1(self.sp, list(e.args))
        plus = [t for t in terms if not _negative(t)]
        minus = [-t for t in terms if _negative(t)]
        if not plus:
            return self.step(Prim.NEG, self.sum(minus))
        compound_plus = [t for t in plus if not _plain(t)]
        compound_minus = [t for t in minus if not _plain(t)]
        plain_minus = [t for t in minus if _plain(t)]
        if compound_plus:
            total = self.sum(compound_plus)
            for term in compound_minus:
                total = self.step(Prim.SUB, total, self.term(term))
            rest_plus = [t for t in plus if _plain(t)]
        elif compound_minus:
            total = self.step(Prim.SUB, self.sum(plus), self.sum(compound_minus))
            rest_plus = []
        else:
            total, rest_plus = self.sum(plus), []
        for term in rest_plus:
            total = self.step(Prim.ADD, total, self.term(term))
        for term in plain_minus:
            total = self.step(Prim.SUB, total, self.term(term))
        return total

    def sum(self, terms: list[Any]) -> Ref:
        total = self.term(terms[0])
        for term in terms[1:]:
            total = self.step(Prim.ADD, total, self.term(term))
        return total

    def term(self, t: Any) -> Ref:
        if isinstance(t, _Expm1):
            return self.step(Prim.EXPM1, self.value(t.arg))
        return self.value(t)

    def mul(self, e: Expr) -> Ref:
        sp = self.sp
        coeff, factors = e.as_coeff_mul()
        top, bottom = [], []
        for f in factors:
            if f.is_Pow and f.exp.is_Number and f.exp < 0:
                bottom.append(f.base ** -f.exp)
            else:
                top.append(f)
        negative = coeff < 0
        coeff = abs(coeff)
        if coeff != 1 and exact_float(coeff) is not None:
            top.insert(0, coeff)
        elif coeff != 1:  # p/q with q not a power of two: divide by q rather than round 1/q
            top[:0] = [sp.Integer(coeff.p)] if coeff.p != 1 else []
            bottom.insert(0, sp.Integer(coeff.q))
        if negative:
            negative = not (_flip_sum(top) or _flip_sum(bottom))
        value = self.product(top) if top else self.number(sp.Integer(1))
        if bottom:
            for f in bottom:
                self.plan.partial.append(("div", f.base if f.is_Pow and f.exp.is_Integer else f))
            value = self.step(Prim.DIV, value, self.product(bottom))
        return self.step(Prim.NEG, value) if negative else value

    def product(self, factors: list[Expr]) -> Ref:
        value = self.value(factors[0])
        for f in factors[1:]:
            value = self.step(Prim.MUL, value, self.value(f))
        return value

    def power(self, e: Expr) -> Ref:
        sp = self.sp
        base, exp = e.base, e.exp
        if exp.is_Integer and exp > 0:
            return self.integer_power(base, int(exp))
        if exp.is_Integer:
            self.plan.partial.append(("div", base))
            one = self.number(sp.Integer(1))
            return self.step(Prim.DIV, one, self.integer_power(base, -int(exp)))
        if exp == sp.Rational(1, 2):
            pair = _hypot_pair(base)
            if pair is not None:
                return self.step(Prim.HYPOT, *(self.value(x) for x in pair))
            self.plan.partial.append(("sqrt", base))
            return self.step(Prim.SQRT, self.value(base))
        if exp == sp.Rational(-1, 2):
            self.plan.partial.append(("div", sp.sqrt(base)))
            return self.step(Prim.DIV, self.number(sp.Integer(1)), self.value(sp.sqrt(base)))
        self.plan.partial.append(("pow", base))
        return self.step(Prim.POW, self.value(base), self.value(exp))

    def integer_power(self, base: Expr, n: int) -> Ref:
        """base**n by repeated squaring: x**2 is one multiplication, x**4 two."""
        square, result = self.value(base), None
        while True:
            if n & 1:
                result = square if result is None else self.step(Prim.MUL, result, square)
            n >>= 1
            if not n:
                return result
            square = self.step(Prim.MUL, square, square)

    def call(self, e: Expr) -> Ref:
        sp = self.sp
        if e.func is sp.log and e.args[0].is_Add and sp.S.One in e.args[0].args:
            self.plan.partial.append(("log", e.args[0]))
            return self.step(Prim.LOG1P, self.value(e.args[0] - 1))
        prim = _functions().get(e.func)
        if prim is None:
            raise Unlowerable(str(e.func))
        kind = PARTIAL.get(prim)
        if kind is not None:
            self.plan.partial.append((kind, e.args[0]))
        return self.step(prim, *(self.value(a) for a in e.args))


def exact_float(e: Expr) -> float | None:
    """The float equal to the rational ``e``, if there is one."""
    try:
        value = float(e)
        return value if sympy_module().Rational(value) == e else None
    except (OverflowError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class _Expm1:
    arg: Expr


def _negative(t: Any) -> bool:
    return not isinstance(t, _Expm1) and t.could_extract_minus_sign()


def _plain(t: Any) -> bool:
    return not isinstance(t, _Expm1) and (t.is_Symbol or t.is_Number)


def _fuse_expm1(sp: Any, terms: list[Expr]) -> list[Any]:
    """``exp(u) - 1`` in a sum becomes one ``expm1(u)`` term (accurate near u = 0)."""
    if sp.S.NegativeOne not in terms:
        return terms
    for i, t in enumerate(terms):
        if t.func is sp.exp:
            rest = [x for j, x in enumerate(terms) if j != i]
            rest.remove(sp.S.NegativeOne)
            return [_Expm1(t.args[0])] + rest
    return terms


def _flip_sum(factors: list[Expr]) -> bool:
    """Absorb a factor -1 into a sum among ``factors`` (-(s - 1) is 1 - s): no extra negation."""
    for i, f in enumerate(factors):
        if f.is_Add:
            factors[i] = -f
            return True
    return False


def _hypot_pair(base: Expr) -> tuple[Expr, Expr] | None:
    if base.is_Add and len(base.args) == 2 and all(
            t.is_Pow and t.exp == 2 for t in base.args):
        return base.args[0].base, base.args[1].base
    return None


# --------------------------------------------------------------------------- algebra


def kernels(e: Expr) -> list[Expr]:
    """The atoms ``e`` is a rational function of: symbols, function calls, fractional powers."""
    found: dict[Expr, None] = {}

    def walk(x: Expr) -> None:
        if x.is_Number or x.is_NumberSymbol:
            return
        if x.is_Add or x.is_Mul:
            for a in x.args:
                walk(a)
        elif x.is_Pow and x.exp.is_Integer:
            walk(x.base)
        else:
            found.setdefault(x, None)
    walk(e)
    return list(found)


def kernel_key(k: Expr) -> Any:
    """Kernels with one key are powers of each other: exp(2z), exp(-z) and exp(z) share one."""
    sp = sympy_module()
    if k.func is sp.exp:
        arg = k.args[0]
        if arg.could_extract_minus_sign():
            arg = -arg
        return ("exp", arg.as_coeff_Mul()[1])
    return k


def kernel_keys(e: Expr) -> frozenset:
    return frozenset(kernel_key(k) for k in kernels(e))


@functools.lru_cache(maxsize=4096)
def substitute(e: Expr, kernel: Expr, new: Expr) -> Expr:
    """``e`` with ``kernel`` replaced by ``new``, and with exp(c·u) by new**(c/c₀) for exp(c₀·u)."""
    sp = sympy_module()
    if kernel.func is not sp.exp:
        return e.xreplace({kernel: new})
    key, arg = kernel_key(kernel), kernel.args[0]

    def power_of_kernel(x: Expr) -> bool:
        return x.func is sp.exp and kernel_key(x) == key and sp.cancel(x.args[0] / arg).is_Rational

    return e.replace(power_of_kernel, lambda x: new ** sp.cancel(x.args[0] / arg))


@functools.lru_cache(maxsize=4096)
def invert(definition: Expr, kernel: Expr, name: Expr) -> Expr | None:
    """Solve ``name = definition`` for ``kernel`` when ``definition`` is a Möbius function of it,
    ``(α·k + β)/(γ·k + δ)`` with αδ − βγ ≠ 0: the inverse is unique and rational,
    ``k = (β − δ·name)/(γ·name − α)``. None for every other shape. (Read off the expression's
    structure: no polynomial arithmetic, so it costs microseconds, not milliseconds.)"""
    sp = sympy_module()
    k = sp.Dummy("k")
    form = _fraction(substitute(definition, kernel, k), k)
    if form is None:
        return None
    (beta, alpha), (delta, gamma) = form
    if sp.expand(alpha * delta - beta * gamma) == 0:
        return None
    return (beta - delta * name) / (gamma * name - alpha)


Linear = tuple[Expr, Expr]  # (c₀, c₁) for c₀ + c₁·k


def _fraction(e: Expr, k: Expr) -> tuple[Linear, Linear] | None:
    """``e`` as (numerator, denominator), each linear in ``k``; None if it is not of that shape
    (as far as its structure shows)."""
    S = sympy_module().S
    if not e.has(k):
        return (e, S.Zero), (S.One, S.Zero)
    if e == k:
        return (S.Zero, S.One), (S.One, S.Zero)
    if e.is_Add or e.is_Mul:
        parts = [_fraction(a, k) for a in e.args]
        if any(p is None for p in parts):
            return None
        total = parts[0]
        for part in parts[1:]:
            total = _add(total, part) if e.is_Add else _mul(total, part)
            if total is None:
                return None
        return total
    if e.is_Pow and e.exp in (1, -1):
        base = _fraction(e.base, k)
        return base if base is None or e.exp == 1 else (base[1], base[0])
    return None


def _add(p: tuple[Linear, Linear], q: tuple[Linear, Linear]) -> tuple[Linear, Linear] | None:
    (n1, d1), (n2, d2) = p, q
    if d1 == d2:
        return _sum(n1, n2), d1
    top = _times(n1, d2), _times(n2, d1)
    bottom = _times(d1, d2)
    return None if None in top or bottom is None else (_sum(*top), bottom)


def _mul(p: tuple[Linear, Linear], q: tuple[Linear, Linear]) -> tuple[Linear, Linear] | None:
    top, bottom = _times(p[0], q[0]), _times(p[1], q[1])
    return None if top is None or bottom is None else (top, bottom)


def _sum(a: Linear, c: Linear) -> Linear:
    return a[0] + c[0], a[1] + c[1]


def _times(a: Linear, c: Linear) -> Linear | None:
    """The product, if its k² term is visibly zero."""
    if a[1] * c[1] != 0:
        return None
    return a[0] * c[0], a[0] * c[1] + a[1] * c[0]


@functools.lru_cache(maxsize=4096)
def eliminate(e: Expr, kernel: Expr, new: Expr) -> Expr:
    """``e`` with ``kernel`` replaced by ``new``, each group of terms that had it reduced to one
    fraction. Terms without it are left as they are: two neurons' contributions to one adjoint
    simplify one by one, not into one fraction over both their denominators."""
    sp = sympy_module()
    key = kernel_key(kernel)
    parts = _additive_parts(e)
    touched = [p for p in parts if key in kernel_keys(p)]
    if not touched:
        return e
    rest = [p for p in parts if key not in kernel_keys(p)]
    return sp.Add(_reduced(substitute(sp.Add(*touched), kernel, new)), *rest)


def _reduced(e: Expr) -> Expr:
    """One fraction, factored (ȳ·s·(s − 1) rather than ȳ·s² − ȳ·s) if it is small enough for
    factoring to be quick and sympy manages."""
    sp = sympy_module()
    if size(e) > FACTOR_LIMIT:
        return cancel(e)
    try:
        return _over_kernels(sp.factor, e)
    except (sp.PolynomialError, RuntimeError):  # sympy gives up on some shapes
        return cancel(e)


def _additive_parts(e: Expr) -> list[Expr]:
    """The terms of ``e``, with one common factor distributed over a sum: c·(a + b) gives
    c·a and c·b."""
    sp = sympy_module()
    if e.is_Add:
        return list(e.args)
    if e.is_Mul:
        sums = [f for f in e.args if f.is_Add]
        if len(sums) == 1:
            rest = sp.Mul(*(f for f in e.args if f is not sums[0]))
            return [rest * t for t in sums[0].args]
    return [e]


@functools.lru_cache(maxsize=4096)
def cancel(e: Expr) -> Expr:
    """``e`` as one reduced fraction of polynomials in its kernels."""
    return _over_kernels(sympy_module().cancel, e)


@functools.lru_cache(maxsize=4096)
def forms(e: Expr, max_size: int) -> tuple[Expr, ...]:
    """Equal rewritings of ``e`` to cost: as is, factored, with common factors pulled out (of
    the sum as it is, and of the expanded sum, which finds ``ȳ·(1 − t²)`` where ``factor`` gives
    ``−ȳ·(t − 1)·(t + 1)``), and expanded."""
    sp = sympy_module()
    out = {e: None}
    if size(e) <= max_size:
        for rewrite in (sp.factor, sp.factor_terms, lambda x: sp.factor_terms(sp.expand(x)),
                        sp.expand):
            try:
                out.setdefault(_over_kernels(rewrite, e), None)
            except (sp.PolynomialError, RuntimeError):  # sympy gives up on some shapes
                pass
    return tuple(out)


def _over_kernels(rewrite: Any, e: Expr) -> Expr:
    """``rewrite(e)`` with each kernel (exp(…), tanh(…), …) held as a plain symbol: polynomial
    algorithms then see a rational function of symbols, and do not expand exp(a + b) into
    exp(a)·exp(b) nor look inside the calls (which costs them 100 ms instead of 1)."""
    sp = sympy_module()
    calls = [k for k in kernels(e) if not k.is_Symbol]
    if not calls:
        return rewrite(e)
    held = {k: sp.Symbol(f"_k{i}", real=True) for i, k in enumerate(calls)}  # not Dummy:
    # a Dummy's place in sympy's term order depends on how many were made before
    return rewrite(e.xreplace(held)).xreplace({d: k for k, d in held.items()})


def size(e: Expr) -> int:
    """Nodes in the expression tree (a bound on the ops it lowers to)."""
    return 1 + sum(size(a) for a in e.args)


def numeric(e: Expr, values: Mapping[Expr, complex], real: bool = True) -> Any:
    """``e`` evaluated in double precision at ``values``, in complex arithmetic (so a log of a
    negative is no error). None where it is not finite, or (if ``real``) not real."""
    try:
        z = _numeric(e, values)
    except (ArithmeticError, ValueError, KeyError, TypeError):
        return None
    if not cmath.isfinite(z):
        return None
    if real:
        return z.real if abs(z.imag) <= 1e-12 * (1 + abs(z.real)) else None
    return z


def _numeric(e: Expr, values: Mapping[Expr, float]) -> complex:
    if e.is_Symbol:
        return complex(values[e])
    if e.is_Number or e.is_NumberSymbol:
        return complex(e)
    args = [_numeric(a, values) for a in e.args]
    if e.is_Add:
        return sum(args)
    if e.is_Mul:
        return functools.reduce(operator.mul, args)
    if e.is_Pow:
        return args[0] ** args[1]
    return _complex_functions()[e.func](*args)


@functools.cache
def _complex_functions() -> dict[Any, Any]:
    sp = sympy_module()
    return {sp.exp: cmath.exp, sp.log: cmath.log, sp.sin: cmath.sin, sp.cos: cmath.cos,
            sp.tan: cmath.tan, sp.sinh: cmath.sinh, sp.cosh: cmath.cosh, sp.tanh: cmath.tanh,
            sp.asin: cmath.asin, sp.acos: cmath.acos, sp.atan: cmath.atan,
            sp.atan2: lambda y, x: complex(math.atan2(y.real, x.real))}
