"""``sxad.trace``: a function's evaluation trace at a point (the Wengert list), with the tangent
or the adjoint of every step beside it, as the seed chapter's Tables 3.1 and 3.2 print them.

    t = sxad.trace(f, 2.0, 5.0)                            # forward mode, ẋ₁ = 1: Table 3.1
    t = sxad.trace(f, 2.0, 5.0, wrt=(0, 1), mode="reverse")  # Table 3.2
    print(t); t.to_markdown()                              # and an HTML table in Jupyter

How a trace is made:

1. The *unoptimized* primal IR (``frontend.lower``) is run by a recording evaluator: each scalar
   op it executes becomes one row (constants are folded into the statements that read them,
   int→float casts are hidden). Loops are unrolled, each iteration under a note, and capped
   (``max_iterations``); only the taken branch of an ``if`` appears. Each straight-line run is
   listed level by level (an op as early as its operands allow): the seed numbers v₁…vₙ so.
2. The derivative column comes from the rules the compiler uses (``sxad.prims``): each row's
   tangent (forward) or adjoint contributions (reverse) are emitted by its primitive's
   ``jvp``/``vjp`` rule into a small block, evaluated with ``prims.evaluate`` and printed as a
   formula. The reverse sweep walks the rows backwards and lists each adjoint v̄ᵢ as soon as it
   is complete, as the sum over the uses of vᵢ (Table 3.2's form). Unlike the compiled program,
   a trace shows every chain-rule term, also those that are zero by construction (v̇₃ = 0 × cos 5).
3. The final derivatives are checked against sxad's own tangent or adjoint program (run by the
   interpreter); a disagreement is printed under the table as a warning.

A ``Trace`` holds rows of strings and values; rendering (text, Markdown, HTML) is separate.
"""
from __future__ import annotations

import html
import itertools
import math
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import frontend
from .ad.forward import jvp_program
from .ad.reverse import vjp_program
from .api import _arg_names, _normalize_wrt, _qualname, _Transformed, _type_of
from .backends.interpreter import interpret
from .ir import F64, Block, Func, Op, Prim, Type, Value
from .prims import (NUMPY_TYPE, PREC_ADD, PREC_AND, PREC_ATOM, PREC_CMP, PREC_COND, PREC_MUL,
                    PREC_NOT, PREC_OR, PREC_POW, PREC_UNARY, Emitter, evaluate, rule_for)

__all__ = ["Row", "Trace", "statement", "trace"]

MAX_ITERATIONS = 6     # iterations shown per loop: the first five and the last
MAX_STEPS = 100_000    # operations (and loop iterations) a trace records before giving up
MAX_TERMS = 5          # terms of an adjoint's sum shown before it is abridged
_MODES = ("forward", "reverse")
_NAMES = ("seed", "user")
_INTERNAL = frozenset({"ret", "returned", "broke", "continued"})  # the frontend's own hints


# --------------------------------------------------------------------------- the data

@dataclass(frozen=True)
class Row:
    """One line of a trace column, read ``name = alias = chain = expr = numbers = value`` with
    empty parts left out: ``v₂ = v₋₁ × v₀ = 2 × 5 = 10``. A row with a ``note`` is a remark (a
    loop iteration, a branch taken); an empty row is a blank cell."""

    name: str = ""
    alias: str = ""     # the user's name of the value (x₁, a), or of an output
    chain: str = ""     # reverse mode: the chain rule, v̄₃ ∂v₃/∂v₀ + v̄₂ ∂v₂/∂v₀
    expr: str = ""      # the statement: v₋₁ × v₀, v̇₀ × cos v₀
    numbers: str = ""   # the statement with the values in: 2 × 5
    value: Any = None
    note: str = ""


@dataclass(frozen=True, repr=False)
class Trace:
    """The evaluation trace of ``function`` at ``arguments``: the primal rows (the Wengert
    list) and the tangent (forward) or adjoint (reverse) rows, in the order each sweep runs."""

    function: str
    mode: str                                    # "forward" or "reverse"
    arguments: tuple[tuple[str, Any], ...]       # (name as shown, value)
    seeds: tuple[tuple[str, float], ...]         # (ẋ₁, 1.0), (ẋ₂, 0.0)  or  (ȳ, 1.0)
    primal: tuple[Row, ...]
    derivative: tuple[Row, ...]
    outputs: tuple[tuple[str, Any], ...]         # (y, 11.652…)
    derivatives: tuple[tuple[str, float], ...]   # forward: ẏ per float output; reverse: x̄ per wrt
    digits: int = 3
    warnings: tuple[str, ...] = ()

    @property
    def headers(self) -> tuple[str, str]:
        right = "Forward Tangent" if self.mode == "forward" else "Reverse Adjoint"
        return "Forward Primal Trace", f"{right} (Derivative) Trace"

    @property
    def title(self) -> str:
        args = ", ".join(f"{n} = {_number(v, self.digits)}" for n, v in self.arguments)
        seeds = ", ".join(f"{n} = {_number(v, self.digits)}" for n, v in self.seeds)
        return f"{self.function}({args}), {self.mode} mode: {seeds}"

    def rows(self) -> list[tuple[Row, Row]]:
        """The table's lines: (primal row, derivative row), blank where a column is shorter."""
        return list(zip_longest(self.primal, self.derivative, fillvalue=Row()))

    def to_text(self) -> str:
        return render_text(self)

    def to_markdown(self) -> str:
        return render_markdown(self)

    def to_html(self) -> str:
        return render_html(self)

    def _repr_html_(self) -> str:  # Jupyter
        return render_html(self)

    def __str__(self) -> str:
        return render_text(self)

    __repr__ = __str__


