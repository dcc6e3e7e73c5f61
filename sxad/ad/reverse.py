"""Reverse mode: the adjoint program.

``vjp_program(f, wrt)`` builds a function taking ``f``'s arguments followed by one cotangent per
float result, and returning ``f``'s results followed by the cotangent of each differentiated
argument. It is the forward sweep (``f`` itself, augmented to record on the tape what the reverse
sweep needs) followed by the reverse sweep.

How it is built, in two phases:

1. The reverse sweep is generated first, walking each block's ops backwards and applying each
   primitive's adjoint rule. Rules ask for primal values through ``_Scope.primal``: at the top
   level those are simply visible; inside a region (a loop body or a branch) a value defined in
   the matching forward region is recorded as *needed*, and a placeholder is returned that a
   ``pop`` at the start of the reverse region will define. A loop's index is recomputed (the
   reverse loop runs ``reversed(range(...))``), constants are re-emitted, and a ``while`` loop's
   trip count is counted by the forward sweep, so none of those go on the tape.
2. The forward sweep is rebuilt from ``f`` with a ``push`` of every needed value at the end of
   its region and an iteration counter in each ``while`` loop the reverse sweep runs backwards.

Pushes at the end of a forward region and pops at the start of the matching reverse region keep
the tape in last-in-first-out order at every nesting depth. Adjoints are accumulated in SSA form;
a reverse region hands the adjoints it changed for outer values back out: a branch yields them,
a loop carries them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from ..ir import EFFECTS, I64, Block, Func, Op, Prim, Value
from ..prims import Emitter, rule_attrs, rule_for
from .activity import active
from .common import defined_in, max_slot, named, suffixed


def vjp_program(func: Func, wrt: Sequence[int]) -> Func:
    """The adjoint program of ``func`` with respect to the arguments at positions ``wrt``."""
    return _Reverse(func, [func.params[i] for i in wrt]).build(wrt)


# Ops cheaper to run again in the reverse sweep than to store and load from the tape.
RECOMPUTE = frozenset({Prim.CONST, Prim.CAST, Prim.ADD, Prim.SUB, Prim.MUL, Prim.NEG, Prim.ABS,
                       Prim.SIGN, Prim.MAX, Prim.MIN, Prim.SELECT, Prim.LT, Prim.LE, Prim.GT,
                       Prim.GE, Prim.EQ, Prim.NE, Prim.AND, Prim.OR, Prim.NOT})
RECOMPUTE_DEPTH = 3


@dataclass
class _Scope:
    """Where reverse code for one forward block is being built."""

    parent: "_Scope | None"
    defined: set[Value]
    builder: Emitter
    slots: Iterator[int]
    remap: dict[Value, Value] = field(default_factory=dict)
    pushes: list[tuple[Value, int]] = field(default_factory=list)
    producers: dict[Value, Op] = field(default_factory=dict)

    def primal(self, value: Value) -> Value:
        """``value`` as the reverse code of this scope can see it: directly at the top level;
        else recomputed when cheap (``RECOMPUTE``), or stored on the tape."""
        if self.parent is None:
            return value
        seen = self.remap.get(value)
        if seen is not None:
            return seen
        if value not in self.defined:
            return self.parent.primal(value)
        op = self.producers.get(value)
        if op is not None and self.recomputable(op, RECOMPUTE_DEPTH):
            args = tuple(self.primal(a) for a in op.args)
            (seen,) = self.builder.append(op.replace(args=args, results=(Value(value.type,
                                                                                value.hint),)))
        else:
            seen = Value(value.type, value.hint)
            self.pushes.append((value, next(self.slots)))
        self.remap[value] = seen
        return seen

    def recomputable(self, op: Op, depth: int) -> bool:
        return op.prim in RECOMPUTE and all(self.free(a, depth - 1) for a in op.args)

    def free(self, value: Value, depth: int) -> bool:
        """Whether ``value`` is available here without a new tape entry."""
        if value in self.remap or value not in self.defined:
            return True
        op = self.producers.get(value)
        return op is not None and depth > 0 and self.recomputable(op, depth)

    def pops(self) -> list[Op]:
        """The pops that define this scope's placeholders, last pushed first."""
        return [Op(Prim.POP, (), (self.remap[v],), (("slot", slot),))
                for v, slot in reversed(self.pushes)]


@dataclass
class _Adjoints:
    """The current adjoint of each value, for the reverse code of one forward block."""

    parent: "_Adjoints | None"
    local: set[Value]      # values of the matching forward block
    is_loop: bool
    values: dict[Value, Value] = field(default_factory=dict)
    carried: dict[Value, Value] = field(default_factory=dict)  # loop: outer value → its param
    touched: list[Value] = field(default_factory=list)          # outer values changed here

    def current(self, value: Value) -> Value | None:
        seen = self.values.get(value)
        if seen is not None or value in self.local or self.parent is None:
            return seen
        if not self.is_loop:
            return self.parent.current(value)
        # A loop carries the adjoint of every outer value its body adds to.
        param = Value(value.type, suffixed(value, "bar"))
        self.carried[value] = param
        self.values[value] = param
        return param

    def set(self, value: Value, adjoint: Value) -> None:
        if value not in self.local and self.parent is not None and value not in self.touched:
            self.current(value)  # a loop must carry it even if nothing was read first
            self.touched.append(value)
        self.values[value] = adjoint


