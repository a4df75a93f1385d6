"""graphc.nn layers, functional forms and init, against PyTorch with copied weights."""
import math

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.errors import ShapeError
from optest import require_torch

torch = require_torch()

RTOL, ATOL = 1e-5, 1e-6


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def copy_weights(module, torch_module):
    """Load ``torch_module``'s parameters and buffers into ``module`` (as numpy arrays)."""
    module.load_state_dict({k: v.numpy() for k, v in torch_module.state_dict().items()})
    return module


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    actual = actual.detach().numpy() if isinstance(actual, graphc.Tensor) else np.asarray(actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def compare(module, torch_module, *shape, rtol=RTOL, atol=ATOL, grads=False):
    """Same weights, same input: same output (and, with grads=True, same gradients)."""
    copy_weights(module, torch_module)
    x = randn(*shape)
    gx, tx = graphc.tensor(x, requires_grad=grads), torch.tensor(x, requires_grad=grads)
    out, expected = module(gx), torch_module(tx)
    assert_close(out, expected, rtol, atol)
    if grads:
        seed = randn(*expected.shape, seed=1)
        (out * graphc.tensor(seed)).sum().backward()
        (expected * torch.tensor(seed)).sum().backward()
        assert_close(gx.grad, tx.grad, 1e-4, 1e-5)
        torch_grads = dict(torch_module.named_parameters())
        for name, param in module.named_parameters():
            assert_close(param.grad, torch_grads[name].grad, 1e-4, 1e-5)


# -- linear and convolution -----------------------------------------------------------------------

@pytest.mark.parametrize("args, shape", [
    ((5, 3), (4, 5)),
    ((5, 3, False), (2, 3, 5)),
    ((4, 2), (4,)),
])
def test_linear(args, shape):
    compare(nn.Linear(*args), torch.nn.Linear(*args), *shape, grads=True)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("args, kwargs, shape", [
    ((3, 4, 3), {}, (2, 3, 7, 7)),
    ((3, 4, (3, 2)), dict(stride=(2, 1), padding=(1, 2), bias=False), (2, 3, 8, 7)),
    ((4, 6, 3), dict(dilation=2, groups=2, padding=2), (1, 4, 9, 9)),
    ((2, 4, 4), dict(padding="same"), (1, 2, 7, 6)),            # even kernel: asymmetric 'same'
    ((2, 3, 3), dict(padding="same", dilation=(2, 1)), (1, 2, 6, 6)),
    ((2, 3, 3), dict(padding="valid"), (1, 2, 6, 6)),
    ((2, 3, 3), dict(padding=1), (2, 6, 5)),                    # unbatched (C, H, W)
])
def test_conv2d(args, kwargs, shape):
    compare(nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs), *shape, atol=1e-5, grads=True)


@pytest.mark.parametrize("args, kwargs, shape", [
    ((3, 4, 3), {}, (2, 3, 5, 5)),
    ((4, 2, 4), dict(stride=2, padding=1), (2, 4, 7, 7)),
    ((4, 6, (3, 2)), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, bias=False), (1, 4, 4, 5)),
    ((2, 2, 3), dict(stride=2, dilation=2, output_padding=1), (1, 2, 4, 4)),
])
def test_conv_transpose2d(args, kwargs, shape):
    compare(nn.ConvTranspose2d(*args, **kwargs), torch.nn.ConvTranspose2d(*args, **kwargs), *shape, atol=1e-5,
            grads=True)


def test_functional_conv_forms_match_torch():
    x, w, b = randn(2, 4, 6, 6), randn(6, 2, 3, 3, seed=1), randn(6, seed=2)
    out = F.conv2d(graphc.tensor(x), graphc.tensor(w), graphc.tensor(b), stride=2, padding=1, groups=2)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1,
                                          groups=2)
    assert_close(out, expected, atol=1e-5)
    wt = randn(4, 3, 3, 3, seed=3)
    out = F.conv_transpose2d(graphc.tensor(x), graphc.tensor(wt), None, 2, 1, 1)
    expected = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(wt), None, 2, 1, 1)
    assert_close(out, expected, atol=1e-5)
    out = F.linear(graphc.tensor(x[0, 0]), graphc.tensor(w[:, 0, :, 0].T.copy()))
    assert_close(out, torch.nn.functional.linear(torch.tensor(x[0, 0]), torch.tensor(w[:, 0, :, 0].T.copy())))


