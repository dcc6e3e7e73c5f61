"""A corpus of plain Python functions covering the supported subset, each with a smooth example
point. The frontend tests check that lowering preserves their values; the derivative tests
reuse them (differentiate w.r.t. the float arguments at positions ``wrt``)."""
from __future__ import annotations

import math
import math as m
from dataclasses import dataclass, field
from math import cos as cosine
from math import sin

import numpy
import numpy as np
from numpy import exp as e_
from numpy import tanh

from sxad.ir import BOOL, F64, I64, Type


@dataclass(frozen=True)
class Case:
    fn: object
    args: tuple
    wrt: tuple[int, ...] = (0,)
    ids: str = field(default="")

    def __post_init__(self) -> None:
        if not self.ids:
            object.__setattr__(self, "ids", self.fn.__name__)

    @property
    def n_outputs(self) -> int:
        """How many values the function returns (a tuple counts its parts)."""
        out = self.fn(*self.args)
        return len(out) if isinstance(out, tuple) else 1

    @property
    def types(self) -> tuple[Type, ...]:
        """The IR types of the example arguments."""
        return tuple(BOOL if isinstance(a, bool) else I64 if isinstance(a, int) else F64
                     for a in self.args)


ALPHA = 0.75
BETA = 3
FLAG = True
GAMMA = np.float64(0.25)
W11, W12, W21, W22 = 0.15, 0.2, 0.25, 0.3
V1, V2, B1, B2, B3 = 0.4, 0.45, 0.35, 0.35, 0.6


# --------------------------------------------------------------------------- the seed chapter

def seed_f(x1, x2):
    return math.log(x1) + x1 * x2 - math.sin(x2)


def seed_eq343(x):
    return math.exp(math.exp(x) + math.exp(x) ** 2) + math.sin(math.exp(x) + math.exp(x) ** 2)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def seed_network(x1, x2, y):
    """Two inputs, two sigmoid hidden units, a linear output, squared error."""
    a1 = 1 / (1 + np.exp(-(W11 * x1 + W12 * x2 + B1)))
    a2 = 1 / (1 + np.exp(-(W21 * x1 + W22 * x2 + B2)))
    out = V1 * a1 + V2 * a2 + B3
    return 0.5 * (y - out) ** 2


def cross_entropy(z, y):
    a = sigmoid(z)
    return -(y * np.log(a) + (1 - y) * np.log(1 - a))


def softplus(x):
    return np.log1p(np.exp(x))


# --------------------------------------------------------------------------- arithmetic, typing

def poly(x):
    return 3 * x ** 3 - 2 * x ** 2 + x - 5


def divisions(x, y):
    return x / y + y / x


def floordiv_mod(x, y):
    return x // y + (x % y) * y


def unary_ops(x):
    return -x + (+x) * -(x - 1)


def int_mixing(x, n):
    k = n * 2 + 1
    return x * k + n // 3 + n % 4 - (-n) // 4


def bool_arithmetic(x):
    b = x > 0
    return x * (b + b) + True - (-b)


def int_true_division(x, n):
    return x * (n / 4) + 7 / 2


def int_power_constant(x, n):
    return x * n ** 2 + 2 ** 3


def int_power_runtime(x, n):
    return x * 2 ** n


def int_power_negative(x, n):
    return x + n ** -1


def float_powers(x, y):
    return x ** y + y ** 0.5 + x ** -2


def chained_compare(x, y):
    return x * 2 if 0 < x < y <= 10 else y


def comparisons(x, y):
    count = (x < y) + (x <= y) + (x > y) + (x >= y) + (x == y) + (x != y)
    return x * count


def and_or_bools(x, y):
    if x > 0 and y > 0 or x < -5:
        return x * y
    return x + y


def and_or_values(x, y):
    return (x and y) + (0.0 or x) + (x or y) + (x > 5 and x) + (x > 5 or y)


def not_operator(x, n):
    if not n:
        return x
    if not x:
        return -x
    return x * 3 + (not (x > 1))


def conditional_expression(x):
    return x * x if x > 0 else -x


def nested_conditional(x, y):
    return (x if x > y else y) if x > 0 else (x * y if y > 0 else -y)


def log_if_positive(x):
    return math.log(x) if x > 0 else 0.0


def mixed_branch_types(x):
    y = 1 if x > 2 else 2.5
    return x * y


# --------------------------------------------------------------------------- math and numpy

