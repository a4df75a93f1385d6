"""Samplers, ConcatDataset, IterableDataset and DataLoader(num_workers=N), against torch.utils.data."""
import multiprocessing
import os
import random
import time

import numpy as np
import pytest

import graphc
from graphc.frontend.utils.data.workers import numpy_seed
from graphc.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, SequentialSampler,
                               SubsetRandomSampler, TensorDataset, WeightedRandomSampler, get_worker_info)
from optest import require_torch

torch = require_torch()


def tensor_dataset(n):
    return TensorDataset(graphc.arange(n).float().reshape(n, 1), graphc.arange(n))


def labels(loader):
    return [int(v) for _, y in loader for v in y.numpy()]


def assert_no_workers_left():
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children()


# -- datasets and samplers -------------------------------------------------------------------------

def test_concat_dataset_indexes_like_torch():
    ours = ConcatDataset([tensor_dataset(3), tensor_dataset(5)])
    theirs = torch.utils.data.ConcatDataset([list(range(3)), list(range(5))])
    assert len(ours) == len(theirs) == 8 and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [int(ours[i][1]) for i in range(-8, 8)] == [theirs[i] for i in range(-8, 8)]
    assert len(tensor_dataset(2) + tensor_dataset(4)) == 6
    with pytest.raises(IndexError):
        ours[8]
    assert labels(DataLoader(ours, batch_size=3)) == [0, 1, 2, 0, 1, 2, 3, 4]


def test_subset_random_sampler_draws_a_new_permutation_of_its_indices_each_epoch():
    sampler = SubsetRandomSampler([3, 5, 7, 9, 11], generator=0)
    epochs = [list(sampler) for _ in range(4)]
    assert all(sorted(epoch) == [3, 5, 7, 9, 11] for epoch in epochs) and len({tuple(e) for e in epochs}) > 1
    again = SubsetRandomSampler([3, 5, 7, 9, 11], generator=0)
    assert [list(again) for _ in range(4)] == epochs
    loader = DataLoader(tensor_dataset(20), batch_size=2, sampler=SubsetRandomSampler([1, 4, 6]))
    assert sorted(labels(loader)) == [1, 4, 6]


def test_weighted_random_sampler_follows_the_weights():
    counts = np.bincount(list(WeightedRandomSampler([1, 0, 3], 4000, generator=1)), minlength=3)
    assert counts[1] == 0 and 2.6 < counts[2] / counts[0] < 3.4
    without = list(WeightedRandomSampler([1, 1, 1, 5], 4, replacement=False, generator=2))
    assert sorted(without) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="num_samples"):
        WeightedRandomSampler([1, 2], 0)
    with pytest.raises(RuntimeError, match="without replacement"):
        WeightedRandomSampler([1, 0, 2], 3, replacement=False)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_matches_torch(drop_last):
    ours = list(BatchSampler(SequentialSampler(range(10)), 3, drop_last))
    theirs = list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)), 3, drop_last))
    assert ours == theirs and len(BatchSampler(SequentialSampler(range(10)), 3, drop_last)) == len(theirs)
    loader = DataLoader(tensor_dataset(10), batch_sampler=BatchSampler(SequentialSampler(range(10)), 4, drop_last))
    assert [len(y) for _, y in loader] == ([4, 4] if drop_last else [4, 4, 2])


