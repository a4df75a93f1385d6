"""Turning a list of samples into one batch, as ``torch.utils.data.default_collate``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc.errors import ShapeError

from ...creation import from_numpy
from ...tensor import Tensor


def default_collate(batch: list):
    """Stack a list of samples into a batch with a new leading dimension.

    Tensors, numpy arrays and numpy scalars stack into one Tensor; Python ints
    become an int64 Tensor, floats a float64 Tensor and bools a bool Tensor (as
    in PyTorch); strings and bytes stay a list.  Dicts are collated key by key,
    sequences position by position: a tuple sample gives a list of batches, as
    PyTorch does, and a namedtuple keeps its type.
    """
    if not batch:
        raise ValueError("default_collate: the batch is empty")
    first = batch[0]
    if isinstance(first, Tensor):
        return _stack([sample.detach().numpy() for sample in batch])
    if isinstance(first, (np.ndarray, np.generic)):
        return _stack([np.asarray(sample) for sample in batch])
    if isinstance(first, bool):
        return from_numpy(np.array(batch, dtype=np.bool_))
    if isinstance(first, int):
        return from_numpy(np.array(batch, dtype=np.int64))
    if isinstance(first, float):
        return from_numpy(np.array(batch, dtype=np.float64))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in first}
    if isinstance(first, Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise ValueError("default_collate: the samples are sequences of different lengths "
                             f"({sorted({len(sample) for sample in batch})})")
        fields = [default_collate(list(column)) for column in zip(*batch)]
        return type(first)(*fields) if hasattr(first, "_fields") else fields
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; samples may be "
                    "Tensors, numpy arrays, numbers, strings, or dicts and sequences of them "
                    "(or pass collate_fn= to the DataLoader)")


def _stack(arrays: list[np.ndarray]) -> Tensor:
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        listed = ", ".join(str(list(shape)) for shape in sorted(shapes))
        raise ShapeError(f"default_collate: cannot stack samples of different shapes ({listed}); give them one "
                         "shape (for images, e.g. transforms.Resize) or pass collate_fn= to the DataLoader")
    return from_numpy(np.stack(arrays))