# --------------------------------------------------------------------------- the entry point

def trace(f: Callable, *args: Any, wrt: Any = 0, mode: str = "forward", names: str = "seed",
          max_iterations: int | None = MAX_ITERATIONS, digits: int = 3) -> Trace:
    """The evaluation trace of ``f(*args)`` with its tangent (``mode="forward"``, seeded
    ẋ = 1 for the one argument ``wrt``, 0 for the other floats) or its adjoint
    (``mode="reverse"``, seeded ȳ = 1, ending with x̄ of each argument in ``wrt``).

    ``names="seed"`` numbers every value as the seed does (inputs v₋ₙ₊₁…v₀, then v₁, v₂, …)
    and shows the user's names beside them (``v₁ = a = exp v₀``); ``names="user"`` writes the
    statements with the user's names where there are any (``a = exp x``). Loops show at most
    ``max_iterations`` iterations each (the first ones and the last; ``None``: all). Values are
    printed with ``digits`` decimals."""
    fn = f.fn if isinstance(f, _Transformed) else f
    _check_options(mode, names, max_iterations, digits)
    types_ = _argument_types(fn, args)
    positions = _positions(fn, wrt, types_, mode)
    primal = frontend.lower(fn, types_)
    values = [NUMPY_TYPE[t](a) for t, a in zip(types_, args)]
    with np.errstate(all="ignore"):
        recorder = _Recorder(names == "user", max_iterations, digits)
        results = recorder.run(primal, values)
        build = _forward_trace if mode == "forward" else _reverse_trace
        made = build(recorder, primal, results, positions)
        compiled = _compiled(primal, mode, positions, values)
    return _checked(made, compiled)


def _check_options(mode: str, names: str, max_iterations: int | None, digits: int) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be 'forward' or 'reverse', got {mode!r}")
    if names not in _NAMES:
        raise ValueError(f"names must be 'seed' or 'user', got {names!r}")
    if max_iterations is not None and max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1 (or None), got {max_iterations}")
    if not 0 <= digits <= 17:
        raise ValueError(f"digits must be between 0 and 17, got {digits}")


def _argument_types(fn: Callable, args: Sequence[Any]) -> tuple[Type, ...]:
    names = _arg_names(fn)
    if len(args) != len(names):
        raise TypeError(f"trace: {_qualname(fn)} takes {len(names)} argument(s) "
                        f"({', '.join(names)}), got {len(args)}")
    return tuple(_type_of(fn, n, a) for n, a in zip(names, args))


def _positions(fn: Callable, wrt: Any, types_: Sequence[Type], mode: str) -> tuple[int, ...]:
    positions, _ = _normalize_wrt(fn, wrt)
    names = _arg_names(fn)
    for i in positions:
        if not _is_float(types_[i]):
            raise TypeError(f"trace: cannot differentiate with respect to `{names[i]}`: it is "
                            f"not a float (pass e.g. {names[i]}=2.0)")
    if mode == "forward" and len(positions) != 1:
        raise ValueError("a forward-mode trace follows one direction: pass one argument as "
                         "wrt (forward mode needs one sweep per input), or use mode='reverse'")
    return positions


def _is_float(t: Type) -> bool:
    return t is F64 or bool(getattr(t, "is_float", False))


# --------------------------------------------------------------------------- recording

@dataclass(eq=False)
class _Def:
    """A row of the primal column: an input (``op`` is None) or an op as it ran."""

    name: str
    alias: str
    value: Any
    real: bool                      # a float: it has a tangent or an adjoint
    op: Op | None = None
    args: tuple["_Ref", ...] = ()
    hidden: bool = False            # in a loop iteration past the cap


@dataclass(frozen=True)
class _Ref:
    """How a statement reads a value: its text and value, and the row it stands for when it is
    differentiable (``None`` for constants, ints and bools)."""

    text: str
    value: Any
    row: _Def | None = None
    prec: int = PREC_ATOM
    constant: bool = False  # a literal of the program


@dataclass(eq=False)
class _Note:
    """A remark between rows: shown where a region begins (forward), ends (the reverse sweep
    meets it there first), or both."""

    text: str
    side: str                       # "begin", "end" or "both"
    hidden: bool = False


