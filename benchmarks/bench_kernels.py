"""Array kernel benchmarks (a script, not a test): prints markdown tables.

    python benchmarks/bench_kernels.py [--threads N]

1. gemm GFLOP/s, row-major C = A·B: numpy's OpenBLAS called from LLVM code (codegen.blas),
   the LLVM fallback kernel (single-threaded), and ``np.matmul(out=)``. The two LLVM variants
   repeat the product in a native loop, so small sizes measure the product, not a ctypes call;
   numpy's column includes its Python call overhead (~1 µs).
2. elementwise exp, tanh, sinh, cosh, sigmoid = 1/(1+exp(-x)) over 10⁶ values (x ~ N(0, 4²)),
   f64 and f32: a loop using codegen.vmath against numpy (sigmoid in numpy: the expression,
   three temporaries).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import llvmlite.binding as llvm  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402

from codegen import blas, compiler, gemm, runtime, vmath  # noqa: E402
from codegen.kernel import declare  # noqa: E402
from sxad.ir import F32, F64, Prim  # noqa: E402

PTR = ir.PointerType()
INT64 = ir.IntType(64)
NUMPY = {F64: np.float64, F32: np.float32}
C_FLOAT = {F64: ctypes.c_double, F32: ctypes.c_float}
MAPS = {"exp": Prim.EXP, "tanh": Prim.TANH, "sinh": Prim.SINH, "cosh": Prim.COSH}
GEMM_SIZES = [(16, 16, 16), (32, 32, 32), (64, 64, 64), (128, 64, 10), (128, 10, 64),
              (64, 784, 128), (128, 128, 128), (256, 256, 256), (512, 512, 512)]


class Cx:
    def __init__(self, module: ir.Module, builder: ir.IRBuilder) -> None:
        self.module, self.b = module, builder

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return declare(self.module, name, ret, args)


def new_module() -> ir.Module:
    module = ir.Module(name="bench")
    module.triple = llvm.get_process_triple()
    module.data_layout = str(runtime.shared_target_machine().target_data)
    return module


def load(module: ir.Module):
    runtime.register_symbols()
    from codegen import helpers
    helpers.ensure(helpers.symbols())    # the gemm kernel calls the runtime library's
    llmod = compiler.parse(str(module))
    compiler.optimize(llmod)
    engine = llvm.create_mcjit_compiler(llmod, runtime.target_machine())
    engine.finalize_object()
    return engine


def repeat_loop(b: ir.IRBuilder, count: ir.Value, body) -> None:
    """for r in range(count): body()"""
    fn = b.function
    before = b.block
    loop, done = fn.append_basic_block("rep"), fn.append_basic_block("rep.end")
    b.cbranch(b.icmp_signed(">", count, INT64(0)), loop, done)
    b.position_at_end(loop)
    r = b.phi(INT64)
    body()
    following = b.add(r, INT64(1))
    r.add_incoming(INT64(0), before)
    r.add_incoming(following, b.block)
    b.cbranch(b.icmp_signed("<", following, count), loop, done)
    b.position_at_end(done)


def emit_gemm_bench(module: ir.Module, name: str, dtype, use_blas: bool) -> None:
    """``void name(m, n, k, a, b, c, repeats)``: C = A·B, contiguous, `repeats` times."""
    fty = blas.LL_FLOAT[dtype]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [INT64] * 3 + [PTR] * 3 + [INT64]),
                     name)
    m, n, k, a, bm, c, repeats = fn.args
    b = ir.IRBuilder(fn.append_basic_block())
    cx = Cx(module, b)
    repeat_loop(b, repeats, lambda: blas.emit_gemm(
        cx, dtype, False, False, m, n, k, 1.0, a, k, bm, n, ir.Constant(fty, 0.0), c, n,
        blas=use_blas))
    b.ret_void()


def emit_map(module: ir.Module, name: str, dtype, what: str) -> None:
    """``void name(x, y, n)``: y = f(x) elementwise, f one of ``MAPS`` or 1/(1+exp(-x))."""
    fty = vmath.FORMATS[dtype].float_type
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, INT64]), name)
    x, y, n = fn.args
    for arg in (x, y):
        arg.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    cx = Cx(module, b)
    b.cbranch(b.icmp_signed(">", n, INT64(0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(INT64)
    v = b.load(b.gep(x, [i], source_etype=fty), typ=fty)
    if what == "sigmoid":
        one = ir.Constant(fty, 1.0)
        e = vmath.lower(cx, Prim.EXP, [b.fneg(v)])
        result = b.fdiv(one, b.fadd(one, e))
    else:
        result = vmath.lower(cx, MAPS[what], [v])
    b.store(result, b.gep(y, [i], source_etype=fty))
    following = b.add(i, INT64(1))
    i.add_incoming(INT64(0), entry)
    i.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("<", following, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


def best_of(run, repeats: int = 7) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_gemm() -> None:
    module = new_module()
    kinds = (["blas"] if blas.available() else []) + ["fallback"]
    for dtype in NUMPY:
        for kind in kinds:
            emit_gemm_bench(module, f"gemm_{kind}_{dtype}", dtype, kind == "blas")
    engine = load(module)
    signature = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 3, *[ctypes.c_void_p] * 3,
                                 ctypes.c_int64)
    rng = np.random.default_rng(0)
    print(f"\n## gemm GFLOP/s (OpenBLAS threads: {blas.threads()}; fallback: 1 thread, "
          f"{gemm.tile(F64)[2] * 64}-bit vectors)\n")
    print("| dtype | m×n×k | " + " | ".join(kinds) + " | numpy matmul |")
    print("|---|---|" + "---|" * (len(kinds) + 1))
    for dtype, np_type in NUMPY.items():
        for m, n, k in GEMM_SIZES:
            a = rng.standard_normal((m, k)).astype(np_type)
            b = rng.standard_normal((k, n)).astype(np_type)
            c = np.empty((m, n), np_type)
            flops = 2.0 * m * n * k
            repeats = max(1, int(5e7 / flops))
            cells = []
            for kind in kinds:
                f = signature(engine.get_function_address(f"gemm_{kind}_{dtype}"))
                t = best_of(lambda: f(m, n, k, a.ctypes.data, b.ctypes.data, c.ctypes.data,
                                      repeats)) / repeats
                assert np.allclose(c, a @ b, rtol=1e-3, atol=1e-3)
                cells.append(f"{flops / t / 1e9:.1f}")

            def numpy_loop() -> None:
                for _ in range(repeats):
                    np.matmul(a, b, out=c)
            t = best_of(numpy_loop) / repeats
            cells.append(f"{flops / t / 1e9:.1f}")
            print(f"| {dtype} | {m}×{n}×{k} | " + " | ".join(cells) + " |")


def bench_vmath() -> None:
    module = new_module()
    whats = (*MAPS, "sigmoid")
    for dtype in NUMPY:
        for what in whats:
            emit_map(module, f"{what}_{dtype}", dtype, what)
    engine = load(module)
    signature = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    numpy = {what: (lambda f: lambda x, y: f(x, out=y))(getattr(np, what)) for what in MAPS}
    numpy["sigmoid"] = lambda x, y: np.divide(1, 1 + np.exp(-x), out=y)
    n = 1_000_000
    print("\n## elementwise over 10⁶ values, ms (codegen.vmath loop vs numpy)\n")
    print("| function | dtype | vmath | numpy | speed-up |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    for dtype, np_type in NUMPY.items():
        x = (rng.standard_normal(n) * 4).astype(np_type)
        y = np.empty_like(x)
        for what in whats:
            f = signature(engine.get_function_address(f"{what}_{dtype}"))
            ours = best_of(lambda: f(x.ctypes.data, y.ctypes.data, n), 15)
            theirs = best_of(lambda: numpy[what](x, y), 15)
            print(f"| {what} | {dtype} | {ours * 1e3:.3f} | {theirs * 1e3:.3f} | "
                  f"{theirs / ours:.1f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="OpenBLAS threads (process-wide)")
    args = parser.parse_args()
    if args.threads:
        blas.set_threads(args.threads)
    bench_gemm()
    bench_vmath()


if __name__ == "__main__":
    main()
