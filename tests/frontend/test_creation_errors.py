"""Tensors that cannot be made are refused before anything is allocated (issue 14, item 10).

(graphc.load(None), map_location="cuda" and saving a self-referencing list
are in test_checkpoint_hostile.py.)
"""
import pytest
import torch

import graphc

HERE = "test_creation_errors.py:"


@pytest.mark.parametrize("data, words", [
    ([[1, 2], [3]], "expected sequence of length 2 at dim 1 (got 1)"),
    ([[[1], [2]], [[3], [4, 5]]], "expected sequence of length 1 at dim 2 (got 2)"),
    ([[1.0, 2.0], 3.0], "expected a sequence at dim 1, got float 3.0"),
])
def test_ragged_lists_name_the_dim_as_pytorch_does(data, words):
    with pytest.raises((ValueError, TypeError)):
        torch.tensor(data)
    with pytest.raises(graphc.ShapeError) as raised:
        graphc.tensor(data)
    assert f"tensor: {words}" in str(raised.value) and HERE in str(raised.value)


@pytest.mark.parametrize("make, words", [
    (lambda: graphc.zeros(10 ** 12), "zeros: a f32 tensor of shape [1000000000000] needs 3.6 TiB"),
    (lambda: graphc.ones(10 ** 6, 10 ** 6, dtype=graphc.float64), "ones: a f64 tensor of shape [1000000, 1000000]"),
    (lambda: graphc.empty(2 ** 40, 2 ** 10), "empty: a f32 tensor"),
    (lambda: graphc.full((10 ** 13,), 7), "full: a i64 tensor"),
    (lambda: graphc.randn(10 ** 7, 10 ** 7), "randn: a f32 tensor of shape [10000000, 10000000]"),
    (lambda: graphc.rand(10 ** 13), "rand: a f32 tensor"),
])
def test_a_tensor_larger_than_memory_is_refused_before_allocating(make, words):
    with pytest.raises(graphc.OutOfMemoryError) as raised:
        make()
    message = str(raised.value)
    assert isinstance(raised.value, MemoryError)
    assert words in message and "more than this machine's" in message and HERE in message, message


@pytest.mark.parametrize("make, words", [
    (lambda: graphc.zeros(3, -1), "zeros: negative size in shape [3, -1]"),
    (lambda: graphc.rand(-2), "rand: negative size in shape [-2]"),
])
def test_negative_sizes_are_shape_errors(make, words):
    with pytest.raises(graphc.ShapeError, match=words.replace("[", r"\[").replace("]", r"\]")):
        make()
