"""2-D convolution (NCHW, no bias) and the two ops that form its gradient.

- ``conv2d(input, weight)``: input [N,C,H,W], weight [O,C/groups,kh,kw] -> [N,O,Ho,Wo].
- ``conv_transpose2d(input, weight)``: the adjoint of conv2d with respect to its
  input (PyTorch's conv_transpose2d); weight [Cin,Cout/groups,kh,kw].
- ``conv2d_weight_grad(input, grad_output)``: conv2d's gradient with respect to
  its weight, [O,C/groups,kh,kw].

The three are closed under differentiation: each one's gradient is built from
the three again, so autodiff of a CNN (to any order) needs no other op.  Bias
is an elementwise add that the frontend emits.

The numpy references work on im2col views: ``_receptive_fields`` gives every
output pixel's input window as a strided view, and one grouped ``einsum``
contracts it with the weight, so no Python loop touches pixels or the batch.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from .lowering import guarded_load, padded_load, strided, window_coordinate, window_origin
from .registry import Attr, OpDef, ShapeMismatch, register

WINDOW_ATTRS = {
    "stride": Attr("ints", (1, 1)),
    "padding": Attr("ints", (0, 0)),
    "dilation": Attr("ints", (1, 1)),
    "groups": Attr("int", 1),
}


def _window_attrs(attrs: dict) -> dict:
    """The stride/padding/dilation/groups of ``attrs``, to pass on to another conv op."""
    return {name: attrs[name] for name in WINDOW_ATTRS}


# -- validation and output sizes -------------------------------------------------

def _check_pair(attrs: dict, name: str, minimum: int) -> None:
    values = attrs[name]
    if len(values) != 2:
        raise ShapeMismatch(f"{name} must have 2 values (height, width), got {list(values)}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else "non-negative"
        raise ShapeMismatch(f"{name} must be {bound}, got {list(values)}")


def _check_window_attrs(attrs: dict) -> None:
    _check_pair(attrs, "stride", 1)
    _check_pair(attrs, "padding", 0)
    _check_pair(attrs, "dilation", 1)
    if attrs["groups"] < 1:
        raise ShapeMismatch(f"groups must be positive, got {attrs['groups']}")


def _check_operands(x: TensorType, other: TensorType, other_name: str) -> None:
    for name, t in (("input", x), (other_name, other)):
        if t.rank != 4:
            raise ShapeMismatch(f"{name} must be 4-D, got rank {t.rank}")
    if x.dtype != other.dtype:
        raise ShapeMismatch(f"dtypes {x.dtype} and {other.dtype} differ (cast one operand first)")
    if not x.dtype.is_float:
        raise ShapeMismatch(f"operands must be floating point, got {x.dtype}")


def _check_divisible(what: str, count: int, groups: int) -> None:
    if count % groups:
        raise ShapeMismatch(f"{count} {what} are not divisible by groups={groups}")


def _expected_channels(per_group: int, groups: int) -> str:
    if groups == 1:
        return str(per_group)
    return f"{per_group * groups} ({per_group} per group x {groups} groups)"


def _dilated(kernel_hw, dilation) -> tuple[int, int]:
    """The extent of a kernel whose taps are ``dilation`` apart."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel_hw, dilation))


