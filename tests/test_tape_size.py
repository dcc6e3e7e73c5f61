"""``sxad.tape_size``: the bytes the reverse sweep's tape holds, counted push by push while the
adjoint program's forward sweep runs (an array counts its ``nbytes``, a scalar 8 bytes)."""
from __future__ import annotations

import numpy as np
import pytest

import sxad
from arrays.harness import array
from golden_programs import power_sum
from ir_builders import loop
from sxad import api
from sxad.ir import F32, F64, I64, Func, Value
from sxad.prims import Emitter

N, M = 7, 5


def straight(x, y):
    return np.sin(x) * y + x * x


def decay(x, c, n):
    s = 1.0
    for i in range(n):
        x = np.sin(x) * 2.0
        s = s * c
    return np.sum(x) * s


def test_a_straight_line_program_stores_nothing():
    assert sxad.tape_size(straight, 1.5, 2.0, wrt=(0, 1)) == 0


def test_a_scalar_loop_stores_one_float_per_iteration():
    # the reverse sweep needs the previous p of each iteration (README's power_sum_vjp)
    assert sxad.tape_size(power_sum, 1.5, 10) == 10 * 8
    assert sxad.tape_size(power_sum, 1.5, 0) == 0


def test_a_loop_storing_an_array_per_iteration():
    x = np.linspace(0.1, 1.0, M)
    # x: cos of the previous x, m floats per iteration
    assert sxad.tape_size(decay, x, 0.9, N) == N * M * 8
    # c: the previous s, one float per iteration
    assert sxad.tape_size(decay, x, 0.9, N, wrt=1) == N * 8
    # both: the array and the scalar
    assert sxad.tape_size(decay, x, 0.9, N, wrt=(0, 1)) == N * M * 8 + N * 8
    assert sxad.tape_size(decay, x.astype(np.float32), 0.9, N) == N * M * 4


def test_a_straight_line_array_program_stores_nothing():
    def line(x, w):
        return np.sum(np.tanh(x @ w) ** 2)
    assert sxad.tape_size(line, np.ones((3, 4)), np.ones(4), wrt=(0, 1)) == 0


def sines(dt):
    """x ← sin(x)·2 n times, then sum: the reverse sweep needs each iteration's x."""
    x, n = array(dt, 1, "x"), Value(I64, "n")
    b = Emitter([x, n])
    (s,) = loop(b, b.const(0), n, b.const(1), [x],
                lambda e, i, v: [e.mul(e.sin(v), e.const(2.0, dt))])
    return Func("sines", b.finish([b.reduce_sum(s)]), ("x", "n"))


@pytest.mark.parametrize("dt, size", [(F64, 8), (F32, 4)], ids=["f64", "f32"])
def test_hand_built_loop_counts_its_arrays(dt, size):
    f = api.IRFunction(sines(dt))
    x = np.linspace(0.1, 1.0, M).astype(np.float64 if dt is F64 else np.float32)
    assert sxad.tape_size(f, x, N) == N * M * size
    assert sxad.tape_size(f, x, 0) == 0


def test_tape_size_checks_its_arguments():
    with pytest.raises(TypeError, match="with respect to `n`: it is an int"):
        sxad.tape_size(power_sum, 1.5, 3, wrt=1)
