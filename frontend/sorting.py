"""sort, argsort and topk by pairwise comparison, built from the primitives.

An element's place in sorted order is its rank: how many elements come
strictly before it, plus how many equal ones stand earlier in the input (so
the sort is stable, as ``torch.sort(stable=True)``).  The ranks are a
permutation; its inverse, found with one_hot, gives the indices, and a gather
the values, so the values' gradient flows back through gather.  The work is
n**2 comparisons per sorted row: meant for the small dims sorting is used on
(top-k of class scores, a row of a batch), not for sorting millions of numbers.
NaN sorts above every number, as in PyTorch.
"""
from __future__ import annotations

from graphc.ir.dtypes import i64

from .creation import arange
from .dispatch import apply
from .tensor import Tensor, as_tensor, values_indices


def _comes_before(a: Tensor, b: Tensor, descending: bool) -> Tensor:
    """Whether ``a`` sorts strictly before ``b``."""
    before = a > b if descending else a < b
    if a.dtype.is_float:
        a_nan, b_nan = a != a, b != b
        before = before | ((a_nan & ~b_nan) if descending else (b_nan & ~a_nan))
    return before


def _ties(a: Tensor, b: Tensor) -> Tensor:
    tied = a == b
    if a.dtype.is_float:
        tied = tied | ((a != a) & (b != b))
    return tied


def _sorted_order(rows: Tensor, descending: bool) -> Tensor:
    """For each row (the last axis), the input positions in sorted order (i64)."""
    n = rows.shape[-1]
    mine, other = rows.unsqueeze(-1), rows.unsqueeze(-2)        # [..., i, 1] and [..., 1, j]
    position = arange(n)
    earlier = position.reshape(1, n) < position.reshape(n, 1)   # j < i
    ahead = _comes_before(other, mine, descending) | (_ties(other, mine) & earlier)
    rank = ahead.sum(-1)                                        # [..., i]: where element i goes
    # order[r] = the i whose rank is r: one_hot(rank)[..., i, r] is 1 there.
    placed = apply("one_hot", [rank], num_classes=n, dtype=i64)
    return (placed * position.reshape(n, 1)).sum(-2)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """Values and indices along ``dim``; always stable (ties keep their input order)."""
    x = as_tensor(input)
    if x.dim() == 0:
        return values_indices(x.clone(), as_tensor(0))
    rows = x.transpose(dim, -1)
    order = _sorted_order(rows, descending)
    values = apply("gather", [rows, order], axis=rows.dim() - 1)
    return values_indices(values.transpose(dim, -1), order.transpose(dim, -1))


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return sort(input, dim, descending, stable).indices


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The k largest (or smallest) values along ``dim`` and their indices, in sorted order;
    among equal values the earlier one comes first."""
    x = as_tensor(input)
    size = x.shape[dim] if x.dim() else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {dim} of size {size}")
    values, indices = sort(x, dim, descending=largest)
    if x.dim() == 0:
        return values_indices(values, indices)
    return values_indices(values.narrow(dim, 0, k), indices.narrow(dim, 0, k))


__all__ = ["sort", "argsort", "topk"]
