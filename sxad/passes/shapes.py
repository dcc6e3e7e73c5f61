"""Shapes proved equal without knowing them: ``unbroadcast(ct, like)`` is ``ct`` itself when
``ct`` already has ``like``'s shape (and ``broadcast_like``/``reshape_like`` likewise).

Derivative rules write ``unbroadcast(c, x)`` for every array operand of a broadcasting op;
most of the time nothing was broadcast (``comp - m``'s cotangent for ``comp``), yet native code
runs it as a reduction over the whole array. Shapes are runtime values, so equality is proved
symbolically: each axis's length is described by the set of *atoms* it was broadcast from, an
atom being one axis of an argument (or of a value the analysis cannot see through), the empty
set meaning length 1. An elementwise op's axis is the union of its operands' sets (aligned from
the right): the program got there, so the broadcast succeeded and that length is the common
length of the set's members other than 1 — a function of the set alone. Two axes with the same
set have the same length; two arrays whose axes all do have the same shape.
"""
from __future__ import annotations

import itertools
from typing import Callable

from ..ir import Block, Func, Op, Prim, Value, is_array, rank_of
from ..prims import RULES, rule_for
from .rewrite import Subst, adopt_hints

Dims = tuple[frozenset, ...]
_fresh = itertools.count()


def same_shapes(func: Func) -> Func:
    """``func`` with every ``unbroadcast``, ``broadcast_like`` and ``reshape_like`` whose
    operand already has the target's shape replaced by the operand; and each operand read only
    for its shape (``Rule.shape_only``) taken from a value of the same shape that is stored
    anyway (an argument, or a value used twice): an intermediate the adjoint asks only for its
    shape (``unbroadcast(c, 0.5 * z * z)``) can then stay inside its fused loop."""
    dims = shape_dims(func)
    uses = _use_counts(func.body)
    subst = Subst()
    stored: dict[tuple, Value] = {}
    made: dict[Value, Op] = {}
    readers = _readers(func.body)
    for p in func.params:
        stored.setdefault((p.type, dims[p]), p)

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = op.replace(args=subst.all(op.args), regions=tuple(block(r) for r in op.regions))
            if op.prim in _SAME_AS_LIKE and op.args[0].type == op.result.type \
                    and dims.get(op.args[0]) == dims.get(op.args[1]) is not None:
                subst[op.result] = op.args[0]
                continue
            op = _shape_from_stored(_summed_once(op, dims, made, readers), dims, stored)
            ops.append(op)
            made.update((r, op) for r in op.results)
            for r in op.results:
                if b is func.body and is_array(r.type) and uses.get(r, 0) >= 2:
                    stored.setdefault((r.type, dims[r]), r)
        return Block(b.params, tuple(ops), subst.all(b.yields))
    new = func.with_body(block(func.body))
    return adopt_hints(new, subst.hints)


def _summed_once(op: Op, dims: dict[Value, Dims], made: dict[Value, Op],
                 readers: dict[Value, list]) -> Op:
    """unbroadcast(unbroadcast(c, a), b) → unbroadcast(c, b) when ``b`` broadcasts to ``a``
    (each axis's atoms among ``a``'s): summing to ``a`` and then to ``b`` sums to ``b``. Done
    when every reader of the inner sum is such an unbroadcast, so that the array of ``a``'s
    shape need not exist at all (else the outer sum would go over the larger ``c`` for
    nothing)."""
    if op.prim is not Prim.UNBROADCAST:
        return op
    inner = made.get(op.args[0])
    if inner is None or inner.prim is not Prim.UNBROADCAST \
            or not all(_sums_within(r, inner, dims) for r in readers.get(inner.result, [None])):
        return op
    return op.replace(args=(inner.args[0], *op.args[1:]))


def _sums_within(reader: Op | None, inner: Op, dims: dict[Value, Dims]) -> bool:
    """Whether ``reader`` is ``unbroadcast(inner, b)`` with ``b`` broadcasting to ``inner``."""
    if reader is None or reader.prim is not Prim.UNBROADCAST or reader.args[0] is not inner.result:
        return False
    a, b = dims.get(inner.args[1]), dims.get(reader.args[1])
    return a is not None and b is not None and len(b) <= len(a) \
        and all(y <= x for x, y in zip(a[len(a) - len(b):], b))


def _readers(block: Block) -> dict[Value, list]:
    """value → the ops reading its elements (None: a yield or a use inside a region)."""
    out: dict[Value, list] = {}
    for op in block.ops:
        only = rule_for(op.prim).shape_only if not op.regions else ()
        for k, a in enumerate(op.args):
            if k not in only:
                out.setdefault(a, []).append(op)
        for region in op.regions:
            for v, users in _readers(region).items():
                out.setdefault(v, []).extend([None] * len(users))
    for v in block.yields:
        out.setdefault(v, []).append(None)
    return out


def _shape_from_stored(op: Op, dims: dict[Value, Dims], stored: dict[tuple, Value]) -> Op:
    only = rule_for(op.prim).shape_only if not op.regions else ()
    args = list(op.args)
    for k in only:
        a = args[k]
        if is_array(a.type) and a in dims:
            args[k] = stored.get((a.type, dims[a]), a)
    return op if args == list(op.args) else op.replace(args=tuple(args))


def _use_counts(block: Block) -> dict[Value, int]:
    """How often each value is read for its elements (shape-only operands do not count)."""
    counts: dict[Value, int] = {}
    for v in _element_reads(block):
        counts[v] = counts.get(v, 0) + 1
    return counts


