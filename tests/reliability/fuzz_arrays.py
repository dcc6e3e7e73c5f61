"""The array half of the fuzzing driver (``fuzz_driver.py`` runs it in the same subprocess):
random array programs — elementwise math with broadcasting, reductions with axes/keepdims,
``@``, indexing and slicing with runtime indices, element, slice and in-place updates in loops,
``if`` on a reduction and on an array, constructs outside the subset — called through
``sxad.jit`` and ``sxad.grad`` with random array arguments: every supported dtype and rank 0–3,
empty arrays, strided, transposed, reversed, Fortran-ordered and read-only arrays, dtypes sxad
does not take (float16, complex, big-endian, uint8), shapes that do not broadcast, scalars and
tuples of arrays.

Each outcome is checked against numpy running the same source on fresh copies of the same
arguments: results by structure, dtype, shape and values (nan-aware, within a tolerance widened
by how much numpy's own result moves when the float arguments are nudged), the argument arrays
after the call (in-place updates must reach the caller's arrays as in numpy), and ``grad``
against central differences along a random direction where the function is smooth. Where numpy
raises, sxad must raise a documented error; where numpy gives a value, sxad gives the same value
or ``UnsupportedError`` (outside the subset) or an argument ``TypeError``.

Nothing here names the driver's ``TooSlow``: a reference run is timed with ``signal`` (the
driver's handler raises it) and the driver catches it around ``run_array``.
"""
from __future__ import annotations

import contextlib
import io
import linecache
import math
import re
import signal
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

import sxad

#: Seconds Python may run one reference call (the programs' loops are bounded).
PYTHON_SECONDS = 2.0

#: Disagreements with numpy that are sxad's documented behaviour, not bugs: counted, not failed.
#: Each maps a name to what the summary says. (A disagreement not listed here is a failure.)
TOLERATED = {
    "float16": "numpy computes math on bool arrays in float16, sxad (which has no float16) "
               "in float64",
    "int8": "numpy floor-divides bools into int8, sxad (which has no int8) into int64",
    "zero division": "Python's scalar division by zero raises, sxad's gives inf or nan "
                     "(numpy's semantics)",
    "float32 scalar": "an np.float32 scalar argument widened to float64",
    "joined": "a variable of two dtypes on two paths has the wider dtype on both",
    "unused": "an error in code whose result is unused is dropped",
    "complex": "a Python scalar power is complex where sxad follows numpy (nan)",
    "read-only equal": "a read-only argument an update leaves equal is not refused",
    "strong scalar": "a numpy scalar (an np.float64/np.int64 argument, or a reduction's or "
                     "an element's value) leaves float32 arrays float32, as a Python number does",
}

# --------------------------------------------------------------------------- arguments

#: What an argument array can be made of: its dtype, then how it is laid out in memory.
DTYPES = ["f64"] * 6 + ["f32"] * 2 + ["i64"] * 2 + ["bool", "bad"]
BAD_DTYPES = [np.float16, np.complex128, ">f8", np.uint8, np.int32]
LAYOUTS = ["c"] * 6 + ["step", "transposed", "reversed", "fortran", "readonly"]
NP_DTYPES = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "bool": np.bool_}