class _Recorder:
    """Runs the primal IR and records each op it executes as a row: the Wengert list."""

    def __init__(self, user_names: bool, max_iterations: int | None, digits: int) -> None:
        self.user_names = user_names
        self.max_iterations = max_iterations
        self.digits = digits
        self.entries: list[_Def | _Note] = []
        self.inputs: list[_Def] = []
        self.numbers = itertools.count(1)
        self.uses: Counter[str] = Counter()  # user names given so far (names="user")
        self.steps = 0

    def run(self, func: Func, values: Sequence[Any]) -> list[_Ref]:
        env: dict[Value, _Ref] = {}
        n = len(func.params)
        for k, (p, arg, value) in enumerate(zip(func.params, func.arg_names, values)):
            shown = _pretty(arg)
            self.uses[shown] += 1
            name, alias = (shown, "") if self.user_names else (_v(k - n + 1), shown)
            row = _Def(name, alias, value, _is_float(p.type))
            self.entries.append(row)
            self.inputs.append(row)
            env[p] = _Ref(row.name, value, row if row.real else None)
        self.block(func.body, env)
        return [env[r] for r in func.results]

    def block(self, block: Block, env: dict[Value, _Ref]) -> None:
        for op in _wengert_order(block.ops):
            handler = _CONTROL.get(op.prim)
            if handler is not None:
                handler(self, op, env)
            else:
                self.scalar(op, env)

    def region(self, block: Block, values: Sequence[_Ref],
               env: dict[Value, _Ref]) -> list[_Ref]:
        env.update(zip(block.params, values))
        self.block(block, env)
        return [env[y] for y in block.yields]

    def scalar(self, op: Op, env: dict[Value, _Ref]) -> None:
        args = tuple(env[a] for a in op.args)
        value = evaluate(op, [a.value for a in args])
        if op.prim is Prim.CONST:
            env[op.result] = _constant(value)
        elif _hidden_cast(op):  # int → float reads as the int; float → float keeps its row
            arg = args[0]
            row = arg.row if _is_float(op.result.type) else None
            env[op.result] = _Ref(arg.text, value, row, arg.prec, arg.constant)
        else:
            env[op.result] = self.define(op, args, value)

    def define(self, op: Op, args: tuple[_Ref, ...], value: Any) -> _Ref:
        self.count_step()
        hint = "" if op.result.hint in _INTERNAL else _pretty(op.result.hint)
        if self.user_names:
            name, alias = self.user_name(hint) if hint else _v(next(self.numbers)), ""
        else:
            name, alias = _v(next(self.numbers)), hint
        row = _Def(name, alias, value, _is_float(op.result.type), op, args)
        self.entries.append(row)
        return _Ref(name, value, row if row.real else None)

    def user_name(self, name: str) -> str:
        """``name``, primed when the user assigns it again (x, x′, x″, x‴, x⁽⁴⁾, …), so that
        each row has a name of its own: the reverse sweep reads them in another order."""
        k = self.uses[name]
        self.uses[name] += 1
        return name + (("", "′", "″", "‴")[k] if k <= 3 else f"({k})".translate(_SUPER))

    def count_step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ValueError(f"trace: the function ran more than {MAX_STEPS} operations; "
                             f"trace it at a smaller input")

    def note(self, text: str, side: str) -> _Note:
        note = _Note(text, side)
        self.entries.append(note)
        return note

    # ----------------------------------------------------------------- control flow
    def if_op(self, op: Op, env: dict[Value, _Ref]) -> None:
        cond = env[op.args[0]]
        taken = bool(cond.value)
        region = op.regions[0 if taken else 1]
        label = f"if {cond.text} ({'true' if taken else 'false'})"
        shown = _has_rows(region)
        if shown:
            self.note(label, "begin")
        env.update(zip(op.results, self.region(region, (), env)))
        if shown:
            self.note(label, "end")

    def for_op(self, op: Op, env: dict[Value, _Ref]) -> None:
        lo, hi, step, *carried = (env[a] for a in op.args)
        if int(step.value) == 0:
            raise ValueError("range() arg 3 must not be zero")
        indices = range(int(lo.value), int(hi.value), int(step.value))
        body = op.regions[0]
        index = _pretty(body.params[0].hint or "i")
        starts = []
        for i in (reversed(indices) if op.attr("reverse") else indices):
            self.count_step()
            starts.append(len(self.entries))
            label = f"for {index} = {i}"
            self.note(label, "begin")
            carried = self.region(body, [_Ref(index, np.int64(i)), *carried], env)
            self.note(label, "end")
        self.cap(starts)
        env.update(zip(op.results, carried))

    def while_op(self, op: Op, env: dict[Value, _Ref]) -> None:
        cond, body = op.regions
        carried = [env[a] for a in op.args]
        starts = []
        for k in itertools.count(1):
            self.count_step()
            start = len(self.entries)
            begin = self.note(f"while, iteration {k}", "begin")
            (test,) = self.region(cond, carried, env)
            if not test.value:
                begin.text = "while, exit test"
                self.note(begin.text, "end")
                break
            starts.append(start)
            carried = self.region(body, carried, env)
            self.note(begin.text, "end")
        self.cap(starts)
        env.update(zip(op.results, carried))

    def cap(self, starts: list[int]) -> None:
        """Hide the iterations (starting at ``starts``) between the first ones and the last."""
        keep = self.max_iterations
        if keep is None or len(starts) <= keep:
            return
        first, last = starts[keep - 1], starts[-1]
        for entry in self.entries[first:last]:
            entry.hidden = True
        n = len(starts) - keep
        text = f"… {n} more iteration{'s' if n > 1 else ''}, not shown …"
        # Where the hidden ones begin for the forward column, end for the reverse sweep.
        self.entries.insert(last, _Note(text, "end"))
        self.entries.insert(first, _Note(text, "begin"))


