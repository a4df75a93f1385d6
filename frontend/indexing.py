"""Indexing: ints, slices, None and ``...`` (basic), integer tensors and lists (advanced), bool masks.

Basic indexing is one ``slice`` (and a reshape).  Advanced indices are applied
after it, as PyTorch does (an int next to a tensor index selects first): the
indexed axes are moved to the front and merged, the index tensors combine into
one linear index, and an index_select (a gather) picks the elements, so
reading ``x[idx]`` traces and differentiates.  A bool mask stands for the
integer indices of its true elements; that makes the result's shape depend on
the mask's values, so reading ``x[mask]`` is eager-only.  Writing
``x[mask] = v`` keeps the shape and is a ``where``, eager and traced; so is
writing through a basic index, the value broadcast to the region and padded
out to the tensor's shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphc.errors import OutOfRangeError, ShapeError
from graphc.ir.dtypes import bool_, i64

from .context import current_trace, error_context, is_grad_enabled
from .dispatch import apply


def _is_advanced(k) -> bool:
    from .tensor import Tensor
    return isinstance(k, (Tensor, np.ndarray, list))


def _as_index_tensor(k):
    from .tensor import Tensor, as_tensor
    if isinstance(k, Tensor):
        return k
    return as_tensor(np.asarray(k) if len(k) else np.zeros(0, np.int64))


def _masks_to_positions(key: list) -> list:
    """Each bool mask in ``key`` replaced by the integer index tensors of its true elements (one per dim)."""
    from .selection import needs_concrete_shape
    from .tensor import Tensor
    expanded = []
    for k in key:
        if _is_advanced(k):
            k = _as_index_tensor(k)
            if k.dtype == bool_:
                needs_concrete_shape("indexing with a bool mask (x[mask])", k)
                expanded.extend(Tensor._wrap(p.astype(np.int64)) for p in np.nonzero(np.atleast_1d(k.numpy())))
                continue
        expanded.append(k)
    return expanded


def _expand_key(key, rank: int) -> list:
    """The key as a list with Ellipsis expanded and bool masks made integer indices; validates it."""
    key = list(key) if isinstance(key, tuple) else [key]
    key = _masks_to_positions(key)
    for k in key:
        if not (k is None or k is Ellipsis or _is_advanced(k) or isinstance(k, (int, np.integer, slice))):
            raise TypeError(f"invalid index of type {type(k).__name__}")
    if key.count(Ellipsis) > 1:
        raise OutOfRangeError("an index can only have a single ellipsis ('...')")
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > rank:
        raise OutOfRangeError(f"too many indices for tensor of dimension {rank}" + error_context())
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
                raise NotImplementedError("slicing with a negative step is not supported; use flip()")
            length = max(0, -(-(stop - start) // step))
            starts.append(start), stops.append(max(stop, start)), steps.append(step)
            out_shape.append(length)
        else:
            i = int(k)
            if not -size <= i < size:
                raise OutOfRangeError(f"index {i} is out of bounds for dimension {axis} with size {size} "
                                      f"(indexing a tensor of shape {list(shape)})" + error_context())
            i %= size
            starts.append(i), stops.append(i + 1), steps.append(1)
        axis += 1
    return starts, stops, steps, tuple(out_shape)


@dataclass
class _Advanced:
    """The advanced part of a key: index tensors, the axes of the basic result they index, and
    whether they stood side by side in the key (then their result dims stay there, else go first)."""
    indices: list
    axes: list[int]
    adjacent: bool


def _split_advanced(key: list) -> tuple[list, _Advanced]:
    """The key with each advanced index made a full slice, and those indices."""
    basic, indices, axes, positions = [], [], [], []
    out_axis = 0
    for position, k in enumerate(key):
        if _is_advanced(k):
            indices.append(_as_index_tensor(k))
            axes.append(out_axis)
            positions.append(position)
            k = slice(None)
        if k is None or isinstance(k, slice):
            out_axis += 1
        basic.append(k)
    adjacent = positions == list(range(positions[0], positions[0] + len(positions))) if positions else True
    return basic, _Advanced(indices, axes, adjacent)


def _basic_getitem(t, key: list):
    starts, stops, steps, out_shape = _plan(t.shape, key)
    whole = all(s == 0 and e == n and st == 1 for s, e, st, n in zip(starts, stops, steps, t.shape))
    x = t if whole else apply("slice", [t], starts=starts, stops=stops, steps=steps)
    return x.reshape(out_shape) if tuple(x.shape) != out_shape else x


def _linear_index(advanced: _Advanced, sizes: list[int]):
    """One index into the indexed axes merged (row-major), broadcast over the index tensors."""
    from .tensor import where
    linear = None
    for index, size in zip(advanced.indices, sizes):
        if index.dtype.is_float or index.dtype == bool_:
            raise IndexError(f"tensors used as indices must be integer or bool tensors, got {index.dtype!r}")
        index = index.type_as_dtype(i64)
        index = where(index < 0, index + size, index)
        linear = index if linear is None else linear * size + index
    return linear


def _advanced_getitem(x, advanced: _Advanced):
    from .selection import index_select
    rest = [a for a in range(x.dim()) if a not in advanced.axes]
    sizes = [x.shape[a] for a in advanced.axes]
    merged = x.permute(advanced.axes + rest).reshape(-1, *(x.shape[a] for a in rest))
    linear = _linear_index(advanced, sizes)
    picked = index_select(merged, 0, linear.reshape(-1)).reshape(*linear.shape, *merged.shape[1:])
    if not advanced.adjacent or advanced.axes[0] == 0:
        return picked
    # Side by side in the key: the index dims take the place of the first indexed axis.
    at, count = advanced.axes[0], linear.dim()
    order = list(range(count, count + at)) + list(range(count)) + list(range(count + at, picked.dim()))
    return picked.permute(order)


def getitem(t, key):
    key = _expand_key(key, t.dim())
    basic, advanced = _split_advanced(key)
    x = _basic_getitem(t, basic)
    return _advanced_getitem(x, advanced) if advanced.indices else x


# -- writing ---------------------------------------------------------------------------------------

def _single_mask(key):
    """The bool tensor of a key ``x[mask]``, else None."""
    from .tensor import Tensor
    mask = key[0] if isinstance(key, tuple) and len(key) == 1 else key
    if isinstance(mask, (Tensor, np.ndarray)) and (mask.dtype == bool_ or mask.dtype == np.bool_):
        return _as_index_tensor(mask)
    return None


def _check_mask_shape(mask, t) -> None:
    if tuple(mask.shape) != tuple(t.shape[:mask.dim()]):
        raise IndexError(f"the shape of the mask {list(mask.shape)} does not match the shape of the indexed tensor "
                         f"{list(t.shape)}" + error_context())


def _uniform_value(value, element_rank: int):
    """``value`` shaped to broadcast over each selected element (of rank ``element_rank``), or None where it
    holds a different value per selected element."""
    if value.dim() <= element_rank:
        return value
    if value.dim() == element_rank + 1 and value.shape[0] == 1:
        return value.reshape(value.shape[1:])
    return None


def _numpy_key(key):
    from .tensor import Tensor
    items = key if isinstance(key, tuple) else (key,)
    return tuple(k.numpy() if isinstance(k, Tensor) else k for k in items)


def setitem(t, key, value) -> None:
    from .tensor import Tensor, as_tensor, where
    value = as_tensor(value, t.dtype) if not isinstance(value, Tensor) else value.type_as_dtype(t.dtype)
    # Straight into t's array only where nothing records the write: no trace, t not on the tape,
    # and no gradient wanted through it (a value that requires grad must reach the tape too).
    eager_write = current_trace() is None and t._tape is None and not (
        is_grad_enabled() and (t.requires_grad or value.requires_grad))
    mask = _single_mask(key)
    if mask is not None:
        _check_mask_shape(mask, t)
        uniform = _uniform_value(value, t.dim() - mask.dim())
        if uniform is not None:
            # x[mask] = v with one v for every selected element keeps x's shape: a where over the
            # mask, which traces and differentiates.
            condition = mask.reshape(*mask.shape, *([1] * (t.dim() - mask.dim())))
            t._assign(where(condition, uniform, t))
            return
    items = key if isinstance(key, tuple) else (key,)
    if any(_is_advanced(k) for k in items):
        if not eager_write:
            raise NotImplementedError("assigning through integer tensor indices, or a value per selected element "
                                      "of a mask, is supported only eagerly without autograd; use where(), "
                                      "scatter() or index_fill() in traced code" + error_context())
        region = t._value[_numpy_key(key)]
        t._value[_numpy_key(key)] = np.broadcast_to(value._value, region.shape)
        return
    _basic_setitem(t, _expand_key(key, t.dim()), value, eager_write)


def _basic_setitem(t, key: list, value, eager_write: bool) -> None:
    from .tensor import as_tensor
    starts, stops, steps, indexed_shape = _plan(t.shape, key)
    # One length per axis of t: an int index keeps its axis with length 1, so the patch is
    # t-shaped while the value broadcasts against what x[key] would read (ints gone, Nones there).
    lengths = [len(range(s, e, st)) for s, e, st in zip(starts, stops, steps)]
    patch = _broadcast_to_region(value, indexed_shape).reshape(lengths)
    region = tuple(slice(s, e, st) for s, e, st in zip(starts, stops, steps))
    if eager_write:
        t._value[region] = patch._value
        return
    # Recorded or traced: t becomes where(region, patch laid out over t, t), which differentiates
    # to the value through the region and to t outside it.
    mask = np.zeros(tuple(t.shape), np.bool_)
    mask[region] = True
    t._assign(apply("where", [as_tensor(mask), _place(patch, starts, steps, t.shape), t]))


def _broadcast_to_region(value, shape: tuple):
    """``value`` broadcast to the indexed region's ``shape``, as PyTorch's ``x[key] = value`` does:
    leading unit dims beyond the region's rank are dropped first (so ``x[0] = row[None]`` fits)."""
    lead = max(0, value.dim() - len(shape))
    fitted = value.reshape(value.shape[lead:]) if all(s == 1 for s in value.shape[:lead]) else value
    try:
        fits = np.broadcast_shapes(tuple(fitted.shape), shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"setitem: value of shape {list(value.shape)} does not fit the indexed region of shape "
                         f"{list(shape)}" + error_context())
    return fitted.expand(shape)


def _place(patch, starts: list, steps: list, shape):
    """A tensor of ``shape``, zero except at the region, where it holds ``patch``: a pad, so that
    traced code and autograd see movement ops (the gradient of a pad is a crop of it)."""
    for axis, step in enumerate(steps):
        if step != 1:
            patch = _spread(patch, axis, step)
    pads = [p for start, size, n in zip(starts, patch.shape, shape) for p in (start, n - start - size)]
    return apply("pad", [patch], pads=pads, value=0)


def _spread(patch, axis: int, step: int):
    """``patch`` with ``step - 1`` zeros between its elements along ``axis``: the layout of a slice
    with that step, made of a pad, a reshape and a crop."""
    length = patch.shape[axis]
    pads = [0] * (2 * patch.dim() + 2)
    pads[2 * axis + 3] = step - 1           # after the unit axis inserted behind ``axis``
    gapped = apply("pad", [patch.unsqueeze(axis + 1)], pads=pads, value=0)
    merged = gapped.reshape(*patch.shape[:axis], length * step, *patch.shape[axis + 1:])
    return merged[(slice(None),) * axis + (slice(0, (length - 1) * step + 1),)]

