"""Sympy-based simplification of straight-line float expressions, for derivative programs.

Reverse mode applies each primitive's rule locally, so the adjoint of ``s = 1/(1 + exp(-z))``
computes ``z̄ = s̄·s·e/d`` from the stored ``e = exp(-z)`` and ``d = 1 + e``. Globally that is
``s̄·s·(1 − s)``: fewer ops, and in a loop only ``s`` needs to go on the tape. This pass finds such
rewrites. (That spelling is recognised as ``logistic`` before differentiation, by
``passes.simplify``; this pass finds the like where no rule names the function:
``exp(z)/(1 + exp(z))``, ``2/(1 + exp(-z)) - 1``, …)

The algorithm, per block (recursing into regions):

1. *Roots and trees.* A float value made by an algebraic op (``symbolic_rules.ALGEBRAIC``) whose
   users are all such ops of its own block, all inside one root's expression, is internal to that
   expression (a fanout-free cone: ``q = s̄/d`` used twice within ``z̄``'s expression is part of
   it). Every other such value is a root (used by a control op, a push, a yield, in a nested
   region, or by two roots' expressions). A root's tree stops at its inputs: other roots, block
   parameters, results of control ops, pops, non-algebraic ops and values of enclosing blocks.
   Values nothing live uses are dead and left alone. An expression larger than ``MAX_TREE_OPS``
   is cut at its seams (an operand sharing no transcendental with its sibling operands, as
   between two steps of a reverse sweep), else where it grows past half the limit.
2. *Definitions.* Every float value gets a sympy definition: rational operations expanded (up to
   ``DEF_BOUND`` nodes), calls written over their argument's own expression (``exp(-v7)``), so
   kernels stay small and recognisable. A pop is defined as the value its paired push stored,
   over the push's block's leaves renamed into a fresh space (pops in one block whose pushes sit
   in one block come from one execution of it, so relations between them hold).
3. *Search*, for each root whose tree has a division or a transcendental: expand the inputs that
   carry an inverse relation for a kernel (``exp(-z)``, …) another input or the tree's own calls
   share, and small rational inputs, giving ``T``. For each kernel of ``T``, every value in scope
   whose definition is a Möbius function of it gives an exact inverse (``s = 1/(1 + k)`` gives
   ``k = (1 − s)/s``); substitute it into the terms that have the kernel and reduce those to one
   factored fraction (another neuron's terms stay apart), keeping the ``BEAM`` best by the cost
   of their best form; then cost a few equal forms of each candidate (factored, common factors
   pulled out, expanded). Float constants other than simple ones (2, 0.5) stay symbols, so sympy
   never folds 0.4·0.15 into a rational no float equals. Symbols are renamed canonically first,
   so roots of one shape (two neurons, two steps of a sweep) hit the caches of the sympy calls.
4. *Cost* (``symbolic_rules.OP_COST``): ops weighted (transcendental 20 ≫ div 4 > add, mul 1)
   plus the values the candidate keeps alive that nothing else needs: a pop costs ``POP_COST``
   (its push, the tape slot and the pop), a computed value its op, a parameter a little. The
   cheapest candidate replaces the root's op if it beats the original by ``MARGIN``, divides by
   and takes log/sqrt/asin/acos/pow of only what the original did (no new poles or domain
   errors), and agrees with it at sample points (a guard: each step is an identity).
5. *Emit* the candidate as ops, reusing values in scope; the old tree is left for DCE.

Sympy is imported only when a function has something worth trying. Work per root is bounded by
the sizes above; a wall-clock ``budget`` per call is the last resort (roots left when it runs out
stay as they are: only very large functions reach it).
"""
from __future__ import annotations

import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from ..ir import F64, Block, Func, Op, Prim, Value
from ..prims import Emitter
from ..symbolic_rules import (ALGEBRAIC, EXPENSIVE, OP_COST, PARTIAL, Expr, Plan, Unlowerable,
                              constant, eliminate, forms, invert, kernel_key, kernel_keys, kernels,
                              leaf_symbol, lower, numeric, size, translate)
from .rewrite import adopt_hints

