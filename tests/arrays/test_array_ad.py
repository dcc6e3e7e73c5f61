"""Array programs built by hand: elementwise chains with every broadcasting pattern, reductions,
softmax and log-sum-exp, matmul, loops with a tape of arrays, branches on reduced values.
Each is differentiated forward and backward and checked by tests/arrays/harness.py."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from arrays.harness import (array, check_backends, check_derivatives, check_f32, derivative_tests,
                            derivatives, numpy_value)
from ir_builders import branch, loop
from sxad.backends.interpreter import interpret
from sxad.ir import F32, F64, I64, Func, Prim, Type, Value
from sxad.prims import Emitter

Case = Callable[[Type], tuple[Func, list]]
RNG_SEED = 7


def args_for(func: Func, shapes: list, positive: bool = False) -> list:
    """Random arguments of ``func``'s types with the given shapes (an int: that i64)."""
    rng = np.random.default_rng(RNG_SEED)
    out = []
    for p, shape in zip(func.params, shapes):
        if isinstance(shape, int):
            out.append(numpy_value(shape, p.type))
            continue
        v = rng.uniform(0.5, 1.5, size=shape) if positive else rng.normal(size=shape)
        out.append(numpy_value(v, p.type))
    return out


# --------------------------------------------------------------------------- cases

def scalar_and_vector(dt: Type):
    """sum(sin(x)·s + s²·x): a scalar broadcast against a vector, both differentiated."""
    x, s = array(dt, 1, "x"), Value(dt, "s")
    b = Emitter([x, s])
    y = b.add(b.mul(b.sin(x), s), b.mul(b.mul(s, s), x))
    f = Func("scalar_and_vector", b.finish([b.reduce_sum(y)]), ("x", "s"))
    return f, args_for(f, [(5,), ()])


def column_and_row(dt: Type):
    """exp(a·c) / (a + c² + 3) for a (3,1) and c (1,4): a (3,4) result."""
    a, c = array(dt, 2, "a"), array(dt, 2, "c")
    b = Emitter([a, c])
    y = b.div(b.exp(b.mul(a, c)), b.add(b.add(a, b.mul(c, c)), b.const(3.0, dt)))
    f = Func("column_and_row", b.finish([y]), ("a", "c"))
    return f, args_for(f, [(3, 1), (1, 4)])


def matrix_and_vector(dt: Type):
    """A·v − tanh(v) + A/2 for A (2,3), v (3,): v broadcast over rows."""
    m, v = array(dt, 2, "A"), array(dt, 1, "v")
    b = Emitter([m, v])
    y = b.add(b.sub(b.mul(m, v), b.tanh(v)), b.div(m, b.const(2.0, dt)))
    f = Func("matrix_and_vector", b.finish([y]), ("A", "v"))
    return f, args_for(f, [(2, 3), (3,)])


def one_side_active(dt: Type):
    """(x + c)·(x − c²) and (x + 5) mod (|c| + 1.5) with x (3,1) differentiated and c (3,4) an
    integer array cast to float: the tangent of x alone must be broadcast to the result."""
    x, k = array(dt, 2, "x"), array(I64, 2, "k")
    b = Emitter([x, k])
    c = b.cast(k, dt, hint="c")
    y = b.mul(b.add(x, c), b.sub(x, b.mul(c, c)))
    z = b.mod(b.add(x, b.const(5.0, dt)), b.add(b.abs(c), b.const(1.5, dt)))
    f = Func("one_side_active", b.finish([y, z]), ("x", "k"), True)
    args = args_for(f, [(3, 1), (3, 4)])
    args[1] = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
    return f, args


def elementwise_zoo(dt: Type):
    """pow, atan2, hypot, max/min, select on a bool array, abs, with broadcasting."""
    x, y = array(dt, 1, "x"), array(dt, 2, "y")
    b = Emitter([x, y])
    p = b.pow(b.add(b.mul(x, x), b.const(0.5, dt)), b.mul(y, b.const(0.3, dt)))
    q = b.add(b.atan2(x, y), b.hypot(y, x))
    r = b.add(b.max(x, y), b.min(x, b.const(0.2, dt)))
    s = b.select(b.gt(y, b.const(0.0, dt)), b.mul(y, x), b.neg(b.abs(x)))
    out = b.add(b.add(p, q), b.add(r, s))
    f = Func("elementwise_zoo", b.finish([out]), ("x", "y"))
    return f, args_for(f, [(4,), (3, 4)])


def sum_of_squares(dt: Type):
    x = array(dt, 2, "x")
    b = Emitter([x])
    f = Func("sum_of_squares", b.finish([b.reduce_sum(b.mul(x, x))]), ("x",))
    return f, args_for(f, [(3, 5)])


def softmax(dt: Type):
    """Row-wise softmax of a (2,5) matrix, stabilized by the row maximum."""
    x = array(dt, 2, "x")
    b = Emitter([x])
    m = b.reduce_max(x, axes=(1,), keepdims=True)
    e = b.exp(b.sub(x, m))
    y = b.div(e, b.reduce_sum(e, axes=(1,), keepdims=True))
    f = Func("softmax", b.finish([y]), ("x",))
    return f, args_for(f, [(2, 5)])


def log_sum_exp(dt: Type):
    """m + log(sum(exp(x − m))) with m the maximum: a scalar from a vector."""
    x = array(dt, 1, "x")
    b = Emitter([x])
    m = b.reduce_max(x)
    y = b.add(m, b.log(b.reduce_sum(b.exp(b.sub(x, m)))))
    f = Func("log_sum_exp", b.finish([y]), ("x",))
    return f, args_for(f, [(6,)])


