"""Lowering expressions: Python's numeric typing (bool < int < float) made explicit with casts."""
from __future__ import annotations

from abc import abstractmethod

import ast
import types
from contextlib import contextmanager
from typing import Any, Iterator, Sequence, Union

import numpy as np

from ..errors import UnsupportedError
from ..ir import BOOL, Block, Op, Prim, Type, Value, dtype_of, is_array
from ..prims import Emitter
from . import library
from .promotion import OPERATOR_TEXT as _OPERATOR_TEXT, Typing, join_types, merge_message
from .scope import MISSING, Scope, describe, dotted, is_scalar
from .source import Source
from .state import Returns, Shared, Stale, State, Unbound

Result = Union[Value, tuple]  # an expression gives a value, or a tuple of results

_COMPARE = {ast.Lt: Prim.LT, ast.LtE: Prim.LE, ast.Gt: Prim.GT, ast.GtE: Prim.GE,
            ast.Eq: Prim.EQ, ast.NotEq: Prim.NE}
_PY_COMPARE = {ast.Lt: lambda a, c: a < c, ast.LtE: lambda a, c: a <= c,
               ast.Gt: lambda a, c: a > c, ast.GtE: lambda a, c: a >= c,
               ast.Eq: lambda a, c: a == c, ast.NotEq: lambda a, c: a != c,
               ast.Is: lambda a, c: a is c, ast.IsNot: lambda a, c: a is not c}
_UNSUPPORTED = {
    ast.Lambda: "lambda expressions are not supported",
    ast.ListComp: "list comprehensions are not supported",
    ast.SetComp: "set comprehensions are not supported",
    ast.DictComp: "dict comprehensions are not supported",
    ast.GeneratorExp: "generator expressions are not supported",
    ast.Yield: "generators (`yield`) are not supported",
    ast.YieldFrom: "generators (`yield from`) are not supported",
    ast.Await: "`await` is not supported",
    ast.List: "lists are not supported",
    ast.Dict: "dicts are not supported",
    ast.Set: "sets are not supported",
    ast.JoinedStr: "strings (f-strings) are not supported",
    ast.Slice: "slices are not supported",
    ast.Starred: "starred expressions (`*x`) are not supported",
    ast.NamedExpr: "assignment expressions (the walrus `:=`) are not supported",
}
# Ops cheap and pure enough to evaluate even when Python would have skipped them.
_STRAIGHT = frozenset(Prim) - {Prim.IF, Prim.FOR, Prim.WHILE, Prim.PUSH, Prim.POP}
_INT64 = (-2 ** 63, 2 ** 63 - 1)


