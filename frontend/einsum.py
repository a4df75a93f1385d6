"""torch.einsum, built from permute, reshape, sum and matmul.

Operands are contracted left to right, two at a time: the labels both share
and still need later are a batch, the shared ones nobody needs again are
summed by the matmul, the rest are rows and columns.  A label that only one
operand has and the output does not is summed away first; a label repeated in
one operand (``ii``) takes the diagonal.  ``...`` stands for the same
broadcast dims in every operand.
"""
from __future__ import annotations

import numpy as np

from . import dtypes as _dt
from .creation import tensor as _constant_tensor
from .tensor import Tensor, as_tensor, matmul

# Ellipsis dims get labels that cannot clash with letters.
_ELLIPSIS_LABELS = [chr(0x100 + i) for i in range(64)]


def _expand_ellipsis(subscripts: str, rank: int, ellipsis_rank: int) -> list[str]:
    if "..." not in subscripts:
        if len(subscripts) != rank:
            raise RuntimeError(f"einsum: the subscripts '{subscripts}' name {len(subscripts)} dims but the "
                               f"operand has {rank}")
        return list(subscripts)
    before, after = subscripts.split("...")
    covered = rank - len(before) - len(after)
    if covered < 0:
        raise RuntimeError(f"einsum: the subscripts '{subscripts}' name more dims than the operand's {rank}")
    return list(before) + _ELLIPSIS_LABELS[ellipsis_rank - covered:ellipsis_rank] + list(after)


def _parse(equation: str, operands: list[Tensor]) -> tuple[list[list[str]], list[str]]:
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    subscripts = inputs.split(",")
    if len(subscripts) != len(operands):
        raise RuntimeError(f"einsum: the equation has {len(subscripts)} operands but {len(operands)} were given")
    ellipsis_rank = max((t.dim() - len(s.replace("...", "")) for s, t in zip(subscripts, operands) if "..." in s),
                        default=0)
    labels = [_expand_ellipsis(s, t.dim(), ellipsis_rank) for s, t in zip(subscripts, operands)]
    if arrow:
        out = _expand_ellipsis(output, ellipsis_rank + len(output.replace("...", "")), ellipsis_rank) \
            if "..." in output else list(output)
    else:
        letters = [c for s in subscripts for c in s.replace("...", "")]
        out = _ELLIPSIS_LABELS[:ellipsis_rank] + sorted(c for c in set(letters) if letters.count(c) == 1)
    return labels, out


def _take_diagonals(x: Tensor, labels: list[str]) -> tuple[Tensor, list[str]]:
    """Merge repeated labels of one operand by taking the diagonal."""
    while len(set(labels)) < len(labels):
        label = next(c for c in labels if labels.count(c) > 1)
        first = labels.index(label)
        second = labels.index(label, first + 1)
        n = x.shape[first]
        layout = [1] * x.dim()
        layout[first], layout[second] = n, n
        diagonal = _constant_tensor(np.eye(n, dtype=x.dtype.numpy)).reshape(layout)
        x = (x * diagonal).sum(second, dtype=x.dtype)
        labels = labels[:second] + labels[second + 1:]
    return x, labels


def _sum_labels(x: Tensor, labels: list[str], keep) -> tuple[Tensor, list[str]]:
    """Sum away the labels not in ``keep``."""
    gone = [i for i, c in enumerate(labels) if c not in keep]
    if not gone:
        return x, labels
    return x.sum(gone, dtype=x.dtype), [c for c in labels if c in keep]


def _arranged(x: Tensor, labels: list[str], order: list[str], sizes: dict[str, int]) -> Tensor:
    """``x`` permuted into ``order`` and broadcast to every label's full size."""
    x = x.permute([labels.index(c) for c in order]) if order != labels else x
    full = [sizes[c] for c in order]
    return x.expand(full) if list(x.shape) != full else x


def _contract(a: Tensor, a_labels: list[str], b: Tensor, b_labels: list[str], needed: set[str],
              sizes: dict[str, int]) -> tuple[Tensor, list[str]]:
    shared = [c for c in a_labels if c in b_labels]
    batch = [c for c in shared if c in needed]
    summed = [c for c in shared if c not in needed]
    rows = [c for c in a_labels if c not in shared]
    columns = [c for c in b_labels if c not in shared]

    def size(group):
        return int(np.prod([sizes[c] for c in group], dtype=np.int64))
    left = _arranged(a, a_labels, batch + rows + summed, sizes).reshape(size(batch), size(rows), size(summed))
    right = _arranged(b, b_labels, batch + summed + columns, sizes).reshape(size(batch), size(summed), size(columns))
    product = matmul(left, right).reshape([sizes[c] for c in batch + rows + columns])
    return product, batch + rows + columns


def einsum(equation: str, *operands) -> Tensor:
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [as_tensor(t) for t in operands]
    dtype = _dt.promote(operands)
    operands = [t.type_as_dtype(dtype) for t in operands]
    labels, out = _parse(equation, operands)
    sizes: dict[str, int] = {}
    for t, ls in zip(operands, labels):
        for c, n in zip(ls, t.shape):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise RuntimeError(f"einsum: dim '{c}' has size {sizes[c]} in one operand and {n} in another")
            sizes[c] = max(sizes.get(c, 1), n)
    terms = []
    for i, (t, ls) in enumerate(zip(operands, labels)):
        t, ls = _take_diagonals(t, ls)
        elsewhere = set(out).union(*(labels[j] for j in range(len(labels)) if j != i))
        terms.append(_sum_labels(t, ls, elsewhere))
    result, result_labels = terms[0]
    for k, (t, ls) in enumerate(terms[1:], start=1):
        needed = set(out).union(*(later for _, later in terms[k + 1:]))
        result, result_labels = _sum_labels(result, result_labels, needed | set(ls))
        result, result_labels = _contract(result, result_labels, t, ls, needed, sizes)
    result, result_labels = _sum_labels(result, result_labels, set(out))
    return _arranged(result, result_labels, out, sizes)


__all__ = ["einsum"]
