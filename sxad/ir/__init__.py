"""Floor 1: IR data, builder, printer and verifier. Knows no derivative rules."""
from .builder import BlockBuilder
from .core import Block, Func, Loc, Op, Value
from .prim import CONTROL, EFFECTS, Prim
from .types import BOOL, F64, I64, RANK, ScalarType, Type, join

__all__ = ["BOOL", "BlockBuilder", "Block", "CONTROL", "EFFECTS", "F64", "Func", "I64", "Loc",
           "Op", "Prim", "RANK", "ScalarType", "Type", "Value", "join"]

from .names import Namer, name_all  # noqa: E402
from .printer import format_func  # noqa: E402
from .verify import VerifyError, verify  # noqa: E402

__all__ += ["Namer", "VerifyError", "format_func", "name_all", "verify"]
