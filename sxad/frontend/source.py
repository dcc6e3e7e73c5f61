"""A function's source: its definition as an AST, and the map from AST positions back to the
real file (so errors and ``Loc``s point at the line and column an editor shows)."""
from __future__ import annotations

import ast
import inspect
import textwrap
import types
import weakref
from dataclasses import dataclass
from typing import Any

from ..errors import SourceUnavailableError, UnsupportedError
from ..ir import Loc


@dataclass(frozen=True)
class Source:
    """A parsed function: ``node`` is its definition (a lambda is dressed up as a ``def``)."""

    fn: types.FunctionType
    node: ast.FunctionDef
    file: str
    lines: tuple[str, ...]   # the function's lines as they are in the file
    first_line: int          # file line number of ``lines[0]``
    line_shift: int          # file line = AST line + line_shift
    indent: int              # columns that dedenting removed (0 when parsed undedented)

    @property
    def name(self) -> str:
        return self.fn.__name__

    def text(self, node: ast.AST) -> str:
        """The file line that ``node`` starts on, without its newline."""
        k = node.lineno + self.line_shift - self.first_line
        return self.lines[k].rstrip("\r\n") if 0 <= k < len(self.lines) else ""

    def column(self, node: ast.AST, col_offset: int) -> int:
        """The 0-based character column in the file of a byte offset on ``node``'s first line."""
        line = self.text(node)
        return self.indent + len(line[self.indent:].encode()[:col_offset].decode("utf-8", "replace"))

    def loc(self, node: ast.AST) -> Loc:
        return Loc(self.file, node.lineno + self.line_shift, self.column(node, node.col_offset) + 1)

    def error(self, node: ast.AST, what: str,
              kind: type[UnsupportedError] = UnsupportedError) -> UnsupportedError:
        """An ``UnsupportedError`` at ``node``, with the source line and a caret under it."""
        if getattr(node, "end_lineno", None) == node.lineno and node.end_col_offset is not None:
            end = self.column(node, node.end_col_offset)
        else:
            end = len(self.text(node).rstrip())
        return kind(what, self.loc(node), self.text(node), end)


def read_source(fn: Any) -> Source:
    """Parse the definition of ``fn``; ``SourceUnavailableError`` if there is none to read."""
    if callable(fn) and not isinstance(fn, types.FunctionType):
        fn = inspect.unwrap(fn)  # a wrapper object: read what it wraps
    # A function is read as itself, even with ``__wrapped__``: a ``functools.wraps`` wrapper
    # computes something else than the function it wraps.
    label = getattr(fn, "__qualname__", None) or repr(fn)
    if not isinstance(fn, types.FunctionType):
        raise SourceUnavailableError(
            f"`{label}` is not a Python function defined with `def`, so its source cannot be read")
    cached = _SOURCES.get(fn)
    if cached is not None and cached[0] is fn.__code__:
        return cached[1]
    source = _read(fn, label)
    _SOURCES[fn] = (fn.__code__, source)
    return source


#: Sources already read, per function, with the code object they were read for: a warm start
#: reads each function once although fingerprinting and guarding both ask (a function given a
#: new ``__code__`` is read again).
_SOURCES: "weakref.WeakKeyDictionary[types.FunctionType, tuple[types.CodeType, Source]]" = \
    weakref.WeakKeyDictionary()


def _read(fn: types.FunctionType, label: str) -> Source:
    try:
        # inspect would follow ``__wrapped__``; its code is the wrapper's own. (Only then the
        # code: finding the module of a bare code object scans ``sys.modules``, which is slow.)
        lines, first = inspect.getsourcelines(fn.__code__ if hasattr(fn, "__wrapped__") else fn)
    except (OSError, TypeError) as err:
        raise SourceUnavailableError(
            f"the source of `{label}` is not available ({err}); functions defined in a REPL or "
            f"by `exec` cannot be read, define it in a file") from None
    first = max(first, 1)
    text = "".join(lines)
    try:
        module, shift, indent = _parse(text, lines, first)
    except SyntaxError as err:
        raise SourceUnavailableError(
            f"the source of `{label}` could not be parsed on its own ({err.msg})") from None
    node = _definition(fn, module, shift, label)
    file = inspect.getsourcefile(fn.__code__ if hasattr(fn, "__wrapped__") else fn) or \
        fn.__code__.co_filename
    return Source(fn, node, file, tuple(lines), first, shift, indent)


def _parse(text: str, lines: list[str], first: int) -> tuple[ast.Module, int, int]:
    """The parsed lines, the AST-to-file line shift, and the indentation removed."""
    dedented = textwrap.dedent(text)
    try:
        module = ast.parse(dedented)
    except SyntaxError:
        # A less-indented line inside a string defeats dedent: parse in place under a dummy block.
        wrapped = ast.parse("if 1:\n" + text)
        return ast.Module(body=wrapped.body[0].body, type_ignores=[]), first - 2, 0
    indent = len(lines[0]) - len(dedented.splitlines(True)[0])
    return module, first - 1, indent


def _definition(fn: types.FunctionType, module: ast.Module, shift: int,
                label: str) -> ast.FunctionDef:
    name = fn.__code__.co_name  # not ``__name__``, which wraps or the user may have changed
    if name == "<lambda>":
        return _lambda_definition(fn, module, shift, label)
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
        if isinstance(node, ast.AsyncFunctionDef):
            raise SourceUnavailableError(f"`{label}` is an async function, which is not supported")
    raise SourceUnavailableError(f"the definition of `{label}` was not found in its source")


def _lambda_definition(fn: types.FunctionType, module: ast.Module, shift: int,
                       label: str) -> ast.FunctionDef:
    """The only lambda on the function's first line, as ``def <lambda>(...): return ...``."""
    line = fn.__code__.co_firstlineno
    found = [n for n in ast.walk(module)
             if isinstance(n, ast.Lambda) and n.lineno + shift == line]
    if len(found) != 1:
        raise SourceUnavailableError(
            f"the source of `{label}` cannot be told apart from the code around it; "
            f"define it with `def`")
    lam = found[0]
    ret = ast.copy_location(ast.Return(value=lam.body), lam.body)
    ret.end_lineno, ret.end_col_offset = lam.body.end_lineno, lam.body.end_col_offset
    node = ast.FunctionDef(name="<lambda>", args=lam.args, body=[ret], decorator_list=[],
                           returns=None, type_comment=None)
    return ast.copy_location(node, lam)
