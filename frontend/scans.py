"""Products, running sums and products, differences, and logsumexp, built from the primitives.

A running sum along an axis of n elements is a log-step scan (Hillis-Steele):
after step k every element holds the sum of the 2**k elements ending at it, so
ceil(log2 n) shifted adds (pad + slice + add) give every prefix.  A product
over an axis halves it by multiplying its two halves until one element is
left.  Both are plain primitive graphs, so they trace, compile and
differentiate with the exact chain rule (zeros in a product included).
"""
from __future__ import annotations

from graphc.ir.dtypes import bool_, i64

from . import dtypes as _dt
from .context import no_grad
from .creation import full
from .dims import wrap_dim
from .dispatch import apply
from .tensor import Tensor, as_tensor, where


def _accumulator(x: Tensor, dtype) -> Tensor:
    """``x`` in the dtype a sum or product accumulates in: ``dtype`` if given, int64 for integers and bools."""
    if dtype is not None:
        return x.type_as_dtype(_dt.as_dtype(dtype))
    return x if x.dtype.is_float else x.type_as_dtype(i64)


def _pad_axis(x: Tensor, axis: int, before: int, after: int, value) -> Tensor:
    pads = [0] * (2 * x.dim())
    pads[2 * axis], pads[2 * axis + 1] = before, after
    return apply("pad", [x], pads=pads, value=value)


def _slice_axis(x: Tensor, axis: int, start: int, stop: int) -> Tensor:
    starts = [0] * x.dim()
    stops = list(x.shape)
    starts[axis], stops[axis] = start, stop
    return apply("slice", [x], starts=starts, stops=stops, steps=[1] * x.dim())


def _scan(x: Tensor, dim: int, combine, identity) -> Tensor:
    """Inclusive prefix ``combine`` along ``dim``."""
    if x.dim() == 0:
        return x.clone()
    axis = dim % x.dim()
    n = x.shape[axis]
    shift = 1
    while shift < n:
        earlier = _pad_axis(_slice_axis(x, axis, 0, n - shift), axis, shift, 0, identity)
        x = combine(x, earlier)
        shift *= 2
    return x


def cumsum(input, dim: int, dtype=None) -> Tensor:
    x = _accumulator(as_tensor(input), dtype)
    return _scan(x, dim, lambda a, b: a + b, 0)


def cumprod(input, dim: int, dtype=None) -> Tensor:
    x = _accumulator(as_tensor(input), dtype)
    return _scan(x, dim, lambda a, b: a * b, 1)


def diff(input, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:
    """The n-th forward difference along ``dim`` (x[i+1] - x[i], n times; for bools x[i+1] != x[i],
    PyTorch's logical_xor), after joining ``prepend`` and ``append`` to ``input`` along ``dim``."""
    x = as_tensor(input)
    if x.dim() == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    axis = wrap_dim(dim, x.dim(), "diff", x.shape)
    parts = [as_tensor(t) for t in (prepend, x, append) if t is not None]
    if len(parts) > 1:
        dtype = _dt.promote(parts)
        x = apply("concat", [t.type_as_dtype(dtype) for t in parts], axis=axis)
    for _ in range(min(n, x.shape[axis])):
        size = x.shape[axis]
        later, earlier = _slice_axis(x, axis, 1, size), _slice_axis(x, axis, 0, size - 1)
        x = later != earlier if x.dtype == bool_ else later - earlier
    return x


def prod(input, dim: int | None = None, keepdim: bool = False, dtype=None) -> Tensor:
    x = _accumulator(as_tensor(input), dtype)
    if dim is None:
        return prod(x.reshape(-1), 0)
    if x.dim() == 0:
        return x.clone()
    axis = dim % x.dim()
    if x.shape[axis] == 0:
        shape = [1 if a == axis else s for a, s in enumerate(x.shape)]
        return full(shape if keepdim else shape[:axis] + shape[axis + 1:], 1, dtype=x.dtype)
    while x.shape[axis] > 1:
        n = x.shape[axis]
        if n % 2:
            x = _pad_axis(x, axis, 0, 1, 1)
            n += 1
        x = _slice_axis(x, axis, 0, n // 2) * _slice_axis(x, axis, n // 2, n)
    return x if keepdim else x.squeeze(axis)


def count_nonzero(input, dim=None) -> Tensor:
    return (as_tensor(input) != 0).sum(dim)


def logsumexp(input, dim=None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) computed as max + log(sum(exp(x - max))), so large inputs do not overflow."""
    x = as_tensor(input)
    if not x.dtype.is_float:
        x = x.type_as_dtype(_dt.get_default_dtype())
    with no_grad():
        # The shift cancels out of the value and of the gradient; an infinite max would not.
        shift = x.amax(dim, keepdim=True)
        shift = where(shift.abs() == float("inf"), 0.0, shift)
    total = (x - shift).exp().sum(dim, keepdim=True).log() + shift
    return total if keepdim else total.squeeze(x._axes(dim))


__all__ = ["cumsum", "cumprod", "diff", "prod", "count_nonzero", "logsumexp"]
