"""Loading batches in worker processes: ``DataLoader(num_workers=N)``.

The protocol, as PyTorch's: the main process sends each worker ``(batch
number, indices)`` tasks on the worker's own queue, at most ``prefetch_factor``
per worker ahead of what has been consumed, round robin; workers put
``(batch number, batch)`` on one shared result queue, and the main process
hands batches out in batch order.  A worker seeds graphc, ``random`` and
numpy's global generator from ``base_seed + worker_id`` (numpy through
PyTorch's SeedSequence mix of base seed and worker id), so every worker has
its own random stream and ``graphc.manual_seed`` reproduces them all.

A failure inside a worker comes back as a ``WorkerFailure`` and is raised in
the main process, of the same type where it can be, naming the worker and the
sample it was loading.  The workers are stopped when the epoch ends, when the
iterator is closed or garbage-collected (a ``break`` out of the loop), when a
batch fails, and they stop themselves when the main process dies.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import random
import time
import traceback
from dataclasses import dataclass

import numpy as np

from ...random import manual_seed
from .fetch import IterableFetcher, MapFetcher

_POLL_SECONDS = 1.0          # how often a waiting worker checks its parent, and the main process its workers
_JOIN_SECONDS = 5.0          # how long a stopping worker may take before it is terminated


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` tells code running in a worker: its id, the worker count, its seed and
    its copy of the dataset."""
    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's WorkerInfo inside a DataLoader worker process; None in the main process."""
    return _worker_info


def numpy_seed(base_seed: int, worker_id: int) -> np.ndarray:
    """The seed PyTorch gives numpy's global generator in a worker: SeedSequence's hash of
    (worker_id, base_seed's low and high 32 bits), four 32-bit words."""
    entropy = [worker_id, base_seed & 0xFFFFFFFF, base_seed >> 32]
    return np.random.SeedSequence(entropy).generate_state(4)


@dataclass
class WorkerFailure:
    """An exception raised in a worker, carried to the main process (exceptions need not pickle)."""
    worker_id: int
    position: str
    type_name: str
    exception_type: type | None      # None when the type cannot be imported in the main process
    text: str                        # the worker's formatted traceback

    def reraise(self):
        message = (f"Caught {self.type_name} in DataLoader worker process {self.worker_id} while {self.position}."
                   f"\nOriginal {self.text}")
        try:
            error = self.exception_type(message) if self.exception_type is not None else None
        except Exception:             # a constructor that wants other arguments
            error = None
        raise (error if isinstance(error, BaseException) else RuntimeError(message))


@dataclass
class _Exhausted:
    """An iterable dataset's worker has no more batches."""
    worker_id: int


def _failure(worker_id: int, position: str, error: BaseException) -> WorkerFailure:
    exception_type = type(error)
    try:                             # the type must survive pickling to the main process
        import pickle
        pickle.loads(pickle.dumps(exception_type))
    except Exception:
        exception_type = None
    return WorkerFailure(worker_id, position, type(error).__name__, exception_type,
                         "".join(traceback.format_exception(error)))


def _worker_loop(make_fetcher, dataset, tasks, results, base_seed: int, worker_id: int, num_workers: int,
                 worker_init_fn, parent_pid: int) -> None:
    """The body of a worker process: seed, set up, then answer tasks until told to stop (None)."""
    global _worker_info
    seed = base_seed + worker_id
    manual_seed(seed)
    random.seed(seed)
    np.random.seed(numpy_seed(base_seed, worker_id))
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    # On the way out, do not wait for queued results to reach a main process that no longer reads them.
    results.cancel_join_thread()
    setup_failure, fetcher = None, None
    try:
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
        fetcher = make_fetcher()
    except Exception as error:
        setup_failure = _failure(worker_id, "starting (worker_init_fn or the dataset's iterator)", error)
    while True:
        try:
            task = tasks.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if os.getppid() != parent_pid:      # the main process is gone
                return
            continue
        if task is None:
            return
        batch_number, indices = task
        if setup_failure is not None:
            results.put((batch_number, setup_failure))
            continue
        try:
            batch = fetcher.fetch(indices)
        except StopIteration:
            batch = _Exhausted(worker_id)
        except Exception as error:
            batch = _failure(worker_id, fetcher.position, error)
        results.put((batch_number, batch))


