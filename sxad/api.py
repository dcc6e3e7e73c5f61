"""Floor 4: the public transformations. Each specialises the user's function on its argument
types, transforms it (once per signature), optimizes it, compiles it, and caches the result.

Arguments are floats, ints, bools and ndarrays (float64, float32, int64, bool; rank 0–4): an
array's type is its dtype and rank, its shape a runtime value, so one program serves every
shape. Each program runs natively when ``codegen`` can compile it, else as generated Python
(``stats`` counts which). A function that updates argument arrays in place (``Func.mutated``)
has them written back after the call (``jit``); derivative programs leave them out.
"""
from __future__ import annotations

import functools
import inspect
import itertools
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
from .ad.vector import batch_program
from .backends.python_source import compile_python, to_python
from .ir import BOOL, F32, F64, I64, ArrayType, Func, Type, format_func, is_array
from .ir.types import MAX_RANK
from .diskcache import DiskCache, digest
from .errors import UnsupportedError
from .ir import VerifyError, serialize, verify
from .ir.edit import bind_constants, keep_results
from .prims import NUMPY_TYPE, RuleError, result_types
from .passes import DERIVATIVE_PIPELINE, optimize

#: How many times each transformation ran (by kind), and how many kernels were loaded or
#: compiled ("kernels"); a call served from the caches adds nothing here.
stats: Counter[str] = Counter()
#: Which backend serves the programs loaded or compiled: "native", "python"; of the python ones,
#: "fallbacks" the native backend could not compile (``codegen.CodegenError``), and
#: "declined" counts calls whose arguments a native entry handed back (run as Python).
backend_stats: Counter[str] = Counter()

_TYPES = {float: F64, int: I64, bool: BOOL, np.float64: F64, np.float32: F64, np.int64: I64,
          np.int32: I64, np.bool_: BOOL}
_DTYPES = {np.dtype(np.float64): F64, np.dtype(np.float32): F32, np.dtype(np.int64): I64,
           np.dtype(np.bool_): BOOL}
#: "native" (LLVM kernels, the default) or "python" (the generated Python source).
BACKEND = os.environ.get("SXAD_BACKEND", "native")
if BACKEND not in ("native", "python"):
    raise ImportError(f"SXAD_BACKEND must be 'native' or 'python', not {BACKEND!r}")
# How each backend wants scalar arguments: native kernels unbox Python numbers themselves; the
# generated Python computes with numpy scalars to get numpy's semantics. Arrays go as they are.
_NATIVE_SCALARS = {F64: float, F32: np.float32, I64: int, BOOL: bool}
_PYTHON_SCALARS = {F64: np.float64, F32: np.float32, I64: np.int64, BOOL: np.bool_}
_STAGES = ("python", "ir", "tangent-ir", "adjoint-ir", "llvm")


# --------------------------------------------------------------------------- argument checks

def _type_of(fn: Callable, name: str, value: Any) -> Any:
    """The type of an argument: a ``Type``, or a tuple of them for a tuple of values (nested
    as the value nests; the program takes its items as parameters of their own)."""
    if isinstance(value, np.ndarray):
        return _array_type(fn, name, value)
    if isinstance(value, tuple):   # an item's name is only formatted for an error
        return tuple([_ARRAY_TYPES.get((v.dtype, v.ndim)) or _type_of(fn, _Item(name, k), v)
                      if type(v) is np.ndarray else _type_of(fn, _Item(name, k), v)
                      for k, v in enumerate(value)])
    t = _TYPES.get(type(value))
    if t is None:
        if isinstance(value, (bool, np.bool_)):
            return BOOL
        if isinstance(value, (int, np.integer)):
            return I64
        if isinstance(value, (float, np.floating)):
            return F64
        raise TypeError(f"argument `{name}` of {_qualname(fn)}: expected a float, int or bool "
                        f"or an ndarray, got {type(value).__name__} {value!r:.40}")
    return t


def _fingerprint(args: Sequence[Any]) -> tuple:
    """What ``_type_of`` reads of each argument, cheap to hash: an array's dtype and rank, a
    tuple's items, a scalar's class (its value matters only to the int64 range check)."""
    return tuple([(a.dtype, a.ndim) if type(a) is np.ndarray else _fingerprint_of(a)
                  for a in args])


def _fingerprint_of(value: Any) -> Any:
    if isinstance(value, np.ndarray):      # a subclass
        return type(value), value.dtype, value.ndim
    if isinstance(value, tuple):
        return type(value), _fingerprint(value)
    return type(value)


class _Item:
    """The name of a tuple argument's item, ``ps[0]``, formatted when an error names it."""

    __slots__ = ("parent", "index")

    def __init__(self, parent: Any, index: int) -> None:
        self.parent, self.index = parent, index

    def __str__(self) -> str:
        return f"{self.parent}[{self.index}]"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


_ARRAY_TYPES: dict[tuple[np.dtype, int], ArrayType] = {}


def _array_type(fn: Callable, name: str, value: np.ndarray) -> ArrayType:
    found = _ARRAY_TYPES.get((value.dtype, value.ndim))
    if found is not None:
        return found
    dtype = _DTYPES.get(value.dtype)
    if dtype is None:
        raise TypeError(f"argument `{name}` of {_qualname(fn)}: arrays of {value.dtype} are not "
                        f"supported (use float64, float32, int64 or bool)")
    if value.ndim > MAX_RANK:
        raise TypeError(f"argument `{name}` of {_qualname(fn)}: an array of rank {value.ndim} "
                        f"(shape {value.shape}); sxad takes arrays of rank 0 to {MAX_RANK}")
    found = _ARRAY_TYPES[(value.dtype, value.ndim)] = ArrayType(dtype, value.ndim)
    return found


def _check_int64(fn: Callable, name: str, value: int) -> None:
    if not -2 ** 63 <= value < 2 ** 63:
        raise OverflowError(f"argument `{name}` of {_qualname(fn)}: {value} does not fit in a "
                            f"64-bit integer (sxad computes with numpy's int64)")


def _real(label: str, value: Any) -> np.float64:
    """A tangent or cotangent: a real number, else a TypeError (never a silent nan)."""
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return np.float64(value)
    raise TypeError(f"{label} must be a float, got {type(value).__name__} {value!r:.40}")