_CONTROL = {Prim.IF: _Recorder.if_op, Prim.FOR: _Recorder.for_op,
            Prim.WHILE: _Recorder.while_op}


def _hidden_cast(op: Op) -> bool:
    """A cast that only converts (bool/int → wider); float → int truncates and gets a row."""
    return op.prim is Prim.CAST and not (_is_float(op.args[0].type)
                                         and not _is_float(op.result.type))


def _silent(op: Op) -> bool:
    return op.prim is Prim.CONST or _hidden_cast(op)


def _has_rows(block: Block) -> bool:
    return any(not (_silent(op) or op.regions) for op in block.walk())


def _wengert_order(ops: Sequence[Op]) -> list[Op]:
    """``ops`` with each straight-line run (between control-flow ops) sorted by level."""
    out: list[Op] = []
    run: list[Op] = []
    for op in ops:
        if op.regions:
            out += _by_level(run) + [op]
            run = []
        else:
            run.append(op)
    return out + _by_level(run)


def _by_level(ops: Sequence[Op]) -> list[Op]:
    """A stable topological order: each op one level above its deepest operand (constants and
    casts, which are not rows, add no level), so an op comes as early as its operands allow."""
    level: dict[Value, int] = {}
    keyed = []
    for k, op in enumerate(ops):
        below = max((level.get(a, 0) for a in op.args), default=0)
        mine = below if _silent(op) else below + 1
        level.update((r, mine) for r in op.results)
        keyed.append((mine, k, op))
    return [op for _, _, op in sorted(keyed, key=lambda item: item[:2])]


# --------------------------------------------------------------------------- formulas

@dataclass(frozen=True)
class _Expr:
    """A formula twice: with names (``v₋₁ × v₀``) and with values (``2 × 5``)."""

    text: str
    prec: int
    numbers: str
    numbers_prec: int
    value: Any
    constant: bool = False


def _leaf(text: str, value: Any, digits: int, prec: int = PREC_ATOM,
          constant: bool = False) -> _Expr:
    numbers, numbers_prec = _literal(_number(value, digits))
    return _Expr(text, prec, numbers, numbers_prec, value, constant)


def _ref_leaf(ref: _Ref, digits: int) -> _Expr:
    return _leaf(ref.text, ref.value, digits, ref.prec, ref.constant)


def _constant_expr(value: Any) -> _Expr:
    ref = _constant(value)
    return _Expr(ref.text, ref.prec, ref.text, ref.prec, value, True)


_ZERO = _Expr("0", PREC_ATOM, "0", PREC_ATOM, np.float64(0.0))

# Infix operators: (sign, precedence). Functions print as "sin v₀", or "sin(v₁ + v₂)".
_INFIX = {Prim.ADD: (" + ", PREC_ADD), Prim.SUB: (" − ", PREC_ADD), Prim.MUL: (" × ", PREC_MUL),
          Prim.DIV: ("/", PREC_MUL), Prim.FLOORDIV: (" // ", PREC_MUL),
          Prim.MOD: (" mod ", PREC_MUL), Prim.POW: ("^", PREC_POW),
          Prim.LT: (" < ", PREC_CMP), Prim.LE: (" ≤ ", PREC_CMP), Prim.GT: (" > ", PREC_CMP),
          Prim.GE: (" ≥ ", PREC_CMP), Prim.EQ: (" == ", PREC_CMP), Prim.NE: (" ≠ ", PREC_CMP),
          Prim.AND: (" and ", PREC_AND), Prim.OR: (" or ", PREC_OR)}
# Prefix forms: (word, precedence of the result, precedence the operand needs).
_PREFIX = {Prim.NEG: ("−", PREC_UNARY, PREC_UNARY), Prim.NOT: ("not ", PREC_NOT, PREC_NOT),
           Prim.SQRT: ("√", PREC_UNARY, PREC_ATOM)}
_FUNCTIONS = {Prim.EXP: "exp", Prim.LOG: "ln", Prim.LOG1P: "log1p", Prim.EXPM1: "expm1",
              Prim.SIN: "sin", Prim.COS: "cos", Prim.TAN: "tan", Prim.ASIN: "arcsin",
              Prim.ACOS: "arccos", Prim.ATAN: "arctan", Prim.SINH: "sinh", Prim.COSH: "cosh",
              Prim.TANH: "tanh", Prim.SIGN: "sign", Prim.FLOOR: "floor", Prim.CEIL: "ceil"}
_PREFIX.update({p: (f"{word} ", PREC_UNARY, PREC_ATOM) for p, word in _FUNCTIONS.items()})
_CALLS = {Prim.ATAN2: "atan2", Prim.HYPOT: "hypot", Prim.MAX: "max", Prim.MIN: "min"}

