"""From a ``Func`` to a loaded native kernel, read top to bottom:

    verify → build the LLVM module (kernel + entry point) → its text is the cache key
    → memory cache → disk cache → (cold) parse, verify, O3 + vectorize, emit object code,
      store it
    → check the object's undefined symbols → load it into its own MCJIT engine → builtin

Each kernel gets its own engine, so equal symbol names in different kernels never meet. Engines
and builtins live as long as the process: a builtin may be referenced anywhere.
"""
from __future__ import annotations

import re
import struct
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import llvmlite.binding as llvm
from llvmlite import ir

from sxad.ir import Func, Prim, verify
from sxad.ir.serialize import dumps
from sxad.prims import result_types

from . import blas, cache, helpers
from .entry import emit_entry
from .indexing import bounds_checked
from .kernel import emit_kernel, writes_in_place
from .lowering import CodegenError
from .runtime import (Guard, make_builtin, register_symbols, shared_target_machine,
                      target_machine, unresolved)


@dataclass(frozen=True)
class NativeKernel:
    """A compiled function. ``entry`` is the Python builtin; ``address`` is the C-ABI kernel
    ``int32_t kernel(params…, out-pointers…)`` (see ``codegen.kernel``) for native callers."""

    name: str
    entry: Callable[..., Any]
    address: int
    entry_address: int
    key: str
    engine: Any   # the MCJIT engine owning the code; kept alive with the kernel
    #: The kernel writes the final values of the arguments the function updates
    #: (``Func.mutated``) into those arguments: the caller has nothing to write back.
    writes_in_place: bool = False


_lock = threading.RLock()
_alive: list[NativeKernel] = []   # never freed: their builtins may be referenced anywhere


