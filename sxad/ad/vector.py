"""Vector mode: several tangents (or cotangents) through one sweep.

``batch_program(f, batched, lifted)`` is a batch-axis transform: the parameters at positions
``batched`` get a leading axis of length K (one direction per row; every batched parameter has
the same K), every value depending on them carries that axis too, and every other value (the
primal computation, the tape of primal values) stays as it was, computed once. Applied to a
tangent program (``jvp_program``) with its tangent parameters batched, it gives J·T for K
directions at once; applied to an adjoint program with its cotangents batched, Jᵀ·C.

Rules, by kind of primitive (tables keyed by ``Prim`` below):

- elementwise (every prim of ``RULES``): numpy broadcasting aligns trailing axes, so a batched
  argument of lower rank than the result gets size-1 axes after its batch axis
  (``expand_dims``) and then broadcasts correctly against the unbatched ones;
- reductions, ``transpose``, ``expand_dims``, ``dim``: their axes shift by one;
- ``unbroadcast``/``broadcast_like``: the leading broadcast axes are summed explicitly, and the
  shape to fit is that of ``like`` with the batch axis in front (``lift``);
- ``index``/``index_add``/``set_index``: a ``":"`` in front of the spec keeps the batch axis;
  ``reshape`` gets the batch length as its first dim, ``squeeze`` shifted axes, ``full`` of a
  batched value is that value broadcast over the dims;
- ``matmul``: the batched forms as a matmul with the operands swapped or transposed, or as a
  broadcast product summed over the contracted axis;
- ``if``/``for``/``while``: regions are transformed recursively; a carried or merged value is
  batched when any of its sources is, and unbatched sources are lifted (zeros plus the value);
- ``push``/``pop``: a batched value is stored with its batch axis.

A primitive without a rule here (``UNBATCHED`` lists them) makes ``batch_program`` fall back,
for that program, to a ``for`` loop over the K directions inside one program (``loop_program``:
each direction is picked with ``index`` and its result stored with ``set_index``).
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..ir import (ArrayType, Block, Func, Op, Prim, Type, Value, dtype_of, is_array, rank_of)
from ..ir.types import BOOL, I64, MAX_RANK
from ..prims import RULES, Emitter
from .common import max_slot

__all__ = ["NoBatchRule", "UNBATCHED", "batch_program", "batched_type", "batched_values",
           "loop_program", "unbatched_prims"]


class NoBatchRule(Exception):
    """A primitive (or a use of one) the batch transform has no rule for: ``batch_program``
    catches it and builds the loop over the directions instead."""

    def __init__(self, prim: Prim, why: str = "no batching rule") -> None:
        super().__init__(f"{prim}: {why}")
        self.prim = prim


def batched_type(t: Type) -> ArrayType:
    """``t`` with a leading batch axis."""
    rank = rank_of(t) + 1
    if rank > MAX_RANK:
        raise NoBatchRule(Prim.EXPAND_DIMS, f"a batched {t} would pass rank {MAX_RANK}")
    return ArrayType(dtype_of(t), rank)


# --------------------------------------------------------------------------- analysis

def batched_values(func: Func, seeds: Sequence[Value]) -> set[Value]:
    """Values that depend on ``seeds`` (through data, carried values, branch merges and tape
    slots). A ``dim`` never does: a batched value's other axes are its unbatched shape."""
    out = set(seeds)
    slots: set[object] = set()
    while True:
        size = (len(out), len(slots))
        _sweep(func.body, out, slots)
        if (len(out), len(slots)) == size:
            return out


def _sweep(block: Block, out: set[Value], slots: set[object]) -> None:
    for op in block.ops:
        if op.prim is Prim.IF:
            for region in op.regions:
                _sweep(region, out, slots)
            out.update(r for j, r in enumerate(op.results)
                       if any(region.yields[j] in out for region in op.regions))
        elif op.prim in (Prim.FOR, Prim.WHILE):
            init, param_sets, body = _loop_parts(op)
            for j, value in enumerate(init):
                if value in out or body.yields[j] in out:
                    out.update(params[j] for params in param_sets)
                    out.add(op.results[j])
            for region in op.regions:
                _sweep(region, out, slots)
        elif op.prim is Prim.PUSH:
            if op.args[0] in out:
                slots.add(op.attr("slot"))
        elif op.prim is Prim.POP:
            if op.attr("slot") in slots:
                out.add(op.result)
        elif op.prim is not Prim.DIM and any(a in out for a in op.args):
            out.update(op.results)