Operand = tuple[str, int]  # (text, precedence)


def _wrap(operand: Operand, need: int, after_operator: bool = False) -> str:
    text, prec = operand
    if prec < need or (after_operator and text.startswith("−")):
        return f"({text})"
    return text


def _infix(prim: Prim, xs: Sequence[Operand]) -> Operand:
    sign, prec = _INFIX[prim]
    if prim is Prim.POW:  # right-associative
        need = (prec + 1, prec)
    elif prec == PREC_CMP:  # comparisons do not chain here
        need = (prec + 1, prec + 1)
    else:
        need = (prec, prec + 1)
    return _wrap(xs[0], need[0]) + sign + _wrap(xs[1], need[1], True), prec


def _prefix(prim: Prim, xs: Sequence[Operand]) -> Operand:
    return _prefixed(*_PREFIX[prim], xs[0])


def _prefixed(word: str, prec: int, need: int, operand: Operand) -> Operand:
    text = _wrap(operand, need, word == "−")  # −(−1), not −−1
    if text != operand[0] and word.endswith(" "):
        return word.rstrip() + text, prec  # sin(v₁ + v₂)
    return word + text, prec


def _apply(op: Op, xs: Sequence[Operand]) -> Operand:
    """The formula of ``op`` over its operands, parenthesized by precedence."""
    prim = op.prim
    if prim in _INFIX:
        return _infix(prim, xs)
    if prim in _PREFIX:
        return _prefix(prim, xs)
    if prim in _CALLS:
        return f"{_CALLS[prim]}({', '.join(x for x, _ in xs)})", PREC_ATOM
    if prim is Prim.ABS:
        return f"|{xs[0][0]}|", PREC_ATOM
    if prim is Prim.SELECT:
        c, a, e = (_wrap(x, PREC_COND + 1) for x in xs)
        return f"{a} if {c} else {e}", PREC_COND
    if prim is Prim.CAST:
        if _hidden_cast(op):
            return xs[0]
        word = {"i64": "int", "bool": "bool"}.get(str(op.result.type), str(op.result.type))
        return _prefixed(f"{word} ", PREC_UNARY, PREC_ATOM, xs[0])
    args = ", ".join(x for x, _ in xs)  # a primitive with no math form yet: its IR name
    return f"{prim}({args})", PREC_ATOM


def _formula(op: Op, args: Sequence[_Expr], value: Any, digits: int) -> _Expr:
    if op.prim is Prim.CONST:
        return _constant_expr(value)
    text, prec = _apply(op, [(a.text, a.prec) for a in args])
    numbers, numbers_prec = _apply(op, [(a.numbers, a.numbers_prec) for a in args])
    return _Expr(text, prec, numbers, numbers_prec, value)


def _run(ops: Iterable[Op], leaves: dict[Value, _Expr], digits: int) -> dict[Value, _Expr]:
    """Evaluate and print the ops a rule emitted, over ``leaves``. Constant subexpressions
    print as their value (2 × v₁, not 2 × v₁^(2 − 1))."""
    exprs = dict(leaves)
    for op in ops:
        args = [exprs[a] for a in op.args]
        value = evaluate(op, [a.value for a in args])
        (result,) = op.results
        if op.prim is Prim.CONST or (args and all(a.constant for a in args)):
            exprs[result] = _constant_expr(value)
        elif op.prim is Prim.POW and args[1].constant and args[1].value == 1:
            exprs[result] = args[0]  # x^1
        else:
            exprs[result] = _formula(op, args, value, digits)
    return exprs


def _sum(terms: Sequence[_Expr]) -> _Expr:
    """``a + b + …`` of the terms, text and numbers (long sums abridged); the value summed in
    order."""
    if len(terms) == 1:
        return terms[0]
    value = terms[0].value
    for t in terms[1:]:
        value = value + t.value
    return _Expr(_plus([(t.text, t.prec) for t in terms]), PREC_ADD,
                 _plus([(t.numbers, t.numbers_prec) for t in terms]), PREC_ADD, value)


def _plus(operands: Sequence[Operand]) -> str:
    first, *rest = operands
    return _abridged([_wrap(first, PREC_ADD), *(_wrap(t, PREC_ADD + 1, True) for t in rest)])


def _abridged(terms: Sequence[str]) -> str:
    """``a + b + c``; a long sum (a value used in every iteration of a loop) keeps its first
    and last terms: ``a + b + … (7 more) + j``."""
    if len(terms) <= MAX_TERMS:
        return " + ".join(terms)
    return " + ".join([*terms[:2], f"… ({len(terms) - 3} more)", terms[-1]])


# --------------------------------------------------------------------------- forward mode

