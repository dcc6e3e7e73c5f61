"""Every tolerance the tests use, in one table."""

TOL = {
    # a 4-point central difference stencil (error ~h^4) against the plain Python function
    "finite-difference": dict(rtol=1e-6, atol=1e-8),
    # forward mode against reverse mode, and the dot-product test
    "modes": dict(rtol=1e-10, atol=1e-12),
    # a rule evaluated in IR against sympy.diff
    "sympy": dict(rtol=1e-12, atol=1e-12),
    # a sympy rewrite against the expression it replaces (exact algebra, reassociated floats)
    "symbolic": dict(rtol=1e-12, atol=1e-300),
    "symbolic-random": dict(rtol=1e-9, atol=1e-12),
    # two backends on the same program (interpreter, generated Python)
    "backends": dict(rtol=1e-13, atol=0.0),
    # the native kernel against the interpreter: libm transcendentals differ from numpy's
    # by a few ulp (codegen.ULPS); derivative programs chain several of them, and cancellation
    # (1 − tanh² near saturation) turns an ulp of the operand into a larger relative error
    "native": dict(rtol=1e-11, atol=1e-14),
    # native array programs against the interpreter: vmath's exp/log/tanh (≤ 2 ulp, codegen.vmath
    # ULPS) inside fused loops, reductions summed in another order (vectorized partial sums)
    "native-array": dict(rtol=1e-12, atol=1e-13),
    "native-f32": dict(rtol=2e-5, atol=2e-6),
    # float32 array programs: their derivatives against the same program's in float64 (f32 has
    # 24 bits; reductions and matmuls sum a few dozen terms), and the f32 dot-product test
    "f32": dict(rtol=2e-4, atol=2e-5),
    "f32-modes": dict(rtol=1e-4, atol=1e-5),
    # the seed chapter prints three decimals
    "seed": dict(rtol=0.0, atol=5e-4),
}

FD_STEP = 2e-4
