"""Optimize LLVM modules and emit their object code: in this process, or in a forked worker.

llvmlite holds one global lock around every call into LLVM, so threads cannot
compile modules side by side; processes can.  A ``WorkerProcess`` is a fork of
this process: it starts in milliseconds with everything already imported and
the program already lowered, so it renders its own share of the program's
modules (rendering is Python, a quarter of a cold compile, and would otherwise
all happen here while the worker waits) and compiles them.  Its object code
comes back through a pipe: a JSON line (each object's length, the seconds spent
rendering, optimizing and emitting) followed by the objects.  A module LLVM
rejects, or any other failure, ends the worker with status 1 and a message
in place of the answer.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Callable

import llvmlite.binding as llvm

_initialized = False


def initialize() -> None:
    global _initialized
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
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


def compile_text(text: str, cpu: str, features: str, pipeline: dict) -> tuple[bytes, float, float]:
    """Object code for the module ``text``, and the seconds spent optimizing and emitting it."""
    machine = target_machine(cpu, features, pipeline["codegen_level"])
    start = time.perf_counter()
    module_ref = parse(text, machine)
    optimize(module_ref, machine, pipeline)
    optimized = time.perf_counter()
    object_code = machine.emit_object(module_ref)
    return object_code, optimized - start, time.perf_counter() - optimized


class WorkerProcess:
    """A fork of this process that renders modules (``render()``, run in the fork) and compiles
    them, module ``i`` with ``pipelines[i]``; ``receive`` waits for its object code."""

    def __init__(self, render: Callable[[], list[str]], pipelines: list[dict], cpu: str, features: str):
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read_end)
            _work(write_end, render, pipelines, cpu, features)      # never returns
        os.close(write_end)
        self.answer = os.fdopen(read_end, "rb")
        self.finished = False

    def receive(self) -> tuple[list[bytes], dict[str, float]]:
        """The objects compiled and the seconds the worker spent per phase (rendering, optimizing,
        emitting); a RuntimeError with the worker's message if it failed."""
        data = self.answer.read()
        status = os.waitpid(self.pid, 0)[1]
        self.finished = True
        if status != 0:
            raise RuntimeError(data.decode(errors="replace").strip() or
                               f"an LLVM worker process ended with status {status}")
        header_end = data.index(b"\n")
        header = json.loads(data[:header_end])
        objects, position = [], header_end + 1
        for length in header["lengths"]:
            objects.append(data[position:position + length])
            position += length
        return objects, header["seconds"]

    def close(self) -> None:
        if not self.finished:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.finished = True
        self.answer.close()


def _work(write_end: int, render: Callable[[], list[str]], pipelines: list[dict], cpu: str, features: str):
    """A worker's whole life: render, compile, write the answer, exit (never into the caller's code:
    ``os._exit`` runs no exit handler and flushes none of the parent's buffered output)."""
    status = 1
    try:
        start = time.perf_counter()
        texts = render()
        seconds = {"rendering LLVM IR": time.perf_counter() - start, "LLVM optimization": 0.0,
                   "machine code generation": 0.0}
        objects = []
        for text, pipeline in zip(texts, pipelines):
            object_code, optimizing, emitting = compile_text(text, cpu, features, pipeline)
            objects.append(object_code)
            seconds["LLVM optimization"] += optimizing
            seconds["machine code generation"] += emitting
        header = {"lengths": [len(o) for o in objects], "seconds": seconds}
        answer = json.dumps(header).encode() + b"\n" + b"".join(objects)
        status = 0
    except BaseException as err:          # reported by the parent; nothing may escape into its code
        answer = f"{type(err).__name__}: {err}".encode()
    try:
        with os.fdopen(write_end, "wb") as stream:
            stream.write(answer)
    finally:
        os._exit(status)
