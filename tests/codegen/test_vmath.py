"""codegen.vmath: the inline exp/log/expm1/log1p/tanh/sinh/cosh against numpy (ulps over dense sweeps and
at the edges), and that a loop using them is vectorized."""
from __future__ import annotations

import ctypes
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from codegen import compiler, runtime, vmath
from codegen.kernel import declare
from sxad.ir import F32, F64, I64, Prim

PTR = ir.PointerType()
INT64 = ir.IntType(64)
DTYPES = {F64: np.float64, F32: np.float32}
NUMPY = {Prim.EXP: np.exp, Prim.LOG: np.log, Prim.EXPM1: np.expm1, Prim.LOG1P: np.log1p,
         Prim.TANH: np.tanh, Prim.SINH: np.sinh, Prim.COSH: np.cosh,
         Prim.LOGISTIC: lambda x: 1 / (1 + np.exp(-x))}
CASES = [(prim, dtype) for dtype in DTYPES for prim in NUMPY]
UNARY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class Cx:
    """The lowering Context the rules need: a builder and a module to declare intrinsics in."""

    def __init__(self, module: ir.Module, builder: ir.IRBuilder) -> None:
        self.module, self.b = module, builder

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return declare(self.module, name, ret, args)


def emit_map(module: ir.Module, name: str, dtype, prim: Prim) -> None:
    """``void name(ptr x, ptr y, i64 n)``: y[i] = prim(x[i]), the shape of a map loop."""
    fty = vmath.FORMATS[dtype].float_type
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, INT64]), name)
    x, y, n = fn.args
    for arg in (x, y):
        arg.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, INT64(0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(INT64)
    value = vmath.lower(Cx(module, b), prim, [b.load(b.gep(x, [i], source_etype=fty), typ=fty)])
    b.store(value, b.gep(y, [i], source_etype=fty))
    following = b.add(i, INT64(1))
    i.add_incoming(INT64(0), entry)
    i.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("<", following, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


def symbol(prim: Prim, dtype) -> str:
    return f"map_{prim.value}_{dtype}"


def build(cases: list) -> tuple[dict, str, str]:
    """(functions by case, optimized module text, its assembly) of map loops for ``cases``."""
    module = ir.Module(name="vmath_test")
    module.triple = llvm.get_process_triple()
    module.data_layout = str(runtime.shared_target_machine().target_data)
    for prim, dtype in cases:
        emit_map(module, symbol(prim, dtype), dtype, prim)
    runtime.register_symbols()
    llmod = compiler.parse(str(module))
    compiler.optimize(llmod)
    text = str(llmod)
    assembly = runtime.shared_target_machine().emit_assembly(llmod)
    engine = llvm.create_mcjit_compiler(llmod, runtime.target_machine())
    engine.finalize_object()
    functions = {case: UNARY(engine.get_function_address(symbol(*case))) for case in cases}
    functions["engine"] = engine      # keeps the code alive
    return functions, text, assembly


@pytest.fixture(scope="module")
def compiled():
    """(functions by case, optimized module text): one module, compiled once."""
    functions, text, assembly = build(CASES)
    functions["assembly"] = assembly
    return functions, text


SCALED = [(prim, dtype) for dtype in DTYPES for prim in (Prim.EXP, Prim.SINH, Prim.COSH)]


@pytest.fixture(scope="module")
def compiled_without_vscalef():
    """The functions that scale by 2^k, built as for a CPU without AVX-512 (2^k from shifts,
    two multiplications), whatever this machine has."""
    saved = vmath._has_vscalef
    vmath._has_vscalef = lambda: False
    try:
        functions, text, _ = build(SCALED)
    finally:
        vmath._has_vscalef = saved
    assert "llvm.ldexp" not in text
    return functions


def run(functions, prim: Prim, dtype, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, DTYPES[dtype])
    y = np.empty_like(x)
    functions[prim, dtype](x.ctypes.data, y.ctypes.data, len(x))
    return y


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Units in the last place between same-dtype arrays (nan = nan, +0 = -0, inf = inf)."""
    int_type = np.int64 if got.dtype == np.float64 else np.int32
    a, b = (v.astype(got.dtype).view(int_type).astype(np.int64) for v in (got, want))
    lowest = np.iinfo(int_type).min
    a, b = (np.where(v < 0, lowest - v, v) for v in (a, b))
    return np.where(np.isnan(got) & np.isnan(want), 0, np.abs(a - b))


def sweep(dtype, rng: np.random.Generator) -> np.ndarray:
    """Dense over every function's interesting range: the whole exp range and past both ends,
    around 0 and ±1, a few hundred ulps around the branch points, exponentially spread magnitudes of both signs, subnormals."""
    f32 = dtype is F32
    top = 110.0 if f32 else 760.0
    tiny = -103.0 if f32 else -744.0
    bits = (rng.integers(1, 2 ** 23, 20000).astype(np.int32).view(np.float32) if f32
            else rng.integers(1, 2 ** 52, 20000).view(np.float64))
    near = np.concatenate([ulp_steps(np.full(401, p, DTYPES[dtype]), np.arange(-200, 201))
                           for p in (1.0, 2.0, 10.0, 20.0)])     # tanh's and sinh's switches
    parts = [np.linspace(-top, top, 300001), np.linspace(-2.0, 2.0, 200001), near, -near,
             np.linspace(-1.0, 0.0, 50001), np.linspace(-1e-3, 1e-3, 50001),
             rng.standard_normal(100000) * 4,
             np.exp(rng.uniform(tiny, 4.0, 100000)) * rng.choice([-1.0, 1.0], 100000),
             bits, -bits]
    return np.concatenate([np.asarray(p, DTYPES[dtype]) for p in parts])


def ulp_steps(x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Positive x moved by ``steps`` ulps (through the integer view)."""
    int_type = np.int64 if x.dtype == np.float64 else np.int32
    return (x.view(int_type) + steps.astype(int_type)).view(x.dtype)


def exact(prim: Prim, dtype, x: np.ndarray) -> np.ndarray:
    """The correctly rounded result, nearly: f32 through numpy's f64, f64 through long double.
    For logistic, the formula it stands for, 1/(1 + e^(−x)), with e^(−x) correctly rounded
    (overflowing to inf as the format does: that σ is then 0, not its tiny exact value)."""
    wider = np.float64 if dtype is F32 else np.longdouble
    with np.errstate(all="ignore"):
        if prim is Prim.LOGISTIC:
            e = np.exp(-x.astype(wider)).astype(DTYPES[dtype])
            one = DTYPES[dtype](1.0)
            return one / (one + e)
        return NUMPY[prim](x.astype(wider)).astype(DTYPES[dtype])


@pytest.mark.parametrize("prim,dtype", CASES, ids=lambda v: str(v))
def test_accuracy_on_sweep(compiled, prim, dtype):
    functions, _ = compiled
    x = sweep(dtype, np.random.default_rng(7))
    got = run(functions, prim, dtype, x)
    with np.errstate(all="ignore"):
        want = NUMPY[prim](x)
    worst = int(ulps(got, want).max())
    worst_exact = int(ulps(got, exact(prim, dtype, x)).max())
    print(f"{prim} {dtype}: {worst} ulp from numpy, {worst_exact} from the exact result")
    assert worst <= vmath.ULPS[prim, dtype]
    assert worst_exact <= vmath.ULPS_EXACT[prim, dtype]


EDGES = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.5, -0.5, 2.0,
         1e-30, -1e-30, 1e-300, -1e-300, 5e-324, -5e-324, 1e-45, -1e-45, 1.2e-38, 3e38, -3e38,
         1e308, -1e308, 88.72, 88.73, 89.0, -87.3, -103.9, -104.0, -150.0,
         709.78, 709.79, 710.0, -708.4, -745.1, -745.2, -1000.0, 20.0, -20.0, 9.5, 40.0, -40.0,
         710.47, 710.48, -710.47, -710.48, 89.41, 89.42, -89.41, -89.42, 9.0, 9.1, -9.1,
         19.1, -19.1, 1e-8, -1e-8, 1e-4, -1e-4]


@pytest.mark.parametrize("prim,dtype", CASES, ids=lambda v: str(v))
def test_edges(compiled, prim, dtype):
    """Special values give numpy's results exactly: nan, ±inf, ±0 (sign included), overflow to
    inf, underflow to 0, log of 0 and of negatives; finite results within the table."""
    functions, _ = compiled
    with np.errstate(all="ignore"):
        x = np.array(EDGES, DTYPES[dtype])
        want = NUMPY[prim](x)
    got = run(functions, prim, dtype, x)
    special = ~np.isfinite(want) | (want == 0) | (np.abs(want) == 1)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (x, got, want)
    same = np.isnan(want) | ((got == want) & (np.signbit(got) == np.signbit(want)))
    assert same[special].all(), (x[special], got[special], want[special])
    assert ulps(got, want).max() <= vmath.ULPS[prim, dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tiny_arguments(compiled, dtype):
    """Where tanh x and sinh x round to x they are x (sign included), cosh x is 1; subnormals
    too."""
    functions, _ = compiled
    np_type = DTYPES[dtype]
    tiny = np.finfo(np_type).tiny
    top = 2.0 ** -27 if dtype is F64 else 2.0 ** -12          # x³/3 is below half an ulp of x
    x = np.geomspace(tiny * 2.0 ** -20, top, 5001).astype(np_type)
    x = np.concatenate([x, -x])
    for prim in (Prim.TANH, Prim.SINH):
        got = run(functions, prim, dtype, x)
        assert np.array_equal(got, x) and np.array_equal(np.signbit(got), np.signbit(x)), prim
    assert (run(functions, Prim.COSH, dtype, x) == 1).all()


def test_subnormal_results_rounded_once(compiled):
    """exp into the subnormal range keeps its precision there (one rounding, not two)."""
    functions, _ = compiled
    for dtype, low, high in ((F64, -745.0, -708.5), (F32, -103.0, -87.5)):
        x = np.linspace(low, high, 20001).astype(DTYPES[dtype])
        got = run(functions, Prim.EXP, dtype, x)
        assert (got > 0).all() and ulps(got, exact(Prim.EXP, dtype, x)).max() <= 1


def test_loops_vectorized(compiled):
    """Each map loop has vector arithmetic and calls nothing but LLVM intrinsics, and the
    machine code calls nothing at all (``llvm.ldexp`` is used only where it is one
    instruction, ``vscalef``, not a libm call per element)."""
    functions, text = compiled
    assert not re.search(r"\bcall[a-z]*\s", functions["assembly"]), "a call in the loops"
    if vmath._has_vscalef():
        assert "vscalefpd" in functions["assembly"] and "vscalefps" in functions["assembly"]
    width = {F64: 8, F32: 16} if llvm.get_host_cpu_features().get("avx512f") else \
        {F64: 4, F32: 8}
    for prim, dtype in CASES:
        name = symbol(prim, dtype)
        body = re.search(rf"define [^@]*@{name}\(.*?\n}}\n", text, re.S).group(0)
        element = "double" if dtype is F64 else "float"
        assert f"<{width[dtype]} x {element}>" in body, name
        callees = set(re.findall(r"call [^@]*@([\w.]+)", body))
        assert callees and all(c.startswith("llvm.") for c in callees), (name, callees)


def test_not_handled_gives_none():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "f")
    cx = Cx(module, ir.IRBuilder(fn.append_basic_block()))
    assert vmath.lower(cx, Prim.SIN, [ir.Constant(ir.DoubleType(), 1.0)]) is None
    assert vmath.lower(cx, Prim.EXP, [ir.Constant(INT64, 1)]) is None
    assert vmath.lower(cx, Prim.EXP, [ir.Constant(ir.DoubleType(), 1.0)]) is not None
    assert set(vmath.ULPS) == {(p, t) for p in vmath.RULES for t in (F64, F32)}
    assert I64 not in vmath.FORMATS


@pytest.mark.parametrize("prim,dtype", SCALED, ids=lambda v: str(v))
def test_scaling_without_vscalef(compiled_without_vscalef, prim, dtype):
    """The shift-and-multiply scaling (CPUs without AVX-512) meets the same bounds, edges
    included: overflow to inf, subnormal results rounded once, underflow to 0."""
    functions = compiled_without_vscalef
    with np.errstate(all="ignore"):     # the f64 edges overflow f32 to inf: wanted
        x = np.concatenate([sweep(dtype, np.random.default_rng(3)),
                            np.array(EDGES, DTYPES[dtype]), thresholds(dtype)])
        want = NUMPY[prim](x)
        got = run(functions, prim, dtype, x)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert ulps(got, want).max() <= vmath.ULPS[prim, dtype]
        assert ulps(got, exact(prim, dtype, x)).max() <= vmath.ULPS_EXACT[prim, dtype]


def thresholds(dtype) -> np.ndarray:
    """±3000 ulps around where exp overflows, where its results turn subnormal and where
    they underflow to 0, and where cosh and sinh overflow."""
    points = ((709.782712893384, -708.3964185322641, -745.1332191019411, 710.4758600739439)
              if dtype is F64 else (88.72283935546875, -87.33654022216797, -103.97208404541016,
                                    89.41598510742188))
    steps = np.arange(-3000, 3001)
    return np.concatenate([np.sign(p) * ulp_steps(np.full(steps.size, abs(p), DTYPES[dtype]),
                                                  steps) for p in points])


@pytest.mark.parametrize("prim,dtype", SCALED, ids=lambda v: str(v))
def test_thresholds(compiled, prim, dtype):
    """Densely around the overflow, subnormal and underflow thresholds: within the bounds of
    the correctly rounded result, inf exactly where that is inf, 0 exactly where it is 0."""
    functions, _ = compiled
    x = thresholds(dtype)
    got = run(functions, prim, dtype, x)
    want = exact(prim, dtype, x)
    assert ulps(got, want).max() <= vmath.ULPS_EXACT[prim, dtype]
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.array_equal(got == 0, want == 0)
    assert np.isinf(want).any() and (prim is not Prim.EXP or (want == 0).any())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_payloads(compiled, dtype):
    """Every function gives nan for a nan with any payload and either sign (the exponent
    arithmetic must never turn a nan's bits into a number)."""
    functions, _ = compiled
    int_type, quiet, top = ((np.int64, 0x7FF8000000000000, 51) if dtype is F64
                            else (np.int32, 0x7FC00000, 22))
    payloads = np.array([0, 1, 2, 3, 0x7FF, 1954, 0x3FF, (1 << top) - 1]
                        + [1 << b for b in range(top)], np.int64)
    bits = (quiet | payloads).astype(int_type)
    x = np.concatenate([bits.view(DTYPES[dtype]), -bits.view(DTYPES[dtype]),
                        (bits ^ (1 << top)).astype(int_type).view(DTYPES[dtype])])  # signalling
    x = x[np.isnan(x)]
    for prim in NUMPY:
        got = run(functions, prim, dtype, x)
        assert np.isnan(got).all(), (prim, x[~np.isnan(got)].view(int_type), got[~np.isnan(got)])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sinh_where_half_exp_crosses_a_binade(compiled, dtype):
    """From ln 8 to asinh 4 (and the like further up) e^x/2 is past a power of two and sinh x
    still below it: computing e^x/2 rounded first cost 2 ulps there."""
    functions, _ = compiled
    x = np.concatenate([np.linspace(2.0, 2.1, 200001), np.linspace(2.77, 2.78, 100001),
                        np.linspace(3.46, 3.47, 100001)]).astype(DTYPES[dtype])
    x = np.concatenate([x, -x])
    got = run(functions, Prim.SINH, dtype, x)
    assert ulps(got, exact(Prim.SINH, dtype, x)).max() <= 1
