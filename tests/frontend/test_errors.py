"""Every construct outside the subset raises ``UnsupportedError`` naming it, at the right line
and column, with the source line and a caret under the offending code."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import pytest

from sxad.errors import SourceUnavailableError, UnsupportedError
from sxad.frontend import fingerprint, lower
from sxad.ir import F64, I64

LOG = []
SETTINGS = {"a": 1.0}
CONSTANT = 2.0


class Thing:
    def scale(self, x):
        return x


THING = Thing()


def foo(x):
    return x


# --------------------------------------------------------------------------- the functions

def uses_list_append(x):
    LOG.append(x)
    return x


def uses_list_comprehension(x):
    ys = [x for _ in range(3)]
    return x


def uses_lambda(x):
    g = lambda t: t * 2  # noqa: E731
    return x


def uses_with(x):
    with open("f") as fh:
        pass
    return x


def uses_try(x):
    try:
        y = x
    except ValueError:
        y = 0.0
    return y


def uses_global(x):
    global CONSTANT
    return x


def make_nonlocal():
    k = 1.0

    def uses_nonlocal(x):
        nonlocal k
        return x
    return uses_nonlocal


def uses_yield(x):
    yield x


def uses_class(x):
    class Inner:
        pass
    return x


def uses_star_args(x, *rest):
    return x


def uses_kwargs(x, **options):
    return x


def uses_keyword_only(x, *, scale=1.0):
    return x


def uses_string(x):
    label = "x"
    return x


def uses_list(x):
    ys = [x, x]
    return x


def uses_dict(x):
    return SETTINGS["a"] * x


def uses_dict_literal(x):
    d = {"a": x}
    return x


def uses_set(x):
    s = {x, 1.0}
    return x


def uses_list(x):
    y = [x, x]
    return x


def uses_linalg(x):
    return np.linalg.inv(x)


def uses_unknown_function(x):
    return round(x)


def uses_unknown_object(x):
    return THING.scale(x)


def uses_attribute_of_value(x):
    return x.real


def recursive(x):
    if x < 1:
        return x
    return recursive(x - 1)


def ping(x):
    return pong(x) + 1


def pong(x):
    return ping(x) * 2


def for_over_number(x):
    s = 0.0
    for v in x:
        s += v
    return s


def for_else(x, n):
    for i in range(n):
        x = x * 2
    else:
        x = 0.0
    return x


def while_else(x):
    while x > 1:
        x = x / 2
    else:
        x = 0.0
    return x


def uses_walrus(x):
    if (y := x * 2) > 1:
        return y
    return x


def uses_assert(x):
    assert x > 0
    return x


def uses_del(x):
    y = x
    del y
    return x


def uses_print(x):
    print(x)
    return x


def uses_import(x):
    import os
    return x


def uses_undefined(x):
    return x * undefined_name  # noqa: F821


def possibly_unbound_branch(x):
    if x > 0:
        y = x * 2
    return y


def possibly_unbound_loop(x, n):
    for i in range(n):
        t = x * i
    return t


def loop_target_after(x, n):
    for i in range(n):
        x = x * 2
    return x + i


def used_before_assignment(x):
    y = z + x
    z = 1.0
    return y


def float_range(x):
    s = 0.0
    for i in range(x):
        s += 1.0
    return s


def bare_return(x):
    return


def falls_off_end(x):
    if x > 0:
        return x


def no_return(x):
    y = x * 2


def return_shapes_differ(x):
    if x > 0:
        return x, x
    y = x
    return y


def uses_is(x):
    return 1.0 if x is None else x


def uses_bitwise(x, n):
    return n & 1


def uses_none(x):
    y = None
    return x


def uses_nested_def(x):
    def helper(t):
        return t
    return x


def uses_raise(x):
    raise ValueError("no")


def uses_fstring(x):
    s = f"{x}"
    return x


def uses_starred_assign(x):
    a, *b = x, x, x
    return a


def uses_subscript_assign(x):
    LOG[0] = x
    return x


def calls_variable(f):
    return f(1.0)


def _needs_two(a, b):
    return a + b


def missing_argument(x):
    return _needs_two(x)


def unknown_keyword(x):
    return _needs_two(x, c=1.0)


def _list_default(x, ys=[1.0]):
    return x


def non_number_default(x):
    return _list_default(x)


def _helper_with_print(t):
    print(t)
    return t


def error_inside_helper(x):
    return _helper_with_print(x) * 2


def uses_module_as_value(x):
    return x * math


def uses_match(x):
    match x:
        case _:
            return x


def uses_dict_comprehension(x):
    d = {k: x for k in range(3)}
    return x


def uses_generator_expression(x):
    return sum(x for _ in range(3))


def bad_unpack(x):
    a, b = x
    return a


def tuple_in_arithmetic(x):
    return (x, x) * 2


# --------------------------------------------------------------------------- the cases

@dataclass(frozen=True)
class Bad:
    fn: object
    message: str   # a part of the message
    snippet: str   # the code the caret must sit under (the first one after the `def` line)
    types: tuple = (F64,)
    line: str = ""  # text that picks the line, if not the snippet's first line
    at: object = None  # the function whose source has the error, if not ``fn``


BAD = [
    Bad(uses_list_append, "`list.append` is not supported in differentiated code",
        "LOG.append"),
    Bad(uses_list_comprehension, "list comprehensions are not supported",
        "[x for _ in range(3)]"),
    Bad(uses_lambda, "lambda expressions are not supported", "lambda t: t * 2"),
    Bad(uses_with, "`with` statements are not supported", 'with open("f") as fh:'),
    Bad(uses_try, "`try` statements are not supported", "try:"),
    Bad(uses_global, "`global` declarations are not supported", "global CONSTANT"),
    Bad(make_nonlocal(), "`nonlocal` declarations are not supported", "nonlocal k"),
    Bad(uses_yield, "generators (`yield`) are not supported", "yield x"),
    Bad(uses_class, "class definitions are not supported", "class Inner:"),
    Bad(uses_star_args, "`*args` parameters are not supported", "rest"),
    Bad(uses_kwargs, "`**kwargs` parameters are not supported", "options"),
    Bad(uses_keyword_only, "keyword-only parameters are not supported", "scale"),
    Bad(uses_string, "strings are not supported", '"x"'),
    Bad(uses_list, "lists are not supported", "[x, x]"),
    Bad(uses_dict, "subscripts (`x[i]`) are not supported", 'SETTINGS["a"]'),
    Bad(uses_dict_literal, "dicts are not supported", '{"a": x}'),
    Bad(uses_set, "sets are not supported", "{x, 1.0}"),
    Bad(uses_list, "lists are not supported", "[x, x]"),
    Bad(uses_linalg, "`np.linalg.inv` is not supported", "np.linalg.inv"),
    Bad(uses_unknown_function, "`round` is not a supported function", "round"),
    Bad(uses_unknown_object, "`Thing.scale` is not supported in differentiated code",
        "THING.scale"),
    Bad(uses_attribute_of_value, "`x` is a variable", "x"),
    Bad(recursive, "recursive call to `recursive`", "recursive"),
    Bad(ping, "recursive call to `ping`", "ping", at=pong),
    Bad(for_over_number, "`for` loops are only supported over `range(...)`", "x"),
    Bad(for_else, "`for ... else` is not supported", "for i in range(n):", (F64, I64)),
    Bad(while_else, "`while ... else` is not supported", "while x > 1:"),
    Bad(uses_walrus, "assignment expressions (the walrus `:=`) are not supported",
        "y := x * 2"),
    Bad(uses_assert, "`assert` statements are not supported", "assert x > 0"),
    Bad(uses_del, "`del` statements are not supported", "del y"),
    Bad(uses_print, "`print` is not a supported function", "print"),
    Bad(uses_import, "`import` inside the function is not supported", "import os"),
    Bad(uses_undefined, "name `undefined_name` is not defined", "undefined_name"),
    Bad(possibly_unbound_branch, "variable `y` is possibly unbound here: it is assigned at "
                                 "line", "y", line="return y"),
    Bad(possibly_unbound_loop, "variable `t` is possibly unbound", "t", (F64, I64),
        line="return t"),
    Bad(loop_target_after, "variable `i` is possibly unbound", "i", (F64, I64),
        line="return x + i"),
    Bad(used_before_assignment, "variable `z` is used before it is assigned", "z"),
    Bad(float_range, "range() needs int bounds", "x"),
    Bad(bare_return, "`return` without a value is not supported", "return"),
    Bad(falls_off_end, "can reach its end without returning a value", "def falls_off_end(x):"),
    Bad(no_return, "function `no_return` does not return a value", "def no_return(x):"),
    Bad(return_shapes_differ, "this `return` gives a single value but the `return` at line",
        "return y"),
    Bad(uses_is, "`is` comparisons are not supported", "x is None"),
    Bad(uses_bitwise, "operator `&` is not supported", "n & 1", (F64, I64)),
    Bad(uses_none, "`None` is not supported", "None"),
    Bad(uses_nested_def, "nested function definitions are not supported", "def helper(t):"),
    Bad(uses_raise, "`raise` statements are not supported", 'raise ValueError("no")'),
    Bad(uses_fstring, "strings (f-strings) are not supported", 'f"{x}"'),
    Bad(uses_starred_assign, "starred assignment", "a, *b"),
    Bad(uses_subscript_assign, "assignment to a subscript", "LOG[0]"),
    Bad(calls_variable, "`f` is a variable", "f"),
    Bad(missing_argument, "call to `_needs_two` is missing the argument `b`",
        "_needs_two(x)"),
    Bad(unknown_keyword, "`_needs_two` has no parameter `c`", "c=1.0"),
    Bad(non_number_default, "the default value of `ys` in `_list_default` is not a number",
        "_list_default(x)"),
    Bad(uses_module_as_value, "`math` is a module, not a number", "math"),
    Bad(uses_match, "`match` statements are not supported", "match x:"),
    Bad(uses_dict_comprehension, "dict comprehensions are not supported",
        "{k: x for k in range(3)}"),
    Bad(uses_generator_expression, "`sum` is not a supported function", "sum"),
    Bad(bad_unpack, "cannot unpack a single value", "a, b"),
    Bad(tuple_in_arithmetic, "a tuple can only be unpacked", "(x, x)"),
]


def _position(fn, snippet: str, line: str = "") -> tuple[int, int]:
    """(file line, 1-based column) of the first ``snippet`` in ``fn``'s body (on the first line
    holding ``line``, if given), else in its ``def`` line."""
    lines, first = inspect.getsourcelines(fn)
    for k in list(range(1, len(lines))) + [0]:
        if line:  # the last ``snippet`` inside ``line``
            start = lines[k].find(line)
            col = lines[k].rfind(snippet, start, start + len(line)) if start >= 0 else -1
        else:
            col = lines[k].find(snippet)
        if col >= 0:
            return first + k, col + 1
    raise AssertionError(f"{snippet!r} not in the source of {fn.__name__}")


@pytest.mark.parametrize("bad", BAD, ids=[b.fn.__name__ for b in BAD])
def test_unsupported_construct_is_reported_at_its_place(bad: Bad) -> None:
    with pytest.raises(UnsupportedError) as info:
        lower(bad.fn, bad.types)
    err = info.value
    where = bad.at or bad.fn
    line, col = _position(where, bad.snippet, bad.line)
    assert bad.message in err.what, str(err)
    assert err.loc is not None and err.loc.file == __file__
    assert (err.loc.line, err.loc.col) == (line, col), str(err)
    text = str(err).splitlines()
    lines, first = inspect.getsourcelines(where)
    assert text[0] == f"{__file__}:{line}:{col}: {err.what}"
    assert text[1] == "    " + lines[line - first].rstrip()
    assert text[2] == "    " + " " * (col - 1) + "^" * len(bad.snippet)


def test_errors_in_a_helper_point_into_the_helper() -> None:
    with pytest.raises(UnsupportedError) as info:
        lower(error_inside_helper, [F64])
    line, col = _position(_helper_with_print, "print")
    assert (info.value.loc.line, info.value.loc.col) == (line, col)


def test_possibly_unbound_names_the_assignment() -> None:
    with pytest.raises(UnsupportedError) as info:
        lower(possibly_unbound_branch, [F64])
    assigned, _ = _position(possibly_unbound_branch, "y = x * 2")
    assert f"assigned at line {assigned}" in info.value.what


# --------------------------------------------------------------------------- source unavailable

def _exec_function(name: str = "hidden") -> object:
    namespace: dict = {}
    exec(f"def {name}(x):\n    return x * 2\n", namespace)
    return namespace[name]


def test_function_defined_by_exec_has_no_source() -> None:
    hidden = _exec_function()
    with pytest.raises(SourceUnavailableError, match="`hidden`"):
        lower(hidden, [F64])
    with pytest.raises(SourceUnavailableError, match="`hidden`"):
        fingerprint(hidden)


def test_builtins_have_no_source() -> None:
    with pytest.raises(SourceUnavailableError, match="sin"):
        lower(math.sin, [F64])


hidden_helper = _exec_function("hidden_helper")


def calls_hidden(x):
    return hidden_helper(x) + 1


def test_calling_a_function_without_source_is_reported_at_the_call() -> None:
    with pytest.raises(SourceUnavailableError) as info:
        lower(calls_hidden, [F64])
    assert "hidden_helper" in info.value.what
    assert (info.value.loc.line, info.value.loc.col) == _position(calls_hidden, "hidden_helper")


two_lambdas = [lambda x: x + 1, lambda x: x * 2]  # noqa: E731


def test_lambdas_sharing_a_line_are_rejected() -> None:
    with pytest.raises(SourceUnavailableError, match="lambda"):
        lower(two_lambdas[0], [F64])
