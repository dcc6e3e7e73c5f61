"""Files that survive the process: one checksummed entry per key, written atomically.

An entry is one file ``<key><suffix>``:

    magic (8 bytes) | key digest (32) | payload length (8, little endian) | sha256(payload) (32)
    | payload

An entry whose magic, key, length or checksum does not match (truncated, corrupted, foreign) is
counted as rejected and never returned; the next store overwrites it. Location:
``$SXAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/sxad``, else ``~/.cache/sxad``. ``SXAD_CACHE=0``
turns every disk cache off. Disk errors (read-only home, full disk) only cost recomputation:
the first failed write to a directory warns (``CacheWarning``) that this process keeps its
compiled code in memory only.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import threading
import warnings
from collections import Counter
from pathlib import Path

_HEADER = struct.Struct("<8s32sQ32s")


class CacheWarning(RuntimeWarning):
    """The cache directory cannot be written: compiled code is cached in memory only."""


_warned: set[Path] = set()   # directories already warned about
_warned_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("SXAD_CACHE", "1") != "0"


def directory() -> Path:
    explicit = os.environ.get("SXAD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sxad"


def digest(*parts: str) -> str:
    """A cache key: the sha256 of ``parts``, kept apart from each other."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class DiskCache:
    """The entries of one kind (``suffix``, ``magic``) in the cache directory."""

    def __init__(self, suffix: str, magic: bytes) -> None:
        assert len(magic) == 8
        self.suffix, self.magic = suffix, magic
        #: ``disk_hits``, ``disk_writes``, ``disk_rejected`` (a bad entry was found, ignored),
        #: ``disk_errors`` (a write failed)
        self.stats: Counter[str] = Counter()

    def path(self, key: str) -> Path:
        return directory() / (key + self.suffix)

    def load(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (absent, disabled or invalid)."""
        if not enabled():
            return None
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        payload = self._unpack(key, data)
        self.stats["disk_hits" if payload is not None else "disk_rejected"] += 1
        return payload

    def _unpack(self, key: str, data: bytes) -> bytes | None:
        if len(data) < _HEADER.size:
            return None
        magic, key_digest, length, checksum = _HEADER.unpack_from(data)
        payload = data[_HEADER.size:]
        if (magic != self.magic or key_digest != bytes.fromhex(key) or length != len(payload)
                or hashlib.sha256(payload).digest() != checksum):
            return None
        return payload

    def store(self, key: str, payload: bytes) -> None:
        """Write an entry atomically: readers see the old file, no file, or the whole new one."""
        if not enabled():
            return
        header = _HEADER.pack(self.magic, bytes.fromhex(key), len(payload),
                              hashlib.sha256(payload).digest())
        folder = directory()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=self.suffix)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(header + payload)
                os.replace(tmp, self.path(key))
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as err:
            self.stats["disk_errors"] += 1
            _warn_unwritable(folder, err)
            return
        self.stats["disk_writes"] += 1

    def clear(self) -> None:
        """Delete this kind's entries."""
        folder = directory()
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if entry.suffix == self.suffix and entry.is_file():
                try:
                    entry.unlink()
                except OSError:
                    pass


def _warn_unwritable(folder: Path, err: OSError) -> None:
    with _warned_lock:
        if folder in _warned:
            return
        _warned.add(folder)
    warnings.warn(f"sxad cannot write its cache directory {folder} ({err.strerror or err}); "
                  f"compiled code is kept in memory for this process only. Set SXAD_CACHE_DIR "
                  f"to a writable directory, or SXAD_CACHE=0 to turn the disk cache off.",
                  CacheWarning, stacklevel=4)
