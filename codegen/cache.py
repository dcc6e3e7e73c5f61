"""Object-code caches: in memory (this process) and on disk (across processes).

Key (``program_key``): sha256 of the IR program (its JSON serialization) and its symbol name,
together with everything else that decides the object code: ``FORMAT``, the source of the code
generator itself (``codegen/*.py`` and the primitive rules), whether BLAS is used, whether
indices are bounds-checked (``SXAD_BOUNDS_CHECK``), llvmlite and
LLVM versions, target triple, host CPU name and features. Keying by the program rather than by
the LLVM text it lowers to lets a warm start skip building the LLVM module altogether (that
costs more than loading the object).
Value: the kernel's object code (``TargetMachine.emit_object``), one object or several (a
straight-line kernel is emitted in two: ``compiler.split_module``), packed by ``pack`` and
stored as a checksummed ``sxad.diskcache`` entry ``<key>.o``: a truncated, corrupted or foreign
entry, or one ``unpack`` cannot read, is counted in ``stats["disk_rejected"]``, ignored and
overwritten by a fresh compilation; it is never loaded.
The location and ``SXAD_CACHE=0`` are ``sxad.diskcache``'s.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Sequence

from sxad.diskcache import DiskCache, digest, directory, enabled

from .runtime import versions

#: Bump when the meaning of cached objects changes without the IR text changing.
FORMAT = "sxad-codegen-2"   # 2: payloads are packed lists of objects
SUFFIX = ".o"
_objects = DiskCache(SUFFIX, b"SXADOBJ1")

#: What the caches did in this process: ``compiled`` (a cold compile), ``memory_hits``,
#: ``disk_hits``, ``disk_writes``, ``disk_rejected`` (a bad entry was found and ignored).
stats = _objects.stats

# key -> whatever the compiler keeps for a loaded module (engine, addresses, builtin).
memory: dict[str, Any] = {}

__all__ = ["FORMAT", "SUFFIX", "clear", "directory", "enabled", "generator_digest", "key", "load",
           "memory", "pack", "program_key", "stats", "store", "unpack"]


def key(ir_text: str) -> str:
    """A key for an LLVM IR text compiled as is (``compile_object``)."""
    return digest(FORMAT, versions(), ir_text)


def program_key(program_text: str, name: str, blas: bool, bounds_check: bool = True) -> str:
    """The key of the kernel named ``name`` of a serialized IR program (``sxad.ir.dumps``),
    compiled calling BLAS or not, with bounds checks or without (``SXAD_BOUNDS_CHECK=0``)."""
    return digest(FORMAT, versions(), generator_digest(), f"blas {blas}",
                  f"bounds {bounds_check}", name, program_text)


_GENERATOR: list[str] = []


def generator_digest() -> str:
    """sha256 of the code generator's own source and the primitive rules it lowers by (read once
    per process): editing the compiler invalidates what it compiled."""
    if not _GENERATOR:
        here = Path(__file__).parent
        sxad_dir = here.parent / "sxad"
        files = sorted(here.glob("*.py")) + [sxad_dir / "prims.py", sxad_dir / "array_prims.py"]
        _GENERATOR.append(digest(*(f.read_bytes().decode("utf-8", "replace") for f in files)))
    return _GENERATOR[0]


def load(key_: str) -> bytes | None:
    """The cached object code of ``key_``, or None (absent, disabled or invalid)."""
    return _objects.load(key_)


def store(key_: str, payload: bytes) -> None:
    _objects.store(key_, payload)


# A packed list of objects: magic | count (u32) | each object's length (u64) | the objects.
_PACKED = b"sxadobjs"
_MAX_OBJECTS = 16


def pack(objects: Sequence[bytes]) -> bytes:
    """One payload holding ``objects`` (object files), in order."""
    assert 0 < len(objects) <= _MAX_OBJECTS
    return (_PACKED + struct.pack(f"<I{len(objects)}Q", len(objects), *map(len, objects))
            + b"".join(objects))


def unpack(payload: bytes) -> list[bytes] | None:
    """The objects of a ``pack``ed payload, or None if it is not one, exactly."""
    head = len(_PACKED) + 4
    if len(payload) < head or not payload.startswith(_PACKED):
        return None
    count, = struct.unpack_from("<I", payload, len(_PACKED))
    if not 0 < count <= _MAX_OBJECTS or len(payload) < head + 8 * count:
        return None
    lengths = struct.unpack_from(f"<{count}Q", payload, head)
    start = head + 8 * count
    if start + sum(lengths) != len(payload):
        return None
    objects = []
    for length in lengths:
        objects.append(payload[start:start + length])
        start += length
    return objects


def clear() -> None:
    """Empty the disk cache and forget the in-memory entries. Kernels already handed out keep
    working (their code stays loaded); the next compile of anything starts cold."""
    from . import helpers   # the runtime library's entries go too
    memory.clear()
    _objects.clear()
    helpers.clear()
