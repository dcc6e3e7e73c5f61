"""Floor 4: the public transformations. Each specialises the user's function on its argument
types, transforms it (once per signature), optimizes it, compiles it, and caches the result."""
from __future__ import annotations

import functools
import inspect
import os
import threading
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__, frontend
from .ad.forward import jvp_program
from .ad.reverse import vjp_program
from .backends.python_source import compile_python, to_python
from .ir import BOOL, F64, I64, Func, Type, format_func
from .diskcache import DiskCache, digest
from .errors import UnsupportedError
from .ir import VerifyError, serialize, verify
from .ir.edit import bind_constants, keep_results
from .prims import RuleError, result_types
from .passes import DERIVATIVE_PIPELINE, optimize

#: How many times each transformation ran (by kind), and how many kernels were loaded or
#: compiled ("kernels"); a call served from the caches adds nothing here.
stats: Counter[str] = Counter()

_TYPES = {float: F64, int: I64, bool: BOOL, np.float64: F64, np.float32: F64, np.int64: I64,
          np.int32: I64, np.bool_: BOOL}
#: "native" (LLVM kernels, the default) or "python" (the generated Python source).
BACKEND = os.environ.get("SXAD_BACKEND", "native")
if BACKEND not in ("native", "python"):
    raise ImportError(f"SXAD_BACKEND must be 'native' or 'python', not {BACKEND!r}")
# How each backend wants its arguments: native kernels unbox Python numbers themselves; the
# generated Python computes with numpy scalars to get numpy's semantics.
_CONVERT = {F64: float, I64: int, BOOL: bool} if BACKEND == "native" else \
    {F64: np.float64, I64: np.int64, BOOL: np.bool_}
_STAGES = ("python", "ir", "tangent-ir", "adjoint-ir", "llvm")


# --------------------------------------------------------------------------- argument checks

def _type_of(fn: Callable, name: str, value: Any) -> Type:
    t = _TYPES.get(type(value))
    if t is None:
        if isinstance(value, (bool, np.bool_)):
            return BOOL
        if isinstance(value, (int, np.integer)):
            return I64
        if isinstance(value, (float, np.floating)):
            return F64
        raise TypeError(f"argument `{name}` of {_qualname(fn)}: expected a float, int or bool, "
                        f"got {type(value).__name__} {value!r:.40}")
    return t


def _check_int64(fn: Callable, name: str, value: int) -> None:
    if not -2 ** 63 <= value < 2 ** 63:
        raise OverflowError(f"argument `{name}` of {_qualname(fn)}: {value} does not fit in a "
                            f"64-bit integer (sxad computes with numpy's int64)")


def _real(label: str, value: Any) -> np.float64:
    """A tangent or cotangent: a real number, else a TypeError (never a silent nan)."""
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return np.float64(value)
    raise TypeError(f"{label} must be a float, got {type(value).__name__} {value!r:.40}")


def _qualname(fn: Callable) -> str:
    return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))


def _arg_names(fn: Callable) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        raise TypeError(f"{fn!r} is not a Python function sxad can read") from None


