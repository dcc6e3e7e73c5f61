"""Source the compiler cannot take ends in ``sxad.UnsupportedError`` naming the construct, the
file, line and column; a function without readable source in ``SourceUnavailableError`` (or a
``TypeError`` for what is no Python function at all); and a function that changes after it was
compiled — its code, a constant or closure variable it reads, a helper it calls — is compiled
anew, on the native fast path too (docs/RELIABILITY.md, "Source")."""
from __future__ import annotations

import functools
import inspect
import math
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import codegen
import sxad
from sxad import api

# --------------------------------------------------------------------------- outside the subset
# Each function marks the offending line with ``# <-``.


class Thing:
    def scale(self, v):
        return 2.0 * v


THING = Thing()
SETTINGS = {"scale": 2.0}


def list_comprehension(x):
    ys = [x * k for k in range(3)]  # <-
    return x


def set_comprehension(x):
    ys = {x for _ in range(3)}  # <-
    return x


def generator_expression(x):
    return max(x * k for k in range(3))  # <-


def uses_lambda(x):
    double = lambda t: 2 * t  # <-  # noqa: E731
    return x


def uses_with(x):
    with open(os.devnull):  # <-
        pass
    return x


def uses_try(x):
    try:  # <-
        y = 1.0 / x
    except ZeroDivisionError:
        y = 0.0
    return y


def uses_global(x):
    global THING  # <-
    return x


def _make_nonlocal():
    k = 2.0

    def uses_nonlocal(x):
        nonlocal k  # <-
        return x * k
    return uses_nonlocal


uses_nonlocal = _make_nonlocal()


def generator(x):
    yield x  # <-


def defines_class(x):
    class Local:  # <-
        pass
    return x


def method_on_unknown_object(x):
    return THING.scale(x)  # <-


def attribute_of_a_variable(x):
    return x.real  # <-


def star_args(x, *rest):  # <-
    return x


def star_kwargs(x, **options):  # <-
    return x


def uses_string(x):
    label = "loss"  # <-
    return x


def uses_list(x):
    values = [x, x]  # <-
    return x


def uses_dict(x):
    values = {"x": x}  # <-
    return x


def reads_a_dict_global(x):
    return x * SETTINGS  # <-


def recursive(x):
    if x > 1.0:
        return recursive(x / 2.0)  # <-
    return x


def _even(x):
    return _odd(x - 1.0) if x > 0.0 else x  # <-


def _odd(x):
    return _even(x - 1.0) if x > 0.0 else x


def mutually_recursive(x):
    return _odd(x)


def generator_in_dead_code(x):
    if False:
        yield x  # <-
    return x


def global_in_dead_code(x):
    if x > 1e308 * 10:
        global SCALE  # <-
    return x


def calls_print(x):
    print(x)  # <-
    return x


def subscript(x):
    return x[0]  # <-


OUTSIDE = [
    (list_comprehension, "comprehension"), (set_comprehension, "comprehension"),
    (generator_expression, "generator"), (uses_lambda, "lambda"), (uses_with, "`with`"),
    (uses_try, "`try`"), (uses_global, "`global`"), (uses_nonlocal, "`nonlocal`"),
    (generator, "yield"), (generator_in_dead_code, "yield"),
    (global_in_dead_code, "`global`"), (defines_class, "class"), (method_on_unknown_object, "Thing.scale"),
    (attribute_of_a_variable, "variable"), (star_args, "*args"), (star_kwargs, "**kwargs"),
    (uses_string, "string"), (uses_list, "list"), (uses_dict, "dict"),
    (reads_a_dict_global, "SETTINGS"), (recursive, "recursive"), (mutually_recursive, "recursive"),
    (calls_print, "print"), (subscript, "subscript"),
]


def _marked_line(fn) -> int:
    """The file line of the ``# <-`` mark in ``fn`` or in a function it calls."""
    for candidate in (fn, _even):
        lines, first = inspect.getsourcelines(candidate)
        for k, line in enumerate(lines):
            if "# <-" in line:
                return first + k
    raise AssertionError(f"no mark in {fn.__name__}")