MAX_TREE_OPS = 40     # larger trees are left alone
DEF_BOUND = 40        # definitions larger than this are cut to an opaque symbol
SMALL_DEF = 8         # a rational input this small is always expanded (1 − y, a·b)
MAX_EXPANDED = 120    # an expanded tree larger than this is searched only in its local form
MAX_FORM_SIZE = 60    # factor larger candidates only as they are
MAX_RELATIONS = 8     # inverse relations tried per root, the simplest first
MAX_RELATION_SIZE = 16  # k = (1 − s)/s pays; k as a fraction of a whole layer's sum does not
BEAM = 3              # candidates kept between kernels
POP_COST = 3.0        # a value on the tape: its push, the slot, its pop
PARAM_COST = 0.25     # keeping a parameter or control result alive a little longer
MARGIN = 0.5          # a rewrite must beat the original by this much
SAMPLES = 2           # points at which a candidate must agree with the original
FAMILY_DEPTH = 6      # how far to look for the transcendentals an expression is made of

CALLS = ALGEBRAIC - {Prim.ADD, Prim.SUB, Prim.MUL, Prim.DIV, Prim.NEG}


def simplify_symbolic(func: Func, budget: float = 1.0) -> Func:
    """``func`` with cheaper equal forms for its scalar float expression trees (see module doc).

    ``budget`` bounds the wall-clock seconds spent; roots left when it runs out are unchanged.
    """
    facts = _Facts(func)
    if not facts.worth_trying:
        return func
    simplifier = _Simplifier(facts, time.perf_counter() + budget)
    body = simplifier.block(func.body, _Scope())
    names = {new: old.hint for old, new in simplifier.rename.items() if old.hint and not new.hint}
    return adopt_hints(func.with_body(body), names)


# --------------------------------------------------------------------------- facts about func

