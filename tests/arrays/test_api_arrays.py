"""Arrays through the public API: argument types, gradients of arrays' shape and dtype, jvp/vjp
with arrays, errors naming arguments and shapes, the backend serving each program, arguments
updated in place, and transformed functions called from compiled code (``__sxad_program__``).

Functions written as Python need the frontend to lower array code; those tests skip (with the
reason) while it does not, and the same behaviours are tested on hand-built IR
(``api.IRFunction``)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import sxad
from arrays.harness import array
from arrays.test_array_ad import CASES
from oracles import assert_close
from sxad import api
from sxad.ir import BOOL, F32, F64, I64, ArrayType, Func
from sxad.prims import Emitter

def numeric_grad(fn, args, i, h=1e-6):
    x = np.asarray(args[i], dtype=float)
    out = np.zeros(x.size)
    for k in range(x.size):
        step = np.zeros(x.size)
        step[k] = h
        plus, minus = list(args), list(args)
        plus[i] = (x.ravel() + step).reshape(x.shape)
        minus[i] = (x.ravel() - step).reshape(x.shape)
        out[k] = (fn(*plus) - fn(*minus)) / (2 * h)
    return out.reshape(x.shape)


# --------------------------------------------------------------------------- argument types

@pytest.mark.parametrize("dtype, dt", [(np.float64, F64), (np.float32, F32), (np.int64, I64),
                                       (np.bool_, BOOL)], ids=str)
@pytest.mark.parametrize("rank", range(5))
def test_an_ndarray_is_typed_by_dtype_and_rank(dtype, dt, rank):
    value = np.zeros((2,) * rank, dtype=dtype)
    assert api._type_of(straight, "x", value) == ArrayType(dt, rank)


@pytest.mark.parametrize("value, match", [
    (np.zeros(3, np.int32), "argument `x` of straight: arrays of int32 are not supported"),
    (np.zeros(3, np.complex128), "arrays of complex128"),
    (np.zeros((1,) * 5),
     r"argument `x` of straight: an array of rank 5 \(shape \(1, 1, 1, 1, 1\)\)"),
])
def test_other_dtypes_and_ranks_are_type_errors_naming_the_argument(value, match):
    with pytest.raises(TypeError, match=match):
        sxad.grad(straight)(value, np.ones(3))


def straight(x, w):
    return np.sum(np.tanh(x * w) ** 2)


# --------------------------------------------------------------------------- hand-built IR

def ir_case(name, dt=F64):
    func, args = {c.__name__: c for c in CASES}[name](dt)
    return api.IRFunction(func), args


@pytest.mark.parametrize("dt", [F64, F32], ids=str)
def test_grad_of_an_array_is_an_array_of_its_shape_and_dtype(dt):
    f, args = ir_case("matmuls", dt)
    grads = sxad.grad(summed(f), wrt=(0, 1, 2))(*args)
    for g, a in zip(grads, args):
        assert isinstance(g, np.ndarray) and g.shape == a.shape and g.dtype == a.dtype
        assert np.any(g != 0)


def summed(f):
    """``sum(f(...))`` as hand-built IR (grad needs a scalar; these cases give arrays)."""
    (func,) = f.funcs.values()
    b = Emitter(list(func.params))
    b.ops.extend(func.body.ops)
    total = b.reduce_sum(func.body.yields[0])
    return api.IRFunction(Func(f"{func.name}_sum", b.finish([total]), func.arg_names))


def test_grad_and_value_and_grad_agree_with_differences():
    f, args = ir_case("loop_with_tape")
    value, (gx, gw) = sxad.value_and_grad(f, wrt=(0, 1))(*args)
    assert value == pytest.approx(f(*args))
    assert_close(gx, numeric_grad(f, args, 0), "finite-difference")
    assert_close(gw, numeric_grad(f, args, 1), "finite-difference")
    assert_close(sxad.grad(f)(*args), gx, "modes")
    assert_close(sxad.grad(f, mode="forward")(*args), gx, "modes")


def test_grad_with_respect_to_an_int_array_or_of_an_array_output_is_a_type_error():
    f, args = ir_case("one_side_active")
    with pytest.raises(TypeError,
                       match=r"with respect to `k`: it is an int array \(i64\[:,:\]\)"):
        sxad.grad(f, wrt=1)(*args)
    g, gargs = ir_case("softmax")
    with pytest.raises(TypeError, match="returns a float array.*sxad.jacobian"):
        sxad.grad(g)(*gargs)


def test_jvp_and_vjp_take_and_give_arrays():
    f, args = ir_case("matrix_and_vector")    # (A (2,3), v (3,)) → (2,3)
    rng = np.random.default_rng(3)
    ta, tv = rng.normal(size=(2, 3)), rng.normal(size=3)
    value, tangent = sxad.jvp(f, args, (ta, tv))
    assert_close(value, f(*args), "modes")
    h = 1e-6
    moved = [(a + h * t) for a, t in zip(args, (ta, tv))]
    back = [(a - h * t) for a, t in zip(args, (ta, tv))]
    assert_close(tangent, (f(*moved) - f(*back)) / (2 * h), "finite-difference")
    value, pullback = sxad.vjp(f, *args)
    c = rng.normal(size=(2, 3))
    ga, gv = pullback(c)
    assert ga.shape == (2, 3) and gv.shape == (3,)
    # the dot-product test: <J t, c> = <t, J^T c>
    assert_close(np.sum(tangent * c), np.sum(ta * ga) + np.sum(tv * gv), "modes")


def test_tangent_and_cotangent_shapes_are_checked():
    f, args = ir_case("matrix_and_vector")
    with pytest.raises(ValueError, match=r"the tangent of `v` has shape \(2,\), but its value has "
                                         r"shape \(3,\)"):
        sxad.jvp(f, args, (np.ones((2, 3)), np.ones(2)))
    _, pullback = sxad.vjp(f, *args)
    with pytest.raises(ValueError, match=r"cotangent 0 has shape \(3,\)"):
        pullback(np.ones(3))


def test_shape_mismatch_between_arguments_names_them():
    f, args = ir_case("matrix_and_vector")
    with pytest.raises(ValueError, match=r"`A` \(2, 3\), `v` \(4,\)"):
        sxad.jit(f)(args[0], np.ones(4))
    with pytest.raises(ValueError, match=r"`A` \(2, 3\), `v` \(4,\)"):
        sxad.grad(summed(f))(args[0], np.ones(4))


# --------------------------------------------------------------------------- backends

def test_each_program_is_served_natively_or_by_generated_python(monkeypatch):
    """A program the native backend cannot compile runs as generated Python, transparently;
    ``sxad.backend_stats`` and ``api.backend_of`` say which backend served it."""
    import codegen
    f, args = ir_case("softmax")
    expected = np.asarray(f(*args))
    calls = []

    def refuse(program, *rest):
        calls.append(program.name)
        raise codegen.CodegenError(f"{program.name}: not lowered (test)")
    monkeypatch.setattr(api, "BACKEND", "native")
    monkeypatch.setattr(codegen, "compile_kernel", refuse)
    before = dict(sxad.backend_stats)
    assert_close(sxad.jit(f)(*args), expected, "backends")
    assert calls and sxad.backend_stats["fallbacks"] == before.get("fallbacks", 0) + 1
    assert sxad.backend_stats["python"] == before.get("python", 0) + 1
    key = next(k for k in api._kernels if k.fn is f and k.kind == "primal")
    assert api.backend_of(key) == "python" and "not lowered (test)" in api._kernels[key].reason


def test_a_native_array_program_when_codegen_compiles_it(monkeypatch):
    import codegen
    monkeypatch.setattr(api, "BACKEND", "native")
    f, args = ir_case("sum_of_squares")
    try:
        codegen.compile_kernel(f.funcs[(ArrayType(F64, 2),)])
    except codegen.CodegenError as err:
        pytest.skip(f"codegen does not compile this array program yet: {err}")
    g = sxad.grad(f)
    assert_close(g(*args), 2 * args[0], "native")
    key = next(k for k in api._kernels if k.fn is f and k.kind == "grad")
    assert api.backend_of(key) == "native"


# --------------------------------------------------------------------------- mutation

def updating(dt=F64):
    """``W -= 0.5 * g; return sum(W * W)`` as the frontend lowers it: W's new value is the
    last result, and ``mutated`` names W."""
    w, g = array(dt, 1, "W"), array(dt, 1, "g")
    b = Emitter([w, g])
    w1 = b.sub(w, b.mul(b.const(0.5, dt), g), hint="W")
    loss = b.reduce_sum(b.mul(w1, w1))
    return Func("updating", b.finish([loss, w1]), ("W", "g"), mutated=(0,))


@pytest.mark.parametrize("backend", ["python", "native"])
def test_jit_writes_updated_arguments_back(monkeypatch, backend):
    monkeypatch.setattr(api, "BACKEND", backend)
    f = api.IRFunction(updating())
    W, g = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    out = sxad.jit(f)(W, g)
    np.testing.assert_array_equal(W, [0.0, 1.0, 2.0])   # written back into the caller's array
    assert out == pytest.approx(5.0)                    # only the returned result


def test_derivatives_leave_the_update_out():
    f = api.IRFunction(updating())
    W, g = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    gw = sxad.grad(f)(W, g)
    np.testing.assert_array_equal(W, [1.0, 2.0, 3.0])   # untouched
    assert_close(gw, 2 * (W - 0.5 * g), "modes")


def test_the_native_kernel_writes_updated_arguments_itself(monkeypatch):
    import codegen
    monkeypatch.setattr(api, "BACKEND", "native")
    f = api.IRFunction(updating())
    W, g = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    try:
        codegen.compile_kernel(f.funcs[(ArrayType(F64, 1), ArrayType(F64, 1))])
    except codegen.CodegenError as err:
        pytest.skip(f"codegen does not compile this array program yet: {err}")
    assert sxad.jit(f)(W, g) == pytest.approx(5.0)
    np.testing.assert_array_equal(W, [0.0, 1.0, 2.0])
    key = next(k for k in api._kernels if k.fn is f and k.kind == "primal")
    assert api.backend_of(key) == "native" and api._kernels[key].writes_in_place


def test_a_program_writing_in_place_itself_is_not_copied_back():
    f = api.IRFunction(updating())
    W, g = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    jit = sxad.jit(f)
    jit(W.copy(), g)
    key = next(k for k in api._kernels if k.fn is f and k.kind == "primal")
    real = api._kernels[key]
    copying = api._python(api._program(key), "test").run    # returns W's new value, writes nothing
    api._kernels[key] = api._Compiled(copying, "python", writes_in_place=True)
    jit.kernels.clear()          # the jit looks its kernel up once per signature,
    if "__call__" in vars(type(jit)):   # and serves the calls it can with the native one
        del type(jit).__call__
    try:
        assert jit(W, g) == pytest.approx(5.0)
        np.testing.assert_array_equal(W, [1.0, 2.0, 3.0])   # the program's job, not the API's
    finally:
        api._kernels[key] = real


# --------------------------------------------------------------------------- __sxad_program__

def test_transformed_functions_give_their_program_and_structure():
    f = api.IRFunction(updating())
    types = (ArrayType(F64, 1), ArrayType(F64, 1))
    program, structure = sxad.grad(f).__sxad_program__(types)
    assert structure == 0 and len(program.results) == 1 and not program.mutated
    program, structure = sxad.grad(f, wrt=(0, 1)).__sxad_program__(types)
    assert structure == (0, 1) and len(program.results) == 2
    program, structure = sxad.value_and_grad(f).__sxad_program__(types)
    assert structure == (0, 1) and len(program.results) == 2
    program, structure = sxad.value_and_grad(f, wrt=(0, 1)).__sxad_program__(types)
    assert structure == (0, (1, 2)) and len(program.results) == 3
    program, structure = sxad.jit(f).__sxad_program__(types)
    assert structure == 0 and program.mutated == (0,) and len(program.results) == 2
    with pytest.raises(TypeError, match="with respect to `W`: it is an int array"):
        sxad.grad(f).__sxad_program__((ArrayType(I64, 1), ArrayType(F64, 1)))


def loss(W, b, X, y):
    p = np.tanh(X @ W + b)
    return np.sum((p - y) ** 2) / y.shape[0]


def train_step(W, b, X, y):
    value, (gW, gb) = sxad.value_and_grad(loss, wrt=(0, 1))(W, b, X, y)
    W -= 0.5 * gW
    return value


def reference_step(W, b, X, y):
    p = np.tanh(X @ W + b)
    r = 2 * (p - y) / y.shape[0] * (1 - p * p)
    value = np.sum((p - y) ** 2) / y.shape[0]
    W -= 0.5 * (X.T @ r)
    return value


def test_a_training_step_calling_value_and_grad_compiles_and_trains():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.uniform(-0.5, 0.5, size=20)
    W, b = rng.normal(size=3) * 0.1, 0.1
    W_ref = W.copy()
    step = sxad.jit(train_step)
    losses = []
    for _ in range(30):
        losses.append(step(W, b, X, y))
        expected = reference_step(W_ref, b, X, y)
        assert losses[-1] == pytest.approx(expected, rel=1e-10)
        assert_close(W, W_ref, "native")
    assert losses[-1] < 0.8 * losses[0]
    program = api._program(api._Key(train_step, step.last_types, "primal",
                                    version=api._current(train_step).number))
    assert program.mutated == (0,)    # one program: forward, backward and the update


# --------------------------------------------------------------------------- source-level

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=str)
def test_source_level_grad_jvp_vjp_hessian(dtype):
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype)
    g = sxad.grad(straight, wrt=(0, 1))(x, w)
    assert [a.dtype for a in g] == [np.dtype(dtype)] * 2
    tol = "finite-difference" if dtype is np.float64 else "f32"
    x64, w64 = x.astype(float), w.astype(float)
    assert_close(g[0], numeric_grad(straight, [x64, w64], 0), tol)
    assert_close(g[1], numeric_grad(straight, [x64, w64], 1), tol)
    H = sxad.hessian(straight, wrt=1)(x64, w64)
    assert H.shape == (4, 4)
    assert_close(H, H.T, "modes")
    gw = sxad.grad(straight, wrt=1)
    columns = [numeric_grad(lambda x_, w_, k=k: gw(x_, w_)[k], [x64, w64], 1) for k in range(4)]
    assert_close(H, np.array(columns), "finite-difference")
    value, tangent = sxad.jvp(straight, (x64, w64), (np.zeros_like(x64), np.ones(4)))
    assert_close(tangent, g[1].astype(float).sum(), tol)

# --------------------------------------------------------------------------- tuple arguments

def tuple_loss(params, x):
    W, b = params
    return np.sum(np.tanh(x @ W + b) ** 2)


def flat_loss(W, b, x):
    return np.sum(np.tanh(x @ W + b) ** 2)


def sgd(params, x, lr):
    value, grads = sxad.value_and_grad(tuple_loss)(params, x)
    for p, g in zip(params, grads):
        p -= lr * g
    return value


def tuple_problem():
    rng = np.random.default_rng(11)
    return (rng.normal(size=(3, 2)), rng.normal(size=2)), rng.normal(size=(4, 3))


def test_a_tuple_argument_gets_a_tuple_gradient():
    params, x = tuple_problem()
    value, grads = sxad.value_and_grad(tuple_loss)(params, x)
    gW, gb = sxad.grad(flat_loss, wrt=(0, 1))(*params, x)
    assert isinstance(grads, tuple) and len(grads) == 2
    assert_close(grads[0], gW, "modes")
    assert_close(grads[1], gb, "modes")
    assert value == pytest.approx(flat_loss(*params, x))
    fwd = sxad.grad(tuple_loss, mode="forward")(params, x)
    assert_close(fwd[0], gW, "modes")
    program, structure = sxad.value_and_grad(tuple_loss).__sxad_program__(
        ((ArrayType(F64, 2), ArrayType(F64, 1)), ArrayType(F64, 2)))
    assert structure == (0, (1, 2)) and program.arg_names[:2] == ("params_0", "params_1")


def test_jvp_and_vjp_with_a_tuple_argument():
    params, x = tuple_problem()
    tangents = ((np.ones((3, 2)), np.zeros(2)), np.zeros((4, 3)))
    _, dot = sxad.jvp(tuple_loss, (params, x), tangents)
    gW, _ = sxad.grad(flat_loss, wrt=(0, 1))(*params, x)
    assert dot == pytest.approx(gW.sum())
    _, pullback = sxad.vjp(tuple_loss, params, x)
    (pW, pb), px = pullback(1.0)
    assert_close(pW, gW, "modes")
    assert px.shape == (4, 3)
    with pytest.raises(TypeError, match=r"the tangent of `params` must be a tuple of 2"):
        sxad.jvp(tuple_loss, (params, x), (np.ones((3, 2)), np.zeros((4, 3))))


def test_a_compiled_step_updates_the_items_of_a_tuple_in_place():
    params, x = tuple_problem()
    W, b = (p.copy() for p in params)
    gW, gb = sxad.grad(flat_loss, wrt=(0, 1))(W, b, x)
    value = sxad.jit(sgd)(params, x, 0.1)
    assert value == pytest.approx(flat_loss(W, b, x))
    assert_close(params[0], W - 0.1 * gW, "native")
    assert_close(params[1], b - 0.1 * gb, "native")
    with pytest.raises(TypeError, match="with respect to the tuple `params`"):
        sxad.jacobian(tuple_loss)(params, x)


def _writes_first(x):
    x[0] = 1.0
    return np.sum(x)


def _adds_one(params):
    for p in params:
        p += 1.0
    return np.sum(params[0])


def test_a_read_only_argument_updated_in_place_is_a_clear_error():
    """numpy refuses ("assignment destination is read-only"); so does sxad, before running."""
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    step = sxad.jit(_writes_first)
    with pytest.raises(ValueError, match=r"argument `x` of .*: the array is read-only, but"):
        step(frozen)
    writable = np.zeros(3)
    assert step(writable) == 1.0 and writable[0] == 1.0
    with pytest.raises(ValueError, match="read-only"):   # the installed native path too
        step(frozen)
    pair = (np.zeros(2), np.zeros(2))
    pair[1].flags.writeable = False
    with pytest.raises(ValueError, match=r"argument `params\[1\]` of .*: the array is read-only"):
        sxad.jit(_adds_one)(pair)
    assert not pair[0].any()   # nothing was half updated


STEP_SIZE = 1.0


def _adds_step(params, scale):
    for p in params:
        p += STEP_SIZE * scale
    return np.sum(params[0]), scale


def test_a_step_updating_a_tuple_in_place_is_called_natively(monkeypatch):
    """After the first call, a jit function that updates the arrays of a tuple argument in
    place passes the tuple's items to its native kernel itself (``Jit._install_flattening``):
    no Python dispatch (here made to fail) on later calls. What it cannot take goes to the
    dispatch, which serves it: keywords, a tuple of another length, another dtype, a changed
    global; results are the same either way."""
    step = sxad.jit(_adds_step)
    params = (np.zeros(3), np.zeros(2))
    assert step(params, 2.0) == (0.0 + 6.0, 2.0)

    def no_dispatch(*args, **kwargs):
        raise AssertionError("dispatched in Python")
    with monkeypatch.context() as patch:
        patch.setattr(api._Transformed, "_signature", no_dispatch)
        for k in range(2, 5):
            total, scale = step(params, 2.0)
            assert total == 6.0 * k and scale == 2.0 and type(scale) is float
        np.testing.assert_array_equal(params[1], [8.0, 8.0])
        with pytest.raises(AssertionError, match="dispatched"):
            step(params=params, scale=2.0)
        with pytest.raises(AssertionError, match="dispatched"):
            step(params[:1], 2.0)
    assert step(params=params, scale=1.0) == (27.0, 1.0)      # 4 steps of 2, one of 1
    assert step((np.zeros(4),), 1.0) == (4.0, 1.0)
    single = (np.zeros(2, np.float32), np.zeros(1, np.float32))
    total, _ = step(single, 1.0)
    assert type(total) is np.float32 and total == 2.0
    monkeypatch.setattr(sys.modules[__name__], "STEP_SIZE", 10.0)
    assert step(params, 1.0) == (57.0, 1.0)     # the guards saw the change: 9 + 10 each


def _tuple_sum(pair, scale):
    return np.sum(pair[0]) * scale + np.sum(pair[1])


def test_a_function_of_a_tuple_is_called_natively(monkeypatch):
    """A jit function taking a tuple (updating nothing) is served the same way: no Python
    dispatch after its first call; results as the source gives them."""
    step = sxad.jit(_tuple_sum)
    pair = (np.ones(3), np.arange(4.0))
    assert step(pair, 2.0) == 12.0

    def no_dispatch(*args, **kwargs):
        raise AssertionError("dispatched in Python")
    with monkeypatch.context() as patch:
        patch.setattr(api._Transformed, "_signature", no_dispatch)
        assert step(pair, 3.0) == 15.0 and type(step(pair, 3.0)) is float
        with pytest.raises(AssertionError, match="dispatched"):
            step((np.ones(3),), 3.0)
    assert step((np.ones(2), np.ones(1)), 1.0) == 3.0


def _writes_out_of_range(x, i):
    x[i] = 1.0
    return x


def test_a_read_only_argument_is_reported_before_the_index_of_its_update():
    """numpy checks the destination before the index (found by the array fuzzer)."""
    frozen = np.zeros((0, 0))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _writes_out_of_range(frozen, 3)
    with pytest.raises(ValueError, match=r"argument `x` of .*: the array is read-only, but"):
        sxad.jit(_writes_out_of_range)(frozen, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        sxad.jit(_writes_out_of_range)(np.zeros((0, 0)), 3)


def test_a_float32_scalar_result_stays_float32():
    x = np.ones(2, np.float32)
    for fn in (_writes_first, lambda_free_sum):
        out = sxad.jit(fn)(x.copy())
        assert type(out) is np.float32, (fn.__name__, type(out))


def lambda_free_sum(x):
    return np.sum(x)


def _updates_when_positive(x, s):
    if s > 0.0:
        x *= s
    return np.sum(x)


def test_a_read_only_argument_is_fine_on_a_path_that_does_not_update_it():
    """numpy raises only when the update runs; so does sxad."""
    frozen = np.ones(3)
    frozen.flags.writeable = False
    step = sxad.jit(_updates_when_positive)
    assert step(frozen, -1.0) == 3.0
    with pytest.raises(ValueError, match="read-only"):
        step(frozen, 2.0)
    np.testing.assert_array_equal(frozen, 1.0)
