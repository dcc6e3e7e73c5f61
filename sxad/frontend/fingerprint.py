"""A hash of everything lowering reads: the function's source, the sources of the user
functions it calls (transitively), and the constants it reads from globals and closures."""
from __future__ import annotations

import ast
import hashlib
import types
from typing import Any

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
    else:
        digest.update(f"{label} = {_constant(obj)}\n".encode())


def _constant(obj: Any) -> str:
    """A stable text for a value: numbers by value, other objects by kind (never an address)."""
    if obj is MISSING:
        return "<undefined>"
    if is_scalar(obj):
        value = obj.item() if isinstance(obj, np.generic) else obj
        return f"{type(value).__name__}:{value!r}"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    module = getattr(obj, "__module__", None)
    return f"{type(obj).__name__}:{module}.{name}" if name else f"<{type(obj).__name__}>"
