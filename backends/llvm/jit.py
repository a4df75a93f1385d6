"""LLVM for the host: the target machine, the optimization pipelines, object code, loading.

Code is generated for the CPU this process runs on (its name and features,
so AVX-512 where the machine has it).  Kernels are optimized at O3 with loop
vectorization through llvmlite's new pass manager (``PIPELINE``); the module holding
the entry (straight-line calls, run once per step) is emitted unoptimized,
which takes a hundredth of the time.  A program's modules are rendered and compiled
side by side: some in this process, the rest in forked workers (``worker.py``); their
object code (what the compile cache stores) is loaded one object per MCJIT
engine, the entry's calls bound to the kernels' runners by name.
"""
from __future__ import annotations

import functools
import json
import os
import threading

import llvmlite
import llvmlite.binding as llvm
import llvmlite.ir as ir

from graphc.kernel.ir import Accumulator, Kernel, Local, walk_statements
from graphc.kernel.target import AVX2, AVX512, VectorTarget

from .. import cache
from . import worker
from .counts import count_from_environment

# How kernels are optimized, and the module with the entry; all three are part of the compile
# cache's key, so a change here recompiles.  LLVM unrolls the inner loops of reductions,
# contractions and windows (the ResNet step ran twice as slow without), but unrolling doubles
# the time LLVM takes, and buys nothing for kernels that are one vectorized loop over their
# elements: those (``kernel_pipeline``) are not unrolled.  No SLP vectorizer: the renderer
# writes vectorized loops as vector instructions already, and what SLP was left to try were
# gathers (a transposing copy reads 64 lanes one by one), on which it spent up to 0.4 s a
# kernel for nothing: without it, ResNet's and the DCGAN's LLVM time fell by 30%, and their
# steps, by profile, ran in the same time.
PIPELINE = {"speed_level": 3, "loop_vectorization": True, "slp_vectorization": False, "loop_interleaving": True,
            "loop_unrolling": True, "codegen_level": 3}
LOOP_PIPELINE = {**PIPELINE, "loop_unrolling": False}
ENTRY_PIPELINE = {**PIPELINE, "speed_level": 0, "codegen_level": 0}


def kernel_pipeline(kernel: Kernel) -> dict:
    """``PIPELINE`` for a kernel that accumulates (a reduction, contraction or window: inner
    loops LLVM unrolls), else ``LOOP_PIPELINE``."""
    accumulates = any(isinstance(stmt, (Accumulator, Local)) for stmt in walk_statements(kernel.body))
    return PIPELINE if accumulates else LOOP_PIPELINE


@functools.lru_cache(maxsize=None)
def host() -> tuple[str, str]:
    """The host CPU's name and its feature string (``+avx2,+fma,...``).

    ``GRAPHC_ISA=avx2`` turns the AVX-512 features off, so an AVX-512 machine generates (and
    tests) the code an AVX2 machine would run."""
    worker.initialize()
    features = llvm.get_host_cpu_features().flatten()
    if os.environ.get("GRAPHC_ISA", "").lower() == "avx2":
        features = ",".join("-" + f[1:] if f.startswith("+avx512") else f for f in features.split(","))
    return llvm.get_host_cpu_name(), features


def vector_target() -> VectorTarget:
    """The vector registers code for the host has: their width and count shape register tiles."""
    return AVX512 if "+avx512f" in host()[1].split(",") else AVX2


def target_machine(codegen_level: int = PIPELINE["codegen_level"]):
    cpu, features = host()
    return worker.target_machine(cpu, features, codegen_level)


def compile_jobs() -> int:
    """How many processes compile one program's modules: the CPUs this process may use
    (``GRAPHC_COMPILE_JOBS`` sets it; 1 compiles everything in this process, as it is where
    processes cannot fork)."""
    jobs = count_from_environment("GRAPHC_COMPILE_JOBS", "processes")
    return jobs if hasattr(os, "fork") else 1


# Loading binds names in the process's symbol table; one program at a time.
_loading = threading.Lock()


def load_objects(objects: list[bytes], names: list[str]):
    """Engines holding ``objects``, and the addresses of ``names`` in them.

    Each object is loaded into an engine of its own: in one engine, MCJIT mislinks the
    constants of every position-independent object but the first (its kernels crashed),
    and code that is not position-independent ran up to twice slower.  So the first object
    (the entry) is loaded last, after each function ``names`` asks for from the others has
    been bound by name in the process's symbol table, which is where the entry's calls find
    them.  A later program binding the same names does not change an entry already loaded.
    """
    worker.initialize()
    engines, addresses = [], {}
    with _loading:
        for object_code in [*objects[1:], objects[0]]:
            # An engine owns (and frees) the target machine it is given: one each.
            engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
            engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
            engine.finalize_object()
            engines.append(engine)
            for name in names:
                address = engine.get_function_address(name)
                if address and name not in addresses:
                    addresses[name] = address
                    llvm.add_symbol(name, address)
    missing = [name for name in names if name not in addresses]
    if missing:
        raise RuntimeError(f"the object code has no function {', '.join(missing)}")
    return engines, addresses


def load_object(object_code: bytes, names: list[str]):
    """An execution engine holding ``object_code``, and the addresses of ``names`` in it."""
    return load_objects([object_code], names)


class FunctionPointer:
    """A function pointer that ``IRBuilder.call`` can call: opaque pointers carry no function
    type, so this supplies it."""

    def __init__(self, pointer, function_type: ir.FunctionType):
        self.pointer = pointer
        self.type = ir.PointerType()
        self.function_type = function_type

    def get_reference(self):
        return self.pointer.get_reference()


def optimized_module(module: "ir.Module | str"):
    """``module`` parsed and optimized for the host with ``PIPELINE``: (target machine, module ref)."""
    machine = target_machine()
    module_ref = worker.parse(str(module), machine)
    worker.optimize(module_ref, machine, PIPELINE)
    return machine, module_ref


def compile_module(module: ir.Module, names: list[str], label: str):
    """Optimize ``module`` for the host (or find it in the compile cache, as ``label``) and load
    it: (engine, {name: address})."""
    text = str(module)
    key = cache.cache_key("llvm module", text, *host(), json.dumps(PIPELINE, sort_keys=True), cache.code_version(),
                          llvmlite.__version__)
    object_code = cache.load("llvm", key)
    if object_code is None:
        machine, module_ref = optimized_module(text)
        object_code = machine.emit_object(module_ref)
        cache.store("llvm", key, object_code, label=label)
    return load_object(object_code, names)
