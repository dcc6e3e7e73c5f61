"""Lowering statements into structured control flow.

Each statement list is lowered against a ``State``. Early exits stay structured:

* ``if c: <always exits>`` followed by more statements: the rest moves into the other branch
  (an AST rewrite; Python means the same), so the common early ``return`` costs no flag.
* Otherwise an exit that happens only on some paths leaves a run-time flag (``continued``,
  ``broke``, ``returned``) in the state, and the rest of the list is lowered under
  ``if flag: <pass everything through> else: <rest>``.
* ``if`` merges join the branch types (with casts) and yield what either branch changed.
"""
from __future__ import annotations

import ast
from typing import Callable, Sequence

from ..ir import BOOL, Prim, Type, Value, is_array
from ..prims import Emitter
from .expressions import Result
from .objects import Objects
from .promotion import join_types, merge_message
from .scope import always_exits
from .state import FLAGS, Bound, Flag, Stale, State, Unbound

_UNSUPPORTED = {
    ast.With: "`with` statements are not supported",
    ast.AsyncWith: "`async with` statements are not supported",
    ast.Try: "`try` statements are not supported",
    ast.Raise: "`raise` statements are not supported",
    ast.Assert: "`assert` statements are not supported",
    ast.Delete: "`del` statements are not supported",
    ast.Global: "`global` declarations are not supported",
    ast.Nonlocal: "`nonlocal` declarations are not supported",
    ast.Import: "`import` inside the function is not supported",
    ast.ImportFrom: "`import` inside the function is not supported",
    ast.FunctionDef: "nested function definitions are not supported",
    ast.AsyncFunctionDef: "nested function definitions are not supported",
    ast.ClassDef: "class definitions are not supported",
    ast.AsyncFor: "`async for` loops are not supported",
    ast.Match: "`match` statements are not supported",
}
TOO_DEEP = ("this statement is nested too deeply for sxad (Python's recursion limit was reached "
            "while lowering it); split it into several assignments")
if hasattr(ast, "TryStar"):
    _UNSUPPORTED[ast.TryStar] = "`try` statements are not supported"


