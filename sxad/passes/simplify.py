"""Algebraic simplification: a table of rewrites keyed by ``Prim``, run to a fixed point.

Only rewrites that keep every inf and nan where it was: no ``x*0 → 0``, no ``x-x → 0``.
Every rewrite keeps the value's type, so on arrays it keeps the shape too: constants are
scalars, and a rewrite giving another type (``x and False → False`` for a bool array) is
declined.
Two rules may flip the sign of a zero result: ``x + 0 → x`` gives ``-0.0`` where
``-0.0 + 0.0`` gives ``0.0``, and ``0 - x → -x`` the reverse. They are kept because adjoint
accumulators start at ``0.0``, and derivative code reads far better without the ``0.0 +``.
``x ** 2 → x * x`` may differ from ``pow`` in the last bit, and ``(a @ b).T → b.T @ a.T``
may sum in another order inside BLAS; the rest are exact.
One rule recognises an idiom: ``1 / (1 + exp(-x))`` is ``logistic(x)``, the same value computed
the same way, whose derivative rule reads y·(1 − y) (``_logistic``).
"""
from __future__ import annotations

from typing import Any, Callable

from ..ir import BOOL, F32, F64, I64, Block, Func, Op, Prim, Value, dtype_of, is_array
from ..prims import Emitter
from .rewrite import Subst, adopt_hints, is_pure

MAX_ROUNDS = 8
_LARGEST = {F64: float("inf"), F32: float("inf"), I64: 2 ** 63 - 1}


def simplify(func: Func) -> Func:
    for _ in range(MAX_ROUNDS):
        rewriter = Simplifier()
        func = adopt_hints(func.with_body(rewriter.block(func.body)), rewriter.subst.hints)
        if not rewriter.changed:
            break
    return func


class Simplifier:
    """One forward sweep. Rules see each value's defining op and append new ops to ``b``."""

    def __init__(self) -> None:
        self.subst = Subst()
        self.defs: dict[Value, Op] = {}
        self.changed = False
        self.b = Emitter()
        self.hint = ""  # the hint of the value being rewritten, for the ops that replace it

    def block(self, block: Block) -> Block:
        outer, self.b = self.b, Emitter(block.params)
        for op in block.ops:
            self.op(op.replace(args=self.subst.all(op.args)))
        new = self.b.finish(self.subst.all(block.yields))
        self.b = outer
        return new

    def op(self, op: Op) -> None:
        if op.regions:
            op = op.replace(regions=tuple(self.block(r) for r in op.regions))
        elif is_pure(op):
            start, self.hint = len(self.b.ops), op.results[0].hint
            for rule in RULES.get(op.prim, ()):
                value = rule(self, op)
                if value is not None and value.type == op.result.type:
                    self.subst[op.result] = value
                    self.changed = True
                    for new in self.b.ops[start:]:
                        self.defs[new.result] = new
                    return
                del self.b.ops[start:]  # a rule that declines leaves nothing behind
            self.defs[op.result] = op
        self.b.append(op)

    # ------------------------------------------------------------------ queries for the rules

    def const(self, value: Value) -> Any:
        """The constant ``value`` holds, or None."""
        op = self.defs.get(value)
        return op.attr("value") if op is not None and op.prim is Prim.CONST else None

    def is_const(self, value: Value, number: float) -> bool:
        c = self.const(value)
        return c is not None and value.type is not BOOL and c == number

    def negated(self, value: Value) -> Value | None:
        """The x with ``value = -x``, or None."""
        op = self.defs.get(value)
        return op.args[0] if op is not None and op.prim is Prim.NEG else None

    def negated_or_negative(self, value: Value) -> Value | None:
        """As ``negated``, but also |c| for a negative constant c (``a + -2.0 → a - 2.0``)."""
        c = self.const(value)
        if c is not None and value.type is not BOOL and c < 0 and -c <= _LARGEST[value.type]:
            return self.b.const(-c, value.type)
        return self.negated(value)

    def producer(self, value: Value, prim: Prim) -> Op | None:
        op = self.defs.get(value)
        return op if op is not None and op.prim is prim else None


Rule = Callable[[Simplifier, Op], "Value | None"]


# --------------------------------------------------------------------------- the rules

def _add_zero(s: Simplifier, op: Op) -> Value | None:
    """x + 0 → x;  0 + x → x"""
    a, c = op.args
    return a if s.is_const(c, 0) else c if s.is_const(a, 0) else None


def _add_negation(s: Simplifier, op: Op) -> Value | None:
    """a + (-c) → a - c;  (-a) + c → c - a"""
    a, c = op.args
    nc = s.negated_or_negative(c)
    if nc is not None:
        return s.b.sub(a, nc, hint=s.hint)
    na = s.negated(a)
    return s.b.sub(c, na, hint=s.hint) if na is not None else None


def _sub_zero(s: Simplifier, op: Op) -> Value | None:
    """x - 0 → x;  0 - x → -x"""
    a, c = op.args
    if s.is_const(c, 0):
        return a
    return s.b.neg(c, hint=s.hint) if s.is_const(a, 0) else None