def _forward_trace(rec: _Recorder, primal: Func, results: list[_Ref],
                   positions: tuple[int, ...]) -> Trace:
    (p,) = positions
    seeds = {row: float(k == p) for k, row in enumerate(rec.inputs) if row.real}
    tangents: dict[_Def, Any] = {}
    pairs: list[tuple[Row, Row]] = []
    for entry in rec.entries:
        if isinstance(entry, _Note):
            if entry.side != "end" and not entry.hidden:
                pairs.append((Row(note=entry.text), Row()))
            continue
        right = _tangent_row(entry, tangents, seeds, rec.digits)
        if not entry.hidden:
            pairs.append((_primal_row(entry, rec.digits), right))
    names = _output_names(primal)
    derivatives = []
    for name, ref, result in zip(names, results, primal.results):
        right = Row()
        if _is_float(result.type):
            dot = np.float64(tangents.get(ref.row, 0.0))
            right = Row(_dot(name), expr=_dot(ref.text) if ref.row else "", value=dot)
            derivatives.append((_dot(name), float(dot)))
        pairs.append((Row(name, expr=ref.text, value=ref.value), right))
    seed_list = tuple((_dot(_input_label(row)), s) for row, s in seeds.items())
    return _make(rec, primal, "forward", seed_list, pairs, results, derivatives)


def _tangent_row(entry: _Def, tangents: dict[_Def, Any], seeds: dict[_Def, float],
                 digits: int) -> Row:
    if not entry.real:
        return Row()
    if entry.op is None:
        tangents[entry] = np.float64(seeds[entry])
        return Row(_dot(entry.name), _dot(entry.alias), value=tangents[entry])
    e = _tangent(entry, tangents, digits)
    tangents[entry] = e.value
    return Row(_dot(entry.name), _dot(entry.alias), expr=e.text, numbers=e.numbers, value=e.value)


def _tangent(entry: _Def, tangents: dict[_Def, Any], digits: int) -> _Expr:
    """v̇ of ``entry`` by its primitive's jvp rule, over the tangents of its operands."""
    op = entry.op
    xs = [Value(a.type) for a in op.args]
    ys = [Value(r.type) for r in op.results]
    dxs = [Value(a.type) if ref.row is not None else None for a, ref in zip(op.args, entry.args)]
    if not any(dxs):
        return _ZERO
    leaves = {x: _ref_leaf(ref, digits) for x, ref in zip(xs, entry.args)}
    leaves[ys[0]] = _leaf(entry.name, entry.value, digits)
    for d, ref in zip(dxs, entry.args):
        if d is not None:
            leaves[d] = _leaf(_dot(ref.text), tangents[ref.row], digits)
    b = Emitter([*xs, *(d for d in dxs if d is not None), *ys])
    dy = rule_for(op.prim, "forward mode (jvp)").jvp(b, xs, dxs, ys)
    return _ZERO if dy is None else _run(b.ops, leaves, digits)[dy]


# --------------------------------------------------------------------------- reverse mode

def _reverse_trace(rec: _Recorder, primal: Func, results: list[_Ref],
                   positions: tuple[int, ...]) -> Trace:
    floats = [k for k, r in enumerate(primal.results) if _is_float(r.type)]
    if len(floats) != 1:
        raise ValueError(f"a reverse-mode trace starts from one float output, but "
                         f"{primal.name} returns {len(results)} value(s), {len(floats)} of "
                         f"them float; use mode='forward'")
    names = _output_names(primal)
    sweep = _Sweep(rec.digits)
    column = sweep.run(rec.entries, results[floats[0]], _bar(names[floats[0]]))
    column += _gradient_rows(rec, sweep, positions)
    left = [Row(note=e.text) if isinstance(e, _Note) else _primal_row(e, rec.digits)
            for e in rec.entries
            if not e.hidden and not (isinstance(e, _Note) and e.side == "end")]
    left += [Row(name, expr=ref.text, value=ref.value) for name, ref in zip(names, results)]
    pairs = list(zip_longest(left, column, fillvalue=Row()))
    derivatives = [(_bar(_input_label(rec.inputs[i])), float(sweep.total(rec.inputs[i])))
                   for i in positions]
    seeds = ((_bar(names[floats[0]]), 1.0),)
    return _make(rec, primal, "reverse", seeds, pairs, results, derivatives)


