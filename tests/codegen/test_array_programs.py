"""The array programs of step 1 (tests/arrays/test_array_ad.py), compiled to native code: the
programs in f64 and f32, and their tangent and adjoint programs, agree with the interpreter;
arguments may be views (strided, transposed, reversed) and are not copied."""
from __future__ import annotations

import numpy as np
import pytest

import codegen
from native_arrays import check_native
from arrays.harness import derivatives
from arrays.test_array_ad import CASES, branch_in_loop, loop_with_tape, matmuls, softmax
from sxad.ir import F32, F64

_kernels: dict = {}


def native(func):
    """One compilation per program per test session (the same Func object each time)."""
    key = func.name
    if key not in _kernels:
        _kernels[key] = (func, codegen.compile_native(func))
    return _kernels[key]


_programs: dict = {}


def program(case, dt):
    """The case's program and arguments, built once (so its kernel is compiled once)."""
    key = (case.__name__, dt)
    if key not in _programs:
        _programs[key] = case(dt)
    return _programs[key]


@pytest.mark.parametrize("dt", [F64, F32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_programs_agree_with_the_interpreter(case, dt) -> None:
    func, args = program(case, dt)
    check_native(func, args, codegen.compile_native(func))


DERIVED = [softmax, matmuls, loop_with_tape, branch_in_loop]


@pytest.mark.parametrize("case", DERIVED, ids=lambda c: c.__name__)
def test_tangent_and_adjoint_programs_agree(case) -> None:
    func, args = program(case, F64)
    _, _, t, c, (tangent, adjoint) = derivatives(func, args)
    check_native(tangent, [*args, *t])
    check_native(adjoint, [*args, *c])


def strided(a: np.ndarray, how: str) -> np.ndarray:
    """``a``'s values in a view of another layout: reversed, every other element of a larger
    array, or the transpose of a transposed copy (a vector: every other element)."""
    if how == "reversed":
        big = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
        return big[(slice(None, None, -1),) * a.ndim]
    if how == "every-other" or a.ndim < 2:
        big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
        big[(slice(None, None, 2),) * a.ndim] = a
        return big[(slice(None, None, 2),) * a.ndim]
    return np.ascontiguousarray(a.T).T


@pytest.mark.parametrize("how", ["reversed", "every-other", "transposed"])
@pytest.mark.parametrize("case", [c for c in CASES if c.__name__ in
                                  ("matrix_and_vector", "matmuls", "branch_in_loop",
                                   "softmax", "loop_with_tape")], ids=lambda c: c.__name__)
def test_views_are_read_in_place(case, how) -> None:
    func, args = program(case, F64)
    views = [strided(a, how) if isinstance(a, np.ndarray) else a for a in args]
    for v, a in zip(views, args):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(v, a)
    assert any(isinstance(v, np.ndarray) and not v.flags.c_contiguous for v in views)
    check_native(func, views, codegen.compile_native(func))


def test_control_flow_moves_and_copies_arrays():
    """The ownership cases: a while loop carrying arrays (its condition reduces one); an ``if``
    yielding a borrowed argument in one arm and a view in the other (both copied) or a fresh
    array (moved); a loop passing a carried array on unchanged (moved) or a view of it (copied);
    a view and an argument pushed on the tape (copied) and an owned array (moved)."""
    from ir_builders import branch, loop, while_loop
    from sxad.ir import I64, Func, Prim, Value
    from sxad.prims import Emitter
    from sxad.ir import ArrayType
    x, m, n = Value(ArrayType(F64, 1), "x"), Value(ArrayType(F64, 2), "m"), Value(I64, "n")
    b = Emitter([x, m, n])
    (w, k) = while_loop(b, [x, b.const(0)],
                        lambda e, s, c: e.lt(e.reduce_sum(e.mul(s, s)), e.const(100.0)),
                        lambda e, s, c: [e.add(e.mul(s, e.const(1.5)), e.const(0.1)),
                                         e.add(c, e.const(1))])
    (pick,) = branch(b, b.gt(k, b.const(2)), lambda e: [x],
                     lambda e: [e.reduce_sum(e.transpose(m), axes=(1,))], [x.type])
    (fresh,) = branch(b, b.gt(k, b.const(2)), lambda e: [e.exp(x)],
                      lambda e: [e.index(m, e.const(0), spec=("i",))], [x.type])

    def body(e, i, s, t):
        e.op(Prim.PUSH, [e.transpose(t)], [], attrs=[("slot", 0)])
        e.op(Prim.PUSH, [x], [], attrs=[("slot", 1)])
        u = e.add(t, e.cast(i, F64))
        e.op(Prim.PUSH, [u], [], attrs=[("slot", 2)])
        return [s, e.mul(u, e.const(0.5))]
    s, t = loop(b, b.const(0), n, b.const(1), [x, m], body)

    def back(e, i, acc):
        u = e.op(Prim.POP, [], [m.type], attrs=[("slot", 2)])[0]
        xx = e.op(Prim.POP, [], [x.type], attrs=[("slot", 1)])[0]
        tt = e.op(Prim.POP, [], [m.type], attrs=[("slot", 0)])[0]
        return [e.add(acc, e.add(e.reduce_sum(e.mul(u, tt)), e.reduce_sum(xx)))]
    (total,) = loop(b, b.const(0), n, b.const(1), [b.const(0.0)], back, reverse=True)
    func = Func("ownership", b.finish([w, k, pick, fresh, s, t, total]), ("x", "m", "n"), True)
    kernel = codegen.compile_native(func)
    rng = np.random.default_rng(11)
    for steps in (0, 1, 4):
        check_native(func, [rng.normal(size=3), rng.normal(size=(3, 3)), steps], kernel)
