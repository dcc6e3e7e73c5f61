"""The ``sxad`` command (also ``python -m sxad``): what sxad makes of a function in a file.

    sxad show  FILE.py:FUNC [--mode forward|reverse] [--wrt x1,x2] [--stage STAGE] [--args 2.0,5.0]
    sxad trace FILE.py:FUNC --args 2.0,5.0 [--mode forward|reverse] [--wrt x1] [--names user]
    sxad grad  FILE.py:FUNC --args 2.0,5.0 [--wrt x1,x2] [--mode forward|reverse]
    sxad check FILE.py:FUNC --args 2.0,5.0 [--wrt x1,x2] [--rtol 1e-6]

Exit status: 0 success; 1 the check failed, or sxad could not handle the function (outside
the supported Python subset, not returning a float, …); 2 a usage error: a bad command line, a
file that cannot be read or run, a missing function, bad ``--args`` or ``--wrt``.

Output is plain text; printing to a terminal, it is highlighted with ``rich`` if that is
installed (``--color always|never|auto``; ``NO_COLOR`` turns colour off under ``auto``).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import math
import os
import pathlib
import re
import sys
from typing import Any, Callable, Sequence

from .errors import SxadError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STAGES = ("python", "ir", "tangent-ir", "adjoint-ir", "llvm")
# Errors sxad raises on purpose about a function it was given: a message, not a traceback.
EXPECTED = (SxadError, TypeError, ValueError, ArithmeticError, ImportError)


class UsageError(Exception):
    """The command line, or the file or function it names, is wrong (exit status 2)."""


class Failed(Exception):
    """The command ran, and its answer is no (exit status 1): a gradient check failed."""


# --------------------------------------------------------------------------- the commands

def cmd_show(options: argparse.Namespace) -> None:
    import sxad
    fn = load(options.target)
    args = parse_args(fn, options.args) if options.args is not None else ()
    wrt = parse_wrt(fn, options.wrt, args, default="floats")
    text = sxad.source(fn, *args, wrt=wrt, mode=options.mode, stage=options.stage)
    emit_code(text, "llvm" if options.stage == "llvm" else "python", options.color)


def cmd_trace(options: argparse.Namespace) -> None:
    import sxad
    fn = load(options.target)
    args = parse_args(fn, options.args)
    default = "first" if options.mode == "forward" else "floats"
    wrt = parse_wrt(fn, options.wrt, args, default=default)
    if options.mode == "forward" and len(wrt) > 1:
        raise UsageError("a forward-mode trace follows one input: give one --wrt (forward "
                         "mode needs a sweep per input), or use --mode reverse")
    if options.max_iterations < 0 or not 0 <= options.digits <= 17:
        raise UsageError("--max-iterations must be 0 (all) or more, --digits from 0 to 17")
    table = sxad.trace(fn, *args, wrt=wrt, mode=options.mode, names=options.names,
                       max_iterations=options.max_iterations or None, digits=options.digits)
    if options.format == "markdown":
        emit(table.to_markdown().rstrip("\n"))
    elif options.format == "html":
        emit(table.to_html().rstrip("\n"))
    elif not emit_rich_trace(table, options.color):
        emit(table.to_text())


def cmd_grad(options: argparse.Namespace) -> None:
    import sxad
    fn = load(options.target)
    args = parse_args(fn, options.args)
    wrt = parse_wrt(fn, options.wrt, args, default="floats")
    value, gradient = sxad.value_and_grad(fn, wrt=wrt, mode=options.mode)(*args)
    names = inspect_names(fn)
    call = ", ".join(f"{n} = {a!r}" for n, a in zip(names, args))
    lines = [f"{fn.__name__}({call}) = {value!r}"]
    lines += [f"∂{fn.__name__}/∂{names[i]} = {g!r}" for i, g in zip(wrt, gradient)]
    emit("\n".join(lines))


def cmd_check(options: argparse.Namespace) -> None:
    import sxad
    fn = load(options.target)
    args = parse_args(fn, options.args)
    wrt = parse_wrt(fn, options.wrt, args, default="floats")
    report = sxad.check_grad(fn, *args, wrt=wrt, mode=options.mode, rtol=options.rtol,
                             atol=options.atol)
    emit(str(report))
    if not report.ok:
        raise Failed()


# --------------------------------------------------------------------------- the command line

def parser() -> argparse.ArgumentParser:
    from . import __version__
    top = argparse.ArgumentParser(
        prog="sxad", description="See what sxad makes of a Python function: its generated "
        "programs, its evaluation trace, its gradient, and a check of that gradient.",
        epilog="Exit status: 0 success, 1 a failed check or a function sxad cannot handle, "
               "2 a usage error. Run `sxad COMMAND --help` for each command.")
    top.add_argument("--version", action="version", version=f"sxad {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, forward_first = _common("reverse"), _common("forward")
    show = commands.add_parser("show", parents=[common], help="print a generated program",
                               description="Print the program sxad generates for FUNC.")
    show.add_argument("--stage", choices=STAGES, default="python",
                      help="python: readable Python of the optimized derivative program (the "
                           "default); ir: the primal IR; tangent-ir, adjoint-ir: the derivative "
                           "IR; llvm: the LLVM IR of the native kernel")
    show.add_argument("--args", help="example arguments, to specialise on their types (e.g. "
                                     "2.0,3 for a float and an int); default: all floats")
    show.set_defaults(run=cmd_show)
    trace = commands.add_parser("trace", parents=[forward_first],
                                help="print the evaluation trace",
                                description="Print the evaluation trace of FUNC at --args: "
                                "one row per elementary operation, with its tangent (forward "
                                "mode) or adjoint (reverse mode), as the seed's Tables 3.1 "
                                "and 3.2 do.")
    _required_args(trace)
    trace.add_argument("--names", choices=("seed", "user"), default="seed",
                       help="seed: number every value v₋₁, v₀, v₁, … with your names beside "
                            "them (the default); user: write statements with your names")
    trace.add_argument("--format", choices=("text", "markdown", "html"), default="text")
    trace.add_argument("--max-iterations", type=int, default=6, metavar="N",
                       help="loop iterations shown per loop, the first ones and the last "
                            "(default 6; 0: all)")
    trace.add_argument("--digits", type=int, default=3, help="decimals shown (default 3)")
    trace.set_defaults(run=cmd_trace)
    grad = commands.add_parser("grad", parents=[common], help="print the gradient",
                               description="Print FUNC's value and gradient at --args.")
    _required_args(grad)
    grad.set_defaults(run=cmd_grad)
    check = commands.add_parser("check", parents=[common],
                                help="check the gradient against finite differences",
                                description="Compare sxad's gradient of FUNC at --args with "
                                "central finite differences of the plain Python function, "
                                "argument by argument. Exit status 1 if any disagrees.")
    _required_args(check)
    check.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance")
    check.add_argument("--atol", type=float, default=1e-8,
                       help="absolute tolerance, in units of max(1, |FUNC(args)|)")
    check.set_defaults(run=cmd_check)
    return top


def _common(mode: str) -> argparse.ArgumentParser:
    """The options every command takes; ``mode`` is its default mode (a trace starts, as the
    seed does, with forward mode; the others, as ``sxad.grad`` does, with reverse)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("target", metavar="FILE.py:FUNC",
                        help="the Python file and the function in it")
    common.add_argument("--mode", choices=("reverse", "forward"), default=mode,
                        help=f"reverse (adjoint) or forward (tangent) mode; default {mode}")
    common.add_argument("--wrt", help="the arguments to differentiate with respect to, by name "
                                      "or position (e.g. x1,x2); default: every float argument "
                                      "(forward-mode traces: the first)")
    common.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="highlight the output (needs `rich`); auto: when printing to a "
                             "terminal")
    return common