def _normalize_wrt(fn: Callable, wrt: Any) -> tuple[tuple[int, ...], bool]:
    """(positions, single) for ``wrt`` given as a position, a name, or a tuple of them."""
    names = _arg_names(fn)
    single = not isinstance(wrt, (tuple, list))
    positions = []
    for item in ([wrt] if single else wrt):
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"wrt={item!r} names no argument of {_qualname(fn)}"
                                 f"({', '.join(names)})")
            positions.append(names.index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -len(names) <= item < len(names):
                raise ValueError(f"wrt={item} is out of range: {_qualname(fn)} takes "
                                 f"{len(names)} argument(s) ({', '.join(names)})")
            positions.append(int(item) % len(names))
        else:
            raise TypeError(f"wrt must be an argument position, name, or a tuple of them; "
                            f"got {item!r}")
    if not positions:
        raise ValueError("wrt names no argument")
    return tuple(positions), single


# --------------------------------------------------------------------------- specialisation

@dataclass(frozen=True)
class _Key:
    fn: Callable
    types: tuple[Type, ...]
    kind: str                 # "primal", "jvp", "vjp", "hessian"
    wrt: tuple[int, ...] = ()
    version: int = 0          # of ``fn`` (``_current``): a changed function gets new keys


_programs: dict[_Key, Func] = {}
_kernels: dict[_Key, Callable] = {}
_lock = threading.RLock()


@dataclass(frozen=True)
class _Version:
    """What the programs of one function were built from: they serve while ``guards`` hold
    (``frontend.watch``: its code, and the constants and helpers it reads)."""

    number: int
    guards: tuple[frontend.Guard, ...]


_versions: dict[Callable, _Version] = {}


def _current(fn: Callable) -> _Version:
    """``fn``'s current version; a new one when ``fn`` has changed since the last, which drops
    the programs and kernels of the old one (they are rebuilt on demand, from the disk cache
    when the change was undone)."""
    version = _versions.get(fn)
    if version is not None and frontend.unchanged(version.guards):
        return version
    with _lock:
        version = _versions.get(fn)
        if version is not None and frontend.unchanged(version.guards):
            return version
        if version is not None:
            stats["changed"] += 1
            for cache in (_programs, _kernels):
                for key in [k for k in cache if k.fn is fn]:
                    del cache[key]
        number = 0 if version is None else version.number + 1
        version = _versions[fn] = _Version(number, frontend.watch(fn))
        return version


def _program(key: _Key) -> Func:
    """The optimized IR of ``key``: built once, then cached in memory and on disk."""
    found = _programs.get(key)
    if found is not None:
        return found
    with _lock:
        if key not in _programs:
            _programs[key] = _load_or_build(key)
    return _programs[key]


# Optimized programs on disk, so a new process skips parsing, differentiation and sympy.
_saved_programs = DiskCache(".ir", b"SXADIR01")


def _load_or_build(key: _Key) -> Func:
    disk_key = digest("sxad-ir", _compiler_id(), frontend.fingerprint(key.fn),
                      ",".join(t.name for t in key.types), key.kind, repr(key.wrt))
    saved = _saved_programs.load(disk_key)
    if saved is not None:
        try:
            return verify(serialize.loads(saved.decode()), result_types)
        except (serialize.FormatError, VerifyError, RuleError, UnicodeDecodeError):
            _saved_programs.stats["disk_rejected"] += 1  # a stale or foreign entry: rebuild
    func = _build(key)
    _saved_programs.store(disk_key, serialize.dumps(func).encode())
    return func


@functools.lru_cache(maxsize=1)
def _compiler_id() -> str:
    """A digest of the compiler's own source: changing it invalidates saved programs. The
    library of user-level code (``sxad/nn``) is left out: callers fingerprint what they use."""
    root = Path(__file__).resolve().parent
    files = sorted(f for f in root.rglob("*.py") if "nn" not in f.relative_to(root).parts[:1])
    return digest(__version__, *(f.read_text(encoding="utf-8") for f in files))


def _build(key: _Key) -> Func:
    try:
        return _transform(key)
    except RecursionError:   # the frontend reports where; a later stage can only say what
        raise UnsupportedError(f"{_qualname(key.fn)} is nested too deeply for sxad to build its "
                               f"{key.kind} program (Python's recursion limit was reached)") \
            from None


def _transform(key: _Key) -> Func:
    stats[key.kind] += 1
    if key.kind == "primal":
        return optimize(frontend.lower(key.fn, key.types))
    if key.kind == "hessian":  # forward mode over the (optimized) adjoint program
        adjoint = _program(replace(key, kind="vjp"))
        return optimize(jvp_program(adjoint, key.wrt), DERIVATIVE_PIPELINE)
    if key.kind in ("grad", "value_and_grad"):  # the adjoint seeded with 1: what grad runs
        adjoint = _program(replace(key, kind="vjp"))
        seeded = bind_constants(adjoint, {len(key.types): 1.0})
        keep = range(0 if key.kind == "value_and_grad" else 1, len(adjoint.results))
        return optimize(keep_results(seeded, keep, len(keep) > 1))
    primal = _program(replace(key, kind="primal", wrt=()))
    transform = jvp_program if key.kind == "jvp" else vjp_program
    return optimize(transform(primal, key.wrt), DERIVATIVE_PIPELINE)


def _compiled(key: _Key) -> Any:
    """The compiled program of ``key``: a ``codegen.NativeKernel`` or a Python callable."""
    found = _kernels.get(key)
    if found is None:
        with _lock:
            found = _kernels.get(key)
            if found is None:
                stats["kernels"] += 1
                found = _kernels[key] = _compile(_program(key))
    return found


def _kernel(key: _Key) -> Callable:
    """The compiled program of ``key`` as a callable taking arguments converted by ``_CONVERT``."""
    found = _compiled(key)
    return found.entry if BACKEND == "native" else found


def _compile(program: Func) -> Any:
    if BACKEND == "native":
        import codegen  # loads LLVM: only when a kernel is first needed
        return codegen.compile_kernel(program)
    run = compile_python(program)

    def call(*args: Any) -> Any:
        with np.errstate(all="ignore"):  # numpy semantics, quietly: 1/0 is inf
            return run(*args)
    return call


def _results(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _scalar(value: Any) -> Any:
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


class _Transformed:
    """A user function seen through one transformation; remembers the last signature used.

    Each instance gets a class of its own, so that its ``__call__`` can become the native
    kernel of the last signature seen (``_install``): a call is then one native function call,
    which hands the calls it cannot take (other types, keywords) back to ``_dispatch``, and all
    calls once the function has changed (its guards fail): ``_dispatch`` then builds anew.
    """

    def __init__(self, fn: Callable, wrt: Any = 0) -> None:
        if isinstance(fn, _Transformed):
            raise TypeError("sxad transformations apply to plain Python functions; "
                            "use sxad.hessian for second derivatives")
        if not inspect.isfunction(fn):
            raise TypeError(f"{fn!r} is not a Python function sxad can read")
        cls = type(self)
        self.__class__ = type(cls.__name__, (cls,), {"__module__": cls.__module__})
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.names = _arg_names(fn)
        self.wrt, self.single = _normalize_wrt(fn, wrt)
        self.last_types: tuple[Type, ...] | None = None
        self.version: _Version | None = None
        self.kernels: dict[tuple[Type, ...], Callable] = {}   # of ``version``
        self.installed: dict[_Key, Callable] = {}             # bound builtins of ``version``

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._dispatch(*args, **kwargs)

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        """Specialise on the argument types, then run (each transformation defines it)."""
        raise TypeError(f"{type(self).__name__} cannot be called")

    def _fresh(self) -> _Version:
        """The function's current version; kernels of an older one are dropped."""
        version = _current(self.fn)
        if version is not self.version:
            self.version, self.kernels, self.installed = version, {}, {}
        return version

    def _install(self, key: _Key, version: _Version) -> None:
        """Make the native kernel of ``key`` this object's ``__call__``, checking ``version``'s
        guards natively before each call."""
        if BACKEND == "native":
            native = self.installed.get(key)
            if native is None:
                import codegen
                native = codegen.bind_fallback(_compiled(key), self._dispatch, version.guards)
                self.installed[key] = native
            type(self).__call__ = staticmethod(native)

    def _bind(self, args: tuple, kwargs: dict) -> tuple:
        if kwargs or len(args) != len(self.names):
            try:
                bound = inspect.signature(self.fn).bind(*args, **kwargs)
            except TypeError as err:
                raise TypeError(f"{_qualname(self.fn)}(): {err}") from None
            bound.apply_defaults()
            args = bound.args
        return args

    def _signature(self, args: tuple) -> tuple[tuple[Type, ...], tuple]:
        types = tuple(_type_of(self.fn, n, a) for n, a in zip(self.names, args))
        self.last_types = types
        for name, t, a in zip(self.names, types, args):
            if t is I64:
                _check_int64(self.fn, name, int(a))
        return types, tuple(_CONVERT[t](a) for t, a in zip(types, args))

    def _check_wrt(self, types: Sequence[Type]) -> None:
        for i in self.wrt:
            if types[i] is not F64:
                raise TypeError(f"cannot differentiate {_qualname(self.fn)} with respect to "
                                f"`{self.names[i]}`: it is {_describe(types[i])}, not a float "
                                f"(pass e.g. {self.names[i]}=2.0)")


def _describe(t: Type) -> str:
    return {I64: "an int", BOOL: "a bool", F64: "a float"}[t]


def _scalar_output(fn: Callable, program: Func) -> None:
    if program.tuple_result or len(program.results) != 1:
        raise TypeError(f"grad needs {_qualname(fn)} to return one float, but it returns a "
                        f"tuple; use sxad.vjp or sxad.jvp for several outputs")
    if program.results[0].type is not F64:
        raise TypeError(f"grad needs {_qualname(fn)} to return a float, but it returns "
                        f"{_describe(program.results[0].type)}")


class ValueAndGrad(_Transformed):
    """``f``'s value and its derivative with respect to ``wrt``."""

    with_value = True

    def __init__(self, fn: Callable, wrt: Any = 0, mode: str = "reverse") -> None:
        super().__init__(fn, wrt)
        if mode not in ("reverse", "forward"):
            raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}")
        self.mode = mode

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        types, values = self._signature(self._bind(args, kwargs))
        version = self._fresh()
        kernel = self.kernels.get(types) or self._prepare(types, version)
        if self.mode == "reverse" and (self.single or not self.with_value):
            kind = "value_and_grad" if self.with_value else "grad"
            self._install(_Key(self.fn, types, kind, self.wrt, version.number), version)
        return kernel(*values)

    def _prepare(self, types: tuple[Type, ...], version: _Version) -> Callable:
        """Check a new signature once, and pick the kernel that serves it."""
        self._check_wrt(types)
        _scalar_output(self.fn, _program(_Key(self.fn, types, "primal", (), version.number)))
        if self.mode == "forward":
            key = _Key(self.fn, types, "jvp", self.wrt, version.number)
            kernel = _forward_kernel(_kernel(key), len(self.wrt))
        else:
            kind = "value_and_grad" if self.with_value else "grad"
            kernel = _kernel(_Key(self.fn, types, kind, self.wrt, version.number))
        self.kernels[types] = kernel = self._shaped(kernel)
        return kernel

    def _shaped(self, kernel: Callable) -> Callable:
        """``kernel`` giving what the user asked for: a float, a tuple, or (value, gradient)."""
        if self.mode == "reverse" and (self.single or not self.with_value):
            return kernel if BACKEND == "native" else lambda *values: _floats(kernel(*values))
        single, with_value = self.single, self.with_value

        def shaped(*values: Any) -> Any:
            out = _floats(kernel(*values))
            grads = out[1] if single else out[1:]
            return (out[0], grads) if with_value else grads
        return shaped


def _floats(out: Any) -> Any:
    return tuple(map(float, out)) if isinstance(out, tuple) else float(out)


def _forward_kernel(kernel: Callable, n: int) -> Callable:
    """(value, *gradient) from ``n`` calls of a tangent kernel, one per unit seed."""
    seeds = [tuple(np.float64(k == j) for j in range(n)) for k in range(n)]

    def run(*values: Any) -> tuple:
        outs = [kernel(*values, *seed) for seed in seeds]
        return (outs[0][0], *(out[-1] for out in outs))
    return run


class Grad(ValueAndGrad):
    """The derivative of ``f`` with respect to ``wrt``, with ``f``'s signature."""

    with_value = False


def _decorator(cls: type) -> Callable:
    def make(f: Callable | None = None, wrt: Any = 0, mode: str = "reverse") -> Any:
        if f is None:
            return lambda g: cls(g, wrt, mode)
        return cls(f, wrt, mode)
    make.__doc__ = cls.__doc__
    return make


grad = _decorator(Grad)
grad.__name__ = "grad"
value_and_grad = _decorator(ValueAndGrad)
value_and_grad.__name__ = "value_and_grad"


class Jit(_Transformed):
    """``f`` compiled; same results."""

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        types, values = self._signature(self._bind(args, kwargs))
        version = self._fresh()
        key = _Key(self.fn, types, "primal", (), version.number)
        kernel = _kernel(key)
        if BACKEND == "native":
            self._install(key, version)
            return kernel(*values)
        out = tuple(_scalar(v) for v in _results(kernel(*values)))
        return out if _program(key).tuple_result or len(out) != 1 else out[0]


def jit(f: Callable) -> Jit:
    """``f`` compiled (the primal program)."""
    return Jit(f)


def _float_positions(types: Sequence[Type]) -> tuple[int, ...]:
    return tuple(i for i, t in enumerate(types) if t is F64)


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """``(f(*primals), J·tangents)``; tangents of int/bool arguments are ignored, and
    int/bool outputs have tangent ``None``."""
    t = Jit(f)
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    types, values = t._signature(t._bind(primals, {}))
    wrt = _float_positions(types)
    version = _current(f).number
    program = _program(_Key(f, types, "primal", (), version))
    if not wrt:
        return t(*primals), _shape_out(program, [None] * len(program.results))
    seeds = [_real(f"jvp: the tangent of `{t.names[i]}`", tangents[i]) for i in wrt]
    out = _kernel(_Key(f, types, "jvp", wrt, version))(*values, *seeds)
    n = len(program.results)
    dots = iter(out[n:])
    tangents_out = [float(next(dots)) if r.type is F64 else None for r in program.results]
    return _shape_out(program, [_scalar(v) for v in out[:n]]), _shape_out(program, tangents_out)


def _shape_out(program: Func, values: list) -> Any:
    return tuple(values) if program.tuple_result or len(values) != 1 else values[0]


def vjp(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """``(f(*primals), pullback)``; ``pullback(cotangent)`` gives one cotangent per argument
    (``None`` for int/bool arguments)."""
    t = Jit(f)
    types, values = t._signature(t._bind(primals, {}))
    wrt = _float_positions(types)
    value = t(*primals)
    version = _current(f).number
    program = _program(_Key(f, types, "primal", (), version))
    floats = [j for j, r in enumerate(program.results) if r.type is F64]
    # Now, not in ``pullback``: the derivative of ``f`` as it is when ``value`` was computed.
    kernel = _kernel(_Key(f, types, "vjp", wrt, version)) if wrt else None

    def pullback(cotangent: Any) -> tuple:
        cts = _results(cotangent) if program.tuple_result or len(program.results) != 1 \
            else (cotangent,)
        if len(cts) != len(program.results):
            raise ValueError(f"pullback: {_qualname(f)} has {len(program.results)} outputs, "
                             f"got {len(cts)} cotangents")
        seeds = [_real(f"pullback: cotangent {j}", cts[j]) for j in floats]
        grads = iter(kernel(*values, *seeds)[len(program.results):]) if kernel else iter(())
        return tuple(float(next(grads)) if i in wrt else None for i in range(len(types)))
    return value, pullback


def hessian(f: Callable, wrt: Any = 0) -> Callable:
    """Second derivatives with respect to ``wrt``, by forward mode over reverse mode."""
    g = Grad(f, wrt)

    @functools.wraps(f)
    def call(*args: Any, **kwargs: Any) -> Any:
        types, values = g._signature(g._bind(args, kwargs))
        g._check_wrt(types)
        version = _current(f).number
        _scalar_output(f, _program(_Key(f, types, "primal", (), version)))
        kernel = _kernel(_Key(f, types, "hessian", g.wrt, version))
        n = len(g.wrt)
        rows = []
        for k in range(n):
            seeds = [np.float64(k == j) for j in range(n)]
            out = kernel(*values, np.float64(1.0), *seeds)
            rows.append(tuple(float(v) for v in out[-n:]))
        matrix = tuple(zip(*rows))  # column k came from seed k: transpose to rows
        return matrix[0][0] if g.single else matrix
    return call


# --------------------------------------------------------------------------- inspection

def source(f: Callable, *example_args: Any, wrt: Any = 0, mode: str = "reverse",
           stage: str = "python") -> str:
    """The program sxad generates for ``f``: ``stage`` is "python" (readable Python of the
    optimized derivative program), "ir" (the primal IR), "tangent-ir", "adjoint-ir", or "llvm"
    (the optimized LLVM IR of the native kernel)."""
    if stage not in _STAGES:
        raise ValueError(f"stage must be one of {', '.join(map(repr, _STAGES))}; got {stage!r}")
    fn, primal_only = f, False
    if isinstance(f, _Transformed):
        fn, last = f.fn, f.last_types
        if isinstance(f, ValueAndGrad):
            wrt, mode = f.wrt, f.mode
        else:
            primal_only = True
    else:
        last = None
    positions, _ = _normalize_wrt(fn, wrt)
    if example_args:
        names = _arg_names(fn)
        types = tuple(_type_of(fn, n, a) for n, a in zip(names, example_args))
    else:
        types = last or (F64,) * len(_arg_names(fn))
    kind = {"ir": "primal", "tangent-ir": "jvp", "adjoint-ir": "vjp"}.get(stage)
    if kind is None:
        kind = "primal" if primal_only else ("vjp" if mode == "reverse" else "jvp")
    program = _program(_Key(fn, types, kind, () if kind == "primal" else positions,
                            _current(fn).number))
    if stage == "llvm":
        import codegen
        return codegen.llvm_source(program)
    return to_python(program) if stage == "python" else format_func(program)


def show(f: Callable, *example_args: Any, **options: Any) -> None:
    """Print ``source(f, *example_args, **options)``."""
    print(source(f, *example_args, **options))
