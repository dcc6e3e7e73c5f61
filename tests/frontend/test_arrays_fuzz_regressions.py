"""Regressions the array fuzzer found: each program is compiled with ``sxad.jit`` and compared
with calling it on numpy arrays (results, their dtypes, and the argument arrays afterwards), or
must fail with a clear error at its line where sxad cannot do what numpy does."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import sxad
from sxad.errors import UnsupportedError


def same(fn: Callable, *args: Any) -> None:
    """``sxad.jit(fn)`` agrees with ``fn``: values, dtypes, and the arguments it updates."""
    mine = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
    theirs = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
    got, want = sxad.jit(fn)(*mine), fn(*theirs)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype, (g, w)
        np.testing.assert_allclose(g, w)
    for m, t in zip(mine, theirs):
        if isinstance(t, np.ndarray):
            np.testing.assert_allclose(m, t)


def refuses(fn: Callable, args: tuple, match: str, line: int | None = None) -> str:
    """``sxad.jit(fn)`` raises ``UnsupportedError`` (at ``line`` of this file, if given)."""
    with pytest.raises(UnsupportedError, match=match) as info:
        sxad.jit(fn)(*args)
    loc = info.value.loc
    assert loc is not None and loc.file == __file__
    if line is not None:
        assert loc.line == line, str(info.value)
    return str(info.value)


def line_of(fn: Callable, text: str) -> int:
    """The line of this file where ``fn``'s source has ``text``."""
    first = fn.__code__.co_firstlineno
    with open(__file__) as f:
        lines = f.read().splitlines()
    return next(k + 1 for k in range(first - 1, len(lines)) if text in lines[k])


# --------------------------------------------------------------------------- 1. aliases, views

def alias_on_one_path(x, i):
    a = x
    if i > 3:
        a = a * 2.0
    x += 1
    return np.sum(a)


def test_an_alias_on_one_path_is_an_error_at_the_read() -> None:
    message = refuses(alias_on_one_path, (np.zeros(3), 1), "`a` may share memory with `x`",
                      line_of(alias_on_one_path, "return np.sum(a)"))
    assert f"line {line_of(alias_on_one_path, 'x += 1')}" in message
    assert "a = x.copy()" in message


def alias_on_both_paths(x, i):
    a = x
    if i > 3:
        a = x
    x += 1
    return np.sum(a)


def view_sees_update(x):
    a = x[0]                  # a view in numpy
    x[0] = 0.0
    return np.sum(a)


def views_of_views(x):
    r = x[1:]
    c = r[:, 0]
    t = x.T
    e = x[None]
    x[1, 0] = 7.0
    x[:, 1] *= 3.0
    return c.sum() + t[1, 0] * 10.0 + e[0, 1, 1] * 100.0 + r[0, 1]


def view_in_tuple(x, y):
    t = (x[0], y)
    x[0, 1] = 5.0
    return t[0].sum() + t[1].sum()


def bump(x):
    x += 1.0
    return 0.0


def view_updated_by_callee(x):
    a = x[0]
    s = bump(x)
    return a.sum() + s


def view_updated_in_branch(W, c):
    row = W[0]
    if c > 0:
        W[0, 0] = 10.0
    return row.sum()


def view_of_squeeze_and_expand(x):
    s = np.squeeze(x[:, :1], axis=1)
    e = np.expand_dims(x, 0)
    x[0, 0] = -4.0
    return s.sum() + e[0, 0, 0] * 10.0


@pytest.mark.parametrize("fn, args", [
    (alias_on_both_paths, (np.zeros(3), 5)),
    (alias_on_both_paths, (np.zeros(3), 1)),
    (view_sees_update, (np.ones((2, 3)),)),
    (views_of_views, (np.arange(6.0).reshape(3, 2),)),
    (view_in_tuple, (np.ones((2, 3)), np.ones(2))),
    (view_updated_by_callee, (np.ones((2, 3)),)),
    (view_updated_in_branch, (np.ones((2, 3)), 1.0)),
    (view_updated_in_branch, (np.ones((2, 3)), -1.0)),
    (view_of_squeeze_and_expand, (np.arange(6.0).reshape(3, 2),)),
], ids=lambda v: getattr(v, "__name__", None))
def test_views_and_aliases_see_updates(fn, args) -> None:
    same(fn, *args)


