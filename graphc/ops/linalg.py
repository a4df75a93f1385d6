"""Matrix multiplication, plain or batched.

``matmul`` is the one dense contraction primitive besides convolution: Linear
layers, attention-style products and the frontend's ``@`` all lower to it.
It covers exactly what those need, a 2-D or 3-D (batched) operand on each
side; the frontend reshapes other ranks into this form.
"""
from __future__ import annotations

import numpy as np

from ..ir.dtypes import bool_
from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from .grad_helpers import unbroadcast
from .registry import OpDef, ShapeMismatch, register


def _check_operand(name: str, t: TensorType) -> None:
    if t.rank not in (2, 3):
        raise ShapeMismatch(f"{name} must be 2-D [M,K] or 3-D [B,M,K], got rank {t.rank}")


def _batch_shape(lhs: TensorType, rhs: TensorType) -> tuple[int, ...]:
    """The output's batch dims: a 2-D operand is shared by every batch of the other."""
    if lhs.rank == 3 and rhs.rank == 3 and lhs.shape[0] != rhs.shape[0]:
        raise ShapeMismatch(f"batch sizes {lhs.shape[0]} and {rhs.shape[0]} differ")
    return lhs.shape[:-2] if lhs.rank == 3 else rhs.shape[:-2]


def _matmul_shape(types, attrs):
    lhs, rhs = types
    _check_operand("lhs", lhs)
    _check_operand("rhs", rhs)
    if lhs.dtype != rhs.dtype:
        raise ShapeMismatch(f"dtypes {lhs.dtype} and {rhs.dtype} differ (cast one operand first)")
    if lhs.dtype == bool_:
        raise ShapeMismatch("operands must be numeric, got bool")
    (m, k), (k_rhs, n) = lhs.shape[-2:], rhs.shape[-2:]
    if k != k_rhs:
        raise ShapeMismatch(f"lhs has {k} columns but rhs has {k_rhs} rows")
    return TensorType((*_batch_shape(lhs, rhs), m, n), lhs.dtype)


def _transposed(b, x):
    """x with its last two dims swapped (the batch dim, if any, stays first)."""
    dims = (1, 0) if len(x.shape) == 2 else (0, 2, 1)
    return b.permute(x, dims=dims)


def _matmul_grads(b, node, g):
    # A 2-D operand was used by every batch, so its gradient sums over the batch
    # dim; unbroadcast does exactly that (and nothing when the ranks agree).
    lhs, rhs = node.inputs
    return [unbroadcast(b, b.matmul(g, _transposed(b, rhs)), lhs.shape),
            unbroadcast(b, b.matmul(_transposed(b, lhs), g), rhs.shape)]


# A product of at most this many rows by a transposed right operand (x @ W^T, a Linear layer at
# a small batch) computes each output as the dot product of two rows, x[m, :] and W[n, :], read
# along K: as register tiles of rows x N lanes it would fill a few rows of the tile and read
# W^T a lane at a time.
DOT_ROWS = 8
# ... and sums at least this many terms: each output's partial sums, a vector of them, are
# added up at the end, which a short sum would not pay for.
DOT_DEPTH = 64


def computes_dot_products(node) -> bool:
    """Whether a matmul's outputs are dot products of rows read along K (each of the operands
    contiguous there): x @ W^T with few rows (DOT_ROWS), or a product with one column; either
    summing DOT_DEPTH terms or more."""
    lhs, rhs = node.inputs
    if lhs.type.rank != 2 or rhs.type.rank != 2 or lhs.shape[1] < DOT_DEPTH:
        return False
    transposed = rhs.op == "permute" and tuple(rhs.attrs["dims"]) == (1, 0)
    return (transposed and node.shape[0] <= DOT_ROWS) or node.shape[1] == 1


def _operand_views(node) -> tuple[int, ...]:
    # The left operand is read one broadcast element at a time (or a row of a dot product), so
    # through any view; the right one a row of a register tile at a time, which must be
    # contiguous, except in a product of dot products, which reads W^T as W's rows.
    return (0, 1) if computes_dot_products(node) else (0,)


def _lower_matmul(ctx, node, index: Index):
    lhs, rhs = node.inputs
    *batch, m, n = index.dims

    def operand(x, row, column):
        return Index.of(x.shape, (*batch, row, column) if len(x.shape) == 3 else (row, column))

    def update(acc, k):
        (k,) = k
        return E.add(acc, E.mul(ctx.value(lhs, operand(lhs, m, k)), ctx.value(rhs, operand(rhs, k, n))))
    return ctx.reduce(E.const(0, node.dtype), [lhs.shape[-1]], update, sums=True)


register(OpDef(
    name="matmul", family="contraction", inputs=("lhs", "rhs"),
    shape_rule=_matmul_shape,
    reference=lambda xs, a: np.matmul(xs[0], xs[1]),
    grad=_matmul_grads, lower=_lower_matmul, reads_operand_views=_operand_views,
    doc="lhs [M,K] or [B,M,K] @ rhs [K,N] or [B,K,N] -> [M,N] or [B,M,N]; "
        "3-D batch sizes must be equal, a 2-D operand is shared across the batch",
))
