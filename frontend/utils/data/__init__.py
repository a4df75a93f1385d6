"""Datasets and batched loading, mirroring ``torch.utils.data``.

    from graphc.utils.data import DataLoader, TensorDataset, random_split

A dataset that holds its samples in numpy arrays defines ``__getitems__(indices)``
to build a whole batch with one indexing operation; the DataLoader uses it and
falls back to ``dataset[i]`` per sample and ``default_collate`` otherwise.
"""
from .collate import default_collate
from .dataloader import DataLoader
from .dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from .workers import get_worker_info

__all__ = ["DataLoader", "Dataset", "IterableDataset", "ConcatDataset", "Subset", "TensorDataset", "default_collate",
           "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "get_worker_info"]
