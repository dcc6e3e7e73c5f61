"""Object-code caches: in memory (this process) and on disk (across processes).

Key: sha256 of the unoptimized LLVM IR text together with everything else that decides the object
code (``FORMAT``, llvmlite and LLVM versions, target triple, host CPU name and features).
Value: the optimized object code (``TargetMachine.emit_object``).

A disk entry is one file ``<key>.o`` written atomically (a temporary file renamed into place):

    MAGIC (8 bytes) | key digest (32) | payload length (8, little endian) | sha256(payload) (32)
    | payload

An entry whose magic, key, length or checksum does not match (truncated, corrupted, foreign) is
counted in ``stats["disk_rejected"]``, ignored and overwritten by a fresh compilation; it is
never loaded. Location: ``$SXAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/sxad``, else
``~/.cache/sxad``. ``SXAD_CACHE=0`` turns the disk cache off. Disk errors (read-only home, full
disk) only cost a recompilation.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from .runtime import versions

#: Bump when the meaning of cached objects changes without the IR text changing.
FORMAT = "sxad-codegen-1"
MAGIC = b"SXADOBJ1"
_HEADER = struct.Struct("<8s32sQ32s")
SUFFIX = ".o"

#: What the caches did in this process: ``compiled`` (a cold compile), ``memory_hits``,
#: ``disk_hits``, ``disk_writes``, ``disk_rejected`` (a bad entry was found and ignored).
stats: Counter[str] = Counter()

# key -> whatever the compiler keeps for a loaded module (engine, addresses, builtin).
memory: dict[str, Any] = {}


def key(ir_text: str) -> str:
    digest = hashlib.sha256()
    for part in (FORMAT, versions(), ir_text):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def enabled() -> bool:
    return os.environ.get("SXAD_CACHE", "1") != "0"


def directory() -> Path:
    explicit = os.environ.get("SXAD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sxad"


def _path(key_: str) -> Path:
    return directory() / (key_ + SUFFIX)


def load(key_: str) -> bytes | None:
    """The cached object code of ``key_``, or None (absent, disabled or invalid)."""
    if not enabled():
        return None
    try:
        data = _path(key_).read_bytes()
    except OSError:
        return None
    payload = _unpack(key_, data)
    stats["disk_hits" if payload is not None else "disk_rejected"] += 1
    return payload


def _unpack(key_: str, data: bytes) -> bytes | None:
    if len(data) < _HEADER.size:
        return None
    magic, digest, length, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size:]
    if (magic != MAGIC or digest != bytes.fromhex(key_) or length != len(payload)
            or hashlib.sha256(payload).digest() != checksum):
        return None
    return payload


def store(key_: str, payload: bytes) -> None:
    """Write an entry atomically: readers see the old file, no file, or the whole new one."""
    if not enabled():
        return
    header = _HEADER.pack(MAGIC, bytes.fromhex(key_), len(payload),
                          hashlib.sha256(payload).digest())
    try:
        folder = directory()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(header + payload)
            os.replace(tmp, _path(key_))
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return
    stats["disk_writes"] += 1


def clear() -> None:
    """Empty the disk cache and forget the in-memory entries. Kernels already handed out keep
    working (their code stays loaded); the next compile of anything starts cold."""
    memory.clear()
    folder = directory()
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.suffix == SUFFIX and entry.is_file():
            try:
                entry.unlink()
            except OSError:
                pass
