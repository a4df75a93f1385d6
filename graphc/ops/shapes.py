"""Shape arithmetic shared by the shape rules of several op families."""
from __future__ import annotations

from typing import Sequence

from .registry import ShapeMismatch


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """numpy/PyTorch broadcasting: align right, each dim equal or 1."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = {s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0}
        dims.discard(1)
        if len(dims) > 1:
            shown = " and ".join(str(list(s)) for s in shapes)
            raise ShapeMismatch(f"shapes {shown} do not broadcast (dimension {axis - rank} differs)")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: int, rank: int) -> int:
    """An axis in [-rank, rank) as a non-negative index."""
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ShapeMismatch(f"axis {axis} is out of range for a rank-{rank} tensor")
    return axis % max(rank, 1)


def normalize_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    """Sorted, non-negative, duplicate-free axes."""
    out = sorted(normalize_axis(a, rank) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeMismatch(f"axes {list(axes)} name the same axis twice")
    return tuple(out)
