"""The LLVM backend: kernel IR rendered to LLVM IR, compiled for the host CPU, run natively.

``build_executable(graph, plan)`` lowers the planned graph to a kernel-IR
program, finds its object code in the compile cache or compiles it (render,
optimize at O3, emit: the kernels split into parts rendered and compiled side by
side in ``jit.compile_jobs()`` processes), loads it and returns an ``LLVMExecutable``
whose every run is one native call.

For ``graphc.compile``'s cache of whole steps, ``save_executable`` turns an
executable into bytes (its program as data, its object code by cache key) and
``load_executable`` makes it again from them, with no lowering or LLVM
optimization; ``cache_identity`` names everything besides the graph that
decides what this backend builds.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math

import llvmlite
import llvmlite.ir as ir

from graphc import timing
from graphc.errors import BackendError
from graphc.ir.graph import Graph
from graphc.kernel import lower_program, print_kernel, print_program
from graphc.kernel.ir import Kernel, Loop, Program, walk_statements
from graphc.kernel.partial_sums import sums_in_vectors
from graphc.kernel.serialize import StoredProgramError, decode, encode, program_from_data

from .. import cache
from .executable import KernelEntry, LLVMExecutable, function_names
from .jit import (ENTRY_PIPELINE, LOOP_PIPELINE, PIPELINE, compile_jobs, host, kernel_pipeline, load_objects,
                  optimized_module, vector_target)
from .render import body_key, render_entry_module, render_kernel_module, render_program
from .threads import pool
from .worker import LLVM_OPTIONS, WorkerProcess, WorkQueue, compile_parts


class ProgramSource:
    """The stages of one program's code, rendered on request: kernel IR before and after
    scheduling, LLVM IR before and after optimization, and assembly.  ``program`` is the
    Program, or a function making it (a stored one, decoded when first asked for)."""

    def __init__(self, program, threads: int, unscheduled=None):
        self._program = program
        self.threads = threads
        self.unscheduled = unscheduled

    @functools.cached_property
    def program(self) -> Program:
        return self._program() if callable(self._program) else self._program

    def files(self, stages=None) -> dict[str, str]:
        """Dump files by name (``stages`` picks among kernels, llvm and asm; None: all)."""
        files = {}
        if stages is None or "kernels" in stages:
            if self.unscheduled is not None:
                files["kernels-unscheduled.kir"] = print_program(self.unscheduled())
            files["kernels.kir"] = print_program(self.program)
        if stages is None or "llvm" in stages:
            files["llvm.ll"] = self.llvm_ir()
            files["llvm-optimized.ll"] = self.optimized_ir()
        if stages is None or "asm" in stages:
            files["asm.s"] = self.assembly()
        return files

    def llvm_ir(self) -> str:
        return str(render_program(self.program, self.threads))

    def optimized_ir(self) -> str:
        return str(self._optimized[1])

    def assembly(self) -> str:
        machine, module = self._optimized
        return machine.emit_assembly(module)

    @functools.cached_property
    def object_key(self) -> str:
        """The compile cache's key for the program's object code (``object_key``): it prints the
        whole program, so it is worked out once, for compiling and for saving the executable."""
        return object_key(self.program, self.threads)

    @functools.cached_property
    def _optimized(self):
        """Optimized once, whether the LLVM IR, the assembly or both are asked for."""
        return optimized_module(self.llvm_ir())


def cache_identity(threads: int | None = None) -> str:
    """What besides the program decides the machine code: the threads it is built for, the
    target CPU and its features, the pipelines, and the graphc and llvmlite versions."""
    cpu, features = host()
    threads = pool().threads if threads is None else threads
    return json.dumps({"backend": "llvm", "threads": threads, "cpu": cpu, "features": features,
                       "pipelines": [PIPELINE, LOOP_PIPELINE, ENTRY_PIPELINE], "llvm options": list(LLVM_OPTIONS),
                       "graphc": cache.code_version(),
                       "llvmlite": llvmlite.__version__}, sort_keys=True)


def object_key(program: Program, threads: int) -> str:
    constants = [b.data.tobytes() for b in program.buffers.values() if b.place == "constant"]
    return cache.cache_key("llvm objects", print_program(program), *constants, cache_identity(threads))


def compile_program(program: Program, threads: int, key: str | None = None) -> list[bytes]:
    """Object code for ``program`` (one object per module), from the cache or compiled now
    (``key``: its ``object_key``, where the caller has it already)."""
    key = key or object_key(program, threads)
    with timing.phase("cache lookup"):
        stored = cache.load("llvm", key)
    objects = _unpack(stored) if stored is not None else None
    if objects is None:
        try:
            objects = _compile(program, threads)
        except RuntimeError as err:
            raise BackendError(f"LLVM could not compile graph {program.name}: {str(err).splitlines()[0]}") from None
        with timing.phase("cache store"):
            cache.store("llvm", key, _pack(objects), label=f"{program.name}: object code")
    return objects


def _compile(program: Program, threads: int) -> list[bytes]:
    """Render the program as modules and compile them, in parts (``_parts``; the entry is part 0)
    that this process and ``compile_jobs() - 1`` forked workers take from one queue, each
    rendering the modules of the parts it takes.  The objects come back in part order, the
    entry's first."""
    bodies = _bodies(program)
    processes = max(1, min(compile_jobs(), len(bodies) // BODIES_PER_PROCESS))
    kernel_parts = _parts(program, bodies, processes)

    def render(part: int) -> list[tuple[str, dict]]:
        if part == 0:
            return [(_text(render_entry_module(program)), ENTRY_PIPELINE)]
        return [(_text(render_kernel_module(program, threads, positions, f"{program.name}.{part}.{i}")), dict(pipeline))
                for i, (pipeline, positions) in enumerate(kernel_parts[part - 1].items())]

    cpu, features = host()
    queue = WorkQueue(1 + len(kernel_parts))
    workers = []
    try:
        with timing.phase("starting LLVM workers"):
            for _ in range(processes - 1):
                workers.append(WorkerProcess(queue, render, cpu, features))
        objects = compile_parts(queue, render, cpu, features, timing.phase)
        with timing.phase("waiting for LLVM workers"):
            for process in workers:
                worker_objects, seconds = process.receive()
                objects.update(worker_objects)
                for phase, spent in seconds.items():
                    timing.add_worker_time(phase, spent)
        return [code for part in sorted(objects) for code in objects[part]]
    finally:
        queue.close()
        for process in workers:
            process.close()


def _text(module: ir.Module) -> str:
    """``module``'s LLVM IR; the module is taken apart after.  Each of its instructions points at
    its block and each block at its function: cycles, which only Python's collector frees.  Left
    to it, a compile's modules were most of the objects it found (LeNet: 76,000 of 82,000), and
    walking them cost the first collection after a compile 0.1 s on ResNet's."""
    text = str(module)
    for function in module.functions:
        for block in function.blocks:
            block.instructions.clear()
        function.blocks.clear()
    return text


# Below this many kernel bodies per process, a worker saves less than forking it costs (the fork
# copies the process's page tables; its first writes copy pages): fewer processes compile.
BODIES_PER_PROCESS = 8
# Parts per process: enough that the processes finish at most a small part apart, few enough
# that LLVM's fixed cost per module stays small.
PARTS_PER_PROCESS = 6


def _bodies(program: Program) -> dict[tuple, list[int]]:
    """The positions of the kernels with each ``body_key``: kernels computing the same thing on
    other buffers, whose one compiled body serves them all."""
    bodies: dict[tuple, list[int]] = {}
    for position, kernel in enumerate(program.kernels):
        bodies.setdefault(body_key(kernel), []).append(position)
    return bodies


def _parts(program: Program, bodies: dict[tuple, list[int]], processes: int) -> list[dict[tuple, list[int]]]:
    """The kernels' positions in parts of about equal work for ``processes`` processes, the heaviest
    first, each part's kernels grouped by the pipeline they take (a module each).  A body's kernels
    go to one part, which compiles that body once; the body with the most work (``llvm_work``)
    goes first, each into the lightest part so far."""
    work = {key: llvm_work(program.kernels[positions[0]]) for key, positions in bodies.items()}
    count = 1 if processes == 1 else min(processes * PARTS_PER_PROCESS, len(bodies))
    parts: list[dict[tuple, list[int]]] = [{} for _ in range(count)]
    loads = [0.0] * count
    for key in sorted(bodies, key=lambda key: -work[key]):
        lightest = loads.index(min(loads))
        pipeline = tuple(sorted(kernel_pipeline(program.kernels[bodies[key][0]]).items()))
        parts[lightest].setdefault(pipeline, []).extend(bodies[key])
        loads[lightest] += work[key]
    order = sorted(range(count), key=lambda i: -loads[i])
    return [{pipeline: sorted(group) for pipeline, group in parts[i].items()} for i in order]


def llvm_work(kernel: Kernel) -> float:
    """About how long LLVM takes over a kernel, in no unit: it grows with the loops LLVM sees (it
    vectorizes and unrolls each) and less than linearly with the code (a register tile unrolled by
    the renderer is long but straight).  Measured on the example steps' bodies, this split their
    LLVM time between two processes within 5% of even; the kernel IR's length alone split
    ResNet's 30/70."""
    loops = sum(1 for stmt in walk_statements(kernel.body) if isinstance(stmt, Loop) and stmt.kind != "unrolled")
    return math.sqrt(len(print_kernel(kernel))) * (1 + loops)


def _pack(objects: list[bytes]) -> bytes:
    return json.dumps([len(o) for o in objects]).encode() + b"\n" + b"".join(objects)


def _unpack(data: bytes) -> list[bytes] | None:
    try:
        header_end = data.index(b"\n")
        lengths = json.loads(data[:header_end])
    except ValueError:
        return None
    objects, position = [], header_end + 1
    for length in lengths:
        objects.append(data[position:position + length])
        position += length
    return objects if position == len(data) else None


def build_executable(graph: Graph, plan) -> LLVMExecutable:
    with timing.phase("lowering"):
        program = lower_program(graph, plan, target=vector_target())
        # Sums over terms side by side in rows of partial sums (a CPU's vectors; OpenCL keeps
        # its accumulators for its work-group reductions).
        program = dataclasses.replace(program, kernels=[sums_in_vectors(kernel) for kernel in program.kernels])
    source = ProgramSource(program, pool().threads,
                           unscheduled=lambda: lower_program(graph, plan, schedule=False, target=vector_target()))
    with timing.phase("cache key"):
        key = source.object_key
    objects = compile_program(program, source.threads, key)
    return _load(graph, source, objects)


def _load(graph: Graph, source: ProgramSource, objects: list[bytes], layout: Program | None = None,
          kernels: list[KernelEntry] | None = None) -> LLVMExecutable:
    """The executable running ``objects``: ``layout`` and ``kernels`` are what it needs of the
    program (see LLVMExecutable), by default taken from ``source.program``."""
    if layout is None:
        layout = source.program
        kernels = [KernelEntry.of(kernel) for kernel in layout.kernels]
    names = function_names(kernels)
    with timing.phase("loading"):
        try:
            engine, addresses = load_objects(objects, names)
        except RuntimeError as err:
            raise BackendError(f"LLVM could not load graph {layout.name}: {str(err).splitlines()[0]}") from None
    return LLVMExecutable(graph, layout, kernels, engine, addresses, pool().parallel_for, source)


def save_executable(executable: LLVMExecutable) -> bytes:
    """What ``load_executable`` needs to make ``executable`` again: the program's buffers and
    results, its kernels' names and outputs, the key of its object code in the cache (stored
    there by ``compile_program``) and, as one JSON text of their own, the kernels' loops: a
    warm start runs without them and decodes them only when asked (``kernels()``, a dump), so
    it never holds the program's hundred thousand objects (ResNet: 26 of 165 MiB at its peak)."""
    source = executable.source
    program = source.program
    return json.dumps({"layout": encode(dataclasses.replace(program, kernels=[])),
                       "kernels": [[k.name, k.node, k.what, list(k.outputs), k.has_checks] for k in program.kernels],
                       "kernel_ir": json.dumps(encode(program.kernels)),
                       "threads": source.threads, "objects": source.object_key}).encode()


def load_executable(graph: Graph, data: bytes) -> LLVMExecutable | None:
    """The executable ``save_executable`` described in ``data``, running ``graph`` (a graph
    with the signature it was built for); None if its object code has left the cache.
    Raises StoredProgramError (a ValueError) for data that is not such a description."""
    try:
        saved = json.loads(data)
        layout = program_from_data(saved["layout"])
        kernels = [KernelEntry(str(name), str(node), str(what), tuple(map(str, outputs)), bool(checks))
                   for name, node, what, outputs, checks in saved["kernels"]]
        kernel_ir = str(saved["kernel_ir"])
        threads, key = int(saved["threads"]), str(saved["objects"])
    except (ValueError, KeyError, TypeError) as err:
        raise StoredProgramError(f"not a stored LLVM executable ({err})") from None
    if threads != pool().threads:
        return None
    stored = cache.load("llvm", key)
    objects = _unpack(stored) if stored is not None else None
    if objects is None:
        return None

    def program() -> Program:
        stored_kernels = decode(json.loads(kernel_ir))
        if not all(isinstance(kernel, Kernel) for kernel in stored_kernels):
            raise StoredProgramError("the stored kernels are not kernels")
        return dataclasses.replace(layout, kernels=list(stored_kernels))
    return _load(graph, ProgramSource(program, threads), objects, layout, kernels)
