"""Optimization passes: pure functions ``Func -> Func``, run in the order ``PIPELINE`` lists.

``SXAD_DUMP_IR=1`` prints the IR after every pass to stderr; ``SXAD_DUMP_IR=cse`` (or a
comma-separated list of pass names) only after those. ``SXAD_VERIFY=1`` verifies the IR after
every pass (the tests set it).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from ..ir import Func, VerifyError, format_func, verify
from ..prims import result_types
from .cse import cse
from .dce import dce
from .fold import fold
from .shapes import same_shapes
from .simplify import simplify
from .symbolic import simplify_symbolic

Pass = Callable[[Func], Func]

# One round of cleanup. Folding exposes simplifications, simplifying exposes shared
# subexpressions, and DCE sweeps up what the others left dead.
ROUND: list[tuple[str, Pass]] = [
    ("fold", fold),
    ("simplify", simplify),
    ("cse", cse),
    ("dce", dce),
]

# Two rounds: the second catches what the first one's DCE and CSE exposed.
PIPELINE: list[tuple[str, Pass]] = ROUND + ROUND

# Derivative programs: a round of cleanup (which also drops tape entries nothing pops), then
# the sympy pass rewrites derivative expressions over the values already at hand (the seed's
# σ' = σ(1 − σ)), ``shapes`` drops the unbroadcasts the derivative rules wrote where nothing
# was broadcast, then a round to clean up after them.
DERIVATIVE_PIPELINE: list[tuple[str, Pass]] = ROUND + [("symbolic", simplify_symbolic),
                                                       ("shapes", same_shapes)] + ROUND


def with_pass(entry: tuple[str, Pass], after: str, pipeline: Sequence[tuple[str, Pass]] = ROUND,
              rounds: int = 2) -> list[tuple[str, Pass]]:
    """``rounds`` repetitions of ``pipeline`` with ``entry`` inserted after each pass named
    ``after``."""
    one: list[tuple[str, Pass]] = []
    for name, run in pipeline:
        one.append((name, run))
        if name == after:
            one.append(entry)
    return one * rounds


def optimize(func: Func, pipeline: Sequence[tuple[str, Pass]] = PIPELINE) -> Func:
    """``func`` after every pass of ``pipeline``, in order."""
    dump = _dump_filter()
    check = os.environ.get("SXAD_VERIFY", "") not in ("", "0")
    for step, (name, run) in enumerate(pipeline, 1):
        func = run(func)
        if check:
            try:
                verify(func, result_types)
            except VerifyError as err:
                raise VerifyError(f"{func.name}: after pass {name!r}: {err}") from err
        if dump is not None and (not dump or name in dump):
            print(f"# --- {func.name}: after {name} (pass {step}/{len(pipeline)}) ---\n"
                  f"{format_func(func)}", file=sys.stderr)
    return func


def _dump_filter() -> set[str] | None:
    """None: no dump; an empty set: dump after every pass; else the names to dump after."""
    value = os.environ.get("SXAD_DUMP_IR", "").strip()
    if value in ("", "0"):
        return None
    if value.lower() in ("1", "all", "true", "yes"):
        return set()
    return {name.strip() for name in value.split(",")}


__all__ = ["DERIVATIVE_PIPELINE", "PIPELINE", "ROUND", "Pass", "cse", "dce", "fold", "optimize",
           "same_shapes", "simplify", "with_pass"]
