"""A program on an OpenCL device: the whole step enqueued at once, the model kept on the device.

Memory: the arena is one device buffer, each intermediate at the memory plan's
offset in it; each data input has a buffer of its own, written every step;
stored constants are uploaded once.  Each state (parameter, buffer, optimizer
state) lives in a ``DeviceState`` of its own, which the compiled step keeps in
the tensor (``graphc.residency``): it stays on the device across steps and
across the compiled functions that share it, and comes back to the host only
when someone reads the tensor there.

A step (``run_resident``) enqueues, on the device's one in-order queue: the
uploads (the data batch, and any state the host has touched since the last
step), every kernel, the write-back copies, then the downloads of the returned
values and of the status word; it then waits once.  No host synchronisation
happens between kernels.  ``transfers`` counts the bytes of values that crossed
(the 16-byte status word, read only by programs that check indices, is not a value).

A failed index check: the failing kernel records the error in the status word,
every later kernel sees it and returns at once, and the states that kernels up to
the last checking one write (saved on the device before the step: usually none,
as a loss's class targets are checked early) are put back from their copies.
So a failed step leaves every state as it was, and is reported as on the other
backends.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from graphc.errors import OutOfRangeError
from graphc.ir.graph import Graph
from graphc.ir.types import format_bytes
from graphc.kernel.ir import Program
from graphc.residency import StateSlot, host_value

from ..executable import Inputs, RunResult, bind_inputs, written_before_last_check
from ..profile import KernelTiming, Profile
from .devices import Runtime
from .groups import GROUPS_PER_COMPUTE_UNIT
from .render import KernelSource


@dataclass(frozen=True)
class Transfers:
    """Bytes of values moved between host and device by one step."""
    to_device: int
    to_host: int

    def __str__(self) -> str:
        return f"{format_bytes(self.to_device)} to the device, {format_bytes(self.to_host)} back"




class DeviceState:
    """One state's value in device memory (a ``graphc.residency.DeviceCopy``)."""

    def __init__(self, runtime: Runtime, buffer, host_current: bool):
        self.runtime = runtime
        self.buffer = buffer
        self.host_current = host_current

    def read_into(self, array: np.ndarray) -> None:
        import pyopencl as cl
        if array.nbytes == 0:
            return
        target = array if array.flags.c_contiguous else np.empty_like(array, order="C")
        cl.enqueue_copy(self.runtime.queue, target, self.buffer)
        if target is not array:
            np.copyto(array, target)


def _buffer(cl, runtime: Runtime, nbytes: int):
    return cl.Buffer(runtime.context, cl.mem_flags.READ_WRITE, max(1, nbytes))


