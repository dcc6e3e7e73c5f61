"""Arrays in expressions: attributes (``x.T``, ``x.shape``), methods (``x.sum(axis=1)``),
the numpy functions that take keywords, axes or shapes (their table is in ``numpy_table.py``),
and the shape helpers they share (axes, dims, reductions, ``@``).

The numpy subset lowers to the array prims, or to compositions of them where one is as good
(docs/ARRAYS.md §6): ``mean`` is a sum over a count built from ``dim``, ``np.outer`` is
``expand_dims`` and ``mul``, ``np.clip`` is ``max`` and ``min``.
"""
from __future__ import annotations

import ast
from typing import Any, Sequence

import numpy as np

from ..ir import BOOL, I64, Prim, ScalarType, Value, dtype_of, is_array, rank_of
from ..prims import NUMPY_TYPE
from . import numpy_table
from .expressions import Expressions, Result
from .scope import dotted

_FROM_NUMPY = {np.dtype(t): s for s, t in NUMPY_TYPE.items()}
_MATMUL_RANKS = {(1, 1), (2, 1), (1, 2), (2, 2)}
_NO_DEFAULT = numpy_table.NO_DEFAULT
_PYTHON_INTS = {"len", "np.shape", "np.ndim", "np.size"}  # they give Python ints


class Args:
    """A call's arguments bound to a table entry's parameters, lowered on demand."""

    def __init__(self, lw: "ArrayOps", entry: numpy_table.Fn, node: ast.Call,
                 receiver: Result | None) -> None:
        self.lw, self.entry, self.node = lw, entry, node
        # name -> ("node", ast) | ("value", Result) | ("star", [ast]): lowered when asked for
        self.bound: dict[str, Any] = {}
        names = list(entry.params)
        if receiver is not None:
            self.bound[names.pop(0)] = ("value", receiver)
        positional = list(node.args)
        if entry.star is not None and receiver is not None and len(positional) > 1:
            self.bound[entry.star] = ("star", positional)  # x.reshape(2, 3), x.transpose(1, 0)
            names.remove(entry.star)
            positional = []
        if len(positional) > len(names):
            raise lw.error(node, f"`{entry.name}` takes at most {len(names)} positional "
                                 f"arguments here, got {len(positional)}")
        for name, arg in zip(names, positional):
            self.bound[name] = ("node", arg)
        for kw in node.keywords:
            if kw.arg not in entry.params:
                raise lw.error(kw.value, f"argument `{kw.arg}` of `{entry.name}` is not "
                                         f"supported by sxad")
            if kw.arg in self.bound:
                raise lw.error(kw.value, f"argument `{kw.arg}` of `{entry.name}` is given twice")
            self.bound[kw.arg] = ("node", kw.value)
        for name in entry.params:
            if name not in self.bound and entry.defaults.get(name, _NO_DEFAULT) is _NO_DEFAULT:
                raise lw.error(node, f"`{entry.name}` is missing the argument `{name}`")

    def given(self, name: str) -> bool:
        return name in self.bound

    def where(self, name: str) -> ast.AST:
        kind, what = self.bound.get(name, (None, None))
        return what if kind == "node" else self.node

    def result(self, name: str) -> Result:
        kind, what = self.bound[name]
        if kind == "value":
            return what
        if kind == "star":
            return tuple(self.lw.value(n) for n in what)
        return self.lw.expr(what)

    def value(self, name: str) -> Value:
        found = self.result(name)
        if isinstance(found, tuple):
            raise self.lw.error(self.where(name), f"argument `{name}` of `{self.entry.name}` must "
                                                  f"be a number or an array, not a tuple")
        return found

    def array(self, name: str) -> Value:
        v = self.value(name)
        if not is_array(v.type):
            raise self.lw.error(self.where(name), f"`{self.entry.name}` needs an array here "
                                                  f"(`{name}`), got a number ({v.type})")
        return v

    def static(self, name: str) -> Any:
        """A compile-time argument (an axis, a flag, a dtype), or its default."""
        if name not in self.bound:
            return self.entry.defaults[name]
        kind, what = self.bound[name]
        if kind == "star":
            return tuple(self.lw.static(n) for n in what)
        if kind == "value":
            raise self.lw.error(self.node, f"`{name}` of `{self.entry.name}` must be a constant")
        return self.lw.static(what, f"`{name}` of `{self.entry.name}`")

    def dims(self, name: str) -> list[Value]:
        kind, what = self.bound[name]
        if kind == "star":
            return [self.lw.dim_value(n) for n in what]
        return self.lw.dims_of(self.result(name), self.where(name))

    def dtype(self, name: str = "dtype") -> ScalarType | None:
        obj = self.static(name)
        return None if obj is None else self.lw.dtype_from(obj, self.where(name))


