"""Selecting, scattering and rearranging elements: index_select, scatter, masked_fill, flip,
roll, tril, diagonal, repeat_interleave, tile, stacking, nonzero, masked_select, ...

Everything whose result shape is fixed by the input shapes is built from the
primitives (gather, scatter_add, where, slice, concat, expand), so it traces
and compiles.  nonzero and masked_select have a result shape that depends on
the values: they run eagerly, and while tracing they raise TraceError naming
the user's line.
"""
from __future__ import annotations

import numpy as np

from graphc.errors import TraceError
from graphc.ir.dtypes import bool_, f64, i64

from .context import current_trace, user_location
from .creation import full, zeros
from .dispatch import apply
from .tensor import Tensor, as_tensor, where


def needs_concrete_shape(what: str, *tensors) -> None:
    """Raise TraceError for an op whose result shape depends on tensor values, while tracing."""
    if current_trace() is not None or any(isinstance(t, Tensor) and t.is_symbolic for t in tensors):
        loc = user_location()
        raise TraceError(f"{what}: the result's shape depends on the tensor's values, so it cannot be traced or "
                         f"compiled{' (at ' + str(loc) + ')' if loc else ''}. Use a fixed-shape form instead "
                         "(graphc.where(mask, x, 0), masked_fill, a sum over a mask) or run it outside the "
                         "compiled function")


# -- picking along one axis ----------------------------------------------------------------------

def _along(index: Tensor, axis: int, shape) -> Tensor:
    """A 1-D ``index`` laid along ``axis`` and expanded over ``shape``'s other axes, for gather."""
    layout = [1] * len(shape)
    layout[axis] = index.shape[0]
    expanded = list(shape)
    expanded[axis] = index.shape[0]
    return index.reshape(layout).expand(expanded)


def index_select(input, dim: int, index) -> Tensor:
    x, index = as_tensor(input), as_tensor(index).type_as_dtype(i64)
    if index.dim() > 1:
        raise RuntimeError(f"index_select: index should have at most 1 dimension, got {index.dim()}")
    if x.dim() == 0:
        return x.reshape(1).index_select(0, index).reshape(index.shape)
    index = index.reshape(-1)
    axis = dim % x.dim()
    index = where(index < 0, index + x.shape[axis], index)
    return apply("gather", [x, _along(index, axis, x.shape)], axis=axis)


def narrow(input, dim: int, start: int, length: int) -> Tensor:
    x = as_tensor(input)
    axis = dim % x.dim()
    start = int(start) % x.shape[axis] if start < 0 else int(start)
    if start + length > x.shape[axis]:
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({x.shape[axis]})")
    return x[(slice(None),) * axis + (slice(start, start + length),)]


def select(input, dim: int, index: int) -> Tensor:
    x = as_tensor(input)
    return x[(slice(None),) * (dim % x.dim()) + (index,)]


def unbind(input, dim: int = 0) -> tuple[Tensor, ...]:
    x = as_tensor(input)
    return tuple(select(x, dim, i) for i in range(x.shape[dim]))


def flip(input, dims) -> Tensor:
    x = as_tensor(input)
    for dim in (dims if isinstance(dims, (tuple, list)) else (dims,)):
        axis = dim % x.dim()
        n = x.shape[axis]
        reversed_positions = as_tensor(np.arange(n - 1, -1, -1, dtype=np.int64))
        x = apply("gather", [x, _along(reversed_positions, axis, x.shape)], axis=axis)
    return x


def fliplr(input) -> Tensor:
    return flip(input, 1)


def flipud(input) -> Tensor:
    return flip(input, 0)


def roll(input, shifts, dims=None) -> Tensor:
    x = as_tensor(input)
    if dims is None:
        return roll(x.reshape(-1), shifts, 0).reshape(x.shape)
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll: shifts and dims must have the same length, got {len(shifts)} and {len(dims)}")
    for shift, dim in zip(shifts, dims):
        n = x.shape[dim]
        shift = shift % n if n else 0
        if shift:
            from .functions import cat
            x = cat([narrow(x, dim, n - shift, shift), narrow(x, dim, 0, n - shift)], dim)
    return x


def take_along_dim(input, indices, dim: int) -> Tensor:
    """gather with ``input`` and ``indices`` broadcast against each other off ``dim``."""
    x, indices = as_tensor(input), as_tensor(indices).type_as_dtype(i64)
    axis = dim % x.dim()
    shape = list(np.broadcast_shapes(tuple(x.shape), tuple(indices.shape)))
    x_shape, index_shape = list(shape), list(shape)
    x_shape[axis], index_shape[axis] = x.shape[axis], indices.shape[axis]
    indices = where(indices < 0, indices + x.shape[axis], indices)
    return apply("gather", [x.expand(x_shape), indices.expand(index_shape)], axis=axis)


