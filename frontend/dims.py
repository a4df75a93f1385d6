"""Dimension arguments, checked as PyTorch checks them: ``dim`` in [-rank, rank), negative from the end."""
from __future__ import annotations

from graphc.errors import OutOfRangeError

from .context import error_context


def wrap_dim(dim: int, rank: int, function: str, shape=None, extra: int = 0) -> int:
    """``dim`` as an index in [0, rank + extra); raises OutOfRangeError naming ``function`` otherwise.

    ``extra`` is 1 where a new dimension may go after the last (``unsqueeze``).
    A 0-d tensor takes dims 0 and -1, as in PyTorch.
    """
    size = max(rank + extra, 1)
    if not -size <= dim < size:
        of = f" of shape {list(shape)}" if shape is not None else ""
        raise OutOfRangeError(f"{function}: dimension out of range (expected to be in range of [{-size}, {size - 1}], "
                              f"but got {dim}) for a {rank}-d tensor{of}" + error_context())
    return dim % size
