"""Floor 3: Python source to IR. ``lower`` parses a plain scalar Python function and gives a
verified IR ``Func`` specialised to argument types; ``fingerprint`` keys caches on its source;
``watch`` gives guards that tell when a function has changed since (``unchanged``)."""
from .fingerprint import Guard, fingerprint, unchanged, watch
from .lowering import lower

__all__ = ["Guard", "fingerprint", "lower", "unchanged", "watch"]
