"""Arrays: wrong input ends in a clear exception naming what was wrong, never a crash
(docs/RELIABILITY.md, "Arrays").

Shapes that do not fit (`ValueError` naming the arguments and their shapes), dtypes sxad does not
take (`TypeError` naming the argument), ranks the function was not compiled for (a new
specialisation, or `UnsupportedError` at the construct that cannot take them), non-arrays where
arrays are used, indices out of range — constant or at run time, read or written, integers or
integer arrays — (`IndexError`, numpy's wording), differentiating with respect to an int array
or an array-valued function (`TypeError`). The run-time errors are checked on both backends,
in-process; one test writes far out of bounds in a subprocess, so that a missing check would
show as a crash rather than take the test run down.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sxad
from sxad import api

# --------------------------------------------------------------------------- the functions


def matvec(A, v):
    return np.sum(np.tanh(A @ v))


def product(x, y):
    return np.sum(x * y)


def squares(x):
    return np.sum(np.tanh(x) ** 2)


def squares_grad(x):
    t = np.tanh(x)
    return 2 * t * (1 - t * t)


def read(x, i):
    return x[i] * 2.0


def read_2d(x, i, j):
    return x[i, j] * x[0, 0]


def read_constant(x):
    return x[5] * 2.0


def gather(p, labels):
    return np.sum(np.log(p[np.arange(p.shape[0]), labels]))


def write(x, i):
    y = x * 1.0
    y[i] = 3.0 * x[0]
    return np.sum(y * y)


def write_many(x, idx):
    y = x * 1.0
    y[idx] = 0.0
    return np.sum(y * x)


def write_in_loop(x, n):
    y = np.zeros_like(x)
    for i in range(n):
        y[i] = x[i % 3] * 2.0
    return np.sum(y * x)


def largest(x):
    return np.max(x) * 2.0


def with_ints(x, k):
    return np.sum(x * k)


def doubled(x):
    return 2.0 * x


def both(x):
    return np.sin(x), np.sum(x)


def first(x):
    return x[0] * 2.0


def step(W, g):
    W -= 0.5 * g
    return np.sum(W * W)


A, V = np.ones((2, 3)), np.ones(3)


@pytest.fixture(params=["native", "python"])
def backend(request, monkeypatch) -> str:
    """Each test on both backends, its kernels compiled for it (the API's kernel cache is the
    test's own; codegen's object cache still spares recompiling)."""
    monkeypatch.setattr(api, "BACKEND", request.param)
    monkeypatch.setattr(api, "_kernels", {})
    monkeypatch.setattr(api, "_python_versions", {})
    return request.param


def served_by(backend: str, declined: int) -> None:
    """Every kernel the test made is of ``backend`` and none declined its arguments: an error
    checked "natively" did come from native code."""
    assert api._kernels, "no kernel was compiled"
    for key, compiled in api._kernels.items():
        assert compiled.backend == backend, (key.fn.__name__, key.kind, compiled.reason)
    assert sxad.backend_stats["declined"] == declined


def transforms(fn, wrt=0):
    """What a user calls: the function, its gradient both ways, value and gradient."""
    return {"jit": sxad.jit(fn), "grad": sxad.grad(fn, wrt=wrt),
            "forward": sxad.grad(fn, wrt=wrt, mode="forward"),
            "value_and_grad": sxad.value_and_grad(fn, wrt=wrt)}


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("kind", ["jit", "grad", "forward", "value_and_grad"])
def test_shapes_that_do_not_fit_name_the_arguments_and_their_shapes(backend, kind):
    declined = sxad.backend_stats["declined"]
    f = transforms(matvec, wrt=(0, 1))[kind]
    with pytest.raises(ValueError, match=r"^matvec: .*\(array arguments: `A` \(2, 3\), `v` "
                                         r"\(4,\)\)"):
        f(A, np.ones(4))
    g = transforms(product, wrt=(0, 1))[kind]
    with pytest.raises(ValueError, match=r"^product: operands could not be broadcast together "
                                         r"with shapes \(3,\) \(4,\).*`x` \(3,\), `y` \(4,\)"):
        g(np.ones(3), np.ones(4))
    served_by(backend, declined)


def test_jvp_and_vjp_name_the_shapes_too(backend):
    with pytest.raises(ValueError, match=r"`A` \(2, 3\), `v` \(4,\)"):
        sxad.jvp(matvec, (A, np.ones(4)), (A, np.ones(4)))
    with pytest.raises(ValueError, match=r"`A` \(2, 3\), `v` \(4,\)"):
        sxad.vjp(matvec, A, np.ones(4))


def test_index_arrays_that_do_not_broadcast_name_their_shapes(backend):
    # numpy says IndexError ("shape mismatch: indexing arrays could not be broadcast"); the
    # native backend a ValueError naming the arguments: both are clear, both name the shapes
    with pytest.raises((IndexError, ValueError), match=r"\(3,\) \(2,\)"):
        sxad.jit(gather)(np.full((3, 2), 0.5), np.array([0, 1]))


def test_max_of_an_empty_array_is_a_value_error(backend):
    with pytest.raises(ValueError, match="zero-size array|empty"):
        sxad.jit(largest)(np.ones(0))
    with pytest.raises(ValueError, match="zero-size array|empty"):
        sxad.grad(largest)(np.ones(0))


# --------------------------------------------------------------------------- dtypes and ranks

@pytest.mark.parametrize("value, dtype", [
    (np.ones(3, np.complex128), "complex128"), (np.ones(3, np.complex64), "complex64"),
    (np.ones(3, np.float16), "float16"), (np.ones(3, np.int32), "int32"),
    (np.ones(3, np.uint8), "uint8"), (np.ones(3, ">f8"), ">f8"),
    (np.array(["a", "b", "c"]), "<U1"), (np.array([1.0, None, 2.0]), "object")],
    ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("kind", ["jit", "grad", "forward"])
def test_dtypes_sxad_does_not_take_are_type_errors_naming_the_argument(value, dtype, kind):
    f = transforms(matvec, wrt=(0, 1))[kind]
    with pytest.raises(TypeError, match=rf"^argument `v` of matvec: arrays of {dtype} are not "
                                        rf"supported \(use float64, float32, int64 or bool\)"):
        f(A, value)


def test_a_rank_beyond_4_is_a_type_error_naming_the_argument():
    with pytest.raises(TypeError, match=r"argument `x` of squares: an array of rank 5 "
                                        r"\(shape \(1, 1, 1, 1, 1\)\); sxad takes arrays of rank "
                                        r"0 to 4"):
        sxad.grad(squares)(np.ones((1,) * 5))


def test_another_rank_or_dtype_is_a_new_specialisation(backend):
    """A transformed function is compiled per (dtype, rank) of its arguments; after a call has
    installed the native kernel as the fast path, arguments of another rank or dtype go back to
    the dispatcher and get a kernel of their own."""
    declined = sxad.backend_stats["declined"]
    g = sxad.grad(squares)
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(3, 4)), rng.normal(size=5), rng.normal(size=(2, 1, 3)), rng.normal(size=(3, 4)).astype(np.float32),
              rng.normal(size=(3, 4))]
    for x in values:
        got = g(x)
        assert isinstance(got, np.ndarray) and got.shape == x.shape and got.dtype == x.dtype
        tol = dict(rtol=1e-5, atol=1e-6) if x.dtype == np.float32 else dict(rtol=1e-12)
        np.testing.assert_allclose(got, squares_grad(x.astype(np.float64)), **tol)
    kernels = [k for k in api._kernels if k.fn is squares and k.kind == "grad"]
    assert sorted(str(t) for k in kernels for t in k.types) == \
        ["f32[:,:]", "f64[:,:,:]", "f64[:,:]", "f64[:]"]
    served_by(backend, declined)


def test_a_rank_a_construct_cannot_take_is_an_unsupported_error_at_the_construct():
    sxad.jit(matvec)(A, V)
    for wrong in (np.ones(()), np.ones((2, 2, 3))):
        with pytest.raises(sxad.UnsupportedError, match=r"test_array_errors.py:\d+:\d+: matmul "
                                                        r"of arrays of rank \d and 1"):
            sxad.jit(matvec)(wrong, V)
    with pytest.raises(sxad.UnsupportedError, match=r"too many indices: 2 for an array of "
                                                    r"rank 1"):
        sxad.jit(read_2d)(np.ones(3), 0, 0)


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0], None, "abc", {"x": 1.0}, 1 + 2j, object()],
                         ids=["list", "None", "str", "dict", "complex", "object"])
def test_non_arrays_where_arrays_are_used_are_type_errors_naming_the_argument(value):
    for f in transforms(matvec, wrt=(0, 1)).values():
        with pytest.raises(TypeError, match=r"^argument `v` of matvec: expected a float, int or "
                                            r"bool or an ndarray, got"):
            f(A, value)


def test_a_number_where_an_array_is_indexed_is_an_unsupported_error_naming_it():
    with pytest.raises(sxad.UnsupportedError, match=r"subscript of a number: `x` is a f64, not "
                                                    r"an array"):
        sxad.jit(first)(2.0)
    with pytest.raises(sxad.UnsupportedError, match=r"`@` \(matmul\) needs two arrays"):
        sxad.grad(matvec)(A, 2.0)


# --------------------------------------------------------------------------- indices

@pytest.mark.parametrize("kind", ["jit", "grad", "forward", "value_and_grad"])
def test_runtime_indices_out_of_range_are_index_errors(backend, kind):
    declined = sxad.backend_stats["declined"]
    x = np.arange(3.0)
    f = transforms(read)[kind]
    assert f(x, -3) is not None and f(x, 2) is not None   # the edges are in range
    for i in (3, -4, 2 ** 40, -2 ** 62):
        with pytest.raises(IndexError, match=rf"^index {i} is out of bounds for axis 0 with "
                                             rf"size 3$"):
            f(x, i)
    g = transforms(read_2d)[kind]
    with pytest.raises(IndexError, match=r"index 3 is out of bounds for axis 1 with size 3"):
        g(np.ones((2, 3)), 1, 3)
    with pytest.raises(IndexError, match=r"index -3 is out of bounds for axis 0 with size 2"):
        g(np.ones((2, 3)), -3, 0)
    with pytest.raises(IndexError, match=r"index 0 is out of bounds for axis 0 with size 0"):
        transforms(first)[kind](np.ones(0))
    served_by(backend, declined)


@pytest.mark.parametrize("kind", ["jit", "grad", "forward"])
def test_a_constant_index_out_of_range_is_an_index_error(backend, kind):
    """Shapes are run-time values: `x[5]` is checked when it runs, against the array given."""
    f = transforms(read_constant)[kind]
    assert f(np.ones(6)) is not None
    with pytest.raises(IndexError, match=r"^index 5 is out of bounds for axis 0 with size 3$"):
        f(np.ones(3))


@pytest.mark.parametrize("kind", ["jit", "grad", "forward"])
def test_integer_array_indices_out_of_range_are_index_errors(backend, kind):
    p = np.full((3, 2), 0.5)
    f = transforms(gather)[kind]
    assert f(p, np.array([0, 1, -2])) is not None
    for bad in (2, -3, 2 ** 40):
        with pytest.raises(IndexError, match=rf"index {bad} is out of bounds for axis 1 with "
                                             rf"size 2"):
            f(p, np.array([0, bad, 1]))


@pytest.mark.parametrize("kind", ["jit", "grad", "forward"])
def test_writes_out_of_range_are_index_errors(backend, kind):
    declined = sxad.backend_stats["declined"]
    x = np.ones(3)
    for i in (3, -4, 10 ** 9, -2 ** 62):
        with pytest.raises(IndexError, match=rf"index {i} is out of bounds for axis 0 with "
                                             rf"size 3"):
            transforms(write)[kind](x, i)
    with pytest.raises(IndexError, match=r"index 1099511627776 is out of bounds for axis 0"):
        transforms(write_many)[kind](x, np.array([0, 2 ** 40]))
    with pytest.raises(IndexError, match=r"index 3 is out of bounds for axis 0 with size 3"):
        transforms(write_in_loop)[kind](x, 10 ** 6)
    np.testing.assert_array_equal(x, np.ones(3))   # the argument is untouched
    served_by(backend, declined)


OUT_OF_BOUNDS = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import sxad
    from sxad import api
    from arrays.test_array_errors import write, write_in_loop, write_many
    assert api.BACKEND == "native"
    x = np.ones(3)
    caught = 0
    calls = [(write, (x, 10 ** 12)), (write, (x, -10 ** 12)), (write_in_loop, (x, 10 ** 7)),
             (write_many, (x, np.array([1, 2 ** 50, -2 ** 50])))]
    for fn, args in calls:
        for f in (sxad.jit(fn), sxad.grad(fn), sxad.grad(fn, mode="forward")):
            try:
                f(*args)
            except IndexError:
                caught += 1
    assert sxad.backend_stats["python"] == 0, dict(sxad.backend_stats)
    print(caught, "IndexErrors; x =", x.tolist())
""")


