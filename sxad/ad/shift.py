"""Shift invariance: the uses of a max that derivatives may treat as constants.

``m = max(c, axis, keepdims); log(sum(exp(c - m), axis)) + m`` is log-sum-exp of ``c`` for
*any* ``m``: the shift only keeps the exponents ≤ 0. Its derivative through ``m`` is zero, yet
differentiated as written the adjoint computes it in full (``eq(c, m)``, a cast, a reduction,
a division over the whole array) only for the two halves to cancel. JAX's ``logsumexp`` writes
``stop_gradient`` on the shift; ``shift_edges`` finds such shifts in any program and returns the
*uses* (op, argument position) of ``m`` that the transforms treat as constant, so ``m`` gets no
tangent or adjoint from them (and, used nowhere else, none at all).

How: for each ``reduce_max``/``reduce_min`` result ``m``, each value downstream of it is
described as ``v₀ + k·M`` (kind ``ADD``) or ``v₀·exp(k·M)`` (kind ``MUL``), ``v₀`` free of
``m`` and ``M`` the shift broadcast to ``v``'s axes as recorded by ``axes`` (per axis of ``v``,
the axis of ``m`` it indexes, or None where ``m`` is constant along it). The rules below follow
``c - m`` (ADD −1), ``exp`` (MUL), ``sum`` over axes along which ``M`` is constant (MUL), ``log``
(ADD), ``+ m`` (k back to 0), and products and quotients of MUL values (softmax ``e / Σe``). A
value with k = 0 does not depend on ``m`` at all. The uses of ``m`` (and of its views,
``m[:, 0]``, ``m[:, None]``, ``squeeze``) inside the followed ops may be cut when every value
with k ≠ 0 is used only by followed ops: then everything the rest of the program sees is
independent of ``m``, and the derivatives with ``m`` held constant are exact, not approximate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..ir import Block, Func, Op, Prim, Value, dtype_of, is_array
from ..ir.types import rank_of

Edge = tuple[Op, int]
Axes = tuple["int | None", ...]

ADD, MUL = "add", "mul"


@dataclass(frozen=True)
class Shift:
    kind: str          # ADD: v₀ + k·M;  MUL: v₀·exp(k·M)
    k: int
    axes: Axes         # per axis of the value: the axis of m it indexes, or None (constant)
    pure: bool = False  # the value is m or a view of it (its uses are the ones cut)


def shift_edges(func: Func) -> frozenset[Edge]:
    """The uses of shifts that no result depends on (see the module docstring)."""
    uses = _uses(func.body)
    consts = {op.result: op.attr("value") for op in func.body.walk() if op.prim is Prim.CONST}
    edges: set[Edge] = set()
    for block in _blocks(func.body):
        for i, op in enumerate(block.ops):
            if op.prim in (Prim.REDUCE_MAX, Prim.REDUCE_MIN) \
                    and dtype_of(op.result.type).is_float:
                edges |= _cut(op, block.ops[i + 1:], uses, consts)
    return frozenset(edges)


def _blocks(block: Block) -> list[Block]:
    out = [block]
    for op in block.ops:
        for region in op.regions:
            out.extend(_blocks(region))
    return out


def _uses(block: Block) -> dict[Value, list[object]]:
    """value → the ops using it (a yield counts as a use by the block)."""
    out: dict[Value, list[object]] = {}
    for op in block.ops:
        for a in op.args:
            out.setdefault(a, []).append(op)
        for region in op.regions:
            for v, users in _uses(region).items():
                out.setdefault(v, []).extend(users)
    for v in block.yields:
        out.setdefault(v, []).append(block)
    return out


def _cut(root: Op, later: Sequence[Op], uses: dict[Value, list[object]],
         consts: dict[Value, object]) -> set[Edge]:
    info = {root.result: Shift(ADD, 1, _root_axes(root), pure=True)}
    followed: set[Op] = set()
    edges: set[Edge] = set()
    for op in later:
        if op.regions or not any(a in info for a in op.args):
            continue
        rule = _RULES.get(op.prim)
        shift = rule(op, [info.get(a) for a in op.args], consts) if rule else None
        if shift is None:
            continue  # a use left as it is: fine for m itself, checked below otherwise
        followed.add(op)
        if shift.pure:
            info[op.result] = shift
            continue
        edges.update((op, k) for k, a in enumerate(op.args) if a in info and info[a].pure)
        if shift.k != 0:
            info[op.result] = shift
    leaks = any(not s.pure and any(u not in followed for u in uses.get(v, ()))
                for v, s in info.items())
    return set() if leaks else edges


def _root_axes(op: Op) -> Axes:
    rank = rank_of(op.args[0].type)
    reduced = set(range(rank) if op.attr("axes") is None else op.attr("axes"))
    if op.attr("keepdims"):
        return tuple(None if a in reduced else a for a in range(rank))
    return tuple(a for a in range(rank) if a not in reduced)


def _aligned(shift: Shift | None, rank: int) -> Axes | None:
    """``shift``'s axes broadcast to ``rank`` (numpy aligns from the right)."""
    if shift is None:
        return None
    return (None,) * (rank - len(shift.axes)) + shift.axes


