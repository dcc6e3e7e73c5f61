"""The array corpus (corpus_arrays.py) from source through every oracle, float64 and float32:

- lowering: the interpreter on the lowered program gives what the Python function gives;
- derivatives: J·t against central differences along random directions, and the dot-product
  test <J t, c> = <t, Jᵀ c> between the tangent and adjoint programs (harness.py);
- backends: optimized vs unoptimized, generated Python vs the interpreter;
- float32: the f32 program's derivatives against the f64 program's, dtypes preserved;
- native (``test_native_*``): the function, its value and gradient and its forward-mode
  gradient through the public API on the native backend, against the interpreter on the same
  programs; a program left to generated Python fails.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import sxad
from arrays.corpus_arrays import CASES, ArrayCase
from arrays.harness import check_backends, check_derivatives, check_f32, flat
from oracles import assert_close
from sxad import api
from sxad.backends.interpreter import interpret
from sxad.frontend import lower
from sxad.ir import BOOL, F32, F64, I64, ArrayType, Func, Type
from tolerances import TOL

IDS = [case.name for case in CASES]
DTYPES = {np.dtype(np.float64): F64, np.dtype(np.float32): F32, np.dtype(np.int64): I64,
          np.dtype(np.bool_): BOOL}


def type_of(value) -> Type:
    if isinstance(value, np.ndarray):
        return ArrayType(DTYPES[value.dtype], value.ndim)
    if isinstance(value, np.generic):
        return DTYPES[value.dtype]
    return I64 if isinstance(value, (int, np.integer)) else F64


def example(case: ArrayCase, dtype=np.float64) -> tuple:
    """The case's arguments with float arrays (and float scalars) in ``dtype``."""
    args = case.args(np.random.default_rng(len(case.name)))
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                 else dtype(a) if isinstance(a, float) else a for a in args)


_LOWERED: dict = {}


def lowered(case: ArrayCase, dtype=np.float64):
    key = (case.name, np.dtype(dtype))
    if key not in _LOWERED:
        args = example(case, dtype)
        _LOWERED[key] = lower(case.fn, [type_of(a) for a in args]), args
    return _LOWERED[key]


def test_corpus_size() -> None:
    assert len(CASES) >= 50
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lowering_matches_python(case: ArrayCase) -> None:
    func, args = lowered(case)
    want = case.fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
    got = interpret(func, list(args))
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w), (case.name, np.shape(g), np.shape(w))
        assert_close(g, w, "backends", case.name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_derivatives(case: ArrayCase) -> None:
    func, args = lowered(case)
    check_derivatives(func, list(args))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backends(case: ArrayCase) -> None:
    func, args = lowered(case)
    check_backends(func, list(args))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32(case: ArrayCase) -> None:
    func64, args64 = lowered(case)
    func32, args32 = lowered(case, np.float32)
    for p in func32.params:
        if p.type.is_float:
            assert (p.type.dtype if isinstance(p.type, ArrayType) else p.type) is F32
    out32 = interpret(func32, list(args32))
    want = case.fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args32])
    for value, expected in zip(out32, want if isinstance(want, tuple) else (want,)):
        # numpy's promotion rules decide: f32 stays f32, np.zeros() and np.log(np.pi) are f64
        assert np.asarray(value).dtype == np.asarray(expected).dtype, (case.name, value, expected)
    assert_close(flat(out32), flat(interpret(func64, list(args64))), "f32", case.name)
    check_f32(func32, list(args32), func64, list(args64))


# --------------------------------------------------------------------------- native, through the API
#
# Each case through the public API on the native backend — the function (`jit`), its value and
# gradient (`value_and_grad`, reverse mode) and its forward-mode gradient (`value_and_grad(...,
# mode="forward")`, vector mode) — against the interpreter running the very program the API
# compiled, f64 and f32. Cases with array or tuple outputs take `vjp` and `jvp` instead. A
# program the native backend does not compile (served by generated Python), or arguments its
# entry point hands back, fail the test: the API would hide both. Each test compiles one kernel;
# the programs the kernels are built from are shared through the API's caches.


@dataclass(frozen=True)
class Native:
    """One case in one dtype, and what checking its native runs needs."""

    fn: Callable
    args: tuple
    label: str         # "logsumexp (float32)"
    tol: dict          # native against the interpreter, for this dtype
    declined: int      # ``backend_stats["declined"]`` before the run

    @property
    def wrt(self) -> tuple[int, ...]:
        return tuple(i for i, a in enumerate(self.args) if np.asarray(a).dtype.kind == "f")

    def scalar_output(self) -> bool:
        value = self.fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in self.args])
        return not isinstance(value, (tuple, np.ndarray))

    def program(self, kind: str) -> Func:
        """The program of the ``kind`` kernel for these argument types, after checking that
        native code ran it (not generated Python, and not declined at the native entry)."""
        types = tuple(api._type_of(self.fn, "", a) for a in self.args)
        keys = [k for k in api._kernels if k.fn is self.fn and k.kind == kind and k.types == types]
        assert len(keys) == 1, (self.label, kind, keys)
        assert api.backend_of(keys[0]) == "native", \
            f"{self.label} {kind}: served by generated Python: {api._kernels[keys[0]].reason}"
        assert sxad.backend_stats["declined"] == self.declined, \
            f"{self.label} {kind}: the native entry declined its arguments"
        return api._program(keys[0])

    def agrees(self, got: Any, want: Any, what: str, like: Any = None) -> None:
        """An API result against the interpreter's: the shape and dtype of ``like`` (the
        argument a derivative belongs to) or of ``want``, the values within tolerance. An f32
        case's f64 results (numpy promotes `np.log(np.pi)`) carry f32 roundings too: the
        tolerance is the case's."""
        what = f"{self.label}: {what}"
        got_array, want_array = np.asarray(got), np.asarray(want)
        model = want_array if like is None else np.asarray(like)
        assert got_array.shape == model.shape, (what, got_array.shape, model.shape)
        if isinstance(got, np.ndarray):   # scalars come back as Python numbers
            assert got.dtype == model.dtype, (what, got.dtype, model.dtype)
        if want_array.dtype.kind != "f":
            np.testing.assert_array_equal(got_array, want_array, err_msg=what)
        else:
            np.testing.assert_allclose(got_array, want_array.reshape(got_array.shape),
                                       err_msg=what, equal_nan=True, **self.tol)