class OpenCLExecutable:
    def __init__(self, graph: Graph, program: Program, runtime: Runtime, cl_program, kernels: list[KernelSource],
                 status_bytes: int, source):
        import pyopencl as cl
        self._cl = cl
        self.graph = graph
        self.program = program
        self.runtime = runtime
        self.source = source                  # the kernel IR and OpenCL C, for dumps
        self._lock = threading.Lock()
        self._arena = _buffer(cl, runtime, program.arena_bytes)
        self._status = _buffer(cl, runtime, status_bytes)       # the error word, then the preludes' values
        self._status_host = np.zeros(2, np.int64)
        self._checks = any(k.has_checks for k in program.kernels)
        self._data_names = [n.name for n in graph.inputs if n.tag == "data"]
        self._data = {name: _buffer(cl, runtime, program.buffers[name].nbytes) for name in self._data_names}
        self._constants = {}
        for name, buffer in program.buffers.items():
            if buffer.place == "constant":
                self._constants[name] = _buffer(cl, runtime, buffer.nbytes)
                if buffer.nbytes:
                    cl.enqueue_copy(runtime.queue, self._constants[name], np.ascontiguousarray(buffer.data))
        self._written = set(program.written)
        self._at_risk = written_before_last_check(program, program.kernels)
        self._returned_old = [name for name in dict.fromkeys(program.outputs)
                              if program.buffers[name].place == "input" and name in self._written]
        self._spare = {}                      # name -> a device buffer for a state's copy (backups, old values)
        self._launches = []
        for ks in kernels:
            kernel = cl.Kernel(cl_program, ks.function)
            kernel.set_arg(0, self._arena)
            kernel.set_arg(1, self._status)
            self._launches.append((kernel, ks, _launch_size(cl, kernel, runtime, ks.launch), [None] * len(ks.arguments)))
        self.transfers: Transfers | None = None        # of the last step

    # -- running ------------------------------------------------------------------------------
    def run(self, inputs: Inputs, in_place: bool = False) -> RunResult:
        """Run once from host arrays: every state is uploaded, and its new value read back
        (into the given arrays with ``in_place``)."""
        env = bind_inputs(self.graph, inputs)
        arrays = {node.name: array for node, array in env.items()}
        slots = {name: StateSlot(array, None) for name, array in arrays.items() if name not in self._data}
        result = self.run_resident({name: arrays[name] for name in self._data_names}, slots)
        writes = {}
        for name in self.program.written:
            target = arrays[name] if in_place and arrays[name].flags.writeable else np.empty_like(arrays[name])
            slots[name].device.read_into(target)
            writes[name] = target
        return RunResult(result.outputs, writes)

    def output_of(self, inputs: list[np.ndarray], index: int) -> np.ndarray:
        return self.run(inputs, in_place=True).outputs[index]

    def run_resident(self, data: Mapping[str, np.ndarray], state: Mapping[str, StateSlot]) -> RunResult:
        """One step: ``data`` uploaded, ``state`` bound where it lives (uploaded where the host holds it)
        and left on the device.  Returns the outputs; the written states are in ``state``'s slots."""
        cl, queue = self._cl, self.runtime.queue
        with self._lock:
            to_device = 0
            keep_alive = []
            for name in self._data_names:
                array = np.ascontiguousarray(data[name])
                keep_alive.append(array)
                if array.nbytes:
                    cl.enqueue_copy(queue, self._data[name], array, is_blocking=False)
                    to_device += array.nbytes
            buffers, fresh = {}, {}
            for name, slot in state.items():
                device = slot.device
                if isinstance(device, DeviceState) and device.runtime is self.runtime:
                    buffers[name] = device.buffer
                    continue
                array = np.ascontiguousarray(host_value(slot.array, device))
                keep_alive.append(array)
                fresh[name] = DeviceState(self.runtime, _buffer(cl, self.runtime, array.nbytes), host_current=True)
                buffers[name] = fresh[name].buffer
                if array.nbytes:
                    cl.enqueue_copy(queue, buffers[name], array, is_blocking=False)
                    to_device += array.nbytes
            for name in (*self._returned_old, *self._at_risk):
                self._copy(buffers[name], self._spare_for(name))
            if self._checks:
                cl.enqueue_fill_buffer(queue, self._status, np.zeros(1, np.int64), 0, 16)
            self._enqueue_kernels(buffers)
            outputs, to_host = self._read_outputs(data, buffers)
            if self._checks:
                cl.enqueue_copy(queue, self._status_host, self._status, is_blocking=False)
            queue.finish()
            del keep_alive
            for name, device in fresh.items():
                state[name].device = device
            if self._checks and self._status_host[0] != 0:
                for name in self._at_risk:
                    self._copy(self._spare[name], buffers[name])
                queue.finish()
                error, value = int(self._status_host[0] & 0xFFFFFFFF) - 1, int(self._status_host[1])
                raise OutOfRangeError(self.program.errors[error].message(value))
            for name in self._written:
                state[name].device.host_current = False
            self.transfers = Transfers(to_device, to_host)
        return RunResult(outputs, {})

    def _spare_for(self, name: str):
        if name not in self._spare:
            self._spare[name] = _buffer(self._cl, self.runtime, self.program.buffers[name].nbytes)
        return self._spare[name]

    def _copy(self, source, target) -> None:
        self._cl.enqueue_copy(self.runtime.queue, target, source, byte_count=min(source.size, target.size))

    def _argument(self, name: str, state_buffers: dict):
        buffer = self.program.buffers[name]
        if buffer.place == "constant":
            return self._constants[name]
        if buffer.place == "state":
            return state_buffers[buffer.source]
        return self._data[name] if name in self._data else state_buffers[name]

    def _enqueue_kernels(self, state_buffers: dict, timed: bool = False) -> list:
        events = []
        for kernel, ks, (global_size, local_size), bound in self._launches:
            for position, name in enumerate(ks.arguments):
                argument = self._argument(name, state_buffers)
                if bound[position] is not argument:        # set again only what changed since the last step
                    kernel.set_arg(2 + position, argument)
                    bound[position] = argument
            event = self._cl.enqueue_nd_range_kernel(self.runtime.queue, kernel, global_size, local_size)
            if timed:
                events.append(event)
        return events

    def _read_outputs(self, data: Mapping[str, np.ndarray], state_buffers: dict) -> tuple[list[np.ndarray], int]:
        """Enqueue the downloads of the returned values (each once); a name returned again gets a copy."""
        cl, queue = self._cl, self.runtime.queue
        values, moved = {}, 0
        for name in dict.fromkeys(self.program.outputs):
            buffer = self.program.buffers[name]
            if buffer.place == "constant":
                values[name] = np.array(buffer.data)
                continue
            if name in self._data:
                values[name] = np.array(data[name])
                continue
            host = values[name] = np.empty(buffer.shape, buffer.dtype.numpy)
            if not buffer.nbytes:
                continue
            if buffer.place == "arena":
                cl.enqueue_copy(queue, host, self._arena, src_offset=buffer.offset, is_blocking=False)
            else:
                source = self._spare[name] if name in self._returned_old else self._argument(name, state_buffers)
                cl.enqueue_copy(queue, host, source, is_blocking=False)
            moved += buffer.nbytes
        outputs, seen = [], set()
        for name in self.program.outputs:
            outputs.append(np.array(values[name]) if name in seen else values[name])
            seen.add(name)
        return outputs, moved

    # -- describing itself --------------------------------------------------------------------
    def profile(self, inputs: Inputs, runs: int = 3) -> Profile:
        """Time each kernel on the device (OpenCL event times, the best of ``runs`` runs each).

        The state is uploaded as a copy: profiling a training step does not update the model.
        The profile also shows the bytes the last step moved between host and device."""
        env = bind_inputs(self.graph, inputs)
        arrays = {node.name: np.ascontiguousarray(array) for node, array in env.items()}
        best = [float("inf")] * len(self._launches)
        cl, queue = self._cl, self.runtime.queue
        with self._lock:
            buffers = {}
            for name, array in arrays.items():
                if name in self._data:
                    buffers[name] = self._data[name]
                else:
                    buffers[name] = _buffer(cl, self.runtime, array.nbytes)
                if array.nbytes:
                    cl.enqueue_copy(queue, buffers[name], array)
            for _ in range(max(1, runs)):
                events = self._enqueue_kernels(buffers, timed=True)
                queue.finish()
                for i, event in enumerate(events):
                    best[i] = min(best[i], (event.profile.end - event.profile.start) * 1e-9)
        timings = []
        for (_, ks, _, _), seconds in zip(self._launches, best):
            kernel = ks.kernel
            if kernel is None:
                timings.append(KernelTiming(ks.function, "write-back copy", 0, seconds))
            elif ks.role == "prelude":
                timings.append(KernelTiming(f"{kernel.node}.prelude", "rank-0 values its work-items share", 0, seconds))
            else:
                stored = sum(self.program.buffers[o].nbytes for o in kernel.outputs)
                timings.append(KernelTiming(kernel.node, kernel.what, stored, seconds))
        note = f"{self.runtime.info.label}; host<->device per step: " + (
            str(self.transfers) + " (the last step)" if self.transfers is not None else "no step run yet")
        return Profile(self.graph.name, timings, max(1, runs), note)

    def kernels(self) -> list:
        """The program's kernels (kernel IR; ``graphc.kernel.print_kernel`` prints one)."""
        return list(self.program.kernels)