def _loop_parts(op: Op) -> tuple[tuple[Value, ...], list[tuple[Value, ...]], Block]:
    if op.prim is Prim.FOR:
        body = op.regions[0]
        return op.args[3:], [body.params[1:]], body
    cond, body = op.regions
    return op.args, [cond.params, body.params], body


# --------------------------------------------------------------------------- the transform

def batch_program(func: Func, batched: Sequence[int], lifted: Sequence[int] = ()) -> Func:
    """``func`` with the parameters at positions ``batched`` carrying a leading batch axis;
    the results at positions ``lifted`` carry it too (an unbatched one, e.g. a zero tangent, is
    broadcast over the batch). Falls back to ``loop_program`` when a primitive has no rule."""
    try:
        return _Batch(func, batched).build(lifted)
    except NoBatchRule:
        return loop_program(func, batched, lifted)


def unbatched_prims(func: Func) -> set[Prim]:
    """The primitives of ``func`` that have no batching rule."""
    return {op.prim for op in func.body.walk() if op.prim not in _RULES
            and op.prim not in _CONTROL and op.prim not in RULES}


class _Batch:
    def __init__(self, func: Func, batched: Sequence[int]) -> None:
        if not batched:
            raise ValueError("batch_program needs at least one batched parameter")
        self.func = func
        seeds = [func.params[i] for i in batched]
        self.batched = batched_values(func, seeds)
        self.env: dict[Value, Value] = {p: Value(batched_type(p.type), p.hint) for p in seeds}
        self.first = self.env[seeds[0]]
        self.k_zeros: Value | None = None

    def build(self, lifted: Sequence[int]) -> Func:
        func = self.func
        b = Emitter([self.env.get(p, p) for p in func.params])
        self.k_zeros = self._zeros_of_k(b)
        self.block_ops(func.body, b)
        yields = [self.get(r) for r in func.results]
        for j in lifted:
            if func.results[j] not in self.batched:
                yields[j] = self.lift(b, yields[j])
        return Func(f"{func.name}_batched", b.finish(yields), func.arg_names, func.tuple_result)

    def _zeros_of_k(self, b: Emitter) -> Value:
        """K zeros: the batch length, for lifting unbatched values (a reduction of the first
        batched parameter, so nothing but its shape is read)."""
        first = self.first
        if first.type.rank > 1:
            first = b.reduce_sum(first, axes=tuple(range(1, first.type.rank)))
        return b.zeros_like(first, hint="k_zeros")

    # ------------------------------------------------------------------ values
    def get(self, value: Value) -> Value:
        return self.env.get(value, value)

    def is_batched(self, value: Value) -> bool:
        return value in self.batched

    def lift(self, b: Emitter, value: Value) -> Value:
        """An unbatched ``value`` repeated along a new batch axis (zeros of K plus it)."""
        dtype = dtype_of(value.type)
        if dtype in (BOOL,):
            raise NoBatchRule(Prim.ADD, f"cannot broadcast a {value.type} over the batch")
        zeros = b.cast(self.k_zeros, dtype)
        rank = rank_of(value.type)
        if rank:
            zeros = b.expand_dims(zeros, axes=tuple(range(1, rank + 1)))
        return b.add(zeros, value, hint=value.hint)

    def aligned(self, b: Emitter, value: Value, rank: int) -> Value:
        """A batched ``value`` with size-1 axes after its batch axis up to ``rank`` (its rank
        unbatched), so that it broadcasts like the unbatched value did; others as they are."""
        if not self.is_batched(value):
            return value
        new = self.get(value)
        missing = rank - rank_of(value.type)
        if missing > 0:
            new = b.expand_dims(new, axes=tuple(range(1, missing + 1)))
        return new

    def batched_result(self, b: Emitter, op: Op, prim: Prim, args: Sequence[Value],
                       attrs: Sequence[tuple[str, object]] = ()) -> None:
        """Append ``prim(args)`` as the batched form of ``op``'s one result."""
        result = op.result
        (new,) = b.op(prim, args, [batched_type(result.type)], attrs=tuple(attrs),
                      hints=[result.hint])
        self.env[result] = new

    # ------------------------------------------------------------------ ops
    def block_ops(self, block: Block, b: Emitter) -> None:
        for op in block.ops:
            self.op(op, b)

    def op(self, op: Op, b: Emitter) -> None:
        control = _CONTROL.get(op.prim)
        if control is not None:
            control(self, op, b)
        elif not any(self.is_batched(a) for a in op.args):
            b.append(op)
        elif op.prim in _RULES:
            _RULES[op.prim](self, op, b)
        elif op.prim in RULES and not RULES[op.prim].structural:
            self.elementwise(op, b)
        else:
            raise NoBatchRule(op.prim)

    def elementwise(self, op: Op, b: Emitter) -> None:
        rank = rank_of(op.result.type)
        args = [self.aligned(b, a, rank) for a in op.args]
        self.batched_result(b, op, op.prim, args, op.attrs)

    # ------------------------------------------------------------------ control flow
    def region(self, block: Block, lift: Sequence[int]) -> Block:
        """``block`` transformed; the yields at positions ``lift`` are batched."""
        params = []
        for p in block.params:
            if self.is_batched(p):
                self.env[p] = Value(batched_type(p.type), p.hint)
            params.append(self.get(p))
        b = Emitter(params)
        self.block_ops(block, b)
        yields = [self.get(y) for y in block.yields]
        for j in lift:
            if not self.is_batched(block.yields[j]):
                yields[j] = self.lift(b, yields[j])
        return b.finish(yields)

    def new_results(self, op: Op) -> tuple[Value, ...]:
        out = []
        for r in op.results:
            if self.is_batched(r):
                self.env[r] = Value(batched_type(r.type), r.hint)
            out.append(self.get(r))
        return tuple(out)

    def carried(self, op: Op) -> list[int]:
        return [j for j, r in enumerate(op.results) if self.is_batched(r)]

    def start(self, b: Emitter, values: Sequence[Value], js: Sequence[int]) -> list[Value]:
        out = [self.get(v) for v in values]
        for j in js:
            if not self.is_batched(values[j]):
                out[j] = self.lift(b, values[j])
        return out

    def if_op(self, op: Op, b: Emitter) -> None:
        js = self.carried(op)
        regions = tuple(self.region(r, js) for r in op.regions)
        b.append(op.replace(results=self.new_results(op), regions=regions))

    def for_op(self, op: Op, b: Emitter) -> None:
        js = self.carried(op)
        init = self.start(b, op.args[3:], js)
        body = self.region(op.regions[0], [j for j in js])
        b.append(op.replace(args=(*op.args[:3], *init), results=self.new_results(op),
                            regions=(body,)))

    def while_op(self, op: Op, b: Emitter) -> None:
        js = self.carried(op)
        cond_block, body_block = op.regions
        if self.is_batched(cond_block.yields[0]):
            raise NoBatchRule(Prim.WHILE, "the loop condition depends on a direction")
        init = self.start(b, op.args, js)
        cond = self.region(cond_block, ())
        body = self.region(body_block, js)
        b.append(op.replace(args=tuple(init), results=self.new_results(op), regions=(cond, body)))

    def push_op(self, op: Op, b: Emitter) -> None:
        b.append(op.replace(args=(self.get(op.args[0]),)))

    def pop_op(self, op: Op, b: Emitter) -> None:
        b.append(op.replace(results=self.new_results(op)))

    # ------------------------------------------------------------------ array rules
    def expand_dims(self, op: Op, b: Emitter) -> None:
        axes = tuple(a + 1 for a in op.attr("axes"))
        self.env[op.result] = b.expand_dims(self.get(op.args[0]), axes=axes,
                                            hint=op.result.hint)

    def dim(self, op: Op, b: Emitter) -> None:
        b.append(op.replace(args=(self.get(op.args[0]),),
                            attrs=(("axis", op.attr("axis") + 1),)))

    def reduce(self, op: Op, b: Emitter) -> None:
        (x,) = op.args
        axes = op.attr("axes")
        axes = range(rank_of(x.type)) if axes is None else axes
        self.env[op.result] = b.emit(op.prim, self.get(x), hint=op.result.hint,
                                     axes=tuple(a + 1 for a in axes),
                                     keepdims=op.attr("keepdims"))

    def transpose(self, op: Op, b: Emitter) -> None:
        (x,) = op.args
        perm = op.attr("perm")
        perm = tuple(reversed(range(rank_of(x.type)))) if perm is None else perm
        self.env[op.result] = b.transpose(self.get(x), perm=(0, *(p + 1 for p in perm)),
                                          hint=op.result.hint)

    def like_shape(self, b: Emitter, like: Value) -> Value:
        """A value of ``like``'s batched shape: the batched ``like``, or ``like`` lifted."""
        return self.get(like) if self.is_batched(like) else self.lift(b, like)

    def unbroadcast(self, op: Op, b: Emitter) -> None:
        ct, like = op.args
        if not self.is_batched(ct):
            raise NoBatchRule(op.prim, "a batched `like` with an unbatched cotangent")
        new = self.get(ct)
        extra = rank_of(ct.type) - rank_of(like.type)
        if extra > 0:  # the leading axes numpy broadcast over: summed here, behind the batch
            new = b.reduce_sum(new, axes=tuple(range(1, extra + 1)))
        if rank_of(like.type):
            new = b.unbroadcast(new, self.like_shape(b, like))
        self.env[op.result] = new

    def broadcast_like(self, op: Op, b: Emitter) -> None:
        x, like = op.args
        new = self.aligned(b, x, rank_of(like.type))
        self.env[op.result] = b.broadcast_like(new, self.like_shape(b, like),
                                               hint=op.result.hint)

    def no_batched_index(self, op: Op, first: int) -> None:
        """Index arguments (i64) never carry directions; guard the rules below anyway."""
        if any(self.is_batched(a) for a in op.args[first:]):
            raise NoBatchRule(op.prim, "an index depends on a direction")

    def spec(self, op: Op) -> tuple[tuple[str, object], ...]:
        """``op``'s attrs with ``":"`` in front of its spec: the batch axis is kept whole."""
        return tuple((k, (":", *v) if k == "spec" else v) for k, v in op.attrs)

    def region_rank(self, op: Op, like: Value, first: int) -> int:
        """The rank of ``like[spec over op.args[first:]]``: where a value is read or written."""
        from ..array_prims import _index_type
        return rank_of(_index_type(like.type, [a.type for a in op.args[first:]],
                                   tuple(op.attr("spec"))))

    def index(self, op: Op, b: Emitter) -> None:
        self.no_batched_index(op, 1)
        self.batched_result(b, op, op.prim, [self.get(op.args[0]), *op.args[1:]], self.spec(op))

    def index_add(self, op: Op, b: Emitter) -> None:
        ct, like = op.args[:2]
        self.no_batched_index(op, 2)
        ct_new = self.aligned(b, ct, self.region_rank(op, like, 2))
        self.batched_result(b, op, op.prim, [ct_new, self.like_shape(b, like), *op.args[2:]],
                            self.spec(op))

    def set_index(self, op: Op, b: Emitter) -> None:
        x, v = op.args[:2]
        self.no_batched_index(op, 2)
        v_new = self.aligned(b, v, self.region_rank(op, x, 2))
        self.batched_result(b, op, op.prim, [self.like_shape(b, x), v_new, *op.args[2:]],
                            self.spec(op))

    def reshape(self, op: Op, b: Emitter) -> None:
        self.no_batched_index(op, 1)
        x = self.get(op.args[0])
        count = b.dim(x, axis=0)
        self.batched_result(b, op, op.prim, [x, count, *op.args[1:]], op.attrs)

    def reshape_like(self, op: Op, b: Emitter) -> None:
        x, like = op.args
        self.batched_result(b, op, op.prim, [self.like_shape(b, x), self.like_shape(b, like)])

    def full(self, op: Op, b: Emitter) -> None:
        """full(v, dims…) with v batched: v along the batch axis, broadcast over dims."""
        self.no_batched_index(op, 1)
        value, dims = op.args[0], op.args[1:]
        zeros = b.full(b.const(0, value.type), *dims)
        spread = b.expand_dims(self.get(value), axes=tuple(range(1, len(dims) + 1)))
        self.env[op.result] = b.add(spread, zeros, hint=op.result.hint)

    def squeeze(self, op: Op, b: Emitter) -> None:
        axes = op.attr("axes")
        if axes is None:   # which axes have size 1 is known at run time only: K might
            raise NoBatchRule(op.prim, "squeeze of every size-1 axis")
        self.batched_result(b, op, op.prim, [self.get(op.args[0])],
                            (("axes", tuple(a + 1 for a in axes)),))

    def matmul(self, op: Op, b: Emitter) -> None:
        a, c = op.args
        if self.is_batched(a) and self.is_batched(c):
            raise NoBatchRule(op.prim, "both operands carry directions")
        ranks = (rank_of(a.type), rank_of(c.type))
        rule = _MATMUL_LEFT if self.is_batched(a) else _MATMUL_RIGHT
        self.env[op.result] = rule[ranks](b, self.get(a), self.get(c))


