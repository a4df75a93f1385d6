"""Pooling primitives over NCHW images: max_pool2d, avg_pool2d and their gradients.

max_pool2d's gradient is two ops, as in PyTorch: ``max_pool2d_argmax`` notes
which element each window picked, and ``max_pool2d_grad`` sends each window's
gradient there.  The backward pass then keeps the small indices alive, not the
pooled input.  An index is window-local: the tap number, in row-major scan
order of the kernel (0 .. kh*kw-1), with kh*kw for a window that has no real
element to pick; it fits a u8 for kernels of up to 255 taps.

Window geometry follows PyTorch exactly.  Along each spatial axis, window ``o``
starts at ``o * stride - padding`` and its taps sit ``dilation`` apart.  The
output size is ``floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``;
with ``ceil_mode`` the division rounds up instead, but the last window must
still start inside the input or its left padding, so ceil_mode never adds a
window that would see only right padding.  Padding may be at most half the
(undilated) kernel, as PyTorch requires.

References walk the few kernel taps and handle every window at once: for each
tap they fetch, for all windows together, the input element it lands on and
whether that element is real (not padding, not ceil_mode overhang).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..ir.dtypes import DType, bool_, f32, f64, i32, i64, u8
from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from .lowering import guarded_load, strided, window_coordinate, window_origin
from .registry import Attr, OpDef, ShapeMismatch, register

# -- window geometry ------------------------------------------------------------------


def _pair(name: str, values: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) from one value for both or one value each, as PyTorch accepts."""
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise ShapeMismatch(f"{name} must have 1 or 2 values (height, width), got {len(values)}")
    return values


def _canonicalize_pairs(*names: str):
    def canonicalize(types, attrs):
        return {**attrs, **{name: _pair(name, attrs[name]) for name in names}}
    return canonicalize


def _dilation(attrs) -> tuple[int, int]:
    # avg_pool2d has no dilation attribute: its taps are adjacent.
    return attrs.get("dilation", (1, 1))


