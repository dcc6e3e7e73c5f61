"""Vectorizable exp, log, expm1, log1p, tanh, sinh and cosh for f32 (LLVM ``float``) and f64
(``double``).

``llvm.exp`` in a loop stays a scalar libm call per element, so array loops (``map`` bodies)
use these instead: range reduction, an FMA polynomial and exponent-bit arithmetic, all
straight-line code (selects, no branches, no calls but ``llvm.fma``/``llvm.fabs``/
``llvm.copysign``/``llvm.ldexp``), which the loop vectorizer widens to ``<8 x double>``/
``<16 x float>``. ``llvm.ldexp`` is used only with AVX-512, where it is one ``vscalef``.

The edges are numpy's: nan in gives nan out (whatever its payload), ±inf give their limits,
overflow gives inf, results in the subnormal range are rounded once (2^k is applied by
``vscalef``, or as two normal factors), log of ±0 is -inf and of a negative number nan, the
sign of zero is kept where numpy keeps it (expm1, log1p, tanh, sinh of -0 are -0; tanh and
sinh of tiny x are x).

These loops are bound by the FMA/multiply units, so the cost is the number of multiplicative
operations per element: exp is 3 FMAs of reduction, 11 of polynomial and one vscalef. Tried
and measured slower on Zen 5 (AVX-512): a 2^(j/32) table with a degree-6 polynomial (the
table load is a gather, 0.2 ns per element more); Estrin (no faster, and less accurate);
a reciprocal estimate for f32 division (``fdiv arcp ninf``: rcp14 + Newton, slower than
vdivps); integer arithmetic instead of an FMA for tanh's 1 - v/2.

Speed over 10⁶ values against numpy's AVX-512 loops (benchmarks/bench_kernels.py, Zen 5):
exp 2.1× (f64) / 3.1× (f32), tanh 1.5× / 0.9×, cosh 1.6× / 1.9×, sinh 1.1× / 1.1×,
1/(1 + exp(-x)) 3.3× / 4.1×. f32 tanh stays just below numpy's table-driven code: a single
f32 rational (1.4×) is 5 ulps off, gathers are slow, and every accurate form tried costs
about as much as exp.

    lower(cx, prim, xs) -> ir.Value | None     None: the prim or type is not handled here
    ULPS[(prim, type)]                         worst error against numpy, measured
"""
from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from typing import Callable, Protocol

import llvmlite.binding as llvm
from llvmlite import ir

from sxad.ir import F32, F64, Prim, Type


class Context(Protocol):
    """The part of ``codegen.lowering.Context`` these rules use."""

    b: ir.IRBuilder
    module: ir.Module

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function: ...


@dataclass(frozen=True)
class Format:
    """An IEEE binary format: its LLVM types and the constants the algorithms depend on."""

    name: str                      # the intrinsic suffix: f32, f64
    float_type: ir.Type
    int_type: ir.IntType
    mantissa: int                  # explicit mantissa bits
    bias: int
    exp_range: tuple[float, float]     # exp(x) is 0 below, inf above: the clamp of x
    expm1_low: float               # expm1(x) rounds to -1 below this
    tanh_high: float               # tanh(|x|) rounds to 1 above this
    ln2_split: tuple[float, float]     # ln2 = hi + lo, hi exact times any exponent (log)
    ln2_fma: tuple[float, float]   # ln2 = hi + lo, hi the nearest: with an FMA x - k*hi is exact
    sqrt_half_bits: int            # the bits of sqrt(1/2): log's mantissa range starts there
    exp_terms: int                 # Taylor terms of exp on |r| <= ln2/2 (expm1)
    log_coeffs: tuple[float, ...]  # fdlibm's minimax R(z) ~ (log(1+f) - 2s)/s, z = s^2
    hyper_high: float              # cosh, sinh overflow above this: the clamp of |x|
    # minimax coefficients (relative error, Remez in mpmath), constant term first:
    exp_q: tuple[float, ...]       # e^r ~ 1 + r + r^2·Q(r) on |r| <= ln2/2
    exp_short: tuple[float, ...]   # e^r on |r| <= ln2/2, just enough for tanh's e^(-2|x|)
    tanh_p: tuple[float, ...]      # (tanh(x)/x - 1)/z ~ P(z)/Q(z), z = x^2, |x| < 1
    tanh_q: tuple[float, ...]
    sinh_p: tuple[float, ...]      # (sinh(x)/x - 1)/z ~ P(z), |x| < SINH_SMALL


