"""``passes.shapes``: unbroadcasts between shapes proved equal vanish, sums of sums are taken
once, shape-only operands come from stored values; and native ``unbroadcast`` between arrays
that turn out equal at run time copies instead of reducing (both branches checked)."""
from __future__ import annotations

import numpy as np
import pytest

import sxad
from sxad.ir import ArrayType, F64, Func, Prim, Value, verify
from sxad.passes import DERIVATIVE_PIPELINE, simplify
from sxad.passes.shapes import same_shapes, shape_dims
from sxad.prims import Emitter, result_types

M, V = ArrayType(F64, 2), ArrayType(F64, 1)


def prims(func: Func) -> list[Prim]:
    return [op.prim for op in func.body.walk()]


def make(b: Emitter, results, names) -> Func:
    f = Func("f", b.finish(results), names)
    verify(f, result_types)
    return f


def test_equal_shapes_need_no_unbroadcast():
    x, m = Value(M, "x"), Value(M, "m")
    b = Emitter([x])
    peak = b.reduce_max(x, axes=(1,), keepdims=True)
    e = b.exp(b.sub(x, peak))                     # x's shape: the max broadcasts back
    ct = b.unbroadcast(b.mul(e, x), x)
    f = make(b, [ct], ("x",))
    out = same_shapes(f)
    assert Prim.UNBROADCAST not in prims(out)
    assert shape_dims(f)[e] == shape_dims(f)[x]


def test_arrays_made_without_array_operands_have_unknown_shapes():
    """A popped array or a ``full`` says nothing about its length (found by the random-program
    gradient test: a popped (3, 1) array was taken for (1, 1), and a sum went to the wrong
    shape)."""
    x, y = Value(M, "x"), Value(F64, "y")
    b = Emitter([x, y])
    ones = b.expand_dims(y, axes=(0, 1))          # (1, 1): both axes of length 1
    b.op(Prim.PUSH, [x], [], attrs={"slot": 0})
    (popped,) = b.op(Prim.POP, [], [M], attrs={"slot": 0})
    filled = b.full(y, b.dim(x, axis=0), b.dim(x, axis=1))
    f = make(b, [b.add(popped, ones), filled], ("x", "y"))
    dims = shape_dims(f)
    assert dims[ones] == (frozenset(), frozenset())
    assert all(d for d in dims[popped]) and all(d for d in dims[filled])


def test_a_real_broadcast_keeps_its_sum():
    a, c = Value(M, "a"), Value(V, "c")
    b = Emitter([a, c])
    d = b.sub(a, c)                   # (n, k) - (k,): a's k may be 1
    ct = b.unbroadcast(b.sin(d), a)
    f = make(b, [ct], ("a", "c"))
    assert Prim.UNBROADCAST in prims(same_shapes(f))


def sum_of_sum(keep_inner: bool) -> tuple[Func, Value, Value, Value]:
    """unbroadcast(unbroadcast(ct, v), mu) with ct of a shape v may be broadcast to."""
    x, mu, w = Value(V, "x"), Value(V, "mu"), Value(M, "w")
    b = Emitter([x, mu, w])
    v = b.sub(b.expand_dims(x, axes=(1,)), mu)
    ct = b.mul(b.cos(v), w)
    inner = b.unbroadcast(ct, v)
    to_mu = b.unbroadcast(inner, mu)
    f = make(b, [to_mu, inner] if keep_inner else [to_mu], ("x", "mu", "w"))
    return f, ct, inner, mu


def test_a_sum_of_a_sum_is_one_sum():
    f, ct, inner, mu = sum_of_sum(False)
    sums = [op for op in same_shapes(f).body.walk() if op.prim is Prim.UNBROADCAST]
    assert any(op.args[0] is ct and op.args[1] is mu for op in sums)
    assert all(op.args[0] is not inner for op in sums)   # DCE drops the inner sum


def test_a_sum_read_for_itself_is_kept():
    f, ct, inner, mu = sum_of_sum(True)
    sums = [op for op in same_shapes(f).body.walk() if op.prim is Prim.UNBROADCAST]
    assert any(op.args[0] is inner and op.args[1] is mu for op in sums)


def test_unbroadcast_of_a_negation_negates_the_sum():
    a, c = Value(M, "a"), Value(V, "c")
    b = Emitter([a, c])
    ct = b.unbroadcast(b.neg(b.sin(a)), c)
    out = simplify(make(b, [ct], ("a", "c")))
    last = list(out.body.walk())[-1]
    assert last.prim is Prim.NEG and list(out.body.walk())[-2].prim is Prim.UNBROADCAST


def broadcasting(a, c):
    return np.sum(np.sin(a - c) * a)


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((3, 1), (3, 4)), ((3, 4), (1,)),
                                    ((1, 4), (3, 1)), ((3, 4), (3, 4))],
                         ids=str)
def test_native_unbroadcast_both_branches(shapes):
    """Whether the shapes match is known only at run time: a copy where they do, a sum where
    they do not; both give numpy's gradient."""
    rng = np.random.default_rng(0)
    a, c = (rng.normal(size=s) for s in shapes)
    ga, gc = sxad.grad(broadcasting, wrt=(0, 1))(a, c)
    full = np.broadcast_shapes(a.shape, c.shape)
    d = np.broadcast_to(a - c, full)
    ca = np.cos(d) * a + np.sin(d)
    cc = -np.cos(d) * a

    def back(g, shape):
        g = np.sum(g, axis=tuple(range(g.ndim - len(shape))))
        return np.sum(g, axis=tuple(k for k, n in enumerate(shape) if n == 1), keepdims=True)
    np.testing.assert_allclose(ga, back(ca, a.shape), rtol=1e-12)
    np.testing.assert_allclose(gc, back(cc, c.shape), rtol=1e-12)


def test_derivative_pipeline_drops_equal_shape_sums():
    """The Gaussian mixture's adjoint: no sum back to a shape it already has."""
    def lse_rows(x):
        m = np.max(x, axis=1, keepdims=True)
        return np.sum(m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1)))
    text = sxad.source(sxad.grad(lse_rows), np.ones((3, 2)), stage="adjoint-ir")
    assert "unbroadcast" not in text
    assert any(name == "shapes" for name, _ in DERIVATIVE_PIPELINE)
