"""Floor 2: the indexing, update, shape and creation primitives on arrays (docs/ARRAYS.md §6).

``index(x, *idx)``, ``index_add(ct, like, *idx)`` and ``set_index(x, v, *idx)`` share the
attribute ``spec``: one item per indexed axis of ``x`` (``like``), from the left; axes after
the spec are kept whole. Items, and the i64 arguments each takes from ``idx``:

``"i"``    an integer (one scalar arg); negative counts from the end; out of range raises
           ``IndexError`` naming the axis and its length.
``"sBBB"`` a slice; the three letters (``0``/``1``) say which of start, stop, step are given
           as args (``"s110"``: ``a:b``); the others take Python's defaults (``x[::-1]``).
``":"``    the whole axis (no arg).
``"a"``    an i64 array (integer-array indexing). Array items broadcast together; integer items
           next to them join them, as in numpy. They must be adjacent (``p[arange(n), y]``):
           numpy moves the axes of separated ones to the front, which we reject.

Values are immutable: ``set_index`` gives a copy of ``x`` with ``v`` (a scalar or an array
broadcasting to the indexed region, of ``x``'s dtype) written there; ``index_add`` gives zeros
of ``like``'s shape with ``ct`` *added* at the indexed positions (``np.add.at``: repeated array
indices accumulate). Its rules are ``index``'s adjoint and its own, so forward-over-reverse
works. A ``set_index`` whose index arrays repeat a position writes one of the values (numpy
leaves which unspecified); its adjoint then sends the cotangent to each of them.

``set_index`` and ``index_add`` print as two statements (``{{y}}`` in their templates is the
result's variable): ``y = x.copy()`` / ``y[i, :] = v``.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np

from .ir import F32, F64, I64, ArrayType, Prim, Type, Value, dtype_of, is_array, rank_of
from .prims import ARRAY_RULES, Emitter, Rule, RuleError, _method, _scalar_or_array, _sum

Spec = tuple[str, ...]
_SLICE = re.compile(r"s[01]{3}")
MAX_RANK = 4


# --------------------------------------------------------------------------- the spec

def _arg_count(item: str) -> int:
    """How many index arguments ``item`` takes."""
    if item in ("i", "a"):
        return 1
    if item == ":":
        return 0
    if _SLICE.fullmatch(item):
        return item.count("1")
    raise RuleError(f"unknown index item {item!r} (expected 'i', 'a', ':' or 's' + 3 of 0/1)")


def _split(spec: Spec, idx: Sequence[Any]) -> list[list[Any]]:
    """``idx`` cut into each item's arguments."""
    out, at = [], 0
    for item in spec:
        n = _arg_count(item)
        out.append(list(idx[at:at + n]))
        at += n
    return out


def _advanced(spec: Spec) -> list[int]:
    """The positions numpy's advanced indexing acts on: array items, and integer items when
    there is any array item. Empty without array items."""
    if "a" not in spec:
        return []
    return [k for k, item in enumerate(spec) if item in ("i", "a")]


def _index_type(x: Type, idx: Sequence[Type], spec: Spec, name: str = "index") -> Type:
    """The type of ``x[spec over idx]``: ``x``'s dtype, rank from the spec (0: a scalar)."""
    if not is_array(x):
        raise RuleError(f"{name} needs an array to index, got {x}")
    if len(spec) > x.rank:
        raise RuleError(f"{name}: {len(spec)} indices for a rank-{x.rank} array")
    if sum(_arg_count(item) for item in spec) != len(idx):
        raise RuleError(f"{name}: spec {spec} takes {sum(map(_arg_count, spec))} index "
                        f"arguments, got {len(idx)}")
    broadcast = 0
    for item, types in zip(spec, _split(spec, idx)):
        _check_item(name, item, types)
        if item == "a":
            broadcast = max(broadcast, types[0].rank)
    advanced = _advanced(spec)
    if advanced and advanced != list(range(advanced[0], advanced[-1] + 1)):
        raise RuleError(f"{name}: integer-array indices separated by a slice ({spec}) are "
                        f"not supported (numpy would move their axes to the front)")
    kept = sum(1 for item in spec if item[0] in "s:") + x.rank - len(spec)
    rank = kept + broadcast
    if rank > MAX_RANK:
        raise RuleError(f"{name}: the result would have rank {rank} (at most {MAX_RANK})")
    return _scalar_or_array(x.dtype, rank)


