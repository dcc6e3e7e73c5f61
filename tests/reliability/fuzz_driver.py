"""The fuzzing driver: random Python functions, inside and outside sxad's subset, run through
``sxad.jit`` and ``sxad.grad`` with random arguments (some of them not numbers). Each outcome
must be a correct result or one of sxad's documented exceptions (``DOCUMENTED``). Scalar programs
are made here; array programs and arguments in ``fuzz_arrays.py``. The time budget is shared:
scalar programs first, then array programs (``--array-share`` of it: they compile slower).

It runs as a script in a subprocess of ``test_rel_fuzz.py``, so that a crash of the interpreter
cannot take the test session with it: before running a program it writes it to ``--current``;
at the end it writes a JSON report to ``--report``. Hypothesis only generates here (a failure is
recorded, not raised, so no shrinking runs and the time stays bounded by ``--seconds``).

    python tests/reliability/fuzz_driver.py --seconds 10 --report out.json --current now.py

The process's exit status is 0 whatever it finds (findings are in the report); a crash or a
hang is the only other outcome, and ``test_rel_fuzz.py`` tells them apart.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import io
import json
import linecache
import math
import random
import re
import signal
import time
import warnings
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import sxad
from fuzz_arrays import ArrayProgram, array_arguments, array_programs, run_array

#: The exceptions sxad may raise (docs/RELIABILITY.md); anything else is a failure.
DOCUMENTED = (sxad.UnsupportedError, TypeError, ValueError, OverflowError, MemoryError,
              IndexError)
#: What the messages of those besides UnsupportedError say: anything else is no clear error.
CLEAR = re.compile("|".join([
    r"argument `[\w\[\]]+` of [\w.<>]+: ",
    r"cannot differentiate [\w.<>]+ with respect to `[\w\[\]]+`",
    r"grad needs [\w.<>]+ to return ", r"[\w.<>]+\(\): ", r"range\(\) arg 3 must not be zero",
    r"the reverse-mode tape would grow beyond SXAD_TAPE_LIMIT",
    # arrays: a shape, value or index fault names the function and the array arguments' shapes
    r"[\w.<>]+: .* \(array arguments: `[\w\[\]]+`",
    r"index -?\d+ is out of bounds for axis \d+ with size \d+",
]), re.DOTALL)

# --------------------------------------------------------------------------- what programs read

SETTINGS = {"scale": 2.0}   # a global that is not a number
SCALE = 1.5                 # a global constant


class Thing:
    def scale(self, v: float) -> float:
        return 2.0 * v


THING = Thing()


def helper(v, m):
    """A helper the programs call; sxad inlines it."""
    for j in range(3):
        if v > 2.0:
            return v * 0.5 + m
        v = v + 0.25
    return v - m


NAMESPACE = {"np": np, "math": math, "helper": helper, "SCALE": SCALE, "SETTINGS": SETTINGS,
             "THING": THING, "ctx": contextlib.nullcontext()}

# --------------------------------------------------------------------------- expressions

F_ATOMS = ["x", "y", "a", "b", "0.5", "1.0", "-2.5", "0.0", "1e300", "1e-300", "SCALE",
           "float(k)", "n * 0.25", "float('inf')"]
F_UNARY = ["np.sin({})", "np.cos({})", "np.tanh({})", "np.exp({})", "math.exp({})",
           "np.log({})", "np.sqrt({})", "abs({})", "-({})", "({}) ** 2", "np.floor({})",
           "np.arctan({})", "math.log1p({})", "helper({}, k)", "float(int({}))"]
F_BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} / {})", "({} // {})", "({} % {})",
            "max({}, {})", "min({}, {})", "np.hypot({}, {})", "math.atan2({}, {})",
            "({} ** {})", "np.maximum({}, {})"]
I_ATOMS = ["n", "k", "0", "1", "2", "7", "-3", "4611686018427387904", "int(a > b)"]
I_BINARY = ["({} + {})", "({} - {})", "({} * {})", "({} // {})", "({} % {})", "max({}, {})",
            "abs({})", "({}) ** 2", "-({})"]
CONDS = ["{f} > {f}", "{f} <= 0.5", "k % 2 == 0", "{f} > 0.0 and k < 3", "not {f} > 1.0",
         "0.0 < {f} < 1.0", "{f} == {f}", "n > k or {f} < 0.0", "bool(k)"]

# Constructs outside the subset: each must end in UnsupportedError (or in whatever Python
# itself does with the program, when Python fails first).
OUTSIDE = [
    "zs = [x for _ in range(2)]", "g = lambda t: t * 2", "with ctx:\n    a = a + 1.0",
    "try:\n    a = a + 1.0\nexcept ValueError:\n    a = 0.0", "global SCALE",
    "yield x", "class C:\n    pass", "a = THING.scale(a)", "a = x.real", "s = 'text'",
    "zs = [x, y]", "d = {'a': x}", "zs = {x}", "a = a * SETTINGS", "a = len('ab')",
    "if n > 0:\n    return generated(x, y, n - 1)", "a = y[0]", "del a", "assert x > 0",
    "import os", "raise ValueError('no')", "a = (c := x)", "a = float(x is None)", "a = None",
    "a, *zs = x, y, 1.0", "for q in [1, 2]:\n    a = a + q", "a = np.linalg.norm(x)",
    "a = np.does_not_exist(x)", "a = undefined_name + 1.0", "a = np.sin(x, y)", "print(x)",
    "a = f'{x}'", "k = k & n", "a = a @ b", "def inner(t):\n    return t", "return",
    "while -3 < k < 0:\n    k = k + 1\nelse:\n    k = 0", "a = (x, y)", "a = max([x, y])",
]
# Parameter lists outside the subset.
SIGNATURES_OUTSIDE = ["x, *rest", "x, **options", "x, *, y=1.0, n=2"]


@st.composite
def float_expr(draw: Any, depth: int = 2, loop: bool = False) -> str:
    atoms = F_ATOMS + (["float(i)"] if loop else [])
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(atoms))
    if draw(st.booleans()):
        return draw(st.sampled_from(F_UNARY)).format(draw(float_expr(depth - 1, loop)))
    a, b = draw(float_expr(depth - 1, loop)), draw(float_expr(depth - 1, loop))
    if draw(st.integers(0, 5)) == 0:
        return f"({a} if {draw(cond(loop))} else {b})"
    return draw(st.sampled_from(F_BINARY)).format(a, b)


@st.composite
def int_expr(draw: Any, depth: int = 2, loop: bool = False) -> str:
    atoms = I_ATOMS + (["i"] if loop else [])
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(atoms))
    template = draw(st.sampled_from(I_BINARY))
    parts = [draw(int_expr(depth - 1, loop)) for _ in range(template.count("{}"))]
    return template.format(*parts)


@st.composite
def cond(draw: Any, loop: bool = False) -> str:
    template = draw(st.sampled_from(CONDS))
    while "{f}" in template:
        template = template.replace("{f}", draw(float_expr(1, loop)), 1)
    return template


def indent(text: str, depth: int) -> list[str]:
    return ["    " * depth + line for line in text.splitlines()]


@st.composite
def statements(draw: Any, depth: int, loop: bool, outside: list[str]) -> list[str]:
    """A block at ``depth`` (≥ 1 statement). Loops are bounded whatever the arguments are."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["float", "float", "int", "aug", "swap", "if"]
        if depth < 4:
            kinds += ["for", "while", "if"]
        if loop:
            kinds += ["break", "continue"]
        kinds += ["return"]
        kind = draw(st.sampled_from(kinds))
        pad = "    " * depth
        if outside and draw(st.integers(0, 3)) == 0:
            lines += indent(outside.pop(), depth)
        elif kind == "float":
            lines.append(f"{pad}{draw(st.sampled_from('ab'))} = {draw(float_expr(2, loop))}")
        elif kind == "int":
            lines.append(f"{pad}k = {draw(int_expr(2, loop))}")
        elif kind == "aug":
            lines.append(f"{pad}{draw(st.sampled_from(['a +=', 'b *=', 'k +=', 'k *=']))} "
                         f"{draw(st.sampled_from(['0.5', 'x', '2', 'k']))}")
        elif kind == "swap":
            lines.append(f"{pad}a, b = b, a")
        elif kind == "if":
            lines.append(f"{pad}if {draw(cond(loop))}:")
            lines += draw(statements(depth + 1, loop, outside))
            if draw(st.booleans()):
                lines.append(f"{pad}else:")
                lines += draw(statements(depth + 1, loop, outside))
        elif kind == "for":
            bounds = draw(st.sampled_from(["min(n, 4)", "3", "1, min(n, 5)", "min(n, 4), 0, -1",
                                           "0, min(n, 6), k % 3 + 1", "0, 4, k"]))
            lines.append(f"{pad}for i in range({bounds}):")
            lines += draw(statements(depth + 1, True, outside))
        elif kind == "while":
            counter = f"c{depth}"
            lines += [f"{pad}{counter} = 0", f"{pad}while {counter} < 4 and ({draw(cond(loop))}):",
                      f"{pad}    {counter} += 1"]
            lines += draw(statements(depth + 1, True, outside))
        elif kind in ("break", "continue"):
            lines += [f"{pad}if {draw(cond(loop))}:", f"{pad}    {kind}"]
        else:
            lines += [f"{pad}if {draw(cond(loop))}:", f"{pad}    return {draw(float_expr(1, loop))}"]
    return lines