class _Facts:
    """Who defines and who uses each value, in the function as given."""

    def __init__(self, func: Func) -> None:
        self.producer: dict[Value, Op] = {}
        self.owner: dict[Value, Block] = {}
        self.sites: dict[Value, list[tuple[Block, Op | None]]] = {}
        self.pushes: dict[Any, list[tuple[Op, Block]]] = {}
        self.pops: list[tuple[Op, Block]] = []
        self.position: dict[Op, int] = {}      # index in its block
        self.worth_trying = False
        self._walk(func.body)
        self.top = frozenset(v for v, b in self.owner.items() if b is func.body)
        self.pushed = self._pair_pops()
        self.group: dict[Value, Value] = {}
        self.dead: set[Value] = set()
        self._group(func.body)
        self.internal = frozenset(v for v, root in self.group.items() if root is not v)

    def _walk(self, block: Block) -> None:
        for p in block.params:
            self.owner[p] = block
        for i, op in enumerate(block.ops):
            self.position[op] = i
            for a in op.args:
                self.sites.setdefault(a, []).append((block, op))
            for region in op.regions:
                self._walk(region)
            for r in op.results:
                self.producer[r] = op
                self.owner[r] = block
            if op.prim is Prim.PUSH:
                self.pushes.setdefault(op.attr("slot"), []).append((op, block))
            elif op.prim is Prim.POP:
                self.pops.append((op, block))
            elif op.prim in EXPENSIVE and op.prim in ALGEBRAIC and op.results[0].type is F64:
                self.worth_trying = True
        for y in block.yields:
            self.sites.setdefault(y, []).append((block, None))

    def _group(self, block: Block) -> None:
        """Group the block's expressions; cut those larger than ``MAX_TREE_OPS`` into pieces."""
        for op in block.ops:
            for region in op.regions:
                self._group(region)
        cuts: set[Value] = set()
        while True:
            self._group_block(block, cuts)
            more = self._cuts(block)
            if not more:
                return
            cuts |= more

    def _group_block(self, block: Block, cuts: set[Value]) -> None:
        """Give each algebraic float value the root it is internal to: the one root of all its
        live users, if they are algebraic float ops of its own block; else (or if cut) the value
        is a root. The roots' expressions are fanout-free cones. Users come later in the block,
        so walking it backwards sees their roots first. Values nothing live uses are dead."""
        for op in reversed(block.ops):
            if not _expression_op(op):
                continue
            v = op.results[0]
            roots = {self._root_through(site, block) for site in self.sites.get(v, [])}
            roots.discard(_DEAD)
            if not roots:
                self.dead.add(v)
            alone = v in cuts or len(roots) != 1 or None in roots
            self.group[v] = v if alone else roots.pop()

    def _cuts(self, block: Block) -> set[Value]:
        """Values to make roots where an expression exceeds ``MAX_TREE_OPS``. First at seams: an
        operand whose expression shares no transcendental with the op's other operands (as
        between two steps of a reverse sweep, ``q = z̄ₖ₊₁/dₖ``), so that each piece keeps what
        can simplify together. Failing that, the larger operand where an expression outgrows
        half the limit."""
        values = [op.results[0] for op in block.ops
                  if _expression_op(op) and op.results[0] not in self.dead]
        sizes = Counter(self.group[v] for v in values)
        values = [v for v in values if sizes[self.group[v]] > MAX_TREE_OPS]
        seams = {a for v in values for a in self._seams(self.producer[v])}
        if seams or not values:
            return seams
        grown: dict[Value, int] = {}
        cuts = set()
        for v in values:
            inner = [a for a in self.producer[v].args if self._inside(a)]
            grown[v] = 1 + sum(grown.get(a, 0) for a in inner)
            if inner and grown[v] > MAX_TREE_OPS // 2:
                biggest = max(inner, key=lambda a: grown.get(a, 0))
                cuts.add(biggest)
                grown[v] -= grown.get(biggest, 0)
        return cuts

    def _seams(self, op: Op) -> list[Value]:
        found = []
        for a in op.args:
            if not self._inside(a):
                continue
            mine = self.families(a)
            theirs = set().union(*(self.families(x) for x in op.args if x is not a))
            if mine and theirs and mine.isdisjoint(theirs):
                found.append(a)
        return found

    def _inside(self, v: Value) -> bool:
        root = self.group.get(v)
        return root is not None and root is not v

    def families(self, v: Value) -> frozenset[Value]:
        """The transcendental values (exp(…), tanh(…), …) nearest to ``v`` through at most
        ``FAMILY_DEPTH`` arithmetic ops, seeing through pops to what was pushed."""
        found, seen = set(), set()
        todo = deque([(v, 0)])
        while todo:
            x, depth = todo.popleft()
            op = self.producer.get(x)
            if x in seen or op is None:
                continue
            seen.add(x)
            if op.prim is Prim.POP and op in self.pushed:
                todo.append((self.pushed[op][0], depth))
            elif op.prim in CALLS:
                found.add(x)
            elif op.prim in ALGEBRAIC and depth < FAMILY_DEPTH:
                todo.extend((a, depth + 1) for a in op.args)
        return frozenset(found)

    def _root_through(self, site: tuple[Block, Op | None], block: Block) -> Any:
        """The root a use joins a value to; None if the use makes the value a root."""
        user_block, user = site
        if user is None or user_block is not block or user.prim not in ALGEBRAIC:
            return None
        if user.results[0] in self.dead:
            return _DEAD
        return self.group.get(user.results[0])

    def is_dead(self, op: Op | None) -> bool:
        return op is not None and len(op.results) == 1 and op.results[0] in self.dead

    def _pair_pops(self) -> dict[Op, tuple[Value, tuple[Block, Block]]]:
        """Each pop whose slot has exactly one push of a float: (stored value, (pop's block,
        push's block))."""
        pairs = {}
        for pop, pop_block in self.pops:
            pushes = self.pushes.get(pop.attr("slot"), [])
            if len(pushes) == 1 and pushes[0][0].args[0].type is F64:
                push, push_block = pushes[0]
                pairs[pop] = (push.args[0], (pop_block, push_block))
        return pairs


# --------------------------------------------------------------------------- definitions

@dataclass(frozen=True)
class _Def:
    """A value's definition: a sympy expression, its size, and its symbols in the order the IR
    reaches them (an order that does not depend on the symbols' names)."""

    expr: Expr
    size: int
    leaves: tuple[Expr, ...]


def _combine(expr: Expr, parts: list[_Def]) -> _Def:
    leaves = tuple(dict.fromkeys(leaf for p in parts for leaf in p.leaves))
    return _Def(expr, 1 + sum(p.size for p in parts), leaves)


