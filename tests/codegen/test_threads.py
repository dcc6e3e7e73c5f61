"""codegen.threads: the runtime library's thread pool, driven from small LLVM functions.

The leaf body adds ``base + i + 1`` to ``out[base + i]`` for its chunk and logs (lo, hi, thread
id), so a chunk run twice or skipped shows in ``out`` and the log tells who ran what. Fork, exit
and ``SXAD_THREADS`` are checked in fresh processes."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading
import time

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from codegen import compiler, helpers, runtime, threads
from codegen.kernel import declare

I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: args of the leaf body, i64 slots: out, log, the log's length (a pointer: nested calls copy
#: the args), wait flag (0: none), base, width, timed out
SLOTS = 7
SPIN_LIMIT = 3_000_000_000     # cycles a waiting chunk spins before giving up (~1 s)


class Cx:
    def __init__(self, module: ir.Module, fn: ir.Function) -> None:
        self.module, self.fn = module, fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return declare(self.module, name, ret, args)


def slot(b: ir.IRBuilder, args: ir.Value, k: int) -> ir.Value:
    return b.gep(args, [I64(k)], source_etype=I64)


def emit_leaf(module: ir.Module) -> ir.Function:
    fn = ir.Function(module, threads.BODY_TYPE, "leaf")
    cx = Cx(module, fn)
    b = cx.b
    args, lo, hi = fn.args
    out = b.inttoptr(b.load(slot(b, args, 0), typ=I64), PTR)
    base = b.load(slot(b, args, 4), typ=I64)
    flag = b.inttoptr(b.load(slot(b, args, 3), typ=I64), PTR)
    with b.if_then(b.and_(b.icmp_unsigned("!=", flag, ir.Constant(PTR, None)),
                          b.icmp_signed("==", lo, I64(0)))):
        # hold the pool until the flag is raised (bounded: a timeout is recorded)
        clock = declare(module, "llvm.readcyclecounter", I64, [])
        start = b.call(clock, [])
        wait = fn.append_basic_block("wait")
        after = fn.append_basic_block("after")
        b.branch(wait)
        b.position_at_end(wait)
        raised = b.icmp_signed("!=", b.load_atomic(flag, "acquire", 8, typ=I64), I64(0))
        late = b.icmp_unsigned(">", b.sub(b.call(clock, []), start), I64(SPIN_LIMIT))
        with b.if_then(late):
            b.store(I64(1), slot(b, args, 6))
        b.cbranch(b.or_(raised, late), after, wait)
        b.position_at_end(after)
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    before = b.block
    b.cbranch(b.icmp_signed("<", lo, hi), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(lo, before)
    at = b.gep(out, [b.add(base, i)], source_etype=I64)
    b.store(b.add(b.load(at, typ=I64), b.add(b.add(base, i), I64(1))), at)
    following = b.add(i, I64(1))
    i.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("<", following, hi), loop, done)
    b.position_at_end(done)
    counter = b.inttoptr(b.load(slot(b, args, 2), typ=I64), PTR)
    entry = b.atomic_rmw("add", counter, I64(1), "seq_cst")
    log = b.gep(b.inttoptr(b.load(slot(b, args, 1), typ=I64), PTR), [b.mul(entry, I64(3))],
                source_etype=I64)
    syscall = declare(module, "syscall", I64, [I64], var_arg=True)
    tid = b.call(syscall, [I64(186)])          # gettid
    for k, value in enumerate((lo, hi, tid)):
        b.store(value, b.gep(log, [I64(k)], source_etype=I64))
    b.ret_void()
    return fn


def emit_nested(module: ir.Module, leaf: ir.Function) -> ir.Function:
    """For each row r of its chunk: parallel_for(leaf, args with base r·width, width, 1)."""
    fn = ir.Function(module, threads.BODY_TYPE, "nested")
    cx = Cx(module, fn)
    b = cx.b
    args, lo, hi = fn.args
    copy = b.alloca(I64, size=I64(SLOTS))
    width = b.load(slot(b, args, 5), typ=I64)
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    before = b.block
    b.cbranch(b.icmp_signed("<", lo, hi), loop, done)
    b.position_at_end(loop)
    r = b.phi(I64)
    r.add_incoming(lo, before)
    for k in range(SLOTS):
        b.store(b.load(slot(b, args, k), typ=I64), slot(b, copy, k))
    b.store(b.mul(r, width), slot(b, copy, 4))
    threads.emit_parallel_for(cx, leaf, copy, width, 1)
    following = b.add(r, I64(1))
    r.add_incoming(following, b.block)
    b.cbranch(b.icmp_signed("<", following, hi), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return fn


def emit_runner(module: ir.Module, name: str, body: ir.Function) -> None:
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), name)
    cx = Cx(module, fn)
    args, count, grain = fn.args
    threads.emit_parallel_for(cx, body, args, count, grain)
    cx.b.ret_void()


def build() -> dict[str, object]:
    module = ir.Module(name="threads_test")
    module.triple = llvm.get_process_triple()
    module.data_layout = str(runtime.shared_target_machine().target_data)
    leaf = emit_leaf(module)
    emit_runner(module, "run", leaf)
    emit_runner(module, "run_nested", emit_nested(module, leaf))
    runtime.register_symbols()
    helpers.ensure([threads.PARALLEL_FOR])
    llmod = compiler.parse(str(module))
    compiler.optimize(llmod)
    engine = llvm.create_mcjit_compiler(llmod, runtime.target_machine())
    engine.finalize_object()
    kind = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
    return {"engine": engine, "run": kind(engine.get_function_address("run")),
            "run_nested": kind(engine.get_function_address("run_nested"))}


class Job:
    """The arguments of one run: the output, the chunk log, the wait flag."""

    def __init__(self, size: int, chunks: int = 4096, width: int = 0) -> None:
        self.out = np.zeros(size, np.int64)
        self.log = np.zeros((chunks, 3), np.int64)
        self.flag = np.zeros(1, np.int64)
        self.count = np.zeros(1, np.int64)
        self.args = np.zeros(SLOTS, np.int64)
        self.args[:] = [self.out.ctypes.data, self.log.ctypes.data, self.count.ctypes.data, 0,
                        0, width, 0]

    def wait_for_flag(self) -> None:
        self.args[3] = self.flag.ctypes.data

    def chunks(self) -> np.ndarray:
        return self.log[:self.count[0]]

    def check(self) -> None:
        np.testing.assert_array_equal(self.out, np.arange(1, self.out.size + 1))
        assert self.args[6] == 0, "a waiting chunk timed out"


@pytest.fixture(scope="module")
def pool():
    functions = build()
    threads.set_threads(2)
    yield functions
    threads.set_threads(threads.default_threads())


def run(pool, count: int, grain: int) -> Job:
    job = Job(count)
    pool["run"](job.args.ctypes.data, count, grain)
    job.check()
    return job


def split(count: int, grain: int, team: int = 2) -> int:
    """How many chunks a parallel loop is cut into."""
    return min(count // grain, team * threads.OVERSPLIT)


def covering(chunks: np.ndarray, count: int) -> None:
    order = chunks[np.argsort(chunks[:, 0])]
    assert order[0, 0] == 0 and order[-1, 1] == count
    np.testing.assert_array_equal(order[1:, 0], order[:-1, 1])


@pytest.mark.parametrize("count", [2, 3, 7, 100, 1001, 65536])
@pytest.mark.parametrize("grain", [1, 3, 50])
def test_chunks_cover_the_range_once(pool, count, grain):
    before = threads.info()["jobs"]
    job = run(pool, count, grain)
    chunks = job.chunks()
    if count < 2 * grain:
        np.testing.assert_array_equal(chunks[:, :2], [[0, count]])
        assert threads.info()["jobs"] == before
        return
    assert len(chunks) == split(count, grain) and threads.info()["jobs"] == before + 1
    covering(chunks, count)
    assert (chunks[:, 1] - chunks[:, 0] >= grain).all()


def test_workers_take_chunks(pool):
    """Over many jobs the worker runs some chunks (the caller never takes them all)."""
    caller = threading.get_native_id()
    tids: set[int] = set()
    deadline = time.monotonic() + 10     # a loaded machine may keep the worker off a core
    while len(tids) < 2 and time.monotonic() < deadline:
        job = run(pool, 100_000, 100)
        tids.update(job.chunks()[:, 2].tolist())
    assert caller in tids and len(tids) == 2
    assert threads.info()["started"] == 1 and threads.info()["owner"] == os.getpid()


@pytest.mark.parametrize("count", [0, 1, -5])
def test_empty_and_tiny_ranges_run_on_the_caller(pool, count):
    job = Job(max(count, 0))
    pool["run"](job.args.ctypes.data, count, 1)
    job.check()
    np.testing.assert_array_equal(job.chunks()[:, :2], [[0, count]])
    assert job.chunks()[0, 2] == threading.get_native_id()


def test_one_thread_runs_serially(pool):
    threads.set_threads(1)
    try:
        before = threads.info()["jobs"]
        job = run(pool, 10_000, 1)
        assert len(job.chunks()) == 1 and threads.info()["jobs"] == before
    finally:
        threads.set_threads(2)
    assert len(run(pool, 10_000, 1).chunks()) == split(10_000, 1)


def test_nested_calls_run_serially(pool):
    rows, width = 64, 33
    job = Job(rows * width, width=width)
    before = threads.info()["jobs"]
    pool["run_nested"](job.args.ctypes.data, rows, 1)
    job.check()
    chunks = job.chunks()
    # every row's inner loop ran whole, on the thread that ran the row; only the outer loop
    # went to the pool
    assert len(chunks) == rows
    assert (chunks[:, 0] == 0).all() and (chunks[:, 1] == width).all()
    assert threads.info()["jobs"] == before + 1


def test_a_second_caller_runs_serially_while_the_pool_is_busy(pool):
    holder = Job(1000)
    holder.wait_for_flag()
    worker = threading.Thread(target=pool["run"], args=(holder.args.ctypes.data, 1000, 1))
    worker.start()
    deadline = time.monotonic() + 10
    while not threads.info()["busy"] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert threads.info()["busy"], "the first caller never took the pool"
    other = run(pool, 1000, 1)      # would hang (until the timeout) if it waited for the pool
    holder.flag[0] = 1
    worker.join(timeout=10)
    assert not worker.is_alive()
    holder.check()
    np.testing.assert_array_equal(other.chunks()[:, :2], [[0, 1000]])
    assert len(holder.chunks()) == split(1000, 1)
    assert not threads.info()["busy"]


def test_the_engine_is_never_freed(pool):
    import sys as system
    engine = helpers._engines[threads.MODULE]
    # the dict's reference, getrefcount's argument, the local name, and the deliberate leak
    assert system.getrefcount(engine) >= 4


def test_default_thread_count(monkeypatch):
    monkeypatch.setenv("SXAD_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("SXAD_THREADS", "0")
    with pytest.raises(ValueError):
        threads.default_threads()
    monkeypatch.delenv("SXAD_THREADS")
    assert threads.default_threads() == max(1, min(len(os.sched_getaffinity(0)),
                                                   threads.DEFAULT_CAP))


# --------------------------------------------------------------------------- fresh processes

PRELUDE = textwrap.dedent("""
    import os, sys, threading
    sys.path.insert(0, {tests!r})
    sys.path.insert(0, {root!r})
    from test_threads import Job, build, split
    from codegen import threads
    pool = build()

    def run(count, grain=1):
        job = Job(count)
        pool["run"](job.args.ctypes.data, count, grain)
        job.check()
        return job
