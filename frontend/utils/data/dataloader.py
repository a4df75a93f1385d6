"""DataLoader: a dataset's samples in batches, in order or shuffled, as ``torch.utils.data.DataLoader``."""
from __future__ import annotations

import numpy as np

from .collate import default_collate
from .seeding import as_generator, numpy_rng


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size`` samples.

    A dataset that defines ``__getitems__(indices)`` (TensorDataset, Subset and
    graphc's datasets) builds each batch with one array-indexing operation;
    otherwise each sample is fetched with ``dataset[i]`` and the list is passed
    to ``collate_fn`` (``default_collate`` when None).  Giving a ``collate_fn``
    always takes the per-sample path, so it sees the samples.

    With ``shuffle=True`` every epoch (every ``iter(loader)``) draws a new order
    from ``generator``: a graphc Generator, an int seed (a Generator of its own,
    made once, so each epoch still differs), or None for graphc's default
    generator, so ``graphc.manual_seed`` reproduces the order.

    ``num_workers`` and ``pin_memory`` are accepted so PyTorch code runs
    unchanged and are ignored: batches are built in this process, on the CPU.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 generator=None, collate_fn=None, num_workers: int = 0, pin_memory: bool = False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self._shuffle_generator = as_generator(generator)

    def __len__(self) -> int:
        """The number of batches in an epoch."""
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        # The order is drawn here, not at the first next(), so iter() is when an epoch's randomness is taken.
        n = len(self.dataset)
        order = numpy_rng(self._shuffle_generator).permutation(n) if self.shuffle else np.arange(n)
        return self._batches(order)

    def _batches(self, order: np.ndarray):
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._fetch(order[start:start + self.batch_size])

    def _fetch(self, indices: np.ndarray):
        if self.collate_fn is None and hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(indices)
        collate = self.collate_fn or default_collate
        return collate([self.dataset[int(i)] for i in indices])
