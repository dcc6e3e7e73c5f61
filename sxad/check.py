"""``sxad.check_grad``: a gradient checked against finite differences, argument by argument.

    report = sxad.check_grad(f, 2.0, 5.0)                  # sxad's gradient of f
    report = sxad.check_grad(f, 2.0, 5.0, grad_fn=my_grad)  # a hand-written gradient
    assert report, report                                   # true when every argument agrees
    report.errors                                           # {"x1": 3e-13, "x2": 1e-12}

The reference is a 4-point central difference of the plain Python function (called as Python,
not through sxad), with step ``h = step·max(1, |x|)``; its error is about ``h⁴`` (truncation)
plus ``1e-16·|f|/h`` (rounding), far below the default tolerances for smooth functions. Near a
kink (``abs``, ``max``, a branch) the difference straddles it and cannot be trusted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .api import _Transformed, _arg_names, _normalize_wrt, _qualname, grad

__all__ = ["ArgumentCheck", "GradCheck", "check_grad"]

STEP = 2e-4  # relative step of the finite differences (the tests' own choice)


@dataclass(frozen=True)
class ArgumentCheck:
    """One argument's derivative against its finite-difference estimate."""

    name: str
    gradient: float     # the derivative checked (sxad's, or grad_fn's)
    numeric: float      # the finite-difference estimate
    abs_error: float
    rel_error: float    # abs_error / max(|gradient|, |numeric|); 0 when both are 0
    ok: bool


@dataclass(frozen=True, repr=False)
class GradCheck:
    """The result of ``check_grad``: true when every argument agrees."""

    function: str
    arguments: tuple[tuple[str, Any], ...]
    value: float
    checked: str                          # what was checked: "sxad (reverse mode)", "grad_fn"
    results: tuple[ArgumentCheck, ...]
    rtol: float
    atol: float
    step: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def errors(self) -> dict[str, float]:
        """The relative error of each argument checked."""
        return {r.name: r.rel_error for r in self.results}

    @property
    def failed(self) -> tuple[ArgumentCheck, ...]:
        return tuple(r for r in self.results if not r.ok)

    def __bool__(self) -> bool:  # so that ``assert sxad.check_grad(...)`` checks something
        return self.ok

    def __iter__(self) -> Iterator[ArgumentCheck]:
        return iter(self.results)

    def __getitem__(self, key: str | int) -> ArgumentCheck:
        if isinstance(key, int):
            return self.results[key]
        for r in self.results:
            if r.name == key:
                return r
        raise KeyError(key)

    def __str__(self) -> str:
        return render(self)

    __repr__ = __str__


def check_grad(f: Callable, *args: Any, wrt: Any = None, grad_fn: Callable | None = None,
               mode: str = "reverse", rtol: float = 1e-6, atol: float = 1e-8,
               step: float = STEP) -> GradCheck:
    """Check the gradient of ``f`` at ``args`` against central finite differences of ``f``.

    ``wrt``: the arguments to check (positions or names; default every float argument).
    ``grad_fn``: a hand-written gradient to check instead of sxad's: called as
    ``grad_fn(*args)``, it returns one derivative per argument checked (a float for one), or
    one per argument of ``f``. ``mode``: which of sxad's modes gives the gradient otherwise.
    An argument passes when ``|gradient − numeric| ≤ atol·max(1, |f(args)|) + rtol·max(|gradient|,
    |numeric|)``: ``atol`` is relative to the function's size, as the rounding error of the
    finite differences is."""
    fn = f.fn if isinstance(f, _Transformed) else f
    names = _arg_names(fn)
    if len(args) != len(names):
        raise TypeError(f"check_grad: {_qualname(fn)} takes {len(names)} argument(s) "
                        f"({', '.join(names)}), got {len(args)}")
    positions = _positions(fn, names, args, wrt)
    value = _call(fn, args)
    if grad_fn is None:
        gradient = _as_list(grad(fn, wrt=positions, mode=mode)(*args))
        checked = f"sxad ({mode} mode)"
    else:
        gradient = _from_grad_fn(grad_fn(*args), positions, len(names))
        checked = getattr(grad_fn, "__name__", "grad_fn")
    scale = max(1.0, abs(value)) if math.isfinite(value) else 1.0
    results = tuple(_compare(names[i], g, _difference(fn, args, i, step), rtol, atol * scale)
                    for i, g in zip(positions, gradient))
    arguments = tuple(zip(names, args))
    return GradCheck(_qualname(fn), arguments, value, checked, results, rtol, atol, step)


