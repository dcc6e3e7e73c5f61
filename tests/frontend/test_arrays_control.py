"""The frontend on numpy code with indexing, in-place updates, loops, branches, tuples and calls:
lowered, interpreted and compared with numpy (the oracle), differentiated where it is
differentiable. Updated arguments come back as the last results (``Func.mutated``)."""
from __future__ import annotations

import numpy as np
import pytest

from frontend.test_arrays import A, check, prims, spec_type
from sxad.backends.interpreter import interpret
from sxad.errors import UnsupportedError
from sxad.frontend import lower
from sxad.ir import F64, ArrayType, Func, Prim, Value
from sxad.prims import Emitter


# --------------------------------------------------------------------------- indexing

def elements(x, M, i):
    return x[0] * x[-1] + x[i] + M[1, 2] + M[-1][0] + M[i, -2] * x[len(x) - 1]


def slices(x, M):
    return (x[1:3].sum() + x[::2].sum() + x[::-1][0] + x[:-1].prod() + x[1:].max()
            + M[:, 1].sum() + M[0, :].sum() + M[1:, ::2].sum() + M[..., -1].sum()
            + M[:, None][0].sum())


def gather(p, y):
    n = p.shape[0]
    return -np.mean(np.log(p[np.arange(n), y]))


@pytest.mark.parametrize("fn, specs", [
    (elements, [A("f64", 4), A("f64", 3, 4), "i64"]),
    (slices, [A("f64", 5), A("f64", 3, 4)]),
], ids=lambda v: getattr(v, "__name__", None))
def test_indexing(fn, specs) -> None:
    func = check(fn, specs)
    assert Prim.INDEX in prims(func)


def test_integer_array_indexing_for_cross_entropy() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 1.0, size=(4, 3))
    y = np.array([0, 2, 1, 2])
    check(gather, [A("f64", 4, 3), A("i64", 4)], args=[p, y])


# --------------------------------------------------------------------------- updates in place

def sgd_step(W, b, dW, db, lr):
    W -= lr * dW
    b -= lr * db
    return np.sum(W) + np.sum(b)


def sgd_no_return_value_use(W, dW):
    V = W
    V -= 0.1 * dW       # W changes too: V is the same array
    V *= 2.0
    return W.sum()


def rebinding_is_not_mutation(W):
    W = W - 1.0
    W += 1.0            # an update of the new array, not of the argument
    return W.sum()


def set_items(x, M, v):
    x[0] = 1.0
    x[1] += 2.0 * x[0]
    M[:, 1] = v
    M[0] = M[0] * 3.0
    M[1, :] -= 1.0
    return x.sum() + M.sum()


def local_array(x):
    h = np.zeros_like(x)
    for i in range(len(x)):
        h[i] = x[i] * x[i]
    g = h.copy()
    g[0] = 100.0           # the copy: h keeps its value
    return h.sum() + g[0]


def helper_update(W, g):
    W -= 0.5 * g
    return 0


def calls_helper(W, g):
    helper_update(W, g)
    return W.sum()


def branch_update(W, g, flag):
    if flag > 0:
        W -= g
    else:
        W[0] = 0.0
    return W.sum()


def test_updates_of_arguments_are_results() -> None:
    func = check(sgd_step, [A("f64", 3, 2), A("f64", 2), A("f64", 3, 2), A("f64", 2), "f64"])
    assert func.mutated == (0, 1) and len(func.results) == 3
    func = check(sgd_no_return_value_use, [A("f64", 4), A("f64", 4)])
    assert func.mutated == (0,)
    func = check(rebinding_is_not_mutation, [A("f64", 3)])
    assert func.mutated == ()


def test_item_assignment() -> None:
    func = check(set_items, [A("f64", 3), A("f64", 2, 3), A("f64", 2)])
    assert func.mutated == (0, 1) and Prim.SET_INDEX in prims(func)
    assert check(local_array, [A("f64", 4)]).mutated == ()


