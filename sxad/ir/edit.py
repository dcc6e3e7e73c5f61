"""Small whole-function edits: fixing parameters to constants, keeping some results."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .core import Block, Func, Op
from .prim import Prim


def bind_constants(func: Func, values: Mapping[int, Any]) -> Func:
    """``func`` with the parameters at the given positions replaced by constants."""
    bound = {func.params[i]: v for i, v in values.items()}
    consts = tuple(Op(Prim.CONST, (), (p,), (("value", v),)) for p, v in bound.items())
    params = tuple(p for p in func.params if p not in bound)
    names = tuple(n for i, n in enumerate(func.arg_names) if i not in values)
    body = Block(params, consts + func.body.ops, func.body.yields)
    if any(i in values for i in func.mutated):
        raise ValueError("cannot bind an argument the function updates in place")
    mutated = tuple(i - sum(j < i for j in values) for i in func.mutated)
    return Func(func.name, body, names, func.tuple_result, mutated)


def keep_results(func: Func, indices: Sequence[int], tuple_result: bool) -> Func:
    """``func`` returning only the results at ``indices`` (and writing back no argument)."""
    yields = tuple(func.results[i] for i in indices)
    return Func(func.name, Block(func.params, func.body.ops, yields), func.arg_names,
                tuple_result)