def _positions(fn: Callable, names: Sequence[str], args: Sequence[Any],
               wrt: Any) -> tuple[int, ...]:
    if wrt is None:
        positions = tuple(i for i, a in enumerate(args) if _is_float(a))
        if not positions:
            raise TypeError(f"check_grad: {_qualname(fn)} has no float argument to check "
                            f"(pass e.g. {names[0]}=2.0 rather than 2)" if names else
                            f"check_grad: {_qualname(fn)} takes no arguments")
        return positions
    positions, _ = _normalize_wrt(fn, wrt)
    for i in positions:
        if not _is_float(args[i]):
            raise TypeError(f"check_grad: cannot differentiate with respect to `{names[i]}`: "
                            f"it is {args[i]!r}, not a float")
    return positions


def _is_float(value: Any) -> bool:
    return isinstance(value, (float, np.floating))


def _call(fn: Callable, args: Sequence[Any]) -> float:
    with np.errstate(all="ignore"):
        out = fn(*args)
    if isinstance(out, (tuple, list)) or np.ndim(out) != 0:
        raise TypeError(f"check_grad needs {_qualname(fn)} to return one number, "
                        f"got {type(out).__name__}")
    return float(out)


def _difference(fn: Callable, args: Sequence[Any], i: int, step: float) -> float:
    """∂fn/∂args[i] by the 4-point central difference (error ~h⁴)."""
    x = float(args[i])
    h = step * max(1.0, abs(x))

    def at(delta: float) -> float:
        moved = list(args)
        moved[i] = x + delta
        return _call(fn, moved)
    return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)


def _as_list(out: Any) -> list[float]:
    return [float(v) for v in out] if isinstance(out, (tuple, list)) else [float(out)]


def _from_grad_fn(out: Any, positions: Sequence[int], n_args: int) -> list[float]:
    values = list(out) if isinstance(out, (tuple, list, np.ndarray)) else [out]
    if len(values) == len(positions):
        return [float(v) for v in values]
    if len(values) == n_args:
        return [float(values[i]) for i in positions]
    raise ValueError(f"check_grad: grad_fn returned {len(values)} value(s); expected "
                     f"{len(positions)} (one per argument checked) or {n_args} (one per "
                     f"argument)")


def _compare(name: str, gradient: float, numeric: float, rtol: float,
             atol: float) -> ArgumentCheck:
    error = abs(gradient - numeric)
    size = max(abs(gradient), abs(numeric))
    relative = error / size if size > 0 else 0.0
    if not (math.isfinite(gradient) and math.isfinite(numeric)):
        same = gradient == numeric  # the same infinity agrees; nan never does
        error, relative = (0.0, 0.0) if same else (math.inf, math.inf)
        return ArgumentCheck(name, gradient, numeric, error, relative, same)
    return ArgumentCheck(name, gradient, numeric, error, relative,
                         error <= atol + rtol * size)


# --------------------------------------------------------------------------- rendering

def render(check: GradCheck) -> str:
    args = ", ".join(f"{n} = {v!r}" for n, v in check.arguments)
    lines = [f"{check.function}({args}) = {check.value!r}",
             f"gradient of {check.checked} against central differences "
             f"(4 points, h = {check.step:g}·max(1, |x|))", ""]
    header = ("argument", "gradient", "finite difference", "abs error", "rel error", "")
    rows = [header] + [(r.name, f"{r.gradient:.16g}", f"{r.numeric:.16g}",
                        f"{r.abs_error:.1e}", f"{r.rel_error:.1e}", "ok" if r.ok else "FAILED")
                       for r in check.results]
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    tolerance = f"rtol {check.rtol:g}, atol {check.atol:g}"
    if check.ok:
        n = len(check.results)
        lines += ["", f"ok: {'the' if n == 1 else f'all {n}'} argument{'s' if n > 1 else ''} "
                      f"agree ({tolerance})"]
    else:
        names = ", ".join(r.name for r in check.failed)
        lines += ["", f"FAILED: {len(check.failed)} of {len(check.results)} disagree: {names} "
                      f"({tolerance})"]
    return "\n".join(lines)