class _Sweep:
    """The reverse sweep over the recorded rows: adjoint contributions in gather form."""

    def __init__(self, digits: int) -> None:
        self.digits = digits
        self.parts: dict[_Def, list[tuple[str, _Expr]]] = defaultdict(list)
        self.rows: list[Row] = []

    def total(self, row: _Def) -> Any:
        parts = self.parts.get(row)
        return _sum([e for _, e in parts]).value if parts else np.float64(0.0)

    def run(self, entries: list[_Def | _Note], output: _Ref, seed: str) -> list[Row]:
        pending = Counter(ref.row for e in entries if isinstance(e, _Def)
                          for ref in e.args if ref.row is not None)
        if output.row is not None:
            self.parts[output.row].append((seed, _Expr(seed, PREC_ATOM, "1", PREC_ATOM,
                                                      np.float64(1.0))))
            if pending[output.row] == 0:
                self.complete(output.row)
        for entry in reversed(entries):
            if isinstance(entry, _Note):
                if entry.side != "begin" and not entry.hidden:
                    self.rows.append(Row(note=entry.text))
            elif entry.op is not None:
                self.pull(entry)
                for ref in entry.args:
                    if ref.row is not None:
                        pending[ref.row] -= 1
                        if pending[ref.row] == 0:
                            self.complete(ref.row)
        return self.rows

    def pull(self, entry: _Def) -> None:
        """Add ``entry``'s contributions to its operands' adjoints (its vjp rule)."""
        if not entry.real or not self.parts.get(entry):
            return
        op, digits = entry.op, self.digits
        xs = [Value(a.type) for a in op.args]
        ys = [Value(r.type) for r in op.results]
        yb = Value(op.result.type)
        leaves = {x: _ref_leaf(ref, digits) for x, ref in zip(xs, entry.args)}
        leaves[ys[0]] = _leaf(entry.name, entry.value, digits)
        leaves[yb] = _leaf(_bar(entry.name), self.total(entry), digits)
        b = Emitter([yb, *xs, *ys])
        contributions = rule_for(op.prim, "reverse mode (vjp)").vjp(b, yb, xs, ys)
        exprs = _run(b.ops, leaves, digits)
        for ref, c in zip(entry.args, contributions):
            if ref.row is not None and c is not None:
                chain = f"{_bar(entry.name)} ∂{entry.name}/∂{ref.text}"
                self.parts[ref.row].append((chain, exprs[c]))

    def complete(self, row: _Def) -> None:
        """``row``'s adjoint has all its contributions: list it."""
        parts = self.parts.get(row)
        if not parts or row.hidden:
            return
        total = _sum([e for _, e in parts])
        chain = _abridged([c for c, _ in parts])
        alias = _bar(row.alias) if row.op is not None else ""
        self.rows.append(Row(_bar(row.name), alias, chain, total.text, total.numbers,
                             total.value))


def _gradient_rows(rec: _Recorder, sweep: _Sweep, positions: tuple[int, ...]) -> list[Row]:
    """x̄ = v̄ of each argument differentiated, last argument first as Table 3.2 lists them."""
    rows = []
    for i in sorted(positions, reverse=True):
        row = rec.inputs[i]
        reached = bool(sweep.parts.get(row))
        if row.alias:
            rows.append(Row(_bar(row.alias), expr=_bar(row.name) if reached else "",
                            value=sweep.total(row)))
        elif not reached:  # user names: a reached input already has its row, x̄ = …
            rows.append(Row(_bar(row.name), value=np.float64(0.0)))
    return rows


# --------------------------------------------------------------------------- assembling

def _primal_row(entry: _Def, digits: int) -> Row:
    if entry.op is None:
        return Row(entry.name, entry.alias, value=entry.value)
    e = _formula(entry.op, [_ref_leaf(a, digits) for a in entry.args], entry.value, digits)
    return Row(entry.name, entry.alias, expr=e.text, numbers=e.numbers, value=entry.value)


def _make(rec: _Recorder, primal: Func, mode: str, seeds: Sequence[tuple[str, float]],
          pairs: Sequence[tuple[Row, Row]], results: list[_Ref],
          derivatives: Sequence[tuple[str, float]]) -> Trace:
    left, right = zip(*pairs) if pairs else ((), ())
    arguments = tuple((_input_label(row), row.value) for row in rec.inputs)
    outputs = tuple(zip(_output_names(primal), (r.value for r in results)))
    return Trace(primal.name, mode, arguments, tuple(seeds), _trim(left), _trim(right),
                 outputs, tuple(derivatives), rec.digits)


def _trim(rows: Sequence[Row]) -> tuple[Row, ...]:
    """Without the blank rows at the end (a column shorter than the other)."""
    rows = list(rows)
    while rows and rows[-1] == Row():
        rows.pop()
    return tuple(rows)


def _output_names(primal: Func) -> list[str]:
    """y (y₁, y₂, … for several), or out when the function has a y of its own."""
    taken = {*primal.arg_names, *(r.hint for op in primal.body.walk() for r in op.results)}
    base = "out" if "y" in taken else "y"
    n = len(primal.results)
    return [base] if n == 1 else [f"{base}{_subscript(k)}" for k in range(1, n + 1)]


def _input_label(row: _Def) -> str:
    return row.alias or row.name


def _compiled(primal: Func, mode: str, positions: tuple[int, ...],
              values: Sequence[Any]) -> list[float]:
    """The derivatives sxad's own (unoptimized) tangent or adjoint program gives."""
    transform = jvp_program if mode == "forward" else vjp_program
    out = interpret(transform(primal, positions), [*values, np.float64(1.0)])
    return [float(v) for v in out[len(primal.results):]]


def _checked(made: Trace, compiled: Sequence[float]) -> Trace:
    kind = "tangent" if made.mode == "forward" else "adjoint"
    warnings = [f"sxad's {kind} program gives {name} = {theirs!r}, this trace {mine!r}"
                for (name, mine), theirs in zip(made.derivatives, compiled)
                if not _agree(mine, theirs)]
    return replace(made, warnings=tuple(warnings)) if warnings else made


def _agree(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))


# --------------------------------------------------------------------------- names and numbers