def test_writing_far_out_of_bounds_in_native_code_never_crashes():
    """Run where a segfault would only fail this test: writes 10¹² elements past an array's end
    (and before its start), a loop writing 10⁷ elements into 3, and integer-array writes, each
    through the function, its gradient and its forward-mode gradient."""
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "SXAD_BACKEND"}
    done = subprocess.run([sys.executable, "-c", OUT_OF_BOUNDS.format(tests=tests)], env=env,
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(tests))
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "12 IndexErrors; x = [1.0, 1.0, 1.0]", done.stdout


# --------------------------------------------------------------------------- derivatives

@pytest.mark.parametrize("dtype", [np.int64, np.bool_])
def test_differentiating_with_respect_to_an_int_array_is_a_type_error(dtype):
    x, k = np.ones(3), np.ones(3, dtype)
    kind = "an int array" if dtype is np.int64 else "a bool array"
    calls = [sxad.grad(with_ints, wrt=1), sxad.grad(with_ints, wrt="k", mode="forward"),
             sxad.value_and_grad(with_ints, wrt=(0, 1)), sxad.hessian(with_ints, wrt=1),
             sxad.jacobian(with_ints, wrt=1)]
    for f in calls:
        with pytest.raises(TypeError, match=rf"^cannot differentiate with_ints with respect to "
                                            rf"`k`: it is {kind} \(\w+\[:\]\), not a float"):
            f(x, k)
    assert sxad.grad(with_ints)(x, k).shape == (3,)   # with respect to the float array: fine