def test_updates_through_calls_and_branches() -> None:
    assert check(calls_helper, [A("f64", 3), A("f64", 3)]).mutated == (0,)
    assert check(branch_update, [A("f64", 3), A("f64", 3), "f64"], grad=False).mutated == (0,)
    func = lower(branch_update, [ArrayType(F64, 1), ArrayType(F64, 1), F64])
    x, g = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])
    assert np.allclose(interpret(func, [x, g, -1.0])[1], [0.0, 2.0, 3.0])


# --------------------------------------------------------------------------- loops over elements

def dot_loop(w, x):
    s = 0.0
    for i in range(len(x)):
        s += w[i] * x[i]
    return s


def rows_loop(M):
    total = np.zeros(M.shape[1])
    for i in range(M.shape[0]):
        total = total + M[i] * (i + 1)
    return total


def while_array(x):
    y = x
    k = 0
    while np.sum(y * y) > 0.01 and k < 50:
        y = y * 0.5
        k += 1
    return y


def carried_update(W, g, n):
    for _ in range(n):
        W -= 0.1 * g * W
    return np.sum(W * W)


def branch_arrays(x, y):
    if np.sum(x) > 0:
        z = x * y
    else:
        z = x - y
    return np.tanh(z)


def early_return(x):
    for i in range(len(x)):
        if x[i] > 1.0:
            return x * 2.0
    return x


@pytest.mark.parametrize("fn, specs", [
    (dot_loop, [A("f64", 5), A("f64", 5)]),
    (rows_loop, [A("f64", 3, 4)]),
    (while_array, [A("f64", 3)]),
    (branch_arrays, [A("f64", 3), A("f64", 3)]),
    (early_return, [A("f64", 4)]),
], ids=lambda v: getattr(v, "__name__", None))
def test_arrays_through_control_flow(fn, specs) -> None:
    check(fn, specs)


def test_in_place_update_inside_a_loop() -> None:
    func = check(carried_update, [A("f64", 3), A("f64", 3), "i64"])
    assert func.mutated == (0,)


# --------------------------------------------------------------------------- tuples

def init_params(x):
    return (x, x * 2.0, x + 1.0)


def unpack_shapes(x):
    n, m = x.shape
    shape = x.shape
    return np.zeros(shape).sum() + n * m + init_params(x)[1].sum()


def tuples_ok(W1, b1, W2, b2, X):
    params = (W1, b1, W2, b2)
    A_, a, B, c = params
    Ws, bs = (A_, B), (a, c)
    h = X
    for W, b in zip(Ws, bs):
        h = np.tanh(h @ W + b)
    for k, W in enumerate(Ws):
        h = h * (k + 1)
    for b in bs:
        h = h + b.sum()
    return h.sum() + len(params) + params[-1].sum() + params[1:3][0].sum()


def test_tuples_unpacking_zip_and_enumerate() -> None:
    check(tuples_ok, [A("f64", 3, 4), A("f64", 4), A("f64", 4, 2), A("f64", 2), A("f64", 5, 3)])
    check(unpack_shapes, [A("f64", 2, 3)])


# --------------------------------------------------------------------------- transformed callees

class FakeTransformed:
    """A callee with ``__sxad_program__``: returns (sum(x·y), (x·y, 2y)) as its program."""

    def __init__(self) -> None:
        self.calls = []

    def __sxad_program__(self, types):
        self.calls.append(types)
        x, y = Value(types[0], "x"), Value(types[1], "y")
        b = Emitter([x, y])
        p = b.mul(x, y)
        s = b.reduce_sum(p)
        two = b.mul(y, b.const(2.0))
        return Func("fake", b.finish([s, p, two]), ("x", "y"), True), (0, (1, 2))

    def __call__(self, x, y):
        return np.sum(x * y), (x * y, 2 * y)


FAKE = FakeTransformed()


