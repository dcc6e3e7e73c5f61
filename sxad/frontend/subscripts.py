"""Subscripts: reading ``x[i, a:b, :]`` (the ``index`` prim), writing ``x[i] = v`` and
``x[:, j] += v`` (``set_index`` and a rebinding: arrays are immutable values in the IR, so an
update in place is a new value of the same array object), and items of tuples (``x.shape[0]``).

An index becomes the prims' ``spec`` (docs/ARRAYS.md §6): ``"i"`` an int, ``"s…"`` a slice
(which of start/stop/step are given), ``":"`` a whole axis, ``"a"`` an int array. ``None``
(``np.newaxis``) and ``...`` are resolved here: ranks are static, and a new axis is an
``expand_dims`` of the result.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UnsupportedError
from ..ir import BOOL, I64, Value, dtype_of, is_array, rank_of
from .expressions import Expressions, Result
from .scope import describe


class DynamicTupleIndex(UnsupportedError):
    """A tuple indexed by a run-time value: a loop over a constant range is unrolled instead."""


@dataclass
class Index:
    """A parsed subscript: the spec and its i64 arguments, and where new axes go."""

    spec: list[str] = field(default_factory=list)
    args: list[Value] = field(default_factory=list)
    new_axes: list[int] = field(default_factory=list)  # output positions of `None` items

    @property
    def basic(self) -> bool:
        """No int arrays: numpy gives a view."""
        return "a" not in self.spec


class Subscripts(Expressions):

    def expr_Subscript(self, node: ast.Subscript) -> Result:
        if self.is_static(node.value):
            obj = self.python_object(node.value)
            raise self.error(node, f"subscripts (`x[i]`) are not supported on Python objects "
                                   f"(`{ast.unparse(node.value)}` is {describe(obj)}); only "
                                   f"arrays and tuples of the function can be indexed")
        if isinstance(node.value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp,
                                   ast.Constant, ast.JoinedStr)):
            raise self.error(node, f"subscripts (`x[i]`) are only supported on arrays and "
                                   f"tuples, not on `{ast.unparse(node.value)}`")
        base = self.expr(node.value)
        if isinstance(base, tuple):
            return self.tuple_item(base, node)
        if not is_array(base.type):
            raise self.error(node, f"subscript of a number: `{ast.unparse(node.value)}` is a "
                                   f"{base.type}, not an array")
        index = self.parse_index(base, node)
        if not index.spec:
            y = base
        else:
            y = self.numpy_scalar(self.b.index(base, *index.args, spec=tuple(index.spec)))
            if index.basic and is_array(y.type):
                self.mark_view(y, "an index or slice")
        if index.new_axes:
            if not index.basic:
                raise self.error(node.slice, "`None` (new axes) together with int-array "
                                             "indices is not supported")
            y = self.mark_view(self.b.expand_dims(y, axes=tuple(index.new_axes)), "x[None]")
        return y

    def tuple_item(self, items: tuple, node: ast.Subscript) -> Result:
        """``t[k]`` or ``t[a:b]`` of a tuple: the index must be known when sxad compiles."""
        key = node.slice
        if isinstance(key, ast.Slice):
            parts = [None if p is None else self.static(p, "a tuple slice bound")
                     for p in (key.lower, key.upper, key.step)]
            return items[slice(*parts)]
        value = self.expr(key)
        k = self.known(value) if isinstance(value, Value) else None
        if k is None:
            raise self.src.error(key, "the index of a tuple must be known when sxad compiles "
                                      "(a constant, or a loop index over a `range` of "
                                      "constants)", DynamicTupleIndex)
        if not isinstance(k, int) or isinstance(k, bool):
            raise self.error(key, "a tuple index must be an int")
        if not -len(items) <= k < len(items):
            raise self.error(key, f"tuple index {k} is out of range (the tuple has "
                                  f"{len(items)} items)")
        return items[k]

    # ----------------------------------------------------------------------- parsing

    def parse_index(self, x: Value, node: ast.Subscript) -> Index:
        key = node.slice
        items = list(key.elts) if isinstance(key, ast.Tuple) else [key]
        real = [it for it in items if not (_is_none(self, it) or _is_ellipsis(it))]
        rank = x.type.rank
        if sum(_is_ellipsis(it) for it in items) > 1:
            raise self.error(key, "an index can only have a single ellipsis (`...`)")
        if len(real) > rank:
            raise self.error(key, f"too many indices: {len(real)} for an array of rank {rank}")
        out = Index()
        produced = 0  # output axes so far
        for it in items:
            if _is_ellipsis(it):
                for _ in range(rank - len(real)):
                    out.spec.append(":")
                    produced += 1
            elif _is_none(self, it):
                out.new_axes.append(produced)
                produced += 1
            elif isinstance(it, ast.Slice):
                produced += 1
                self._slice(it, out)
            else:
                v = self.value(it)
                if is_array(v.type):
                    if dtype_of(v.type) is BOOL:
                        raise self.error(it, "boolean-mask indexing (`x[mask]`) is not "
                                             "supported: use `np.where(mask, x, 0)`")
                    out.spec.append("a")
                    produced += v.type.rank  # adjacent arrays share their broadcast axes
                else:
                    out.spec.append("i")
                if dtype_of(v.type) is not I64:   # a bool scalar would be a mask to numpy
                    raise self.error(it, f"indices must be integers, got {v.type}")
                out.args.append(self.to_dtype(v, I64))
        while out.spec and out.spec[-1] == ":":
            out.spec.pop()   # axes after the spec are kept whole anyway
        return out

    def _slice(self, it: ast.Slice, out: Index) -> None:
        letters = ""
        for part in (it.lower, it.upper, it.step):
            if part is None or (isinstance(part, ast.Constant) and part.value is None):
                letters += "0"
                continue
            v = self.value(part)
            if is_array(v.type) or dtype_of(v.type) not in (I64, BOOL):
                raise self.error(part, f"slice bounds must be ints, got {v.type}")
            if part is it.step and self.known(v) == 0:
                raise self.error(part, "slice step cannot be zero")
            letters += "1"
            out.args.append(self.to_dtype(v, I64))
        out.spec.append(":" if letters == "000" else "s" + letters)

    # ----------------------------------------------------------------------- updates

    def update_subscript(self, target: ast.Subscript, new: Callable[[Value], Value],
                         augmented: bool = False) -> None:
        """``x[i] = v`` (``augmented``: ``x[i] += v``, where ``new`` gets ``x[i]``)."""
        if self.is_static(target.value):
            raise self.error(target, f"assignment to a subscript of a Python object "
                                     f"(`{ast.unparse(target.value)}`) is not supported")
        name = ast.unparse(target.value)   # `x[i] = v`, also `params[0][i] = v`
        x = self.expr(target.value)
        if isinstance(x, tuple):
            raise self.error(target, f"`{name}` is a tuple: its items cannot be assigned")
        if not is_array(x.type):
            raise self.error(target, f"subscript of a number: `{name}` is a {x.type}, not an "
                                     f"array")
        start = len(self.b.ops)
        index = self.parse_index(x, target)
        if index.new_axes:
            raise self.error(target.slice, "`None` (new axes) in an assignment target is not "
                                           "supported")
        with self.located(target):
            old = (lambda: self.b.index(x, *index.args, spec=tuple(index.spec))) \
                if index.spec else (lambda: x)
            v = new(old)
            region = _region_rank(x, index)
            if rank_of(v.type) > region:
                raise self.fail(f"cannot store a value of rank {rank_of(v.type)} into "
                                f"`{ast.unparse(target)}`, which has rank {region}")
            if augmented and region > 0:   # numpy: an in-place ufunc on the array `x[i]`
                self.check_cast(v, dtype_of(x.type), ast.unparse(target))
            v = self.to_dtype(v, dtype_of(x.type))   # numpy casts what it stores
            if not index.spec:   # `x[:] = v`: all of x
                y = self.b.broadcast_like(v, x)
            else:
                y = self.b.set_index(x, v, *index.args, spec=tuple(index.spec))
        if isinstance(target.value, ast.Name):
            y = self.rename(y, name, start)
            self.st.where[name] = self.src.loc(target.value)
        self.update_object(x, y)


def _region_rank(x: Value, index: Index) -> int:
    """The rank of ``x[index]`` (arrays counted once: they broadcast together)."""
    arrays = [a for a, item in zip(_array_args(index), index.spec) if item == "a"]
    kept = sum(1 for item in index.spec if item[0] in "s:") + x.type.rank - len(index.spec)
    return kept + (max(rank_of(a.type) for a in arrays) if arrays else 0)


def _array_args(index: Index) -> list[Value]:
    """The argument of each spec item (None for items without one), in spec order."""
    out, args = [], iter(index.args)
    for item in index.spec:
        if item in ("i", "a"):
            out.append(next(args))
        elif item.startswith("s"):
            for _ in range(item.count("1")):
                next(args)
            out.append(None)
        else:
            out.append(None)
    return out


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _is_none(lw: Expressions, node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None
    return lw.is_static(node) and lw.python_object(node) is None  # np.newaxis
