"""IR types. Scalars now; arrays will add an ``ArrayType`` beside them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScalarType:
    name: str

    def __str__(self) -> str:
        return self.name

    @property
    def is_float(self) -> bool:
        return self is F64


@dataclass(frozen=True)
class TapeType:
    """Not a value type: names the implicit tape that push/pop act on."""

    def __str__(self) -> str:
        return "tape"


F64 = ScalarType("f64")
I64 = ScalarType("i64")
BOOL = ScalarType("bool")

Type = ScalarType

# Numeric promotion order, as in Python: bool < int < float.
RANK = {BOOL: 0, I64: 1, F64: 2}


def join(a: Type, b: Type) -> Type:
    """The type both ``a`` and ``b`` promote to."""
    return a if RANK[a] >= RANK[b] else b