def _conv_output_hw(input_hw, kernel_hw, attrs: dict) -> tuple[int, int]:
    """conv2d's Ho, Wo: floor((H + 2p - d(k-1) - 1) / s) + 1, which must be at least 1."""
    padded = tuple(size + 2 * p for size, p in zip(input_hw, attrs["padding"]))
    extent = _dilated(kernel_hw, attrs["dilation"])
    if any(size < e for size, e in zip(padded, extent)):
        (h, w), (eh, ew) = input_hw, extent
        raise ShapeMismatch(f"input {h}x{w} is smaller than the dilated kernel {eh}x{ew} after padding")
    return tuple((size - e) // s + 1 for size, e, s in zip(padded, extent, attrs["stride"]))


def _transpose_output_hw(input_hw, kernel_hw, attrs: dict) -> tuple[int, int]:
    """conv_transpose2d's Ho, Wo: (H-1)s - 2p + d(k-1) + output_padding + 1."""
    full = tuple((size - 1) * s + e + op for size, s, e, op in
                 zip(input_hw, attrs["stride"], _dilated(kernel_hw, attrs["dilation"]),
                     attrs["output_padding"]))
    out = tuple(f - 2 * p for f, p in zip(full, attrs["padding"]))
    if min(out) < 1:
        raise ShapeMismatch(f"padding {list(attrs['padding'])} trims away the whole {full[0]}x{full[1]} "
                            f"result (output would be {out[0]}x{out[1]})")
    return out


def _check_output_padding(attrs: dict) -> None:
    _check_pair(attrs, "output_padding", 0)
    for op, s, d in zip(attrs["output_padding"], attrs["stride"], attrs["dilation"]):
        if op >= s and op >= d:
            raise ShapeMismatch(f"output_padding {list(attrs['output_padding'])} must be smaller than "
                                f"either stride {list(attrs['stride'])} or dilation {list(attrs['dilation'])}")


# -- shape rules --------------------------------------------------------------------

def _conv2d_shape(types, attrs):
    x, w = types
    _check_operands(x, w, "weight")
    _check_window_attrs(attrs)
    (n, c, h, wd), (o, c_per_group, kh, kw) = x.shape, w.shape
    groups = attrs["groups"]
    _check_divisible("weight output channels", o, groups)
    if c != c_per_group * groups:
        raise ShapeMismatch(f"input has {c} channels but weight expects {_expected_channels(c_per_group, groups)}")
    return TensorType((n, o, *_conv_output_hw((h, wd), (kh, kw), attrs)), x.dtype)


def _conv_transpose2d_shape(types, attrs):
    x, w = types
    _check_operands(x, w, "weight")
    _check_window_attrs(attrs)
    _check_output_padding(attrs)
    (n, c, h, wd), (c_weight, out_per_group, kh, kw) = x.shape, w.shape
    groups = attrs["groups"]
    if c != c_weight:
        raise ShapeMismatch(f"input has {c} channels but weight expects {c_weight}")
    _check_divisible("input channels", c, groups)
    return TensorType((n, out_per_group * groups, *_transpose_output_hw((h, wd), (kh, kw), attrs)), x.dtype)


def _conv2d_weight_grad_shape(types, attrs):
    x, gy = types
    _check_operands(x, gy, "grad_output")
    _check_window_attrs(attrs)
    _check_pair(attrs, "kernel_size", 1)
    (n, c, h, w), (n_grad, o, ho, wo) = x.shape, gy.shape
    groups = attrs["groups"]
    if n != n_grad:
        raise ShapeMismatch(f"input has batch size {n} but grad_output has {n_grad}")
    _check_divisible("input channels", c, groups)
    _check_divisible("grad_output channels", o, groups)
    expected = _conv_output_hw((h, w), attrs["kernel_size"], attrs)
    if (ho, wo) != expected:
        raise ShapeMismatch(f"grad_output is {ho}x{wo} but conv2d of the {h}x{w} input gives "
                            f"{expected[0]}x{expected[1]}")
    return TensorType((o, c // groups, *attrs["kernel_size"]), x.dtype)


# -- numpy references ------------------------------------------------------------------

def _split_groups(a: np.ndarray, groups: int, axis: int) -> np.ndarray:
    """Split ``axis`` (channels) into (groups, channels per group)."""
    return a.reshape(*a.shape[:axis], groups, a.shape[axis] // groups, *a.shape[axis + 1:])


def _merge_groups(a: np.ndarray, axis: int) -> np.ndarray:
    """Merge ``axis`` (groups) and the next one (channels per group) back into channels."""
    return a.reshape(*a.shape[:axis], a.shape[axis] * a.shape[axis + 1], *a.shape[axis + 2:])


def _receptive_fields(x: np.ndarray, kernel_hw, attrs: dict) -> np.ndarray:
    """Each output pixel's input window: a view [N, C, Ho, Wo, kh, kw] of the zero-padded input."""
    (ph, pw), (sh, sw), (dh, dw) = attrs["padding"], attrs["stride"], attrs["dilation"]
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(padded, _dilated(kernel_hw, attrs["dilation"]), axis=(2, 3))
    return windows[:, :, ::sh, ::sw, ::dh, ::dw]


def _conv2d_reference(arrays, attrs):
    x, w = arrays
    groups = attrs["groups"]
    fields = _split_groups(_receptive_fields(x, w.shape[2:], attrs), groups, axis=1)
    out = np.einsum("ngchwij,gocij->ngohw", fields, _split_groups(w, groups, axis=0), optimize=True)
    return _merge_groups(out, axis=1)


def _conv2d_weight_grad_reference(arrays, attrs):
    x, gy = arrays
    groups = attrs["groups"]
    fields = _split_groups(_receptive_fields(x, attrs["kernel_size"], attrs), groups, axis=1)
    grad = np.einsum("ngohw,ngchwij->gocij", _split_groups(gy, groups, axis=1), fields, optimize=True)
    return _merge_groups(grad, axis=0)


def _conv_transpose2d_reference(arrays, attrs):
    # Every input pixel spreads input * weight over a kernel-sized window of the
    # output: compute all those contributions with one einsum, then add them up
    # tap by tap (the adjoint of _receptive_fields), and crop the padding.
    x, w = arrays
    groups = attrs["groups"]
    (n, _, h, wd), (kh, kw) = x.shape, w.shape[2:]
    (sh, sw), (dh, dw), (ph, pw) = attrs["stride"], attrs["dilation"], attrs["padding"]
    ho, wo = _transpose_output_hw((h, wd), (kh, kw), attrs)
    taps = _merge_groups(np.einsum("ngchw,gcoij->ngoijhw", _split_groups(x, groups, axis=1),
                                   _split_groups(w, groups, axis=0), optimize=True), axis=1)
    full = np.zeros((n, taps.shape[1], ho + 2 * ph, wo + 2 * pw), dtype=x.dtype)
    for i in range(kh):
        rows = slice(i * dh, i * dh + (h - 1) * sh + 1, sh)
        for j in range(kw):
            cols = slice(j * dw, j * dw + (wd - 1) * sw + 1, sw)
            full[:, :, rows, cols] += taps[:, :, i, j]
    return full[:, :, ph:ph + ho, pw:pw + wo]


# -- lowerings: each output element a sum over its window ----------------------------------
#
# All three are written as gathers: every output element sums the products it
# needs, so each is computed whole before it is stored (the memory plan's rule)
# and threads never write to one element.  conv_transpose2d, naturally a
# scatter, instead asks for each tap which input pixel (if any) lands here.

def _lower_conv2d(ctx, node, index: Index):
    x, w = node.inputs
    n, o, y, col = index.dims
    out_channels, per_group, kh, kw = w.shape
    group_first = E.mul(E.div(o, out_channels // node.attrs["groups"]), per_group) if node.attrs["groups"] > 1 else 0
    (sh, sw), (ph, pw), (dh, dw) = node.attrs["stride"], node.attrs["padding"], node.attrs["dilation"]

    def update(acc, taps):
        c, i, j = taps
        pixel = padded_load(ctx, x, [n, E.add(group_first, c), window_coordinate(y, i, sh, ph, dh),
                                     window_coordinate(col, j, sw, pw, dw)], E.const(0, x.dtype))
        return E.add(acc, E.mul(pixel, ctx.value(w, Index.of(w.shape, (o, c, i, j)))))
    return ctx.reduce(E.const(0, node.dtype), [per_group, kh, kw], update, sums=True,
                      strided=strided(node.attrs))


def _lower_conv_transpose2d(ctx, node, index: Index):
    x, w = node.inputs
    n, o, y, col = index.dims
    in_channels, out_per_group, kh, kw = w.shape
    in_per_group = in_channels // node.attrs["groups"]
    group_first = E.mul(E.div(o, out_per_group), in_per_group)
    o_in_group = E.rem(o, out_per_group) if node.attrs["groups"] > 1 else o
    (sh, sw), (ph, pw), (dh, dw) = node.attrs["stride"], node.attrs["padding"], node.attrs["dilation"]
    height, width = x.shape[2:]

    def update(acc, taps):
        c, i, j = taps
        row, row_exists = window_origin(y, i, sh, ph, dh, height)
        column, column_exists = window_origin(col, j, sw, pw, dw, width)
        channel = E.add(group_first, c)
        exists = E.logical_and(row_exists, column_exists)
        product = E.mul(guarded_load(ctx, x, [n, channel, row, column], exists),
                        ctx.value(w, Index.of(w.shape, (channel, o_in_group, i, j))))
        return E.select(exists, E.add(acc, product), acc)
    return ctx.reduce(E.const(0, node.dtype), [in_per_group, kh, kw], update, sums=True,
                      strided=strided(node.attrs))


def _lower_conv2d_weight_grad(ctx, node, index: Index):
    x, gy = node.inputs
    o, c, i, j = index.dims
    batch, out_channels, out_h, out_w = gy.shape
    per_group = x.shape[1] // node.attrs["groups"]
    channel = E.add(E.mul(E.div(o, out_channels // node.attrs["groups"]), per_group), c) if node.attrs["groups"] > 1 else c
    (sh, sw), (ph, pw), (dh, dw) = node.attrs["stride"], node.attrs["padding"], node.attrs["dilation"]

    def update(acc, positions):
        n, y, col = positions
        pixel = padded_load(ctx, x, [n, channel, window_coordinate(y, i, sh, ph, dh),
                                     window_coordinate(col, j, sw, pw, dw)], E.const(0, x.dtype))
        return E.add(acc, E.mul(pixel, ctx.value(gy, Index.of(gy.shape, (n, o, y, col)))))
    return ctx.reduce(E.const(0, node.dtype), [batch, out_h, out_w], update, sums=True)


# -- gradient rules ---------------------------------------------------------------------

def _conv2d_input_grad(b, grad_output, weight, input_shape, attrs: dict):
    """The vector-Jacobian product of conv2d with respect to its input.

    A stride > 1 can leave the input's last rows/columns outside every window;
    output_padding restores them (as zeros) so the result has the input's shape.
    """
    extent = _dilated(weight.shape[2:], attrs["dilation"])
    leftover = tuple((size + 2 * p - e) % s for size, p, e, s in
                     zip(input_shape[2:], attrs["padding"], extent, attrs["stride"]))
    return b.conv_transpose2d(grad_output, weight, output_padding=leftover, **_window_attrs(attrs))


def _conv2d_grads(b, node, g):
    x, w = node.inputs
    return [_conv2d_input_grad(b, g, w, x.shape, node.attrs),
            b.conv2d_weight_grad(x, g, kernel_size=w.shape[2:], **_window_attrs(node.attrs))]


def _conv_transpose2d_grads(b, node, g):
    # conv_transpose2d(x, w) is the adjoint of z -> conv2d(z, w), so its
    # gradients are conv2d(g, w) for x and conv2d's weight gradient with the
    # roles swapped, conv2d_weight_grad(g, x), for w.  When output_padding >=
    # stride (allowed where dilation is larger) the padded rows/columns hold
    # whole extra conv2d windows: conv2d(g, w) then covers `extra` more rows/
    # columns than x has, so it is sliced down to x, and x is zero-padded up
    # to it for the weight gradient (the zeros contribute nothing).
    x, w = node.inputs
    attrs = _window_attrs(node.attrs)
    extra = [op // s for op, s in zip(node.attrs["output_padding"], node.attrs["stride"])]
    x_grad = b.conv2d(g, w, **attrs)
    x_matched = x
    if any(extra):
        x_grad = b.slice(x_grad, starts=(0, 0, 0, 0), stops=x.shape, steps=(1, 1, 1, 1))
        x_matched = b.pad(x, pads=(0, 0, 0, 0, 0, extra[0], 0, extra[1]))
    return [x_grad, b.conv2d_weight_grad(g, x_matched, kernel_size=w.shape[2:], **attrs)]


def _conv2d_weight_grad_grads(b, node, g):
    # The weight gradient is bilinear in (input, grad_output): <g, W(x, gy)>
    # equals <gy, conv2d(x, g)>, so each factor's gradient is a convolution with g.
    x, gy = node.inputs
    return [_conv2d_input_grad(b, gy, g, x.shape, node.attrs),
            b.conv2d(x, g, **_window_attrs(node.attrs))]


# -- registrations -------------------------------------------------------------------------

register(OpDef(
    name="conv2d", family="contraction", inputs=("input", "weight"),
    attrs=dict(WINDOW_ATTRS),
    shape_rule=_conv2d_shape, reference=_conv2d_reference, grad=_conv2d_grads, lower=_lower_conv2d,
    doc="input [N,C,H,W] * weight [O,C/groups,kh,kw] -> [N,O,Ho,Wo], "
        "Ho = floor((H + 2p - d(kh-1) - 1) / s) + 1; cross-correlation as in PyTorch, no bias",
))

register(OpDef(
    name="conv_transpose2d", family="contraction", inputs=("input", "weight"),
    attrs={**WINDOW_ATTRS, "output_padding": Attr("ints", (0, 0))},
    shape_rule=_conv_transpose2d_shape, reference=_conv_transpose2d_reference, grad=_conv_transpose2d_grads,
    lower=_lower_conv_transpose2d,
    doc="input [N,Cin,H,W], weight [Cin,Cout/groups,kh,kw] -> [N,Cout,Ho,Wo], "
        "Ho = (H-1)s - 2p + d(kh-1) + output_padding + 1; the adjoint of conv2d in its input",
))

register(OpDef(
    name="conv2d_weight_grad", family="contraction", inputs=("input", "grad_output"),
    attrs={**WINDOW_ATTRS, "kernel_size": Attr("ints")},
    shape_rule=_conv2d_weight_grad_shape, reference=_conv2d_weight_grad_reference,
    grad=_conv2d_weight_grad_grads, lower=_lower_conv2d_weight_grad,
    doc="conv2d's gradient w.r.t. its weight: input [N,C,H,W], grad_output [N,O,Ho,Wo] "
        "-> [O,C/groups,kh,kw]",
))