def native_params() -> list:
    return [pytest.param(case, dtype, id=f"{case.name}-{np.dtype(dtype).name}")
            for dtype in (np.float64, np.float32) for case in CASES]


def native(case: ArrayCase, dtype) -> Native:
    tol = TOL["native-f32" if dtype is np.float32 else "native-array"]
    return Native(case.fn, example(case, dtype), f"{case.name} ({np.dtype(dtype).name})", tol,
                  sxad.backend_stats["declined"])


@pytest.mark.parametrize("case, dtype", native_params())
def test_native_function(case: ArrayCase, dtype) -> None:
    run = native(case, dtype)
    got = sxad.jit(run.fn)(*run.args)
    program = run.program("primal")
    want = interpret(program, list(run.args))[:len(program.returned)]
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        run.agrees(g, w, f"result {k}")


@pytest.mark.parametrize("case, dtype", native_params())
def test_native_value_and_gradient(case: ArrayCase, dtype) -> None:
    run = native(case, dtype)
    if not run.scalar_output():
        return check_native_vjp(run)
    value, grads = sxad.value_and_grad(run.fn, wrt=run.wrt)(*run.args)
    want = interpret(run.program("value_and_grad"), list(run.args))
    assert len(want) == 1 + len(run.wrt) == 1 + len(grads)
    run.agrees(value, want[0], "value")
    for i, g, w in zip(run.wrt, grads, want[1:]):
        run.agrees(g, w, f"gradient of argument {i}", like=run.args[i])
    assert any(np.any(np.asarray(g) != 0) for g in grads), run.label   # not vacuous


@pytest.mark.parametrize("case, dtype", native_params())
def test_native_forward_gradient(case: ArrayCase, dtype) -> None:
    run = native(case, dtype)
    if not run.scalar_output():
        return check_native_jvp(run)
    value, grads = sxad.value_and_grad(run.fn, wrt=run.wrt, mode="forward")(*run.args)
    likes = [run.args[i] for i in run.wrt]
    seeds = api._unit_seeds(likes, [api._type_of(run.fn, "", a) for a in likes])
    want = interpret(run.program("jvp_batched"), [*run.args, *seeds])
    run.agrees(value, want[0], "value")
    for i, g in zip(run.wrt, grads):   # each argument's part of the batch, shaped like it
        assert np.shape(g) == np.shape(run.args[i]), (run.label, i)
        if isinstance(run.args[i], np.ndarray):
            assert g.dtype == run.args[i].dtype, (run.label, i, g.dtype)
    batch = np.asarray(want[-1])   # one direction per element; the API casts each part to
    got = np.concatenate([np.ravel(g) for g in grads]).astype(batch.dtype)   # its argument's
    run.agrees(got, batch, "forward-mode gradient")


def random_like(values: Sequence[Any], seed: int) -> list:
    """A random array (or float) like each float value; None for the others."""
    rng = np.random.default_rng(seed)
    return [None if np.asarray(v).dtype.kind != "f" else
            rng.normal(size=v.shape).astype(v.dtype) if isinstance(v, np.ndarray) else
            float(rng.normal()) for v in values]


def check_native_vjp(run: Native) -> None:
    """An array- or tuple-valued case: ``vjp``'s pullback of random cotangents."""
    value, pullback = sxad.vjp(run.fn, *run.args)
    values = value if isinstance(value, tuple) else (value,)
    cotangents = random_like(values, 1)
    got = pullback(tuple(cotangents) if isinstance(value, tuple) else cotangents[0])
    want = interpret(run.program("vjp"), [*run.args, *[c for c in cotangents if c is not None]])
    run.program("returned")   # the value came from native code too
    n = len(values)
    assert len(want) == n + len(run.wrt)
    for k, (v, w) in enumerate(zip(values, want)):
        run.agrees(v, w, f"value {k}")
    for i, w in zip(run.wrt, want[n:]):
        run.agrees(got[i], w, f"cotangent of argument {i}", like=run.args[i])


def check_native_jvp(run: Native) -> None:
    """An array- or tuple-valued case: ``jvp`` along random tangents."""
    tangents = random_like(run.args, 2)
    value, dots = sxad.jvp(run.fn, run.args, [0 if t is None else t for t in tangents])
    want = interpret(run.program("jvp"), [*run.args, *[tangents[i] for i in run.wrt]])
    values = value if isinstance(value, tuple) else (value,)
    dots = [d for d in (dots if isinstance(dots, tuple) else (dots,)) if d is not None]
    n = len(values)
    assert dots and len(want) == n + len(dots)
    for k, (v, w) in enumerate(zip(values, want)):
        run.agrees(v, w, f"value {k}")
    for k, (d, w) in enumerate(zip(dots, want[n:])):
        run.agrees(d, w, f"tangent of float result {k}")
