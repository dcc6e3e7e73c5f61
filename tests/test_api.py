"""The public API's contract: names, results' shapes, caching, argument errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sxad
from sxad import api
from oracles import assert_close


def f(x, y):
    return x * x * y + np.sin(y)


def pair(x, y):
    return x * y, x + y


def counted(x, n):
    s = 0.0
    for i in range(n):
        s = s + x * i
    return s


def test_grad_single_and_tuple_wrt():
    assert sxad.grad(f)(2.0, 3.0) == pytest.approx(12.0)
    assert sxad.grad(f, wrt=1)(2.0, 3.0) == pytest.approx(4.0 + math.cos(3.0))
    gx, gy = sxad.grad(f, wrt=(0, "y"))(2.0, 3.0)
    assert (gx, gy) == pytest.approx((12.0, 4.0 + math.cos(3.0)))
    assert isinstance(sxad.grad(f)(2.0, 3.0), float)


def test_grad_forward_mode_matches_reverse():
    for wrt in (0, 1, (0, 1)):
        fwd = sxad.grad(f, wrt=wrt, mode="forward")(1.3, 0.4)
        rev = sxad.grad(f, wrt=wrt)(1.3, 0.4)
        assert_close(fwd, rev, "modes")


def test_value_and_grad():
    value, g = sxad.value_and_grad(f)(2.0, 3.0)
    assert value == pytest.approx(12.0 + math.sin(3.0)) and g == pytest.approx(12.0)


def test_decorator_forms_and_keywords():
    @sxad.grad(wrt="y")
    def h(x, y=2.0):
        return x * y * y
    assert h(3.0) == pytest.approx(12.0)
    assert h(3.0, y=1.0) == pytest.approx(6.0)
    assert h.__name__ == "h"


def test_jvp_and_vjp_with_tuple_outputs():
    value, tangent = sxad.jvp(pair, (2.0, 3.0), (1.0, 0.5))
    assert value == (6.0, 5.0)
    assert tangent == pytest.approx((3.0 + 1.0, 1.5))
    value, pullback = sxad.vjp(pair, 2.0, 3.0)
    assert value == (6.0, 5.0)
    assert pullback((1.0, 2.0)) == pytest.approx((3.0 + 2.0, 2.0 + 2.0))


def test_vjp_gives_none_for_int_arguments():
    value, pullback = sxad.vjp(counted, 1.5, 4)
    assert value == pytest.approx(9.0)
    assert pullback(1.0) == (pytest.approx(6.0), None)


def test_hessian_forward_over_reverse():
    h = sxad.hessian(f, wrt=(0, 1))(2.0, 3.0)
    expected = ((2 * 3.0, 2 * 2.0), (2 * 2.0, -math.sin(3.0)))
    assert_close(h, expected, "modes")
    assert sxad.hessian(f)(2.0, 3.0) == pytest.approx(6.0)


def test_jit_runs_the_primal():
    assert sxad.jit(f)(2.0, 3.0) == pytest.approx(f(2.0, 3.0))
    assert sxad.jit(pair)(2.0, 3.0) == (6.0, 5.0)
    assert sxad.jit(counted)(2.0, 3) == pytest.approx(6.0)


def test_second_call_with_same_types_transforms_nothing():
    g = sxad.grad(counted)
    g(1.0, 3)
    before = dict(api.stats)
    assert g(2.0, 5) == pytest.approx(10.0)
    assert dict(api.stats) == before
    g(1.0, True)  # a new signature (bool) is a new specialisation
    assert dict(api.stats) != before


def test_source_stages():
    text = sxad.source(f, 2.0, 3.0)
    assert text.startswith("def ") and "x_bar" in text
    assert "func f(" in sxad.source(f, 2.0, 3.0, stage="ir")
    assert "x_dot" in sxad.source(f, 2.0, 3.0, stage="tangent-ir")
    assert "x_bar" in sxad.source(f, 2.0, 3.0, stage="adjoint-ir")
    assert "x_dot" in sxad.source(f, 2.0, 3.0, mode="forward")
    with pytest.raises(ValueError, match="stage"):
        sxad.source(f, stage="assembly")


def test_generated_python_runs_and_matches_the_interpreter():
    from sxad.backends.interpreter import interpret
    key = api._Key(f, (sxad.ir.F64, sxad.ir.F64), "vjp", (0, 1))
    program = api._program(key)
    namespace = {"np": np}
    exec(sxad.source(f, 2.0, 3.0, wrt=(0, 1)), namespace)
    fn = next(v for k, v in namespace.items() if callable(v) and k != "np")
    args = (np.float64(1.1), np.float64(0.7), np.float64(1.0))
    assert_close(fn(*args), interpret(program, args), "backends")


@pytest.mark.parametrize("bad, match", [
    (lambda: sxad.grad(f)("a", 1.0), "argument `x`.*str"),
    (lambda: sxad.grad(f)([1.0], 1.0), "argument `x`.*list"),
    (lambda: sxad.grad(counted, wrt=1)(1.0, 3), "with respect to `n`: it is an int"),
    (lambda: sxad.grad(f)(True, 1.0), "with respect to `x`: it is a bool"),
    (lambda: sxad.grad(pair)(1.0, 2.0), "return one float"),
    (lambda: sxad.grad(f)(1.0), "missing"),
])
def test_bad_arguments_raise_type_errors_naming_them(bad, match):
    with pytest.raises(TypeError, match=match):
        bad()


@pytest.mark.parametrize("wrt, match", [(2, "out of range"), ("z", "names no argument")])
def test_bad_wrt_raises_value_error(wrt, match):
    with pytest.raises(ValueError, match=match):
        sxad.grad(f, wrt=wrt)


def _scaled(x, lr):
    return lr * x[0, 0]


def test_numpy_float32_scalars_take_the_native_fast_path():
    """A float32 learning rate (`np.float32(0.1)`) is typed as a float; the installed native
    entry takes it itself, not through the Python dispatcher (8 µs a call, found in the MLP
    step)."""
    import sys
    x = np.ones((2, 2), np.float32)
    g = sxad.jit(_scaled)
    assert g(x, np.float32(2.0)) == 2.0          # compiles and installs the native entry
    entered = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code.co_name in ("_dispatch", "_declined"):
            entered.append(frame.f_code.co_name)
    sys.setprofile(watch)
    try:
        out = g(x, np.float32(2.5))
    finally:
        sys.setprofile(None)
    assert out == 2.5
    if api.BACKEND == "native":
        assert entered == []


def _first_of(ps):
    return ps[0] * 2


def test_an_unsupported_item_of_a_tuple_argument_is_named():
    with pytest.raises(TypeError, match=r"argument `ps\[1\]\[0\]` of _first_of: arrays of float16"):
        sxad.jit(_first_of)((np.ones(2), (np.ones(2, np.float16),)))


def _sum_plus_first(a, t):
    return np.sum(a) + t[0]


def test_argument_types_are_recomputed_for_each_kind_of_argument(tmp_path):
    """``_Transformed._signature`` caches types by what they depend on (``_fingerprint``):
    an array's dtype and rank, a tuple's items, a scalar's class; ndarray and tuple
    subclasses (memmap, namedtuple) by their class too."""
    import collections
    g = sxad.jit(_sum_plus_first)
    assert g(np.ones(3), (1.0, 2)) == 4.0
    assert g(np.ones((2, 2), np.float32), (np.float32(1.0), 2)) == 5.0
    pair = collections.namedtuple("pair", "x y")
    assert g(np.ones(3), pair(1.0, 2)) == 4.0
    small = np.memmap(tmp_path / "a", dtype=np.float32, mode="w+", shape=(3,))
    wide = np.memmap(tmp_path / "b", dtype=np.float64, mode="w+", shape=(2, 2))
    small[:], wide[:] = 1, 2
    assert g(small, (1.0, 2)) == 4.0 and g(wide, (1.0, 2)) == 9.0
    assert g.last_types[0] == sxad.ir.ArrayType(sxad.ir.F64, 2)
    with pytest.raises(TypeError, match="arrays of object"):
        g(np.ones(3, dtype=object), (1.0, 2))
    with pytest.raises(OverflowError, match=r"`t\[1\]`"):
        g(np.ones(3), (1.0, 2 ** 70))     # the int64 check runs on every call
