"""LLVM for the host: the target machine, the optimization pipeline, object code, loading.

Code is generated for the CPU this process runs on (its name and features,
so AVX-512 where the machine has it).  Modules are optimized at O3 with loop
and SLP vectorization through llvmlite's new pass manager, turned into object
code (what the compile cache stores) and loaded into an MCJIT engine.
"""
from __future__ import annotations

import functools
import os

import llvmlite.binding as llvm
import llvmlite.ir as ir

from graphc.kernel.target import AVX2, AVX512, VectorTarget


@functools.lru_cache(maxsize=None)
def _initialized() -> bool:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return True


@functools.lru_cache(maxsize=None)
def host() -> tuple[str, str]:
    """The host CPU's name and its feature string (``+avx2,+fma,...``).

    ``GRAPHC_ISA=avx2`` turns the AVX-512 features off, so an AVX-512 machine generates (and
    tests) the code an AVX2 machine would run."""
    _initialized()
    features = llvm.get_host_cpu_features().flatten()
    if os.environ.get("GRAPHC_ISA", "").lower() == "avx2":
        features = ",".join("-" + f[1:] if f.startswith("+avx512") else f for f in features.split(","))
    return llvm.get_host_cpu_name(), features


def vector_target() -> VectorTarget:
    """The vector registers code for the host has: their width and count shape register tiles."""
    return AVX512 if "+avx512f" in host()[1].split(",") else AVX2


def target_machine(cpu: str | None = None, features: str | None = None):
    _initialized()
    host_cpu, host_features = host()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu or host_cpu, features=host_features if features is None else features,
                                        opt=3, reloc="pic", codemodel="jitdefault")


# How modules are optimized; part of the compile cache's key, so a change here recompiles.
PIPELINE = {"speed_level": 3, "loop_vectorization": True, "slp_vectorization": True, "loop_interleaving": True}


def optimize(module_ref, machine) -> None:
    """Run the ``PIPELINE`` over ``module_ref`` in place."""
    tuning = llvm.create_pipeline_tuning_options(speed_level=PIPELINE["speed_level"])
    tuning.loop_vectorization = PIPELINE["loop_vectorization"]
    tuning.slp_vectorization = PIPELINE["slp_vectorization"]
    tuning.loop_interleaving = PIPELINE["loop_interleaving"]
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module_ref, builder)


def parse(module: "ir.Module | str", machine):
    _initialized()
    module_ref = llvm.parse_assembly(str(module))
    module_ref.triple = machine.triple
    module_ref.data_layout = str(machine.target_data)
    module_ref.verify()
    return module_ref


def load_object(object_code: bytes, names: list[str]):
    """An execution engine holding ``object_code``, and the addresses of ``names`` in it."""
    _initialized()
    machine = target_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
    engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
    engine.finalize_object()
    addresses = {name: engine.get_function_address(name) for name in names}
    missing = [name for name, address in addresses.items() if not address]
    if missing:
        raise RuntimeError(f"the object code has no function {', '.join(missing)}")
    return engine, addresses


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
    """``module`` parsed and optimized for the host: (target machine, module ref)."""
    machine = target_machine()
    module_ref = parse(module, machine)
    optimize(module_ref, machine)
    return machine, module_ref


def compile_module(module: ir.Module, names: list[str]):
    """Optimize ``module`` for the host and load it: (engine, {name: address})."""
    machine, module_ref = optimized_module(module)
    return load_object(machine.emit_object(module_ref), names)
