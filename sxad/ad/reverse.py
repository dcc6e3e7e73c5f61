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

What goes on the tape is only what the reverse reads (docs/ARRAYS.md §3). An adjoint rule runs
on stand-ins for the primal values (``_Asked``); then each is bound by what the emitted ops do
with it: its elements read → ``_Scope.primal``; only its shape (``Rule.shape_only``: ``like``
operands, ``zeros_like``, ``dim``) → ``_Scope.shape_of``, which answers with the value where it
is visible, else a value provably of the same shape from around the region
(``common.shape_sources``: the loop-carried value of ``x = set_index(x, …)`` has the shape of
the loop's initial ``x``), else ``full(0, dims…)`` with the dims (i64) on the tape; unused →
nothing. The adjoint of ``x[idx]`` is added into an existing x̄ in place
(``set_index(x̄, x̄[idx] + ct, idx…)``) rather than as a dense ``index_add``, unless the spec has
integer-array items, whose positions may repeat.

Differentiating a derivative program again (reverse over reverse): the adjoint of ``v = pop()``
is pushed where the reverse sweep reaches the pop and popped where it reaches the matching
push, on that pair's tape; the reverse of a reversed loop runs forwards; and this transform's
own entries go on a tape of their own (push/pop attr ``tape``, ``common.next_tape``), each tape
being a separate LIFO stack. On one shared stack the new entries pushed in the inner forward
loop would lie on top of the inner entries that the inner reverse loop pops next.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from ..ir import EFFECTS, I64, Block, Func, Op, Prim, Value, dtype_of, is_array
from ..prims import Emitter, rule_attrs, rule_for
from .activity import active
from .common import (defined_in, max_slot, named, next_tape, shape_sources, suffixed, tape_attrs,
                     tape_of)
from .shift import shift_edges


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
    tape: int = 0                                   # the tape this transform's entries use
    same_shape: dict[Value, Value] = field(default_factory=dict)  # ``shape_sources``
    remap: dict[Value, Value] = field(default_factory=dict)
    shapes: dict[Value, Value] = field(default_factory=dict)  # value → a carrier of its shape
    pushes: list[tuple[Value, int]] = field(default_factory=list)
    extra: list[Op] = field(default_factory=list)   # forward ops computing what is pushed
    producers: dict[Value, Op] = field(default_factory=dict)

    def primal(self, value: Value) -> Value:
        """``value`` as the reverse code of this scope can see it: directly at the top level;
        else recomputed when cheap (``RECOMPUTE``, or a ``dim`` of a shape at hand), or stored
        on the tape."""
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
        elif op is not None and _reads_shapes(op) and all(map(self.shape_free, op.args)):
            args = tuple(self.shape_of(a) for a in op.args)
        else:
            return self.stored(value)
        (seen,) = self.builder.append(op.replace(args=args, results=(Value(value.type,
                                                                           value.hint),)))
        self.remap[value] = seen
        return seen

    def stored(self, value: Value) -> Value:
        """A placeholder for ``value``, pushed at the end of the forward block and popped at
        the start of its reverse."""
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

    # -------------------------------------------------------------- shapes without the values

    def shape_of(self, value: Value) -> Value:
        """A value of ``value``'s type and shape, for an operand read only for its shape
        (``Rule.shape_only``): ``value`` itself where it is visible or already at hand, else
        a value provably of the same shape from around the loop or branch (``shape_sources``),
        else an array rebuilt from ``value``'s dims, which go on the tape (i64 scalars)."""
        if self.parent is None:
            return value
        seen = self.remap.get(value) or self.shapes.get(value)
        if seen is not None:
            return seen
        if value not in self.defined:
            return self.parent.shape_of(value)
        source = self.same_shape.get(value)
        if not is_array(value.type):
            seen = self.builder.zero(value.type)
        elif source is not None:
            seen = self.shape_of(source)
        else:
            seen = self.rebuilt(value)
        self.shapes[value] = seen
        return seen

    def shape_free(self, value: Value) -> bool:
        """Whether ``shape_of(value)`` needs no new tape entry."""
        if self.parent is None or value in self.remap or value in self.shapes:
            return True
        if value not in self.defined:
            return self.parent.shape_free(value)
        source = self.same_shape.get(value)
        return not is_array(value.type) or (source is not None and self.shape_free(source))

    def rebuilt(self, value: Value) -> Value:
        """``full(0, dims…)`` with ``value``'s dims, read in the forward block and stored."""
        dims = []
        for axis in range(value.type.rank):
            dim = Value(I64, suffixed(value, f"dim{axis}"))
            self.extra.append(Op(Prim.DIM, (value,), (dim,), (("axis", axis),)))
            dims.append(self.stored(dim))
        b = self.builder
        return b.full(b.zero(dtype_of(value.type)), *dims, hint=suffixed(value, "shape"))

    def zeros(self, value: Value) -> Value:
        """A zero of ``value``'s type and shape; it reads no element of ``value``."""
        if not is_array(value.type):
            return self.builder.zero(value.type)
        return self.builder.zeros_like(self.shape_of(value))

    def pops(self) -> list[Op]:
        """The pops that define this scope's placeholders, last pushed first."""
        return [Op(Prim.POP, (), (self.remap[v],), tape_attrs(slot, self.tape))
                for v, slot in reversed(self.pushes)]


def _reads_shapes(op: Op) -> bool:
    """Whether ``op`` reads nothing of its arguments but their shapes (``dim``, ``zeros_like``)."""
    return bool(op.args) and set(range(len(op.args))) <= rule_for(op.prim).shape_only


class _Asked:
    """Stand-ins for the primal values an adjoint rule is given. After the rule has run, each
    is bound by what the rule did with it: the value itself where its elements are read, a
    shape carrier where only its shape is (``Rule.shape_only``), nothing where it is unused."""

    def __init__(self) -> None:
        self.stand_in: dict[Value, Value] = {}  # primal → stand-in

    def ask(self, value: Value) -> Value:
        if value not in self.stand_in:
            self.stand_in[value] = Value(value.type, value.hint)
        return self.stand_in[value]

    def bind(self, scope: _Scope, ops: Sequence[Op], returned: Sequence[Value | None]
             ) -> dict[Value, Value]:
        """stand-in → what replaces it (emitting recomputations and carriers into ``scope``)."""
        shape_uses: set[Value] = set()
        value_uses: set[Value] = {v for v in returned if v is not None}
        for op in ops:
            only = rule_for(op.prim).shape_only
            for k, a in enumerate(op.args):
                (shape_uses if k in only else value_uses).add(a)
        subst: dict[Value, Value] = {}
        for primal, stand_in in self.stand_in.items():
            if stand_in in value_uses:
                subst[stand_in] = scope.primal(primal)
            elif stand_in in shape_uses:
                subst[stand_in] = scope.shape_of(primal)
        return subst


def _substituted(op: Op, subst: dict[Value, Value]) -> Op:
    if not any(a in subst for a in op.args):
        return op
    return op.replace(args=tuple(subst.get(a, a) for a in op.args))


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
        self.cut = shift_edges(func)  # uses of a shift no output depends on: constants here
        self.active = active(func, wrt, outputs, self.cut)
        self.slots = itertools.count(max_slot(func.body) + 1)
        self.scopes: dict[Block, _Scope] = {}
        self.counts: dict[Op, Value] = {}  # while op → its trip count
        self.tape = next_tape(func.body)
        self.same_shape = shape_sources(func)
        # The tape ``func`` already uses (a derivative program): slot of an active pop → the
        # slot of the pair carrying its adjoint back, on the same tape.
        self.adjoint_slots = {op.attr("slot"): next(self.slots) for op in func.body.walk()
                              if op.prim is Prim.POP and op.result in self.active}
        self.holding: dict[Op, bool] = {}

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
        scope = _Scope(parent, defined_in(block), b, self.slots, self.tape, self.same_shape)
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
                if any(adj.current(r) is not None for r in op.results) or self.holds_pair(op):
                    _CONTROL[op.prim](self, op, scope, adj)
            elif op.prim is Prim.POP:
                self.reverse_pop(op, scope, adj)
            elif op.prim is Prim.PUSH:
                self.reverse_push(op, scope, adj)
            elif op.results:
                self.reverse_scalar(op, scope, adj)

    def reverse_scalar(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        ybar = adj.current(op.result)
        if ybar is None or not any(a in self.active for a in op.args):
            return
        rule = rule_for(op.prim, "reverse mode (vjp)")
        b = scope.builder
        # The rule runs on stand-ins; what it did with them decides what the scope must
        # provide: the value, only its shape, or nothing.
        asked = _Asked()
        xs, ys = [asked.ask(a) for a in op.args], [asked.ask(r) for r in op.results]
        start = len(b.ops)
        bars = list(rule.vjp(b, ybar, xs, ys, **rule_attrs(rule, op)))
        emitted = b.ops[start:]
        del b.ops[start:]
        if any((op, k) in self.cut for k in range(len(bars))):
            bars = [None if (op, k) in self.cut else c for k, c in enumerate(bars)]
            emitted = _needed(emitted, bars)
        scatters = self.scatters(op.args, bars, emitted, adj)
        emitted = [e for e in emitted if all(e is not s for s in scatters.values())]
        bars = [None if k in scatters else c for k, c in enumerate(bars)]
        kept = [a for s in scatters.values() for k, a in enumerate(s.args) if k != 1]  # not like
        subst = asked.bind(scope, emitted, [*bars, *kept])
        fresh = len(b.ops)
        for e in emitted:
            b.append(_substituted(e, subst))
        renamed: dict[Value, Value] = {}
        for k, (arg, contribution) in enumerate(zip(op.args, bars)):
            if k in scatters:
                self.scatter(b, adj, arg, _substituted(scatters[k], subst))
                continue
            if contribution is None:
                continue
            contribution = subst.get(contribution, contribution)
            contribution = renamed.get(contribution, contribution)
            if arg in self.active and adj.current(arg) is None:
                renamed[contribution] = named(b, contribution, suffixed(arg, "bar"), fresh)
                contribution = renamed[contribution]
            self.accumulate(b, adj, arg, contribution)

    def scatters(self, args: Sequence[Value], bars: Sequence[Value | None], emitted: list[Op],
                 adj: _Adjoints) -> dict[int, Op]:
        """The contributions ``index_add(ct, x, idx…)`` (the adjoint of ``x[idx]``) to add into
        ``x̄`` in place rather than as a dense array of zeros: those to an ``x`` that already
        has an adjoint, used nowhere else, without integer-array items (whose positions may
        repeat)."""
        uses: dict[Value, int] = {}
        for v in [*bars, *(a for e in emitted for a in e.args)]:
            uses[v] = uses.get(v, 0) + 1
        made = {e.results[0]: e for e in emitted if len(e.results) == 1}
        out = {}
        for k, (arg, c) in enumerate(zip(args, bars)):
            op = made.get(c)
            if op is not None and op.prim is Prim.INDEX_ADD and "a" not in op.attr("spec") \
                    and uses[c] == 1 and arg in self.active and adj.current(arg) is not None:
                out[k] = op
        return out

    def scatter(self, b: Emitter, adj: _Adjoints, value: Value, op: Op) -> None:
        """``x̄[idx] += ct`` for ``op = index_add(ct, x, idx…)``: set_index(x̄, x̄[idx] + ct)."""
        ct, _, *idx = op.args
        attrs = dict(op.attrs)
        current = adj.current(value)
        total = b.add(b.index(current, *idx, **attrs), ct)
        adj.set(value, named(b, b.set_index(current, total, *idx, **attrs), suffixed(value, "bar")))

    # ------------------------------------------------------------------ a tape being reversed
    def holds_pair(self, op: Op) -> bool:
        """Whether a control op holds a push or pop whose adjoint goes back through the tape:
        its reverse must run even if none of its results has an adjoint."""
        if op not in self.holding:
            self.holding[op] = any(o.prim in (Prim.PUSH, Prim.POP)
                                   and o.attr("slot") in self.adjoint_slots
                                   for region in op.regions for o in region.walk())
        return self.holding[op]

    def reverse_pop(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        """``v = pop()`` reversed: push v̄, for the reverse of the push to pop."""
        slot = self.adjoint_slots.get(op.attr("slot"))
        if slot is not None:
            bar = adj.current(op.result) or scope.zeros(op.result)
            scope.builder.append(Op(Prim.PUSH, (bar,), (), tape_attrs(slot, tape_of(op))))

    def reverse_push(self, op: Op, scope: _Scope, adj: _Adjoints) -> None:
        """``push(v)`` reversed: pop the adjoint its pop pushed and add it to v̄."""
        slot = self.adjoint_slots.get(op.attr("slot"))
        if slot is not None:
            value = op.args[0]
            (bar,) = scope.builder.op(Prim.POP, (), [value.type], tape_attrs(slot, tape_of(op)),
                                      hints=[suffixed(value, "bar")])
            self.accumulate(scope.builder, adj, value, bar)

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
            ys = [inner_adj.values.get(v) or incoming[k] or inner.zeros(v)
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
        outer = list(inner_adj.carried)
        ys = [inner_adj.values.get(carried[j]) or inner.zeros(carried[j]) for j in js]
        ys += [inner_adj.values[v] for v in outer]
        new_body = self.finish(inner, ys)
        new_body = Block((*new_body.params, *(inner_adj.carried[v] for v in outer)),
                         new_body.ops, new_body.yields)
        start = [adj.current(op.results[j]) or scope.zeros(op.results[j]) for j in js]
        start += [adj.current(v) or scope.zeros(v) for v in outer]
        hints = [suffixed(init[j], "bar") for j in js] + [suffixed(v, "bar") for v in outer]
        # A reversed loop (the reverse sweep of a derivative program) reverses to a forward one.
        backwards = () if op.attr("reverse") else (("reverse", True),)
        results = b.op(Prim.FOR, [*bounds, *start], [v.type for v in start], attrs=backwards,
                       regions=[new_body], hints=hints)
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
        if scope is not None:
            ops.extend(scope.extra)
            ops.extend(Op(Prim.PUSH, (value,), (), tape_attrs(slot, scope.tape))
                       for value, slot in scope.pushes)
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


def _needed(ops: Sequence[Op], roots: Sequence[Value | None]) -> list[Op]:
    """The ops (pure, as a rule emits them) that ``roots`` depend on, in order."""
    wanted = {v for v in roots if v is not None}
    kept: list[Op] = []
    for op in reversed(ops):
        if any(r in wanted for r in op.results):
            kept.append(op)
            wanted.update(op.args)
    return kept[::-1]


def _unique(values: Iterator[Value]) -> list[Value]:
    seen: dict[Value, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


_CONTROL = {Prim.IF: _Reverse.reverse_if, Prim.FOR: _Reverse.reverse_for,
            Prim.WHILE: _Reverse.reverse_while}