# matmul with the left operand batched: A (K, …) @ c
def _left_vector(b: Emitter, a: Value, c: Value) -> Value:
    return b.matmul(a, c)            # (K,n)@(n,) → (K,);  (K,n)@(n,p) → (K,p)


def _left_matrix_vector(b: Emitter, a: Value, c: Value) -> Value:
    return b.reduce_sum(b.mul(a, c), axes=(2,))                      # (K,m,n)·(n,) → (K,m)


def _left_matrix_matrix(b: Emitter, a: Value, c: Value) -> Value:
    # (K,m,n,1)·(n,p) summed over n → (K,m,p)
    return b.reduce_sum(b.mul(b.expand_dims(a, axes=(3,)), c), axes=(2,))


# matmul with the right operand batched: a @ C (K, …)
def _right_vector_vector(b: Emitter, a: Value, c: Value) -> Value:
    return b.matmul(c, a)            # (K,n)@(n,) → (K,)


def _right_matrix_vector(b: Emitter, a: Value, c: Value) -> Value:
    return b.matmul(c, b.transpose(a))   # (K,n)@(n,m) → (K,m)


def _right_vector_matrix(b: Emitter, a: Value, c: Value) -> Value:
    # (n,1)·(K,n,p) summed over n → (K,p)
    return b.reduce_sum(b.mul(b.expand_dims(a, axes=(1,)), c), axes=(1,))