def _check_item(name: str, item: str, types: Sequence[Type]) -> None:
    """An ``"a"`` item takes an i64 array; the others i64 scalars."""
    if item == "a" and not (is_array(types[0]) and types[0].dtype == I64):
        raise RuleError(f"{name}: an 'a' item needs an i64 array, got {types[0]}")
    if item != "a" and any(t != I64 for t in types):
        raise RuleError(f"{name}: item {item!r} needs i64 scalars, got "
                        f"{', '.join(map(str, types))}")


def _np_index(shape: tuple[int, ...], idx: Sequence[Any], spec: Spec) -> tuple:
    """The numpy index of ``spec`` over ``idx``; an integer out of range raises IndexError
    naming the axis and its length (numpy's own words)."""
    out: list[Any] = []
    for axis, (item, args) in enumerate(zip(spec, _split(spec, idx))):
        if item == "i":
            i, n = int(args[0]), shape[axis]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
            out.append(i)
        elif item == "a":
            out.append(np.asarray(args[0], dtype=np.int64))
        elif item == ":":
            out.append(slice(None))
        else:
            given = iter(args)
            out.append(slice(*(int(next(given)) if flag == "1" else None for flag in item[1:])))
    return tuple(out)


def _index_text(spec: Spec, first: int) -> str:
    """The subscript of ``spec`` with its args numbered from ``first``: ``{1}, {2}:{3}, :``."""
    parts, at = [], first
    for item in spec:
        if item in ("i", "a"):
            parts.append("{%d}" % at)
            at += 1
        elif item == ":":
            parts.append(":")
        else:
            bounds = []
            for flag in item[1:]:
                bounds.append("{%d}" % at if flag == "1" else "")
                at += flag == "1"
            text = ":".join(bounds)
            parts.append(text[:-1] if text.endswith(":") and item[3] == "0" else text)
    if not parts:
        return "()"
    return ", ".join(parts)


def _spec_fields(first: int) -> Callable[[dict], dict[str, str]]:
    def fields(attrs: dict) -> dict[str, str]:
        spec = tuple(attrs.get("spec", ()))
        text = _index_text(spec, first)
        if "a" in spec:  # repeated array indices must accumulate: np.add.at
            where = f"np.s_[{text}]" if ":" in text else (f"({text})" if len(spec) > 1 else text)
            into, close = "np.add.at({{y}}, %s, " % where, ")"
        else:
            into, close = "{{y}}[%s] += " % text, ""
        return {"idx": text, "into": into, "close": close}
    return fields


def _index_rule(ts: Sequence[Type], attrs: dict) -> Type:
    return _index_type(ts[0], ts[1:], tuple(attrs["spec"]))


# --------------------------------------------------------------------------- index

def _np_take(x: Any, *idx: Any, spec: Spec) -> Any:
    return np.asarray(x)[_np_index(np.shape(x), idx, spec)]


def _fit(b: Emitter, c: Value, like: Value) -> Value:
    """The cotangent ``c`` of a value broadcast from ``like``, summed back to ``like``'s shape."""
    if is_array(like.type):
        return b.unbroadcast(c, like)
    return b.reduce_sum(c) if is_array(c.type) else c


def _index_jvp(b, xs, dxs, ys, attrs):
    """ẏ = index(ẋ, idx…)"""
    return dxs[0] and b.index(dxs[0], *xs[1:], **attrs)


def _index_vjp(b, yb, xs, ys, attrs):
    """x̄ += index_add(ȳ, x, idx…)"""
    return (b.index_add(yb, xs[0], *xs[1:], **attrs), *[None] * (len(xs) - 1))


