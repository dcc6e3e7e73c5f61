"""The array programs of step 1 (tests/arrays/test_array_ad.py), compiled to native code: the
programs in f64 and f32, and their tangent and adjoint programs, agree with the interpreter;
arguments may be views (strided, transposed, reversed) and are not copied."""
from __future__ import annotations

import numpy as np
import pytest

import codegen
from native_arrays import check_native
from arrays.harness import derivatives
from arrays.test_array_ad import CASES, branch_in_loop, loop_with_tape, matmuls, softmax
from sxad.ir import F32, F64

_kernels: dict = {}


def native(func):
    """One compilation per program per test session (the same Func object each time)."""
    key = func.name
    if key not in _kernels:
        _kernels[key] = (func, codegen.compile_native(func))
    return _kernels[key]


_programs: dict = {}


def program(case, dt):
    """The case's program and arguments, built once (so its kernel is compiled once)."""
    key = (case.__name__, dt)
    if key not in _programs:
        _programs[key] = case(dt)
    return _programs[key]


@pytest.mark.parametrize("dt", [F64, F32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_programs_agree_with_the_interpreter(case, dt) -> None:
    func, args = program(case, dt)
    check_native(func, args, codegen.compile_native(func))


DERIVED = [softmax, matmuls, loop_with_tape, branch_in_loop]


@pytest.mark.parametrize("case", DERIVED, ids=lambda c: c.__name__)
def test_tangent_and_adjoint_programs_agree(case) -> None:
    func, args = program(case, F64)
    _, _, t, c, (tangent, adjoint) = derivatives(func, args)
    check_native(tangent, [*args, *t])
    check_native(adjoint, [*args, *c])


def strided(a: np.ndarray, how: str) -> np.ndarray:
    """``a``'s values in a view of another layout: reversed, every other element of a larger
    array, or the transpose of a transposed copy (a vector: every other element)."""
    if how == "reversed":
        big = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
        return big[(slice(None, None, -1),) * a.ndim]
    if how == "every-other" or a.ndim < 2:
        big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
        big[(slice(None, None, 2),) * a.ndim] = a
        return big[(slice(None, None, 2),) * a.ndim]
    return np.ascontiguousarray(a.T).T


@pytest.mark.parametrize("how", ["reversed", "every-other", "transposed"])
@pytest.mark.parametrize("case", [c for c in CASES if c.__name__ in
                                  ("matrix_and_vector", "matmuls", "branch_in_loop",
                                   "softmax", "loop_with_tape")], ids=lambda c: c.__name__)
def test_views_are_read_in_place(case, how) -> None:
    func, args = program(case, F64)
    views = [strided(a, how) if isinstance(a, np.ndarray) else a for a in args]
    for v, a in zip(views, args):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(v, a)
    assert any(isinstance(v, np.ndarray) and not v.flags.c_contiguous for v in views)
    check_native(func, views, codegen.compile_native(func))


def test_control_flow_moves_and_copies_arrays():
    """The ownership cases: a while loop carrying arrays (its condition reduces one); an ``if``
    yielding a borrowed argument in one arm and a view in the other (both copied) or a fresh
    array (moved); a loop passing a carried array on unchanged (moved) or a view of it (copied);
    a view and an argument pushed on the tape (copied) and an owned array (moved)."""
    from ir_builders import branch, loop, while_loop
    from sxad.ir import I64, Func, Prim, Value
    from sxad.prims import Emitter
    from sxad.ir import ArrayType
    x, m, n = Value(ArrayType(F64, 1), "x"), Value(ArrayType(F64, 2), "m"), Value(I64, "n")
    b = Emitter([x, m, n])
    (w, k) = while_loop(b, [x, b.const(0)],
                        lambda e, s, c: e.lt(e.reduce_sum(e.mul(s, s)), e.const(100.0)),
                        lambda e, s, c: [e.add(e.mul(s, e.const(1.5)), e.const(0.1)),
                                         e.add(c, e.const(1))])
    (pick,) = branch(b, b.gt(k, b.const(2)), lambda e: [x],
                     lambda e: [e.reduce_sum(e.transpose(m), axes=(1,))], [x.type])
    (fresh,) = branch(b, b.gt(k, b.const(2)), lambda e: [e.exp(x)],
                      lambda e: [e.index(m, e.const(0), spec=("i",))], [x.type])

    def body(e, i, s, t):
        e.op(Prim.PUSH, [e.transpose(t)], [], attrs=[("slot", 0)])
        e.op(Prim.PUSH, [x], [], attrs=[("slot", 1)])
        u = e.add(t, e.cast(i, F64))
        e.op(Prim.PUSH, [u], [], attrs=[("slot", 2)])
        return [s, e.mul(u, e.const(0.5))]
    s, t = loop(b, b.const(0), n, b.const(1), [x, m], body)

    def back(e, i, acc):
        u = e.op(Prim.POP, [], [m.type], attrs=[("slot", 2)])[0]
        xx = e.op(Prim.POP, [], [x.type], attrs=[("slot", 1)])[0]
        tt = e.op(Prim.POP, [], [m.type], attrs=[("slot", 0)])[0]
        return [e.add(acc, e.add(e.reduce_sum(e.mul(u, tt)), e.reduce_sum(xx)))]
    (total,) = loop(b, b.const(0), n, b.const(1), [b.const(0.0)], back, reverse=True)
    func = Func("ownership", b.finish([w, k, pick, fresh, s, t, total]), ("x", "m", "n"), True)
    kernel = codegen.compile_native(func)
    rng = np.random.default_rng(11)
    for steps in (0, 1, 4):
        check_native(func, [rng.normal(size=3), rng.normal(size=(3, 3)), steps], kernel)


def test_unbroadcast_is_its_operand_when_nothing_was_broadcast():
    """``unbroadcast(ct, like)`` of arrays of one rank, shapes equal at run time (what no pass
    proves for a bias's layer, ``z = x @ W.T + b``): the result is ``ct`` itself, no copy
    (``arrays.is_maybe_view``); with a length-1 axis, a fresh sum. Either way it outlives
    ``ct``'s other uses, is returned (copied), pushed on the tape and popped, yielded from an
    ``if``, taken from a parameter or from a fresh array, and is freed once or not at all."""
    from ir_builders import branch, loop
    from sxad.ir import ArrayType, Func, I64, Prim, Value
    from sxad.prims import Emitter
    m2 = ArrayType(F64, 2)
    ct, like, n = Value(m2, "ct"), Value(m2, "like"), Value(I64, "n")
    b = Emitter([ct, like, n])
    of_param = b.unbroadcast(ct, like)                 # ct borrowed
    fresh = b.exp(ct)
    of_fresh = b.unbroadcast(fresh, like)              # ct owned, its last use here
    late = b.mul(of_fresh, b.const(2.0))

    def body(e, i, acc):
        u = e.unbroadcast(e.add(ct, e.cast(i, F64)), like)
        e.op(Prim.PUSH, [u], [], attrs=[("slot", 0)])
        return [e.add(acc, e.reduce_sum(u))]
    (total,) = loop(b, b.const(0), n, b.const(1), [b.const(0.0)], body)

    def back(e, i, acc):
        u = e.op(Prim.POP, [], [m2], attrs=[("slot", 0)])[0]
        return [e.add(acc, e.reduce_sum(e.mul(u, u)))]
    (popped,) = loop(b, b.const(0), n, b.const(1), [b.const(0.0)], back, reverse=True)
    (picked,) = branch(b, b.gt(n, b.const(1)), lambda e: [e.unbroadcast(e.neg(ct), like)],
                       lambda e: [like], [m2])
    func = Func("maybe_view", b.finish([of_param, late, total, popped, picked]),
                ("ct", "like", "n"), True)
    kernel = codegen.compile_native(func)
    rng = np.random.default_rng(12)
    cases = [(rng.normal(size=(5, 4)), rng.normal(size=(5, 4))),     # a view
             (rng.normal(size=(5, 4)), rng.normal(size=(1, 4))),     # summed over rows
             (rng.normal(size=(5, 4)), rng.normal(size=(5, 1)))]     # summed along rows
    for c, l in cases:
        for steps in (0, 1, 3):
            check_native(func, [c, l, steps], kernel)



UNBROADCAST_PROBE = """
import numpy as np
import codegen
from sxad.ir import F64, ArrayType, Func, Value
from sxad.prims import Emitter

def kilobytes(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

def peak_growth(run):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                          # the peak (VmHWM) := the current size
    before = kilobytes("VmRSS:")
    run()
    return (kilobytes("VmHWM:") - before) // 1024    # MB

m2 = ArrayType(F64, 2)
ct, like = Value(m2, "ct"), Value(m2, "like")
b = Emitter([ct, like])
func = Func("sum_of_unbroadcast", b.finish([b.reduce_sum(b.unbroadcast(ct, like))]),
            ("ct", "like"), False)
kernel = codegen.compile_native(func)
big = np.ones((4096, 4096))
kernel(big[:4, :4], big[:4, :4])
print(peak_growth(lambda: kernel(big, big)), peak_growth(lambda: big * 2.0))
"""


def test_unbroadcast_of_equal_shapes_makes_no_copy():
    """Measured by the process's peak memory during the call (Linux's VmHWM, reset before, in
    a process of its own with glibc's default malloc: large blocks mapped afresh): summing
    ``unbroadcast(ct, like)`` of a 128 MB ``ct`` of ``like``'s shape adds nothing, where a
    copy (numpy's ``ct * 2``, the control) adds its 128 MB."""
    import os
    import subprocess
    import sys
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    done = subprocess.run([sys.executable, "-c", UNBROADCAST_PROBE], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, SXAD_MALLOPT="0"))
    assert done.returncode == 0, done.stderr
    view, copy = map(int, done.stdout.split())
    assert view < 16 and copy > 100, (view, copy)
