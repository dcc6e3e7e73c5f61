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
import os
import struct
import threading
import types
from typing import Any, Callable, Sequence

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from .faults import raise_fault

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()
# No second, narrower vector loop after each vectorized one: array rows are long enough that
# the scalar remainder costs little, and the extra loop costs compile time in every kernel.
# (A process-wide LLVM option: it also applies to other llvmlite users in this process.)
llvm.set_option("sxad", "-enable-epilogue-vectorization=false")

#: The CPython C API functions the entry points call.
C_API = ("PyFloat_AsDouble", "PyFloat_FromDouble", "PyLong_AsLongLong", "PyLong_FromLongLong",
         "PyBool_FromLong", "PyTuple_New", "PyType_IsSubtype", "PyErr_Occurred",
         "PyErr_SetString", "PyErr_NoMemory", "Py_IncRef", "Py_DecRef", "PyObject_Vectorcall",
         "PyErr_Format", "PyErr_Clear", "PyDict_GetItemWithError", "PyEval_SaveThread",
         "PyEval_RestoreThread", "PyCapsule_New", "PyCapsule_GetPointer",
         "PyBytes_FromStringAndSize")

#: Global symbol name -> the Python object it stands for (its address is the object).
PY_OBJECTS: dict[str, Any] = {
    "sxad.py.float": float, "sxad.py.int": int, "sxad.py.bool": bool,
    "sxad.py.True": True, "sxad.py.False": False, "sxad.py.NotImplemented": NotImplemented,
    "sxad.py.ValueError": ValueError, "sxad.py.IndexError": IndexError,
    "sxad.py.MemoryError": MemoryError, "sxad.py.ZeroDivisionError": ZeroDivisionError,
    "sxad.np.integer": np.integer, "sxad.np.True": np.True_, "sxad.np.False": np.False_,
    "sxad.np.ndarray": np.ndarray, "sxad.np.float32": np.float32,
    "sxad.py.raise_fault": raise_fault,
}

#: Layout facts of this CPython build that the entry points rely on.
OB_TYPE_OFFSET = 8                                  # PyObject: ob_refcnt, ob_type
TUPLE_ITEMS_OFFSET = tuple.__basicsize__            # PyTupleObject.ob_item
VAR_SIZE_OFFSET = 16                                # PyVarObject.ob_size
BYTES_DATA_OFFSET = bytes.__basicsize__ - 1         # PyBytesObject.ob_sval
METH_FASTCALL = 0x0080
METH_KEYWORDS = 0x0002

_lock = threading.RLock()
_symbols_ready = False


def _check_layout() -> None:
    """Refuse to run on a CPython whose object header differs from the one the IR assumes."""
    probe = 1.5
    ob_type = ctypes.c_void_p.from_address(id(probe) + OB_TYPE_OFFSET).value
    packed = b"layout probe"
    if object.__basicsize__ != 16 or ob_type != id(float) or \
            ctypes.c_ssize_t.from_address(id(packed) + VAR_SIZE_OFFSET).value != len(packed) or \
            ctypes.string_at(id(packed) + BYTES_DATA_OFFSET, len(packed)) != packed:
        raise ImportError("codegen needs a standard 64-bit CPython object layout")


# --------------------------------------------------------------------------- numpy's layout

#: ``PyArrayObject`` fields the entry points read (numpy 2.x ``PyArrayObject_fields``), and
#: ``PyArray_Descr`` fields; checked against a live array by ``_check_numpy_layout``.
ARRAY_DATA, ARRAY_NDIM, ARRAY_DIMS, ARRAY_STRIDES, ARRAY_DESCR, ARRAY_FLAGS = 16, 24, 32, 40, 56, 64
DESCR_BYTEORDER, DESCR_TYPE_NUM = 26, 28
NPY_ALIGNED = 0x0100
NPY_WRITEABLE = 0x0400
NPY_CARRAY = 0x0001 | 0x0100 | 0x0400   # C_CONTIGUOUS | ALIGNED | WRITEABLE
#: numpy's type numbers; an i64 array may be ``long`` or ``long long`` (both 8 bytes here).
TYPE_NUMS = {"f64": (np.dtype(np.float64).num,), "f32": (np.dtype(np.float32).num,),
             "i64": tuple(sorted({np.dtype(np.int64).num, np.dtype("q").num,
                                  np.dtype("l").num} if np.dtype("l").itemsize == 8 else
                                 {np.dtype(np.int64).num, np.dtype("q").num})),
             "bool": (np.dtype(np.bool_).num,)}
#: The numpy C API functions the entry points call: symbol -> index in ``_ARRAY_API``.
NUMPY_API = {"sxad.np.PyArray_DescrFromType": 45, "sxad.np.PyArray_NewFromDescr": 94,
             "sxad.np.PyArray_SetBaseObject": 282}


