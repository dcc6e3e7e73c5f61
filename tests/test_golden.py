"""Golden files of the generated adjoint source, reviewed as diffs.

Regenerate after an intended change with ``SXAD_UPDATE_GOLDEN=1 python -m pytest
tests/test_golden.py`` and review ``git diff tests/golden``.
"""
from __future__ import annotations

import numpy as np
import pytest

import sxad
from golden_programs import (GOLDEN, assert_matches_golden, early_exit, eq_3_44, kinks,
                             mse_2_2_1, nested_loops, newton_sqrt, piecewise, power_sum, seed,
                             sigmoid, softplus_loss)


CASES = {
    "seed": (seed, (2.0, 5.0), (0, 1)),
    "eq_3_44": (eq_3_44, (0.3,), 0),
    "sigmoid": (sigmoid, (0.5,), 0),
    "power_sum": (power_sum, (0.9, 4), 0),
    "newton_sqrt": (newton_sqrt, (2.0,), 0),
    "piecewise": (piecewise, (0.5, 1.0), (0, 1)),
    "nested_loops": (nested_loops, (0.7, 3), 0),
    "kinks": (kinks, (0.5, 1.5), (0, 1)),
    "softplus_loss": (softplus_loss, (0.5, 0.1, 2.0, 1.0), (0, 1)),
    "early_exit": (early_exit, (1.2, 8), 0),
    "mse_2_2_1": (mse_2_2_1, (0.1, 0.2, 0.3, 0.4, 0.5, 1.0), (0, 1, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_adjoint_matches_golden_file(name):
    fn, args, wrt = CASES[name]
    assert_matches_golden(f"{name}.py", sxad.source(fn, *args, wrt=wrt))


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_program_runs_and_agrees_with_grad(name):
    fn, args, wrt = CASES[name]
    namespace = {"np": np}
    exec((GOLDEN / f"{name}.py").read_text(), namespace)
    program = next(v for k, v in namespace.items() if k.endswith("_vjp"))
    with np.errstate(all="ignore"):
        out = program(*(np.float64(a) if isinstance(a, float) else a for a in args), 1.0)
    expected = sxad.grad(fn, wrt=wrt)(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    np.testing.assert_allclose(out[1:], expected, rtol=1e-12)
