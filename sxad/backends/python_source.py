"""The IR as readable, runnable Python (``np`` is numpy): the "generated program" users read.

What makes the text read like hand-written code, in the order it is decided:

1. *Dead code* is not printed: pure ops nobody needs, and the ``if``/loop slots nobody reads.
2. *Inlining*: a pure value used once, by an op of its own block, with no tape op in between,
   is printed inside its user's expression (with parentheses from each rule's precedence).
   Constants are always literals.
3. *Coalescing*: a value flowing into a loop-carried or branch-merged value shares one Python
   variable with it (``s = 0.0`` / ``s = s + x * i`` / ``return s``) wherever that is safe.
   Safety comes from live ranges over the structured program: a variable is never written
   while another value it holds is still needed. Values named differently (by their hints)
   never share: ``s = a`` before a loop stays a copy.
4. *Naming*: each variable is named from its values' hints when it first appears.

Semantics: the generated code runs on numpy scalars and arrays, like the interpreter (array
ops print as numpy calls; ``_unbroadcast`` is the one helper the namespace provides). Literals and
``range`` indices are Python scalars, and so is what only they flow into; Python's ``+ - *`` on
them agree with numpy's, but ``/ // % **`` do not (ZeroDivisionError, complex powers), so where
all operands of those may be Python scalars one is made numpy (see ``_Scalars``).
"""
from __future__ import annotations

import itertools
import keyword
import linecache
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..ir import (BOOL, EFFECTS, F32, F64, I64, Block, Func, Namer, Op, Prim, Type, Value, dtype_of,
                  is_array)
from ..prims import PREC_ATOM, PREC_CMP, PREC_COND, PREC_POW, PREC_UNARY, np_unbroadcast, rule_for

_LOOPS = frozenset({Prim.FOR, Prim.WHILE})
_NUMPY = {F64: "np.float64", F32: "np.float32", I64: "np.int64", BOOL: "np.bool_"}
_RESERVED = (*keyword.kwlist, "np", "_tape", "_tape1", "_tape2", "_", "_unbroadcast", "abs", "max", "min", "range",
             "reversed")
MAX_INLINE_OPS = 10  # a longer expression is split at a named intermediate value


def to_python(func: Func, name: str | None = None) -> str:
    """``func`` as the source of one Python function named ``name`` (default: its own)."""
    return _Writer(func, _identifier(name or func.name)).source()


_compiled = itertools.count(1)


def compile_python(func: Func, name: str | None = None) -> Callable[..., Any]:
    """``to_python(func, name)``, executed; tracebacks show its lines (via ``linecache``).

    Call it with numpy scalars (``np.float64``, ``np.int64``, ``np.bool_``), under
    ``np.errstate(all="ignore")`` to get the interpreter's semantics without its warnings."""
    fname = _identifier(name or func.name)
    source = to_python(func, fname)
    lines = source.splitlines(True)
    filename = f"<sxad {fname}>"
    if linecache.cache.get(filename, (None, None, lines))[2] != lines:
        filename = f"<sxad {fname} #{next(_compiled)}>"  # keep the older program's lines
    linecache.cache[filename] = (len(source), None, lines, filename)
    namespace: dict[str, Any] = {"np": np, "_unbroadcast": np_unbroadcast}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[fname]


def _identifier(name: str) -> str:
    name = re.sub(r"\W", "_", name) or "f"
    name = "f_" + name if name[0].isdigit() else name
    return name + "_" if keyword.iskeyword(name) else name


# --------------------------------------------------------------------------- expressions

@dataclass(frozen=True)
class _Expr:
    text: str
    prec: int
    reads: frozenset[str] = frozenset()  # the variables it reads
    literal: bool = False  # a Python literal


_NON_LEFT_ASSOC = frozenset({PREC_POW, PREC_CMP, PREC_COND})
# Python's own operators differ from numpy's here (ZeroDivisionError, complex powers).
_RISKY = frozenset({Prim.DIV, Prim.FLOORDIV, Prim.MOD, Prim.POW})