def _check_numpy_layout() -> None:
    """Refuse to run on a numpy whose ``PyArrayObject`` differs from what the IR assumes."""
    probe = np.zeros((3, 5), dtype=np.float32)[:, ::2]
    base = id(probe)

    def at(offset: int, ctype: Any) -> Any:
        return ctype.from_address(base + offset).value
    dims, strides = at(ARRAY_DIMS, ctypes.c_void_p), at(ARRAY_STRIDES, ctypes.c_void_p)
    descr = at(ARRAY_DESCR, ctypes.c_void_p)
    ok = (at(ARRAY_DATA, ctypes.c_void_p) == probe.ctypes.data and
          at(ARRAY_NDIM, ctypes.c_int) == 2 and
          [ctypes.c_int64.from_address(dims + 8 * k).value for k in range(2)] == [3, 3] and
          [ctypes.c_int64.from_address(strides + 8 * k).value for k in range(2)] ==
          list(probe.strides) and descr == id(probe.dtype) and
          ctypes.c_int.from_address(descr + DESCR_TYPE_NUM).value == probe.dtype.num and
          ctypes.c_char.from_address(descr + DESCR_BYTEORDER).value == b"=" and
          at(ARRAY_FLAGS, ctypes.c_int) & NPY_ALIGNED and
          not at(ARRAY_FLAGS, ctypes.c_int) & 0x0001)
    if not ok:
        raise ImportError(f"codegen does not know numpy {np.__version__}'s array layout")


def _numpy_api() -> dict[str, int]:
    """Addresses of the numpy C API functions in ``NUMPY_API`` (from the ``_ARRAY_API``
    capsule, as ``import_array()`` finds them)."""
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    table = get(np._core._multiarray_umath._ARRAY_API, None)
    entries = (ctypes.c_void_p * 400).from_address(table)
    if entries[2] != id(np.ndarray):   # PyArray_Type: the table is the one we expect
        raise ImportError(f"codegen does not know numpy {np.__version__}'s C API table")
    return {name: entries[k] for name, k in NUMPY_API.items()}


def register_symbols() -> None:
    """Make every external symbol the generated code may reference resolvable, once."""
    global _symbols_ready
    with _lock:
        if _symbols_ready:
            return
        _check_layout()
        _check_numpy_layout()
        for name, address in _numpy_api().items():
            llvm.add_symbol(name, address)
        for lib in ("m", "c"):
            _load_library(lib)
        for name in C_API:
            address = ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
            llvm.add_symbol(name, address)
        for name, obj in PY_OBJECTS.items():
            llvm.add_symbol(name, id(obj))
        llvm.add_symbol(TAPE_LIMIT_SYMBOL, ctypes.addressof(_tape_limit))
        from . import blas  # numpy's OpenBLAS: a cached object may call it before any emit does
        blas.register()
        keep_large_blocks()
        _symbols_ready = True


#: glibc's ``mallopt`` parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks below this come from the heap and are reused; above it, from the OS each time.
LARGE_BLOCK = 256 << 20


def keep_large_blocks() -> bool:
    """Let glibc reuse freed blocks up to ``LARGE_BLOCK`` bytes instead of returning each to the
    OS. Kernels allocate their temporaries per call; with glibc's defaults an 8 MB temporary is
    ``mmap``ed and ``munmap``ed on every call and its pages faulted in anew (measured: a
    log-sum-exp gradient over 10⁶ floats took 8 ms instead of 1.4 ms). Process-wide, as numpy's
    own large temporaries also benefit; the cost is that up to that much freed memory stays
    with the process. ``SXAD_MALLOPT=0`` leaves malloc as it is; other C libraries are left
    alone. Returns whether the setting was made."""
    if os.environ.get("SXAD_MALLOPT", "1").strip() == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, 2 * LARGE_BLOCK))


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


# --------------------------------------------------------------------------- the tape limit

#: The global (an ``int64_t``) that kernels read when their tape must grow: the most bytes a
#: tape may take. Read at run time, so changing it affects kernels already compiled.
TAPE_LIMIT_SYMBOL = "sxad.tape_limit"
DEFAULT_TAPE_LIMIT = 1 << 30   # 1 GiB


def _limit_from_environment() -> int:
    text = os.environ.get("SXAD_TAPE_LIMIT", "").strip().replace("_", "")
    if not text:
        return DEFAULT_TAPE_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f"SXAD_TAPE_LIMIT must be a positive number of bytes, got {text!r}")
    return limit


_tape_limit = ctypes.c_int64(_limit_from_environment())


def tape_limit() -> int:
    """The most bytes a kernel's tape may take (``SXAD_TAPE_LIMIT``, default 1 GiB)."""
    return _tape_limit.value