def alias_updated_on_one_path(x, c):
    a = np.zeros(3)
    if c > 0:
        a = x
    a += 1.0                  # x too, on one path only
    return a.sum()


def test_updating_what_may_be_an_argument_is_an_error_at_the_update() -> None:
    message = refuses(alias_updated_on_one_path, (np.zeros(3), 1.0), "the argument `x`",
                      line_of(alias_updated_on_one_path, "a += 1.0"))
    assert "x.copy()" in message


def carried_alias(x, n):
    h = x
    for _ in range(n):
        x += 1.0              # h too on the first trip only
        h = h * 2.0
    return h.sum()


def view_through_loop(W, n):
    row = W[0]
    for i in range(n):
        W[0, i] = 5.0
    return row.sum()


def reshape_of_argument(x):
    r = x.reshape(-1)         # a copy in numpy if x is not contiguous: sxad cannot tell
    x[0, 0] = 3.0
    return r.sum()


def view_through_merge_then_update(W, c):
    row = W[0] if c > 0 else W[1]
    W += 1.0
    return row.sum()


@pytest.mark.parametrize("fn, args, read", [
    (carried_alias, (np.ones(3), 2), "h = h * 2.0"),
    (view_through_loop, (np.ones((2, 3)), 2), "return row.sum()"),
    (reshape_of_argument, (np.ones((2, 3)),), "return r.sum()"),
    (view_through_merge_then_update, (np.ones((2, 3)), 1.0), "return row.sum()"),
], ids=lambda v: getattr(v, "__name__", None))
def test_unknown_sharing_is_an_error_at_the_read(fn, args, read) -> None:
    refuses(fn, args, "may share memory with", line_of(fn, read))


def rows_see_updates(X):
    s = 0.0
    for row in X:
        X[1] += 1.0
        s += row.sum()
    return s


def loop_over_fresh_rows(X):
    s = 0.0
    for row in X * 2.0:
        X[0] += 1.0
        s += row.sum()
    return s


def test_rows_of_a_loop_see_updates_of_the_array() -> None:
    same(rows_see_updates, np.arange(6.0).reshape(3, 2))
    same(loop_over_fresh_rows, np.arange(6.0).reshape(3, 2))


def writes_rows(X):
    for row in X:
        row += 1.0            # numpy writes X
    return X.sum()


def test_writing_a_loop_row_is_refused_as_a_view() -> None:
    refuses(writes_rows, (np.ones((2, 2)),), "does not write through views",
            line_of(writes_rows, "row += 1.0"))


def fresh_carried_update(x, n):
    h = x.copy()
    for _ in range(n):
        h += 1.0              # only h holds this array: fine
        h = h * 2.0
    return h.sum()


def training_alias(W, g, n):
    V = W
    for _ in range(n):
        V = V + 1.0
        W -= 0.5 * g
    return V.sum() + W.sum()


@pytest.mark.parametrize("fn, args", [
    (fresh_carried_update, (np.ones(3), 3)),
    (training_alias, (np.ones(3), np.arange(3.0), 3)),
    (training_alias, (np.ones(3), np.arange(3.0), 0)),
], ids=lambda v: getattr(v, "__name__", None))
def test_loops_that_stay_exact(fn, args) -> None:
    same(fn, *args)


# --------------------------------------------------------------------------- 2. in-place casts

def add_into_item(x, s):
    x[0] += s
    return x.sum()


def add_into_slice(x, s):
    x[0, 1:] += s
    return x.sum()


@pytest.mark.parametrize("x, s, source, target", [
    (np.arange(6).reshape(2, 3), 1.5, "float64", "int64"),      # x[0] is a row: a ufunc in place
    (np.array([[True, False]]), 1, "int64", "bool"),
    (np.array([[True, False]]), 0.5, "float64", "bool"),
])
def test_augmented_assignment_into_an_array_region_keeps_its_kind(x, s, source, target) -> None:
    with pytest.raises(TypeError):   # numpy's UFuncTypeError is a TypeError
        add_into_item(np.copy(x), s)
    refuses(add_into_item, (x, s), f"numpy refuses the cast from {source} to {target} in place",
            line_of(add_into_item, "x[0] += s"))


