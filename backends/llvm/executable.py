"""A program compiled by LLVM: one native call runs the whole step over a planned arena.

``LLVMExecutable.run`` binds the inputs (graph inputs, then stored constants)
as an array of pointers and calls ``graphc_run`` once through ctypes, which
releases the GIL while the step runs on the thread pool (``graphc_entry`` on the
pointer array, arena, status and thread pool, stored in the program at load).  The arena is
allocated once, 64-byte aligned, and reused by every call.

State: with ``in_place=True`` (what ``graphc.compile`` uses) write-back
values are computed straight into the caller's state arrays.  A step can
fail only at a kernel that checks data-dependent indices; the program stops
right after it, before any later kernel or copy runs, so only state that an
earlier kernel already wrote could change, and exactly that state is saved
before the call and put back on failure.  Without ``in_place`` the state
arrays are copied first and the caller's are never touched.
"""
from __future__ import annotations

import ctypes
import operator
import threading
import time
from dataclasses import dataclass

import numpy as np

from graphc.errors import OutOfRangeError
from graphc.ir.graph import Graph
from graphc.kernel.ir import Kernel, Program

from ..executable import Inputs, RunResult, bind_inputs, written_before_last_check
from ..profile import KernelTiming, Profile
from .render import input_order, kernel_function_name

RUN = ctypes.CFUNCTYPE(ctypes.c_int32)
ARGUMENTS_ADDRESS = ctypes.CFUNCTYPE(ctypes.c_void_p)
BUFFERS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
ALIGNMENT = 64


def aligned_bytes(count: int) -> np.ndarray:
    raw = np.zeros(count + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + count]


def function_names(kernels) -> list[str]:
    """The functions an executable of ``kernels`` (Kernels or KernelEntries) calls, by name."""
    return ["graphc_run", "graphc_arguments_address", "graphc_buffers", *(kernel_function_name(k) for k in kernels)]


_UNBOUND = object()       # what LLVMExecutable._bound holds for an input no run has bound yet


@dataclass(frozen=True)
class KernelEntry:
    """What running and profiling a kernel needs of it: not its loops (a program loaded from the
    compile cache decodes those only when they are asked for)."""
    name: str
    node: str
    what: str
    outputs: tuple[str, ...]
    has_checks: bool              # whether it checks data-dependent indices (and so may fail)

    @staticmethod
    def of(kernel: Kernel) -> "KernelEntry":
        return KernelEntry(kernel.name, kernel.node, kernel.what, tuple(kernel.outputs), kernel.has_checks)


