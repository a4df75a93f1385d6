"""Backends by name.  Each turns a verified Graph into an executable with ``run(arrays) -> RunResult``."""
from __future__ import annotations

from graphc.errors import BackendError


def get_backend(name: str):
    """The backend module called ``name``; it provides ``build_executable(graph)``."""
    if name == "reference":
        from . import reference
        return reference
    if name == "llvm":
        from . import llvm
        return llvm
    if name == "opencl":
        from . import opencl
        return opencl
    raise BackendError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")


def available_backends() -> list[str]:
    """The backends this machine can run, fastest first (OpenCL where a device builds kernels)."""
    from .opencl import devices
    return ["llvm", *(["opencl"] if devices.available() else []), "reference"]