# --------------------------------------------------------------------------- index_add

def _writes_into(name: str, what: str, value_at: int, target_at: int) -> Callable[..., Type]:
    """The type rule of a prim writing ``ts[value_at]`` into the indexed region of
    ``ts[target_at]`` (its result type): same dtype, broadcasting to the region."""
    def type_(ts: Sequence[Type], attrs: dict) -> Type:
        value, target = ts[value_at], ts[target_at]
        region = _index_type(target, ts[2:], tuple(attrs["spec"]), name)
        if dtype_of(value) != dtype_of(target) or rank_of(value) > rank_of(region):
            raise RuleError(f"{name}: {what} of {dtype_of(target)} broadcasting to {region} is "
                            f"needed, got {value}")
        return target
    return type_


_index_add_type = _writes_into("index_add", "a cotangent", value_at=0, target_at=1)


def _np_index_add(ct: Any, like: Any, *idx: Any, spec: Spec) -> Any:
    out = np.zeros_like(like)
    where = _np_index(np.shape(like), idx, spec)
    if "a" in spec:
        np.add.at(out, where, ct)
    else:
        out[where] += ct
    return out


def _index_add_jvp(b, xs, dxs, ys, attrs):
    """ẏ = index_add(ċt, like, idx…)"""
    return dxs[0] and b.index_add(dxs[0], *xs[1:], **attrs)


def _index_add_vjp(b, yb, xs, ys, attrs):
    """c̄t += index(ȳ, idx…) (summed back where ct was broadcast)"""
    ct, like, *idx = xs
    return (_fit(b, b.index(yb, *idx, **attrs), ct), None, *[None] * len(idx))


# --------------------------------------------------------------------------- set_index

_set_index_type = _writes_into("set_index", "a value", value_at=1, target_at=0)


def _np_set_index(x: Any, v: Any, *idx: Any, spec: Spec) -> Any:
    out = np.array(x, copy=True)
    out[_np_index(out.shape, idx, spec)] = v
    return out


def _set_index_jvp(b, xs, dxs, ys, attrs):
    """ẏ = set_index(ẋ, v̇, idx…)"""
    x, v, *idx = xs
    dx, dv = dxs[0], dxs[1]
    if dx is None and dv is None:
        return None
    return b.set_index(dx or b.zeros_like(x), dv or b.zero(dtype_of(x.type)), *idx, **attrs)


def _set_index_vjp(b, yb, xs, ys, attrs):
    """x̄ += set_index(ȳ, 0, idx…); v̄ += index(ȳ, idx…) (summed where v was broadcast)"""
    x, v, *idx = xs
    xbar = b.set_index(yb, b.zero(dtype_of(x.type)), *idx, **attrs)
    return (xbar, _fit(b, b.index(yb, *idx, **attrs), v), *[None] * len(idx))


# --------------------------------------------------------------------------- shapes

def _dims_check(name: str, dims: Sequence[Type], least: int = 1) -> int:
    if not least <= len(dims) <= MAX_RANK or any(t != I64 for t in dims):
        raise RuleError(f"{name} needs {least} to {MAX_RANK} i64 dims, got "
                        f"{', '.join(map(str, dims)) or 'none'}")
    return len(dims)


def _reshape_type(ts: Sequence[Type]) -> Type:
    if not is_array(ts[0]):
        raise RuleError(f"reshape needs an array, got {ts[0]}")
    return ArrayType(ts[0].dtype, _dims_check("reshape", ts[1:]))


def _np_reshape(x: Any, *dims: Any) -> Any:
    return np.reshape(x, tuple(int(d) for d in dims))


def _dims_fields(attrs: dict) -> dict[str, str]:
    """``{1}, {2}`` and the tuple ``({1}, {2})`` over the dims after the first argument."""
    n = attrs.get("_nargs", 1)
    dims = ", ".join("{%d}" % k for k in range(1, n))
    return {"dims": dims, "shape": f"({dims},)" if n == 2 else f"({dims})",
            "dtype": _dtype_text(attrs)}


