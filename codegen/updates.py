"""Gradient-descent updates folded into the matrix product: ``W -= lr * (A @ B)``.

A function that updates a matrix argument in place with a product (``p = W - s·(A @ B)``, the
final value of ``W``; ``s`` a scalar of W's dtype, or absent; ``+`` too) would otherwise store
the product, read it back with ``W`` into a fresh ``p``, and copy ``p`` into ``W``: five passes
over a matrix the size of ``W`` (1.6 MB for MNIST's first layer) after the product. Here the
product accumulates into ``W`` itself, ``W := W - s·A·B`` (a gemm with alpha = -s, beta = 1):
the update costs nothing past the product. Same bits: the kernel computes ``fma(1, W, -s·acc)``
= ``W - round(s·acc)``, as the separate ops do.

Such an *update* is found before lowering (``find_updates``): the product and the scale are
used by nothing else, ``W`` is read by no op after the product, and the top-level block is
straight-line where the ops stand. Its ops are not lowered in place: their inputs stay alive
to the end (``ownership.plan``'s ``deferred``) and ``lower_updates`` runs them while the
results are written back, after every other op, so that nothing that may still fault runs
after an argument was written (an error leaves every argument as it was, as before):

1. the shapes of the other written-back results are checked (``kernel.store_results``);
2. if every update may run in place — the product's shape is W's, W's rows are contiguous, no
   operand overlaps any updated W, no two updated arguments overlap — each is one gemm into W;
3. else they run as the separate ops they are (any fault is raised before any write), and
   their results are copied into the arguments like the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from llvmlite import ir

from sxad.ir import F32, F64, Func, Op, Prim, Value, dtype_of, is_array, rank_of

from . import arrays
from .arrays import ONE, ZERO, ArrayVal
from .blas import emit_gemm
from .fusion import Groups
from .lowering import INT1, INT64, LL_TYPE
from .regions import free_values



@dataclass(frozen=True)
class Update:
    """``result = W ± scale·(A @ B)``: the ops, in program order, and where W is."""

    product: Op          # matmul(A, B), both rank 2
    scale: Op | None     # mul(s, product) or mul(product, s); None: ±(A @ B)
    update: Op           # sub(W, ·), add(W, ·) or add(·, W)
    param: int           # W's argument position

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(op for op in (self.product, self.scale, self.update) if op is not None)

    @property
    def negated(self) -> bool:
        return self.update.prim is Prim.SUB


def find_updates(func: Func) -> dict[Value, Update]:
    """The updates of ``func``'s top-level block, by the result value they compute; not those
    whose product reads an argument another (or it) updates, or a view of one: the updates run
    last, one after the other, and none may see another's writes."""
    if not func.mutated:
        return {}
    body = func.body
    uses: dict[Value, list[Op | None]] = {}
    for op in body.ops:
        for v in (*op.args, *(w for r in op.regions for w in free_values(r))):
            uses.setdefault(v, []).append(op)
    for y in body.yields:
        uses.setdefault(y, []).append(None)
    producer = {r: op for op in body.ops for r in op.results}
    finals = func.results[len(func.results) - len(func.mutated):]
    found: dict[Value, Update] = {}
    for value, param in zip(finals, func.mutated):
        update = _match(func.params[param], value, producer, uses)
        if update is not None and finals.count(value) == 1:
            found[value] = Update(*update, param)
    while True:     # one that reads another's argument runs in its place, as written
        updated = {func.params[u.param] for u in found.values()}
        kept = {v: u for v, u in found.items() if not _reads(u.product, updated, producer)}
        if len(kept) == len(found):
            return found
        found = kept