def test_augmented_assignment_into_a_slice_keeps_its_kind() -> None:
    refuses(add_into_slice, (np.arange(6).reshape(2, 3), 0.5), "from float64 to int64",
            line_of(add_into_slice, "x[0, 1:] += s"))


def assign_item(x, s):
    x[0] = s
    return x


@pytest.mark.parametrize("fn, x, s", [
    (add_into_item, np.arange(3), 1.5),          # x[0] is a scalar: add, then store (cast)
    (add_into_item, np.array([True, False]), 1),
    (add_into_item, np.arange(6).reshape(2, 3), True),
    (assign_item, np.arange(3), 0.5),            # assignment casts, as numpy does
    (assign_item, np.arange(6).reshape(2, 3), -2.5),
])
def test_what_numpy_casts_is_cast(fn, x, s) -> None:
    same(fn, x, s)


# --------------------------------------------------------------------------- 3. int ** int

def int_power(x, n):
    return x ** n


def item_power(x, n):
    return x[1] ** n


@pytest.mark.parametrize("fn", [int_power, item_power])
def test_int_arrays_to_int_powers_stay_ints(fn) -> None:
    same(fn, np.arange(4), 3)
    same(fn, np.arange(4), 0)
    for call in (fn, sxad.jit(fn)):
        with pytest.raises(ValueError, match="Integers to negative integer powers"):
            call(np.arange(1, 4), -1)


def python_int_power(n, k):
    return n ** k     # Python ints: a float for a negative exponent


def test_python_ints_to_negative_powers_are_floats() -> None:
    assert sxad.jit(python_int_power)(2, -1) == python_int_power(2, -1) == 0.5


# --------------------------------------------------------------------------- 4. bool @ bool

def bool_matmul(a, b):
    return a @ b


def bool_dot(a, b):
    return np.dot(a, b)


@pytest.mark.parametrize("fn", [bool_matmul, bool_dot])
def test_bool_matmul_is_bool(fn) -> None:
    A = np.array([[True, False, True], [False, False, True]])
    u, v = np.array([True, False, True]), np.array([False, True])
    for args in ((A, A.T), (A, u), (v, A), (u, u), (u, ~u), (A, np.arange(3))):
        same(fn, *args)


# --------------------------------------------------------------------------- 5. axes of numbers

def mean_axis_of_scalar(x):
    return np.mean(np.mean(x), axis=-1)


def sum_axes_of_scalar(x):
    return np.sum(np.sum(x), axis=(0,))


def var_axis_of_scalar(x):
    return np.var(x.sum(), axis=0)


def sum_axis_of_scalar(x):
    return np.sum(np.sum(x), axis=0) + np.max(x.max(), axis=-1) + np.mean(x.mean(), axis=())


@pytest.mark.parametrize("fn", [mean_axis_of_scalar, sum_axes_of_scalar, var_axis_of_scalar],
                         ids=lambda f: f.__name__)
def test_an_axis_of_a_scalar_is_an_error(fn) -> None:
    with pytest.raises(np.exceptions.AxisError):
        fn(np.ones(3))
    message = refuses(fn, (np.ones(3),), "out of bounds: the value reduced here is a scalar",
                      fn.__code__.co_firstlineno + 1)
    assert "axis" in message


def test_numpy_accepts_axis_0_of_a_scalar_sum() -> None:
    same(sum_axis_of_scalar, np.arange(3.0))


# --------------------------------------------------------------------------- found this session

def vector_product_minus_float32(x, w):
    a = w @ w.T
    a = a - np.prod(x)
    return float(np.sum(a))


def test_a_product_of_vectors_is_a_numpy_scalar() -> None:
    """``w @ w`` of float64 vectors is an ``np.float64``: against an ``np.float32`` it stays
    float64 (sxad took it for a Python float and computed in float32)."""
    x, w = np.array([[1.5, 0.0]], np.float32), np.array([1.83300359, 0.42893065])
    assert sxad.jit(vector_product_minus_float32)(x, w) == vector_product_minus_float32(x, w)


def local_updated_by_a_wider_array(x, y):
    a = np.max(x, axis=0, keepdims=True)
    a -= y
    return np.sum(a)


def local_updated_by_a_narrower_array(x, y):
    a = x * 2.0
    a -= y
    a *= 0.5
    return np.sum(a)


