"""A guard: what a training step runs (activations, losses, layers, optimizer updates) stays
inside the numpy subset sxad will compile (docs/ARRAYS.md), so that it compiles unchanged when
the array frontend lands. Checked on the source, as the frontend will read it."""
from __future__ import annotations

import ast
import inspect
import textwrap
import types

import numpy as np
import pytest

from sxad.nn import activations, layers, losses, optimizers

COMPILED = (activations, layers, losses, optimizers)
# numpy functions with a primitive in docs/ARRAYS.md (elementwise, reductions, creation)
NUMPY = {"exp", "log", "log1p", "tanh", "sqrt", "abs", "maximum", "where", "sum", "max",
         "arange", "zeros_like"}
NUMPY_KEYWORDS = {"axis", "keepdims"}
BUILTINS = {"len", "range"}
ATTRIBUTES = {"T", "shape"}
# Function-valued arguments: called in the callee, so the inliner must bind them statically.
FUNCTION_ARGUMENTS = {"mlp_forward": {"activation"}}
OUTSIDE = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda, ast.With,
           ast.Try, ast.Raise, ast.Assert, ast.Dict, ast.Set, ast.List, ast.JoinedStr,
           ast.Starred, ast.Yield, ast.Global, ast.Nonlocal, ast.ClassDef, ast.While)

FUNCTIONS = [fn for m in COMPILED for fn in vars(m).values()
             if isinstance(fn, types.FunctionType) and fn.__module__ == m.__name__]
LIBRARY = {fn.__name__ for fn in FUNCTIONS}


def problems(fn: types.FunctionType) -> list[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    out = []
    # the body and the defaults: annotations are not run, and the frontend skips them
    for node in (n for top in [*tree.body, *tree.args.defaults] for n in ast.walk(top)):
        where = f"{fn.__name__}, line {getattr(node, 'lineno', '?')}"
        if isinstance(node, OUTSIDE + (ast.FunctionDef,)):
            out.append(f"{where}: {type(node).__name__}")
        elif isinstance(node, ast.Call):
            out += [f"{where}: {p}" for p in call_problems(fn.__name__, node)]
        elif isinstance(node, ast.Attribute) and not is_numpy(node) and node.attr not in ATTRIBUTES:
            out.append(f"{where}: attribute .{node.attr}")
        elif isinstance(node, ast.For) and not (isinstance(node.iter, ast.Call)
                                                and ast.unparse(node.iter.func) == "range"):
            out.append(f"{where}: a loop over {ast.unparse(node.iter)}")
    return out


def is_numpy(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and ast.unparse(node.value) == "np"


def call_problems(caller: str, node: ast.Call) -> list[str]:
    name = ast.unparse(node.func)
    if is_numpy(node.func):
        bad_kw = [kw.arg for kw in node.keywords if kw.arg not in NUMPY_KEYWORDS]
        return ([f"np.{node.func.attr}"] if node.func.attr not in NUMPY else []) + \
               [f"np.{node.func.attr}({k}=…)" for k in bad_kw]
    if name in LIBRARY | BUILTINS or name in FUNCTION_ARGUMENTS.get(caller, ()):
        return []
    return [f"a call of {name}"]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.__name__)
def test_inside_the_array_subset(fn):
    assert problems(fn) == []


def test_the_guard_catches_what_it_should():
    def outside(x, W):
        ys = [np.mean(x) for _ in x]
        return np.linalg.norm(W.ravel()), ys
    found = problems(outside)
    assert any("ListComp" in p for p in found)
    assert any("np.mean" in p for p in found)
    assert any(".ravel" in p for p in found)
    assert any("np.linalg.norm" in p or ".linalg" in p for p in found)
