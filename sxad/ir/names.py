"""Deterministic, readable names for the values of a function."""
from __future__ import annotations

import re

from .core import Block, Func, Value

_IDENT = re.compile(r"[^0-9A-Za-z_]")


class Namer:
    """Gives each value a unique name from its hint, in order of definition."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self.names: dict[Value, str] = {}
        self.taken: set[str] = set(reserved)
        self.counts: dict[str, int] = {}

    def __getitem__(self, value: Value) -> str:
        name = self.names.get(value)
        if name is None:
            name = self.define(value)
        return name

    def define(self, value: Value) -> str:
        base = _IDENT.sub("_", value.hint) or "v"
        if base[0].isdigit():
            base = "v" + base
        name, n = base, self.counts.get(base, 0)
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.counts[base] = n
        self.taken.add(name)
        self.names[value] = name
        return name


def name_all(func: Func, reserved: tuple[str, ...] = ()) -> Namer:
    """Names every value of ``func`` in program order, so names are stable."""
    namer = Namer(reserved)

    def visit(block: Block) -> None:
        for p in block.params:
            namer.define(p)
        for op in block.ops:
            for region in op.regions:
                visit(region)
            for r in op.results:
                namer.define(r)
    visit(func.body)
    return namer