@lru_cache(maxsize=None)
def _slot(template: str, index: int, prec: int) -> tuple[int, bool]:
    """The precedence operand ``index`` of ``template`` needs, and whether it follows an
    arithmetic operator (a leading minus there gets parentheses: ``x * (-2.0)``)."""
    mark = "{%d}" % index
    at = template.index(mark)
    before, after = template[:at], template[at + len(mark):]
    before, after = before[before.rfind("\n") + 1:], after.split("\n", 1)[0]  # its own line
    if before.endswith((" = ", " += ")):  # a statement's right side: ``y[i] = v``
        if not after:
            return 0, False
        before = ""  # ``y = x.copy()``: x is the left operand of ``.copy()``
    if before.endswith(("(", ", ", "[", ":")) and after.startswith((")", ",", "]", ":")):
        return 0, False  # a call argument or subscript: anything fits
    if not before:  # the left operand: ``a - b - c`` needs none, ``(a ** b) ** c`` does
        return (prec + 1 if prec in _NON_LEFT_ASSOC else prec), False
    if before == "not ":  # ``not (a < b)`` reads better than the equivalent ``not a < b``
        return PREC_CMP + 1, False
    return prec + 1, before.rstrip().endswith(("+", "-", "*", "/", "%"))


def _apply(prim: Prim, args: Sequence[_Expr], result: Type,
           attrs: tuple[tuple[str, Any], ...] = ()) -> _Expr:
    """The expression of ``prim`` over ``args``, parenthesized by the rule's precedence."""
    rule = rule_for(prim, "the Python backend")
    template = _filled(prim, len(args), result, attrs)
    texts = []
    for i, arg in enumerate(args):
        need, after_operator = _slot(template, i, rule.prec)
        wrap = arg.prec < need or (after_operator and arg.text.startswith("-"))
        texts.append(f"({arg.text})" if wrap else arg.text)
    reads = frozenset().union(*(a.reads for a in args))
    return _Expr(template.format(*texts), rule.prec, reads)


def _filled(prim: Prim, nargs: int, result: Type, attrs: tuple[tuple[str, Any], ...]) -> str:
    """The rule's Python form with its attributes (and the argument count and result dtype,
    for variadic rules) as text; the operands' ``{0}``, ``{1}`` still to place."""
    rule = rule_for(prim, "the Python backend")
    template = _template(rule, result)
    if template is None:
        raise ValueError(f"primitive '{prim}' has no Python form")
    context = {**dict(attrs), "_nargs": nargs, "_dtype": dtype_of(result)}
    fields = rule.fields(context) if rule.fields else {}
    fields["t"] = _NUMPY[dtype_of(result)]
    for key, text in fields.items():  # attributes are text now; operands are placed later
        template = template.replace("{%s}" % key, text)
    return template


def _statement_reads(op: Op) -> frozenset[int] | None:
    """For an op printed as statements (its template assigns ``{{y}}``, the result's variable:
    ``y = x.copy()`` / ``y[i] = v``), the operands read before that first assignment; None
    for an expression."""
    template = _template(rule_for(op.prim), op.result.type) if len(op.results) == 1 else None
    if not template or "{{y}}" not in template:
        return None
    first = _filled(op.prim, len(op.args), op.result.type, op.attrs).split("\n", 1)[0]
    return frozenset(int(k) for k in re.findall(r"(?<!\{)\{(\d+)\}", first))


def _template(rule: Any, result: Type) -> str | None:
    """The rule's Python form; on arrays its numpy form where Python's differs (``np.where``)."""
    return rule.array_python if is_array(result) and rule.array_python else rule.python


def _literal(value: Any, type_: Type) -> _Expr:
    if type_ is BOOL:
        text = "True" if value else "False"
    elif type_ is I64:
        text = str(int(value))
    elif math.isnan(value):
        text = "np.nan"
    elif math.isinf(value):
        text = "np.inf" if value > 0 else "-np.inf"
    else:
        text = repr(float(value))
    return _Expr(text, PREC_UNARY if text.startswith("-") else PREC_ATOM, literal=True)


def _as_numpy(expr: _Expr, type_: Type) -> _Expr:
    return _Expr(f"{_NUMPY[type_]}({expr.text})", PREC_ATOM, expr.reads)


# --------------------------------------------------------------------------- dead code

def _has_effects(op: Op) -> bool:
    return op.prim in EFFECTS or any(_has_effects(o) for r in op.regions for o in r.ops)


