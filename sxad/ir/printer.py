"""The IR as stable text: deterministic names, one op per line, regions indented."""
from __future__ import annotations

from .core import Block, Func, Op
from .names import Namer, name_all
from .prim import Prim


def format_func(func: Func) -> str:
    names = name_all(func)
    params = ", ".join(f"{names[p]}: {p.type}" for p in func.params)
    lines = [f"func {func.name}({params}):"]
    _block(func.body, names, lines, "  ")
    lines.append("  return " + ", ".join(names[v] for v in func.results))
    if func.mutated:
        updated = ", ".join(func.arg_names[i] for i in func.mutated)
        lines.append(f"  # the last {len(func.mutated)} results update {updated} in place")
    return "\n".join(lines) + "\n"


def _block(block: Block, names: Namer, lines: list[str], indent: str) -> None:
    for op in block.ops:
        _op(op, names, lines, indent)


def _op(op: Op, names: Namer, lines: list[str], indent: str) -> None:
    lhs = ", ".join(f"{names[r]}: {r.type}" for r in op.results)
    lhs = f"{lhs} = " if lhs else ""
    args = ", ".join(names[a] for a in op.args)
    deeper = indent + "    "
    if op.prim is Prim.CONST:
        lines.append(f"{indent}{lhs}const {op.attr('value')!r}")
    elif op.prim is Prim.IF:
        lines.append(f"{indent}{lhs}if {args}:")
        then, other = op.regions
        _region(then, names, lines, deeper)
        lines.append(f"{indent}else:")
        _region(other, names, lines, deeper)
    elif op.prim is Prim.FOR:
        lo, hi, step, *init = op.args
        body = op.regions[0]
        order = "reversed range" if op.attr("reverse") else "range"
        carry = _carry(body.params[1:], init, names)
        lines.append(f"{indent}{lhs}for {names[body.params[0]]} in {order}("
                     f"{names[lo]}, {names[hi]}, {names[step]}){carry}:")
        _region(body, names, lines, deeper)
    elif op.prim is Prim.WHILE:
        cond, body = op.regions
        lines.append(f"{indent}{lhs}while{_carry(cond.params, op.args, names)}:")
        _region(cond, names, lines, deeper)
        lines.append(f"{indent}do{_carry(body.params, op.args, names, values=False)}:")
        _region(body, names, lines, deeper)
    else:
        attrs = "".join(f" {{{k}={v!r}}}" for k, v in op.attrs)
        lines.append(f"{indent}{lhs}{op.prim}({args}){attrs}")


def _carry(params, init, names: Namer, values: bool = True) -> str:
    if not params:
        return ""
    if values:
        pairs = ", ".join(f"{names[p]} = {names[v]}" for p, v in zip(params, init))
    else:
        pairs = ", ".join(names[p] for p in params)
    return f" carry ({pairs})"


def _region(block: Block, names: Namer, lines: list[str], indent: str) -> None:
    _block(block, names, lines, indent)
    lines.append(f"{indent}yield " + ", ".join(names[v] for v in block.yields))