@dataclass(frozen=True)
class ArraySpec:
    """One array argument, rebuilt afresh from this description for every call (numpy's run
    and sxad's each get their own, in the same memory layout)."""

    shape: tuple[int, ...]
    dtype: Any          # a key of NP_DTYPES, or a numpy dtype sxad does not take
    layout: str
    seed: int
    special: bool       # a nan, an inf or a zero among the values

    def build(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        values = rng.normal(size=self.shape) * 1.5
        if self.special and values.size:
            values.flat[rng.integers(values.size)] = rng.choice([np.nan, np.inf, -np.inf, 0.0])
        dtype = NP_DTYPES.get(self.dtype, self.dtype)
        if dtype is np.int64:
            with np.errstate(invalid="ignore"):
                values = np.nan_to_num(np.round(values * 2), posinf=7, neginf=-7)
        elif dtype is np.bool_:
            values = values > 0
        with np.errstate(all="ignore"):   # nan and inf into int64 or float16
            array = np.asarray(values).astype(dtype)
        return _laid_out(array, self.layout)


def _laid_out(array: np.ndarray, layout: str) -> np.ndarray:
    """``array``'s values in the memory layout ``layout`` (a view where it is one)."""
    if array.ndim == 0 or layout == "c":
        return array
    if layout == "step":   # every other row of a twice-as-tall array
        base = np.repeat(array, 2, axis=0)
        return base[::2]
    if layout == "transposed":
        return np.ascontiguousarray(array.T).T
    if layout == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    if layout == "fortran":
        return np.asfortranarray(array)
    array = array.copy()
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class ArgsSpec:
    """The arguments of ``generated(x, y, w, i, j, s)`` (or ``generated(pair, w, i, j, s)``
    with ``pair = (x, y)``): ``y`` broadcasts against ``x`` (mostly), ``w`` fits ``x @ w``
    (mostly); ``i``, ``j`` are indices, sometimes out of range; ``s`` a scalar."""

    x: ArraySpec | Any
    y: ArraySpec | Any
    w: ArraySpec | Any
    i: Any
    j: Any
    s: Any

    def build(self, pair: bool) -> tuple:
        x, y, w = (a.build() if isinstance(a, ArraySpec) else a for a in (self.x, self.y, self.w))
        rest = (w, self.i, self.j, self.s)
        return ((x, y), *rest) if pair else (x, y, *rest)

    def reshaped(self, dims: tuple[int, ...]) -> "ArgsSpec":
        """The same types with other shapes: a second call runs the same compiled kernel."""
        def other(a: Any) -> Any:
            if not isinstance(a, ArraySpec) or not a.shape:
                return a
            return replace(a, shape=tuple(dims[k % len(dims)] for k in range(len(a.shape))),
                           seed=a.seed + 1)
        return replace(self, x=other(self.x), y=other(self.y), w=other(self.w))


@st.composite
def array_spec(draw: Any, shape: tuple[int, ...], dtype: str | None = None) -> ArraySpec:
    dtype = dtype or draw(st.sampled_from(DTYPES))
    if dtype == "bad":
        dtype = draw(st.sampled_from(BAD_DTYPES))
    return ArraySpec(shape, dtype, draw(st.sampled_from(LAYOUTS)), draw(st.integers(0, 2 ** 16)),
                     draw(st.integers(0, 5)) == 0)


@st.composite
def array_arguments(draw: Any) -> ArgsSpec:
    rank = draw(st.sampled_from([0, 1, 1, 2, 2, 2, 3]))
    dim = st.integers(1, 4) if draw(st.integers(0, 7)) else st.integers(0, 3)   # empty too
    shape = tuple(draw(dim) for _ in range(rank))
    x = draw(array_spec(shape))
    y_kind = draw(st.sampled_from(["same", "same", "suffix", "ones", "scalar", "rank0",
                                   "mismatch", "tuple-like", "rank5"]))
    if y_kind == "same":
        y_shape = shape
    elif y_kind == "suffix":
        y_shape = shape[draw(st.integers(0, rank)):]
    elif y_kind == "ones":
        y_shape = tuple(d if draw(st.booleans()) else 1 for d in shape)
    elif y_kind == "rank5":   # beyond sxad's rank 4: a TypeError naming `y`
        y_shape = (1, 2, 1, 1, 2)
    elif y_kind == "mismatch":
        y_shape = tuple(d + 1 + draw(st.integers(0, 2)) for d in shape) or (2,)
    else:
        y_shape = ()
    y: Any = draw(array_spec(y_shape))
    if y_kind == "scalar":
        y = draw(st.sampled_from([0.5, -2.0, 3, True, np.float64(1.25), np.float32(0.5),
                                  np.int64(2), math.nan]))
    elif y_kind == "tuple-like":   # not an array, not a number: a TypeError naming `y`
        y = draw(st.sampled_from([(1.0, 2.0), [1.0, 2.0], None, "y"]))
    inner = shape[-1] if shape else 2
    if draw(st.integers(0, 5)) == 0:
        inner += 1   # `x @ w` does not fit
    w_shape = draw(st.sampled_from([(inner,), (inner, draw(st.integers(1, 3))), (inner, 1, 2)]))
    w = draw(array_spec(w_shape, draw(st.sampled_from(["f64", "f64", "f32", "i64"]))))
    index = st.one_of(st.integers(-2, 3), st.sampled_from([-9, 7, np.int64(1)]))
    s = draw(st.sampled_from([0.5, -1.5, 2.0, 0.0, 3, np.float64(0.75), np.float32(1.5),
                              math.inf]))
    return ArgsSpec(x, y, w, draw(index), draw(index), s)


# --------------------------------------------------------------------------- programs

E_UNARY = ["np.sin({})", "np.exp({})", "np.tanh({})", "np.log(np.abs({}) + 0.5)", "np.sqrt({})",
           "np.abs({})", "-({})", "({}) ** 2", "np.sign({})", "np.clip({}, -1.0, 2.0)",
           "np.cos({})", "({}).T", "np.floor({})", "({}).astype(np.float32)",
           "({}).astype(np.float64)"]
E_BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / {})", "np.maximum({}, {})",
            "np.where({0} > {1}, {0}, {1})", "({} ** {})", "np.minimum({}, {})", "({} // {})",
            "np.logaddexp({}, {})", "({} > {})"]
E_ATOMS = ["a", "b", "x", "y", "s", "0.5", "2.0", "i", "1", "(-1)"]
REDUCTIONS = ["np.sum({v}{axis})", "np.mean({v}{axis})", "np.max({v}{axis})",
              "np.min({v}{axis})", "np.prod({v}{axis})", "{v}.sum({axis0})", "np.var({v}{axis})",
              "np.std({v}{axis})", "{v}.mean({axis0})"]
AXES = ["", "", ", axis=0", ", axis=-1", ", axis=1", ", axis=(0, 1)", ", axis=2",
        ", axis=0, keepdims=True", ", axis=-1, keepdims=True", ", keepdims=True", ", axis=None"]
MATMULS = ["a @ w", "x @ w", "np.dot(x, w)", "np.matmul(a, w)", "a @ a", "a.T @ a", "w @ w.T",
           "np.outer(a, w)", "a @ b"]
