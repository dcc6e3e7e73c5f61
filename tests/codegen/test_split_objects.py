"""A straight-line kernel is compiled in two objects (``compiler.split_module``): its ``optnone``
kernel and entry point emitted at code generation level 0, the row loops they call optimized;
both load into one engine, from a compile or from the disk cache. Other kernels are one object;
a packed cache payload that is not exactly a list of objects, or lacks one, is never loaded."""
from __future__ import annotations

import ctypes
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

import codegen
from codegen import cache, compiler
from codegen.compiler import Part, build_module, elf_symbols, split_module, symbol_names
from codegen.lowering import CodegenError
from codegen.runtime import shared_target_machine
from sxad.ir import F64, I64, ArrayType, Func, Prim, Value
from sxad.prims import Emitter

from native_arrays import check_native

X = ArrayType(F64, 1)


def flat(tag: str) -> Func:
    """A loop-free array program (its kernel is ``optnone``) with three row loops."""
    x, n = Value(X, "x"), Value(I64, "n")
    b = Emitter([x, n])
    y = b.exp(b.mul(x, x))
    picked = b.index(y, b.arange(b.const(0), n, b.const(1)), spec=("a",))
    return Func(f"split_{tag}", b.finish([picked]), ("x", "n"))


def looped(tag: str) -> Func:
    """An array program with a ``for`` loop: its kernel is optimized."""
    x, n = Value(X, "x"), Value(I64, "n")
    i, s = Value(I64, "i"), Value(F64, "s")
    body = Emitter([i, s])
    s2 = body.add(s, body.reduce_sum(body.exp(x)))
    b = Emitter([x, n])
    (r,) = b.op(Prim.FOR, [b.const(0), n, b.const(1), b.const(0.0)], [F64],
                regions=[body.finish([s2])], hints=["s"])
    return Func(f"split_{tag}", b.finish([r]), ("x", "n"))


def parts_of(func: Func) -> list[Part]:
    return split_module(build_module(func, func.name), symbol_names(func.name)[0])


def defined_functions(text: str) -> dict[str, str]:
    """Function name -> its ``define`` line's linkage/visibility word ('' for none)."""
    return {m[2]: m[1] or "" for m in re.finditer(
        r'^define (?:(internal|private|hidden) )?[^@]*@"([^"]+)"\(', text, re.M)}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SXAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SXAD_CACHE", raising=False)
    return tmp_path


def test_module_text_is_llvmlites_text():
    """The split prints a module global by global; with nothing replaced that is exactly
    llvmlite's own printing (a guard against a printer change)."""
    for func in (flat("text"), looped("text")):
        module = build_module(func, func.name)
        assert compiler.module_text(module) == str(module)


def test_straight_line_kernel_is_split_in_two_parts():
    cold, hot = parts_of(flat("parts"))
    kernel_symbol, entry_symbol = symbol_names("split_parts")
    assert not cold.optimized and hot.optimized
    cold_defs, hot_defs = defined_functions(cold.text), defined_functions(hot.text)
    assert set(cold_defs) == {kernel_symbol, entry_symbol}
    loops = {n for n in hot_defs if n.startswith("sxad.loop")}
    assert len(loops) == 3 and set(hot_defs) >= loops
    assert set(hot_defs).isdisjoint(cold_defs)
    assert set(hot_defs.values()) == {"hidden"}   # were internal: the other object calls them
    for name in hot_defs:   # the cold part declares what it calls in the hot one
        assert re.search(rf'^declare hidden [^@]*@"{re.escape(name)}"\(', cold.text, re.M)
    for part in (cold, hot):
        compiler.parse(part.text)   # each is a valid module on its own


def test_other_kernels_are_one_optimized_part():
    (part,) = parts_of(looped("one"))
    assert part.optimized
    module = build_module(looped("one"), "split_one")
    assert part.text == str(module)


def test_a_mutable_global_is_never_duplicated():
    """A module defining a mutable global stays whole (each object would get its own copy)."""
    module, kernel = hand_module("mutable")
    counter = ir.GlobalVariable(module, ir.IntType(64), "sxad.counter")
    counter.initializer = ir.Constant(ir.IntType(64), 0)
    (part,) = split_module(module, kernel.name)
    assert part.optimized
    counter.global_constant = True
    assert len(split_module(module, kernel.name)) == 2


