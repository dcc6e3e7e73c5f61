"""The numpy functions (and array methods) that take keywords, axes, shapes or dtypes, each with
its signature and how it lowers. Elementwise functions of positional numbers (``np.exp``,
``np.maximum``) are in ``library.py``.

Keyed by the function object itself, so any import alias works. A method (``x.sum(axis=0)``)
is the function with the array as its first argument.
"""
from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..ir import F64, I64, Prim, Value, dtype_of, is_array, rank_of

if TYPE_CHECKING:
    from .arrays import Args, ArrayOps

NO_DEFAULT = object()
Lower = Callable[["ArrayOps", "Args"], Any]


@dataclass(frozen=True)
class Fn:
    name: str                      # as a user writes it, for messages
    params: tuple[str, ...]
    lower: Lower
    defaults: dict[str, Any] = field(default_factory=dict)
    star: str | None = None        # as a method, this parameter also takes `*args`


def _signature(text: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """``"a, axis=None, keepdims=False"`` as names and defaults."""
    args = ast.parse(f"def f({text}): pass").body[0].args
    names = tuple(a.arg for a in args.args)
    defaults = {a.arg: ast.literal_eval(d)
                for a, d in zip(args.args[len(args.args) - len(args.defaults):], args.defaults)}
    return names, defaults


def fn(name: str, signature: str, lower: Lower, star: str | None = None) -> Fn:
    names, defaults = _signature(signature)
    return Fn(name, names, lower, defaults, star)


# --------------------------------------------------------------------------- lowerings

_REDUCE = {"sum": Prim.REDUCE_SUM, "max": Prim.REDUCE_MAX, "min": Prim.REDUCE_MIN,
           "prod": Prim.REDUCE_PROD}


def _reduction(prim: Prim) -> Lower:
    def lower(lw: "ArrayOps", a: "Args") -> Value:
        _no_dtype(lw, a)
        return lw.reduce(prim, a.value("a"), a.static("axis"), a.static("keepdims"),
                         a.where("axis"))
    return lower


def _no_dtype(lw: "ArrayOps", a: "Args") -> None:
    for name in ("dtype", "out", "ddof"):
        if a.given(name) and a.static(name) not in (None, 0):
            raise lw.error(a.where(name), f"`{name}=` of `{a.entry.name}` is not supported")


def _mean(lw: "ArrayOps", a: "Args") -> Value:
    _no_dtype(lw, a)
    return lw.mean(a.value("a"), a.static("axis"), a.static("keepdims"), a.where("axis"))


def _var(lw: "ArrayOps", a: "Args", sqrt: bool = False) -> Value:
    _no_dtype(lw, a)
    x, axis, where = lw.real(a.value("a")), a.static("axis"), a.where("axis")
    centred = lw.b.sub(x, lw.mean(x, axis, True, where)) if is_array(x.type) else \
        lw.b.sub(x, x)
    var = lw.mean(lw.b.mul(centred, centred), axis, a.static("keepdims"), where)
    return lw.b.sqrt(var) if sqrt else var


def _truth(prim: Prim) -> Lower:
    """``np.any``/``np.all``: the max/min of the truth values."""
    def lower(lw: "ArrayOps", a: "Args") -> Value:
        x = lw.mask(a.value("a"))
        y = lw.reduce(prim, lw.to_dtype(x, I64), a.static("axis"), a.static("keepdims"),
                      a.where("axis"))
        return lw.mask(y)
    return lower


def _matmul(lw: "ArrayOps", a: "Args") -> Value:
    return lw.matmul(a.value("a"), a.value("b"), a.node)


def _dot(lw: "ArrayOps", a: "Args") -> Value:
    return lw.dot(a.value("a"), a.value("b"), a.node)


def _outer(lw: "ArrayOps", a: "Args") -> Value:
    return lw.outer(a.value("a"), a.value("b"), a.node)


def _transpose(lw: "ArrayOps", a: "Args") -> Value:
    x, axes = a.value("a"), a.static("axes")
    if axes is None or axes == ():
        return lw.transpose(x, None)
    rank = rank_of(x.type)
    axes = axes if isinstance(axes, tuple) else (axes,)
    if len(axes) != rank:
        raise lw.error(a.where("axes"), f"axes {axes} do not match an array of rank {rank}")
    return lw.transpose(x, tuple(lw.axes(k, rank, a.where("axes"))[0] for k in axes))


def _reshape(lw: "ArrayOps", a: "Args") -> Value:
    return lw.reshape(a.array("a"), a.dims("shape"))


def _ravel(lw: "ArrayOps", a: "Args") -> Value:
    x = a.array("a")
    return x if x.type.rank == 1 else lw.reshape(x, [lw.const(-1)])


def _flatten(lw: "ArrayOps", a: "Args") -> Value:
    return lw.copy(_ravel(lw, a))


def _expand_dims(lw: "ArrayOps", a: "Args") -> Value:
    x, axis = a.value("a"), a.static("axis")
    n = len(axis) if isinstance(axis, tuple) else 1
    y = lw.b.expand_dims(x, axes=lw.axes(axis, rank_of(x.type) + n, a.where("axis")))
    return lw.mark_view(y, "np.expand_dims") if is_array(x.type) else y


def _squeeze(lw: "ArrayOps", a: "Args") -> Value:
    x, axis = a.array("a"), a.static("axis")
    if axis is None:
        raise lw.error(a.node, "`squeeze` needs `axis=` in sxad (ranks are fixed when it "
                               "compiles, and which axes have length 1 is known only at run time)")
    return lw.mark_view(lw.b.squeeze(x, axes=lw.axes(axis, x.type.rank, a.where("axis"))),
                        "np.squeeze")


def _astype(lw: "ArrayOps", a: "Args") -> Value:
    x, dtype = a.value("a"), a.dtype()
    return lw.copy(x) if dtype_of(x.type) == dtype else lw.to_dtype(x, dtype)


def _copy(lw: "ArrayOps", a: "Args") -> Value:
    return lw.copy(a.value("a"))


def _asarray(lw: "ArrayOps", a: "Args") -> Value:
    x, dtype = a.value("a"), a.dtype()
    return x if dtype is None else lw.to_dtype(x, dtype)


def _array(lw: "ArrayOps", a: "Args") -> Value:
    return lw.copy(_asarray(lw, a))


def _filled(fill: Any, default: Any = F64) -> Lower:
    """``np.zeros(shape)``, ``np.ones``, ``np.empty`` (zeros too), ``np.full``."""
    def lower(lw: "ArrayOps", a: "Args") -> Value:
        dims = a.dims("shape")
        if fill is None:
            value = a.value("fill_value")
            dtype = a.dtype() or dtype_of(value.type)
        else:
            value, dtype = lw.const(fill), a.dtype() or default
        return lw.full(value, dims, dtype)
    return lower


def _filled_like(fill: Any) -> Lower:
    """``np.zeros_like(x)`` and co: zeros of x's shape, plus the fill value."""
    def lower(lw: "ArrayOps", a: "Args") -> Value:
        x, dtype = a.value("a"), a.dtype()
        dtype = dtype or dtype_of(x.type)
        value = lw.const(fill) if fill is not None else a.value("fill_value")
        if not is_array(x.type):
            return lw.to_dtype(value, dtype)
        zeros = lw.b.zeros_like(lw.to_dtype(x, dtype) if dtype_of(x.type) != dtype else x)
        if fill == 0:
            return zeros
        return lw.b.add(zeros, lw.to_dtype(value, dtype))
    return lower


def _arange(lw: "ArrayOps", a: "Args") -> Value:
    start = a.value("start")
    if a.given("stop") and not _is_none(a, "stop"):
        stop = a.value("stop")
    else:
        start, stop = lw.const(0), start
    step = a.value("step") if a.given("step") and not _is_none(a, "step") else lw.const(1)
    for v in (start, stop, step):
        if is_array(v.type):
            raise lw.error(a.node, "`np.arange` takes numbers")
    start, stop, step = lw.numeric(start, stop, step)
    y = lw.b.arange(start, stop, step)
    dtype = a.dtype()
    return y if dtype is None else lw.to_dtype(y, dtype)


def _broadcast_to(lw: "ArrayOps", a: "Args") -> Value:
    """``np.broadcast_to(x, shape)``: ``broadcast_like`` against zeros of that shape."""
    x, dims = a.value("a"), a.dims("shape")
    if len(dims) < rank_of(x.type):
        raise lw.error(a.where("shape"), f"cannot broadcast a rank-{rank_of(x.type)} array to "
                                         f"rank {len(dims)}")
    if not dims:
        return x
    like = lw.b.full(lw.const(0, dtype_of(x.type)), *dims)
    return lw.mark_view(lw.b.broadcast_like(x, like), "a broadcast")


def _len(lw: "ArrayOps", a: "Args") -> Value:
    x = a.result("obj")
    if isinstance(x, tuple):
        return lw.const(len(x))
    if not is_array(x.type) or x.type.rank == 0:
        raise lw.error(a.node, f"`len()` of a number ({x.type})")
    return lw.dim(x, 0)


def _shape(lw: "ArrayOps", a: "Args") -> Any:
    return lw.shape_of(a.value("a"))


def _ndim(lw: "ArrayOps", a: "Args") -> Value:
    return lw.const(rank_of(a.value("a").type))


def _size(lw: "ArrayOps", a: "Args") -> Value:
    x = a.value("a")
    return lw.count(x, tuple(range(rank_of(x.type))))


def _clip(lw: "ArrayOps", a: "Args") -> Value:
    x = a.value("a")
    lo = None if _is_none(a, "a_min") else a.value("a_min")
    hi = None if _is_none(a, "a_max") else a.value("a_max")
    present = [v for v in (x, lo, hi) if v is not None]
    x, *bounds = lw.numeric(*present)
    if lo is not None:
        x = lw.b.max(x, bounds.pop(0))
    if hi is not None:
        x = lw.b.min(x, bounds.pop(0))
    return x


def _is_none(a: "Args", name: str) -> bool:
    kind, what = a.bound.get(name, ("node", None))
    return kind == "node" and (what is None or (isinstance(what, ast.Constant) and
                                                what.value is None))


def _logaddexp(lw: "ArrayOps", a: "Args") -> Value:
    """log(eˣ + eʸ) = max(x, y) + log1p(exp(−|x − y|)): no overflow, no new prim."""
    x, y = lw.numeric(a.value("a"), a.value("b"), real=True)
    m = lw.b.max(x, y)
    return lw.b.add(m, lw.b.log1p(lw.b.exp(lw.b.neg(lw.b.abs(lw.b.sub(x, y))))))


def _norm(lw: "ArrayOps", a: "Args") -> Value:
    if a.given("ord") and a.static("ord") is not None:
        raise lw.error(a.where("ord"), "`ord=` of `np.linalg.norm` is not supported")
    x = lw.real(a.value("a"))
    squares = lw.reduce(Prim.REDUCE_SUM, lw.b.mul(x, x), a.static("axis"),
                        a.static("keepdims"), a.where("axis"), strict=True)
    return lw.b.sqrt(squares)


# --------------------------------------------------------------------------- the tables

_AXIS = "a, axis=None, keepdims=False, dtype=None, out=None"


def _entries() -> list[tuple[Any, Fn]]:
    reductions = [(getattr(np, n), fn(f"np.{n}", _AXIS, _reduction(p))) for n, p in
                  _REDUCE.items()]
    reductions += [(np.amax, fn("np.amax", _AXIS, _reduction(Prim.REDUCE_MAX))),
                   (np.amin, fn("np.amin", _AXIS, _reduction(Prim.REDUCE_MIN)))]
    return reductions + [
        (np.mean, fn("np.mean", _AXIS, _mean)),
        (np.var, fn("np.var", _AXIS + ", ddof=0", _var)),
        (np.std, fn("np.std", _AXIS + ", ddof=0", lambda lw, a: _var(lw, a, True))),
        (np.any, fn("np.any", "a, axis=None, keepdims=False", _truth(Prim.REDUCE_MAX))),
        (np.all, fn("np.all", "a, axis=None, keepdims=False", _truth(Prim.REDUCE_MIN))),
        (np.matmul, fn("np.matmul", "a, b", _matmul)),
        (np.dot, fn("np.dot", "a, b", _dot)),
        (np.outer, fn("np.outer", "a, b", _outer)),
        (np.transpose, fn("np.transpose", "a, axes=None", _transpose)),
        (np.reshape, fn("np.reshape", "a, shape", _reshape)),
        (np.ravel, fn("np.ravel", "a", _ravel)),
        (np.expand_dims, fn("np.expand_dims", "a, axis", _expand_dims)),
        (np.broadcast_to, fn("np.broadcast_to", "a, shape", _broadcast_to)),
        (np.squeeze, fn("np.squeeze", "a, axis=None", _squeeze)),
        (np.zeros, fn("np.zeros", "shape, dtype=None", _filled(0))),
        (np.ones, fn("np.ones", "shape, dtype=None", _filled(1))),
        (np.empty, fn("np.empty", "shape, dtype=None", _filled(0))),
        (np.full, fn("np.full", "shape, fill_value, dtype=None", _filled(None))),
        (np.zeros_like, fn("np.zeros_like", "a, dtype=None", _filled_like(0))),
        (np.ones_like, fn("np.ones_like", "a, dtype=None", _filled_like(1))),
        (np.empty_like, fn("np.empty_like", "a, dtype=None", _filled_like(0))),
        (np.full_like, fn("np.full_like", "a, fill_value, dtype=None", _filled_like(None))),
        (np.arange, fn("np.arange", "start, stop=None, step=None, dtype=None", _arange)),
        (np.asarray, fn("np.asarray", "a, dtype=None", _asarray)),
        (np.array, fn("np.array", "a, dtype=None", _array)),
        (np.copy, fn("np.copy", "a", _copy)),
        (np.shape, fn("np.shape", "a", _shape)),
        (np.ndim, fn("np.ndim", "a", _ndim)),
        (np.size, fn("np.size", "a", _size)),
        (np.clip, fn("np.clip", "a, a_min, a_max", _clip)),
        (np.logaddexp, fn("np.logaddexp", "a, b", _logaddexp)),
        (np.linalg.norm, fn("np.linalg.norm", "a, ord=None, axis=None, keepdims=False", _norm)),
        (builtins.len, fn("len", "obj", _len)),
    ]


_TABLE: dict[int, tuple[Any, Fn]] = {id(obj): (obj, entry) for obj, entry in _entries()}


def lookup(obj: Any) -> Fn | None:
    found = _TABLE.get(id(obj))
    return found[1] if found is not None and found[0] is obj else None


def _method(name: str, obj: Any, star: str | None = None, signature: str | None = None,
            lower: Lower | None = None) -> tuple[str, Fn]:
    base = lookup(obj) if obj is not None else None
    if signature is not None:
        names, defaults = _signature(signature)
    else:
        names, defaults = base.params, base.defaults
    return name, Fn(f".{name}()", names, lower or base.lower, defaults, star)


METHODS: dict[str, Fn] = dict([
    *(_method(n, getattr(np, n)) for n in ("sum", "max", "min", "prod", "mean", "var", "std",
                                           "any", "all")),
    _method("dot", np.dot), _method("clip", np.clip, signature="a, a_min=None, a_max=None"),
    _method("reshape", np.reshape, star="shape"),
    _method("transpose", np.transpose, star="axes"),
    _method("ravel", np.ravel), _method("flatten", None, signature="a", lower=_flatten),
    _method("squeeze", np.squeeze), _method("copy", np.copy),
    _method("astype", None, signature="a, dtype", lower=_astype),
])