class _Needed:
    """What the printed program needs: ``ops`` to print and, for each control op, ``slots``:
    which of its results (and the carried values behind them) anyone reads."""

    def __init__(self, func: Func) -> None:
        self.live: set[Value] = set()
        self.ops: set[Op] = set()
        self.slots: dict[Op, list[bool]] = {}
        self.block(func.body, [True] * len(func.results))

    def block(self, block: Block, mask: Sequence[bool]) -> None:
        self.live.update(y for y, m in zip(block.yields, mask) if m)
        for op in reversed(block.ops):
            self.op(op)

    def op(self, op: Op) -> None:
        if op.regions:
            mask = [r in self.live for r in op.results]
            if any(mask) or _has_effects(op):
                self.ops.add(op)
                self.slots[op] = self.control(op, mask)
        elif op.prim in EFFECTS or any(r in self.live for r in op.results):
            self.ops.add(op)
            self.live.update(op.args)

    def control(self, op: Op, mask: list[bool]) -> list[bool]:
        if op.prim is Prim.IF:
            for region in op.regions:
                self.block(region, mask)
            self.live.add(op.args[0])
            return mask
        while True:  # a carried value is live if the loop reads it for something live
            if op.prim is Prim.FOR:
                self.block(op.regions[0], mask)
                params = [op.regions[0].params[1:]]
            else:
                self.block(op.regions[0], [True])
                self.block(op.regions[1], mask)
                params = [r.params for r in op.regions]
            grown = [m or any(p[k] in self.live for p in params) for k, m in enumerate(mask)]
            if grown == mask:
                break
            mask = grown
        init = op.args[3:] if op.prim is Prim.FOR else op.args
        self.live.update(op.args[:3] if op.prim is Prim.FOR else ())
        self.live.update(v for v, m in zip(init, mask) if m)
        return mask


# --------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class _Site:
    """Where a value is read: at ``pos`` in ``block``, by ``user`` (None: the block's yield)."""

    block: Block
    pos: int
    user: Op | None


class _Layout:
    """Program points in text order, where each value is defined and read, and the nesting.

    A control op has a ``copy`` point (its initial values are copied into the carried
    variables), a ``head`` point (its condition or range is read) and an ``end`` point
    (its results exist). Each block has a start (its params exist) and an end (its yields are
    read)."""

    def __init__(self, func: Func, needed: _Needed) -> None:
        self.needed = needed
        self.tick = itertools.count()
        self.def_pos: dict[Value, int] = {}
        self.def_block: dict[Value, Block] = {}
        self.producer: dict[Value, Op] = {}
        self.sites: dict[Value, list[_Site]] = defaultdict(list)
        self.start: dict[Block, int] = {}
        self.end: dict[Block, int] = {}
        self.copy: dict[Op, int] = {}
        self.head: dict[Op, int] = {}
        self.op_end: dict[Op, int] = {}
        self.owner: dict[Block, Op] = {}  # region -> the op owning it
        self.home: dict[Op, Block] = {}  # op -> the block holding it
        self.effects_before: dict[Op, int] = {}  # tape ops before it in its block
        self.effects_in: dict[Block, int] = {}
        self.block(func.body, [True] * len(func.results))

    def block(self, block: Block, mask: Sequence[bool],
              params: Sequence[bool] | None = None) -> None:
        self.start[block] = start = next(self.tick)
        for p, m in zip(block.params, params or [True] * len(block.params)):
            if m:  # a dead slot's parameter is no variable
                self.define(p, block, start)
        effects = 0
        for op in block.ops:
            if op not in self.needed.ops:
                continue
            self.home[op], self.effects_before[op] = block, effects
            if op.regions:
                self.control(op, block)
            else:
                self.simple(op, block)
            effects += _has_effects(op)
        self.effects_in[block] = effects
        self.end[block] = end = next(self.tick)
        for y, m in zip(block.yields, mask):
            if m:
                self.sites[y].append(_Site(block, end, None))

    def define(self, value: Value, block: Block, pos: int, op: Op | None = None) -> None:
        self.def_pos[value], self.def_block[value] = pos, block
        if op is not None:
            self.producer[value] = op

    def simple(self, op: Op, block: Block) -> None:
        pos = next(self.tick)
        early = _statement_reads(op)
        # A statement reads its other operands after assigning its variable: they must not
        # share that variable.
        late = pos if early is None else next(self.tick)
        for k, a in enumerate(op.args):
            self.sites[a].append(_Site(block, pos if early is None or k in early else late, op))
        for r in op.results:
            self.define(r, block, pos, op)

    def control(self, op: Op, block: Block) -> None:
        mask = self.needed.slots[op]
        self.copy[op], self.head[op] = next(self.tick), next(self.tick)
        for value, at in self.reads(op, mask):
            self.sites[value].append(_Site(block, at, op))
        masks = {Prim.IF: (mask, mask), Prim.FOR: (mask,), Prim.WHILE: ([True], mask)}[op.prim]
        params = {Prim.IF: None, Prim.FOR: [True, *mask], Prim.WHILE: mask}[op.prim]
        for region, region_mask in zip(op.regions, masks):
            self.owner[region] = op
            self.block(region, region_mask, params)
        self.op_end[op] = end = next(self.tick)
        for r, m in zip(op.results, mask):
            if m:
                self.define(r, block, end, op)

    def reads(self, op: Op, mask: Sequence[bool]) -> Iterable[tuple[Value, int]]:
        """The arguments ``op`` reads, each at its point: initial values at the copy point."""
        if op.prim is Prim.IF:
            return [(op.args[0], self.head[op])]
        init = op.args[3:] if op.prim is Prim.FOR else op.args
        bounds = [(a, self.head[op]) for a in op.args[:3]] if op.prim is Prim.FOR else []
        return bounds + [(a, self.copy[op]) for a, m in zip(init, mask) if m]

    def effect_between(self, op: Op, site: _Site) -> bool:
        """Whether a tape op runs after pure ``op`` and before ``site`` in its block."""
        stop = self.effects_in[site.block] if site.user is None else \
            self.effects_before[site.user]
        return stop > self.effects_before[op]