class ArrayOps(Expressions):

    # ----------------------------------------------------------------------- dispatch

    def numpy_call(self, fn: Any, node: ast.Call) -> Result | None:
        entry = numpy_table.lookup(fn)
        if entry is None:
            return None
        start = len(self.b.ops)
        return self.numpy_scalar(entry.lower(self, Args(self, entry, node, None)),
                                 always=entry.name not in _PYTHON_INTS, since=start)

    def method(self, receiver: Result, node: ast.Call) -> Result:
        name = node.func.attr
        if isinstance(receiver, tuple):
            raise self.error(node.func, f"tuples have no method `{name}` in sxad")
        if not is_array(receiver.type):
            raise self.error(node.func, f"`.{name}()` of a number is not supported")
        entry = numpy_table.METHODS.get(name)
        if entry is None:
            raise self.error(node.func, f"the array method `.{name}()` is not supported")
        start = len(self.b.ops)
        return self.numpy_scalar(entry.lower(self, Args(self, entry, node, receiver)),
                                 since=start)

    def attribute(self, base: Result, node: ast.Attribute) -> Result:
        name = node.attr
        if isinstance(base, tuple):
            raise self.error(node, f"tuples have no attribute `{name}`")
        if name == "shape":
            return self.shape_of(base)
        if name == "ndim":
            return self.const(rank_of(base.type))
        if name == "size":
            return self.count(base, tuple(range(rank_of(base.type))))
        if not is_array(base.type):
            raise self.error(node.value, f"`{ast.unparse(node.value)}` is a variable holding a "
                                         f"number ({base.type}); `.{name}` of a number is not "
                                         f"supported")
        if name == "T":
            return self.transpose(base, None)
        if name == "dtype":
            raise self.error(node, "`.dtype` is not supported: write dtype-free code "
                                   "(`x.astype(np.float32)`, `np.zeros_like(x)`)")
        raise self.error(node, f"the array attribute `.{name}` is not supported")

    # ----------------------------------------------------------------------- static arguments

    def static(self, node: ast.expr, label: str = "this argument") -> Any:
        """The Python value of an argument that must be known at compile time."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.static(e, label) for e in node.elts)
        if self.is_static(node):
            obj = self.python_object(node)
            if isinstance(obj, (type, np.dtype)) or obj is None:
                return obj
        value = self.expr(node)
        if isinstance(value, tuple):
            return tuple(self._known_or_fail(v, node, label) for v in value)
        return self._known_or_fail(value, node, label)

    def _known_or_fail(self, v: Any, node: ast.AST, label: str) -> Any:
        k = self.known(v) if isinstance(v, Value) else None
        if k is None:
            raise self.error(node, f"{label} must be a constant (known when sxad compiles)")
        return k

    def dtype_from(self, obj: Any, node: ast.AST) -> ScalarType:
        try:
            found = _FROM_NUMPY.get(np.dtype(obj))
        except TypeError:
            found = None
        if found is None:
            raise self.error(node, f"dtype `{dotted(node)}` is not supported (float64, float32, "
                                   f"int64 and bool are)")
        return found

    # ----------------------------------------------------------------------- shapes

    def dim(self, x: Value, axis: int) -> Value:
        return self.b.dim(x, axis=axis, hint="n")

    def shape_of(self, x: Value) -> tuple:
        return tuple(self.dim(x, k) for k in range(rank_of(x.type)))

    def count(self, x: Value, axes: Sequence[int]) -> Value:
        """How many elements ``axes`` of ``x`` hold together (i64)."""
        total = self.const(1)
        for k in axes:
            d = self.dim(x, k)
            total = d if self.known(total) == 1 else self.b.mul(total, d)
        return total

    def dim_value(self, node: ast.expr) -> Value:
        v = self.value(node)
        return self._dim_check(v, node)

    def _dim_check(self, v: Value, node: ast.AST) -> Value:
        if is_array(v.type) or dtype_of(v.type) not in (I64, BOOL):
            raise self.error(node, f"a shape must be made of ints, got {v.type}")
        return self.to_dtype(v, I64)

    def dims_of(self, shape: Result, node: ast.AST) -> list[Value]:
        """A shape argument (an int, a tuple of ints, ``x.shape``) as i64 values."""
        if isinstance(shape, tuple):
            if any(isinstance(s, tuple) for s in shape):
                raise self.error(node, "a shape must be an int or a tuple of ints")
            return [self._dim_check(s, node) for s in shape]
        return [self._dim_check(shape, node)]

    def axes(self, axis: Any, rank: int, node: ast.AST) -> tuple[int, ...]:
        """``axis`` (None, an int or a tuple, negatives from the end) as sorted axes."""
        if axis is None:
            return tuple(range(rank))
        items = axis if isinstance(axis, tuple) else (axis,)
        out = []
        for a in items:
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
                raise self.error(node, f"an axis must be an int, got {a!r}")
            if not -rank <= a < rank:
                raise self.error(node, f"axis {a} is out of bounds for an array of rank {rank}")
            out.append(int(a) % rank)
        if len(set(out)) != len(out):
            raise self.error(node, f"repeated axis in {axis!r}")
        return tuple(sorted(out))

    def mark_view(self, v: Value, how: str, exact: bool = True) -> Value:
        """``v``, just made by the last op from the array in its first argument, is what numpy
        gives as a view of that array. ``exact``: numpy always gives a view (not, as for a
        reshape, a copy when the memory layout asks for one), so sxad can make it again after
        an in-place update of the array (objects.py)."""
        shared = self.shared
        shared.views[v] = how
        op = self.b.ops[-1]
        assert any(r is v for r in op.results), "mark_view: not the last op's result"
        base = op.args[0]
        shared.maybe[v] = shared.sharing(base)
        if not exact:
            return v
        prim, rest, attrs, hint = op.prim, op.args[1:], dict(op.attrs), v.hint

        def make(array: Value) -> Value:
            return self.b.emit(prim, array, *rest, hint=hint, **attrs)
        root, inner = shared.derived.get(base, (base, None))
        shared.derived[v] = (root, make if inner is None else lambda a: make(inner(a)))
        return v

    def copy(self, x: Value) -> Value:
        """A new array object with ``x``'s values (values are immutable: only objects differ)."""
        if not is_array(x.type):
            return x
        return self.b.broadcast_like(x, x, hint=x.hint)

    def transpose(self, x: Value, perm: tuple[int, ...] | None) -> Value:
        rank = rank_of(x.type)
        if rank < 2 and perm is None:
            return x  # a vector's transpose is itself (numpy: a view of the same data)
        if perm is not None and tuple(perm) == tuple(reversed(range(rank))):
            perm = None
        if perm is not None and tuple(perm) == tuple(range(rank)):
            return x
        return self.mark_view(self.b.transpose(x, perm=perm), "a transpose")

    def reshape(self, x: Value, dims: Sequence[Value]) -> Value:
        if not is_array(x.type):
            raise self.fail("reshaping a number is not supported")
        if not dims:
            raise self.fail("reshaping to a scalar (`()`) is not supported; index it: `x[0]`")
        # numpy copies instead where the layout asks for it: a view of a view, or an
        # argument (its layout is the caller's); an array made here is C-contiguous
        exact = x not in self.shared.views and self.shared.object_of(x) not in self.shared.inputs
        return self.mark_view(self.b.reshape(x, *dims), "a reshape", exact)

    def full(self, value: Value, dims: Sequence[Value], dtype: ScalarType | None) -> Value:
        value = self.to_dtype(value, dtype) if dtype is not None else value
        if not dims:
            return value
        return self.b.full(value, *dims)

    # ----------------------------------------------------------------------- reductions

    def reduce(self, prim: Prim, x: Value, axis: Any, keepdims: bool, node: ast.AST,
               strict: bool = False) -> Value:
        """A reduction over ``axis``. Of a number, numpy takes no axis but ``None`` and ``()``;
        except that ``np.sum``, ``max``, ``min``, ``prod``, ``any``, ``all`` (not ``strict``)
        accept an int 0 or -1 too."""
        if not is_array(x.type):
            lenient = not strict and not isinstance(axis, (bool, np.bool_)) and axis in (0, -1)
            if not (axis is None or axis == () or lenient):
                raise self.error(node, f"axis {axis!r} is out of bounds: the value reduced "
                                       f"here is a scalar ({x.type}), which has no axes "
                                       f"(numpy raises AxisError)")
            return self.to_dtype(x, I64) if dtype_of(x.type) is BOOL and \
                prim in (Prim.REDUCE_SUM, Prim.REDUCE_PROD) else x
        axes = self.axes(axis, x.type.rank, node)
        back_to_bool = dtype_of(x.type) is BOOL and prim in (Prim.REDUCE_MAX, Prim.REDUCE_MIN)
        if dtype_of(x.type) is BOOL:
            x = self.to_dtype(x, I64)
        if not axes and (x.type.rank > 0 or keepdims):   # axis=(): nothing is reduced
            return x
        attr = None if len(axes) == x.type.rank else axes   # of a rank-0 array: a number
        y = self.b.emit(prim, x, axes=attr, keepdims=bool(keepdims))
        return self.mask(y) if back_to_bool else y

    def mean(self, x: Value, axis: Any, keepdims: bool, node: ast.AST) -> Value:
        x = self.real(x)
        total = self.reduce(Prim.REDUCE_SUM, x, axis, keepdims, node, strict=True)
        if not is_array(x.type):
            return total
        n = self.count(x, self.axes(axis, x.type.rank, node))
        return self.b.div(total, self.to_dtype(n, dtype_of(x.type)), hint="mean")

    # ----------------------------------------------------------------------- linear algebra

    def matmul(self, a: Value, c: Value, node: ast.AST) -> Value:
        for v in (a, c):
            if not is_array(v.type):
                raise self.error(node, "`@` (matmul) needs two arrays; scale by a number "
                                       "with `*`")
        ranks = (a.type.rank, c.type.rank)
        if ranks not in _MATMUL_RANKS:
            raise self.error(node, f"matmul of arrays of rank {ranks[0]} and {ranks[1]} is not "
                                   f"supported (vectors and matrices: ranks 1 and 2)")
        both_bool = dtype_of(a.type) is BOOL and dtype_of(c.type) is BOOL
        y = self.b.matmul(*self.numeric(a, c))
        return self.mask(y) if both_bool else y   # numpy: or of ands, a bool

    def dot(self, a: Value, c: Value, node: ast.AST) -> Value:
        if not (is_array(a.type) and is_array(c.type)):
            return self.b.mul(*self.numeric(a, c))
        return self.matmul(a, c, node)

    def outer(self, a: Value, c: Value, node: ast.AST) -> Value:
        a, c = self.numeric(a, c)
        u, w = self.flat(a, node), self.flat(c, node)
        return self.b.mul(self.b.expand_dims(u, axes=(1,)), self.b.expand_dims(w, axes=(0,)))

    def flat(self, x: Value, node: ast.AST) -> Value:
        if not is_array(x.type) or x.type.rank == 0:
            return self.b.expand_dims(x, axes=(0,))
        if x.type.rank == 1:
            return x
        return self.reshape(x, [self.const(-1)])
