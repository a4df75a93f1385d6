"""OpenCL platforms and devices: which ones there are, which one graphc runs on.

A device is usable when a small test kernel (float, double and long arithmetic,
the types graphc's kernels use) builds and runs on it and gives the right
answer.  That is worth checking rather than assuming: the PoCL that pyopencl's
wheel bundles lists a device on some CPUs but cannot build any kernel there
("unknown target CPU 'generic'"), while Debian's ``pocl-opencl-icd`` on the very
same machine works.

graphc runs on the first usable device in the order ``graphc devices`` lists
them, or on the one ``GRAPHC_OPENCL_DEVICE`` names: its number in that list, or
part of its name or its platform's name (``GRAPHC_OPENCL_DEVICE=nvidia``).  One
``Runtime`` per device and process holds the context and the in-order queue
every executable on that device shares, so state one compiled step leaves on
the device is there for the next.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from graphc.errors import BackendError

from .groups import DeviceLimits

ENVIRONMENT_VARIABLE = "GRAPHC_OPENCL_DEVICE"
INSTALL_HINT = ("On Debian or Ubuntu, `apt-get install pocl-opencl-icd` gives a CPU device "
                "(PoCL); a GPU's driver brings its own OpenCL platform.")

POCL_PLATFORM = "Portable Computing Language"

TEST_KERNEL = """
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
__kernel void graphc_probe(__global float* x, __global double* y, __global long* z) {
    const long g = get_global_id(0);
    x[g] = x[g] * 2.0f + 1.0f;
    y[g] = sqrt(y[g]);
    z[g] = z[g] * 3L - (long)g;
}
"""


@dataclass(frozen=True)
class DeviceInfo:
    """One OpenCL device as ``graphc devices`` shows it, and whether graphc can use it."""
    index: int
    platform: str
    driver: str                # the driver's version (PoCL's own and pyopencl's bundled one differ here)
    name: str
    type: str                  # CPU, GPU, accelerator
    compute_units: int
    memory_bytes: int
    max_work_group_size: int
    usable: bool
    problem: str               # why it is not usable ("" when it is)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.platform} {self.driver})"


@dataclass
class Runtime:
    """The device graphc runs on, its context, and the in-order queue every step is enqueued on."""
    info: DeviceInfo
    device: object            # pyopencl.Device
    context: object           # pyopencl.Context
    queue: object             # pyopencl.CommandQueue (in order, with profiling)

    @property
    def identity(self) -> str:
        """What determines the code this device's compiler makes: part of the compile cache's key."""
        d = self.device
        return "\0".join((d.platform.name, d.platform.version, d.name, d.version, d.driver_version))

    @property
    def limits(self) -> DeviceLimits:
        """What the renderer shapes work-groups by."""
        d = self.device
        dedicated = d.local_mem_type == _cl().device_local_mem_type.LOCAL
        return DeviceLimits(int(d.max_work_group_size), int(d.local_mem_size), dedicated, int(d.max_compute_units),
                            int(d.preferred_vector_width_float))

    @property
    def binaries_worth_caching(self) -> bool:
        """Whether storing this device's program binaries saves time on a later build.  Not on PoCL:
        it makes a binary by compiling every kernel of the program again (100 kernels: 5.5-9.9 s,
        measured) while a build from source takes 0.5 s, it compiles each kernel again anyway for
        the work-group size it first runs with, and it keeps those in a cache of its own
        (``POCL_CACHE_DIR``)."""
        return POCL_PLATFORM not in self.device.platform.name


def _cl():
    try:
        import pyopencl
    except ImportError as err:             # pragma: no cover - pyopencl is a dependency
        raise BackendError(f"the OpenCL backend needs pyopencl ({err}); pip install pyopencl") from None
    return pyopencl


def _type_name(cl, device) -> str:
    kinds = [("GPU", cl.device_type.GPU), ("CPU", cl.device_type.CPU), ("accelerator", cl.device_type.ACCELERATOR)]
    return next((name for name, bit in kinds if device.type & bit), "other")


def _probe(cl, device) -> str:
    """"" when the test kernel builds and computes the right answer on ``device``, else why not."""
    try:
        context = cl.Context([device])
        queue = cl.CommandQueue(context)
        program = cl.Program(context, TEST_KERNEL).build()
        x = np.arange(8, dtype=np.float32)
        y = np.arange(8, dtype=np.float64) ** 2
        z = np.arange(8, dtype=np.int64) << 40
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
        buffers = [cl.Buffer(context, flags, hostbuf=a) for a in (x, y, z)]
        program.graphc_probe(queue, (8,), None, *buffers)
        got = [np.empty_like(a) for a in (x, y, z)]
        for host, buffer in zip(got, buffers):
            cl.enqueue_copy(queue, host, buffer)
        queue.finish()
    except Exception as err:               # any failure to build or run means: not usable
        return f"the test kernel failed to build or run: {_first_error(str(err))}"
    want = (x * 2 + 1, np.sqrt(y), z * 3 - np.arange(8))
    if not all(np.array_equal(g, w) for g, w in zip(got, want)):
        return "the test kernel ran but computed wrong values"
    return ""


def _first_error(text: str) -> str:
    """The compiler's first error line in a pyopencl error (the line people need), else its first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if line.lower().startswith("error")), lines[0] if lines else "unknown error")