@st.composite
def programs(draw: Any) -> str:
    """A function ``generated``: within the subset, or with 1–2 constructs from outside it."""
    outside = draw(st.lists(st.sampled_from(OUTSIDE), max_size=2)) \
        if draw(st.integers(0, 2)) == 0 else []
    signature = "x, y, n"
    if draw(st.integers(0, 15)) == 0:
        signature = draw(st.sampled_from(SIGNATURES_OUTSIDE))
    lines = [f"def generated({signature}):", "    a = x", "    b = 0.5 - x", "    k = 0"]
    if signature in ("x, *rest", "x, **options"):
        lines[1:1] = ["    y = 0.25", "    n = 3"]
    lines += draw(statements(1, False, outside))
    lines += indent(outside.pop(), 1) if outside else []
    ending = draw(st.sampled_from(["a + b * 2.0 + k", "a", "(a, k)", "k", "a > b",
                                   draw(float_expr(2, False))]))
    lines.append(f"    return {ending}")
    source = "\n".join(lines) + "\n"
    if draw(st.integers(0, 12)) == 0:   # a closure constant, and sometimes `nonlocal`
        body = source.replace("SCALE", "scale").replace("\n", "\n    ")
        extra = "        nonlocal scale\n" if draw(st.booleans()) else ""
        body = body.replace("):\n", "):\n" + extra, 1)
        source = f"def make():\n    scale = 2.0\n    {body.rstrip()}\n    return generated\n"
    return source