class Statements(Objects):
    tracked: list[str]  # hidden names holding the current state of each argument array

    # ----------------------------------------------------------------------- statement lists

    def stmts(self, body: Sequence[ast.stmt], st: State) -> State:
        for k, node in enumerate(body):
            if st.dead:
                return st  # the rest is unreachable
            if st.run_time_flags():
                with self.located(node):
                    return self.guard(body[k:], st)
            rest = body[k + 1:]
            if rest and isinstance(node, ast.If):
                folded = _fold_rest(node, rest)
                if folded is not None:
                    return self.stmt(folded, st)
            st = self.stmt(node, st)
        return st

    def stmt(self, node: ast.stmt, st: State) -> State:
        method = getattr(self, "stmt_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, _UNSUPPORTED.get(
                type(node), f"`{type(node).__name__}` statements are not supported"))
        with self.located(node), self.into(self.b, st):
            try:
                return method(node, st)
            except RecursionError:
                raise self.error(node, TOO_DEEP) from None

    def guard(self, rest: Sequence[ast.stmt], st: State) -> State:
        """``rest`` runs only where no exit flag is set: ``if flag: pass else: rest``."""
        flags = st.run_time_flags()
        cond = flags[0][1]
        for _, flag in flags[1:]:
            cond = self.b.or_(cond, flag)
        skipped = st.copy()
        if len(flags) == 1:
            skipped.flags[flags[0][0]] = True
        skipped.exited = True
        running = st.copy()
        for name, _ in flags:
            running.flags[name] = False
        return self.merge(cond, (self.child(), skipped), self.branch(rest, running))

    def branch(self, body: Sequence[ast.stmt], st: State) -> tuple[Emitter, State]:
        builder = self.child()
        with self.into(builder):
            end = self.stmts(body, st.copy())
        return builder, end

    # ----------------------------------------------------------------------- merging branches

    def merge(self, cond: Value, then: tuple[Emitter, State],
              other: tuple[Emitter, State]) -> State:
        """The state after ``if cond: then else: other``, emitting the ``if`` op that yields
        whatever differs between the branches (joined to one type, with casts)."""
        (tb, ts), (eb, es) = then, other
        merged = State({}, {}, None, ts.dead and es.dead, {**es.where, **ts.where})
        slots = _Slots()
        self._merge_env(merged, then, other, slots)
        self._merge_flags(merged, cond, then, other, slots)
        self._merge_ret(merged, then, other, slots)
        if not slots.hints:
            return merged  # the branches changed nothing read later (all ops are pure)
        results = self.b.op(Prim.IF, [cond], slots.types,
                            regions=[tb.finish(slots.then), eb.finish(slots.other)],
                            hints=slots.hints)
        for stores, obj, shares, value in zip(slots.stores, slots.objects, slots.shares,
                                              results):
            if obj is not None:
                self.shared.objects[value] = obj
            if shares - {self.shared.object_of(value)}:
                self.shared.maybe[value] = shares - {self.shared.object_of(value)}
            for store in stores:
                store(value)
        if isinstance(merged.ret, list):
            merged.ret = tuple(merged.ret)
        return merged

    def _merge_env(self, merged: State, then: tuple[Emitter, State],
                   other: tuple[Emitter, State], slots: "_Slots") -> None:
        (tb, ts), (eb, es) = then, other
        for name in dict.fromkeys([*ts.env, *es.env]):
            a, c = ts.env.get(name), es.env.get(name)
            if a is c:
                merged.env[name] = a
            elif not _bound_after(name, ts, es):
                stale = next((x for x in (a, c) if isinstance(x, Stale)), None)
                where = next((x.where for x in (a, c) if isinstance(x, Unbound) and x.where),
                             merged.where.get(name))
                merged.env[name] = stale or Unbound(where)
            else:
                live = [s.env.get(name) for s in _live(ts, es)]
                later = [s.env.get(name) for s in _read_later(ts, es)]
                self._merge_bound(name, a, c, live, (tb, eb), slots,
                                  lambda v, name=name: merged.env.__setitem__(name, v), later)

    def _merge_bound(self, name: str, a: Bound | None, c: Bound | None, live: list,
                     builders: tuple[Emitter, Emitter], slots: "_Slots",
                     store: Callable[[Bound], None], later: Sequence[object] = ()) -> None:
        """One variable's merged value: an ``if`` result per differing value (tuples part by
        part). ``live`` are its values on the paths that go on after the ``if``; ``later``
        also those on paths that broke out of or continued a loop, which are read after it
        or in its next iteration: the merged type is wide enough for them too (a float kept
        by a ``break`` is never cast to the int the other path holds)."""
        if a is c:
            store(a)
            return
        shape = next(x for x in live if isinstance(x, (Value, tuple)))
        if isinstance(shape, tuple):
            for x in live:
                if not (isinstance(x, tuple) and len(x) == len(shape)):
                    raise self.fail(f"`{name}` is a tuple of {len(shape)} on one path and "
                                    f"{_what(x)} on another")
            parts: list = [None] * len(shape)
            left = [len(shape)]

            def part(k: int) -> Callable[[Bound], None]:
                def put(v: Bound) -> None:
                    parts[k] = v
                    left[0] -= 1
                    if not left[0]:
                        store(tuple(parts))
                return put
            for k in range(len(shape)):
                pick = [x[k] for x in live]
                self._merge_bound(name, *(x[k] if isinstance(x, tuple) else None for x in (a, c)),
                                  pick, builders, slots, part(k),
                                  [x[k] for x in later if isinstance(x, tuple) and len(x) > k])
            return
        t = shape.type
        for x in live:
            if not isinstance(x, Value) or join_types(t, x.type) is None:
                raise self.fail(merge_message(name, t, x.type) if isinstance(x, Value) else
                                f"`{name}` is a tuple on one path and a value on another")
            t = join_types(t, x.type)
        for x in later:
            if isinstance(x, Value) and join_types(t, x.type) is not None:
                t = join_types(t, x.type)
        tb, eb = builders
        view = next((self.shared.views[x] for x in (a, c) if x in self.shared.views), None)
        if view is not None:   # still (maybe) a view: never updated in place
            store = _marking(store, self.shared.views, view)
        slots.add(name, t, self._fit(tb, a, t), self._fit(eb, c, t), store,
                  self._same_object(a, c), self.shares(a, c, t))

    def shares(self, a: object, c: object, t: Type) -> frozenset[Value]:
        """The array objects a merge of ``a`` and ``c`` (as type ``t``) may share memory
        with (a cast to another dtype is a new array)."""
        return frozenset().union(*(self.shared.sharing(x) for x in (a, c)
                                   if isinstance(x, Value) and x.type == t))

    def _same_object(self, a: object, c: object) -> Value | None:
        """The array object both branch values are states of (in-place updates), if one."""
        if isinstance(a, Value) and isinstance(c, Value) and is_array(a.type):
            o = self.shared.object_of(a)
            if o is self.shared.object_of(c):
                return o
        return None

    def _merge_flags(self, merged: State, cond: Value, then: tuple[Emitter, State],
                     other: tuple[Emitter, State], slots: "_Slots") -> None:
        (tb, ts), (eb, es) = then, other
        for flag in FLAGS:
            a, c = ts.flags[flag], es.flags[flag]
            if a is c:
                merged.flags[flag] = a
            elif a is True and c is False:
                merged.flags[flag] = cond
            elif a is False and c is True:
                merged.flags[flag] = self.b.not_(cond)
            else:
                slots.add(flag, BOOL, self._flag(tb, a), self._flag(eb, c),
                          lambda v, flag=flag: merged.flags.__setitem__(flag, v))

    def _merge_ret(self, merged: State, then: tuple[Emitter, State],
                   other: tuple[Emitter, State], slots: "_Slots") -> None:
        """The return value: yielded when the branches' differ (a zero where one has none)."""
        (tb, ts), (eb, es) = then, other
        ra, rc = ts.ret, es.ret
        present = [r for r in (ra, rc) if r is not None]
        if not present or ra is rc or (len(present) == 2 and
                                       all(x is y for x, y in zip(ra, rc))):
            merged.ret = ra if ra is not None else rc
            return
        parts: list = [None] * len(present[0])
        for k in range(len(present[0])):
            t = present[0][k].type
            for r in present[1:]:
                t = self.merged(t, r[k].type, self.shared.current[1], "the return value")
            a, c = ra[k] if ra else None, rc[k] if rc else None
            same = a if c is None or c is a else c if a is None else None
            if same is not None and same.type == t and not (_made_in(tb, same) or
                                                             _made_in(eb, same)):
                parts[k] = same   # defined before the `if` (an argument's unchanged state)
                continue
            slots.add("ret", t, self._fit(tb, a, t), self._fit(eb, c, t),
                      lambda v, k=k: parts.__setitem__(k, v), self._same_object(a, c),
                      self.shares(a, c, t))
        merged.ret = parts  # filled by the stores once the if op exists; a tuple after that

    def _fit(self, builder: Emitter, value: Value | Unbound | None, t: Type) -> Value:
        """``value`` as type ``t`` in ``builder``; a zero where the branch has no value (it is
        never used there: that path has left, or the variable is unbound on it)."""
        with self.into(builder):
            if isinstance(value, Value) and join_types(value.type, t) is not None:
                return self.convert(value, t)
            return self.zero_of(t)

    def _flag(self, builder: Emitter, flag: Flag) -> Value:
        if isinstance(flag, Value):
            return flag
        with self.into(builder):
            return self.const(flag)

    # ----------------------------------------------------------------------- simple statements

    def stmt_Pass(self, node: ast.Pass, st: State) -> State:
        return st

    def stmt_Expr(self, node: ast.Expr, st: State) -> State:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, (str, type(...))):
            return st  # a docstring, or a string used as a comment
        self.expr(node.value)
        return st

    def stmt_Assign(self, node: ast.Assign, st: State) -> State:
        start = len(self.b.ops)
        value = self.expr(node.value)
        renamed: dict[Value, Value] = {}
        for target in node.targets:
            self.assign(target, value, st, start, renamed)
        return st

    def stmt_AnnAssign(self, node: ast.AnnAssign, st: State) -> State:
        if node.value is None:
            return st  # a bare annotation binds nothing
        start = len(self.b.ops)
        self.assign(node.target, self.expr(node.value), st, start, {})
        return st

    def stmt_AugAssign(self, node: ast.AugAssign, st: State) -> State:
        target = node.target
        if isinstance(target, ast.Subscript):
            self.update_subscript(target, lambda old: self.binary(
                node.op, old(), self.value(node.value), node), augmented=True)
            return st
        if not isinstance(target, ast.Name):
            raise self.error(target, _target_message(target))
        start = len(self.b.ops)
        current = self.expr_Name(ast.copy_location(ast.Name(target.id, ast.Load()), target))
        if isinstance(current, tuple):
            raise self.error(node, f"augmented assignment to a tuple (`{target.id}`) is not "
                                   f"supported")
        operand = self.value(node.value)
        value = self.binary(node.op, current, operand, node)
        if not is_array(current.type):
            self.assign(target, value, st, start, {})
            return st
        # `W -= g` on an array updates the object in place: every name bound to it sees it.
        value = self.rename(self.in_place(current, value, target.id, operand), target.id, start)
        self.update_object(current, value)
        st.where[target.id] = self.src.loc(target)
        return st

    def assign(self, target: ast.expr, value: Result, st: State, start: int,
               renamed: dict[Value, Value]) -> None:
        """Bind ``target`` (a name, a subscript, or a tuple of them) to ``value``, left to
        right."""
        if isinstance(target, ast.Name):
            if isinstance(value, Value):
                if value not in renamed:
                    renamed[value] = self.rename(value, target.id, start)
                value = renamed[value]
            st.bind(target.id, value, self.src.loc(target))
            return
        if isinstance(target, ast.Subscript):
            if isinstance(value, tuple):
                raise self.error(target, "a tuple cannot be stored into an array element")
            self.update_subscript(target, lambda old: value)
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            if any(isinstance(e, ast.Starred) for e in target.elts):
                raise self.error(target, "starred assignment (`a, *b = ...`) is not supported")
            if not isinstance(value, tuple):
                raise self.error(target, "cannot unpack a single value" + (
                    " (sxad unpacks tuples only, not the rows of an array)"
                    if is_array(value.type) else ""))
            if len(value) != len(target.elts):
                raise self.error(target, f"cannot unpack {len(value)} values into "
                                         f"{len(target.elts)} names")
            for elt, part in zip(target.elts, value):
                self.assign(elt, part, st, start, renamed)
            return
        raise self.error(target, _target_message(target))

    # ----------------------------------------------------------------------- control

    def stmt_If(self, node: ast.If, st: State) -> State:
        cond = self.truthy(self.value(node.test))
        known = self.static_bool(cond)
        if known is not None:
            return self.stmts(node.body if known else node.orelse, st)
        return self.merge(cond, self.branch(node.body, st), self.branch(node.orelse, st))

    def stmt_Return(self, node: ast.Return, st: State) -> State:
        if node.value is None:
            raise self.error(node, "`return` without a value is not supported")
        result = self.expr(node.value)
        values = result if isinstance(result, tuple) else (result,)
        if any(isinstance(v, tuple) for v in values):
            raise self.error(node.value, "nested tuples cannot be returned")
        values += tuple(st.env[name] for name in self.tracked)  # the arguments' final states
        self.returns.record(self.src, node, isinstance(result, tuple),
                            tuple(v.type for v in values))
        st.ret = tuple(values)
        st.flags["returned"] = True
        return st

    def stmt_Break(self, node: ast.Break, st: State) -> State:
        st.flags["broke"] = True
        return st

    def stmt_Continue(self, node: ast.Continue, st: State) -> State:
        st.flags["continued"] = True
        return st