# --------------------------------------------------------------------------- variables

Ranges = list[tuple[int, int]]  # (s, e): live just after each point p with s <= p < e


class _Variables:
    """Decides which values are printed inline, and which share one Python variable."""

    def __init__(self, func: Func, layout: _Layout) -> None:
        self.layout = layout
        self.constants = {v: op.attr("value") for v, op in layout.producer.items()
                          if op.prim is Prim.CONST}
        self.inlined = self.inline_choice(func)
        self.parent: dict[Value, Value] = {}
        self.members: dict[Value, list[Value]] = {}
        self._ranges: dict[Value, Ranges] = {}
        self.coalesce(func.body)

    # inlining ------------------------------------------------------------

    def inline_choice(self, func: Func) -> set[Value]:
        """Pure single-use values read in their own block with no tape op in between,
        unless the expression would grow past ``MAX_INLINE_OPS``. One of several results
        keeps a name (``x_bar = ...`` / ``return y, x_bar``)."""
        chosen: set[Value] = set()
        size: dict[Value, int] = {}
        named_results = set(func.results) if len(func.results) > 1 else ()
        for value in sorted(self.layout.producer, key=self.layout.def_pos.__getitem__):
            op = self.layout.producer[value]
            if op.regions or op.prim in EFFECTS or op.prim is Prim.CONST or \
                    _statement_reads(op) is not None:
                continue
            sites = self.layout.sites[value]
            if len(sites) != 1 or sites[0].block is not self.layout.def_block[value]:
                continue
            if self.layout.effect_between(op, sites[0]) or value in named_results:
                continue
            size[value] = 1 + sum(size.get(a, 0) for a in op.args)
            if size[value] <= MAX_INLINE_OPS:
                chosen.add(value)
            else:
                size[value] = 0
        return chosen

    def effective_sites(self, value: Value) -> list[_Site]:
        """Where ``value`` is really read: an inlined user reads it where that user is read."""
        out = []
        for site in self.layout.sites[value]:
            while site.user is not None and site.user.results and not site.user.regions \
                    and site.user.results[0] in self.inlined:
                site = self.layout.sites[site.user.results[0]][0]
            out.append(site)
        return out

    def is_variable(self, value: Value) -> bool:
        return value in self.layout.def_pos and value not in self.inlined \
            and value not in self.constants

    def is_index(self, value: Value) -> bool:
        owner = self.layout.owner.get(self.layout.def_block[value])
        return owner is not None and owner.prim is Prim.FOR and \
            value is owner.regions[0].params[0]

    # live ranges ----------------------------------------------------------

    def ranges(self, value: Value) -> Ranges:
        """The points after which ``value`` is still needed, following each read back to the
        definition through the enclosing regions; a read inside a loop that the definition
        is outside of keeps the value live through the whole loop (later trips read it)."""
        found = self._ranges.get(value)
        if found is not None:
            return found
        lay, home = self.layout, self.layout.def_block[value]
        out: Ranges = []
        for site in self.effective_sites(value):
            block, pos, outer_loop = site.block, site.pos, None
            while block is not home:
                out.append((lay.start[block], pos))
                op = lay.owner[block]
                outer_loop = op if op.prim in _LOOPS else outer_loop
                block, pos = lay.home[op], lay.head[op]
            out.append((lay.def_pos[value], pos))
            if outer_loop is not None:
                out.append((lay.head[outer_loop], lay.op_end[outer_loop]))
        self._ranges[value] = out
        return out

    def writes(self, value: Value, group: set[Value]) -> set[int]:
        """The points where the variable of ``group`` is assigned to hold ``value``."""
        lay = self.layout
        op = lay.producer.get(value)
        if op is None:  # a block parameter
            owner = lay.owner.get(lay.def_block[value])
            carried = _carried_params(owner)
            if owner is None:
                return {lay.def_pos[value]}  # a function argument
            if self.is_index(value):
                return {lay.start[lay.def_block[value]]}  # each trip assigns it
            if value not in carried:
                return set()  # a while body's copy of the cond's params
            k = carried.index(value)
            body = owner.regions[-1]
            init = owner.args[3:] if owner.prim is Prim.FOR else owner.args
            return ({lay.copy[owner]} if init[k] not in group else set()) | \
                ({lay.end[body]} if body.yields[k] not in group else set())
        if op.prim is Prim.IF:
            k = op.results.index(value)
            return {lay.end[r] for r in op.regions if r.yields[k] not in group}
        if op.regions:
            return set()  # a loop's result is its carried variable as the loop leaves it
        return {lay.def_pos[value]}

    # coalescing -----------------------------------------------------------

    def find(self, value: Value) -> Value:
        while value in self.parent:
            value = self.parent[value]
        return value

    def group(self, value: Value) -> list[Value]:
        return self.members.get(self.find(value), [value])

    def union(self, a: Value, b: Value) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            self.members[ra] = self.group(ra) + self.group(rb)
            self.members.pop(rb, None)
            self.parent[rb] = ra

    def control_ops(self, block: Block) -> Iterable[Op]:
        """The printed control ops under ``block``, inner ones first."""
        for op in block.ops:
            if op.regions and op in self.layout.needed.ops:
                for region in op.regions:
                    yield from self.control_ops(region)
                yield op

    def coalesce(self, body: Block) -> None:
        """A loop's carried variable is also its params' and results' (forced); then, inner
        ops first, each value flowing into a carried or merged value joins it when safe; then
        a value joins an operand of the same name that dies where it is made; last, loops one
        after the other share their index names."""
        slots = [(op, k) for op in self.control_ops(body)
                 for k, live in enumerate(self.layout.needed.slots[op]) if live]
        for op, k in slots:
            if op.prim is not Prim.IF:
                self.union(_carried_params(op)[k], op.results[k])
            if op.prim is Prim.WHILE:
                self.union(_carried_params(op)[k], op.regions[1].params[k])
        for op, k in slots:
            if op.prim is Prim.IF:
                for region in op.regions:
                    self.try_union(region.yields[k], op.results[k])
            else:
                init = op.args[3:] if op.prim is Prim.FOR else op.args
                self.try_union(init[k], _carried_params(op)[k])
                self.try_union(op.regions[-1].yields[k], _carried_params(op)[k])
        for value, op in self.layout.producer.items():  # x = x + t, where x dies
            if not op.regions and value.hint and self.is_variable(value):
                for arg in self.operands(op):
                    if arg.hint == value.hint:
                        self.try_union(arg, value)
        loops = sorted((op for op in self.control_ops(body) if op.prim is Prim.FOR),
                       key=self.layout.copy.__getitem__)
        for first, second in itertools.combinations(loops, 2):
            i, j = first.regions[0].params[0], second.regions[0].params[0]
            if i.hint and i.hint == j.hint and self.layout.op_end[first] < self.layout.copy[second]:
                self.try_union(i, j, index=True)  # one after the other: both ``for i in ...``

    def operands(self, op: Op) -> list[Value]:
        """The variables and constants ``op``'s printed expression reads."""
        out: list[Value] = []
        for arg in op.args:
            inner = self.layout.producer.get(arg)
            out += self.operands(inner) if arg in self.inlined else [arg]
        return out

    def try_union(self, value: Value, target: Value, index: bool = False) -> None:
        if not self.is_variable(value) or self.is_index(value) is not index:
            return  # constants and inlined values keep to themselves; indices to indices
        ours, theirs = self.group(value), self.group(target)
        if self.find(value) is self.find(target):
            return
        hints, other = {v.hint for v in ours if v.hint}, {v.hint for v in theirs if v.hint}
        if not (hints <= other or other <= hints):
            return  # keep the user's names apart: ``y = a`` stays a copy
        merged = set(ours) | set(theirs)
        if not any(self.conflict(a, b, merged) for a in ours for b in theirs):
            self.union(target, value)

    def conflict(self, a: Value, b: Value, group: set[Value]) -> bool:
        ra, rb = self.ranges(a), self.ranges(b)
        if any(max(s1, s2) < min(e1, e2) for s1, e1 in ra for s2, e2 in rb):
            return True  # both needed at once
        wa, wb = self.writes(a, group), self.writes(b, group)
        return bool(wa & wb) or _live_at(ra, wb) or _live_at(rb, wa)


