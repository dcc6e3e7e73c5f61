"""Indexing, update, shape and creation primitives in native code (``sxad/array_prims.py``):
``index``, ``index_add``, ``set_index``, ``reshape``, ``reshape_like``, ``squeeze``, ``full``,
``arange``.

An index ``spec`` (see ``sxad.array_prims``) is resolved into a *region*: its shape, and for every
axis of the indexed array the coordinate each region index reads there (a constant for an
integer item, ``start + j·step`` for a slice, ``j`` for a whole axis, an element of an index
array for an array item). Integers are checked once, index-array elements as they are read; an
index out of range is ``Fault.INDEX`` (numpy's ``IndexError`` naming the axis and its length).
``SXAD_BOUNDS_CHECK=0`` when compiling leaves the checks out (``bounds_checked``): negative
indices still count from the end, but an index out of range is then undefined behaviour (a read
or write outside the buffer).
Basic indexing (no array items) is a view: the region's strides over the same buffer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

from llvmlite import ir

from sxad.ir import F64, I64, Op, Prim, is_array

from .arrays import (INT1, MEM_TYPE, ONE, ZERO, ArrayVal, Context, Value, _i, allocate,
                     broadcast, contiguous_strides, copy, copy_elements, counted, element_pointer,
                     load, nest, outline, shape_info, store)
from .faults import Fault, ShapeKind
from .lowering import DOUBLE, LL_TYPE

INT64 = ir.IntType(64)
INT64_MAX, INT64_MIN = 2 ** 63 - 1, -(2 ** 63)


@dataclass
class Region:
    """What an index spec selects: its ``shape``, and per axis of the indexed array a ``plan``
    entry saying how ``coords`` finds the coordinate there for a region index ``j``:
    ``("const", v)``, ``("axis", region axis, start, step)`` or ``("array", which, length,
    axis)`` (an element of index array ``which``, checked against the axis's ``length``).
    Plain data, so that a loop using it can be outlined (``arrays.outline``)."""

    shape: list[ir.Value]
    plan: list[tuple]
    arrays: list[ArrayVal]             # the index arrays
    array_strides: list[list[ir.Value]]   # their strides over the broadcast index shape
    adv_at: int | None                 # where the index arrays' axes sit in the region's
    adv_rank: int
    basic: bool    # no index arrays: coordinates are affine in j (a view is possible)

    def coords(self, cx: Context, j: list[ir.Value]) -> list[ir.Value]:
        b = cx.b
        out = []
        adv = j[self.adv_at:self.adv_at + self.adv_rank] if self.adv_at is not None else []
        for step in self.plan:
            if step[0] == "const":
                out.append(step[1])
            elif step[0] == "axis":
                _, k, start, stride = step
                out.append(b.add(start, b.mul(j[k], stride)))
            else:
                _, which, length, axis = step
                arr, strides = self.arrays[which], self.array_strides[which]
                at = element_pointer(b, arr, adv[len(adv) - arr.rank:],
                                     strides[len(strides) - arr.rank:])
                out.append(_checked(cx, load(b, arr.dtype, at), length, axis))
        return out


def _split(spec: Sequence[str], idx: Sequence[Value]) -> list[list[Value]]:
    out, at = [], 0
    for item in spec:
        n = 1 if item in ("i", "a") else 0 if item == ":" else item.count("1")
        out.append(list(idx[at:at + n]))
        at += n
    return out


def bounds_checked() -> bool:
    """Whether kernels compiled now check their indices: unless ``SXAD_BOUNDS_CHECK`` is ``0``
    (read at each compilation; part of the object cache's key)."""
    return os.environ.get("SXAD_BOUNDS_CHECK", "1").strip() != "0"


def _checked(cx: Context, i: ir.Value, n: ir.Value, axis: int) -> ir.Value:
    """``i`` counted from the end when negative, checked to lie in ``[0, n)`` (unless the kernel
    is compiled without bounds checks: ``cx.bounds_check``)."""
    b = cx.b
    fixed = b.select(b.icmp_signed("<", i, ZERO), b.add(i, n), i)
    if not getattr(cx, "bounds_check", True):
        return fixed
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
            plan.append(("array", sum(1 for s in spec[:axis] if s == "a"), x.shape[axis],
                         axis))
        elif item == ":":
            plan.append(("axis", len(shape), ZERO, ONE))
            shape.append(x.shape[axis])
        else:
            start, length, step = _slice(cx, item, args, x.shape[axis])
            plan.append(("axis", len(shape), start, step))
            shape.append(length)

    return Region(shape, plan, index_arrays, adv_strides, adv_at, len(adv_shape), not has_arrays)


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
        return load(b, x.dtype, _at(b, x, where.coords(cx, [])))
    if where.basic:
        origin = where.coords(cx, [ZERO] * len(where.shape))
        data = _at(b, x, origin)
        unit = [where.coords(cx, [ONE if m == k else ZERO for m in range(len(where.shape))])
                for k in range(len(where.shape))]
        strides = [b.sub(_offset(b, u, x.strides), _offset(b, origin, x.strides)) for u in unit]
        return ArrayVal(x.dtype, data, where.shape, strides)
    out = allocate(cx, x.dtype, where.shape)

    def gather(lcx: Context, captured: object) -> None:
        x, where, out = captured
        lb = lcx.b

        def body(j: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            value = load(lb, x.dtype, _at(lb, x, where.coords(lcx, j)))
            store(lb, x.dtype, value, element_pointer(lb, out, j))
            return []
        nest(lcx, where.shape, [], body, vectorize=False)
    outline(cx, (x, where, out), gather, can_fail=_may_fail(cx, where))
    return out


def _may_fail(cx: Context, where: Region) -> bool:
    """Whether reading the region's coordinates checks index-array elements."""
    return not where.basic and getattr(cx, "bounds_check", True)


def _scatter(cx: Context, target: ArrayVal, where: Region, value: Value, add: bool) -> None:
    """``target[region] = value`` (or ``+=``), ``value`` broadcast to the region."""
    strides = broadcast_to(cx, value, where.shape) if isinstance(value, ArrayVal) else None

    def scatter(lcx: Context, captured: object) -> None:
        target, where, value, strides = captured
        b = lcx.b

        def body(j: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            v = load(b, value.dtype, element_pointer(b, value, j, strides)) \
                if isinstance(value, ArrayVal) else value
            at = _at(b, target, where.coords(lcx, j))
            if add:
                old = load(b, target.dtype, at)
                v = b.add(old, v) if target.dtype is I64 else b.fadd(old, v)
            store(b, target.dtype, v, at)
            return []
        nest(lcx, where.shape, [], body, vectorize=False)
    outline(cx, (target, where, value, strides), scatter, can_fail=_may_fail(cx, where))


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
    copy_elements(cx, x.shape, x, x.strides, out.data, contiguous_strides(cx.b, x.shape)[0])
    return out


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

def _fill(cx: Context, out: ArrayVal, value: Callable[[Context, ir.Value, tuple], ir.Value],
          inputs: tuple = ()) -> ArrayVal:
    """``out[i] = value(cx, i, inputs)`` for every element of the fresh ``out`` (an outlined
    loop: ``inputs`` are the kernel values ``value`` reads)."""
    count = contiguous_strides(cx.b, out.shape)[1]

    def fill(lcx: Context, captured: object) -> None:
        data, count, inputs = captured
        b = lcx.b

        def body(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            store(b, out.dtype, value(lcx, i, inputs),
                  b.gep(data, [i], source_etype=MEM_TYPE[out.dtype]))
            return []
        counted(lcx, count, [], body)
    outline(cx, (out.data, count, inputs), fill)
    return out


def _full(cx: Context, op: Op, xs: list[Value]) -> Value:
    value, *dims = xs
    b = cx.b
    negative: ir.Value = ir.Constant(INT1, 0)
    for d in dims:
        negative = b.or_(negative, b.icmp_signed("<", d, ZERO))
    cx.fail_if(negative, Fault.NEGATIVE_DIMENSION)
    return _fill(cx, allocate(cx, op.result.type.dtype, dims), lambda lcx, i, v: v[0],
                 (value,))


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
        return _fill(cx, allocate(cx, dtype, [length]),
                     lambda lcx, i, v: lcx.b.add(v[0], lcx.b.mul(i, v[1])), (start, step))
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
    return _fill(cx, allocate(cx, dtype, [length]), lambda lcx, i, v: lcx.b.fadd(
        v[0], lcx.b.fmul(lcx.b.sitofp(i, LL_TYPE[dtype]), v[1])), (start, delta))


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