def _right_matrix_matrix(b: Emitter, a: Value, c: Value) -> Value:
    # (m,n,1)·(K,1,n,p) summed over n → (K,m,p)
    return b.reduce_sum(b.mul(b.expand_dims(a, axes=(2,)), b.expand_dims(c, axes=(1,))),
                        axes=(2,))


_MATMUL_LEFT = {(1, 1): _left_vector, (1, 2): _left_vector, (2, 1): _left_matrix_vector,
                (2, 2): _left_matrix_matrix}
_MATMUL_RIGHT = {(1, 1): _right_vector_vector, (2, 1): _right_matrix_vector,
                 (1, 2): _right_vector_matrix, (2, 2): _right_matrix_matrix}

Handler = Callable[[_Batch, Op, Emitter], None]

_CONTROL: dict[Prim, Handler] = {Prim.IF: _Batch.if_op, Prim.FOR: _Batch.for_op,
                                 Prim.WHILE: _Batch.while_op, Prim.PUSH: _Batch.push_op,
                                 Prim.POP: _Batch.pop_op}

# Array-only primitives with a batching rule; every elementwise prim of ``RULES`` has one too.
_RULES: dict[Prim, Handler] = {
    Prim.EXPAND_DIMS: _Batch.expand_dims, Prim.DIM: _Batch.dim,
    Prim.ZEROS_LIKE: _Batch.elementwise, Prim.TRANSPOSE: _Batch.transpose,
    Prim.REDUCE_SUM: _Batch.reduce, Prim.REDUCE_MAX: _Batch.reduce,
    Prim.REDUCE_MIN: _Batch.reduce, Prim.REDUCE_PROD: _Batch.reduce,
    Prim.UNBROADCAST: _Batch.unbroadcast, Prim.BROADCAST_LIKE: _Batch.broadcast_like,
    Prim.MATMUL: _Batch.matmul,
    Prim.INDEX: _Batch.index, Prim.INDEX_ADD: _Batch.index_add, Prim.SET_INDEX: _Batch.set_index,
    Prim.RESHAPE: _Batch.reshape, Prim.RESHAPE_LIKE: _Batch.reshape_like,
    Prim.SQUEEZE: _Batch.squeeze, Prim.FULL: _Batch.full,
}


