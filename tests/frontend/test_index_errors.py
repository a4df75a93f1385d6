"""Out-of-range indices, dimensions and class targets raise graphc.OutOfRangeError (issue 14, item 6).

It is a GraphcError and an IndexError, as PyTorch's errors for the same
mistakes are IndexErrors; the message names the user-level function, the
shapes and the user's line, in eager code and in compiled steps alike.
"""
import numpy as np
import pytest
import torch

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

HERE = "test_index_errors.py:"

X = np.arange(12, dtype=np.float32).reshape(3, 4)

# name -> (the call, for graphc and for PyTorch tensors; words of graphc's message)
MISTAKES = {
    "x[10]": (lambda x: x[10], ["index 10 is out of bounds for dimension 0 with size 3", "shape [3, 4]"]),
    "x[1, 9]": (lambda x: x[1, 9], ["index 9 is out of bounds for dimension 1 with size 4"]),
    "x[0, 0, 0]": (lambda x: x[0, 0, 0], ["too many indices for tensor of dimension 2"]),
    "x.transpose(0, 9)": (lambda x: x.transpose(0, 9),
                          ["transpose: dimension out of range (expected to be in range of [-2, 1], but got 9)",
                           "shape [3, 4]"]),
    "x.transpose(-3, 0)": (lambda x: x.transpose(-3, 0), ["transpose", "but got -3"]),
    "x.unsqueeze(3)": (lambda x: x.unsqueeze(3), ["unsqueeze", "range of [-3, 2], but got 3"]),
    "x.squeeze(2)": (lambda x: x.squeeze(2),
                     ["squeeze: dimension out of range (expected to be in range of [-2, 1], but got 2)", "shape [3, 4]"]),
    "x.squeeze((0, -3))": (lambda x: x.squeeze((0, -3)), ["squeeze", "but got -3"]),
    "x.flatten(0, 7)": (lambda x: x.flatten(0, 7), ["flatten", "but got 7"]),
    "x.size(2)": (lambda x: x.size(2), ["size", "but got 2"]),
    "x.split(2, 5)": (lambda x: x.split(2, 5), ["split", "but got 5"]),
    "x.chunk(2, -5)": (lambda x: x.chunk(2, -5), ["chunk", "but got -5"]),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_eager_mistakes_raise_out_of_range_naming_the_function_and_line(name):
    call, words = MISTAKES[name]
    with pytest.raises(IndexError):                 # PyTorch says the same kind of thing
        call(torch.from_numpy(X))
    with pytest.raises(graphc.OutOfRangeError) as raised:
        call(graphc.tensor(X))
    message = str(raised.value)
    assert isinstance(raised.value, graphc.GraphcError) and isinstance(raised.value, IndexError)
    assert all(word in message for word in words) and HERE in message, message


def test_an_index_value_out_of_range_names_its_op_and_shapes():
    with pytest.raises(graphc.OutOfRangeError) as raised:
        graphc.tensor(X).gather(1, graphc.tensor([[7]]))
    message = str(raised.value)
    assert "gather: index value 7 is out of range [0, 4)" in message and "f32[3,4], i64[1,1]" in message
    assert HERE in message


@pytest.mark.parametrize("name", ["x[10]", "x.transpose(0, 9)", "x.unsqueeze(3)", "x.squeeze(2)"])
def test_traced_mistakes_raise_the_same_error(name):
    call, words = MISTAKES[name]
    with pytest.raises(graphc.OutOfRangeError) as raised:
        graphc.compile(call)(graphc.tensor(X))
    assert all(word in str(raised.value) for word in words) and HERE in str(raised.value)


def test_dimensions_in_range_from_either_end_still_work():
    x = graphc.tensor(X)
    assert x.transpose(-1, -2).shape == (4, 3)
    assert x.unsqueeze(-3).shape == (1, 3, 4) and x.unsqueeze(2).shape == (3, 4, 1)
    assert graphc.tensor(1.0).unsqueeze(-1).shape == (1,)
    assert x[:1].squeeze(-2).shape == (4,) and x.squeeze((1, -2)).shape == (3, 4)
    assert graphc.tensor(1.0).squeeze(-1).shape == ()


# -- class targets: cross_entropy and nll_loss, eager and compiled ------------------------------------------

LOGITS = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
BAD_TARGETS = [0, 2, 3, 1]          # class 3 of three


LOSSES = {
    "cross_entropy": lambda logits, target: F.cross_entropy(logits, target),
    "nll_loss": lambda logits, target: F.nll_loss(logits.log_softmax(1), target),
    "CrossEntropyLoss": lambda logits, target: nn.CrossEntropyLoss()(logits, target),
}


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("compiled", [False, True])
def test_a_target_out_of_range_names_the_loss_not_its_gather(loss, compiled):
    function = graphc.compile(LOSSES[loss]) if compiled else LOSSES[loss]
    with pytest.raises(graphc.OutOfRangeError) as raised:
        function(graphc.tensor(LOGITS), graphc.tensor(BAD_TARGETS))
    message = str(raised.value)
    name = "nll_loss" if loss == "nll_loss" else "cross_entropy"
    assert f"{name}: target 3 is out of bounds for 3 classes" in message and HERE in message, message
    assert "gather" not in message


def test_pytorch_refuses_the_same_targets():
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        torch.nn.functional.cross_entropy(torch.from_numpy(LOGITS), torch.tensor(BAD_TARGETS))


def test_a_target_computed_inside_a_compiled_step_fails_in_its_gather_as_out_of_range():
    @graphc.compile
    def shifted(logits, target):
        return F.cross_entropy(logits, target + 2)

    with pytest.raises(graphc.OutOfRangeError) as raised:
        shifted(graphc.tensor(LOGITS), graphc.tensor([0, 1, 0, 0]))
    assert "gather" in str(raised.value) and "out of range [0, 3)" in str(raised.value)
    assert HERE in str(raised.value)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_integer_logits_are_refused_as_pytorch_refuses_them(loss):
    logits = np.array([[1, 2, 3]], np.int64)
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, loss)(torch.from_numpy(logits), torch.tensor([0]))
    with pytest.raises(graphc.ShapeError) as raised:
        getattr(F, loss)(graphc.tensor(logits), graphc.tensor([0]))
    assert f"{loss}: input must be floating-point, got i64[1,3]" in str(raised.value)
    assert HERE in str(raised.value)
