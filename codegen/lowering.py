"""Each primitive's LLVM lowering and its accuracy against numpy: two tables keyed by ``Prim``.

Semantics are numpy's scalar semantics (``sxad.backends.interpreter``): IEEE f64 without
fast-math, wrapping i64 arithmetic, numpy's results for division by zero, and no poison or
undefined behaviour for any input (LLVM's ``sdiv``/``fptosi`` are guarded).
Control flow and the tape are lowered in ``kernel.py``; this file knows only scalar primitives.
"""
from __future__ import annotations

from typing import Callable, Protocol

from llvmlite import ir

from sxad.ir import BOOL, F32, F64, I64, Op, Prim, Type, dtype_of
from sxad.prims import ARRAY_RULES, RULES

from .faults import Fault

DOUBLE = ir.DoubleType()
FLOAT = ir.FloatType()
INT64 = ir.IntType(64)
INT1 = ir.IntType(1)
#: The LLVM type of a scalar of each element type (an array's elements, in registers).
LL_TYPE: dict[Type, ir.Type] = {F64: DOUBLE, F32: FLOAT, I64: INT64, BOOL: INT1}
INT64_MIN = -(2 ** 63)


class CodegenError(TypeError):
    """The IR holds something this backend cannot lower; the message names it."""


class Context(Protocol):
    """What a lowering rule may use: the builder, the module, and the kernel's fault exit."""

    b: ir.IRBuilder
    module: ir.Module

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function: ...

    def fail_if(self, cond: ir.Value, fault: Fault) -> None: ...


Lower = Callable[[Context, Op, list[ir.Value]], ir.Value]


# --------------------------------------------------------------------------- rule makers

