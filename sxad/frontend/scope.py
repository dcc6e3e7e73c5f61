"""Names: what a function's free names refer to (closure, globals, builtins), and the
syntactic facts about statement lists that lowering needs (assigned names, exits)."""
from __future__ import annotations

import ast
import builtins
import types
from typing import Any, Iterator

import numpy as np

MISSING = object()  # a name bound nowhere

SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)


class Scope:
    """The Python objects visible to one function, looked up as Python would."""

    def __init__(self, fn: types.FunctionType) -> None:
        self.globals = fn.__globals__
        cells = fn.__closure__ or ()
        self.closure = dict(zip(fn.__code__.co_freevars, cells))
        found = self.globals.get("__builtins__", builtins)
        self.builtins = found if isinstance(found, dict) else vars(found)

    def lookup(self, name: str) -> Any:
        """The object ``name`` refers to, ``MISSING`` if none; ``ValueError`` for an empty cell."""
        if name in self.closure:
            try:
                return self.closure[name].cell_contents
            except ValueError:
                raise ValueError(f"free variable `{name}` is referenced before assignment "
                                 f"in the enclosing function") from None
        if name in self.globals:
            return self.globals[name]
        return self.builtins.get(name, MISSING)


def is_scalar(obj: Any) -> bool:
    return isinstance(obj, SCALARS)


def describe(obj: Any) -> str:
    """A few words for what ``obj`` is, for error messages."""
    if isinstance(obj, types.ModuleType):
        return "a module"
    if callable(obj):
        return "a function"
    return f"a `{type(obj).__name__}` object"


# --------------------------------------------------------------------------- syntactic scans

def _nested_scope(node: ast.AST) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
                             ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp))


def _walk(nodes: list[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodes`` in source order, not entering nested scopes. Iterative, so a
    long expression (``a + b + … + z`` nests one level per term) needs no deep recursion."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if not _nested_scope(node):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def body_nodes(fn: ast.FunctionDef) -> Iterator[ast.AST]:
    """Every node of ``fn``'s body in source order, not entering nested scopes."""
    return _walk(list(fn.body))


def _target_names(target: ast.AST) -> Iterator[ast.Name]:
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def assigned_names(stmts: list[ast.stmt]) -> dict[str, ast.AST]:
    """Each name a statement list assigns (at any depth), with its first assignment."""
    found: dict[str, ast.AST] = {}
    for node in _walk(list(stmts)):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, ast.NamedExpr):
            targets = [node.target]
        for target in targets:
            for name in _target_names(target):
                found.setdefault(name.id, name)
    return found


def local_names(fn: ast.FunctionDef) -> set[str]:
    """The names that are local to ``fn`` (Python's rule: parameters and anything assigned)."""
    args = fn.args
    params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    params += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return set(params) | set(assigned_names(fn.body))


def _loop_level(stmts: list[ast.stmt]) -> Iterator[ast.AST]:
    """Nodes at this loop's level: not inside nested loops or scopes."""
    for node in stmts:
        yield node
        if isinstance(node, ast.If):
            yield from _loop_level(node.body)
            yield from _loop_level(node.orelse)
        elif isinstance(node, (ast.With, ast.Try)):
            yield from _loop_level([n for n in ast.iter_child_nodes(node)
                                    if isinstance(n, ast.stmt)])


def has_break(stmts: list[ast.stmt]) -> bool:
    """Whether a ``break`` in ``stmts`` leaves the loop whose body they are."""
    return any(isinstance(n, ast.Break) for n in _loop_level(stmts))


def has_return(stmts: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Return) for n in _walk(list(stmts)))


def always_exits(stmts: list[ast.stmt]) -> bool:
    """Whether every path through ``stmts`` ends in ``return``, ``break`` or ``continue``."""
    for node in stmts:
        if isinstance(node, (ast.Return, ast.Break, ast.Continue)):
            return True
        if isinstance(node, ast.If) and always_exits(node.body) and always_exits(node.orelse):
            return True
    return False


def dotted(node: ast.AST) -> str:
    """``np.linalg.norm`` for an attribute chain, the source text otherwise."""
    try:
        return ast.unparse(node)
    except (AttributeError, ValueError, TypeError):  # an unusual node: name its kind instead
        return type(node).__name__