def _sub_negation(s: Simplifier, op: Op) -> Value | None:
    """a - (-c) → a + c"""
    a, c = op.args
    nc = s.negated_or_negative(c)
    return s.b.add(a, nc, hint=s.hint) if nc is not None else None


def _mul_one(s: Simplifier, op: Op) -> Value | None:
    """x * 1 → x;  1 * x → x;  x * -1 → -x;  -1 * x → -x"""
    a, c = op.args
    for x, k in ((a, c), (c, a)):
        if s.is_const(k, 1):
            return x
        if s.is_const(k, -1):
            return s.b.neg(x, hint=s.hint)
    return None


def _negations_out(prim: Prim) -> Rule:
    def rule(s: Simplifier, op: Op) -> Value | None:
        a, c = op.args
        na, nc = s.negated(a), s.negated(c)
        if na is not None and nc is not None:
            return s.b.emit(prim, na, nc, hint=s.hint)
        if na is None and nc is None:
            return None
        inner = s.b.emit(prim, a if na is None else na, c if nc is None else nc)
        return s.b.neg(inner, hint=s.hint)
    rule.__doc__ = (f"(-a) {prim} (-c) → a {prim} c;  "
                    f"(-a) {prim} c and a {prim} (-c) → -(a {prim} c)")
    return rule


def _div_one(s: Simplifier, op: Op) -> Value | None:
    """x / 1 → x;  x / -1 → -x"""
    x, k = op.args
    if s.is_const(k, 1):
        return x
    return s.b.neg(x, hint=s.hint) if s.is_const(k, -1) else None


def _logistic(s: Simplifier, op: Op) -> Value | None:
    """1 / (1 + exp(-x)) → logistic(x). The four ops' own rules give x̄ = ȳ/d·y·e (e = exp(-x)
    and d = 1 + e kept for it, three arrays where one would do), which is inf/inf = nan where
    e overflows (x < -88 in float32, a saturated sigmoid); logistic's is ȳ·y·(1 − y)."""
    one, total = op.args
    add = s.producer(total, Prim.ADD)
    if not s.is_const(one, 1) or add is None:
        return None
    for first, second in (add.args, add.args[::-1]):
        exp = s.producer(second, Prim.EXP)
        x = s.negated(exp.args[0]) if exp is not None else None
        if s.is_const(first, 1) and x is not None:
            return s.b.emit(Prim.LOGISTIC, x, hint=s.hint)
    return None


def _neg_neg(s: Simplifier, op: Op) -> Value | None:
    """-(-x) → x"""
    return s.negated(op.args[0])


def _pow_const(s: Simplifier, op: Op) -> Value | None:
    """x ** 0 → 1 (even for nan);  x ** 1 → x;  x ** 2 → x * x;  x ** 0.5 → sqrt(x);
    x ** -1.0 → 1 / x"""
    x, p = op.args
    if s.is_const(p, 0) and not is_array(x.type):
        return s.b.const(1, x.type, hint=s.hint)
    if s.is_const(p, 1):
        return x
    if s.is_const(p, 2):
        return s.b.mul(x, x, hint=s.hint)
    if dtype_of(x.type).is_float and s.is_const(p, 0.5):
        return s.b.sqrt(x, hint=s.hint)
    if dtype_of(x.type).is_float and s.is_const(p, -1):
        return s.b.div(s.b.const_like(1.0, x), x, hint=s.hint)
    return None


def _select_same(s: Simplifier, op: Op) -> Value | None:
    """select(c, a, a) → a;  select(c, True, False) → c;  select(c, False, True) → not c"""
    c, a, e = op.args
    if a is e and not is_array(c.type):  # an array c would broadcast a to its shape
        return a
    if a.type is BOOL and s.const(a) is not None and s.const(e) is not None:
        if s.const(a) and not s.const(e):
            return c
        if not s.const(a) and s.const(e):
            return s.b.not_(c, hint=s.hint)
    return None


def _not_not(s: Simplifier, op: Op) -> Value | None:
    """not (not x) → x"""
    inner = s.producer(op.args[0], Prim.NOT)
    return inner.args[0] if inner is not None else None


def _logic_const(absorbing: bool) -> Rule:
    def rule(s: Simplifier, op: Op) -> Value | None:
        for x, k in (op.args, op.args[::-1]):
            c = s.const(k)
            if c is not None:
                return k if bool(c) is absorbing else x
        return None
    rule.__doc__ = (f"x {'or' if absorbing else 'and'} {absorbing} → {absorbing};  "
                    f"x {'or' if absorbing else 'and'} {not absorbing} → x")
    return rule


def _cast(s: Simplifier, op: Op) -> Value | None:
    """cast(x: T, T) → x;  cast(cast(x)) → cast(x) when the inner cast loses nothing"""
    (x,) = op.args
    target = op.result.type
    if x.type == target:
        return x
    inner = s.producer(x, Prim.CAST)
    if inner is None or not _exact_through(inner.args[0].type, x.type, target):
        return None
    source = inner.args[0]
    return source if source.type == target else s.b.cast(source, target, hint=s.hint)