def _check_window_attrs(attrs):
    """The checks PyTorch makes on the window itself, in its order."""
    kernel, padding = attrs["kernel_size"], attrs["padding"]
    for name, values in (("kernel_size", kernel), ("stride", attrs["stride"]), ("dilation", _dilation(attrs))):
        if min(values) <= 0:
            raise ShapeMismatch(f"{name} must be positive, got {list(values)}")
    if min(padding) < 0:
        raise ShapeMismatch(f"padding must be non-negative, got {list(padding)}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ShapeMismatch(f"padding {list(padding)} is more than half of kernel_size {list(kernel)}")


def _output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooled size along one axis (may be < 1; the caller rejects that)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1      # that window would start in the right padding
    return out


def _pooled_shape(input_shape: tuple[int, ...], attrs) -> tuple[int, int, int, int]:
    """The output shape of pooling an input of ``input_shape``, after checking both."""
    _check_window_attrs(attrs)
    if len(input_shape) != 4:
        raise ShapeMismatch(f"input must be 4-d (N, C, H, W), got rank {len(input_shape)}")
    n, c, h, w = input_shape
    if 0 in (c, h, w):
        raise ShapeMismatch(f"input {list(input_shape)} has an empty channel or spatial dimension")
    out_h, out_w = (_output_size(size, k, s, p, d, attrs["ceil_mode"])
                    for size, k, s, p, d in zip((h, w), attrs["kernel_size"], attrs["stride"],
                                                attrs["padding"], _dilation(attrs)))
    if out_h < 1 or out_w < 1:
        extent = [d * (k - 1) + 1 for k, d in zip(attrs["kernel_size"], _dilation(attrs))]
        raise ShapeMismatch(f"output size would be {out_h}x{out_w}: a {extent[0]}x{extent[1]} window does not "
                            f"fit the {h}x{w} input padded by {list(attrs['padding'])}")
    return n, c, out_h, out_w


def _axis_taps(size: int, out_size: int, kernel: int, stride: int, pad: int, dilation: int):
    """Where tap ``t`` of window ``o`` lands along one axis, as two [kernel, out_size] arrays:
    the input coordinate (clipped into the input, so it is always a safe index) and
    whether it is a real input element rather than padding or ceil_mode overhang."""
    coord = np.arange(kernel)[:, None] * dilation + np.arange(out_size)[None, :] * stride - pad
    return np.clip(coord, 0, size - 1), (coord >= 0) & (coord < size)


def _window_taps(input_hw, output_hw, attrs) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each kernel tap in row-major scan order: (rows [OH,1], cols [1,OW], inside [OH,OW])."""
    rows, rows_inside = _axis_taps(input_hw[0], output_hw[0], attrs["kernel_size"][0], attrs["stride"][0],
                                   attrs["padding"][0], _dilation(attrs)[0])
    cols, cols_inside = _axis_taps(input_hw[1], output_hw[1], attrs["kernel_size"][1], attrs["stride"][1],
                                   attrs["padding"][1], _dilation(attrs)[1])
    for i in range(len(rows)):
        for j in range(len(cols)):
            yield rows[i][:, None], cols[j][None, :], rows_inside[i][:, None] & cols_inside[j][None, :]


# -- lowerings ---------------------------------------------------------------------------
#
# Pooling walks each window's taps in scan order, like the references; the
# gradients are written as gathers (each input element asks which windows
# read it, tap by tap), so every element is computed whole before it is stored.

def _window_geometry(attrs):
    """(stride, padding, dilation) per spatial axis."""
    return tuple(zip(attrs["stride"], attrs["padding"], _dilation(attrs)))


def _tap_coordinates(out_dims, taps, attrs, input_hw):
    """Where taps (i, j) of the window at output (oy, ox) land, and whether inside the input."""
    coordinates = [window_coordinate(out, tap, s, p, d)
                   for out, tap, (s, p, d) in zip(out_dims, taps, _window_geometry(attrs))]
    inside = E.all_of([E.in_range(c, size) for c, size in zip(coordinates, input_hw)])
    return [E.clamp(c, size) for c, size in zip(coordinates, input_hw)], inside


def _max_window(ctx, x, attrs, index: Index):
    """(maximum, tap) of the window at ``index``, with the reference's rules (``_max_windows``):
    the maximum first (nan once any tap is nan), then the tap, in a second pass: the last nan's
    where the maximum is nan, else the first tap equal to it.  Two plain reductions, so a row
    of windows is computed lane by lane like any other window op."""
    def compute():
        n, c, oy, ox = index.dims
        no_tap = _tap_count(attrs)
        kw = attrs["kernel_size"][1]

        def tap(taps):
            coordinates = [window_coordinate(out, t, s, p, d)
                           for out, t, (s, p, d) in zip((oy, ox), taps, _window_geometry(attrs))]
            inside = E.all_of([E.in_range(co, size) for co, size in zip(coordinates, x.shape[2:])])
            return guarded_load(ctx, x, [n, c, *coordinates], inside), inside

        def larger(best, taps):
            value, inside = tap(taps)
            greater = E.binary("gt", value, best)
            if x.dtype.is_float:
                greater = E.binary("or", greater, E.unary("isnan", value))
            return E.select(E.logical_and(inside, greater), value, best)
        is_strided = strided(attrs)
        best = ctx.reduce(E.const(_lowest(x.dtype.numpy), x.dtype), list(attrs["kernel_size"]), larger, strided=is_strided)

        def picked(found, taps):
            value, inside = tap(taps)
            hit = E.logical_and(E.eq(value, best), E.eq(found, E.const(no_tap, i64)))
            if x.dtype.is_float:
                hit = E.binary("or", hit, E.logical_and(E.unary("isnan", best), E.unary("isnan", value)))
            i, j = taps
            return E.select(E.logical_and(inside, hit), E.add(E.mul(i, kw), j), found)
        return best, ctx.reduce(E.const(no_tap, i64), list(attrs["kernel_size"]), picked, strided=is_strided)
    key = ("max_window", x, tuple(sorted((k, v) for k, v in attrs.items())), index.key())
    return ctx.shared(key, compute)


def _lower_max_pool2d(ctx, node, index: Index):
    return _max_window(ctx, node.inputs[0], node.attrs, index)[0]


def _lower_max_pool2d_argmax(ctx, node, index: Index):
    return E.cast(_max_window(ctx, node.inputs[0], node.attrs, index)[1], node.dtype)


def _lower_max_pool2d_grad(ctx, node, index: Index):
    grad_output, indices = node.inputs
    n, c, y, x = index.dims
    kh, kw = node.attrs["kernel_size"]
    out_h, out_w = grad_output.shape[2:]

    def update(acc, taps):
        i, j = taps
        (s_h, p_h, d_h), (s_w, p_w, d_w) = _window_geometry(node.attrs)
        row, row_exists = window_origin(y, i, s_h, p_h, d_h, out_h)
        column, column_exists = window_origin(x, j, s_w, p_w, d_w, out_w)
        window, exists = [n, c, row, column], E.logical_and(row_exists, column_exists)
        picked = E.eq(E.cast(guarded_load(ctx, indices, window, exists), i64), E.add(E.mul(i, kw), j))
        return E.select(E.logical_and(exists, picked), E.add(acc, guarded_load(ctx, grad_output, window, exists)), acc)
    return ctx.reduce(E.const(0, node.dtype), [kh, kw], update, strided=strided(node.attrs))


def _axis_divisor(out: E.Expr, size: int, kernel: int, stride: int, pad: int, count_include_pad: bool) -> E.Expr:
    """``_axis_divisors`` for one window position."""
    start = E.sub(E.mul(out, stride), pad)
    end = E.minimum(E.add(start, kernel), size + pad)
    if count_include_pad:
        return E.sub(end, start)
    return E.sub(E.minimum(end, size), E.maximum(start, 0))


def _avg_divisor(attrs, input_hw, out_dims) -> E.Expr:
    if attrs["divisor_override"] is not None:
        return E.const(attrs["divisor_override"], i64)
    rows, columns = (_axis_divisor(out, size, k, s, p, attrs["count_include_pad"])
                     for out, size, k, s, p in zip(out_dims, input_hw, attrs["kernel_size"],
                                                   attrs["stride"], attrs["padding"]))
    return E.mul(rows, columns)


def _lower_avg_pool2d(ctx, node, index: Index):
    x = node.inputs[0]
    n, c, oy, ox = index.dims

    def update(acc, taps):
        (row, column), inside = _tap_coordinates((oy, ox), taps, node.attrs, x.shape[2:])
        value = ctx.value(x, Index.of(x.shape, (n, c, row, column)))
        return E.select(inside, E.add(acc, value), acc)
    total = ctx.reduce(E.const(0, node.dtype), list(node.attrs["kernel_size"]), update, strided=strided(node.attrs))
    return E.div(total, E.cast(_avg_divisor(node.attrs, x.shape[2:], (oy, ox)), node.dtype))


def _lower_avg_pool2d_grad(ctx, node, index: Index):
    grad_output = node.inputs[0]
    n, c, y, x = index.dims
    out_hw = grad_output.shape[2:]

    def update(acc, taps):
        origins = [window_origin(coordinate, tap, s, p, d, out)
                   for coordinate, tap, (s, p, d), out in zip((y, x), taps, _window_geometry(node.attrs), out_hw)]
        (row, row_exists), (column, column_exists) = [(E.clamp(position, out), exists)
                                                      for (position, exists), out in zip(origins, out_hw)]
        divisor = E.cast(_avg_divisor(node.attrs, node.shape[2:], (row, column)), node.dtype)
        share = E.div(ctx.value(grad_output, Index.of(grad_output.shape, (n, c, row, column))), divisor)
        return E.select(E.logical_and(row_exists, column_exists), E.add(acc, share), acc)
    kernel = tuple(node.attrs["kernel_size"])
    if tuple(node.attrs["stride"]) == kernel and tuple(node.attrs["padding"]) == (0, 0):
        # Windows side by side (a global average pool): each element lies in one window at most, at
        # its one tap, so its gradient is that window's share, not a sum over every tap (ResNet's
        # 8x8 pool's gradient took 0.55 ms testing 64 taps per element).
        return update(E.const(0, node.dtype), [E.rem(y, kernel[0]), E.rem(x, kernel[1])])
    return ctx.reduce(E.const(0, node.dtype), list(kernel), update, strided=strided(node.attrs))


# -- max_pool2d -------------------------------------------------------------------------

def _check_numeric(dtype, what: str):
    if dtype == bool_:
        raise ShapeMismatch(f"{what} must be numeric, got bool")


def _max_pool2d_shape(types, attrs):
    x = types[0]
    _check_numeric(x.dtype, "input")
    return TensorType(_pooled_shape(x.shape, attrs), x.dtype)


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _tap_count(attrs) -> int:
    kh, kw = attrs["kernel_size"]
    return kh * kw


def _max_windows(x: np.ndarray, attrs):
    """Each window's maximum and the tap (see ``max_pool2d_argmax``) PyTorch picks as its argmax.

    Like PyTorch, the first real element of a window is taken whatever its value
    and a later one only if it is strictly greater or NaN: ties go to the first
    maximal element in scan order, NaN wins (the last NaN), and a window of -inf
    points at its first real element.  Padding is never picked; a window with no
    real element at all (dilation can step over a small input) keeps the tap
    ``kh * kw``, which names none.
    """
    n, c, out_h, out_w = _pooled_shape(x.shape, attrs)
    best = np.full((n, c, out_h, out_w), _lowest(x.dtype), x.dtype)
    no_tap = _tap_count(attrs)
    best_tap = np.full(best.shape, no_tap)
    for tap, (rows, cols, inside) in enumerate(_window_taps(x.shape[2:], (out_h, out_w), attrs)):
        value = x[:, :, rows, cols]
        take = inside & ((best_tap == no_tap) | (value > best) | np.isnan(value))
        best = np.where(take, value, best)
        best_tap = np.where(take, tap, best_tap)
    return best, best_tap


def _max_pool2d_reference(xs, attrs):
    return _max_windows(xs[0], attrs)[0]


MAX_ATTRS = {"kernel_size": Attr("ints"), "stride": Attr("ints"), "padding": Attr("ints", (0, 0)),
             "dilation": Attr("ints", (1, 1)), "ceil_mode": Attr("bool", False)}


def _max_pool2d_grad_rule(b, node, g):
    x = node.inputs[0]
    indices = b.max_pool2d_argmax(x, **node.attrs)
    return [b.max_pool2d_grad(g, indices, **node.attrs, input_size=x.shape[2:])]


register(OpDef(
    name="max_pool2d", family="window", inputs=("input",),
    attrs=MAX_ATTRS,
    canonicalize=_canonicalize_pairs("kernel_size", "stride", "padding", "dilation"),
    shape_rule=_max_pool2d_shape, reference=_max_pool2d_reference, grad=_max_pool2d_grad_rule,
    lower=_lower_max_pool2d, cheap=True,
    doc="maximum over each (dilated) window of an NCHW input; padding counts as -inf",
))


# -- max_pool2d_argmax ------------------------------------------------------------------

def _index_dtype(attrs) -> DType:
    """The narrowest dtype that holds every tap of a window and the "no tap" value ``kh * kw``."""
    return u8 if _tap_count(attrs) <= np.iinfo(np.uint8).max else i32


def _max_pool2d_argmax_shape(types, attrs):
    x = types[0]
    _check_numeric(x.dtype, "input")
    return TensorType(_pooled_shape(x.shape, attrs), _index_dtype(attrs))


register(OpDef(
    name="max_pool2d_argmax", family="window", inputs=("input",),
    attrs=MAX_ATTRS,
    canonicalize=_canonicalize_pairs("kernel_size", "stride", "padding", "dilation"),
    shape_rule=_max_pool2d_argmax_shape, reference=lambda xs, attrs: _max_windows(xs[0], attrs)[1],
    lower=_lower_max_pool2d_argmax,
    differentiable=False,
    doc="for each window of max_pool2d, the tap (row-major in the kernel, 0 .. kh*kw-1) of the "
        "element it picks; kh*kw for a window with no real element; u8, or i32 past 255 taps",
))


# -- max_pool2d_grad ----------------------------------------------------------------------

def _max_pool2d_grad_shape(types, attrs):
    grad_output, indices = types
    input_size = attrs["input_size"]
    if not grad_output.dtype.is_float:
        raise ShapeMismatch(f"grad_output must be floating-point, got {grad_output.dtype}")
    if indices.dtype not in (u8, i32):
        raise ShapeMismatch(f"indices must be u8 or i32 (as max_pool2d_argmax gives), got {indices.dtype}")
    if len(input_size) != 2:
        raise ShapeMismatch(f"input_size must have 2 values (height, width), got {len(input_size)}")
    if grad_output.rank != 4:
        raise ShapeMismatch(f"grad_output must be 4-d (N, C, H, W), got rank {grad_output.rank}")
    input_shape = (*grad_output.shape[:2], *input_size)
    pooled = _pooled_shape(input_shape, attrs)
    for subject, value in (("grad_output has", grad_output), ("indices have", indices)):
        if value.shape != pooled:
            raise ShapeMismatch(f"{subject} shape {list(value.shape)} but max_pool2d of an input of "
                                f"shape {list(input_shape)} gives {list(pooled)}")
    return TensorType(input_shape, grad_output.dtype)


def _max_pool2d_grad_reference(xs, attrs):
    grad_output, indices = xs
    (height, width), (_, kw) = attrs["input_size"], attrs["kernel_size"]
    image, channel, out_row, out_col = np.indices(grad_output.shape)
    tap = indices.astype(np.int64)
    rows = out_row * attrs["stride"][0] - attrs["padding"][0] + tap // kw * attrs["dilation"][0]
    cols = out_col * attrs["stride"][1] - attrs["padding"][1] + tap % kw * attrs["dilation"][1]
    # "No tap" (kh * kw) gives nothing; so does an index no argmax makes, one naming a tap
    # outside the window or on padding.
    real = ((tap >= 0) & (tap < _tap_count(attrs))
            & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width))
    grad = np.zeros((*grad_output.shape[:2], height, width), grad_output.dtype)
    # Overlapping windows may pick the same element: add.at accumulates them.
    np.add.at(grad, (image[real], channel[real], rows[real], cols[real]), grad_output[real])
    return grad


register(OpDef(
    name="max_pool2d_grad", family="window", inputs=("grad_output", "indices"),
    attrs={**MAX_ATTRS, "input_size": Attr("ints")},
    canonicalize=_canonicalize_pairs("kernel_size", "stride", "padding", "dilation"),
    shape_rule=_max_pool2d_grad_shape, reference=_max_pool2d_grad_reference, lower=_lower_max_pool2d_grad,
    # Not differentiable: the indices are integers, and w.r.t. grad_output its adjoint would
    # read the incoming gradient at each window's argmax tap, a gather by window-local index
    # that no primitive expresses.  So max pooling has no second derivative.
    differentiable=False,
    doc="gradient of max_pool2d: each window's grad_output goes to the element of an input of "
        "input_size [H, W] at the window's tap in indices (from max_pool2d_argmax), summed where "
        "windows overlap",
))


# -- avg_pool2d ------------------------------------------------------------------------------

AVG_DTYPES = (f32, f64, i64)     # the dtypes PyTorch's CPU avg_pool2d accepts


def _check_avg_attrs(dtype, attrs, what: str):
    if dtype not in AVG_DTYPES:
        raise ShapeMismatch(f"{what} must be f32, f64 or i64 (as PyTorch's avg_pool2d), got {dtype}")
    if attrs["divisor_override"] == 0:
        raise ShapeMismatch("divisor_override must not be zero")


def _avg_pool2d_shape(types, attrs):
    x = types[0]
    _check_avg_attrs(x.dtype, attrs, "input")
    return TensorType(_pooled_shape(x.shape, attrs), x.dtype)


def _axis_divisors(size: int, out_size: int, kernel: int, stride: int, pad: int, count_include_pad: bool):
    """Each window's element count along one axis: within the padded input if
    count_include_pad, else within the input; ceil_mode overhang never counts."""
    start = np.arange(out_size) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def _avg_divisors(input_hw, output_hw, attrs) -> np.ndarray:
    """The [OH, OW] numbers PyTorch divides each window's sum by."""
    if attrs["divisor_override"] is not None:
        return np.full(output_hw, attrs["divisor_override"])
    rows, cols = (_axis_divisors(size, out, k, s, p, attrs["count_include_pad"])
                  for size, out, k, s, p in zip(input_hw, output_hw, attrs["kernel_size"],
                                                attrs["stride"], attrs["padding"]))
    return np.outer(rows, cols)


def _divide_like_torch(total: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    """total / divisor in total's dtype; integers truncate toward zero, as C++ division does."""
    if total.dtype.kind == "f":
        return total / divisor.astype(total.dtype)
    return (total - np.fmod(total, divisor)) // divisor


def _avg_pool2d_reference(xs, attrs):
    x = xs[0]
    n, c, out_h, out_w = _pooled_shape(x.shape, attrs)
    total = np.zeros((n, c, out_h, out_w), x.dtype)
    zero = np.zeros((), x.dtype)
    for rows, cols, inside in _window_taps(x.shape[2:], (out_h, out_w), attrs):
        total += np.where(inside, x[:, :, rows, cols], zero)
    return _divide_like_torch(total, _avg_divisors(x.shape[2:], (out_h, out_w), attrs))


AVG_ATTRS = {"kernel_size": Attr("ints"), "stride": Attr("ints"), "padding": Attr("ints", (0, 0)),
             "ceil_mode": Attr("bool", False), "count_include_pad": Attr("bool", True),
             "divisor_override": Attr("int", None, optional=True)}


def _avg_pool2d_grad_rule(b, node, g):
    return [b.avg_pool2d_grad(g, input_shape=node.inputs[0].shape, **node.attrs)]


register(OpDef(
    name="avg_pool2d", family="window", inputs=("input",),
    attrs=AVG_ATTRS,
    canonicalize=_canonicalize_pairs("kernel_size", "stride", "padding"),
    shape_rule=_avg_pool2d_shape, reference=_avg_pool2d_reference, grad=_avg_pool2d_grad_rule,
    lower=_lower_avg_pool2d, cheap=True,
    doc="mean over each window of an NCHW input: the sum of its real elements divided by "
        "divisor_override, else by its size counting padding (count_include_pad) or not; "
        "i64 divides toward zero",
))


# -- avg_pool2d_grad --------------------------------------------------------------------------

def _avg_pool2d_grad_shape(types, attrs):
    grad_output, input_shape = types[0], attrs["input_shape"]
    _check_avg_attrs(grad_output.dtype, attrs, "grad_output")
    pooled = _pooled_shape(input_shape, attrs)
    if grad_output.shape != pooled:
        raise ShapeMismatch(f"grad_output has shape {list(grad_output.shape)} but avg_pool2d of an "
                            f"input of shape {list(input_shape)} gives {list(pooled)}")
    return TensorType(input_shape, grad_output.dtype)


def _avg_pool2d_grad_reference(xs, attrs):
    grad_output, input_shape = xs[0], attrs["input_shape"]
    input_hw, output_hw = input_shape[2:], grad_output.shape[2:]
    share = _divide_like_torch(grad_output, _avg_divisors(input_hw, output_hw, attrs))
    zero = np.zeros((), share.dtype)
    grad = np.zeros(input_shape, grad_output.dtype)
    everything = slice(None)
    for rows, cols, inside in _window_taps(input_hw, output_hw, attrs):
        # Taps outside the input were clipped onto its border; they add zero there.
        np.add.at(grad, (everything, everything, rows, cols), np.where(inside, share, zero))
    return grad


def _avg_pool2d_grad_grad_rule(b, node, g):
    # avg_pool2d is linear, and this op is its transpose; the transpose of that is avg_pool2d.
    pool_attrs = {name: value for name, value in node.attrs.items() if name != "input_shape"}
    return [b.avg_pool2d(g, **pool_attrs)]


register(OpDef(
    name="avg_pool2d_grad", family="window", inputs=("grad_output",),
    attrs={**AVG_ATTRS, "input_shape": Attr("ints")},
    canonicalize=_canonicalize_pairs("kernel_size", "stride", "padding"),
    shape_rule=_avg_pool2d_grad_shape, reference=_avg_pool2d_grad_reference, lower=_lower_avg_pool2d_grad,
    grad=_avg_pool2d_grad_grad_rule,
    doc="gradient of avg_pool2d: each window's grad_output, divided by the window's divisor, "
        "spread over its real input elements (an input of shape input_shape)",
))
