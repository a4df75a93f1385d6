"""Resizing feature maps: F.interpolate and nn.Upsample (nearest, nearest-exact, linear, bilinear).

An N-D resize is one resampling per spatial axis.  PyTorch's source index of
each output position is computed here in numpy (in float32, as PyTorch's CPU
kernels do, so the same input elements are picked), and the resampling is a
``gather`` of those rows with the index as a graph constant, then for the
linear modes a blend of the two neighbours with constant weights.  A nearest
resize by an integer factor is a broadcast instead: no gather at all.
Everything is a primitive, so resizes trace, compile and differentiate.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.errors import ShapeError

from ..context import error_context
from ..tensor import Tensor, as_tensor
from .module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "interpolate", "upsample"]

_LINEAR_MODES = {"linear": 3, "bilinear": 4}
_NEAREST_MODES = ("nearest", "nearest-exact")


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize the spatial dims (all dims after N, C) to ``size`` or by ``scale_factor``, as torch's."""
    if mode in _LINEAR_MODES:
        if input.dim() != _LINEAR_MODES[mode]:
            raise NotImplementedError(f"interpolate(mode={mode!r}) takes a {_LINEAR_MODES[mode]}-D input, got "
                                      f"input of shape {list(input.shape)}")
        align_corners = bool(align_corners)
    elif mode in _NEAREST_MODES:
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
        if input.dim() not in (3, 4):
            raise NotImplementedError(f"interpolate(mode={mode!r}) takes a 3-D or 4-D input, got input of shape "
                                      f"{list(input.shape)}")
    else:
        raise NotImplementedError(f"interpolate(mode={mode!r}) is not supported; graphc has 'nearest', "
                                  "'nearest-exact', 'linear' and 'bilinear'")
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported by graphc")
    out_sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor)
    out = input
    for axis, out_size, scale in zip(range(2, input.dim()), out_sizes, scales):
        if mode in _NEAREST_MODES:
            out = _nearest_along(out, axis, out_size, scale, exact=mode == "nearest-exact")
        else:
            out = _linear_along(out, axis, out_size, scale, align_corners)
    return out


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    """The deprecated name of ``interpolate``."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def _output_sizes(input: Tensor, size, scale_factor, recompute_scale_factor) -> tuple[list[int], list]:
    """The output size of each spatial dim and the scale factor PyTorch computes its indices with
    (None: from the sizes)."""
    spatial = input.dim() - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = [int(s) for s in (size if isinstance(size, (list, tuple)) else [size] * spatial)]
        if len(sizes) != spatial:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                             f"with spatial dimensions of {list(input.shape[2:])} and output size of {sizes}. "
                             "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                             "(o1, o2, ...,oK) format.")
        return sizes, [None] * spatial
    factors = [float(f) for f in (scale_factor if isinstance(scale_factor, (list, tuple))
                                  else [scale_factor] * spatial)]
    if len(factors) != spatial:
        raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                         f"with spatial dimensions of {list(input.shape[2:])} and scale_factor of shape {factors}.")
    sizes = [math.floor(n * f) for n, f in zip(input.shape[2:], factors)]
    return sizes, [None] * spatial if recompute_scale_factor else factors


def _index_scale(in_size: int, out_size: int, scale_factor) -> np.float32:
    """Input positions per output position, as PyTorch's ``compute_scales_value``."""
    return np.float32(1.0 / scale_factor) if scale_factor else np.float32(in_size) / np.float32(out_size)


def _nearest_along(x: Tensor, axis: int, out_size: int, scale_factor, exact: bool) -> Tensor:
    in_size = x.shape[axis]
    if out_size == in_size:
        return x
    scale = _index_scale(in_size, out_size, scale_factor)
    positions = np.arange(out_size, dtype=np.float32) + np.float32(0.5 if exact else 0.0)
    source = np.minimum(np.floor(positions * scale).astype(np.int64), in_size - 1)
    if out_size % in_size == 0 and np.array_equal(source, np.arange(out_size) // (out_size // in_size)):
        return _repeat_each(x, axis, out_size // in_size)
    return _pick(x, axis, source)


def _linear_along(x: Tensor, axis: int, out_size: int, scale_factor, align_corners: bool) -> Tensor:
    """Blend of the two input neighbours of each output position, as PyTorch's linear kernels."""
    in_size = x.shape[axis]
    positions = np.arange(out_size, dtype=np.float32)
    if align_corners:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
        source = positions * scale
    else:
        source = np.maximum((positions + np.float32(0.5)) * _index_scale(in_size, out_size, scale_factor)
                            - np.float32(0.5), np.float32(0))
    lower = source.astype(np.int64)
    upper = lower + (lower < in_size - 1)
    weight_upper = np.clip(source - lower, 0, 1).astype(np.float32)
    shape = [1] * x.dim()
    shape[axis] = out_size
    to_constant = (lambda w: as_tensor(w.reshape(shape).astype(x.dtype.numpy)))
    return (_pick(x, axis, lower) * to_constant(1 - weight_upper) + _pick(x, axis, upper) * to_constant(weight_upper))


def _repeat_each(x: Tensor, axis: int, times: int) -> Tensor:
    """Each element along ``axis`` repeated ``times`` times in a row (a unit axis broadcast, then merged)."""
    shape = list(x.shape)
    expanded = x.unsqueeze(axis + 1).expand(*shape[:axis + 1], times, *shape[axis + 1:])
    return expanded.reshape(*shape[:axis], shape[axis] * times, *shape[axis + 1:])


def _pick(x: Tensor, axis: int, source: np.ndarray) -> Tensor:
    """x's elements at positions ``source`` along ``axis`` (a gather with a constant index)."""
    index_shape = [1] * x.dim()
    index_shape[axis] = len(source)
    out_shape = list(x.shape)
    out_shape[axis] = len(source)
    return x.gather(axis, as_tensor(source.reshape(index_shape)).expand(out_shape))


class Upsample(Module):
    """Resize to ``size`` or by ``scale_factor`` with ``interpolate``'s modes."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None):
        super().__init__()
        self.size = size
        if isinstance(scale_factor, (list, tuple)):
            self.scale_factor = tuple(float(factor) for factor in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        if input.dim() < 3:
            raise ShapeError(f"{type(self).__name__}: expected an (N, C, ...) input, got shape "
                             f"{list(input.shape)}" + error_context())
        return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                           recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour upsampling of NCHW input."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear upsampling of NCHW input with align_corners=True."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
