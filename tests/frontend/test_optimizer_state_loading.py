"""Optimizer.load_state_dict checks what it loads, names what is wrong, and changes nothing then (issue 14, item 2)."""
import copy

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
import graphc.optim as optim


def trained_sgd():
    """A two-layer model and its SGD optimizer after one compiled step (so every parameter has a momentum buffer)."""
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    @graphc.compile
    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    x, y = graphc.randn(5, 4, generator=graphc.Generator(1)), graphc.tensor([0, 1, 1, 0, 1])
    step(x, y)
    return model, optimizer, step, (x, y)


def state_arrays(optimizer) -> dict:
    return {(index, key): np.array(value.numpy()) for index, state in optimizer.state_dict()["state"].items()
            for key, value in state.items()}


def corrupted(optimizer, index, key, value) -> dict:
    """The optimizer's state dict (values copied) with state[index][key] replaced by ``value``."""
    saved = copy.deepcopy({"state": {i: {k: v.numpy().copy() for k, v in s.items()}
                                     for i, s in optimizer.state_dict()["state"].items()},
                           "param_groups": optimizer.state_dict()["param_groups"]})
    saved["state"][index][key] = value
    return saved


@pytest.mark.parametrize("value, words", [
    ("fast", ["'momentum_buffer' of parameter 1", "is a str", "expected a tensor"]),
    (0.5, ["'momentum_buffer' of parameter 1", "is a float", "expected a tensor"]),
    (None, ["'momentum_buffer' of parameter 1", "is a NoneType"]),
    (np.array(["a", "b", "c"]), ["'momentum_buffer' of parameter 1", "dtype <U1", "tensor of numbers"]),
    (np.zeros((4, 3), np.float32), ["'momentum_buffer' of parameter 1", "shape [4, 3]", "parameter has shape [3]"]),
])
def test_a_state_value_that_is_not_a_fitting_tensor_is_refused_by_name(value, words):
    model, optimizer, step, batch = trained_sgd()
    before = state_arrays(optimizer)
    saved = corrupted(optimizer, 0, "momentum_buffer", np.full((3, 4), 7.0, np.float32))   # valid, loads first
    saved["state"][1]["momentum_buffer"] = value
    with pytest.raises(graphc.ShapeError) as raised:
        optimizer.load_state_dict(saved)
    assert all(word in str(raised.value) for word in words), str(raised.value)
    after = state_arrays(optimizer)
    assert sorted(after) == sorted(before)
    for key in before:                       # not even parameter 0's valid buffer was loaded
        np.testing.assert_array_equal(after[key], before[key])


def test_after_a_refused_load_the_compiled_step_trains_as_if_nothing_happened():
    reference_model, reference_optimizer, reference_step, batch = trained_sgd()
    reference_step(*batch)
    model, optimizer, step, batch = trained_sgd()
    with pytest.raises(graphc.ShapeError):
        optimizer.load_state_dict(corrupted(optimizer, 0, "momentum_buffer", 0.5))
    step(*batch)
    for p, q in zip(model.parameters(), reference_model.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_a_plain_number_step_of_an_older_adam_checkpoint_loads_as_a_float32_tensor():
    model = nn.Linear(2, 2)
    optimizer = optim.Adam(model.parameters())
    zeros = {name: np.zeros(tuple(p.shape), np.float32) for name, p in model.named_parameters()}
    optimizer.load_state_dict({"state": {i: {"step": 3, "exp_avg": zeros[name], "exp_avg_sq": zeros[name]}
                                         for i, name in enumerate(["weight", "bias"])},
                               "param_groups": optimizer.state_dict()["param_groups"]})
    step = optimizer.state[model.weight]["step"]
    assert isinstance(step, graphc.Tensor) and step.dtype == graphc.float32 and step.item() == 3.0


@pytest.mark.parametrize("change, words", [
    (lambda saved: saved["param_groups"][0].update(lr="fast"), ["param_groups[0]['lr']", "'fast'", "str"]),
    (lambda saved: saved["param_groups"][0].update(nesterov=1), ["param_groups[0]['nesterov']", "int"]),
    (lambda saved: saved["state"].update({7: {}}), ["state for parameter 7", "none of its param_groups"]),
    (lambda saved: saved.pop("state"), ["'state' (a dict)", "'param_groups' (a list)"]),
    (lambda saved: saved["param_groups"].__setitem__(0, [0, 1]), ["param_groups[0] must be a dict"]),
])
def test_a_state_dict_of_the_wrong_form_is_refused_by_name(change, words):
    model, optimizer, step, batch = trained_sgd()
    saved = corrupted(optimizer, 0, "momentum_buffer", np.zeros((3, 4), np.float32))
    change(saved)
    before = state_arrays(optimizer)
    with pytest.raises(ValueError) as raised:
        optimizer.load_state_dict(saved)
    assert all(word in str(raised.value) for word in words), str(raised.value)
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert sorted(state_arrays(optimizer)) == sorted(before)
