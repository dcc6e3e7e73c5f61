"""Floor 1: IR data, builder, printer and verifier. Knows no derivative rules."""
from .builder import BlockBuilder
from .core import Block, Func, Loc, Op, Value
from .prim import CONTROL, EFFECTS, Prim
from .types import (BOOL, F32, F64, I64, RANK, ArrayType, ScalarType, Type, dtype_of, is_array,
                    join, rank_of, with_dtype)

__all__ = ["ArrayType", "BOOL", "BlockBuilder", "Block", "CONTROL", "EFFECTS", "F32", "F64", "Func",
           "I64", "Loc", "Op", "Prim", "RANK", "ScalarType", "Type", "Value", "dtype_of",
           "is_array", "join", "rank_of", "with_dtype"]

from .names import Namer, name_all  # noqa: E402
from .printer import format_func  # noqa: E402
from .verify import VerifyError, verify  # noqa: E402

__all__ += ["Namer", "VerifyError", "format_func", "name_all", "verify"]
