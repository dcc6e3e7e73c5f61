"""What a region reads from the blocks around it (structured control flow captures values)."""
from __future__ import annotations

import weakref

from sxad.ir import Block, Value

# Frozen IR: a block's free values never change. Weak keys: the IR may be dropped.
_memo: "weakref.WeakKeyDictionary[Block, frozenset[Value]]" = weakref.WeakKeyDictionary()


def free_values(block: Block) -> frozenset[Value]:
    """The values ``block`` (with its nested regions) uses but does not define."""
    found = _memo.get(block)
    if found is None:
        used: set[Value] = set(block.yields)
        defined: set[Value] = set(block.params)
        for op in block.ops:
            used.update(op.args)
            for region in op.regions:
                used.update(free_values(region))
            defined.update(op.results)
        found = _memo[block] = frozenset(used - defined)
    return found