def _direction(label: str, value: Any, like: Any, t: Type) -> Any:
    """A tangent or cotangent for a value ``like`` of type ``t``: a real number for a scalar,
    an array of ``like``'s shape (converted to its dtype) for an array."""
    if not is_array(t):
        return _real(label, value)
    if np.iscomplexobj(value):
        raise TypeError(f"{label} must be real (an array of shape {np.shape(like)}), got a "
                        f"complex {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=NUMPY_TYPE[t.dtype])
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be an array of shape {np.shape(like)}, got "
                        f"{type(value).__name__} {value!r:.40}") from None
    if array.shape != np.shape(like):
        raise ValueError(f"{label} has shape {array.shape}, but its value has shape "
                         f"{np.shape(like)}")
    return array


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


def _describe(t: Any) -> str:
    if isinstance(t, tuple):
        return f"a tuple of {len(t)}"
    if is_array(t):
        kind = {F64: "a float", F32: "a float32", I64: "an int", BOOL: "a bool"}[t.dtype]
        return f"{kind} array ({t})"
    return {I64: "an int", BOOL: "a bool", F64: "a float", F32: "a float32"}[t]


# --------------------------------------------------------------------------- tuple arguments

def _leaves(t: Any, value: Any = None, name: str = "") -> list[tuple[Type, Any, str]]:
    """(type, value, name) of each item of an argument, flat, in the program's order (a tuple
    argument is one parameter per item: ``params[0]``, ``params[1]``, …)."""
    if not isinstance(t, tuple):
        return [(t, value, name)]
    values = value if isinstance(value, tuple) else (None,) * len(t)
    return [leaf for k, (part, v) in enumerate(zip(t, values))
            for leaf in _leaves(part, v, f"{name}[{k}]")]


def _flat(types: Sequence[Any], values: Sequence[Any], names: Sequence[str] = ()) \
        -> list[tuple[Type, Any, str]]:
    names = list(names) or [""] * len(types)
    return [leaf for t, v, n in zip(types, values, names) for leaf in _leaves(t, v, n)]


@functools.lru_cache(maxsize=1024)
def _has_ints(types: tuple[Any, ...]) -> bool:
    """Whether an argument (or a tuple's item) is an int scalar."""
    return any(t is I64 for _, t in _paths(types))


def _flat_count(types: Sequence[Any]) -> int:
    return len(_flat(types, [None] * len(types)))


def _flat_positions(types: Sequence[Any], wrt: Sequence[int]) -> tuple[int, ...]:
    """The program's parameter positions of the float items of the arguments at ``wrt``."""
    out, at = [], 0
    for i, t in enumerate(types):
        leaves = _leaves(t)
        if i in wrt:
            out += [at + k for k, (leaf, _, _) in enumerate(leaves) if leaf.is_float]
        at += len(leaves)
    return tuple(out)


def _rebuild(t: Any, items: Any) -> Any:
    """The next items of the iterator ``items`` nested as ``t`` is."""
    if not isinstance(t, tuple):
        return next(items)
    return tuple(_rebuild(part, items) for part in t)


def _type_text(t: Any) -> str:
    return "(" + ",".join(map(_type_text, t)) + ")" if isinstance(t, tuple) else t.name


# --------------------------------------------------------------------------- program objects

def _is_program_object(fn: Any) -> bool:
    """An object that gives its own IR (``__sxad_program__``) rather than Python source."""
    return not inspect.isfunction(fn) and hasattr(type(fn), "__sxad_program__")


def _structure(program: Func) -> Any:
    """The nesting of ``program``'s returned results as a Python call returns them."""
    n = len(program.returned)
    return tuple(range(n)) if program.tuple_result or n != 1 else 0


class IRFunction:
    """IR built by hand (or elsewhere) as a function every transformation accepts:
    ``sxad.grad(IRFunction(f64_program, f32_program))``. Each call is served by the program
    whose parameter types are the arguments' types; calling it directly interprets it."""

    def __init__(self, *funcs: Func) -> None:
        if not funcs or len({f.arg_names for f in funcs}) != 1:
            raise ValueError("IRFunction needs programs with the same argument names")
        self.funcs = {tuple(p.type for p in f.params): f for f in funcs}
        self.__name__ = self.__qualname__ = funcs[0].name
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(n, kind) for n in funcs[0].arg_names])

    def __sxad_program__(self, types: Sequence[Type]) -> tuple[Func, Any]:
        func = self.funcs.get(tuple(types))
        if func is None:
            known = "; ".join(", ".join(map(str, k)) for k in self.funcs)
            raise TypeError(f"{self.__name__} is defined for argument types ({known}), not "
                            f"({', '.join(map(str, types))})")
        return func, _structure(func)

    def __call__(self, *args: Any) -> Any:
        from .backends.interpreter import interpret
        types = tuple(_type_of(self, n, a) for n, a in zip(self.__signature__.parameters, args))
        func, _ = self.__sxad_program__(types)
        out = [_user(v) for v in interpret(func, args)]
        return _shape_out(func, out[:len(func.returned)])


# --------------------------------------------------------------------------- specialisation

@dataclass(frozen=True)
class _Key:
    fn: Callable
    types: tuple[Type, ...]
    kind: str                 # "primal", "jvp", "vjp", "hessian", "grad", … (``_transform``)
    wrt: tuple[int, ...] = ()
    version: int = 0          # of ``fn`` (``_current``): a changed function gets new keys


_programs: dict[_Key, Func] = {}
_kernels: dict[_Key, "_Compiled"] = {}
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
        guards = () if _is_program_object(fn) else frontend.watch(fn)
        version = _versions[fn] = _Version(number, guards)
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
    if _is_program_object(key.fn):   # no source to key a disk entry on
        return _build(key)
    disk_key = digest("sxad-ir", _compiler_id(), frontend.fingerprint(key.fn),
                      ",".join(map(_type_text, key.types)), key.kind, repr(key.wrt))
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


def _lower(key: _Key) -> Func:
    if _is_program_object(key.fn):
        return verify(key.fn.__sxad_program__(key.types)[0], result_types)
    return frontend.lower(key.fn, key.types)


