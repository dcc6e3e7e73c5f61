"""The runtime library is built in the background on a cold machine (``codegen.prefetch``)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sxad

    @sxad.grad
    def f(x):
        return np.sum(np.exp(x)) + np.max(x)

    x = np.linspace(-1.0, 1.0, 7).astype(np.float32)
    g = f(x)
    e = np.exp(x) + (x == x.max())
    import codegen.helpers as h, codegen.prefetch as p
    print(json.dumps({"ok": bool(np.allclose(g, e, rtol=1e-5)), "loaded": sorted(h.loaded()),
                      "started": len(p._threads), "compiled": h.stats["compiled"]}))
""")


def _run(folder, text: str = SCRIPT) -> dict:
    script = folder / "program.py"     # sxad reads the function's source: a file, not -c
    script.write_text(text)
    env = dict(os.environ, SXAD_CACHE_DIR=str(folder / "cache"), PYTHONPATH=ROOT)
    env.pop("SXAD_CACHE", None)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_cold_machine_builds_the_predicted_library_in_the_background(tmp_path):
    cold = _run(tmp_path)
    assert cold["ok"]
    assert cold["started"] == 1
    # the guess for float32 arrays: heap, copy of 4 bytes, sum and max (all compiled once)
    assert {"sxad.rt.heap", "sxad.rt.copy.4", "sxad.rt.sum.f32", "sxad.rt.max.f32"} \
        <= set(cold["loaded"])
    assert cold["compiled"] == len(cold["loaded"])
    warm = _run(tmp_path)
    assert warm["ok"]
    assert warm["started"] == 0          # all on disk: no thread
    assert warm["compiled"] == 0


def test_the_guess_follows_the_argument_types():
    from codegen import blas
    from codegen.prefetch import predicted
    from sxad.ir import ArrayType, F32, F64, I64
    assert predicted([]) == []
    assert predicted([ArrayType(I64, 1)]) == ["sxad.rt.heap", "sxad.rt.pool"]
    assert predicted([ArrayType(F64, 1), ArrayType(I64, 1)]) == [
        "sxad.rt.heap", "sxad.rt.pool", "sxad.rt.copy.8", "sxad.rt.sum.f64", "sxad.rt.max.f64"]
    gemm = "sxad.rt.gemm.f32" if blas.available() else "sxad.rt.gemmk.f32"
    both = predicted([ArrayType(F32, 2), ArrayType(F64, 1)])
    assert both[2:6] == ["sxad.rt.copy.4", "sxad.rt.sum.f32", "sxad.rt.max.f32", gemm]
    assert len(both) == 9 and not any("gemm" in name for name in both[6:])   # no f64 matrix


MATMUL = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sxad
    from sxad.ir import F32

    def layer(x, w):
        return np.tanh(x @ w)

    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal(s).astype(np.float32) for s in [(256, 300), (300, 200)])
    f = sxad.jit(layer)
    first = f(x, w)
    from codegen import blas, prefetch
    at_first = F32 in blas.installed
    prefetch.wait()
    later = f(x, w)
    want = np.tanh(x.astype(np.float64) @ w)
    print(json.dumps({"ok": bool(np.allclose(first, want, atol=2e-4) and
                                 np.allclose(later, want, atol=2e-4)),
                      "at_first": at_first, "after": F32 in blas.installed}))
""")


def test_the_gemm_kernel_is_built_in_the_background_and_then_used(tmp_path):
    from codegen import blas
    if not blas.available():
        pytest.skip("without OpenBLAS every product calls the kernel itself")
    cold = _run(tmp_path, MATMUL)
    assert cold["ok"] and cold["after"]  # (built while the program was, or after its call)
    warm = _run(tmp_path, MATMUL)
    assert warm["ok"] and warm["at_first"]   # from the disk cache: installed before the call
