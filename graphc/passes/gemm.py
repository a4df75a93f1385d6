"""The "gemm" pass: convolutions and transposed products in the form register tiles compute.

A matmul's register tiles (graphc.kernel.target) read the right operand a row
at a time, contiguous, and store the output in order; the left operand they
read one element at a time, through any transpose.  This pass brings every
contraction into that form.

**Convolutions** become matrix products over unfolded windows (im2col).

A convolution's arithmetic is a matrix product once every window is laid out
as a column (``unfold``, see graphc.ops.unfold):

    conv2d(x, w)              = w[O, C*kh*kw] @ unfold(x)[n]                 -> [N, O, Ho*Wo]
    conv2d_weight_grad(x, gy) = (unfold(x) as [C*kh*kw, N*Ho*Wo] @ gy as [N*Ho*Wo, O])^T
    conv_transpose2d(x, w)    = fold(w as [Cout*kh*kw, Cin] @ x[n] as [Cin, H*W])

so all three run in the matmul's register tiles (graphc.kernel.target), with
the windows' index arithmetic and padding done once per element by the
unfold/fold gathers rather than once per multiply-add.  The unfolded input
costs memory (C*kh*kw values per output pixel), which the memory plan
reuses as soon as the product has read it.

Grouped convolutions, conv2d with fewer than ``MIN_GEMM_CHANNELS`` output
channels or with few channels over wide rows (``NARROW_CHANNELS``; those run
in register tiles of their own, see graphc.kernel.lower), and transposed ones
whose output_padding reaches a whole extra window, keep their direct lowering.

**A transposed product** (AB)^T, a Linear layer's weight gradient, becomes
B^T A^T: stored in order, its right operand A^T = (x^T)^T simplifies to x.

**A product with a transposed right operand**, x @ W^T (a Linear layer), needs
W^T stored first, unless it has few rows (a small batch): then each output is
the dot product of two rows, read as they are stored (graphc.ops.linalg).
Where W is large (``MIN_UNCOPIED_TRANSPOSE``) and larger than the batch and the
result together (the DCGAN generator's 1024 -> 6272 weight is 25 MB), the pass
computes (W @ x^T)^T instead: it transposes the small x, and stores the result
transposed.

The rewrites are exact algebra up to rounding (sums in another order).
"""
from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph, Node
from ..ops.conv import _conv_output_hw
from ..ops.linalg import computes_dot_products
from .manager import register_pass
from .simplify import NewNode, Rewriter

WINDOW = ("stride", "padding", "dilation")
# Whether a value's one reader is the given node (and the value leaves the graph no other way).
ReadOnlyBy = Callable[[Node, Node], bool]
# A conv2d with fewer output channels than this keeps its direct lowering: each unfolded value
# (C*kh*kw of them per pixel, written and read once) would serve too few multiply-adds to pay
# for itself.  Its weight gradient, whose direct lowering sums a whole batch per weight, is a
# product whatever the channels.
MIN_GEMM_CHANNELS = 4
# An image whose output pixels fill less than MIN_COLUMN_USE of the register tiles' columns
# they take (tiles of this many columns: AVX2's; AVX-512's are twice as wide, and a last narrow
# tile is padded to whole vectors) is convolved in one product over the whole batch, its columns
# all images' pixels side by side.  The DCGAN's 7x7 images (49 pixels in 64 columns) run 1.3x
# faster so; CNN's 13x13 (169 in 176) and LeNet's 10x10 (100 in 112) 3-11% slower, their
# products stored back image by image across the tiles' lanes.
WHOLE_TILE_COLUMNS = 16
MIN_COLUMN_USE = 0.85
# A weight gradient with at most this many output channels (a register tile's lanes on AVX2,
# half of AVX-512's) puts the channels in its rows and the taps in its lanes: its result is then
# stored in order, where with the channels in its lanes it would be stored transposed, lane by
# lane (the same run time on LeNet's 16-channel layer, and a tenth of LeNet's LLVM time to compile
# that kernel's scattered stores).  A conv2d with fewer, unstrided, whose
# output rows fill a tile's columns (WHOLE_TILE_COLUMNS), keeps its direct lowering too: it runs
# in register tiles of its own, the channels as rows and an output row as the lanes, reading the
# input where it lies.  An unfold would write and read every input value kh*kw times to serve as
# few multiply-adds as there are channels: LeNet's first layer (6 channels of 3x5x5 windows) at
# batch 4 took 10 us to unfold and 13 to multiply, where its direct tiles take 14 in all.
NARROW_CHANNELS = 16
# A transposed right operand of at least this many elements (4 MB of floats) is not copied
# transposed each step; a smaller one is (a copy costs less than storing the product transposed
# and transposing it back for the next layer, as a chain of Linear layers would).
MIN_UNCOPIED_TRANSPOSE = 1 << 20


