"""Indexing, update, shape and creation prims (sxad/array_prims.py) on hand-built IR: integer,
slice and integer-array indices, ``set_index`` in a loop (the lowering of ``x[i] = v``),
reshapes, ``full``/``arange`` and ``astype``. Each program is differentiated forward and
backward and checked by tests/arrays/harness.py (central differences, the dot-product test,
f32 against f64, optimized and printed Python against the interpreter)."""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pytest

from arrays.harness import (array, check_backends, check_derivatives, derivative_tests,
                            derivatives, directional_difference, flat, float_params)
from arrays.test_array_ad import args_for
from ir_builders import loop
from oracles import assert_close
from sxad.ad.forward import jvp_program
from sxad.ad.reverse import vjp_program
from sxad.backends.interpreter import interpret
from sxad.backends.python_source import compile_python, to_python
from sxad.ir import F32, F64, I64, ArrayType, Func, Prim, Type, Value, format_func, verify
from sxad.ir.serialize import dumps, loads
from sxad.prims import Emitter, RuleError, result_types

Case = Callable[[Type], tuple[Func, list]]


def ints(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# --------------------------------------------------------------------------- cases

def rows_and_elements(dt: Type):
    """x[i] (a row), x[i, j] (an element), x[-1, -2], x[i, :] and x[:, j], j negative."""
    x, i, j = array(dt, 2, "x"), Value(I64, "i"), Value(I64, "j")
    b = Emitter([x, i, j])
    row = b.index(x, i, spec=("i",), hint="row")
    elem = b.index(x, i, j, spec=("i", "i"), hint="elem")
    corner = b.index(x, b.const(-1), b.const(-2), spec=("i", "i"))
    row2 = b.index(x, i, spec=("i", ":"))
    col = b.index(x, j, spec=(":", "i"), hint="col")
    y = b.add(b.mul(b.reduce_sum(b.mul(row, row)), elem), b.sin(corner))
    y = b.add(y, b.mul(b.reduce_sum(b.exp(row2)), b.reduce_sum(b.mul(col, col))))
    f = Func("rows_and_elements", b.finish([y]), ("x", "i", "j"))
    return f, args_for(f, [(3, 4), 1, -1])


def slices(dt: Type):
    """x[1:3], x[::2], x[::-1], x[a:b:s] with runtime bounds (a negative step), x[-3:],
    m[:, ::-1] and m[:2, 1:], with an array result."""
    x, m = array(dt, 1, "x"), array(dt, 2, "m")
    lo, hi, step = Value(I64, "lo"), Value(I64, "hi"), Value(I64, "step")
    b = Emitter([x, m, lo, hi, step])
    c = b.const
    p = b.index(x, c(1), c(3), spec=("s110",))
    q = b.index(x, c(2), spec=("s001",))
    r = b.index(x, c(-1), spec=("s001",), hint="r")
    t = b.index(x, lo, hi, step, spec=("s111",))
    u = b.index(x, c(-3), spec=("s100",))
    v = b.index(m, c(-1), spec=(":", "s001"))
    w = b.index(m, c(2), c(1), spec=("s010", "s100"))
    y = b.add(b.reduce_sum(b.mul(p, p)), b.mul(b.reduce_sum(q), b.reduce_sum(b.mul(b.exp(r), x))))
    y = b.add(y, b.reduce_sum(b.mul(t, b.sin(u))))
    y = b.add(y, b.reduce_sum(b.mul(w, w)))
    f = Func("slices", b.finish([y, b.mul(m, v)]), ("x", "m", "lo", "hi", "step"), True)
    return f, args_for(f, [(7,), (3, 5), 5, 0, -2])


def cross_entropy(dt: Type):
    """-mean(log softmax(z)[arange(n), labels]): the p[np.arange(n), y] pattern."""
    z, labels = array(dt, 2, "z"), array(I64, 1, "labels")
    b = Emitter([z, labels])
    m = b.reduce_max(z, axes=(1,), keepdims=True)
    shifted = b.sub(z, m)
    s = b.reduce_sum(b.exp(shifted), axes=(1,), keepdims=True)
    logp = b.sub(shifted, b.log(s), hint="logp")
    n = b.dim(z, axis=0, hint="n")
    rows = b.arange(b.const(0), n, b.const(1), hint="rows")
    picked = b.index(logp, rows, labels, spec=("a", "a"), hint="picked")
    loss = b.neg(b.div(b.reduce_sum(picked), b.cast(n, dt)))
    f = Func("cross_entropy", b.finish([loss]), ("z", "labels"))
    args = args_for(f, [(4, 3), (4,)])
    args[1] = ints(2, 0, 1, 2)
    return f, args


def gathers(dt: Type):
    """x[idx] with repeated rows, x[idx, j] and x[j, cols] (an integer next to an array),
    x[idx2] with a 2-D index: repeated indices must accumulate in the adjoint."""
    x, idx, cols, idx2 = (array(dt, 2, "x"), array(I64, 1, "idx"), array(I64, 1, "cols"),
                          array(I64, 2, "idx2"))
    j = Value(I64, "j")
    b = Emitter([x, idx, cols, idx2, j])
    g = b.index(x, idx, spec=("a",))
    h = b.index(x, idx, j, spec=("a", "i"))
    k = b.index(x, j, cols, spec=("i", "a"))
    q = b.index(x, idx2, spec=("a", ":"))
    y = b.add(b.reduce_sum(b.mul(g, g)), b.reduce_sum(b.sin(h)))
    y = b.add(y, b.add(b.reduce_sum(b.mul(k, b.mul(k, k))), b.reduce_sum(b.exp(q))))
    f = Func("gathers", b.finish([y]), ("x", "idx", "cols", "idx2", "j"))
    args = args_for(f, [(4, 3), (5,), (3,), (2, 2), -2])
    args[1:4] = [ints(0, 2, 0, 3, 2), ints(2, 0, 2), ints(1, 1, 3, 0).reshape(2, 2)]
    return f, args


def overwrite_loop(dt: Type):
    """for i in range(1, n): x[i] = x[i-1]·sin(x[i]) + w[i]; the old x[i] is overwritten, and
    the reverse sweep needs it."""
    x, w, n = array(dt, 1, "x"), array(dt, 1, "w"), Value(I64, "n")
    b = Emitter([x, w, n])

    def body(e: Emitter, i, xs):
        prev = e.index(xs, e.sub(i, e.const(1)), spec=("i",), hint="prev")
        cur = e.index(xs, i, spec=("i",), hint="cur")
        v = e.add(e.mul(prev, e.sin(cur)), e.index(w, i, spec=("i",)))
        return [e.set_index(xs, v, i, spec=("i",), hint="x")]
    (s,) = loop(b, b.const(1), n, b.const(1), [x], body)
    f = Func("overwrite_loop", b.finish([b.reduce_sum(b.mul(s, s))]), ("x", "w", "n"))
    return f, args_for(f, [(5,), (5,), 5])


def row_updates(dt: Type):
    """A matrix updated in a loop: X[i, :] = tanh(X[i-1, :])·u (u of shape (1,) broadcasts),
    X[i, 1:] += c (a scalar broadcasts) and X[:, -1] = X[:, 0]·c, as the frontend lowers them."""
    m, u, c, n = array(dt, 2, "X"), array(dt, 1, "u"), Value(dt, "c"), Value(I64, "n")
    b = Emitter([m, u, c, n])

    def body(e: Emitter, i, xs):
        prev = e.index(xs, e.sub(i, e.const(1)), spec=("i", ":"))
        xs = e.set_index(xs, e.mul(e.tanh(prev), u), i, spec=("i", ":"), hint="X")
        tail = e.index(xs, i, e.const(1), spec=("i", "s100"))
        xs = e.set_index(xs, e.add(tail, c), i, e.const(1), spec=("i", "s100"), hint="X")
        first = e.index(xs, e.const(0), spec=(":", "i"))
        return [e.set_index(xs, e.mul(first, c), e.const(-1), spec=(":", "i"), hint="X")]
    (s,) = loop(b, b.const(1), n, b.const(1), [m], body)
    f = Func("row_updates", b.finish([b.mul(s, s)]), ("X", "u", "c", "n"))
    return f, args_for(f, [(4, 3), (1,), (), 4])


def reshapes(dt: Type):
    """squeeze, reshape with -1, reshape_like, and a squeeze to a scalar."""
    x = array(dt, 3, "x")
    b = Emitter([x])
    s = b.squeeze(x, axes=(2,), hint="s")                           # (2, 3)
    flat = b.reshape(s, b.const(-1), hint="flat")                  # (6,)
    g = b.reshape(flat, b.const(3), b.const(-1), hint="g")         # (3, 2)
    h = b.reshape_like(b.mul(g, g), s)                             # (2, 3)
    one = b.index(x, b.const(1), b.const(2), spec=("i", "i"))      # (1,)
    scalar = b.squeeze(one, axes=(0,))
    y = b.add(b.reduce_sum(b.mul(h, s)), b.reduce_sum(b.sin(g)))
    f = Func("reshapes", b.finish([b.mul(y, scalar), b.exp(g)]), ("x",), True)
    return f, args_for(f, [(2, 3, 1)])


def creation(dt: Type):
    """full(s², rows, cols)·x·arange(start, stop, step) with start and step differentiated,
    plus an i64 arange cast to float."""
    x, s = array(dt, 2, "x"), Value(dt, "s")
    start, stop, step = Value(dt, "start"), Value(dt, "stop"), Value(dt, "step")
    b = Emitter([x, s, start, stop, step])
    full = b.full(b.mul(s, s), b.dim(x, axis=0), b.dim(x, axis=1), hint="full")
    r = b.arange(start, stop, step, hint="r")
    k = b.cast(b.arange(b.const(0), b.dim(x, axis=1), b.const(1)), dt, hint="k")
    ones = b.full(b.const(1.0, dt), b.const(6))
    y = b.add(b.reduce_sum(b.mul(b.mul(full, x), r)), b.reduce_sum(b.mul(b.mul(k, r), ones)))
    f = Func("creation", b.finish([y]), ("x", "s", "start", "stop", "step"))
    args = args_for(f, [(3, 6), ()])
    return f, [*args[:2], *(np.asarray(v, dtype=args[0].dtype)[()] for v in (0.3, 3.05, 0.5))]


CASES: list[Case] = [rows_and_elements, slices, cross_entropy, gathers, overwrite_loop,
                     row_updates, reshapes, creation]


test_f64_derivatives, test_f32_derivatives_match_f64, test_optimized_and_python_agree = \
    derivative_tests(CASES)


def _adjoint(case: Case) -> tuple[Func, list]:
    func, args = case(F64)
    adjoint = vjp_program(func, [k for k, p in enumerate(func.params) if p.type.is_float])
    cotangents = [np.ones_like(v) for v, r in zip(interpret(func, args), func.results)
                  if r.type.is_float]
    return adjoint, [*args, *cotangents]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_forward_over_reverse(case: Case) -> None:
    """The tangent of the adjoint program (index_add's and set_index's own tangent rules)
    against central differences of the adjoint program."""
    adjoint, args = _adjoint(case)
    wrt = float_params(adjoint)
    tangent = verify(jvp_program(adjoint, wrt), result_types)
    rng = np.random.default_rng(3)
    t = [np.asarray(rng.normal(size=np.shape(args[i]))) for i in wrt]
    jt = interpret(tangent, [*args, *t])[len(adjoint.results):]
    assert_close(flat(jt), directional_difference(adjoint, args, wrt, t), "finite-difference",
                 f"{adjoint.name}: J·t against central differences")


@pytest.mark.parametrize("case", [rows_and_elements, slices, cross_entropy, gathers, reshapes],
                         ids=lambda c: c.__name__)
def test_reverse_over_reverse_without_loops(case: Case) -> None:
    """Loop-free adjoints differentiated both ways (index_add's adjoint is index)."""
    check_derivatives(*_adjoint(case))


# --------------------------------------------------------------------------- values

def test_values_are_numpy_indexing() -> None:
    """Every case's primal values against numpy written by hand."""
    f, args = slices(F64)
    x, m, lo, hi, step = args
    want = (np.sum(x[1:3] ** 2) + np.sum(x[::2]) * np.sum(np.exp(x[::-1]) * x)
            + np.sum(x[lo:hi:step] * np.sin(x[-3:])) + np.sum(m[:2, 1:] ** 2))
    got = interpret(f, args)
    np.testing.assert_allclose(got[0], want, rtol=1e-14)
    np.testing.assert_array_equal(got[1], m * m[:, ::-1])
    f, (z, labels) = cross_entropy(F64)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    np.testing.assert_allclose(interpret(f, [z, labels])[0],
                               -np.mean(logp[np.arange(4), labels]), rtol=1e-14)


def test_overwrite_loop_matches_python_and_its_gradient_is_exact() -> None:
    f, (x, w, n) = overwrite_loop(F64)
    want = x.copy()
    for i in range(1, n):
        want[i] = want[i - 1] * np.sin(want[i]) + w[i]
    np.testing.assert_allclose(interpret(f, [x, w, n])[0], np.sum(want * want), rtol=1e-14)
    # Reverse mode by hand: x̄ through x[i] = x[i-1]·sin(x[i]) + w[i], last step first.
    xs = [x.copy()]
    for i in range(1, n):
        nxt = xs[-1].copy()
        nxt[i] = xs[-1][i - 1] * np.sin(xs[-1][i]) + w[i]
        xs.append(nxt)
    xbar, wbar = 2 * xs[-1], np.zeros_like(w)
    for i in reversed(range(1, n)):
        old, v_bar = xs[i - 1], xbar[i]
        xbar[i] = 0.0
        xbar[i - 1] += v_bar * np.sin(old[i])
        xbar[i] += v_bar * old[i - 1] * np.cos(old[i])
        wbar[i] += v_bar
    got = interpret(vjp_program(f, [0, 1]), [x, w, n, 1.0])
    np.testing.assert_allclose(got[1], xbar, rtol=1e-13)
    np.testing.assert_allclose(got[2], wbar, rtol=1e-13)


def test_set_index_copies_and_broadcasts() -> None:
    x, v, i = array(F64, 2, "x"), array(F64, 1, "v"), Value(I64, "i")
    b = Emitter([x, v, i])
    y = b.set_index(x, v, i, spec=(":", "i"))                       # x[:, i] = v
    z = b.set_index(y, b.const(7.0), b.const(-1), spec=("i",))      # y[-1] = 7
    f = Func("f", b.finish([y, z]), ("x", "v", "i"), True)
    x0, v0 = np.zeros((3, 2)), np.array([1.0, 2.0, 3.0])
    for y0, z0 in (interpret(f, [x0, v0, -2]), compile_python(f)(x0, v0, np.int64(-2))):
        np.testing.assert_array_equal(y0, [[1, 0], [2, 0], [3, 0]])
        np.testing.assert_array_equal(z0, [[1, 0], [2, 0], [7, 7]])
        np.testing.assert_array_equal(x0, 0)  # the argument is untouched


def casts(dt: Type, other: Type) -> tuple[Func, list]:
    """sum(astype(x)²·w) and astype(sin(astype(x))) back, for x of ``dt``, w of ``other``."""
    x, w = array(dt, 1, "x"), array(other, 1, "w")
    b = Emitter([x, w])
    xc = b.cast(x, other, hint="xc")
    y = b.reduce_sum(b.mul(b.mul(xc, xc), w))
    back = b.cast(b.sin(xc), dt)
    f = Func("casts", b.finish([y, back]), ("x", "w"), True)
    return f, args_for(f, [(4,), (4,)])


@pytest.mark.parametrize("dt, other", [(F64, F32), (F32, F64)], ids=["f64-f32", "f32-f64"])
def test_cast_between_float_arrays(dt: Type, other: Type) -> None:
    """astype f32 ↔ f64 on arrays: value dtypes, derivatives against the same program in f64
    alone (differences in f32 would be noise), the dot-product test, and the adjoint cast
    back to each argument's dtype."""
    f, args = casts(dt, other)
    assert [r.type for r in f.results] == [other, ArrayType(dt, 1)]
    y0, back0 = interpret(f, args)
    assert np.asarray(y0).dtype == NUMPY[other] and back0.dtype == NUMPY[dt]
    jt, jtc, t, c, _ = derivatives(f, args)
    assert [np.asarray(g).dtype for g in jtc] == [NUMPY[dt], NUMPY[other]]
    f64, args64 = casts(F64, F64)
    assert not any(op.prim is Prim.CAST for op in f64.body.walk())
    wide = [np.asarray(v, dtype=np.float64) for v in args]
    assert_close(flat(jt), flat(interpret(jvp_program(f64, [0, 1]), [*wide, *t])[2:]), "f32")
    assert_close(flat(jtc), flat(interpret(vjp_program(f64, [0, 1]), [*wide, *c])[2:]), "f32")
    assert_close(flat(jt) @ flat(c), flat(t) @ flat(jtc), "f32-modes")
    check_backends(f, args)
    assert ".astype(np.float" in to_python(f)


NUMPY = {F64: np.float64, F32: np.float32}


# --------------------------------------------------------------------------- errors

def _one_index(spec, rank: int, arg_types) -> Func:
    x = array(F64, rank, "x")
    idx = [Value(t, f"i{k}") for k, t in enumerate(arg_types)]
    b = Emitter([x, *idx])
    y = b.index(x, *idx, spec=spec)
    return Func("f", b.finish([y]), ("x", *(v.hint for v in idx)))


@pytest.mark.parametrize("spec, i, shape, axis, size", [
    (("i",), 3, (3,), 0, 3), (("i",), -4, (3,), 0, 3), ((":", "i"), 5, (2, 4), 1, 4)])
def test_out_of_range_index_names_axis_and_length(spec, i, shape, axis, size) -> None:
    f = _one_index(spec, len(shape), [I64])
    message = f"index {i} is out of bounds for axis {axis} with size {size}"
    with pytest.raises(IndexError, match=message):
        interpret(f, [np.zeros(shape), i])
    with pytest.raises(IndexError, match=message):
        compile_python(f)(np.zeros(shape), np.int64(i))
    x, v, k = array(F64, len(shape), "x"), Value(F64, "v"), Value(I64, "k")
    b = Emitter([x, v, k])
    g = Func("g", b.finish([b.set_index(x, v, k, spec=spec)]), ("x", "v", "k"))
    with pytest.raises(IndexError, match=message):
        interpret(g, [np.zeros(shape), 1.0, i])
    with pytest.raises(IndexError, match=message):
        compile_python(g)(np.zeros(shape), np.float64(1.0), np.int64(i))


@pytest.mark.parametrize("spec, rank, types, message", [
    (("a", ":", "a"), 3, [ArrayType(I64, 1)] * 2, "separated by a slice"),
    (("i", ":", "a"), 3, [I64, ArrayType(I64, 1)], "separated by a slice"),
    (("i", "i"), 1, [I64, I64], "2 indices for a rank-1"),
    (("s110",), 1, [I64], "takes 2 index arguments, got 1"),
    (("i",), 1, [F64], "needs i64"),
    (("a",), 1, [I64], "needs an i64 array"),
    (("x",), 1, [], "unknown index item"),
])
def test_bad_indices_are_rejected(spec, rank, types, message) -> None:
    with pytest.raises(RuleError, match=message):
        _one_index(spec, rank, types)


def test_bad_updates_and_shapes_are_rejected() -> None:
    x, v32, m = array(F64, 1, "x"), Value(F32, "v"), array(F64, 2, "m")
    b = Emitter([x, v32, m])
    i = b.const(0)
    with pytest.raises(RuleError, match="set_index"):
        b.set_index(x, v32, i, spec=("i",))                    # wrong dtype
    with pytest.raises(RuleError, match="set_index"):
        b.set_index(x, m, i, spec=("i",))                      # rank 2 into a scalar slot
    with pytest.raises(RuleError, match="reshape"):
        b.reshape(x, b.const(2.0))
    with pytest.raises(RuleError, match="squeeze"):
        b.squeeze(m, axes=(2,))
    with pytest.raises(RuleError, match="arange"):
        b.arange(b.const(0), b.const(3.0), b.const(1))


# --------------------------------------------------------------------------- printing, IR

def test_python_reads_as_numpy() -> None:
    f, _ = slices(F64)
    text = to_python(f)
    for piece in ("x[1:3]", "x[::2]", "x[::-1]", "x[lo:hi:step]", "x[-3:]", "m[:, ::-1]",
                  "m[:2, 1:]"):
        assert piece in text, text
    adjoint = to_python(vjp_program(*[cross_entropy(F64)[0], [0]]))
    assert "np.add.at(" in adjoint and "[rows, labels]" in adjoint, adjoint
    text = to_python(vjp_program(overwrite_loop(F64)[0], [0, 1]))
    assert re.search(r"(\w+) = x\.copy\(\)\n +\1\[i\] = ", text), text
    assert re.search(r"(\w+) = x_bar\.copy\(\)\n +\1\[i\] = 0\.0", text), text
    f, _ = creation(F32)
    text = to_python(f)
    assert "np.full((x.shape[0], x.shape[1]), s * s" in text and "dtype=np.float32" in text, text


def test_statement_operands_never_share_the_result_variable() -> None:
    """y = set_index(x, v) where v reads a value named like y that dies there: printing
    ``y = x.copy()`` first must not clobber what ``v`` reads."""
    x, a = array(F64, 1, "y"), array(F64, 1, "a")
    b = Emitter([x, a])
    t = b.exp(a, hint="y")
    s = b.reduce_sum(b.mul(t, t), hint="y")                    # reads t: t dies at s
    y = b.set_index(b.mul(a, a), b.add(s, b.index(t, b.const(0), spec=("i",))), b.const(1),
                    spec=("i",), hint="y")
    f = Func("f", b.finish([y]), ("y", "a"))
    args = [np.zeros(3), np.array([0.1, 0.2, 0.3])]
    np.testing.assert_array_equal(compile_python(f)(*args), interpret(f, args)[0])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_serialized_programs_round_trip(case: Case) -> None:
    func, args = case(F64)
    adjoint = vjp_program(func, [k for k, p in enumerate(func.params) if p.type.is_float])
    for program in (func, adjoint):
        back = verify(loads(dumps(program)), result_types)
        assert format_func(back) == format_func(program)
        ops = [op for op in back.body.walk() if op.prim in (Prim.INDEX, Prim.SET_INDEX,
                                                            Prim.INDEX_ADD)]
        assert all(isinstance(op.attr("spec"), tuple) for op in ops)
    assert any(op.prim in (Prim.INDEX, Prim.RESHAPE, Prim.SQUEEZE, Prim.FULL)
               for op in loads(dumps(func)).body.walk())