@functools.lru_cache(maxsize=None)
def _devices() -> tuple[tuple[DeviceInfo, object], ...]:
    cl = _cl()
    try:
        platforms = cl.get_platforms()
    except Exception:                      # no ICD loader configuration at all
        platforms = []
    found = []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except Exception:
            continue
        for device in devices:
            problem = _probe(cl, device)
            info = DeviceInfo(len(found), platform.name.strip(), device.driver_version.strip(), device.name.strip(),
                              _type_name(cl, device),
                              int(device.max_compute_units), int(device.global_mem_size),
                              int(device.max_work_group_size), not problem, problem)
            found.append((info, device))
    return tuple(found)


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device of every platform, each probed with the test kernel."""
    return [info for info, _ in _devices()]


def _describe(devices: list[DeviceInfo]) -> str:
    if not devices:
        return "no OpenCL platform lists a device"
    return "; ".join(f"{d.index}: {d.label}: " + ("usable" if d.usable else d.problem) for d in devices)


def choose_device() -> tuple[DeviceInfo, object]:
    """The device ``GRAPHC_OPENCL_DEVICE`` names, else the first usable one."""
    found = _devices()
    infos = [info for info, _ in found]
    wanted = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if wanted:
        if wanted.isdigit():
            matches = [pair for pair in found if pair[0].index == int(wanted)]
        else:
            matches = [pair for pair in found if wanted.lower() in pair[0].label.lower()]
        if not matches:
            raise BackendError(f"{ENVIRONMENT_VARIABLE}={wanted!r} names no OpenCL device; there are: "
                               f"{_describe(infos)}")
        usable = [pair for pair in matches if pair[0].usable]
        if not usable:
            raise BackendError(f"{ENVIRONMENT_VARIABLE}={wanted!r}: {_describe([m[0] for m in matches])}")
        return usable[0]
    for pair in found:
        if pair[0].usable:
            return pair
    raise BackendError(f"no OpenCL device can run graphc's kernels ({_describe(infos)}). {INSTALL_HINT}")


@functools.lru_cache(maxsize=None)
def _runtime_for(index: int) -> Runtime:
    cl = _cl()
    info, device = next(pair for pair in _devices() if pair[0].index == index)
    context = cl.Context([device])
    queue = cl.CommandQueue(context, properties=cl.command_queue_properties.PROFILING_ENABLE)
    return Runtime(info, device, context, queue)


def runtime() -> Runtime:
    """The runtime of the device graphc runs on (chosen once per process and setting)."""
    info, _ = choose_device()
    return _runtime_for(info.index)


def available() -> bool:
    """Whether some OpenCL device can run graphc's kernels."""
    try:
        choose_device()
    except BackendError:
        return False
    return True
