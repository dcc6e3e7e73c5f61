"""Every corpus function differentiated and checked against independent oracles:
central differences of the plain Python function, forward against reverse mode (the dot-product
test for several outputs), ``sympy.diff`` of the primal where it is straight-line, the
interpreter against the compiled kernel, and the generated Python against the interpreter."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import sxad
from corpus import CORPUS
from oracles import assert_close, finite_difference
from sxad import api
from sxad.backends.interpreter import interpret
from sxad.backends.python_source import compile_python
from sxad.ir import F64, Func, Prim
from sxad.prims import RULES

CASES = [pytest.param(case, id=case.ids) for case in CORPUS]


def program(case, kind: str) -> Func:
    return api._program(api._Key(case.fn, case.types, kind, () if kind == "primal" else case.wrt))


def scalar_output(case) -> bool:
    return program(case, "primal").results[0].type is F64 and case.n_outputs == 1 \
        and not program(case, "primal").tuple_result


@pytest.mark.parametrize("case", CASES)
def test_modes_agree_with_finite_differences(case):
    if not scalar_output(case):
        pytest.skip("several outputs: see the dot-product test")
    rev = sxad.grad(case.fn, wrt=case.wrt)(*case.args)
    fwd = sxad.grad(case.fn, wrt=case.wrt, mode="forward")(*case.args)
    assert_close(fwd, rev, "modes", "forward vs reverse")
    fd = finite_difference(case.fn, case.args, case.wrt)
    assert_close(rev, fd[0] if len(case.wrt) == 1 else fd, "finite-difference", "vs differences")


@pytest.mark.parametrize("case", CASES)
def test_dot_product_test(case):
    """⟨J·t, c⟩ = ⟨t, Jᵀ·c⟩ through sxad.jvp and sxad.vjp, for random t and c."""
    rng = np.random.default_rng(1)
    floats = [i for i, a in enumerate(case.args) if isinstance(a, float)]
    t = [float(rng.normal()) if i in floats else 0 for i in range(len(case.args))]
    value, jt = sxad.jvp(case.fn, case.args, t)
    values = value if isinstance(value, tuple) else (value,)
    jts = jt if isinstance(jt, tuple) else (jt,)
    c = [float(rng.normal()) if isinstance(v, float) else 0.0 for v in values]
    _, pullback = sxad.vjp(case.fn, *case.args)
    jtc = pullback(tuple(c) if isinstance(value, tuple) else c[0])
    lhs = sum(a * b for a, b in zip(jts, c) if a is not None)
    rhs = sum(t[i] * jtc[i] for i in floats)
    assert_close(lhs, rhs, "modes")


@pytest.mark.parametrize("case", CASES)
def test_backends_agree(case):
    """The interpreter (reference), the generated Python and the native kernel."""
    adjoint = program(case, "vjp")
    n_out = len(program(case, "primal").results)
    args = (*case.args, *([1.0] * sum(r.type is F64 for r in program(case, "primal").results)))
    reference = interpret(adjoint, args)
    with np.errstate(all="ignore"):
        python = compile_python(adjoint)(*(np.float64(a) if isinstance(a, float) else a
                                           for a in args))
    python = python if isinstance(python, tuple) else (python,)
    assert_close(np.array(python, dtype=float), np.array(reference, dtype=float), "backends")
    import codegen
    native = codegen.compile_native(adjoint)(*args)
    native = native if isinstance(native, tuple) else (native,)
    assert_close(np.array(native, dtype=float), np.array(reference, dtype=float), "native")
    assert len(reference) == n_out + len(case.wrt)


def piecewise_zero(expr):
    """floor, ceil and sign have derivative 0 where it exists; sympy leaves it unevaluated."""
    return expr.replace(lambda e: isinstance(e, (sympy.Derivative, sympy.Subs)),
                        lambda e: sympy.S.Zero)


def straight_line(func: Func) -> bool:
    return not any(op.regions or op.prim in (Prim.SELECT,) for op in func.body.ops)


@pytest.mark.parametrize("case", CASES)
def test_sympy_diff_of_straight_line_primal(case):
    primal = program(case, "primal")
    if not (straight_line(primal) and scalar_output(case)):
        pytest.skip("not straight-line")
    symbols = [sympy.Symbol(f"a{i}", real=True) for i in range(len(primal.params))]
    env = dict(zip(primal.params, symbols))
    for op in primal.body.ops:
        if op.prim is Prim.CONST:
            env[op.result] = sympy.sympify(op.attr("value"))
        elif op.prim is Prim.CAST:
            x = env[op.args[0]]
            truncated = op.args[0].type is F64 and op.result.type is not F64
            env[op.result] = sympy.sign(x) * sympy.floor(sympy.Abs(x)) if truncated else x
        else:
            rule = RULES[op.prim]
            if rule.sym is None:
                pytest.skip(f"{op.prim} has no sympy form")
            env[op.result] = rule.sym(sympy, *(env[a] for a in op.args))
    expr = env[primal.results[0]]
    point = dict(zip(symbols, case.args))
    expected = [float(piecewise_zero(sympy.diff(expr, symbols[i])).subs(point).evalf())
                for i in case.wrt]
    grads = sxad.grad(case.fn, wrt=case.wrt)(*case.args)
    assert_close(grads if len(case.wrt) > 1 else [grads], expected, "sympy")
