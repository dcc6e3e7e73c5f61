"""Random straight-line numpy programs over f64, f32, i64 and bool arrays and Python scalars:
the lowered program, interpreted, gives what numpy gives — the same values, shapes and dtypes
(numpy 2's promotion: Python scalars are weak, ``i64`` with ``f32`` is ``f64``), including
item updates and in-place arithmetic on copies and on the arguments themselves, a branch, a
loop updating rows, and integer-array indexing."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracles import load_source as load
from sxad.backends.interpreter import interpret
from sxad.frontend import lower
from sxad.ir import BOOL, F32, F64, I64, ArrayType

# Arguments: shapes (3, 4) and (4,) broadcast together; numpy scalars (strongly typed in numpy 2)
# come from numpy functions of the Python scalars s and k.
ARGS = {"a": ("f64", (3, 4)), "b": ("f32", (3, 4)), "c": ("i64", (4,)), "d": ("f32", (4,)),
        "m": ("bool", (3, 4))}
SCALARS = {"s": F64, "k": I64}
TYPES = {"f64": F64, "f32": F32, "i64": I64, "bool": BOOL}
NUMERIC = ["a", "b", "c", "d", "s", "k", "0.5", "2", "3.0"]
UNARY = ["np.tanh({})", "np.sin({})", "np.exp(-np.abs({}))", "np.sqrt(np.abs({}) + 1)",
         "-({})", "np.abs({})", "np.maximum({}, 0)", "({}) ** 2", "np.clip({}, -1, 1)",
         "(({}) + a).astype(np.float32)", "np.log1p(np.abs({}))"]
BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / (2.5 + np.cos({})))",
          "np.maximum({}, {})", "np.where({0} > {1}, {0}, {1})", "np.minimum({}, {})",
          "({} * (m | ({} > 0.5)))"]
SHAPING = ["np.sum({}, axis=0)", "np.mean({}, axis=-1, keepdims=True)",
           "np.max({}, axis=0, keepdims=True)", "({})[1]", "({})[::-1]", "({}).T.T",
           "np.sum({}, axis=0, keepdims=True)"]


@st.composite
def expression(draw, depth: int = 3) -> str:
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(NUMERIC))
    kind = draw(st.sampled_from(["unary", "binary", "binary", "shaping"]))
    if kind == "unary":
        return draw(st.sampled_from(UNARY)).format(draw(expression(depth - 1)))
    if kind == "binary":
        left, right = draw(expression(depth - 1)), draw(expression(depth - 1))
        return draw(st.sampled_from(BINARY)).format(left, right)
    inner = draw(expression(depth - 1))
    if inner in SCALARS or inner[0].isdigit():
        inner = f"({inner} + a)"   # shaping needs an array of rank 2
    return draw(st.sampled_from(SHAPING)).format(f"({inner} + b)")


@st.composite
def program(draw) -> str:
    lines = ["def generated(a, b, c, d, m, s, k):", "    a2 = a.copy()", "    b2 = b.copy()"]
    temps = []
    for j in range(draw(st.integers(1, 3))):
        lines.append(f"    t{j} = {draw(expression())}")
        temps.append(f"t{j}")
    row = draw(st.sampled_from(["d", "c", "s", "k", "np.max(t0 + b, axis=0)"]))
    lines.append(f"    a2[1] = {row}")
    lines.append(f"    b2 += {draw(st.sampled_from(temps + ['s', 'k']))}")
    lines.append(f"    d *= {draw(st.sampled_from(['0.5', 's', 'k', 'd']))}")
    lines.append(f"    a2[:, 1:3] -= {draw(st.sampled_from(['1', 'a[:, :2]', 'c[1:3]']))}")
    lines.append(f"    if np.sum({draw(st.sampled_from(temps))}) > 0:")
    lines.append(f"        a2 = a2 * {draw(st.sampled_from(['2', 's', 'd', 'b']))}")
    lines.append("    for i in range(k):")
    lines.append(f"        b2[i % 3] += {draw(st.sampled_from(['d', 's', 'c', 'a[i % 3]']))}")
    lines.append("    g = a2[np.arange(3), c[:3] % 4] + b2[:, 0]")
    lines.append(f"    return {', '.join(temps)}, a2, b2, g")
    return "\n".join(lines) + "\n"


def arguments(seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for dtype, shape in ARGS.values():
        if dtype == "bool":
            out.append(rng.random(shape) > 0.5)
        elif dtype == "i64":
            out.append(rng.integers(-3, 4, size=shape))
        else:
            out.append(rng.normal(size=shape).astype(dtype.replace("f", "float")))
    return out + [float(rng.normal()), int(rng.integers(1, 4))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=program(), seed=st.integers(0, 10 ** 6))
def test_random_programs_match_numpy(source: str, seed: int) -> None:
    fn = load(source)
    types = [ArrayType(TYPES[d], len(shape)) for d, shape in ARGS.values()] + \
        list(SCALARS.values())
    func = lower(fn, types)
    args = arguments(seed)
    mine = [np.copy(x) if isinstance(x, np.ndarray) else x for x in args]
    with np.errstate(all="ignore"):
        expected = fn(*mine)
        got = interpret(func, args)
    expected = tuple(expected) + tuple(mine[k] for k in func.mutated)
    assert func.mutated == (3,), source   # `d *= ...` updates the argument d
    assert len(got) == len(expected), source
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert np.asarray(g).dtype == e.dtype, (source, np.asarray(g).dtype, e.dtype)
        assert np.shape(g) == e.shape, (source, np.shape(g), e.shape)
        tol = 2e-5 if e.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(np.asarray(g, dtype=float), e.astype(float), rtol=tol,
                                   atol=tol, err_msg=source)
