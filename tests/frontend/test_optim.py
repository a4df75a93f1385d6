"""Optimizers and learning-rate schedulers against PyTorch: same model, same data, same parameters every step."""
import numpy as np
import pytest

import graphc
import graphc.optim as optim
from graphc.optim import lr_scheduler
from optest import require_torch

torch = require_torch()

RTOL, ATOL = 1e-5, 1e-6


def _initial_weights(seed=0):
    """A 3 -> 6 -> 2 MLP: weight, bias, weight, bias."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * 0.5).astype(np.float32) for shape in [(6, 3), (6,), (2, 6), (2,)]]


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 2)).astype(np.float32)


def _mlp_loss(params, x, y):
    """The same code runs on graphc and on torch tensors."""
    w1, b1, w2, b2 = params
    out = (x @ w1.T + b1).relu() @ w2.T + b2
    return ((out - y) ** 2).mean()


class Pair:
    """The same parameters and optimizer in graphc and in torch, stepped together."""

    def __init__(self, make_optimizer):
        weights = _initial_weights()
        self.params = [graphc.tensor(w, requires_grad=True) for w in weights]
        self.torch_params = [torch.tensor(w, requires_grad=True) for w in weights]
        self.opt = make_optimizer(optim, self.params)
        self.torch_opt = make_optimizer(torch.optim, self.torch_params)
        x, y = _batch()
        self.data = (graphc.tensor(x), graphc.tensor(y))
        self.torch_data = (torch.tensor(x), torch.tensor(y))

    def step(self, frozen: int = 0):
        """One training step; the first ``frozen`` parameters are detached, so their grads stay None."""
        for opt, params, data in ((self.opt, self.params, self.data),
                                  (self.torch_opt, self.torch_params, self.torch_data)):
            opt.zero_grad()
            used = [p.detach() for p in params[:frozen]] + list(params[frozen:])
            _mlp_loss(used, *data).backward()
            opt.step()

    def assert_equal(self):
        for p, expected in zip(self.params, self.torch_params):
            np.testing.assert_allclose(p.detach().numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL)


OPTIMIZER_CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True,
              "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES, ids=[f"{n}-{k}" for n, k in OPTIMIZER_CASES])
def test_optimizer_steps_match_torch(name, kwargs):
    pair = Pair(lambda lib, params: getattr(lib, name)(params, **kwargs))
    for _ in range(5):
        pair.step()
        pair.assert_equal()


def test_training_an_nn_model_matches_torch():
    model = graphc.nn.Sequential(graphc.nn.Linear(3, 8), graphc.nn.ReLU(), graphc.nn.Linear(8, 4))
    torch_model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    torch_model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    opt = optim.AdamW(model.parameters(), lr=0.01)
    torch_opt = torch.optim.AdamW(torch_model.parameters(), lr=0.01)
    x, _ = _batch()
    y = np.array([0, 3, 1, 1, 2])
    for _ in range(5):
        for m, o, lib in ((model, opt, graphc), (torch_model, torch_opt, torch)):
            o.zero_grad()
            lib.nn.CrossEntropyLoss()(m(lib.tensor(x)), lib.tensor(y)).backward()
            o.step()
        for p, expected in zip(model.parameters(), torch_model.parameters()):
            np.testing.assert_allclose(p.detach().numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_param_groups_with_their_own_hyperparameters(name):
    def make(lib, params):
        return getattr(lib, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.05,
                                                             "weight_decay": 0.1}], lr=0.1)
    pair = Pair(make)
    for _ in range(3):
        pair.step()
        pair.assert_equal()
    assert pair.opt.param_groups[1]["lr"] == 0.05 and pair.opt.param_groups[0]["weight_decay"] == 0


def test_parameters_without_gradients_are_skipped_and_get_no_state():
    pair = Pair(lambda lib, params: lib.Adam(params, lr=0.01))
    pair.step(frozen=2)
    pair.assert_equal()
    assert [p.grad is None for p in pair.params] == [True, True, False, False]
    assert all(p not in pair.opt.state for p in pair.params[:2])
    np.testing.assert_array_equal(pair.params[0].detach().numpy(), _initial_weights()[0])


def test_changing_group_lr_takes_effect_at_the_next_step():
    pair = Pair(lambda lib, params: lib.SGD(params, lr=0.1, momentum=0.9))
    pair.step()
    for opt in (pair.opt, pair.torch_opt):
        opt.param_groups[0]["lr"] = 0.01
    pair.step()
    pair.assert_equal()


def test_zero_grad_to_zeros_or_none():
    params = [graphc.tensor(w, requires_grad=True) for w in _initial_weights()]
    opt = optim.SGD(params, lr=0.1)
    _mlp_loss(params, *map(graphc.tensor, _batch())).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_with_closure_returns_the_loss():
    params = [graphc.tensor(w, requires_grad=True) for w in _initial_weights()]
    x, y = map(graphc.tensor, _batch())
    opt = optim.SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = _mlp_loss(params, x, y)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert first.item() > opt.step(closure).item()


# -- state dicts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("Adam", {"lr": 0.01, "amsgrad": True}),
                                         ("AdamW", {"lr": 0.01})])
def test_state_dict_has_torchs_layout(name, kwargs):
    pair = Pair(lambda lib, params: getattr(lib, name)([{"params": params[:1]}, {"params": params[1:]}],
                                                       **kwargs))
    pair.step()
    pair.step()
    state, expected = pair.opt.state_dict(), pair.torch_opt.state_dict()
    assert state["param_groups"] == expected["param_groups"]
    assert list(state["state"]) == list(expected["state"])
    for index, values in expected["state"].items():
        assert list(state["state"][index]) == list(values)
        for key, value in values.items():
            assert state["state"][index][key].dtype == graphc.float32
            assert tuple(state["state"][index][key].shape) == tuple(value.shape)
            np.testing.assert_allclose(state["state"][index][key].numpy(), value.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1})])
def test_state_dict_round_trip_continues_identically(name, kwargs):
    pair = Pair(lambda lib, params: getattr(lib, name)(params, **kwargs))
    pair.step()
    pair.step()
    # A fresh optimizer over copies of the parameters, resumed from the state dict, with a changed lr.
    copies = [graphc.tensor(p.detach().numpy(), requires_grad=True) for p in pair.params]
    resumed = getattr(optim, name)(copies, lr=1.0)
    saved = pair.opt.state_dict()
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    assert all(a is b for a, b in zip(resumed.param_groups[0]["params"], copies))
    first = next(iter(resumed.state.values()))
    assert all(value is not saved["state"][0][key] for key, value in first.items())   # copies, not aliases
    x, y = pair.data
    for _ in range(2):
        pair.step()
        resumed.zero_grad()
        _mlp_loss(copies, x, y).backward()
        resumed.step()
    for p, q in zip(pair.params, copies):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-6, atol=1e-7)
    pair.assert_equal()


def test_load_state_dict_writes_into_existing_state_tensors():
    pair = Pair(lambda lib, params: lib.Adam(params, lr=0.01))
    pair.step()
    saved = {"state": {i: {k: v.numpy().copy() for k, v in values.items()}
                       for i, values in pair.opt.state_dict()["state"].items()},
             "param_groups": pair.opt.state_dict()["param_groups"]}
    tensors = [dict(state) for state in pair.opt.state.values()]
    pair.step()
    pair.opt.load_state_dict(saved)
    for before, after, values in zip(tensors, pair.opt.state.values(), saved["state"].values()):
        assert all(after[key] is before[key] for key in before)     # a compiled step's bindings stay valid
        for key, value in values.items():
            np.testing.assert_array_equal(after[key].numpy(), value)


def test_a_torch_state_dict_loads():
    pair = Pair(lambda lib, params: lib.Adam(params, lr=0.01))
    pair.step()
    torch_state = pair.torch_opt.state_dict()
    converted = {"state": {i: {k: v.numpy() for k, v in values.items()} for i, values in torch_state["state"].items()},
                 "param_groups": torch_state["param_groups"]}
    with graphc.no_grad():
        for p, expected in zip(pair.params, pair.torch_params):
            p.copy_(graphc.tensor(expected.detach().numpy()))
    pair.opt.load_state_dict(converted)
    pair.step()
    pair.assert_equal()


def test_load_state_dict_rejects_mismatched_groups():
    params = [graphc.tensor(w, requires_grad=True) for w in _initial_weights()]
    saved = optim.SGD(params, lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD(params[:3], lr=0.1).load_state_dict(saved)


def test_adamw_loads_an_adam_state_dict_as_decoupled():
    params = [graphc.tensor(w, requires_grad=True) for w in _initial_weights()]
    opt = optim.AdamW(params)
    opt.load_state_dict(optim.Adam(params).state_dict())
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_repr_matches_torch():
    params = [graphc.tensor(w, requires_grad=True) for w in _initial_weights()]
    torch_params = [torch.tensor(w, requires_grad=True) for w in _initial_weights()]
    for name in ("SGD", "Adam", "AdamW"):
        assert repr(getattr(optim, name)(params)) == repr(getattr(torch.optim, name)(torch_params))


# -- errors --------------------------------------------------------------------------------------------

def test_construction_errors():
    p = graphc.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="one of the params is int"):
        optim.Adam([p, 3])
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        optim.AdamW([p], differentiable=True)


# -- learning-rate schedulers --------------------------------------------------------------------------

def _scheduled_lrs(lib, make_scheduler, epochs=30):
    params = [lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)]
    opt = lib.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    scheduler = make_scheduler(lib.optim.lr_scheduler, opt)
    lrs = [scheduler.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
        assert [group["lr"] for group in opt.param_groups] == lrs[-1]
    return np.array(lrs), scheduler


@pytest.mark.parametrize("make", [
    lambda s, opt: s.StepLR(opt, step_size=4, gamma=0.5),
    lambda s, opt: s.CosineAnnealingLR(opt, T_max=10),
    lambda s, opt: s.CosineAnnealingLR(opt, T_max=7, eta_min=0.01),
], ids=["StepLR", "CosineAnnealingLR", "CosineAnnealingLR-eta_min"])
def test_scheduler_learning_rates_match_torch(make):
    lrs, _ = _scheduled_lrs(graphc, make)
    expected, _ = _scheduled_lrs(torch, make)
    np.testing.assert_allclose(lrs, expected, rtol=0, atol=1e-7)


def test_scheduled_lr_reaches_the_update():
    pair = Pair(lambda lib, params: lib.SGD(params, lr=0.2, momentum=0.9))
    schedulers = [lr_scheduler.StepLR(pair.opt, step_size=2, gamma=0.3),
                  torch.optim.lr_scheduler.StepLR(pair.torch_opt, step_size=2, gamma=0.3)]
    for _ in range(5):
        pair.step()
        for scheduler in schedulers:
            scheduler.step()
        pair.assert_equal()


def test_scheduler_state_dict_round_trip():
    lrs, scheduler = _scheduled_lrs(graphc, lambda s, opt: s.CosineAnnealingLR(opt, T_max=10), epochs=5)
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 5 and state["base_lrs"] == [0.1, 0.5]
    params = [graphc.zeros(2, requires_grad=True), graphc.zeros(3, requires_grad=True)]
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    resumed = lr_scheduler.CosineAnnealingLR(opt, T_max=1)
    resumed.load_state_dict(state)
    opt.load_state_dict(scheduler.optimizer.state_dict())      # the current lrs live in the optimizer
    assert resumed.T_max == 10 and resumed.get_last_lr() == list(lrs[-1])
    for _ in range(3):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_scheduler_errors():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=1)
    opt = optim.SGD([graphc.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=1, last_epoch=3)
    with pytest.raises(NotImplementedError, match="step\\(epoch\\)"):
        lr_scheduler.StepLR(opt, step_size=1).step(3)
