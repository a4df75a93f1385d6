"""DataLoader: a dataset's samples in batches, in this process or in worker processes, as torch's DataLoader."""
from __future__ import annotations

import numpy as np

from .dataset import IterableDataset
from .fetch import IterableFetcher, MapFetcher
from .sampler import BatchSampler, RandomSampler, SequentialSampler
from .seeding import as_generator, numpy_rng
from .workers import MultiProcessIterator


class DataLoader:
    """Iterates over ``dataset`` in batches, with PyTorch's arguments.

    A map-style dataset is visited in the order of ``sampler`` (sequential, or
    random with ``shuffle=True``), grouped into batches of ``batch_size`` (or by
    a ``batch_sampler``); an ``IterableDataset`` is read as a stream.  A dataset
    that defines ``__getitems__(indices)`` (TensorDataset, Subset and graphc's
    datasets) builds each batch with one array-indexing operation; otherwise
    each sample is fetched with ``dataset[i]`` and the list is passed to
    ``collate_fn`` (``default_collate`` when None).  Giving a ``collate_fn``
    always takes the per-sample path, so it sees the samples.

    Randomness (the shuffled order, the workers' seeds) comes from
    ``generator``: a graphc Generator, an int seed (a Generator of its own, made
    once, so each epoch still differs), or None for graphc's default generator,
    so ``graphc.manual_seed`` reproduces it.

    ``num_workers=N`` loads batches in N worker processes (see ``workers.py``),
    ``prefetch_factor`` batches ahead per worker; each worker runs
    ``worker_init_fn(worker_id)`` first and can call ``get_worker_info()``.
    Workers start with each epoch (``persistent_workers`` is accepted, and they
    still start anew each epoch).  ``pin_memory`` is accepted and ignored: batches
    live in host memory.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = ""):
        if batch_size is None:
            raise ValueError("DataLoader: batch_size=None (no automatic batching) is not supported by graphc; give "
                             "a positive batch_size")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. Let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        self._is_iterable = isinstance(dataset, IterableDataset)
        if self._is_iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, but "
                                     f"got {name}={value}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                             "drop_last")
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else prefetch_factor
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = persistent_workers
        self.generator = generator
        self._generator = as_generator(generator)
        if batch_sampler is None and not self._is_iterable:
            if sampler is None:
                sampler = RandomSampler(dataset, generator=self._generator) if shuffle else SequentialSampler(dataset)
            batch_sampler = BatchSampler(sampler, int(batch_size), drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.batch_size = None if batch_sampler is not None and sampler is None else int(batch_size)
        self.drop_last = drop_last

    def __len__(self) -> int:
        """The number of batches in an epoch (for an IterableDataset, from its ``__len__``)."""
        if self._is_iterable:
            full, rest = divmod(len(self.dataset), self.batch_size)
            return full + (1 if rest and not self.drop_last else 0)
        return len(self.batch_sampler)

    def __iter__(self):
        # The batches are drawn here, not at the first next(), so iter() is when an epoch's randomness is taken
        # (first the order, then the workers' seeds: the order is the same with workers and without).
        batches = None if self._is_iterable else iter(self.batch_sampler)
        if self.num_workers > 0:
            base_seed = int(numpy_rng(self._generator).integers(0, 2 ** 63))
            return MultiProcessIterator(self, batches, base_seed)
        if self._is_iterable:
            return _iterable_batches(IterableFetcher(self.dataset, self.collate_fn, self.batch_size, self.drop_last))
        return _map_batches(batches, MapFetcher(self.dataset, self.collate_fn))


def _map_batches(batches, fetcher: MapFetcher):
    for indices in batches:
        yield fetcher.fetch(indices)


def _iterable_batches(fetcher: IterableFetcher):
    while True:
        try:
            batch = fetcher.fetch()
        except StopIteration:
            return
        yield batch
