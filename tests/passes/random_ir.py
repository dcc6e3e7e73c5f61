"""Random small IR programs for property tests: straight-line code, ``if``, ``for`` (also
reversed), counted ``while`` loops and balanced push/pop pairs, nested up to two deep.

``build(data.draw)`` makes one inside a hypothesis test using ``st.data()``; ``arguments()``
draws its arguments. Used by the pass tests (optimized against original, both interpreted)
and by the Python backend tests (generated code against the interpreter).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from sxad.ir import BOOL, F64, I64, Func, Prim, Value
from sxad.prims import Emitter

FLOATS = [0.0, 1.0, -1.0, 2.0, 0.5, 3.0, -0.0, -2.5]
INTS = [0, 1, 2, -1, 3]
UNARY = [Prim.NEG, Prim.EXP, Prim.SIN, Prim.COS, Prim.SQRT, Prim.LOG, Prim.ABS, Prim.TANH,
         Prim.FLOOR]
BINARY = [Prim.ADD, Prim.SUB, Prim.MUL, Prim.DIV, Prim.POW, Prim.MAX, Prim.MIN, Prim.ATAN2]
INT_BINARY = [Prim.ADD, Prim.SUB, Prim.MUL, Prim.FLOORDIV, Prim.MOD]
COMPARE = [Prim.LT, Prim.GT, Prim.EQ, Prim.GE]
# Python's max/min treat nan by argument order, np.maximum/np.minimum propagate it: the Python
# backend tests leave them out (see the report on the rule templates).
PYTHON_SAFE_BINARY = [p for p in BINARY if p not in (Prim.MAX, Prim.MIN)]


class _Builder:
    def __init__(self, draw: Callable[[Any], Any], binary: list[Prim], mix_hints: bool) -> None:
        self.draw = draw
        self.mix_hints = mix_hints
        self.binaries = binary
        self.slots = itertools.count()

    def hint(self, usual: str) -> str:
        """``usual``; or, mixing, one of a few shared hints, so the Python printer tries to
        coalesce unrelated values into one variable (and must find when that is unsafe)."""
        return self.draw(st.sampled_from(["", "a", "b"])) if self.mix_hints else usual

    def pick(self, pool: dict, type_: Any) -> Value:
        return self.draw(st.sampled_from(pool[type_]))

    def block(self, b: Emitter, pool: dict, depth: int, yields: list) -> list[Value]:
        """Fill ``b`` with a few ops; pick values of the types in ``yields`` for it to yield."""
        pool = {t: list(vs) for t, vs in pool.items()}
        pending: list[tuple[Value, int]] = []
        for _ in range(self.draw(st.integers(1, 5))):
            kinds = ["unary", "unary", "binary", "binary", "const", "integer", "compare",
                     "select", "logic", "cast", "push", "pop"]
            if depth < 2:
                kinds += ["if_", "for_", "while_"]
            kind = self.draw(st.sampled_from(kinds))
            if kind == "push":
                value = self.pick(pool, F64)
                slot = next(self.slots)
                b.op(Prim.PUSH, [value], [], attrs=[("slot", slot)])
                pending.append((value, slot))
            elif kind == "pop":
                if pending:
                    self.pop(b, pool, pending)
            else:
                getattr(self, kind)(b, pool, depth)
        while pending:
            self.pop(b, pool, pending)
        return [self.pick(pool, t) for t in yields]

    def pop(self, b: Emitter, pool: dict, pending: list) -> None:
        value, slot = pending.pop()
        (popped,) = b.op(Prim.POP, [], [value.type], attrs=[("slot", slot)],
                         hints=[self.hint("p")])
        pool[F64].append(popped)

    def unary(self, b: Emitter, pool: dict, depth: int) -> None:
        prim = self.draw(st.sampled_from(UNARY))
        pool[F64].append(b.emit(prim, self.pick(pool, F64), hint=self.hint("u")))

    def binary(self, b: Emitter, pool: dict, depth: int) -> None:
        prim = self.draw(st.sampled_from(self.binaries))
        args = self.pick(pool, F64), self.pick(pool, F64)
        pool[F64].append(b.emit(prim, *args, hint=self.hint("t")))

    def const(self, b: Emitter, pool: dict, depth: int) -> None:
        if self.draw(st.booleans()):
            pool[F64].append(b.const(self.draw(st.sampled_from(FLOATS))))
        else:
            pool[I64].append(b.const(self.draw(st.sampled_from(INTS))))

    def integer(self, b: Emitter, pool: dict, depth: int) -> None:
        prim = self.draw(st.sampled_from(INT_BINARY))
        args = self.pick(pool, I64), self.pick(pool, I64)
        pool[I64].append(b.emit(prim, *args, hint=self.hint("k")))

    def compare(self, b: Emitter, pool: dict, depth: int) -> None:
        prim = self.draw(st.sampled_from(COMPARE))
        type_ = self.draw(st.sampled_from([F64, I64]))
        args = self.pick(pool, type_), self.pick(pool, type_)
        pool[BOOL].append(b.emit(prim, *args, hint=self.hint("c")))

    def select(self, b: Emitter, pool: dict, depth: int) -> None:
        if pool[BOOL]:
            pool[F64].append(b.select(self.pick(pool, BOOL), self.pick(pool, F64),
                                      self.pick(pool, F64), hint=self.hint("s")))

    def logic(self, b: Emitter, pool: dict, depth: int) -> None:
        if not pool[BOOL]:
            return
        prim = self.draw(st.sampled_from([Prim.NOT, Prim.AND, Prim.OR]))
        args = [self.pick(pool, BOOL) for _ in range(1 if prim is Prim.NOT else 2)]
        pool[BOOL].append(b.emit(prim, *args, hint=self.hint("c")))

    def cast(self, b: Emitter, pool: dict, depth: int) -> None:
        source = self.draw(st.sampled_from([t for t in (I64, BOOL) if pool[t]]))
        target = self.draw(st.sampled_from([t for t in (F64, I64, BOOL) if t is not source]))
        (value,) = b.op(Prim.CAST, [self.pick(pool, source)], [target], hints=[self.hint("w")])
        pool[target].append(value)

    def if_(self, b: Emitter, pool: dict, depth: int) -> None:
        if not pool[BOOL]:
            self.compare(b, pool, depth)
        cond = self.pick(pool, BOOL)
        types = [F64] * self.draw(st.integers(1, 2))
        regions = []
        for _ in range(2):
            branch = Emitter()
            regions.append(branch.finish(self.block(branch, pool, depth + 1, types)))
        hints = [self.hint("r") for _ in types]
        pool[F64] += b.op(Prim.IF, [cond], types, regions=regions, hints=hints)

    def for_(self, b: Emitter, pool: dict, depth: int) -> None:
        lo = b.const(self.draw(st.sampled_from([0, 0, 1, 3])))
        hi = self.pick(pool, I64) if self.draw(st.booleans()) else b.const(3)
        step = b.const(self.draw(st.sampled_from([1, 1, 2, -1])))
        init = [self.pick(pool, F64) for _ in range(self.draw(st.integers(1, 2)))]
        index = Value(I64, self.hint("i"))
        carried = [Value(F64, self.hint("a")) for _ in init]
        inner = {t: list(vs) for t, vs in pool.items()}
        inner[I64].append(index)
        inner[F64] += carried
        body = Emitter([index, *carried])
        body = body.finish(self.block(body, inner, depth + 1, [F64] * len(init)))
        attrs = [("reverse", True)] if self.draw(st.booleans()) else []
        pool[F64] += b.op(Prim.FOR, [lo, hi, step, *init], [F64] * len(init), attrs=attrs,
                          regions=[body], hints=[self.hint("a") for _ in init])

    def while_(self, b: Emitter, pool: dict, depth: int) -> None:
        """A counted loop: ``k`` runs from 0 up to a small bound; a float rides along."""
        bound = self.pick(pool, I64) if self.draw(st.booleans()) else b.const(2)
        k, v = Value(I64, self.hint("k")), Value(F64, self.hint("w"))
        cond = Emitter([k, v])
        test = cond.lt(k, cond.emit(Prim.MIN, bound, cond.const(4)))
        k2, v2 = Value(I64, self.hint("k")), Value(F64, self.hint("w"))
        body = Emitter([k2, v2])
        inner = {t: list(vs) for t, vs in pool.items()}
        inner[F64].append(v2)
        (w,) = self.block(body, inner, depth + 1, [F64])
        regions = [cond.finish([test]), body.finish([body.add(k2, body.const(1)), w])]
        pool[F64].append(b.op(Prim.WHILE, [b.const(0), self.pick(pool, F64)], [I64, F64],
                              regions=regions, hints=[self.hint("k"), self.hint("w")])[1])


def build(draw: Callable[[Any], Any], python_safe: bool = False,
          mix_hints: bool = False) -> Func:
    """A random function of ``(x: f64, y: f64, n: i64)``."""
    params = [Value(F64, "x"), Value(F64, "y"), Value(I64, "n")]
    pool = {F64: params[:2], I64: [params[2]], BOOL: []}
    builder = _Builder(draw, PYTHON_SAFE_BINARY if python_safe else BINARY, mix_hints)
    b = Emitter(params)
    types = [draw(st.sampled_from([F64, F64, I64, BOOL])) for _ in range(draw(st.integers(1, 3)))]
    types = [t if t is F64 or draw(st.booleans()) else F64 for t in types]
    pool[BOOL].append(b.gt(params[0], params[1], hint="c"))
    results = builder.block(b, pool, 0, types)
    tuple_result = len(results) > 1 or draw(st.booleans())
    return Func("f", b.finish(results), ("x", "y", "n"), tuple_result)


def arguments() -> st.SearchStrategy:
    real = st.floats(-3.0, 3.0, allow_nan=False)
    return st.tuples(real, real, st.integers(0, 4))


def same(actual: tuple, expected: tuple) -> bool:
    """Equal results: the same nans, floats to a few ulps (x**2 and x*x may differ in the last
    bit), everything else exactly."""
    if len(actual) != len(expected):
        return False
    for a, e in zip(actual, expected):
        a, e = np.float64(a), np.float64(e)
        if np.isnan(a) or np.isnan(e):
            if not (np.isnan(a) and np.isnan(e)):
                return False
        elif not np.isclose(a, e, rtol=1e-9, atol=1e-12):
            return False
    return True
