"""IR to JSON-compatible data and back, for the on-disk program cache.

Plain data only (numbers, strings, lists): reading a cache entry can build IR and nothing else,
unlike pickle, which can run code.
"""
from __future__ import annotations

import json
from typing import Any

from .core import Block, Func, Loc, Op, Value
from .prim import Prim
from .types import Type, all_types

FORMAT = 1
_TYPES: dict[str, Type] = {t.name: t for t in all_types()}


class FormatError(ValueError):
    """The data does not describe a valid function."""


def dumps(func: Func) -> str:
    ids: dict[Value, int] = {}
    values: list[list[Any]] = []

    def ref(value: Value) -> int:
        if value not in ids:
            ids[value] = len(values)
            values.append([value.type.name, value.hint])
        return ids[value]

    def block(b: Block) -> dict[str, Any]:
        return {"params": [ref(p) for p in b.params], "ops": [op_(o) for o in b.ops],
                "yields": [ref(y) for y in b.yields]}

    def op_(o: Op) -> list[Any]:
        loc = [o.loc.file, o.loc.line, o.loc.col] if o.loc else None
        return [o.prim.value, [ref(a) for a in o.args], [ref(r) for r in o.results],
                [[k, v] for k, v in o.attrs], [block(r) for r in o.regions], loc]

    body = block(func.body)
    return json.dumps({"format": FORMAT, "name": func.name, "arg_names": list(func.arg_names),
                       "tuple_result": func.tuple_result,
                       "mutated": list(func.mutated), "values": values, "body": body},
                      separators=(",", ":"))


def _attr(value: Any) -> Any:
    """An attribute as the IR holds it: JSON lists back to tuples (axes, perm)."""
    return tuple(_attr(v) for v in value) if isinstance(value, list) else value


def loads(text: str) -> Func:
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise FormatError(f"IR format {data.get('format')!r}, expected {FORMAT}")
        values = [Value(_TYPES[t], str(h)) for t, h in data["values"]]

        def block(b: dict[str, Any]) -> Block:
            return Block(tuple(values[i] for i in b["params"]), tuple(op_(o) for o in b["ops"]),
                         tuple(values[i] for i in b["yields"]))

        def op_(o: list[Any]) -> Op:
            prim, args, results, attrs, regions, loc = o
            return Op(Prim(prim), tuple(values[i] for i in args),
                      tuple(values[i] for i in results),
                      tuple((str(k), _attr(v)) for k, v in attrs), tuple(block(r) for r in regions),
                      Loc(*loc) if loc else None)

        return Func(str(data["name"]), block(data["body"]), tuple(data["arg_names"]),
                    bool(data["tuple_result"]), tuple(int(i) for i in data.get("mutated", ())))
    except FormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise FormatError(f"not a serialized sxad function: {err}") from None
