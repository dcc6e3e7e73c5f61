"""Elementwise fusion at codegen level: consecutive elementwise ops of a block whose
intermediate arrays are used only inside their group become *one* loop, with no temporaries.

A group has one output (its *root*, the last op) and is lowered at the root's place: one loop
over the broadcast shape of all the group's array inputs, whose body evaluates every op of the
group on scalars (``arrays.elementwise_loop``). Evaluating an elementwise op at each index of a
broadcast shape gives what evaluating it first and broadcasting after gives, and a tree of
broadcasts fits together exactly when all its leaves do, so the results (and the shape faults)
are those of the unfused ops. An op joins its consumer's group only when it has the consumer's
rank (so that no small array's work is repeated over a large broadcast) and when every use of its
result is inside the group (nothing else needs the intermediate array).

A group may end in a sum, a product or an unbroadcast of its last elementwise value (not a
max/min, nor a sum along the last axis only: measured slower fused): the loop combines each
value into the reduction's result, and the n-element intermediate is never stored
(``arrays.lower_fused_reduction``). Cheap ops (``CHEAP``) whose uses are all in loops are
*recomputed* in each group reading them instead of stored once (``_recomputable``), when that
reads no more memory. Groups run at their root's place; ops that may fault are kept from
moving past another op that may (``find_groups``), so the first fault stays the first.

This is the grouping ``docs/ARRAYS.md`` section 4 describes as a ``map`` op, done while
lowering instead of as an IR pass: the printed IR stays op by op.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sxad.ir import F32, F64, I64, Block, Op, Prim, Value, dtype_of, is_array, rank_of

from .lowering import LOWERING
from .regions import free_values


@dataclass
class Groups:
    """``members[root]``: the ops fused into ``root``'s loop, in program order (root last);
    ``root_of[op]`` for every fused op that is not a root."""

    members: dict[Op, list[Op]] = field(default_factory=dict)
    root_of: dict[Op, Op] = field(default_factory=dict)


def is_elementwise(op: Op) -> bool:
    """A scalar primitive applied to arrays (one loop over the broadcast shape)."""
    return op.prim in LOWERING and op.prim is not Prim.CONST and bool(op.results) and \
        is_array(op.results[0].type)


#: Reductions that may end a group: the group's loop accumulates into their result. Not max
#: and min: LLVM does not vectorize their NaN-propagating form along a row, and the row's
#: elementwise work would then run on scalars.
REDUCTIONS = frozenset({Prim.REDUCE_SUM, Prim.REDUCE_PROD, Prim.UNBROADCAST})
#: Elementwise ops cheap enough to compute again in each loop that needs them (one
#: instruction) rather than to store once and read back.
CHEAP = frozenset({Prim.ADD, Prim.SUB, Prim.MUL, Prim.NEG, Prim.DIV})
_REDUCIBLE = frozenset({F32, F64, I64})


def is_fusable_reduction(op: Op) -> bool:
    """A reduction of an array (rank ≥ 1) of a type it keeps: its loop can be the producer's.
    Not a partial reduction along the last axis (``sum(e, axis=1)``): measured slower fused
    than unfused on rows of 8 (cause not found yet)."""
    if op.prim not in REDUCTIONS or not is_array(op.args[0].type) or \
            rank_of(op.args[0].type) == 0:
        return False
    dtype = dtype_of(op.args[0].type)
    rank, axes = rank_of(op.args[0].type), op.attr("axes")
    along = op.prim is not Prim.UNBROADCAST and axes is not None and rank - 1 in axes and \
        len(set(axes)) < rank
    return dtype in _REDUCIBLE and dtype_of(op.results[0].type) is dtype and not along


def find_groups(block: Block) -> Groups:
    """The groups of ``block``. A group runs at its root's place: ops of it that may fault
    (``may_fault``) must have no op that may fault between them and the root, else the
    first fault of the program would not be the first reported: a reduction is then not
    fused, a recomputed op is stored (and the groups are found again without it)."""
    users = _users(block)
    producer = {r: op for op in block.ops for r in op.results}
    position = {op: i for i, op in enumerate(block.ops)}
    faulty = [i for i, op in enumerate(block.ops) if may_fault(op)]
    banned: set[Op] = set()
    while True:
        again = _recomputable(block, users, producer, banned)
        groups, late = _groups(block, users, producer, again, position, faulty)
        if not late:
            return groups
        banned |= late


def _groups(block: Block, users: dict[Value, list[Op | None]], producer: dict[Value, Op],
            again: set[Op], position: dict[Op, int], faulty: list[int]
            ) -> tuple[Groups, set[Op]]:
    """The groups, given the recomputed ops; and those of these whose fault would come late."""
    groups = Groups()
    last_root: dict[Op, Op] = {}
    first_root: dict[Op, Op] = {}   # where a recomputed op is first computed (and may fault)
    for root in reversed(block.ops):
        if root in groups.root_of or root in again:
            continue
        if is_fusable_reduction(root):
            source = producer.get(root.args[0])
            if source is None or not is_elementwise(source) or source in groups.root_of or \
                    (source not in again and users.get(root.args[0]) != [root]):
                continue
            group, rank = {root, source}, rank_of(root.args[0].type)
        elif is_elementwise(root):
            group, rank = {root}, rank_of(root.result.type)
        else:
            continue
        _grow(group, root, rank, producer, users, groups, again)
        if root.prim in REDUCTIONS and any(
                may_fault(op) and op not in again and
                _fault_between(faulty, position[op], position[root], group, block)
                for op in group):
            continue   # the reduction's input is made unfused, at its place
        if len(group) > 1:
            order = [op for op in block.ops if op in group]
            groups.members[root] = order
            for op in order[:-1]:
                if op in again:
                    last_root.setdefault(op, root)   # roots are visited last first
                    first_root[op] = root
                else:
                    groups.root_of[op] = root
    groups.root_of.update(last_root)
    late = {op for op, root in first_root.items() if may_fault(op) and _fault_between(
        faulty, position[op], position[root], set(groups.members[root]), block)}
    return groups, late


def may_fault(op: Op) -> bool:
    """Whether ``op`` may raise (a shape mismatch, an empty max, an index, a negative integer
    power): two array arguments, or any array argument of an op other than an elementwise
    one, a view or a sum."""
    arrays = sum(1 for a in op.args if is_array(a.type))
    if op.prim is Prim.POW or arrays >= 2:
        return True
    return arrays == 1 and not is_elementwise(op) and op.prim not in _SAFE


_SAFE = frozenset({Prim.EXPAND_DIMS, Prim.TRANSPOSE, Prim.REDUCE_SUM, Prim.REDUCE_PROD})


def _fault_between(faulty: list[int], start: int, end: int, group: set[Op],
                   block: Block) -> bool:
    return any(start < i < end and block.ops[i] not in group for i in faulty)


def _grow(group: set[Op], root: Op, rank: int, producer: dict[Value, Op],
          users: dict[Value, list[Op | None]], groups: Groups, again: set[Op]) -> None:
    """Add to ``group`` every producer whose result only the group uses, of the group's rank,
    and every recomputed op (``again``) it reads; a reduction's other arguments (``like``)
    are not the loop's. What a recomputed op reads is an array (other groups read it too),
    unless recomputed itself."""
    # a value the root reduction reads for its shape (``like``) is lowered before the loop:
    # never fused into it, even when the loop also reads it
    kept = set(root.args[1:]) if root.prim in REDUCTIONS else set()
    changed = True
    while changed:
        changed = False
        for op in list(group):
            args = op.args[:1] if op is root and op.prim in REDUCTIONS else op.args
            for a in args:
                p = producer.get(a)
                if p is None or p in group or rank_of(a.type) != rank or a in kept:
                    continue
                if p in again:
                    group.add(p)
                    changed = True
                elif op not in again and p not in groups.root_of and \
                        p not in groups.members and is_elementwise(p) and \
                        all(u in group and u not in again for u in users.get(a, [None])):
                    group.add(p)
                    changed = True


def _recomputable(block: Block, users: dict[Value, list[Op | None]],
                  producer: dict[Value, Op], banned: set[Op]) -> set[Op]:
    """Cheap ops computed again in each loop that reads them instead of stored once: their
    result is never an array. Each use must be in a loop: an elementwise op of the same
    rank, the reduced argument of a fusable reduction or a recomputed op. Each reads at most
    one *wide* array of its rank, counting through recomputed ops (not a view with an axis
    of length 1: ``expand_dims``, a keepdims reduction): so a loop reads at most the one
    array it would have read, and often one it reads anyway (0.5·z beside z)."""
    banned = set(banned)
    while True:
        found = _candidates(block, users, banned)
        dropped = _too_wide(block, producer, found)
        if not dropped:
            return found
        banned |= dropped


def _candidates(block: Block, users: dict[Value, list[Op | None]], banned: set[Op]) -> set[Op]:
    """The cheap ops all of whose uses are in loops (``_recomputable``), but ``banned``."""
    found: set[Op] = set()
    for op in reversed(block.ops):   # users first
        if op.prim not in CHEAP or not is_elementwise(op) or op in banned:
            continue
        rank = rank_of(op.result.type)
        uses = users.get(op.result, [])
        if rank == 0 or not uses or not all(
                u is not None and (u in found and rank_of(u.result.type) == rank or
                                   _loops_over(u, op.result, rank)) for u in uses):
            continue
        if len(uses) >= 2 or any(u in found for u in uses):
            found.add(op)
    return found


def _too_wide(block: Block, producer: dict[Value, Op], found: set[Op]) -> set[Op]:
    """The ops of ``found`` reading more than one wide array (through other ops of ``found``)."""
    sources: dict[Value, frozenset[Value]] = {}
    dropped = set()
    for op in block.ops:   # producers first
        if op not in found:
            continue
        rank = rank_of(op.result.type)
        read: frozenset[Value] = frozenset()
        for a in op.args:
            if not is_array(a.type) or rank_of(a.type) != rank or _narrow(producer.get(a)):
                continue
            read |= sources.get(a, frozenset({a}))
        if len(read) > 1:
            dropped.add(op)
            read = frozenset({op.result})   # then stored: its users read it
        sources[op.result] = read
    return dropped


def _loops_over(user: Op, value: Value, rank: int) -> bool:
    """Whether ``user`` reads ``value`` in a loop of ``rank`` (fused with its producer)."""
    if is_fusable_reduction(user):
        return user.args[0] is value and value not in user.args[1:]
    return is_elementwise(user) and rank_of(user.result.type) == rank


def _narrow(op: Op | None) -> bool:
    """A view with an axis of length 1 (read once per row or from cache)."""
    return op is not None and (op.prim is Prim.EXPAND_DIMS or (
        op.prim in REDUCTIONS and op.prim is not Prim.UNBROADCAST and bool(op.attr("keepdims"))))


def _users(block: Block) -> dict[Value, list[Op | None]]:
    """The ops of ``block`` using each value (``None``: a yield, or a use inside a region)."""
    users: dict[Value, list[Op | None]] = {}
    for op in block.ops:
        for a in op.args:
            users.setdefault(a, []).append(op)
        for region in op.regions:
            for v in free_values(region):
                users.setdefault(v, []).append(None)
    for y in block.yields:
        users.setdefault(y, []).append(None)
    return users