class _Slots:
    """The results of an ``if`` op being built: per result its hint, type, the value each
    branch yields, where the result goes, and the array object it is a state of (if any).
    Variables yielding the same pair of values share one result (``V = W`` updated in place)."""

    def __init__(self) -> None:
        self.hints: list[str] = []
        self.types: list[Type] = []
        self.then: list[Value] = []
        self.other: list[Value] = []
        self.stores: list[list[Callable[[Value], None]]] = []
        self.objects: list[Value | None] = []
        self.shares: list[frozenset[Value]] = []
        self.seen: dict[tuple[int, int], int] = {}

    def add(self, hint: str, t: Type, then: Value, other: Value,
            store: Callable[[Value], None], obj: Value | None = None,
            shares: frozenset[Value] = frozenset()) -> None:
        key = (id(then), id(other))
        if key in self.seen and self.types[self.seen[key]] == t:
            self.stores[self.seen[key]].append(store)
            return
        self.seen[key] = len(self.hints)
        self.hints.append(hint.lstrip("#").replace("[", "_").replace("]", ""))
        self.types.append(t)
        self.then.append(then)
        self.other.append(other)
        self.stores.append([store])
        self.objects.append(obj)
        self.shares.append(shares)


def _fold_rest(node: ast.If, rest: Sequence[ast.stmt]) -> ast.If | None:
    """``if c: A (always exits)`` + rest  ==>  ``if c: A else: B; rest``, or None."""
    then_exits, else_exits = always_exits(node.body), always_exits(node.orelse)
    if not (then_exits or else_exits):
        return None
    body = node.body if then_exits else [*node.body, *rest]
    orelse = node.orelse if else_exits else [*node.orelse, *rest]
    return ast.copy_location(ast.If(test=node.test, body=body, orelse=orelse), node)