@pytest.mark.parametrize("transform", [sxad.grad, sxad.value_and_grad, sxad.hessian,
                                       lambda f: sxad.grad(f, mode="forward")],
                         ids=["grad", "value_and_grad", "hessian", "forward"])
def test_grad_of_an_array_valued_function_is_a_type_error_pointing_at_jacobian(transform):
    with pytest.raises(TypeError, match=r"^grad needs doubled to return one float, but it "
                                        r"returns a float array \(f64\[:\]\); use sxad.jacobian"):
        transform(doubled)(np.ones(3))
    with pytest.raises(TypeError, match=r"returns a tuple; use sxad.vjp, sxad.jvp or "
                                        r"sxad.jacobian"):
        transform(both)(np.ones(3))
    np.testing.assert_allclose(sxad.jacobian(doubled)(np.ones(3)), 2 * np.eye(3))


# --------------------------------------------------------------------------- fixed gaps, known gaps

def test_a_complex_tangent_or_cotangent_is_a_type_error():
    x = np.ones(3)
    with pytest.raises(TypeError, match="tangent of `x`"):
        sxad.jvp(squares, (x,), (x + 1j,))
    _, pullback = sxad.vjp(doubled, x)
    with pytest.raises(TypeError, match="cotangent 0"):
        pullback(x + 1j)


