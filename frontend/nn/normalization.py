"""Normalisation over features rather than over the batch: LayerNorm, GroupNorm, InstanceNorm1d/2d.

Each normalises by a mean and a biased variance computed with reductions, so
it traces and differentiates like any composite.  Instance norm's optional
running statistics follow PyTorch: the per-sample statistics averaged over
the batch, the variance unbiased, mixed in with ``momentum``.
"""
from __future__ import annotations

import math

from graphc.errors import ShapeError

from ..context import error_context
from ..tensor import Tensor
from . import init
from .batchnorm import _BatchNorm
from .functional import _update_running_stats
from .module import Module, _empty_parameter

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "layer_norm", "group_norm",
           "instance_norm"]


def _normalize(input: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(input - mean) / sqrt(var + eps) over ``axes``, with that mean and (biased) variance, kept dims."""
    mean = input.mean(axes, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(axes, keepdim=True)
    return centered / (var + eps).sqrt(), mean, var


def _affine(out: Tensor, weight: Tensor | None, bias: Tensor | None, shape) -> Tensor:
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dims, which must equal ``normalized_shape``."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    count = len(normalized_shape)
    if tuple(input.shape[input.dim() - count:]) != normalized_shape or count > input.dim():
        raise ShapeError(f"layer_norm: expected input with shape [*, {', '.join(map(str, normalized_shape))}], "
                         f"but got input of size {list(input.shape)}" + error_context())
    out, _, _ = _normalize(input, tuple(range(input.dim() - count, input.dim())), eps)
    return _affine(out, weight, bias, normalized_shape)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each sample over groups of channels (dim 1), then scale and shift per channel."""
    if input.dim() < 2 or input.shape[1] % num_groups:
        raise ShapeError(f"group_norm: expected an (N, C, ...) input with C divisible by num_groups={num_groups}, "
                         f"got input of shape {list(input.shape)}" + error_context())
    batch, channels = input.shape[:2]
    grouped = input.reshape(batch, num_groups, -1)
    out, _, _ = _normalize(grouped, (2,), eps)
    return _affine(out.reshape(input.shape), weight, bias, (1, channels) + (1,) * (input.dim() - 2))


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over its spatial dims (N, C, ...).

    With ``use_input_stats`` the sample's own statistics are used (and the
    running ones, when given, updated with their batch average); otherwise the
    running statistics are.
    """
    if input.dim() < 3:
        raise ShapeError(f"instance_norm: expected an (N, C, ...) input with spatial dims, got input of shape "
                         f"{list(input.shape)}" + error_context())
    channels = input.shape[1]
    stat_shape = (1, channels) + (1,) * (input.dim() - 2)
    spatial = tuple(range(2, input.dim()))
    if use_input_stats:
        out, mean, var = _normalize(input, spatial, eps)
        count = math.prod(input.shape[2:])
        _update_running_stats(running_mean, running_var, mean.reshape(input.shape[:2]).mean(0),
                              var.reshape(input.shape[:2]).mean(0), momentum, count)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: running_mean and running_var are required when use_input_stats=False")
        out = (input - running_mean.reshape(stat_shape)) / (running_var.reshape(stat_shape) + eps).sqrt()
    return _affine(out, weight, bias, stat_shape)


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` dims, with an elementwise affine."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = _empty_parameter(self.normalized_shape, device, dtype)
            if bias:
                self.bias = _empty_parameter(self.normalized_shape, device, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


def _reset_affine(module) -> None:
    """A normalisation's affine parameters, where it has them, back to the identity: weight 1, bias 0."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class GroupNorm(Module):
    """Group normalisation: channels split into ``num_groups`` groups, each normalised per sample."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        self.weight = _empty_parameter((num_channels,), device, dtype) if affine else None
        self.bias = _empty_parameter((num_channels,), device, dtype) if affine and bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _InstanceNorm(_BatchNorm):
    """Instance norm: BatchNorm's parameters and buffers (affine and running stats off by default)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        self._check_input_dim(input)
        unbatched = input.dim() == min(self.expected_dims)
        if unbatched:
            input = input.unsqueeze(0)
        out = instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or not self.track_running_stats,
                            0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance norm of (N, C, L) or unbatched (C, L) input."""

    expected_dims = (2, 3)
    dims_text = "2D or 3D"


class InstanceNorm2d(_InstanceNorm):
    """Instance norm of (N, C, H, W) or unbatched (C, H, W) input."""

    expected_dims = (3, 4)
    dims_text = "3D or 4D"