def test_conv_settings_are_validated_like_torch():
    with pytest.raises(NotImplementedError, match="padding_mode='reflect'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Invalid padding string"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(NotImplementedError, match="output_size"):
        nn.ConvTranspose2d(2, 2, 3)(graphc.zeros(1, 2, 4, 4), output_size=(6, 6))


def test_shape_errors_name_the_layer_and_shapes():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ShapeError, match="input has 4 channels but weight expects 3") as info:
        conv(graphc.zeros(1, 4, 8, 8))
    assert "[1,4,8,8]" in str(info.value) and "[4,3,3,3]" in str(info.value) and " in Conv2d" in str(info.value)
    with pytest.raises(ShapeError, match=r"7 features.*expects 5.* in Linear"):
        nn.Linear(5, 2)(graphc.zeros(3, 7))
    with pytest.raises(ShapeError, match="expected 4D input"):
        nn.BatchNorm2d(3)(graphc.zeros(2, 3))
    with pytest.raises(ShapeError, match="3 channels .* 4 elements"):
        nn.BatchNorm1d(4)(graphc.zeros(2, 3))


# -- batch norm -------------------------------------------------------------------------------------

def run_train_steps(module, torch_module, shape, steps=3):
    copy_weights(module, torch_module)
    module.train(), torch_module.train()
    for step in range(steps):
        x = randn(*shape, seed=step)
        assert_close(module(graphc.tensor(x)), torch_module(torch.tensor(x)), 1e-5, 1e-5)
    copy_state = {k: v.numpy() for k, v in module.state_dict().items()}
    for key, value in torch_module.state_dict().items():
        assert_close(copy_state[key], value, 1e-5, 1e-6)


@pytest.mark.parametrize("cls, torch_cls, shape", [
    ("BatchNorm2d", "BatchNorm2d", (4, 3, 5, 5)),
    ("BatchNorm1d", "BatchNorm1d", (6, 3)),
    ("BatchNorm1d", "BatchNorm1d", (4, 3, 5)),
])
@pytest.mark.parametrize("kwargs", [
    {},
    dict(momentum=None),
    dict(momentum=0.3, eps=1e-3),
    dict(affine=False),
    dict(track_running_stats=False),
    dict(bias=False),
])
def test_batch_norm_train_then_eval(cls, torch_cls, shape, kwargs):
    module, torch_module = getattr(nn, cls)(3, **kwargs), getattr(torch.nn, torch_cls)(3, **kwargs)
    with torch.no_grad():
        for p in torch_module.parameters():
            p.uniform_(0.5, 1.5)
    run_train_steps(module, torch_module, shape)
    if module.track_running_stats:
        assert module.num_batches_tracked.item() == 3
        assert module.num_batches_tracked.dtype == graphc.int64
    module.eval(), torch_module.eval()
    x = randn(*shape, seed=9)
    assert_close(module(graphc.tensor(x)), torch_module(torch.tensor(x)), 1e-5, 1e-5)


def test_batch_norm_gradients():
    module, torch_module = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    compare(module, torch_module, 4, 3, 3, 3, atol=1e-5, grads=True)


def test_functional_batch_norm():
    x, rm, rv = randn(4, 3, 2, 2), np.zeros(3, np.float32), np.ones(3, np.float32)
    g_rm, g_rv, t_rm, t_rv = graphc.tensor(rm), graphc.tensor(rv), torch.tensor(rm), torch.tensor(rv)
    out = F.batch_norm(graphc.tensor(x), g_rm, g_rv, training=True, momentum=0.2)
    expected = torch.nn.functional.batch_norm(torch.tensor(x), t_rm, t_rv, training=True, momentum=0.2)
    assert_close(out, expected, 1e-5, 1e-5)
    assert_close(g_rm, t_rm), assert_close(g_rv, t_rv)
    with pytest.raises(ShapeError, match="more than 1 value per channel"):
        F.batch_norm(graphc.zeros(1, 3), None, None, training=True)


# -- activations, pooling, shapes ----------------------------------------------------------------

@pytest.mark.parametrize("name, args", [
    ("ReLU", ()), ("LeakyReLU", ()), ("LeakyReLU", (0.2,)), ("Sigmoid", ()), ("Tanh", ()),
    ("Softmax", (1,)), ("Softmax", (-1,)), ("LogSoftmax", (1,)), ("LogSoftmax", (0,)), ("Identity", (7,)),
    ("Flatten", ()), ("Flatten", (0, 1)), ("Unflatten", (1, (2, 3))),
])
def test_activation_and_shape_modules(name, args):
    compare(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), 2, 6, 3, grads=True)


def test_inplace_flags_are_accepted():
    x = randn(3, 4)
    assert_close(nn.ReLU(inplace=True)(graphc.tensor(x)), torch.relu(torch.tensor(x)))
    assert_close(nn.LeakyReLU(0.1, inplace=True)(graphc.tensor(x)),
                 torch.nn.functional.leaky_relu(torch.tensor(x), 0.1))


