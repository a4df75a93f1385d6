"""Small graph-building helpers that gradient rules share."""
from __future__ import annotations


def unbroadcast(b, g, shape: tuple[int, ...]):
    """Sum ``g`` down to ``shape``: the adjoint of numpy broadcasting."""
    if g.shape == tuple(shape):
        return g
    lead = len(g.shape) - len(shape)
    axes = list(range(lead))
    axes += [lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1]
    if axes:
        g = b.sum(g, axes=axes, keepdims=False)
    if g.shape != tuple(shape):
        g = b.reshape(g, shape=shape)
    return g


def zeros(b, like):
    return b.full(shape=like.shape, dtype=like.dtype, value=0.0 if like.dtype.is_float else 0)
