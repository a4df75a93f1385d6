"""graphc.nn.functional: PyTorch's functional layers, built from graphc's primitives.

Everything here goes through Tensor methods or ``dispatch.apply``, so each
function runs eagerly, traces into a graph (where later passes can fuse the
composite ones: softmax, batch_norm, dropout) and differentiates.  Arguments
and defaults are PyTorch's.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from graphc.errors import ShapeError, TraceError

from ..context import current_trace, error_context, no_grad
from ..dispatch import apply
from ..dtypes import as_dtype, i64, promote
from ..functions import where
from ..random import rand
from ..tensor import Tensor, matmul
from .special import erf

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "silu", "softplus", "hardtanh", "prelu",
           "relu6", "hardswish", "mish", "logsigmoid", "glu", "normalize", "cosine_similarity", "softmax",
           "log_softmax", "linear", "conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d",
           "avg_pool1d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "batch_norm", "dropout",
           "dropout2d", "flatten", "pad", "one_hot"]


def _pair(value) -> tuple:
    """An int or a 1/2-sequence as (height, width), as PyTorch's ``_pair``."""
    if isinstance(value, (list, tuple)):
        return tuple(value) * 2 if len(value) == 1 else tuple(value)
    return (value, value)


def _single(value) -> int:
    """An int or a 1-sequence as an int, as PyTorch's ``_single`` for 1-D layers."""
    return value[0] if isinstance(value, (list, tuple)) else value