F64_FORMAT = Format(
    "f64", ir.DoubleType(), ir.IntType(64), 52, 1023, (-746.0, 710.0), -40.0, 20.0,
    (6.93147180369123816490e-01, 1.90821492927058770002e-10),
    (float.fromhex("0x1.62e42fefa39efp-1"), 2.3190468138462996e-17), 0x3FE6A09E667F3BCD, 13,
    (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
     2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
     1.479819860511658591e-01),
    711.0,
    (0.5000000000000012, 0.166666666666667, 0.041666666666515306, 0.00833333333330774,
     0.0013888888947041467, 0.0001984126991623348, 2.4801489918691826e-05,
     2.75572173141313e-06, 2.763128795270069e-07, 2.5117545614063405e-08),
    (1.0, 1.0000000000000064, 0.49999999999997286, 0.16666666666557742, 0.04166666666842598,
     0.008333333384665614, 0.0013888888499146296, 0.0001984117138442271,
     2.480191768015792e-05, 2.7639768183381513e-06, 2.7488446194124013e-07),
    (-0.3333333333333333, -0.02140862862543979, -0.00024323475592661863,
     -1.7242024212073092e-08),
    (1.0, 0.4642258858763187, 0.024515296713557042, 0.000254254497052675),
    (0.16666666666666666, 0.008333333333333331, 0.0001984126984127087, 2.7557319223717802e-06,
     2.5052108420263787e-08, 1.6059041301442333e-10, 7.647271947004012e-13,
     2.8087719595787953e-15, 8.578412315439962e-18))
F32_FORMAT = Format(
    "f32", ir.FloatType(), ir.IntType(32), 23, 127, (-105.0, 89.0), -18.0, 10.0,
    (6.9313812256e-01, 9.0580006145e-06),
    (float.fromhex("0x1.62e43p-1"), -1.904654299957768e-09), 0x3F3504F3, 8,
    (0xaaaaaa / 2 ** 24, 0xccce13 / 2 ** 25, 0x91e9ee / 2 ** 25, 0xf89e26 / 2 ** 26),
    90.0,
    (0.5, 0.166665181517601, 0.04166620597243309, 0.008368889801204205,
     0.0013950490392744541),
    (1.0000000716547142, 0.9999996919919519, 0.49998894850934494, 0.1666757472368791,
     0.04191538203034082, 0.008297655488348361),
    (-0.33333333272003784, -0.014710486640392813),
    (1.0, 0.4441313940017936, 0.015748171434588218),
    (0.1666666669743402, 0.008333329362625545, 0.0001984207981077129, 2.749998382687422e-06,
     2.6693415676296916e-08))

FORMATS: dict[Type, Format] = {F64: F64_FORMAT, F32: F32_FORMAT}
LN2 = math.log(2.0)
SINH_SMALL = 2.0      # below it sinh is its odd series; from 1 to 2, h - 1/(4h) cost 2 ulps


