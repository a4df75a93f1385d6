"""The layers beyond the CNN basics against PyTorch: values, shapes and gradients, eager and compiled."""
import math
import warnings

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.errors import ShapeError
from api_check import check
from layer_checks import assert_close, check_layer, randn, torch


# -- activations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda m: m.ELU(), lambda m: m.ELU(alpha=0.5), lambda m: m.GELU(), lambda m: m.GELU(approximate="tanh"),
    lambda m: m.SiLU(), lambda m: m.Softplus(), lambda m: m.Softplus(beta=2.0, threshold=3.0),
    lambda m: m.Hardtanh(), lambda m: m.Hardtanh(-0.5, 2.0), lambda m: m.PReLU(), lambda m: m.PReLU(3, init=0.1),
    lambda m: m.ReLU6(), lambda m: m.Hardswish(), lambda m: m.Mish(), lambda m: m.LogSigmoid(), lambda m: m.GLU(0),
])
def test_activations(make):
    x = randn(2, 3, 5) * 4
    x[0, 0, :3] = [30.0, -30.0, 100.0]         # far tails: overflow in an unselected branch must not leak NaN
    check_layer(make(nn), make(torch.nn), x)


def test_erf_and_gelu_are_accurate_to_float32_rounding_over_a_wide_range():
    from graphc.frontend.nn.special import erf
    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    exact_erf = np.array([math.erf(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(erf(graphc.tensor(x)).numpy(), exact_erf, rtol=2.5e-7, atol=1.5e-7)
    # GELU's 1 + erf(x/√2) cancels for negative x, so PyTorch's own float32 GELU is 1e-6 from the exact value
    # there; graphc's is within half that.
    exact_gelu = x * 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x.astype(np.float64)]))
    np.testing.assert_allclose(F.gelu(graphc.tensor(x)).numpy(), exact_gelu, rtol=2e-7, atol=5e-7)
    expected = torch.nn.functional.gelu(torch.tensor(x)).numpy()
    np.testing.assert_allclose(F.gelu(graphc.tensor(x)).numpy(), expected, rtol=2e-7, atol=1.5e-6)
    expected = torch.nn.functional.gelu(torch.tensor(x), approximate="tanh").numpy()
    np.testing.assert_allclose(F.gelu(graphc.tensor(x), approximate="tanh").numpy(), expected, rtol=1e-6,
                               atol=5e-7)


# Inputs on and beside the kinks of relu6 and hardswish, and far into the tails.
AWKWARD = np.array([0.0, -0.0, 3.0, -3.0, 6.0, 2.9999998, -2.9999998, -3.0000002, 6.0000005, 1e-30, -1e-30, 0.5, -0.5,
                    20.0, -20.0, 30.0, -30.0, 100.0, -100.0, 1e4, -1e4, 1e30, -1e30], np.float32)
NONFINITE = np.array([np.inf, -np.inf, np.nan], np.float32)


@pytest.mark.parametrize("name", ["relu6", "hardswish", "mish", "logsigmoid"])
def test_new_activation_functions_at_awkward_inputs(name):
    check(lambda m, x: getattr(m.nn.functional, name)(x), AWKWARD, rtol=2e-6, atol=1e-7)
    check(lambda m, x: getattr(m.nn.functional, name)(x), np.concatenate([AWKWARD, NONFINITE]), grad=False,
          rtol=2e-6, atol=1e-7)
    check(lambda m, x: getattr(m.nn.functional, name)(x), np.linspace(-8, 8, 161), rtol=1e-12, atol=1e-15)


def test_logsigmoid_keeps_large_negative_inputs_and_small_tails():
    x = np.array([-1e30, -200.0, -90.0, -20.0, 15.0, 30.0, 90.0], np.float32)
    expected = torch.nn.functional.logsigmoid(torch.tensor(x)).numpy()
    got = F.logsigmoid(graphc.tensor(x)).numpy()
    np.testing.assert_array_equal(got[:3], x[:3])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)         # -exp(-90) keeps its digits


def test_glu():
    x = randn(4, 6, 3)
    check(lambda m, t: m.nn.functional.glu(t, 1), x)
    check(lambda m, t: m.nn.functional.glu(t), randn(3, 8))
    with pytest.raises(ShapeError, match="halving dimension must be even"):
        F.glu(graphc.tensor(randn(4, 5)))


