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

This is the grouping ``docs/ARRAYS.md`` section 4 describes as a ``map`` op, done while
lowering instead of as an IR pass: the printed IR stays op by op.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sxad.ir import Block, Op, Prim, Value, is_array, rank_of

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


def find_groups(block: Block) -> Groups:
    users = _users(block)
    producer = {r: op for op in block.ops for r in op.results}
    groups = Groups()
    for root in reversed(block.ops):
        if not is_elementwise(root) or root in groups.root_of:
            continue
        group = {root}
        rank = rank_of(root.result.type)
        changed = True
        while changed:
            changed = False
            for op in list(group):
                for a in op.args:
                    p = producer.get(a)
                    if p is None or p in group or p in groups.root_of or p in groups.members \
                            or not is_elementwise(p) or rank_of(a.type) != rank:
                        continue
                    if all(u in group for u in users.get(a, [None])):
                        group.add(p)
                        changed = True
        if len(group) > 1:
            order = [op for op in block.ops if op in group]
            groups.members[root] = order
            for op in order[:-1]:
                groups.root_of[op] = root
    return groups


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
