"""The CPython entry point of a kernel, emitted in LLVM IR:

    PyObject *entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
                                                            (METH_FASTCALL | METH_KEYWORDS)

It unboxes each argument in native code by its parameter type, calls the kernel and boxes the
results. Arguments it cannot take (wrong count, wrong type, an int beyond int64, any keyword) go
to the fallback of a builtin made by ``bind_fallback``, whose ``self`` is the tuple
``(fallback, packed guards, guarded objects)`` (``runtime.make_builtin``): the fallback — the
dispatcher, which specialises anew or reports the problem by name — is called with the same
arguments. Such a builtin first checks its guards (each a pointer compare, or a dict lookup and
a compare; see ``runtime.pack_guards``) and sends the call to the fallback too when one fails:
what the kernel was compiled from has changed. A builtin without ``self`` returns
``NotImplemented`` without raising for what it cannot take, and raises OverflowError for an int
beyond int64. Real failures (a kernel fault, no memory) return NULL with the exception set.

A kernel with loops runs with the GIL released (it touches no Python object); a straight-line
kernel keeps it, as releasing would cost more than the kernel.

    f64   float or a subclass (np.float64)             → PyFloat_AsDouble; np.float32 widened
    f32   np.float32 only (its value read from the scalar object)
    i64   int or a subclass but bool, or np.integer    → PyLong_AsLongLong (OverflowError)
    bool  True/False or np.True_/np.False_ (singletons) → compared by identity
    array an ndarray (or subclass) of the exact rank, of the dtype (native byte order) and
          aligned → its descriptor, read from the ``PyArrayObject`` fields (any strides: views
          are not copied). Anything else goes to the fallback.

An array result is a new ndarray around the buffer the kernel allocated: a ``PyCapsule`` owning
the buffer (its destructor frees it) is the array's base, so nothing is copied and numpy frees
the memory when the last view of it goes. A fault of ``faults.DESCRIBED`` is raised by calling
``faults.raise_fault(code, info)`` (the slow path), which names shapes or indices.
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from sxad.ir import BOOL, F32, F64, I64, ArrayType, Func, Type

from . import arrays
from .faults import DESCRIBED, FORMAT_ARGUMENT, INFO_SLOTS, MESSAGES, Fault
from .kernel import ABI_TYPE, INT8, INT32, PTR, RARE, branch_weights, declare, declare_global, \
    has_loops, stack, uses_arrays, writes_in_place
from .lowering import DOUBLE, FLOAT, INT64
from .runtime import (ARRAY_DATA, ARRAY_DESCR, ARRAY_DIMS, ARRAY_FLAGS, ARRAY_NDIM,
                      ARRAY_STRIDES, BYTES_DATA_OFFSET, DESCR_BYTEORDER, DESCR_TYPE_NUM,
                      NPY_ALIGNED, NPY_CARRAY, NPY_WRITEABLE, OB_TYPE_OFFSET, TUPLE_ITEMS_OFFSET,
                      TYPE_NUMS,
                      VAR_SIZE_OFFSET)

LONG = INT64  # C long on LP64 Linux


def emit_entry(module: ir.Module, func: Func, kernel: ir.Function, symbol: str) -> ir.Function:
    return _EntryBuilder(module, func, kernel, symbol).fn


class _EntryBuilder:
    def __init__(self, module: ir.Module, func: Func, kernel: ir.Function, symbol: str) -> None:
        self.module, self.func = module, func
        self.fn = ir.Function(module, ir.FunctionType(PTR, [PTR, PTR, INT64, PTR]), symbol)
        # Straight-line code run once per call: not worth optimizing (LLVM's O0 path compiles it
        # several times faster, and it costs nanoseconds more per call at most).
        self.fn.attributes.add("noinline")
        self.fn.attributes.add("optnone")
        _, args, nargs, kwnames = self.fn.args
        args.name, nargs.name, kwnames.name = "args", "nargs", "kwnames"
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.likely = branch_weights(module, RARE, 1)
        self.mismatch = self.fn.append_basic_block("not_implemented")
        self.failed = self.fn.append_basic_block("failed")
        self.return_mismatch()
        self.return_null()
        self.check(self.b.icmp_unsigned("==", kwnames, ir.Constant(PTR, None)), self.mismatch)
        self.check(self.b.icmp_signed("==", nargs, ir.Constant(INT64, len(func.params))),
                   self.mismatch)
        self.check_guards()
        self.in_place = dict(zip(range(len(func.results) - len(func.mutated), len(func.results)),
                                 func.mutated)) if writes_in_place(func) else {}
        self.objects = [self.arg(args, i) for i in range(len(func.params))]
        unboxed = [self.unbox(param.type, obj, writable=i in self.in_place.values())
                   for i, (param, obj) in enumerate(zip(func.params, self.objects))]
        outs = self.out_slots()
        self.info = None
        if uses_arrays(func):
            with self.b.goto_entry_block():
                self.info = stack(self.b, ir.ArrayType(INT64, INFO_SLOTS), "info")
        code = self.call_kernel(kernel, unboxed + outs + ([self.info] if self.info else []),
                                release_gil=has_loops(func) or self.info is not None)
        self.check(self.b.icmp_signed("==", code, ir.Constant(INT32, 0)), self.faulted(code))
        results = [out if isinstance(v.type, ArrayType) else self.b.load(out, typ=ABI_TYPE[v.type])
                   for out, v in zip(outs, func.results)]
        self.b.ret(self.box_results(results))

    # -- helpers

    def c_api(self, name: str, ret: ir.Type, args: list[ir.Type],
              var_arg: bool = False) -> ir.Function:
        return declare(self.module, name, ret, args, var_arg)

    def py_object(self, symbol: str) -> ir.GlobalVariable:
        """The address of a Python object, as an external global named in ``runtime.PY_OBJECTS``."""
        existing = self.module.globals.get(symbol)
        return existing if existing is not None else ir.GlobalVariable(self.module, INT8, symbol)

    def check(self, ok: ir.Value, otherwise: ir.Block) -> None:
        """Continue in a new block if ``ok`` (the likely case), else branch to ``otherwise``."""
        go_on = self.fn.append_basic_block("ok")
        self.b.cbranch(ok, go_on, otherwise).set_metadata("prof", self.likely)
        self.b.position_at_end(go_on)

    def arg(self, args: ir.Value, i: int) -> ir.Value:
        return self.b.load(self.b.gep(args, [ir.Constant(INT64, i)], source_etype=PTR), typ=PTR,
                           name=self.func.arg_names[i] if i < len(self.func.arg_names) else "")

    def type_of(self, obj: ir.Value) -> ir.Value:
        slot = self.b.gep(obj, [ir.Constant(INT64, OB_TYPE_OFFSET)], source_etype=INT8)
        return self.b.load(slot, typ=PTR)

    def is_subtype(self, tp: ir.Value, symbol: str) -> ir.Value:
        fn = self.c_api("PyType_IsSubtype", INT32, [PTR, PTR])
        return self.b.icmp_signed("!=", self.b.call(fn, [tp, self.py_object(symbol)]),
                                  ir.Constant(INT32, 0))

    def bound(self, b: ir.IRBuilder) -> ir.Value:
        """Whether the builtin has a ``self`` (a fallback and guards)."""
        return b.icmp_unsigned("!=", self.fn.args[0], ir.Constant(PTR, None))

    def self_item(self, b: ir.IRBuilder, k: int) -> ir.Value:
        """Item ``k`` of the ``self`` tuple (PyTuple_GET_ITEM)."""
        offset = ir.Constant(INT64, TUPLE_ITEMS_OFFSET + 8 * k)
        return b.load(b.gep(self.fn.args[0], [offset], source_etype=INT8), typ=PTR)

    def return_mismatch(self) -> None:
        """Forward the call to the fallback if the builtin has one, else return NotImplemented."""
        b = ir.IRBuilder(self.mismatch)
        _, args, nargs, kwnames = self.fn.args
        with b.if_then(self.bound(b)):
            call = self.c_api("PyObject_Vectorcall", PTR, [PTR, PTR, INT64, PTR])
            b.ret(b.call(call, [self.self_item(b, 0), args, nargs, kwnames]))
        result = self.py_object("sxad.py.NotImplemented")
        b.call(self.c_api("Py_IncRef", ir.VoidType(), [PTR]), [result])
        b.ret(result)

    def return_null(self) -> None:
        ir.IRBuilder(self.failed).ret(ir.Constant(PTR, None))

    def check_guards(self) -> None:
        """Each packed guard of a bound builtin must hold, else the call goes to the fallback.
        A guard is three pointers: a slot (or a dict), 0 (or a key), and the object expected
        in the slot (or under the key)."""
        b = self.b
        guarded, head, body, in_slot, in_dict, compare, done = (
            self.fn.append_basic_block(n) for n in ("guards", "guard.head", "guard.body",
                                                    "guard.slot", "guard.dict", "guard.compare",
                                                    "guards.hold"))
        b.cbranch(self.bound(b), guarded, done)
        b.position_at_end(guarded)
        packed = self.self_item(b, 1)
        size = b.load(b.gep(packed, [ir.Constant(INT64, VAR_SIZE_OFFSET)], source_etype=INT8),
                      typ=INT64, name="guard.bytes")
        data = b.gep(packed, [ir.Constant(INT64, BYTES_DATA_OFFSET)], source_etype=INT8)
        b.branch(head)
        b.position_at_end(head)
        at = b.phi(INT64, "guard.at")
        at.add_incoming(ir.Constant(INT64, 0), guarded)
        b.cbranch(b.icmp_unsigned("<", at, size), body, done)
        b.position_at_end(body)
        where, key, expected = (b.load(b.gep(data, [b.add(at, ir.Constant(INT64, 8 * k))],
                                             source_etype=INT8), typ=PTR) for k in range(3))
        b.cbranch(b.icmp_unsigned("==", key, ir.Constant(PTR, None)), in_slot, in_dict)
        b.position_at_end(in_slot)
        slot_value = b.load(where, typ=PTR)
        b.branch(compare)
        b.position_at_end(in_dict)
        # A borrowed reference. The keys are str, so no error can be raised (NULL: absent).
        get_item = self.c_api("PyDict_GetItemWithError", PTR, [PTR, PTR])
        dict_value = b.call(get_item, [where, key])
        b.branch(compare)
        b.position_at_end(compare)
        actual = b.phi(PTR, "guard.actual")
        actual.add_incoming(slot_value, in_slot)
        actual.add_incoming(dict_value, in_dict)
        self.check(b.icmp_unsigned("==", actual, expected), self.mismatch)
        at.add_incoming(b.add(at, ir.Constant(INT64, 24)), b.block)
        b.branch(head)
        b.position_at_end(done)

    # -- unboxing

    def unbox(self, type_: Type, obj: ir.Value, writable: bool = False) -> ir.Value:
        if isinstance(type_, ArrayType):
            return self.unbox_array(type_, obj, writable)
        return {F64: self.unbox_f64, F32: self.unbox_f32, I64: self.unbox_i64,
                BOOL: self.unbox_bool}[type_](obj)

    def field(self, obj: ir.Value, offset: int, type_: ir.Type) -> ir.Value:
        return self.b.load(self.b.gep(obj, [ir.Constant(INT64, offset)], source_etype=INT8),
                           typ=type_)

    def unbox_array(self, type_: ArrayType, obj: ir.Value, writable: bool = False) -> ir.Value:
        """A descriptor (on the stack) of an ndarray of ``type_``'s rank and dtype (and
        writeable, for an argument the kernel updates in place)."""
        b = self.b
        subclass, read = (self.fn.append_basic_block(n) for n in ("array.subclass", "array.read"))
        tp = self.type_of(obj)
        b.cbranch(b.icmp_unsigned("==", tp, self.py_object("sxad.np.ndarray")), read, subclass)
        b.position_at_end(subclass)
        b.cbranch(self.is_subtype(tp, "sxad.np.ndarray"), read, self.mismatch)
        b.position_at_end(read)
        rank = type_.rank
        self.check(b.icmp_signed("==", self.field(obj, ARRAY_NDIM, INT32),
                                 ir.Constant(INT32, rank)), self.mismatch)
        descr = self.field(obj, ARRAY_DESCR, PTR)
        num = self.field(descr, DESCR_TYPE_NUM, INT32)
        dtype_ok = ir.Constant(ir.IntType(1), 0)
        for allowed in TYPE_NUMS[type_.dtype.name]:
            dtype_ok = b.or_(dtype_ok, b.icmp_signed("==", num, ir.Constant(INT32, allowed)))
        swapped = b.icmp_unsigned("==", self.field(descr, DESCR_BYTEORDER, INT8),
                                  ir.Constant(INT8, ord(">")))
        flags = self.field(obj, ARRAY_FLAGS, INT32)
        required = NPY_ALIGNED | (NPY_WRITEABLE if writable else 0)
        aligned = b.icmp_unsigned("==", b.and_(flags, ir.Constant(INT32, required)),
                                  ir.Constant(INT32, required))
        self.check(b.and_(b.and_(dtype_ok, b.not_(swapped)), aligned), self.mismatch)
        with b.goto_entry_block():
            desc = stack(b, ir.ArrayType(INT8, arrays.descriptor_size(rank)), "array")
        b.store(self.field(obj, ARRAY_DATA, PTR), desc)
        dims, strides = self.field(obj, ARRAY_DIMS, PTR), self.field(obj, ARRAY_STRIDES, PTR)
        for k in range(rank):
            for source, slot in ((dims, 1 + k), (strides, 1 + rank + k)):
                value = b.load(b.gep(source, [ir.Constant(INT64, k)], source_etype=INT64),
                               typ=INT64)
                b.store(value, b.gep(desc, [ir.Constant(INT64, 8 * slot)], source_etype=INT8))
        return desc

    def unbox_f32(self, obj: ir.Value) -> ir.Value:
        """np.float32 (exactly: its value is the C float after the object header)."""
        b = self.b
        self.check(b.icmp_unsigned("==", self.type_of(obj), self.py_object("sxad.np.float32")),
                   self.mismatch)
        return self.field(obj, 16, FLOAT)

    def unbox_f64(self, obj: ir.Value) -> ir.Value:
        """A float or a subclass (np.float64), or an np.float32 (typed as a float: ``api``
        widens it), whose value is widened here."""
        b = self.b
        convert, subclass, single, narrow, done = (self.fn.append_basic_block(n) for n in (
            "f64.convert", "f64.subclass", "f64.single", "f64.narrow", "f64.done"))
        tp = self.type_of(obj)
        b.cbranch(b.icmp_unsigned("==", tp, self.py_object("sxad.py.float")), convert, subclass)
        b.position_at_end(subclass)
        b.cbranch(self.is_subtype(tp, "sxad.py.float"), convert, single)
        b.position_at_end(single)
        b.cbranch(b.icmp_unsigned("==", tp, self.py_object("sxad.np.float32")), narrow,
                  self.mismatch)
        b.position_at_end(narrow)
        widened = b.fpext(self.field(obj, 16, FLOAT), DOUBLE)
        b.branch(done)
        b.position_at_end(convert)
        # PyFloat_AsDouble cannot fail on a float (or subclass): it reads ob_fval.
        value = b.call(self.c_api("PyFloat_AsDouble", DOUBLE, [PTR]), [obj])
        b.branch(done)
        b.position_at_end(done)
        merged = b.phi(DOUBLE)
        merged.add_incoming(value, convert)
        merged.add_incoming(widened, narrow)
        return merged

    def unbox_i64(self, obj: ir.Value) -> ir.Value:
        b = self.b
        convert, not_int, other = (self.fn.append_basic_block(n) for n in (
            "i64.convert", "i64.not_exact", "i64.other"))
        tp = self.type_of(obj)
        b.cbranch(b.icmp_unsigned("==", tp, self.py_object("sxad.py.int")), convert, not_int)
        b.position_at_end(not_int)   # bool is an int subclass, but not an i64 argument
        not_bool = b.icmp_unsigned("!=", tp, self.py_object("sxad.py.bool"))
        b.cbranch(b.and_(not_bool, self.is_subtype(tp, "sxad.py.int")), convert, other)
        b.position_at_end(other)
        b.cbranch(self.is_subtype(tp, "sxad.np.integer"), convert, self.mismatch)
        b.position_at_end(convert)
        value = b.call(self.c_api("PyLong_AsLongLong", INT64, [PTR]), [obj])
        check, done = (self.fn.append_basic_block(n) for n in ("i64.check", "i64.done"))
        b.cbranch(b.icmp_signed("==", value, ir.Constant(INT64, -1)), check, done)
        b.position_at_end(check)     # -1 is also a value; only an exception makes it an error
        error = b.call(self.c_api("PyErr_Occurred", PTR, []), [])
        overflow = self.fn.append_basic_block("i64.overflow")
        b.cbranch(b.icmp_unsigned("==", error, ir.Constant(PTR, None)), done, overflow)
        b.position_at_end(overflow)  # a bound builtin lets the dispatcher name the argument
        to_fallback = self.fn.append_basic_block("i64.to_fallback")
        b.cbranch(self.bound(b), to_fallback, self.failed)
        b.position_at_end(to_fallback)
        b.call(self.c_api("PyErr_Clear", ir.VoidType(), []), [])
        b.branch(self.mismatch)
        b.position_at_end(done)
        return value

    def unbox_bool(self, obj: ir.Value) -> ir.Value:
        b = self.b

        def either(a: str, c: str) -> ir.Value:
            return b.or_(b.icmp_unsigned("==", obj, self.py_object(a)),
                         b.icmp_unsigned("==", obj, self.py_object(c)))
        true = either("sxad.py.True", "sxad.np.True")
        self.check(b.or_(true, either("sxad.py.False", "sxad.np.False")), self.mismatch)
        return b.zext(true, INT8)

    # -- the kernel call

    def call_kernel(self, kernel: ir.Function, args: list[ir.Value],
                    release_gil: bool) -> ir.Value:
        """The kernel's fault code; with the GIL released around a kernel that may run long."""
        if not release_gil:
            return self.b.call(kernel, args, name="fault")
        state = self.b.call(self.c_api("PyEval_SaveThread", PTR, []), [], name="thread")
        code = self.b.call(kernel, args, name="fault")
        self.b.call(self.c_api("PyEval_RestoreThread", ir.VoidType(), [PTR]), [state])
        return code

    def out_slots(self) -> list[ir.Value]:
        with self.b.goto_entry_block():
            return [stack(self.b, ir.ArrayType(INT8, arrays.descriptor_size(v.type.rank)), "out")
                if isinstance(v.type, ArrayType) else self.b.alloca(ABI_TYPE[v.type], name="out")
                for v in self.func.results]

    def faulted(self, code: ir.Value) -> ir.Block:
        """A block that sets the exception of a fault ``code`` and returns NULL."""
        block = self.fn.append_basic_block("fault")
        b = ir.IRBuilder(block)
        switch = b.switch(code, self.failed)
        for fault, message in MESSAGES.items():
            case = self.fn.append_basic_block(f"fault.{fault.name.lower()}")
            switch.add_case(ir.Constant(INT32, int(fault)), case)
            b.position_at_end(case)
            self.raise_(b, fault, message)
            b.branch(self.failed)
        if self.info is not None:
            for fault in DESCRIBED:
                case = self.fn.append_basic_block(f"fault.{fault.name.lower()}")
                switch.add_case(ir.Constant(INT32, int(fault)), case)
                b.position_at_end(case)
                if fault is Fault.SHAPE:
                    # The dispatcher runs the call again and names the arguments and their
                    # shapes in the error (the kernel wrote nothing: it faulted).
                    describe = self.fn.append_basic_block("fault.shape.here")
                    b.cbranch(self.bound(b), self.mismatch, describe)
                    b.position_at_end(describe)
                self.raise_described(b, code)
                b.branch(self.failed)
        return block

    def raise_described(self, b: ir.IRBuilder, code: ir.Value) -> None:
        """``faults.raise_fault(code, bytes(info))``: it raises; NULL comes back."""
        decref = self.c_api("Py_DecRef", ir.VoidType(), [PTR])
        number = b.call(self.c_api("PyLong_FromLongLong", PTR, [INT64]), [b.sext(code, INT64)])
        info = b.call(self.c_api("PyBytes_FromStringAndSize", PTR, [PTR, INT64]),
                      [self.info, ir.Constant(INT64, 8 * INFO_SLOTS)])
        with b.goto_entry_block():
            argv = stack(b, ir.ArrayType(PTR, 2), "fault.args")
        b.store(number, argv)
        b.store(info, b.gep(argv, [ir.Constant(INT64, 8)], source_etype=INT8))
        made = b.and_(b.icmp_unsigned("!=", number, ir.Constant(PTR, None)),
                      b.icmp_unsigned("!=", info, ir.Constant(PTR, None)))
        with b.if_then(made):
            call = self.c_api("PyObject_Vectorcall", PTR, [PTR, PTR, INT64, PTR])
            result = b.call(call, [self.py_object("sxad.py.raise_fault"), argv,
                                   ir.Constant(INT64, 2), ir.Constant(PTR, None)])
            with b.if_then(b.icmp_unsigned("!=", result, ir.Constant(PTR, None))):
                b.call(decref, [result])
        for obj in (number, info):
            with b.if_then(b.icmp_unsigned("!=", obj, ir.Constant(PTR, None))):
                b.call(decref, [obj])

    def raise_(self, b: ir.IRBuilder, fault: Fault, message: tuple[str, str] | None) -> None:
        if message is None:
            b.call(self.c_api("PyErr_NoMemory", PTR, []), [])
            return
        exc, text = message
        data = bytearray(text.encode() + b"\0")
        const = ir.GlobalVariable(self.module, ir.ArrayType(INT8, len(data)),
                                  f"message.{fault.name.lower()}")
        const.global_constant, const.linkage = True, "private"
        const.initializer = ir.Constant(ir.ArrayType(INT8, len(data)), data)
        argument = FORMAT_ARGUMENT.get(fault)
        if argument is None:
            set_string = self.c_api("PyErr_SetString", ir.VoidType(), [PTR, PTR])
            b.call(set_string, [self.py_object(exc), const])
            return
        value = b.load(declare_global(self.module, argument, INT64), typ=INT64)
        format_ = self.c_api("PyErr_Format", PTR, [PTR, PTR], var_arg=True)
        b.call(format_, [self.py_object(exc), const, value])

    # -- boxing

    def box(self, type_: Type, value: ir.Value) -> ir.Value:
        b = self.b
        if isinstance(type_, ArrayType):
            return self.box_array(type_, value)
        if type_ is F64:
            return b.call(self.c_api("PyFloat_FromDouble", PTR, [DOUBLE]), [value])
        if type_ is F32:
            return self.box_f32(value)
        if type_ is I64:
            return b.call(self.c_api("PyLong_FromLongLong", PTR, [INT64]), [value])
        return b.call(self.c_api("PyBool_FromLong", PTR, [LONG]), [b.zext(value, LONG)])

    def box_f32(self, value: ir.Value) -> ir.Value:
        """An np.float32: ``np.float32(float(value))`` (exact: every f32 is an f64)."""
        b = self.b
        as_double = b.call(self.c_api("PyFloat_FromDouble", PTR, [DOUBLE]),
                           [b.fpext(value, DOUBLE)])
        with b.goto_entry_block():
            argv = stack(b, PTR, "f32.arg")
        b.store(as_double, argv)
        done, convert = self.fn.append_basic_block("f32.boxed"), self.fn.append_basic_block(
            "f32.convert")
        before = b.block
        b.cbranch(b.icmp_unsigned("==", as_double, ir.Constant(PTR, None)), done, convert)
        b.position_at_end(convert)
        call = self.c_api("PyObject_Vectorcall", PTR, [PTR, PTR, INT64, PTR])
        converted = b.call(call, [self.py_object("sxad.np.float32"), argv,
                                  ir.Constant(INT64, 1), ir.Constant(PTR, None)])
        b.call(self.c_api("Py_DecRef", ir.VoidType(), [PTR]), [as_double])
        b.branch(done)
        b.position_at_end(done)
        phi = b.phi(PTR, "f32")
        phi.add_incoming(ir.Constant(PTR, None), before)
        phi.add_incoming(converted, convert)
        return phi

    def box_array(self, type_: ArrayType, desc: ir.Value) -> ir.Value:
        """An ndarray around the kernel's buffer, which a capsule owns; NULL on failure (the
        buffer is then freed)."""
        b = self.b
        null = ir.Constant(PTR, None)
        data = b.load(desc, typ=PTR)
        decref = self.c_api("Py_DecRef", ir.VoidType(), [PTR])
        done = self.fn.append_basic_block("array.boxed")
        outcomes: list[tuple[ir.Value, ir.Block]] = []

        def give_up_unless(ok: ir.Value, cleanup: Callable[[ir.IRBuilder], None]) -> None:
            failed, go_on = (self.fn.append_basic_block(n) for n in ("box.failed", "box.ok"))
            b.cbranch(ok, go_on, failed)
            tail = ir.IRBuilder(failed)
            cleanup(tail)
            tail.branch(done)
            outcomes.append((null, failed))
            b.position_at_end(go_on)
        capsule = b.call(self.c_api("PyCapsule_New", PTR, [PTR, PTR, PTR]),
                         [data, null, self.capsule_destructor()])
        give_up_unless(b.icmp_unsigned("!=", capsule, null),
                       lambda t: t.call(self.c_api("free", ir.VoidType(), [PTR]), [data]))
        descr = b.call(self.c_api("sxad.np.PyArray_DescrFromType", PTR, [INT32]),
                       [ir.Constant(INT32, TYPE_NUMS[type_.dtype.name][0])])
        dims = b.gep(desc, [ir.Constant(INT64, 8)], source_etype=INT8)
        new = self.c_api("sxad.np.PyArray_NewFromDescr", PTR,
                         [PTR, PTR, INT32, PTR, PTR, PTR, INT32, PTR])
        # NewFromDescr steals ``descr`` (a NULL descr makes it fail with the error set)
        array = b.call(new, [self.py_object("sxad.np.ndarray"), descr,
                             ir.Constant(INT32, type_.rank), dims, null, data,
                             ir.Constant(INT32, NPY_CARRAY), null])
        give_up_unless(b.icmp_unsigned("!=", array, null),
                       lambda t: t.call(decref, [capsule]))   # the capsule frees the buffer
        set_base = self.c_api("sxad.np.PyArray_SetBaseObject", INT32, [PTR, PTR])
        status = b.call(set_base, [array, capsule])   # steals the capsule, even on failure
        give_up_unless(b.icmp_signed("==", status, ir.Constant(INT32, 0)),
                       lambda t: t.call(decref, [array]))
        outcomes.append((array, b.block))
        b.branch(done)
        b.position_at_end(done)
        result = b.phi(PTR, "array")
        for value, block in outcomes:
            result.add_incoming(value, block)
        return result

    def capsule_destructor(self) -> ir.Function:
        """``void sxad.free_capsule(PyObject *capsule)``: frees the buffer a capsule holds."""
        name = "sxad.free_capsule"
        if name in self.module.globals:
            return self.module.globals[name]
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR]), name)
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        pointer = b.call(self.c_api("PyCapsule_GetPointer", PTR, [PTR, PTR]),
                         [fn.args[0], ir.Constant(PTR, None)])
        b.call(self.c_api("free", ir.VoidType(), [PTR]), [pointer])
        b.ret_void()
        return fn

    def box_result(self, k: int, type_: Type, value: ir.Value) -> ir.Value:
        """Result ``k``: boxed, or the argument it was written into (a new reference)."""
        if k not in self.in_place:
            return self.box(type_, value)
        obj = self.objects[self.in_place[k]]
        self.b.call(self.c_api("Py_IncRef", ir.VoidType(), [PTR]), [obj])
        return obj

    def free_buffers(self, b: ir.IRBuilder, values: list[ir.Value], start: int) -> None:
        """Free the buffers of the array results from position ``start`` on (not boxed yet)."""
        free = self.c_api("free", ir.VoidType(), [PTR])
        for k, (v, value) in enumerate(zip(self.func.results[start:], values[start:]), start):
            if isinstance(v.type, ArrayType) and k not in self.in_place:
                b.call(free, [b.load(value, typ=PTR)])

    def box_results(self, values: list[ir.Value]) -> ir.Value:
        """One object, or a tuple when the function returns several values or a tuple. If
        boxing fails, the array buffers not boxed yet are freed."""
        types = [v.type for v in self.func.results]
        if len(values) == 1 and not self.func.tuple_result:
            return self.box_result(0, types[0], values[0])   # NULL (MemoryError) passes
        b = self.b
        new_tuple = self.c_api("PyTuple_New", PTR, [INT64])
        result = b.call(new_tuple, [ir.Constant(INT64, len(values))], name="tuple")
        no_tuple = self.fn.append_basic_block("no_tuple")
        self.check(b.icmp_unsigned("!=", result, ir.Constant(PTR, None)), no_tuple)
        tail = ir.IRBuilder(no_tuple)
        self.free_buffers(tail, values, 0)
        tail.branch(self.failed)
        for i, (type_, value) in enumerate(zip(types, values)):
            item = self.box_result(i, type_, value)
            drop = self.fn.append_basic_block("drop_tuple")
            self.check(b.icmp_unsigned("!=", item, ir.Constant(PTR, None)), drop)
            offset = ir.Constant(INT64, TUPLE_ITEMS_OFFSET + 8 * i)   # PyTuple_SET_ITEM
            b.store(item, b.gep(result, [offset], source_etype=INT8))
            tail = ir.IRBuilder(drop)   # the tuple's dealloc skips the NULL items
            self.free_buffers(tail, values, i + 1)
            tail.call(self.c_api("Py_DecRef", ir.VoidType(), [PTR]), [result])
            tail.branch(self.failed)
        return result