def _by_type(f64: Lower | None = None, i64: Lower | None = None,
             bool_: Lower | None = None) -> Lower:
    """A rule choosing its lowering by the type of the op's first argument."""
    table = {F64: f64, F32: f64, I64: i64, BOOL: bool_}

    def lower(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
        rule = table[dtype_of(op.args[0].type)]
        if rule is None:
            raise CodegenError(f"{op.prim} has no lowering for {op.args[0].type}")
        return rule(cx, op, xs)
    return lower


def _inst(name: str) -> Lower:
    """One LLVM instruction, by its IRBuilder method name."""
    return lambda cx, op, xs: getattr(cx.b, name)(*xs)


def _call(cx: Context, name: str, xs: list[ir.Value]) -> ir.Value:
    """A call of a float function whose arguments and result all have ``xs[0]``'s type."""
    type_ = xs[0].type
    return cx.b.call(cx.declare(name, type_, [type_] * len(xs)), xs)


def _suffix(x: ir.Value) -> str:
    return "f32" if x.type == FLOAT else "f64"


def _intrinsic(name: str) -> Lower:
    """A float LLVM intrinsic (``llvm.exp.f64``, ``llvm.exp.f32``…): LLVM lowers it to libm or
    an instruction."""
    return lambda cx, op, xs: _call(cx, f"llvm.{name}.{_suffix(xs[0])}", xs)


def _libm(name: str) -> Lower:
    """A call of the C library's function of that name (glibc's libm): ``tan`` for f64,
    ``tanf`` for f32."""
    return lambda cx, op, xs: _call(cx, name + ("f" if xs[0].type == FLOAT else ""), xs)


def _logistic(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """1 / (1 + e^(−x)), the ops it stands for (``passes.simplify`` recognised them)."""
    x = xs[0]
    e = _call(cx, f"llvm.exp.{_suffix(x)}", [cx.b.fneg(x)])
    return cx.b.fdiv(_f(1.0, x), cx.b.fadd(_f(1.0, x), e))


def _compare(cmp: str) -> Lower:
    """Ordered float comparison, except ``!=``: unordered, so that nan != nan."""
    def f64(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
        compare = cx.b.fcmp_unordered if cmp == "!=" else cx.b.fcmp_ordered
        return compare(cmp, *xs)
    return _by_type(f64=f64,
                    i64=lambda cx, op, xs: cx.b.icmp_signed(cmp, *xs),
                    bool_=lambda cx, op, xs: cx.b.icmp_unsigned(cmp, *xs))


def _f(value: float, like: ir.Value | None = None) -> ir.Constant:
    """A float constant of ``like``'s type (f64 without one)."""
    return ir.Constant(DOUBLE if like is None else like.type, value)


def _i(value: int) -> ir.Constant:
    return ir.Constant(INT64, value)


# --------------------------------------------------------------------------- f64 rules

def _f64_divmod(cx: Context, a: ir.Value, c: ir.Value) -> tuple[ir.Value, ir.Value]:
    """numpy's ``npy_divmod`` (floor division and Python-style modulus), nonzero divisor;
    f32 as ``npy_divmodf``, the same steps in float."""
    b, t = cx.b, _suffix(a)
    zero, one = _f(0.0, a), _f(1.0, a)
    mod = b.frem(a, c)
    div = b.fdiv(b.fsub(a, mod), c)
    mod_nonzero = b.fcmp_unordered("!=", mod, zero)  # C truthiness: nan is true
    signs_differ = b.xor(b.fcmp_ordered("<", c, zero), b.fcmp_ordered("<", mod, zero))
    flip = b.and_(mod_nonzero, signs_differ)
    copysign = cx.declare(f"llvm.copysign.{t}", a.type, [a.type, a.type])
    mod = b.select(flip, b.fadd(mod, c), b.select(mod_nonzero, mod, b.call(copysign, [zero, c])))
    div = b.select(flip, b.fsub(div, one), div)
    floor = b.call(cx.declare(f"llvm.floor.{t}", a.type, [a.type]), [div])
    round_up = b.fcmp_ordered(">", b.fsub(div, floor), _f(0.5, a))
    floor = b.select(round_up, b.fadd(floor, one), floor)
    signed_zero = b.call(copysign, [zero, b.fdiv(a, c)])
    return b.select(b.fcmp_unordered("!=", div, zero), floor, signed_zero), mod


def _f64_floordiv(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.floor_divide: a / 0 gives ±inf or nan, as plain division does."""
    a, c = xs
    floordiv, _ = _f64_divmod(cx, a, c)
    return cx.b.select(cx.b.fcmp_ordered("==", c, _f(0.0, c)), cx.b.fdiv(a, c), floordiv)


def _f64_mod(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.mod: the sign of the divisor; a % 0 is fmod(a, 0) = nan."""
    a, c = xs
    _, mod = _f64_divmod(cx, a, c)
    return cx.b.select(cx.b.fcmp_ordered("==", c, _f(0.0, c)), cx.b.frem(a, c), mod)


def _f64_pow(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.power on scalars: libm's pow, except that numpy's loop takes x ** 0.5 as sqrt(x)
    (which differs at -0 → -0 and -inf → nan)."""
    x, y = xs
    t = _suffix(x)
    root = _call(cx, f"llvm.sqrt.{t}", [x])
    return cx.b.select(cx.b.fcmp_ordered("==", y, _f(0.5, y)), root, _call(cx, f"llvm.pow.{t}", xs))


def _f64_max(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.maximum: nan wins; of equal values (±0) the second argument."""
    a, c = xs
    take_a = cx.b.or_(cx.b.fcmp_ordered(">", a, c), cx.b.fcmp_unordered("uno", a, a))
    return cx.b.select(take_a, a, c)


def _f64_min(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.minimum: nan wins; of equal values (±0) the second argument."""
    a, c = xs
    take_a = cx.b.or_(cx.b.fcmp_ordered("<", a, c), cx.b.fcmp_unordered("uno", a, a))
    return cx.b.select(take_a, a, c)


def _f64_sign(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.sign: ±1, +0 for ±0, nan for nan."""
    b, (x,) = cx.b, xs
    zero = _f(0.0, x)
    zero_or_nan = b.select(b.fcmp_ordered("==", x, zero), zero, x)
    return b.select(b.fcmp_ordered(">", x, zero), _f(1.0, x),
                    b.select(b.fcmp_ordered("<", x, zero), _f(-1.0, x), zero_or_nan))


# --------------------------------------------------------------------------- i64 rules

def _i64_divmod(cx: Context, a: ir.Value, c: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Floor division and modulus with numpy's results where C's would trap:
    a // 0 = 0, a % 0 = 0, INT64_MIN // -1 = INT64_MIN, INT64_MIN % -1 = 0."""
    b = cx.b
    by_zero = b.icmp_signed("==", c, _i(0))
    overflow = b.and_(b.icmp_signed("==", a, _i(INT64_MIN)), b.icmp_signed("==", c, _i(-1)))
    d = b.select(b.or_(by_zero, overflow), _i(1), c)      # a / 1 gives both special results
    q, r = b.sdiv(a, d), b.srem(a, d)
    adjust = b.and_(b.icmp_signed("!=", r, _i(0)), b.icmp_signed("<", b.xor(r, d), _i(0)))
    floordiv = b.select(by_zero, _i(0), b.sub(q, b.zext(adjust, INT64)))
    return floordiv, b.add(r, b.select(adjust, d, _i(0)))


def _i64_floordiv(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    return _i64_divmod(cx, *xs)[0]


def _i64_mod(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    return _i64_divmod(cx, *xs)[1]


def _i64_pow(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """Wrapping power by squaring; a negative exponent is numpy's ValueError."""
    base, exponent = xs
    cx.fail_if(cx.b.icmp_signed("<", exponent, _i(0)), Fault.NEGATIVE_POWER)
    return cx.b.call(_ipow_function(cx.module), [base, exponent])


def _ipow_function(module: ir.Module) -> ir.Function:
    """``i64 sxad.ipow(i64 base, i64 exponent >= 0)``, emitted once per module."""
    name = "sxad.ipow"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(INT64, [INT64, INT64]), name)
    fn.linkage = "internal"
    base, exponent = fn.args
    entry, head, body, done = (fn.append_basic_block(n) for n in ("entry", "head", "body", "done"))
    b = ir.IRBuilder(entry)
    b.branch(head)
    b.position_at_end(head)
    result, square, rest = b.phi(INT64), b.phi(INT64), b.phi(INT64)
    b.cbranch(b.icmp_signed(">", rest, _i(0)), body, done)
    b.position_at_end(body)
    odd = b.trunc(rest, INT1)
    next_result = b.select(odd, b.mul(result, square), result)
    next_square, next_rest = b.mul(square, square), b.lshr(rest, _i(1))
    b.branch(head)
    for phi, start, step in ((result, _i(1), next_result), (square, base, next_square),
                             (rest, exponent, next_rest)):
        phi.add_incoming(start, entry)
        phi.add_incoming(step, body)
    b.position_at_end(done)
    b.ret(result)
    return fn


def _i64_abs(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """np.abs wraps: abs(INT64_MIN) = INT64_MIN."""
    (x,) = xs
    return cx.b.select(cx.b.icmp_signed("<", x, _i(0)), cx.b.neg(x), x)


def _i64_sign(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    (x,) = xs
    positive = cx.b.zext(cx.b.icmp_signed(">", x, _i(0)), INT64)
    return cx.b.sub(positive, cx.b.zext(cx.b.icmp_signed("<", x, _i(0)), INT64))


def _i64_extremum(cmp: str) -> Lower:
    return lambda cx, op, xs: cx.b.select(cx.b.icmp_signed(cmp, *xs), *xs)


# --------------------------------------------------------------------------- const and cast

def _const(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    return ir.Constant(LL_TYPE[op.result.type], op.attr("value"))   # f32 values are exact


def _float_to_i64(cx: Context, x: ir.Value) -> ir.Value:
    """Truncation; nan and out-of-range values give INT64_MIN, as numpy's cast on x86."""
    b = cx.b
    in_range = b.and_(b.fcmp_ordered(">=", x, _f(-2.0 ** 63, x)),
                      b.fcmp_ordered("<", x, _f(2.0 ** 63, x)))
    return b.select(in_range, b.fptosi(x, INT64), _i(INT64_MIN))


_CASTS: dict[tuple[Type, Type], Callable[[Context, ir.Value], ir.Value]] = {
    (F64, I64): _float_to_i64,
    (F32, I64): _float_to_i64,
    (F64, BOOL): lambda cx, x: cx.b.fcmp_unordered("!=", x, _f(0.0, x)),   # nan is true
    (F32, BOOL): lambda cx, x: cx.b.fcmp_unordered("!=", x, _f(0.0, x)),
    (F64, F32): lambda cx, x: cx.b.fptrunc(x, FLOAT),   # round to nearest, as numpy
    (F32, F64): lambda cx, x: cx.b.fpext(x, DOUBLE),
    (I64, F64): lambda cx, x: cx.b.sitofp(x, DOUBLE),
    (I64, F32): lambda cx, x: cx.b.sitofp(x, FLOAT),    # one rounding, as C's (float)int64
    (I64, BOOL): lambda cx, x: cx.b.icmp_signed("!=", x, _i(0)),
    (BOOL, F64): lambda cx, x: cx.b.uitofp(x, DOUBLE),
    (BOOL, F32): lambda cx, x: cx.b.uitofp(x, FLOAT),
    (BOOL, I64): lambda cx, x: cx.b.zext(x, INT64),
}


def _cast(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    source, target = dtype_of(op.args[0].type), dtype_of(op.result.type)
    return xs[0] if source == target else _CASTS[source, target](cx, xs[0])


# --------------------------------------------------------------------------- the tables

LOWERING: dict[Prim, Lower] = {
    Prim.CONST: _const,
    Prim.CAST: _cast,
    Prim.ADD: _by_type(f64=_inst("fadd"), i64=_inst("add")),
    Prim.SUB: _by_type(f64=_inst("fsub"), i64=_inst("sub")),
    Prim.MUL: _by_type(f64=_inst("fmul"), i64=_inst("mul")),
    Prim.DIV: _by_type(f64=_inst("fdiv")),
    Prim.NEG: _by_type(f64=_inst("fneg"), i64=_inst("neg")),
    Prim.FLOORDIV: _by_type(f64=_f64_floordiv, i64=_i64_floordiv),
    Prim.MOD: _by_type(f64=_f64_mod, i64=_i64_mod),
    Prim.POW: _by_type(f64=_f64_pow, i64=_i64_pow),
    Prim.EXP: _intrinsic("exp"),
    Prim.LOG: _intrinsic("log"),
    Prim.LOG1P: _libm("log1p"),
    Prim.EXPM1: _libm("expm1"),
    Prim.SQRT: _intrinsic("sqrt"),
    Prim.SIN: _intrinsic("sin"),
    Prim.COS: _intrinsic("cos"),
    Prim.TAN: _libm("tan"),
    Prim.ASIN: _libm("asin"),
    Prim.ACOS: _libm("acos"),
    Prim.ATAN: _libm("atan"),
    Prim.ATAN2: _libm("atan2"),
    Prim.SINH: _libm("sinh"),
    Prim.COSH: _libm("cosh"),
    Prim.TANH: _libm("tanh"),
    Prim.LOGISTIC: _logistic,
    Prim.HYPOT: _libm("hypot"),
    Prim.ABS: _by_type(f64=_intrinsic("fabs"), i64=_i64_abs),
    Prim.SIGN: _by_type(f64=_f64_sign, i64=_i64_sign),
    Prim.FLOOR: _intrinsic("floor"),
    Prim.CEIL: _intrinsic("ceil"),
    Prim.MAX: _by_type(f64=_f64_max, i64=_i64_extremum(">=")),
    Prim.MIN: _by_type(f64=_f64_min, i64=_i64_extremum("<=")),
    Prim.LT: _compare("<"),
    Prim.LE: _compare("<="),
    Prim.GT: _compare(">"),
    Prim.GE: _compare(">="),
    Prim.EQ: _compare("=="),
    Prim.NE: _compare("!="),
    Prim.AND: _inst("and_"),
    Prim.OR: _inst("or_"),
    Prim.NOT: _inst("not_"),
    Prim.SELECT: _inst("select"),
}

#: How far a kernel's f64 result may be from the interpreter's (numpy's), in units in the last
#: place; 0 means bit-exact. Every i64 and bool result is exact. The kernels call glibc's libm;
#: numpy 2.x evaluates these functions with its own SIMD code on AVX-512 CPUs (AVX512F exp/log,
#: Intel SVML for the rest), so the two differ by up to the sum of both libraries' errors. The
#: bounds were measured over thousands of inputs per function (see
#: tests/codegen/test_native_accuracy.py). With numpy's AVX512_SKX loops disabled, tanh and pow
#: came out bit-exact, as they should wherever numpy calls glibc too.
ULPS: dict[Prim, int] = {prim: 0 for prim in LOWERING} | {
    Prim.POW: 1,      # llvm.pow → glibc pow (< 1 ulp) vs numpy's AVX-512 pow
    Prim.EXP: 1,
    Prim.LOG: 1,
    Prim.LOG1P: 1,
    Prim.EXPM1: 1,
    Prim.TAN: 1,
    Prim.ASIN: 1,
    Prim.ACOS: 1,
    Prim.ATAN: 1,
    Prim.ATAN2: 1,
    Prim.COSH: 1,
    Prim.SINH: 2,     # glibc sinh errs up to ~1.6 ulp
    Prim.TANH: 3,     # glibc tanh errs up to ~1.7 ulp, SVML's up to ~1.1
    Prim.LOGISTIC: 3,  # 1/(1 + e^(−x)): exp's error, then an add and a division
}


#: The same for f32 results: glibc's float functions (``expf``…; sqrt, hypot, division, mod
#: and floor division are exact) against numpy's float32 loops (its own SIMD code for most),
#: measured on scalars and in array loops over ~12000 inputs in [-10, 10], [0, 100] and
#: e^[-30, 30]. (In array loops exp/log/log1p/expm1/tanh come from ``codegen.vmath``, whose
#: own ``vmath.ULPS`` apply.)
ULPS_F32: dict[Prim, int] = {prim: 0 for prim in LOWERING} | {
    Prim.EXP: 2, Prim.LOG: 2, Prim.LOG1P: 2, Prim.EXPM1: 2, Prim.SIN: 1, Prim.COS: 1,
    Prim.TAN: 3, Prim.ASIN: 2, Prim.ACOS: 2, Prim.ATAN: 1, Prim.SINH: 2, Prim.COSH: 2,
    Prim.TANH: 2, Prim.POW: 1, Prim.ATAN2: 2, Prim.LOGISTIC: 4,
}


def lower_scalar(cx: Context, op: Op, xs: list[ir.Value]) -> ir.Value:
    """The LLVM value of one scalar op."""
    rule = LOWERING.get(op.prim)
    if rule is None:
        raise CodegenError(f"primitive '{op.prim}' has no LLVM lowering")
    return rule(cx, op, xs)


def missing_lowerings() -> list[Prim]:
    """Primitives with rules in ``sxad.prims`` but no lowering, here or among the array
    lowerings (``codegen.arrays.ARRAY_LOWERING``): should be none."""
    from .arrays import ARRAY_LOWERING   # it builds on this module
    return [p for p, r in [*RULES.items(), *ARRAY_RULES.items()]
            if not r.structural and p not in LOWERING and p not in ARRAY_LOWERING]
