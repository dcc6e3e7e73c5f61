"""Calls of transformed functions inside compiled code (docs/ARRAYS.md §6): an object with
``__sxad_program__(types) -> (Func, structure)`` is inlined, its program copied with fresh
values. The callee may itself be built at compile time from static parts:
``sxad.value_and_grad(loss, wrt=(0, 1))(W, b, X)`` evaluates ``sxad.value_and_grad(loss,
wrt=(0, 1))`` when sxad compiles, then calls it.
"""
from __future__ import annotations

import ast
from typing import Any

from ..ir import Block, Func, Op, Prim, Value
from .expressions import Expressions, Result
from .scope import dotted


class Calls(Expressions):

    def static_object(self, node: ast.expr) -> Any:
        """The Python object ``node`` gives, computed now: names of Python objects, literals,
        tuples of them, and calls on them (``sxad.grad(f, wrt=(0,))``)."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.static_object(e) for e in node.elts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.static_object(node.operand)
        if isinstance(node, (ast.Name, ast.Attribute)):
            if not self.is_static(node):
                raise self.error(node, f"`{dotted(node)}` is a variable: the function called "
                                       f"here must be built from names known when sxad "
                                       f"compiles")
            return self.python_object(node)
        if isinstance(node, ast.Call):
            fn = self.static_object(node.func)
            args = [self.static_object(a) for a in node.args]
            kwargs = {kw.arg: self.static_object(kw.value) for kw in node.keywords}
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # the user's call failed: say where
                raise self.error(node, f"`{dotted(node)}` failed when sxad evaluated it at "
                                       f"compile time: {type(err).__name__}: {err}") from None
        raise self.error(node, f"`{dotted(node)}` cannot be evaluated when sxad compiles")

    def call_program(self, fn: Any, node: ast.Call) -> Result:
        if node.keywords:
            raise self.error(node.keywords[0].value, "keyword arguments to a transformed "
                                                     "function are not supported")
        given = [self.expr(a) for a in node.args]
        args = _flat(given)
        try:
            func, structure = fn.__sxad_program__(tuple(_types(a) for a in given))
        except Exception as err:
            if hasattr(err, "loc") and getattr(err, "loc", None) is not None:
                raise
            raise self.error(node, f"`{dotted(node.func)}` could not be compiled for these "
                                   f"arguments: {type(err).__name__}: {err}") from None
        if len(func.params) != len(args):
            raise self.error(node, f"`{dotted(node.func)}` takes {len(func.params)} arguments, "
                                   f"got {len(args)}")
        results = self.splice(func, args)
        returned = len(results) - len(func.mutated)
        for k, new in zip(func.mutated, results[returned:]):
            if new is not args[k]:   # the program updates this argument in place
                self.update_object(args[k], self.to_dtype(new, args[k].type.dtype))
        return _nest(structure, results[:returned])

    def splice(self, func: Func, args: list[Value]) -> list[Value]:
        """``func``'s body appended here, its params bound to ``args`` (fresh values, so the
        same program can be inlined twice)."""
        env: dict[Value, Value] = dict(zip(func.params, args))
        for op in func.body.ops:
            self.b.append(_copy_op(op, env, self.b.loc))
        for op in self.b.ops[-len(func.body.ops):] if func.body.ops else ():
            if op.prim is Prim.CONST:
                self.shared.consts[op.result] = op.attr("value")
        return [env.get(v, v) for v in func.results]


def _copy_op(op: Op, env: dict[Value, Value], loc: Any) -> Op:
    results = tuple(Value(r.type, r.hint) for r in op.results)
    args = tuple(env.get(a, a) for a in op.args)
    env.update(zip(op.results, results))
    regions = tuple(_copy_block(r, env, loc) for r in op.regions)
    return op.replace(args=args, results=results, regions=regions, loc=loc or op.loc)


def _copy_block(block: Block, env: dict[Value, Value], loc: Any) -> Block:
    params = tuple(Value(p.type, p.hint) for p in block.params)
    env.update(zip(block.params, params))
    ops = tuple(_copy_op(op, env, loc) for op in block.ops)
    return Block(params, ops, tuple(env.get(y, y) for y in block.yields))


def _flat(values: Any) -> list[Value]:
    """Tuple arguments as their values in order (the program takes one parameter each)."""
    if isinstance(values, Value):
        return [values]
    return [v for part in values for v in _flat(part)]


def _types(value: Any) -> Any:
    """A value's type; a tuple's, the tuple of its items' types (``lower`` takes those)."""
    if isinstance(value, tuple):
        return tuple(_types(v) for v in value)
    return value.type


def _nest(structure: Any, results: list[Value]) -> Result:
    if isinstance(structure, int):
        return results[structure]
    return tuple(_nest(s, results) for s in structure)
