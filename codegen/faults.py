"""The errors a kernel can report. A kernel returns a fault code (0: none) instead of touching
Python state, so it stays a plain C function; the entry point turns the code into an exception."""
from __future__ import annotations

from enum import IntEnum


class Fault(IntEnum):
    NONE = 0
    ZERO_STEP = 1         # range(lo, hi, 0)
    NO_MEMORY = 2         # the tape could not grow
    NEGATIVE_POWER = 3    # int ** negative int
    TAPE_UNDERFLOW = 4    # pop from an empty tape (a malformed program)
    TAPE_LIMIT = 5        # the tape would grow beyond the tape limit (``runtime.tape_limit``)


#: Fault -> (symbol of the Python exception type, message). ``None``: PyErr_NoMemory().
MESSAGES: dict[Fault, tuple[str, str] | None] = {
    Fault.ZERO_STEP: ("sxad.py.ValueError", "range() arg 3 must not be zero"),
    Fault.NO_MEMORY: None,
    Fault.NEGATIVE_POWER: ("sxad.py.ValueError",
                           "Integers to negative integer powers are not allowed."),
    Fault.TAPE_UNDERFLOW: ("sxad.py.IndexError", "pop from an empty tape"),
    Fault.TAPE_LIMIT: ("sxad.py.MemoryError",
                       "the reverse-mode tape would grow beyond SXAD_TAPE_LIMIT = %lld bytes: a "
                       "loop ran so long that the values kept for the derivative do not fit; "
                       "raise the limit (SXAD_TAPE_LIMIT=<bytes>) if this run is expected"),
}

#: Faults whose message is a ``PyErr_Format`` format with one ``%lld``: the value of this global.
FORMAT_ARGUMENT: dict[Fault, str] = {Fault.TAPE_LIMIT: "sxad.tape_limit"}
