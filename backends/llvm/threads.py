"""The thread pool parallel loops run on: native threads, started once per process.

The pool is a small LLVM module of its own (built here with llvmlite.ir and
JIT-compiled once).  ``graphc_parallel_for(task, context, chunks)`` runs
``task(context, c)`` for every chunk ``c``: the calling thread and the
workers take chunks from a shared atomic counter, then the caller waits until
every worker has finished with the job (a barrier, so no worker can still be
reading a job when the next one is published).  Workers spin briefly after a
job, since the next kernel of a step usually follows within microseconds, and
then sleep on a futex until the job counter changes; the x86 ``pause``
instruction is slow in these virtual machines, so spinning is plain loads.

Workers are ``threading.Thread``s that call the native worker loop through
ctypes (which releases the GIL): they never run Python again until the pool
shuts down at exit.  ``GRAPHC_NUM_THREADS`` sets the number of threads
(default: the cores this process may use); the caller counts as one.

Threads never change results: a chunk is a range of output elements, and
each element is computed whole by one thread in a fixed order.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import threading

import llvmlite.ir as ir

from graphc import timing

from .counts import count_from_environment
from .jit import FunctionPointer, compile_module

I32, I64, PTR = ir.IntType(32), ir.IntType(64), ir.PointerType()
TASK = ir.FunctionType(ir.VoidType(), [PTR, I64])
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129
SPINS_BEFORE_SLEEP = 1 << 16


def thread_count() -> int:
    """``GRAPHC_NUM_THREADS``, or the number of cores this process may run on."""
    return count_from_environment("GRAPHC_NUM_THREADS", "threads")


def _pool_module() -> ir.Module:
    module = ir.Module(name="graphc_pool")

    def variable(name, type_, value=0):
        var = ir.GlobalVariable(module, type_, name)
        var.initializer = ir.Constant(type_, value)
        return var

    generation = variable("generation", I32)
    # The generation when the pool was configured: a worker starts from it, so a worker thread
    # that starts late still sees (and joins) every job published after configuration.
    configured = variable("configured", I32)
    shutdown = variable("shutdown", I32)
    workers = variable("workers", I32)
    job_task = variable("job_task", PTR, None)
    job_context = variable("job_context", PTR, None)
    job_chunks = variable("job_chunks", I64)
    next_chunk = variable("next_chunk", I64)
    finished = variable("finished", I32)
    syscall = ir.Function(module, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
    sched_yield = ir.Function(module, ir.FunctionType(I32, []), "sched_yield")

    def atomic_load(b, ptr, type_):
        return b.load_atomic(ptr, "acquire", type_.width // 8, typ=type_)

    def run_chunks(b, function):
        """Take chunks from the counter until none is left."""
        head, body, done = (function.append_basic_block(n) for n in ("take", "run", "taken"))
        b.branch(head)
        b.position_at_end(head)
        chunk = b.atomic_rmw("add", next_chunk, ir.Constant(I64, 1), "acq_rel")
        chunks = b.load(job_chunks, typ=I64)
        b.cbranch(b.icmp_signed("<", chunk, chunks), body, done)
        b.position_at_end(body)
        task = FunctionPointer(b.load(job_task, typ=PTR), TASK)
        b.call(task, [b.load(job_context, typ=PTR), chunk])
        b.branch(head)
        b.position_at_end(done)

    # void graphc_pool_worker(): handle jobs until shutdown.
    worker = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "graphc_pool_worker")
    b = ir.IRBuilder(worker.append_basic_block("entry"))
    seen = b.alloca(I32)
    spins = b.alloca(I32)
    b.store(atomic_load(b, configured, I32), seen)
    wait, spin, sleep, work, leave = (worker.append_basic_block(n) for n in ("wait", "spin", "sleep", "work", "leave"))
    b.branch(wait)
    b.position_at_end(wait)
    b.store(ir.Constant(I32, 0), spins)
    b.branch(spin)
    b.position_at_end(spin)
    current = atomic_load(b, generation, I32)
    published = b.icmp_unsigned("!=", current, b.load(seen, typ=I32))
    count = b.add(b.load(spins, typ=I32), ir.Constant(I32, 1))
    b.store(count, spins)
    keep_spinning = b.icmp_unsigned("<", count, ir.Constant(I32, SPINS_BEFORE_SLEEP))
    not_yet = worker.append_basic_block("not_yet")
    b.cbranch(published, work, not_yet)
    b.position_at_end(not_yet)
    b.cbranch(keep_spinning, spin, sleep)
    b.position_at_end(sleep)
    b.call(syscall, [ir.Constant(I64, SYS_FUTEX), generation, ir.Constant(I32, FUTEX_WAIT_PRIVATE),
                     b.load(seen, typ=I32), ir.Constant(PTR, None)])
    b.store(ir.Constant(I32, 0), spins)
    b.branch(spin)
    b.position_at_end(work)
    b.store(current, seen)
    stop = b.icmp_unsigned("!=", atomic_load(b, shutdown, I32), ir.Constant(I32, 0))
    jobs = worker.append_basic_block("job")
    b.cbranch(stop, leave, jobs)
    b.position_at_end(jobs)
    run_chunks(b, worker)
    b.atomic_rmw("add", finished, ir.Constant(I32, 1), "acq_rel")
    b.branch(wait)
    b.position_at_end(leave)
    b.ret_void()

    # void graphc_parallel_for(task, context, chunks)
    parallel_for = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64]), "graphc_parallel_for")
    task, context, chunks = parallel_for.args
    b = ir.IRBuilder(parallel_for.append_basic_block("entry"))
    b.store(task, job_task)
    b.store(context, job_context)
    b.store(chunks, job_chunks)
    b.store_atomic(ir.Constant(I64, 0), next_chunk, "release", 8)
    b.store_atomic(ir.Constant(I32, 0), finished, "release", 4)
    b.atomic_rmw("add", generation, ir.Constant(I32, 1), "acq_rel")
    b.call(syscall, [ir.Constant(I64, SYS_FUTEX), generation, ir.Constant(I32, FUTEX_WAKE_PRIVATE),
                     ir.Constant(I32, 2 ** 31 - 1)])
    run_chunks(b, parallel_for)
    barrier, yield_, done = (parallel_for.append_basic_block(n) for n in ("barrier", "yield", "done"))
    b.branch(barrier)
    b.position_at_end(barrier)
    all_done = b.icmp_unsigned(">=", atomic_load(b, finished, I32), b.load(workers, typ=I32))
    b.cbranch(all_done, done, yield_)
    b.position_at_end(yield_)
    b.call(sched_yield, [])
    b.branch(barrier)
    b.position_at_end(done)
    b.ret_void()

    # void graphc_pool_configure(i32 workers, i32 shutdown)
    configure = ir.Function(module, ir.FunctionType(ir.VoidType(), [I32, I32]), "graphc_pool_configure")
    b = ir.IRBuilder(configure.append_basic_block("entry"))
    b.store(configure.args[0], workers)
    b.store_atomic(configure.args[1], shutdown, "release", 4)
    published = b.atomic_rmw("add", generation, ir.Constant(I32, 1), "acq_rel")
    b.store_atomic(b.add(published, ir.Constant(I32, 1)), configured, "release", 4)
    b.call(syscall, [ir.Constant(I64, SYS_FUTEX), generation, ir.Constant(I32, FUTEX_WAKE_PRIVATE),
                     ir.Constant(I32, 2 ** 31 - 1)])
    b.ret_void()
    return module


class ThreadPool:
    """The process's pool: ``parallel_for`` is the address compiled programs call."""

    def __init__(self, threads: int):
        self.threads = threads
        self._engine, addresses = compile_module(_pool_module(), ["graphc_pool_worker", "graphc_parallel_for",
                                                                  "graphc_pool_configure"], label="the thread pool")
        self.parallel_for = addresses["graphc_parallel_for"]
        self._configure = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_int32)(addresses["graphc_pool_configure"])
        worker = ctypes.CFUNCTYPE(None)(addresses["graphc_pool_worker"])
        self._configure(threads - 1, 0)
        self._workers = [threading.Thread(target=worker, name=f"graphc-worker-{i}", daemon=True)
                         for i in range(threads - 1)]
        for thread in self._workers:
            thread.start()
        atexit.register(self.close)
        # A forked child (a DataLoader worker) has the pool's memory but none of its threads:
        # there parallel loops run on the calling thread alone.
        os.register_at_fork(after_in_child=self._alone_after_fork)

    def _alone_after_fork(self) -> None:
        self._configure(0, 0)
        self._workers = []

    def close(self) -> None:
        if self._workers:
            self._configure(0, 1)
            for thread in self._workers:
                thread.join(timeout=1.0)
            self._workers = []


_pool: ThreadPool | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPool:
    """The process's thread pool, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            with timing.phase("starting the thread pool"):
                _pool = ThreadPool(thread_count())
        return _pool
