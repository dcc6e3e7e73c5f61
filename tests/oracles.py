"""Derivative oracles shared by the tests: finite differences on the plain Python function,
forward against reverse mode, the dot-product test, interpreter against generated code."""
from __future__ import annotations

import linecache
from typing import Callable, Sequence

import numpy as np

from tolerances import FD_STEP, TOL


def finite_difference(fn: Callable, args: Sequence, wrt: Sequence[int],
                      step: float = FD_STEP) -> list[float]:
    """∂fn/∂args[i] for i in wrt, by the 4-point stencil, calling ``fn`` itself."""
    grads = []
    for i in wrt:
        h = step * max(1.0, abs(args[i]))

        def at(delta: float) -> float:
            moved = list(args)
            moved[i] = args[i] + delta
            return float(fn(*moved))
        grads.append((8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h))
    return grads


def assert_close(actual, expected, kind: str, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               err_msg=what, **TOL[kind])


def load_source(source: str, serial=[0]):
    """Define the function ``generated`` in ``source`` so that ``inspect.getsource`` can read it
    back (as sxad needs): the text goes into ``linecache`` under a name of its own."""
    serial[0] += 1
    filename = f"<generated-{serial[0]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"np": np}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["generated"]