def gemm(graph: Graph, options=None) -> Graph:
    """Rewrite convolutions as unfold/fold and matmul, transposed products as products of transposes."""
    if not any(node.op in _REWRITES for node in graph.nodes):
        return graph
    users = graph.users()
    escaping = {*graph.outputs, *(value for _, value in graph.writes)}

    def read_only_by(value: Node, reader: Node) -> bool:
        return users[value] == [reader] and value not in escaping

    rewriter = Rewriter(graph)
    for node in graph.nodes:
        rewrite = _REWRITES.get(node.op)
        if rewrite is not None and rewrite(rewriter, node, read_only_by):
            continue
        rewriter.copy(node)
    return rewriter.finish()


def _transposed_product(rewriter: Rewriter, node: Node, read_only_by: ReadOnlyBy) -> bool:
    """permute(matmul(a, b), [1, 0]) -> matmul(permute(b), permute(a)) for 2-D a and b (where
    nothing else reads the product, which would then be computed twice)."""
    (product,) = node.inputs
    if (product.op != "matmul" or node.attrs["dims"] != (1, 0) or not read_only_by(product, node)
            or any(x.type.rank != 2 for x in product.inputs)):
        return False
    b = rewriter.builder
    b.loc = node.loc
    lhs, rhs = rewriter.values(product.inputs)
    transposed = [b.permute(rhs, dims=(1, 0)), b.permute(lhs, dims=(1, 0))]
    b.loc = None
    rewriter.emit(node, NewNode.of("matmul", transposed))
    return True


def _window(node: Node, kernel_size) -> dict:
    return {"kernel_size": tuple(kernel_size), **{name: tuple(node.attrs[name]) for name in WINDOW}}


def _is_identity_window(window: dict) -> bool:
    """A 1x1 window at stride 1, unpadded: every pixel is its own column, so unfold is a reshape."""
    return all(tuple(window[k]) == v for k, v in
               (("kernel_size", (1, 1)), ("stride", (1, 1)), ("padding", (0, 0))))


def _columns(b, x: Node, window: dict) -> Node:
    """``x`` [N,C,H,W] unfolded: [N, C*kh*kw, L]."""
    n, c, h, w = x.shape
    if _is_identity_window(window):
        return b.reshape(x, shape=(n, c, h * w))
    return b.unfold(x, **window)


def _transposed_right_operand(rewriter: Rewriter, node: Node, read_only_by: ReadOnlyBy) -> bool:
    """matmul(a, permute(w)) -> permute(matmul(w, permute(a))) for 2-D a and w, where w is large,
    and the larger to transpose (and not itself a transpose, which simplify cancels).  A product
    of dot products (few rows, see graphc.ops.linalg.computes_dot_products) reads w as it is."""
    lhs, rhs = node.inputs
    if (rhs.op != "permute" or rhs.inputs[0].op == "permute" or lhs.type.rank != 2 or rhs.type.rank != 2
            or rhs.type.numel <= lhs.type.numel + node.type.numel):
        return False
    if rhs.type.numel < MIN_UNCOPIED_TRANSPOSE or computes_dot_products(node):
        return False
    b = rewriter.builder
    b.loc = node.loc
    a, (w,) = rewriter.value(lhs), rewriter.values(rhs.inputs)
    product = b.matmul(w, b.permute(a, dims=(1, 0)))
    b.loc = None
    rewriter.emit(node, NewNode.of("permute", [product], dims=(1, 0)))
    return True