def _dtype_text(attrs: dict) -> str:
    """A ``dtype=`` argument where numpy would infer another type from Python scalars."""
    return ", dtype=np.float32" if attrs.get("_dtype") == F32 else ""


def _reshape_jvp(b, xs, dxs, ys):
    """ẏ = reshape(ẋ, dims…)"""
    return dxs[0] and b.reshape(dxs[0], *xs[1:])


def _reshape_vjp(b, yb, xs, ys):
    """x̄ += reshape_like(ȳ, x)"""
    return (b.reshape_like(yb, xs[0]), *[None] * (len(xs) - 1))


def _reshape_like_type(ts: Sequence[Type]) -> Type:
    x, like = ts
    if not (is_array(x) and is_array(like)):
        raise RuleError(f"reshape_like needs two arrays, got {x}, {like}")
    return ArrayType(x.dtype, like.rank)


def _reshape_like_jvp(b, xs, dxs, ys):
    """ẏ = reshape_like(ẋ, like)"""
    return dxs[0] and b.reshape_like(dxs[0], xs[1])


def _reshape_like_vjp(b, yb, xs, ys):
    """x̄ += reshape_like(ȳ, x)"""
    return (b.reshape_like(yb, xs[0]), None)


def _squeeze_type(ts: Sequence[Type], attrs: dict) -> Type:
    (x,) = ts
    if not is_array(x):
        raise RuleError(f"squeeze needs an array, got {x}")
    axes = tuple(attrs["axes"])
    if not axes or list(axes) != sorted(set(axes)) or any(not 0 <= a < x.rank for a in axes):
        raise RuleError(f"squeeze: {axes} are not sorted distinct axes of {x}")
    return _scalar_or_array(x.dtype, x.rank - len(axes))


def _squeeze_jvp(b, xs, dxs, ys, attrs):
    """ẏ = squeeze(ẋ, axes)"""
    return dxs[0] and b.squeeze(dxs[0], **attrs)


def _squeeze_vjp(b, yb, xs, ys, attrs):
    """x̄ += expand_dims(ȳ, axes)"""
    return (b.expand_dims(yb, axes=attrs["axes"]),)


# --------------------------------------------------------------------------- creation

def _full_type(ts: Sequence[Type]) -> Type:
    if is_array(ts[0]):
        raise RuleError(f"full needs a scalar value, got {ts[0]}")
    return ArrayType(ts[0], _dims_check("full", ts[1:], least=0))   # 0: a 0-d array


def _np_full(value: Any, *dims: Any) -> Any:
    return np.full(tuple(int(d) for d in dims), value, dtype=np.asarray(value).dtype)


def _full_jvp(b, xs, dxs, ys):
    """ẏ = full(v̇, dims…)"""
    return dxs[0] and b.full(dxs[0], *xs[1:])


def _full_vjp(b, yb, xs, ys):
    """v̄ += sum(ȳ)"""
    return (b.reduce_sum(yb), *[None] * (len(xs) - 1))


def _arange_type(ts: Sequence[Type]) -> Type:
    if len(set(ts)) != 1 or ts[0] not in (I64, F64, F32):
        raise RuleError(f"arange needs (start, stop, step) of one of i64, f64, f32, got "
                        f"{', '.join(map(str, ts))}")
    return ArrayType(ts[0], 1)


def _np_arange(start: Any, stop: Any, step: Any) -> Any:
    return np.arange(start, stop, step, dtype=np.asarray(start).dtype)


def _positions(b: Emitter, y: Value) -> Value:
    """0, 1, …, len(y) − 1 in ``y``'s element type."""
    k = b.arange(b.const(0), b.dim(y, axis=0), b.const(1))
    return b.cast(k, dtype_of(y.type))


