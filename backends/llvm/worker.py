"""Optimize LLVM modules and emit their object code: in this process, or in a forked worker.

llvmlite holds one global lock around every call into LLVM, so threads cannot
compile modules side by side; processes can.  A ``WorkerProcess`` is a fork of
this process: it starts in milliseconds with everything already imported and
the program already lowered, so it renders its modules itself (rendering is
Python, a third of a cold compile, and would otherwise all happen here while
the worker waits).  A program is compiled in parts that this process and its
workers take from one ``WorkQueue`` as each finishes the last, so they finish
together however unevenly LLVM's time was guessed.  A worker's object code
comes back through a pipe: a JSON line (each part's objects' lengths, the
CPU seconds spent rendering, optimizing and emitting) followed by the objects.  A
module LLVM rejects, or any other failure, ends the worker with status 1 and a
message in place of the answer.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from typing import Callable, ContextManager

import llvmlite.binding as llvm

# LLVM's own options, set once per process (forked workers inherit them; they are part of the
# compile cache's key).  Dead store elimination walks back from every store over the stores
# before it, asking alias analysis of each pair: a kernel that stores lane by lane (a product
# stored through a permute, hundreds of stores in one block) cost it a third of a second, a
# quarter of LeNet's optimization time.  With no walk it removed no store the walk did: the
# example models' objects are byte for byte the same.
LLVM_OPTIONS = ("-dse-memoryssa-walklimit=0",)

_initialized = False


def initialize() -> None:
    global _initialized
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        for option in LLVM_OPTIONS:
            llvm.set_option("graphc", option)
        _initialized = True


def target_machine(cpu: str, features: str, codegen_level: int = 3):
    initialize()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu, features=features, opt=codegen_level, reloc="pic",
                                        codemodel="jitdefault")


def parse(text: str, machine):
    initialize()
    module_ref = llvm.parse_assembly(text)
    module_ref.triple = machine.triple
    module_ref.data_layout = str(machine.target_data)
    module_ref.verify()
    return module_ref


def optimize(module_ref, machine, pipeline: dict) -> None:
    """Run the optimization ``pipeline`` (``jit.PIPELINE``'s options) over ``module_ref`` in place;
    a speed level of 0 runs nothing."""
    if not pipeline["speed_level"]:
        return
    tuning = llvm.create_pipeline_tuning_options(speed_level=pipeline["speed_level"])
    tuning.loop_vectorization = pipeline["loop_vectorization"]
    tuning.slp_vectorization = pipeline["slp_vectorization"]
    tuning.loop_interleaving = pipeline["loop_interleaving"]
    tuning.loop_unrolling = pipeline["loop_unrolling"]
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module_ref, builder)


class WorkQueue:
    """The numbers 0..count-1, taken one at a time by this process and its forked workers, each
    number by one of them: a pipe holding them all, each process reading four bytes at a time
    (a read from a pipe is whole), until it is empty."""

    def __init__(self, count: int):
        self.read_end, write_end = os.pipe()
        os.write(write_end, b"".join(number.to_bytes(4, "little") for number in range(count)))
        os.close(write_end)

    def take(self) -> int | None:
        data = os.read(self.read_end, 4)
        return int.from_bytes(data, "little") if data else None

    def close(self) -> None:
        os.close(self.read_end)


# Renders part ``i`` of a program as modules: their LLVM IR and the pipeline each is compiled with.
RenderPart = Callable[[int], list[tuple[str, dict]]]


def compile_parts(queue: WorkQueue, render: RenderPart, cpu: str, features: str,
                  phase: Callable[[str], ContextManager]) -> dict[int, list[bytes]]:
    """Render and compile the parts this process takes from ``queue`` until it is empty: their
    object code by part.  ``phase(name)`` times each step (rendering, optimizing, emitting)."""
    objects = {}
    while (part := queue.take()) is not None:
        with phase("rendering LLVM IR"):
            modules = render(part)
        objects[part] = []
        for text, pipeline in modules:
            machine = target_machine(cpu, features, pipeline["codegen_level"])
            with phase("LLVM optimization"):
                module_ref = parse(text, machine)
                optimize(module_ref, machine, pipeline)
            with phase("machine code generation"):
                objects[part].append(machine.emit_object(module_ref))
    return objects


class WorkerProcess:
    """A fork of this process that takes parts from ``queue`` and compiles them as
    ``compile_parts`` does; ``receive`` waits for its object code."""

    def __init__(self, queue: WorkQueue, render: RenderPart, cpu: str, features: str):
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read_end)
            _work(write_end, queue, render, cpu, features)      # never returns
        os.close(write_end)
        self.answer = os.fdopen(read_end, "rb")
        self.finished = False

    def receive(self) -> tuple[dict[int, list[bytes]], dict[str, float]]:
        """The objects compiled, by part, and the CPU seconds the worker spent per phase (rendering,
        optimizing, emitting); a RuntimeError with the worker's message if it failed."""
        data = self.answer.read()
        status = os.waitpid(self.pid, 0)[1]
        self.finished = True
        if status != 0:
            raise RuntimeError(data.decode(errors="replace").strip() or
                               f"an LLVM worker process ended with status {status}")
        header_end = data.index(b"\n")
        header = json.loads(data[:header_end])
        objects, position = {}, header_end + 1
        for part, lengths in header["lengths"].items():
            objects[int(part)] = []
            for length in lengths:
                objects[int(part)].append(data[position:position + length])
                position += length
        return objects, header["seconds"]

    def close(self) -> None:
        if not self.finished:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.finished = True
        self.answer.close()


def _work(write_end: int, queue: WorkQueue, render: RenderPart, cpu: str, features: str):
    """A worker's whole life: compile parts, write the answer, exit (never into the caller's code:
    ``os._exit`` runs no exit handler and flushes none of the parent's buffered output)."""
    status = 1
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(name: str):                 # CPU seconds: what the compile's record says of workers
        start = time.process_time()
        yield
        seconds[name] = seconds.get(name, 0.0) + time.process_time() - start

    try:
        objects = compile_parts(queue, render, cpu, features, phase)
        header = {"lengths": {part: [len(o) for o in codes] for part, codes in objects.items()}, "seconds": seconds}
        answer = json.dumps(header).encode() + b"\n" + b"".join(o for codes in objects.values() for o in codes)
        status = 0
    except BaseException as err:          # reported by the parent; nothing may escape into its code
        answer = f"{type(err).__name__}: {err}".encode()
    try:
        with os.fdopen(write_end, "wb") as stream:
            stream.write(answer)
    finally:
        os._exit(status)