def make_fake(scale):
    assert scale == 3
    return FAKE


def uses_program(a, b):
    v, (g1, g2) = FAKE(a, b)
    w, _ = FAKE(a, a)   # inlined twice: fresh values
    return v + g1.sum() + g2.sum() + w


def uses_static_callee(a, b):
    v, (g1, g2) = make_fake(3)(a, b)
    return v + g1.sum() - g2.sum()


def test_transformed_callees_are_inlined() -> None:
    check(uses_program, [A("f64", 3), A("f64", 3)])
    assert FAKE.calls[-1] == (ArrayType(F64, 1), ArrayType(F64, 1))
    check(uses_static_callee, [A("f64", 3), A("f64", 3)])


def bad_static_callee(a, b):
    return make_fake(a)(a, b)


def test_static_callee_needs_static_parts() -> None:
    with pytest.raises(UnsupportedError, match="is a variable"):
        lower(bad_static_callee, [spec_type(A("f64", 2))] * 2)


# --------------------------------------------------------------------------- more loops

def rows_of(X, w):
    total = 0.0
    for row in X:
        total += np.dot(row, w)
    return total


def first_big_row(X):
    for row in X:
        if row.sum() > 0.5:
            return row
    return X[0] * 0.0


def aliases_part_ways(W, n):
    V = W
    for _ in range(n):
        V = V + 1.0     # a new array: V is no longer W
        W -= 0.5        # W (the argument) updated in place
    return V.sum() + W.sum()


def alias_updated_in_loop(W, g, n):
    V = W
    for _ in range(n):
        V -= g          # W too
    return W.sum()


@pytest.mark.parametrize("fn, specs", [
    (rows_of, [A("f64", 4, 3), A("f64", 3)]),
    (first_big_row, [A("f64", 4, 3)]),
], ids=lambda v: getattr(v, "__name__", None))
def test_loops_over_rows(fn, specs) -> None:
    check(fn, specs)


def test_aliases_inside_loops() -> None:
    func = check(aliases_part_ways, [A("f64", 3), "i64"])
    assert func.mutated == (0,)
    func = check(alias_updated_in_loop, [A("f64", 3), A("f64", 3), "i64"])
    assert func.mutated == (0,)
    loop = next(op for op in func.body.walk() if op.prim is Prim.FOR)
    assert len(loop.results) == 1   # V, W and the argument's state share one carried slot


def f32_network(W, b, x):
    h = np.tanh(W @ x + b)
    return np.sum(h * h) * 0.5 + np.mean(np.exp(-h))


def test_f32_derivatives_match_f64() -> None:
    from arrays.harness import check_f32
    specs32 = [A("f32", 3, 4), A("f32", 3), A("f32", 4)]
    specs64 = [A("f64", 3, 4), A("f64", 3), A("f64", 4)]
    func32 = check(f32_network, specs32, grad=False)
    func64 = check(f32_network, specs64)
    args64 = [np.asarray(a, dtype=np.float64) for a in
              [np.linspace(-1, 1, 12).reshape(3, 4), np.linspace(0, 1, 3), np.linspace(1, 2, 4)]]
    check_f32(func32, [a.astype(np.float32) for a in args64], func64, args64)


def test_lowered_array_programs_print_as_python() -> None:
    from arrays.harness import check_backends
    from frontend.test_arrays import make_args, mlp, softmax_xent
    for fn, specs in [(mlp, [A("f64", 3, 4), A("f64", 4), A("f64", 4, 2), A("f64", 2),
                             A("f64", 5, 3)]),
                      (set_items, [A("f64", 3), A("f64", 2, 3), A("f64", 2)]),
                      (slices, [A("f64", 5), A("f64", 3, 4)]),
                      (softmax_xent, [A("f64", 4, 3), A("f64", 4, 3)])]:
        check_backends(lower(fn, [spec_type(s) for s in specs]), make_args(specs))