def test_an_update_in_place_the_native_entry_declines_is_still_written_back(monkeypatch):
    monkeypatch.setattr(api, "BACKEND", "native")
    buffer = np.zeros(3 * 8 + 1, np.uint8)
    W = buffer[1:].view(np.float64)             # not aligned: the native entry declines it
    W[:] = 1.0
    assert sxad.jit(step)(W, np.ones(3)) == pytest.approx(0.75)
    np.testing.assert_array_equal(W, [0.5, 0.5, 0.5])
    frozen = np.ones(3)
    frozen.setflags(write=False)                # Python raises; so must the compiled step
    with pytest.raises(ValueError, match="read-only"):
        sxad.jit(step)(frozen, np.ones(3))


def test_the_gradient_at_a_rank_0_array_is_a_rank_0_array():
    x = np.array(0.3)
    got = sxad.grad(squares)(x)
    assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == np.float64
    np.testing.assert_allclose(got, squares_grad(x), rtol=1e-12)


def _reductions_of_rank_0(x):
    return np.sum(x), np.max(x), np.mean(x), np.min(x * 2.0)


def test_full_reductions_of_a_rank_0_array_are_numbers_as_in_numpy():
    x = np.array(0.75)
    got = sxad.jit(_reductions_of_rank_0)(x)
    assert all(not isinstance(g, np.ndarray) for g in got)
    np.testing.assert_array_equal(got, _reductions_of_rank_0(x))
