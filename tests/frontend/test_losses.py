"""Losses (functional and Modules) against PyTorch: values, gradients, reductions and errors."""
import itertools

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.errors import ShapeError
from optest import require_torch

torch = require_torch()
torch_F = torch.nn.functional

REDUCTIONS = ("mean", "sum", "none")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _to_graphc(value, requires_grad=False):
    return graphc.tensor(value, requires_grad=requires_grad) if isinstance(value, np.ndarray) else value


def _to_torch(value, requires_grad=False):
    return torch.tensor(value, requires_grad=requires_grad) if isinstance(value, np.ndarray) else value


def check_against_torch(name, input, target, rtol=1e-5, atol=1e-6, check_grad=True, **kwargs):
    """graphc's and torch's functional loss ``name``: equal values and equal gradients w.r.t. ``input``."""
    x, t = graphc.tensor(input, requires_grad=True), _to_graphc(target)
    tx, tt = torch.tensor(input, requires_grad=True), _to_torch(target)
    out = getattr(F, name)(x, t, **{k: _to_graphc(v) for k, v in kwargs.items()})
    expected = getattr(torch_F, name)(tx, tt, **{k: _to_torch(v) for k, v in kwargs.items()})
    assert tuple(out.shape) == tuple(expected.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
    if not check_grad:
        return
    seed = _rng(1).standard_normal(tuple(expected.shape)).astype(np.float32)
    out.backward(graphc.tensor(seed))
    expected.backward(torch.tensor(seed))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)


# -- L1 and MSE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["l1_loss", "mse_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_elementwise_losses(name, reduction):
    rng = _rng()
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = rng.standard_normal((4, 3)).astype(np.float32)
    y[0, 0] = x[0, 0]             # |x - y| = 0: l1's gradient there is 0, as sign(0)
    check_against_torch(name, x, y, reduction=reduction)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_elementwise_losses_with_weight(name, reduction):
    rng = _rng()
    x, y = rng.standard_normal((2, 4, 3)).astype(np.float32)
    weight = rng.uniform(0.1, 2.0, (4, 3)).astype(np.float32)
    check_against_torch(name, x, y, reduction=reduction, weight=weight)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss"])
def test_elementwise_losses_broadcast_a_target_of_another_shape_with_a_warning(name):
    rng = _rng()
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    with pytest.warns(UserWarning, match="different to the input size"):
        check_against_torch(name, x, y)


def test_elementwise_loss_target_that_does_not_broadcast_is_a_shape_error():
    with pytest.warns(UserWarning), pytest.raises(ShapeError, match=r"mse_loss.*\[4\].*\[3\]"):
        F.mse_loss(graphc.zeros(3), graphc.zeros(4))


# -- binary cross-entropy ----------------------------------------------------------------------------

def _probabilities(shape, seed=0):
    return (1 / (1 + np.exp(-_rng(seed).standard_normal(shape) * 2))).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    x, y = _probabilities((5, 3)), _probabilities((5, 3), seed=1)
    weight = _rng(2).uniform(0.5, 2.0, (3,)).astype(np.float32) if weighted else None
    check_against_torch("binary_cross_entropy", x, y, reduction=reduction, weight=weight)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    x = np.array([0.0, 1.0, 1e-45, 0.5], np.float32)
    y = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
    check_against_torch("binary_cross_entropy", x, y, reduction="none", check_grad=False)
    xg = graphc.tensor(x, requires_grad=True)
    F.binary_cross_entropy(xg, graphc.tensor(y)).backward()
    assert np.isfinite(xg.grad.numpy()).all()


