"""Who frees each array buffer: a static plan per block, computed from the IR before lowering.

The scheme (docs/ARRAYS.md section 4): *block-scoped ownership with moves*.

- A block **owns** the arrays it creates: the array results of its ops, except views
  (``arrays.is_view``: a view shares its argument's buffer and owns nothing); the results of
  ``if``/``for``/``while`` and of ``pop``; and, in a loop body, the carried parameters (each
  iteration owns what the previous one passed on). Function parameters (the caller's), a
  ``while`` condition's parameters, and every value of an enclosing block are *borrowed*.
- An owned buffer is freed right after its **last use** in the block. A use of a view counts as
  a use of the buffer it views (its *root*), and a use anywhere inside an op's regions counts as
  a use at that op, so a buffer read in a loop lives until the loop is done.
- An array **escapes** its block through a yield (to the op's results or the next iteration),
  a ``push`` (to the tape), a loop's initial value (to the loop) or the function's results (to
  the caller). An owned buffer escapes by a *move*: ownership passes on, nothing is copied, the
  block no longer frees it. Everything else (a view, a borrowed value, a buffer already moved,
  a loop initial value still used afterwards) escapes as a fresh copy. So every value that
  crosses a block boundary is owned, C-contiguous, and freed exactly once; a loop that creates
  arrays in each iteration frees them in that iteration, so its memory stays bounded.
- A *maybe-view* (``arrays.is_maybe_view``: an unbroadcast that is its operand itself when
  nothing was broadcast, else a fresh sum) keeps its operand alive as a view does, never
  escapes by a move, and is freed where its root's last use is, unless its buffer is its
  operand's (``Plan.maybe``: checked at run time).
- After a ``push`` moved a buffer, the block may still read it (it is then borrowed from the
  tape, which keeps it until the matching ``pop`` hands it to the reverse sweep).
- Faults: every buffer is also recorded in the call's heap (``codegen.arrays``), which the
  kernel's exit block empties; a fault anywhere therefore frees all buffers live at that point,
  including those on the tape. On success, the result buffers are forgotten by the heap first:
  the caller owns them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sxad.ir import Block, Op, Prim, Value, is_array

from .arrays import is_maybe_view, is_view
from .fusion import Groups
from .regions import free_values


@dataclass
class Plan:
    """What a block does with its buffers. Op positions count from 0; ``len(ops)`` is the yield,
    -1 the block's start."""

    frees: dict[int, list[Value]] = field(default_factory=dict)  # free after op i
    moves: set[tuple[int, int]] = field(default_factory=set)     # (op, arg position) moved
    moved_yields: set[int] = field(default_factory=set)          # yield positions moved
    # after op i: (maybe-view, its operand): free the first unless it is the second's buffer
    maybe: dict[int, list[tuple[Value, Value]]] = field(default_factory=dict)


def uses_at(op: Op) -> list[Value]:
    """Every value ``op`` reads: its arguments and what its regions capture (with repeats)."""
    captured = [v for region in op.regions for v in free_values(region)]
    return [*op.args, *captured]


def loop_inits(op: Op) -> range:
    """The argument positions of a loop's initial carried values."""
    if op.prim is Prim.FOR:
        return range(3, len(op.args))
    if op.prim is Prim.WHILE:
        return range(len(op.args))
    return range(0)


def plan(block: Block, owned_params: tuple[Value, ...] = (),
         groups: Groups | None = None, deferred: frozenset[Op] = frozenset()) -> Plan:
    """The ownership plan of ``block`` whose parameters ``owned_params`` it owns. Ops fused
    into a group's loop (``groups``) make no array, and read their inputs at the group's root.
    ``deferred`` ops (``codegen.updates``) run after the block: they own nothing, and what
    they read is never freed here (the call's heap frees it when the kernel returns)."""
    owned: dict[Value, int] = {p: -1 for p in owned_params if is_array(p.type)}
    root: dict[Value, Value] = {}
    index = {op: i for i, op in enumerate(block.ops)}
    fused = groups.root_of if groups is not None else {}
    roots = groups.members if groups is not None else {}
    maybe: dict[Value, tuple[Value, int]] = {}   # maybe-view -> (its operand, its op)

    def root_of(v: Value) -> Value:
        while v in root:
            v = root[v]
        return v
    for i, op in enumerate(block.ops):
        if op in fused or op in deferred:
            continue
        for r in op.results:
            if not is_array(r.type):
                continue
            if is_view(op) or (is_maybe_view(op) and op not in roots):
                root[r] = op.args[0]
                if not is_view(op):
                    maybe[r] = (op.args[0], i)
            else:
                owned[r] = i
    last: dict[Value, int] = {}
    roots_at: list[list[Value]] = []
    for i, op in enumerate(block.ops):
        roots = [root_of(v) for v in uses_at(op) if is_array(v.type)]
        roots_at.append(roots)
        at = index[fused[op]] if op in fused else len(block.ops) + 1 if op in deferred else i
        for r in roots:
            last[r] = max(last.get(r, -1), at)
    end = len(block.ops)
    for y in block.yields:
        if is_array(y.type):
            last[root_of(y)] = end
    result = Plan()
    moved: set[Value] = set()
    for i, op in enumerate(block.ops):
        if op.prim is Prim.PUSH and _movable(op.args[0], owned, moved):
            moved.add(op.args[0])
            result.moves.add((i, 0))
        for pos in loop_inits(op):
            v = op.args[pos]
            if _movable(v, owned, moved) and last.get(v) == i and roots_at[i].count(v) == 1:
                moved.add(v)
                result.moves.add((i, pos))
    for pos, y in enumerate(block.yields):
        if _movable(y, owned, moved):
            moved.add(y)
            result.moved_yields.add(pos)
    for v, defined_at in owned.items():
        if v not in moved:
            result.frees.setdefault(last.get(v, defined_at), []).append(v)
    for v, (source, defined_at) in maybe.items():
        at = last.get(root_of(v), defined_at)
        if at <= end:   # past the end: read by a deferred op, freed with the call's heap
            result.maybe.setdefault(at, []).append((v, source))
    return result


def _movable(v: Value, owned: dict[Value, int], moved: set[Value]) -> bool:
    return is_array(v.type) and v in owned and v not in moved
