"""Floor 3: Python source to IR. ``lower`` parses a Python function of numbers, arrays (the
numpy subset of docs/ARRAYS.md) and tuples of them, and gives a verified IR ``Func``
specialised to argument types (arrays updated in place are results too: ``Func.mutated``);
``fingerprint`` keys caches on its source; ``watch`` gives guards that tell when a function has
changed since (``unchanged``).

Modules: ``lowering`` (entry, calls of user functions), ``statements`` and ``loops`` (control
flow), ``objects`` (in-place updates of arrays, aliases, views), ``expressions`` (operators,
names, calls), ``promotion`` (dtypes: Python's and numpy 2's rules), ``library`` (elementwise
math functions), ``arrays`` and ``numpy_table`` (numpy functions with axes, shapes, dtypes;
array methods and attributes), ``subscripts`` (indexing, item updates, tuple items), ``calls``
(transformed callees)."""
from .fingerprint import Guard, fingerprint, unchanged, watch
from .lowering import lower

__all__ = ["Guard", "fingerprint", "lower", "unchanged", "watch"]