class _Math:
    """Scalar arithmetic in one format on one builder; constants and intrinsics by name."""

    def __init__(self, cx: Context, fmt: Format) -> None:
        self.cx, self.b, self.fmt = cx, cx.b, fmt
        self.f, self.i = fmt.float_type, fmt.int_type

    def c(self, value: float) -> ir.Constant:
        return ir.Constant(self.f, value)

    def ci(self, value: int) -> ir.Constant:
        return ir.Constant(self.i, value)

    def call(self, name: str, *args: ir.Value) -> ir.Value:
        fn = self.cx.declare(f"llvm.{name}.{self.fmt.name}", self.f, [self.f] * len(args))
        return self.b.call(fn, list(args))

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        return self.call("fma", a, b, c)

    def horner(self, x: ir.Value, coeffs: tuple[float, ...]) -> ir.Value:
        """c0 + x*(c1 + x*(c2 + …)), coefficients from the constant term up."""
        p = self.c(coeffs[-1])
        for coeff in reversed(coeffs[:-1]):
            p = self.fma(p, x, self.c(coeff))
        return p

    def clamp(self, x: ir.Value, lo: float, hi: float) -> ir.Value:
        """x limited to [lo, hi]; nan stays nan (ordered comparisons are false for it)."""
        b = self.b
        x = b.select(b.fcmp_ordered(">", x, self.c(hi)), self.c(hi), x)
        return b.select(b.fcmp_ordered("<", x, self.c(lo)), self.c(lo), x)

    def when(self, cond: ir.Value, value: ir.Value, otherwise: ir.Value) -> ir.Value:
        return self.b.select(cond, value, otherwise)

    def pow2(self, k: ir.Value) -> ir.Value:
        """2^k for an integer k of the format's int type within the normal exponent range."""
        b = self.b
        biased = b.add(k, self.ci(self.fmt.bias))
        return b.bitcast(b.shl(biased, self.ci(self.fmt.mantissa)), self.f)


# --------------------------------------------------------------------------- exp and expm1