def _unbatched() -> tuple[str, ...]:
    from ..prims import ARRAY_RULES
    return tuple(sorted(p.value for p in ARRAY_RULES if p not in _RULES))


#: Array primitives without a batching rule: a program using one on a batched value runs its
#: directions in a loop inside the program (``loop_program``).
UNBATCHED = _unbatched()


# --------------------------------------------------------------------------- loop fallback

def loop_program(func: Func, batched: Sequence[int], lifted: Sequence[int] = ()) -> Func:
    """What ``batch_program`` gives, computed by a ``for`` loop over the K directions inside
    one program: row k of each batched parameter is read with ``index``, ``func``'s body runs
    on it, and the lifted results are written into row k of zero-initialised outputs with
    ``set_index``. The primal part runs K times: this is the fallback, not the fast path."""
    index, set_index = Prim.INDEX, Prim.SET_INDEX
    seeds = [func.params[i] for i in batched]
    new_params = {p: Value(batched_type(p.type), p.hint) for p in seeds}
    b = Emitter([new_params.get(p, p) for p in func.params])
    first = new_params[seeds[0]]
    k = b.dim(first, axis=0, hint="n_dirs")
    # One unbatched run gives the results that carry no batch axis (and the outputs' shapes).
    slots = _Slots(max_slot(func.body) + 1)
    plain = _inline(b, func, {p: _row(b, new_params[p], b.const(0), index) for p in seeds},
                    slots)
    outs = [_zeros_batched(b, plain[j], first) for j in lifted]
    i = Value(I64, "k")
    carried = [Value(v.type, v.hint) for v in outs]
    body = Emitter([i, *carried])
    results = _inline(body, func, {p: _row(body, new_params[p], i, index) for p in seeds},
                      slots)
    written = [body.op(set_index, [c, results[j], i], [c.type], attrs=[("spec", ("i",))])[0]
               for c, j in zip(carried, lifted)]
    finals = b.op(Prim.FOR, [b.const(0), k, b.const(1), *outs], [v.type for v in outs],
                  regions=[body.finish(written)], hints=[v.hint for v in outs])
    yields = list(plain)
    for j, v in zip(lifted, finals):
        yields[j] = v
    return Func(f"{func.name}_looped", b.finish(yields), func.arg_names, func.tuple_result)