class _Definitions:
    """Every float value as a sympy expression over leaf symbols (block parameters, control
    results, opaque ops), built on demand and cached.

    ``space`` names a pop's view of a forward block: a pop stands for the value its push
    stored, written over that block's leaves renamed into the space (values of the function's
    body are one value per call, so they keep their own symbols)."""

    def __init__(self, facts: _Facts) -> None:
        self.facts = facts
        self.defs: dict[tuple[Value, Any], _Def] = {}
        self.shallows: dict[tuple[Value, Any], _Def] = {}
        self.symbols: dict[tuple[Value, Any], Expr] = {}
        self.owners: dict[Expr, Value] = {}       # symbol of a value (outside any space) -> value
        self.meaning: dict[Expr, tuple[Value, Any]] = {}   # every symbol -> (value, space)
        self.constants: dict[Expr, float] = {}             # symbol of a constant -> its value
        self.constants_by_value: dict[float, Expr] = {}
        self.samples: list[dict[Expr, complex | None]] = [{} for _ in range(SAMPLES)]
        self.spaces: dict[tuple[Block, Block], int] = {}
        self.key_cache: dict[Value, frozenset] = {}
        self.inverse_cache: dict[Value, list[_Relation]] = {}

    def symbol(self, v: Value, space: int | None = None) -> Expr:
        sym = self.symbols.get((v, space))
        if sym is None:
            number = len(self.symbols)
            name = f"v{number}" if space is None else f"v{number}_{space}"
            sym = self.symbols[(v, space)] = leaf_symbol(name)
            self.meaning[sym] = (v, space)
            if space is None:
                self.owners[sym] = v
        return sym

    def constant(self, value: float) -> _Def:
        """A float constant: a number if sympy may fold it exactly, else one symbol per value."""
        number = constant(value)
        if number is not None:
            return _Def(number, 1, ())
        sym = self.constants_by_value.get(value)
        if sym is None:
            sym = leaf_symbol(f"k{len(self.constants_by_value)}")
            self.constants_by_value[value] = sym
            self.constants[sym] = value
        return _Def(sym, 1, (sym,))

    def is_constant(self, e: Expr) -> bool:
        return e.is_Number or e in self.constants

    def leaf(self, v: Value, space: int | None) -> _Def:
        sym = self.symbol(v, space)
        return _Def(sym, 1, (sym,))

    def define(self, v: Value, space: int | None = None, depth: int = 0) -> _Def:
        """``v`` over leaves, with operands larger than ``DEF_BOUND`` cut to their symbols."""
        if space is not None and v in self.facts.top:
            space = None
        got = self.defs.get((v, space))
        if got is None:
            if depth > DEF_BOUND:  # a long chain not seen in order: opaque, and not cached
                return self.leaf(v, space)
            got = self.defs[(v, space)] = self._define(v, space, depth)
        return got

    def _define(self, v: Value, space: int | None, depth: int) -> _Def:
        op = self.facts.producer.get(v)
        if v.type is not F64 or op is None:
            return self.leaf(v, space)
        if op.prim is Prim.CONST:
            return self.constant(op.attr("value"))
        if op.prim in CALLS:  # exp(arg): arg as its own expression makes it
            args = [self.shallow(a, space) for a in op.args]
        elif op.prim in ALGEBRAIC:
            args = [self.operand(a, space, depth + 1) for a in op.args]
        elif op.prim is Prim.POP and space is None and op in self.facts.pushed:
            stored, blocks = self.facts.pushed[op]
            return self.define(stored, self.spaces.setdefault(blocks, len(self.spaces)), depth + 1)
        else:
            return self.leaf(v, space)
        return _combine(translate(op.prim, [a.expr for a in args]), args)

    def operand(self, v: Value, space: int | None = None, depth: int = 0) -> _Def:
        """``v`` as an operand: its definition if small, else its symbol."""
        d = self.define(v, space, depth)
        return d if d.size <= DEF_BOUND else self.leaf(v, space)

    def shallow(self, v: Value, space: int | None = None) -> _Def:
        """``v`` as its root's expression makes it, over that expression's inputs. Kernels are
        written this way (``exp(-v7)``, not exp of all that made ``v7``): they stay small, and
        two kernels made from one value are visibly the same."""
        if space is not None and v in self.facts.top:
            space = None
        got = self.shallows.get((v, space))
        if got is None:
            op = self.facts.producer.get(v)
            if v in self.facts.internal and op.prim in ALGEBRAIC:
                args = [self.shallow(a, space) for a in op.args]
                got = _combine(translate(op.prim, [a.expr for a in args]), args)
            elif op is not None and op.prim is Prim.CONST:
                got = self.define(v, space)
            else:
                got = self.leaf(v, space)
            self.shallows[(v, space)] = got
        return got

    def sample(self, e: Expr, point: int) -> complex | None:
        """``e`` evaluated with every leaf at a fixed pseudo-random value, and every other
        symbol at the value its definition gives: a numeric fingerprint, the same whichever
        symbols ``e`` is written over."""
        known = self.samples[point]
        todo = [s for s in e.free_symbols if s not in known]
        while todo:
            sym = todo[-1]
            if sym in known or sym in self.constants:
                known.setdefault(sym, complex(self.constants.get(sym, 0.0)))
                todo.pop()
                continue
            v, space = self.meaning[sym]
            definition = self.operand(v, space).expr
            if definition == sym:
                known[sym] = complex(_leaf_value(str(sym), point))
                todo.pop()
                continue
            missing = [x for x in definition.free_symbols if x not in known]
            if missing:
                todo.extend(missing)
                continue
            known[sym] = numeric(definition, known, real=False)
            todo.pop()
        if any(known[s] is None for s in e.free_symbols):
            return None
        return numeric(e, known, real=False)

    def call_keys(self, v: Value) -> frozenset:
        """The kernel keys of the calls (exp, tanh, …) ``v``'s definition is rational in."""
        got = self.key_cache.get(v)
        if got is None:
            got = self.key_cache[v] = frozenset(
                kernel_key(k) for k in kernels(self.operand(v).expr) if not k.is_Symbol)
        return got

    def inverses(self, v: Value) -> list["_Relation"]:
        """Each call kernel of ``v``'s definition as an exact rational function of ``v``."""
        got = self.inverse_cache.get(v)
        if got is None:
            definition = self.operand(v).expr
            got = []
            for k in kernels(definition):
                if k.is_Symbol:
                    continue  # what pays is eliminating exp, log, tanh...: not plain symbols
                g = invert(definition, k, self.symbol(v)) if definition != k else self.symbol(v)
                if g is not None and size(g) <= MAX_RELATION_SIZE:
                    got.append(_Relation(v, kernel_key(k), k, g))
            self.inverse_cache[v] = got
        return got