def _match(w: Value, value: Value, producer: dict[Value, Op],
           uses: dict[Value, list[Op | None]]) -> tuple[Op, Op | None, Op] | None:
    """(product, scale, update) when ``value`` = W ± [s ·] (A @ B), each intermediate used
    once, all matrices of W's float dtype; else None."""
    update = producer.get(value)
    if update is None or update.prim not in (Prim.SUB, Prim.ADD) or \
            uses.get(value) != [None] or not is_array(w.type):
        return None
    if update.args[0] is w:
        term = update.args[1]
    elif update.prim is Prim.ADD and update.args[1] is w:
        term = update.args[0]
    else:
        return None
    scale, user = producer.get(term), update
    if scale is not None and scale.prim is Prim.MUL:
        scalars = [a for a in scale.args if not is_array(a.type)]
        matrices = [a for a in scale.args if is_array(a.type)]
        if len(scalars) != 1 or len(matrices) != 1 or uses.get(term) != [update] or \
                scalars[0].type is not dtype_of(w.type):
            return None
        term, user = matrices[0], scale
    else:
        scale = None
    product = producer.get(term)
    if product is None or product.prim is not Prim.MATMUL or uses.get(term) != [user]:
        return None
    if not (rank_of(w.type) == 2 and dtype_of(w.type) in (F32, F64) and
            all(rank_of(v.type) == 2 and dtype_of(v.type) is dtype_of(w.type)
                for v in (*product.args, product.result, update.result))):
        return None
    return product, scale, update


def _reads(product: Op, updated: set[Value], producer: dict[Value, Op]) -> bool:
    """Whether an operand of ``product`` is an updated argument or a view of one (seen through
    views only: any other op made a fresh array before the updates run)."""
    todo = list(product.args)
    while todo:
        v = todo.pop()
        if v in updated:
            return True
        op = producer.get(v)
        if op is not None and arrays.is_view(op):
            todo.append(op.args[0])
    return False


def unfused(groups: Groups, updates: dict[Value, Update]) -> dict[Value, Update]:
    """Take each update's ops out of the elementwise groups (``fusion.find_groups`` fuses the
    scale into the update); the updates whose ops are also in another group are dropped."""
    for update in updates.values():
        for member in groups.members.pop(update.update, []):
            groups.root_of.pop(member, None)
    fused = set(groups.root_of) | set(groups.members)
    return {v: u for v, u in updates.items() if not fused & set(u.ops)}


def deferred_ops(updates: dict[Value, Update]) -> frozenset[Op]:
    return frozenset(op for u in updates.values() for op in u.ops)


# --------------------------------------------------------------------------- lowering

def lower_updates(kb: Any, updates: Sequence[Update], others: Sequence[ArrayVal]) -> None:
    """Run ``updates`` at the write-back, each writing its argument: in place when
    ``in_place`` holds, else as separate ops whose results are checked, then copied. The
    shapes of the ``others`` (the other arguments written back) were checked before."""
    b = kb.b
    targets = [kb.params[u.param] for u in updates]
    ok = in_place(kb, updates, targets, others)
    with b.if_else(ok) as (fused, separate):
        with fused:
            for update, target in zip(updates, targets):
                _fused(kb, update, target)
        with separate:
            values = [_separately(kb, u) for u in updates]
            for target, value in zip(targets, values):
                arrays.check_same_shape(kb, target, value)
            for target, value in zip(targets, values):
                arrays.copy_into(kb, target, value)
                arrays.release(kb, value)


