"""Arrays as Python objects: numpy arrays are mutable, and several names can be bound to one.
In the IR arrays are immutable values, so an in-place update (``W -= g``, ``x[i] = v``) makes
a new value of the same *object*, and every name bound to the object (``V = W``; a tuple that
holds it; the hidden name keeping an argument's current state) is rebound to it. Values numpy
would give as views (``W[0]``, ``W.T``) are never updated in place: sxad does not write through
them."""
from __future__ import annotations

from ..ir import Value, dtype_of, is_array, rank_of
from .expressions import Expressions
from .promotion import KIND
from .state import Shared


class Objects(Expressions):

    def in_place(self, old: Value, new: Value, label: str) -> Value:
        """``new`` as the value an in-place update of the array ``old`` leaves: numpy keeps the
        array's dtype and shape (refusing to turn ints into floats, or to broadcast it)."""
        if rank_of(new.type) > rank_of(old.type):
            raise self.fail(f"this in-place update would broadcast `{label}` ({old.type}) to "
                            f"rank {rank_of(new.type)}; numpy cannot do that in place")
        if KIND[dtype_of(new.type)] > KIND[dtype_of(old.type)]:
            raise self.fail(f"this in-place update would store {dtype_of(new.type)} values "
                            f"into `{label}`, an array of {dtype_of(old.type)}; numpy refuses "
                            f"the cast (write `{label} = {label} ...` to make a new array)")
        return self.to_dtype(new, dtype_of(old.type))

    def update_object(self, old: Value, new: Value) -> None:
        """The array ``old`` was updated in place to ``new``: rebind every name bound to it."""
        view = self.shared.views.get(old)
        if view is not None:
            raise self.fail(f"this updates in place an array that numpy gives as a view of "
                            f"another ({view}); sxad does not write through views: update the "
                            f"original array (`W[0] += ...` rather than `row = W[0]; row += ...`)")
        obj = self.shared.object_of(old)
        self.shared.objects[new] = obj
        for name, bound in list(self.st.env.items()):
            self.st.env[name] = _replace_object(bound, obj, new, self.shared)


def _replace_object(bound: object, obj: Value, new: Value, shared: Shared) -> object:
    """``bound`` with every state of the array object ``obj`` replaced by ``new``."""
    if isinstance(bound, Value):
        return new if is_array(bound.type) and shared.object_of(bound) is obj else bound
    if isinstance(bound, tuple):
        return tuple(_replace_object(x, obj, new, shared) for x in bound)
    return bound
