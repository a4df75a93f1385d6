"""Basic indexing (ints, slices, None, ...) for reading and for simple in-place writes."""
from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError

from .context import current_trace, error_context
from .dispatch import apply


def _expand_key(key, rank: int) -> list:
    """The key as a list with Ellipsis expanded; validates what graphc supports."""
    from .tensor import Tensor
    key = list(key) if isinstance(key, tuple) else [key]
    for k in key:
        if isinstance(k, (Tensor, np.ndarray, list)):
            raise NotImplementedError("advanced indexing with tensors or lists is not supported; "
                                      "use gather(), index_select-style reshapes or masks with where()")
        if not (k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))):
            raise TypeError(f"invalid index of type {type(k).__name__}")
    if key.count(Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > rank:
        raise IndexError(f"too many indices for tensor of dimension {rank}")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key[i:i + 1] = [slice(None)] * (rank - consumed)
    else:
        key += [slice(None)] * (rank - consumed)
    return key


def _plan(shape, key):
    """Per-axis (start, stop, step), the axes that ints remove, and the result shape."""
    starts, stops, steps, out_shape = [], [], [], []
    axis = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        size = shape[axis]
        if isinstance(k, slice):
            start, stop, step = k.indices(size)
            if step <= 0:
                raise NotImplementedError("slicing with a negative step is not supported; use flip-free indexing")
            length = max(0, -(-(stop - start) // step))
            starts.append(start), stops.append(max(stop, start)), steps.append(step)
            out_shape.append(length)
        else:
            i = int(k)
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for dimension {axis} with size {size}"
                                 + error_context())
            i %= size
            starts.append(i), stops.append(i + 1), steps.append(1)
        axis += 1
    return starts, stops, steps, tuple(out_shape)


def getitem(t, key):
    key = _expand_key(key, t.dim())
    starts, stops, steps, out_shape = _plan(t.shape, key)
    full = all(s == 0 and e == n and st == 1 for s, e, st, n in zip(starts, stops, steps, t.shape))
    x = t if full else apply("slice", [t], starts=starts, stops=stops, steps=steps)
    return x.reshape(out_shape) if tuple(x.shape) != out_shape else x


def setitem(t, key, value) -> None:
    from .tensor import Tensor, as_tensor
    key = _expand_key(key, t.dim())
    starts, stops, steps, _ = _plan(t.shape, key)
    region = tuple(slice(s, e, st) for s, e, st in zip(starts, stops, steps))
    region_shape = tuple(len(range(s, e, st)) for s, e, st in zip(starts, stops, steps))
    value = as_tensor(value, t.dtype) if not isinstance(value, Tensor) else value.type_as_dtype(t.dtype)
    if current_trace() is None and t._tape is None and value._tape is None and not t.requires_grad:
        t._value[region] = np.broadcast_to(value._value, t._value[region].shape) \
            if value.dim() <= len(region_shape) else value._value.reshape(t._value[region].shape)
        return
    if any(st != 1 for st in steps):
        raise NotImplementedError("assigning to a strided slice of a traced or grad-tracking tensor is not "
                                  "supported")
    try:
        patch = value.reshape(np.broadcast_shapes(tuple(value.shape), region_shape)).expand(region_shape) \
            if tuple(value.shape) != region_shape else value
    except ValueError:
        raise ShapeError(f"setitem: value of shape {list(value.shape)} does not fit the indexed region of shape "
                         f"{list(region_shape)}" + error_context()) from None
    pads = [p for s, e, n in zip(starts, stops, t.shape) for p in (s, n - e)]
    placed = apply("pad", [patch], pads=pads, value=0)
    mask = np.zeros(tuple(t.shape), np.bool_)
    mask[region] = True
    t._assign(apply("where", [as_tensor(mask), placed, t]))