_SUB = str.maketrans("0123456789-", "₀₁₂₃₄₅₆₇₈₉₋")
_SUPER = str.maketrans("0123456789()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾")
_MARKS = "₀₁₂₃₄₅₆₇₈₉₋⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾′″‴"
_INDEXED = re.compile(r"([A-Za-z]+)_?(\d+)(?:_(\d+))?")


def _subscript(k: int) -> str:
    return str(k).translate(_SUB)


def _v(k: int) -> str:
    return "v" + _subscript(k)


def _pretty(name: str) -> str:
    """The seed's way to write a variable: x1 → x₁, w11_1 → w₁₁⁽¹⁾ (the layer above)."""
    m = _INDEXED.fullmatch(name)
    if m is None:
        return name
    layer = f"({m[3]})".translate(_SUPER) if m[3] else ""
    return m[1] + m[2].translate(_SUB) + layer


def _mark(name: str, combining: str, word: str) -> str:
    """A mark over a one-letter name (ẋ₁, v̄₅); longer names get a suffix (loss_bar)."""
    if not name:
        return ""
    base = name.rstrip(_MARKS)
    tail = name[len(base):]
    if len(base) != 1:
        return f"{base}_{word}{tail}"
    return unicodedata.normalize("NFC", base + combining + tail)  # ẋ as one character


def _dot(name: str) -> str:
    return _mark(name, "\u0307", "dot")


def _bar(name: str) -> str:
    return _mark(name, "\u0304", "bar")


def _number(value: Any, digits: int = 3) -> str:
    """A value as the tables print it: 3 decimals, trailing zeros dropped (0.693, 10, −1)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value)).replace("-", "−")
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if 10.0 ** -digits <= abs(v) < 1e6:
        text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    else:
        mantissa, exponent = f"{v:.{digits}e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
        text = f"{mantissa}e{int(exponent)}"
    return text.replace("-", "−")


def _constant(value: Any) -> _Ref:
    """A constant as a statement shows it: its value to 6 significant digits."""
    if isinstance(value, (bool, np.bool_, int, np.integer)) or not math.isfinite(value):
        text = _number(value)
    else:
        text = f"{float(value):.6g}".replace("-", "−")
    return _Ref(text, value, None, _literal(text)[1], True)


def _literal(text: str) -> Operand:
    return text, PREC_UNARY if text.startswith("−") else PREC_ATOM


# --------------------------------------------------------------------------- rendering

def statement(row: Row, digits: int = 3) -> str:
    """A row as one line: its parts joined by " = ", repeats dropped."""
    if row.note:
        return row.note
    value = _number(row.value, digits)
    parts: list[str] = []
    for part in (row.name, row.alias, row.chain, row.expr, row.numbers, value):
        if part and (not parts or part != parts[-1]):
            parts.append(part)
    return " = ".join(parts)


def _cells(t: Trace) -> list[tuple[str, str, bool, bool]]:
    """(left text, right text, left is a note, right is a note) per line."""
    return [(statement(a, t.digits), statement(b, t.digits), bool(a.note), bool(b.note))
            for a, b in t.rows()]


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: combining marks (the dot of ẋ) take none."""
    return sum(0 if unicodedata.combining(c) else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def render_text(t: Trace) -> str:
    cells = [(f"[{a}]" if na else a, f"[{b}]" if nb else b) for a, b, na, nb in _cells(t)]
    left_head, right_head = t.headers
    width = max([_width(left_head), *(_width(a) for a, _ in cells)])
    right = max([_width(right_head), *(_width(b) for _, b in cells)])
    lines = [t.title, "", f"{_pad(left_head, width)} │ {right_head}",
             f"{'─' * width}─┼─{'─' * right}"]
    lines += [f"{_pad(a, width)} │ {b}".rstrip() for a, b in cells]
    lines += [f"warning: {w}" for w in t.warnings]
    return "\n".join(lines)


def _markdown_cell(text: str, note: bool) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return f"*{text}*" if note and text else text


def _markdown_line(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def render_markdown(t: Trace) -> str:
    lines = [f"**{t.title}**", "", _markdown_line(t.headers), "| --- | --- |"]
    lines += [_markdown_line([_markdown_cell(a, na), _markdown_cell(b, nb)])
              for a, b, na, nb in _cells(t)]
    if t.warnings:
        lines += ["", *(f"> warning: {w}" for w in t.warnings)]
    return "\n".join(lines) + "\n"


def _html_cell(text: str, note: bool) -> str:
    text = html.escape(text)
    return f"<td style=\"text-align:left\">{f'<em>{text}</em>' if note else text}</td>"


def render_html(t: Trace) -> str:
    head = "".join(f"<th style=\"text-align:left\">{html.escape(h)}</th>" for h in t.headers)
    body = "\n".join(f"<tr>{_html_cell(a, na)}{_html_cell(b, nb)}</tr>"
                     for a, b, na, nb in _cells(t))
    warnings = "".join(f"<p><strong>warning:</strong> {html.escape(w)}</p>" for w in t.warnings)
    return (f"<table class=\"sxad-trace\">\n<caption style=\"text-align:left\">"
            f"{html.escape(t.title)}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
            f"{body}\n</tbody>\n</table>\n{warnings}")