def test_normalize():
    x = randn(3, 4, 2)
    x[1, :, 0] = 0.0                            # a zero vector: stays zero, gradient 1/eps
    x[2, :, 1] = [1e15, -1e15, 3e15, 0.0]       # large and small magnitudes
    x[0, :, 1] = [1e-20, 0.0, -2e-20, 0.0]
    check(lambda m, t: m.nn.functional.normalize(t), x, rtol=1e-5)
    check(lambda m, t: m.nn.functional.normalize(t, dim=-1, eps=1e-3), x, rtol=1e-5)
    check(lambda m, t: m.nn.functional.normalize(t, p=2.0, dim=0), x.astype(np.float64), rtol=1e-12)


def test_cosine_similarity():
    a, b = randn(4, 1, 3), randn(5, 3, seed=1)
    a[0, 0] = 0.0                                # a zero vector: similarity 0, gradient through the clamp
    a[1, 0] = [1e-10, -2e-10, 0.0]               # a norm below eps: value bounded, gradient the norm's own
    b[2] = [1e18, -1e18, 2e18]                   # would overflow ||a|| * ||b|| in float32
    check(lambda m, x, y: m.nn.functional.cosine_similarity(x, y, dim=-1), a, b, rtol=1e-5, atol=1e-6)
    check(lambda m, x, y: m.nn.functional.cosine_similarity(x, y), randn(1, 3), randn(4, 3, seed=2), rtol=1e-5)
    check(lambda m, x, y: m.nn.functional.cosine_similarity(x, y, dim=0, eps=0.5), randn(1, 3), randn(4, 3, seed=2),
          rtol=1e-5)
    check(lambda m, x, y: m.nn.functional.cosine_similarity(x, y, dim=0), np.array([[1], [2], [0]]), randn(3, 2),
          rtol=1e-5)
    with pytest.raises(RuntimeError, match="floating point"):
        F.cosine_similarity(graphc.tensor([1, 2]), graphc.tensor([3, 4]), dim=0)


def test_softplus_keeps_small_tails():
    x = np.array([-40.0, -20.0, -5.0, 0.0, 5.0], np.float32)
    expected = torch.nn.functional.softplus(torch.tensor(x)).numpy()
    np.testing.assert_allclose(F.softplus(graphc.tensor(x)).numpy(), expected, rtol=1e-6)


# -- convolution and pooling in 1-D ----------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, shape", [
    ((3, 4, 3), {}, (2, 3, 9)),
    ((4, 6, 2), dict(stride=2, padding=1, dilation=2, groups=2, bias=False), (2, 4, 11)),
    ((2, 3, 4), dict(padding="same"), (1, 2, 7)),
    ((2, 3, 3), dict(padding=1), (2, 6)),                     # unbatched (C, L)
])
def test_conv1d(args, kwargs, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # torch's 'same' with an even kernel
        check_layer(nn.Conv1d(*args, **kwargs), torch.nn.Conv1d(*args, **kwargs), randn(*shape), atol=1e-5)


@pytest.mark.parametrize("make, shape", [
    (lambda m: m.MaxPool1d(2), (2, 3, 8)),
    (lambda m: m.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    (lambda m: m.MaxPool1d(2, dilation=2), (3, 9)),
    (lambda m: m.AvgPool1d(3), (2, 3, 9)),
    (lambda m: m.AvgPool1d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 8)),
    (lambda m: m.AdaptiveMaxPool2d((2, 3)), (2, 3, 6, 9)),
    (lambda m: m.AdaptiveMaxPool2d((3, None)), (2, 3, 7, 5)),   # uneven bins: slices and max
    (lambda m: m.AdaptiveMaxPool2d(4), (3, 5, 5)),
])
def test_pooling(make, shape):
    check_layer(make(nn), make(torch.nn), randn(*shape))


def test_1d_layers_print_like_torch():
    for make in (lambda m: m.Conv1d(3, 4, 3, padding=1), lambda m: m.MaxPool1d(2), lambda m: m.AvgPool1d(3),
                 lambda m: m.AdaptiveMaxPool2d(2)):
        assert repr(make(nn)) == repr(make(torch.nn))


# -- normalization -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, shape", [
    (lambda m: m.LayerNorm(5), (2, 3, 5)),
    (lambda m: m.LayerNorm((3, 5), eps=1e-3), (2, 3, 5)),
    (lambda m: m.LayerNorm(5, elementwise_affine=False), (4, 5)),
    (lambda m: m.LayerNorm(5, bias=False), (4, 5)),
    (lambda m: m.GroupNorm(2, 4), (2, 4, 3, 3)),
    (lambda m: m.GroupNorm(1, 4, affine=False), (2, 4, 5)),
    (lambda m: m.InstanceNorm2d(3), (2, 3, 4, 4)),
    (lambda m: m.InstanceNorm2d(3, affine=True), (3, 4, 5)),
    (lambda m: m.InstanceNorm1d(3, affine=True), (2, 3, 6)),
])
def test_normalization(make, shape):
    module, torch_module = make(nn), make(torch.nn)
    with torch.no_grad():
        for p in torch_module.parameters():
            p.copy_(torch.randn(p.shape))
    check_layer(module, torch_module, randn(*shape), atol=1e-5)
    assert repr(module) == repr(torch_module)


