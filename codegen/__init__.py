"""The native backend: sxad IR → LLVM IR (llvmlite) → object code → a Python builtin.

``compile_native(func)`` returns a builtin taking the function's arguments; ``compile_kernel``
also gives the address of the plain C-ABI kernel behind it; ``llvm_source`` shows the LLVM IR.
Compiled object code is cached in memory and on disk (``codegen.cache``).

    lowering.py  each primitive's LLVM lowering and accuracy (tables keyed by Prim)
    arrays.py    arrays: values, the per-call heap, loop nests, elementwise/reduction/shape/
                 matmul lowerings (a table keyed by Prim)
    indexing.py  index, index_add, set_index, reshape, squeeze, full, arange
    fusion.py    elementwise ops fused into one loop per group
    folding.py   an IRBuilder folding integer constants (shape code) as it emits
    helpers.py   the runtime library: copies, reductions and the heap, compiled once per
                 machine (cached on disk), loaded once per process, called by every kernel
    ownership.py which block frees which array buffer (moves and copies at block exits)
    regions.py   the values a region captures
    blas.py      matmul through numpy's OpenBLAS or a blocked LLVM kernel
    vmath.py     vectorizable exp/log/tanh… for array loops
    kernel.py    Func → C-ABI kernel: control flow as blocks and phis, the tape, fault exits
    entry.py     the METH_FASTCALL entry point: unboxing, NotImplemented, boxing, exceptions
    faults.py    the kernel's error codes and the exceptions they become
    compiler.py  the pipeline: build, cache lookup, O3, object code, MCJIT load, builtin
    cache.py     the in-memory and on-disk object caches
    runtime.py   LLVM setup, symbols, the tape limit, target machines, PyMethodDef → builtin,
                 guards packed for the entry point

Imports flow one way: codegen imports ``sxad.ir`` and ``sxad.prims``; nothing in ``sxad``
imports codegen or llvmlite except (later) the API layer.
"""
from . import cache
from .compiler import NativeKernel, bind_fallback, compile_kernel, compile_native, llvm_source
from .faults import Fault
from .lowering import ULPS, ULPS_F32, CodegenError
from .runtime import Guard, set_tape_limit, tape_limit

__all__ = ["CodegenError", "Fault", "Guard", "NativeKernel", "ULPS", "ULPS_F32", "bind_fallback",
           "cache", "compile_kernel", "compile_native", "llvm_source", "set_tape_limit",
           "tape_limit"]