def _exact_through(source: Any, middle: Any, target: Any) -> bool:
    """Whether source → middle → target equals source → target for every source value."""
    if source is BOOL:  # 0/1 are exact in every type, and cast back to the same bool
        return True
    return source is I64 and middle is F64 and target is BOOL  # f64(n) != 0 iff n != 0


def _implicit_broadcast(s: Simplifier, op: Op) -> Value | None:
    """op(broadcast_like(a, y), y) → op(a, y), and op(expand_dims(s), y) → op(s, y) for a
    scalar s (either side): an elementwise op broadcasts by itself, and the explicit broadcast
    would be a full-size array (derivative rules make these: ``broadcast_to(ȳ / s, shape(v))
    * v``)."""
    first, second = op.args
    for k, (arg, other) in enumerate(((first, second), (second, first))):
        source = _spread_source(s, arg, other)
        if source is not None:   # (a rewrite that changes the type is declined)
            args = [source, other] if k == 0 else [other, source]
            return s.b.emit(op.prim, *args, hint=s.hint)
    return None


def _spread_source(s: Simplifier, arg: Value, other: Value) -> Value | None:
    """``a`` if ``arg`` is ``broadcast_like(a, other)`` or ``expand_dims(a)`` of a scalar ``a``
    (a scalar broadcasts against any array)."""
    spread = s.producer(arg, Prim.BROADCAST_LIKE)
    if spread is not None and spread.args[1] is other:
        return spread.args[0]
    grown = s.producer(arg, Prim.EXPAND_DIMS)
    if grown is not None and not is_array(grown.args[0].type) and is_array(other.type):
        return grown.args[0]
    return None


def _permutation(op: Op) -> tuple[int, ...]:
    rank = op.result.type.rank
    perm = op.attr("perm")
    return tuple(reversed(range(rank))) if perm is None else tuple(perm)


def _transpose_transpose(s: Simplifier, op: Op) -> Value | None:
    """transpose(transpose(x, p), q) → x when q undoes p (the adjoint of ``x @ W.T`` w.r.t.
    W transposes back what the forward transposed), else one transpose."""
    inner = s.producer(op.args[0], Prim.TRANSPOSE)
    if inner is None:
        return None
    p, q = _permutation(inner), _permutation(op)
    composed = tuple(p[k] for k in q)
    if composed == tuple(range(len(composed))):
        return inner.args[0]
    return s.b.transpose(inner.args[0], perm=composed, hint=s.hint)


def _transpose_matmul(s: Simplifier, op: Op) -> Value | None:
    """(a @ b).T → b.T @ a.T for matrices: a transposed product costs a strided copy, a
    transposed operand is a BLAS flag (and a transpose of a transpose vanishes)."""
    product = s.producer(op.args[0], Prim.MATMUL)
    if product is None or op.result.type.rank != 2 or _permutation(op) != (1, 0):
        return None
    a, b = product.args
    if a.type.rank != 2 or b.type.rank != 2:
        return None
    return s.b.matmul(_transposed(s, b), _transposed(s, a), hint=s.hint)


def _transposed(s: Simplifier, x: Value) -> Value:
    inner = s.producer(x, Prim.TRANSPOSE)
    if inner is not None and _permutation(inner) == (1, 0):
        return inner.args[0]
    return s.b.transpose(x)


def _unbroadcast_neg(s: Simplifier, op: Op) -> Value | None:
    """unbroadcast(-c, like) → -unbroadcast(c, like): negate the sum, usually the smaller
    array (``a - b``'s cotangent for ``b``), and ``-c`` need not be stored for it."""
    c = s.negated(op.args[0])
    if c is None:
        return None
    return s.b.neg(s.b.unbroadcast(c, op.args[1]), hint=s.hint)


RULES: dict[Prim, tuple[Rule, ...]] = {
    Prim.UNBROADCAST: (_unbroadcast_neg,),
    Prim.ADD: (_add_zero, _add_negation, _implicit_broadcast),
    Prim.SUB: (_sub_zero, _sub_negation, _implicit_broadcast),
    Prim.MUL: (_mul_one, _negations_out(Prim.MUL), _implicit_broadcast),
    Prim.DIV: (_div_one, _logistic, _negations_out(Prim.DIV), _implicit_broadcast),
    Prim.NEG: (_neg_neg,),
    Prim.POW: (_pow_const,),
    Prim.SELECT: (_select_same,),
    Prim.NOT: (_not_not,),
    Prim.AND: (_logic_const(False),),
    Prim.OR: (_logic_const(True),),
    Prim.CAST: (_cast,),
    Prim.TRANSPOSE: (_transpose_transpose, _transpose_matmul),
}
for _prim in (Prim.MAX, Prim.MIN, Prim.POW, Prim.ATAN2, Prim.HYPOT, Prim.LT, Prim.LE, Prim.GT,
              Prim.GE, Prim.EQ, Prim.NE):
    RULES[_prim] = RULES.get(_prim, ()) + (_implicit_broadcast,)