def _conv2d(rewriter: Rewriter, node: Node, read_only_by: ReadOnlyBy) -> bool:
    if node.attrs["groups"] != 1 or node.shape[1] < MIN_GEMM_CHANNELS or _direct_tiles_win(node):
        return False
    b = rewriter.builder
    b.loc = node.loc
    x, w = rewriter.values(node.inputs)
    out_channels, _, kh, kw = w.shape
    weights = b.reshape(w, shape=(out_channels, w.type.numel // out_channels))
    batch, pixels = node.shape[0], node.shape[2] * node.shape[3]
    window = _window(node, (kh, kw))
    if _ragged(pixels) and not _is_identity_window(window):
        # One product over the whole batch's windows, [O, N*L], stored as [N, O, L]: its rows
        # of N*L columns fill whole tiles where one image's L would leave a sliver.
        columns = b.reshape(b.unfold(x, layout="taps_first", **window), shape=(weights.shape[1], batch * pixels))
        by_image = b.permute(b.reshape(b.matmul(weights, columns), shape=(out_channels, batch, pixels)), dims=(1, 0, 2))
        b.loc = None
        rewriter.emit(node, NewNode.of("reshape", [by_image], shape=node.shape))
        return True
    product = b.matmul(weights, _columns(b, x, window))
    b.loc = None
    rewriter.emit(node, NewNode.of("reshape", [product], shape=node.shape))
    return True


def _direct_tiles_win(node: Node) -> bool:
    """Whether a conv2d runs faster in its own register tiles than as a product (NARROW_CHANNELS)."""
    unstrided = all(tuple(node.attrs[name]) == (1, 1) for name in ("stride", "dilation"))
    return node.shape[1] < NARROW_CHANNELS and unstrided and node.shape[3] >= WHOLE_TILE_COLUMNS


def _ragged(pixels: int) -> bool:
    """Whether an image's L output pixels would leave too much of its last register tile's
    columns unused (MIN_COLUMN_USE)."""
    tiles = -(-pixels // WHOLE_TILE_COLUMNS)
    return pixels < MIN_COLUMN_USE * tiles * WHOLE_TILE_COLUMNS


def _conv2d_weight_grad(rewriter: Rewriter, node: Node, read_only_by: ReadOnlyBy) -> bool:
    """gw[O, C*kh*kw] as the transpose of unfold(x) [C*kh*kw, N*L] @ gy [N*L, O].  The columns are
    unfolded again, taps first, rather than kept from the forward pass (a whole unfolded input per
    convolution, alive from the forward pass to the backward); the right operand is a block
    transpose of the output gradient, a row of O channels per pixel.  With at most
    NARROW_CHANNELS output channels, rows that narrow would fill a fraction of a register tile:
    there gw = gy [O, N*L] @ unfold(x, taps last) [N*L, C*kh*kw], its rows the channels."""
    if node.attrs["groups"] != 1:
        return False
    b = rewriter.builder
    b.loc = node.loc
    x, gy = rewriter.values(node.inputs)
    batch, out_channels, ho, wo = gy.shape
    window = _window(node, node.attrs["kernel_size"])
    if out_channels <= NARROW_CHANNELS and not _is_identity_window(window):
        taps_last = b.unfold(x, layout="taps_last", **window)              # [N, L, C*kh*kw]
        by_pixel = b.reshape(taps_last, shape=(batch * ho * wo, taps_last.shape[2]))
        by_channel = b.reshape(b.permute(b.reshape(gy, shape=(batch, out_channels, ho * wo)), dims=(1, 0, 2)),
                               shape=(out_channels, batch * ho * wo))
        product = b.matmul(by_channel, by_pixel)                            # [O, C*kh*kw]
        b.loc = None
        rewriter.emit(node, NewNode.of("reshape", [product], shape=node.shape))
        return True
    if _is_identity_window(window):
        taps_first = b.permute(_columns(b, x, window), dims=(1, 0, 2))
    else:
        taps_first = b.unfold(x, layout="taps_first", **window)             # [C*kh*kw, N, L]
    by_tap = b.reshape(taps_first, shape=(taps_first.shape[0], batch * ho * wo))
    by_pixel = b.reshape(b.permute(b.reshape(gy, shape=(batch, out_channels, ho * wo)), dims=(0, 2, 1)),
                         shape=(batch * ho * wo, out_channels))
    transposed = b.matmul(by_tap, by_pixel)                                 # [C*kh*kw, O]
    b.loc = None
    rewriter.emit(node, NewNode.of("reshape", [b.permute(transposed, dims=(1, 0))], shape=node.shape))
    return True


def _conv_transpose2d(rewriter: Rewriter, node: Node, read_only_by: ReadOnlyBy) -> bool:
    x, w = node.inputs
    in_channels, out_channels, kh, kw = w.shape
    window = _window(node, (kh, kw))
    if node.attrs["groups"] != 1:
        return False
    # fold's windows must be x's pixels: not so where output_padding adds a whole window.
    if _conv_output_hw(node.shape[2:], (kh, kw), window) != tuple(x.shape[2:]):
        return False
    b = rewriter.builder
    b.loc = node.loc
    x, w = rewriter.values(node.inputs)
    batch, _, h, wd = x.shape
    weights = b.permute(b.reshape(w, shape=(in_channels, out_channels * kh * kw)), dims=(1, 0))
    layout = "columns"
    if _ragged(h * wd):
        # The whole batch's pixels as the product's columns (see _conv2d): [O*kh*kw, N, L], which
        # fold reads as it is (taps first), where storing it as [N, O*kh*kw, L] would scatter
        # the product's rows lane by lane across images (DCGAN's 7x7 input: 3.4-4.0 ms for 2.8-3.0).
        pixels = b.reshape(b.permute(b.reshape(x, shape=(batch, in_channels, h * wd)), dims=(1, 0, 2)),
                           shape=(in_channels, batch * h * wd))
        columns = b.reshape(b.matmul(weights, pixels), shape=(out_channels * kh * kw, batch, h * wd))
        layout = "taps_first"
        if _is_identity_window(window):
            columns = b.permute(columns, dims=(1, 0, 2))
    else:
        columns = b.matmul(weights, b.reshape(x, shape=(batch, in_channels, h * wd)))
    b.loc = None
    if _is_identity_window(window):
        rewriter.emit(node, NewNode.of("reshape", [columns], shape=node.shape))
    else:
        rewriter.emit(node, NewNode.of("fold", [columns], output_size=tuple(node.shape[2:]), layout=layout, **window))
    return True


_REWRITES = {"conv2d": _conv2d, "conv2d_weight_grad": _conv2d_weight_grad, "conv_transpose2d": _conv_transpose2d,
             "permute": _transposed_product, "matmul": _transposed_right_operand}

register_pass("gemm", gemm)