# --------------------------------------------------------------------------- arguments

VALID = [0.5, -1.25, 0.0, -0.0, 3.0, 1e-300, 1e300, math.inf, -math.inf, math.nan, 1, 0, -7,
         2 ** 63 - 1, -(2 ** 63), True, False, np.float64(0.75), np.float32(1.5), np.int64(3),
         np.int8(-2), np.bool_(True)]
INVALID = [None, "1.0", [1.0], 1j, 2 ** 70, np.array([1.0j, 2.0]), Fraction(1, 2),
           Decimal("1.5"), object(), np.uint64(2 ** 64 - 1)]


def arguments() -> Any:
    value = st.one_of(st.sampled_from(VALID), st.floats(-4, 4), st.integers(-3, 9))
    return st.tuples(value, value, st.one_of(st.integers(-2, 6), st.sampled_from(VALID)),
                     st.one_of(st.none(), st.sampled_from(INVALID)), st.integers(0, 2))


# --------------------------------------------------------------------------- running one

class OutOfTime(Exception):
    """The time budget is spent."""


class Report:
    documented = DOCUMENTED

    def __init__(self, current: str, budget: float) -> None:
        self.current, self.start, self.budget = current, time.monotonic(), budget
        self.deadline = self.start + budget   # of the phase running (scalar, then array)
        self.outcomes: dict[str, int] = {}
        self.failures: list[dict[str, Any]] = []
        self.seen: set[tuple[str, str]] = set()   # failures already recorded
        self.failure_kinds: dict[str, int] = {}
        self.tried = 0
        self.array_tried = 0
        self.serial = 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def check_message(self, source: str, args: tuple, error: Exception) -> None:
        """An error other than UnsupportedError (which points at the source) must say what is
        wrong in the words docs/RELIABILITY.md promises."""
        if not isinstance(error, sxad.UnsupportedError) and not CLEAR.match(str(error)):
            self.fail(source, args, f"an unclear {type(error).__name__}: {error}",
                      kind=f"an unclear {type(error).__name__}")

    def fail(self, source: str, args: tuple, what: str, kind: str = "") -> None:
        """Count a failure of its ``kind``; record the first few programs of each kind, each
        once (hypothesis draws near-copies of a program)."""
        kind = kind or re.sub(r"-?\d[\d.e+-]*|\(.*|:.*", "", what)[:40]
        self.failure_kinds[kind] = self.failure_kinds.get(kind, 0) + 1
        key = (source, kind)
        shown = sum(f["kind"] == kind for f in self.failures)
        if key not in self.seen and shown < 3 and len(self.failures) < 30:
            self.seen.add(key)
            self.failures.append({"source": source, "args": _shown(args), "what": what,
                                  "kind": kind})

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline


