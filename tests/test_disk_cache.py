"""A new process loads programs and object code from the disk cache instead of rebuilding."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import sxad, codegen
    from sxad import api
    from corpus import seed_f, sigmoid, power_loop
    t0 = time.perf_counter()
    grads = sxad.grad(seed_f, wrt=(0, 1))(2.0, 5.0)
    loop = sxad.grad(power_loop)(0.3, 5) + sxad.grad(sigmoid)(0.4)
    elapsed = time.perf_counter() - t0
    print(json.dumps({{"grads": grads, "loop": loop, "builds": dict(api.stats),
                      "objects": dict(codegen.cache.stats), "seconds": elapsed,
                      "sympy": "sympy" in sys.modules}}))
""")


def run(cache_dir) -> dict:
    env = dict(os.environ, SXAD_CACHE_DIR=str(cache_dir))
    env.pop("SXAD_CACHE", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=os.path.join(ROOT, "tests"))],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_second_process_transforms_and_compiles_nothing(tmp_path):
    cold = run(tmp_path)
    assert cold["builds"] and cold["objects"]["compiled"] >= 2
    warm = run(tmp_path)
    assert warm["grads"] == cold["grads"] and warm["loop"] == cold["loop"]
    transforms = {k: v for k, v in warm["builds"].items() if k != "kernels"}
    assert transforms == {}, "programs come from the disk cache"
    assert warm["objects"].get("compiled", 0) == 0 and warm["objects"]["disk_hits"] >= 2
    assert not warm["sympy"], "a warm start needs no sympy"


def test_a_corrupted_program_entry_is_rebuilt(tmp_path):
    cold = run(tmp_path)
    for entry in tmp_path.glob("*.ir"):
        entry.write_bytes(entry.read_bytes()[:-7] + b"garbage")
    again = run(tmp_path)
    assert again["grads"] == cold["grads"]
    assert again["builds"], "bad entries are rebuilt, never loaded"