@dataclass(frozen=True)
class _Relation:
    """``kernel = inverse`` where ``inverse`` is a rational function of ``value``'s symbol."""

    value: Value
    key: Any
    kernel: Expr
    inverse: Expr


# --------------------------------------------------------------------------- the rewriter

@dataclass
class _Scope:
    """Values visible at a point, by symbol and by definition (for reuse when lowering)."""

    lookup: dict[Expr, Value] = field(default_factory=dict)
    negated: dict[Expr, Value] = field(default_factory=dict)  # −definition -> value
    values: dict[Value, None] = field(default_factory=dict)   # in order of definition

    def child(self) -> "_Scope":
        return _Scope(dict(self.lookup), dict(self.negated), dict(self.values))


@dataclass
class _Problem:
    """One root being rewritten: its tree, inputs and forms, and the search's canonical names."""

    root: Value
    tree: list[Op]
    inputs: Counter
    local: Expr = None
    expanded: Expr = None
    opened: tuple[Value, ...] = ()      # inputs replaced by their definitions in ``expanded``
    partial: list[tuple[str, Expr]] = field(default_factory=list)  # what it divides by, logs...
    names: dict[Expr, Expr] = field(default_factory=dict)   # symbol -> canonical symbol
    back: dict[Expr, Expr] = field(default_factory=dict)    # canonical symbol -> symbol