class MultiProcessIterator:
    """One epoch of a DataLoader with workers: starts them, hands out batches in order, stops them."""

    def __init__(self, loader, batches, base_seed: int):
        """``batches``: the epoch's lists of indices (None for an iterable dataset)."""
        self._iterable = loader._is_iterable
        self._batches = batches
        self._timeout = loader.timeout
        context = loader.multiprocessing_context
        if context is None or isinstance(context, str):
            context = multiprocessing.get_context(context)
        if self._iterable:
            make_fetcher = _IterableFetcherFactory(loader.dataset, loader.collate_fn, loader.batch_size,
                                                   loader.drop_last)
        else:
            make_fetcher = _MapFetcherFactory(loader.dataset, loader.collate_fn)
        count = loader.num_workers
        self._results = context.Queue()
        self._tasks = [context.Queue() for _ in range(count)]
        self._workers = [context.Process(target=_worker_loop, daemon=True,
                                         args=(make_fetcher, loader.dataset, self._tasks[i], self._results,
                                               base_seed, i, count, loader.worker_init_fn, os.getpid()))
                         for i in range(count)]
        self._running = True
        for worker in self._workers:
            worker.start()
        self._active = [True] * count            # an iterable dataset's worker turns inactive when exhausted
        self._next_worker = itertools.cycle(range(count))
        self._sent = 0                           # batch numbers handed out so far
        self._next_to_yield = 0
        self._waiting: dict[int, int] = {}       # batch number -> worker, for tasks sent and not yet answered
        self._arrived: dict[int, object] = {}    # batches that came back ahead of their turn
        for _ in range(loader.prefetch_factor * count):
            self._send_task()

    def __iter__(self):
        return self

    def _send_task(self) -> None:
        if not any(self._active):
            return
        indices = None
        if not self._iterable:
            indices = next(self._batches, None)
            if indices is None:
                return
        worker = next(w for w in self._next_worker if self._active[w])
        self._tasks[worker].put((self._sent, indices))
        self._waiting[self._sent] = worker
        self._sent += 1

    def __next__(self):
        while True:
            if self._next_to_yield in self._arrived:
                batch = self._arrived.pop(self._next_to_yield)
                self._next_to_yield += 1
                if isinstance(batch, _Exhausted):
                    continue
                if isinstance(batch, WorkerFailure):
                    self.close()
                    batch.reraise()
                self._send_task()
                return batch
            if not self._waiting:
                self.close()
                raise StopIteration
            batch_number, batch = self._receive()
            del self._waiting[batch_number]
            if isinstance(batch, _Exhausted):
                self._active[batch.worker_id] = False
            self._arrived[batch_number] = batch

    def _receive(self):
        """The next result from any worker; fails if a worker died or ``timeout`` passed without one."""
        started = time.monotonic()
        while True:
            wait = _POLL_SECONDS if not self._timeout else min(_POLL_SECONDS,
                                                               self._timeout - (time.monotonic() - started))
            try:
                return self._results.get(timeout=max(wait, 0.0))
            except queue.Empty:
                pass
            dead = [w for w in self._workers if not w.is_alive()]
            if dead:
                self.close()
                codes = ", ".join(f"pid {w.pid}: exit code {w.exitcode}" for w in dead)
                raise RuntimeError(f"DataLoader worker(s) exited unexpectedly ({codes})")
            if self._timeout and time.monotonic() - started >= self._timeout:
                self.close()
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for a batch")

    def close(self) -> None:
        """Stop the workers (idempotent): ask them to finish, wait briefly, terminate stragglers."""
        if not getattr(self, "_running", False):
            return
        self._running = False
        for tasks in self._tasks:
            tasks.put(None)
        deadline = time.monotonic() + _JOIN_SECONDS
        for worker in self._workers:
            worker.join(timeout=max(deadline - time.monotonic(), 0.0))
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for q in (*self._tasks, self._results):
            q.cancel_join_thread()
            q.close()

    def __del__(self):
        self.close()


@dataclass
class _MapFetcherFactory:
    """Makes a worker's fetcher (a class, not a closure, so that the 'spawn' start method can pickle it)."""
    dataset: object
    collate_fn: object

    def __call__(self):
        return MapFetcher(self.dataset, self.collate_fn)


@dataclass
class _IterableFetcherFactory:
    dataset: object
    collate_fn: object
    batch_size: int
    drop_last: bool

    def __call__(self):
        return IterableFetcher(self.dataset, self.collate_fn, self.batch_size, self.drop_last)
