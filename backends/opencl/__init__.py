"""The OpenCL backend: kernel IR rendered to OpenCL C, built for an OpenCL device, run there.

``build_executable(graph, plan)`` lowers the planned graph to the same kernel-IR
program the LLVM backend runs (same fusion, same schedules), renders it as one
OpenCL C program, finds the device's binary for it in graphc's compile cache or
builds it, and returns an ``OpenCLExecutable``.  ``devices`` chooses the device.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace

from graphc.errors import BackendError
from graphc.ir.graph import Graph
from graphc.kernel import lower_program, print_program
from graphc.kernel.serialize import StoredProgramError, encode, program_from_data

from .. import cache
from .devices import Runtime, available, list_devices, runtime
from .executable import OpenCLExecutable
from .render import PRELUDE, KernelSource, ProgramSource, render_program

__all__ = ["available", "build_executable", "build_executables", "list_devices", "runtime"]

# Division and square roots rounded as the reference rounds them, where the device offers it.
CORRECT_ROUNDING = "-cl-fp32-correctly-rounded-divide-sqrt"
# Generated code draws compiler warnings (`x && true`) that say nothing to a user.
NO_WARNINGS = "-w"


class OpenCLSource:
    """What a compiled graph is at each stage, for dumps: kernel IR and OpenCL C."""

    def __init__(self, program, source: ProgramSource):
        self.program = program
        self.rendered = source

    def files(self, stages=None) -> dict[str, str]:
        files = {}
        if stages is None or "kernels" in stages:
            files["kernels.kir"] = print_program(self.program)
        if stages is None or "opencl" in stages:
            files["opencl.cl"] = self.rendered.text
        return files


def build_options(rt: Runtime) -> str:
    import pyopencl as cl
    correctly_rounded = rt.device.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT
    return f"{NO_WARNINGS} {CORRECT_ROUNDING}" if correctly_rounded else NO_WARNINGS


def _cache_key(text: str, rt: Runtime, options: str) -> str:
    """What determines a binary: the source (the whole of graphc's part in it), the device and its
    driver, the build options, and pyopencl's version."""
    import pyopencl
    return cache.cache_key("opencl program", text, rt.identity, options, pyopencl.VERSION_TEXT)


def build_program(text: str, rt: Runtime, name: str):
    """The built ``pyopencl.Program`` for ``text``: from the cached binary where there is one.

    Binaries live in graphc's compile cache (kind ``opencl``: its folder, size limit,
    ``graphc cache info`` and ``clear``), on devices where they are worth keeping."""
    import pyopencl as cl
    options = build_options(rt)
    key = _cache_key(text, rt, options)
    binary = cache.load("opencl", key) if rt.binaries_worth_caching else None
    if binary is not None:
        try:
            return _build(cl.Program(rt.context, [rt.device], [binary]), options)
        except cl.Error:            # a binary the driver no longer takes: build from source
            warnings.warn(f"graphc: the cached OpenCL binary of {name} did not load; building it again",
                          RuntimeWarning, stacklevel=3)
    try:
        program = _build(cl.Program(rt.context, text), options)
    except cl.Error as err:
        log = "\n".join(line for line in str(err).splitlines() if re.search(r"error", line, re.I))[:2000]
        raise BackendError(f"OpenCL could not build graph {name} on {rt.info.label}:\n{log}") from None
    if rt.binaries_worth_caching:
        cache.store("opencl", key, program.binaries[0], label=f"{name} (OpenCL, {rt.info.name})")
    return program


def _build(program, options: str):
    import pyopencl as cl
    with warnings.catch_warnings():           # a build log with nothing wrong in it
        warnings.simplefilter("ignore", cl.CompilerWarning)
        return program.build(options, cache_dir=False)


def build_executable(graph: Graph, plan) -> OpenCLExecutable:
    return build_executables([(graph, plan)])[0]


def cache_identity() -> str:
    """What besides the program decides a compiled step here: the device and its driver, graphc's
    code and pyopencl's version (for graphc.compile's cache of whole steps)."""
    import pyopencl
    return json.dumps({"backend": "opencl", "device": runtime().identity, "graphc": cache.code_version(),
                       "pyopencl": pyopencl.VERSION_TEXT}, sort_keys=True)


def save_executable(executable: OpenCLExecutable) -> bytes:
    """What ``load_executable`` needs to make ``executable`` again: its program as data (the
    binary is in the cache already, under its source)."""
    return json.dumps({"program": encode(executable.program)}).encode()


def load_executable(graph: Graph, data: bytes) -> OpenCLExecutable:
    """The executable ``save_executable`` described in ``data``, running ``graph`` (a graph with the
    signature it was built for): rendered again (cheap), its binary from the cache where it is."""
    try:
        program = program_from_data(json.loads(data)["program"])
    except (ValueError, KeyError, TypeError) as err:
        raise StoredProgramError(f"not a stored OpenCL executable ({err})") from None
    return _executables([(graph, program)])[0]


def build_executables(graphs: list) -> list[OpenCLExecutable]:
    """Executables for several (graph, plan) pairs, built as one OpenCL program.

    A device compiler pays for each program and for each kernel (PoCL about 0.1 s a kernel):
    the op suite's many small graphs share one program per batch this way, and a kernel that
    several graphs have (the same code) is compiled once."""
    return _executables([(graph, lower_program(graph, plan)) for graph, plan in graphs])


def _executables(graphs: list) -> list[OpenCLExecutable]:
    """Executables for (graph, kernel-IR program) pairs, built as one OpenCL program."""
    rt = runtime()
    programs = [program for _, program in graphs]
    prefixed = len(programs) > 1
    sources = [render_program(program, rt.limits, f"g{i}_" if prefixed else "") for i, program in enumerate(programs)]
    # A function another graph of the batch already has (same code, another name) is compiled once.
    functions: dict[str, KernelSource] = {}
    calls = []
    for source in sources:
        calls.append([])
        for kernel in source.kernels:
            key = kernel.text.replace(kernel.function, "", 1)
            first = functions.setdefault(key, kernel)
            calls[-1].append(replace(kernel, function=first.function))
    text = PRELUDE + "\n" + "\n".join(kernel.text for kernel in functions.values())
    cl_program = build_program(text, rt, ", ".join(graph.name for graph, _ in graphs))
    return [OpenCLExecutable(graph, program, rt, cl_program, kernels, source.status_bytes, OpenCLSource(program, source))
            for (graph, _), program, source, kernels in zip(graphs, programs, sources, calls)]