def test_softmax_is_stable_for_large_inputs():
    x = randn(3, 5) * 1000
    assert_close(F.softmax(graphc.tensor(x), dim=1), torch.softmax(torch.tensor(x), 1))
    assert_close(F.log_softmax(graphc.tensor(x), dim=1), torch.log_softmax(torch.tensor(x), 1), atol=1e-4)
    assert_close(F.softmax(graphc.tensor(x), dim=0, dtype=graphc.float64),
                 torch.softmax(torch.tensor(x), 0, dtype=torch.float64))


def test_functional_activations():
    x = randn(4, 5)
    for name in ("relu", "sigmoid", "tanh"):
        assert_close(getattr(F, name)(graphc.tensor(x)), getattr(torch.nn.functional, name)(torch.tensor(x)))
    assert_close(F.leaky_relu(graphc.tensor(x), 0.3), torch.nn.functional.leaky_relu(torch.tensor(x), 0.3))


@pytest.mark.parametrize("module_args", [
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", (3,), dict(stride=2, padding=1)),
    ("MaxPool2d", ((2, 3),), dict(stride=(1, 2), dilation=(2, 1), ceil_mode=True)),
    ("AvgPool2d", (2,), {}),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", (3,), dict(stride=2, ceil_mode=True, divisor_override=4)),
    ("AdaptiveAvgPool2d", (1,), {}),
    ("AdaptiveAvgPool2d", ((3, 2),), {}),      # 7x5 -> 3x2: overlapping, unequal bins
    ("AdaptiveAvgPool2d", ((None, 4),), {}),
    ("AdaptiveAvgPool2d", (5,), {}),
    ("AdaptiveAvgPool2d", ((7, 1),), {}),
])
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (3, 7, 5)])
def test_pooling(module_args, shape):
    name, args, kwargs = module_args
    compare(getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs), *shape, grads=True)


def test_functional_pooling():
    x = randn(1, 2, 9, 6)
    assert_close(F.max_pool2d(graphc.tensor(x), 3, 2), torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2))
    assert_close(F.avg_pool2d(graphc.tensor(x), 2), torch.nn.functional.avg_pool2d(torch.tensor(x), 2))
    assert_close(F.adaptive_avg_pool2d(graphc.tensor(x), (4, 4)),
                 torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), (4, 4)))
    with pytest.raises(NotImplementedError, match="return_indices"):
        F.max_pool2d(graphc.tensor(x), 2, return_indices=True)
    with pytest.raises(NotImplementedError, match="return_indices"):
        nn.MaxPool2d(2, return_indices=True)


@pytest.mark.parametrize("pad, value", [
    ((1, 2), None), ((1, 0, 2, 1), 3.5), ((0, 1, 1, 0, 2, 2), None), ((-1, 2, 1, -2), 0.5),
])
def test_pad(pad, value):
    x = randn(2, 3, 4, 5)
    assert_close(F.pad(graphc.tensor(x), pad, value=value),
                 torch.nn.functional.pad(torch.tensor(x), pad, value=value))


def test_pad_modes_other_than_constant_are_not_supported():
    with pytest.raises(NotImplementedError, match="reflect"):
        F.pad(graphc.zeros(1, 1, 3, 3), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="divisible by 2"):
        F.pad(graphc.zeros(3, 3), (1,))


def test_one_hot():
    labels = np.array([[0, 3], [2, 1]], np.int64)
    assert_close(F.one_hot(graphc.tensor(labels)), torch.nn.functional.one_hot(torch.tensor(labels)))
    out = F.one_hot(graphc.tensor(labels), num_classes=6)
    assert out.dtype == graphc.int64
    assert_close(out, torch.nn.functional.one_hot(torch.tensor(labels), 6))
    with pytest.raises(graphc.TraceError, match="num_classes"):
        graphc.trace(lambda t: F.one_hot(t), graphc.tensor(labels))
    graph = graphc.trace(lambda t: F.one_hot(t, 5), graphc.tensor(labels))
    assert graph.outputs[0].type.shape == (2, 2, 5)


# -- dropout --------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_statistics(p):
    graphc.manual_seed(0)
    x = graphc.ones(200, 100) * 3.0
    out = nn.Dropout(p)(x).numpy()
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.02
    np.testing.assert_allclose(out[kept], 3.0 / (1 - p), rtol=1e-6)


def test_dropout2d_drops_whole_channels():
    graphc.manual_seed(1)
    out = nn.Dropout2d(0.4)(graphc.ones(50, 40, 3, 3)).numpy()
    per_channel = out.reshape(50, 40, 9)
    assert np.all((per_channel == per_channel[..., :1]))          # a channel is kept or dropped whole
    kept = per_channel[..., 0] != 0
    assert abs(kept.mean() - 0.6) < 0.03
    np.testing.assert_allclose(per_channel[kept], 1 / 0.6, rtol=1e-6)