def _element_reads(block: Block):
    for op in block.ops:
        only = rule_for(op.prim).shape_only if not op.regions else ()
        yield from (a for k, a in enumerate(op.args) if k not in only)
        for region in op.regions:
            yield from _element_reads(region)
    yield from block.yields


_SAME_AS_LIKE = frozenset({Prim.UNBROADCAST, Prim.BROADCAST_LIKE, Prim.RESHAPE_LIKE})


def shape_dims(func: Func) -> dict[Value, Dims]:
    """The symbolic shape of every array value (and ``()`` for scalars)."""
    dims: dict[Value, Dims] = {}
    for p in func.params:
        dims[p] = tuple(frozenset({("arg", id(p), k)}) for k in range(rank_of(p.type)))
    _block(func.body, dims)
    return dims


def _fresh_dims(value: Value) -> Dims:
    return tuple(frozenset({("fresh", next(_fresh))}) for _ in range(rank_of(value.type)))


def _block(block: Block, dims: dict[Value, Dims]) -> None:
    for p in block.params:
        dims.setdefault(p, _fresh_dims(p))
    for op in block.ops:
        for region in op.regions:
            _block(region, dims)
        rule = _RULES.get(op.prim)
        if rule is None and _is_elementwise(op):
            rule = _elementwise
        found = None
        if rule is not None and all(a in dims or not is_array(a.type) for a in op.args):
            found = rule(op, dims)
        for k, r in enumerate(op.results):
            dims[r] = found if k == 0 and found is not None and len(found) == rank_of(r.type) \
                else _fresh_dims(r)


def _is_elementwise(op: Op) -> bool:
    """A scalar primitive applied to arrays: its result has the broadcast shape of its array
    operands. (A scalar primitive with no array operand making an array — a tape ``pop`` —
    says nothing about its shape.)"""
    if op.prim not in RULES or op.regions or not op.results or op.prim in _NOT_ELEMENTWISE:
        return False
    rank = rank_of(op.result.type)
    return rank > 0 and any(is_array(a.type) and rank_of(a.type) == rank for a in op.args)


_NOT_ELEMENTWISE = frozenset({Prim.CONST, Prim.PUSH, Prim.POP})


def _of(value: Value, dims: dict[Value, Dims]) -> Dims:
    return dims.get(value, ()) if is_array(value.type) else ()


def _elementwise(op: Op, dims: dict[Value, Dims]) -> Dims:
    rank = rank_of(op.result.type)
    out = [frozenset()] * rank
    for a in op.args:
        d = _of(a, dims)
        for k, s in enumerate(d):
            out[rank - len(d) + k] = out[rank - len(d) + k] | s
    return tuple(out)


def _reduce(op: Op, dims: dict[Value, Dims]) -> Dims:
    d = _of(op.args[0], dims)
    axes = set(range(len(d)) if op.attr("axes") is None else op.attr("axes"))
    if op.attr("keepdims"):
        return tuple(frozenset() if k in axes else s for k, s in enumerate(d))
    return tuple(s for k, s in enumerate(d) if k not in axes)


def _expand_dims(op: Op, dims: dict[Value, Dims]) -> Dims:
    out = list(_of(op.args[0], dims))
    for a in op.attr("axes"):
        out.insert(a, frozenset())
    return tuple(out)


def _squeeze(op: Op, dims: dict[Value, Dims]) -> Dims:
    gone = set(op.attr("axes"))
    return tuple(s for k, s in enumerate(_of(op.args[0], dims)) if k not in gone)


def _index(op: Op, dims: dict[Value, Dims]) -> Dims | None:
    d, spec = _of(op.args[0], dims), op.attr("spec")
    if any(item not in (":", "i") for item in spec):
        return None
    kept = [s for s, item in zip(d, spec) if item == ":"]
    return (*kept, *d[len(spec):])


def _transpose(op: Op, dims: dict[Value, Dims]) -> Dims:
    d = _of(op.args[0], dims)
    perm = op.attr("perm")
    return tuple(d[k] for k in (reversed(range(len(d))) if perm is None else perm))


def _matmul(op: Op, dims: dict[Value, Dims]) -> Dims | None:
    a, b = (_of(x, dims) for x in op.args)
    if len(a) > 2 or len(b) > 2:
        return None
    return (*a[:-1], *b[1:])


def _like(k: int) -> Callable[[Op, dict], Dims]:
    return lambda op, dims: _of(op.args[k], dims)


_RULES: dict[Prim, Callable[[Op, dict], "Dims | None"]] = {
    Prim.REDUCE_SUM: _reduce, Prim.REDUCE_MAX: _reduce, Prim.REDUCE_MIN: _reduce,
    Prim.REDUCE_PROD: _reduce,
    Prim.EXPAND_DIMS: _expand_dims,
    Prim.SQUEEZE: _squeeze,
    Prim.INDEX: _index,
    Prim.TRANSPOSE: _transpose,
    Prim.MATMUL: _matmul,
    Prim.BROADCAST_LIKE: _like(1),
    Prim.UNBROADCAST: _like(1),
    Prim.RESHAPE_LIKE: _like(1),
    Prim.INDEX_ADD: _like(1),
    Prim.ZEROS_LIKE: _like(0),
    Prim.SET_INDEX: _like(0),
}
