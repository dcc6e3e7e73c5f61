"""Evaluates IR through each primitive's evaluation rule: the reference for every backend.

Scalars are numpy scalars (``np.float64``, ``np.float32``, ``np.int64``, ``np.bool_``); arrays are
ndarrays of the exact dtype. Arrays are values: no op writes into its arguments."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..ir import Block, Func, Op, Prim, Type, Value, is_array
from ..prims import NUMPY_TYPE, evaluate


def interpret(func: Func, args: Sequence[Any]) -> tuple[Any, ...]:
    """Run ``func`` on ``args`` (converted to its parameter types); returns its results."""
    env: dict[Value, Any] = {p: _argument(p, a) for p, a in zip(func.params, args)}
    tape = Tapes()
    with np.errstate(all="ignore"):
        _run(func.body, env, tape)
    return tuple(env[v] for v in func.results)


def tape_usage(func: Func, args: Sequence[Any]) -> tuple[int, int]:
    """(bytes, entries) that ``func``'s forward sweep pushes for ``args``: the program runs
    until its first pop (where a reverse sweep begins) with a tape that only counts."""
    env: dict[Value, Any] = {p: _argument(p, a) for p, a in zip(func.params, args)}
    tape = _CountingTapes()
    try:
        with np.errstate(all="ignore"):
            _run(func.body, env, tape)
    except _SweepDone:
        pass
    return tape.bytes, tape.entries


def _argument(param: Value, arg: Any) -> Any:
    """``arg`` as a value of ``param``'s type (an array is converted, never aliased)."""
    t: Type = param.type
    if not is_array(t):
        return NUMPY_TYPE[t](arg)
    array = np.array(arg, dtype=NUMPY_TYPE[t.dtype])
    if array.ndim != t.rank:
        raise ValueError(f"argument {param.hint or '?'}: expected {t} (rank {t.rank}), "
                         f"got shape {array.shape}")
    return array


def _run(block: Block, env: dict[Value, Any], tape: list[Any]) -> None:
    for op in block.ops:
        values = _CONTROL.get(op.prim, _scalar)(op, env, tape)
        for result, value in zip(op.results, values):
            env[result] = value


def _scalar(op: Op, env: dict[Value, Any], tape: list[Any]) -> tuple[Any, ...]:
    return (evaluate(op, [env[a] for a in op.args]),)


def _enter(block: Block, values: Sequence[Any], env: dict[Value, Any],
           tape: list[Any]) -> list[Any]:
    for p, v in zip(block.params, values):
        env[p] = v
    _run(block, env, tape)
    return [env[y] for y in block.yields]


def _if(op: Op, env: dict[Value, Any], tape: list[Any]) -> list[Any]:
    then, other = op.regions
    return _enter(then if env[op.args[0]] else other, (), env, tape)


def _for(op: Op, env: dict[Value, Any], tape: list[Any]) -> list[Any]:
    lo, hi, step, *init = (env[a] for a in op.args)
    if step == 0:
        raise ValueError("range() arg 3 must not be zero")
    indices = range(int(lo), int(hi), int(step))
    carried = list(init)
    for i in (reversed(indices) if op.attr("reverse") else indices):
        carried = _enter(op.regions[0], [np.int64(i), *carried], env, tape)
    return carried


def _while(op: Op, env: dict[Value, Any], tape: list[Any]) -> list[Any]:
    cond, body = op.regions
    carried = [env[a] for a in op.args]
    while _enter(cond, carried, env, tape)[0]:
        carried = _enter(body, carried, env, tape)
    return carried


class Tapes(list):
    """The tape of a program: itself is tape 0; ``more`` holds the other tapes by number (a
    reverse-over-reverse program pushes its second transform's values on tape 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.more: dict[int, list[Any]] = {}

    def at(self, op: Op) -> list[Any]:
        number = op.attr("tape") or 0
        return self if number == 0 else self.more.setdefault(number, [])


class _SweepDone(Exception):
    """The first pop: the forward sweep is over."""


class _CountingTapes(Tapes):
    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.entries = 0

    def at(self, op: Op) -> "_CountingTapes":
        return self

    def append(self, value: Any) -> None:
        self.bytes += int(np.asarray(value).nbytes)
        self.entries += 1

    def pop(self, *_: Any) -> Any:
        raise _SweepDone


def _push(op: Op, env: dict[Value, Any], tape: Tapes) -> tuple[Any, ...]:
    tape.at(op).append(env[op.args[0]])
    return ()


def _pop(op: Op, env: dict[Value, Any], tape: Tapes) -> tuple[Any, ...]:
    return (tape.at(op).pop(),)


_CONTROL = {Prim.IF: _if, Prim.FOR: _for, Prim.WHILE: _while, Prim.PUSH: _push, Prim.POP: _pop}
