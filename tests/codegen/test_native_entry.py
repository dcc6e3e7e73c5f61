"""The METH_FASTCALL entry point: argument unboxing, NotImplemented on what it cannot take, clear
exceptions on real errors, never a crash."""
from __future__ import annotations

import enum
import inspect

import numpy as np
import pytest

import codegen
from sxad.ir import BOOL, F64, I64

import native_programs as P


@pytest.fixture(scope="module")
def mixed_kernel():
    """f(x: f64, n: i64, p: bool) -> (x·n if p else -x, n + 1, not p)."""
    def build(b, x, n, p):
        scaled = b.mul(x, b.cast(n, F64))
        return [b.select(p, scaled, b.neg(x)), b.add(n, b.const(1)), b.not_(p)]
    func = P.make_func("mixed", [("x", F64), ("n", I64), ("p", BOOL)], build)
    return codegen.compile_kernel(func)


@pytest.fixture(scope="module")
def mixed(mixed_kernel):
    return mixed_kernel.entry


class Real(float):
    pass


class Count(enum.IntEnum):
    THREE = 3


def test_is_a_builtin_with_a_signature(mixed):
    assert type(mixed).__name__ == "builtin_function_or_method"
    assert mixed.__name__ == "mixed"
    assert list(inspect.signature(mixed).parameters) == ["x", "n", "p"]


def test_result_types(mixed):
    result = mixed(1.5, 4, True)
    assert result == (6.0, 5, False)
    assert [type(v) for v in result] == [float, int, bool]


@pytest.mark.parametrize("x", [2.0, np.float64(2.0), Real(2.0), np.float32(2.0)], ids=repr)
def test_f64_accepts_float_and_subclasses(mixed, x):
    """... and np.float32, which the API types as a float (widened, as here)."""
    assert mixed(x, 3, True) == (6.0, 4, False)


def test_an_f32_scalar_is_widened_exactly(mixed):
    x = np.float32(0.1)
    assert mixed(x, 3, True)[0] == float(x) * 3


@pytest.mark.parametrize("n", [3, np.int64(3), np.int32(3), np.uint8(3), Count.THREE], ids=repr)
def test_i64_accepts_ints_and_numpy_integers(mixed, n):
    assert mixed(2.0, n, True) == (6.0, 4, False)


@pytest.mark.parametrize("p", [True, np.True_, np.bool_(1)], ids=repr)
def test_bool_accepts_python_and_numpy_bools(mixed, p):
    assert mixed(2.0, 3, p) == (6.0, 4, False)
    assert mixed(2.0, 3, not p) == (-2.0, 4, True)


@pytest.mark.parametrize("args", [
    (), (1.0,), (1.0, 2), (1.0, 2, True, 4), (1.0, 2, True, 4, 5, 6, 7),   # counts
    (1, 2, True), (np.float16(1.0), 2, True), ("1.0", 2, True), (None, 2, True),
    (1j, 2, True), ([1.0], 2, True), (object(), 2, True),                   # not an f64
    (1.0, 2.0, True), (1.0, True, True), (1.0, np.bool_(True), True), (1.0, "2", True),
    (1.0, np.float64(2.0), True), (1.0, None, True),                        # not an i64
    (1.0, 2, 1), (1.0, 2, 0), (1.0, 2, None), (1.0, 2, 1.0), (1.0, 2, "True"),  # not a bool
], ids=repr)
def test_what_it_cannot_take_is_not_implemented(mixed, args):
    assert mixed(*args) is NotImplemented


@pytest.mark.parametrize("n", [2 ** 63, -(2 ** 63) - 1, 2 ** 200, np.uint64(2 ** 64 - 1)], ids=repr)
def test_int_overflow_raises(mixed, n):
    with pytest.raises(OverflowError):
        mixed(1.0, n, True)


def test_extreme_ints_and_minus_one_are_values(mixed):
    assert mixed(1.0, -1, True) == (-1.0, 0, False)
    assert mixed(1.0, P.INT64_MAX, False)[1] == P.INT64_MIN   # wraps like np.int64
    assert mixed(1.0, P.INT64_MIN, False)[1] == P.INT64_MIN + 1


def test_keywords_are_not_taken(mixed):
    assert mixed(1.0, 2, p=True) is NotImplemented


def test_calls_it_cannot_take_go_to_the_bound_fallback(mixed_kernel):
    seen = []

    def fallback(*args, **kwargs):
        seen.append((args, kwargs))
        return "fallback"
    bound = codegen.bind_fallback(mixed_kernel, fallback)
    assert bound(1.0, -1, True) == (-1.0, 0, False)
    assert bound(1.0, 2, p=True) == "fallback"
    assert bound("x", 2, True) == "fallback"
    assert bound(1.0) == "fallback"
    assert seen == [((1.0, 2), {"p": True}), (("x", 2, True), {}), ((1.0,), {})]


def test_many_calls_do_not_leak_references(mixed):
    import sys
    x = 12345.678
    before = sys.getrefcount(x), sys.getrefcount(NotImplemented)
    for _ in range(1000):
        mixed(x, 2, True)
        mixed(x, 2.0, True)
    assert (sys.getrefcount(x), sys.getrefcount(NotImplemented)) == before


def test_single_result_is_not_a_tuple():
    func = P.make_func("twice", [("x", F64)], lambda b, x: [b.add(x, x)])
    twice = codegen.compile_native(func, name="twice_custom")
    assert twice(2.0) == 4.0 and twice.__name__ == "twice_custom"


def test_kernel_address_is_a_c_function():
    import ctypes
    kernel = codegen.compile_kernel(P.make_func("axpb", [("x", F64), ("n", I64)],
                                                lambda b, x, n: [b.add(x, b.cast(n, F64))]))
    prototype = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_double, ctypes.c_int64,
                                 ctypes.POINTER(ctypes.c_double))
    out = ctypes.c_double()
    assert prototype(kernel.address)(1.5, 2, ctypes.byref(out)) == 0 and out.value == 3.5


def test_a_program_with_two_tapes_is_refused_with_a_clear_error():
    """Reverse over reverse pushes on a second tape; native code keeps one, so it refuses."""
    from sxad.ir import F64, Func, Op, Prim, Value
    from sxad.prims import Emitter
    x = Value(F64, "x")
    b = Emitter([x])
    b.append(Op(Prim.PUSH, (x,), (), (("slot", 0), ("tape", 1))))
    (y,) = b.op(Prim.POP, [], [F64], attrs=[("slot", 0), ("tape", 1)])
    with pytest.raises(codegen.CodegenError, match="keeps one tape"):
        codegen.compile_kernel(Func("f", b.finish([y]), ("x",)))
