"""A training step as examples/mlp_digits.py writes it, lowered whole: tuple parameters
(``params = (W1, b1, W2, b2)``, an optimizer ``state``), a transformed callee
(``__sxad_program__``; a fake here, whose program ``lower`` builds), sxad.nn's layers and
losses with a function passed as an argument, loops unrolled over tuples, and the parameters
updated in place (``Func.mutated``, in the flat order of the tuple's items)."""
from __future__ import annotations

import numpy as np

from arrays.harness import check_derivatives
from frontend.test_arrays import prims
import sxad
from sxad import nn
from sxad.backends.interpreter import interpret
from sxad.frontend import lower
from sxad.ir import F64, I64, ArrayType, Prim

MATRIX, VECTOR, LABELS = ArrayType(F64, 2), ArrayType(F64, 1), ArrayType(I64, 1)
PARAMS = (MATRIX, VECTOR, MATRIX, VECTOR)
ACTIVATION = nn.sigmoid
LOSS = "softmax_ce"


def objective(params, x, y):
    logits = nn.mlp_forward(params, x, ACTIVATION)
    if LOSS == "mse":
        return nn.mse(nn.one_hot_like(logits, y), logits)
    return nn.softmax_cross_entropy(logits, y)


def fake_value_and_grad(params, x, y):
    """Stands for sxad.value_and_grad(objective): the value, and one array per parameter."""
    W1, b1, W2, b2 = params
    loss = objective(params, x, y)
    return loss, W1 * loss, b1 * 0.5, np.sign(W2) * loss, b2 - 1.0


class FakeValueAndGrad:
    def __sxad_program__(self, types):
        return lower(fake_value_and_grad, types), (0, (1, 2, 3, 4))

    def __call__(self, params, x, y):
        value, *grads = fake_value_and_grad(params, x, y)
        return value, tuple(grads)


value_and_grad = FakeValueAndGrad()


def sgd(params, state, x, y, lr):
    value, grads = value_and_grad(params, x, y)
    for p, g in zip(params, grads):
        p -= lr * g
    return value


def momentum(params, state, x, y, lr):
    value, grads = value_and_grad(params, x, y)
    for p, v, g in zip(params, state, grads):
        v *= 0.9
        v -= lr * g
        p += v
    return value


def adam(params, state, x, y, lr):
    value, grads = value_and_grad(params, x, y)
    t = state[0]
    t += 1.0
    ms, vs = state[1:1 + len(params)], state[1 + len(params):]
    for p, m, v, g in zip(params, ms, vs, grads):
        m *= 0.9
        m += 0.1 * g
        v *= 0.999
        v += 0.001 * g * g
        p -= lr * (m / (1.0 - 0.9 ** t)) / (np.sqrt(v / (1.0 - 0.999 ** t)) + 1e-8)
    return value


def network(seed: int = 0):
    rng = np.random.default_rng(seed)
    params = (rng.normal(size=(4, 5)) * 0.5, rng.normal(size=4) * 0.1,
              rng.normal(size=(3, 4)) * 0.5, rng.normal(size=3) * 0.1)
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)
    return params, x, y


def run_step(step, state):
    params, x, y = network()
    types = (tuple(ArrayType(F64, np.ndim(p)) for p in params),
             tuple(ArrayType(F64, np.ndim(s)) for s in state), MATRIX, LABELS, F64)
    func = lower(step, types)
    flat = [*params, *state, x, y, 0.1]
    got = interpret(func, flat)
    mine = [np.copy(p) for p in params], [np.copy(s) for s in state]
    want = step(tuple(mine[0]), tuple(mine[1]), x, y, 0.1)
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    updated = [*mine[0], *mine[1]]
    assert func.mutated == tuple(range(len(updated))), func.mutated
    for g, w in zip(got[1:], updated):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    assert func.arg_names[:2] == ("params_0", "params_1")
    return func


def test_sgd_step_updates_the_parameter_tuple() -> None:
    func = run_step(sgd, ())
    assert Prim.INDEX in prims(func)   # the labels' gather, inlined from the fake program


def test_momentum_and_adam_update_their_state_too() -> None:
    params, _, _ = network()
    run_step(momentum, tuple(np.zeros_like(p) for p in params))
    state = (np.zeros(()), *(np.zeros_like(p) for p in params), *(np.zeros_like(p) for p in params))
    run_step(adam, state)


def objective_mse(params, x, y):
    logits = nn.mlp_forward(params, x, nn.tanh)
    return nn.mse(nn.one_hot_like(logits, y), logits)


def test_library_losses_and_layers_differentiate() -> None:
    params, x, y = network(1)
    for fn in (objective, objective_mse):
        func = lower(fn, (PARAMS, MATRIX, LABELS))
        got = interpret(func, [*params, x, y])
        np.testing.assert_allclose(got[0], fn(params, x, y), rtol=1e-12)
        check_derivatives(func, [*params, x, y])


def test_fingerprint_and_guards_see_strings_and_transformed_callees() -> None:
    from sxad.frontend import fingerprint, unchanged, watch
    global LOSS
    before, guards = fingerprint(objective), watch(objective)
    LOSS = "mse"
    try:
        assert fingerprint(objective) != before and not unchanged(guards)
    finally:
        LOSS = "softmax_ce"
    assert fingerprint(objective) == before and unchanged(guards)
    value_and_grad.fn = fake_value_and_grad   # what sxad's transformed functions carry
    try:
        code_guards = [g for g in watch(sgd) if g[1] == "__code__"]
        assert any(owner is fake_value_and_grad for owner, _, _ in code_guards)
    finally:
        del value_and_grad.fn


real_value_and_grad = sxad.value_and_grad(objective)


def real_sgd(params, state, x, y, lr):
    value, grads = real_value_and_grad(params, x, y)
    for p, g in zip(params, grads):
        p -= lr * g
    return value


def test_with_sxads_own_value_and_grad() -> None:
    """The real transformed callee: the step's updates are gradient steps (checked against
    central differences of the loss)."""
    params, x, y = network(2)
    func = lower(real_sgd, (PARAMS, (), MATRIX, LABELS, F64))
    got = interpret(func, [*params, x, y, 0.1])
    np.testing.assert_allclose(got[0], objective(params, x, y), rtol=1e-12)
    assert func.mutated == (0, 1, 2, 3)
    eps = 1e-6
    for k, p in enumerate(params):
        grad = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            moved = [q.copy() for q in params]
            moved[k][idx] += eps
            up = objective(tuple(moved), x, y)
            moved[k][idx] -= 2 * eps
            grad[idx] = (up - objective(tuple(moved), x, y)) / (2 * eps)
        np.testing.assert_allclose(got[1 + k], p - 0.1 * grad, rtol=1e-7, atol=1e-9)