def set_tape_limit(limit: int) -> None:
    """Change the tape limit of every kernel, compiled or not."""
    if limit <= 0:
        raise ValueError(f"the tape limit must be a positive number of bytes, got {limit}")
    _tape_limit.value = limit


# --------------------------------------------------------------------------- target machines

def host_cpu() -> tuple[str, str]:
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def target_machine(opt: int = 3) -> llvm.TargetMachine:
    """A fresh TargetMachine for the host CPU, generating code at level ``opt``. MCJIT takes
    ownership of the one it is given, and the large code model lets JIT code reach libraries
    anywhere in the address space."""
    cpu, features = host_cpu()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=cpu, features=features, opt=opt,
                                        reloc="default", codemodel="jitdefault")


_shared_tms: dict[int, llvm.TargetMachine] = {}


def shared_target_machine(opt: int = 3) -> llvm.TargetMachine:
    """The TargetMachine used for optimization and object emission at code generation level
    ``opt`` (not given to MCJIT). Level 0 (fast instruction selection, fast register
    allocation) is for code that is not optimized anyway (``optnone`` functions): it emits
    several times faster than levels 1-3, which all cost about the same."""
    with _lock:
        if opt not in _shared_tms:
            _shared_tms[opt] = target_machine(opt)
        return _shared_tms[opt]


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


def make_builtin(name: str, address: int, doc: str, fallback: Callable[..., Any] | None = None,
                 guards: Sequence[Guard] = ()) -> Callable[..., Any]:
    """A Python builtin whose ``METH_FASTCALL | METH_KEYWORDS`` implementation is the native code
    at ``address``. Calls it cannot take, and every call once one of ``guards`` fails, go to
    ``fallback``: its ``self`` is then ``(fallback, packed guards, guarded objects)`` (see
    ``codegen.entry``), which the builtin keeps alive."""
    with _lock:
        md = _method_defs.get(address)
        if md is None:
            md = _method_defs[address] = PyMethodDef(name.encode(), address,
                                                     METH_FASTCALL | METH_KEYWORDS, doc.encode())
    if fallback is None:
        return _new_cfunction(ctypes.byref(md), None, None)   # NULL self: a plain function
    bound = (fallback, *pack_guards(guards))
    # PyCFunction_NewEx takes its own reference to ``bound``.
    return _new_cfunction(ctypes.byref(md), id(bound), None)


# --------------------------------------------------------------------------- guards

#: ``(owner, name, expected)``: the condition ``owner.name is expected``, or, when ``owner`` is
#: a dict (a module's globals), ``owner[name] is expected``. Attribute guards may name a
#: function's ``__code__`` or ``__defaults__`` or a cell's ``cell_contents``.
Guard = tuple[Any, str, Any]
_GUARD = struct.Struct("<QQQ")   # slot or dict, key (0 for a slot), expected


def pack_guards(guards: Sequence[Guard]) -> tuple[bytes, tuple]:
    """The guards as the entry point reads them: 24 bytes each, (address of the slot holding
    the value, 0, expected) or (dict, key, expected); and the objects whose addresses they
    hold, to keep alive."""
    packed = []
    for owner, name, expected in guards:
        if isinstance(owner, dict):
            packed.append(_GUARD.pack(id(owner), id(name), id(expected)))
            continue
        # The slot of ``None`` defaults is NULL (CPython stores no tuple).
        value = 0 if expected is None and name == "__defaults__" else id(expected)
        packed.append(_GUARD.pack(id(owner) + slot_offset(type(owner), name), 0, value))
    return b"".join(packed), tuple(guards)


@functools.cache
def slot_offset(owner_type: type, name: str) -> int:
    """Where in an object of ``owner_type`` the pointer read as ``.name`` lives, found by
    looking for a probe's value in the probe's memory."""
    value: Any = ("a probe",)
    probes: dict[tuple[type, str], Callable[[], Any]] = {
        (types.FunctionType, "__code__"): lambda: _probe_function,
        (types.FunctionType, "__defaults__"): lambda: _probe_function,
        (types.CellType, "cell_contents"): lambda: types.CellType(value),
    }
    make = probes.get((owner_type, name))
    if make is None:
        raise TypeError(f"no native guard for {owner_type.__name__}.{name}")
    probe = make()
    target = id(getattr(probe, name))
    found = [k for k in range(OB_TYPE_OFFSET + 8, owner_type.__basicsize__, 8)
             if ctypes.c_void_p.from_address(id(probe) + k).value == target]
    if len(found) != 1:
        raise ImportError(f"codegen cannot find {owner_type.__name__}.{name} in the object layout")
    return found[0]


def _probe_function(a: Any = ("a probe default",)) -> Any:
    return a
