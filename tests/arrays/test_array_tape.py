"""What the reverse sweep stores for array loops (sxad/ad/reverse.py, docs/ARRAYS.md §3): an
operand read only for its shape (``Rule.shape_only``) costs no array on the tape; the adjoint
of ``x[i]`` adds into x̄ in place (``set_index(x̄, x̄[i] + ct, i)``) instead of a dense
``index_add`` plus an add. Tape bytes are counted by running the adjoint program's forward
sweep in the interpreter with a counting tape."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest

from arrays.harness import array, check_backends, check_derivatives, float_params
from arrays.test_array_ad import args_for
from ir_builders import loop
from sxad.ad.common import shape_sources
from sxad.ad.reverse import vjp_program
from sxad.backends import interpreter
from sxad.ir import F64, I64, Func, Prim, Value, format_func, is_array
from sxad.passes import DERIVATIVE_PIPELINE, optimize
from sxad.prims import Emitter


# --------------------------------------------------------------------------- counting

def tape_bytes(adjoint: Func, args: Sequence[Any]) -> tuple[int, int]:
    """(bytes, entries) the forward sweep of ``adjoint`` pushes for ``args``."""
    return interpreter.tape_usage(adjoint, args)


def pushed_types(func: Func) -> list:
    return [op.args[0].type for op in func.body.walk() if op.prim is Prim.PUSH]


def adjoint_of(func: Func, optimized: bool) -> Func:
    adjoint = vjp_program(func, float_params(func))
    return optimize(adjoint, DERIVATIVE_PIPELINE) if optimized else adjoint


# --------------------------------------------------------------------------- programs

def recurrence(dt=F64):
    """for i in range(1, n): y[i] = tanh(y[i-1])·x[i] + sin(x[i]); return sum(y²)."""
    y0, x, n = array(dt, 1, "y"), array(dt, 1, "x"), Value(I64, "n")
    b = Emitter([y0, x, n])

    def body(e: Emitter, i, y):
        prev = e.index(y, e.sub(i, e.const(1)), spec=("i",), hint="prev")
        xi = e.index(x, i, spec=("i",), hint="xi")
        v = e.add(e.mul(e.tanh(prev), xi), e.sin(xi))
        return [e.set_index(y, v, i, spec=("i",), hint="y")]
    (y,) = loop(b, b.const(1), n, b.const(1), [y0], body)
    return Func("recurrence", b.finish([b.reduce_sum(b.mul(y, y))]), ("y", "x", "n"))


def recurrence_args(m: int, n: int) -> list:
    rng = np.random.default_rng(5)
    return [rng.normal(size=m), rng.normal(size=m), np.int64(n)]


def prefix_sums(dt=F64):
    """acc += c·sum(x[0:i+1])² in a loop: the slice's shape is known only inside the loop, and
    ``reduce_sum``'s adjoint reads it for its shape alone (its dims go on the tape)."""
    x, c, n = array(dt, 1, "x"), Value(dt, "c"), Value(I64, "n")
    b = Emitter([x, c, n])

    def body(e: Emitter, i, acc):
        head = e.index(x, e.const(0), e.add(i, e.const(1)), spec=("s110",), hint="head")
        total = e.reduce_sum(head)
        return [e.add(acc, e.mul(c, e.mul(total, total)))]
    (acc,) = loop(b, b.const(0), n, b.const(1), [b.const(0.0, dt)], body)
    return Func("prefix_sums", b.finish([acc]), ("x", "c", "n"))


def shrinking(dt=F64):
    """x ← sin(x)[1:]·w[i] n times: the carried array changes shape, so its shape is not
    the initial value's (the induction fails) and the reverse sweep must not assume it."""
    x, w, n = array(dt, 1, "x"), array(dt, 1, "w"), Value(I64, "n")
    b = Emitter([x, w, n])

    def body(e: Emitter, i, xs):
        tail = e.index(e.sin(xs), e.const(1), spec=("s100",), hint="tail")
        return [e.mul(tail, e.index(w, i, spec=("i",)))]
    (s,) = loop(b, b.const(0), n, b.const(1), [x], body)
    return Func("shrinking", b.finish([b.reduce_sum(b.mul(s, s))]), ("x", "w", "n"))


