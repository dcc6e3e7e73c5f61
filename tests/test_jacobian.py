"""Vector mode (``sxad.ad.vector``) and ``sxad.jacobian``: K directions through one sweep agree
with K separate tangent/adjoint runs, with finite differences, and between the two modes."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sxad
from arrays.harness import array
from arrays.test_array_ad import CASES, args_for
from oracles import assert_close
from sxad import api
from sxad.ad.forward import jvp_program
from sxad.ad.reverse import vjp_program
from sxad.ad.vector import UNBATCHED, NoBatchRule, _Batch, batch_program, loop_program
from sxad.backends.interpreter import interpret
from sxad.backends.python_source import compile_python
from sxad.ir import F32, F64, I64, Func, Prim, Value, verify
from sxad.ir.edit import keep_results
from sxad.passes import DERIVATIVE_PIPELINE, optimize
from sxad.prims import Emitter, result_types

K = 3


@pytest.fixture(autouse=True)
def generated_python(monkeypatch):
    """These tests check derivatives, not backends: the generated Python serves every program
    (no LLVM compilation), which keeps the file fast. tests/arrays/test_api_arrays.py checks
    the choice of backend."""
    monkeypatch.setattr(api, "BACKEND", "python")

TOL = {F64: dict(rtol=1e-11, atol=1e-12), F32: dict(rtol=2e-5, atol=2e-6)}


def derivative_program(func: Func, kind: str) -> tuple[Func, list[int]]:
    wrt = [i for i, p in enumerate(func.params) if p.type.is_float]
    make = jvp_program if kind == "jvp" else vjp_program
    return optimize(make(func, wrt), DERIVATIVE_PIPELINE), wrt


def directions(func: Func, args: list, kind: str, wrt: list[int], count: int) -> list:
    """``count`` random directions for each tangent (or cotangent) parameter, stacked."""
    if kind == "jvp":
        likes = [args[i] for i in wrt]
    else:
        outs = interpret(func, args)
        likes = [o for o, r in zip(outs, func.results) if r.type.is_float]
    rng = np.random.default_rng(1)
    return [rng.normal(size=(count, *np.shape(v))).astype(np.asarray(v).dtype) for v in likes]


def check_batched(func: Func, args: list, kind: str, transform=batch_program) -> Func:
    """The batched program of ``func``'s ``kind`` program gives, row by row, what the program
    gives for each direction alone (interpreter and generated Python); returns it."""
    program, wrt = derivative_program(func, kind)
    n, first = len(func.results), len(func.params)
    lifted = list(range(n, len(program.results)))
    batched = verify(transform(program, list(range(first, len(program.params))), lifted),
                     result_types)
    optimized = verify(optimize(batched), result_types)
    dirs = directions(func, args, kind, wrt, K)
    got = interpret(optimized, [*args, *dirs])
    with np.errstate(all="ignore"):
        printed = compile_python(optimized)(*args, *dirs)
    dtype = func.params[wrt[0]].type
    tol = TOL[F32 if getattr(dtype, "dtype", dtype) is F32 else F64]
    for k in range(K):
        want = interpret(program, [*args, *(d[k] for d in dirs)])
        for j in range(n):  # the primal results, computed once, unbatched
            np.testing.assert_array_equal(got[j], want[j])
        for j in lifted:
            assert got[j].shape == (K, *np.shape(want[j])), (j, got[j].shape)
            assert got[j].dtype == np.asarray(want[j]).dtype
            np.testing.assert_allclose(got[j][k], want[j], **tol)
            np.testing.assert_allclose(printed[j][k], want[j], **tol)
    return batched


@pytest.mark.parametrize("kind", ["jvp", "vjp"])
@pytest.mark.parametrize("dt", [F64, F32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_batched_program_matches_each_direction(case, dt, kind):
    func, args = case(dt)
    batched = check_batched(func, args, kind)
    assert batched.name.endswith("_batched"), "every prim of these programs has a rule"
    assert not any(op.prim is Prim.FOR and op.attr("reverse") is None and
                   op.args[1].hint == "n_dirs" for op in batched.body.walk())


@pytest.mark.parametrize("kind", ["jvp", "vjp"])
@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: c.__name__)
def test_loop_fallback_matches_each_direction(case, kind):
    func, args = case(F64)
    looped = check_batched(func, args, kind, loop_program)
    assert looped.name.endswith("_looped")


def _index(b, x, *idx, spec):
    from sxad.array_prims import _index_type
    t = _index_type(x.type, [i.type for i in idx], spec)
    return b.op(Prim.INDEX, [x, *idx], [t], attrs=[("spec", spec)])[0]


def indexing(dt):
    """Reads, writes and reshapes: x[1]·x + x[0], m[1:3, ::2], p[rows, cols], a set_index into a
    copy, a reshape to (2, 6) and back, a squeeze and a ``full``."""
    x, m, rows = array(dt, 1, "x"), array(dt, 2, "m"), array(I64, 1, "rows")
    b = Emitter([x, m, rows])
    one, two, three = b.const(1), b.const(2), b.const(3)
    y = b.add(b.mul(_index(b, x, one, spec=("i",)), x), _index(b, x, b.const(0), spec=("i",)))
    block = _index(b, m, one, three, two, spec=("s110", "s001"))          # (2, 2)
    picked = _index(b, m, rows, rows, spec=("a", "a"))                    # (3,)
    written = b.op(Prim.SET_INDEX, [m, b.mul(y, y), one], [m.type],
                   attrs=[("spec", ("i",))])[0]                            # m[1] = y²
    flat = b.reshape(b.sin(written), two, b.const(-1))                     # (2, 6)
    back = b.reshape_like(b.mul(flat, flat), m)
    column = b.squeeze(b.reduce_sum(back, axes=(1,), keepdims=True), axes=(1,))
    filled = b.full(b.reduce_sum(y), three)
    total = b.add(b.add(b.reduce_sum(block), b.reduce_sum(picked)),
                  b.add(b.reduce_sum(column), b.reduce_sum(b.mul(filled, picked))))
    f = Func("indexing", b.finish([total, column]), ("x", "m", "rows"), True)
    args = args_for(f, [(6,), (3, 6), (3,)])
    args[2] = np.array([2, 0, 1])
    return f, args


@pytest.mark.parametrize("kind", ["jvp", "vjp"])
@pytest.mark.parametrize("dt", [F64, F32], ids=str)
def test_indexing_shape_and_creation_prims_batch(dt, kind):
    func, args = indexing(dt)
    batched = check_batched(func, args, kind)
    assert batched.name.endswith("_batched")
    used = {op.prim for op in batched.body.walk()}
    assert {Prim.INDEX, Prim.RESHAPE, Prim.RESHAPE_LIKE, Prim.SQUEEZE, Prim.FULL} <= used
    assert Prim.SET_INDEX in used or Prim.INDEX_ADD in used


def ramp():
    """arange(s, s + 3, 1.0)·s: on a batched s, arange has no rule (UNBATCHED)."""
    s = Value(F64, "s")
    b = Emitter([s])
    r = b.arange(s, b.add(s, b.const(3.0)), b.const(1.0))
    return Func("ramp", b.finish([b.mul(r, s)]), ("s",))


def test_a_prim_without_rule_falls_back_to_a_loop_inside_one_program():
    assert UNBATCHED == ("arange",)
    func = ramp()
    batched = verify(batch_program(func, [0], [0]), result_types)
    assert batched.name.endswith("_looped")
    loops = [op for op in batched.body.ops if op.prim is Prim.FOR]
    assert len(loops) == 1 and loops[0].args[1].hint == "n_dirs"
    s = np.array([0.5, 1.5, -2.0, 3.0])
    got = interpret(optimize(batched), [s])[0]
    for k in range(len(s)):
        np.testing.assert_allclose(got[k], interpret(func, [s[k]])[0], rtol=1e-15)
    with pytest.raises(NoBatchRule, match="arange"):
        _Batch(func, [0]).build([0])


# --------------------------------------------------------------------------- sxad.jacobian

def central_jacobian(fn, args, i, h=1e-6):
    """∂fn/∂args[i] by central differences, shape out + in."""
    x = np.asarray(args[i], dtype=float)
    columns = []
    for k in range(x.size):
        step = np.zeros(x.size)
        step[k] = h
        plus, minus = list(args), list(args)
        plus[i] = (x.ravel() + step).reshape(x.shape).astype(np.asarray(args[i]).dtype)
        minus[i] = (x.ravel() - step).reshape(x.shape).astype(np.asarray(args[i]).dtype)
        columns.append((np.asarray(fn(*plus), float) - np.asarray(fn(*minus), float)) / (2 * h))
    out_shape = np.shape(columns[0])
    return np.moveaxis(np.array(columns), 0, -1).reshape(out_shape + x.shape)


def per_column_jvp(f, args, i):
    """The Jacobian one column at a time through ``sxad.jvp``: the reference vector mode
    replaces."""
    x = np.asarray(args[i])
    columns = []
    for k in range(x.size):
        tangents = [np.zeros_like(a) if isinstance(a, np.ndarray) else 0.0 for a in args]
        e = np.zeros(x.size, x.dtype)
        e[k] = 1
        tangents[i] = e.reshape(x.shape)
        columns.append(np.asarray(sxad.jvp(f, args, tangents)[1]))
    return np.moveaxis(np.array(columns), 0, -1).reshape(np.shape(columns[0]) + x.shape)


JACOBIAN_CASES = {
    "column_and_row": (CASES[1], 0),        # (3,1) → (3,4)
    "matrix_and_vector": (CASES[2], 1),     # (3,) → (2,3)
    "softmax": (CASES[6], 0),               # (2,5) → (2,5)
    "matmuls": (CASES[8], 0),               # (2,3) → (3,)
    "loop_with_tape": (CASES[9], 0),        # (4,) → scalar, a loop with a tape of arrays
    "branch_in_loop": (CASES[11], 0),       # (2,3) → (2,3), a branch inside a loop
}


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
@pytest.mark.parametrize("name", list(JACOBIAN_CASES))
def test_jacobian_matches_finite_differences_and_columns(name, mode):
    case, wrt = JACOBIAN_CASES[name]
    func, args = case(F64)
    f = api.IRFunction(func)
    jac = sxad.jacobian(f, wrt=wrt, mode=mode)
    before = dict(api.stats)
    J = jac(*args)
    out = interpret(func, args)[0]
    assert J.shape == np.shape(out) + np.shape(args[wrt]) and J.dtype == np.float64
    assert_close(J, central_jacobian(f, args, wrt), "finite-difference", name)
    assert_close(J, per_column_jvp(f, args, wrt), "modes", name)
    expected = mode if mode != "auto" else (
        "forward" if np.size(args[wrt]) < np.size(out) else "reverse")
    assert jac.last_mode == expected
    built = api.stats[f"{'jvp' if expected == 'forward' else 'vjp'}_batched"]
    assert built == before.get(f"{'jvp' if expected == 'forward' else 'vjp'}_batched", 0) + 1


@pytest.mark.parametrize("name", ["softmax", "loop_with_tape", "matmuls"])
def test_jacobian_in_f32_matches_f64(name):
    case, wrt = JACOBIAN_CASES[name]
    f32, args32 = case(F32)
    f64, args64 = case(F64)
    for mode in ("forward", "reverse"):
        J32 = sxad.jacobian(api.IRFunction(f32), wrt=wrt, mode=mode)(*args32)
        J64 = sxad.jacobian(api.IRFunction(f64), wrt=wrt, mode=mode)(*args64)
        assert J32.dtype == np.float32
        assert_close(J32, J64, "f32", f"{name} {mode}")


def test_jacobian_of_several_arguments_and_outputs():
    func, args = CASES[3](F64)   # one_side_active: (x (3,1) float, k (3,4) int) → (y, z)
    f = api.IRFunction(func)
    for mode in ("forward", "reverse"):
        (jy,), (jz,) = sxad.jacobian(f, wrt=(0,), mode=mode)(*args)
        assert jy.shape == (3, 4, 3, 1) and jz.shape == (3, 4, 3, 1)
        fy = api.IRFunction(keep_results(func, [0], False))
        assert_close(jy, central_jacobian(fy, args, 0), "finite-difference", mode)
    with pytest.raises(TypeError, match="with respect to `k`: it is an int array"):
        sxad.jacobian(f, wrt=1)(*args)


def two_outputs(x, y):
    return x * y, math.sin(x) + y * y


def test_jacobian_of_a_scalar_python_function():
    for mode in ("forward", "reverse", "auto"):
        (a, b), (c, d) = sxad.jacobian(two_outputs, wrt=(0, 1), mode=mode)(2.0, 3.0)
        assert_close([a, b, c, d], [3.0, 2.0, math.cos(2.0), 6.0], "modes", mode)
        assert np.shape(a) == ()


def test_jacobian_rejects_a_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'auto', 'forward' or 'reverse'"):
        sxad.jacobian(two_outputs, mode="sideways")


# --------------------------------------------------------------------------- hessian, grad

def test_hessian_of_a_function_of_a_vector_is_a_matrix():
    func, args = CASES[7](F64)   # log_sum_exp
    H = sxad.hessian(api.IRFunction(func))(*args)
    p = np.exp(args[0] - args[0].max())
    p /= p.sum()
    assert H.shape == (6, 6)
    assert_close(H, np.diag(p) - np.outer(p, p), "modes", "log-sum-exp Hessian")
    x, wrt = CASES[5](F64)       # sum of squares of a (3,5) matrix: 2·I
    H = sxad.hessian(api.IRFunction(x))(*wrt)
    assert H.shape == (3, 5, 3, 5)
    assert_close(H.reshape(15, 15), 2 * np.eye(15), "modes", "2 I")


def test_hessian_of_two_arguments_is_blocks():
    func, args = CASES[0](F64)   # sum(sin(x)·s + s²·x), x (5,), s scalar
    H = sxad.hessian(api.IRFunction(func), wrt=(0, 1))(*args)
    x, s = args
    assert_close(H[0][0], np.diag(-np.sin(x) * s), "modes")
    assert_close(H[0][1], np.cos(x) + 2 * s, "modes")
    assert_close(H[1][0], np.cos(x) + 2 * s, "modes")
    assert_close(H[1][1], 2 * x.sum(), "modes")


def test_forward_mode_grad_of_an_array_is_one_sweep():
    func, args = CASES[9](F64)
    f = api.IRFunction(func)
    g_rev = sxad.grad(f, wrt=(0, 1))(*args)
    g_fwd = sxad.grad(f, wrt=(0, 1), mode="forward")(*args)
    for r, w in zip(g_rev, g_fwd):
        assert w.shape == r.shape and w.dtype == r.dtype
        assert_close(w, r, "modes")


def test_a_loop_program_jacobian_through_a_while_loop():
    """Vector mode through a ``while`` loop: x ← x·c until sum(x²) > 4 (n_iter on the tape)."""
    from ir_builders import while_loop
    x, c = array(F64, 1, "x"), array(F64, 1, "c")
    b = Emitter([x, c])

    def cond(e, s, k):
        return e.lt(e.reduce_sum(e.mul(s, s)), e.const(4.0))

    def body(e, s, k):
        return [e.mul(s, e.add(c, e.const(1.0))), e.add(k, e.const(1))]
    s, _ = while_loop(b, [x, b.const(0)], cond, body)
    func = Func("grow", b.finish([b.sin(s)]), ("x", "c"))
    args = [np.array([0.3, 0.2, 0.1]), np.array([0.5, 0.4, 0.7])]
    f = api.IRFunction(func)
    for mode in ("forward", "reverse"):
        J = sxad.jacobian(f, wrt=1, mode=mode)(*args)
        assert_close(J, central_jacobian(f, args, 1), "finite-difference", mode)