def _launch_size(cl, kernel, runtime: Runtime, launch) -> tuple[tuple[int, int], tuple[int, int]]:
    """(global, local) sizes from the device's limits: a work-group spans the innermost loop where
    the kernel allows (else a power-of-two multiple of its preferred size multiple), then grows
    across rows in powers of two while every compute unit keeps several groups (a CPU device runs
    a group as one loop, so fewer, larger groups cost less there); global sizes are rounded up to
    whole groups.  A kernel whose work-groups share reductions gets a group per output, of the
    most work-items the kernel allows up to its ``launch.group`` (a power of two)."""
    info = cl.kernel_work_group_info
    limit = kernel.get_work_group_info(info.WORK_GROUP_SIZE, runtime.device)
    if launch.tile:
        return (launch.columns, launch.rows), launch.tile
    if launch.group:
        size = 1
        while size * 2 <= min(limit, launch.group):
            size *= 2
        return (launch.columns * size, launch.rows), (size, 1)
    multiple = max(1, min(limit, kernel.get_work_group_info(info.PREFERRED_WORK_GROUP_SIZE_MULTIPLE,
                                                            runtime.device)))
    if launch.columns <= limit:
        columns = launch.columns
    else:
        columns = multiple
        while columns * 2 <= limit:
            columns *= 2
    enough_groups = GROUPS_PER_COMPUTE_UNIT * runtime.info.compute_units
    groups_across = -(-launch.columns // columns)
    rows = 1
    while columns * rows * 2 <= limit and rows * 2 <= launch.rows and \
            groups_across * -(-launch.rows // (rows * 2)) >= enough_groups:
        rows *= 2
    return (groups_across * columns, -(-launch.rows // rows) * rows), (columns, rows)