def hand_module(name: str, with_loop: bool = True) -> tuple[ir.Module, ir.Function]:
    """``sxad.kernel.<name>(i64 x) = 10 * table[0] + twice(x)``, optnone, with ``twice`` an
    internal optimized function reading the same private constant ``table`` (without
    ``with_loop``: ``+ x``, no other function); the entry point returns the kernel's address
    (only its existence matters here)."""
    i64 = ir.IntType(64)
    module = ir.Module(name=name)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(shared_target_machine().target_data)
    table = ir.GlobalVariable(module, ir.ArrayType(i64, 2), "table")
    table.initializer = ir.Constant(ir.ArrayType(i64, 2), [7, 1])
    table.global_constant, table.linkage = True, "private"
    first = table.gep([ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 0)])

    if with_loop:
        twice = ir.Function(module, ir.FunctionType(i64, [i64]), "sxad.loop")
        twice.linkage = "internal"
        twice.attributes.add("noinline")
        b = ir.IRBuilder(twice.append_basic_block("entry"))
        b.ret(b.add(b.mul(twice.args[0], ir.Constant(i64, 2)), b.load(first)))   # 2x + 7

    kernel_symbol, entry_symbol = symbol_names(name)
    kernel = ir.Function(module, ir.FunctionType(i64, [i64]), kernel_symbol)
    for attribute in ("noinline", "optnone"):
        kernel.attributes.add(attribute)
    b = ir.IRBuilder(kernel.append_basic_block("entry"))
    rest = b.call(twice, [kernel.args[0]]) if with_loop else kernel.args[0]
    b.ret(b.add(b.mul(b.load(first), ir.Constant(i64, 10)), rest))

    entry = ir.Function(module, ir.FunctionType(ir.PointerType(), []), entry_symbol)
    for attribute in ("noinline", "optnone"):
        entry.attributes.add(attribute)
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    b.ret(kernel)
    return module, kernel


def test_two_objects_link_in_one_engine():
    module, kernel = hand_module("hand")
    parts = split_module(module, kernel.name)
    assert [p.optimized for p in parts] == [False, True]
    objects = [compiler.compile_part(p) for p in parts]
    (cold_undefined, cold_defined), (_, hot_defined) = map(elf_symbols, objects)
    assert "sxad.loop" in cold_undefined and "sxad.loop" in hot_defined
    assert "sxad.loop" not in cold_defined and kernel.name not in hot_defined
    engine, address, entry = compiler.load_objects(objects, "hand")
    assert ctypes.CFUNCTYPE(ctypes.c_void_p)(entry)() == address
    assert ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address)(5) == 70 + 17
    with pytest.raises(CodegenError, match="sxad.loop"):   # the cold object alone
        compiler.load_objects(objects[:1], "hand")


def test_split_kernel_runs_and_is_cached_as_two_objects(cache_dir):
    func = flat("cached")
    kernel = codegen.compile_kernel(func)
    x = np.linspace(-1, 1, 7)
    check_native(func, [x, 5], kernel.entry)
    objects = cache.unpack(cache.load(kernel.key))
    assert objects is not None and len(objects) == 2
    (_, cold_defined), (_, hot_defined) = map(elf_symbols, objects)
    assert symbol_names(func.name)[0] in cold_defined
    assert sum(n.startswith("sxad.loop") for n in hot_defined) == 3

    cache.memory.clear()   # now from the disk cache: the same two objects, loaded together
    before = cache.stats.copy()
    again = codegen.compile_kernel(func)
    assert again is not kernel
    assert cache.stats["disk_hits"] == before["disk_hits"] + 1
    assert cache.stats["compiled"] == before["compiled"]
    check_native(func, [x, 5], again.entry)
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        again.entry(x, 8)


def test_a_payload_missing_an_object_is_recompiled(cache_dir):
    func = flat("missing")
    kernel = codegen.compile_kernel(func)
    cold, _ = cache.unpack(cache.load(kernel.key))
    cache.store(kernel.key, cache.pack([cold]))   # well-formed, but the loops are gone
    cache.memory.clear()
    before = cache.stats.copy()
    again = codegen.compile_kernel(func)
    assert cache.stats["disk_rejected"] == before["disk_rejected"] + 1
    assert cache.stats["compiled"] == before["compiled"] + 1
    check_native(func, [np.linspace(-1, 1, 7), 5], again.entry)
    assert len(cache.unpack(cache.load(kernel.key))) == 2   # rewritten whole


def test_pack_round_trip_and_malformed_payloads():
    objects = [b"\x7fELF one", b"", b"three" * 9]
    packed = cache.pack(objects)
    assert cache.unpack(packed) == objects
    assert cache.unpack(cache.pack([b"x"])) == [b"x"]
    count_at = len(b"sxadobjs")
    bad = [b"", packed[:-1], packed + b"\0", b"\x7fELF\x02\x01" + bytes(100),
           b"sxadobjX" + packed[8:],
           packed[:count_at] + (0).to_bytes(4, "little") + packed[count_at + 4:],
           packed[:count_at] + (2 ** 32 - 1).to_bytes(4, "little") + packed[count_at + 4:],
           packed[:count_at + 4] + (2 ** 63).to_bytes(8, "little") + packed[count_at + 12:]]
    for payload in bad:
        assert cache.unpack(payload) is None, payload[:40]



def test_a_straight_line_kernel_calling_nothing_optimized_is_one_unoptimized_part():
    module, kernel = hand_module("alone", with_loop=False)
    (part,) = split_module(module, kernel.name)
    assert not part.optimized and part.text == str(module)
    engine, address, _ = compiler.load_objects([compiler.compile_part(part)], "alone")
    assert ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address)(5) == 70 + 5
