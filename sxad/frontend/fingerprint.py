"""A hash of everything lowering reads: the function's source, the sources of the user
functions it calls (transitively), and the constants it reads from globals and closures.

``watch`` gives the same dependencies as guards that are cheap to check again (identity
compares, no source reading), so that caches keyed on the function object notice when it
changes: its ``__code__``, a global or closure constant it reads, a helper it calls."""
from __future__ import annotations

import ast
import hashlib
import types
from typing import Any, Iterator

import numpy as np

from ..errors import SourceUnavailableError
from .scope import MISSING, Scope, is_scalar, local_names
from .source import read_source


def fingerprint(fn: Any) -> str:
    """A hex digest that changes when anything ``lower(fn, ...)`` depends on changes."""
    digest = hashlib.sha256()
    _feed_function(read_source(fn).fn, digest, set())
    return digest.hexdigest()


def _feed_function(fn: types.FunctionType, digest: "hashlib._Hash",
                   seen: set[types.CodeType]) -> None:
    if fn.__code__ in seen:
        return
    seen.add(fn.__code__)
    try:
        src = read_source(fn)
    except SourceUnavailableError:
        digest.update(f"<no source: {fn.__qualname__}>".encode())
        return
    digest.update(f"def {fn.__qualname__}\n{''.join(src.lines)}\n".encode())
    digest.update(f"defaults {[_constant(d) for d in fn.__defaults__ or ()]}\n".encode())
    scope, local = Scope(fn), local_names(src.node)
    for label, obj in _free_references(src.node, scope, local):
        _feed_object(label, obj, digest, seen)


def _free_references(node: ast.FunctionDef, scope: Scope, local: set[str]) -> list[tuple[str, Any]]:
    """(dotted name, object) for each name or module attribute the function reads, sorted."""
    found: dict[str, Any] = {}
    for sub in ast.walk(node):
        chain = _chain(sub)
        if chain is None or chain[0] in local:
            continue
        try:
            obj = scope.lookup(chain[0])
        except ValueError:
            obj = MISSING
        for k, attr in enumerate(chain[1:], start=1):
            found.setdefault(".".join(chain[:k]), obj)
            if not isinstance(obj, types.ModuleType):
                break
            obj = getattr(obj, attr, MISSING)
        else:
            found.setdefault(".".join(chain), obj)
    return sorted(found.items(), key=lambda item: item[0])


def _chain(node: ast.AST) -> list[str] | None:
    """``["np", "linalg", "norm"]`` for an attribute chain on a name being read."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return [node.id, *reversed(attrs)]
    return None


def _feed_object(label: str, obj: Any, digest: "hashlib._Hash",
                 seen: set[types.CodeType]) -> None:
    if isinstance(obj, types.FunctionType):
        digest.update(f"{label} = function\n".encode())
        _feed_function(obj, digest, seen)
    elif isinstance(obj, types.ModuleType):
        digest.update(f"{label} = module {obj.__name__}\n".encode())
    elif _transformed(obj) is not None:   # `sxad.grad(f)` called inside: f's source counts
        digest.update(f"{label} = {_constant(obj)} of\n".encode())
        _feed_function(_transformed(obj), digest, seen)
    else:
        digest.update(f"{label} = {_constant(obj)}\n".encode())


def _transformed(obj: Any) -> types.FunctionType | None:
    """The user function a transformed callable (``__sxad_program__``) wraps, if any."""
    if isinstance(obj, types.FunctionType) or not hasattr(type(obj), "__sxad_program__"):
        return None
    inner = getattr(obj, "__wrapped__", None) or getattr(obj, "fn", None)
    return inner if isinstance(inner, types.FunctionType) else None


def _constant(obj: Any) -> str:
    """A stable text for a value: numbers by value, other objects by kind (never an address)."""
    if obj is MISSING:
        return "<undefined>"
    if is_scalar(obj) or isinstance(obj, str) or (   # strings: `if mode == "mse"`
            isinstance(obj, tuple) and all(is_scalar(o) or isinstance(o, str) for o in obj)):
        value = obj.item() if isinstance(obj, np.generic) else obj
        return f"{type(value).__name__}:{value!r}"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    module = getattr(obj, "__module__", None)
    return f"{type(obj).__name__}:{module}.{name}" if name else f"<{type(obj).__name__}>"


# --------------------------------------------------------------------------- guards

#: ``(owner, name, expected)``: ``owner.name is expected``, or ``owner[name] is expected`` when
#: ``owner`` is a dict (a module's globals). The same convention as ``codegen.Guard``.
Guard = tuple[Any, str, Any]


def watch(fn: Any) -> tuple[Guard, ...]:
    """What ``lower(fn, ...)`` depends on that can change while the source text stays: the
    ``__code__`` of ``fn`` and of each function it calls (and their ``__defaults__``), and each
    global, closure variable and module attribute they read that holds a number or a function.
    Names bound to modules, to library functions or to builtins are not watched."""
    found: dict[tuple[int, str], Guard] = {}
    fn = read_source(fn).fn
    found[(id(fn), "__code__")] = (fn, "__code__", fn.__code__)
    _watch_function(fn, found, set())
    return tuple(found.values())


def unchanged(guards: tuple[Guard, ...]) -> bool:
    """Whether every guard still holds."""
    for owner, name, expected in guards:
        try:
            current = dict.get(owner, name, MISSING) if isinstance(owner, dict) \
                else getattr(owner, name)
        except (AttributeError, ValueError):   # ValueError: an emptied cell
            return False
        if current is not expected:
            return False
    return True


def _watch_function(fn: types.FunctionType, found: dict[tuple[int, str], Guard],
                    seen: set[types.FunctionType]) -> None:
    if fn in seen:
        return
    seen.add(fn)
    try:
        src = read_source(fn)
    except SourceUnavailableError:
        return   # lowering fails on it: nothing is compiled to guard
    for owner, name, obj in _bindings(src.node, Scope(fn), local_names(src.node)):
        inner = _transformed(obj)
        if inner is not None:
            found.setdefault((id(owner), name), (owner, name, obj))
            obj = inner
        elif not (is_scalar(obj) or isinstance(obj, (str, types.FunctionType))):
            continue
        found.setdefault((id(owner), name), (owner, name, obj))
        if isinstance(obj, types.FunctionType):
            found.setdefault((id(obj), "__code__"), (obj, "__code__", obj.__code__))
            found.setdefault((id(obj), "__defaults__"), (obj, "__defaults__", obj.__defaults__))
            _watch_function(obj, found, seen)


def _bindings(node: ast.FunctionDef, scope: Scope, local: set[str]) -> Iterator[Guard]:
    """(closure cell or dict, name, object) for each free name and module attribute read."""
    for sub in ast.walk(node):
        chain = _chain(sub)
        if chain is None or chain[0] in local:
            continue
        head = chain[0]
        if head in scope.closure:
            cell = scope.closure[head]
            try:
                obj = cell.cell_contents
            except ValueError:
                continue
            yield cell, "cell_contents", obj
        elif head in scope.globals:
            obj = scope.globals[head]
            yield scope.globals, head, obj
        else:
            continue   # a builtin, or undefined
        for attr in chain[1:]:
            if not isinstance(obj, types.ModuleType) or attr not in vars(obj):
                break
            owner, obj = vars(obj), vars(obj)[attr]
            yield owner, attr, obj
