"""Every scalar primitive, native against the interpreter, on random and special inputs;
bit-exact where ``codegen.ULPS`` says 0, else within its bound."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import codegen
from codegen.lowering import LOWERING, missing_lowerings
from sxad.backends.interpreter import interpret
from sxad.ir import Prim
from sxad.prims import RULES

import native_programs as P

SPECIAL_F64 = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, -7.0, 0.1, 1e-300, 5e-324,
               -5e-324, 1e16, 1e308, -1e308, np.inf, -np.inf, np.nan, 1.0000000000000002,
               -1.0000000000000002, np.pi / 2, 710.0, -745.5, 2.0 ** 63, -2.0 ** 63, 9.3e18]
SPECIAL_I64 = [0, 1, -1, 2, -2, 3, -3, 7, -7, 10, 63, 64, P.INT64_MIN, P.INT64_MAX,
               P.INT64_MIN + 1, 2 ** 32, -(2 ** 32), 12345678901, -98765432109]


def random_f64(rng: np.random.Generator, n: int) -> list[float]:
    parts = [rng.standard_normal(n) * 3, rng.uniform(-1.2, 1.2, n),
             np.exp(rng.uniform(-40, 40, n)) * rng.choice([-1, 1], n)]
    return [float(v) for v in np.concatenate(parts)]


def random_i64(rng: np.random.Generator, n: int) -> list[int]:
    small = rng.integers(-1000, 1000, n)
    wide = rng.integers(P.INT64_MIN, P.INT64_MAX, n, dtype=np.int64, endpoint=True)
    return [int(v) for v in np.concatenate([small, wide])]


def labels(func) -> list[str]:
    return [str(op.prim) + (f"->{op.result.type}" if op.prim is Prim.CAST else "")
            for op in func.body.ops if op.prim is not Prim.CONST][-len(func.results):]


def prims_of(func) -> list[Prim]:
    """The primitive computing each result (the accuracy of that result)."""
    producer = {r: op.prim for op in func.body.walk() for r in op.results}
    return [producer[v] for v in func.results]


def check_all(func, argument_lists) -> None:
    native = codegen.compile_native(func)
    ulps = [codegen.ULPS[p] for p in prims_of(func)]
    failures = []
    for args in argument_lists:
        got, want = native(*args), interpret(func, args)
        for k, (g, w, u) in enumerate(zip(got, want, ulps)):
            if P.mismatch(g, w, u):
                failures.append(f"{labels(func)[k]}{tuple(args)}: native {g!r}, numpy {w!r}")
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} in all)"


def test_every_primitive_has_a_lowering_and_an_accuracy():
    assert missing_lowerings() == []
    scalar = {p for p, r in RULES.items() if not r.structural}
    assert scalar <= set(codegen.ULPS) and scalar <= set(LOWERING)


def test_f64_unary(rng):
    check_all(P.f64_unary_all(), [(x,) for x in SPECIAL_F64 + random_f64(rng, 300)])


def test_f64_binary(rng):
    pairs = list(itertools.product(SPECIAL_F64, repeat=2))
    xs, ys = random_f64(rng, 150), random_f64(rng, 150)
    check_all(P.f64_binary_all(), pairs + list(zip(xs, ys)) + list(zip(xs, SPECIAL_F64 * 20)))


def test_i64(rng):
    pairs = list(itertools.product(SPECIAL_I64, repeat=2))
    check_all(P.i64_all(), pairs + list(zip(random_i64(rng, 200), random_i64(rng, 200))))


def test_bool_select_and_casts():
    grid = itertools.product([False, True], [False, True], [-1.5, 0.0, np.nan], [-3, 0, 9])
    check_all(P.bool_all(), list(grid))


def test_domain_edges_match_numpy():
    unary = codegen.compile_native(P.f64_unary_all())
    names = [str(p) for p in P.UNARY_F64]
    assert np.isnan(unary(-1.0)[names.index("log")])
    assert unary(0.0)[names.index("log")] == -np.inf
    assert np.isnan(unary(2.0)[names.index("asin")])
    binary = codegen.compile_native(P.f64_binary_all())
    div, floordiv, mod = (binary(1.0, 0.0)[P.BINARY_F64.index(p)]
                          for p in (Prim.DIV, Prim.FLOORDIV, Prim.MOD))
    assert div == np.inf and floordiv == np.inf and np.isnan(mod)
    ints = codegen.compile_native(P.i64_all())
    at = {p: i for i, p in enumerate(P.UNARY_I64 + P.BINARY_I64)}
    assert ints(1, 0)[at[Prim.FLOORDIV]] == 0 and ints(1, 0)[at[Prim.MOD]] == 0
    assert ints(P.INT64_MIN, -1)[at[Prim.FLOORDIV]] == P.INT64_MIN
    assert ints(P.INT64_MIN, -1)[at[Prim.MOD]] == 0


def test_int_power():
    power = codegen.compile_native(P.int_power())
    func = P.int_power()
    for m, n in itertools.product([0, 1, -1, 2, -2, 3, 7, P.INT64_MIN, P.INT64_MAX],
                                  [0, 1, 2, 3, 40, 63, 64, 65, P.INT64_MAX]):
        assert power(m, n) == int(interpret(func, (m, n))[0]), (m, n)
    with pytest.raises(ValueError, match="negative integer powers"):
        interpret(func, (2, -1))
    with pytest.raises(ValueError, match="negative integer powers"):
        power(2, -1)