def test_an_in_place_update_does_not_broadcast_its_array() -> None:
    """numpy refuses ``a -= b`` where ``b`` would broadcast ``a`` (a ValueError); sxad
    computed the broadcast result."""
    x, y = np.ones((3, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match="non-broadcastable output"):
        local_updated_by_a_wider_array(x, y)
    with pytest.raises(ValueError, match=r"cannot broadcast an array of shape \(3,2\) to shape "
                                         r"\(1,2\)"):
        sxad.jit(local_updated_by_a_wider_array)(x, y)
    same(local_updated_by_a_wider_array, x, np.ones((1, 2)))
    same(local_updated_by_a_narrower_array, x, np.arange(2.0).reshape(1, 2))


def tanh_of_a_0d_array_in_a_loop(x, y, i):
    a = x * 1.0
    for k in range(min(abs(i), 3)):
        a = a * 0.5 + np.tanh(y)
    return np.sum(a * x)


def test_the_gradient_through_a_0d_array_in_a_loop() -> None:
    """The reverse sweep rebuilt a 0-d array's shape with ``full`` of no dims, which ``full``
    refused (an unclear RuleError): a 0-d ``full`` is a 0-d array."""
    x, y = np.array([[2.4066992], [1.626842]], np.float32), np.array(-2)
    reverse = sxad.grad(tanh_of_a_0d_array_in_a_loop)(x, y, -2)
    forward = sxad.grad(tanh_of_a_0d_array_in_a_loop, mode="forward")(x, y, -2)
    np.testing.assert_allclose(reverse, forward, rtol=1e-6)
    step = 1e-3
    moved = x.astype(np.float64).copy()
    moved[0, 0] += step
    plus = tanh_of_a_0d_array_in_a_loop(moved, y, -2)
    moved[0, 0] -= 2 * step
    minus = tanh_of_a_0d_array_in_a_loop(moved, y, -2)
    np.testing.assert_allclose(reverse[0, 0], (plus - minus) / (2 * step), rtol=1e-4)


def subtracts_bool_elements(y, i, j):
    a = y.copy()
    a[j] -= a[i]
    return np.sum(a)


def adds_bool_elements(y, i, j):
    return y[i] + y[j], True + False


def test_numpy_bools_are_not_subtracted_even_as_scalars() -> None:
    """An element of a bool array is an ``np.bool_``: numpy refuses ``-`` on it (TypeError)
    and ``+`` is a logical or, while Python's bools are ints (sxad subtracted the elements)."""
    y = np.array([False, False, True, True])
    with pytest.raises(TypeError, match="boolean subtract"):
        subtracts_bool_elements(y, -1, 1)
    refuses(subtracts_bool_elements, (y, -1, 1), "cannot subtract booleans",
            line_of(subtracts_bool_elements, "a[j] -= a[i]"))
    same(adds_bool_elements, y, 2, 3)


def abs_of_a_comparison(x):
    return np.abs(1 > x), abs(x > 0.5), abs(True), np.abs(True), abs(x[0] > 0.5)


def arithmetic_of_an_element_comparison(x):
    c = x[0] > 0.5
    return c + 1, c * 2.5, c - 1, c + c, c * c, c + True, int(c), c and True, not c


def test_the_absolute_value_of_numpy_bools_is_bool() -> None:
    """``np.abs`` of bools, and ``abs`` of a bool array or of a comparison with an element (an
    ``np.bool_``), are bools (sxad made them int64); the builtin ``abs`` of a Python bool is
    an int. Arithmetic on such a comparison is numpy's bool arithmetic."""
    same(abs_of_a_comparison, np.array([0.3, 0.7, 1.5]))
    same(arithmetic_of_an_element_comparison, np.array([0.7, 0.3]))


def sign_of_bools(x):
    return np.sign(x > 0.5)


def test_the_sign_of_bools_is_refused() -> None:
    """numpy has no sign of booleans (a UFuncTypeError); sxad computed one."""
    x = np.array([0.3, 0.7])
    with pytest.raises(TypeError):
        sign_of_bools(x)
    refuses(sign_of_bools, (x,), "sign is not defined on booleans",
            line_of(sign_of_bools, "np.sign(x > 0.5)"))