def _live(ts: State, es: State) -> list[State]:
    """The branches whose variables matter after a merge (dead branches do not count)."""
    return [s for s in (ts, es) if not s.dead] or \
        [s for s in (ts, es) if not s.has_returned] or [ts, es]


def _read_later(ts: State, es: State) -> list[State]:
    """The branches whose variables may still be read: all but those that returned."""
    return [s for s in (ts, es) if not s.has_returned]


def _bound_after(name: str, ts: State, es: State) -> bool:
    """Bound after a merge: on every path that goes on."""
    return all(isinstance(s.env.get(name), (Value, tuple)) for s in _live(ts, es))


def _what(x: object) -> str:
    if isinstance(x, tuple):
        return f"a tuple of {len(x)}"
    if isinstance(x, Value):
        return f"an array {x.type}" if is_array(x.type) else f"a scalar {x.type}"
    return "nothing"


def _made_in(builder: Emitter, value: Value) -> bool:
    """Whether an op of the block being built (or of its regions) defines ``value``."""
    return any(value in op.results or any(value in o.results for r in op.regions
                                          for o in r.walk()) for op in builder.ops)


def _marking(store: Callable, views: dict, how: str) -> Callable:
    def put(v: Value) -> None:
        views[v] = how
        store(v)
    return put


def _target_message(target: ast.expr) -> str:
    if isinstance(target, ast.Subscript):
        return "assignment to a subscript (`x[i] = ...`) is not supported"
    if isinstance(target, ast.Attribute):
        return "assignment to an attribute (`x.a = ...`) is not supported"
    return f"cannot assign to `{ast.unparse(target)}`"
