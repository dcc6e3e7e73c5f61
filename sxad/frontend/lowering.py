"""``lower``: a Python function, specialised to argument types, as verified IR. Calls to other
user functions are inlined (each specialised to its own argument types)."""
from __future__ import annotations

import ast
import types
from typing import Any, Sequence

from ..errors import SourceUnavailableError, UnsupportedError
from ..ir import (BOOL, F32, F64, I64, ArrayType, Block, Func, Prim, Type, Value, is_array,
                  verify)
from ..ir.types import MAX_RANK
from ..prims import Emitter, result_types
from .arrays import ArrayOps
from .calls import Calls
from .expressions import Result
from .loops import Loops
from .scope import Scope, body_nodes, is_scalar, local_names
from .source import Source
from .state import Bound, Returns, Shared, State
from .statements import TOO_DEEP
from .subscripts import Subscripts

SCALAR_TYPES = (F64, F32, I64, BOOL)
ARG_TYPES = (*SCALAR_TYPES, *(ArrayType(d, r) for d in SCALAR_TYPES for r in range(MAX_RANK + 1)))


class Lowerer(Calls, Loops, Subscripts, ArrayOps):
    """Lowers one function's body into the builder it is given."""

    def __init__(self, src: Source, shared: Shared, builder: Emitter,
                 args: dict[str, Bound], statics: dict[str, Any] | None = None) -> None:
        self.src, self.shared, self.b = src, shared, builder
        self.statics = dict(statics or {})
        self.scope = Scope(src.fn)
        self.locals = local_names(src.node)
        self.returns = Returns()
        self.loops = 0
        _reject_anywhere(src)
        params = {a.arg: a for a in src.node.args.posonlyargs + src.node.args.args}
        self.st = State({})
        for name, value in args.items():
            self.st.bind(name, value, src.loc(params[name]))
        # Hidden names keep the current state of each argument array (through any alias), so
        # that every `return` can report it: in-place updates are results too.
        self.tracked = []
        for name, value in args.items():
            for path, leaf in _leaves(value, name):
                if is_array(leaf.type):
                    self.tracked.append("#" + path)
                    self.st.env["#" + path] = leaf
        self.originals = [self.st.env[name] for name in self.tracked]
        self.returns.tracked = len(self.tracked)

    def run(self) -> tuple[Result, list[Value]]:
        """Lower the body; the function's result (a value, or a tuple of them), and the final
        state of each argument array (``self.originals``: it was not updated)."""
        end = self.stmts(self.src.node.body, self.st)
        if end.flags["returned"] is not True:
            if self.returns.types is None:
                raise self.error(self.src.node, f"function `{self.src.name}` does not return "
                                                f"a value")
            raise self.error(self.src.node, f"function `{self.src.name}` can reach its end "
                                            f"without returning a value")
        n = len(end.ret) - len(self.tracked)
        values, finals = end.ret[:n], list(end.ret[n:])
        return (values if self.returns.is_tuple else values[0]), finals

    def inline(self, fn: types.FunctionType, node: ast.Call) -> Result:
        if fn.__code__ in self.shared.stack:
            raise self.error(node.func, f"recursive call to `{fn.__name__}`")
        try:
            src = self.shared.source(fn)
        except SourceUnavailableError as err:
            raise self.src.error(node.func, err.what, SourceUnavailableError) from None
        args = self.bind_call(fn, src, node)
        statics = {name: value for name, value in args.items() if isinstance(value, _Static)}
        args = {name: value for name, value in args.items() if name not in statics}
        callee = Lowerer(src, self.shared, self.b, args,
                         {name: s.obj for name, s in statics.items()})
        self.shared.stack.append(fn.__code__)
        try:
            result, finals = callee.run()
        finally:
            self.shared.stack.pop()
        for old, new in zip(callee.originals, finals):
            if new is not old:   # the callee updated an argument array in place
                self.update_object(old, new)
        return result

    def bind_call(self, fn: types.FunctionType, src: Source,
                  node: ast.Call) -> dict[str, Value]:
        """The callee's parameters bound to the call's arguments (evaluated in order)."""
        names = parameters(src)
        label = fn.__name__
        if len(node.args) > len(names):
            raise self.error(node, f"`{label}` takes {len(names)} arguments but "
                                   f"{len(node.args)} were given")
        values = {name: self.argument(a) for name, a in zip(names, node.args)}
        for kw in node.keywords:
            if kw.arg not in names:
                raise self.error(kw, f"`{label}` has no parameter `{kw.arg}`")
            if kw.arg in values:
                raise self.error(kw, f"`{label}` got two values for `{kw.arg}`")
            values[kw.arg] = self.argument(kw.value)
        defaults = fn.__defaults__ or ()
        first_default = len(names) - len(defaults)
        for k, name in enumerate(names):
            if name in values:
                continue
            if k < first_default:
                raise self.error(node, f"call to `{label}` is missing the argument `{name}`")
            default = defaults[k - first_default]
            if _callable(default):
                values[name] = _Static(default)
                continue
            if not is_scalar(default):
                raise self.error(node, f"the default value of `{name}` in `{label}` is not a "
                                       f"number")
            values[name] = self.python_value(default, node, name)
        return {name: values[name] for name in names}

    def argument(self, node: ast.expr) -> Any:
        """An argument's value; a function passed by name is bound statically."""
        if self.is_static(node):
            obj = self.python_object(node)
            if _callable(obj):
                return _Static(obj)
        return self.expr(node)