def test_binary_cross_entropy_rejects_bad_inputs():
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(graphc.tensor([0.5, 1.5]), graphc.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match=r"\[2, 1\].*\[2\]"):
        F.binary_cross_entropy(graphc.tensor([0.5, 0.5]), graphc.tensor([[0.0], [1.0]]))
    with pytest.raises(ShapeError, match="floating-point"):
        F.binary_cross_entropy(graphc.tensor([0.5, 0.5]), graphc.tensor([0, 1]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,pos_weighted", [(False, False), (True, False), (False, True), (True, True)])
def test_binary_cross_entropy_with_logits(reduction, weighted, pos_weighted):
    rng = _rng()
    x = (rng.standard_normal((4, 3)) * 3).astype(np.float32)
    x[0] = [0.0, 60.0, -60.0]      # the kink of log-sigmoid, and logits whose exp would overflow
    y = _probabilities((4, 3), seed=1)
    weight = rng.uniform(0.5, 2.0, (4, 3)).astype(np.float32) if weighted else None
    pos_weight = rng.uniform(0.5, 3.0, (3,)).astype(np.float32) if pos_weighted else None
    check_against_torch("binary_cross_entropy_with_logits", x, y, reduction=reduction, weight=weight,
                        pos_weight=pos_weight)


# -- NLL and cross-entropy ----------------------------------------------------------------------------

def _class_problem(shape, n_classes, seed=0, ignore=()):
    """Logits of ``shape`` (classes on dim 1, or dim 0 when 1-D) and matching i64 targets."""
    rng = _rng(seed)
    logits = rng.standard_normal(shape).astype(np.float32)
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = rng.integers(0, n_classes, target_shape).astype(np.int64)
    for index in ignore:
        target[index] = -1
    return logits, target


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_nll_loss(reduction, weighted, ignore):
    logits, target = _class_problem((6, 4), 4, ignore=[1, 4] if ignore else [])
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    weight = _rng(3).uniform(0.5, 2.0, (4,)).astype(np.float32) if weighted else None
    check_against_torch("nll_loss", log_probs, target, reduction=reduction, weight=weight,
                        ignore_index=-1 if ignore else -100)


@pytest.mark.parametrize("reduction,weighted,ignore,smoothing",
                         list(itertools.product(REDUCTIONS, [False, True], [False, True], [0.0, 0.2])))
def test_cross_entropy(reduction, weighted, ignore, smoothing):
    logits, target = _class_problem((6, 5), 5, ignore=[0, 3] if ignore else [])
    weight = _rng(3).uniform(0.5, 2.0, (5,)).astype(np.float32) if weighted else None
    check_against_torch("cross_entropy", logits, target, reduction=reduction, weight=weight,
                        ignore_index=-1 if ignore else -100, label_smoothing=smoothing)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_on_spatial_inputs(reduction):
    logits, target = _class_problem((2, 3, 4, 5), 3, ignore=[(0, 1, 2)])
    weight = np.array([0.5, 1.0, 2.0], np.float32)
    check_against_torch("cross_entropy", logits, target, reduction=reduction, weight=weight, ignore_index=-1,
                        label_smoothing=0.1)


def test_cross_entropy_on_an_unbatched_input():
    logits, target = _class_problem((7,), 7)
    check_against_torch("cross_entropy", logits, target, label_smoothing=0.1)
    check_against_torch("nll_loss", logits, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.0), (True, 0.3)])
def test_cross_entropy_with_class_probabilities(reduction, weighted, smoothing):
    rng = _rng()
    logits = rng.standard_normal((4, 3, 2)).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, (3,)).astype(np.float32) if weighted else None
    check_against_torch("cross_entropy", logits, probabilities, reduction=reduction, weight=weight,
                        label_smoothing=smoothing)


def test_cross_entropy_accepts_uint8_targets():
    logits, target = _class_problem((5, 4), 4)
    check_against_torch("cross_entropy", logits, target.astype(np.uint8))


def test_cross_entropy_mean_over_only_ignored_targets_is_nan_as_in_torch():
    logits, target = _class_problem((3, 4), 4, ignore=[0, 1, 2])
    out = F.cross_entropy(graphc.tensor(logits), graphc.tensor(target), ignore_index=-1)
    assert np.isnan(out.item())
    assert F.cross_entropy(graphc.tensor(logits), graphc.tensor(target), ignore_index=-1,
                           reduction="sum").item() == 0.0


