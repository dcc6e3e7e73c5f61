"""The closed set of primitives. Names only: their rules live in ``sxad.prims``."""
from __future__ import annotations

from enum import Enum


class Prim(Enum):
    CONST = "const"
    CAST = "cast"
    # arithmetic
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    NEG = "neg"
    FLOORDIV = "floordiv"
    MOD = "mod"
    POW = "pow"
    # elementary functions
    EXP = "exp"
    LOG = "log"
    LOG1P = "log1p"
    EXPM1 = "expm1"
    SQRT = "sqrt"
    SIN = "sin"
    COS = "cos"
    TAN = "tan"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    ATAN2 = "atan2"
    SINH = "sinh"
    COSH = "cosh"
    TANH = "tanh"
    ABS = "abs"
    SIGN = "sign"
    HYPOT = "hypot"
    FLOOR = "floor"
    CEIL = "ceil"
    MAX = "max"
    MIN = "min"
    # comparisons and logic
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"
    SELECT = "select"
    # structured control flow: these own regions
    IF = "if"
    FOR = "for"
    WHILE = "while"
    # the tape of reverse mode (effects: kept in order, never merged or dropped alone)
    PUSH = "push"
    POP = "pop"

    def __str__(self) -> str:
        return self.value


CONTROL = frozenset({Prim.IF, Prim.FOR, Prim.WHILE})
EFFECTS = frozenset({Prim.PUSH, Prim.POP})