@pytest.mark.parametrize("fn, word", OUTSIDE, ids=[fn.__name__ for fn, _ in OUTSIDE])
def test_outside_the_subset_is_an_unsupported_error_at_its_line(fn, word):
    for transform in (sxad.grad, sxad.jit):
        with pytest.raises(sxad.UnsupportedError) as info:
            transform(fn)(1.5)
        err = info.value
        assert word.lower() in err.what.lower(), str(err)
        assert err.loc is not None and err.loc.file == __file__, str(err)
        assert err.loc.line == _marked_line(fn), str(err)
        first, source_line, caret = str(err).splitlines()[:3]
        assert first.startswith(f"{__file__}:{err.loc.line}:{err.loc.col}: ")
        assert source_line.strip() and set(caret.strip()) == {"^"}


def test_a_long_expression_is_an_unsupported_error_not_a_recursion_error(tmp_path):
    source = "def long(x):\n    return x" + " + 0.5 * x" * 1500 + "\n"
    path = tmp_path / "long_expression.py"
    path.write_text(source)
    namespace: dict = {}
    exec(compile(source, str(path), "exec"), namespace)
    with pytest.raises(sxad.UnsupportedError, match="nested too deeply") as info:
        sxad.grad(namespace["long"])(1.0)
    assert info.value.loc.line == 2


# --------------------------------------------------------------------------- no source to read

def test_exec_defined_functions_have_no_source():
    namespace: dict = {}
    exec("def hidden(x):\n    return x * 2.0\n", namespace)
    with pytest.raises(sxad.SourceUnavailableError, match="`hidden`.*REPL or by `exec`"):
        sxad.grad(namespace["hidden"])(1.0)


def test_the_repl_is_reported_with_its_reason():
    session = "import sxad\ndef f(x):\n    return x * x\n\nsxad.grad(f)(1.0)\n"
    done = subprocess.run([sys.executable, "-i", "-q"], input=session, capture_output=True,
                          text=True, timeout=60)
    assert "sxad.errors.SourceUnavailableError" in done.stderr
    assert "REPL" in done.stderr


@pytest.mark.parametrize("fn", [math.sin, np.sin, len, functools.partial(math.pow, 2.0),
                                Thing().scale, Thing], ids=repr)
def test_what_is_no_python_function_is_a_type_error(fn):
    with pytest.raises(TypeError, match="not a Python function"):
        sxad.grad(fn)


def test_a_wrapper_is_compiled_as_itself_not_as_what_it_wraps():
    def doubled(g):
        @functools.wraps(g)
        def wrapper(x):
            return 2.0 * g(x)
        return wrapper

    @doubled
    def square(x):
        return x * x
    assert sxad.jit(square)(3.0) == 18.0
    assert sxad.grad(square)(3.0) == 12.0


# --------------------------------------------------------------------------- changes noticed

SCALE = 2.0


def scaled(x):
    return SCALE * x


def _helper(x):
    return x + 1.0


def calls_helper(x):
    return 3.0 * _helper(x)


def _helper_with_default(x, k=2.0):
    return k * x


def calls_helper_with_default(x):
    return _helper_with_default(x)


config = types.ModuleType("config")
config.SCALE = 2.0


def reads_a_module_attribute(x):
    return config.SCALE * x * x


def _closure():
    k = 2.0

    def reads_a_cell(x):
        return k * x

    def set_k(value):
        nonlocal k
        k = value
    return reads_a_cell, set_k


@pytest.fixture
def restore():
    """Undo the changes a test makes to this module."""
    saved = dict(globals())
    code = (_helper.__code__, scaled.__code__, _helper_with_default.__defaults__)
    yield
    globals().update({k: saved[k] for k in ("SCALE", "_helper")})
    _helper.__code__, scaled.__code__, _helper_with_default.__defaults__ = code
    config.SCALE = 2.0


def _twice(g, *args):
    """Two calls: the second runs the kernel the first installed as ``g.__call__``."""
    g(*args)
    return g(*args)