# --------------------------------------------------------------------------- errors

def break_in_unrolled(Ws):
    s = 0.0
    for W in Ws:
        if W.sum() > 0:
            break
        s += W.sum()
    return s


def takes_tuple(params):
    return break_in_unrolled(params)


def tuple_changes_in_loop(W, n):
    params = (W, W)
    for _ in range(n):
        params = (params[0] * 2.0, params[1])
    return params[0].sum()


def tuple_changes_shape_in_loop(W, n):
    params = (W, W)
    for _ in range(n):
        params = (params[0] * 2.0, (params[1], W))
    return params[0].sum()


def training_loop(params, x, steps):
    for _ in range(steps):
        grads = (params[0] * x, params[1] * 0.5)
        for p, g in zip(params, grads):
            p -= 0.1 * g
    return params[0].sum() + params[1].sum()


def tuple_rebuilt_in_loop(W, b, n):
    params = (W, b)
    for i in range(n):
        params = (params[0] * 0.5, params[1] + i)
    A_, c = params
    return A_.sum() * c.sum()


def test_tuples_carried_through_loops() -> None:
    func = lower(training_loop, [(ArrayType(F64, 1), ArrayType(F64, 1)), ArrayType(F64, 1),
                                 spec_type("i64")])
    p0, p1, x = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.2, 0.3])
    got = interpret(func, [p0, p1, x, 3])
    mine = (p0.copy(), p1.copy())
    want = training_loop(mine, x, 3)
    assert func.mutated == (0, 1)
    np.testing.assert_allclose(got[0], want)
    np.testing.assert_allclose(got[1], mine[0])
    np.testing.assert_allclose(got[2], mine[1])
    check(tuple_rebuilt_in_loop, [A("f64", 2), A("f64", 2), "i64"])


def loop_over_number(x):
    s = 0.0
    for v in x:
        s += v
    return s


def tuple_index_unknown(W, b, k):
    return (W, b)[k].sum()


def mutates_view(W):
    row = W[0]
    row[0] = 1.0
    return W.sum()