def symbol_names(name: str) -> tuple[str, str]:
    """(kernel, entry) symbols. The dot keeps them apart from every C symbol (``exp``…)."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", name) or "f"
    return f"sxad.kernel.{base}", f"sxad.entry.{base}"


def build_module(func: Func, name: str, bounds_check: bool | None = None) -> ir.Module:
    """The unoptimized LLVM module of ``func``: its kernel and its entry point (indices
    bounds-checked unless ``SXAD_BOUNDS_CHECK=0``, or as ``bounds_check`` says)."""
    _check_one_tape(func)
    if bounds_check is None:
        bounds_check = bounds_checked()
    kernel_symbol, entry_symbol = symbol_names(name)
    module = ir.Module(name=name)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(shared_target_machine().target_data)
    kernel = emit_kernel(module, func, kernel_symbol, bounds_check)
    emit_entry(module, func, kernel, entry_symbol)
    return module


def _check_one_tape(func: Func) -> None:
    """Native code keeps one tape; a second reverse transform's pushes (``tape`` attr ≥ 1,
    reverse over reverse) would interleave with the first's, so such programs are refused
    (the API runs them as generated Python)."""
    if any(op.attr("tape") for op in func.body.walk() if op.prim in (Prim.PUSH, Prim.POP)):
        raise CodegenError(f"{func.name}: native code keeps one tape; this program uses "
                           "several (reverse over reverse): it runs as generated Python")


def optimize(llmod: llvm.ModuleRef, level: int = 3) -> None:
    """O3 (or O``level``) with loop and SLP vectorization for the host CPU (the new pass
    manager)."""
    options = llvm.create_pipeline_tuning_options(speed_level=level)
    options.loop_vectorization = True
    options.slp_vectorization = True
    options.loop_unrolling = True
    builder = llvm.create_pass_builder(shared_target_machine(), options)
    builder.getModulePassManager().run(llmod, builder)


def parse(ir_text: str) -> llvm.ModuleRef:
    llmod = llvm.parse_assembly(ir_text)
    llmod.verify()
    return llmod


def compile_object(ir_text: str, level: int = 3) -> bytes:
    llmod = parse(ir_text)
    optimize(llmod, level)
    return shared_target_machine().emit_object(llmod)


def load_object(obj: bytes, name: str) -> tuple[Any, int, int]:
    """(engine, kernel address, entry address) of object code, after checking that it defines
    both symbols and that every symbol it needs resolves (MCJIT would abort the process)."""
    kernel_symbol, entry_symbol = symbol_names(name)
    table = elf_symbols(obj)
    if table is None and sys.platform.startswith("linux"):
        raise CodegenError("object code is not ELF")
    if table is None:   # which helpers it calls cannot be read: load them all
        helpers.ensure(helpers.symbols())
    if table is not None:
        undefined, defined = table
        if not {kernel_symbol, entry_symbol} <= defined:
            raise CodegenError(f"object code lacks {kernel_symbol} or {entry_symbol}")
        helpers.ensure(sorted(undefined))
        missing = unresolved(sorted(undefined))
        if missing:
            raise CodegenError(f"native code needs symbols nothing defines: {', '.join(missing)}")
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    kernel, entry = (engine.get_function_address(s) for s in (kernel_symbol, entry_symbol))
    if not kernel or not entry:
        raise CodegenError(f"object code lacks {kernel_symbol} or {entry_symbol}")
    return engine, kernel, entry


def elf_symbols(obj: bytes) -> tuple[set[str], set[str]] | None:
    """(undefined, defined global) symbol names of an ELF64 little-endian object; None for
    other formats. Raises CodegenError on a malformed file."""
    if obj[:4] != b"\x7fELF" or obj[4:6] != b"\x02\x01":
        return None
    try:
        shoff, = struct.unpack_from("<Q", obj, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize)
                    for i in range(shnum)]
        undefined, defined = set(), set()
        for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
            if sh_type != 2:   # SHT_SYMTAB
                continue
            strtab = sections[link]
            for pos in range(offset + entsize, offset + size, entsize):   # entry 0 is null
                st_name, st_info, _, st_shndx = struct.unpack_from("<IBBH", obj, pos)
                start = strtab[4] + st_name
                name = obj[start:obj.index(b"\0", start)].decode()
                if st_shndx == 0 and name:
                    undefined.add(name)
                elif st_info >> 4 == 1:   # STB_GLOBAL
                    defined.add(name)
        return undefined, defined
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as err:
        raise CodegenError(f"malformed object code: {err}") from None


def compile_kernel(func: Func, name: str | None = None) -> NativeKernel:
    """The native kernel of ``func``, from the memory cache, the disk cache or a compilation."""
    name = name or func.name
    checks = bounds_checked()
    with _lock:
        kernel = _by_func.get(func, {}).get((name, checks))
        if kernel is None or cache.memory.get(kernel.key) is not kernel:
            kernel = _compile_kernel(func, name, checks)
            _by_func.setdefault(func, {})[name, checks] = kernel
        else:
            cache.stats["memory_hits"] += 1
        return kernel


# The same Func object compiled again skips even building its LLVM module (frozen IR: a Func
# never changes). Weak keys: the IR may be dropped; its kernel stays alive in ``_alive``.
_by_func: "weakref.WeakKeyDictionary[Func, dict[tuple[str, bool], NativeKernel]]" = \
    weakref.WeakKeyDictionary()


def _compile_kernel(func: Func, name: str, bounds_check: bool = True) -> NativeKernel:
    register_symbols()
    key = cache.program_key(dumps(func), name, blas.available(), bounds_check)
    kernel = cache.memory.get(key)
    if kernel is not None:
        cache.stats["memory_hits"] += 1
        return kernel
    engine, address, entry_address = _load_or_compile(key, func, name, bounds_check)
    doc = f"{name}({', '.join(func.arg_names)})\n--\n\nNative kernel of {func.name}."
    kernel = NativeKernel(name, make_builtin(name, entry_address, doc), address,
                          entry_address, key, engine, writes_in_place(func))
    _alive.append(kernel)
    cache.memory[key] = kernel
    return kernel


def _load_or_compile(key: str, func: Func, name: str,
                     bounds_check: bool = True) -> tuple[Any, int, int]:
    """From the disk cache (no LLVM module is built), else lowered, optimized and stored."""
    obj = cache.load(key)
    if obj is not None:
        try:
            return load_object(obj, name)
        except CodegenError:
            cache.stats["disk_rejected"] += 1
    verify(func, result_types)
    obj = compile_object(str(build_module(func, name, bounds_check)))
    cache.stats["compiled"] += 1
    cache.store(key, obj)
    return load_object(obj, name)


def compile_native(func: Func, name: str | None = None) -> Callable[..., Any]:
    """A Python builtin running ``func`` natively (see ``codegen.entry`` for its protocol)."""
    return compile_kernel(func, name).entry


def bind_fallback(kernel: NativeKernel, fallback: Callable[..., Any],
                  guards: Sequence[Guard] = ()) -> Callable[..., Any]:
    """A builtin running ``kernel`` that passes the calls it cannot take to ``fallback``, and
    every call while one of ``guards`` fails (see ``runtime.Guard``): the kernel is stale then."""
    return make_builtin(kernel.name, kernel.entry_address, kernel.entry.__doc__ or "", fallback,
                        guards)


def llvm_source(func: Func, optimized: bool = True) -> str:
    """The LLVM IR text of ``func``'s module (kernel and entry point), optimized or as emitted."""
    verify(func, result_types)
    with _lock:
        text = str(build_module(func, func.name))
        if not optimized:
            return text
        llmod = parse(text)
        optimize(llmod)
        return str(llmod)
