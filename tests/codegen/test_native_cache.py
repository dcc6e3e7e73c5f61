"""The object-code caches: a fresh process loads from disk; a bad entry is detected and
recompiled, never loaded; the switches and the location."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import codegen
from codegen import cache
from sxad.ir import F64, I64

import native_programs as P

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

PROBE = """
import json, sys
sys.path[:0] = [{root!r}, {here!r}]
import codegen, native_programs as P
f = codegen.compile_native(P.tape_roundtrip())
g = codegen.compile_native(P.nested_loops())
print(json.dumps({{"stats": dict(codegen.cache.stats), "f": f(0.75, 500), "g": g(0.3, 9)}}))
"""


def run_probe(cache_dir: Path) -> dict:
    env = dict(os.environ, SXAD_CACHE_DIR=str(cache_dir))
    env.pop("SXAD_CACHE", None)
    script = PROBE.format(root=str(ROOT), here=str(HERE))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_fresh_process_loads_from_disk(tmp_path):
    cold = run_probe(tmp_path)
    assert cold["stats"].get("compiled") == 2 and cold["stats"].get("disk_writes") == 2
    warm = run_probe(tmp_path)
    assert warm["stats"].get("disk_hits") == 2 and "compiled" not in warm["stats"]
    assert warm["f"] == cold["f"] and warm["g"] == cold["g"]


def probe_func(tag: str):
    """A function no other test compiles, so its entry is this test's alone."""
    return P.make_func(f"probe_{tag}", [("x", F64), ("n", I64)],
                       lambda b, x, n: [b.mul(b.exp(x), b.cast(n, F64))])


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SXAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SXAD_CACHE", raising=False)
    return tmp_path


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        flipped = bytearray(data)
        flipped[-100] ^= 0x40
        path.write_bytes(bytes(flipped))
    elif how == "foreign":
        path.write_bytes(b"\x7fELF not an sxad entry" * 50)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "other-key":   # a valid entry of another key, copied under this name
        other = next(p for p in path.parent.glob("*.o") if p != path)
        path.write_bytes(other.read_bytes())


@pytest.mark.parametrize("how", ["truncated", "flipped", "foreign", "empty", "other-key"])
def test_bad_entry_is_recompiled_not_loaded(cache_dir, how):
    codegen.compile_native(probe_func(how + "_other"))
    kernel = codegen.compile_kernel(probe_func(how))
    entry = cache_dir / (kernel.key + cache.SUFFIX)
    assert entry.is_file()
    corrupt(entry, how)
    cache.memory.clear()
    before = cache.stats.copy()
    again = codegen.compile_native(probe_func(how))
    assert cache.stats["disk_rejected"] == before["disk_rejected"] + 1
    assert cache.stats["compiled"] == before["compiled"] + 1
    assert again(0.0, 3) == 3.0
    assert cache.load(kernel.key) is not None   # rewritten whole


@pytest.mark.parametrize("payload", [b"", b"garbage" * 100, b"\x7fELF\x02\x01" + bytes(100)],
                         ids=["empty", "garbage", "bad-elf"])
def test_intact_entry_with_bad_object_is_recompiled(cache_dir, payload):
    kernel = codegen.compile_kernel(probe_func(f"payload_{len(payload)}"))
    cache.store(kernel.key, payload)   # a well-formed entry whose content is not object code
    cache.memory.clear()
    before = cache.stats.copy()
    again = codegen.compile_native(probe_func(f"payload_{len(payload)}"))
    assert cache.stats["disk_rejected"] == before["disk_rejected"] + 1
    assert cache.stats["compiled"] == before["compiled"] + 1
    assert again(0.0, 3) == 3.0


def test_memory_hit_returns_the_same_builtin(cache_dir):
    first = codegen.compile_native(probe_func("memory"))
    before = cache.stats["memory_hits"]
    assert codegen.compile_native(probe_func("memory")) is first
    assert cache.stats["memory_hits"] == before + 1


def test_disabled_cache_writes_nothing(cache_dir, monkeypatch):
    monkeypatch.setenv("SXAD_CACHE", "0")
    assert codegen.compile_native(probe_func("disabled"))(1.0, 2) == pytest.approx(5.43656365691809)
    assert not list(cache_dir.glob("*.o"))


def test_clear_empties_the_directory(cache_dir):
    keep = codegen.compile_native(probe_func("clear"))
    assert list(cache_dir.glob("*.o"))
    cache.clear()
    assert not list(cache_dir.glob("*.o"))
    assert keep(0.0, 2) == 2.0   # kernels handed out keep working


def test_location(monkeypatch, tmp_path):
    monkeypatch.setenv("SXAD_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache.directory() == tmp_path / "explicit"
    monkeypatch.delenv("SXAD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.directory() == tmp_path / "xdg" / "sxad"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.directory() == tmp_path / "home" / ".cache" / "sxad"


def test_key_covers_ir_and_versions():
    assert cache.key("a") != cache.key("b")
    assert len(cache.key("a")) == 64