def test_instance_norm_running_stats_match_torch_in_training_and_eval():
    module, torch_module = nn.InstanceNorm2d(3, track_running_stats=True), \
        torch.nn.InstanceNorm2d(3, track_running_stats=True)
    x = randn(4, 3, 5, 5)
    for _ in range(2):
        assert_close(module(graphc.tensor(x)), torch_module(torch.tensor(x)), atol=1e-5)
    assert_close(module.running_mean, torch_module.running_mean)
    assert_close(module.running_var, torch_module.running_var)
    module.eval(), torch_module.eval()
    assert_close(module(graphc.tensor(x)), torch_module(torch.tensor(x)), atol=1e-5)


# -- embedding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, dict(padding_idx=1), dict(padding_idx=-1)])
def test_embedding(kwargs):
    ids = np.array([[0, 1, 4], [1, 1, 3]], np.int64)
    check_layer(nn.Embedding(6, 3, **kwargs), torch.nn.Embedding(6, 3, **kwargs), ids)


def test_embedding_init_and_from_pretrained():
    graphc.manual_seed(0)
    table = nn.Embedding(10, 4, padding_idx=2)
    assert np.all(table.weight.detach().numpy()[2] == 0)
    assert abs(float(table.weight.detach().numpy().std()) - 1) < 0.4
    frozen = nn.Embedding.from_pretrained(graphc.tensor(randn(5, 2)))
    assert not frozen.weight.requires_grad
    assert repr(nn.Embedding(10, 4, padding_idx=2)) == repr(torch.nn.Embedding(10, 4, padding_idx=2))
    with pytest.raises(ShapeError, match="integer indices"):
        table(graphc.zeros(3))


# -- resizing ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, kwargs", [
    ((1, 2, 3, 4), dict(scale_factor=2)),
    ((1, 2, 3, 4), dict(size=(5, 7))),
    ((1, 2, 5, 4), dict(scale_factor=(0.5, 1.5))),
    ((2, 2, 5), dict(scale_factor=3)),
    ((1, 2, 3, 4), dict(size=(7, 5), mode="nearest-exact")),
    ((1, 2, 3, 4), dict(scale_factor=2, mode="bilinear")),
    ((1, 2, 3, 4), dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ((1, 2, 4, 6), dict(size=(3, 9), mode="bilinear")),
    ((1, 2, 4, 6), dict(size=(1, 9), mode="bilinear", align_corners=True)),
    ((1, 2, 5, 4), dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)),
    ((2, 3, 5), dict(size=8, mode="linear")),
])
def test_interpolate(shape, kwargs):
    check_layer(nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs), randn(*shape))


def test_interpolate_functional_form_and_named_upsamplers():
    x = randn(1, 1, 3, 3)
    assert_close(F.interpolate(graphc.tensor(x), scale_factor=2, mode="bilinear", align_corners=False),
                 torch.nn.functional.interpolate(torch.tensor(x), scale_factor=2, mode="bilinear",
                                                 align_corners=False))
    assert_close(nn.UpsamplingBilinear2d(scale_factor=2)(graphc.tensor(x)),
                 torch.nn.UpsamplingBilinear2d(scale_factor=2)(torch.tensor(x)))
    assert_close(nn.UpsamplingNearest2d(size=5)(graphc.tensor(x)),
                 torch.nn.UpsamplingNearest2d(size=5)(torch.tensor(x)))
    assert repr(nn.Upsample(scale_factor=2)) == repr(torch.nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(graphc.tensor(x), scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(graphc.tensor(x), scale_factor=2, mode="bicubic")


def test_integer_nearest_upsampling_is_a_broadcast_not_a_gather():
    graph = graphc.trace(nn.Upsample(scale_factor=2), graphc.zeros(1, 2, 3, 3))
    assert "gather" not in {node.op for node in graph.nodes}


# -- losses --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs", [
    ("SmoothL1Loss", {}), ("SmoothL1Loss", dict(beta=0.5, reduction="sum")), ("SmoothL1Loss", dict(beta=0.0)),
    ("HuberLoss", {}), ("HuberLoss", dict(delta=0.3, reduction="none")),
])
def test_regression_losses(name, kwargs):
    x, y = randn(4, 5) * 2, randn(4, 5, seed=3)
    loss, torch_loss = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    check_layer(loss, torch_loss, x, call=lambda m, v: m(v, (graphc if m is loss else torch).tensor(y)))