def _required_args(command: argparse.ArgumentParser) -> None:
    command.add_argument("--args", required=True,
                         help="the arguments, comma-separated: 2.0,5.0 (2 is an int, 2.0 a "
                              "float; negative first: --args=-1.0,2.0)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sxad`` command; returns its exit status."""
    argv = _joined(list(sys.argv[1:] if argv is None else argv))
    options = parser().parse_args(argv)  # exits with status 2 on a bad command line
    prefix = f"sxad {options.command}"
    try:
        options.run(options)
    except UsageError as err:
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Failed:
        return EXIT_FAILED
    except EXPECTED as err:
        print(f"{prefix}: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `sxad show … | head`: the reader left; say nothing
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


def _joined(argv: list[str]) -> list[str]:
    """``--args -1.0,2.0`` as ``--args=-1.0,2.0``: argparse takes a value starting with "-"
    for an option."""
    out = []
    k = 0
    while k < len(argv):
        if argv[k] == "--args" and k + 1 < len(argv) and argv[k + 1].startswith("-"):
            out.append(f"--args={argv[k + 1]}")
            k += 2
        else:
            out.append(argv[k])
            k += 1
    return out


# --------------------------------------------------------------------------- the target

def load(target: str) -> Callable:
    """The function ``FUNC`` of ``FILE.py:FUNC``, the file run as a module."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"expected FILE.py:FUNC, got {target!r}")
    file = pathlib.Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such file")
    module = _import(file)
    fn = getattr(module, name, None)
    if fn is None:
        found = sorted(k for k, v in vars(module).items()
                       if inspect.isfunction(v) and v.__module__ == module.__name__)
        listed = f" (it defines: {', '.join(found)})" if found else " (it defines no function)"
        raise UsageError(f"{path} has no function `{name}`{listed}")
    if not inspect.isfunction(fn):
        raise UsageError(f"`{name}` in {path} is {type(fn).__name__!r}, not a function")
    return fn


def _import(file: pathlib.Path) -> Any:
    module_name = "_sxad_cli_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise UsageError(f"{file}: cannot be loaded as a Python file (name it *.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # inspect finds the source of its functions through it
    sys.path.insert(0, str(file.resolve().parent))  # so that it can import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise UsageError(f"{file}:{err.lineno}: syntax error: {err.msg}") from None
    except (Exception, SystemExit) as err:
        raise UsageError(f"{file}: running it failed: {type(err).__name__}: {err}") from None
    return module


def inspect_names(fn: Callable) -> list[str]:
    return list(inspect.signature(fn).parameters)


def parse_args(fn: Callable, text: str) -> tuple:
    """``2.0,5.0`` as (2.0, 5.0): Python literals, so 2 is an int and 2.0 a float."""
    tokens = [t.strip() for t in text.split(",")] if text.strip() else []
    values = tuple(_literal(t) for t in tokens)
    names = inspect_names(fn)
    if len(values) != len(names):
        raise UsageError(f"{fn.__name__} takes {len(names)} argument(s) ({', '.join(names)}); "
                         f"--args gave {len(values)}")
    return values


def _literal(token: str) -> Any:
    special = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
    if token.lower() in special:
        return special[token.lower()]
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, (bool, int, float)):
        return value
    raise UsageError(f"--args: {token!r} is not a number (write e.g. --args 2.0,5.0)")


def parse_wrt(fn: Callable, text: str | None, args: tuple, default: str) -> tuple[int, ...]:
    """Positions of ``x1,x2`` (names or positions); by default every float argument (or the
    first, ``default="first"``)."""
    names = inspect_names(fn)
    floats = [i for i in range(len(names)) if not args or isinstance(args[i], float)]
    if text is None:
        if not floats:
            raise UsageError(f"{fn.__name__} has no float argument to differentiate "
                             f"(--args {','.join(map(repr, args))}: write 2.0 for a float)")
        return tuple(floats[:1] if default == "first" else floats)
    positions = tuple(_position(fn, names, item.strip()) for item in text.split(","))
    for i in positions:
        if args and not isinstance(args[i], float):
            raise UsageError(f"cannot differentiate with respect to `{names[i]}`: --args gives "
                             f"it {args[i]!r}, not a float (write {float(args[i])!r})")
    return positions


def _position(fn: Callable, names: list[str], item: str) -> int:
    if item in names:
        return names.index(item)
    if item.isdigit() and int(item) < len(names):
        return int(item)
    raise UsageError(f"--wrt: {fn.__name__} has no argument {item!r} (its arguments: "
                     f"{', '.join(names)})")


# --------------------------------------------------------------------------- output

def emit(text: str) -> None:
    print(text)


def _console(color: str) -> Any | None:
    """A ``rich`` console when the output should be highlighted, else None."""
    if color == "never" or (color == "auto" and (os.environ.get("NO_COLOR")
                                                 or not sys.stdout.isatty())):
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(force_terminal=color == "always", highlight=False)


def emit_code(text: str, lexer: str, color: str) -> None:
    console = _console(color)
    if console is None:
        emit(text.rstrip("\n"))
        return
    from rich.syntax import Syntax
    console.print(Syntax(text.rstrip("\n"), lexer, theme="ansi_dark", background_color="default"))


def emit_rich_trace(table: Any, color: str) -> bool:
    """Print ``table`` (a ``Trace``) as a rich table; False when not highlighting."""
    console = _console(color)
    if console is None:
        return False
    from rich.table import Table
    from .trace import statement
    out = Table(title=table.title, title_justify="left", header_style="bold")
    for head in table.headers:
        out.add_column(head, overflow="fold")  # wrapped, never cut: every term counts
    for left, right in table.rows():
        cells = [f"[italic dim]{_escape(r.note)}[/]" if r.note else
                 _escape(statement(r, table.digits)) for r in (left, right)]
        out.add_row(*cells)
    console.print(out)
    for warning in table.warnings:
        console.print(f"[bold red]warning:[/] {_escape(warning)}")
    return True


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)


if __name__ == "__main__":
    sys.exit(main())
