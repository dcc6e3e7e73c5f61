"""Constant folding, with the interpreter's numpy semantics (1/0 folds to inf, as it runs).

Also: an ``if`` on a constant condition becomes its taken branch, a ``select`` on a constant
condition its chosen value, and a loop that provably runs zero times its initial values.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..ir import BOOL, F32, F64, I64, Block, Func, Op, Prim, Value, is_array
from ..prims import NUMPY_TYPE, evaluate
from .rewrite import Subst, block_has_effects, is_pure

_PYTHON = {F64: float, F32: float, I64: int, BOOL: bool}


def fold(func: Func) -> Func:
    return func.with_body(_Folder().block(func.body))


class _Folder:
    def __init__(self) -> None:
        self.subst = Subst()
        self.known: dict[Value, Any] = {}  # value -> its constant, as a numpy scalar

    def block(self, block: Block) -> Block:
        ops: list[Op] = []
        for op in block.ops:
            ops.extend(self.op(op.replace(args=self.subst.all(op.args))))
        return Block(block.params, tuple(ops), self.subst.all(block.yields))

    def op(self, op: Op) -> list[Op]:
        control = _CONTROL.get(op.prim)
        if control is not None:
            return control(self, op)
        if op.prim is Prim.CONST:
            self.known[op.result] = evaluate(op, ())
            return [op]
        if not is_pure(op):
            return [op]
        args = [self.known.get(a) for a in op.args]
        if op.prim is Prim.SELECT and args[0] is not None:
            self.subst[op.result] = op.args[1] if args[0] else op.args[2]
            return []
        if any(a is None for a in args) or any(is_array(r.type) for r in op.results):
            return [op]  # constants are scalars: an array stays a computation
        return [self.constant(op, args)]

    def constant(self, op: Op, args: list[Any]) -> Op:
        """``op`` evaluated now, as a const defining the same value; ``op`` itself if it raises
        (an error at run time, such as an int to a negative power, stays at run time)."""
        try:
            with np.errstate(all="ignore"):
                value = evaluate(op, args)
        except (ArithmeticError, ValueError, TypeError):
            return op
        result = op.result
        python = _PYTHON[result.type](value)
        self.known[result] = NUMPY_TYPE[result.type](python)
        return Op(Prim.CONST, (), (result,), (("value", python),), (), op.loc)

    # ------------------------------------------------------------------ control flow

    def if_(self, op: Op) -> list[Op]:
        cond = self.known.get(op.args[0])
        if cond is None:
            return [op.replace(regions=tuple(self.block(r) for r in op.regions))]
        taken = self.block(op.regions[0 if cond else 1])
        for result, value in zip(op.results, taken.yields):
            self.subst[result] = value
        return list(taken.ops)

    def for_(self, op: Op) -> list[Op]:
        lo, hi, step = (self.known.get(a) for a in op.args[:3])
        if None not in (lo, hi, step) and step != 0 and len(range(lo, hi, step)) == 0:
            return self.skip(op, op.args[3:])
        return [op.replace(regions=(self.block(op.regions[0]),))]

    def while_(self, op: Op) -> list[Op]:
        cond, body = (self.block(r) for r in op.regions)
        test = self.known.get(cond.yields[0])
        if test is not None and not test and not block_has_effects(cond):
            return self.skip(op, op.args)
        return [op.replace(regions=(cond, body))]

    def skip(self, op: Op, init: tuple[Value, ...]) -> list[Op]:
        """A loop that runs zero times: its results are its initial values."""
        for result, value in zip(op.results, init):
            self.subst[result] = value
        return []


_CONTROL: dict[Prim, Callable[[_Folder, Op], list[Op]]] = {
    Prim.IF: _Folder.if_, Prim.FOR: _Folder.for_, Prim.WHILE: _Folder.while_,
}