def _triangle(input, diagonal: int, lower: bool) -> Tensor:
    """``input`` with the elements above (``lower``) or below the ``diagonal``-th diagonal of its matrices zeroed."""
    from .creation import arange
    x = as_tensor(input)
    rows, columns = x.shape[-2:]
    offset = arange(columns).reshape(1, columns) - arange(rows).reshape(rows, 1)     # j - i
    keep = offset <= diagonal if lower else offset >= diagonal
    return where(keep, x, as_tensor(0, x.dtype))


def tril(input, diagonal: int = 0) -> Tensor:
    return _triangle(input, diagonal, lower=True)


def triu(input, diagonal: int = 0) -> Tensor:
    return _triangle(input, diagonal, lower=False)


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The ``offset``-th diagonal of the matrices spanned by dims ``dim1`` and ``dim2``, as the last dim."""
    x = movedim(as_tensor(input), (dim1, dim2), (-2, -1))
    rows, columns = x.shape[-2:]
    first_row, first_column = max(-offset, 0), max(offset, 0)
    length = max(0, min(rows - first_row, columns - first_column))
    band = x[..., first_row:first_row + length, :]
    column = as_tensor(np.arange(first_column, first_column + length, dtype=np.int64)).reshape(length, 1)
    return apply("gather", [band, column.expand(*band.shape[:-1], 1)], axis=band.dim() - 1).squeeze(-1)


def diag(input, diagonal: int = 0) -> Tensor:
    """A vector's diagonal matrix, or a matrix's diagonal vector."""
    x = as_tensor(input)
    if x.dim() == 2:
        return x.diagonal(diagonal)
    n, shift = x.shape[0], abs(diagonal)
    on_diagonal = as_tensor(np.eye(n, dtype=np.bool_))
    square = where(on_diagonal, x.unsqueeze(1), as_tensor(0, x.dtype))
    pads = [0, shift, shift, 0] if diagonal >= 0 else [shift, 0, 0, shift]
    return apply("pad", [square], pads=pads, value=0)


def movedim(input, source, destination) -> Tensor:
    x = as_tensor(input)
    source = [s % x.dim() for s in (source if isinstance(source, (tuple, list)) else (source,))]
    destination = [d % x.dim() for d in (destination if isinstance(destination, (tuple, list)) else (destination,))]
    rest = iter(a for a in range(x.dim()) if a not in source)
    placed = dict(zip(destination, source))
    return x.permute([placed[a] if a in placed else next(rest) for a in range(x.dim())])


moveaxis = movedim


def swapaxes(input, axis0: int, axis1: int) -> Tensor:
    return as_tensor(input).transpose(axis0, axis1)


swapdims = swapaxes


def ravel(input) -> Tensor:
    return as_tensor(input).reshape(-1)


def tile(input, dims) -> Tensor:
    x = as_tensor(input)
    dims = tuple(dims)
    return x.repeat((1,) * (x.dim() - len(dims)) + dims)


def broadcast_to(input, *size) -> Tensor:
    return as_tensor(input).expand(*size)


def hstack(tensors) -> Tensor:
    from .functions import cat
    tensors = [as_tensor(t) for t in tensors]
    return cat(tensors, 0 if all(t.dim() <= 1 for t in tensors) else 1)


def vstack(tensors) -> Tensor:
    from .functions import cat
    return cat([t.reshape(1, -1) if t.dim() < 2 else t for t in map(as_tensor, tensors)], 0)


def meshgrid(*tensors, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids of 1-D tensors; ``indexing="xy"`` makes the first two dims (y, x), as numpy does."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    vectors = [as_tensor(t).reshape(-1) for t in tensors]
    if indexing == "xy" and len(vectors) > 1:
        vectors[0], vectors[1] = vectors[1], vectors[0]
    shape = [v.shape[0] for v in vectors]
    grids = [v.reshape([-1 if i == axis else 1 for i in range(len(shape))]).expand(shape)
             for axis, v in enumerate(vectors)]
    if indexing == "xy" and len(grids) > 1:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def repeat_interleave(input, repeats=None, dim: int | None = None, *, output_size: int | None = None) -> Tensor:
    """Each element repeated ``repeats`` times along ``dim`` (the flattened tensor when dim is None).

    ``repeats`` per element (a list or tensor) makes the result's size depend on their values: such a
    tensor must be concrete; ``torch.repeat_interleave(repeats)`` alone repeats each index."""
    if repeats is None:
        counts = _concrete_counts(input)
        return as_tensor(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
    x = as_tensor(input)
    if dim is None:
        x, dim = x.reshape(-1), 0
    axis = dim % x.dim()
    counts = np.array([repeats]) if isinstance(repeats, int) else _concrete_counts(repeats)
    if len(counts) == 1:
        times = int(counts[0])
        widened = x.unsqueeze(axis + 1)
        shape = list(widened.shape)
        shape[axis + 1] = times
        return widened.expand(shape).reshape(*x.shape[:axis], x.shape[axis] * times, *x.shape[axis + 1:])
    if len(counts) != x.shape[axis]:
        raise RuntimeError(f"repeat_interleave: repeats must have the same size as input along dim "
                           f"({len(counts)} vs {x.shape[axis]})")
    return index_select(x, axis, as_tensor(np.repeat(np.arange(len(counts), dtype=np.int64), counts)))


def _concrete_counts(repeats) -> np.ndarray:
    if isinstance(repeats, Tensor):
        needs_concrete_shape("repeat_interleave with a tensor of repeats", repeats)
        return repeats.detach().numpy().reshape(-1).astype(np.int64)
    return np.asarray(repeats, np.int64).reshape(-1)


# -- writing at indices ---------------------------------------------------------------------------

def _as_source(src, like: Tensor, shape) -> Tensor:
    if isinstance(src, Tensor):
        return src.type_as_dtype(like.dtype)
    return full(shape, src, dtype=like.dtype)


def scatter_add(input, dim: int, index, src) -> Tensor:
    x, index = as_tensor(input), as_tensor(index).type_as_dtype(i64)
    return apply("scatter_add", [x, index, _as_source(src, x, index.shape)], axis=dim)


def scatter(input, dim: int, index, src=None, *, value=None, reduce: str | None = None) -> Tensor:
    """A copy of ``input`` with ``src`` (a tensor, or the number ``value``) written at ``index`` along ``dim``.

    Where several elements of ``index`` name one place, PyTorch keeps one of them (which one is
    undefined); graphc writes their mean, which is that value whenever they agree."""
    x = as_tensor(input)
    index = as_tensor(index).type_as_dtype(i64)
    src = _as_source(value if src is None else src, x, index.shape)
    if reduce == "add":
        return scatter_add(x, dim, index, src)
    if reduce is not None:
        raise NotImplementedError(f"scatter(reduce={reduce!r}): only reduce='add' is supported")
    hits = apply("scatter_add", [zeros(x.shape, dtype=i64), index, full(index.shape, 1, dtype=i64)], axis=dim)
    written = apply("scatter_add", [zeros(x.shape, dtype=x.dtype), index, src], axis=dim)
    if x.dtype.is_float:
        written = written / where(hits > 1, hits.type_as_dtype(x.dtype), 1.0)
    elif x.dtype != bool_:
        written = (written.type_as_dtype(f64) / where(hits > 1, hits, 1).type_as_dtype(f64)).type_as_dtype(x.dtype)
    return where(hits > 0, written, x)


def masked_fill(input, mask, value) -> Tensor:
    x = as_tensor(input)
    value = value.type_as_dtype(x.dtype) if isinstance(value, Tensor) else as_tensor(value, x.dtype)
    return where(as_tensor(mask), value, x)


def index_fill(input, dim: int, index, value) -> Tensor:
    """A copy of ``input`` with ``value`` at the positions ``index`` along ``dim``."""
    x = as_tensor(input)
    axis = dim % x.dim()
    layout = [1] * x.dim()
    layout[axis] = x.shape[axis]
    return masked_fill(x, _positions_mask(index, x.shape[axis]).reshape(layout), value)


def _positions_mask(index, size: int) -> Tensor:
    """A bool vector of ``size``, true at each of the (1-D) ``index``'s values."""
    index = as_tensor(index).type_as_dtype(i64).reshape(-1)
    index = where(index < 0, index + size, index)
    return apply("one_hot", [index], num_classes=size, dtype=i64).sum(0) > 0


