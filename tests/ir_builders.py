"""Building structured control flow by hand, for tests that write IR directly."""
from __future__ import annotations

from sxad.ir import I64, Prim, Value
from sxad.prims import Emitter


def loop(b: Emitter, lo, hi, step, init, body_fn, reverse=False):
    """A ``for`` op whose body is built by ``body_fn(body_builder, i, *carried)``."""
    i = Value(I64, "i")
    params = [Value(v.type, v.hint) for v in init]
    body = Emitter([i, *params])
    yields = body_fn(body, i, *params)
    return b.op(Prim.FOR, [lo, hi, step, *init], [v.type for v in init],
                regions=[body.finish(yields)], hints=[v.hint for v in init])


def while_loop(b: Emitter, init, cond_fn, body_fn):
    cparams = [Value(v.type, v.hint) for v in init]
    cond = Emitter(cparams)
    c = cond_fn(cond, *cparams)
    bparams = [Value(v.type, v.hint) for v in init]
    body = Emitter(bparams)
    yields = body_fn(body, *bparams)
    return b.op(Prim.WHILE, list(init), [v.type for v in init],
                regions=[cond.finish([c]), body.finish(yields)], hints=[v.hint for v in init])


def branch(b: Emitter, cond, then_fn, else_fn, types):
    regions = []
    for fn in (then_fn, else_fn):
        e = Emitter([])
        regions.append(e.finish(fn(e)))
    return b.op(Prim.IF, [cond], types, regions=regions)