def test_exclusive_options_are_refused_like_torch():
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(tensor_dataset(4), sampler=SequentialSampler(range(4)), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(tensor_dataset(4), batch_size=2, batch_sampler=[[0, 1]])
    with pytest.raises(ValueError, match="expected unspecified shuffle"):
        DataLoader(Stream(4), shuffle=True)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(tensor_dataset(4), prefetch_factor=2)


# -- iterable datasets ---------------------------------------------------------------------------------

class Stream(IterableDataset):
    """0..n-1, each worker taking its own contiguous share (PyTorch's documented recipe); ``lib`` gives
    get_worker_info, so that the same class runs under torch's DataLoader too."""

    def __init__(self, n, lib=None):
        self.n = n
        self.get_worker_info = (lib or graphc).utils.data.get_worker_info

    def __len__(self):
        return self.n

    def __iter__(self):
        info = self.get_worker_info()
        start, stop = 0, self.n
        if info is not None:
            share = -(-self.n // info.num_workers)
            start, stop = info.id * share, min(self.n, (info.id + 1) * share)
        return iter(np.arange(start, stop, dtype=np.int64))


class TorchStream(Stream, torch.utils.data.IterableDataset):
    pass


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("num_workers, batch_size, drop_last", [(0, 3, False), (2, 3, False), (3, 2, True)])
def test_iterable_dataset_batches_in_torch_order(num_workers, batch_size, drop_last):
    ours = DataLoader(Stream(11), batch_size=batch_size, drop_last=drop_last, num_workers=num_workers)
    theirs = torch.utils.data.DataLoader(TorchStream(11, torch), batch_size=batch_size, drop_last=drop_last,
                                         num_workers=num_workers)
    assert [b.tolist() for b in ours] == [b.tolist() for b in theirs]
    assert len(ours) == len(theirs)
    assert_no_workers_left()


# -- worker processes --------------------------------------------------------------------------------

class Probe(Dataset):
    """Each sample reports the process that loaded it and draws from every random source there."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        info = get_worker_info()
        return {"index": index, "pid": os.getpid(), "worker": info.id, "seed": info.seed,
                "graphc": float(graphc.rand(1).item()), "numpy": float(np.random.rand()), "random": random.random()}


def probe_epoch(**kwargs):
    return list(DataLoader(Probe(), batch_size=2, num_workers=3, **kwargs))


def test_batches_are_loaded_in_worker_processes_and_come_back_in_order():
    batches = probe_epoch(shuffle=True)
    pids = {int(p) for b in batches for p in b["pid"].numpy()}
    assert len(pids) == 3 and os.getpid() not in pids
    assert [int(w) for b in batches for w in b["worker"].numpy()] == [w for w in (0, 1, 2) * 2 for _ in range(2)]
    assert sorted(int(i) for b in batches for i in b["index"].numpy()) == list(range(12))
    assert_no_workers_left()


def test_with_workers_the_order_is_the_one_without():
    graphc.manual_seed(3)
    single = labels(DataLoader(tensor_dataset(20), batch_size=3, shuffle=True))
    graphc.manual_seed(3)
    assert labels(DataLoader(tensor_dataset(20), batch_size=3, shuffle=True, num_workers=2)) == single


def test_each_worker_is_seeded_as_torch_seeds_its_workers():
    graphc.manual_seed(1)
    first = probe_epoch()
    graphc.manual_seed(1)
    assert [b["graphc"].tolist() for b in probe_epoch()] == [b["graphc"].tolist() for b in first]
    seeds = {int(w): int(s) for b in first for w, s in zip(b["worker"].numpy(), b["seed"].numpy())}
    base = seeds[0]
    assert seeds == {0: base, 1: base + 1, 2: base + 2}
    for source in ("graphc", "numpy", "random"):                 # every worker its own stream of each
        firsts = [b[source].numpy()[0] for b in first[:3]]
        assert len(set(firsts)) == 3
    from torch.utils.data._utils.worker import _generate_state
    for worker in range(3):
        assert numpy_seed(base, worker).tolist() == _generate_state(base, worker)
    np.random.seed(numpy_seed(base, 1))
    assert first[1]["numpy"].numpy()[0] == np.random.rand()


def test_worker_init_fn_runs_first_in_every_worker():
    def init(worker_id):
        get_worker_info().dataset.offset = 100 * (worker_id + 1)

    class Offset(Dataset):
        offset = 0

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return index + self.offset
    batches = list(DataLoader(Offset(), batch_size=1, num_workers=2, worker_init_fn=init))
    assert [int(b[0]) for b in batches] == [100, 201, 102, 203]


class Failing(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        if index == 5:
            raise ValueError(f"sample {index} is broken")
        return index


def test_an_error_in_a_worker_is_raised_here_naming_the_sample_and_the_workers_stop():
    with pytest.raises(ValueError, match=r"(?s)Caught ValueError in DataLoader worker process \d while loading "
                                         r"sample index 5.*sample 5 is broken"):
        for _ in DataLoader(Failing(), batch_size=2, num_workers=2):
            pass
    assert_no_workers_left()


def test_breaking_out_of_an_epoch_stops_the_workers():
    for batch in DataLoader(tensor_dataset(100), batch_size=2, num_workers=2):
        break
    assert_no_workers_left()
    iterator = iter(DataLoader(tensor_dataset(100), batch_size=2, num_workers=2))
    next(iterator)
    iterator.close()
    assert_no_workers_left()


class Slow(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        if index == 2:
            time.sleep(1.5)
        if index == 3:
            os._exit(3)                      # a worker that dies without a word
        return index


def test_a_worker_that_dies_or_stalls_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="timed out after 0.5 seconds"):
        list(DataLoader(Slow(), batch_size=1, sampler=[0, 2], num_workers=1, timeout=0.5))
    with pytest.raises(RuntimeError, match="exited unexpectedly.*exit code 3"):
        list(DataLoader(Slow(), batch_size=1, sampler=[3], num_workers=1))
    assert_no_workers_left()