INDEXED = ["x[i]", "x[i, j]", "x[i:j]", "x[::2]", "x[:, j]", "x[-1]", "x[i:j:2]", "x[:, None]",
           "a[j]", "a[::-1]", "x[1:]", "a[i, :]", "x[..., 0]"]
UPDATES = ["a[i] = s", "a[i] += 1", "a[i, j] = s", "a[i:j] = 0.5", "a[:, j] *= 2", "a[j] -= a[i]",
           "x[i] = 1", "x[i] += s", "x[-1] = b"]
IN_PLACE = ["x += 1", "x *= s", "a -= b", "a /= 2.0", "y += x", "x -= 0.5 * x", "a *= a"]
LOOPS = ["for k in range(len(a)):\n    a[k] = a[k] * 0.5 + s",
         "for k in range(1, len(x)):\n    x[k] += x[k - 1]",
         "for k in range(min(abs(i), 3)):\n    a = a * 0.5 + np.tanh(b)",
         "for k in range(3):\n    a[k % len(a)] += k",
         "c = 0\nwhile c < 3 and np.sum(a) < 10.0:\n    c += 1\n    a = a + 0.5",
         "for row in x:\n    r = r + np.sum(row)",
         "for k in range(len(x)):\n    if np.sum(x[k]) > 0:\n        x[k] = 0\n    else:\n"
         "        continue"]
CONDITIONS = ["np.sum(a) > 0", "np.max(x) <= 1.0", "r > 0.5", "x.shape[0] > 1", "len(a) > 2",
              "np.mean(a) != np.mean(a)", "a.size > 3"]
ARRAY_CONDITIONS = ["a > 0", "x", "x == y", "a < s"]   # numpy: "truth value ... ambiguous"
#: Array things outside the subset: each must end in UnsupportedError where numpy runs them.
ARRAY_OUTSIDE = ["a = x[x > 0]", "k = np.argmax(x)", "a = np.concatenate([x, x])",
                 "zs = [x, y]", "t = x.tolist()", "a = np.cumsum(x)", "x.sort()",
                 "a = np.sort(x)", "a = x[[0, 1]]", "r = x.item()", "a = np.stack([x, x])",
                 "a = np.linalg.inv(a)", "r = x.nonzero()", "a = x.view()", "a = x.real",
                 "a = np.array([1.0, 2.0])", "q = x.data"]
ARRAY_ENDINGS = ["a", "np.sum(a) + r", "(a, b)", "r", "(a, np.sum(b))", "float(np.sum(a))",
                 "np.sum(a * x)", "np.sum(np.tanh(a)) + np.sum(x)", "x", "np.mean(a ** 2)",
                 "np.sum(x @ w)"]


@st.composite
def array_expr(draw: Any, depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(E_ATOMS))
    if draw(st.booleans()):
        return draw(st.sampled_from(E_UNARY)).format(draw(array_expr(depth - 1)))
    return draw(st.sampled_from(E_BINARY)).format(draw(array_expr(depth - 1)),
                                                  draw(array_expr(depth - 1)))


def _indent(text: str, depth: int) -> list[str]:
    return ["    " * depth + line for line in text.splitlines()]


@st.composite
def array_statements(draw: Any, depth: int, outside: list[str]) -> list[str]:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["elem", "elem", "reduce", "matmul", "index", "index",
                                     "update", "update", "in-place", "loop", "if", "if",
                                     "if-array", "copy", "swap"]))
        if outside and draw(st.integers(0, 2)) == 0:
            text = outside.pop()
        elif kind == "elem":
            text = f"a = {draw(array_expr())}"
        elif kind == "reduce":
            template, axis = draw(st.sampled_from(REDUCTIONS)), draw(st.sampled_from(AXES))
            text = draw(st.sampled_from(["r = {}", "a = {}", "a = a - {}"])).format(
                template.format(v=draw(st.sampled_from("abx")), axis=axis,
                                axis0=axis.lstrip(", ")))
        elif kind == "matmul":
            text = draw(st.sampled_from(["a = {}", "r = np.sum({})", "b = {}"])).format(
                draw(st.sampled_from(MATMULS)))
        elif kind == "index":
            text = draw(st.sampled_from(["a = {}", "r = np.sum({})", "b = {} * 2"])).format(
                draw(st.sampled_from(INDEXED)))
        elif kind == "update":
            text = draw(st.sampled_from(UPDATES))
        elif kind == "in-place":
            text = draw(st.sampled_from(IN_PLACE))
        elif kind == "loop":
            text = draw(st.sampled_from(LOOPS))
        elif kind in ("if", "if-array"):
            test = draw(st.sampled_from(CONDITIONS if kind == "if" else ARRAY_CONDITIONS))
            lines.append("    " * depth + f"if {test}:")
            lines += draw(array_statements(depth + 1, outside)) if depth < 3 else \
                _indent("a = a * 2.0", depth + 1)
            if draw(st.booleans()):
                lines.append("    " * depth + "else:")
                lines += _indent(f"a = {draw(array_expr(1))}", depth + 1)
            continue
        elif kind == "copy":
            text = draw(st.sampled_from(["a = x.copy()", "a = x", "b = a", "a = y * 1.0"]))
        else:
            text = "a, b = b, a"
        lines += _indent(text, depth)
    return lines