def _shown(args: tuple) -> str:
    """The arguments as a reproducer needs them: arrays with dtype, shape, strides, flags."""
    def one(a: Any) -> str:
        if isinstance(a, tuple):
            return "(" + ", ".join(map(one, a)) + ("," if len(a) == 1 else "") + ")"
        if isinstance(a, np.ndarray):
            layout = "" if a.flags.c_contiguous else f", strides={a.strides}"
            layout += "" if a.flags.writeable else ", read-only"
            return f"np.{a!r}".replace("np.array(", f"np.array(dtype={a.dtype.str!r}" +
                                       f"{layout}, values=", 1) if a.ndim else \
                f"np.array({a.item()!r}, dtype={a.dtype.str!r})"
        return f"{type(a).__module__}.{type(a).__name__}({a!r})" \
            if isinstance(a, np.generic) else repr(a)
    return "(" + ", ".join(map(one, args)) + ")"


@dataclass
class Loaded:
    """A program, and Python references for it with sxad's semantics: ``reference`` computes
    with numpy's int64 (every int literal an ``np.int64``, ``int`` numpy's cast, ``max``/``min``
    numpy's); ``floated`` with every int a float — what sxad computes where a value is an int
    on one path and a float on another (its type is then float on both)."""

    fn: Callable
    reference: Callable
    floated: Callable


def load(source: str, report: Report) -> Loaded | None:
    """The program, defined where ``inspect`` can read it back, with its references; None if
    Python rejects the source."""
    report.serial += 1
    filename = f"<fuzz-{report.serial}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    numpy_like = dict(int=_int64, max=_maximum, min=_minimum)
    try:
        fn = _define(compile(source, filename, "exec"))
        tree = ast.parse(source)
        reference = _define(compile(_literals(tree, "int64"), "<ref>", "exec"), **numpy_like)
        floated = _define(compile(_literals(tree, "float64"), "<ref>", "exec"), **numpy_like,
                          range=_float_range)
    except SyntaxError:
        return None
    return Loaded(fn, reference, floated)