class _Reverse:
    def __init__(self, func: Func, wrt: Sequence[Value]) -> None:
        self.func = func
        outputs = [r for r in func.results if r.type.is_float]
        self.active = active(func, wrt, outputs)
        self.slots = itertools.count(max_slot(func.body) + 1)
        self.scopes: dict[Block, _Scope] = {}
        self.counts: dict[Op, Value] = {}  # while op → its trip count

    # ------------------------------------------------------------------ phase 1: reverse sweep
    def build(self, wrt: Sequence[int]) -> Func:
        func = self.func
        # An unnamed result is y (out if an argument is called y), so its cotangent is y_bar.
        unnamed = "out" if "y" in func.arg_names else "y"
        cotangents = [Value(r.type, suffixed(r, "bar", unnamed)) for r in func.results
                      if r.type.is_float]
        b = Emitter([*func.params, *cotangents])
        scope = self.scope_for(func.body, None, b)
        adj = _Adjoints(None, scope.defined, False)
        floats = [r for r in func.results if r.type.is_float]
        for result, cotangent in zip(floats, cotangents):
            self.accumulate(b, adj, result, cotangent)
        self.reverse_block(func.body, scope, adj)
        grads = [adj.current(func.params[i]) or b.zeros_like(func.params[i]) for i in wrt]
        if len(set(grads)) == len(grads):  # a value shared by two gradients keeps its name
            grads = [named(b, g, suffixed(func.params[i], "bar")) for g, i in zip(grads, wrt)]
        forward = self.augment(func.body)
        body = Block(b.params, (*forward.ops, *b.ops), (*func.results, *grads))
        names = (*func.arg_names, *(c.hint for c in cotangents))
        return Func(f"{func.name}_vjp", body, names, func.tuple_result)

    def scope_for(self, block: Block, parent: _Scope | None, b: Emitter) -> _Scope:
        scope = _Scope(parent, defined_in(block), b, self.slots)
        scope.producers = {op.result: op for op in block.ops if len(op.results) == 1
                           and not op.regions and op.prim not in EFFECTS}
        self.scopes[block] = scope
        return scope

    def accumulate(self, b: Emitter, adj: _Adjoints, value: Value, contribution: Value) -> None:
        """``value̅ += contribution`` (only for active values)."""
        if value not in self.active:
            return
        current = adj.current(value)
        if current is not None:
            contribution = named(b, b.add(current, contribution), suffixed(value, "bar"))
        adj.set(value, contribution)

    def reverse_block(self, block: Block, scope: _Scope, adj: _Adjoints) -> None:
        for op in reversed(block.ops):
            if op.prim in _CONTROL:
                if any(adj.current(r) is not None for r in op.results):
                    _CONTROL[op.prim](self, op, scope, adj)
            elif op.results and op.prim is not Prim.POP:
                self.reverse_scalar(op, scope, adj)

    def reverse_scalar(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        ybar = adj.current(op.result)
        if ybar is None or not any(a in self.active for a in op.args):
            return
        rule = rule_for(op.prim, "reverse mode (vjp)")
        b = scope.builder
        xs = [scope.primal(a) for a in op.args]
        ys = [scope.primal(r) for r in op.results]
        fresh = len(b.ops)
        renamed: dict[Value, Value] = {}
        for arg, contribution in zip(op.args, rule.vjp(b, ybar, xs, ys, **rule_attrs(rule, op))):
            if contribution is None:
                continue
            contribution = renamed.get(contribution, contribution)
            if arg in self.active and adj.current(arg) is None:
                renamed[contribution] = named(b, contribution, suffixed(arg, "bar"), fresh)
                contribution = renamed[contribution]
            self.accumulate(b, adj, arg, contribution)

    def child(self, block: Block, scope: _Scope, adj: _Adjoints, params: Sequence[Value],
              is_loop: bool) -> tuple[_Scope, _Adjoints]:
        inner = self.scope_for(block, scope, Emitter(params))
        return inner, _Adjoints(adj, inner.defined, is_loop)

    def finish(self, scope: _Scope, yields: Sequence[Value]) -> Block:
        b = scope.builder
        return Block(b.params, (*scope.pops(), *b.ops), tuple(yields))

    def reverse_if(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        b = scope.builder
        cond = scope.primal(op.args[0])
        branches = []
        for region in op.regions:
            inner, inner_adj = self.child(region, scope, adj, (), False)
            for result, value in zip(op.results, region.yields):
                seed = adj.current(result)
                if seed is not None:
                    self.accumulate(inner.builder, inner_adj, value, seed)
            self.reverse_block(region, inner, inner_adj)
            branches.append((inner, inner_adj))
        outer = _unique(v for _, a in branches for v in a.touched)
        incoming = [adj.current(v) for v in outer]
        regions = []
        for inner, inner_adj in branches:
            ib = inner.builder
            ys = [inner_adj.values.get(v) or incoming[k] or ib.zeros_like(inner.primal(v))
                  for k, v in enumerate(outer)]
            regions.append(self.finish(inner, ys))
        results = b.op(Prim.IF, [cond], [v.type for v in outer], regions=regions,
                       hints=[suffixed(v, "bar") for v in outer])
        for v, r in zip(outer, results):
            adj.set(v, r)

    def reverse_loop(self, op: Op, scope: _Scope, adj: _Adjoints, body: Block,
                     carried: Sequence[Value], init: Sequence[Value], bounds: Sequence[Value],
                     index: Value | None) -> None:
        """The reverse of a loop: ``for index in reversed(range(*bounds))`` over ``body``."""
        b = scope.builder
        # Adjoints flow through a carried value if the loop's result or its body param is
        # active: a value may feed only another carried value, never the result itself.
        js = [j for j, (r, p) in enumerate(zip(op.results, carried))
              if r in self.active or p in self.active]
        rev_index = Value(I64, index.hint if index is not None else "k")
        seeds = [Value(carried[j].type, suffixed(carried[j], "bar")) for j in js]
        inner, inner_adj = self.child(body, scope, adj, (rev_index, *seeds), True)
        if index is not None:
            inner.remap[index] = rev_index
        for j, seed in zip(js, seeds):
            self.accumulate(inner.builder, inner_adj, body.yields[j], seed)
        self.reverse_block(body, inner, inner_adj)
        ib = inner.builder
        outer = list(inner_adj.carried)
        ys = [inner_adj.values.get(carried[j]) or ib.zeros_like(inner.primal(carried[j]))
              for j in js]
        ys += [inner_adj.values[v] for v in outer]
        new_body = self.finish(inner, ys)
        new_body = Block((*new_body.params, *(inner_adj.carried[v] for v in outer)),
                         new_body.ops, new_body.yields)
        start = [adj.current(op.results[j]) or b.zeros_like(scope.primal(op.results[j]))
                 for j in js]
        start += [adj.current(v) or b.zeros_like(scope.primal(v)) for v in outer]
        hints = [suffixed(init[j], "bar") for j in js] + [suffixed(v, "bar") for v in outer]
        results = b.op(Prim.FOR, [*bounds, *start], [v.type for v in start],
                       attrs=[("reverse", True)], regions=[new_body], hints=hints)
        for v, r in zip(outer, results[len(js):]):
            adj.set(v, r)
        for j, r in zip(js, results):
            self.accumulate(b, adj, init[j], r)

    def reverse_for(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        body = op.regions[0]
        bounds = [scope.primal(a) for a in op.args[:3]]
        self.reverse_loop(op, scope, adj, body, body.params[1:], op.args[3:], bounds,
                          body.params[0])

    def reverse_while(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        count = Value(I64, "n_iter")
        self.counts[op] = count
        scope.defined.add(count)
        b = scope.builder
        bounds = [b.const(0), scope.primal(count), b.const(1)]
        body = op.regions[1]
        self.reverse_loop(op, scope, adj, body, body.params, op.args, bounds, None)

    # ------------------------------------------------------------------ phase 2: forward sweep
    def augment(self, block: Block) -> Block:
        """``block`` with pushes of what its reverse needs, and counters in ``while`` loops."""
        ops: list[Op] = []
        for op in block.ops:
            if op.prim is Prim.WHILE and op in self.counts:
                ops.extend(self.counted_while(op))
            elif op.regions:
                ops.append(op.replace(regions=tuple(self.augment(r) for r in op.regions)))
            else:
                ops.append(op)
        scope = self.scopes.get(block)
        for value, slot in (scope.pushes if scope else ()):
            ops.append(Op(Prim.PUSH, (value,), (), (("slot", slot),)))
        return Block(block.params, tuple(ops), block.yields)

    def counted_while(self, op: Op) -> list[Op]:
        """``op`` counting its iterations into ``self.counts[op]``."""
        zero, one = Value(I64), Value(I64)
        k_cond, k_body, k_next = Value(I64, "k"), Value(I64, "k"), Value(I64, "k")
        cond, body = (self.augment(r) for r in op.regions)
        cond = Block((*cond.params, k_cond), cond.ops, cond.yields)
        step = (Op(Prim.CONST, (), (one,), (("value", 1),)),
                Op(Prim.ADD, (k_body, one), (k_next,)))
        body = Block((*body.params, k_body), (*body.ops, *step), (*body.yields, k_next))
        return [Op(Prim.CONST, (), (zero,), (("value", 0),)),
                op.replace(args=(*op.args, zero), results=(*op.results, self.counts[op]),
                           regions=(cond, body))]


def _unique(values: Iterator[Value]) -> list[Value]:
    seen: dict[Value, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


_CONTROL = {Prim.IF: _Reverse.reverse_if, Prim.FOR: _Reverse.reverse_for,
            Prim.WHILE: _Reverse.reverse_while}