def in_place(kb: Any, updates: Sequence[Update], targets: Sequence[ArrayVal],
             others: Sequence[ArrayVal]) -> ir.Value:
    """Whether every update may accumulate into its argument: shapes fit, W's rows are
    contiguous, and no memory is shared between an operand and an updated argument, or between
    two arguments written back."""
    b = kb.b
    ok: ir.Value = ir.Constant(INT1, 1)
    spans = [_span(b, t) for t in targets]
    for update, target in zip(updates, targets):
        a, c = (kb.values[v] for v in update.product.args)
        m, k, n = a.shape[0], a.shape[1], c.shape[1]
        rows, cols = target.shape
        ok = b.and_(ok, _all(b, [b.icmp_signed("==", k, c.shape[0]),
                                 b.icmp_signed("==", rows, m), b.icmp_signed("==", cols, n),
                                 b.or_(b.icmp_signed("<=", n, ONE),
                                       b.icmp_signed("==", target.strides[1], ONE)),
                                 b.or_(b.icmp_signed("<=", m, ONE),
                                       b.icmp_signed(">=", target.strides[0], n))]))
        for operand in (a, c):
            operand_span = _span(b, operand)
            for span in spans:
                ok = b.and_(ok, b.not_(_overlap(b, operand_span, span)))
    written = spans + [_span(b, o) for o in others]
    for i, first in enumerate(spans):
        for second in written[i + 1:]:
            ok = b.and_(ok, b.not_(_overlap(b, first, second)))
    return ok


def _fused(kb: Any, update: Update, target: ArrayVal) -> None:
    b = kb.b
    a, c = (kb.values[v] for v in update.product.args)
    dtype = target.dtype
    fty = LL_TYPE[dtype]
    scale = ir.Constant(fty, 1.0)
    if update.scale is not None:
        s = next(v for v in update.scale.args if not is_array(v.type))
        scale = kb.values[s]
    alpha = b.fneg(scale) if update.negated else scale
    a_data, lda, trans_a, scratch_a = arrays.blas_operand(kb, a)
    c_data, ldb, trans_b, scratch_c = arrays.blas_operand(kb, c)
    ldc = b.select(b.icmp_signed(">", target.strides[0], ONE), target.strides[0], ONE)
    emit_gemm(kb, dtype, trans_a, trans_b, a.shape[0], c.shape[1], a.shape[1], alpha, a_data,
              lda, c_data, ldb, ir.Constant(fty, 1.0), target.data, ldc)
    for scratch in (scratch_a, scratch_c):
        arrays.release_if_any(kb, scratch)


def _separately(kb: Any, update: Update) -> ArrayVal:
    for op in update.ops:
        kb.moves = set()
        (result,) = kb.scalar(op)
        kb.values[op.result] = result
    for op in update.ops[:-1]:
        arrays.release(kb, kb.values[op.result])
    return kb.values[update.update.result]


def _span(b: ir.IRBuilder, x: ArrayVal) -> tuple[ir.Value, ir.Value]:
    """[first, last] byte addresses of ``x``'s elements (first > last when it has none)."""
    size = arrays.ELEM_SIZE[x.dtype]
    low, high, empty = ZERO, ZERO, ir.Constant(INT1, 0)
    for n, s in zip(x.shape, x.strides):
        reach = b.mul(b.sub(n, ONE), s)
        negative = b.icmp_signed("<", s, ZERO)
        low = b.add(low, b.select(negative, reach, ZERO))
        high = b.add(high, b.select(negative, ZERO, reach))
        empty = b.or_(empty, b.icmp_signed("<=", n, ZERO))
    base = b.ptrtoint(x.data, INT64)
    first = b.add(base, b.mul(low, ir.Constant(INT64, size)))
    last = b.add(base, b.add(b.mul(high, ir.Constant(INT64, size)), ir.Constant(INT64, size - 1)))
    return b.select(empty, ONE, first), b.select(empty, ZERO, last)


def _overlap(b: ir.IRBuilder, x: tuple[ir.Value, ir.Value], y: tuple[ir.Value, ir.Value]
             ) -> ir.Value:
    (x0, x1), (y0, y1) = x, y
    return b.and_(_all(b, [b.icmp_unsigned("<=", x0, x1), b.icmp_unsigned("<=", y0, y1)]),
                  b.and_(b.icmp_unsigned("<=", x0, y1), b.icmp_unsigned("<=", y0, x1)))


def _all(b: ir.IRBuilder, conditions: Sequence[ir.Value]) -> ir.Value:
    result = conditions[0]
    for c in conditions[1:]:
        result = b.and_(result, c)
    return result
