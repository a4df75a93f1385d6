"""RMSprop, Adagrad and the schedulers beyond StepLR/cosine, against PyTorch step by step, eager and compiled."""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.optim as optim
from graphc.optim import lr_scheduler
from layer_checks import assert_close, copy_weights, torch


def twins(seed=0):
    torch.manual_seed(seed)
    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    return copy_weights(nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)), torch_model), torch_model


def batch(i):
    rng = np.random.default_rng(i)
    return rng.standard_normal((5, 4)).astype(np.float32), rng.integers(0, 3, 5)


def train_side_by_side(make_opt, steps=4, make_scheduler=None, compiled=True):
    """Train twins with the same optimizer (and scheduler, stepped after every step) on graphc and on torch;
    checks the losses, parameters and learning rates agree; returns graphc's optimizer and step."""
    model, torch_model = twins()
    opt, torch_opt = make_opt(optim, model.parameters()), make_opt(torch.optim, torch_model.parameters())
    schedulers = (make_scheduler(lr_scheduler, opt), make_scheduler(torch.optim.lr_scheduler, torch_opt)) \
        if make_scheduler else None

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    run = graphc.compile(step) if compiled else step
    for i in range(steps):
        x, y = batch(i)
        torch_opt.zero_grad()
        expected = torch.nn.functional.cross_entropy(torch_model(torch.tensor(x)), torch.tensor(y))
        expected.backward()
        torch_opt.step()
        assert_close(run(graphc.tensor(x), graphc.tensor(y)), expected, rtol=1e-5, what=f"loss {i}")
        if schedulers:
            for scheduler in schedulers:
                scheduler.step()
            np.testing.assert_allclose(schedulers[0].get_last_lr(), schedulers[1].get_last_lr(), rtol=1e-12)
    for (name, p), t in zip(model.named_parameters(), torch_model.parameters()):
        assert_close(p, t, rtol=1e-5, atol=1e-6, what=name)
    return opt, torch_opt, run


@pytest.mark.parametrize("make_opt", [
    lambda o, p: o.RMSprop(p, lr=0.01),
    lambda o, p: o.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.1),
    lambda o, p: o.RMSprop(p, lr=0.01, momentum=0.5, maximize=True),
    lambda o, p: o.Adagrad(p, lr=0.1),
    lambda o, p: o.Adagrad(p, lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.2),
])
@pytest.mark.parametrize("compiled", [False, True])
def test_rmsprop_and_adagrad_match_torch(make_opt, compiled):
    opt, torch_opt, _ = train_side_by_side(make_opt, compiled=compiled)
    ours, theirs = opt.state_dict(), torch_opt.state_dict()
    assert list(ours["state"]) == list(theirs["state"])
    for index, values in theirs["state"].items():
        assert list(ours["state"][index]) == list(values)
        for name, value in values.items():
            assert_close(ours["state"][index][name], value, rtol=1e-5, atol=1e-7, what=name)
    assert set(ours["param_groups"][0]) == set(theirs["param_groups"][0])


def test_adagrad_has_state_from_the_start_so_one_compile_serves_every_step():
    _, _, run = train_side_by_side(lambda o, p: o.Adagrad(p, lr=0.1))
    assert run.cache_info().compiles == 1


@pytest.mark.parametrize("make_opt, make_scheduler", [
    (lambda o, p: o.SGD(p, lr=0.1), lambda s, opt: s.MultiStepLR(opt, milestones=[1, 3, 3], gamma=0.5)),
    (lambda o, p: o.SGD(p, lr=0.1, momentum=0.9), lambda s, opt: s.ExponentialLR(opt, gamma=0.7)),
    (lambda o, p: o.Adam(p, lr=0.01), lambda s, opt: s.LambdaLR(opt, lambda epoch: 1 / (epoch + 1))),
    (lambda o, p: o.SGD(p, lr=0.1, momentum=0.9), lambda s, opt: s.OneCycleLR(opt, max_lr=0.5, total_steps=6)),
    (lambda o, p: o.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
     lambda s, opt: s.OneCycleLR(opt, max_lr=0.5, total_steps=6, anneal_strategy="linear", three_phase=True)),
    (lambda o, p: o.Adam(p, lr=0.01), lambda s, opt: s.OneCycleLR(opt, max_lr=0.05, epochs=2, steps_per_epoch=3)),
    (lambda o, p: o.RMSprop(p, lr=0.01, momentum=0.9), lambda s, opt: s.OneCycleLR(opt, max_lr=0.05, total_steps=6,
                                                                                   pct_start=0.5)),
])
def test_schedulers_match_torch_and_compile_once(make_opt, make_scheduler):
    opt, torch_opt, run = train_side_by_side(make_opt, steps=6, make_scheduler=make_scheduler)
    for group, torch_group in zip(opt.param_groups, torch_opt.param_groups):
        for key in ("momentum", "betas"):
            if key in torch_group:
                np.testing.assert_allclose(group[key], torch_group[key])
    # The learning rate and the cycled momentum are tensors the compiled step reads: no retrace per step.
    assert run.cache_info().compiles <= 2


def test_one_cycle_checks_its_arguments_like_torch():
    opt = optim.Adagrad([nn.Parameter(graphc.zeros(2))])
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=4)
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(optim.SGD([nn.Parameter(graphc.zeros(2))], lr=0.1), max_lr=0.1)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2, cycle_momentum=False)
    scheduler.step(), scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        scheduler.step()


@pytest.mark.parametrize("kwargs", [{}, dict(mode="max", threshold_mode="abs", threshold=0.1, cooldown=1),
                                    dict(patience=0, factor=0.5, min_lr=0.02)])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.93, 0.8, 0.85, 0.86, 0.9, 0.95, 0.97] * 2
    opt = optim.SGD([nn.Parameter(graphc.zeros(2))], lr=0.1)
    torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    ours = lr_scheduler.ReduceLROnPlateau(opt, **{"patience": 2, **kwargs})
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt, **{"patience": 2, **kwargs})
    for metric in metrics:
        ours.step(graphc.tensor(metric))
        theirs.step(metric)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    assert ours.best == pytest.approx(theirs.best) and ours.num_bad_epochs == theirs.num_bad_epochs


def test_lambda_lr_state_dict_keeps_callable_objects_but_not_functions():
    class Warmup:
        def __init__(self):
            self.steps = 2

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)
    opt = optim.SGD([nn.Parameter(graphc.zeros(2)), nn.Parameter(graphc.zeros(1))], lr=0.1)
    opt.add_param_group({"params": [nn.Parameter(graphc.zeros(1))]})
    warmup = Warmup()
    scheduler = lr_scheduler.LambdaLR(opt, [warmup, lambda epoch: 0.5])
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [{"steps": 2}, None] and "optimizer" not in state
    warmup.steps = 10
    scheduler.load_state_dict(state)
    assert warmup.steps == 2
