"""The errors a kernel can report. A kernel returns a fault code (0: none) instead of touching
Python state, so it stays a plain C function; the entry point turns the code into an exception."""
from __future__ import annotations

import struct
from enum import IntEnum
from typing import NoReturn


class Fault(IntEnum):
    NONE = 0
    ZERO_STEP = 1         # range(lo, hi, 0)
    NO_MEMORY = 2         # the tape could not grow
    NEGATIVE_POWER = 3    # int ** negative int
    TAPE_UNDERFLOW = 4    # pop from an empty tape (a malformed program)
    TAPE_LIMIT = 5        # the tape would grow beyond the tape limit (``runtime.tape_limit``)
    SHAPE = 6             # array shapes that do not fit together (broadcasting, matmul)
    INDEX = 7             # an index out of range
    EMPTY_REDUCTION = 8   # max/min over an empty axis
    SLICE_STEP = 9        # x[::0]
    NEGATIVE_DIMENSION = 10   # full with a dimension < 0
    ZERO_DIVISION = 11    # arange with step 0


#: Fault -> (symbol of the Python exception type, message). ``None``: PyErr_NoMemory().
MESSAGES: dict[Fault, tuple[str, str] | None] = {
    Fault.ZERO_STEP: ("sxad.py.ValueError", "range() arg 3 must not be zero"),
    Fault.NO_MEMORY: None,
    Fault.NEGATIVE_POWER: ("sxad.py.ValueError",
                           "Integers to negative integer powers are not allowed."),
    Fault.TAPE_UNDERFLOW: ("sxad.py.IndexError", "pop from an empty tape"),
    Fault.SLICE_STEP: ("sxad.py.ValueError", "slice step cannot be zero"),
    Fault.NEGATIVE_DIMENSION: ("sxad.py.ValueError", "negative dimensions are not allowed"),
    Fault.ZERO_DIVISION: ("sxad.py.ZeroDivisionError", "division by zero"),
    Fault.TAPE_LIMIT: ("sxad.py.MemoryError",
                       "the reverse-mode tape would grow beyond SXAD_TAPE_LIMIT = %lld bytes: a "
                       "loop ran so long that the values kept for the derivative do not fit; "
                       "raise the limit (SXAD_TAPE_LIMIT=<bytes>) if this run is expected"),
}

#: Faults whose message is a ``PyErr_Format`` format with one ``%lld``: the value of this global.
FORMAT_ARGUMENT: dict[Fault, str] = {Fault.TAPE_LIMIT: "sxad.tape_limit"}


# --------------------------------------------------------------------------- faults with details

#: A kernel of a program with arrays takes a last argument: ``int64_t info[INFO_SLOTS]``, which
#: it fills before returning one of ``DESCRIBED``; the entry point then calls ``raise_fault``
#: (Python: the slow path only) to build the message, which names the shapes or the index.
INFO_SLOTS = 42   # room for the shapes of 8 operands (a fused loop may have more)


class ShapeKind(IntEnum):
    """What a ``Fault.SHAPE`` was about (``info[0]``); ``info[1]`` operands follow, each as
    (rank, dim0, …, dim3)."""

    BROADCAST = 0
    BROADCAST_TO = 1
    UNBROADCAST = 2
    MATMUL = 3
    RESHAPE = 4
    SQUEEZE = 5


def _shapes(info: tuple[int, ...]) -> list[tuple[int, ...]]:
    shapes = []
    for k in range(min(info[1], (INFO_SLOTS - 2) // 5)):
        rank, *dims = info[2 + 5 * k: 7 + 5 * k]
        shapes.append(tuple(dims[:rank]))
    return shapes


def _text(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _shape_error(info: tuple[int, ...]) -> Exception:
    shapes = [_text(s) for s in _shapes(info)]
    kind = ShapeKind(info[0])
    if kind is ShapeKind.BROADCAST:
        return ValueError("operands could not be broadcast together with shapes "
                          + " ".join(shapes))
    if kind is ShapeKind.BROADCAST_TO:
        return ValueError(f"cannot broadcast an array of shape {shapes[0]} to shape {shapes[1]}")
    if kind is ShapeKind.UNBROADCAST:
        return ValueError(f"cannot sum an array of shape {shapes[0]} back to shape {shapes[1]}")
    if kind is ShapeKind.MATMUL:
        return ValueError(f"matmul: shapes {shapes[0]} and {shapes[1]} are not aligned "
                          f"(the last axis of the first must match the first of the second)")
    if kind is ShapeKind.SQUEEZE:
        return ValueError(f"cannot select an axis to squeeze out which has size not equal to "
                          f"one (shape {shapes[0]})")
    return ValueError(f"cannot reshape an array of shape {shapes[0]} into shape {shapes[1]}")


def _index_error(info: tuple[int, ...]) -> Exception:
    axis, index, length = info[:3]
    return IndexError(f"index {index} is out of bounds for axis {axis} with size {length}")


def _empty_error(info: tuple[int, ...]) -> Exception:
    name = "minimum" if info[0] else "maximum"
    return ValueError(f"zero-size array to reduction operation {name} which has no identity")


DESCRIBED = {Fault.SHAPE: _shape_error, Fault.INDEX: _index_error,
             Fault.EMPTY_REDUCTION: _empty_error}


def raise_fault(code: int, info: bytes) -> NoReturn:
    """Raise the exception of fault ``code`` given the kernel's fault info (called by the
    entry point)."""
    values = struct.unpack(f"<{INFO_SLOTS}q", info)
    raise DESCRIBED[Fault(code)](values)