def _carried_params(op: Op | None) -> tuple[Value, ...]:
    """The block params a loop's carried variables are known by in its first region."""
    if op is None or op.prim is Prim.IF:
        return ()
    return op.regions[0].params[1:] if op.prim is Prim.FOR else op.regions[0].params


def _live_at(ranges: Ranges, points: set[int]) -> bool:
    return any(s <= p < e for p in points for s, e in ranges)


# --------------------------------------------------------------------------- scalar kinds

class _Scalars:
    """Which printed values may hold Python scalars rather than numpy ones: literals, ``range``
    indices, and what only they flow into (also through variables and the tape).

    Where every operand of ``/ // % **`` may be a Python scalar, one is made numpy: the
    literals copied into such a variable if that suffices (``p = np.float64(1.0)`` before
    ``p = p / 2.0``), else the first operand (``np.float64(i) ** 2.0``)."""

    def __init__(self, layout: _Layout, variables: _Variables) -> None:
        self.layout, self.vars = layout, variables
        self.numpy_literals: set[Value] = set()  # variables whose literal copies are wrapped
        self.solve()
        for op in self.risky_ops():
            self.numpy_literals.update(self.vars.find(a) for a in op.args
                                       if self.vars.is_variable(a) and self.python(a))
        self.solve()

    def risky_ops(self) -> list[Op]:
        return [op for op in self.layout.needed.ops if op.prim in _RISKY and self.wraps(op)]

    def wraps(self, op: Op) -> bool:
        """Whether ``op`` is printed with its first operand made numpy."""
        return op.prim in _RISKY and all(self.python(a) for a in op.args)

    def python(self, value: Value, into: Value | None = None) -> bool:
        """Whether ``value`` may be a Python scalar (copied ``into`` a variable, if given)."""
        if value in self.vars.constants:
            return into is None or self.vars.find(into) not in self.numpy_literals
        if value in self.vars.inlined:
            return self.op_python(self.layout.producer[value])
        return self.vars.is_index(value) or self.vars.find(value) in self.variables

    def op_python(self, op: Op) -> bool:
        if is_array(op.results[0].type):
            return False
        if op.prim is Prim.DIM:  # ``x.shape[k]`` is a Python int
            return True
        template = _template(rule_for(op.prim), op.results[0].type) or ""
        if template.startswith(("np.", "{t}")) or self.wraps(op):
            return False
        if op.prim is Prim.SELECT:
            return self.python(op.args[1]) or self.python(op.args[2])
        many = any if template.startswith(("max(", "min(")) else all
        return many(self.python(a) for a in op.args)

    def solve(self) -> None:
        """Grow the Python-valued variables and tape slots to a fixed point."""
        self.variables: set[Value] = set()
        self.slots: set = set()
        while True:
            before = (len(self.variables), len(self.slots))
            for op in self.layout.needed.ops:
                if op.prim is Prim.PUSH and self.python(op.args[0]):
                    self.slots.add(op.attr("slot"))
            for value in self.layout.def_pos:
                if self.vars.is_variable(value) and self.source_python(value):
                    self.variables.add(self.vars.find(value))
            if (len(self.variables), len(self.slots)) == before:
                return

    def source_python(self, value: Value) -> bool:
        """Whether what the variable of ``value`` is assigned for it may be a Python scalar."""
        op, group = self.layout.producer.get(value), set(self.vars.group(value))
        if op is not None and op.prim is Prim.POP:
            return op.attr("slot") in self.slots
        if op is not None and not op.regions:
            return self.op_python(op)
        if op is not None and op.prim is Prim.IF:
            k = op.results.index(value)
            return any(self.python(r.yields[k], value) for r in op.regions
                       if r.yields[k] not in group)
        owner = self.layout.owner.get(self.layout.def_block[value])
        if op is not None or owner is None or value not in _carried_params(owner):
            return self.vars.is_index(value)
        k = _carried_params(owner).index(value)
        init = owner.args[3:] if owner.prim is Prim.FOR else owner.args
        return any(self.python(v, value) for v in (init[k], owner.regions[-1].yields[k])
                   if v not in group)


