"""A failed step changes nothing: model, optimizer state and random state are as before (issue 14, item 1).

Each test runs a training loop twice, once uninterrupted and once with failing
calls mixed in, and asserts that the two end bit for bit the same.
"""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
import graphc.optim as optim

GOOD_TARGETS = [0, 1, 2, 1, 0]
BAD_TARGETS = [0, 1, 9, 1, 0]          # 9 is no class of three


class UserCodeFailed(Exception):
    """Raised by a training step on purpose, after opt.step() has been traced."""


def snapshot(model, optimizer) -> dict:
    """Copies of everything a step may change: parameters, optimizer state, the random state."""
    values = {f"param.{name}": p.detach().numpy().copy() for name, p in model.named_parameters()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            values[f"state.{index}.{key}"] = np.array(value.numpy() if isinstance(value, graphc.Tensor) else value)
    values["rng"] = graphc.default_generator.get_state().numpy().copy()
    return values


def assert_same(expected: dict, actual: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def make_training(make_optimizer, compiled: bool, fail_after_step: list | None = None):
    """A seeded model with dropout, its optimizer, and a training step (compiled or eager)."""
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    optimizer = make_optimizer(model.parameters())

    def train_step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if fail_after_step and fail_after_step.pop():
            raise UserCodeFailed("user code failed after optimizer.step()")
        return loss

    return model, optimizer, (graphc.compile(train_step) if compiled else train_step)


INPUTS = graphc.randn(5, 4, generator=graphc.Generator(1))

OPTIMIZERS = {
    "sgd-dampening": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.5),
    "adam": lambda params: optim.Adam(params, lr=0.01),
}


def failing_call(failure: str, step, fail_after_step: list) -> None:
    """Call ``step`` so that it fails: with a target out of range, or with user code raising after opt.step()."""
    if failure == "target":
        with pytest.raises(graphc.OutOfRangeError, match="cross_entropy: target 9 is out of bounds for 3 classes"):
            step(INPUTS, graphc.tensor(BAD_TARGETS))
    else:
        fail_after_step.append(True)
        with pytest.raises(UserCodeFailed):
            step(INPUTS, graphc.tensor(GOOD_TARGETS))


def train(make_optimizer, compiled: bool, failure: str | None = None) -> dict:
    """Three good steps, each preceded by a failing call; user code fails only while it is traced, on the first."""
    fail_after_step = []
    model, optimizer, step = make_training(make_optimizer, compiled, fail_after_step)
    for index in range(3):
        if failure == "target" or (failure == "user" and index == 0):
            before = snapshot(model, optimizer)
            failing_call(failure, step, fail_after_step)
            assert_same(before, snapshot(model, optimizer))
        step(INPUTS, graphc.tensor(GOOD_TARGETS))
    return snapshot(model, optimizer)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("failure", ["target", "user"])
def test_a_failed_compiled_call_changes_nothing(optimizer, failure):
    # The first failing call is the compiled step's first: tracing creates the optimizer's state.
    uninterrupted = train(OPTIMIZERS[optimizer], compiled=True)
    assert_same(uninterrupted, train(OPTIMIZERS[optimizer], compiled=True, failure=failure))


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_a_failed_eager_call_changes_neither_model_nor_optimizer(optimizer):
    # Eager code runs op by op, as PyTorch's does: the dropout masks drawn before the failing loss stay drawn.
    model, optimizer, step = make_training(OPTIMIZERS[optimizer], compiled=False)
    step(INPUTS, graphc.tensor(GOOD_TARGETS))
    before = snapshot(model, optimizer)
    failing_call("target", step, [])
    after = snapshot(model, optimizer)
    del before["rng"], after["rng"]
    assert_same(before, after)


def test_inspecting_a_step_before_running_it_creates_no_state():
    model, optimizer, step = make_training(OPTIMIZERS["sgd-dampening"], compiled=True)
    step.graph(INPUTS, graphc.tensor(GOOD_TARGETS))
    assert optimizer.state_dict()["state"] == {}
    step(INPUTS, graphc.tensor(GOOD_TARGETS))
    assert all("momentum_buffer" in optimizer.state[p] for p in model.parameters())


def test_an_eager_optimizer_step_that_fails_part_way_is_undone():
    model, optimizer, _ = make_training(OPTIMIZERS["sgd-dampening"], compiled=False)
    F.cross_entropy(model(INPUTS), graphc.tensor(GOOD_TARGETS)).backward()
    last = list(model.parameters())[-1]
    last.grad = graphc.zeros(7)               # the last parameter's update fails, after the others'
    before = snapshot(model, optimizer)
    with pytest.raises(graphc.ShapeError):
        optimizer.step()
    assert_same(before, snapshot(model, optimizer))
    assert optimizer.state_dict()["state"] == {}
