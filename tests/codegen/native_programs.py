"""IR programs built by hand with the Emitter, shared by the codegen tests, and the helpers
that compare a native kernel with the interpreter."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from sxad.ir import BOOL, F64, I64, Func, Prim, Type, Value, verify
from sxad.prims import Emitter, result_types

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

UNARY_F64 = (Prim.NEG, Prim.EXP, Prim.LOG, Prim.LOG1P, Prim.EXPM1, Prim.SQRT, Prim.SIN, Prim.COS,
             Prim.TAN, Prim.ASIN, Prim.ACOS, Prim.ATAN, Prim.SINH, Prim.COSH, Prim.TANH,
             Prim.LOGISTIC, Prim.ABS, Prim.SIGN, Prim.FLOOR, Prim.CEIL)
BINARY_F64 = (Prim.ADD, Prim.SUB, Prim.MUL, Prim.DIV, Prim.FLOORDIV, Prim.MOD, Prim.POW,
              Prim.ATAN2, Prim.HYPOT, Prim.MAX, Prim.MIN)
COMPARE = (Prim.LT, Prim.LE, Prim.GT, Prim.GE, Prim.EQ, Prim.NE)
UNARY_I64 = (Prim.NEG, Prim.ABS, Prim.SIGN)
BINARY_I64 = (Prim.ADD, Prim.SUB, Prim.MUL, Prim.FLOORDIV, Prim.MOD, Prim.MAX, Prim.MIN)


# --------------------------------------------------------------------------- building

def make_func(name: str, params: Sequence[tuple[str, Type]],
              build: Callable[..., Sequence[Value]], tuple_result: bool = False) -> Func:
    values = [Value(t, n) for n, t in params]
    b = Emitter(values)
    results = build(b, *values)
    func = Func(name, b.finish(list(results)), tuple(n for n, _ in params), tuple_result)
    return verify(func, result_types)


def for_loop(b: Emitter, lo: Value, hi: Value, step: Value, init: Sequence[Value],
             body: Callable[..., Sequence[Value]], reverse: bool = False) -> tuple[Value, ...]:
    index = Value(I64, "i")
    carried = [Value(v.type, v.hint or "c") for v in init]
    inner = Emitter([index, *carried])
    block = inner.finish(list(body(inner, index, *carried)))
    attrs = [("reverse", True)] if reverse else []
    return b.op(Prim.FOR, [lo, hi, step, *init], [v.type for v in init], attrs=attrs,
                regions=[block], hints=[v.hint for v in init])


def while_loop(b: Emitter, init: Sequence[Value], cond: Callable[..., Value],
               body: Callable[..., Sequence[Value]]) -> tuple[Value, ...]:
    def region(fn: Callable, wrap: Callable[[Any], list[Value]]):
        params = [Value(v.type, v.hint or "c") for v in init]
        inner = Emitter(params)
        return inner.finish(wrap(fn(inner, *params)))
    return b.op(Prim.WHILE, list(init), [v.type for v in init],
                regions=[region(cond, lambda c: [c]), region(body, list)])


def if_else(b: Emitter, cond: Value, then: Callable[[Emitter], Sequence[Value]],
            other: Callable[[Emitter], Sequence[Value]],
            types: Sequence[Type]) -> tuple[Value, ...]:
    regions = []
    for arm in (then, other):
        inner = Emitter([])
        regions.append(inner.finish(list(arm(inner))))
    return b.op(Prim.IF, [cond], list(types), regions=regions)


def push(b: Emitter, value: Value, slot: int) -> None:
    b.op(Prim.PUSH, [value], [], attrs=[("slot", slot)])


def pop(b: Emitter, type_: Type, slot: int) -> Value:
    return b.op(Prim.POP, [], [type_], attrs=[("slot", slot)])[0]


# --------------------------------------------------------------------------- straight line

def f64_unary_all() -> Func:
    """Every unary f64 primitive and the casts from f64, on one argument."""
    def build(b: Emitter, x: Value) -> list[Value]:
        return ([b.emit(p, x) for p in UNARY_F64]
                + [b.cast(x, I64), b.cast(x, BOOL)])
    return make_func("f64_unary_all", [("x", F64)], build)


def f64_binary_all() -> Func:
    """Every binary f64 primitive and every comparison, on two arguments."""
    def build(b: Emitter, x: Value, y: Value) -> list[Value]:
        return [b.emit(p, x, y) for p in BINARY_F64 + COMPARE]
    return make_func("f64_binary_all", [("x", F64), ("y", F64)], build)


def i64_all() -> Func:
    """Every i64 primitive (pow on a non-negative exponent), comparisons and casts."""
    def build(b: Emitter, m: Value, n: Value) -> list[Value]:
        exponent = b.mod(n, b.const(70))
        return ([b.emit(p, m) for p in UNARY_I64] + [b.emit(p, m, n) for p in BINARY_I64]
                + [b.pow(m, exponent)] + [b.emit(p, m, n) for p in COMPARE]
                + [b.cast(m, F64), b.cast(m, BOOL)])
    return make_func("i64_all", [("m", I64), ("n", I64)], build)


def bool_all() -> Func:
    """Logic, comparisons of bools, select on every type, casts from bool."""
    def build(b: Emitter, p: Value, q: Value, x: Value, m: Value) -> list[Value]:
        return ([b.and_(p, q), b.or_(p, q), b.not_(p)] + [b.emit(c, p, q) for c in COMPARE]
                + [b.select(p, x, b.neg(x)), b.select(q, m, b.const(7)), b.select(p, q, b.not_(q)),
                   b.cast(p, F64), b.cast(q, I64)])
    return make_func("bool_all", [("p", BOOL), ("q", BOOL), ("x", F64), ("m", I64)], build)


def int_power() -> Func:
    return make_func("int_power", [("m", I64), ("n", I64)], lambda b, m, n: [b.pow(m, n)])


# --------------------------------------------------------------------------- control flow

def range_fold(reverse: bool = False) -> Func:
    """acc = acc·3 + i over range(lo, hi, step): the order of the indices shows in the result."""
    def build(b: Emitter, lo: Value, hi: Value, step: Value) -> list[Value]:
        acc, count = for_loop(
            b, lo, hi, step, [b.const(0, hint="acc"), b.const(0, hint="count")],
            lambda bb, i, acc, count: [bb.add(bb.mul(acc, bb.const(3)), i),
                                       bb.add(count, bb.const(1))], reverse=reverse)
        return [acc, count]
    name = "range_fold_reversed" if reverse else "range_fold"
    return make_func(name, [("lo", I64), ("hi", I64), ("step", I64)], build)


def nested_loops() -> Func:
    """Σ_{i<n} Σ_{j<i} sin(i·j·x), with a branch inside the inner loop."""
    def build(b: Emitter, x: Value, n: Value) -> list[Value]:
        def outer(bo: Emitter, i: Value, s: Value) -> list[Value]:
            def inner(bi: Emitter, j: Value, t: Value) -> list[Value]:
                term = bi.sin(bi.mul(bi.cast(bi.mul(i, j), F64), x))
                odd = bi.eq(bi.mod(j, bi.const(2)), bi.const(1))
                (t2,) = if_else(bi, odd, lambda bt: [bt.sub(t, term)],
                                lambda be: [be.add(t, term)], [F64])
                return [t2]
            return for_loop(bo, bo.const(0), i, bo.const(1), [s], inner)
        return for_loop(b, b.const(0), n, b.const(1), [b.const(0.0, hint="s")], outer)
    return make_func("nested_loops", [("x", F64), ("n", I64)], build)


def loop_in_branch() -> Func:
    """A loop in one arm of an if, a while in the other; several typed results."""
    def build(b: Emitter, x: Value, n: Value, flag: Value) -> list[Value]:
        def then(bt: Emitter) -> list[Value]:
            s, = for_loop(bt, bt.const(0), n, bt.const(1), [x],
                          lambda bb, i, s: [bb.add(bb.mul(s, bb.const(0.5)), bb.cast(i, F64))])
            return [s, bt.gt(s, bt.const(1.0))]

        def other(be: Emitter) -> list[Value]:
            s, k = while_loop(be, [x, be.const(0)],
                              lambda bc, s, k: bc.lt(s, bc.const(100.0)),
                              lambda bw, s, k: [bw.add(bw.mul(s, bw.const(2.0)), bw.const(1.0)),
                                                bw.add(k, bw.const(1))])
            return [s, be.eq(be.mod(k, be.const(2)), be.const(0))]
        return if_else(b, flag, then, other, [F64, BOOL])
    return make_func("loop_in_branch", [("x", F64), ("n", I64), ("flag", BOOL)], build)


def collatz() -> Func:
    """Steps of the Collatz iteration from m (a while loop with an if inside)."""
    def build(b: Emitter, m: Value) -> list[Value]:
        def body(bw: Emitter, v: Value, k: Value) -> list[Value]:
            even = bw.eq(bw.mod(v, bw.const(2)), bw.const(0))
            (nxt,) = if_else(bw, even, lambda bt: [bt.floordiv(v, bt.const(2))],
                             lambda be: [be.add(be.mul(v, be.const(3)), be.const(1))], [I64])
            return [nxt, bw.add(k, bw.const(1))]
        _, steps = while_loop(b, [m, b.const(0)],
                              lambda bc, v, k: bc.and_(bc.gt(v, bc.const(1)),
                                                       bc.lt(k, bc.const(10000))), body)
        return [steps]
    return make_func("collatz", [("m", I64)], build)


def one_tuple() -> Func:
    """``return (x * 2,)``: a tuple of one."""
    return make_func("one_tuple", [("x", F64)], lambda b, x: [b.mul(x, b.const(2.0))],
                     tuple_result=True)


def tape_roundtrip() -> Func:
    """Push f64, i64 and bool values for i in range(n), pop them all in a reversed loop; the
    result depends on the order, so a LIFO error shows. n large makes the tape realloc."""
    def build(b: Emitter, x: Value, n: Value) -> list[Value]:
        def forward(bf: Emitter, i: Value, s: Value) -> list[Value]:
            v = bf.add(s, bf.mul(x, bf.cast(i, F64)))
            push(bf, v, 0)
            push(bf, bf.mul(i, i), 1)
            push(bf, bf.eq(bf.mod(i, bf.const(3)), bf.const(0)), 2)
            return [bf.sin(v)]
        (s,) = for_loop(b, b.const(0), n, b.const(1), [b.const(0.0)], forward)

        def backward(bb: Emitter, i: Value, acc: Value, check: Value) -> list[Value]:
            flag = pop(bb, BOOL, 2)
            square = pop(bb, I64, 1)
            v = pop(bb, F64, 0)
            acc2 = bb.add(bb.mul(acc, bb.const(0.5)), bb.select(flag, v, bb.neg(v)))
            return [acc2, bb.add(check, bb.sub(square, bb.mul(i, i)))]
        acc, check = for_loop(b, b.const(0), n, b.const(1), [s, b.const(0)], backward, reverse=True)
        return [acc, check]
    return make_func("tape_roundtrip", [("x", F64), ("n", I64)], build, tuple_result=True)


def tape_reference(x: float, n: int) -> tuple[float, int]:
    """``tape_roundtrip`` in plain Python (the interpreter is too slow for big n)."""
    s, stack = 0.0, []
    for i in range(n):
        v = s + x * float(i)
        stack.append((v, i * i, i % 3 == 0))
        s = float(np.sin(v))
    acc, check = s, 0
    for i in reversed(range(n)):
        v, square, flag = stack.pop()
        acc = acc * 0.5 + (v if flag else -v)
        check += square - i * i
    return acc, check


def pop_empty() -> Func:
    """A malformed program: pops what nobody pushed."""
    def build(b: Emitter, x: Value) -> list[Value]:
        push(b, x, 0)
        first = pop(b, F64, 0)
        return [b.add(first, pop(b, F64, 1))]
    return make_func("pop_empty", [("x", F64)], build)


# --------------------------------------------------------------------------- comparing

def ulp_distance(a: float, b: float) -> int:
    """Units in the last place between two doubles; nan = nan and +0 = -0 here."""
    if np.isnan(a) and np.isnan(b):
        return 0
    if np.isnan(a) or np.isnan(b):
        return 2 ** 64
    ia, ib = (int(np.float64(v).view(np.int64)) for v in (a, b))
    ia, ib = (v if v >= 0 else INT64_MIN - v for v in (ia, ib))
    return abs(ia - ib)


def same_bits(a: float, b: float) -> bool:
    """Bit-identical, except that any nan equals any nan."""
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return np.float64(a).view(np.int64) == np.float64(b).view(np.int64)


def mismatch(native: Any, reference: Any, ulps: int) -> bool:
    """Whether a native result differs from the interpreter's beyond ``ulps``."""
    if isinstance(reference, np.floating):
        if not isinstance(native, float):
            return True
        return not same_bits(native, reference) if ulps == 0 else (
            ulp_distance(native, float(reference)) > ulps)
    if isinstance(reference, np.bool_):
        return not (isinstance(native, bool) and native == bool(reference))
    return not (type(native) is int and native == int(reference))


def tape_stress() -> Func:
    """Push i for i in range(n), then pop and sum them all: Σ i = n(n-1)/2."""
    def build(b: Emitter, n: Value) -> list[Value]:
        def forward(bf: Emitter, i: Value, k: Value) -> list[Value]:
            push(bf, i, 0)
            return [bf.add(k, bf.const(1))]
        (count,) = for_loop(b, b.const(0), n, b.const(1), [b.const(0)], forward)
        (total,) = for_loop(b, b.const(0), n, b.const(1), [b.const(0)],
                            lambda bb, i, s: [bb.add(s, pop(bb, I64, 0))], reverse=True)
        return [count, total]
    return make_func("tape_stress", [("n", I64)], build)