def test_dropout_masks_repeat_under_manual_seed():
    x = graphc.tensor(randn(8, 16))
    graphc.manual_seed(123)
    first = F.dropout(x, 0.5).numpy().copy(), F.dropout2d(x.reshape(2, 4, 4, 4), 0.5).numpy().copy()
    graphc.manual_seed(123)
    second = F.dropout(x, 0.5).numpy(), F.dropout2d(x.reshape(2, 4, 4, 4), 0.5).numpy()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], F.dropout(x, 0.5).numpy())


def test_dropout_is_identity_in_eval_and_for_p0():
    x = graphc.tensor(randn(4, 5))
    for module in (nn.Dropout(0.5), nn.Dropout2d(0.5)):
        assert module.eval()(x) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_dropout_gradient_is_the_scaled_mask():
    x = graphc.tensor(randn(6, 7), requires_grad=True)
    out = F.dropout(x, 0.25)
    out.sum().backward()
    mask = out.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask / 0.75, rtol=1e-6)


# -- init ---------------------------------------------------------------------------------------------

def test_calculate_gain_and_fans_match_torch():
    for args in [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
                 ("leaky_relu", 0.2), ("selu",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")
    for shape in [(4, 3), (8, 2, 3, 5)]:
        assert nn.init._calculate_fan_in_and_fan_out(graphc.zeros(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init._calculate_fan_in_and_fan_out(graphc.zeros(3))


def _uniform_bound_and_std(fill, shape):
    t = graphc.zeros(*shape)
    values = fill(t).numpy()
    return np.abs(values).max(), values.std(), values.mean()


@pytest.mark.parametrize("name, kwargs, kind, expected", [
    ("kaiming_uniform_", {}, "uniform", math.sqrt(2) * math.sqrt(3 / 500)),
    ("kaiming_uniform_", dict(a=math.sqrt(5)), "uniform", 1 / math.sqrt(500)),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu"), "uniform", math.sqrt(2) * math.sqrt(3 / 1000)),
    ("xavier_uniform_", dict(gain=2.0), "uniform", 2.0 * math.sqrt(6 / 1500)),
    ("kaiming_normal_", {}, "normal", math.sqrt(2) / math.sqrt(500)),
    ("kaiming_normal_", dict(mode="fan_out"), "normal", math.sqrt(2) / math.sqrt(1000)),
    ("xavier_normal_", {}, "normal", math.sqrt(2 / 1500)),
])
def test_init_statistics(name, kwargs, kind, expected):
    graphc.manual_seed(0)
    # fan_in = 20 * 5 * 5 = 500, fan_out = 40 * 5 * 5 = 1000
    bound, std, mean = _uniform_bound_and_std(lambda t: getattr(nn.init, name)(t, **kwargs), (40, 20, 5, 5))
    if kind == "uniform":            # U(-b, b): max |x| just under b, std b/sqrt(3)
        assert expected * 0.99 < bound <= expected
        assert std == pytest.approx(expected / math.sqrt(3), rel=0.02)
    else:
        assert std == pytest.approx(expected, rel=0.02)
    assert abs(mean) < 0.03 * expected


def test_simple_init_functions():
    graphc.manual_seed(0)
    t = graphc.zeros(300, 300)
    values = nn.init.normal_(t, 2.0, 0.5).numpy()
    assert values.mean() == pytest.approx(2.0, abs=0.01) and values.std() == pytest.approx(0.5, rel=0.01)
    values = nn.init.uniform_(t, -1.0, 3.0).numpy()
    assert values.min() >= -1.0 and values.max() < 3.0 and values.mean() == pytest.approx(1.0, abs=0.02)
    assert np.all(nn.init.constant_(t, 0.25).numpy() == 0.25)
    assert np.all(nn.init.ones_(t).numpy() == 1) and np.all(nn.init.zeros_(t).numpy() == 0)
    np.testing.assert_array_equal(nn.init.eye_(graphc.zeros(3, 4)).numpy(), np.eye(3, 4))
    param = nn.Parameter(graphc.zeros(3, 3))
    assert nn.init.kaiming_uniform_(param) is param and param.requires_grad


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(300, 200), 300),
    (lambda: nn.Conv2d(16, 32, 3), 16 * 9),
    (lambda: nn.ConvTranspose2d(16, 32, 3, groups=2), 16 * 9),
])
def test_default_init_is_uniform_within_one_over_sqrt_fan_in(make, fan_in):
    graphc.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    for param in (layer.weight, layer.bias):
        values = param.detach().numpy()
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.9 * bound
    assert layer.weight.detach().numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_batch_norm_default_init():
    bn = nn.BatchNorm2d(4)
    np.testing.assert_array_equal(bn.weight.detach().numpy(), np.ones(4))
    np.testing.assert_array_equal(bn.bias.detach().numpy(), np.zeros(4))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(4))
    assert bn.num_batches_tracked.item() == 0
