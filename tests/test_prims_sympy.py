"""Every primitive's rules checked: the tangent and adjoint rules against ``sympy.diff`` of its
sympy form, and the rule table for completeness."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import sympy

from sxad.backends.interpreter import interpret
from sxad.ir import BOOL, F64, Func, Prim, Value, verify
from sxad.prims import ARRAY_RULES, RULES, Emitter, RuleError, result_types, rule_for
from tolerances import TOL

POINTS = 6

STRUCTURAL = {Prim.IF, Prim.FOR, Prim.WHILE, Prim.PUSH, Prim.POP}
LOGIC = {Prim.LT, Prim.LE, Prim.GT, Prim.GE, Prim.EQ, Prim.NE, Prim.AND, Prim.OR, Prim.NOT}
SPECIAL = {Prim.CONST, Prim.CAST}  # evaluated by ``evaluate`` itself, typed by their attrs
ZERO_DERIVATIVE = {Prim.FLOOR, Prim.CEIL, Prim.SIGN, Prim.FLOORDIV}
ARRAY_ONLY = set(ARRAY_RULES)  # no sympy form: checked on arrays in tests/arrays
MATH = [p for p in Prim if p not in STRUCTURAL | LOGIC | SPECIAL | ARRAY_ONLY]

Sampler = Callable[[np.random.Generator], list]


def uniform(*ranges: tuple[float, float]) -> Sampler:
    return lambda rng: [rng.uniform(lo, hi) for lo, hi in ranges]


# Points inside each primitive's domain, away from its kinks and poles.
DOMAIN: dict[Prim, Sampler] = {
    Prim.LOG: uniform((0.1, 3.0)),
    Prim.SQRT: uniform((0.1, 3.0)),
    Prim.LOG1P: uniform((-0.9, 3.0)),
    Prim.ASIN: uniform((-0.9, 0.9)),
    Prim.ACOS: uniform((-0.9, 0.9)),
    Prim.TAN: uniform((-1.2, 1.2)),
    Prim.POW: uniform((0.2, 3.0), (-2.0, 2.0)),
    Prim.DIV: uniform((-2.0, 2.0), (0.3, 2.0)),
    Prim.MOD: uniform((-5.0, 5.0), (0.5, 2.0)),
    Prim.SELECT: lambda rng: [bool(rng.integers(2)), *rng.uniform(-2.0, 2.0, 2)],
}


def sample(prim: Prim, rng: np.random.Generator) -> list:
    arity = RULES[prim].arity
    return DOMAIN.get(prim, uniform(*[(-2.0, 2.0)] * arity))(rng)


def differentiable() -> list[Prim]:
    return [p for p, r in RULES.items() if r.sym is not None and r.differentiable
            and not r.structural and p not in SPECIAL | LOGIC]


def derivative_program(prim: Prim) -> tuple[Func, list[int]]:
    """y = prim(x…) with its tangent (for tangents ẋ of the float arguments) and its adjoints
    (for ȳ): results (y, ẏ, x̄ for each float argument); also which arguments are float."""
    rule = RULES[prim]
    types = [BOOL, F64, F64] if prim is Prim.SELECT else [F64] * rule.arity
    xs = [Value(t, f"x{i}") for i, t in enumerate(types)]
    floats = [i for i, t in enumerate(types) if t is F64]
    dxs = {i: Value(F64, f"dx{i}") for i in floats}
    y_bar = Value(F64, "y_bar")
    b = Emitter(xs + list(dxs.values()) + [y_bar])
    y = b.emit(prim, *xs)
    dy = rule.jvp(b, xs, [dxs.get(i) for i in range(len(xs))], (y,))
    bars = rule.vjp(b, y_bar, xs, (y,))
    zero = b.const(0.0)
    results = [y, dy or zero] + [bars[i] or zero for i in floats]
    func = Func(f"d_{prim}", b.finish(results), tuple(v.hint for v in b.params), True)
    return verify(func, result_types), floats


def sympy_partials(prim: Prim, point: list, floats: list[int]) -> list[float]:
    symbols = [sympy.Symbol(f"x{i}", real=True) for i in range(len(point))]
    args = [sympy.true if x is True else sympy.false if x is False else s
            for s, x in zip(symbols, point)]
    expr = RULES[prim].sym(sympy, *args)
    at = {symbols[i]: sympy.Float(point[i], 30) for i in floats}
    out = []
    for i in floats:
        d = sympy.diff(expr, symbols[i])
        d = d.replace(lambda e: isinstance(e, (sympy.Derivative, sympy.Subs)), lambda e: 0)
        out.append(float(d.subs(at).evalf(30)))
    return out


@pytest.mark.parametrize("prim", differentiable(), ids=str)
def test_tangent_and_adjoint_rules_match_sympy_diff(prim: Prim) -> None:
    func, floats = derivative_program(prim)
    rng = np.random.default_rng(sorted(Prim, key=str).index(prim))
    for _ in range(POINTS):
        point = sample(prim, rng)
        expected = sympy_partials(prim, point, floats)
        for k, i in enumerate(floats):
            tangent = [1.0 if j == i else 0.0 for j in floats]
            y, dy, *_ = interpret(func, [*point, *tangent, 0.0])
            np.testing.assert_allclose(float(dy), expected[k], **TOL["sympy"],
                                       err_msg=f"jvp of {prim} by x{i} at {point}")
        _, _, *bars = interpret(func, [*point, *[0.0] * len(floats), 1.0])
        np.testing.assert_allclose(np.array(bars, dtype=float), expected, **TOL["sympy"],
                                   err_msg=f"vjp of {prim} at {point}")


def test_the_sympy_check_covers_every_smooth_primitive() -> None:
    assert set(differentiable()) == set(MATH) - ZERO_DERIVATIVE


@pytest.mark.parametrize("prim", sorted(ZERO_DERIVATIVE, key=str), ids=str)
def test_piecewise_constant_primitives_are_not_differentiable(prim: Prim) -> None:
    rule = RULES[prim]
    assert rule.differentiable is False
    func, floats = derivative_program(prim)
    _, dy, *bars = interpret(func, [1.7, 0.6][:rule.arity] + [1.0] * len(floats) + [1.0])
    assert dy == 0 and all(b == 0 for b in bars)


@pytest.mark.parametrize("prim", list(Prim), ids=str)
def test_every_primitive_has_the_rules_its_kind_needs(prim: Prim) -> None:
    rule = rule_for(prim)
    assert rule.prim is prim
    if prim in STRUCTURAL:
        assert rule.structural
        return
    assert not rule.structural
    if prim in SPECIAL:
        assert not rule.differentiable or (rule.jvp and rule.vjp and rule.python)
        return
    assert rule.type is not None and rule.eval is not None
    assert rule.jvp is not None and rule.vjp is not None
    names = [f"a{i}" for i in range(rule.arity)]
    assert rule.python is not None
    fields = rule.fields(dict(rule.attrs)) if rule.fields else {}
    printed = rule.python.format(*names, **fields)
    assert all(name in printed for name in names), printed
    if prim in ARRAY_ONLY:
        assert rule.sym is None and not rule.structural
    elif prim in LOGIC:
        assert not rule.differentiable
    else:
        assert rule.sym is not None, f"{prim} has no sympy form"


def test_a_missing_rule_names_the_primitive_and_the_transform(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(RULES, Prim.TANH)
    with pytest.raises(RuleError, match=r"'tanh'.*reverse mode"):
        rule_for(Prim.TANH, "reverse mode")


@pytest.mark.parametrize("prim", [p for p, r in {**RULES, **ARRAY_RULES}.items()
                                  if r.jvp or r.vjp], ids=str)
def test_each_derivative_rule_states_its_math(prim: Prim) -> None:
    rule = rule_for(prim)
    jvp_doc, vjp_doc = (rule.jvp.__doc__ or "").strip(), (rule.vjp.__doc__ or "").strip()
    assert "ẏ" in jvp_doc and "=" in jvp_doc, f"{prim}.jvp: {jvp_doc!r}"
    assert "+=" in vjp_doc, f"{prim}.vjp: {vjp_doc!r}"