# -- value-dependent shapes (eager only) -------------------------------------------------------

def nonzero(input, *, as_tuple: bool = False):
    """The indices of the non-zero elements: an i64 [count, ndim] tensor, or one 1-D tensor per dim."""
    x = as_tensor(input)
    needs_concrete_shape("nonzero", x)
    positions = [p.astype(np.int64) for p in np.nonzero(np.atleast_1d(x.detach().numpy()))]
    if as_tuple:
        return tuple(Tensor._wrap(p) for p in positions)
    return Tensor._wrap(np.stack(positions, axis=1))


def argwhere(input) -> Tensor:
    return nonzero(input)


def masked_select(input, mask) -> Tensor:
    """The elements of ``input`` where ``mask`` is true (both broadcast), as a 1-D tensor; differentiable in input."""
    x, mask = as_tensor(input), as_tensor(mask)
    needs_concrete_shape("masked_select", x, mask)
    shape = np.broadcast_shapes(tuple(x.shape), tuple(mask.shape))
    flat = x.expand(shape).reshape(-1)
    positions = np.flatnonzero(np.broadcast_to(mask.detach().numpy(), shape))
    return index_select(flat, 0, as_tensor(positions.astype(np.int64)))


__all__ = ["index_select", "narrow", "select", "unbind", "flip", "fliplr", "flipud", "roll", "take_along_dim", "tril",
           "triu", "diagonal", "diag", "movedim", "moveaxis", "swapaxes", "swapdims", "ravel", "tile", "broadcast_to",
           "hstack", "vstack", "meshgrid", "repeat_interleave", "scatter", "scatter_add", "masked_fill", "index_fill", "nonzero", "argwhere",
           "masked_select"]