# --------------------------------------------------------------------------- the rules
# Each takes (op, the Shift of each argument or None, constants) and gives the result's Shift,
# or None where the op is not followed.

Rule = Callable[[Op, list, dict], "Shift | None"]


def _expand_dims(op: Op, shifts: list, consts: dict) -> Shift | None:
    (s,) = shifts
    axes = list(s.axes)
    for a in op.attr("axes"):
        axes.insert(a, None)
    return Shift(s.kind, s.k, tuple(axes), s.pure)


def _squeeze(op: Op, shifts: list, consts: dict) -> Shift | None:
    (s,) = shifts
    gone = set(op.attr("axes"))
    if any(s.axes[a] is not None for a in gone):
        return None
    return Shift(s.kind, s.k, tuple(a for j, a in enumerate(s.axes) if j not in gone), s.pure)


def _index(op: Op, shifts: list, consts: dict) -> Shift | None:
    """``m[:, 0]``: ``:`` keeps an axis, an integer 0 or -1 drops an axis where m is constant."""
    s, *rest = shifts
    if any(r is not None for r in rest):
        return None
    idx = iter(op.args[1:])
    axes = []
    spec = op.attr("spec")
    for j, item in enumerate(spec):
        if item == ":":
            axes.append(s.axes[j])
        elif item == "i" and s.axes[j] is None and consts.get(next(idx)) in (0, -1):
            continue
        else:
            return None
    return Shift(s.kind, s.k, (*axes, *s.axes[len(spec):]), s.pure)


def _sum_or_difference(sign: int) -> Rule:
    def rule(op: Op, shifts: list, consts: dict) -> Shift | None:
        rank = rank_of(op.result.type)
        a, c = (_aligned(s, rank) for s in shifts)
        sa, sc = shifts
        if sa is not None and sc is not None:
            if sa.kind != sc.kind or a != c or (sa.kind == MUL and sa.k != sc.k):
                return None
            k = sa.k + sign * sc.k if sa.kind == ADD else sa.k
            return Shift(sa.kind, k, a)
        s, axes, k = (sa, a, sa.k) if sa is not None else (sc, c, sign * sc.k)
        return Shift(ADD, k, axes) if s.kind == ADD else None
    return rule


def _product(sign: int) -> Rule:
    """MUL values times (or over) MUL values or values free of m."""
    def rule(op: Op, shifts: list, consts: dict) -> Shift | None:
        rank = rank_of(op.result.type)
        if any(s is not None and s.kind != MUL for s in shifts):
            return None
        axes = {_aligned(s, rank) for s in shifts if s is not None}
        if len(axes) != 1:
            return None
        sa, sc = shifts
        k = (sa.k if sa else 0) + sign * (sc.k if sc else 0)
        return Shift(MUL, k, axes.pop())
    return rule


def _neg(op: Op, shifts: list, consts: dict) -> Shift | None:
    (s,) = shifts
    return Shift(s.kind, -s.k if s.kind == ADD else s.k, s.axes)


def _change_kind(before: str, after: str) -> Rule:
    def rule(op: Op, shifts: list, consts: dict) -> Shift | None:
        (s,) = shifts
        return Shift(after, s.k, s.axes) if s.kind == before else None
    return rule


def _reduce_sum(op: Op, shifts: list, consts: dict) -> Shift | None:
    """Σ over axes along which M is constant: exp(k·M) factors out."""
    (s,) = shifts
    if s.kind != MUL or not is_array(op.args[0].type):
        return None
    rank = rank_of(op.args[0].type)
    reduced = set(range(rank) if op.attr("axes") is None else op.attr("axes"))
    if any(s.axes[a] is not None for a in reduced):
        return None
    if op.attr("keepdims"):
        return Shift(MUL, s.k, s.axes)
    return Shift(MUL, s.k, tuple(a for j, a in enumerate(s.axes) if j not in reduced))


_RULES: dict[Prim, Rule] = {
    Prim.EXPAND_DIMS: _expand_dims,
    Prim.SQUEEZE: _squeeze,
    Prim.INDEX: _index,
    Prim.ADD: _sum_or_difference(1),
    Prim.SUB: _sum_or_difference(-1),
    Prim.MUL: _product(1),
    Prim.DIV: _product(-1),
    Prim.NEG: _neg,
    Prim.EXP: _change_kind(ADD, MUL),
    Prim.LOG: _change_kind(MUL, ADD),
    Prim.REDUCE_SUM: _reduce_sum,
}