class Expressions(Typing):
    src: Source
    scope: Scope
    shared: Shared
    b: Emitter
    st: State
    locals: set[str]
    returns: Returns
    loops: int  # how many loop bodies enclose the code being lowered
    statics: dict[str, Any]  # parameters bound to Python objects (a function passed in)

    # ----------------------------------------------------------------------- plumbing

    def error(self, node: ast.AST, what: str) -> UnsupportedError:
        return self.src.error(node, what)

    @contextmanager
    def located(self, node: ast.AST) -> Iterator[None]:
        """Stamp ops appended meanwhile with ``node``'s position."""
        builder, before, current = self.b, self.b.loc, self.shared.current
        builder.loc = self.src.loc(node)
        self.shared.current = (self.src, node)
        try:
            yield
        finally:
            builder.loc = before
            self.shared.current = current

    @contextmanager
    def into(self, builder: Emitter, state: State | None = None) -> Iterator[None]:
        """Append to ``builder`` (and read variables from ``state``) meanwhile."""
        saved = self.b, self.st
        self.b, self.st = builder, (state if state is not None else self.st)
        try:
            yield
        finally:
            self.b, self.st = saved

    def child(self, params: Sequence[Value] = ()) -> Emitter:
        """A builder for a region, stamping the current position."""
        builder = Emitter(params)
        builder.loc = self.b.loc
        return builder

    # ----------------------------------------------------------------------- dispatch

    def expr(self, node: ast.expr) -> Result:
        method = getattr(self, "expr_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, _UNSUPPORTED.get(
                type(node), f"`{type(node).__name__}` expressions are not supported"))
        with self.located(node):
            return method(node)

    def value(self, node: ast.expr) -> Value:
        """An expression that must give one value (not a tuple)."""
        result = self.expr(node)
        if isinstance(result, tuple):
            raise self.error(node, "a tuple can only be unpacked (`a, b = ...`), indexed "
                                   "(`t[0]`) or returned; it is not a number or an array")
        return result

    # ----------------------------------------------------------------------- leaves

    def expr_Constant(self, node: ast.Constant) -> Value:
        value = node.value
        if isinstance(value, bool):
            return self.const(value)
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise self.error(node, "integer constant does not fit in 64 bits")
            return self.const(value)
        if isinstance(value, float):
            return self.const(value)
        kind = {str: "strings", bytes: "bytes", complex: "complex numbers",
                type(None): "`None`", type(...): "`...`"}.get(type(value), repr(value))
        raise self.error(node, f"{kind} are not supported" if kind.endswith("s")
                         else f"{kind} is not supported")

    def expr_Name(self, node: ast.Name) -> Result:
        name = node.id
        bound = self.st.env.get(name)
        if isinstance(bound, (Value, tuple)):
            return bound
        if name in self.statics and bound is None:
            return self.python_value(self.statics[name], node, name)
        if isinstance(bound, Unbound) or name in self.locals:
            raise self.error(node, self._unbound_message(name, bound))
        return self.python_value(self.lookup(node, name), node, name)

    def _unbound_message(self, name: str, bound: Unbound | None) -> str:
        if isinstance(bound, Stale):
            return bound.message
        if bound is not None and bound.where is not None:
            return (f"variable `{name}` is possibly unbound here: it is assigned at line "
                    f"{bound.where.line}, but not on every path that reaches this use")
        if self.loops:
            return (f"variable `{name}` is used before it is assigned (sxad carries a variable "
                    f"from one loop iteration to the next only if it is assigned before the loop)")
        return f"variable `{name}` is used before it is assigned"

    def lookup(self, node: ast.AST, name: str) -> Any:
        try:
            obj = self.scope.lookup(name)
        except ValueError as err:
            raise self.error(node, str(err)) from None
        if obj is MISSING:
            raise self.error(node, f"name `{name}` is not defined")
        return obj

    def python_value(self, obj: Any, node: ast.AST, label: str) -> Value:
        """A constant from a global, closure cell or module attribute."""
        if is_scalar(obj):
            value = obj.item() if isinstance(obj, np.generic) else obj
            if type(value) is int and not _INT64[0] <= value <= _INT64[1]:
                raise self.error(node, f"`{label}` = {value} does not fit in 64 bits")
            return self.const(value, hint=label.rsplit(".", 1)[-1])
        raise self.error(node, f"`{label}` is {describe(obj)}, not a number; only int, float "
                               f"and bool constants can be read")

    def python_object(self, node: ast.expr) -> Any:
        """The Python object a (dotted) name refers to; never a variable of the function."""
        if isinstance(node, ast.Name):
            if node.id in self.statics and node.id not in self.st.env:
                return self.statics[node.id]
            if node.id in self.st.env or node.id in self.locals:
                raise self.error(node, f"`{node.id}` is a variable; it cannot be called or "
                                       f"have attributes")
            return self.lookup(node, node.id)
        if isinstance(node, ast.Attribute):
            base = self.python_object(node.value)
            if not isinstance(base, types.ModuleType):
                raise self.error(node, f"`{type(base).__name__}.{node.attr}` is not supported "
                                       f"in differentiated code")
            try:
                return getattr(base, node.attr)
            except AttributeError:
                raise self.error(node, f"`{dotted(node)}` does not exist") from None
        raise self.error(node, f"`{dotted(node)}` is not supported (only names of functions "
                               f"can be called)")

    def is_static(self, node: ast.expr) -> bool:
        """Whether ``node`` names a Python object (a dotted name that is no variable)."""
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and not self.is_variable(node)

    def is_variable(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and (node.id in self.st.env or (
            node.id in self.locals and node.id not in self.statics))

    def expr_Attribute(self, node: ast.Attribute) -> Result:
        if not self.is_static(node.value):
            return self.attribute(self.expr(node.value), node)
        return self.python_value(self.python_object(node), node, dotted(node))

    @abstractmethod
    def attribute(self, base: Result, node: ast.Attribute) -> Result:
        """``base.attr`` of a value (``x.T``, ``x.shape``): arrays.py."""

    def expr_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.expr(e) for e in node.elts)

    # ----------------------------------------------------------------------- operators

    def expr_BinOp(self, node: ast.BinOp) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        return self.binary(node.op, left, right, node)

    def expr_UnaryOp(self, node: ast.UnaryOp) -> Value:
        operand = node.operand
        if isinstance(node.op, ast.USub) and isinstance(operand, ast.Constant) and \
                type(operand.value) in (int, float):
            return self.expr_Constant(ast.copy_location(ast.Constant(-operand.value), node))
        v = self.value(operand)
        if isinstance(node.op, ast.Not):
            return self.b.not_(self.truthy(v))
        if isinstance(node.op, ast.USub):
            if is_array(v.type) and dtype_of(v.type) is BOOL:
                raise self.error(node, "numpy cannot negate a boolean array (use `~`)")
            return self.numpy_scalar(self.b.neg(self.numeric(v)[0]), v, always=False)
        if isinstance(node.op, ast.UAdd):
            return self.numeric(v)[0]
        if isinstance(node.op, ast.Invert) and dtype_of(v.type) is BOOL:
            return self.b.not_(v)
        raise self.error(node, f"operator `{_OPERATOR_TEXT.get(type(node.op), '?')}` "
                               f"is not supported")

    def expr_Compare(self, node: ast.Compare) -> Value:
        nodes = [node.left, *node.comparators]
        if all(isinstance(n, ast.Constant) or self.is_static(n) for n in nodes) and \
                all(type(op) in _PY_COMPARE for op in node.ops):
            objs = [n.value if isinstance(n, ast.Constant) else self.python_object(n)
                    for n in nodes]
            if not all(is_scalar(o) for o in objs):   # `mode == "mse"` on a closure's string
                return self.const(bool(all(_PY_COMPARE[type(op)](a, c) for op, a, c in
                                           zip(node.ops, objs, objs[1:]))))
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise self.error(node, f"`{_OPERATOR_TEXT.get(type(op), '?')}` comparisons "
                                       f"are not supported")
        operands = [self.value(n) for n in nodes]
        result = None
        for op, a, c in zip(node.ops, operands, operands[1:]):
            test = self.b.emit(_COMPARE[type(op)], *self.same_type(a, c))
            result = test if result is None else self.b.and_(result, test)
        # a comparison with a numpy scalar is an np.bool_ (numpy's bool arithmetic then)
        return self.numpy_scalar(result, *operands, always=False)

    def expr_BoolOp(self, node: ast.BoolOp) -> Value:
        result = self.value(node.values[0])
        for operand in node.values[1:]:
            result = self.short_circuit(isinstance(node.op, ast.And), result, operand)
        return result

    def short_circuit(self, is_and: bool, left: Value, right_node: ast.expr) -> Value:
        """``left and right`` / ``left or right``: AND/OR on bools, else Python's if-form."""
        known = self.static_bool(left)
        if known is not None:  # a constant decides: `0.0 or x` is x, `False and x` is False
            return left if known != is_and else self.value(right_node)
        scratch = self.child()
        with self.into(scratch):
            right = self.value(right_node)
        if left.type is BOOL and right.type is BOOL and straight_line(scratch.ops):
            for op in scratch.ops:
                self.b.append(op)
            return self.b.and_(left, right) if is_and else self.b.or_(left, right)
        t = self.merged(left.type, right.type, right_node)
        with self.into(scratch):
            right = self.convert(right, t)
        keep = self.child()
        with self.into(keep):
            left_t = self.convert(left, t)
        taken, other = (scratch.finish([right]), keep.finish([left_t]))
        regions = [taken, other] if is_and else [other, taken]
        return self.b.op(Prim.IF, [self.truthy(left)], [t], regions=regions)[0]

    def merged(self, a: Type, c: Type, node: ast.AST, name: str = "this value") -> Type:
        t = join_types(a, c)
        if t is None:
            raise self.error(node, merge_message(name, a, c))
        return t

    def expr_IfExp(self, node: ast.IfExp) -> Value:
        cond = self.truthy(self.value(node.test))
        known = self.static_bool(cond)
        if known is not None:
            return self.value(node.body if known else node.orelse)
        then, other = self.child(), self.child()
        with self.into(then):
            a = self.value(node.body)
        with self.into(other):
            c = self.value(node.orelse)
        t = self.merged(a.type, c.type, node)
        with self.into(then):
            a = self.convert(a, t)
        with self.into(other):
            c = self.convert(c, t)
        y = self.b.op(Prim.IF, [cond], [t], regions=[then.finish([a]), other.finish([c])])[0]
        view = next((self.shared.views[x] for x in (a, c) if x in self.shared.views), None)
        if view is not None:   # maybe a view: never updated in place
            self.shared.views[y] = view
        self.may_share(y, a, c)
        return y

    def may_share(self, y: Value, *sources: object) -> None:
        """``y`` is one of ``sources`` (which one is known only at run time): it may share
        memory with whatever they do."""
        shares = frozenset().union(*(self.shared.sharing(x) for x in sources))
        shares -= {self.shared.object_of(y)}
        if shares:
            self.shared.maybe[y] = shares

    # ----------------------------------------------------------------------- calls

    def expr_Call(self, node: ast.Call) -> Result:
        label = dotted(node.func)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, "`*args` in calls is not supported")
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error(kw.value, "`**kwargs` in calls is not supported")
        if isinstance(node.func, ast.Attribute) and not self.is_static(node.func.value):
            return self.method(self.expr(node.func.value), node)
        if isinstance(node.func, ast.Call):   # `sxad.grad(f)(x)`: the callee is built statically
            fn = self.static_object(node.func)
        else:
            fn = self.python_object(node.func)
        entry = library.lookup(fn)
        if entry is not None:
            return self.call_builtin(entry, node)
        found = self.numpy_call(fn, node)
        if found is not None:
            return found
        if isinstance(fn, types.FunctionType):
            return self.inline(fn, node)
        if hasattr(fn, "__sxad_program__") and not isinstance(fn, type):
            return self.call_program(fn, node)
        if fn is range:
            raise self.error(node.func, "`range()` is only supported as the iterable of a "
                                        "`for` loop")
        if fn in (zip, enumerate):
            raise self.error(node.func, f"`{fn.__name__}()` is only supported as the iterable "
                                        f"of a `for` loop")
        what = "is not supported" if "." in label else "is not a supported function"
        raise self.error(node.func, f"`{label}` {what}")

    @abstractmethod
    def update_subscript(self, target: ast.Subscript, new: Any) -> None:
        """``x[idx] = new(x[idx])`` in place, ``new`` a function of the old element(s):
        subscripts.py."""

    @abstractmethod
    def expr_Subscript(self, node: ast.Subscript) -> Result:
        """``x[i]``, ``x[:, j]``, ``t[0]``, ``x.shape[0]``: subscripts.py."""

    @abstractmethod
    def method(self, receiver: Result, node: ast.Call) -> Result:
        """``x.sum(axis=0)`` and the other array methods: arrays.py."""

    @abstractmethod
    def numpy_call(self, fn: Any, node: ast.Call) -> Result | None:
        """A call of a numpy function taking keywords or shapes (arrays.py); None if ``fn`` is
        none of them."""

    @abstractmethod
    def static_object(self, node: ast.expr) -> Any:
        """The Python object an expression computable at compile time gives (arrays.py)."""

    @abstractmethod
    def call_program(self, fn: Any, node: ast.Call) -> Result:
        """A call of an object with ``__sxad_program__`` (a transformed function): calls.py."""

    def call_builtin(self, entry: library.Builtin, node: ast.Call) -> Value:
        if node.keywords:
            raise self.error(node.keywords[0].value,
                             f"keyword arguments to `{entry.name}` are not supported")
        n = len(node.args)
        if entry.name == "float" and n == 1 and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str):
            return self._float_of_text(node.args[0])
        args = [self.value(a) for a in node.args]   # first: `max(a for …)` is about the `for`
        if n < entry.min_args or (entry.max_args is not None and n > entry.max_args):
            raise self.error(node, f"`{entry.name}` takes {_arity(entry)}, got {n}")
        if entry.scalar_only:
            for a, v in zip(node.args, args):
                if is_array(v.type):
                    raise self.error(a, f"`{entry.name}` takes a number, not an array "
                                        f"({v.type}){entry.instead}")
        start = len(self.b.ops)
        return self.numpy_scalar(entry.lower(self, args), *args,
                                 always=entry.name.startswith("np."), since=start)

    def _float_of_text(self, node: ast.Constant) -> Value:
        """``float("inf")`` and the like: a constant."""
        try:
            return self.const(float(node.value))
        except ValueError:
            raise self.error(node, f"float({node.value!r}) is not a number") from None

    @abstractmethod
    def inline(self, fn: types.FunctionType, node: ast.Call) -> Result:
        """The call of user function ``fn`` at ``node``, inlined (statements.py lowers bodies)."""

    # ----------------------------------------------------------------------- names for values

    def rename(self, value: Value, name: str, start: int) -> Value:
        """``value`` hinted as the variable ``name``, if an op appended since ``start`` made it
        and nothing uses it yet (so generated code reads like the user's)."""
        if value.hint == name:
            return value
        ops = self.b.ops
        for k in range(len(ops) - 1, start - 1, -1):
            op = ops[k]
            if any(r is value for r in op.results):
                if any(_uses(later, value) for later in ops[k + 1:]):
                    return value
                named = Value(value.type, name)
                ops[k] = op.replace(results=tuple(named if r is value else r
                                                  for r in op.results))
                for table in (self.shared.consts, self.shared.objects, self.shared.views,
                              self.shared.derived, self.shared.maybe):
                    if value in table:
                        table[named] = table[value]
                if value in self.shared.strong:
                    self.shared.strong.add(named)
                return named
        return value


def straight_line(ops: Sequence[Op]) -> bool:
    """Whether ``ops`` are all plain (no regions): safe to run when Python would not have."""
    return all(op.prim in _STRAIGHT and not op.regions for op in ops)


def _uses(op: Op, value: Value) -> bool:
    if any(a is value for a in op.args):
        return True
    return any(_block_uses(region, value) for region in op.regions)


def _block_uses(block: Block, value: Value) -> bool:
    return any(_uses(op, value) for op in block.ops) or any(y is value for y in block.yields)


def _arity(entry: library.Builtin) -> str:
    if entry.max_args is None:
        return f"at least {entry.min_args} arguments"
    if entry.min_args == entry.max_args:
        return f"{entry.min_args} argument{'s' if entry.min_args != 1 else ''}"
    return f"{entry.min_args} to {entry.max_args} arguments"