def _transform(key: _Key) -> Func:
    stats[key.kind] += 1
    kind = key.kind
    if kind == "primal":
        return optimize(_lower(key))
    if kind == "returned":  # the primal without the written-back arguments: what AD sees
        primal = _program(replace(key, kind="primal", wrt=()))
        return keep_results(primal, range(len(primal.returned)), primal.tuple_result)
    if kind == "hessian":  # forward mode over the (optimized) adjoint program
        adjoint = _program(replace(key, kind="vjp"))
        return optimize(jvp_program(adjoint, _flat_positions(key.types, key.wrt)),
                        DERIVATIVE_PIPELINE)
    if kind in ("grad", "value_and_grad"):  # the adjoint seeded with 1: what grad runs
        adjoint = _program(replace(key, kind="vjp"))
        seeded = bind_constants(adjoint, {_flat_count(key.types): 1.0})
        keep = range(0 if kind == "value_and_grad" else 1, len(adjoint.results))
        return optimize(keep_results(seeded, keep, len(keep) > 1))
    if kind.endswith("_batched"):  # vector mode: directions along a leading axis
        return optimize(_batched(key))
    primal = _program(replace(key, kind="returned", wrt=()))
    transform = jvp_program if kind == "jvp" else vjp_program
    return optimize(transform(primal, _flat_positions(key.types, key.wrt)), DERIVATIVE_PIPELINE)


def _batched(key: _Key) -> Func:
    """The tangent ("jvp_batched"), adjoint ("vjp_batched") or forward-over-reverse
    ("hessian_batched") program with its direction parameters batched (``ad.vector``)."""
    base = _program(replace(key, kind=key.kind[:-len("_batched")]))
    n = _flat_count(key.types)
    first = n + 1 if key.kind == "hessian_batched" else n   # after the hessian's ȳ
    directions = range(first, len(base.params))
    outputs = range(len(base.results) - len(directions) if key.kind == "hessian_batched"
                    else _primal_count(key), len(base.results))
    return batch_program(base, directions, outputs)


def _primal_count(key: _Key) -> int:
    return len(_program(replace(key, kind="returned", wrt=())).results)


# --------------------------------------------------------------------------- backends

@dataclass(frozen=True)
class _Compiled:
    """A compiled program: ``run`` takes arguments converted by ``convert``. ``writes_in_place``:
    the program writes its updated arguments into their arrays itself (native code may)."""

    run: Callable[..., Any]
    backend: str                       # "native" or "python"
    kernel: Any = None                 # the ``codegen.NativeKernel``
    writes_in_place: bool = False
    reason: str = ""                   # why the native backend did not serve it

    def convert(self, types: Sequence[Any], args: Sequence[Any],
                plan: tuple | None = None) -> list[Any]:
        """The program's arguments: tuples flattened, scalars as this backend takes them
        (``plan``: ``self.plan(types)``, if the caller has it)."""
        plan = self.plan(types) if plan is None else plan
        out = []
        for path, make in plan:
            value = args[path[0]]
            for k in path[1:]:
                value = value[k]
            out.append(value if make is None else make(value))
        return out

    def plan(self, types: Sequence[Any]) -> tuple:
        """Each program argument's path into the arguments and its conversion."""
        types = types if isinstance(types, tuple) else tuple(types)
        plan = _CONVERSIONS.get((types, self.backend))
        if plan is None:
            scalars = _NATIVE_SCALARS if self.backend == "native" else _PYTHON_SCALARS
            plan = _CONVERSIONS[(types, self.backend)] = tuple(
                (path, None if is_array(t) else scalars[t]) for path, t in _paths(types))
        return plan


#: (argument types, backend) -> each program argument's path into the arguments (tuples
#: nest) and what converts it (None: an array, passed as it is).
_CONVERSIONS: dict[tuple[Any, str], tuple] = {}


def _paths(types: Sequence[Any]) -> list[tuple[tuple[int, ...], Type]]:
    """(index path, type) of each item of the arguments, flat, in the program's order."""
    out: list[tuple[tuple[int, ...], Type]] = []

    def walk(t: Any, path: tuple[int, ...]) -> None:
        if isinstance(t, tuple):
            for k, part in enumerate(t):
                walk(part, (*path, k))
        else:
            out.append((path, t))
    for i, t in enumerate(types):
        walk(t, (i,))
    return out


def _compiled(key: _Key) -> _Compiled:
    """The compiled program of ``key``."""
    found = _kernels.get(key)
    if found is None:
        with _lock:
            found = _kernels.get(key)
            if found is None:
                stats["kernels"] += 1
                _prefetch(key)
                found = _kernels[key] = _compile(_program(key))
    return found


def backend_of(key: _Key) -> str:
    """Which backend serves ``key``'s program: "native" or "python"."""
    return _compiled(key).backend


def _prefetch(key: _Key) -> None:
    """On a cold machine, let codegen build the runtime library an array kernel will likely
    call while this thread builds the program (``codegen.prefetch``)."""
    arrays = [leaf for leaf, _, _ in _flat(key.types, [None] * len(key.types)) if is_array(leaf)]
    if BACKEND == "native" and arrays:
        import codegen.prefetch
        codegen.prefetch.prefetch(arrays)


def _compile(program: Func) -> _Compiled:
    reason = "SXAD_BACKEND=python"
    if BACKEND == "native":
        import codegen  # loads LLVM: only when a kernel is first needed
        try:
            kernel = codegen.compile_kernel(program)
        except codegen.CodegenError as err:   # not lowered natively yet: generated Python
            backend_stats["fallbacks"] += 1
            reason = str(err)
        else:
            backend_stats["native"] += 1
            return _Compiled(kernel.entry, "native", kernel,
                             bool(getattr(kernel, "writes_in_place", False)))
    backend_stats["python"] += 1
    return _python(program, reason)


def _python(program: Func, reason: str) -> _Compiled:
    run = compile_python(program)

    def call(*args: Any) -> Any:
        with np.errstate(all="ignore"):  # numpy semantics, quietly: 1/0 is inf
            return run(*args)
    return _Compiled(call, "python", reason=reason)


_python_versions: dict[_Key, _Compiled] = {}


def _declined(key: _Key, args: Sequence[Any], extra: Sequence[Any]) -> Any:
    """Run ``key``'s program as generated Python: its native entry declined these arguments."""
    backend_stats["declined"] += 1
    with _lock:
        python = _python_versions.get(key)
        if python is None:
            python = _python_versions[key] = _python(_program(key), "the native entry declined")
    program = _program(key)
    types = [p.type for p in program.params]
    flat = [a for _, a, _ in _flat(key.types, args)]
    return python.run(*python.convert(types, [*flat, *extra]))


