"""IR types: scalars (``f64``, ``f32``, ``i64``, ``bool``) and arrays of them.

An ``ArrayType`` fixes the element type (``dtype``) and the rank (0–4); the shape is a runtime
value (``dim(x, k)``), so one program serves every shape of a given rank and dtype.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScalarType:
    name: str

    def __str__(self) -> str:
        return self.name

    def __hash__(self) -> int:   # the generated one builds a tuple: types key every call's caches
        return hash(self.name)

    @property
    def is_float(self) -> bool:
        """Whether values of this type are differentiable (carry tangents and adjoints)."""
        return self in FLOATS


MAX_RANK = 4


@dataclass(frozen=True)
class ArrayType:
    """An n-dimensional array of ``dtype`` with static ``rank`` and runtime shape."""

    dtype: ScalarType
    rank: int

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, ScalarType) or not 0 <= self.rank <= MAX_RANK:
            raise ValueError(f"no array type of {self.dtype} with rank {self.rank}")

    @property
    def name(self) -> str:
        return f"{self.dtype}[{','.join(':' * self.rank)}]"  # f64[:,:], as in Cython

    def __hash__(self) -> int:
        return hash(self.dtype.name) + self.rank

    def __str__(self) -> str:
        return self.name

    @property
    def is_float(self) -> bool:
        return self.dtype.is_float


@dataclass(frozen=True)
class TapeType:
    """Not a value type: names the implicit tape that push/pop act on."""

    def __str__(self) -> str:
        return "tape"


F64 = ScalarType("f64")
F32 = ScalarType("f32")
I64 = ScalarType("i64")
BOOL = ScalarType("bool")
FLOATS = frozenset({F64, F32})
SCALARS = (F64, F32, I64, BOOL)

Type = ScalarType | ArrayType

# Numeric promotion order, as in Python: bool < int < float.
RANK = {BOOL: 0, I64: 1, F32: 2, F64: 3}


def join(a: Type, b: Type) -> Type:
    """The type both ``a`` and ``b`` promote to."""
    return a if RANK[a] >= RANK[b] else b


def dtype_of(t: Type) -> ScalarType:
    """The element type: ``t`` itself for a scalar."""
    return t.dtype if isinstance(t, ArrayType) else t


def rank_of(t: Type) -> int:
    """The rank: 0 for a scalar."""
    return t.rank if isinstance(t, ArrayType) else 0


def is_array(t: Type) -> bool:
    return isinstance(t, ArrayType)


def with_dtype(t: Type, dtype: ScalarType) -> Type:
    """``t`` with its element type replaced (a scalar stays a scalar)."""
    return ArrayType(dtype, t.rank) if isinstance(t, ArrayType) else dtype


def all_types() -> list[Type]:
    """Every value type, scalars first."""
    return [*SCALARS, *(ArrayType(d, r) for d in SCALARS for r in range(MAX_RANK + 1))]
