"""sxad: source-transformation automatic differentiation for Python.

Decorate an ordinary Python function (scalars, numpy arrays) and get its derivative as
generated code::

    @sxad.grad
    def f(x1, x2):
        return np.log(x1) + x1 * x2 - np.sin(x2)

    f(2.0, 5.0)              # 5.5
    print(sxad.source(f))    # the adjoint program sxad wrote
"""
from typing import Any

from .errors import SourceUnavailableError, SxadError, UnsupportedError

__version__ = "0.1.0"

_API = ("backend_stats", "grad", "hessian", "jacobian", "jit", "jvp", "show", "source", "stats",
        "tape_size", "value_and_grad", "vjp", "trace", "check_grad")
# Names that live in a module of their own rather than in ``api``.
_HOMES = {"trace": "tracing", "check_grad": "check"}

__all__ = ["SourceUnavailableError", "SxadError", "UnsupportedError", *_API]


def __getattr__(name: str) -> Any:
    # The API loads on first use, so importing one layer (``sxad.ir``) stays light.
    if name in _HOMES:
        from importlib import import_module
        return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'sxad' has no attribute {name!r}")