# --------------------------------------------------------------------------- the tape

@pytest.mark.parametrize("optimized", [False, True], ids=["raw", "optimized"])
def test_recurrence_tapes_scalars_only(optimized: bool) -> None:
    """y[i] = f(y[i-1], x[i]) over m floats, n times: only scalars are pushed."""
    adjoint = adjoint_of(recurrence(), optimized)
    types = pushed_types(adjoint)
    assert types, format_func(adjoint)
    assert all(not is_array(t) for t in types), (types, format_func(adjoint))


def test_recurrence_tape_is_o_n_not_o_nm() -> None:
    """The bytes pushed grow with n and do not depend on m."""
    adjoint = adjoint_of(recurrence(), True)
    sizes = {}
    for m, n in ((10, 10), (1000, 10), (1000, 20)):
        args = recurrence_args(m, n)
        sizes[m, n] = tape_bytes(adjoint, [*args, np.float64(1.0)])
    per_step = sizes[10, 10][0] // 9
    assert 0 < per_step <= 4 * 8, sizes
    assert sizes[10, 10] == sizes[1000, 10], sizes
    assert sizes[1000, 20][0] == per_step * 19, sizes


def test_recurrence_gradient() -> None:
    func = recurrence()
    args = recurrence_args(7, 7)
    check_derivatives(func, args)
    check_backends(func, args)


def test_index_adjoint_adds_in_place_in_loops() -> None:
    """In the reverse loop, x[i]'s adjoint is x̄[i] += ct: no dense index_add, no zeros_like."""
    adjoint = adjoint_of(recurrence(), True)
    loops = [op for op in adjoint.body.ops if op.prim is Prim.FOR and op.attr("reverse")]
    assert len(loops) == 1
    prims = {op.prim for op in loops[0].regions[0].walk()}
    assert Prim.INDEX_ADD not in prims and Prim.ZEROS_LIKE not in prims, format_func(adjoint)
    assert Prim.SET_INDEX in prims


def test_shape_only_value_without_outer_shape_tapes_its_dims() -> None:
    """A slice made in the loop is needed only for its shape: its dim (an i64) is pushed and
    ``full(0, dim)`` stands for it in the reverse loop."""
    func = prefix_sums()
    adjoint = adjoint_of(func, True)
    types = pushed_types(adjoint)
    assert I64 in types and all(not is_array(t) for t in types), format_func(adjoint)
    assert any(op.prim is Prim.FULL for op in adjoint.body.walk())
    args = args_for(func, [(6,), (), 5])
    check_derivatives(func, args)
    check_backends(func, args)
    bytes_small, _ = tape_bytes(adjoint, [*args, np.float64(1.0)])
    big = [np.random.default_rng(1).normal(size=600), args[1], args[2]]
    assert tape_bytes(adjoint, [*big, np.float64(1.0)])[0] == bytes_small


def test_shape_changing_loop_is_not_assumed_shape_preserving() -> None:
    func = shrinking()
    param = func.body.ops[-3].regions[0].params[1]
    sources = shape_sources(func)
    assert param not in sources and func.body.ops[-3].results[0] not in sources
    check_derivatives(func, args_for(func, [(6,), (4,), 3]))
    check_backends(func, args_for(func, [(6,), (4,), 3]))


def test_shape_sources_follow_set_index_chains_through_loops() -> None:
    func = recurrence()
    (for_op,) = [op for op in func.body.ops if op.prim is Prim.FOR]
    sources = shape_sources(func)
    y0 = func.params[0]
    carried = for_op.regions[0].params[1]
    assert sources[carried] is y0 and sources[for_op.results[0]] is y0
    assert sources[for_op.regions[0].yields[0]] is carried