class _Static:
    """A Python object (a function) bound to a callee's parameter when sxad inlines it."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj


def _callable(obj: Any) -> bool:
    return callable(obj) and not is_scalar(obj) and not isinstance(obj, type)


# Constructs that change what the whole function is, even where they never run: a `yield`
# makes it a generator, `global` and `nonlocal` move its names to other scopes.
_EVERYWHERE = {ast.Yield: "generators (`yield`) are not supported",
               ast.YieldFrom: "generators (`yield from`) are not supported",
               ast.Global: "`global` declarations are not supported",
               ast.Nonlocal: "`nonlocal` declarations are not supported"}


def _reject_anywhere(src: Source) -> None:
    """Reject those even in code that lowering skips (``if False: yield x``)."""
    for node in body_nodes(src.node):
        message = _EVERYWHERE.get(type(node))
        if message is not None:
            raise src.error(node, message)


def parameters(src: Source) -> list[str]:
    """The parameter names of a function sxad can lower (plain positional ones only)."""
    args = src.node.args
    if args.vararg is not None:
        raise src.error(args.vararg, "`*args` parameters are not supported")
    if args.kwarg is not None:
        raise src.error(args.kwarg, "`**kwargs` parameters are not supported")
    if args.kwonlyargs:
        raise src.error(args.kwonlyargs[0], "keyword-only parameters are not supported")
    return [a.arg for a in args.posonlyargs + args.args]


def lower(fn: Any, arg_types: Sequence[Type]) -> Func:
    """``fn`` as a verified IR function specialised to ``arg_types``.

    An argument type may be a tuple of types (nested): the argument is a tuple of that many
    values (``params = (W1, b1, W2, b2)``), passed as one IR parameter per item, named
    ``params_0``, ``params_1``, … in ``Func.arg_names`` (the flat order)."""
    shared = Shared()
    src = shared.source(fn)
    names = parameters(src)
    arg_types = tuple(arg_types)
    if len(arg_types) != len(names):
        raise TypeError(f"`{src.name}` takes {len(names)} arguments ({', '.join(names)}), "
                        f"but {len(arg_types)} argument types were given")
    params: list[Value] = []
    bound = {name: _parameter(src, name, t, params) for name, t in zip(names, arg_types)}
    shared.inputs.update(params)
    builder = Emitter(params)
    lowerer = Lowerer(src, shared, builder, bound)
    shared.stack.append(src.fn.__code__)
    try:
        result, finals = lowerer.run()
    except RecursionError:   # statements report it where they are; this is a last resort
        raise _located(shared, src, TOO_DEEP) from None
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as err:
        raise _internal(shared, src, err) from err
    values = result if isinstance(result, tuple) else (result,)
    mutated = [(k, new) for k, (p, new) in enumerate(zip(params, _finals(params, finals)))
               if new is not p]
    values += tuple(new for _, new in mutated)
    name = src.name if src.name.isidentifier() else "lambda_"
    body = _drop_unused_constants(builder.finish(values))
    func = Func(name, body, tuple(p.hint for p in params), lowerer.returns.is_tuple,
                tuple(k for k, _ in mutated))
    return verify(func, result_types)


def _parameter(src: Source, name: str, t: Any, params: list[Value]) -> Bound:
    """The value(s) of one argument of type ``t`` (a tuple of types: a tuple of values)."""
    if isinstance(t, tuple):
        return tuple(_parameter(src, f"{name}_{k}", part, params) for k, part in enumerate(t))
    if t not in ARG_TYPES:
        raise TypeError(f"argument `{name}` of `{src.name}`: type {t!r} is not one of "
                        f"{', '.join(map(str, SCALAR_TYPES))}, an array of them (rank 0 to "
                        f"{MAX_RANK}) or a tuple of those")
    params.append(Value(t, name))
    return params[-1]


def _finals(params: Sequence[Value], finals: Sequence[Value]) -> list[Value]:
    """The final state of each parameter (the array ones are tracked, in order)."""
    out, tracked = [], iter(finals)
    for p in params:
        out.append(next(tracked) if is_array(p.type) else p)
    return out


def _leaves(value: Bound, path: str) -> list[tuple[str, Value]]:
    if isinstance(value, tuple):
        return [leaf for k, part in enumerate(value) for leaf in _leaves(part, f"{path}[{k}]")]
    return [(path, value)]


def _drop_unused_constants(body: Block) -> Block:
    """Lowering emits constants speculatively (a literal later folded into another type, a
    placeholder); drop the ones nothing reads."""
    used = {id(v) for op in body.walk() for v in op.args}
    used |= {id(v) for op in body.walk() for region in op.regions for v in region.yields}
    used |= {id(v) for v in body.yields}

    def prune(block: Block) -> Block:
        ops = tuple(op.replace(regions=tuple(prune(r) for r in op.regions)) if op.regions else op
                    for op in block.ops
                    if not (op.prim is Prim.CONST and id(op.result) not in used))
        return Block(block.params, ops, block.yields)
    return prune(body)


def _internal(shared: Shared, src: Source, err: Exception) -> UnsupportedError:
    """A bug in the frontend, reported where it happened rather than as a bare exception."""
    return _located(shared, src, f"internal error in sxad's frontend ({type(err).__name__}: "
                                 f"{err}) while lowering this")


def _located(shared: Shared, src: Source, what: str) -> UnsupportedError:
    """An error at the node being lowered when lowering stopped."""
    if shared.current is None:
        return UnsupportedError(f"{what} (in `{src.name}`)")
    where, node = shared.current
    return where.error(node, what)
