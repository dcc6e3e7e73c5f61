"""Helpers of the native array tests (no tests here): run a program natively and through the
interpreter and compare the results (values, shapes, dtypes)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import codegen
from sxad.backends.interpreter import interpret
from sxad.ir import F32, Func
from tolerances import TOL

#: Native against interpreter, by element type. f64: libm and vmath transcendentals differ from
#: numpy's by an ulp or two, sums are reassociated (numpy sums pairwise). f32: the same in 24
#: bits, plus the f32 libm/vmath functions' own ulps.
NATIVE_TOL = {"f64": TOL["native-array"], "f32": TOL["native-f32"]}


def as_tuple(result: Any, func: Func) -> tuple:
    if func.tuple_result or len(func.results) != 1:
        return tuple(result)
    return (result,)


def check_native(func: Func, args: Sequence[Any], kernel: Any = None) -> tuple:
    """``func`` natively on ``args`` gives what the interpreter gives, of the same shapes and
    dtypes; returns the native results."""
    kernel = kernel or codegen.compile_native(func)
    with np.errstate(all="ignore"):
        want = interpret(func, args)
    got = as_tuple(kernel(*args), func)
    assert got is not NotImplemented and len(got) == len(want), (func.name, got)
    for g, w, v in zip(got, want, func.results):
        assert np.shape(g) == np.shape(w), (func.name, np.shape(g), np.shape(w))
        assert np.asarray(g).dtype == np.asarray(w).dtype, (func.name, np.asarray(g).dtype)
        if isinstance(g, np.ndarray):
            assert g.flags.c_contiguous and g.flags.owndata is False and g.base is not None
        tol = NATIVE_TOL["f32" if np.asarray(w).dtype == np.float32 else "f64"]
        if np.asarray(w).dtype.kind in "fc":
            np.testing.assert_allclose(g, w, err_msg=func.name, equal_nan=True, **tol)
        else:
            np.testing.assert_array_equal(g, w, err_msg=func.name)
    return got


def is_f32(func: Func) -> bool:
    return any(getattr(p.type, "dtype", p.type) is F32 for p in func.params)
