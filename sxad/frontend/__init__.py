"""Floor 3: Python source to IR. ``lower`` parses a plain scalar Python function and gives a
verified IR ``Func`` specialised to argument types; ``fingerprint`` keys caches on its source."""
from .fingerprint import fingerprint
from .lowering import lower

__all__ = ["fingerprint", "lower"]