@pytest.mark.parametrize("kwargs", [dict(reduction="batchmean"), dict(reduction="sum"), dict(reduction="none"),
                                    dict(reduction="batchmean", log_target=True)])
def test_kl_div(kwargs):
    logits, target_logits = randn(3, 4), randn(3, 4, seed=5)
    log_probs = torch.log_softmax(torch.tensor(logits), 1).numpy()
    target = torch.softmax(torch.tensor(target_logits), 1).numpy()
    target[0, 0] = 0.0                       # 0 * log 0 counts as 0
    if kwargs.get("log_target"):
        target = np.log(np.maximum(target, 1e-12)).astype(np.float32)
    loss, torch_loss = nn.KLDivLoss(**kwargs), torch.nn.KLDivLoss(**kwargs)
    check_layer(loss, torch_loss, log_probs, call=lambda m, v: m(v, (graphc if m is loss else torch).tensor(target)))


def test_kl_div_mean_warns_as_torch_does():
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(graphc.zeros(2, 3), graphc.ones(2, 3) / 3)


# -- containers and utilities ------------------------------------------------------------------------

def test_parameter_list_and_dict_register_their_parameters():
    def build(lib):
        model = lib.nn.Module()
        model.scales = lib.nn.ParameterList([lib.nn.Parameter(lib.ones(3)) for _ in range(2)])
        model.offsets = lib.nn.ParameterDict({"a": lib.nn.Parameter(lib.zeros(3))})
        model.scales.append(lib.nn.Parameter(lib.ones(1)))
        model.offsets["b"] = lib.nn.Parameter(lib.zeros(1))
        return model
    model, expected = build(graphc), build(torch)
    assert [name for name, _ in model.named_parameters()] == [name for name, _ in expected.named_parameters()]
    assert list(model.state_dict()) == list(expected.state_dict())
    assert len(model.scales) == 3 and list(model.offsets) == ["a", "b"] and "a" in model.offsets
    assert isinstance(nn.ParameterList([graphc.zeros(2)])[0], nn.Parameter)
    assert repr(nn.ParameterList([graphc.zeros(2, 3), graphc.zeros(1)])).splitlines()[1].strip() == \
        "(0): Parameter containing: [graphc.float32 of size 2x3]"


def make_twins(seed=0):
    torch.manual_seed(seed)
    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    return model, torch_model


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_eager_and_compiled(norm_type):
    model, torch_model = make_twins()
    x = randn(6, 4) * 5
    torch_model(torch.tensor(x)).pow(2).sum().backward()
    expected_norm = torch.nn.utils.clip_grad_norm_(torch_model.parameters(), 0.5, norm_type)
    expected = [p.grad for p in torch_model.parameters()]

    def step(x):
        model.zero_grad()
        model(x).pow(2).sum().backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5, norm_type)
        return norm, [p.grad for p in model.parameters()]
    for run in (step, graphc.compile(step)):
        norm, grads = run(graphc.tensor(x))
        assert_close(norm, expected_norm, rtol=1e-5)
        for grad, e in zip(grads, expected):
            assert_close(grad, e, rtol=1e-5, atol=1e-7)


def test_clip_grad_value_and_parameter_vectors():
    model, torch_model = make_twins()
    x = randn(6, 4) * 5
    model(graphc.tensor(x)).sum().backward()
    torch_model(torch.tensor(x)).sum().backward()
    nn.utils.clip_grad_value_(model.parameters(), 0.1)
    torch.nn.utils.clip_grad_value_(torch_model.parameters(), 0.1)
    for p, t in zip(model.parameters(), torch_model.parameters()):
        assert_close(p.grad, t.grad)
    vector = nn.utils.parameters_to_vector(model.parameters())
    assert_close(vector, torch.nn.utils.parameters_to_vector(torch_model.parameters()))
    nn.utils.vector_to_parameters(vector * 2, model.parameters())
    assert_close(model[0].weight, torch_model[0].weight * 2)
