"""The accuracy table ``codegen.ULPS``, measured: each f64 function of the kernels against the
interpreter's evaluation rule (numpy on scalars) over many inputs of its domain."""
from __future__ import annotations

import numpy as np
import pytest

import codegen
from sxad.ir import Prim
from sxad.prims import RULES

import native_programs as P

FUNCTIONS = [p for p in P.UNARY_F64 if p is not Prim.NEG] + [Prim.POW, Prim.ATAN2, Prim.HYPOT]


def inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.concatenate([rng.standard_normal(n) * 3, rng.uniform(-1, 1, n),
                           np.exp(rng.uniform(-30, 6, n)) * rng.choice([-1, 1], n),
                           rng.uniform(-720, 720, n // 4)])


@pytest.fixture(scope="module")
def kernels():
    unary = codegen.compile_native(P.f64_unary_all())
    binary = codegen.compile_native(P.f64_binary_all())
    return unary, binary


@pytest.mark.parametrize("prim", FUNCTIONS, ids=str)
def test_within_table(prim, kernels, rng):
    unary, binary = kernels
    xs = inputs(rng, 1500)
    ys = rng.standard_normal(len(xs)) * 4
    evaluate = RULES[prim].eval
    worst = 0
    with np.errstate(all="ignore"):
        for x, y in zip(xs.tolist(), ys.tolist()):
            if prim in P.UNARY_F64:
                got = unary(x)[P.UNARY_F64.index(prim)]
                want = evaluate(np.float64(x))
            else:
                got = binary(x, y)[P.BINARY_F64.index(prim)]
                want = evaluate(np.float64(x), np.float64(y))
            worst = max(worst, P.ulp_distance(got, float(want)))
    print(f"{prim}: worst {worst} ulp (table {codegen.ULPS[prim]})")
    assert worst <= codegen.ULPS[prim]
