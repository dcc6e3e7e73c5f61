"""Randomly generated array programs (elementwise math with broadcasting, reductions, matrix
products, ``if`` on a reduction, ``for`` and ``while`` loops carrying arrays), differentiated in
both modes through the public API and checked against central differences along a random
direction and against each other; the native result against the interpreter's."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sxad
from oracles import assert_close, load_source as load

# x: (3, 4), v: (4,), s: a float. Every expression below has shape (3, 4) or broadcasts to it.
UNARY = ["np.sin({})", "np.tanh({})", "np.exp(np.sin({}))", "np.sqrt(1.0 + {0} * {0})",
         "np.log(1.0 + {0} * {0})", "({}) ** 2", "np.cos({})"]
BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / (1.5 + np.cos({})))",
          "np.maximum({}, {})", "np.where({0} > {1}, {0}, 0.5 * {1})"]
LEAVES = ["x", "v", "s", "0.5", "1.5", "np.sum(x, axis=0)", "np.mean(x, axis=1, keepdims=True)",
          "(x @ v)[:, None]", "np.max(x, axis=1, keepdims=True)", "x.T[:, 0]"]


@st.composite
def expressions(draw, names, depth=3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(names + LEAVES))
    if draw(st.booleans()):
        return draw(st.sampled_from(UNARY)).format(draw(expressions(names, depth - 1)))
    a, b = draw(expressions(names, depth - 1)), draw(expressions(names, depth - 1))
    return draw(st.sampled_from(BINARY)).format(a, b)


@st.composite
def programs(draw):
    names: list[str] = []
    lines = ["def generated(x, v, s, n):"]
    for k in range(draw(st.integers(1, 3))):
        target = f"a{k}"
        kind = draw(st.sampled_from(["assign", "if", "for", "while"]))
        expr = f"x * 0.0 + {draw(expressions(names))}"   # every a_k has the shape of x
        if kind == "assign":
            lines.append(f"    {target} = {expr}")
        elif kind == "if":
            cond = draw(expressions(names, 1))
            lines += [f"    if np.sum({cond}) > 0.3:", f"        {target} = {expr}", "    else:",
                      f"        {target} = x * 0.0 + {draw(expressions(names))}"]
        elif kind == "for":
            step = draw(expressions(names + [target], 2))
            lines += [f"    {target} = {expr}", "    for i in range(n):",
                      f"        {target} = np.tanh({step}) + 0.5 * {target} * float(i)"]
        else:
            lines += [f"    {target} = np.tanh({expr})", "    count = 0",
                      f"    while count < n and np.sum({target}) < 5.0:",
                      f"        {target} = {target} + 0.5 * np.cos({target} * s)",
                      "        count += 1"]
        names.append(target)
    lines.append(f"    return np.sum({draw(expressions(names))} * x) + np.sum({names[-1]})")
    return "\n".join(lines) + "\n"


def directional(fn, args, direction, h=1e-5):
    """d/dt fn(args + t·direction) at 0 by the 4-point central stencil, None where not smooth."""
    def at(t):
        moved = [a + t * d for a, d in zip(args[:3], direction)] + [args[3]]
        with np.errstate(all="ignore"):
            return float(fn(*moved))
    values = [at(t) for t in (-2 * h, -h, 0.0, h, 2 * h)]
    if not all(map(math.isfinite, values)):
        return None
    left, right = (values[2] - values[1]) / h, (values[3] - values[2]) / h
    central = (8 * (values[3] - values[1]) - (values[4] - values[0])) / (12 * h)
    if not np.isclose(left, right, rtol=1e-3, atol=1e-5):
        return None   # a kink of maximum/where or a branch switch sits here
    return central


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=programs(), seed=st.integers(0, 2 ** 16), n=st.integers(0, 3))
@example(
    source='def generated(x, v, s, n):\n    a0 = x * 0.0 + x\n    a1 = x * 0.0 + a0\n    if np.sum(a0) > 0.3:\n        a2 = x * 0.0 + a0\n    else:\n        a2 = x * 0.0 + (a0 * (x @ v)[:, None])\n    return np.sum(a0 * x) + np.sum(a2)\n',
    seed=0,
    n=0,
)   # the shapes pass took a popped (3, 1) array for (1, 1)
@example(
    source='def generated(x, v, s, n):\n    a0 = x * 0.0 + x\n    a1 = x * 0.0 + a0\n    if np.sum(a0) > 0.3:\n        a2 = x * 0.0 + a0\n    else:\n        a2 = x * 0.0 + (a0 * np.mean(x, axis=1, keepdims=True))\n    return np.sum(a0 * x) + np.sum(a2)\n',
    seed=0,
    n=0,
)   # the shapes pass took a popped (3, 1) array for (1, 1)
@example(
    source='def generated(x, v, s, n):\n    a0 = x * 0.0 + (np.maximum(s, 0.5) * x.T[:, 0])\n    a1 = x * 0.0 + np.sin(np.maximum(np.maximum((x @ v)[:, None], s), a0))\n    for i in range(n):\n        a1 = np.tanh(np.where(np.sin(v) > np.cos(a1), np.sin(v), 0.5 * np.cos(a1))) + 0.5 * a1 * float(i)\n    a2 = x * 0.0 + np.where(1.5 > (np.log(1.0 + s * s) + np.maximum(a1, a0)), 1.5, 0.5 * (np.log(1.0 + s * s) + np.maximum(a1, a0)))\n    return np.sum(np.cos(np.exp(np.sin((np.max(x, axis=1, keepdims=True) - np.max(x, axis=1, keepdims=True))))) * x) + np.sum(a2)\n',
    seed=7,
    n=2,
)   # a tangent wholly cut by the max shift (m - m) reached a unary rule as None
@example(
    source='def generated(x, v, s, n):\n    a0 = np.tanh(x * 0.0 + (s + s))\n    count = 0\n    while count < n and np.sum(a0) < 5.0:\n        a0 = a0 + 0.5 * np.cos(a0 * s)\n        count += 1\n    a1 = x * 0.0 + np.tanh(np.tanh(np.log(1.0 + v * v)))\n    a2 = x * 0.0 + a1\n    for i in range(n):\n        a2 = np.tanh(np.log(1.0 + (a0 + x) * (a0 + x))) + 0.5 * a2 * float(i)\n    return np.sum(x.T[:, 0] * x) + np.sum(a2)\n',
    seed=33934,
    n=1,
)   # an unbroadcast's `like` was fused into the loop of the sum it shapes
def test_random_array_programs_differentiate_correctly(source, seed, n):
    fn = load(source)
    rng = np.random.default_rng(seed)
    args = (rng.normal(size=(3, 4)), rng.normal(size=4), float(rng.normal()), n)
    with np.errstate(all="ignore"):
        expected = fn(*args)
    if not math.isfinite(expected):
        return
    value, rev = sxad.value_and_grad(fn, wrt=(0, 1, 2))(*args)
    fwd = sxad.grad(fn, wrt=(0, 1, 2), mode="forward")(*args)
    assert_close(value, expected, "native", source)
    for r, f, a in zip(rev, fwd, args):
        assert np.shape(r) == np.shape(a) and np.shape(f) == np.shape(a), source
    direction = (rng.normal(size=(3, 4)), rng.normal(size=4), float(rng.normal()))
    along = sum(float(np.sum(g * d)) for g, d in zip(rev, direction))
    fd = directional(fn, args, direction)
    if fd is None:
        return
    assert_close([np.sum(g * d) for g, d in zip(fwd, direction)],
                 [np.sum(g * d) for g, d in zip(rev, direction)], "modes", source)
    assert_close(along, fd, "finite-difference", source)
