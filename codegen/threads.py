"""A thread pool in the runtime library: ``parallel_for`` for native kernels.

    void sxad.rt.parallel_for(ptr body, ptr args, i64 count, i64 grain)

runs ``body(args, lo, hi)`` (``void(ptr, i64, i64)``) for chunks ``[lo, hi)`` covering
``[0, count)``, each at least ``grain`` long, on the pool's workers with the calling thread
taking a share, and returns when every chunk is done. It runs ``body(args, 0, count)`` on the
calling thread instead when ``count < 2·grain``, when one thread is configured, when the pool is
busy (another thread's kernel holds it: kernels release the GIL), when called from a pool worker
or from the caller's own share (nested: the pool is held, so the trylock fails), or in a child
process forked after the pool started (its workers did not survive the fork: ``getpid()`` differs
from the pool's owner; the child stays serial, which also keeps ``multiprocessing`` children
from oversubscribing the cores).

The pool is LLVM IR (module ``sxad.rt.pool`` of ``codegen.helpers``' library): worker threads
are started lazily by the first parallel call (``pthread_create`` and ``pthread_detach``, from
libc since glibc 2.34; all signals blocked in them, so Python's handlers keep running on the
main thread). The thread count is a runtime setting, never part of a cache key: ``SXAD_THREADS``
(default: the CPUs this process may run on, at most ``DEFAULT_CAP``), given to the pool when the
module is loaded (``configure``) and changed with ``set_threads``; ``SXAD_THREADS=1`` starts no
thread.

Protocol (all state in globals of the pool module, each on a cache line of its own):

- ``lock``: the trylock a caller takes for the whole job (acquire; released with release).
- The caller writes the job (body, args, count), then publishes ``word`` = generation << 32 |
  chunks << 16 | next chunk with a release store, then bumps ``gen`` (the workers' futex word)
  and wakes sleepers if ``sleepers`` > 0 (seq_cst on both sides: either the worker sees the new
  generation or the caller sees it asleep).
- Anyone claims a chunk with a compare-and-swap on ``word`` that keeps its generation: a late
  worker holding an old generation can never take (or corrupt) a newer job's chunk, and the job
  fields it reads after a successful claim are the ones published with that word.
- A finished chunk adds one to ``done`` (seq_cst); the caller, once nothing is left to claim,
  waits for ``done == chunks`` by spinning (``SPIN_CYCLES``), then on the ``done`` futex after
  raising ``waiting``; the last finisher wakes it when ``waiting`` is up.
- Workers spin ``SPIN_CYCLES`` (timestamp counter, with ``pause``) after their last job before
  sleeping on ``gen``: a burst of parallel loops never pays a futex wake.

The code the workers run is never freed: ``helpers`` keeps every runtime-library engine alive
for the life of the process on purpose (a sleeping worker's return address points into it, and
interpreter shutdown must not unmap it under a spinning one). Bodies cannot fault: a kernel's
faults are checked before or after a parallel loop, never inside one.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir

PREFIX = "sxad.rt."
MODULE = PREFIX + "pool"
PARALLEL_FOR = PREFIX + "parallel_for"      # void (ptr body, ptr args, i64 count, i64 grain)
SET_THREADS = PREFIX + "pool_set_threads"   # void (i64 threads)
POOL_INFO = PREFIX + "pool_info"            # void (ptr out): INFO_FIELDS as i64
POOL_THREADS = PREFIX + "pool_threads"      # i64 (): the threads a parallel_for may use now
SET_ADAPTIVE = PREFIX + "pool_set_adaptive"  # void (i64 on): back off under contention
SYMBOLS = (PARALLEL_FOR, SET_THREADS, POOL_INFO, POOL_THREADS, SET_ADAPTIVE)
INFO_FIELDS = ("threads", "started", "jobs", "owner", "busy", "penalty", "contended")

#: Default thread count: the CPUs of ``os.sched_getaffinity``, at most this many.
DEFAULT_CAP = 8
#: The most threads ``SXAD_THREADS``/``set_threads`` may ask for.
MAX_THREADS = 64
#: How long a worker spins after a job, and the caller for its workers, before a futex sleep:
#: timestamp-counter cycles (~70-100 µs at 2-3 GHz), and at most SPIN_LIMIT ``pause``s (on a
#: CPU without a cycle counter the intrinsic reads 0).
SPIN_CYCLES = 200_000
SPIN_LIMIT = 20_000
#: The caller's spin for its workers' last chunks (~20 µs): shorter, as on a loaded machine
#: the worker it waits for may need the caller's core.
JOIN_CYCLES = 50_000
MAX_CHUNKS = 0xFFFF                         # chunk counts are 16 bits of ``word``
#: Contention (``_Pool.judge``): a caller waiting this many cycles (~20-30 µs) more for its
#: workers than its own share took backs off to serial loops for a while, at most for
#: MAX_PENALTY jobs before trying again: on a machine whose other CPUs are busy, waiting for a
#: descheduled worker's chunk costs a scheduler time slice (milliseconds).
WAIT_SLACK = 60_000
MAX_PENALTY = 255
#: Chunks per thread (when the grain allows): on a shared machine a worker may be descheduled
#: for a while; the others then take the chunks it has not claimed.
OVERSPLIT = 4

VOID = ir.VoidType()
INT1 = ir.IntType(1)
INT32 = ir.IntType(32)
INT64 = ir.IntType(64)
PTR = ir.PointerType()
BODY_TYPE = ir.FunctionType(VOID, [PTR, INT64, INT64])

SYS_FUTEX = 202                             # x86-64 Linux
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
SIG_SETMASK = 2
SIGSET_WORDS = 16                           # glibc's sigset_t: 1024 bits


# --------------------------------------------------------------------------- kernel side

def emit_parallel_for(cx: Any, body: ir.Function, args: ir.Value, count: ir.Value,
                      grain: ir.Value | int) -> None:
    """At cx.b's position: run body(args, lo, hi) for chunks [lo, hi) covering [0, count),
    each at least `grain` long (except a short one), on the pool's threads with the calling
    thread taking a share; return when all are done. body: void(ptr, i64, i64), cannot fault.
    With count < 2*grain, one thread configured, the pool busy (another Python thread's kernel
    is using it: kernels release the GIL) or called from a pool worker: body(args, 0, count)
    on the calling thread."""
    if isinstance(grain, int):
        grain = ir.Constant(INT64, grain)
    fn = cx.declare(PARALLEL_FOR, VOID, [PTR, PTR, INT64, INT64])
    cx.b.call(fn, [body, args, count, grain])


# --------------------------------------------------------------------------- process side

def default_threads() -> int:
    """``SXAD_THREADS``, else the CPUs this process may use (at most ``DEFAULT_CAP``)."""
    text = os.environ.get("SXAD_THREADS", "").strip()
    if text:
        try:
            wanted = int(text)
        except ValueError:
            raise ValueError(f"SXAD_THREADS must be a positive integer, got {text!r}") from None
        if wanted < 1:
            raise ValueError(f"SXAD_THREADS must be a positive integer, got {text!r}")
        return min(wanted, MAX_THREADS)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, DEFAULT_CAP))


def _function(name: str, *argtypes: Any) -> Any:
    from . import helpers
    helpers.ensure([name])
    address = llvm.address_of_symbol(name)
    return ctypes.CFUNCTYPE(None, *argtypes)(address)


def configure() -> None:
    """Give the freshly loaded pool its thread count (``helpers`` calls this on load), and its
    backing off under contention unless ``SXAD_POOL_ADAPTIVE=0`` (the test suite sets it:
    its job counts must not depend on the machine's load)."""
    _function(SET_THREADS, ctypes.c_int64)(default_threads())
    set_adaptive(os.environ.get("SXAD_POOL_ADAPTIVE", "1").strip() != "0")


def set_threads(count: int) -> None:
    """The pool's thread count from now on (1: every loop runs on its caller). Workers already
    started stay (asleep) when it is lowered; more are started when it is raised. Any backing
    off after contention (``WAIT_SLACK``) is forgotten."""
    if count < 1:
        raise ValueError(f"the thread count must be positive, got {count}")
    _function(SET_THREADS, ctypes.c_int64)(min(count, MAX_THREADS))


def set_adaptive(on: bool) -> None:
    """Whether the pool backs off to serial loops after a contended job (``WAIT_SLACK``; on by
    default). Off, every loop large enough is split: tests that count jobs need that."""
    _function(SET_ADAPTIVE, ctypes.c_int64)(int(bool(on)))


def info() -> dict[str, int]:
    """The pool's state: configured ``threads``, workers ``started``, parallel ``jobs`` run,
    the ``owner`` process id (0 before the first start), whether it is ``busy`` now, the
    current contention ``penalty`` (serial jobs ahead) and how many jobs were ``contended``."""
    out = (ctypes.c_int64 * len(INFO_FIELDS))()
    _function(POOL_INFO, ctypes.c_void_p)(ctypes.addressof(out))
    return dict(zip(INFO_FIELDS, (int(v) for v in out)))


# --------------------------------------------------------------------------- the pool's IR

def _i64(value: int) -> ir.Constant:
    return ir.Constant(INT64, value)


def _i32(value: int) -> ir.Constant:
    return ir.Constant(INT32, value)


def emit_pool_library(module: ir.Module) -> None:
    """The pool: ``SYMBOLS`` defined in ``module``."""
    _Pool(module)


class _Pool:
    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self.x86 = module.triple.startswith(("x86_64", "i386", "i686"))
        state = {"threads": (INT64, 1), "started": (INT64, 0), "jobs": (INT64, 0),
                 "owner": (INT32, 0), "lock": (INT32, 0), "gen": (INT32, 0),
                 "sleepers": (INT32, 0), "word": (INT64, 0), "done": (INT32, 0),
                 "waiting": (INT32, 0), "body": (PTR, None), "args": (PTR, None),
                 "count": (INT64, 0), "skip": (INT64, 0), "penalty": (INT64, 0),
                 "contended": (INT64, 0), "adaptive": (INT64, 1)}
        self.g: dict[str, ir.GlobalVariable] = {}
        for name, (type_, value) in state.items():
            var = ir.GlobalVariable(module, type_, f"{MODULE}.{name}")
            var.linkage = "internal"
            var.initializer = ir.Constant(type_, value)
            var.align = 64          # a cache line each: no false sharing between them
            self.g[name] = var
        self.run_chunks = self.emit_run_chunks()
        self.worker = self.emit_worker()
        self.start = self.emit_start()
        self.emit_parallel_for()
        self.emit_set_threads()
        self.emit_set_adaptive()
        self.emit_info()
        self.emit_threads()

    # -- small pieces

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type],
                var_arg: bool = False) -> ir.Function:
        existing = self.module.globals.get(name)
        return existing if existing is not None else ir.Function(
            self.module, ir.FunctionType(ret, args, var_arg=var_arg), name)

    def function(self, name: str, ret: ir.Type, args: list[ir.Type],
                 internal: bool = True) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
        if internal:
            fn.linkage = "internal"
        fn.attributes.add("nounwind")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def load(self, b: ir.IRBuilder, name: str, order: str | None = None) -> ir.Value:
        var = self.g[name]
        if order is None:
            return b.load(var, typ=var.value_type)
        return b.load_atomic(var, order, _size(var.value_type), typ=var.value_type)

    def store(self, b: ir.IRBuilder, name: str, value: ir.Value, order: str | None = None) -> None:
        var = self.g[name]
        if order is None:
            b.store(value, var)
        else:
            b.store_atomic(value, var, order, _size(var.value_type))

    def pause(self, b: ir.IRBuilder) -> None:
        if self.x86:
            b.call(self.declare("llvm.x86.sse2.pause", VOID, []), [])

    def cycles(self, b: ir.IRBuilder) -> ir.Value:
        return b.call(self.declare("llvm.readcyclecounter", INT64, []), [])

    def futex(self, b: ir.IRBuilder, name: str, op: int, value: ir.Value) -> None:
        # syscall() reads its arguments as longs: pass each as 64 bits
        syscall = self.declare("syscall", INT64, [INT64], var_arg=True)
        b.call(syscall, [_i64(SYS_FUTEX), self.g[name], _i64(op), b.zext(value, INT64),
                         ir.Constant(PTR, None), ir.Constant(PTR, None), _i64(0)])

    def spin_until(self, b: ir.IRBuilder, fn: ir.Function, ready: Any, label: str,
                   budget: int = SPIN_CYCLES) -> tuple[ir.Block, ir.Block]:
        """Spin (with ``pause``) until ``ready(b)`` holds or the spin budget is spent; returns
        (block reached when ready, block reached when not), the builder in neither."""
        start, before = self.cycles(b), b.block
        loop, yes, no = (fn.append_basic_block(f"{label}.{s}") for s in ("spin", "ready", "out"))
        b.branch(loop)
        b.position_at_end(loop)
        count = b.phi(INT64)
        count.add_incoming(_i64(0), before)
        check = fn.append_basic_block(f"{label}.again")
        b.cbranch(ready(b), yes, check)
        b.position_at_end(check)
        self.pause(b)
        following = b.add(count, _i64(1))
        count.add_incoming(following, check)
        within = b.and_(b.icmp_unsigned("<", following, _i64(SPIN_LIMIT)),
                        b.icmp_unsigned("<", b.sub(self.cycles(b), start), _i64(budget)))
        b.cbranch(within, loop, no)
        return yes, no

    # -- claiming and running chunks of the job of generation `tag`

    def emit_run_chunks(self) -> ir.Function:
        fn, b = self.function(f"{MODULE}.run_chunks", VOID, [INT32])
        tag, = fn.args
        top, claim, run, done = (fn.append_basic_block(n) for n in ("top", "claim", "run", "done"))
        b.branch(top)
        b.position_at_end(top)
        word = self.load(b, "word", "acquire")
        index = b.and_(word, _i64(MAX_CHUNKS))
        chunks = b.and_(b.lshr(word, _i64(16)), _i64(MAX_CHUNKS))
        current = b.icmp_unsigned("==", b.trunc(b.lshr(word, _i64(32)), INT32), tag)
        b.cbranch(b.and_(current, b.icmp_unsigned("<", index, chunks)), claim, done)
        b.position_at_end(claim)
        swapped = b.cmpxchg(self.g["word"], word, b.add(word, _i64(1)), "acq_rel", "acquire")
        b.cbranch(b.extract_value(swapped, 1), run, top)
        b.position_at_end(run)
        body, args, count = (self.load(b, n) for n in ("body", "args", "count"))
        share, rest = b.udiv(count, chunks), b.urem(count, chunks)
        lo = b.add(b.mul(index, share), b.select(b.icmp_unsigned("<", index, rest), index, rest))
        hi = b.add(b.add(lo, share), b.zext(b.icmp_unsigned("<", index, rest), INT64))
        b.call(_callee(b, body), [args, lo, hi])
        finished = b.atomic_rmw("add", self.g["done"], _i32(1), "seq_cst")
        last = b.icmp_unsigned("==", b.zext(b.add(finished, _i32(1)), INT64), chunks)
        with b.if_then(last):
            with b.if_then(b.icmp_unsigned("!=", self.load(b, "waiting", "seq_cst"), _i32(0))):
                self.futex(b, "done", FUTEX_WAKE_PRIVATE, _i32(1))
        b.branch(top)
        b.position_at_end(done)
        b.ret_void()
        return fn

    # -- a worker: wait for a new generation, run its chunks, forever

    def emit_worker(self) -> ir.Function:
        fn, b = self.function(f"{MODULE}.worker", PTR, [PTR])
        seen_slot = b.alloca(INT32)
        b.store(b.trunc(b.ptrtoint(fn.args[0], INT64), INT32), seen_slot)
        top = fn.append_basic_block("top")
        b.branch(top)
        b.position_at_end(top)
        seen = b.load(seen_slot, typ=INT32)
        fresh = lambda b: b.icmp_unsigned("!=", self.load(b, "gen", "acquire"), seen)
        ready, asleep = self.spin_until(b, fn, fresh, "wait")
        sleep, woke, go = (fn.append_basic_block(n) for n in ("sleep", "woke", "go"))
        b.position_at_end(asleep)
        b.atomic_rmw("add", self.g["sleepers"], _i32(1), "seq_cst")
        b.branch(sleep)
        b.position_at_end(sleep)
        now = self.load(b, "gen", "seq_cst")
        still = b.icmp_unsigned("==", now, seen)
        with b.if_then(still):
            self.futex(b, "gen", FUTEX_WAIT_PRIVATE, seen)
        b.cbranch(still, sleep, woke)
        b.position_at_end(woke)
        b.atomic_rmw("sub", self.g["sleepers"], _i32(1), "seq_cst")
        b.branch(go)
        b.position_at_end(ready)
        b.branch(go)
        b.position_at_end(go)
        generation = self.load(b, "gen", "acquire")
        b.call(self.run_chunks, [generation])
        b.store(generation, seen_slot)
        b.branch(top)
        return fn

    # -- starting workers (the caller holds the lock): up to `want`, all signals blocked

    def emit_start(self) -> ir.Function:
        fn, b = self.function(f"{MODULE}.start", VOID, [INT64])
        want, = fn.args
        sigset = ir.ArrayType(INT64, SIGSET_WORDS)
        full, old, tid = b.alloca(sigset), b.alloca(sigset), b.alloca(INT64)
        b.call(self.declare("sigfillset", INT32, [PTR]), [full])
        mask = self.declare("pthread_sigmask", INT32, [INT32, PTR, PTR])
        create = self.declare("pthread_create", INT32, [PTR, PTR, PTR, PTR])
        detach = self.declare("pthread_detach", INT32, [INT64])
        b.call(mask, [_i32(SIG_SETMASK), full, old])
        generation = b.inttoptr(b.zext(self.load(b, "gen"), INT64), PTR)
        loop, made, out = (fn.append_basic_block(n) for n in ("loop", "made", "out"))
        b.branch(loop)
        b.position_at_end(loop)
        started = self.load(b, "started", "monotonic")
        with b.if_then(b.icmp_signed(">=", started, want)):
            b.branch(out)
        rc = b.call(create, [tid, ir.Constant(PTR, None), self.worker, generation])
        b.cbranch(b.icmp_signed("==", rc, _i32(0)), made, out)
        b.position_at_end(made)
        b.call(detach, [b.load(tid, typ=INT64)])
        self.store(b, "started", b.add(started, _i64(1)), "monotonic")
        b.branch(loop)
        b.position_at_end(out)
        b.call(mask, [_i32(SIG_SETMASK), old, ir.Constant(PTR, None)])
        b.ret_void()
        return fn

    # -- the entry point

    def emit_parallel_for(self) -> None:
        fn, b = self.function(PARALLEL_FOR, VOID, [PTR, PTR, INT64, INT64], internal=False)
        body, args, count, grain = fn.args
        serial = fn.append_basic_block("serial")
        grain = b.select(b.icmp_signed("<", grain, _i64(1)), _i64(1), grain)
        threads = self.load(b, "threads", "monotonic")
        pieces = b.sdiv(count, grain)
        wide = b.and_(b.icmp_signed(">=", threads, _i64(2)), b.icmp_signed(">=", pieces, _i64(2)))
        locking, backing_off = fn.append_basic_block("lock"), fn.append_basic_block("backoff")
        b.cbranch(wide, backing_off, serial)
        b.position_at_end(backing_off)   # after a contended job: serial for a while (BACKOFF)
        skip = self.load(b, "skip", "monotonic")
        with b.if_then(b.icmp_signed(">", skip, _i64(0))):
            self.store(b, "skip", b.sub(skip, _i64(1)), "monotonic")
        b.cbranch(b.icmp_signed(">", skip, _i64(0)), serial, locking)
        b.position_at_end(locking)
        taken = b.cmpxchg(self.g["lock"], _i32(0), _i32(1), "acquire", "monotonic")
        held = fn.append_basic_block("held")
        b.cbranch(b.extract_value(taken, 1), held, serial)

        b.position_at_end(held)
        unlock_serial = fn.append_basic_block("unlock.serial")
        pid = b.call(self.declare("getpid", INT32, []), [])
        fresh = b.icmp_signed("==", self.load(b, "started", "monotonic"), _i64(0))
        with b.if_then(fresh):
            self.store(b, "owner", pid, "monotonic")
        own = fn.append_basic_block("own")
        b.cbranch(b.icmp_signed("==", self.load(b, "owner", "monotonic"), pid), own, unlock_serial)
        b.position_at_end(own)
        want = b.sub(threads, _i64(1))
        with b.if_then(b.icmp_signed("<", self.load(b, "started", "monotonic"), want)):
            b.call(self.start, [want])
        started = self.load(b, "started", "monotonic")
        go = fn.append_basic_block("go")
        b.cbranch(b.icmp_signed(">", started, _i64(0)), go, unlock_serial)

        b.position_at_end(go)
        team = _smallest(b, [b.add(started, _i64(1)), threads])
        chunks = _smallest(b, [pieces, b.mul(team, _i64(OVERSPLIT)), _i64(MAX_CHUNKS)])
        for name, value in (("body", body), ("args", args), ("count", count)):
            self.store(b, name, value)
        self.store(b, "done", _i32(0), "monotonic")
        self.store(b, "waiting", _i32(0), "monotonic")
        generation = b.add(self.load(b, "gen", "monotonic"), _i32(1))
        word = b.or_(b.shl(b.zext(generation, INT64), _i64(32)), b.shl(chunks, _i64(16)))
        self.store(b, "word", word, "release")
        self.store(b, "gen", generation, "seq_cst")
        with b.if_then(b.icmp_signed(">", self.load(b, "sleepers", "seq_cst"), _i32(0))):
            self.futex(b, "gen", FUTEX_WAKE_PRIVATE, _i32(0x7FFFFFFF))
        self.store(b, "jobs", b.add(self.load(b, "jobs", "monotonic"), _i64(1)), "monotonic")
        begun = self.cycles(b)
        b.call(self.run_chunks, [generation])
        mine = self.cycles(b)
        # wait for the workers' chunks: spin, then sleep on `done`
        chunks32 = b.trunc(chunks, INT32)
        all_done = lambda b: b.icmp_unsigned("==", self.load(b, "done", "acquire"), chunks32)
        ready, slow = self.spin_until(b, fn, all_done, "join", JOIN_CYCLES)
        sleep, finish = fn.append_basic_block("join.sleep"), fn.append_basic_block("finish")
        b.position_at_end(slow)
        self.store(b, "waiting", _i32(1), "seq_cst")
        b.branch(sleep)
        b.position_at_end(sleep)
        now = self.load(b, "done", "seq_cst")
        pending = b.icmp_unsigned("!=", now, chunks32)
        with b.if_then(pending):
            self.futex(b, "done", FUTEX_WAIT_PRIVATE, now)
        b.cbranch(pending, sleep, finish)
        b.position_at_end(ready)
        b.branch(finish)
        b.position_at_end(finish)
        self.judge(b, b.sub(mine, begun), b.sub(self.cycles(b), mine))
        self.store(b, "lock", _i32(0), "release")
        b.ret_void()

        b.position_at_end(unlock_serial)
        self.store(b, "lock", _i32(0), "release")
        b.branch(serial)
        b.position_at_end(serial)
        b.call(_callee(b, body), [args, _i64(0), count])
        b.ret_void()

    def judge(self, b: ir.IRBuilder, own: ir.Value, waited: ir.Value) -> None:
        """Contention: the caller waited for the workers' chunks longer than ``WAIT_SLACK``
        cycles beyond its own share — a worker was descheduled (another process holds the
        CPU). The next ``penalty`` jobs then run serially, the penalty doubling (up to
        ``MAX_PENALTY``) while contention lasts and halving after each job that ran well."""
        penalty = self.load(b, "penalty", "monotonic")
        slow = b.and_(b.icmp_signed(">", waited, b.add(own, _i64(WAIT_SLACK))),
                      b.icmp_signed("!=", self.load(b, "adaptive", "monotonic"), _i64(0)))
        worse = _smallest(b, [b.add(b.mul(penalty, _i64(2)), _i64(1)), _i64(MAX_PENALTY)])
        penalty = b.select(slow, worse, b.ashr(penalty, _i64(1)))
        self.store(b, "penalty", penalty, "monotonic")
        with b.if_then(slow):
            self.store(b, "skip", penalty, "monotonic")
            self.store(b, "contended", b.add(self.load(b, "contended", "monotonic"), _i64(1)),
                       "monotonic")

    def emit_set_threads(self) -> None:
        fn, b = self.function(SET_THREADS, VOID, [INT64], internal=False)
        wanted, = fn.args
        clamped = _smallest(b, [b.select(b.icmp_signed("<", wanted, _i64(1)), _i64(1), wanted),
                                _i64(MAX_THREADS)])
        self.store(b, "threads", clamped, "monotonic")
        self.store(b, "skip", _i64(0), "monotonic")       # and forget any contention seen
        self.store(b, "penalty", _i64(0), "monotonic")
        b.ret_void()

    def emit_set_adaptive(self) -> None:
        fn, b = self.function(SET_ADAPTIVE, VOID, [INT64], internal=False)
        self.store(b, "adaptive", fn.args[0], "monotonic")
        self.store(b, "skip", _i64(0), "monotonic")
        self.store(b, "penalty", _i64(0), "monotonic")
        b.ret_void()

    def emit_threads(self) -> None:
        """The configured count, or 1 where a parallel_for would run serially anyway (the
        pool held by another caller, or this is a forked child): callers size their chunks
        by it."""
        fn, b = self.function(POOL_THREADS, INT64, [], internal=False)
        threads = self.load(b, "threads", "monotonic")
        busy = b.icmp_unsigned("!=", self.load(b, "lock", "monotonic"), _i32(0))
        owner = self.load(b, "owner", "monotonic")
        foreign = b.and_(b.icmp_unsigned("!=", owner, _i32(0)),
                         b.icmp_unsigned("!=", owner, b.call(self.declare("getpid", INT32, []), [])))
        b.ret(b.select(b.or_(busy, foreign), _i64(1), threads))

    def emit_info(self) -> None:
        fn, b = self.function(POOL_INFO, VOID, [PTR], internal=False)
        out, = fn.args
        values = [self.load(b, "threads", "monotonic"), self.load(b, "started", "monotonic"),
                  self.load(b, "jobs", "monotonic"),
                  b.sext(self.load(b, "owner", "monotonic"), INT64),
                  b.zext(self.load(b, "lock", "monotonic"), INT64),
                  self.load(b, "penalty", "monotonic"), self.load(b, "contended", "monotonic")]
        for k, value in enumerate(values):
            b.store(value, b.gep(out, [_i64(k)], source_etype=INT64))
        b.ret_void()


def _callee(b: ir.IRBuilder, pointer: ir.Value) -> ir.Value:
    """A ``ptr`` as a callable ``BODY_TYPE``: llvmlite needs a typed pointer to call through
    (its ``bitcast`` folds ptr to ptr away, so the cast is made by hand; LLVM reads it as a
    no-op)."""
    cast = ir.instructions.CastInstr(b.block, "bitcast", pointer, ir.PointerType(BODY_TYPE))
    b._insert(cast)
    return cast


def _size(type_: ir.Type) -> int:
    return 4 if type_ == INT32 else 8


def _smallest(b: ir.IRBuilder, values: list[ir.Value]) -> ir.Value:
    result = values[0]
    for value in values[1:]:
        result = b.select(b.icmp_signed("<", value, result), value, result)
    return result