@dataclass(frozen=True)
class ArrayProgram:
    source: str
    pair: bool      # takes ``pair = (x, y)`` for ``x, y``
    outside: bool   # has a construct outside the subset (UnsupportedError is then expected)


@st.composite
def array_programs(draw: Any) -> ArrayProgram:
    outside = draw(st.lists(st.sampled_from(ARRAY_OUTSIDE), max_size=2)) \
        if draw(st.integers(0, 3)) == 0 else []
    is_outside = bool(outside)
    pair = draw(st.integers(0, 5)) == 0
    lines = ["def generated(pair, w, i, j, s):", "    x, y = pair"] if pair else \
        ["def generated(x, y, w, i, j, s):"]
    lines += [f"    a = {draw(st.sampled_from(['x', 'x * 1.0', 'x.copy()', 'x + y']))}",
              "    b = y", "    r = 0.0"]
    lines += draw(array_statements(1, outside))
    lines += _indent(outside.pop(), 1) if outside else []
    lines.append(f"    return {draw(st.sampled_from(ARRAY_ENDINGS))}")
    return ArrayProgram("\n".join(lines) + "\n", pair, is_outside)


# --------------------------------------------------------------------------- numpy's answer

@dataclass
class Outcome:
    kind: str           # "value" or "raised"
    value: Any          # the result, or the exception
    args: tuple         # the arguments after the call (updated in place or not)
    #: numpy cast complex values to real on the way (Python's ``(-1) ** 0.5`` is complex, and
    #: ``float()`` of a complex numpy sum keeps its real part, with a ComplexWarning)
    complex: bool = False


_COMPLEX_WARNING = getattr(np, "exceptions", np).ComplexWarning