def _arange_jvp(b, xs, dxs, ys):
    """ẏ = ṡtart + k·ṡtep at position k (the stop moves no element)"""
    y = ys[0]
    dstart, dstep = dxs[0], dxs[2]
    terms = [dstep and b.mul(_positions(b, y), dstep), dstart]
    dy = _sum(b, terms)
    return dy if dy is None or dstep is not None else b.broadcast_like(dy, y)


def _arange_vjp(b, yb, xs, ys):
    """s̄tart += sum(ȳ); s̄tep += sum(k·ȳ)"""
    return (b.reduce_sum(yb), None, b.reduce_sum(b.mul(_positions(b, ys[0]), yb)))


# --------------------------------------------------------------------------- registration

_SPEC = (("spec", ()),)


def _register(prim: Prim, arity: int, type_: Any, eval_: Any, python: str, jvp: Any, vjp: Any,
              attrs: tuple = (), fields: Any = None, variadic: bool = False,
              array_python: str | None = None, shape_only: frozenset[int] = frozenset(),
              shape_from: int | None = None) -> None:
    ARRAY_RULES[prim] = Rule(prim, arity, type_, eval_, python, sym=None, jvp=jvp, vjp=vjp,
                             attrs=attrs, fields=fields, array_python=array_python,
                             variadic=variadic, shape_only=shape_only, shape_from=shape_from)


_register(Prim.INDEX, 1, _index_rule, _np_take, "{0}[{idx}]",
          _index_jvp, _index_vjp, _SPEC, _spec_fields(1), variadic=True)
_register(Prim.INDEX_ADD, 2, _index_add_type, _np_index_add,
          "{{y}} = np.zeros_like({1})\n{into}{0}{close}",
          _index_add_jvp, _index_add_vjp, _SPEC, _spec_fields(2), variadic=True,
          shape_only=frozenset({1}), shape_from=1)
_register(Prim.SET_INDEX, 2, _set_index_type, _np_set_index,
          "{{y}} = {0}.copy()\n{{y}}[{idx}] = {1}",
          _set_index_jvp, _set_index_vjp, _SPEC, _spec_fields(2), variadic=True, shape_from=0)
_register(Prim.RESHAPE, 1, _reshape_type, _np_reshape, "{0}.reshape({dims})",
          _reshape_jvp, _reshape_vjp, fields=_dims_fields, variadic=True)
_register(Prim.RESHAPE_LIKE, 2, _reshape_like_type, lambda x, like: np.reshape(x, np.shape(like)),
          "{0}.reshape(np.shape({1}))", _reshape_like_jvp, _reshape_like_vjp,
          shape_only=frozenset({1}), shape_from=1)
_register(Prim.SQUEEZE, 1, _squeeze_type,
          lambda x, axes: np.squeeze(x, axis=tuple(axes)), "np.squeeze({0}, {axes})[()]",
          _squeeze_jvp, _squeeze_vjp, attrs=(("axes", (0,)),),
          fields=lambda a: {"axes": str(tuple(a["axes"]))},
          array_python="np.squeeze({0}, {axes})")
_register(Prim.FULL, 1, _full_type, _np_full, "np.full({shape}, {0}{dtype})",
          _full_jvp, _full_vjp, fields=_dims_fields, variadic=True)
_register(Prim.ARANGE, 3, _arange_type, _np_arange, "np.arange({0}, {1}, {2}{dtype})",
          _arange_jvp, _arange_vjp, fields=lambda a: {"dtype": _dtype_text(a)})

ARRAY_PRIMS = (Prim.INDEX, Prim.INDEX_ADD, Prim.SET_INDEX, Prim.RESHAPE, Prim.RESHAPE_LIKE,
               Prim.SQUEEZE, Prim.FULL, Prim.ARANGE)
for _prim in ARRAY_PRIMS:  # Emitter methods: b.index(x, i, spec=("i",)), b.full(v, n, m)
    setattr(Emitter, _prim.value, _method(_prim))

__all__ = ["ARRAY_PRIMS"]
