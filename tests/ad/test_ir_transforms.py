"""The transforms on hand-built IR (no frontend): tangent and adjoint programs verify, agree
with each other and with finite differences of the interpreted primal, at every nesting."""
from __future__ import annotations

import numpy as np
import pytest

from oracles import assert_close
from sxad.ad.forward import jvp_program
from sxad.ad.reverse import vjp_program
from sxad.backends.interpreter import interpret
from sxad.ir import F64, I64, Func, Prim, Value, verify
from ir_builders import branch, loop, while_loop
from sxad.prims import Emitter, result_types


def straight():
    x, y = Value(F64, "x"), Value(F64, "y")
    b = Emitter([x, y])
    r = b.add(b.mul(b.exp(b.sin(x)), y), b.div(b.tanh(y), b.hypot(x, y)))
    return Func("straight", b.finish([r]), ("x", "y")), (0.7, 1.3)


def for_loop():
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])
    (s,) = loop(b, b.const(0), n, b.const(1), [x],
                lambda e, i, s: [e.add(e.mul(e.sin(s), x), e.mul(e.cast(i, F64), e.const(0.1)))])
    return Func("for_loop", b.finish([s]), ("x", "n")), (0.9, 5)


def backwards_step():
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])
    (s,) = loop(b, n, b.const(-2), b.const(-3), [b.const(1.0)],
                lambda e, i, s: [e.add(e.mul(s, x), e.cast(i, F64))])
    return Func("backwards", b.finish([s]), ("x", "n")), (1.1, 7)


def zero_trips():
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])
    (s,) = loop(b, b.const(0), n, b.const(1), [x], lambda e, i, s: [e.mul(s, s)])
    return Func("zero_trips", b.finish([b.mul(s, x)]), ("x", "n")), (1.5, 0)


def while_halving():
    x = Value(F64, "x")
    b = Emitter([x])
    (w, k) = while_loop(b, [x, b.const(0)],
                        lambda e, w, k: e.gt(w, e.const(1.0)),
                        lambda e, w, k: [e.mul(e.sqrt(w), e.const(0.9)), e.add(k, e.const(1))])
    return Func("halving", b.finish([b.mul(w, b.cast(k, F64))]), ("x",)), (50.0,)


def nested():
    x, n = Value(F64, "x"), Value(I64, "n")
    b = Emitter([x, n])

    def outer(e, i, s):
        def inner(f, j, t):
            return [f.add(t, f.mul(f.cos(f.mul(t, x)), f.cast(j, F64)))]
        (t,) = loop(e, e.const(0), i, e.const(1), [s], inner)
        (u,) = branch(e, e.gt(t, e.const(1.0)), lambda f: [f.log(t)], lambda f: [f.mul(t, x)],
                      [F64])
        return [u]
    (s,) = loop(b, b.const(0), n, b.const(1), [x], outer)
    return Func("nested", b.finish([s]), ("x", "n")), (0.8, 4)


def loop_in_branch():
    x, y = Value(F64, "x"), Value(F64, "y")
    b = Emitter([x, y])

    def then(e):
        (w,) = while_loop(e, [x], lambda f, w: f.lt(w, f.const(10.0)),
                          lambda f, w: [f.add(f.mul(w, y), f.const(0.5))])
        return [w]
    (r,) = branch(b, b.gt(x, y), then, lambda e: [e.mul(x, y)], [F64])
    return Func("loop_in_branch", b.finish([r]), ("x", "y")), (1.2, 1.1)


def tuple_outputs():
    x, y = Value(F64, "x"), Value(F64, "y")
    b = Emitter([x, y])
    return Func("pair", b.finish([b.mul(x, y), b.sin(x)]), ("x", "y"), True), (0.3, 2.0)


CASES = [straight, for_loop, backwards_step, zero_trips, while_halving, nested, loop_in_branch,
         tuple_outputs]


def floats(func: Func) -> list[int]:
    return [i for i, p in enumerate(func.params) if p.type is F64]


def fd_jacobian(func: Func, args, wrt, h=1e-5):
    cols = []
    for i in wrt:
        def at(d):
            moved = list(args)
            moved[i] += d
            return np.array(interpret(func, moved), dtype=float)
        cols.append((8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h))
    return np.array(cols).T  # rows: outputs, cols: inputs


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_reverse_forward_and_differences_agree(case):
    func, args = case()
    verify(func, result_types)
    wrt = floats(func)
    adjoint, tangent = vjp_program(func, wrt), jvp_program(func, wrt)
    verify(adjoint, result_types)
    verify(tangent, result_types)
    n_out = len(func.results)
    rng = np.random.default_rng(0)
    t, c = rng.normal(size=len(wrt)), rng.normal(size=n_out)
    j_fd = fd_jacobian(func, list(args), wrt)
    jt = np.array(interpret(tangent, [*args, *t])[n_out:], dtype=float)
    jtc = np.array(interpret(adjoint, [*args, *c])[n_out:], dtype=float)
    assert_close(jt, j_fd @ t, "finite-difference", "tangent vs differences")
    assert_close(jtc, j_fd.T @ c, "finite-difference", "adjoint vs differences")
    assert_close(jt @ c, t @ jtc, "modes", "dot-product test <J t, c> = <t, J^T c>")
    assert interpret(adjoint, [*args, *c])[:n_out] == interpret(func, list(args))


@pytest.mark.parametrize("case", [straight, for_loop, while_halving, nested], ids=lambda c: c.__name__)
def test_forward_over_reverse_gives_the_hessian(case):
    func, args = case()
    wrt = floats(func)
    adjoint = vjp_program(func, wrt)
    second = jvp_program(adjoint, wrt)
    verify(second, result_types)
    k = len(wrt)
    for col in range(k):
        seeds = [float(j == col) for j in range(k)]
        hcol = np.array(interpret(second, [*args, 1.0, *seeds])[-k:], dtype=float)

        def grad_at(d):
            moved = list(args)
            moved[wrt[col]] += d
            return np.array(interpret(adjoint, [*moved, 1.0])[1:], dtype=float)
        h = 1e-5
        fd = (8 * (grad_at(h) - grad_at(-h)) - (grad_at(2 * h) - grad_at(-2 * h))) / (12 * h)
        assert_close(hcol, fd, "finite-difference", f"Hessian column {col}")


def test_tape_holds_only_loop_values():
    """Straight-line code needs no tape; a loop pushes exactly once per iteration per value."""
    func, _ = straight()
    assert not any(op.prim in (Prim.PUSH, Prim.POP) for op in vjp_program(func, [0, 1]).body.walk())
    func, _ = for_loop()
    adjoint = vjp_program(func, [0])
    pushes = [op for op in adjoint.body.walk() if op.prim is Prim.PUSH]
    pops = [op for op in adjoint.body.walk() if op.prim is Prim.POP]
    assert sorted(p.attr("slot") for p in pushes) == sorted(p.attr("slot") for p in pops)


def test_inactive_arguments_get_no_derivative_work():
    x, y = Value(F64, "x"), Value(F64, "y")
    b = Emitter([x, y])
    r = b.add(b.mul(x, x), b.exp(b.sin(y)))  # wrt x: nothing about y needs differentiating
    func = Func("f", b.finish([r]), ("x", "y"))
    prims = [op.prim for op in vjp_program(func, [0]).body.ops]
    assert prims.count(Prim.COS) == 0 and prims.count(Prim.EXP) == 1
    prims = [op.prim for op in jvp_program(func, [0]).body.ops]
    assert prims.count(Prim.COS) == 0