def numpy_run(fn: Callable, args: tuple) -> Outcome:
    """``fn(*args)`` as Python runs it (numpy's warnings silenced); the timer's handler (set
    by the driver) stops a run longer than ``PYTHON_SECONDS``."""
    signal.setitimer(signal.ITIMER_REAL, PYTHON_SECONDS)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            value = fn(*args)
        went_complex = any(issubclass(w.category, _COMPLEX_WARNING) for w in caught)
        return Outcome("value", value, args, went_complex)
    except Exception as err:   # noqa: BLE001 — numpy failing is an outcome like any other
        return Outcome("raised", err, args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _leaves(value: Any) -> list:
    """A value's arrays and numbers in order (tuples flattened)."""
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def nudged(args: tuple, sign: int) -> tuple:
    """The arguments with every float (array or scalar) moved by a few ulps of its own dtype
    (float64 by 1e-12 relative, float32 by 1e-6) in direction ``sign``; the rest as it is."""
    def nudge(a: Any) -> Any:
        if isinstance(a, tuple):
            return tuple(map(nudge, a))
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            with np.errstate(all="ignore"):
                return a * a.dtype.type(1 + sign * RELATIVE[a.dtype.itemsize])
        if type(a) is float or isinstance(a, np.floating):
            return type(a)(a * (1 + sign * RELATIVE[np.dtype(type(a)).itemsize]))
        return a
    return tuple(map(nudge, args))


#: How far ``nudged`` moves a float of each size (bytes): float64, float32 (float16 is no
#: argument sxad takes; numpy's own float16 results get a wide tolerance instead).
RELATIVE = {8: 1e-12, 4: 1e-6, 2: 1e-3}


# --------------------------------------------------------------------------- comparing

def dtype_of(value: Any) -> np.dtype | None:
    """The dtype of a result leaf (a Python float is float64, an int int64), None if it is
    no number or array."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, float, np.number, np.ndarray)):
        return np.asarray(value).dtype
    return None


def _float_tolerance(dtype: np.dtype) -> tuple[float, float]:
    """(rtol, atol) for results computed in ``dtype`` (the narrower of sxad's and numpy's)."""
    return {2: (1e-2, 1e-4), 4: (1e-4, 1e-6)}.get(dtype.itemsize, (1e-9, 1e-13))


def compare(got: Any, expected: Any, beside: list[Any]) -> str | None:
    """None if sxad's ``got`` is numpy's ``expected``, else what differs. ``beside`` holds
    numpy's results at nudged arguments: an element may differ by as much as they move
    (ill-conditioned spots: cancellation, a branch or ``np.where`` flipping)."""
    if isinstance(expected, tuple) != isinstance(got, tuple):
        return f"a {type(got).__name__} where numpy gives a {type(expected).__name__}"
    if isinstance(expected, tuple):
        if len(got) != len(expected):
            return f"{len(got)} results where numpy gives {len(expected)}"
        for k, (g, e) in enumerate(zip(got, expected)):
            near = [b[k] if isinstance(b, tuple) and len(b) == len(expected) else None
                    for b in beside]
            found = compare(g, e, near)
            if found:
                return f"result {k}: {found}"
        return None
    return compare_leaf(got, expected, beside)


def compare_leaf(got: Any, expected: Any, beside: list[Any]) -> str | None:
    want, have = dtype_of(expected), dtype_of(got)
    if want is None:
        return None if have is None else f"{got!r} where numpy gives {expected!r}"
    if have is None:
        return f"{got!r} ({type(got).__name__}) where numpy gives {want} {expected!r}"
    if np.shape(got) != np.shape(expected):
        return f"shape {np.shape(got)} where numpy gives {np.shape(expected)}"
    if have != want and not (want == np.float16 and have.kind == "f") and \
            not (want == np.int8 and have.kind == "i"):
        return f"dtype {have} where numpy gives {want}"
    g, e = np.asarray(got), np.asarray(expected)
    if want.kind in "biu":
        moved = [np.asarray(b) for b in beside if b is not None and np.shape(b) == e.shape]
        bad = (g != e) & ~np.any([b != e for b in moved], axis=0) if moved else g != e
        return f"values {got!r} where numpy gives {expected!r}" if np.any(bad) else None
    return compare_floats(g, e, beside, min(have, want, key=lambda d: d.itemsize))


def compare_floats(g: np.ndarray, e: np.ndarray, beside: list[Any], dtype: np.dtype) -> \
        str | None:
    """Float results (flattened): the same nan and inf positions, the rest within tolerance."""
    flat_g, flat_e = g.astype(np.float64).ravel(), e.astype(np.float64).ravel()
    rtol, atol = _float_tolerance(np.dtype(dtype))
    slack = np.zeros(flat_e.shape)
    with np.errstate(all="ignore"):
        for b in beside:
            if b is None or np.shape(b) != e.shape or dtype_of(b) is None:
                slack[...] = np.inf   # numpy's own result changes shape: nothing to compare
                continue
            flat_b = np.asarray(b, dtype=np.float64).ravel()
            moved = np.abs(flat_b - flat_e)
            moved[np.isnan(flat_b) != np.isnan(flat_e)] = np.inf   # nan appears or goes
            moved[np.isnan(moved)] = 0.0
            slack = np.maximum(slack, 4 * moved)
        same_nan = np.isnan(flat_g) == np.isnan(flat_e)
        same_inf = (flat_g == flat_e) | (~np.isinf(flat_e) & ~np.isinf(flat_g))
        near = np.abs(flat_g - flat_e) <= rtol * np.abs(flat_e) + atol + slack
        ok = same_nan & same_inf & (near | np.isnan(flat_e) | (flat_g == flat_e)) | np.isinf(slack)
    if np.all(ok):
        return None
    k = int(np.argmin(ok))
    where = np.unravel_index(k, e.shape) if e.shape else ()
    return (f"values differ at {tuple(map(int, where))}: {flat_g[k]!r} where numpy gives "
            f"{flat_e[k]!r} (sxad {g!r:.300}, numpy {e!r:.300})")


def compare_args(after: tuple, expected: tuple) -> str | None:
    """The argument arrays after sxad's call against numpy's after its own: in-place updates
    must reach the caller's arrays, and nothing else may change."""
    for k, (g, e) in enumerate(zip(_leaves(after), _leaves(expected))):
        if isinstance(e, np.ndarray) and not np.array_equal(g, e, equal_nan=e.dtype.kind == "f"):
            return f"argument {k} after the call is {g!r:.300}, numpy leaves {e!r:.300}"
    return None


# --------------------------------------------------------------------------- running one

def load_array_program(source: str, serial: int, namespace: dict) -> Callable | None:
    filename = f"<fuzz-array-{serial}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError:
        return None
    scope = dict(namespace)
    exec(code, scope)
    return scope["generated"]


def run_array(program: ArrayProgram, spec: ArgsSpec, report: Any, namespace: dict,
              do_grad: bool) -> None:
    """``sxad.jit`` on the arguments, then ``sxad.grad`` (when ``do_grad`` and jit gave a value),
    then ``jit`` again on arguments of the same types and other shapes (its installed kernel),
    each checked against numpy."""
    report.serial += 1
    fn = load_array_program(program.source, report.serial, namespace)
    if fn is None:
        report.count("array: python rejects the source")
        return
    with open(report.current, "w") as out:   # what was running, should the process die
        out.write(f"# array arguments = {spec!r}\n{program.source}")
    report.array_tried += 1
    case = Case(program, fn, namespace, report)
    jitted = sxad.jit(fn)
    if case.check_jit(jitted, spec) and do_grad:
        check_array_grad(fn, program, spec, report)
    case.check_jit(jitted, spec.reshaped((3, 2, 4)))


def _is_argument_error(err: Exception) -> bool:
    return isinstance(err, TypeError) and str(err).startswith("argument `")


@dataclass
class Case:
    """One program under test, with what checking a call of it needs."""

    program: ArrayProgram
    fn: Callable
    namespace: dict
    report: Any

    def check_jit(self, jitted: Callable, spec: ArgsSpec) -> bool:
        """Whether ``jitted`` gave numpy's values (and left the arguments as numpy does);
        False when it raised (documented: counted) or disagreed (recorded)."""
        pair, source, report = self.program.pair, self.program.source, self.report
        expected = numpy_run(self.fn, spec.build(pair))
        args = spec.build(pair)
        try:
            got = jitted(*args)
        except report.documented as err:
            report.count(f"array jit: {_error_label(err, expected)}")
            report.check_message(source, args, err)
            wrong = _wrong_error(err, expected) or _not_taken(args, err)
            if wrong:
                report.fail(source, args, wrong[1], kind=wrong[0])
            return False
        except Exception as err:   # noqa: BLE001
            report.fail(source, args, f"jit raised {type(err).__name__}: {err}",
                        kind=f"undocumented {type(err).__name__}")
            return False
        refused = _not_taken(args, None)
        if refused:
            report.fail(source, args, f"jit returned {got!r:.300} for {refused[1]}",
                        kind=refused[0])
            return False
        if expected.kind == "raised":
            kind = self._no_error_kind(expected.value, spec, got)
            if kind in (TOLERATED["unused"], TOLERATED["read-only equal"],
                        TOLERATED["zero division"]):
                report.count(f"array jit: {kind}")
                return True
            report.fail(source, args, f"jit returned {got!r:.300} where numpy raises "
                                      f"{type(expected.value).__name__}: {expected.value}",
                        kind=kind)
            return False
        beside = [numpy_run(self.fn, nudged(spec.build(pair), sign)) for sign in (1, -1)]
        near = [b.value if b.kind == "value" else None for b in beside]
        wrong = compare(got, expected.value, near)
        if wrong:
            tolerated = _tolerated(source, args, got, expected.value, near)
            if tolerated is None and expected.complex:
                tolerated = TOLERATED["complex"]
            if tolerated is None and _kind(wrong, args, got, source) == TOLERATED["strong scalar"]:
                tolerated = TOLERATED["strong scalar"]
            if tolerated:
                report.count(f"array jit: {tolerated}")
                return True
            report.fail(source, args, f"jit: {wrong}", kind=_kind(wrong, args, got, source))
            return False
        wrong = compare_args(args, expected.args)
        if wrong:
            report.fail(source, args, f"jit: {wrong}", kind="an argument after the call")
            return False
        report.count("array jit: same as numpy" + _small_dtype(expected.value))
        return True

    def _no_error_kind(self, error: Exception, spec: ArgsSpec, got: Any) -> str:
        """Why sxad gave a value where numpy raised ``error``: a read-only argument written, a
        fault in code whose result nothing uses (sxad's result is numpy's with the faulting
        line replaced by one that cannot fail), or neither."""
        if "read-only" in str(error):
            # sxad refuses a read-only argument the run changed (a ValueError, checked in
            # _wrong_error); a value here means the update left it equal
            return TOLERATED["read-only equal"]
        if isinstance(error, ZeroDivisionError):   # Python numbers: numpy's would give inf
            return TOLERATED["zero division"]
        lines = self.program.source.splitlines()
        if self._explained(lines, error, spec, got, depth=3):
            return TOLERATED["unused"]
        return "a value where numpy raises"

    def _explained(self, lines: list[str], error: Exception, spec: ArgsSpec, got: Any,
                   depth: int) -> bool:
        """Whether replacing the line that raised ``error`` (and, in turn, up to ``depth``
        lines that raise next) by harmless ones makes numpy give sxad's ``got``."""
        line = _faulting_line(error)
        if depth == 0 or line is None or not 1 < line <= len(lines):
            return False
        for replacement in _harmless(lines[line - 1]):
            changed = lines[:line - 1] + [replacement] + lines[line:]
            without = load_array_program("\n".join(changed) + "\n", 0, self.namespace)
            if without is None:
                continue
            outcome = numpy_run(without, spec.build(self.program.pair))
            if outcome.kind == "value":
                near = [numpy_run(without, nudged(spec.build(self.program.pair), sign))
                        for sign in (1, -1)]
                beside = [n.value if n.kind == "value" else None for n in near]
                args = spec.build(self.program.pair)
                if compare(got, outcome.value, beside) is None or outcome.complex or _tolerated(
                        self.program.source, args, got, outcome.value, beside):
                    return True
            elif _faulting_line(outcome.value) not in (None, line) and \
                    self._explained(changed, outcome.value, spec, got, depth - 1):
                return True
        return False


def _harmless(line: str) -> list[str]:
    """Lines that may stand for ``line`` and cannot fail: ``pass``, or for an assignment the
    same names bound to an argument, for an ``if``/``while`` a constant test."""
    pad = line[:len(line) - len(line.lstrip())]
    text = line.strip()
    if text.startswith(("if ", "while ")):
        return [f"{pad}{text.split()[0]} {test}:" for test in ("True", "False")]
    if text.endswith(":"):
        return []
    target = re.match(r"([\w, ]+?)\s*(=|\+=|-=|\*=|/=)(?!=)", text)
    names = target.group(1).split(",") if target else []
    bound = [pad + "; ".join(f"{n.strip()} = {v}" for n in names if n.strip())
             for v in ("x", "y", "0.0", "s")] if names else []
    return [f"{pad}pass", *bound]


def _not_taken(args: tuple, err: Exception | None) -> tuple[str, str] | None:
    """(kind, what) if an argument is an array sxad does not take (a dtype it lacks, another
    byte order, rank > 4) and ``err`` is no TypeError (or UnsupportedError, which may come
    first) naming it."""
    for leaf in _leaves(args):
        if isinstance(leaf, np.ndarray) and (leaf.dtype not in TAKEN or leaf.ndim > 4):
            if isinstance(err, (TypeError, sxad.UnsupportedError)):
                return None
            return ("an array sxad does not take, without a TypeError",
                    f"an array of {leaf.dtype.str}, rank {leaf.ndim}")
    return None


#: The array dtypes sxad takes (native byte order).
TAKEN = {np.dtype(t) for t in NP_DTYPES.values()}


def _faulting_line(error: Exception) -> int | None:
    """The line of the generated program where numpy raised ``error``."""
    tb, line = error.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<fuzz-array-"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _error_label(err: Exception, expected: Outcome) -> str:
    label = type(err).__name__
    if expected.kind == "value":
        label += " where numpy runs the program" if isinstance(err, sxad.UnsupportedError) \
            else " where numpy gives a value"
    return label


#: Code making a numpy scalar out of an array: a full reduction, a dot product, an element.
_SCALAR_FROM_ARRAY = re.compile(r"np\.(sum|max|min|mean|prod|dot)\(|\.(sum|max|min|mean|prod)"
                                r"\(|\[[^\]:]*\]")


def _kind(wrong: str, args: tuple, got: Any, source: str = "") -> str:
    """A short name for a disagreement (the report shows a few programs of each kind)."""
    wrong = re.sub(r"^(result \d+: )", "", wrong)
    kind = re.sub(r" at .*| \(.*|: .*", "", wrong)[:60]
    if kind == "dtype float32 where numpy gives float64" and _strong_scalars(args, source):
        return TOLERATED["strong scalar"]
    if kind == "dtype float64 where numpy gives float32" and \
            any(type(leaf) is float for leaf in _leaves(got)):
        return "a float32 scalar result comes back as a Python float"
    return kind


def _strong_scalars(args: tuple, source: str) -> bool:
    """Whether the program may hold a numpy scalar of 64 bits (numpy 2 lets it widen float32
    arrays; sxad types it as a Python number): an np.float64/np.int64 argument, or one made
    from a float64/int64/bool array argument."""
    leaves = _leaves(args)
    if any(isinstance(a, (np.float64, np.int64)) for a in leaves):
        return True
    wide = any(isinstance(a, np.ndarray) and a.dtype in (np.float64, np.int64, np.bool_)
               for a in leaves)
    return wide and bool(_SCALAR_FROM_ARRAY.search(source))


def _small_dtype(expected: Any) -> str:
    """The documented difference a numpy float16 or int8 result (of bools) is, if any."""
    if any(dtype_of(leaf) == np.float16 for leaf in _leaves(expected)):
        return f" ({TOLERATED['float16']})"
    if any(dtype_of(leaf) == np.int8 for leaf in _leaves(expected)):
        return f" ({TOLERATED['int8']})"
    return ""


def _tolerated(source: str, args: tuple, got: Any, expected: Any, near: list) -> str | None:
    """The documented difference that explains ``got``, if one does: an np.float32 scalar
    argument is widened to float64; a variable holding arrays of two dtypes on two paths has
    the wider dtype on both (as a scalar int on one path and float on another is a float);
    Python's scalar ``(-1) ** 0.5`` is complex, sxad's (numpy semantics, no complex) nan."""
    if any(np.iscomplexobj(leaf) for leaf in _leaves(expected)):
        return TOLERATED["complex"]
    if any(isinstance(a, np.ndarray) and a.dtype == np.bool_ or isinstance(a, (bool, np.bool_))
           for a in _leaves(args)):   # np.tanh(True) is a float16 too
        def half(v: Any) -> Any:   # numpy's float16 intermediates, widened later
            kind = dtype_of(v)
            return np.asarray(v).astype(np.float16) if kind is not None and kind.kind == "f" \
                else v
        if compare(got, _mapped(half, expected), [_mapped(half, n) for n in near]) is None:
            return TOLERATED["float16"]
    if any(isinstance(a, np.float32) for a in _leaves(args)):
        def widened(v: Any) -> Any:
            return np.float64(v) if isinstance(v, np.float32) else v
        if compare(got, _mapped(widened, expected), [_mapped(widened, n) for n in near]) is None:
            return TOLERATED["float32 scalar"]
    if re.search(r"\b(if|while|for)\b", source):
        def wider(e: Any, g: Any) -> Any:
            want, have = dtype_of(e), dtype_of(g)
            if want is None or have is None or np.promote_types(want, have) != have:
                return e
            return np.asarray(e).astype(have)
        if compare(got, _zipped(wider, expected, got), near) is None:
            return TOLERATED["joined"]
    return None


def _mapped(f: Callable, value: Any) -> Any:
    return tuple(_mapped(f, v) for v in value) if isinstance(value, tuple) else f(value)


def _zipped(f: Callable, value: Any, like: Any) -> Any:
    if isinstance(value, tuple) and isinstance(like, tuple) and len(value) == len(like):
        return tuple(_zipped(f, v, w) for v, w in zip(value, like))
    return f(value, like)


def _wrong_error(err: Exception, expected: Outcome) -> tuple[str, str] | None:
    """(kind, what) is wrong with sxad raising ``err`` where numpy gave ``expected``: an
    IndexError or a ValueError (not about an argument) only where numpy raises."""
    if isinstance(err, sxad.UnsupportedError) or _is_argument_error(err):
        return None
    if expected.kind == "raised" and "read-only" in str(expected.value):
        if isinstance(err, ValueError):
            return None   # refused as numpy refuses (or for a shape error numpy checks later)
        return ("a read-only argument written without an error",
                f"{type(err).__name__} ({err}) where numpy raises {expected.value!r}")
    # An IndexError where numpy raises another error is fine: an operation whose result nothing
    # uses is dropped with its error (documented), so a later one may come first.
    if expected.kind == "value" and isinstance(err, (ValueError, IndexError)):
        return (f"a {type(err).__name__} where numpy gives a value",
                f"{type(err).__name__} ({err}) where numpy gives {expected.value!r:.200}")
    return None


# --------------------------------------------------------------------------- grad

def check_array_grad(fn: Callable, program: ArrayProgram, spec: ArgsSpec, report: Any) -> None:
    """``grad`` with respect to the first argument: an array (a tuple for ``pair``) of its
    shape and dtype whose product with a random direction is the central difference of numpy's
    function along it, where that is smooth; or a documented error."""
    args = spec.build(program.pair)
    source = program.source
    try:
        got = sxad.grad(fn)(*args)
    except report.documented as err:
        report.count(f"array grad: {type(err).__name__}")
        report.check_message(source, args, err)
        if isinstance(err, (IndexError, ValueError)) and not str(err).startswith("wrt"):
            # jit ran these arguments to a value: the derivative program failed on its own
            report.fail(source, args, f"grad raised {type(err).__name__}: {err}",
                        kind=f"grad: a {type(err).__name__} where jit gives a value")
        return
    except Exception as err:   # noqa: BLE001
        report.fail(source, args, f"grad raised {type(err).__name__}: {err}",
                    kind=f"grad: undocumented {type(err).__name__}")
        return
    first = args[0]
    wrong = _gradient_form(got, first)
    if wrong:
        report.fail(source, args, f"grad: {wrong}", kind="grad: the gradient's form")
        return
    rng = np.random.default_rng(7)
    direction = [rng.normal(size=np.shape(leaf)) for leaf in _leaves(first)]
    along = sum(float(np.sum(np.asarray(g, np.float64) * d))
                for g, d in zip(_leaves(got), direction))
    slope = directional_slope(fn, spec, program.pair, direction)
    low = any(np.asarray(leaf).dtype == np.float32 for leaf in _leaves(first))
    if slope is None:
        report.count("array grad: an array (not smooth here)")
    elif math.isnan(along):
        report.count("array grad: nan (an intermediate derivative is undefined here)")
    elif math.isclose(along, slope, rel_tol=1e-2 if low else 1e-4, abs_tol=1e-5):
        report.count("array grad: same as finite differences")
    elif any(step in source for step in ("//", "floor", "sign", "astype", "> ", "max", "min",
                                         "clip", "where", "abs")):
        report.count("array grad: a step or kink in the program, not compared")
    else:
        report.fail(source, args, f"grad · direction = {along!r}, finite differences {slope!r}",
                    kind="grad: differs from finite differences")


def _gradient_form(got: Any, first: Any) -> str | None:
    """What is wrong with the gradient's structure, shape or dtype, if anything."""
    if isinstance(first, tuple):
        if not isinstance(got, tuple) or len(got) != len(first):
            return f"{got!r:.200} for a tuple argument of {len(first)}"
        return next(filter(None, (_gradient_form(g, f) for g, f in zip(got, first))), None)
    if np.shape(got) != np.shape(first):
        return f"shape {np.shape(got)} for an argument of shape {np.shape(first)}"
    want = np.asarray(first).dtype if isinstance(first, np.ndarray) else np.dtype(np.float64)
    have = dtype_of(got)   # (a float scalar argument, np.float32 too, is a float64)
    if want.kind == "f" and have != want:
        return f"dtype {have} for an argument of dtype {want}"
    return None


def directional_slope(fn: Callable, spec: ArgsSpec, pair: bool, direction: list) -> \
        float | None:
    """d/dt of numpy's ``fn(first + t·direction, …)`` at 0 by the 4-point stencil, in float64
    (a float32 argument is widened: its own differences would be noise); None where the one-
    sided slopes disagree (a kink, a branch switch) or a value is not finite."""
    h = 1e-6

    def at(t: float) -> float | None:
        args = list(spec.build(pair))
        leaves = iter(direction)

        def move(a: Any) -> Any:
            if isinstance(a, tuple):
                return tuple(map(move, a))
            d = next(leaves)
            return np.asarray(a, np.float64) + t * d if np.asarray(a).dtype.kind == "f" else a
        args[0] = move(args[0])
        outcome = numpy_run(fn, tuple(args))
        value = outcome.value
        if outcome.kind != "value" or dtype_of(value) is None or np.ndim(value) != 0:
            return None
        value = float(value)
        return value if math.isfinite(value) else None
    values = [at(t) for t in (-2 * h, -h, 0.0, h, 2 * h)]
    if any(v is None for v in values):
        return None
    m2, m1, mid, p1, p2 = values
    central = (8 * (p1 - m1) - (p2 - m2)) / (12 * h)
    left, right = (mid - m1) / h, (p1 - mid) / h
    scale = 1e-3 * max(1.0, abs(central))
    if 1e-15 * max(map(abs, values)) / h > 1e-7 * max(1.0, abs(central)):
        return None   # rounding swamps the slope
    if abs(left - central) > scale or abs(right - central) > scale:
        return None
    return central