class _Simplifier:
    def __init__(self, facts: _Facts, deadline: float) -> None:
        self.facts = facts
        self.defs = _Definitions(facts)
        self.deadline = deadline
        self.uses = Counter({v: sum(1 for _, user in sites if not facts.is_dead(user))
                             for v, sites in facts.sites.items()})
        self.rename: dict[Value, Value] = {}
        self.by_key: dict[Any, list[Value]] = {}   # kernel key -> values with it, in order

    # ----------------------------------------------------------------------- walking

    def block(self, block: Block, outer: _Scope) -> Block:
        scope = outer.child()
        for p in block.params:
            self.add(scope, p)
        ops: list[Op] = []
        for op in block.ops:
            op = self.renamed(op)
            if op.regions:
                op = op.replace(regions=tuple(self.block(r, scope) for r in op.regions))
            for r in op.results:
                if r.type is F64:
                    self.defs.define(r)  # in program order: definitions never recurse deeply
            new = self.rewrite(op, scope) if self.is_root(op) else None
            ops.extend([op] if new is None else new)
            for r in op.results:
                if r not in self.facts.internal and r not in self.rename:
                    self.add(scope, r)
        yields = tuple(self.rename.get(y, y) for y in block.yields)
        return Block(block.params, tuple(ops), yields)

    def renamed(self, op: Op) -> Op:
        if not any(a in self.rename for a in op.args):
            return op
        return op.replace(args=tuple(self.rename.get(a, a) for a in op.args))

    def is_root(self, op: Op) -> bool:
        v = op.results[0] if len(op.results) == 1 else None
        return (op.prim in ALGEBRAIC and v is not None and v.type is F64
                and v not in self.facts.internal and v not in self.facts.dead)

    def add(self, scope: _Scope, v: Value) -> None:
        if v.type is not F64:
            return
        definition = self.defs.define(v).expr
        if self.defs.is_constant(definition):
            return  # constants are emitted afresh, at no cost
        scope.lookup.setdefault(self.defs.symbol(v), v)
        scope.lookup.setdefault(definition, v)
        scope.negated.setdefault(-definition, v)
        scope.values[v] = None
        for key in self.defs.call_keys(v):
            self.by_key.setdefault(key, []).append(v)

    # ----------------------------------------------------------------------- one root

    def rewrite(self, op: Op, scope: _Scope) -> list[Op] | None:
        tree = self.tree(op.result)
        if (tree is None or time.perf_counter() > self.deadline
                or not any(t.prim in EXPENSIVE for t in tree)):
            return None
        problem = self.problem(op.result, tree, scope)
        plan = self.search(problem, scope)
        if plan is None:
            return None
        self.uses.subtract(problem.inputs)
        self.uses.update(plan.used)
        return self.emit(plan, op)

    def tree(self, root: Value) -> list[Op] | None:
        """The ops of the root's expression in program order; None past ``MAX_TREE_OPS``."""
        ops: dict[Op, None] = {}
        todo = [root]
        while todo:
            op = self.facts.producer[todo.pop()]
            if op not in ops:
                ops[op] = None
                if len(ops) > MAX_TREE_OPS:
                    return None
                todo.extend(a for a in op.args if a in self.facts.internal)
        return sorted(ops, key=self.facts.position.__getitem__)

    def problem(self, root: Value, tree: list[Op], scope: _Scope) -> _Problem:
        """The root's expression over its inputs' symbols, and over leaves."""
        inputs: Counter = Counter()
        local: dict[Value, Expr] = {}
        partial: list[tuple[str, Expr]] = []
        for op in tree:
            args = []
            for a in op.args:
                if a in self.facts.internal:
                    args.append(local[a])
                    continue
                a = self.rename.get(a, a)
                inputs[a] += 1
                definition = self.defs.define(a).expr
                args.append(definition if self.defs.is_constant(definition)
                            else self.defs.symbol(a))
            v = op.results[0]
            local[v] = (self.defs.define(v).expr if op.prim is Prim.CONST
                        else translate(op.prim, args))
            partial += _partial(op.prim, args)
        problem = _Problem(root, tree, inputs, local[root])
        problem.partial = partial
        own = {kernel_key(self.defs.define(t.results[0]).expr) for t in tree if t.prim in CALLS}
        problem.opened = self.related_inputs(problem, own, scope)
        problem.expanded = problem.local.xreplace(
            {self.defs.symbol(v): self.defs.operand(v).expr for v in problem.opened})
        return problem

    def related_inputs(self, problem: _Problem, own: set, scope: _Scope) -> tuple[Value, ...]:
        """The inputs worth expanding: small rational ones (``1 − y``), and those with an
        inverse relation for a kernel another input or the tree's own calls (``own``: their
        keys) also has: ``s = 1/(1 + exp(−z))`` beside ``e = exp(−z)``. An adjoint flowing in
        (``ȳ·(y − out)`` of a whole layer) stays a symbol: it has nothing to cancel with this
        step's exp(−z), and expanding it would only make sympy slower."""
        inputs = list(problem.inputs)
        keys = {v: self.defs.call_keys(v) for v in inputs}
        opened = []
        for v in inputs:
            shared = own.union(*(keys[w] for w in inputs if w is not v))
            definition = self.defs.operand(v)
            if not self.reachable(definition.expr, scope):
                continue
            if (not keys[v] and definition.size <= SMALL_DEF
                    or any(r.key in shared for r in self.defs.inverses(v))):
                opened.append(v)
        return tuple(opened)

    def reachable(self, e: Expr, scope: _Scope) -> bool:
        """No symbol of ``e`` stands for a value out of scope (such as a cut-off operand
        inside another root's expression): a rewrite could not use it."""
        owners = self.defs.owners
        return all(s not in owners or s in scope.lookup for s in e.free_symbols)

    def search(self, problem: _Problem, scope: _Scope) -> Plan | None:
        base = sum(OP_COST[t.prim] for t in problem.tree) + self.keep_cost(problem.inputs, problem)
        relations = []
        if size(problem.expanded) <= MAX_EXPANDED:
            relations = self.relations(kernel_keys(problem.expanded), scope, problem)
        self.name_canonically(problem, relations)
        local, expanded = (e.xreplace(problem.names) for e in (problem.local, problem.expanded))
        candidates = [local]
        if relations:
            candidates += self.substituted(expanded, relations, problem, scope)
        candidates.append(expanded)
        ranked = []
        for c in dict.fromkeys(candidates):
            for f in forms(c, MAX_FORM_SIZE):
                plan = self.plan(f.xreplace(problem.back), scope)
                if plan is not None and not plan.missing:
                    cost = plan.op_cost() + self.keep_cost(plan.used, problem)
                    ranked.append((cost, len(ranked), f.xreplace(problem.back), plan))
            if time.perf_counter() > self.deadline:
                break
        for cost, _, f, plan in sorted(ranked, key=lambda r: r[:2]):
            if cost > base - MARGIN:
                return None
            if self.safe(plan, problem) and self.agrees(f, problem):
                return plan
        return None

    def name_canonically(self, problem: _Problem, relations: list[_Relation]) -> None:
        """Rename the problem's symbols ``c0, c1, …`` in the order the IR reaches them, so that
        two roots of the same shape (two neurons, two steps of a sweep) pose sympy the same
        expressions and the second is answered from the caches."""
        order: dict[Expr, None] = {}
        for v in problem.inputs:
            order[self.defs.symbol(v)] = None
            if v in problem.opened:
                order.update(dict.fromkeys(self.defs.operand(v).leaves))
        for r in relations:
            order[self.defs.symbol(r.value)] = None
            order.update(dict.fromkeys(self.defs.operand(r.value).leaves))
        rest = problem.expanded.free_symbols | problem.local.free_symbols
        order.update(dict.fromkeys(sorted(rest - set(order), key=str)))
        problem.names = {s: leaf_symbol(f"c{i}") for i, s in enumerate(order)}
        problem.back = {c: s for s, c in problem.names.items()}

    def substituted(self, expanded: Expr, relations: list[_Relation], problem: _Problem,
                    scope: _Scope) -> list[Expr]:
        """The best few forms of the expanded tree after substituting inverse relations, one
        kernel family after another (in canonical names)."""
        named = [(kernel_key(r.kernel.xreplace(problem.names)), r.kernel.xreplace(problem.names),
                  r.inverse.xreplace(problem.names)) for r in relations]
        beam = [expanded]
        for key in sorted(dict.fromkeys(key for key, _, _ in named), key=str):
            if time.perf_counter() > self.deadline:
                break
            grown = beam + [eliminate(c, k, g)
                            for c in beam for key2, k, g in named if key2 == key]
            beam = self.best(list(dict.fromkeys(grown)), problem, scope)
        return beam

    def relations(self, keys: frozenset, scope: _Scope, problem: _Problem) -> list[_Relation]:
        """Inverse relations from values in scope that share a kernel with the root, the
        simplest first (ties: the root's inputs, then the nearest values)."""
        order = dict.fromkeys(v for v in problem.inputs if v in scope.values)
        for key in sorted(keys, key=str):
            order.update(dict.fromkeys(v for v in reversed(self.by_key.get(key, ()))
                                       if v in scope.values))
        found = [r for v in order for r in self.defs.inverses(v) if r.key in keys]
        found = sorted(enumerate(found), key=lambda r: (size(r[1].inverse), r[0]))
        return [relation for _, relation in found[:MAX_RELATIONS]]

    def best(self, exprs: list[Expr], problem: _Problem, scope: _Scope) -> list[Expr]:
        """The ``BEAM`` cheapest, each scored by its best form (an expanded polynomial in
        ``s`` costs more than the factored ``s·(1 − s)`` it equals)."""
        scored = []
        for i, e in enumerate(exprs):
            costs = [self.cost(f.xreplace(problem.back), problem, scope)
                     for f in forms(e, MAX_FORM_SIZE)]
            scored.append((min(costs), i, e))
        return [e for _, _, e in sorted(scored, key=lambda s: s[:2])[:BEAM]]

    def cost(self, e: Expr, problem: _Problem, scope: _Scope) -> float:
        plan = self.plan(e, scope)
        if plan is None:
            return float("inf")
        return plan.op_cost() + self.keep_cost(plan.used, problem)

    def plan(self, e: Expr, scope: _Scope) -> Plan | None:
        try:
            return lower(e, scope.lookup, scope.negated, self.defs.constants)
        except Unlowerable:
            return None

    # ----------------------------------------------------------------------- cost and checks

    def keep_cost(self, used: Any, problem: _Problem) -> float:
        """What keeping ``used`` alive costs, beyond what other users already pay."""
        total = 0.0
        for v in used:
            if self.uses[v] - problem.inputs.get(v, 0) > 0:
                continue
            op = self.facts.producer.get(v)
            if op is not None and op.prim is Prim.POP:
                total += POP_COST
            elif op is not None and op.prim in OP_COST:
                total += OP_COST[op.prim]
            else:
                total += PARAM_COST
        return total

    def safe(self, plan: Plan, problem: _Problem) -> bool:
        """No division by, nor log/sqrt/... of, anything the original tree did not already use
        that way: a rewrite must not create a pole or a domain error. (Compared by value at the
        sample points, up to sign for divisors.)"""
        known = [(kind, self.fingerprint(e)) for kind, e in problem.partial]
        for kind, arg in plan.partial:
            if kind == "div" and self.defs.is_constant(arg) and self.fingerprint(arg)[0] != 0:
                continue
            mine = self.fingerprint(arg)
            negated = [None if z is None else -z for z in mine]
            if not any(k == kind and (_close(mine, theirs) or
                                      kind == "div" and _close(negated, theirs))
                       for k, theirs in known):
                return False
        return True

    def agrees(self, candidate: Expr, problem: _Problem) -> bool:
        """Equal to the original at the sample points (a guard: each step is an identity)."""
        return _close(self.fingerprint(candidate), self.fingerprint(problem.local))

    def fingerprint(self, e: Expr) -> list[complex | None]:
        return [self.defs.sample(e, point) for point in range(SAMPLES)]

    # ----------------------------------------------------------------------- emitting

    def emit(self, plan: Plan, op: Op) -> list[Op]:
        """The plan as ops whose last result is the root itself (or a rename if none is new)."""
        root = op.result
        b = Emitter()
        b.loc = op.loc
        made: list[Value] = []
        for prim, args, const in plan.steps:
            values = [made[a] if isinstance(a, int) else a for a in args]
            made.append(b.const(const, F64) if prim is Prim.CONST else b.emit(prim, *values))
        result = made[plan.result] if isinstance(plan.result, int) else plan.result
        if b.ops and b.ops[-1].results == (result,):
            b.ops[-1] = b.ops[-1].replace(results=(root,))
        else:
            self.rename[root] = result
            self.uses[result] += self.uses[root]
        return b.ops


