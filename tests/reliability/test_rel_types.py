"""Wrong types end in a ``TypeError`` (a wrong ``wrt`` in a ``ValueError``, an int beyond int64
in an ``OverflowError``) naming the argument and the function, on the first call and on the
native fast path alike (docs/RELIABILITY.md, "Types"). Arrays (dtype, rank, shape) come later."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import sxad


def f(x, n):
    return x * n + x * x


def pair(x):
    return x, 2.0 * x


def count(x):
    return int(x)


def positive(x):
    return x > 0.0


class Real(float):
    pass


NOT_NUMBERS = [None, "1.5", b"1", [1.5], {"x": 1.5}, 1.5j, np.array([1.5j, 2.0]),
               Decimal("1.5"), Fraction(3, 2), object(), sxad]


def _both_paths(call):
    """Run ``call`` on a fresh transformation and on one whose kernel is installed."""
    g = sxad.grad(f)
    call(g)
    g(1.5, 2)
    g(1.5, 2)   # now ``g.__call__`` is the native kernel, which hands bad calls back
    call(g)


@pytest.mark.parametrize("bad", NOT_NUMBERS, ids=lambda v: type(v).__name__)
def test_an_argument_that_is_no_number_is_named(bad):
    def call(g):
        with pytest.raises(TypeError, match=r"argument `x` of f: (expected a float, int or bool"
                                            r"|arrays of complex128 are not supported)"):
            g(bad, 2)
    _both_paths(call)


@pytest.mark.parametrize("big", [2 ** 63, -(2 ** 63) - 1, 2 ** 200, np.uint64(2 ** 64 - 1)],
                         ids=repr)
def test_an_int_beyond_int64_is_an_overflow_error_naming_it(big):
    def call(g):
        with pytest.raises(OverflowError, match=r"argument `n` of f: .* 64-bit integer"):
            g(1.5, big)
    _both_paths(call)


def test_wrong_argument_count_or_keyword_names_the_function():
    def call(g):
        with pytest.raises(TypeError, match=r"^f\(\): missing a required argument: 'n'"):
            g(1.5)
        with pytest.raises(TypeError, match=r"^f\(\): too many positional arguments"):
            g(1.5, 2, 3)
        with pytest.raises(TypeError, match=r"^f\(\): got an unexpected keyword argument 'z'"):
            g(1.5, 2, z=1)
    _both_paths(call)


@pytest.mark.parametrize("value, kind", [(2, "an int"), (True, "a bool"),
                                         (np.int64(2), "an int"), (np.bool_(True), "a bool")],
                         ids=repr)
def test_differentiating_with_respect_to_an_int_or_bool(value, kind):
    for transform in (sxad.grad, sxad.value_and_grad, sxad.hessian):
        with pytest.raises(TypeError, match=f"with respect to `x`: it is {kind}, not a float"):
            transform(f)(value, 2)
    with pytest.raises(TypeError, match="`n`: it is an int"):
        sxad.grad(f, wrt="n")(1.5, 2)


@pytest.mark.parametrize("fn, match", [
    (pair, "return one float, but it returns a tuple"), (count, "returns an int"),
    (positive, "returns a bool"),
])
def test_grad_needs_one_float_output(fn, match):
    for transform in (sxad.grad, sxad.value_and_grad, sxad.hessian):
        with pytest.raises(TypeError, match=match):
            transform(fn)(1.5)


@pytest.mark.parametrize("wrt, error, match", [
    (2, ValueError, r"wrt=2 is out of range: f takes 2 argument\(s\) \(x, n\)"),
    (-3, ValueError, "wrt=-3 is out of range"),
    ("y", ValueError, r"wrt='y' names no argument of f\(x, n\)"),
    ((0, "y"), ValueError, "wrt='y' names no argument"),
    ((), ValueError, "wrt names no argument"),
    (1.0, TypeError, "wrt must be an argument position, name"),
    (None, TypeError, "wrt must be an argument position, name"),
])
def test_wrt_out_of_range_or_naming_nothing(wrt, error, match):
    for transform in (sxad.grad, sxad.value_and_grad, sxad.hessian):
        with pytest.raises(error, match=match):
            transform(f, wrt=wrt)


def test_jvp_and_vjp_check_their_tangents():
    with pytest.raises(TypeError, match="tangent of `x` must be a float, got NoneType"):
        sxad.jvp(f, (1.5, 2), (None, 0))
    with pytest.raises(TypeError, match="tangent of `x` must be a float, got str"):
        sxad.jvp(f, (1.5, 2), ("1", 0))
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        sxad.jvp(f, (1.5, 2), (1.0,))
    value, pullback = sxad.vjp(pair, 1.5)
    with pytest.raises(TypeError, match="cotangent 1 must be a float, got NoneType"):
        pullback((1.0, None))
    with pytest.raises(ValueError, match="pair has 2 outputs, got 1 cotangents"):
        pullback(1.0)
    assert pullback((1.0, 1.0)) == (3.0,)


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="mode must be 'reverse' or 'forward'"):
        sxad.grad(f, mode="sideways")
    with pytest.raises(ValueError, match="stage must be one of"):
        sxad.source(f, 1.5, 2, stage="assembly")
    with pytest.raises(TypeError, match="use sxad.hessian"):
        sxad.grad(sxad.grad(f))


@pytest.mark.parametrize("x, n", [(np.float32(1.5), 2), (Real(1.5), np.int8(2)),
                                  (np.float64(1.5), np.uint16(2)), (1.5, True)], ids=repr)
def test_numpy_scalars_and_subclasses_are_numbers(x, n):
    g = sxad.grad(f)
    assert g(x, n) == g(x, n) == float(n) + 2 * float(x)
