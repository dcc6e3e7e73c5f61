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
    LOGISTIC = "logistic"   # 1 / (1 + exp(-x)), recognised by ``passes.simplify``
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
    # arrays (array-only: the scalar prims above also act elementwise, with numpy broadcasting)
    UNBROADCAST = "unbroadcast"        # sum over broadcast axes back to a shape: (ct, like)
    BROADCAST_LIKE = "broadcast_like"  # broadcast to a shape: (x, like)
    EXPAND_DIMS = "expand_dims"        # attr axes
    DIM = "dim"                        # attr axis: the runtime length of one axis
    ZEROS_LIKE = "zeros_like"
    REDUCE_SUM = "reduce_sum"          # attrs axes (tuple or None: all), keepdims
    REDUCE_MAX = "reduce_max"
    REDUCE_MIN = "reduce_min"
    REDUCE_PROD = "reduce_prod"
    MATMUL = "matmul"
    TRANSPOSE = "transpose"            # attr perm
    # indexing, update, shape and creation (rules in ``sxad.array_prims``)
    INDEX = "index"                    # (x, *idx), attr spec: x[i, a:b, :]
    INDEX_ADD = "index_add"            # (ct, like, *idx), attr spec: index's adjoint
    SET_INDEX = "set_index"            # (x, v, *idx), attr spec: a copy of x with v written
    RESHAPE = "reshape"                # (x, *dims); one dim may be -1
    RESHAPE_LIKE = "reshape_like"      # (x, like): x in like's shape
    SQUEEZE = "squeeze"                # attr axes
    FULL = "full"                      # (value, *dims)
    ARANGE = "arange"                  # (start, stop, step)
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
