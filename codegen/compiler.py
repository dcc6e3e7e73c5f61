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

from sxad.ir import Block, Func, verify
from sxad.prims import result_types

from . import cache
from .entry import emit_entry
from .kernel import ABI_TYPE, emit_kernel
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


_lock = threading.RLock()
_alive: list[NativeKernel] = []   # never freed: their builtins may be referenced anywhere


def _check_types(func: Func) -> None:
    """Arrays and f32 are not lowered yet (docs/ARRAYS.md step 3): say so, naming the value."""
    def values(block: Block):
        yield from block.params
        for op in block.ops:
            yield from op.results
            for region in op.regions:
                yield from values(region)
    for value in values(func.body):
        if value.type not in ABI_TYPE:
            what = f"`{value.hint}`" if value.hint else "a value"
            raise CodegenError(f"{func.name}: {what} has type {value.type}, which the native "
                               f"backend does not support yet (run with SXAD_BACKEND=python)")


def symbol_names(name: str) -> tuple[str, str]:
    """(kernel, entry) symbols. The dot keeps them apart from every C symbol (``exp``…)."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", name) or "f"
    return f"sxad.kernel.{base}", f"sxad.entry.{base}"


def build_module(func: Func, name: str) -> ir.Module:
    """The unoptimized LLVM module of ``func``: its kernel and its entry point."""
    kernel_symbol, entry_symbol = symbol_names(name)
    module = ir.Module(name=name)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(shared_target_machine().target_data)
    kernel = emit_kernel(module, func, kernel_symbol)
    emit_entry(module, func, kernel, entry_symbol)
    return module


def optimize(llmod: llvm.ModuleRef) -> None:
    """O3 with loop and SLP vectorization for the host CPU (the new pass manager)."""
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    options.loop_unrolling = True
    builder = llvm.create_pass_builder(shared_target_machine(), options)
    builder.getModulePassManager().run(llmod, builder)


def parse(ir_text: str) -> llvm.ModuleRef:
    llmod = llvm.parse_assembly(ir_text)
    llmod.verify()
    return llmod


def compile_object(ir_text: str) -> bytes:
    llmod = parse(ir_text)
    optimize(llmod)
    return shared_target_machine().emit_object(llmod)


def load_object(obj: bytes, name: str) -> tuple[Any, int, int]:
    """(engine, kernel address, entry address) of object code, after checking that it defines
    both symbols and that every symbol it needs resolves (MCJIT would abort the process)."""
    kernel_symbol, entry_symbol = symbol_names(name)
    table = elf_symbols(obj)
    if table is None and sys.platform.startswith("linux"):
        raise CodegenError("object code is not ELF")
    if table is not None:
        undefined, defined = table
        if not {kernel_symbol, entry_symbol} <= defined:
            raise CodegenError(f"object code lacks {kernel_symbol} or {entry_symbol}")
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
    _check_types(func)
    name = name or func.name
    with _lock:
        kernel = _by_func.get(func, {}).get(name)
        if kernel is None or cache.memory.get(kernel.key) is not kernel:
            kernel = _compile_kernel(func, name)
            _by_func.setdefault(func, {})[name] = kernel
        else:
            cache.stats["memory_hits"] += 1
        return kernel


# The same Func object compiled again skips even building its LLVM module (frozen IR: a Func
# never changes). Weak keys: the IR may be dropped; its kernel stays alive in ``_alive``.
_by_func: "weakref.WeakKeyDictionary[Func, dict[str, NativeKernel]]" = weakref.WeakKeyDictionary()


def _compile_kernel(func: Func, name: str) -> NativeKernel:
    verify(func, result_types)
    register_symbols()
    text = str(build_module(func, name))
    key = cache.key(text)
    kernel = cache.memory.get(key)
    if kernel is not None:
        cache.stats["memory_hits"] += 1
        return kernel
    engine, address, entry_address = _load_or_compile(key, text, name)
    doc = f"{name}({', '.join(func.arg_names)})\n--\n\nNative kernel of {func.name}."
    kernel = NativeKernel(name, make_builtin(name, entry_address, doc), address,
                          entry_address, key, engine)
    _alive.append(kernel)
    cache.memory[key] = kernel
    return kernel


def _load_or_compile(key: str, text: str, name: str) -> tuple[Any, int, int]:
    obj = cache.load(key)
    if obj is not None:
        try:
            return load_object(obj, name)
        except CodegenError:
            cache.stats["disk_rejected"] += 1
    obj = compile_object(text)
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
