"""Indexing, update, shape and creation primitives in native code (``sxad/array_prims.py``):
``index``, ``index_add``, ``set_index``, ``reshape``, ``reshape_like``, ``squeeze``, ``full``,
``arange``.

An index ``spec`` (see ``sxad.array_prims``) is resolved into a *region*: its shape, and for every
axis of the indexed array the coordinate each region index reads there (a constant for an
integer item, ``start + j·step`` for a slice, ``j`` for a whole axis, an element of an index
array for an array item). Integers are checked once, index-array elements as they are read; an
index out of range is ``Fault.INDEX`` (numpy's ``IndexError`` naming the axis and its length).
Basic indexing (no array items) is a view: the region's strides over the same buffer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from llvmlite import ir

from sxad.ir import F64, I64, Op, Prim, is_array

from .arrays import (INT1, MEM_TYPE, ONE, ZERO, ArrayVal, Context, Value, _i, allocate,
                     broadcast, contiguous_strides, copy, counted, element_pointer, load, nest,
                     shape_info, store)
from .faults import Fault, ShapeKind
from .lowering import DOUBLE, LL_TYPE

INT64 = ir.IntType(64)
INT64_MAX, INT64_MIN = 2 ** 63 - 1, -(2 ** 63)


@dataclass
class Region:
    """What an index spec selects: ``shape``, and ``coords(j)``: for each axis of the indexed
    array, its coordinate at region index ``j`` (a list over the region's axes)."""

    shape: list[ir.Value]
    coords: Callable[[list[ir.Value]], list[ir.Value]]
    basic: bool    # no index arrays: coordinates are affine in j (a view is possible)


def _split(spec: Sequence[str], idx: Sequence[Value]) -> list[list[Value]]:
    out, at = [], 0
    for item in spec:
        n = 1 if item in ("i", "a") else 0 if item == ":" else item.count("1")
        out.append(list(idx[at:at + n]))
        at += n
    return out


def _checked(cx: Context, i: ir.Value, n: ir.Value, axis: int) -> ir.Value:
    """``i`` counted from the end when negative, checked to lie in ``[0, n)``."""
    b = cx.b
    fixed = b.select(b.icmp_signed("<", i, ZERO), b.add(i, n), i)
    bad = b.or_(b.icmp_signed("<", fixed, ZERO), b.icmp_signed(">=", fixed, n))
    cx.fail_with(bad, Fault.INDEX, [_i(axis), i, n])
    return fixed


def _slice(cx: Context, item: str, args: list[ir.Value],
           n: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(start, length, step) of a Python slice over an axis of length ``n``
    (``PySlice_Unpack`` + ``PySlice_AdjustIndices``)."""
    b = cx.b
    given = iter(args)
    start, stop, step = (next(given) if flag == "1" else None for flag in item[1:])
    if step is None:
        step = ONE
    else:
        cx.fail_if(b.icmp_signed("==", step, ZERO), Fault.SLICE_STEP)
    back = b.icmp_signed("<", step, ZERO)
    start = start if start is not None else b.select(back, _i(INT64_MAX), ZERO)
    stop = stop if stop is not None else b.select(back, _i(INT64_MIN), _i(INT64_MAX))

    def adjust(v: ir.Value) -> ir.Value:
        low = b.add(v, n)
        low = b.select(b.icmp_signed("<", low, ZERO), b.select(back, _i(-1), ZERO), low)
        high = b.select(back, b.sub(n, ONE), n)
        return b.select(b.icmp_signed("<", v, ZERO), low,
                        b.select(b.icmp_signed(">=", v, n), high, v))
    start, stop = adjust(start), adjust(stop)
    down = b.add(b.sdiv(b.sub(b.sub(start, stop), ONE), b.neg(step)), ONE)
    up = b.add(b.sdiv(b.sub(b.sub(stop, start), ONE), step), ONE)
    length = b.select(back, b.select(b.icmp_signed("<", stop, start), down, ZERO),
                      b.select(b.icmp_signed("<", start, stop), up, ZERO))
    return start, length, step


def region(cx: Context, x: ArrayVal, spec: Sequence[str], idx: Sequence[Value]) -> Region:
    """The region ``x[spec over idx]`` selects (checks integers and slices now)."""
    b = cx.b
    parts = _split(spec, idx)
    has_arrays = "a" in spec
    index_arrays = [p[0] for s, p in zip(spec, parts) if s == "a"]
    adv_shape, adv_strides = broadcast(cx, index_arrays, max((a.rank for a in index_arrays),
                                                             default=0)) \
        if has_arrays else ([], [])
    # per axis of x: ("const", v) | ("axis", region axis, start, step) | ("array", which)
    plan: list[tuple] = []
    shape: list[ir.Value] = []
    adv_at = None
    for axis in range(x.rank):
        item = spec[axis] if axis < len(spec) else ":"
        args = parts[axis] if axis < len(spec) else []
        if has_arrays and item in ("i", "a") and adv_at is None:
            adv_at = len(shape)
            shape += adv_shape
        if item == "i":
            plan.append(("const", _checked(cx, args[0], x.shape[axis], axis)))
        elif item == "a":
            plan.append(("array", sum(1 for s in spec[:axis] if s == "a")))
        elif item == ":":
            plan.append(("axis", len(shape), ZERO, ONE))
            shape.append(x.shape[axis])
        else:
            start, length, step = _slice(cx, item, args, x.shape[axis])
            plan.append(("axis", len(shape), start, step))
            shape.append(length)

    def coords(j: list[ir.Value]) -> list[ir.Value]:
        out = []
        adv_index = j[adv_at:adv_at + len(adv_shape)] if adv_at is not None else []
        for axis, step in enumerate(plan):
            if step[0] == "const":
                out.append(step[1])
            elif step[0] == "axis":
                _, k, start, stride = step
                out.append(b.add(start, b.mul(j[k], stride)))
            else:
                which = step[1]
                arr = index_arrays[which]
                at = element_pointer(b, arr, adv_index[len(adv_index) - arr.rank:],
                                     adv_strides[which][len(adv_strides[which]) - arr.rank:])
                out.append(_checked(cx, load(b, arr.dtype, at), x.shape[axis], axis))
        return out
    return Region(shape, coords, not has_arrays)


def _offset(b: ir.IRBuilder, coords: list[ir.Value], strides: list[ir.Value]) -> ir.Value:
    offset: ir.Value = ZERO
    for c, s in zip(coords, strides):
        offset = b.add(offset, b.mul(c, s))
    return offset


def _at(b: ir.IRBuilder, x: ArrayVal, coords: list[ir.Value]) -> ir.Value:
    return b.gep(x.data, [_offset(b, coords, x.strides)], source_etype=MEM_TYPE[x.dtype])


def _index(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A view for basic indexing, a gather for array items, an element for a scalar result."""
    x, *idx = xs
    b = cx.b
    where = region(cx, x, op.attr("spec"), idx)
    if not is_array(op.result.type):
        return load(b, x.dtype, _at(b, x, where.coords([])))
    if where.basic:
        origin = where.coords([ZERO] * len(where.shape))
        data = _at(b, x, origin)
        unit = [where.coords([ONE if m == k else ZERO for m in range(len(where.shape))])
                for k in range(len(where.shape))]
        strides = [b.sub(_offset(b, u, x.strides), _offset(b, origin, x.strides)) for u in unit]
        return ArrayVal(x.dtype, data, where.shape, strides)
    out = allocate(cx, x.dtype, where.shape)

    def body(j: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        store(b, x.dtype, load(b, x.dtype, _at(b, x, where.coords(j))), element_pointer(b, out, j))
        return []
    nest(cx, where.shape, [], body, vectorize=False)
    return out


def _scatter(cx: Context, target: ArrayVal, where: Region, value: Value, add: bool) -> None:
    """``target[region] = value`` (or ``+=``), ``value`` broadcast to the region."""
    b = cx.b
    strides = broadcast_to(cx, value, where.shape) if isinstance(value, ArrayVal) else None

    def body(j: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        v = load(b, value.dtype, element_pointer(b, value, j, strides)) \
            if isinstance(value, ArrayVal) else value
        at = _at(b, target, where.coords(j))
        if add:
            old = load(b, target.dtype, at)
            v = b.add(old, v) if target.dtype is I64 else b.fadd(old, v)
        store(b, target.dtype, v, at)
        return []
    nest(cx, where.shape, [], body, vectorize=False)


def broadcast_to(cx: Context, value: ArrayVal, shape: list[ir.Value]) -> list[ir.Value]:
    """``value``'s strides over ``shape`` (0 where broadcast); a misfit is a fault."""
    b = cx.b
    lead = len(shape) - value.rank
    bad: ir.Value = ir.Constant(INT1, 0)
    strides = [ZERO] * lead
    for n, a, s in zip(shape[lead:], value.shape, value.strides):
        a_is_one = b.icmp_signed("==", a, ONE)
        bad = b.or_(bad, b.and_(b.not_(a_is_one), b.icmp_signed("!=", a, n)))
        strides.append(b.select(a_is_one, ZERO, s))
    target = ArrayVal(value.dtype, value.data, list(shape))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.BROADCAST_TO, [value, target]))
    return strides


def _set_index(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A copy of ``x`` with ``v`` written into the region."""
    x, v, *idx = xs
    out = copy(cx, x)
    _scatter(cx, out, region(cx, out, op.attr("spec"), idx), v, add=False)
    return out


def _index_add(cx: Context, op: Op, xs: list[Value]) -> Value:
    """Zeros of ``like``'s shape with ``ct`` added into the region (repeats accumulate)."""
    ct, like, *idx = xs
    out = allocate(cx, like.dtype, like.shape, zeroed=True)
    _scatter(cx, out, region(cx, out, op.attr("spec"), idx), ct, add=True)
    return out


# --------------------------------------------------------------------------- shapes

def _reshape_into(cx: Context, x: ArrayVal, shape: list[ir.Value]) -> ArrayVal:
    """A C-order copy of ``x``'s elements in ``shape`` (whose size was checked)."""
    out = allocate(cx, x.dtype, shape)
    nest(cx, x.shape, [ZERO], lambda j, c: _copy_one(cx, x, out, j, c), vectorize=False)
    return out


def _copy_one(cx: Context, x: ArrayVal, out: ArrayVal, j: list[ir.Value],
              carried: list[ir.Value]) -> list[ir.Value]:
    b = cx.b
    store(b, x.dtype, load(b, x.dtype, element_pointer(b, x, j)),
          b.gep(out.data, [carried[0]], source_etype=MEM_TYPE[x.dtype]))
    return [b.add(carried[0], ONE)]


def _reshape(cx: Context, op: Op, xs: list[Value]) -> Value:
    """numpy's reshape: one dim may be -1 (inferred); the sizes must agree."""
    x, *dims = xs
    b = cx.b
    size = contiguous_strides(b, x.shape)[1]
    known: ir.Value = ONE
    unknown = ZERO
    bad: ir.Value = ir.Constant(INT1, 0)
    for d in dims:
        is_unknown = b.icmp_signed("==", d, _i(-1))
        unknown = b.add(unknown, b.zext(is_unknown, INT64))
        bad = b.or_(bad, b.icmp_signed("<", d, _i(-1)))
        known = b.mul(known, b.select(is_unknown, ONE, d))
    safe = b.select(b.icmp_signed("==", known, ZERO), ONE, known)
    inferred = b.sdiv(size, safe)
    bad = b.or_(bad, b.icmp_signed(">", unknown, ONE))
    exact = b.icmp_signed("==", b.select(b.icmp_signed("==", unknown, ONE),
                                         b.mul(inferred, known), known), size)
    zero_known = b.and_(b.icmp_signed("==", known, ZERO), b.icmp_signed("==", unknown, ONE))
    bad = b.or_(bad, b.or_(b.not_(exact), zero_known))
    want = ArrayVal(x.dtype, x.data, list(dims), [])
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.RESHAPE, [x, want]))
    shape = [b.select(b.icmp_signed("==", d, _i(-1)), inferred, d) for d in dims]
    return _reshape_into(cx, x, shape)


def _reshape_like(cx: Context, op: Op, xs: list[Value]) -> Value:
    x, like = xs
    b = cx.b
    size, want = (contiguous_strides(b, a.shape)[1] for a in (x, like))
    cx.fail_with(b.icmp_signed("!=", size, want), Fault.SHAPE,
                 shape_info(ShapeKind.RESHAPE, [x, like]))
    return _reshape_into(cx, x, list(like.shape))


def _squeeze(cx: Context, op: Op, xs: list[Value]) -> Value:
    """A view without the given axes, which must have length 1."""
    (x,) = xs
    b = cx.b
    axes = set(op.attr("axes"))
    bad: ir.Value = ir.Constant(INT1, 0)
    for k in axes:
        bad = b.or_(bad, b.icmp_signed("!=", x.shape[k], ONE))
    cx.fail_with(bad, Fault.SHAPE, shape_info(ShapeKind.SQUEEZE, [x]))
    if not is_array(op.result.type):
        return load(b, x.dtype, x.data)
    keep = [k for k in range(x.rank) if k not in axes]
    return ArrayVal(x.dtype, x.data, [x.shape[k] for k in keep], [x.strides[k] for k in keep])


# --------------------------------------------------------------------------- creation

def _fill(cx: Context, out: ArrayVal, value: Callable[[ir.Value], ir.Value]) -> ArrayVal:
    b = cx.b
    count = contiguous_strides(b, out.shape)[1]

    def body(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        store(b, out.dtype, value(i), b.gep(out.data, [i], source_etype=MEM_TYPE[out.dtype]))
        return []
    counted(cx, count, [], body)
    return out


def _full(cx: Context, op: Op, xs: list[Value]) -> Value:
    value, *dims = xs
    b = cx.b
    negative: ir.Value = ir.Constant(INT1, 0)
    for d in dims:
        negative = b.or_(negative, b.icmp_signed("<", d, ZERO))
    cx.fail_if(negative, Fault.NEGATIVE_DIMENSION)
    return _fill(cx, allocate(cx, op.result.type.dtype, dims), lambda i: value)


def _arange(cx: Context, op: Op, xs: list[Value]) -> Value:
    """numpy's arange: ceil((stop − start)/step) elements (at least 0), ``start + i·delta``
    with ``delta = (start + step) − start`` in the dtype, as numpy fills them."""
    start, stop, step = xs
    b = cx.b
    dtype = op.result.type.dtype
    if dtype is I64:
        cx.fail_if(b.icmp_signed("==", step, ZERO), Fault.ZERO_DIVISION)
        up = b.icmp_signed(">", step, ZERO)
        span = b.select(up, b.sub(stop, start), b.sub(start, stop))
        stride = b.select(up, step, b.neg(step))
        length = b.select(b.icmp_signed(">", span, ZERO),
                          b.add(b.sdiv(b.sub(span, ONE), stride), ONE), ZERO)
        return _fill(cx, allocate(cx, dtype, [length]), lambda i: b.add(start, b.mul(i, step)))
    zero = ir.Constant(LL_TYPE[dtype], 0.0)
    cx.fail_if(b.fcmp_ordered("==", step, zero), Fault.ZERO_DIVISION)
    wide = [v if dtype is F64 else b.fpext(v, DOUBLE) for v in (start, stop, step)]
    ratio = b.fdiv(b.fsub(wide[1], wide[0]), wide[2])
    ceil = b.call(cx.declare("llvm.ceil.f64", DOUBLE, [DOUBLE]), [ratio])
    positive = b.fcmp_ordered(">", ceil, ir.Constant(DOUBLE, 0.0))    # nan: no elements
    length = b.select(positive, b.fptosi(ceil, INT64), ZERO)
    # numpy refuses lengths that do not fit (inf); so does the allocation here
    too_long = b.and_(positive, b.fcmp_ordered(">=", ceil, ir.Constant(DOUBLE, 2.0 ** 62)))
    cx.fail_if(too_long, Fault.NO_MEMORY)
    delta = b.fsub(b.fadd(start, step), start)
    return _fill(cx, allocate(cx, dtype, [length]),
                 lambda i: b.fadd(start, b.fmul(b.sitofp(i, LL_TYPE[dtype]), delta)))


INDEXING_LOWERING = {
    Prim.INDEX: _index, Prim.SET_INDEX: _set_index, Prim.INDEX_ADD: _index_add,
    Prim.RESHAPE: _reshape, Prim.RESHAPE_LIKE: _reshape_like, Prim.SQUEEZE: _squeeze,
    Prim.FULL: _full, Prim.ARANGE: _arange,
}


def is_index_view(op: Op) -> bool:
    """``index`` without index arrays, with an array result, and ``squeeze`` with one, are
    views of their first argument."""
    if op.prim is Prim.INDEX:
        return "a" not in op.attr("spec") and is_array(op.results[0].type)
    return op.prim is Prim.SQUEEZE and is_array(op.results[0].type)


__all__ = ["INDEXING_LOWERING", "is_index_view", "region"]