""")


def python(script: str, **env: str) -> subprocess.CompletedProcess:
    code = PRELUDE.format(tests=os.path.dirname(__file__), root=ROOT) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def test_sxad_threads_1_starts_no_thread():
    done = python("""
        for _ in range(20):
            assert len(run(10_000).chunks()) == 1
        info = threads.info()
        assert info["threads"] == 1 and info["started"] == 0 and info["jobs"] == 0, info
        print("ok")
    """, SXAD_THREADS="1")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_forked_child_runs_serially():
    done = python("""
        assert len(run(10_000).chunks()) == split(10_000, 1)
        assert threads.info()["started"] == 1
        pid = os.fork()
        if pid == 0:
            try:
                job = run(10_000)
                ok = len(job.chunks()) == 1 and job.chunks()[0, 2] == threading.get_native_id()
            except BaseException:
                ok = False
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert len(run(10_000).chunks()) == split(10_000, 1)     # the parent's pool works
        print("ok")
    """, SXAD_THREADS="2")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("pause", ["", "import time; time.sleep(0.3)"])
def test_exit_with_live_workers(pause):
    """The interpreter exits while the worker spins (right after a job) or sleeps."""
    done = python(f"""
        for _ in range(50):
            run(100_000)
        assert threads.info()["started"] == 1
        {pause}
        print("ok")
    """, SXAD_THREADS="2")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
