"""Sliding windows as columns (``unfold``, im2col) and back, summed (``fold``, col2im).

- ``unfold(input)``: input [N,C,H,W] -> [N, C*kh*kw, L], column l holding the
  (zero-padded) window of output position l = y*Wo + x, row c*kh*kw + i*kw + j
  its tap (c, i, j): ``torch.nn.functional.unfold``.  Its ``layout`` puts the
  taps first, [C*kh*kw, N, L], or last, [N, L, C*kh*kw]: an operand of a
  convolution's weight gradient, all batches' windows side by side
  (graphc.passes.gemm).
- ``fold(input)``: [N, C*kh*kw, L] -> [N, C, H, W] with every column's taps
  added into the window they came from: ``torch.nn.functional.fold``, the adjoint
  of unfold (each is the other's gradient).  Its ``layout`` reads the columns as
  unfold's puts them: taps first, a transposed convolution's product over the
  whole batch, [C*kh*kw, N, L], folds as it is stored.

With them a convolution is a matrix product (``graphc.passes.conv_gemm``):
conv2d(x, w) = w[O, C*kh*kw] @ unfold(x), and conv_transpose2d is fold of the
transposed product, so every convolution's arithmetic runs in the matmul's
register tiles while the window bookkeeping stays in these two cheap gathers.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from .conv import _check_pair, _conv_output_hw, _receptive_fields
from .lowering import guarded_load, padded_load, strided, window_coordinate, window_origin
from .registry import Attr, OpDef, ShapeMismatch, register

# The axes of unfold's output (and fold's input), by layout: N the batch, T the taps (C*kh*kw),
# L the windows (Ho*Wo).
LAYOUTS = {"columns": "NTL", "taps_first": "TNL", "taps_last": "NLT"}
_AXIS_NAMES = {"N": "N", "T": "C*kh*kw", "L": "L"}

WINDOW_ATTRS = {
    "kernel_size": Attr("ints"),
    "stride": Attr("ints", (1, 1)),
    "padding": Attr("ints", (0, 0)),
    "dilation": Attr("ints", (1, 1)),
}


def _window(attrs: dict) -> dict:
    return {name: attrs[name] for name in WINDOW_ATTRS}


def _check_window(attrs: dict) -> None:
    _check_pair(attrs, "kernel_size", 1)
    _check_pair(attrs, "stride", 1)
    _check_pair(attrs, "padding", 0)
    _check_pair(attrs, "dilation", 1)


def _taps(attrs: dict) -> int:
    kh, kw = attrs["kernel_size"]
    return kh * kw


def _layout(attrs: dict) -> str:
    """The axes of the columns in ``attrs``' layout (LAYOUTS), or a ShapeMismatch naming the layouts."""
    if attrs["layout"] not in LAYOUTS:
        raise ShapeMismatch(f"layout must be one of {', '.join(LAYOUTS)}, got {attrs['layout']!r}")
    return LAYOUTS[attrs["layout"]]


def _unfold_shape(types, attrs):
    (x,) = types
    if x.rank != 4:
        raise ShapeMismatch(f"input must be 4-D [N,C,H,W], got rank {x.rank}")
    _check_window(attrs)
    n, c, h, w = x.shape
    ho, wo = _conv_output_hw((h, w), attrs["kernel_size"], attrs)
    sizes = {"N": n, "T": c * _taps(attrs), "L": ho * wo}
    return TensorType(tuple(sizes[axis] for axis in _layout(attrs)), x.dtype)