def _reduce(m: _Math, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(k, r, r_lo) with x = k*ln2 + r + r_lo, |r| <= ln2/2 and r_lo the rounding error of r;
    k as an integer (rounded through the 1.5*2^mantissa shift, not fptosi: that would be
    poison for nan)."""
    b, fmt = m.b, m.fmt
    shift = m.c(1.5 * 2.0 ** fmt.mantissa)
    t = m.fma(x, m.c(1.0 / LN2), shift)
    k = b.fsub(t, shift)
    hi, lo = fmt.ln2_fma
    r_exact = m.fma(k, m.c(-hi), x)     # exact: k*hi is exact inside the fma, x - k*hi small
    r = m.fma(k, m.c(-lo), r_exact)
    r_lo = m.fma(k, m.c(-lo), b.fsub(r_exact, r))
    ki = b.sub(b.bitcast(t, m.i), b.bitcast(shift, m.i))
    return ki, r, r_lo


def _split_pow2(m: _Math, ki: ir.Value) -> tuple[ir.Value, ir.Value]:
    """2^k as two normal factors 2^(k>>1) · 2^(k - k>>1), so that 2^1024 and 2^-1075 work."""
    half = m.b.ashr(ki, m.ci(1))
    return m.pow2(half), m.pow2(m.b.sub(ki, half))


def _exp_taylor(fmt: Format) -> tuple[float, ...]:
    return tuple(1.0 / math.factorial(n) for n in range(fmt.exp_terms + 1))


def _exp_scaled(m: _Math, x: ir.Value, high: float, halve: bool = False) -> ir.Value:
    """e^x (e^x / 2 with ``halve``) for x clamped to [exp low, high] (beyond it the result is
    inf or 0 anyway): x = k·ln2 + r, e^r = 1 + r + r²·Q(r) (minimax; r's rounding error and
    Q's cost under 0.3 ulp together, so no r_lo term), times 2^k rounded once."""
    r, t = _exp_reduce(m, x, high)
    p = m.horner(r, (1.0, 1.0) + m.fmt.exp_q)
    return _times_pow2(m, p, t, -1 if halve else 0)


def _exp_reduce(m: _Math, x: ir.Value, high: float) -> tuple[ir.Value, ir.Value]:
    """(r, t): x clamped to [exp low, high] is k·ln2 + r, |r| <= ln2/2 (to r's rounding),
    t = k + 1.5·2^mantissa, whose low bits are the integer k."""
    b, fmt = m.b, m.fmt
    x = m.clamp(x, fmt.exp_range[0], high)
    shift = m.c(1.5 * 2.0 ** fmt.mantissa)
    t = m.fma(x, m.c(1.0 / LN2), shift)
    k = b.fsub(t, shift)
    hi, lo = fmt.ln2_fma
    return m.fma(k, m.c(-lo), m.fma(k, m.c(-hi), x)), t     # the inner fma is exact


def _times_pow2(m: _Math, p: ir.Value, t: ir.Value, offset: int) -> ir.Value:
    """p · 2^(k + offset), one rounding (subnormal results), for |k| <= 1100 given as
    t = k + 1.5·2^mantissa: the integer k is in t's low bits (no fptosi, which would be
    poison for nan). With AVX-512 that is ``llvm.ldexp``, one ``vscalefpd``; without it
    ldexp would be a libm call per element, so there 2^k is split into two normal factors
    (2^1024 and 2^-1075 are not normal) built by shifts. Not by adding k to p's exponent
    bits: that would turn nans with a payload into numbers."""
    b, fmt = m.b, m.fmt
    if _has_vscalef():
        ki = b.sub(b.bitcast(t, m.i), m.ci(_bits(1.5 * 2.0 ** fmt.mantissa, fmt) - offset))
        ldexp = m.cx.declare(f"llvm.ldexp.{fmt.name}.i{m.i.width}", m.f, [m.f, m.i])
        return b.call(ldexp, [p, ki])
    k_bits = b.bitcast(t, m.i)
    if offset:
        k_bits = b.add(k_bits, m.ci(offset))
    k_field = b.shl(k_bits, m.ci(fmt.mantissa))        # k in the exponent field (it fits)
    half_field = b.shl(b.ashr(k_field, m.ci(fmt.mantissa + 1)), m.ci(fmt.mantissa))
    one_field = m.ci(fmt.bias << fmt.mantissa)
    s1 = b.bitcast(b.add(b.sub(k_field, half_field), one_field), m.f)   # 2^(k - k//2)
    s2 = b.bitcast(b.add(half_field, one_field), m.f)                   # 2^(k//2)
    return b.fmul(b.fmul(p, s1), s2)


@functools.cache
def _has_vscalef() -> bool:
    """Whether the host (the code's target) has AVX-512's vscalef, which ldexp lowers to."""
    return bool(llvm.get_host_cpu_features().get("avx512f"))


def _bits(value: float, fmt: Format) -> int:
    packing = {"f64": ("<d", "<q"), "f32": ("<f", "<i")}[fmt.name]
    return struct.unpack(packing[1], struct.pack(packing[0], value))[0]


def _exp(m: _Math, x: ir.Value) -> ir.Value:
    return _exp_scaled(m, x, m.fmt.exp_range[1])


def _expm1(m: _Math, x: ir.Value) -> ir.Value:
    """expm1(x) = 2^k·(1 + p) - 1 with p = expm1(r) = r + c, c = r·(r·q(r)) + r_lo.
    (2^k - 1) + 2^k·r is summed exactly (Fast2Sum: |2^k - 1| >= |2^k·r| for k != 0), so the
    cancellation of k = ±1 costs no accuracy."""
    b = m.b
    ki, r, r_lo = _reduce(m, m.clamp(x, m.fmt.expm1_low, m.fmt.exp_range[1]))
    q = m.horner(r, _exp_taylor(m.fmt)[2:])
    c = m.fma(r, b.fmul(r, q), r_lo)
    s1, s2 = _split_pow2(m, ki)
    s = b.fmul(s1, s2)
    head, tail = b.fsub(s, m.c(1.0)), b.fmul(s, r)          # both exact
    total = b.fadd(head, tail)
    error = b.fsub(tail, b.fsub(total, head))
    small = b.fadd(total, m.fma(s, c, error))
    large = b.fmul(m.fma(b.fadd(r, c), s1, s1), s2)   # -1 is below an ulp; 2^k may overflow
    big_k = b.icmp_signed(">", ki, m.ci(m.fmt.mantissa + 2))
    result = m.when(big_k, large, small)
    result = m.when(b.icmp_signed("==", ki, m.ci(0)), m.fma(r, b.fmul(r, q), r), result)
    return m.when(b.fcmp_ordered("==", x, m.c(0.0)), x, result)      # keeps -0


# --------------------------------------------------------------------------- log and log1p

def _log_core(m: _Math, x: ir.Value) -> ir.Value:
    """log(x) for finite x > 0 (fdlibm's e_log): x = 2^e·(1+f), 1+f in [sqrt(1/2), sqrt(2)),
    log(1+f) = f - f²/2 + s·(f²/2 + R(s²)), s = f/(2+f)."""
    b, fmt = m.b, m.fmt
    smallest_normal = 2.0 ** (1 - fmt.bias)
    scale_bits = fmt.mantissa + 2
    subnormal = b.fcmp_ordered("<", x, m.c(smallest_normal))
    x = m.when(subnormal, b.fmul(x, m.c(2.0 ** scale_bits)), x)
    bits = b.bitcast(x, m.i)
    e = b.ashr(b.sub(bits, m.ci(fmt.sqrt_half_bits)), m.ci(fmt.mantissa))
    mant = b.bitcast(b.sub(bits, b.shl(e, m.ci(fmt.mantissa))), m.f)
    e = b.sub(e, m.when(subnormal, m.ci(scale_bits), m.ci(0)))
    ef = b.sitofp(e, m.f)
    f = b.fsub(mant, m.c(1.0))
    s = b.fdiv(f, b.fadd(f, m.c(2.0)))
    z = b.fmul(s, s)
    big_r = b.fmul(z, m.horner(z, fmt.log_coeffs))
    hfsq = b.fmul(m.c(0.5), b.fmul(f, f))
    ln2_hi, ln2_lo = fmt.ln2_split
    inner = m.fma(s, b.fadd(hfsq, big_r), b.fmul(ef, m.c(ln2_lo)))
    return m.fma(ef, m.c(ln2_hi), b.fsub(f, b.fsub(hfsq, inner)))


def _log_edges(m: _Math, x: ir.Value, value: ir.Value) -> ir.Value:
    """The results the core does not give: log(inf) = inf, log(±0) = -inf, log(<0) = nan,
    log(nan) = nan."""
    b = m.b
    value = m.when(b.fcmp_ordered("==", x, m.c(math.inf)), x, value)
    value = m.when(b.fcmp_ordered("==", x, m.c(0.0)), m.c(-math.inf), value)
    value = m.when(b.fcmp_ordered("<", x, m.c(0.0)), m.c(math.nan), value)
    return m.when(b.fcmp_unordered("uno", x, x), x, value)


def _log(m: _Math, x: ir.Value) -> ir.Value:
    return _log_edges(m, x, _log_core(m, x))


def _log1p(m: _Math, x: ir.Value) -> ir.Value:
    """log1p(x) = log(u) + c/u with u = 1+x rounded and c = x - (u-1) the rounding error."""
    b = m.b
    u = b.fadd(m.c(1.0), x)
    c = b.fsub(x, b.fsub(u, m.c(1.0)))
    value = _log_edges(m, u, b.fadd(_log_core(m, u), b.fdiv(c, u)))
    value = m.when(b.fcmp_ordered("==", x, m.c(math.inf)), x, value)   # c = inf - inf there
    return m.when(b.fcmp_ordered("==", x, m.c(0.0)), x, value)          # keeps -0


# --------------------------------------------------------------------------- tanh, sinh, cosh

def _odd_small(m: _Math, ax: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(|x|², |x|³): near 0, tanh and sinh are |x| + |x|³·R(|x|²)."""
    z = m.b.fmul(ax, ax)
    return z, m.b.fmul(ax, z)


def _minus_two_exp(m: _Math, ax: ir.Value) -> ir.Value:
    """-2·e^(-2|x|) for 0 <= |x| <= tanh_high, to about an ulp: the scale 2^k (k >= -60) is
    added to the exponent bits of the polynomial (the -2 is folded into its coefficients).
    The reduction works on |x| itself, not on y = -2|x| (one multiplication less): with
    -2|x| = k·ln2 + r, h = -r/2 = |x| + k·ln2/2 is as exact as r (halving is), and
    e^r = Σ c_n·(-2)^n·h^n evaluates, step by step, to the same bits as Σ c_n·r^n."""
    b, fmt = m.b, m.fmt
    a = m.clamp(ax, 0.0, fmt.tanh_high)
    shift = m.c(1.5 * 2.0 ** fmt.mantissa)
    t = m.fma(a, m.c(-2.0 / LN2), shift)
    k = b.fsub(t, shift)
    hi, lo = fmt.ln2_fma
    h = m.fma(k, m.c(lo / 2), m.fma(k, m.c(hi / 2), a))
    p = m.horner(h, tuple(-2.0 * coeff * (-2.0) ** n for n, coeff in enumerate(fmt.exp_short)))
    ki = b.sub(b.bitcast(t, m.i), b.bitcast(shift, m.i))
    return b.bitcast(b.add(b.bitcast(p, m.i), b.shl(ki, m.ci(fmt.mantissa))), m.f)


def _tanh(m: _Math, x: ir.Value) -> ir.Value:
    """tanh|x| = |x| + |x|³·P/Q below 1 (minimax rational, P/Q ~ (tanh|x|/|x| - 1)/x²), else
    1 + v/(1 - v/2) with v = -2e^(-2|x|) (= 1 - 2/(e^(2|x|) + 1)). Either way a small term
    (at most 0.31 of the result) is added to an exact one, so its few ulps of rounding cost
    well under one in the sum. Both branches are computed and share one division; the sign
    is copied back (-0 stays -0, nan stays nan through the first branch)."""
    b, fmt = m.b, m.fmt
    ax = m.call("fabs", x)
    small = b.fcmp_unordered("<", ax, m.c(1.0))
    z, ax3 = _odd_small(m, ax)
    v = _minus_two_exp(m, ax)
    numerator = m.when(small, b.fmul(ax3, m.horner(z, fmt.tanh_p)), v)
    denominator = m.when(small, m.horner(z, fmt.tanh_q), m.fma(v, m.c(-0.5), m.c(1.0)))
    value = b.fadd(m.when(small, ax, m.c(1.0)), b.fdiv(numerator, denominator))
    return m.call("copysign", value, x)


def _half_exp(m: _Math, ax: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(h, 1/(4h)) with h = e^|x|/2, for |x| >= 0: the halving is exact in the scale, and h
    overflows to inf only where cosh and sinh do (1/(4h) is 0 then)."""
    h = _exp_scaled(m, ax, m.fmt.hyper_high, halve=True)
    return h, m.b.fdiv(m.c(0.25), h)


def _logistic(m: _Math, x: ir.Value) -> ir.Value:
    """1 / (1 + e^(−x)), as the user wrote it (0 where e^(−x) overflows, as numpy gives)."""
    return m.b.fdiv(m.c(1.0), m.b.fadd(m.c(1.0), _exp(m, m.b.fneg(x))))


def _cosh(m: _Math, x: ir.Value) -> ir.Value:
    """cosh x = h + 1/(4h); near 0 the errors of h and of 1/(4h) cancel to first order."""
    h, h_inv = _half_exp(m, m.call("fabs", x))
    return m.b.fadd(h, h_inv)


def _sinh(m: _Math, x: ir.Value) -> ir.Value:
    """sinh|x| = |x| + |x|³·P(x²) below SINH_SMALL (no cancellation), ``_sinh_large`` above;
    sign copied."""
    b = m.b
    ax = m.call("fabs", x)
    z, ax3 = _odd_small(m, ax)
    small = m.fma(ax3, m.horner(z, m.fmt.sinh_p), ax)
    value = m.when(b.fcmp_unordered("<", ax, m.c(SINH_SMALL)), small, _sinh_large(m, ax))
    return m.call("copysign", value, x)


def _sinh_large(m: _Math, ax: ir.Value) -> ir.Value:
    """sinh|x| for |x| >= 2: with e^|x| = 2^k·(1 + q), q = r + r²·Q(r) (k >= 3),
    sinh|x| = 2^(k-1)·(1 + (q - c)), c = 2^-2k/(1 + q) <= 2^-6/0.7. The one rounding that
    matters is that of 1 + (q - c), in the result's own binade. (h - 1/(4h)) with h = e^|x|/2
    rounded first was 2 ulps off from ln 8 to asinh 4: h past 4, sinh still below it, so
    h's half ulp was a whole one of the result.) k is capped for c: beyond, c is below
    2^-2·cap, far under an ulp, and 2^-2k stays normal."""
    b, fmt = m.b, m.fmt
    r, t = _exp_reduce(m, ax, fmt.hyper_high)
    q = m.fma(b.fmul(r, r), m.horner(r, fmt.exp_q), r)
    ki = b.sub(b.bitcast(t, m.i), m.ci(_bits(1.5 * 2.0 ** fmt.mantissa, fmt)))
    cap = m.ci(fmt.mantissa + 8)
    kc = m.when(b.icmp_signed(">", ki, cap), cap, ki)
    c = b.fdiv(m.pow2(b.mul(kc, m.ci(-2))), b.fadd(m.c(1.0), q))
    return _times_pow2(m, b.fadd(m.c(1.0), b.fsub(q, c)), t, -1)


# --------------------------------------------------------------------------- the tables

Rule = Callable[[_Math, ir.Value], ir.Value]

RULES: dict[Prim, Rule] = {
    Prim.EXP: _exp,
    Prim.EXPM1: _expm1,
    Prim.LOG: _log,
    Prim.LOG1P: _log1p,
    Prim.TANH: _tanh,
    Prim.SINH: _sinh,
    Prim.COSH: _cosh,
    Prim.LOGISTIC: _logistic,
}

_BY_LLVM_TYPE = {str(fmt.float_type): fmt for fmt in FORMATS.values()}

#: Worst error against numpy in ulps over dense sweeps of each function's domain, edges
#: included (tests/codegen/test_vmath.py). It includes numpy's own error: on this AVX-512
#: machine numpy's f32 log is up to 3 ulp and its f32 exp/expm1/log1p/cosh up to 2 ulp from
#: the correctly rounded result, numpy's tanh/sinh up to 1, while these functions are within
#: 1 ulp of it (``ULPS_EXACT``). So f32 log is 3 from numpy while 1 from exact.
ULPS: dict[tuple[Prim, Type], int] = {
    (Prim.EXP, F64): 1, (Prim.EXP, F32): 2,
    (Prim.EXPM1, F64): 1, (Prim.EXPM1, F32): 2,
    (Prim.LOG, F64): 1, (Prim.LOG, F32): 3,
    (Prim.LOG1P, F64): 1, (Prim.LOG1P, F32): 2,
    (Prim.TANH, F64): 1, (Prim.TANH, F32): 2,
    (Prim.SINH, F64): 1, (Prim.SINH, F32): 2,
    (Prim.COSH, F64): 1, (Prim.COSH, F32): 2,
    (Prim.LOGISTIC, F64): 4, (Prim.LOGISTIC, F32): 4,
}
#: Worst error against the correctly rounded result (long double, or f64 for f32), measured.
ULPS_EXACT: dict[tuple[Prim, Type], int] = {case: 1 for case in ULPS} | {
    # against 1/(1 + e^(−x)) with e^(−x) correctly rounded and the rest in the format: exp's
    # ulp, then an add and a division each rounding
    (Prim.LOGISTIC, F64): 3, (Prim.LOGISTIC, F32): 3}


def lower(cx: Context, prim: Prim, xs: list[ir.Value]) -> ir.Value | None:
    """The inline, vectorizable value of ``prim`` applied to ``xs``; None when this module
    has no implementation for that prim or type (use the scalar lowering then)."""
    rule = RULES.get(prim)
    fmt = _BY_LLVM_TYPE.get(str(xs[0].type)) if xs else None
    if rule is None or fmt is None or len(xs) != 1:
        return None
    return rule(_Math(cx, fmt), xs[0])
