"""Optimize LLVM modules and emit their object code: in this process, or in a worker process.

llvmlite holds one global lock around every call into LLVM, so threads cannot
compile modules side by side; processes can.  This file imports nothing but
llvmlite, so a worker starts in a tenth of a second: ``jit.compile_modules``
runs it as a script (``python worker.py`` through ``WORKER_COMMAND``), writes
a job to its standard input and reads the object code from its standard output.

A job is a JSON line (the target CPU and features, the pipeline options) followed
by the modules' LLVM IR, each as an 8-byte length and UTF-8 text.  The answer is
a JSON line (each object's length, the seconds spent optimizing and emitting)
followed by the objects.  A module LLVM rejects ends the worker with status 1
and LLVM's message on standard error.
"""
from __future__ import annotations

import json
import sys
import time

import llvmlite.binding as llvm

# Runs this file as a script without putting its folder (which holds modules named like the
# standard library's) on sys.path.
WORKER_COMMAND = "import runpy, sys; sys.path.pop(0); runpy.run_path(sys.argv[1], run_name='__main__')"

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


def write_job(stream, texts: list[str], cpu: str, features: str, pipelines: list[dict]) -> None:
    stream.write(json.dumps({"cpu": cpu, "features": features, "pipelines": pipelines}).encode() + b"\n")
    for text in texts:
        data = text.encode()
        stream.write(len(data).to_bytes(8, "little") + data)
    stream.close()


def read_answer(data: bytes) -> tuple[list[bytes], float, float]:
    """The objects of a worker's answer, and its seconds optimizing and emitting."""
    header_end = data.index(b"\n")
    header = json.loads(data[:header_end])
    objects, position = [], header_end + 1
    for length in header["lengths"]:
        objects.append(data[position:position + length])
        position += length
    return objects, header["optimize"], header["emit"]


def _main() -> int:
    stdin = sys.stdin.buffer
    job = json.loads(stdin.readline())
    # Every module is read before any is compiled: the sender is not kept waiting on a full pipe.
    texts = []
    for _ in job["pipelines"]:
        length = int.from_bytes(stdin.read(8), "little")
        texts.append(stdin.read(length).decode())
    objects, optimizing, emitting = [], 0.0, 0.0
    for text, pipeline in zip(texts, job["pipelines"]):
        try:
            object_code, optimize_seconds, emit_seconds = compile_text(text, job["cpu"], job["features"], pipeline)
        except RuntimeError as err:
            print(str(err), file=sys.stderr)
            return 1
        objects.append(object_code)
        optimizing += optimize_seconds
        emitting += emit_seconds
    header = {"lengths": [len(o) for o in objects], "optimize": optimizing, "emit": emitting}
    sys.stdout.buffer.write(json.dumps(header).encode() + b"\n" + b"".join(objects))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