def _results(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _results_of(program: Func, value: Any) -> tuple:
    """A backend's return value as the tuple of ``program``'s results."""
    if len(program.results) == 1 and not program.tuple_result:
        return (value,)
    return tuple(value)


def _user(value: Any) -> Any:
    """A result as the user gets it: Python numbers for scalars (an ``np.float32`` stays one, as
    numpy gives it), ndarrays for arrays."""
    if isinstance(value, np.float32):
        return value
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fit(value: Any, like: Any) -> Any:
    """A derivative with respect to ``like``: a float for a scalar, else an array of ``like``'s
    shape and dtype."""
    if not isinstance(like, np.ndarray):
        return float(value)
    array = np.asarray(value)
    if array.shape != like.shape:
        array = np.broadcast_to(array, like.shape).copy()
    return array.astype(like.dtype, copy=False)


def _shape_out(program: Func, values: list) -> Any:
    if program.tuple_result or len(values) > 1:
        return tuple(values)
    return values[0] if values else None


def _shape_error(fn: Callable, names: Sequence[str], args: Sequence[Any],
                 err: ValueError) -> ValueError:
    """A backend's ValueError on array arguments, naming the arguments and their shapes."""
    shapes = ", ".join(f"`{n}` {np.shape(a)}" for _, a, n in _flat(
        [_type_of(fn, n, a) for n, a in zip(names, args)], args, names)
        if isinstance(a, np.ndarray))
    return ValueError(f"{_qualname(fn)}: {err} (array arguments: {shapes})")


def _execute(fn: Callable, key: _Key, names: Sequence[str], args: Sequence[Any],
             extra: Sequence[Any] = (), compiled: _Compiled | None = None,
             program: Func | None = None, plan: tuple | None = None) -> tuple:
    """Run ``key``'s program on ``args`` (then ``extra``: tangents, cotangents); the returned
    results, after the updated arguments were written back into their arrays. ``compiled``,
    ``program``, ``plan``: ``key``'s, when the caller has them at hand."""
    compiled, program = compiled or _compiled(key), program or _program(key)
    values = compiled.convert(key.types, args, plan)
    try:
        out = compiled.run(*values, *extra)
        declined = out is NotImplemented   # arguments the native entry does not take (a layout…)
        if declined:
            out = _declined_updating(fn, key, program, names, args, extra)
        out = _results_of(program, out)
    except ValueError as err:
        if isinstance(err, ReadOnlyArgumentError) or \
                not any(is_array(t) for t, _, _ in _flat(key.types, args)):
            raise
        raise _shape_error(fn, names, args, err) from None
    if not program.mutated:
        return out
    n = len(out) - len(program.mutated)
    if declined or not compiled.writes_in_place:   # generated Python returned new arrays
        leaves = _flat(key.types, args, names)
        _check_writeable(fn, program.mutated, leaves, out[n:])
        for position, new in zip(program.mutated, out[n:]):
            if leaves[position][1].flags.writeable:   # a read-only one is unchanged (checked)
                np.copyto(leaves[position][1], new)
    return out[:n]


def _declined_updating(fn: Callable, key: _Key, program: Func, names: Sequence[str],
                       args: Sequence[Any], extra: Sequence[Any]) -> Any:
    """``_declined``; when the run fails and the program updates an argument that is read-only,
    the read-only argument is reported: numpy refuses its update before anything else in the
    statement (``x[7] = v`` on a read-only ``x`` of 3 elements is a read-only error there)."""
    try:
        return _declined(key, args, extra)
    except Exception:
        if program.mutated:
            leaves = _flat(key.types, args, names)
            for position in program.mutated:
                _, array, name = leaves[position]
                if isinstance(array, np.ndarray) and not array.flags.writeable:
                    raise ReadOnlyArgumentError.of(fn, name) from None
        raise


class ReadOnlyArgumentError(ValueError):
    """An argument the function updates in place is read-only (a ValueError, as numpy's)."""

    @classmethod
    def of(cls, fn: Callable, name: str) -> "ReadOnlyArgumentError":
        return cls(f"argument `{name}` of {_qualname(fn)}: the array is read-only, but "
                   f"{_qualname(fn)} updates it in place")


def _check_writeable(fn: Callable, mutated: Sequence[int],
                     leaves: Sequence[tuple[Type, Any, str]], new: Sequence[Any]) -> None:
    """A read-only argument the run changed is refused, as numpy refuses ("assignment
    destination is read-only"), before any argument is written: nothing is half updated. (The
    native entry hands read-only arguments to generated Python, so this sees them all; a path
    that did not update the argument leaves it equal, and is fine, as in numpy.)"""
    for position, value in zip(mutated, new):
        _, array, name = leaves[position]
        if isinstance(array, np.ndarray) and not array.flags.writeable and \
                not np.array_equal(array, value, equal_nan=array.dtype.kind == "f"):
            raise ReadOnlyArgumentError.of(fn, name)


class _Transformed:
    """A user function seen through one transformation; remembers the last signature used.

    Each instance gets a class of its own, so that its ``__call__`` can become the native
    kernel of the last signature seen (``_install``): a call is then one native function call,
    which hands the calls it cannot take (other types, keywords) back to ``_dispatch``, and all
    calls once the function has changed (its guards fail): ``_dispatch`` then builds anew.

    Inside a compiled function, ``__sxad_program__(types)`` gives the program a call with
    arguments of ``types`` runs, and how its results nest (docs/ARRAYS.md §6).
    """

    def __init__(self, fn: Callable, wrt: Any = 0) -> None:
        if isinstance(fn, _Transformed):
            raise TypeError("sxad transformations apply to plain Python functions; "
                            "use sxad.hessian for second derivatives")
        if not (inspect.isfunction(fn) or _is_program_object(fn)):
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
        #: argument types by ``_fingerprint``: each type is computed once per kind of argument
        self.types_seen: dict[tuple, tuple[Any, ...]] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._dispatch(*args, **kwargs)

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        """Specialise on the argument types, then run (each transformation defines it)."""
        raise TypeError(f"{type(self).__name__} cannot be called")

    def __sxad_program__(self, types: Sequence[Type]) -> tuple[Func, Any]:
        """(the optimized program a call with arguments of ``types`` runs, the nesting of its
        results as this call returns them: a result position or a tuple of nestings)."""
        types = tuple(types)
        if len(types) != len(self.names):
            raise TypeError(f"{_qualname(self.fn)} takes {len(self.names)} arguments "
                            f"({', '.join(self.names)}), got {len(types)} types")
        return self._program_for(types, self._fresh())

    def _program_for(self, types: tuple[Type, ...], version: _Version) -> tuple[Func, Any]:
        raise TypeError(f"{type(self).__name__} cannot be compiled into another function")

    def _fresh(self) -> _Version:
        """The function's current version; kernels of an older one are dropped."""
        version = _current(self.fn)
        if version is not self.version:
            self.version, self.kernels, self.installed = version, {}, {}
        return version

    def _install(self, key: _Key, version: _Version) -> None:
        """Make the native kernel of ``key`` this object's ``__call__``, checking ``version``'s
        guards natively before each call (not for a program served by Python, or one whose
        updated arguments the API writes back)."""
        if BACKEND != "native":
            return
        native = self.installed.get(key)
        if native is None:
            compiled = _compiled(key)
            if compiled.backend != "native" or _program(key).mutated or \
                    any(isinstance(t, tuple) for t in key.types):   # the entry takes items
                return
            import codegen
            native = codegen.bind_fallback(compiled.kernel, self._dispatch, version.guards)
            self.installed[key] = native
        type(self).__call__ = staticmethod(native)

    def _install_flattening(self, key: _Key, version: _Version, program: Func,
                            compiled: _Compiled) -> None:
        """For a native program taking tuples or updating arguments in place (a training
        step), whose arguments are each a scalar, an array or a tuple of them: make
        ``__call__`` a function that passes the tuples' items to the native kernel itself
        (its guards and argument checks native) and returns what the source returns; any
        call it cannot take goes to ``_dispatch`` (which also names the errors). ~1 µs of
        Python where ``_dispatch`` takes ~8 (``_install`` serves the other programs with no
        Python at all)."""
        nested = any(isinstance(t, tuple) and any(isinstance(u, tuple) for u in t)
                     for t in key.types)
        if BACKEND != "native" or compiled.backend != "native" or nested or \
                (program.mutated and not compiled.writes_in_place) or \
                len(key.types) != len(self.names):
            return
        call = self.installed.get(key)
        if call is None:
            import codegen
            entry = codegen.bind_fallback(compiled.kernel, lambda *_, **__: NotImplemented,
                                          version.guards)
            call = self.installed[key] = _updating_caller(key.types, program, entry,
                                                          self._dispatch)
        type(self).__call__ = staticmethod(call)

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
        """The arguments' types, and the arguments checked (ints fit int64)."""
        fingerprint = _fingerprint(args)
        types = self.types_seen.get(fingerprint)
        if types is None:
            types = tuple(_type_of(self.fn, n, a) for n, a in zip(self.names, args))
            self.types_seen[fingerprint] = types
        self.last_types = types
        if _has_ints(types):
            for t, a, name in _flat(types, args, self.names):
                if t is I64:
                    _check_int64(self.fn, name, int(a))
        return types, tuple(args)

    def _check_wrt(self, types: Sequence[Any]) -> None:
        for i in self.wrt:
            for t, _, name in _leaves(types[i], None, self.names[i]):
                if not t.is_float:
                    example = "an array of floats" if is_array(t) else f"{name}=2.0"
                    raise TypeError(f"cannot differentiate {_qualname(self.fn)} with respect "
                                    f"to `{name}`: it is {_describe(t)}, not a float (pass "
                                    f"e.g. {example})")

    def _no_tuples(self, types: Sequence[Any], what: str) -> None:
        for i in self.wrt:
            if isinstance(types[i], tuple):
                raise TypeError(f"{what} of {_qualname(self.fn)} with respect to the tuple "
                                f"`{self.names[i]}`: pass its items as arguments of their own")

    def _run(self, key: _Key, args: Sequence[Any], extra: Sequence[Any] = ()) -> tuple:
        return _execute(self.fn, key, self.names, args, extra)

    def _runner(self, key: _Key) -> Callable[..., tuple]:
        """``_run`` of ``key``, its compiled program looked up once (the kernels of a
        signature are dropped with ``self.kernels`` when the function changes)."""
        compiled, program, fn, names = _compiled(key), _program(key), self.fn, self.names
        plan = compiled.plan(key.types)
        return lambda args, extra=(): _execute(fn, key, names, args, extra, compiled, program,
                                               plan)

    def _key(self, types: tuple[Type, ...], kind: str, version: _Version,
             wrt: tuple[int, ...] | None = None) -> _Key:
        wrt = (() if kind in ("primal", "returned") else self.wrt) if wrt is None else wrt
        return _Key(self.fn, types, kind, wrt, version.number)


def _scalar_output(fn: Callable, program: Func) -> None:
    returned = program.returned
    if program.tuple_result or len(returned) != 1:
        raise TypeError(f"grad needs {_qualname(fn)} to return one float, but it returns a "
                        f"tuple; use sxad.vjp, sxad.jvp or sxad.jacobian for several outputs")
    t = returned[0].type
    if is_array(t):
        raise TypeError(f"grad needs {_qualname(fn)} to return one float, but it returns "
                        f"{_describe(t)}; use sxad.jacobian or sxad.vjp for array outputs")
    if not t.is_float:
        raise TypeError(f"grad needs {_qualname(fn)} to return a float, but it returns "
                        f"{_describe(t)}")


class ValueAndGrad(_Transformed):
    """``f``'s value and its derivative with respect to ``wrt``."""

    with_value = True

    def __init__(self, fn: Callable, wrt: Any = 0, mode: str = "reverse") -> None:
        super().__init__(fn, wrt)
        if mode not in ("reverse", "forward"):
            raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}")
        self.mode = mode

    @property
    def kind(self) -> str:
        return "value_and_grad" if self.with_value else "grad"

    @property
    def _bare(self) -> bool:
        """Whether the gradient comes alone rather than in a tuple: for one argument, and (as
        the grad program returns it) for ``grad`` with a one-element ``wrt`` tuple too."""
        return self.single or (not self.with_value and len(self.wrt) == 1)

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        types, args = self._signature(self._bind(args, kwargs))
        version = self._fresh()
        run = self.kernels.get(types) or self._prepare(types, version)
        if self.mode == "reverse" and (self.single or not self.with_value):
            self._install(self._key(types, self.kind, version), version)
        return run(args)

    def _check(self, types: tuple[Type, ...], version: _Version) -> None:
        self._check_wrt(types)
        _scalar_output(self.fn, _program(self._key(types, "returned", version)))

    def _program_for(self, types: tuple[Type, ...], version: _Version) -> tuple[Func, Any]:
        self._check(types, version)
        program = _program(self._key(types, self.kind, version))
        if self.with_value:
            return program, (0, _grad_structure(types, self.wrt, 1, self.single))
        return program, _grad_structure(types, self.wrt, 0, self._bare)

    def _prepare(self, types: tuple[Type, ...], version: _Version) -> Callable:
        """Check a new signature once, and pick the kernel that serves it."""
        self._check(types, version)
        if self.mode == "forward":
            run = self._forward(types, version)
        else:
            run = self._reverse(types, version)
        self.kernels[types] = run
        return run

    def _reverse(self, types: tuple[Type, ...], version: _Version) -> Callable:
        execute = self._runner(self._key(types, self.kind, version))
        bare, with_value, wrt = self._bare, self.with_value, self.wrt

        def run(args: tuple) -> Any:
            out = execute(args)
            grads = _grouped(types, args, wrt, out[1:] if with_value else out)
            grads = grads[0] if bare else grads
            return (float(out[0]), grads) if with_value else grads
        return run

    def _forward(self, types: tuple[Type, ...], version: _Version) -> Callable:
        """Forward mode: one unit tangent per input element (one sweep in vector mode when an
        argument is an array; one call per scalar otherwise)."""
        bare, with_value, wrt = self._bare, self.with_value, self.wrt
        leaf_types = [t for i in wrt for t, _, _ in _leaves(types[i])]
        arrays = any(is_array(t) for t in leaf_types)
        if arrays:
            key = self._key(types, "jvp_batched", version)
        else:
            key = self._key(types, "jvp", version)
            n = len(leaf_types)
            seeds = [tuple(np.float64(k == j) for j in range(n)) for k in range(n)]

        def run(args: tuple) -> Any:
            likes = [v for i in wrt for _, v, _ in _leaves(types[i], args[i])]
            if arrays:
                out = self._run(key, args, _unit_seeds(likes, leaf_types))
                value = out[0]
                parts = _split_rows(np.asarray(out[-1]), [int(np.size(v)) for v in likes])
                flat = [p.reshape(np.shape(v)) for p, v in zip(parts, likes)]
            else:
                outs = [self._run(key, args, seed) for seed in seeds]
                value = outs[0][0] if outs else self._run(self._key(types, "returned",
                                                                    version), args)[0]
                flat = [o[-1] for o in outs]
            grads = _grouped(types, args, wrt, flat)
            grads = grads[0] if bare else grads
            return (float(value), grads) if with_value else grads
        return run