def _row(b: Emitter, batched: Value, k: Value, index: Prim) -> Value:
    (row,) = b.op(index, [batched, k], [_unbatched_type(batched.type)], attrs=[("spec", ("i",))],
                  hints=[batched.hint])
    return row


def _unbatched_type(t: ArrayType) -> Type:
    return ArrayType(t.dtype, t.rank - 1) if t.rank > 1 else t.dtype


def _zeros_batched(b: Emitter, like: Value, first: Value) -> Value:
    """Zeros of ``like``'s shape with a batch axis as long as ``first``'s."""
    zeros = b.zeros_like(first) if first.type.rank == 1 else b.zeros_like(
        b.reduce_sum(first, axes=tuple(range(1, first.type.rank))))
    zeros = b.cast(zeros, dtype_of(like.type))
    rank = rank_of(like.type)
    if rank:
        zeros = b.expand_dims(zeros, axes=tuple(range(1, rank + 1)))
    return b.mul(zeros, b.zeros_like(like) if is_array(like.type) else b.const(0, like.type))


class _Slots:
    """Tape slots for the copies of a body: each copy's push/pop pairs get slots of their own."""

    def __init__(self, start: int) -> None:
        self.next = start

    def renumber(self, func: Func) -> dict[object, int]:
        used = sorted({op.attr("slot") for op in func.body.walk() if op.attr("slot") is not None})
        table = {s: self.next + k for k, s in enumerate(used)}
        self.next += len(used)
        return table


def _inline(b: Emitter, func: Func, bound: dict[Value, Value], slots: _Slots) -> list[Value]:
    """``func``'s body copied into ``b`` with fresh values, parameters replaced per ``bound``
    (the others are the outer function's own parameters, visible everywhere)."""
    env: dict[Value, Value] = dict(bound)
    table = slots.renumber(func)
    for op in func.body.ops:
        b.append(_copy_op(op, env, table))
    return [env.get(r, r) for r in func.results]


def _copy_op(op: Op, env: dict[Value, Value], table: dict[object, int]) -> Op:
    results = tuple(_fresh(r, env) for r in op.results)
    regions = tuple(_copy_block(r, env, table) for r in op.regions)
    attrs = tuple((k, table[v] if k == "slot" else v) for k, v in op.attrs)
    return op.replace(args=tuple(env.get(a, a) for a in op.args), results=results,
                      regions=regions, attrs=attrs)


def _copy_block(block: Block, env: dict[Value, Value], table: dict[object, int]) -> Block:
    params = tuple(_fresh(p, env) for p in block.params)
    ops = tuple(_copy_op(op, env, table) for op in block.ops)
    return Block(params, ops, tuple(env.get(y, y) for y in block.yields))


def _fresh(value: Value, env: dict[Value, Value]) -> Value:
    env[value] = Value(value.type, value.hint)
    return env[value]
