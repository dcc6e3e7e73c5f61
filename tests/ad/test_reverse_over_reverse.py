"""Reverse mode over reverse mode through loops with a tape (sxad/ad/reverse.py).

For each program f, a = vjp(f) is differentiated again: vjp(a) (reverse over reverse) against
jvp(a) (forward over reverse) by the dot-product test, and jvp(a) against central differences
of a (tests/arrays/harness.py ``check_derivatives``); the optimized vjp(a) against the raw one.

What it takes: the adjoint of a pop is pushed back and popped by the reverse of its push (on
the tape of the pair), the reverse of a reversed loop runs forwards, and the second transform
keeps its own entries on a second tape (``tape`` attr): on one LIFO tape they would interleave
with the inner ones, which the inner reverse loop pops while they are still stored.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from arrays.harness import check_derivatives, flat, float_params
from arrays.test_array_ad import branch_in_loop, loop_with_tape
from arrays.test_array_index import overwrite_loop, row_updates
from ir_builders import branch, loop, while_loop
from oracles import assert_close
from sxad.ad.common import tape_of
from sxad.ad.reverse import vjp_program
from sxad.backends.python_source import compile_python
from sxad.backends.interpreter import interpret
from sxad.ir import F64, I64, Block, Func, Op, Prim, Value, verify
from sxad.passes import DERIVATIVE_PIPELINE, optimize
from sxad.prims import Emitter, result_types


# --------------------------------------------------------------------------- tapes

def test_each_tape_is_its_own_stack() -> None:
    """Push a on tape 1, c on tape 0, then pop tape 1 first: the interpreter and the generated
    Python keep the tapes apart."""
    a, c = Value(F64, "a"), Value(F64, "c")
    got1, got0 = Value(F64), Value(F64)
    body = Block((a, c), (Op(Prim.PUSH, (a,), (), (("slot", 0), ("tape", 1))),
                          Op(Prim.PUSH, (c,), (), (("slot", 1),)),
                          Op(Prim.POP, (), (got1,), (("slot", 0), ("tape", 1))),
                          Op(Prim.POP, (), (got0,), (("slot", 1),))), (got1, got0))
    func = Func("tapes", body, ("a", "c"))
    assert interpret(func, [1.0, 2.0]) == (1.0, 2.0)
    assert compile_python(func)(1.0, 2.0) == (1.0, 2.0)


# --------------------------------------------------------------------------- scalar programs

def scalar_loop(dt=F64):
    """s ← s·x + sin(s)·w, n times."""
    x, w, s0, n = Value(dt, "x"), Value(dt, "w"), Value(dt, "s"), Value(I64, "n")
    b = Emitter([x, w, s0, n])
    (s,) = loop(b, b.const(0), n, b.const(1), [s0],
                lambda e, i, s: [e.add(e.mul(s, x), e.mul(e.sin(s), w))])
    return Func("scalar_loop", b.finish([s]), ("x", "w", "s", "n")), [0.7, 0.4, 0.3, 4]


def scalar_while(dt=F64):
    """while k < n: s ← cos(s)·x + s/2 + k/10, k ← k + 1 (a counted while loop)."""
    x, s0, n = Value(dt, "x"), Value(dt, "s"), Value(I64, "n")
    b = Emitter([x, s0, n])

    def body(e: Emitter, k, s):
        step = e.mul(e.cast(k, dt), e.const(0.1, dt))
        nxt = e.add(e.add(e.mul(e.cos(s), x), e.mul(s, e.const(0.5, dt))), step)
        return [e.add(k, e.const(1)), nxt]
    _, s = while_loop(b, [b.const(0), s0], lambda e, k, s: e.lt(k, n), body)
    return Func("scalar_while", b.finish([b.mul(s, s)]), ("x", "s", "n")), [1.3, 0.2, 5]


def nested_with_branch(dt=F64):
    """for i: for j: s ← s·x if s > 1 else s + x²·t; then a tanh."""
    x, t, n = Value(dt, "x"), Value(dt, "t"), Value(I64, "n")
    b = Emitter([x, t, n])

    def inner(e: Emitter, j, s):
        (r,) = branch(e, e.gt(s, e.const(1.0, dt)), lambda f: [f.mul(s, x)],
                      lambda f: [f.add(s, f.mul(f.mul(x, x), t))], [dt])
        return [r]

    def outer(e: Emitter, i, s):
        (s2,) = loop(e, e.const(0), n, e.const(1), [s], inner)
        return [e.tanh(s2)]
    (s,) = loop(b, b.const(0), n, b.const(1), [t], outer)
    return Func("nested_with_branch", b.finish([s]), ("x", "t", "n")), [0.9, 0.6, 3]


def _scalar(case: Callable) -> Callable:
    def make(dt=F64):
        func, values = case(dt)
        return func, [np.int64(v) if p.type == I64 else np.float64(v)
                      for p, v in zip(func.params, values)]
    make.__name__ = case.__name__
    return make


CASES = [_scalar(scalar_loop), _scalar(scalar_while), _scalar(nested_with_branch),
         loop_with_tape, overwrite_loop, row_updates, branch_in_loop]


def adjoint_case(case: Callable) -> tuple[Func, list]:
    """vjp(f) and arguments for it: f's, then random cotangents."""
    func, args = case(F64)
    adjoint = verify(vjp_program(func, float_params(func)), result_types)
    rng = np.random.default_rng(11)
    cotangents = [np.asarray(rng.normal(size=np.shape(v)), dtype=np.float64)[()]
                  for v, r in zip(interpret(func, args), func.results) if r.type.is_float]
    return adjoint, [*args, *cotangents]


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_reverse_over_reverse(case: Callable) -> None:
    """vjp(vjp f) against jvp(vjp f) (dot-product test), jvp(vjp f) against differences."""
    adjoint, args = adjoint_case(case)
    assert any(op.prim is Prim.POP for op in adjoint.body.walk())  # a tape to go back through
    check_derivatives(adjoint, args)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_reverse_over_reverse_optimized(case: Callable) -> None:
    adjoint, args = adjoint_case(case)
    second = verify(vjp_program(adjoint, float_params(adjoint)), result_types)
    rng = np.random.default_rng(2)
    inputs = [*args, *(np.asarray(rng.normal(size=np.shape(v)))[()]
                       for v, r in zip(interpret(adjoint, args), adjoint.results)
                       if r.type.is_float)]
    want = interpret(second, inputs)
    optimized = verify(optimize(second, DERIVATIVE_PIPELINE), result_types)
    assert_close(flat(interpret(optimized, inputs)), flat(want), "modes",
                 f"{second.name}: optimized vs not")


def test_second_transform_uses_its_own_tape() -> None:
    """The first adjoint uses tape 0 (no attr); the second pushes its own entries on tape 1
    and sends adjoints back through tape 0, where the inner pairs were."""
    adjoint, _ = adjoint_case(overwrite_loop)
    assert {tape_of(op) for op in adjoint.body.walk() if op.prim is Prim.PUSH} == {0}
    assert all(op.attr("tape") is None for op in adjoint.body.walk())
    second = vjp_program(adjoint, float_params(adjoint))
    tapes = {tape_of(op) for op in second.body.walk() if op.prim in (Prim.PUSH, Prim.POP)}
    assert tapes == {0, 1}
    third = vjp_program(second, float_params(second))
    assert max(tape_of(op) for op in third.body.walk() if op.prim is Prim.PUSH) == 2


def test_reverse_of_a_reversed_loop_runs_forwards() -> None:
    adjoint, _ = adjoint_case(_scalar(scalar_loop))
    second = vjp_program(adjoint, float_params(adjoint))
    loops = [op for op in second.body.ops if op.prim is Prim.FOR]
    # forward sweep, the first reverse (now recorded), its reverse, the forward loop's reverse
    assert [bool(op.attr("reverse")) for op in loops] == [False, True, False, True]