def matmuls(dt: Type):
    """Every matmul shape: vector·vector, matrix·vector, vector·matrix, matrix·matrix, and a
    transpose."""
    a, m, v = array(dt, 2, "A"), array(dt, 2, "M"), array(dt, 1, "v")
    b = Emitter([a, m, v])
    av = b.matmul(a, v)                      # (2,3)·(3,) → (2,)
    va = b.matmul(av, a)                     # (2,)·(2,3) → (3,)
    vv = b.matmul(va, v)                     # (3,)·(3,) → scalar
    mm = b.matmul(b.transpose(a), b.tanh(m))  # (3,2)·(2,4) → (3,4)
    y = b.add(b.reduce_sum(b.mul(mm, mm), axes=(1,)), b.mul(vv, va))
    f = Func("matmuls", b.finish([y]), ("A", "M", "v"))
    return f, args_for(f, [(2, 3), (2, 4), (3,)])


def loop_with_tape(dt: Type):
    """x ← sin(x)·w + i/10, n times, on a vector: the reverse sweep pops arrays."""
    x, w, n = array(dt, 1, "x"), array(dt, 1, "w"), Value(I64, "n")
    b = Emitter([x, w, n])

    def body(e: Emitter, i, s):
        t = e.add(e.mul(e.sin(s), w), e.mul(e.cast(i, dt), e.const(0.1, dt)))
        return [e.div(t, e.add(e.reduce_sum(e.mul(t, t)), e.const(1.0, dt)))]
    (s,) = loop(b, b.const(0), n, b.const(1), [x], body)
    f = Func("loop_with_tape", b.finish([b.reduce_sum(b.mul(s, s))]), ("x", "w", "n"))
    return f, args_for(f, [(4,), (4,), 3])


def branch_on_reduction(dt: Type):
    """if sum(x) > 0: x·sum(x) else exp(x), then a sum of squares."""
    x = array(dt, 1, "x")
    b = Emitter([x])
    s = b.reduce_sum(x)
    (y,) = branch(b, b.gt(s, b.const(0.0, dt)), lambda e: [e.mul(x, s)],
                  lambda e: [e.exp(x)], [x.type])
    f = Func("branch_on_reduction", b.finish([b.reduce_sum(b.mul(y, y))]), ("x",))
    return f, args_for(f, [(5,)])


def branch_in_loop(dt: Type):
    """A loop whose body branches on a reduced array and updates a matrix."""
    m, n = array(dt, 2, "m"), Value(I64, "n")
    b = Emitter([m, n])

    def body(e: Emitter, i, s):
        total = e.reduce_sum(s, axes=(0,))
        (t,) = branch(e, e.gt(e.reduce_max(total), e.const(0.5, dt)),
                      lambda f: [f.mul(s, f.const(0.5, dt))],
                      lambda f: [f.add(s, f.cos(total))], [s.type])
        return [t]
    (s,) = loop(b, b.const(0), n, b.const(1), [m], body)
    f = Func("branch_in_loop", b.finish([s]), ("m", "n"))
    return f, args_for(f, [(2, 3), 4])


def products(dt: Type):
    """prod and min over axes of positive values."""
    x = array(dt, 2, "x")
    b = Emitter([x])
    y = b.add(b.reduce_prod(x, axes=(1,)), b.reduce_min(x, axes=(1,)))
    f = Func("products", b.finish([y]), ("x",))
    return f, args_for(f, [(3, 4)], positive=True)


CASES: list[Case] = [scalar_and_vector, column_and_row, matrix_and_vector, one_side_active,
                     elementwise_zoo, sum_of_squares, softmax, log_sum_exp, matmuls,
                     loop_with_tape, branch_on_reduction, branch_in_loop, products]


test_f64_derivatives, test_f32_derivatives_match_f64, test_optimized_and_python_agree = \
    derivative_tests(CASES)


# --------------------------------------------------------------------------- reductions

AXES = [None, (0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]
REDUCTIONS = [Prim.REDUCE_SUM, Prim.REDUCE_MAX, Prim.REDUCE_MIN, Prim.REDUCE_PROD]


def reduction(prim: Prim, axes, keepdims: bool, dt: Type = F64):
    x = array(dt, 3, "x")
    b = Emitter([x])
    y = b.emit(prim, b.add(b.mul(x, x), x), axes=axes, keepdims=keepdims)
    f = Func(f"{prim}", b.finish([y]), ("x",))
    return f, args_for(f, [(2, 3, 4)], positive=True)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("prim", REDUCTIONS, ids=str)
def test_reductions_on_every_axis(prim: Prim, axes, keepdims: bool) -> None:
    func, args = reduction(prim, axes, keepdims)
    expected = {Prim.REDUCE_SUM: np.sum, Prim.REDUCE_MAX: np.max, Prim.REDUCE_MIN: np.min,
                Prim.REDUCE_PROD: np.prod}[prim](args[0] ** 2 + args[0], axis=axes,
                                                keepdims=keepdims)
    (got,) = interpret(func, args)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert np.ndim(got) == np.ndim(expected)
    check_derivatives(func, args)


@pytest.mark.parametrize("prim", REDUCTIONS, ids=str)
def test_reductions_in_f32_and_python(prim: Prim) -> None:
    check_f32(*reduction(prim, (0, 2), False, F32), *reduction(prim, (0, 2), False, F64))
    check_backends(*reduction(prim, (1,), True))


def test_max_splits_the_gradient_evenly_among_ties() -> None:
    x = array(F64, 1, "x")
    b = Emitter([x])
    f = Func("tied", b.finish([b.reduce_max(x)]), ("x",))
    _, _, _, _, (_, adjoint) = derivatives(f, [np.array([1.0, 3.0, 3.0, -2.0])])
    (_, g) = interpret(adjoint, [np.array([1.0, 3.0, 3.0, -2.0]), np.float64(1.0)])
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5, 0.0])
