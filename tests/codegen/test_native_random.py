"""Random straight-line programs over every exactly-lowered primitive and all three types:
the native kernel must agree with the interpreter bit for bit (or raise the same error)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import codegen
from sxad.backends.interpreter import interpret
from sxad.ir import BOOL, F64, I64, Func, Prim, Type, Value, verify
from sxad.prims import RULES, Emitter, result_types

import native_programs as P

EXACT = [p for p, u in codegen.ULPS.items() if u == 0 and p not in (Prim.CONST, Prim.CAST)]
F64_VALUES = [0.0, -0.0, 1.0, -1.5, 2.0, 0.5, 3.75, -7.0, 1e300, -1e-310, np.inf, -np.inf, np.nan,
              9.3e18, -9.3e18, 1e19]
I64_VALUES = [0, 1, -1, 2, -3, 5, 64, -64, 1000003, P.INT64_MIN, P.INT64_MAX, 2 ** 40 + 7]
VALUES = {F64: F64_VALUES, I64: I64_VALUES, BOOL: [False, True]}


def signature(prim: Prim) -> list[tuple[Type, ...]]:
    """The argument types ``prim`` accepts, by trying its type rule."""
    rule, found = RULES[prim], []
    for t in (F64, I64, BOOL):
        args = (BOOL, t, t) if prim is Prim.SELECT else (t,) * rule.arity
        try:
            rule.type(args)
        except TypeError:
            continue
        found.append(args)
    return found


CHOICES = [(p, args) for p in EXACT for args in signature(p)]


@st.composite
def programs(draw) -> tuple[Func, list]:
    types = draw(st.lists(st.sampled_from([F64, I64, BOOL]), min_size=1, max_size=3))
    params = [Value(t, f"a{i}") for i, t in enumerate(types)]
    b = Emitter(params)
    pool: dict[Type, list[Value]] = {F64: [], I64: [], BOOL: []}
    for p in params:
        pool[p.type].append(p)
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["op", "op", "op", "cast", "const"]))
        if kind == "const":
            t = draw(st.sampled_from([F64, I64, BOOL]))
            pool[t].append(b.const(draw(st.sampled_from(VALUES[t])), t))
            continue
        if kind == "cast":
            source = draw(st.sampled_from([t for t in pool if pool[t]]))
            target = draw(st.sampled_from([F64, I64, BOOL]))
            value = b.cast(draw(st.sampled_from(pool[source])), target)
            pool[target].append(value)
            continue
        usable = [(p, a) for p, a in CHOICES if all(pool[t] for t in a)]
        if not usable:
            continue
        prim, arg_types = draw(st.sampled_from(usable))
        value = b.emit(prim, *[draw(st.sampled_from(pool[t])) for t in arg_types])
        pool[value.type].append(value)
    everything = [v for vs in pool.values() for v in vs]
    results = draw(st.lists(st.sampled_from(everything), min_size=1, max_size=3))
    func = verify(Func("random", b.finish(results), tuple(p.hint for p in params)), result_types)
    inputs = [[draw(st.sampled_from(VALUES[t])) for t in types] for _ in range(4)]
    return func, inputs


def outcome(run):
    try:
        return run()
    except ValueError as err:   # int ** negative int, in both
        return type(err)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(programs())
def test_random_program_matches_interpreter(case):
    func, inputs = case
    native = codegen.compile_native(func)
    for args in inputs:
        got = outcome(lambda: native(*args))
        want = outcome(lambda: interpret(func, args))
        if isinstance(want, type):
            assert got is want, args
            continue
        got = got if isinstance(got, tuple) else (got,)
        assert not any(P.mismatch(g, w, 0) for g, w in zip(got, want)), (args, got, want)
