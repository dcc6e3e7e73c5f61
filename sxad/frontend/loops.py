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

from ..ir import BOOL, I64, Prim, Type, Value, dtype_of, is_array
from ..prims import Emitter
from .expressions import straight_line
from .promotion import join_types, merge_message
from .scope import assigned_names, has_break, has_return
from .state import Stale, State, Unbound, flat_env, get_path, set_path
from .subscripts import DynamicTupleIndex
from .statements import Statements

_UNROLL = 256  # the most iterations a loop indexing a tuple is unrolled to
_ATTEMPTS = 8  # widenings (at most two), the return type, arrays that may share memory


@dataclass(frozen=True)
class Plan:
    """What a loop carries: variables (with their types), flags, the return value."""

    names: tuple[str, ...]
    types: tuple[Type, ...]
    breaks: bool
    returns: bool
    ret_types: tuple[Type, ...]
    # (alias, name): the alias shares the name's slot, holding the same value before the loop
    # and after each iteration (``V = W`` updated in place, the hidden state of an argument)
    aliases: tuple[tuple[str, str], ...] = ()
    # Carried arrays that are not the same array object on every trip (``h = x`` before the
    # loop, ``h = f(h)`` in it): the objects from before the loop, and the other carried names,
    # each may share memory with (objects.py)
    loose: tuple[tuple[str, frozenset[Value], frozenset[str]], ...] = ()
    # Names an in-place update in the body leaves unknown (from the second trip on, and after)
    stale: tuple[tuple[str, Stale], ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        return (("broke",) if self.breaks else ()) + (("returned",) if self.returns else ())

    def layout(self, head: Sequence[tuple[str, Type]]) -> list[tuple[str, Type]]:
        """(hint, type) of each carried slot: head, flags, return value, variables."""
        return [*head, *((f, BOOL) for f in self.flags), *(("ret", t) for t in self.ret_types),
                *zip(map(_hint, self.names), self.types)]

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
        if not self.is_range(node.iter):
            return self.unrolled(node, st)
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "only a single name can be the target of a `for` loop "
                                          "over a `range`")
        lo, hi, step = self.range_bounds(node.iter)
        try:
            return self.range_loop(node, st, lo, hi, step)
        except DynamicTupleIndex:
            bounds = [self.known(v) for v in (lo, hi, step)]
            if None in bounds or len(range(*bounds)) > _UNROLL:
                raise
        return self.unroll(node, st, [self.const(k) for k in range(*bounds)])

    def range_loop(self, node: ast.For, st: State, lo: Value, hi: Value, step: Value,
                   rows: str | None = None) -> State:
        """``for i in range(lo, hi, step)``; with ``rows``, ``for row in rows`` (the target is
        bound to ``rows[i]``)."""
        plan = self.plan(node, st, node.target.id)
        if plan.breaks or plan.returns:
            return self.for_as_while(node, st, plan, lo, hi, step, rows)
        target = node.target.id

        def attempt(plan: Plan) -> Attempt:
            i = Value(I64, "i" if rows is not None else target)
            params = [Value(t, _hint(n)) for n, t in zip(plan.names, plan.types)]
            body = self.child([i, *params])
            entry = self.entry(st, plan, params, None)
            with self.into(body):
                entry.bind(target, self.item(i, rows, entry), self.src.loc(node.target))
                end = self.stmts(node.body, entry)
            return Attempt(body, end, [])

        done, plan = self.settle(node, st, plan, attempt)
        with self.into(done.body):
            yields = [self.convert(v, t) if isinstance(v, Value) else self.zero_of(t)
                      for v, t in ((get_path(done.end.env, n), t)   # stale: never read
                                   for n, t in zip(plan.names, plan.types))]
        inits = [self.convert(get_path(st.env, n), t) for n, t in zip(plan.names, plan.types)]
        results = self.b.op(Prim.FOR, [lo, hi, step, *inits], plan.types,
                            regions=[done.body.finish(yields)],
                            hints=[_hint(n) for n in plan.names])
        return self.exit(node, st, plan, results, done.end)

    def item(self, i: Value, rows: str | None, entry: State) -> Value:
        """The loop index, or row ``i`` of the array iterated over (held by the hidden name
        ``rows``, so that in-place updates in the body reach it): a view, as numpy's."""
        if rows is None:
            return i
        array = entry.env[rows]
        if isinstance(array, Stale):
            raise self.fail(array.message)
        row = self.b.index(array, i, spec=("i",), hint="row")
        return self.mark_view(row, "a row of the array a `for` loop iterates over")

    def is_range(self, it: ast.expr) -> bool:
        return isinstance(it, ast.Call) and self.is_static(it.func) and \
            self.python_object(it.func) is range

    def unrolled(self, node: ast.For, st: State) -> State:
        """``for W, b in zip(Ws, bs)`` (and ``for t in tup``, ``enumerate(tup)``) over tuples,
        whose length is known: the body once per item."""
        try:
            items = self.tuple_items(node.iter)
        except _Rows as rows:   # `for row in X`: a loop over X's first axis
            if not isinstance(node.target, ast.Name) or rows.array.type.rank == 0:
                raise self.error(node.target, "a loop over an array needs a vector or more, "
                                              "and a single name as its target") from None
            hidden = f"#rows{sum(name.startswith('#rows') for name in st.env)}"
            st.env[hidden] = rows.array   # numpy reads each row when the loop gets to it
            out = self.range_loop(node, st, self.const(0), self.b.dim(rows.array, axis=0),
                                  self.const(1), hidden)
            out.env.pop(hidden, None)
            return out
        return self.unroll(node, st, items)

    def unroll(self, node: ast.For, st: State, items: list) -> State:
        """The body once per item, the target bound to it."""
        if has_break(node.body) or has_return(node.body) or any(
                isinstance(n, ast.Continue) for n in ast.walk(ast.Module(node.body, []))):
            raise self.error(node, "`break`, `continue` and `return` are not supported in a loop "
                                   "that sxad unrolls (over a tuple, or indexing one)")
        for item in items:
            if st.dead:
                break
            with self.located(node.target):
                self.assign(node.target, item, st, len(self.b.ops), {})
            st = self.stmts(node.body, st)
        return st

    def tuple_items(self, it: ast.expr) -> list:
        """The items a loop over a tuple visits: ``t``, ``zip(t, u)``, ``enumerate(...)``,
        ``reversed(...)``, nested."""
        fn = self.python_object(it.func) if isinstance(it, ast.Call) and \
            self.is_static(it.func) else None
        if fn in (zip, enumerate, reversed):
            if it.keywords or (fn is not zip and len(it.args) != 1):
                raise self.error(it, f"only `{fn.__name__}(...)` of tuples is supported here")
            try:
                parts = [list(self.tuple_items(a)) for a in it.args]
            except _Rows:
                raise self.error(it, f"`{fn.__name__}` is supported over tuples only; loop over "
                                     f"`range(len(x))` for arrays") from None
            if fn is enumerate:
                return [(self.const(k), x) for k, x in enumerate(parts[0])]
            if fn is reversed:
                return parts[0][::-1]
            return [tuple(items) for items in zip(*parts)]
        seq = self.expr(it)
        if isinstance(seq, tuple):
            return list(seq)
        if is_array(seq.type):
            raise _Rows(seq)
        raise self.error(it, "`for` loops are only supported over `range(...)`, tuples and "
                             "arrays")

    def range_bounds(self, it: ast.expr) -> tuple[Value, Value, Value]:
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise self.error(it, "range() takes 1 to 3 positional arguments")
        bounds = []
        for arg in it.args:
            v = self.value(arg)
            if is_array(v.type):
                raise self.error(arg, f"range() needs int bounds (this one is an array, {v.type})")
            if dtype_of(v.type).is_float:
                raise self.error(arg, "range() needs int bounds (this one is a float)")
            bounds.append(self.convert(v, I64))
        if len(bounds) == 1:
            bounds.insert(0, self.const(0))
        if len(bounds) == 2:
            bounds.append(self.const(1))
        if self.known(bounds[2]) == 0:
            raise self.error(it.args[2], "range() step must not be zero")
        return bounds[0], bounds[1], bounds[2]

    def for_as_while(self, node: ast.For, st: State, plan: Plan, lo: Value, hi: Value,
                     step: Value, rows: str | None = None) -> State:
        """``for i in range(lo, hi, step)`` that may stop early: a ``while`` over the index."""
        target = node.target.id
        index = "i" if rows is not None else target

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
            entry.bind(target, self.item(i, rows, entry), self.src.loc(node.target))
            end = self.stmts(node.body, entry)
            return end, [self.b.add(i, step, hint=index)]

        return self.while_op(node, st, plan, [(index, I64, lo)], test, body, forever=False)

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
        inits += [self.zero_of(t) for t in plan.ret_types]
        inits += [self.convert(get_path(st.env, n), t) for n, t in zip(plan.names, plan.types)]
        types = [t for _, t in plan.layout(shape)]
        results = self.b.op(Prim.WHILE, inits, types,
                            regions=[done.cond.finish([done.test]), done.body.finish(yields)],
                            hints=[h for h, _ in plan.layout(shape)])
        _, flags, ret, variables = plan.split(results, len(head))
        out = self.exit(node, st, plan, variables, done.end)
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
            with self.located(node):
                wider = self.widened(plan, done.end, st)
            if wider == plan:
                return done, plan
            plan = wider
        raise self.error(node, "the types of the variables this loop changes do not settle")

    def widened(self, plan: Plan, end: State, st: State) -> Plan:
        """The plan joined with what the body yields; names the body changed without assigning
        them (an array updated in place through another name) become carried too."""
        names, types = list(plan.names), []
        for name, t in zip(plan.names, plan.types):
            v = get_path(end.env, name)
            if isinstance(v, Value):
                joined = join_types(t, v.type)
                if joined is None:
                    raise self.fail(merge_message(name, t, v.type) + " (here: before this loop "
                                    "and after one iteration)")
                t = joined
            elif isinstance(v, tuple):
                raise self.fail(_TUPLE_CARRIED.format(name=name))
            types.append(t)
        aliases = []
        for alias, name in plan.aliases:
            if get_path(end.env, alias) is get_path(end.env, name):
                aliases.append((alias, name))
            else:   # they went separate ways: a slot of its own
                names.append(alias)
                types.append(get_path(st.env, alias).type)
        aliased = {alias for alias, _ in aliases}
        for name, before in flat_env(st.env):
            after = get_path(end.env, name)
            if name in names or name in aliased or after is before or end.dead or \
                    not isinstance(before, Value) or \
                    isinstance(end.env.get(name.split(".")[0]), Stale):
                continue
            if not isinstance(after, Value):   # a tuple of another shape, or unbound
                if "." in name or isinstance(after, tuple):
                    raise self.fail(_TUPLE_CARRIED.format(name=name.split(".")[0]))
                continue
            twin = next((n for n in names if get_path(st.env, n) is before and
                         get_path(end.env, n) is after), None)
            if twin is not None:
                aliases.append((name, twin))
                continue
            names.append(name)
            types.append(before.type)
        returns = plan.returns and self.returns.types is not None  # None: every return folded
        stale = {name: v for name, v in end.env.items() if isinstance(v, Stale) and
                 isinstance(st.env.get(name), (Value, tuple))} if not end.dead else {}
        stale.update(plan.stale)
        return replace(plan, names=tuple(names), types=tuple(types), returns=returns,
                       ret_types=tuple(self.returns.types) if returns else (),
                       aliases=tuple(aliases), stale=tuple(sorted(stale.items())),
                       loose=self.loose(plan, names, end, st))

    def loose(self, plan: Plan, names: list[str], end: State,
              st: State) -> tuple[tuple[str, frozenset[Value], frozenset[str]], ...]:
        """The carried arrays that may hold another array object than before the loop after a
        trip (or share memory with one), and what each may share memory with."""
        shared = self.shared
        outer = frozenset().union(*(shared.sharing(v) for _, v in flat_env(st.env)))
        found = {name: (objs, others) for name, objs, others in plan.loose}
        after = {n: shared.sharing(get_path(end.env, n)) for n in names} if not end.dead else {}
        for name, objects in after.items():
            before = get_path(st.env, name)
            if not objects:
                continue
            mine = frozenset(shared.carried[o] for o in objects if o in shared.carried) - {name}
            mine |= {other for other, theirs in after.items() if other != name and
                     (objects & theirs) - outer}   # an array made in the body, held by both
            exact = shared.object_of(get_path(end.env, name)) is shared.object_of(before) \
                and objects & outer <= shared.sharing(before) and not mine
            if exact and name not in found:
                continue
            objs, others = found.get(name, (frozenset(), frozenset()))
            found[name] = (objs | (objects & outer) | shared.sharing(before), others | mine)
        return tuple(sorted((n, objs, others) for n, (objs, others) in found.items()))

    def entry(self, st: State, plan: Plan, params: Sequence[Value],
              ret: tuple[Value, ...] | None) -> State:
        """The state at the top of the body (or condition): carried names are the params."""
        entry = State(dict(st.env), ret=ret, where=dict(st.where))
        loose = {name: (objs, others) for name, objs, others in plan.loose}
        for name, p in zip(plan.names, params):
            before = get_path(st.env, name)
            if is_array(p.type) and isinstance(before, Value):
                if name in loose:   # an array object of its own, maybe sharing memory
                    self.shared.carried[p] = name
                else:               # the same array object
                    self.shared.objects[p] = self.shared.object_of(before)
                    if before in self.shared.maybe:
                        self.shared.maybe[p] = self.shared.maybe[before]
                if before in self.shared.views:
                    self.shared.views[p] = self.shared.views[before]
            set_path(entry.env, name, p)
        self._share_loose(plan, dict(zip(plan.names, params)))
        for alias, name in plan.aliases:
            set_path(entry.env, alias, get_path(entry.env, name))
        for name, stale in plan.stale:
            set_path(entry.env, name, stale)
        return entry

    def _share_loose(self, plan: Plan, values: dict[str, Value]) -> None:
        """What each loose carried value (a param, or the loop's result) may share memory
        with: the objects of ``plan.loose``, and the other carried values it names."""
        for name, objs, others in plan.loose:
            v = values.get(name)
            if isinstance(v, Value):
                self.shared.maybe[v] = objs | frozenset(
                    self.shared.object_of(values[o]) for o in others if o in values)

    def carried_out(self, end: State, plan: Plan) -> list[Value]:
        """What the body yields after its head slots: flags, return value, variables."""
        out = [self.const(f) if isinstance(f, bool) else f
               for f in (end.flags[name] for name in plan.flags)]
        ret = end.ret or ()
        out += [self.convert(ret[k], t) if k < len(ret) else self.const(0, t)
                for k, t in enumerate(plan.ret_types)]
        for name, t in zip(plan.names, plan.types):
            v = get_path(end.env, name)
            out.append(self.convert(v, t) if isinstance(v, Value) else self.zero_of(t))
        return out

    def exit(self, node: ast.For | ast.While, st: State, plan: Plan,
             results: Sequence[Value], end: State) -> State:
        """The state after the loop: carried names are its results; names first assigned in
        the body (and a ``for`` target not carried) may be unbound."""
        out = st.copy()
        carried = {n.split(".")[0] for n in (*plan.names, *(a for a, _ in plan.aliases))}
        for name, first in assigned_names(node.body).items():
            if name not in carried:
                out.env[name] = Unbound(self.src.loc(first))
        if isinstance(node, ast.For) and node.target.id not in carried:
            out.env[node.target.id] = Unbound(self.src.loc(node.target))
        loose = {name for name, _, _ in plan.loose}
        for name, value in zip(plan.names, results):
            set_path(out.env, name, value)
            obj = self._same_object(get_path(st.env, name), get_path(end.env, name))
            if obj is not None and name not in loose:  # updated in place: the same object
                self.shared.objects[value] = obj
            before = get_path(st.env, name)
            if name not in loose and before in self.shared.maybe:
                self.shared.maybe[value] = self.shared.maybe[before]
        self._share_loose(plan, dict(zip(plan.names, results)))
        for alias, name in plan.aliases:
            set_path(out.env, alias, get_path(out.env, name))
        for name, stale in plan.stale:
            set_path(out.env, name, stale)
        return out


def _hint(name: str) -> str:
    """A value hint for a carried name (hidden names are ``#W``, ``#params[0]``)."""
    return name.lstrip("#").replace(".", "_").replace("[", "_").replace("]", "")


class _Rows(Exception):
    """The iterable of a `for` loop is an array."""

    def __init__(self, array: Value) -> None:
        self.array = array


_TUPLE_CARRIED = ("the tuple `{name}` changes inside this loop; sxad carries only numbers and "
                  "arrays from one iteration to the next: unpack it before the loop "
                  "(`W, b = {name}`) and carry the parts")
