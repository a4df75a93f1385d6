"""Embedding: a lookup table of vectors, indexed by integer ids.

The lookup is a ``gather`` along the table's rows, so its gradient is a
``scatter_add`` into the rows the batch used, and it traces like any op.
"""
from __future__ import annotations

from graphc.errors import ShapeError

from ..context import error_context, no_grad
from ..dtypes import bool_
from ..functions import where
from ..tensor import Tensor
from . import init
from .module import Module, Parameter, _empty_parameter

__all__ = ["Embedding", "embedding"]


def _checked_padding_idx(padding_idx: int | None, num_embeddings: int) -> int | None:
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx ({padding_idx}) must be within num_embeddings ({num_embeddings})")
    return padding_idx % num_embeddings


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` at the integer ``input``: output shape input.shape + [embedding_dim].

    The row at ``padding_idx`` gets no gradient, as in PyTorch.  ``sparse`` is
    accepted and the gradient is dense (graphc has no sparse tensors).
    """
    if max_norm is not None:
        raise NotImplementedError("embedding(max_norm=...) is not supported by graphc: it renormalises the "
                                  "table in place during the forward pass")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding(scale_grad_by_freq=True) is not supported by graphc")
    if input.dtype.is_float or input.dtype == bool_:
        raise ShapeError(f"embedding: expected integer indices, got {input.dtype!r} (input of shape "
                         f"{list(input.shape)})" + error_context())
    if weight.dim() != 2:
        raise ShapeError(f"embedding: weight must be 2-D [num_embeddings, embedding_dim], got shape "
                         f"{list(weight.shape)}" + error_context())
    padding_idx = _checked_padding_idx(padding_idx, weight.shape[0])
    ids = input.long().reshape(-1, 1)
    rows = weight.gather(0, ids.expand(ids.shape[0], weight.shape[1]))
    if padding_idx is not None:
        # The same values, but the padding row's lookups pass no gradient back to the table.
        rows = where(ids == padding_idx, rows.detach(), rows)
    return rows.reshape(*input.shape, weight.shape[1])


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, initialised N(0, 1)
    (the ``padding_idx`` row zeroed)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False, device=None,
                 dtype=None):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = _checked_padding_idx(padding_idx, num_embeddings)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = _empty_parameter((num_embeddings, embedding_dim), device, dtype)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError("Shape of weight does not match num_embeddings and embedding_dim")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding holding ``embeddings`` (2-D), frozen unless ``freeze=False``."""
        if embeddings.dim() != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        return text