# --------------------------------------------------------------------------- the text

class _Writer:
    def __init__(self, func: Func, fname: str) -> None:
        self.func, self.fname = func, fname
        self.needed = _Needed(func)
        self.layout = _Layout(func, self.needed)
        self.vars = _Variables(func, self.layout)
        self.scalars = _Scalars(self.layout, self.vars)
        self.namer = Namer(_RESERVED + (fname,))
        self.names: dict[Value, str] = {}
        unnamed = [v for v in func.results if not v.hint]
        # Unnamed results read as the math does: y (or y0, y1, …), as in y_bar and y_dot;
        # "out" where an argument already takes that name.
        base = "out" if {"y", "y0"} & set(func.arg_names) else "y"
        self.result_hints = {v: base if len(unnamed) == 1 else f"{base}{k}"
                             for k, v in enumerate(unnamed)}

    def source(self) -> str:
        params = ", ".join(self.param_name(p, arg) for p, arg in
                           itertools.zip_longest(self.func.params, self.func.arg_names)
                           if p is not None)
        lines = [f"def {self.fname}({params}):"]
        tapes = sorted({op.attr("tape") or 0 for op in self.needed.ops if op.prim in EFFECTS})
        lines += [f"    {_tape_name(k)} = []" for k in tapes]
        lines += self.block(self.func.body, "    ")
        lines.append("    " + self.return_statement())
        return "\n".join(lines) + "\n"

    # names -----------------------------------------------------------------

    def param_name(self, param: Value, arg_name: str | None) -> str:
        hint = arg_name if arg_name and arg_name.isidentifier() else param.hint
        self.names[self.vars.find(param)] = name = self.namer.define(Value(param.type, hint))
        return name

    def name(self, value: Value) -> str:
        root = self.vars.find(value)
        name = self.names.get(root)
        if name is None:
            members = sorted(self.vars.group(root), key=self.layout.def_pos.get)
            hint = next((m.hint for m in members if m.hint), "") or next(
                (self.result_hints[m] for m in members if m in self.result_hints), "")
            self.names[root] = name = self.namer.define(Value(root.type, hint))
        return name

    # expressions -----------------------------------------------------------

    def expr(self, value: Value) -> _Expr:
        if value in self.vars.constants:
            return _literal(self.vars.constants[value], value.type)
        if value in self.vars.inlined:
            return self.expr_of(self.layout.producer[value])
        name = self.name(value)
        return _Expr(name, PREC_ATOM, frozenset({name}))

    def negated(self, value: Value) -> str:
        op = self.layout.producer.get(value)
        if value in self.vars.inlined and op.prim is Prim.NOT:
            return self.expr(op.args[0]).text
        return _apply(Prim.NOT, [self.expr(value)], BOOL).text

    # statements ------------------------------------------------------------

    def block(self, block: Block, indent: str) -> list[str]:
        lines: list[str] = []
        for op in block.ops:
            if op not in self.needed.ops or op.prim is Prim.CONST:
                continue
            if op.regions:
                lines += _STATEMENTS[op.prim](self, op, indent)
            elif op.prim is Prim.PUSH:
                lines.append(f"{indent}{_tape_name(op.attr('tape'))}.append("
                             f"{self.expr(op.args[0]).text})")
            elif op.prim is Prim.POP:
                target = f"{self.name(op.result)} = " if self.layout.sites[op.result] else ""
                lines.append(f"{indent}{target}{_tape_name(op.attr('tape'))}.pop()")
            elif _statement_reads(op) is not None:
                text = self.expr_of(op).text.replace("{y}", self.name(op.result))
                lines += [indent + line for line in text.split("\n")]
            elif op.result not in self.vars.inlined:
                lines.append(f"{indent}{self.name(op.result)} = {self.expr_of(op).text}")
        return lines

    def expr_of(self, op: Op) -> _Expr:
        args = [self.expr(a) for a in op.args]
        if self.scalars.wraps(op):
            args[0] = _as_numpy(args[0], op.args[0].type)
        return _apply(op.prim, args, op.result.type, op.attrs)

    def source_expr(self, value: Value, target: Value) -> _Expr:
        """``value`` as assigned to the variable of ``target``."""
        found = self.expr(value)
        if found.literal and not self.scalars.python(value, target):
            return _as_numpy(found, value.type)
        return found

    def copies(self, pairs: Iterable[tuple[Value, Value]], indent: str) -> list[str]:
        """``target = source`` for each pair not already sharing a variable, all as if at once:
        ordered so no copy reads a target already written, or as one tuple assignment when
        they form a cycle (``a, b = b, a + b``)."""
        todo = [(self.name(t), self.source_expr(s, t)) for t, s in pairs
                if not (self.vars.is_variable(s) and self.vars.find(s) is self.vars.find(t))]
        ordered = _sequential(todo)
        if ordered is None:
            return [f"{indent}{', '.join(t for t, _ in todo)} = "
                    f"{', '.join(e.text for _, e in todo)}"]
        return [f"{indent}{t} = {e.text}" for t, e in ordered]

    def if_(self, op: Op, indent: str) -> list[str]:
        mask, deeper = self.needed.slots[op], indent + "    "
        then, other = (self.block(r, deeper) + self.copies(
            [(res, y) for res, y, m in zip(op.results, r.yields, mask) if m], deeper)
            for r in op.regions)
        if not then:
            return [f"{indent}if {self.negated(op.args[0])}:", *other] if other else []
        lines = [f"{indent}if {self.expr(op.args[0]).text}:", *then]
        return lines + _else(other, indent) if other else lines

    def for_(self, op: Op, indent: str) -> list[str]:
        mask, deeper = self.needed.slots[op], indent + "    "
        lo, hi, step, *init = op.args
        body = op.regions[0]
        index, carried = body.params[0], body.params[1:]
        lines = self.copies([(p, v) for p, v, m in zip(carried, init, mask) if m], indent)
        target = self.name(index) if self.layout.sites[index] else "_"
        bounds = [hi] if self.is_const(lo, 0) and self.is_const(step, 1) else \
            [lo, hi] if self.is_const(step, 1) else [lo, hi, step]
        loop = f"range({', '.join(self.expr(b).text for b in bounds)})"
        loop = f"reversed({loop})" if op.attr("reverse") else loop
        inner = self.block(body, deeper) + self.copies(
            [(p, y) for p, y, m in zip(carried, body.yields, mask) if m], deeper)
        return lines + [f"{indent}for {target} in {loop}:", *(inner or [deeper + "pass"])]

    def while_(self, op: Op, indent: str) -> list[str]:
        mask, deeper = self.needed.slots[op], indent + "    "
        cond, body = op.regions
        lines = self.copies([(p, v) for p, v, m in zip(cond.params, op.args, mask) if m], indent)
        test = self.block(cond, deeper)
        if not test:
            head = [f"{indent}while {self.expr(cond.yields[0]).text}:"]
        else:
            head = [f"{indent}while True:", *test,
                    f"{deeper}if {self.negated(cond.yields[0])}:", f"{deeper}    break"]
        inner = self.block(body, deeper) + self.copies(
            [(p, y) for p, y, m in zip(cond.params, body.yields, mask) if m], deeper)
        return lines + head + (inner or ([deeper + "pass"] if not test else []))

    def return_statement(self) -> str:
        values = [self.expr(v).text for v in self.func.results]
        if len(values) == 1 and not self.func.tuple_result:
            return f"return {values[0]}"
        if len(values) == 1:
            return f"return ({values[0]},)"
        return f"return {', '.join(values)}" if values else "return ()"

    def is_const(self, value: Value, number: int) -> bool:
        return value in self.vars.constants and self.vars.constants[value] == number