def _fold_shape(types, attrs):
    (x,) = types
    layout = _layout(attrs)
    if x.rank != 3:
        raise ShapeMismatch(f"input must be 3-D [{', '.join(_AXIS_NAMES[axis] for axis in layout)}], got rank {x.rank}")
    _check_window(attrs)
    _check_pair(attrs, "output_size", 1)
    n, rows, blocks = (x.shape[layout.index(axis)] for axis in "NTL")
    taps = _taps(attrs)
    if rows % taps:
        raise ShapeMismatch(f"{rows} rows are not divisible by the kernel's {taps} taps")
    ho, wo = _conv_output_hw(attrs["output_size"], attrs["kernel_size"], attrs)
    if blocks != ho * wo:
        raise ShapeMismatch(f"input has {blocks} columns but output_size {list(attrs['output_size'])} "
                            f"has {ho}x{wo} = {ho * wo} windows")
    return TensorType((n, rows // taps, *attrs["output_size"]), x.dtype)


def _unfold_reference(arrays, attrs):
    (x,) = arrays
    fields = _receptive_fields(x, attrs["kernel_size"], attrs)          # [N, C, Ho, Wo, kh, kw]
    n, c, ho, wo, kh, kw = fields.shape
    columns = np.ascontiguousarray(fields.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * kh * kw, ho * wo)
    return np.ascontiguousarray(columns.transpose(_from_columns(attrs["layout"])))


def _fold_reference(arrays, attrs):
    (x,) = arrays
    x = x.transpose(tuple(LAYOUTS[attrs["layout"]].index(axis) for axis in "NTL"))      # as [N, T, L]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(attrs).values()
    height, width = attrs["output_size"]
    ho, wo = _conv_output_hw((height, width), (kh, kw), attrs)
    n, rows, _ = x.shape
    taps = x.reshape(n, rows // (kh * kw), kh, kw, ho, wo)
    full = np.zeros((n, rows // (kh * kw), height + 2 * ph, width + 2 * pw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw] += taps[:, :, i, j]
    return full[:, :, ph:ph + height, pw:pw + width]


def _lower_unfold(ctx, node, index: Index):
    (x,) = node.inputs
    layout = LAYOUTS[node.attrs["layout"]]
    n = index.dims[layout.index("N")]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(node.attrs).values()
    channel, i, j = index.split(layout.index("T"), (x.shape[1], kh, kw))
    out_y, out_x = index.split(layout.index("L"), _windows(node))
    y, col = window_coordinate(out_y, i, sh, ph, dh), window_coordinate(out_x, j, sw, pw, dw)
    return padded_load(ctx, x, [n, channel, y, col], E.const(0, x.dtype))


def _windows(node) -> tuple[int, int]:
    """An unfold's output positions as (rows, columns): [Ho, Wo]."""
    return _conv_output_hw(node.inputs[0].shape[2:], node.attrs["kernel_size"], node.attrs)


def _unfold_loops(node):
    # Each window row in a loop of its own: no division per element for its coordinates,
    # and the columns read neighbouring input elements (a vector load, at stride 1).  Taps
    # last, the taps' loops are innermost: each window row's kw taps are neighbours.
    layout = LAYOUTS[node.attrs["layout"]]
    parts = {"N": (node.inputs[0].shape[0],), "L": _windows(node)}
    parts["T"] = (node.inputs[0].shape[1], *node.attrs["kernel_size"]) if layout[-1] == "T" else (node.shape[layout.index("T")],)
    return tuple(parts[axis] for axis in layout)


def _from_columns(layout: str) -> tuple[int, int, int]:
    """The permutation taking torch's [N, T, L] columns to ``layout``."""
    return tuple("NTL".index(axis) for axis in LAYOUTS[layout])


def _lower_fold(ctx, node, index: Index):
    (x,) = node.inputs
    n, channel, y, col = index.dims
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(node.attrs).values()
    ho, wo = _conv_output_hw(node.attrs["output_size"], (kh, kw), node.attrs)
    layout = LAYOUTS[node.attrs["layout"]]

    def update(acc, taps):
        i, j = taps
        row, row_exists = window_origin(y, i, sh, ph, dh, ho)
        column, column_exists = window_origin(col, j, sw, pw, dw, wo)
        coordinates = {"N": n, "T": E.add(E.mul(channel, kh * kw), E.add(E.mul(i, kw), j)),
                       "L": E.add(E.mul(row, wo), column)}
        return E.add(acc, guarded_load(ctx, x, [coordinates[axis] for axis in layout],
                                       E.logical_and(row_exists, column_exists)))
    return ctx.reduce(E.const(0, node.dtype), [kh, kw], update, sums=True, strided=strided(node.attrs))


def _unfold_grad(b, node, g):
    order = _from_columns(node.attrs["layout"])
    if order != (0, 1, 2):
        g = b.permute(g, dims=tuple(order.index(axis) for axis in range(3)))
    return [b.fold(g, output_size=node.inputs[0].shape[2:], **_window(node.attrs))]


register(OpDef(
    name="unfold", family="window", inputs=("input",),
    attrs={**WINDOW_ATTRS, "layout": Attr("str", "columns")},
    shape_rule=_unfold_shape, reference=_unfold_reference,
    grad=_unfold_grad,
    lower=_lower_unfold, loop_axes=_unfold_loops,
    doc="input [N,C,H,W] -> [N, C*kh*kw, Ho*Wo]: each output position's zero-padded window as a column "
        "(torch.nn.functional.unfold, im2col); layout taps_first: [C*kh*kw, N, Ho*Wo], taps_last: "
        "[N, Ho*Wo, C*kh*kw]",
))

register(OpDef(
    name="fold", family="window", inputs=("input",),
    attrs={**WINDOW_ATTRS, "output_size": Attr("ints"), "layout": Attr("str", "columns")},
    shape_rule=_fold_shape, reference=_fold_reference,
    grad=lambda b, node, g: [b.unfold(g, layout=node.attrs["layout"], **_window(node.attrs))],
    lower=_lower_fold,
    doc="input [N, C*kh*kw, L] -> [N, C, *output_size]: each column's taps added into its window "
        "(torch.nn.functional.fold, col2im; the adjoint of unfold); layout taps_first: input "
        "[C*kh*kw, N, L], taps_last: [N, L, C*kh*kw]",
))