_DEAD = object()  # the "root" of a use by dead code: ignored


def _expression_op(op: Op) -> bool:
    """An op whose float result can sit inside a sympy expression."""
    return ((op.prim in ALGEBRAIC or op.prim is Prim.CONST) and len(op.results) == 1
            and op.results[0].type is F64)


def _partial(prim: Prim, args: list[Expr]) -> list[tuple[str, Expr]]:
    """What ``prim`` applied to ``args`` divides by, or takes a log, root, ... of."""
    kind = PARTIAL.get(prim)
    if kind is None:
        return []
    if prim is Prim.DIV:
        return [("div", args[1])]
    if prim is Prim.LOG1P:
        return [("log", 1 + args[0])]
    if prim is Prim.POW:
        return [("pow", args[0]), ("div", args[0])]
    return [(kind, args[0])]


def _close(mine: list[complex | None], theirs: list[complex | None]) -> bool:
    """Equal at every sample point where both are finite (and at one point at least)."""
    pairs = [(a, b) for a, b in zip(mine, theirs) if a is not None and b is not None]
    return bool(pairs) and all(abs(a - b) <= 1e-9 * (1 + abs(a) + abs(b)) for a, b in pairs)


def _leaf_value(name: str, point: int) -> float:
    """A value in (0.3, 0.7), fixed by the symbol's name (crc32: stable across processes)."""
    return 0.3 + 0.4 * ((zlib.crc32(name.encode()) + 7919 * point) % 997) / 997