def test_a_changed_global_constant_is_noticed_on_the_fast_path(restore):
    global SCALE
    g, j = sxad.grad(scaled), sxad.jit(scaled)
    assert (_twice(g, 1.0), _twice(j, 1.0)) == (2.0, 2.0)
    SCALE = 5.0
    assert (g(1.0), j(1.0)) == (5.0, 5.0)
    assert (g(1.0), j(1.0)) == (5.0, 5.0)   # and the new kernel is installed
    SCALE = 2.0
    assert (g(1.0), j(1.0)) == (2.0, 2.0)


def test_rebinding_an_equal_value_compiles_nothing(restore):
    global SCALE
    g = sxad.grad(scaled)
    _twice(g, 1.0)
    compiled, changed = codegen.cache.stats["compiled"], api.stats["changed"]
    SCALE = float("2.0")   # another object, the same value
    assert g(1.0) == 2.0
    assert api.stats["changed"] == changed + 1
    assert codegen.cache.stats["compiled"] == compiled, "the same program: no LLVM compile"


def test_a_redefined_helper_is_noticed(restore):
    global _helper
    g = sxad.grad(calls_helper, wrt=0)
    assert _twice(g, 1.0) == 3.0

    def _helper(x):
        return x * x
    assert g(2.0) == 12.0
    assert sxad.jit(calls_helper)(2.0) == 12.0


def test_replaced_code_is_noticed(restore):
    j = sxad.jit(scaled)
    assert _twice(j, 1.0) == 2.0
    scaled.__code__ = (lambda x: 7.0 * x).__code__
    assert j(1.0) == 7.0
    j2 = sxad.jit(calls_helper)
    assert _twice(j2, 1.0) == 6.0
    _helper.__code__ = (lambda x: x - 1.0).__code__
    assert j2(1.0) == 0.0


def test_changed_defaults_of_a_helper_are_noticed(restore):
    g = sxad.grad(calls_helper_with_default)
    assert _twice(g, 1.0) == 2.0
    _helper_with_default.__defaults__ = (4.0,)
    assert g(1.0) == 4.0


def test_a_changed_closure_variable_is_noticed():
    reads_a_cell, set_k = _closure()
    g = sxad.value_and_grad(reads_a_cell)
    assert _twice(g, 1.0) == (2.0, 2.0)
    set_k(3.0)
    assert g(1.0) == (3.0, 3.0)


def test_a_changed_module_attribute_is_noticed(restore):
    g = sxad.grad(reads_a_module_attribute)
    assert _twice(g, 1.0) == 4.0
    config.SCALE = 3.0
    assert g(1.0) == 6.0


def test_every_transformation_notices(restore):
    global SCALE
    forward = sxad.grad(scaled, mode="forward")
    both = sxad.value_and_grad(scaled, mode="forward")
    hess = sxad.hessian(reads_a_module_attribute)
    assert (_twice(forward, 1.0), _twice(both, 1.0), hess(1.0)) == (2.0, (2.0, 2.0), 4.0)
    SCALE, config.SCALE = 3.0, 5.0
    assert (forward(1.0), both(1.0), hess(1.0)) == (3.0, (3.0, 3.0), 10.0)
    assert sxad.jvp(scaled, (1.0,), (1.0,)) == (3.0, 3.0)
    value, pullback = sxad.vjp(scaled, 1.0)
    assert (value, pullback(1.0)) == (3.0, (3.0,))
    assert "3.0" in sxad.source(scaled, 1.0, stage="ir")


def test_a_changed_source_file_is_read_again_for_a_new_function(tmp_path):
    """A module edited and reloaded gives new function objects: compiled afresh."""
    path = tmp_path / "edited_module.py"
    sys.path.insert(0, str(tmp_path))
    try:
        path.write_text("def f(x):\n    return 2.0 * x\n")
        import edited_module
        assert sxad.grad(edited_module.f)(1.0) == 2.0
        path.write_text(textwrap.dedent("""\
            def f(x):
                return 3.0 * x * x
        """))
        os.utime(path, (1e9, 1e9))   # a different mtime, whatever the clock's resolution
        import importlib
        importlib.reload(edited_module)
        assert sxad.grad(edited_module.f)(1.0) == 6.0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("edited_module", None)