def math_unary(x):
    return (math.exp(x) + math.log1p(x) + math.expm1(x) + math.sqrt(x) + math.sin(x)
            + math.cos(x) + math.tan(x) + math.asin(x) + math.acos(x) + math.atan(x)
            + math.sinh(x) + math.cosh(x) + math.tanh(x) + math.log(x))


def numpy_unary(x):
    return (np.exp(x) + np.log1p(x) + np.expm1(x) + np.sqrt(x) + np.sin(x) + np.cos(x)
            + np.tan(x) + np.arcsin(x) + np.arccos(x) + np.arctan(x) + np.sinh(x)
            + np.cosh(x) + np.tanh(x) + np.log(x))


def two_argument_functions(x, y):
    return math.atan2(y, x) + np.arctan2(x, y) + math.hypot(x, y) + np.hypot(y, x)


def absolute_values(x, y):
    return abs(x) + math.fabs(y) + np.abs(x * y) + np.absolute(x - y) + abs(-3)


def power_functions(x, y):
    return math.pow(x, y) + np.power(x, 2) + pow(y, 3) + np.power(2, 3)


def floor_and_ceil(x):
    return x * math.floor(x) + x * math.ceil(x) + np.floor(x * 2) + np.ceil(x) + math.floor(3)


def max_and_min(x, y, z):
    return max(x, y) + min(x, y, z) + np.maximum(x, z) + np.minimum(y, z) + max(x, 1)


def conversions(x, n):
    return float(n) * x + int(x * 3.1) + bool(x) + int(-x) + float(True)


def log_with_base(x):
    return math.log(x, 2) + math.log(x, 10.0) + math.log(x) + math.log2(x) + np.log10(x)


def module_constants(x):
    bounded = x if x < math.inf else 0.0
    return math.pi * x + math.e + np.pi / x + np.e * x + bounded + (x < np.inf)


def math_alias(x):
    return m.sin(x) * m.cos(x) + m.pi


def from_imports(x):
    return sin(x) + cosine(x) + e_(x) + tanh(x)


def plain_numpy_import(x):
    return numpy.tanh(x) + numpy.sqrt(x)


def numpy_extras(x, y):
    return np.square(x) + np.sign(y) * x + np.clip(x, 0.0, 10.0) + np.where(x > y, x, y)


def truncations(x):
    return math.trunc(x * 2.5) + x * np.float64(2) + np.int64(x * 3)


# --------------------------------------------------------------------------- globals, closures

def global_constants(x):
    y = ALPHA * x + BETA
    if FLAG:
        y = y + GAMMA
    return y


def make_scaled(k):
    offset = 0.5

    def scaled(x):
        return k * x + offset
    return scaled


closure_scaled = make_scaled(2.5)


def make_composed(a):
    def inner(x):
        return x * x + a

    def composed(x):
        return inner(x) * a + inner(2 * x)
    return composed


closure_composed = make_composed(1.5)


def make_int_closure(n):
    def f(x):
        return x ** n + n
    return f


closure_int = make_int_closure(3)


lambda_square = lambda x: x * x + 1.0  # noqa: E731


# --------------------------------------------------------------------------- statements

def tuple_assignment(x, y):
    a, b = x + y, x - y
    (c, d) = a * 2, b
    return a * b + c * d


def swap(x, y):
    a, b = x, y
    a, b = b, a
    for i in range(3):
        a, b = b, a + b
    return a * 2 + b


def augmented_assignment(x):
    y = x
    y += 1
    y *= x
    y -= 0.5
    y /= 2
    y **= 2
    y //= 0.25
    y += x
    y %= 1000.0
    return y + x


def multiple_targets(x):
    a = b = x * 2
    return a + b


def annotated(x: float) -> float:
    y: float = x * 2
    z: float
    return y


def documented(x):
    """A docstring is ignored."""
    pass
    return x * 3


def if_elif_else(x):
    if x < -1:
        y = -x
    elif x < 1:
        y = x * x
    elif x < 5:
        y = 2 * x - 1
    else:
        y = 9.0
    return y


def nested_ifs(x, y):
    if x > 0:
        if y > 0:
            z = x * y
        else:
            z = x - y
    else:
        if y > x:
            z = y
        else:
            z = x
    return z * 2


def truthiness(x, n):
    r = x
    if x:
        r = r * 2
    if n:
        r = r + n
    if n - n:
        r = -r
    return r