def _single_tuple(value) -> tuple:
    """An int or a 1-sequence as a 1-tuple: how PyTorch's 1-D layers store their settings."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _as_2d(name: str, input: Tensor, run) -> Tensor:
    """Run a 2-D op on a 1-D (N, C, L) or (C, L) input, as (N, C, 1, L) with a unit height axis."""
    if input.dim() not in (2, 3):
        raise ShapeError(f"{name}: expected a 2-D (unbatched) or 3-D (batched) input, got input of shape "
                         f"{list(input.shape)}" + error_context())
    return run(input.unsqueeze(-2)).squeeze(-2)


def _batched(name: str, input: Tensor, run) -> Tensor:
    """Run a 4-D (N, C, H, W) op on a 4-D input, or on a 3-D (C, H, W) one as a batch of one."""
    if input.dim() == 4:
        return run(input)
    if input.dim() == 3:
        try:
            return run(input.unsqueeze(0)).squeeze(0)
        except ShapeError as error:     # its message shows the batch of one; say where that came from
            raise ShapeError(f"{name}: the 3-D input {input._type} is read as one unbatched (C, H, W) image, a "
                             f"batch of one: {error}") from None
    raise ShapeError(f"{name}: expected a 3-D (unbatched) or 4-D (batched) input, got input of shape "
                     f"{list(input.shape)}" + error_context())


# -- activations -------------------------------------------------------------------------------

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0); ``inplace`` is accepted and computed out of place."""
    return input.relu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x (so the gradient at 0 is negative_slope, as PyTorch's)."""
    return where(input > 0, input, input * negative_slope)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return input.tanh()


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    # exp of the clamped input: exp(large x) is inf, and its gradient, though not selected, would be 0 * inf.
    return where(input > 0, input, (input.clamp(max=0.0).exp() - 1) * alpha)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF: exactly (through erf), or its tanh approximation."""
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)
        return input * 0.5 * (inner.tanh() + 1)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return input * 0.5 * (erf(input * (1 / math.sqrt(2))) + 1)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return input * input.sigmoid()


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (as PyTorch)."""
    scaled = input * beta
    # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): nothing overflows and small tails keep their digits.
    smooth = (scaled.relu() + _log1p(scaled.abs().neg().exp())) * (1 / beta)
    return where(scaled > threshold, input, smooth)


def _log1p(x: Tensor) -> Tensor:
    """log(1 + x) accurate for small x (Kahan: x * log(u) / (u - 1) with u = 1 + x; x itself where u rounds to 1)."""
    u = x + 1
    rounded_to_one = u == 1
    return where(rounded_to_one, x, x * u.log() / where(rounded_to_one, 1.0, u - 1))


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clamped to [min_val, max_val]; the gradient is 1 strictly inside, 0 elsewhere (as PyTorch's)."""
    return where(input <= min_val, min_val, where(input >= max_val, max_val, input))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6): hardtanh(x, 0, 6), whose gradient is 0 at 0 and 6 (as PyTorch's)."""
    return hardtanh(input, 0.0, 6.0)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6, with PyTorch's gradient: 0 up to -3 included, x/3 + 1/2 below 3, 1 from 3 on."""
    # x * 0 rather than 0 below -3: -0.0 for negative x and NaN for -inf, as PyTorch's x * 0 / 6 gives.
    return where(input <= -3, input * 0, where(input < 3, input * (input + 3) / 6, input))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return input * softplus(input).tanh()


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)), as x - log(1 + exp(x)) below 0 and -log(1 + exp(-x)) from 0 on, so that
    neither exp overflows and large negative x give x itself."""
    # Each side sees only inputs where its exp is at most 1: an infinite exp in the unselected side
    # would make its gradient 0 * inf.
    negative = input.clamp(max=0.0)
    positive = input.clamp(min=0.0)
    return where(input < 0, negative - _log1p(negative.exp()), -_log1p((-positive).exp()))


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), where a and b are the first and second halves of ``input`` along ``dim``."""
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    size = input.shape[dim]
    if size % 2:
        raise ShapeError(f"glu: halving dimension must be even, but dimension {dim % input.dim()} is size {size} "
                         f"(input {input._type})" + error_context())
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x for x > 0, else weight * x, with one weight shared or one per channel (dim 1)."""
    if weight.numel() != 1:
        channels = input.shape[1] if input.dim() >= 2 else input.shape[0]
        if weight.numel() != channels:
            raise ShapeError(f"prelu: weight has {weight.numel()} elements but the input has {channels} channels "
                             f"(input of shape {list(input.shape)})" + error_context())
        if input.dim() >= 2:
            weight = weight.reshape(1, channels, *(1,) * (input.dim() - 2))
    return where(input > 0, input, input * weight)


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _shifted(input: Tensor, dim: int, dtype) -> Tensor:
    """input minus its max along ``dim``: exp() cannot overflow, and the result is unchanged
    (the max is detached because softmax's value and gradient do not depend on it)."""
    if dtype is not None:
        input = input.type_as_dtype(as_dtype(dtype))
    return input - input.amax(dim, keepdim=True).detach()


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (computed in ``dtype`` when given)."""
    if dim is None:
        dim = _softmax_dim("softmax", input.dim())
    exp = _shifted(input, dim, dtype).exp()
    return exp / exp.sum(dim, keepdim=True)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """log(softmax(x)) along ``dim``, as x - max - log(sum(exp(x - max)))."""
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim())
    shifted = _shifted(input, dim, dtype)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


# -- normalizing vectors -----------------------------------------------------------------------

def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim`` (the 2-norm).  A zero vector stays zero; its gradient is
    the incoming one over eps, as PyTorch's, since the norm's gradient at zero is zero."""
    return input / input.norm(p, dim, keepdim=True).clamp_min(eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """The sum along ``dim`` of x1 / max(||x1||, eps) times x2 / max(||x2||, eps), after broadcasting.

    This is PyTorch's formula: normalizing first keeps the result within [-1, 1] and nothing overflows.
    As in PyTorch, eps only bounds the norms' values: their gradients are those of the norms themselves.
    """
    dtype = promote([x1, x2])
    if not dtype.is_float:
        raise RuntimeError(f"cosine_similarity: expected common dtype to be floating point, yet common dtype is "
                           f"{dtype.torch_name.capitalize()}")
    x1, x2 = (t if t.dtype.is_float else t.type_as_dtype(dtype) for t in (x1, x2))
    try:
        shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    except ValueError:
        raise ShapeError(f"cosine_similarity: x1 {x1._type} and x2 {x2._type} do not broadcast together"
                         + error_context()) from None
    x1, x2 = x1.expand(shape), x2.expand(shape)
    return ((x1 / _norm_at_least(x1, dim, eps)) * (x2 / _norm_at_least(x2, dim, eps))).sum(dim)


def _norm_at_least(x: Tensor, dim: int, eps: float) -> Tensor:
    """||x|| along ``dim``, raised to eps where smaller, with the unclamped norm's gradient everywhere."""
    norm = x.norm(2, dim, keepdim=True)
    return where(norm >= eps, norm, eps + (norm - norm.detach()))


# -- linear and convolution ------------------------------------------------------------------------

def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias."""
    if input.shape[-1:] != weight.shape[-1:]:
        raise ShapeError(f"linear: input has {input.shape[-1] if input.dim() else 0} features (input "
                         f"{input._type}) but weight expects {weight.shape[-1]} (weight {weight._type})"
                         + error_context())
    if input.dtype != weight.dtype:      # PyTorch refuses to mix them here rather than promote
        raise ShapeError(f"linear: input is {input.dtype} but weight is {weight.dtype} (input {input._type}, "
                         f"weight {weight._type}); convert one with .to()" + error_context())
    out = matmul(input, weight.t())
    return out if bias is None else out + bias


def _add_channel_bias(out: Tensor, bias: Tensor | None) -> Tensor:
    if bias is None:
        return out
    if tuple(bias.shape) != (out.shape[1],):
        raise ShapeError(f"bias should have shape [{out.shape[1]}] (one per output channel), got "
                         f"{list(bias.shape)}" + error_context())
    return out + bias.reshape(1, -1, 1, 1)


def _string_padding(input: Tensor, weight: Tensor, padding: str, stride, dilation):
    """The input and symmetric padding for padding='valid'/'same' (PyTorch's rules: 'same' puts the
    odd element of an odd total padding after the input, by padding the input itself)."""
    if padding == "valid":
        return input, (0, 0)
    if padding != "same":
        raise ValueError(f"Invalid padding string {padding!r}, should be one of ['valid', 'same']")
    if any(s != 1 for s in stride):
        raise ValueError("padding='same' is not supported for strided convolutions")
    totals = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    before = tuple(t // 2 for t in totals)
    extra_h, extra_w = (t - 2 * b for t, b in zip(totals, before))
    if extra_h or extra_w:
        input = pad(input, (0, extra_w, 0, extra_h))
    return input, before


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) or (C, H, W) input; padding may be 'valid' or 'same'."""
    stride, dilation = _pair(stride), _pair(dilation)

    def run(x):
        x, pads = _string_padding(x, weight, padding, stride, dilation) if isinstance(padding, str) \
            else (x, _pair(padding))
        out = apply("conv2d", [x, weight], stride=stride, padding=pads, dilation=dilation, groups=groups)
        return _add_channel_bias(out, bias)
    return _batched("conv2d", input, run)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D cross-correlation of (N, C, L) or (C, L) input: conv2d over a unit height axis."""
    padding = padding if isinstance(padding, str) else (0, _single(padding))
    return _as_2d("conv1d", input, lambda x: conv2d(x, weight.unsqueeze(-2), bias, (1, _single(stride)), padding,
                                                    (1, _single(dilation)), groups))


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """The transpose of conv2d (its gradient w.r.t. the input), weight [Cin, Cout/groups, kh, kw]."""
    if isinstance(padding, str):
        raise NotImplementedError(f"conv_transpose2d(padding={padding!r}): string padding is not supported "
                                  "for transposed convolutions (as in PyTorch)")

    def run(x):
        out = apply("conv_transpose2d", [x, weight], stride=_pair(stride), padding=_pair(padding),
                    output_padding=_pair(output_padding), groups=groups, dilation=_pair(dilation))
        return _add_channel_bias(out, bias)
    return _batched("conv_transpose2d", input, run)


# -- pooling ---------------------------------------------------------------------------------------

def _pool_stride(stride, kernel_size) -> tuple:
    return _pair(kernel_size) if stride is None or stride == [] or stride == () else _pair(stride)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Maximum over windows (stride defaults to kernel_size); padding counts as -inf."""
    if return_indices:
        raise NotImplementedError("max_pool2d(return_indices=True) is not supported by graphc")
    return _batched("max_pool2d", input, lambda x: apply(
        "max_pool2d", [x], kernel_size=_pair(kernel_size), stride=_pool_stride(stride, kernel_size),
        padding=_pair(padding), dilation=_pair(dilation), ceil_mode=ceil_mode))


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Maximum over windows of (N, C, L) or (C, L) input: max_pool2d over a unit height axis."""
    if return_indices:
        raise NotImplementedError("max_pool1d(return_indices=True) is not supported by graphc")
    stride = _single(kernel_size) if stride is None or stride == [] or stride == () else _single(stride)
    return _as_2d("max_pool1d", input, lambda x: max_pool2d(
        x, (1, _single(kernel_size)), (1, stride), (0, _single(padding)), (1, _single(dilation)), ceil_mode))


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of (N, C, L) or (C, L) input: avg_pool2d over a unit height axis."""
    stride = _single(kernel_size) if stride is None or stride == [] or stride == () else _single(stride)
    return _as_2d("avg_pool1d", input, lambda x: avg_pool2d(
        x, (1, _single(kernel_size)), (1, stride), (0, _single(padding)), ceil_mode, count_include_pad))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over windows (stride defaults to kernel_size)."""
    return _batched("avg_pool2d", input, lambda x: apply(
        "avg_pool2d", [x], kernel_size=_pair(kernel_size), stride=_pool_stride(stride, kernel_size),
        padding=_pair(padding), ceil_mode=ceil_mode, count_include_pad=count_include_pad,
        divisor_override=divisor_override))


def _adaptive_reduce_along(x: Tensor, axis: int, out_size: int, reduce) -> Tensor:
    """Reduce ``x`` over PyTorch's adaptive bins along ``axis`` with ``reduce(bin, axis)``: bin i spans
    [floor(i*n/out), ceil((i+1)*n/out)), so neighbouring bins may overlap."""
    n = x.shape[axis]
    bins = []
    for i in range(out_size):
        start, stop = (i * n) // out_size, -(-(i + 1) * n // out_size)
        index = [slice(None)] * x.dim()
        index[axis] = slice(start, stop)
        bins.append(reduce(x[tuple(index)], axis))
    return bins[0] if out_size == 1 else apply("concat", bins, axis=axis % x.dim())


def _adaptive_pool2d(name: str, input: Tensor, output_size, pool_op: str, reduce) -> Tensor:
    """Pooling to a fixed output size (None in output_size keeps that input size): one plain pooling op
    where the bins are equal and disjoint, else each row's bins then each column's."""
    out_h, out_w = (size if size is not None else input.shape[i - 2]
                    for i, size in enumerate(_pair(output_size)))

    def run(x):
        h, w = x.shape[2:]
        if h % out_h == 0 and w % out_w == 0:
            window = (h // out_h, w // out_w)
            return apply(pool_op, [x], kernel_size=window, stride=window)
        # A rectangle's mean (or max) is the mean (max) over its rows of the mean (max) over its columns.
        return _adaptive_reduce_along(_adaptive_reduce_along(x, 2, out_h, reduce), 3, out_w, reduce)
    return _batched(name, input, run)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size (None in output_size keeps that input size)."""
    return _adaptive_pool2d("adaptive_avg_pool2d", input, output_size, "avg_pool2d",
                            lambda x, axis: x.mean(axis, keepdim=True))


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """Max pooling to a fixed output size (None in output_size keeps that input size)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d(return_indices=True) is not supported by graphc")
    return _adaptive_pool2d("adaptive_max_pool2d", input, output_size, "max_pool2d",
                            lambda x, axis: x.amax(axis, keepdim=True))


# -- normalization ---------------------------------------------------------------------------------

def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum=0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) by the batch's statistics (training) or the running ones.

    In training, ``running_mean``/``running_var`` (when given) are updated in
    place with ``momentum`` (a float, or a 0-d tensor for BatchNorm's cumulative
    average), the variance unbiased as in PyTorch; under a trace these updates
    become write-backs of the graph.
    """
    if input.dim() < 2:
        raise ShapeError(f"batch_norm: expected an input with a channel dimension (N, C, ...), got shape "
                         f"{list(input.shape)}" + error_context())
    channels = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.numel() != channels:
            raise ShapeError(f"batch_norm: input has {channels} channels (shape {list(input.shape)}) but "
                             f"{name} has {t.numel()} elements" + error_context())
    axes = (0, *range(2, input.dim()))
    stat_shape = (1, channels) + (1,) * (input.dim() - 2)
    if training:
        count = input.numel() // channels
        if count <= 1:
            raise ShapeError(f"Expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)}" + error_context())
        mean = input.mean(axes)
        centered = input - mean.reshape(stat_shape)
        var = (centered * centered).mean(axes)
        _update_running_stats(running_mean, running_var, mean, var, momentum, count)
        out = centered / (var.reshape(stat_shape) + eps).sqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        out = (input - running_mean.reshape(stat_shape)) / (running_var.reshape(stat_shape) + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(stat_shape)
    if bias is not None:
        out = out + bias.reshape(stat_shape)
    return out


def _update_running_stats(running_mean, running_var, mean, var, momentum, count: int) -> None:
    with no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
        if running_var is not None:
            unbiased = var.detach() * (count / (count - 1))
            running_var.mul_(1 - momentum).add_(unbiased * momentum)


# -- dropout ---------------------------------------------------------------------------------------

def _check_probability(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _drop(input: Tensor, p: float, mask_shape) -> Tensor:
    """Zero elements with probability p (one draw per element of ``mask_shape``, broadcast over the
    rest) and scale the kept ones by 1/(1-p)."""
    if p == 1:
        return input * 0.0
    keep = rand(mask_shape, dtype=input.dtype) >= p
    return input * (keep.type_as_dtype(input.dtype) / (1 - p))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p (masks from graphc.rand), scale the rest by 1/(1-p)."""
    _check_probability(p)
    if not training or p == 0:
        return input
    return _drop(input, p, input.shape)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels: one draw per (sample, channel), as PyTorch's feature dropout."""
    _check_probability(p)
    if input.dim() < 2:
        raise ShapeError(f"dropout2d: feature dropout requires at least 2 dimensions in the input, got shape "
                         f"{list(input.shape)}" + error_context())
    if not training or p == 0:
        return input
    return _drop(input, p, (*input.shape[:2], *(1,) * (input.dim() - 2)))


# -- shape -----------------------------------------------------------------------------------------

def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one."""
    return input.flatten(start_dim, end_dim)


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last len(pad)//2 dims: pad = (last_before, last_after, second_last_before, ...);
    negative amounts crop."""
    if mode != "constant":
        raise NotImplementedError(f"F.pad(mode={mode!r}) is not supported; only mode='constant' is")
    if len(pad) % 2:
        raise ValueError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.dim():
        raise ValueError(f"Padding length should be less than or equal to two times the input dimension but "
                         f"got padding length {len(pad)} and input of dimension {input.dim()}")
    amounts = [(0, 0)] * input.dim()
    for i in range(len(pad) // 2):
        amounts[input.dim() - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    out = input
    if any(a > 0 for pair in amounts for a in pair):
        out = apply("pad", [out], pads=[max(a, 0) for pair in amounts for a in pair],
                    value=0 if value is None else value)
    if any(a < 0 for pair in amounts for a in pair):
        out = out[tuple(slice(max(-before, 0), size - max(-after, 0))
                        for (before, after), size in zip(amounts, out.shape))]
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding along a new last dim; num_classes=-1 means max(tensor) + 1 (eager only)."""
    if tensor.dtype != i64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if current_trace() is not None:
            raise TraceError("one_hot: pass num_classes when tracing; inferring it from the data would "
                             "make the graph's shape depend on values" + error_context())
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    return apply("one_hot", [tensor], num_classes=num_classes)


# The losses, normalisations, embedding and resizing live in modules of their own beside their Modules;
# they build on this one, so they are re-exported last.
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,  # noqa: E402
                   huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from .normalization import group_norm, instance_norm, layer_norm  # noqa: E402
from .sparse import embedding  # noqa: E402
from .upsampling import interpolate, upsample  # noqa: E402

__all__ += ["cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
            "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "layer_norm", "group_norm", "instance_norm",
            "embedding", "interpolate", "upsample"]
