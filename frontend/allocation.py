"""Checks before a tensor is allocated: a size that cannot be is refused with the shape and the user's line.

numpy asked for a tensor larger than memory either fails with its own
MemoryError or, where the system overcommits, succeeds lazily and the
process is killed later; PyTorch refuses at once.  So does graphc.
"""
from __future__ import annotations

import math
import os

from graphc.errors import OutOfMemoryError, ShapeError

from .context import error_context


def check_allocation(function: str, shape: tuple[int, ...], dtype) -> None:
    """Refuse a tensor of ``shape`` and ``dtype`` that has a negative size or would not fit in memory."""
    if any(size < 0 for size in shape):
        raise ShapeError(f"{function}: negative size in shape {list(shape)}; sizes are 0 or more" + error_context())
    needed = math.prod(shape) * dtype.itemsize
    available = physical_memory_bytes()
    if available is not None and needed > available:
        raise OutOfMemoryError(f"{function}: a {dtype.name} tensor of shape {list(shape)} needs {format_size(needed)}, "
                               f"more than this machine's {format_size(available)} of memory" + error_context())


def physical_memory_bytes() -> int | None:
    """This machine's physical memory, where the system says (POSIX); None elsewhere."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_size(count: int) -> str:
    """``512 B``, ``1.5 GiB``, ``320.0 PiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
