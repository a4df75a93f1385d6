"""Tensor creation functions (graphc.tensor, zeros, arange, eye, ...).

Under a trace, ``zeros``/``ones``/``full`` record a ``full`` node and data-built
tensors (``tensor``, ``arange``, ``eye``) record a ``constant`` node, so a traced
function that makes tensors still gives a self-contained graph.
"""
from __future__ import annotations

import itertools

import numpy as np

from graphc.errors import ShapeError

from . import dtypes as _dt
from .allocation import check_allocation
from .context import current_trace, error_context
from .device import check_device
from .tensor import Tensor, _shape_args, as_tensor


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copied from ``data``; the dtype is inferred as torch.tensor infers it."""
    check_device(device)
    if isinstance(data, Tensor):
        data = data.detach().numpy()
    try:
        dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.dtype_of_data(data)
        array = np.array(data, dtype=dtype.numpy)
    except ValueError as error:
        raise ShapeError(f"tensor: {_ragged(data) or error}" + error_context()) from None
    t = _constant(array)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _ragged(data) -> str | None:
    """PyTorch's words for nested lists of unequal lengths (None if they are even), level by level."""
    level = [data]
    for dim in itertools.count():
        sequences = [item for item in level if isinstance(item, (list, tuple))]
        if not sequences:
            return None
        if len(sequences) != len(level):
            scalar = next(item for item in level if not isinstance(item, (list, tuple)))
            return f"expected a sequence at dim {dim}, got {type(scalar).__name__} {scalar!r:.20}"
        for sequence in sequences:
            if len(sequence) != len(sequences[0]):
                return f"expected sequence of length {len(sequences[0])} at dim {dim} (got {len(sequence)})"
        level = [item for sequence in sequences for item in sequence]


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory, as torch.from_numpy."""
    _dt.dtype_of_data(array)
    return Tensor._wrap(array)


def _constant(array: np.ndarray) -> Tensor:
    ctx = current_trace()
    if ctx is not None:
        return Tensor._symbolic(ctx.builder.op("constant", value=array), ctx, False)
    return Tensor._wrap(array)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape = _shape_args((size,) if not isinstance(size, int) else (size,))
    dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.promote([fill_value])
    return _filled("full", shape, fill_value, dtype, device, requires_grad)


def _filled(function: str, shape: tuple, fill_value, dtype, device, requires_grad: bool) -> Tensor:
    """``full`` and its kin, under the user-level ``function``'s name in errors."""
    check_device(device)
    ctx = current_trace()
    if ctx is not None:
        node = ctx.builder.op("full", shape=shape, dtype=dtype, value=_python_value(fill_value, dtype))
        return Tensor._symbolic(node, ctx, False)
    check_allocation(function, shape, dtype)
    t = Tensor._wrap(np.full(shape, fill_value, dtype=dtype.numpy))
    return t.requires_grad_(requires_grad) if requires_grad else t


def _python_value(value, dtype):
    if dtype.is_float:
        return float(value)
    return bool(value) if dtype == _dt.bool_ else int(value)


def zeros(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled("zeros", _shape_args(args, size), 0, _dt.as_dtype(dtype or _dt.get_default_dtype()), device,
                   requires_grad)


def ones(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled("ones", _shape_args(args, size), 1, _dt.as_dtype(dtype or _dt.get_default_dtype()), device,
                   requires_grad)


def empty(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Like zeros: graphc never hands out uninitialised memory."""
    return _filled("empty", _shape_args(args, size), 0, _dt.as_dtype(dtype or _dt.get_default_dtype()), device,
                   requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(t, dtype=dtype, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None) -> Tensor:
    from .random import rand
    return rand(t.shape, dtype=dtype or t.dtype)


def randn_like(t: Tensor, dtype=None) -> Tensor:
    from .random import randn
    return randn(t.shape, dtype=dtype or t.dtype)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = _dt.promote([start, end, step])
        dtype = _dt.i64 if not dtype.is_float else _dt.get_default_dtype()
    values = np.arange(start, end, step).astype(_dt.as_dtype(dtype).numpy)
    return tensor(values, requires_grad=requires_grad, device=device)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False) -> Tensor:
    values = np.linspace(start, end, steps).astype(_dt.as_dtype(dtype or _dt.get_default_dtype()).numpy)
    return tensor(values, requires_grad=requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, dtype=None, requires_grad: bool = False) -> Tensor:
    exponents = np.linspace(start, end, steps)
    values = np.power(base, exponents).astype(_dt.as_dtype(dtype or _dt.get_default_dtype()).numpy)
    return tensor(values, requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    return tensor(np.eye(n, m, dtype=_dt.as_dtype(dtype or _dt.get_default_dtype()).numpy), requires_grad=requires_grad)


__all__ = ["tensor", "from_numpy", "as_tensor", "full", "zeros", "ones", "empty", "zeros_like", "ones_like",
           "empty_like", "full_like", "rand_like", "randn_like", "arange", "linspace", "logspace", "eye"]
