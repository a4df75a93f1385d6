"""graphc.utils.data: datasets, subsets, random_split, default_collate and the DataLoader."""
import math
from collections import namedtuple

import numpy as np
import pytest

import graphc
from graphc.errors import ShapeError
from graphc.frontend.utils.data import (DataLoader, Dataset, Subset, TensorDataset, default_collate,
                                        random_split)


def tensor_dataset(n=10):
    x = graphc.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    y = graphc.tensor(np.arange(n, dtype=np.int64))
    return TensorDataset(x, y)


class SquaresDataset(Dataset):
    """A dataset without a batched path: every sample goes through __getitem__."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if not 0 <= index < self.n:
            raise IndexError(index)
        return {"x": np.full((2,), index, np.float32), "square": index * index, "name": f"s{index}"}


class NoPerSampleAccess(TensorDataset):
    """A TensorDataset that fails if the loader fetches samples one by one."""

    def __getitem__(self, index):
        raise AssertionError("the batched path should have been used")


def labels_of(loader):
    return np.concatenate([y.numpy() for _, y in loader])


# -- datasets ---------------------------------------------------------------------------------------------

def test_tensor_dataset_samples_are_slices():
    dataset = tensor_dataset(4)
    x, y = dataset[2]
    assert len(dataset) == 4
    assert isinstance(x, graphc.Tensor) and x.tolist() == [6.0, 7.0, 8.0]
    assert y.shape == () and y.dtype == graphc.int64 and y.item() == 2
    assert dataset[-1][1].item() == 3


def test_tensor_dataset_rejects_tensors_of_different_lengths():
    with pytest.raises(ValueError, match="first dimension"):
        TensorDataset(graphc.zeros(3, 2), graphc.zeros(4))


def test_subset_maps_indices():
    subset = Subset(tensor_dataset(), [7, 2, 5])
    assert len(subset) == 3
    assert [subset[i][1].item() for i in range(3)] == [7, 2, 5]


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.34, 0.33, 0.33], [1.0]])
def test_random_split_lengths_match_torch(lengths):
    torch = pytest.importorskip("torch")
    parts = random_split(tensor_dataset(10), lengths, generator=0)
    expected = torch.utils.data.random_split(range(10), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in expected]
    assert sorted(i for p in parts for i in p.indices) == list(range(10))


def test_random_split_is_seeded():
    first = [p.indices for p in random_split(tensor_dataset(20), [5, 15], generator=graphc.Generator(3))]
    again = [p.indices for p in random_split(tensor_dataset(20), [5, 15], generator=graphc.Generator(3))]
    other = [p.indices for p in random_split(tensor_dataset(20), [5, 15], generator=graphc.Generator(4))]
    assert first == again != other
    graphc.manual_seed(11)
    default_first = random_split(tensor_dataset(20), [10, 10])[0].indices
    graphc.manual_seed(11)
    assert random_split(tensor_dataset(20), [10, 10])[0].indices == default_first


@pytest.mark.parametrize("lengths", [[3, 3], [11, -1], [0.5, 0.6]])
def test_random_split_rejects_bad_lengths(lengths):
    with pytest.raises(ValueError, match="random_split"):
        random_split(tensor_dataset(10), lengths)


# -- default_collate --------------------------------------------------------------------------------------

def test_default_collate_types_match_torch():
    torch = pytest.importorskip("torch")
    samples = [(np.ones((2, 2), np.float32) * i, i, i / 2, bool(i % 2), np.int32(i), f"n{i}") for i in range(3)]
    ours = default_collate(samples)
    theirs = torch.utils.data.default_collate(samples)
    assert type(ours) is type(theirs) is list
    for g, t in zip(ours, theirs):
        if isinstance(t, torch.Tensor):
            assert g.dtype.torch_name == str(t.dtype).removeprefix("torch.")
            np.testing.assert_array_equal(g.numpy(), t.numpy())
        else:
            assert list(g) == list(t)       # the strings (torch keeps the column's tuple)


def test_default_collate_dicts_namedtuples_and_tensors():
    Pair = namedtuple("Pair", "a b")
    batch = default_collate([{"p": Pair(graphc.ones(2) * i, i)} for i in range(3)])
    assert isinstance(batch["p"], Pair)
    assert batch["p"].a.shape == (3, 2) and batch["p"].b.tolist() == [0, 1, 2]


def test_default_collate_says_which_shapes_differ():
    with pytest.raises(ShapeError, match=r"\[3, 4\].*\[3, 5\]"):
        default_collate([np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])


# -- DataLoader -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,batch_size,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 5, True),
                                                    (2, 5, False), (0, 4, False)])
def test_len_and_batch_sizes_match_torch(n, batch_size, drop_last):
    torch = pytest.importorskip("torch")
    loader = DataLoader(tensor_dataset(n), batch_size=batch_size, drop_last=drop_last)
    reference = torch.utils.data.DataLoader(range(n), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(reference)
    assert [len(y) for _, y in loader] == [len(b) for b in reference]


def test_batches_in_order_without_shuffle():
    dataset = tensor_dataset(10)
    batches = list(DataLoader(dataset, batch_size=4))
    x, y = batches[0]
    assert isinstance(batches[0], list)
    assert x.shape == (4, 3) and x.dtype == graphc.float32 and y.dtype == graphc.int64
    np.testing.assert_array_equal(labels_of(batches), np.arange(10))
    np.testing.assert_array_equal(x.numpy(), dataset.tensors[0].numpy()[:4])


def test_array_backed_datasets_build_batches_in_one_step():
    x, y = tensor_dataset(10).tensors
    loader = DataLoader(NoPerSampleAccess(x, y), batch_size=4, shuffle=True)
    assert sorted(labels_of(loader).tolist()) == list(range(10))
    subsets = random_split(NoPerSampleAccess(x, y), [6, 4], generator=1)
    assert sorted(labels_of(DataLoader(subsets[0], batch_size=4)).tolist()) == sorted(subsets[0].indices)


def test_per_sample_path_and_default_collate():
    batches = list(DataLoader(SquaresDataset(5), batch_size=2))
    assert len(batches) == 3
    assert batches[0]["x"].shape == (2, 2) and batches[0]["x"].dtype == graphc.float32
    assert batches[1]["square"].tolist() == [4, 9] and batches[1]["square"].dtype == graphc.int64
    assert batches[2]["name"] == ["s4"]


def test_collate_fn_sees_the_samples():
    loader = DataLoader(tensor_dataset(5), batch_size=2, collate_fn=lambda samples: [int(y) for _, y in samples])
    assert list(loader) == [[0, 1], [2, 3], [4]]


def test_shuffle_covers_every_sample_once_and_changes_per_epoch():
    loader = DataLoader(tensor_dataset(50), batch_size=8, shuffle=True, generator=5)
    first, second = labels_of(loader), labels_of(loader)
    assert sorted(first) == sorted(second) == list(range(50))
    assert not np.array_equal(first, second)


def test_fixed_seed_gives_the_same_order():
    def epochs(loader):
        return [labels_of(loader).tolist() for _ in range(2)]

    assert epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True, generator=7)) == \
        epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True, generator=7))
    assert epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True, generator=graphc.Generator(9))) == \
        epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True, generator=graphc.Generator(9)))
    graphc.manual_seed(123)
    first = epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True))
    graphc.manual_seed(123)
    assert epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True)) == first
    assert first != epochs(DataLoader(tensor_dataset(30), batch_size=4, shuffle=True, generator=7))


def test_torch_only_options_are_accepted():
    loader = DataLoader(tensor_dataset(4), batch_size=2, num_workers=4, pin_memory=True)
    assert len(list(loader)) == 2


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(tensor_dataset(4), batch_size=batch_size)


def test_bad_generator():
    with pytest.raises(TypeError, match="generator"):
        DataLoader(tensor_dataset(4), shuffle=True, generator="seed")


def test_epoch_over_many_samples_is_batched():
    # Sixty thousand MNIST-sized samples in 469 batches: the batched path makes this a matter of milliseconds.
    x = graphc.from_numpy(np.zeros((60000, 1, 28, 28), np.float32))
    y = graphc.from_numpy(np.arange(60000, dtype=np.int64))
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, generator=0)
    assert len(loader) == math.ceil(60000 / 128)
    assert sum(len(b) for _, b in loader) == 60000