def shadow_module_name(x):
    np = x * 2
    return np + 1


# --------------------------------------------------------------------------- loops

def for_sum(x, n):
    s = 0.0
    for i in range(n):
        s += x ** i / (i + 1)
    return s


def for_two_bounds(x, n):
    s = x
    for i in range(2, n):
        s = s * 0.5 + i
    return s


def for_negative_step(x, n):
    s = 0.0
    for i in range(n, 0, -2):
        s += x * i
    return s


def for_runtime_step(x, a, b, step):
    s = x
    for i in range(a, b, step):
        s = s + x * i
    return s


def widen_int_to_float(x, n):
    s = 0
    for i in range(n):
        s += x
    return s


def widen_twice(x, n):
    a = True
    b = False
    for i in range(n):
        a = b + 1  # bool, then int, then float: two widenings of the carried types
        b = x * i
    return a * b


def float_kept_by_break(x, n):
    b = 0.5 * x
    for i in range(3):
        if n < 5:
            break           # b leaves the loop a float; the other path makes it an int
        b = n
    return b * 2.0


def float_kept_by_continue(x, n):
    b = 0.5 * x
    for i in range(4):
        if i % 2 == 0:
            b = b * x
            continue        # carried to the next iteration as a float
        b = n
    return b + x


def power_loop(x, n):
    r = 1.0
    for _ in range(n):
        r *= x
    return r


def loop_index_after(x, n):
    i = 0
    for i in range(n):
        x = x + 0.1
    return x * i


def halving(x):
    while x > 1:
        x = x / 2
    return x


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12:
        x = 0.5 * (x + a / x)
    return x


def while_counter(x, n):
    i = 0
    while i < n:
        x = x * 1.1
        i += 1
    return x


def while_two_conditions(x):
    k = 0
    while x > 0.1 and k < 50:
        x = x * 0.7
        k += 1
    return x + k


def nested_loops(x, n):
    s = 0.0
    for i in range(n):
        for j in range(i):
            s += x * (i - j)
    return s


def nested_ifs_in_loop(x, n):
    s = 0.0
    for i in range(n):
        if i % 3 == 0:
            if x > 0:
                s += x
            else:
                s -= x
        elif i % 3 == 1:
            s = s * 1.5
        else:
            s = s - i * x
    return s


def temporary_in_loop(x, n):
    s = 0.0
    for i in range(n):
        t = x * i
        u = t * t
        s += u - t
    return s


# --------------------------------------------------------------------------- early exits

def break_in_for(x, n):
    for i in range(n):
        x = x * 1.2
        if x > 3:
            break
    return x


def continue_in_for(x, n):
    s = 0.0
    for i in range(n):
        if i % 2 == 0:
            continue
        s += x * i
    return s


def break_in_while_true(x):
    while True:
        x = x * 0.9 + 0.1
        if x > 0.9:
            break
    return x


def break_and_continue(x, n):
    s = 0.0
    i = 0
    while i < n:
        i += 1
        if i == 2:
            continue
        s += x * i
        if s > 20:
            break
    return s


def late_continue(x, n):
    s = 0.0
    for i in range(n):
        s += x
        if i > 2:
            if s > 3:
                continue
            s += 1
        s = s * 1.1
    return s


def break_in_inner_loop(x, n):
    s = 0.0
    for i in range(n):
        for j in range(n):
            if j > i:
                break
            s += x * j
    return s


def return_in_for(x, n):
    for i in range(n):
        x = x * 1.5
        if x > 4:
            return x * i
    return -x


def return_in_while(x):
    k = 0
    while k < 100:
        x = x * 1.3
        k += 1
        if x > 5:
            return x + k
    return x


def return_in_nested_loops(x, n):
    for i in range(n):
        for j in range(n):
            if x > 10:
                return x
            x = x * 1.1
    return -x


def return_in_while_true(x):
    while True:
        x = x * 1.25
        if x > 3:
            return x


def multiple_returns(x):
    if x > 1:
        return x * 2
    elif x < -1:
        return -x
    return x * x


def early_return(x):
    if x < 0:
        return 0.0
    y = math.log(x + 1)
    z = y * y
    return z + x


def return_int_or_float(x):
    if x > 100:
        return 1
    return x * 2


def possibly_returning_branch(x, n):
    s = x
    for i in range(n):
        if i > 3:
            if s > 50:
                return s
            s = s + 1
        s = s * 2
    return -s