def test_class_target_errors_name_dtype_and_shapes():
    logits = graphc.zeros(3, 4)
    with pytest.raises(ShapeError, match="must have dtype i64, got i32"):
        F.cross_entropy(logits, graphc.tensor([0, 1, 2], dtype=graphc.int32))
    with pytest.raises(ShapeError, match=r"expected target of shape \[3\] for input of shape \[3, 4\], "
                                         r"got target of shape \[2\]"):
        F.cross_entropy(logits, graphc.tensor([0, 1]))
    with pytest.raises(ShapeError, match="must be floating-point"):
        F.cross_entropy(logits, graphc.zeros(3, 4, dtype=graphc.int64))
    with pytest.raises(ShapeError, match=r"one entry per class, shape \[4\], but has shape \[3\]"):
        F.nll_loss(logits, graphc.tensor([0, 1, 2]), weight=graphc.ones(3))
    with pytest.raises(IndexError, match="target 7 is out of bounds for 4 classes"):
        F.nll_loss(logits, graphc.tensor([0, 7, 2]))
    with pytest.raises(ShapeError, match="0-d"):
        F.cross_entropy(graphc.tensor(1.0), graphc.tensor(0))


def test_argument_errors():
    logits, target = graphc.zeros(3, 4), graphc.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.cross_entropy(logits, target, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(logits, target, label_smoothing=1.5)
    with pytest.raises(ValueError, match="ignore_index is not supported"):
        F.cross_entropy(logits, graphc.zeros(3, 4), ignore_index=0)


def test_legacy_size_average_and_reduce_flags():
    x, y = graphc.tensor([1.0, 2.0]), graphc.tensor([0.0, 0.0])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert F.mse_loss(x, y, size_average=False).item() == 5.0
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert F.mse_loss(x, y, reduce=False).tolist() == [1.0, 4.0]


# -- Modules ------------------------------------------------------------------------------------------

def _module_cases():
    logits, target = _class_problem((6, 4), 4, ignore=[2])
    weight = np.array([0.5, 1.0, 1.5, 2.0], np.float32)
    probabilities, labels = _probabilities((6, 4)), _probabilities((6, 4), seed=1)
    return [
        ("L1Loss", {"reduction": "sum"}, logits, probabilities),
        ("MSELoss", {}, logits, probabilities),
        ("BCELoss", {"weight": weight}, probabilities, labels),
        ("BCEWithLogitsLoss", {"weight": weight, "pos_weight": weight[::-1].copy()}, logits, labels),
        ("NLLLoss", {"weight": weight, "ignore_index": -1}, logits, target),
        ("CrossEntropyLoss", {"weight": weight, "ignore_index": -1, "label_smoothing": 0.1,
                              "reduction": "none"}, logits, target),
    ]


@pytest.mark.parametrize("name,kwargs,input,target", _module_cases(), ids=lambda c: c if isinstance(c, str) else "")
def test_loss_modules_match_torch(name, kwargs, input, target):
    module = getattr(nn, name)(**{k: _to_graphc(v) for k, v in kwargs.items()})
    expected_module = getattr(torch.nn, name)(**{k: _to_torch(v) for k, v in kwargs.items()})
    x, tx = graphc.tensor(input, requires_grad=True), torch.tensor(input, requires_grad=True)
    out, expected = module(x, graphc.tensor(target)), expected_module(tx, torch.tensor(target))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert repr(module) == repr(expected_module)
    assert list(module.state_dict()) == list(expected_module.state_dict())


def test_loss_module_validates_reduction_at_construction():
    with pytest.raises(ValueError, match="elementwise is not a valid value for reduction"):
        nn.MSELoss(reduction="elementwise")


def test_loss_module_errors_name_the_module():
    with pytest.raises(ShapeError, match="in CrossEntropyLoss"):
        nn.CrossEntropyLoss()(graphc.zeros(3, 4), graphc.tensor([0, 1]))