def _grouped(types: Sequence[Any], args: Sequence[Any], wrt: Sequence[int],
             values: Sequence[Any]) -> tuple:
    """Flat derivatives (one per float item of the arguments at ``wrt``) nested as those
    arguments are, each of its item's shape and dtype (``None`` for an int or bool item)."""
    values = iter(values)
    out = []
    for i in wrt:
        fitted = [_fit(next(values), v) if t.is_float else None
                  for t, v, _ in _leaves(types[i], args[i])]
        out.append(_rebuild(types[i], iter(fitted)))
    return tuple(out)


def _grad_structure(types: Sequence[Any], wrt: Sequence[int], start: int, bare: bool) -> Any:
    """Where the gradients are among a program's results, nested as the call returns them."""
    positions = itertools.count(start)
    parts = tuple(_rebuild(types[i], positions) for i in wrt)
    return parts[0] if bare else parts


def _unit_seeds(likes: Sequence[Any], types: Sequence[Type]) -> list:
    """One batch of directions per value of ``likes`` (of ``types``): together the identity,
    the rows of value k being those after the sizes of the values before it."""
    sizes = [int(np.size(v)) for v in likes]
    total, offset, seeds = sum(sizes), 0, []
    for like, size, t in zip(likes, sizes, types):
        dtype = NUMPY_TYPE[t.dtype] if is_array(t) else np.float64
        seed = np.zeros((total, size), dtype=dtype)
        seed[offset:offset + size] = np.eye(size, dtype=dtype)
        seeds.append(seed.reshape((total, *np.shape(like))))
        offset += size
    return seeds