def break_widen(x, n):
    s = 0
    for i in range(n):
        if i > 4:
            break
        s = s + x * i
    return s


# --------------------------------------------------------------------------- user functions

def _square(x):
    return x * x


def _affine(x, a=2.0, b=1):
    return a * x + b


def _polar(x, y):
    return math.hypot(x, y), math.atan2(y, x)


def _clamped_log(x):
    if x < 1e-3:
        return math.log(1e-3)
    return math.log(x)


def _count_halvings(x):
    k = 0
    while x > 1:
        x = x / 2
        k += 1
    return k


def _level2(x):
    return _square(x) + 1


def _level1(x):
    return _level2(x) * _level2(x + 1)


def helper_calls(x):
    return _square(x) + _square(x + 1)


def keyword_calls(x):
    return _affine(x) + _affine(x, b=3.0) + _affine(a=0.5, x=x)


def tuple_result_helper(x, y):
    r, t = _polar(x, y)
    return r * t


def helper_with_return_in_loop(x, n):
    s = 0.0
    for i in range(n):
        s += _clamped_log(x + i)
    return s


def helper_int_result(x):
    return x * _count_halvings(x * 10)


def call_chain(x):
    return _level1(x)


def tuple_return(x, y):
    return x + y, x * y


def tuple_return_of_call(x, y):
    return _polar(x, y)


def bool_parameter(x, flag):
    return x if flag else -x


