"""Arrays as Python objects: numpy arrays are mutable, and several names can be bound to one.
In the IR arrays are immutable values, so an in-place update (``W -= g``, ``x[i] = v``) makes
a new value of the same *object*, and every name bound to the object (``V = W``; a tuple that
holds it; the hidden name keeping an argument's current state) is rebound to it.

Names that see the object otherwise follow numpy too. A view sxad can make again (basic
indexing, a transpose, ``x[None]``: ``Shared.derived``) is made again from the new state. A name
that only *may* share memory with the object (a merge of ``x`` and a new array, a view made
on some paths only or carried by a loop: ``Shared.maybe``) has an unknown value afterwards:
it becomes ``Stale``, an error to read. Values numpy would give as views (``W[0]``, ``W.T``)
are never updated in place themselves: sxad does not write through them."""
from __future__ import annotations

import numpy as np

from ..ir import Loc, ScalarType, Value, dtype_of, is_array, rank_of
from ..prims import NUMPY_TYPE
from .expressions import Expressions
from .promotion import KIND
from .state import Stale


class Objects(Expressions):
    tracked: list[str]  # hidden names holding the current state of each argument array

    def in_place(self, old: Value, new: Value, label: str, operand: Value) -> Value:
        """``new`` (``old`` op ``operand``) as the value an in-place update of the array
        ``old`` leaves: numpy keeps the array's dtype and shape (refusing to turn ints into
        floats, or to broadcast it: to a higher rank, known now; along an axis of length 1,
        checked at run time where ``operand`` is an array — ``broadcast_like``'s ValueError —
        except for an argument, whose final shape is checked when it is written back)."""
        if rank_of(new.type) > rank_of(old.type):
            raise self.fail(f"this in-place update would broadcast `{label}` ({old.type}) to "
                            f"rank {rank_of(new.type)}; numpy cannot do that in place")
        self.check_cast(new, dtype_of(old.type), label)
        new = self.to_dtype(new, dtype_of(old.type))
        if is_array(operand.type) and rank_of(new.type) and \
                self.shared.object_of(old) not in self.shared.inputs:
            new = self.b.broadcast_like(new, old)
        return new

    def check_cast(self, new: Value, dtype: ScalarType, label: str) -> None:
        """numpy's in-place operators cast their result only within its kind ("same_kind")."""
        if KIND[dtype_of(new.type)] > KIND[dtype]:
            source, target = (np.dtype(NUMPY_TYPE[d]).name for d in (dtype_of(new.type), dtype))
            raise self.fail(f"this in-place update would store {source} values into "
                            f"`{label}`, an array of {target}; numpy refuses the cast from "
                            f"{source} to {target} in place (write `{label} = {label} ...` to "
                            f"make a new array)")

    def update_object(self, old: Value, new: Value) -> None:
        """The array ``old`` was updated in place to ``new``: rebind every name bound to it,
        make its views again, and mark the names that may share memory with it stale."""
        view = self.shared.views.get(old)
        if view is not None:
            raise self.fail(f"this updates in place an array that numpy gives as a view of "
                            f"another ({view}); sxad does not write through views: update the "
                            f"original array (`W[0] += ...` rather than `row = W[0]; row += ...`)")
        obj = self.shared.object_of(old)
        touched = self.shared.sharing(old)
        self.shared.objects[new] = obj
        if old in self.shared.maybe:
            self.shared.maybe[new] = self.shared.maybe[old]
        label = self._label(old)
        for name, bound in list(self.st.env.items()):
            after = self._after_update(bound, obj, old, new, touched)
            if after is _STALE:
                if name in self.tracked:   # an argument array the caller sees afterwards
                    raise self.fail(f"this updates `{label}` in place, and `{label}` may share "
                                    f"memory with the argument `{name[1:]}` (on some paths "
                                    f"only): sxad cannot tell whether `{name[1:]}` changes; "
                                    f"copy it first (`{label} = {name[1:]}.copy()`)")
                after = Stale(self._here(), self._stale_message(name, label))
            self.st.env[name] = after

    def _after_update(self, bound: object, obj: Value, old: Value, new: Value,
                      touched: frozenset[Value]) -> object:
        """What a name bound to ``bound`` holds after ``old`` became ``new`` (``_STALE``:
        unknown)."""
        if isinstance(bound, tuple):
            parts = tuple(self._after_update(x, obj, old, new, touched) for x in bound)
            return _STALE if any(p is _STALE for p in parts) else parts
        if not isinstance(bound, Value) or not is_array(bound.type):
            return bound
        if self.shared.object_of(bound) is obj:
            return new
        derived = self.shared.derived.get(bound)
        if derived is not None and derived[0] is old:   # a view of it: make it again
            return self._remake(bound, new, derived[1])
        if self.shared.sharing(bound) & touched:
            return _STALE
        return bound

    def _remake(self, view: Value, base: Value, make: object) -> Value:
        again = make(base)
        shared = self.shared
        shared.derived[again] = (base, make)
        shared.objects[again] = shared.object_of(view)   # still the same view object
        shared.views[again] = shared.views[view]
        shared.maybe[again] = shared.maybe.get(view, frozenset())
        return again

    def _here(self) -> Loc | None:
        """Where the statement being lowered is."""
        if self.shared.current is None:
            return None
        where, node = self.shared.current
        return where.loc(node)

    def _label(self, v: Value) -> str:
        """A name the user knows ``v`` by."""
        for name, bound in self.st.env.items():
            if bound is v and not name.startswith("#"):
                return name
        return v.hint or "this array"

    def _stale_message(self, name: str, label: str) -> str:
        here = self._here()
        line = here.line if here is not None else "?"
        if name.startswith("#rows"):
            return (f"the array this `for` loop iterates over may share memory with `{label}`, "
                    f"which is updated in place at line {line}; sxad cannot tell what its next "
                    f"rows hold: loop over `range(len(...))` and index the array instead")
        return (f"`{name}` may share memory with `{label}`, which is updated in place at line "
                f"{line}; sxad copies arrays and cannot tell what `{name}` holds now: use "
                f"`{name} = {label}.copy()` or read it again after the update")


_STALE = object()  # a name whose value an update in place leaves unknown