def _literals(tree: ast.Module, dtype: str) -> ast.Module:
    """``tree`` with each int literal wrapped in ``np.<dtype>(...)``, and ``a ** b`` as
    ``np.power(a, b)`` (the ufunc: ``x ** 0.5`` is ``sqrt(x)``, so ``(-inf) ** 0.5`` is nan,
    where numpy's scalar ``**`` calls C's pow and gives inf)."""
    def numpy(name: str, node: ast.AST, args: list[ast.expr]) -> ast.AST:
        call = ast.Call(ast.Attribute(ast.Name("np", ast.Load()), name, ast.Load()), args, [])
        return ast.copy_location(call, node)

    class Wrap(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            return numpy(dtype, node, [node]) if type(node.value) is int else node

        def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
            self.generic_visit(node)
            if not isinstance(node.op, ast.Pow):
                return node
            return numpy("power", node, [node.left, node.right])
    return ast.fix_missing_locations(Wrap().visit(copy.deepcopy(tree)))


def _float_range(*bounds: Any) -> range:
    return range(*(int(b) for b in bounds))


def _int64(value: Any) -> np.int64:
    """``int`` as sxad computes it: numpy's cast to int64 (a float beyond its range, inf or nan
    gives -2**63 on x86), where Python's is unbounded or raises."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(value, (float, np.floating)):
            return np.float64(value).astype(np.int64)
        return np.int64(value)


def _maximum(*values: Any) -> Any:
    """``max`` as sxad computes it: ``np.maximum`` (a nan wins, where Python's builtin answers
    by the order of its arguments)."""
    return functools.reduce(np.maximum, values)


def _minimum(*values: Any) -> Any:
    return functools.reduce(np.minimum, values)


def _define(code: Any, **extra: Any) -> Callable:
    namespace = {**NAMESPACE, **extra}
    exec(code, namespace)
    return namespace["make"]() if "make" in namespace else namespace["generated"]


def python_result(fn: Callable, args: tuple, floats: bool = False) -> tuple[str, Any]:
    """What Python computes with numpy scalars (sxad's semantics), with ints as floats if
    ``floats``: ("value", v) or ("raised", error)."""
    def numpy(a: Any) -> Any:
        if isinstance(a, (bool, np.bool_)):
            return np.float64(a) if floats else np.bool_(a)
        if isinstance(a, (int, np.integer)):
            return np.float64(a) if floats else np.int64(a)
        return np.float64(a) if isinstance(a, (float, np.floating)) else a
    signal.setitimer(signal.ITIMER_REAL, PYTHON_SECONDS)   # raises TooSlow when it fires
    try:
        numpy_args = tuple(map(numpy, args))
        with np.errstate(all="ignore"), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return "value", fn(*numpy_args)
    except Exception as err:   # noqa: BLE001 — Python failing is an outcome like any other
        return "raised", err
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class TooSlow(BaseException):
    """Python ran the program for longer than ``PYTHON_SECONDS``: a generator bug (an endless
    loop), which compiled code would run endlessly too. Not an ``Exception``: nothing catches
    it on the way out."""


def _too_slow(signum: int, frame: Any) -> None:
    raise TooSlow


PYTHON_SECONDS = 2.0


def as_numbers(value: Any) -> tuple | None:
    """A result as a tuple of Python numbers, or None if it is not numeric."""
    parts = value if isinstance(value, tuple) else (value,)
    out = []
    for part in parts:
        if isinstance(part, (bool, np.bool_)):
            out.append(bool(part))
        elif isinstance(part, (int, np.integer)):
            out.append(int(part))
        elif isinstance(part, (float, np.floating)):
            out.append(float(part))
        else:
            return None
    return tuple(out)


def same(got: tuple, expected: tuple) -> bool:
    if len(got) != len(expected):
        return False
    for g, e in zip(got, expected):
        if isinstance(e, int) and not isinstance(e, bool) and not -2 ** 63 <= e < 2 ** 63:
            continue   # Python's unbounded int; sxad wraps like np.int64
        if math.isnan(g) and math.isnan(e):
            continue
        if not math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-12) and g != e:
            return False
    return True


def well_conditioned(fn: Callable, args: tuple, expected: tuple) -> bool:
    """Whether nudging the float arguments by 1e-12 leaves Python's result within tolerance:
    otherwise an ulp of difference between libm and numpy may flip a branch."""
    nudged = tuple(float(a) * (1 + 1e-12) + 1e-300 if isinstance(a, (float, np.floating))
                   else a for a in args)   # an np.float32 too: sxad computes it as a float
    kind, value = python_result(fn, nudged)
    numbers = as_numbers(value) if kind == "value" else None
    return numbers is not None and same(numbers, expected)


def run_one(source: str, calls: list[tuple], report: Report) -> None:
    """Run the program through ``sxad.jit`` with each argument tuple of ``calls`` in turn (new
    types make the installed kernel hand the call back to the dispatcher), then once more after
    changing the global constant it may read; then ``sxad.grad`` with the first."""
    loaded = load(source, report)
    if loaded is None:
        report.count("python rejects the source")
        return
    with open(report.current, "w") as out:   # what was running, should the process die
        out.write(f"# calls = {calls!r}\n{source}")
    report.tried += 1
    try:
        jitted = sxad.jit(loaded.fn)
        for args in calls:
            if not check_jit(jitted, loaded, source, args, report):
                return
        for f in (loaded.fn, loaded.reference, loaded.floated):   # the program must notice
            f.__globals__["SCALE"] = 2.75
        if not check_jit(jitted, loaded, source, calls[0], report):
            return
        check_grad(loaded, source, calls[0], report)
    except TooSlow:   # Python runs first, so the compiled code never ran endlessly
        report.fail(source, calls[0], "Python runs this program endlessly: a generator bug")


def check_jit(jitted: Callable, loaded: Loaded, source: str, args: tuple,
              report: Report) -> bool:
    """Whether ``jitted(*args)`` gave numbers (checked against Python's); False if it raised a
    documented error (counted) or failed (recorded)."""
    expected_kind, expected = python_result(loaded.reference, args)
    try:
        got = jitted(*args)
    except DOCUMENTED as err:
        report.count(f"jit: {type(err).__name__}")
        report.check_message(source, args, err)
        return False
    except Exception as err:   # noqa: BLE001
        report.fail(source, args, f"jit raised {type(err).__name__}: {err}")
        return False
    numbers = as_numbers(got)
    if numbers is None:
        report.fail(source, args, f"jit returned {got!r}, not numbers")
        return False
    if expected_kind == "raised":
        report.count("jit: a value where Python raises")   # e.g. math.log(-1.0) is nan
    elif as_numbers(expected) is None:
        report.fail(source, args, f"jit returned {got!r} where Python gives {expected!r}")
        return False
    elif same(numbers, as_numbers(expected)):
        report.count("jit: same as Python")
    elif same_as_floated(loaded, args, numbers):
        report.count("jit: an int on some path computed as a float")
    elif well_conditioned(loaded.reference, args, as_numbers(expected)):
        report.fail(source, args, f"jit gives {got!r}, Python {expected!r}")
        return False
    else:
        report.count("jit: ill-conditioned, not compared")
    return True


def same_as_floated(loaded: Loaded, args: tuple, numbers: tuple) -> bool:
    """Whether the result is Python's with every int a float (an int 0 // 0 is 0, a float 0.0
    // 0.0 is nan): sxad gives a value that is an int on one path and a float on another the
    float type on both."""
    kind, value = python_result(loaded.floated, args, floats=True)
    floated = as_numbers(value) if kind == "value" else None
    return floated is not None and same(tuple(map(float, numbers)), tuple(map(float, floated)))


def check_grad(loaded: Loaded, source: str, args: tuple, report: Report) -> None:
    """``grad`` gives a float — the finite difference where Python's function is smooth — or a
    documented error (an int argument, a tuple result…)."""
    try:
        got = sxad.grad(loaded.fn)(*args)
    except DOCUMENTED as err:
        report.count(f"grad: {type(err).__name__}")
        report.check_message(source, args, err)
        return
    except Exception as err:   # noqa: BLE001
        report.fail(source, args, f"grad raised {type(err).__name__}: {err}")
        return
    if type(got) is not float:
        report.fail(source, args, f"grad returned {got!r}, not a float")
        return
    slope = smooth_slope(loaded.reference, args)
    if slope is None:
        report.count("grad: a float (not smooth here)")
    elif math.isnan(got):   # e.g. hypot'(0, 0) is 0/0, or 0·inf in an intermediate
        report.count("grad: nan (an intermediate derivative is undefined here)")
    elif close(got, slope):
        report.count("grad: same as finite differences")
    elif at_branch_point(loaded.fn, args, slope):
        report.count("grad: the derivative of the path taken at a branch point")
    elif any(op in source for op in STEPS):
        # floor(y)'s derivative is 0, but beyond 2**52 floats have no fraction and floor(y)
        # is y: finite differences then see a slope the derivative rule does not
        report.count("grad: a step function (//, %, floor, int) not compared")
    else:
        report.fail(source, args, f"grad gives {got!r}, finite differences {slope!r}")


STEPS = ("//", "%", "floor", "int(")


def close(derivative: float, slope: float) -> bool:
    return math.isclose(derivative, slope, rel_tol=1e-4, abs_tol=1e-6)


def at_branch_point(fn: Callable, args: tuple, slope: float) -> bool:
    """Whether ``args`` sit on a branch taken at that single point (``if y == sqrt(b)``): the
    gradient just beside it agrees with the finite difference, which never sees the point."""
    x, h = args[0], 1e-6 * max(1.0, abs(args[0]))
    try:
        return all(close(sxad.grad(fn)(x + d, *args[1:]), slope) for d in (-h, h))
    except DOCUMENTED:
        return False


def smooth_slope(reference: Callable, args: tuple) -> float | None:
    """∂/∂x by central differences where the one-sided slopes on either side agree with it;
    None where Python's function is not smooth (a branch switch, a kink) or not finite."""
    x, h = args[0], 1e-6 * max(1.0, abs(args[0]))
    if not abs(x) <= 1e4:   # a step that large jumps over sin's periods: nothing to compare
        return None

    def at(dx: float) -> float | None:
        kind, value = python_result(reference, (x + dx, *args[1:]))
        numbers = as_numbers(value) if kind == "value" else None
        if numbers is None or len(numbers) != 1 or not math.isfinite(numbers[0]):
            return None
        return float(numbers[0])
    values = [at(d) for d in (-2 * h, -h, 0.0, h, 2 * h)]
    if any(v is None for v in values):
        return None
    m2, m1, mid, p1, p2 = values
    central = (8 * (p1 - m1) - (p2 - m2)) / (12 * h)
    left, right = (mid - m1) / h, (p1 - mid) / h
    scale = 1e-3 * max(1.0, abs(central))
    rounding = 1e-15 * max(map(abs, values)) / h   # x + 1e300 absorbs x: no slope to see
    if rounding > 1e-7 * max(1.0, abs(central)):
        return None
    if abs(left - central) > scale or abs(right - central) > scale:
        return None
    return central


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max", type=int, default=100_000)   # the time budget decides
    parser.add_argument("--seed", type=int, default=random.randrange(2 ** 32))
    parser.add_argument("--array-share", type=float, default=0.5)   # of the time budget
    parser.add_argument("--report", required=True)
    parser.add_argument("--current", required=True)
    options = parser.parse_args()
    report = Report(options.current, options.seconds)
    signal.signal(signal.SIGALRM, _too_slow)
    report.deadline = report.start + options.seconds * (1 - options.array_share)
    run_phase(scalar_fuzzer(report, options))
    report.deadline = report.start + options.seconds
    run_phase(array_fuzzer(report, options))
    elapsed = time.monotonic() - report.start
    scalar = {k: n for k, n in report.outcomes.items() if not k.startswith("array")}
    arrays = {k: n for k, n in report.outcomes.items() if k.startswith("array")}
    with open(options.report, "w") as out:
        json.dump({"seed": options.seed, "tried": report.tried, "seconds": elapsed,
                   "outcomes": scalar, "array_tried": report.array_tried,
                   "array_outcomes": arrays, "failure_kinds": report.failure_kinds,
                   "failures": report.failures}, out, indent=1)


def run_phase(fuzz: Callable[[], None]) -> None:
    try:
        fuzz()
    except OutOfTime:
        pass


def _hypothesis(options: argparse.Namespace) -> Callable:
    """Hypothesis as the driver uses it: generating only (nothing is shrunk or saved)."""
    def wrap(test: Callable) -> Callable:
        return seed(options.seed)(settings(
            max_examples=options.max, deadline=None, database=None, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck))(test))
    return wrap


def scalar_fuzzer(report: Report, options: argparse.Namespace) -> Callable[[], None]:
    @_hypothesis(options)
    @given(source=programs(), drawn=arguments())
    def fuzz(source: str, drawn: tuple) -> None:
        if report.out_of_time():
            raise OutOfTime   # stops hypothesis (it only generates: nothing is shrunk)
        x, y, n, invalid, where = drawn
        args = [x, y, n]
        if invalid is not None:
            args[where] = invalid
        calls = [tuple(args), (n, x, y) if invalid is None else (x, y, 2)]
        run_one(source, calls, report)
    return fuzz


def array_fuzzer(report: Report, options: argparse.Namespace) -> Callable[[], None]:
    @_hypothesis(options)
    @given(program=array_programs(), spec=array_arguments(), do_grad=st.booleans())
    def fuzz(program: ArrayProgram, spec: Any, do_grad: bool) -> None:
        if report.out_of_time():
            raise OutOfTime
        try:
            run_array(program, spec, report, NAMESPACE, do_grad)
        except TooSlow:
            report.fail(program.source, (), "Python runs this program endlessly: a generator bug")
    return fuzz


if __name__ == "__main__":
    main()
