"""Random programs with nested ``if``/``for``/``while``, ``break``, ``continue`` and early
``return``s: lowering then interpreting must give what Python gives."""
from __future__ import annotations

import linecache
import math
import random

import numpy as np
import pytest

from sxad.backends.interpreter import interpret
from sxad.frontend import lower
from sxad.ir import F64, I64

FLOAT_EXPRS = ["a * 0.9 + x", "math.sin(a) + b", "b - a * 0.5", "math.tanh(a * b)",
               "max(a, b) - 0.25", "min(a, x) + 1.0", "abs(a - b)", "a + k * 0.1",
               "x * i * 0.01 + a", "(a if a > b else b) * 0.5", "math.cos(x + k)",
               "_damp(a) - b", "(a or 0.5) * 0.75"]
INT_EXPRS = ["k + 1", "k + i", "(k * 3) % 7", "k - 2", "n - k"]
CONDS = ["a > b", "a < 0.5", "k % 2 == 0", "b > x and k < 4", "i > 1", "not a > x",
         "0.1 < a < 1.5", "k > 2 or b < 0.0"]


def _damp(v):
    """A helper with a loop and an early return, inlined into the random programs."""
    for j in range(3):
        if v > 1.0:
            return v * 0.5
        v = v + 0.25
    return v


class Program:
    """Writes one random function body; loops are bounded so every program ends."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[str] = []
        self.counters = 0

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def block(self, depth: int, loops: int, size: int) -> None:
        for _ in range(size):
            self.statement(depth, loops)

    def statement(self, depth: int, loops: int) -> None:
        rng = self.rng
        choices = ["float", "float", "int", "if", "widen"]
        if depth < 4:
            choices += ["for", "while", "if"]
        if loops:
            choices += ["break", "continue"]
        choices += ["return"]
        kind = rng.choice(choices)
        if kind == "float":
            self.emit(depth, f"{rng.choice('ab')} = {rng.choice(FLOAT_EXPRS)}")
        elif kind == "int":
            self.emit(depth, f"k = {rng.choice(INT_EXPRS)}")
        elif kind == "widen":
            self.emit(depth, "k = k + 0.5")
        elif kind == "if":
            self.emit(depth, f"if {rng.choice(CONDS)}:")
            self.block(depth + 1, loops, rng.randint(1, 3))
            if rng.random() < 0.5:
                self.emit(depth, "else:")
                self.block(depth + 1, loops, rng.randint(1, 2))
        elif kind == "for":
            bounds = rng.choice(["n", "3", "1, n", "n, 0, -1", "0, n, 2"])
            self.emit(depth, f"for i in range({bounds}):")
            self.block(depth + 1, loops + 1, rng.randint(1, 3))
        elif kind == "while":
            c = f"c{self.counters}"
            self.counters += 1
            self.emit(depth, f"{c} = 0")
            self.emit(depth, f"while {c} < 3 and ({rng.choice(CONDS)}):")
            self.emit(depth + 1, f"{c} += 1")
            self.block(depth + 1, loops + 1, rng.randint(1, 3))
        elif kind in ("break", "continue"):
            self.emit(depth, f"if {rng.choice(CONDS)}:")
            self.emit(depth + 1, kind)
        else:
            self.emit(depth, f"if {rng.choice(CONDS)}:")
            self.emit(depth + 1, f"return {rng.choice(FLOAT_EXPRS)}")

    def source(self, name: str) -> str:
        head = [f"def {name}(x, n):", "    a = x", "    b = 1.0 - x", "    k = 0", "    i = 0"]
        return "\n".join(head + self.lines + ["    return a + b * 2 + k", ""])


def _compile(seed: int):
    rng = random.Random(seed)
    program = Program(rng)
    program.block(1, 0, rng.randint(2, 5))
    name = f"random_{seed}"
    text = program.source(name)
    filename = f"<random program {seed}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace = {"math": math, "_damp": _damp}
    exec(compile(text, filename, "exec"), namespace)
    return namespace[name], text


@pytest.mark.parametrize("seed", range(250))
def test_random_program(seed: int) -> None:
    fn, text = _compile(seed)
    func = lower(fn, [F64, I64])
    assert all(op.loc is not None for op in func.body.walk())
    for x, n in [(0.3, 3), (1.7, 5), (-0.8, 0), (0.9, 2)]:
        expected = fn(x, n)
        (got,) = interpret(func, [x, n])
        assert np.allclose(float(got), float(expected), rtol=1e-12, atol=1e-14), \
            f"{text}\n(x, n) = {(x, n)}: {got} != {expected}"
