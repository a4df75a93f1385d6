"""Datasets: the map-style base class, iterable datasets, tensors as a dataset, concatenations, subsets and
random splits."""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence

import numpy as np

from ...creation import from_numpy
from ...tensor import Tensor
from .collate import default_collate
from .seeding import as_generator, numpy_rng


class Dataset:
    """A map-style dataset: ``dataset[i]`` is a sample and ``len(dataset)`` the number of samples.

    A subclass whose samples live in arrays may also define
    ``__getitems__(indices)``, returning the finished batch for an array of
    indices: what ``default_collate([self[i] for i in indices])`` would give,
    built with one indexing operation.  The DataLoader uses it when present.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: ``iter(dataset)`` yields its samples, as torch's IterableDataset.

    With ``DataLoader(num_workers=N)`` every worker iterates its own copy of the
    dataset; use ``graphc.utils.data.get_worker_info()`` inside ``__iter__`` to
    give each worker its own share, as in PyTorch.
    """

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class ConcatDataset(Dataset):
    """The samples of several map-style datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for dataset in self.datasets:
            if isinstance(dataset, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which == len(self.datasets):
            raise IndexError(f"index {index} is out of range for a ConcatDataset of {len(self)} samples")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


class TensorDataset(Dataset):
    """Samples are the slices ``(t[i] for t in tensors)`` along the first dimension, as in PyTorch."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        lengths = {len(t) for t in tensors}
        if len(lengths) > 1:
            shapes = ", ".join(str(list(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: the tensors differ in their first dimension ({shapes})")
        self.tensors = tensors
        self._arrays = [t.detach().numpy() for t in tensors]

    def __len__(self) -> int:
        return len(self._arrays[0])

    def __getitem__(self, index):
        # `[index, ...]` keeps a 0-d array (not a numpy scalar) when a tensor is 1-d.
        return tuple(from_numpy(array[index, ...]) for array in self._arrays)

    def __getitems__(self, indices: np.ndarray) -> list[Tensor]:
        return [from_numpy(array[indices]) for array in self._arrays]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices
        self._index_array = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._index_array)

    def __getitem__(self, index):
        return self.dataset[int(self._index_array[index])]

    def __getitems__(self, indices: np.ndarray):
        chosen = self._index_array[indices]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(chosen)
        return default_collate([self.dataset[int(i)] for i in chosen])


def random_split(dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions
    summing to 1 (floored, with the remainder dealt one by one from the first
    subset on, as PyTorch does).  ``generator`` is a graphc Generator, an int
    seed, or None for graphc's default generator.
    """
    n = len(dataset)
    counts = _split_counts(n, lengths)
    order = numpy_rng(as_generator(generator)).permutation(n)
    ends = np.cumsum(counts)
    return [Subset(dataset, order[end - count:end].tolist()) for count, end in zip(counts, ends)]


def _split_counts(n: int, lengths: Sequence[int | float]) -> list[int]:
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and all(0 <= f <= 1 for f in lengths):
        counts = [math.floor(n * fraction) for fraction in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    if any(length < 0 for length in lengths):
        raise ValueError(f"random_split: lengths must not be negative, got {list(lengths)}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {list(lengths)} sum to {sum(lengths)}, but the dataset has "
                         f"{n} samples (give counts that sum to {n}, or fractions that sum to 1)")
    return [int(length) for length in lengths]