CORPUS = [
    Case(seed_f, (2.0, 5.0), (0, 1)),
    Case(seed_eq343, (0.2,)),
    Case(sigmoid, (0.7,)),
    Case(seed_network, (0.05, 0.1, 0.01), (0, 1, 2)),
    Case(cross_entropy, (0.3, 1.0), (0, 1)),
    Case(softplus, (0.4,)),
    Case(poly, (1.3,)),
    Case(divisions, (1.3, 0.7), (0, 1)),
    Case(floordiv_mod, (7.3, 2.1), (0, 1)),
    Case(unary_ops, (1.3,)),
    Case(int_mixing, (1.3, 7)),
    Case(bool_arithmetic, (1.3,)),
    Case(int_true_division, (1.3, 3)),
    Case(int_power_constant, (1.3, 3)),
    Case(int_power_runtime, (1.3, 3)),
    Case(int_power_negative, (1.3, 4)),
    Case(float_powers, (1.3, 2.2), (0, 1)),
    Case(chained_compare, (1.3, 2.7), (0, 1)),
    Case(chained_compare, (3.3, 2.7), (0, 1), ids="chained_compare_false"),
    Case(comparisons, (1.3, 0.7), (0, 1)),
    Case(and_or_bools, (1.3, 0.7), (0, 1)),
    Case(and_or_bools, (1.3, -0.7), (0, 1), ids="and_or_bools_false"),
    Case(and_or_values, (1.3, 0.7), (0, 1)),
    Case(not_operator, (1.3, 2)),
    Case(not_operator, (1.3, 0), ids="not_operator_zero"),
    Case(conditional_expression, (1.3,)),
    Case(conditional_expression, (-1.3,), ids="conditional_expression_neg"),
    Case(nested_conditional, (1.3, 0.7), (0, 1)),
    Case(nested_conditional, (-1.3, 0.7), (0, 1), ids="nested_conditional_neg"),
    Case(log_if_positive, (1.5,)),
    Case(log_if_positive, (-1.5,), ids="log_if_positive_neg"),
    Case(mixed_branch_types, (1.3,)),
    Case(math_unary, (0.3,)),
    Case(numpy_unary, (0.3,)),
    Case(two_argument_functions, (1.3, 0.7), (0, 1)),
    Case(absolute_values, (-1.3, 0.7), (0, 1)),
    Case(power_functions, (1.3, 0.7), (0, 1)),
    Case(floor_and_ceil, (2.3,)),
    Case(max_and_min, (1.3, 0.7, 2.1), (0, 1, 2)),
    Case(conversions, (1.3, 3)),
    Case(log_with_base, (1.7,)),
    Case(module_constants, (1.3,)),
    Case(math_alias, (0.6,)),
    Case(from_imports, (0.6,)),
    Case(plain_numpy_import, (0.6,)),
    Case(numpy_extras, (1.3, 0.7), (0, 1)),
    Case(truncations, (1.3,)),
    Case(global_constants, (1.3,)),
    Case(closure_scaled, (1.3,), ids="closure_scaled"),
    Case(closure_composed, (1.3,), ids="closure_composed"),
    Case(closure_int, (1.3,), ids="closure_int"),
    Case(lambda_square, (1.3,), ids="lambda_square"),
    Case(tuple_assignment, (1.3, 0.7), (0, 1)),
    Case(swap, (1.3, 0.7), (0, 1)),
    Case(augmented_assignment, (1.3,)),
    Case(multiple_targets, (1.3,)),
    Case(annotated, (1.3,)),
    Case(documented, (1.3,)),
    Case(if_elif_else, (-1.5,), ids="if_elif_else_a"),
    Case(if_elif_else, (0.5,), ids="if_elif_else_b"),
    Case(if_elif_else, (2.5,), ids="if_elif_else_c"),
    Case(if_elif_else, (7.5,), ids="if_elif_else_d"),
    Case(nested_ifs, (1.3, 0.7), (0, 1)),
    Case(nested_ifs, (-1.3, 0.7), (0, 1), ids="nested_ifs_neg"),
    Case(truthiness, (1.3, 2)),
    Case(shadow_module_name, (1.3,)),
    Case(for_sum, (1.3, 5)),
    Case(for_two_bounds, (1.3, 6)),
    Case(for_negative_step, (1.3, 7)),
    Case(for_runtime_step, (1.3, 1, 11, 3)),
    Case(for_runtime_step, (1.3, 10, 0, -3), ids="for_runtime_step_down"),
    Case(widen_int_to_float, (1.3, 4)),
    Case(widen_twice, (1.3, 4)),
    Case(float_kept_by_break, (1.3, 3)),
    Case(float_kept_by_break, (1.3, 7), ids="float_kept_by_break_no_break"),
    Case(float_kept_by_continue, (1.3, 3)),
    Case(power_loop, (1.3, 5)),
    Case(loop_index_after, (1.3, 4)),
    Case(halving, (13.0,)),
    Case(newton_sqrt, (2.0,)),
    Case(while_counter, (1.3, 5)),
    Case(while_two_conditions, (1.3,)),
    Case(nested_loops, (1.3, 4)),
    Case(nested_ifs_in_loop, (1.3, 7)),
    Case(nested_ifs_in_loop, (-1.3, 7), ids="nested_ifs_in_loop_neg"),
    Case(temporary_in_loop, (1.3, 4)),
    Case(break_in_for, (1.3, 10)),
    Case(break_in_for, (1.3, 2), ids="break_in_for_no_break"),
    Case(continue_in_for, (1.3, 7)),
    Case(break_in_while_true, (0.3,)),
    Case(break_and_continue, (1.3, 10)),
    Case(late_continue, (0.7, 7)),
    Case(break_in_inner_loop, (1.3, 5)),
    Case(return_in_for, (1.3, 10)),
    Case(return_in_for, (1.3, 2), ids="return_in_for_falls_through"),
    Case(return_in_while, (1.3,)),
    Case(return_in_nested_loops, (1.3, 5)),
    Case(return_in_nested_loops, (1.3, 2), ids="return_in_nested_loops_through"),
    Case(return_in_while_true, (1.3,)),
    Case(multiple_returns, (1.3,)),
    Case(multiple_returns, (-1.3,), ids="multiple_returns_neg"),
    Case(multiple_returns, (0.3,), ids="multiple_returns_mid"),
    Case(early_return, (1.3,)),
    Case(return_int_or_float, (1.3,)),
    Case(possibly_returning_branch, (1.3, 8)),
    Case(possibly_returning_branch, (0.01, 6), ids="possibly_returning_branch_through"),
    Case(break_widen, (1.3, 8)),
    Case(helper_calls, (1.3,)),
    Case(keyword_calls, (1.3,)),
    Case(tuple_result_helper, (1.3, 0.7), (0, 1)),
    Case(helper_with_return_in_loop, (1.3, 4)),
    Case(helper_int_result, (1.3,)),
    Case(call_chain, (1.3,)),
    Case(tuple_return, (1.3, 0.7), (0, 1)),
    Case(tuple_return_of_call, (1.3, 0.7), (0, 1)),
    Case(bool_parameter, (1.3, True)),
    Case(bool_parameter, (1.3, False), ids="bool_parameter_false"),
]
