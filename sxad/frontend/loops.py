"""Lowering ``for`` and ``while`` loops.

A variable assigned in the body and bound before the loop is carried (region params in, results
out). Carried types must be fixed, so the body is lowered, the types it yields are joined with
the ones assumed, and the body is lowered again until they agree (a fixed point; bool < int <
float bounds the widenings). A loop with no ``break`` or ``return`` inside stays lean: a ``for``
op, or a ``while`` op on the user's test. Otherwise the loop carries flags ``broke`` and
``returned`` (and the return value), its condition stops once one is set, and a ``for`` loop
becomes a ``while`` loop over its index. ``continue`` needs no carried flag: it only guards the
rest of the body.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from ..ir import BOOL, I64, F64, Prim, Type, Value, join
from ..prims import Emitter
from .expressions import straight_line
from .scope import assigned_names, has_break, has_return
from .state import State, Unbound
from .statements import Statements

_ATTEMPTS = 6  # widenings (at most two) plus discovering the return type


@dataclass(frozen=True)
class Plan:
    """What a loop carries: variables (with their types), flags, the return value."""

    names: tuple[str, ...]
    types: tuple[Type, ...]
    breaks: bool
    returns: bool
    ret_types: tuple[Type, ...]

    @property
    def flags(self) -> tuple[str, ...]:
        return (("broke",) if self.breaks else ()) + (("returned",) if self.returns else ())

    def layout(self, head: Sequence[tuple[str, Type]]) -> list[tuple[str, Type]]:
        """(hint, type) of each carried slot: head, flags, return value, variables."""
        return [*head, *((f, BOOL) for f in self.flags), *(("ret", t) for t in self.ret_types),
                *zip(self.names, self.types)]

    def split(self, values: Sequence, n_head: int) -> tuple[list, list, list, list]:
        a, b = n_head, n_head + len(self.flags)
        c = b + len(self.ret_types)
        return list(values[:a]), list(values[a:b]), list(values[b:c]), list(values[c:])


@dataclass
class Attempt:
    body: Emitter
    end: State
    head_yields: list[Value]
    cond: Emitter | None = None
    test: Value | None = None


class Loops(Statements):

    # ----------------------------------------------------------------------- for

    def stmt_For(self, node: ast.For, st: State) -> State:
        if node.orelse:
            raise self.error(node, "`for ... else` is not supported")
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "only a single name can be the target of a `for` loop")
        lo, hi, step = self.range_bounds(node.iter)
        plan = self.plan(node, st, node.target.id)
        if plan.breaks or plan.returns:
            return self.for_as_while(node, st, plan, lo, hi, step)
        target = node.target.id

        def attempt(plan: Plan) -> Attempt:
            i = Value(I64, target)
            params = [Value(t, n) for n, t in zip(plan.names, plan.types)]
            body = self.child([i, *params])
            entry = self.entry(st, plan, params, None)
            entry.bind(target, i, self.src.loc(node.target))
            with self.into(body):
                end = self.stmts(node.body, entry)
            return Attempt(body, end, [])

        done, plan = self.settle(node, st, plan, attempt)
        with self.into(done.body):
            yields = [self.convert(done.end.env[n], t) for n, t in zip(plan.names, plan.types)]
        inits = [self.convert(st.env[n], t) for n, t in zip(plan.names, plan.types)]
        results = self.b.op(Prim.FOR, [lo, hi, step, *inits], plan.types,
                            regions=[done.body.finish(yields)], hints=plan.names)
        return self.exit(node, st, plan, results)

    def range_bounds(self, it: ast.expr) -> tuple[Value, Value, Value]:
        if not (isinstance(it, ast.Call) and isinstance(it.func, (ast.Name, ast.Attribute))
                and not self._is_variable(it.func) and self.python_object(it.func) is range):
            raise self.error(it, "`for` loops are only supported over `range(...)`")
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise self.error(it, "range() takes 1 to 3 positional arguments")
        bounds = []
        for arg in it.args:
            v = self.value(arg)
            if v.type is F64:
                raise self.error(arg, "range() needs int bounds (this one is a float)")
            bounds.append(self.convert(v, I64))
        if len(bounds) == 1:
            bounds.insert(0, self.const(0))
        if len(bounds) == 2:
            bounds.append(self.const(1))
        if self.known(bounds[2]) == 0:
            raise self.error(it.args[2], "range() step must not be zero")
        return bounds[0], bounds[1], bounds[2]

    def _is_variable(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and (node.id in self.st.env or node.id in self.locals)

    def for_as_while(self, node: ast.For, st: State, plan: Plan, lo: Value, hi: Value,
                     step: Value) -> State:
        """``for i in range(lo, hi, step)`` that may stop early: a ``while`` over the index."""
        target = node.target.id

        def test(head: list[Value]) -> Value:
            (i,) = head
            direction = self.known(step)
            if direction is not None:
                return self.b.lt(i, hi) if direction > 0 else self.b.gt(i, hi)
            zero = self.const(0)
            up = self.b.and_(self.b.gt(step, zero), self.b.lt(i, hi))
            down = self.b.and_(self.b.lt(step, zero), self.b.gt(i, hi))
            return self.b.or_(up, down)

        def body(entry: State, head: list[Value]) -> tuple[State, list[Value]]:
            (i,) = head
            entry.bind(target, i, self.src.loc(node.target))
            end = self.stmts(node.body, entry)
            return end, [self.b.add(i, step, hint=target)]

        return self.while_op(node, st, plan, [(target, I64, lo)], test, body, forever=False)

    # ----------------------------------------------------------------------- while

    def stmt_While(self, node: ast.While, st: State) -> State:
        if node.orelse:
            raise self.error(node, "`while ... else` is not supported")
        constant = node.test.value if isinstance(node.test, ast.Constant) else None
        if isinstance(node.test, ast.Constant) and not constant:
            return st  # `while False:` never runs
        plan = self.plan(node, st, None)

        def test(head: list[Value]) -> Value:
            return self.truthy(self.value(node.test))

        def body(entry: State, head: list[Value]) -> tuple[State, list[Value]]:
            return self.stmts(node.body, entry), []

        return self.while_op(node, st, plan, [], test, body, forever=bool(constant))

    def while_op(self, node: ast.stmt, st: State, plan: Plan,
                 head: list[tuple[str, Type, Value]],
                 test: Callable[[list[Value]], Value],
                 body: Callable[[State, list[Value]], tuple[State, list[Value]]],
                 forever: bool) -> State:
        """A ``while`` op carrying ``head`` slots, the plan's flags, return value and variables;
        ``test`` gives the user's condition, which stops being evaluated once a flag is set."""
        shape = [(h, t) for h, t, _ in head]

        def attempt(plan: Plan) -> Attempt:
            layout = plan.layout(shape)
            cparams = [Value(t, h) for h, t in layout]
            bparams = [Value(t, h) for h, t in layout]
            cond, loop = self.child(cparams), self.child(bparams)
            c_head, c_flags, _, c_vars = plan.split(cparams, len(head))
            with self.into(cond, self.entry(st, plan, c_vars, None)):
                value = self.loop_test(c_flags, lambda: test(c_head))
            b_head, _, b_ret, b_vars = plan.split(bparams, len(head))
            entry = self.entry(st, plan, b_vars, tuple(b_ret) if plan.ret_types else None)
            with self.into(loop, entry):
                end, head_yields = body(entry, b_head)
            return Attempt(loop, end, head_yields, cond, value)

        done, plan = self.settle(node, st, plan, attempt)
        with self.into(done.body):
            yields = [*done.head_yields, *self.carried_out(done.end, plan)]
        inits = [init for _, _, init in head]
        inits += [self.const(False) for _ in plan.flags]
        inits += [self.const(0, t) for t in plan.ret_types]
        inits += [self.convert(st.env[n], t) for n, t in zip(plan.names, plan.types)]
        types = [t for _, t in plan.layout(shape)]
        results = self.b.op(Prim.WHILE, inits, types,
                            regions=[done.cond.finish([done.test]), done.body.finish(yields)],
                            hints=[h for h, _ in plan.layout(shape)])
        _, flags, ret, variables = plan.split(results, len(head))
        out = self.exit(node, st, plan, variables)
        if plan.returns:
            returned = dict(zip(plan.flags, flags))["returned"]
            out.flags["returned"] = True if forever and not plan.breaks else returned
            out.ret = tuple(ret)
        return out

    def loop_test(self, flags: list[Value], test: Callable[[], Value]) -> Value:
        """The loop condition: ``test()``, unless a carried flag says the loop has stopped."""
        if not flags:
            return test()
        stop = flags[0]
        for flag in flags[1:]:
            stop = self.b.or_(stop, flag)
        scratch = self.child()
        with self.into(scratch):
            value = test()
        if straight_line(scratch.ops):
            for op in scratch.ops:
                self.b.append(op)
            known = self.static_bool(value)
            go = self.b.not_(stop)
            return go if known is True else self.b.and_(go, value)
        stopped = self.child()
        with self.into(stopped):
            false = self.const(False)
        return self.b.op(Prim.IF, [stop], [BOOL],
                         regions=[stopped.finish([false]), scratch.finish([value])])[0]

    # ----------------------------------------------------------------------- shared parts

    def plan(self, node: ast.For | ast.While, st: State, target: str | None) -> Plan:
        assigned = assigned_names(node.body)
        names = tuple(n for n, v in st.env.items()
                      if isinstance(v, Value) and (n in assigned or n == target))
        returns = has_return(node.body)
        ret_types = (self.returns.types or ()) if returns else ()
        return Plan(names, tuple(st.env[n].type for n in names), has_break(node.body),
                    returns, ret_types)

    def settle(self, node: ast.stmt, st: State, plan: Plan,
               attempt: Callable[[Plan], Attempt]) -> tuple[Attempt, Plan]:
        """Lower the body until the carried types it assumes are the types it yields."""
        for _ in range(_ATTEMPTS):
            self.loops += 1
            try:
                done = attempt(plan)
            finally:
                self.loops -= 1
            wider = self.widened(plan, done.end)
            if wider == plan:
                return done, plan
            plan = wider
        raise self.error(node, "the types of the variables this loop changes do not settle")

    def widened(self, plan: Plan, end: State) -> Plan:
        types = []
        for name, t in zip(plan.names, plan.types):
            v = end.env.get(name)
            types.append(join(t, v.type) if isinstance(v, Value) else t)
        returns = plan.returns and self.returns.types is not None  # None: every return folded
        return replace(plan, types=tuple(types), returns=returns,
                       ret_types=tuple(self.returns.types) if returns else ())

    def entry(self, st: State, plan: Plan, params: Sequence[Value],
              ret: tuple[Value, ...] | None) -> State:
        """The state at the top of the body (or condition): carried names are the params."""
        entry = State(dict(st.env), ret=ret, where=dict(st.where))
        for name, p in zip(plan.names, params):
            entry.env[name] = p
        return entry

    def carried_out(self, end: State, plan: Plan) -> list[Value]:
        """What the body yields after its head slots: flags, return value, variables."""
        out = [self.const(f) if isinstance(f, bool) else f
               for f in (end.flags[name] for name in plan.flags)]
        ret = end.ret or ()
        out += [self.convert(ret[k], t) if k < len(ret) else self.const(0, t)
                for k, t in enumerate(plan.ret_types)]
        for name, t in zip(plan.names, plan.types):
            v = end.env.get(name)
            out.append(self.convert(v, t) if isinstance(v, Value) else self.const(0, t))
        return out

    def exit(self, node: ast.For | ast.While, st: State, plan: Plan,
             results: Sequence[Value]) -> State:
        """The state after the loop: carried names are its results; names first assigned in
        the body (and a ``for`` target not carried) may be unbound."""
        out = st.copy()
        for name, first in assigned_names(node.body).items():
            if name not in plan.names:
                out.env[name] = Unbound(self.src.loc(first))
        if isinstance(node, ast.For) and node.target.id not in plan.names:
            out.env[node.target.id] = Unbound(self.src.loc(node.target))
        for name, value in zip(plan.names, results):
            out.env[name] = value
        return out