class LLVMExecutable:
    """``layout`` is the program's buffers, inputs and results (a Program, its kernels' loops left
    out or not) and ``kernels`` its kernels in run order; ``source`` has the whole program."""

    def __init__(self, graph: Graph, layout: Program, kernels: list[KernelEntry], engine, addresses: dict[str, int],
                 parallel_for: int, source):
        self.graph = graph
        self.source = source                      # the whole program, and its code on request
        self._layout = layout
        self._kernel_entries = kernels
        self._engine = engine                     # keeps the machine code alive
        self._run = RUN(addresses["graphc_run"])
        self._buffers = BUFFERS(addresses["graphc_buffers"])
        self._kernels = [KERNEL(addresses[kernel_function_name(k)]) for k in kernels]
        self._parallel_for = parallel_for
        self._arena = aligned_bytes(max(layout.arena_bytes, 1))
        self._status = np.zeros(2, np.int64)
        self._lock = threading.Lock()
        order = input_order(layout)
        self._constants = [layout.buffers[name].data for name in order[len(layout.inputs):]]
        self._pointers = (ctypes.c_void_p * max(1, len(order)))()
        # The array bound to each input by the last run (none yet: nothing a caller could pass).
        self._bound: list[object] = [_UNBOUND] * len(layout.inputs)
        # A copy of it, new at each bind, which _as_given hands back where the arrays are the bound
        # ones: a run holding an older copy (another thread bound since) binds its arrays again.
        self._last_bound: list[object] | None = None
        position = {name: i for i, name in enumerate(layout.inputs)}
        # Each input's shape, dtype and whether the step writes it, in input order.
        self._expected = [(layout.buffers[name].shape, np.dtype(layout.buffers[name].dtype.numpy),
                           name in layout.written) for name in layout.inputs]
        self._written = [(name, position[name]) for name in layout.written]
        self._at_risk = [position[name] for name in written_before_last_check(layout, kernels)]
        self._outputs = [self._output(name, position) for name in layout.outputs]
        # The states returned as they were when the step began, though the step writes them: copied first.
        self._returned_old = sorted({source for source, _, returns_old in self._outputs if returns_old})
        # Where every result is read from a fixed array (the arena, a constant), those arrays.
        self._output_views = ([view for _, view, _ in self._outputs]
                              if all(view is not None for _, view, _ in self._outputs) else None)
        # The same, where the program writes no input: output_of's, which runs on the inputs as bound.
        self._returned_views = self._output_views if not self._written else None
        arguments = (ctypes.c_void_p * 4).from_address(ARGUMENTS_ADDRESS(addresses["graphc_arguments_address"])())
        arguments[:] = [ctypes.addressof(self._pointers), self._arena.ctypes.data, self._status.ctypes.data, parallel_for]
        for j, data in enumerate(self._constants, start=len(layout.inputs)):
            self._pointers[j] = data.ctypes.data

    @property
    def program(self) -> Program:
        """The kernel-IR program (decoded on first use where the executable came from the cache)."""
        return self.source.program

    # -- running --------------------------------------------------------------------------
    def run(self, inputs: Inputs, in_place: bool = False) -> RunResult:
        arrays = self._as_given(inputs) if in_place else None
        given = arrays
        if arrays is None:
            arrays, given = self._prepared(inputs, in_place)
        saved = [(i, arrays[i].copy()) for i in self._at_risk if arrays[i] is given[i]] if self._at_risk else ()
        old = {i: arrays[i].copy() for i in self._returned_old} if self._returned_old else None
        outputs = self._outputs_of_a_run(arrays, saved, given, old)
        writes = {}
        for name, i in self._written:
            if in_place and arrays[i] is not given[i]:
                np.copyto(given[i], arrays[i])
                arrays[i] = given[i]
            writes[name] = arrays[i]
        return RunResult(outputs, writes)

    def output_of(self, inputs: list[np.ndarray], index: int) -> np.ndarray:
        """``run(inputs, in_place=True).outputs[index]``, where the program writes no state.  This
        is every call of a compiled function of its arguments, whose whole Python is under 2 us
        (a 32x6272x1 product is 8 us in all, and that Python's memory traffic slows the kernel
        too): where the arrays are the ones bound last time, it checks so under the lock, runs
        and copies the result out, and does nothing else."""
        views = self._returned_views
        if views is not None and len(inputs) == len(self._bound):
            lock = self._lock
            lock.acquire()                # not ``with``: 0.1 us less
            try:
                if all(map(operator.is_, inputs, self._bound)):
                    if self._run():
                        self._failed((), inputs)
                    return views[index].copy()
            finally:
                lock.release()
        return self.run(inputs, in_place=True).outputs[index]      # binds, copies, or says what is wrong

    def _outputs_of_a_run(self, arrays: list, saved, given: list, old: dict | None) -> list[np.ndarray]:
        with self._lock:
            if arrays is not self._last_bound:
                self._bind(arrays)
            if self._run():
                self._failed(saved, given)
            if self._output_views is not None:
                return list(map(np.ndarray.copy, self._output_views))
            return [old[source] if returns_old else (arrays[source] if view is None else view).copy()
                    for source, view, returns_old in self._outputs]

    def _failed(self, saved: list, given: list) -> None:
        """Puts back the state the program wrote before a kernel's check failed, and says why."""
        for i, copy in saved:
            np.copyto(given[i], copy)
        error, value = int(self._status[0]) - 1, int(self._status[1])
        self._status[:] = 0
        raise OutOfRangeError(self._layout.errors[error].message(value))

    def _as_given(self, inputs: Inputs) -> list[np.ndarray] | None:
        """``inputs`` as a list in input order, where they are arrays the program can run on as
        they are (of their inputs' shapes and dtypes, C-contiguous, the written ones writeable):
        a compiled step's every call.  None where any is not so (``_prepared`` copies them, or
        says which input is missing or wrong).

        Where every array is the one bound last time (a step's every call but its first, when
        the caller's arrays stay the same), this is the bound list itself, which tells ``run``
        there is nothing to bind, and no array is asked about its layout again: an array bound
        is held, so it cannot be resized, and its shape and dtype are the ones checked when it
        was bound (the call's data arrays are checked each call by the compiled function's
        signature).  Asking costs 0.1 us an input, and a ResNet step has 180 inputs."""
        if type(inputs) is not list:
            if type(inputs) is not dict:
                return None
            inputs = [inputs.get(name) for name in self._layout.inputs]
        expected, bound = self._expected, self._bound
        if len(inputs) != len(expected):
            return None
        if all(map(operator.is_, inputs, bound)):
            return self._last_bound
        for i, array in enumerate(inputs):
            shape, dtype, written = expected[i]
            if array is not bound[i] and (type(array) is not np.ndarray or not (
                    array.flags.c_contiguous and (array.flags.writeable or not written))):
                return None
            if array.shape != shape or array.dtype is not dtype and array.dtype != dtype:
                return None
        return inputs

    def _prepared(self, inputs: Inputs, in_place: bool) -> tuple[list, list]:
        """The arrays to run on, in input order (copies where the given ones are not C-contiguous,
        and of every written one unless ``in_place``), and the given ones."""
        given = list(bind_inputs(self.graph, inputs).values())
        arrays = list(given)
        for _, i in self._written:
            if not in_place or not arrays[i].flags.c_contiguous or not arrays[i].flags.writeable:
                arrays[i] = np.array(arrays[i], order="C")
        for i, array in enumerate(arrays):
            if not array.flags.c_contiguous:
                arrays[i] = np.ascontiguousarray(array)
        return arrays, given

    def _bind(self, arrays: list[np.ndarray]) -> None:
        # The constants' addresses are bound once, in __init__; only the inputs' change, and of
        # them only those given as other arrays than last time (the parameters are the same
        # from step to step): asking an array its address costs one to two microseconds, a
        # LeNet's inference 12 of its 58.  Each bound array is held, so its address stays its own.
        bound = self._bound
        for i, array in enumerate(arrays):
            if array is not bound[i]:
                self._pointers[i] = array.__array_interface__["data"][0]
                bound[i] = array
        self._last_bound = list(bound)

    def _output(self, name: str, position: dict[str, int]) -> tuple[int | None, np.ndarray | None, bool]:
        """Where returned value ``name`` is read after a run: the input or state array it is in (its
        input position), or its array, fixed once (a view of the arena, a constant); and whether
        it is a state as it was before the step wrote it (copied before the run)."""
        buffer = self._layout.buffers[name]
        if buffer.place == "arena":
            raw = self._arena[buffer.offset:buffer.offset + buffer.nbytes]
            return None, raw.view(buffer.dtype.numpy).reshape(buffer.shape), False
        if buffer.place == "constant":
            return None, buffer.data, False
        if buffer.place == "state":
            return position[buffer.source], None, False
        return position[name], None, name in self._layout.written

    # -- describing itself --------------------------------------------------------------------
    def profile(self, inputs: Inputs, runs: int = 3) -> Profile:
        """Time each kernel of the program, called one by one (the best of ``runs`` runs each).

        The state is copied first: profiling a training step does not update the model.
        """
        arrays = [np.array(array, order="C") for array in bind_inputs(self.graph, inputs).values()]
        best = [float("inf")] * len(self._kernels)
        table = (ctypes.c_void_p * max(1, len(self._layout.buffers)))()
        with self._lock:
            self._bind(arrays)
            for _ in range(max(1, runs)):
                self._status[:] = 0
                self._buffers(self._pointers, self._arena.ctypes.data, table)
                for i, kernel in enumerate(self._kernels):
                    start = time.perf_counter()
                    kernel(table, self._status.ctypes.data, self._parallel_for)
                    best[i] = min(best[i], time.perf_counter() - start)
            self._status[:] = 0                   # a run expects it so (it is set only on failure)
        timings = [KernelTiming(k.node, k.what, sum(self._layout.buffers[o].nbytes for o in k.outputs), seconds)
                   for k, seconds in zip(self._kernel_entries, best)]
        return Profile(self.graph.name, timings, max(1, runs))

    def kernels(self) -> list:
        """The program's kernels (kernel IR; ``graphc.kernel.print_kernel`` prints one)."""
        return list(self.program.kernels)