def _split_rows(batch: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """The rows of ``batch`` cut into consecutive groups of ``sizes`` (the directions of each
    value, as ``_unit_seeds`` laid them out)."""
    out, offset = [], 0
    for size in sizes:
        out.append(batch[offset:offset + size])
        offset += size
    return out


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
    """``f`` compiled; same results. Arrays it updates in place are written back."""

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        types, args = self._signature(self._bind(args, kwargs))
        version = self._fresh()
        run = self.kernels.get(types)
        if run is None:
            run = self.kernels[types] = self._primal_runner(types, version)
        return run(args)

    def _primal_runner(self, types: tuple[Type, ...], version: _Version) -> Callable:
        """What runs the calls of one signature, its program and kernel looked up once (and
        the native kernel installed as ``__call__`` when it can serve the calls itself)."""
        key = self._key(types, "primal", version)
        compiled, program = _compiled(key), _program(key)
        execute = self._runner(key)
        if compiled.backend != "native" or program.mutated or \
                any(isinstance(t, tuple) for t in types):
            self._install_flattening(key, version, program, compiled)
            return lambda args: _shape_out(program, [_user(v) for v in execute(args)])
        self._install(key, version)

        def run(args: tuple) -> Any:
            try:
                out = compiled.run(*compiled.convert(types, args))
            except ValueError as err:
                if not any(isinstance(a, np.ndarray) for a in args):
                    raise
                raise _shape_error(self.fn, self.names, args, err) from None
            if out is not NotImplemented:   # as the native entry boxes it: the user's shape
                return out
            return _shape_out(program, [_user(v) for v in execute(args)])
        return run

    def _program_for(self, types: tuple[Type, ...], version: _Version) -> tuple[Func, Any]:
        program = _program(self._key(types, "primal", version))
        return program, _structure(program)


def _updating_caller(types: tuple[Any, ...], program: Func, entry: Callable,
                     slow: Callable) -> Callable:
    """``Jit._install_flattening``'s function: checks each tuple argument's type and length,
    calls ``entry`` with the flattened arguments, keeps the results the source returns; else
    (keywords, another count, a tuple of another length, an argument the entry declines, a
    ValueError to name) the call goes to ``slow``, which runs it again (a failed kernel
    changed nothing)."""
    count = len(types)
    tuples = [(i, len(t)) for i, t in enumerate(types) if isinstance(t, tuple)][::-1]
    returned, several = len(program.returned), len(program.results) > 1
    as_tuple = program.tuple_result or returned > 1   # the entry returns a tuple then too

    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != count:
            return slow(*args, **kwargs)
        flat = list(args)
        for i, size in tuples:             # from the last: positions before stay put
            items = args[i]
            if type(items) is not tuple or len(items) != size:
                return slow(*args)
            flat[i:i + 1] = items
        try:
            out = entry(*flat)
        except ValueError:
            return slow(*args)
        if out is NotImplemented:
            return slow(*args)
        if as_tuple:
            return tuple(out[:returned])
        if returned:                       # one object, or a tuple with the updated arguments
            return out[0] if several else out
        return None
    return call


def jit(f: Callable) -> Jit:
    """``f`` compiled (the primal program)."""
    return Jit(f)


def _float_positions(types: Sequence[Any]) -> tuple[int, ...]:
    """The arguments with a float item (all of a scalar or an array; any of a tuple)."""
    return tuple(i for i, t in enumerate(types) if any(leaf.is_float for leaf, _, _ in
                                                       _leaves(t)))


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """``(f(*primals), J·tangents)``; tangents of int/bool arguments are ignored, and
    int/bool outputs have tangent ``None``. An array argument's tangent is an array of its
    shape; an array output's tangent is an array."""
    t = Jit(f)
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    types, args = t._signature(t._bind(primals, {}))
    wrt = _float_positions(types)
    version = t._fresh()
    program = _program(t._key(types, "returned", version))
    if not wrt:
        return t(*primals), _shape_out(program, [None] * len(program.results))
    key = t._key(types, "jvp", version, wrt)
    items = [(leaf, tangent, arg, name) for i in wrt for (leaf, arg, name), (_, tangent, _)
             in zip(_leaves(types[i], args[i], t.names[i]),
                    _leaves(types[i], _tuple_like(types[i], tangents[i], t.names[i])))
             if leaf.is_float]
    seeds = [_direction(f"jvp: the tangent of `{name}`", tangent, arg, leaf)
             for leaf, tangent, arg, name in items]
    out = t._run(key, args, _compiled(key).convert([leaf for leaf, *_ in items], seeds))
    n = len(program.results)
    dots = iter(out[n:])
    tangents_out = [_user(next(dots)) if r.type.is_float else None for r in program.results]
    return _shape_out(program, [_user(v) for v in out[:n]]), _shape_out(program, tangents_out)


def vjp(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """``(f(*primals), pullback)``; ``pullback(cotangent)`` gives one cotangent per argument
    (``None`` for int/bool arguments and int/bool arrays)."""
    t = Jit(f)
    types, args = t._signature(t._bind(primals, {}))
    wrt = _float_positions(types)
    version = t._fresh()
    program = _program(t._key(types, "returned", version))
    outputs = t._run(t._key(types, "returned", version), args)
    value = _shape_out(program, [_user(v) for v in outputs])
    floats = [j for j, r in enumerate(program.results) if r.type.is_float]
    # Now, not in ``pullback``: the derivative of ``f`` as it is when ``value`` was computed.
    key = t._key(types, "vjp", version, wrt) if wrt else None

    def pullback(cotangent: Any) -> tuple:
        cts = _results(cotangent) if program.tuple_result or len(program.results) != 1 \
            else (cotangent,)
        if len(cts) != len(program.results):
            raise ValueError(f"pullback: {_qualname(f)} has {len(program.results)} outputs, "
                             f"got {len(cts)} cotangents")
        seeds = [_direction(f"pullback: cotangent {j}", cts[j], outputs[j],
                            program.results[j].type) for j in floats]
        if key is None:
            return (None,) * len(types)
        compiled = _compiled(key)
        extra = compiled.convert([program.results[j].type for j in floats], seeds)
        grads = iter(_grouped(types, args, wrt, t._run(key, args, extra)[len(program.results):]))
        return tuple(next(grads) if i in wrt else None for i in range(len(types)))
    return value, pullback


def _tuple_like(t: Any, value: Any, name: str) -> Any:
    """``value`` (a tangent) checked to nest as an argument of type ``t`` does."""
    if isinstance(t, tuple) and not (isinstance(value, tuple) and len(value) == len(t)):
        raise TypeError(f"jvp: the tangent of `{name}` must be a tuple of {len(t)}, like its "
                        f"value, got {type(value).__name__}")
    if isinstance(t, tuple):
        return tuple(_tuple_like(p, v, f"{name}[{k}]") for k, (p, v) in enumerate(zip(t, value)))
    return value


def hessian(f: Callable, wrt: Any = 0) -> Callable:
    """Second derivatives with respect to ``wrt``, by forward mode over reverse mode: a float
    (or a tuple of rows of floats) for scalar arguments; for array arguments an array of shape
    ``x.shape + x.shape`` (a tuple of tuples of them for several), all directions in one sweep
    (vector mode)."""
    g = Grad(f, wrt)

    @functools.wraps(f)
    def call(*args: Any, **kwargs: Any) -> Any:
        types, args = g._signature(g._bind(args, kwargs))
        version = g._fresh()
        g._no_tuples(types, "hessian")
        g._check(types, version)
        if any(is_array(types[i]) for i in g.wrt):
            return _hessian_batched(g, types, args, version)
        kernel = g._key(types, "hessian", version)
        n = len(g.wrt)
        one = (np.float64(1.0),)
        rows = []
        for k in range(n):
            seeds = [np.float64(k == j) for j in range(n)]
            out = g._run(kernel, args, (*one, *seeds))
            rows.append(tuple(float(v) for v in out[-n:]))
        matrix = tuple(zip(*rows))  # column k came from seed k: transpose to rows
        return matrix[0][0] if g.single else matrix
    return call


def _hessian_batched(g: Grad, types: tuple[Type, ...], args: tuple, version: _Version) -> Any:
    key = g._key(types, "hessian_batched", version)
    likes = [args[i] for i in g.wrt]
    sizes = [int(np.size(v)) for v in likes]
    output = _program(g._key(types, "returned", version)).results[0].type
    compiled = _compiled(key)
    one = compiled.convert([output], [1.0])
    seeds = _unit_seeds(likes, [types[i] for i in g.wrt])
    out = g._run(key, args, (*one, *seeds)) if sum(sizes) else None
    rows = []
    for i, gi in enumerate(g.wrt):
        dots = out[len(out) - len(g.wrt) + i] if out is not None else None
        row = []
        for j, part in enumerate(_split_rows(np.asarray(dots), sizes) if dots is not None
                                 else [None] * len(sizes)):
            shape_i, shape_j = np.shape(likes[i]), np.shape(likes[j])
            dtype = np.result_type(*(np.asarray(v).dtype for v in (likes[i], likes[j])))
            if part is None:
                row.append(np.zeros(shape_i + shape_j, dtype))
                continue
            block = np.asarray(part).reshape(shape_j + shape_i)   # [x_j dir, g_i element]
            row.append(_move_front(block, len(shape_j)).astype(dtype, copy=False))
        rows.append(tuple(row))
    return rows[0][0] if g.single else tuple(rows)


def _move_front(block: np.ndarray, lead: int) -> np.ndarray:
    """``block`` with its first ``lead`` axes moved to the end."""
    return np.moveaxis(block, tuple(range(lead)), tuple(range(block.ndim - lead, block.ndim)))


# --------------------------------------------------------------------------- jacobian

class Jacobian(_Transformed):
    """The Jacobian of ``f`` with respect to ``wrt``: for an output of shape ``out`` and an
    argument of shape ``in``, an array of shape ``out + in`` (as ``jax.jacobian``); a tuple over
    the arguments for a tuple ``wrt``, inside a tuple over the outputs for several outputs
    (``None`` for int/bool outputs). All directions go through one sweep (vector mode):
    forward mode carries one tangent per input element, reverse mode one cotangent per output
    element; ``mode="auto"`` picks forward when the inputs have fewer elements than the
    outputs, else reverse."""

    def __init__(self, fn: Callable, wrt: Any = 0, mode: str = "auto") -> None:
        super().__init__(fn, wrt)
        if mode not in ("auto", "forward", "reverse"):
            raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
        self.mode = mode
        self.last_mode: str | None = None   # the mode the last call used

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        types, args = self._signature(self._bind(args, kwargs))
        version = self._fresh()
        self._no_tuples(types, "jacobian")
        self._check_wrt(types)
        program = _program(self._key(types, "returned", version))
        outputs = self._run(self._key(types, "returned", version), args)
        floats = [j for j, r in enumerate(program.results) if r.type.is_float]
        n_in = sum(int(np.size(args[i])) for i in self.wrt)
        n_out = sum(int(np.size(outputs[j])) for j in floats)
        mode = self.mode
        if mode == "auto":
            mode = "forward" if n_in < n_out else "reverse"
        self.last_mode = mode
        blocks = {}   # (output j, argument position) → its Jacobian
        if n_in and n_out:
            run = self._forward if mode == "forward" else self._reverse
            blocks = run(types, args, outputs, floats, version)
        per_output = []
        for j, r in enumerate(program.results):
            if j not in floats:
                per_output.append(None)
                continue
            parts = tuple(blocks.get((j, i), None) for i in self.wrt)
            parts = tuple(p if p is not None else _zero_block(outputs[j], args[i])
                          for p, i in zip(parts, self.wrt))
            per_output.append(parts[0] if self.single else parts)
        return _shape_out(program, per_output)

    def _forward(self, types, args, outputs, floats, version) -> dict:
        key = self._key(types, "jvp_batched", version)
        likes = [args[i] for i in self.wrt]
        sizes = [int(np.size(v)) for v in likes]
        out = self._run(key, args, _unit_seeds(likes, [types[i] for i in self.wrt]))
        dots = iter(out[len(outputs):])
        blocks = {}
        for j in floats:
            batch = np.asarray(next(dots))
            for part, i, like in zip(_split_rows(batch, sizes), self.wrt, likes):
                block = part.reshape(np.shape(like) + np.shape(outputs[j]))
                blocks[(j, i)] = _cast_block(_move_front(block, np.ndim(like)), outputs[j], like)
        return blocks

    def _reverse(self, types, args, outputs, floats, version) -> dict:
        key = self._key(types, "vjp_batched", version)
        out_types = [_program(self._key(types, "returned", version)).results[j].type
                     for j in floats]
        likes = [outputs[j] for j in floats]
        sizes = [int(np.size(v)) for v in likes]
        seeds = _unit_seeds(likes, out_types)
        out = self._run(key, args, seeds)
        grads = dict(zip(self.wrt, out[len(outputs):]))
        blocks = {}
        for i in self.wrt:
            batch = np.asarray(grads[i])
            for part, j, like in zip(_split_rows(batch, sizes), floats, likes):
                block = part.reshape(np.shape(like) + np.shape(args[i]))
                blocks[(j, i)] = _cast_block(block, like, args[i])
        return blocks


def _cast_block(block: np.ndarray, output: Any, argument: Any) -> np.ndarray:
    dtype = np.result_type(np.asarray(output).dtype, np.asarray(argument).dtype)
    return np.array(block, dtype=dtype)   # a copy: never a view of the batch


def _zero_block(output: Any, argument: Any) -> np.ndarray:
    dtype = np.result_type(np.asarray(output).dtype, np.asarray(argument).dtype)
    return np.zeros(np.shape(output) + np.shape(argument), dtype)


def jacobian(f: Callable | None = None, wrt: Any = 0, mode: str = "auto") -> Any:
    """The Jacobian of ``f`` (see ``Jacobian``); usable as ``@sxad.jacobian(wrt=1)`` too."""
    if f is None:
        return lambda g: Jacobian(g, wrt, mode)
    return Jacobian(f, wrt, mode)


# --------------------------------------------------------------------------- tape size

def tape_size(f: Callable, *args: Any, wrt: Any = 0) -> int:
    """Bytes the reverse sweep's tape holds for these arguments: the forward sweep of the
    adjoint program (with respect to ``wrt``) runs in the interpreter and each value it pushes
    counts its size (8 bytes a float64 or int64, an array's ``nbytes``). Nothing is pushed by a
    program without loops; a loop stores what its reverse needs per iteration."""
    from .backends import interpreter
    t = ValueAndGrad(f, wrt)
    types, args = t._signature(t._bind(args, {}))
    t._check_wrt(types)
    version = t._fresh()
    returned = _program(t._key(types, "returned", version))
    program = _program(t._key(types, "vjp", version))
    flat = [a for _, a, _ in _flat(types, args)]
    outputs = interpreter.interpret(returned, flat)
    cotangents = [np.ones_like(v) if isinstance(v, np.ndarray) else NUMPY_TYPE[r.type](1)
                  for v, r in zip(outputs, returned.results) if r.type.is_float]
    return interpreter.tape_usage(program, [*flat, *cotangents])[0]


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
