"""The LLVM backend: kernel IR rendered to LLVM IR, compiled for the host CPU, run natively.

``build_executable(graph, plan)`` lowers the planned graph to a kernel-IR
program, finds its object code in the compile cache or compiles it (render,
optimize at O3, emit), loads it and returns an ``LLVMExecutable`` whose every
run is one native call.
"""
from __future__ import annotations

import functools

from graphc.errors import BackendError
from graphc.ir.graph import Graph
from graphc.kernel import lower_program, print_program

from . import cache
from .executable import LLVMExecutable
from .jit import PIPELINE, host, load_object, optimized_module, vector_target
from .render import kernel_function_name, render_program
from .threads import pool


class ProgramSource:
    """The stages of one program's code, rendered on request: kernel IR before and after
    scheduling, LLVM IR before and after optimization, and assembly."""

    def __init__(self, program, threads: int, unscheduled=None):
        self.program = program
        self.threads = threads
        self.unscheduled = unscheduled

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
    def _optimized(self):
        """Optimized once, whether the LLVM IR, the assembly or both are asked for."""
        return optimized_module(self.llvm_ir())


def compile_program(program, threads: int) -> bytes:
    """Object code for ``program``, from the cache or compiled now."""
    cpu, features = host()
    text = print_program(program)
    constants = [b.data.tobytes() for b in program.buffers.values() if b.place == "constant"]
    key = cache.cache_key(text, constants, threads, cpu, features, repr(sorted(PIPELINE.items())))
    object_code = cache.load(key)
    if object_code is None:
        try:
            machine, module = optimized_module(render_program(program, threads))
            object_code = machine.emit_object(module)
        except RuntimeError as err:
            raise BackendError(f"LLVM could not compile graph {program.name}: {str(err).splitlines()[0]}") from None
        cache.store(key, object_code)
    return object_code


def build_executable(graph: Graph, plan) -> LLVMExecutable:
    program = lower_program(graph, plan, target=vector_target())
    threads = pool().threads
    names = ["graphc_entry", "graphc_buffers", *(kernel_function_name(k) for k in program.kernels)]
    engine, addresses = load_object(compile_program(program, threads), names)
    source = ProgramSource(program, threads, unscheduled=lambda: lower_program(graph, plan, schedule=False,
                                                                                      target=vector_target()))
    return LLVMExecutable(graph, program, engine, addresses, pool().parallel_for, source)
