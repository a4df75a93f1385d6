"""Fetching one batch from a dataset: what a DataLoader does for each batch, in its own process or in a worker.

A fetcher remembers what it was doing (``position``), so that a worker whose
dataset fails can say which sample it was loading.
"""
from __future__ import annotations

import numpy as np

from .collate import default_collate


class MapFetcher:
    """Batches of a map-style dataset, given their indices.

    A dataset with ``__getitems__(indices)`` builds the whole batch itself
    (unless a ``collate_fn`` is given, which must see the samples); otherwise each
    sample is ``dataset[i]`` and the list goes to ``collate_fn`` (``default_collate``).
    """

    def __init__(self, dataset, collate_fn):
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.position = "starting"

    def fetch(self, indices: list[int]):
        if self.collate_fn is None and hasattr(self.dataset, "__getitems__"):
            self.position = f"loading the batch of sample indices {list(indices)}"
            return self.dataset.__getitems__(np.asarray(indices, dtype=np.int64))
        samples = []
        for index in indices:
            self.position = f"loading sample index {index}"
            samples.append(self.dataset[index])
        self.position = f"collating the batch of sample indices {list(indices)}"
        return (self.collate_fn or default_collate)(samples)


class IterableFetcher:
    """Successive batches of an iterable dataset: ``batch_size`` samples from its iterator, collated."""

    def __init__(self, dataset, collate_fn, batch_size: int, drop_last: bool):
        self.position = "starting to iterate over the dataset"
        self.samples = iter(dataset)
        self.collate_fn = collate_fn or default_collate
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.count = 0                  # samples taken so far, to name the one that failed

    def fetch(self, indices=None):
        """The next batch; raises StopIteration when the dataset is exhausted."""
        batch = []
        for _ in range(self.batch_size):
            self.position = f"loading sample {self.count} of the stream"
            try:
                batch.append(next(self.samples))
            except StopIteration:
                break
            self.count += 1
        if not batch or (self.drop_last and len(batch) < self.batch_size):
            raise StopIteration
        self.position = f"collating samples {self.count - len(batch)} to {self.count - 1} of the stream"
        return self.collate_fn(batch)
