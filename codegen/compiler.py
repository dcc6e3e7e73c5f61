"""From a ``Func`` to a loaded native kernel, read top to bottom:

    the IR program is the cache key → memory cache → disk cache
    → (cold) verify, build the LLVM module (kernel + entry point), split it in parts
      (``split_module``), parse and verify each, O3 + vectorize the optimized part, emit object
      code (one object per part), store it
    → check the objects' undefined symbols → load them into their own MCJIT engine → builtin

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

from . import blas, cache, helpers, prefetch
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


@dataclass(frozen=True)
class Part:
    """IR text compiled to one object: ``optimized`` (O3, code generation level 3) or not
    (its functions are all ``optnone``: no optimizer, code generation level 0)."""

    text: str
    optimized: bool


def split_module(module: ir.Module, kernel_symbol: str) -> list[Part]:
    """``module`` as the parts it is compiled in. A straight-line kernel (its kernel function
    is ``optnone``: ``kernel.straight_line``) is two parts: its ``optnone`` functions (the
    kernel and the entry point: the bulk of the code, run once per call) emitted at code
    generation level 0 without the optimizer (levels 1-3 take ~3x longer to emit the same
    unoptimized code: greedy register allocation, analyses of every function), and the
    functions they call (row loops, their trampolines, small helpers) optimized as before.
    Across parts a function is declared by its name, which is unique in the module: the
    optimized part's functions become hidden globals, and the two objects are linked by
    loading them into one engine. Only constant globals may appear in both parts (each object
    keeps its copy), so a module defining a mutable global, like any other module, is one
    optimized part; a straight-line kernel calling nothing optimized is one part, not
    optimized."""
    defined = [g for g in module.globals.values()
               if isinstance(g, ir.Function) and not g.is_declaration]
    cold = {f.name for f in defined if "optnone" in f.attributes}
    if kernel_symbol not in cold or any(_mutable(g) for g in module.globals.values()):
        return [Part(str(module), optimized=True)]
    hot = {f.name for f in defined} - cold
    if not hot:
        return [Part(str(module), optimized=False)]
    cold_text = module_text(module, {name: _declaration(module.globals[name]) for name in hot})
    hot_text = module_text(module, {
        **{name: _declaration(module.globals[name]) for name in cold},
        **{name: _exported(module.globals[name]) for name in hot}})
    return [Part(cold_text, optimized=False), Part(hot_text, optimized=True)]


def _mutable(value: ir.GlobalValue) -> bool:
    """A global variable defined in the module that is not constant."""
    return (isinstance(value, ir.GlobalVariable) and value.initializer is not None
            and not value.global_constant)


# ``define [internal|private] …``, the head of a function definition as llvmlite prints it.
_DEFINE = re.compile(r"define (?:(internal|private) )?")


def _declaration(fn: ir.Function) -> str:
    """``fn``'s declaration; a local function is declared as the hidden global ``_exported``
    makes it."""
    head: list[str] = []
    fn.descr_prototype(head)
    return _DEFINE.sub(lambda m: "declare hidden " if m[1] else "declare ", head[0], count=1)


def _exported(fn: ir.Function) -> str:
    """``fn``'s definition, a local function made a hidden global (another object calls it)."""
    text = str(fn)
    if not _DEFINE.match(text):
        raise CodegenError(f"unexpected function text: {text[:80]!r}")
    return _DEFINE.sub(lambda m: "define hidden " if m[1] else "define ", text, count=1)


def module_text(module: ir.Module, replaced: dict[str, str] | None = None) -> str:
    """``str(module)`` with the globals named in ``replaced`` printed as the text given there
    (with none replaced, exactly ``str(module)``: tests check it against llvmlite's printer)."""
    replaced = replaced or {}
    lines = [f'; ModuleID = "{module.name}"', f'target triple = "{module.triple}"',
             f'target datalayout = "{module.data_layout}"', ""]
    lines += [t.get_declaration() for t in module.get_identified_types().values()]
    lines += [replaced[g.name] if g.name in replaced else str(g)
              for g in module.globals.values()]
    lines += ["!{} = !{{ {} }}".format(name, ", ".join(op.get_reference() for op in md.operands))
              for name, md in module.namedmetadata.items()]
    lines += [str(md) for md in module.metadata]
    return "\n".join(lines)


def compile_part(part: Part) -> bytes:
    """The object code of ``part``."""
    if part.optimized:
        return compile_object(part.text)
    return shared_target_machine(0).emit_object(parse(part.text))


def compile_module(module: ir.Module, kernel_symbol: str) -> list[bytes]:
    """The object code of a kernel's module: one object per part (``split_module``)."""
    return [compile_part(part) for part in split_module(module, kernel_symbol)]


def load_objects(objects: Sequence[bytes], name: str) -> tuple[Any, int, int]:
    """(engine, kernel address, entry address) of the objects of a kernel, loaded together
    into one engine, after checking that they define both symbols and that every symbol they
    need resolves, among them or in the process (MCJIT would abort the process)."""
    kernel_symbol, entry_symbol = symbol_names(name)
    if not objects:
        raise CodegenError("no object code")
    tables = [elf_symbols(obj) for obj in objects]
    if None in tables and sys.platform.startswith("linux"):
        raise CodegenError("object code is not ELF")
    if None in tables:   # which helpers it calls cannot be read: load them all
        helpers.ensure(helpers.symbols())
    else:
        defined = set().union(*(table[1] for table in tables))
        undefined = set().union(*(table[0] for table in tables)) - defined
        if not {kernel_symbol, entry_symbol} <= defined:
            raise CodegenError(f"object code lacks {kernel_symbol} or {entry_symbol}")
        helpers.ensure(sorted(undefined))
        missing = unresolved(sorted(undefined))
        if missing:
            raise CodegenError(f"native code needs symbols nothing defines: {', '.join(missing)}")
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
    for obj in objects:
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
    prefetch.compiled()   # builds waiting for this kernel's compile (the gemm kernel) may start
    return kernel


def _load_or_compile(key: str, func: Func, name: str,
                     bounds_check: bool = True) -> tuple[Any, int, int]:
    """From the disk cache (no LLVM module is built), else lowered, optimized and stored."""
    payload = cache.load(key)
    if payload is not None:
        try:
            objects = cache.unpack(payload)
            if objects is None:
                raise CodegenError("not a packed list of objects")
            return load_objects(objects, name)
        except CodegenError:
            cache.stats["disk_rejected"] += 1
    verify(func, result_types)
    objects = compile_module(build_module(func, name, bounds_check), symbol_names(name)[0])
    cache.stats["compiled"] += 1
    cache.store(key, cache.pack(objects))
    return load_objects(objects, name)


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