@pytest.mark.parametrize("fn, specs, message", [
    (takes_tuple, [(A("f64", 2), A("f64", 2))], "not supported in a loop that sxad unrolls"),
    (tuple_changes_shape_in_loop, [A("f64", 2), "i64"],
     "the tuple `params` changes inside this loop"),
    (loop_over_number, ["f64"], "only supported over `range(...)`, tuples and arrays"),
    (tuple_index_unknown, [A("f64", 2), A("f64", 2), "i64"], "index of a tuple must be known"),
    (mutates_view, [A("f64", 2, 2)], "sxad does not write through views"),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_control_errors(fn, specs, message) -> None:
    types = [tuple(spec_type(p) for p in s) if isinstance(s, tuple) and isinstance(s[0], tuple)
             else spec_type(s) for s in specs]
    with pytest.raises(UnsupportedError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("`", "`").replace(".", r"\.")) as info:
        lower(fn, types)
    assert info.value.loc is not None and info.value.loc.file == __file__


def through_tuples_and_whole(params, v):
    W, b = params
    params[0][0, 1] = 5.0     # W too: the same array
    b[:] = v[:1]              # all of b, broadcast from one element
    W[...] *= 2.0
    return W.sum() + params[1].sum()


def chained_view_update(M):
    M[0][1] = 3.0             # M[0] is a view: numpy writes M, sxad refuses
    return M.sum()


def test_updates_through_tuple_items_and_whole_arrays() -> None:
    func = lower(through_tuples_and_whole, [(ArrayType(F64, 2), ArrayType(F64, 1)),
                                            ArrayType(F64, 1)])
    W, b, v = np.arange(6.0).reshape(2, 3), np.ones(3), np.array([7.0, 8.0])
    got = interpret(func, [W, b, v])
    want_W, want_b = W.copy(), b.copy()
    want = through_tuples_and_whole((want_W, want_b), v)
    assert func.mutated == (0, 1)
    np.testing.assert_allclose(got[0], want)
    np.testing.assert_allclose(got[1], want_W)
    np.testing.assert_allclose(got[2], want_b)
    with pytest.raises(UnsupportedError, match="views"):
        lower(chained_view_update, [ArrayType(F64, 2)])


def bump(W, k):
    W += k
    return W.sum()


class Compiled:
    """A callee whose program is ``lower(fn)``: its in-place updates reach the caller."""

    def __init__(self, fn):
        self.fn = fn

    def __sxad_program__(self, types):
        return lower(self.fn, types), 0

    def __call__(self, *args):
        return self.fn(*args)


BUMP = Compiled(bump)


def calls_mutating_program(W, V):
    alias = W
    total = BUMP(alias, 1.0) + BUMP(V, 2.0)   # W is updated through its alias
    return total + W.sum() + V.sum()


def test_a_program_updating_its_argument_updates_the_callers_array() -> None:
    func = check(calls_mutating_program, [A("f64", 3), A("f64", 2)])
    assert func.mutated == (0, 1)


def nested_iteration(W1, b1, W2, b2, x):
    h = x
    for k, (W, b) in enumerate(zip((W1, W2), (b1, b2))):
        h = np.tanh(W @ h + b) * (k + 1)
    for W in reversed((W1.T, W2.T)):
        h = h @ W.T @ W * 0.5 if False else h
    return h.sum()


def zip_of_arrays(x, y):
    s = 0.0
    for a, b in zip(x, y):
        s += a * b
    return s


def test_nested_tuple_iteration() -> None:
    check(nested_iteration, [A("f64", 4, 3), A("f64", 4), A("f64", 2, 4), A("f64", 2), A("f64", 3)])
    with pytest.raises(UnsupportedError, match="supported over tuples only"):
        lower(zip_of_arrays, [ArrayType(F64, 1)] * 2)


def view_in_loop(W):
    row = W[0]
    for _ in range(3):
        row += 1.0
    return W.sum()


def view_after_branch(W, c):
    row = W[0] if c > 0 else W[1]
    row *= 2.0
    return W.sum()


def view_after_if(W, c):
    row = W[0] * 1.0
    if c > 1:
        row = W[1]
    row *= 2.0
    return W.sum()


def test_views_stay_views_through_loops_and_branches() -> None:
    for fn, types in ((view_in_loop, [ArrayType(F64, 2)]),
                      (view_after_branch, [ArrayType(F64, 2), F64]),
                      (view_after_if, [ArrayType(F64, 2), F64])):
        with pytest.raises(UnsupportedError, match="views"):
            lower(fn, types)


def early_exit_update(W, g, c):
    if c > 0:
        return np.sum(W)
    W -= g
    if c < -1:
        return 2.0 * np.sum(W)
    W[0] = 0.0
    return np.sum(W * W)


def f32_accumulator(w, x):
    s = 0.0
    for i in range(len(x)):
        s += w[i] * x[i]
    return s


def test_returns_keep_their_order_beside_updated_arguments() -> None:
    func = check(early_exit_update, [A("f64", 3), A("f64", 3), "f64"], grad=False)
    assert func.mutated == (0,) and len(func.results) == 2
    for c in (1.0, -2.0, -0.5):
        W, g = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])
        mine = W.copy()
        value, final = interpret(func, [W, g, c])
        assert value == early_exit_update(mine, g, c)
        np.testing.assert_allclose(final, mine)
    plain = lower(dot_loop, [ArrayType(F64, 1)] * 2)
    assert plain.mutated == () and len(plain.results) == 1


def test_a_python_float_accumulating_f32_values_becomes_f32() -> None:
    func = check(f32_accumulator, [A("f32", 4), A("f32", 4)], grad=False)
    assert func.results[0].type == spec_type("f32")
