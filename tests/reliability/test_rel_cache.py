"""The on-disk cache: a truncated, corrupted or foreign entry is detected (checksum, key, then
content) and recompiled, never loaded; a checksummed entry holding a pickle or other foreign
bytes is rejected without being unpickled or executed; an unwritable cache directory degrades
to in-memory caching with one warning; processes writing the same entry at once never leave a
torn file (atomic rename) (docs/RELIABILITY.md, "The on-disk cache")."""
from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import sxad
from sxad import api, diskcache

ROOT = Path(__file__).resolve().parents[2]
IR = diskcache.DiskCache(".ir", b"SXADIR01")
OBJECTS = diskcache.DiskCache(".o", b"SXADOBJ1")

RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sxad, codegen
    from sxad import api

    def f(x, n):
        s = x
        for i in range(n):
            s = np.sin(s) * x
        return s

    def g(x, y):
        return np.log(x) + x * y - np.sin(y)

    out = [sxad.grad(f)(0.7, 5), sxad.value_and_grad(g, wrt=(0, 1))(2.0, 5.0),
           sxad.jit(f)(0.7, 5), sxad.jit(g)(2.0, 5.0), sxad.grad(f, mode="forward")(0.7, 5),
           sxad.hessian(g)(2.0, 5.0)]
    print(json.dumps({"out": out, "builds": dict(api.stats),
                      "ir": dict(api._saved_programs.stats), "objects": dict(codegen.cache.stats)}))
""")


def script(folder: Path) -> Path:
    """``RUN`` as a file (sxad reads the source of what it compiles)."""
    path = folder / "run_sxad.py"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(RUN)
    return path


def run(cache: Path) -> dict:
    """``RUN`` in a new process with its cache in ``cache``: what it computed and counted."""
    env = dict(os.environ, SXAD_CACHE_DIR=str(cache))
    env.pop("SXAD_CACHE", None)
    done = subprocess.run([sys.executable, str(script(cache.parent / "scripts"))], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.suffix in (".ir", ".o"))


def test_damaged_entries_are_rebuilt_never_loaded(tmp_path):
    cache = tmp_path / "cache"
    cold = run(cache)
    damage = [
        lambda b: b[: len(b) // 2],                           # truncated
        lambda b: b[:-10] + bytes([b[-10] ^ 1]) + b[-9:],      # one bit flipped
        lambda b: b"",                                         # empty
        lambda b: b[:80],                                      # the header alone
        lambda b: b[:8] + b"\0" * 32 + b[40:],                 # another key
        lambda b: b"SXADOBJ0" + b[8:],                         # another format
    ]
    objects = [p for p in entries(cache) if p.suffix == ".o"]
    programs = [p for p in entries(cache) if p.suffix == ".ir"]
    assert len(objects) >= 6 and programs
    for k, path in enumerate(objects + programs):
        path.write_bytes(damage[k % len(damage)](path.read_bytes()))
    objects[-1].write_bytes(objects[0].read_bytes())   # a foreign entry: another key's file
    warm = run(cache)
    assert warm["out"] == cold["out"]
    assert warm["objects"]["disk_rejected"] == len(objects), "every kernel's object is read"
    assert warm["objects"]["compiled"] == len(objects)
    assert warm["ir"]["disk_rejected"] >= 1   # (programs served by a saved caller are not read)
    again = run(cache)   # what was rebuilt was written back, whole
    assert again["out"] == cold["out"]
    assert again["ir"].get("disk_rejected", 0) == again["objects"].get("disk_rejected", 0) == 0
    assert again["objects"].get("compiled", 0) == 0


class Boobytrap:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checksummed_pickle_is_never_unpickled(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cold = run(cache)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Boobytrap(marker))
    monkeypatch.setenv("SXAD_CACHE_DIR", str(cache))
    for path in entries(cache):   # valid magic, key and checksum; foreign content
        kind = IR if path.suffix == ".ir" else OBJECTS
        kind.store(path.stem, payload)
        assert kind.load(path.stem) == payload
    monkeypatch.undo()
    warm = run(cache)
    assert warm["out"] == cold["out"]
    assert not marker.exists(), "a cache entry was unpickled"
    assert warm["ir"]["disk_rejected"] > 0 and warm["objects"]["disk_rejected"] > 0
    assert warm["objects"]["compiled"] > 0


READERS = ("sxad/diskcache.py", "sxad/ir/serialize.py", "codegen/cache.py", "codegen/compiler.py",
           "sxad/api.py")


@pytest.mark.parametrize("module", READERS)
def test_the_code_that_reads_entries_cannot_unpickle_or_evaluate(module):
    tree = ast.parse((ROOT / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else
                              [ast.alias(node.module or "")])}
    assert not imported & {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "__import__"}


# --------------------------------------------------------------------------- unwritable

def unwritable_target(x):
    return x * x * 3.0


def unwritable_other(x):
    return x * 5.0


def test_an_unwritable_directory_warns_once_and_caches_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("SXAD_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(diskcache.CacheWarning, match="cannot write its cache directory") as seen:
        assert sxad.grad(unwritable_target)(1.0) == 6.0
    ours = [w for w in seen if issubclass(w.category, diskcache.CacheWarning)]
    assert len(ours) == 1 and str(blocker) in str(ours[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", diskcache.CacheWarning)   # no second warning
        assert sxad.grad(unwritable_other)(1.0) == 5.0
        kernels = api.stats["kernels"]
        assert sxad.grad(unwritable_target)(2.0) == 12.0
    assert api.stats["kernels"] == kernels, "served from memory"


# --------------------------------------------------------------------------- concurrent writers

WRITER = textwrap.dedent("""
    import hashlib, sys
    from sxad.diskcache import DiskCache
    cache, me, rounds = DiskCache(".bin", b"SXADTEST"), int(sys.argv[1]), int(sys.argv[2])
    key = hashlib.sha256(b"one entry").hexdigest()
    payloads = [bytes([w]) * (300_000 + 7919 * w) for w in range(4)]
    torn = 0
    for r in range(rounds):
        cache.store(key, payloads[me])
        found = cache.load(key)
        if found is not None and found not in payloads:
            torn += 1
    print(torn, cache.stats["disk_rejected"])
""")


def test_processes_writing_one_entry_at_once_never_tear_it(tmp_path):
    env = dict(os.environ, SXAD_CACHE_DIR=str(tmp_path))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), "300"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for w in range(4)]
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert out.split() == ["0", "0"], "a reader saw a torn or rejected entry"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_processes_compiling_the_same_function_at_once(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, SXAD_CACHE_DIR=str(cache))
    runs = [subprocess.Popen([sys.executable, str(script(tmp_path / "scripts"))], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = []
    for r in runs:
        out, err = r.communicate(timeout=120)
        assert r.returncode == 0, err
        outs.append(json.loads(out.splitlines()[-1]))
    assert outs[0]["out"] == outs[1]["out"]
    after = run(cache)
    assert after["out"] == outs[0]["out"]
    assert after["objects"].get("compiled", 0) == 0
    assert after["ir"].get("disk_rejected", 0) == after["objects"].get("disk_rejected", 0) == 0
