"""Object-code caches: in memory (this process) and on disk (across processes).

Key: sha256 of the unoptimized LLVM IR text together with everything else that decides the object
code (``FORMAT``, llvmlite and LLVM versions, target triple, host CPU name and features).
Value: the optimized object code (``TargetMachine.emit_object``), stored as a checksummed
``sxad.diskcache`` entry ``<key>.o``: a truncated, corrupted or foreign entry is counted in
``stats["disk_rejected"]``, ignored and overwritten by a fresh compilation; it is never loaded.
The location and ``SXAD_CACHE=0`` are ``sxad.diskcache``'s.
"""
from __future__ import annotations

from typing import Any

from sxad.diskcache import DiskCache, digest, directory, enabled

from .runtime import versions

#: Bump when the meaning of cached objects changes without the IR text changing.
FORMAT = "sxad-codegen-1"
SUFFIX = ".o"
_objects = DiskCache(SUFFIX, b"SXADOBJ1")

#: What the caches did in this process: ``compiled`` (a cold compile), ``memory_hits``,
#: ``disk_hits``, ``disk_writes``, ``disk_rejected`` (a bad entry was found and ignored).
stats = _objects.stats

# key -> whatever the compiler keeps for a loaded module (engine, addresses, builtin).
memory: dict[str, Any] = {}

__all__ = ["FORMAT", "SUFFIX", "clear", "directory", "enabled", "key", "load", "memory", "stats",
           "store"]


def key(ir_text: str) -> str:
    return digest(FORMAT, versions(), ir_text)


def load(key_: str) -> bytes | None:
    """The cached object code of ``key_``, or None (absent, disabled or invalid)."""
    return _objects.load(key_)


def store(key_: str, payload: bytes) -> None:
    _objects.store(key_, payload)


def clear() -> None:
    """Empty the disk cache and forget the in-memory entries. Kernels already handed out keep
    working (their code stays loaded); the next compile of anything starts cold."""
    memory.clear()
    _objects.clear()