def _sequential(copies: list[tuple[str, _Expr]]) -> list[tuple[str, _Expr]] | None:
    """``copies`` in an order where one after another equals all at once, or None."""
    remaining, out = list(copies), []
    while remaining:
        free = next((c for c in remaining if not any(
            c[0] in e.reads for t, e in remaining if t != c[0])), None)
        if free is None:
            return None  # every target is still to be read by another copy: a cycle
        remaining.remove(free)
        out.append(free)
    return out


_STATEMENTS: dict[Prim, Callable[[_Writer, Op, str], list[str]]] = {
    Prim.IF: _Writer.if_, Prim.FOR: _Writer.for_, Prim.WHILE: _Writer.while_,
}


def _else(lines: list[str], indent: str) -> list[str]:
    """``else:`` and ``lines``, or ``elif`` when ``lines`` are exactly one if statement."""
    deeper = indent + "    "
    heads = [line for line in lines if line.startswith(deeper) and line[len(deeper)] != " "]
    if heads[0].startswith(deeper + "if ") and \
            all(h.startswith((deeper + "elif ", deeper + "else:")) for h in heads[1:]):
        return [indent + "el" + lines[0][len(deeper):]] + [line[4:] for line in lines[1:]]
    return [f"{indent}else:", *lines]


def _tape_name(number: int | None) -> str:
    """``_tape`` for tape 0 (every first-order program), ``_tape1`` … for the others."""
    return f"_tape{number}" if number else "_tape"
