"""The process side of native code: LLVM initialisation, the symbols JIT code calls, target
machines, and turning a METH_FASTCALL address into a Python builtin.

Python objects the generated code compares against (``float``, ``True``, ``NotImplemented``,
exception types…) are named by external globals whose *address* is the object, resolved here with
``llvm.add_symbol``. Addresses therefore never appear in the LLVM IR, so the IR text (and the
object code cached on disk) is the same in every process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from typing import Any, Callable

import llvmlite
import llvmlite.binding as llvm
import numpy as np

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()

#: The CPython C API functions the entry points call.
C_API = ("PyFloat_AsDouble", "PyFloat_FromDouble", "PyLong_AsLongLong", "PyLong_FromLongLong",
         "PyBool_FromLong", "PyTuple_New", "PyType_IsSubtype", "PyErr_Occurred",
         "PyErr_SetString", "PyErr_NoMemory", "Py_IncRef", "Py_DecRef", "PyObject_Vectorcall")

#: Global symbol name -> the Python object it stands for (its address is the object).
PY_OBJECTS: dict[str, Any] = {
    "sxad.py.float": float, "sxad.py.int": int, "sxad.py.bool": bool,
    "sxad.py.True": True, "sxad.py.False": False, "sxad.py.NotImplemented": NotImplemented,
    "sxad.py.ValueError": ValueError, "sxad.py.IndexError": IndexError,
    "sxad.np.integer": np.integer, "sxad.np.True": np.True_, "sxad.np.False": np.False_,
}

#: Layout facts of this CPython build that the entry points rely on.
OB_TYPE_OFFSET = 8                                  # PyObject: ob_refcnt, ob_type
TUPLE_ITEMS_OFFSET = tuple.__basicsize__            # PyTupleObject.ob_item
METH_FASTCALL = 0x0080
METH_KEYWORDS = 0x0002

_lock = threading.RLock()
_symbols_ready = False


def _check_layout() -> None:
    """Refuse to run on a CPython whose object header differs from the one the IR assumes."""
    probe = 1.5
    ob_type = ctypes.c_void_p.from_address(id(probe) + OB_TYPE_OFFSET).value
    if object.__basicsize__ != 16 or ob_type != id(float):
        raise ImportError("codegen needs a standard 64-bit CPython object layout")


def register_symbols() -> None:
    """Make every external symbol the generated code may reference resolvable, once."""
    global _symbols_ready
    with _lock:
        if _symbols_ready:
            return
        _check_layout()
        for lib in ("m", "c"):
            _load_library(lib)
        for name in C_API:
            address = ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
            llvm.add_symbol(name, address)
        for name, obj in PY_OBJECTS.items():
            llvm.add_symbol(name, id(obj))
        _symbols_ready = True


def _load_library(short: str) -> None:
    """Make a C library's symbols (libm's ``exp``…, libc's ``malloc``…) visible to JIT code;
    glibc's soname first, as ``find_library`` runs a subprocess."""
    try:
        llvm.load_library_permanently(f"lib{short}.so.6")
    except RuntimeError:
        path = ctypes.util.find_library(short)
        if path:
            llvm.load_library_permanently(path)


def unresolved(names: list[str]) -> list[str]:
    """The names among ``names`` no loaded library or registered symbol defines.

    MCJIT aborts the process on an unresolved symbol, so every load checks first."""
    return [n for n in names if not llvm.address_of_symbol(n)]


# --------------------------------------------------------------------------- target machines

def host_cpu() -> tuple[str, str]:
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def target_machine() -> llvm.TargetMachine:
    """A fresh TargetMachine for the host CPU. MCJIT takes ownership of the one it is given,
    and the large code model lets JIT code reach libraries anywhere in the address space."""
    cpu, features = host_cpu()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=cpu, features=features, opt=3,
                                        reloc="default", codemodel="jitdefault")


_shared_tm: llvm.TargetMachine | None = None


def shared_target_machine() -> llvm.TargetMachine:
    """The TargetMachine used for optimization and object emission (not given to MCJIT)."""
    global _shared_tm
    with _lock:
        if _shared_tm is None:
            _shared_tm = target_machine()
        return _shared_tm


@functools.cache
def versions() -> str:
    """Everything besides the IR that decides what object code a module compiles to."""
    cpu, features = host_cpu()
    return (f"llvmlite {llvmlite.__version__}; llvm {llvm.llvm_version_info}; "
            f"triple {llvm.get_process_triple()}; cpu {cpu}; features {features}")


# --------------------------------------------------------------------------- builtins

class PyMethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_new_cfunction = ctypes.pythonapi.PyCFunction_NewEx
_new_cfunction.restype = ctypes.py_object
_new_cfunction.argtypes = [ctypes.POINTER(PyMethodDef), ctypes.c_void_p, ctypes.c_void_p]

# A builtin points at its PyMethodDef for its whole life; these are never freed (as numba's).
# One per entry point: every builtin of that entry shares it.
_method_defs: dict[int, PyMethodDef] = {}


def make_builtin(name: str, address: int, doc: str,
                 fallback: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A Python builtin whose ``METH_FASTCALL | METH_KEYWORDS`` implementation is the native code
    at ``address``; calls it cannot take go to ``fallback`` (its ``self``; see ``codegen.entry``).
    The builtin holds a reference to ``fallback``."""
    with _lock:
        md = _method_defs.get(address)
        if md is None:
            md = _method_defs[address] = PyMethodDef(name.encode(), address,
                                                     METH_FASTCALL | METH_KEYWORDS, doc.encode())
    # NULL self: a plain function. PyCFunction_NewEx takes its own reference to ``fallback``.
    return _new_cfunction(ctypes.byref(md), None if fallback is None else id(fallback), None)
