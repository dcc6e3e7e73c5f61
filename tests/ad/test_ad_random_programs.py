"""Randomly generated Python programs (expressions, ``if``, ``for``, ``while``), differentiated in
both modes, checked against finite differences of the plain function and against each other,
and run through the interpreter and the generated Python alike."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sxad
from oracles import assert_close, finite_difference, load_source as load
from tolerances import FD_STEP
from sxad import api
from sxad.backends.interpreter import interpret
from sxad.ir import F64, I64

UNARY = ["np.sin({})", "np.cos({})", "np.tanh({})", "np.exp(np.sin({}))", "np.sqrt(1.0 + {0} * {0})",
         "np.log(1.0 + {0} * {0})", "np.arctan({})", "({}) ** 2"]
BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / (1.5 + np.cos({})))", "max({}, {})",
          "np.hypot({}, {})"]


@st.composite
def expressions(draw, names, depth=3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return draw(st.sampled_from(names))
        return repr(draw(st.sampled_from([0.5, 1.5, 2.0, -0.75, 3.0])))
    if draw(st.booleans()):
        return draw(st.sampled_from(UNARY)).format(draw(expressions(names, depth - 1)))
    a, b = draw(expressions(names, depth - 1)), draw(expressions(names, depth - 1))
    return draw(st.sampled_from(BINARY)).format(a, b)


@st.composite
def programs(draw):
    names = ["x", "y"]
    lines = ["def generated(x, y, n):"]
    for k in range(draw(st.integers(1, 4))):
        target = f"v{k}"
        kind = draw(st.sampled_from(["assign", "if", "for", "while"]))
        expr = draw(expressions(names))
        if kind == "assign":
            lines.append(f"    {target} = {expr}")
        elif kind == "if":
            cond = draw(expressions(names, 1))
            other = draw(expressions(names))
            lines += [f"    if {cond} > 0.3:", f"        {target} = {expr}", "    else:",
                      f"        {target} = {other}"]
        elif kind == "for":
            step = draw(expressions(names + ["acc", "float(i)"], 2))
            lines += [f"    {target} = {expr}", "    for i in range(n):",
                      f"        acc = {target}",
                      f"        {target} = np.tanh({step}) + 0.5 * acc"]
        else:
            lines += [f"    {target} = np.tanh({expr})", "    count = 0",
                      f"    while count < n and {target} < 5.0:",
                      f"        {target} = {target} + 0.5 * np.cos({target} * x)",
                      "        count += 1"]
        names = names + [target]
    lines.append(f"    return {draw(expressions(names))} + {names[-1]}")
    return "\n".join(lines) + "\n"


def smooth_difference(fn, args, wrt):
    """Central differences where ``fn`` is smooth, else None: the one-sided slopes on either
    side must agree (a kink of ``max``/``abs``/``hypot`` or a branch switch is not smooth)."""
    central = finite_difference(fn, args, wrt)
    h = 1e-6
    for i, slope in zip(wrt, central):
        def at(d):
            moved = list(args)
            moved[i] += d
            return float(fn(*moved))
        left, mid, right = at(-h), at(0.0), at(h)
        one_sided = ((mid - left) / h, (right - mid) / h)
        if not all(map(math.isfinite, (slope, *one_sided))):
            return None
        if not np.allclose(one_sided, slope, rtol=1e-3, atol=1e-5):
            return None
    return central


# Away from 0, where hypot(x, x) has no derivative even inside a smooth composite.
COORD = st.floats(-1.5, 1.5).filter(lambda v: abs(v) > 1e-3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=programs(), x=COORD, y=COORD, n=st.integers(0, 4))
def test_random_programs_differentiate_correctly(source, x, y, n):
    fn = load(source)
    args = (x, y, n)
    with np.errstate(all="ignore"):
        expected_value = fn(*args)
    if not math.isfinite(expected_value):
        return
    value, rev = sxad.value_and_grad(fn, wrt=(0, 1))(*args)
    fwd = sxad.grad(fn, wrt=(0, 1), mode="forward")(*args)
    assert_close(value, expected_value, "native", source)
    fd = smooth_difference(fn, args, (0, 1))
    if fd is None:  # not differentiable here: the modes may differ only by NaN (0·∞ terms)
        both = np.isfinite(fwd) & np.isfinite(rev)
        assert_close(np.array(fwd)[both], np.array(rev)[both], "modes", source)
        return
    assert_close(fwd, rev, "modes", source)
    assert_close(rev, fd, "finite-difference", source)
    program = api._program(api._Key(fn, (F64, F64, I64), "vjp", (0, 1)))
    interpreted = interpret(program, (x, y, n, 1.0))
    assert_close(interpreted[1:], rev, "native", source)
