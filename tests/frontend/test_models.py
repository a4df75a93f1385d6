"""The example models against the same models in PyTorch, their state dicts, errors and traces."""
import numpy as np
import pytest

import graphc
import models as G  # examples/models.py, on the path through conftest
from graphc.backends.reference import run_graph
from graphc.errors import ShapeError
from torch_twins import TORCH_MODELS as T
from torch_twins import torch

INPUT_SHAPES = {
    "LeNet": (2, 3, 32, 32),
    "CNN": (2, 3, 32, 32),
    "MNISTNet": (2, 1, 28, 28),
    "ResNet": (2, 3, 32, 32),
    "Generator": (2, 100),
    "Discriminator": (2, 1, 28, 28),
}
WITHOUT_DROPOUT = [name for name in INPUT_SHAPES if name != "MNISTNet"]


def example_input(name, seed=0):
    return np.random.default_rng(seed).standard_normal(INPUT_SHAPES[name]).astype(np.float32)


def twin_models(name):
    """The graphc model and the torch model, with torch's weights (with non-trivial BatchNorm
    parameters) loaded into the graphc one from numpy."""
    torch.manual_seed(0)
    torch_model = getattr(T, name)()
    with torch.no_grad():
        for module in torch_model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    model = getattr(G, name)()
    model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    return model, torch_model


def assert_close(actual, expected, rtol=1e-5, atol=1e-5, what=""):
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg=what)


@pytest.mark.parametrize("name", list(INPUT_SHAPES))
def test_eval_output_matches_torch(name):
    model, torch_model = twin_models(name)
    model.eval(), torch_model.eval()
    x = example_input(name)
    assert_close(model(graphc.tensor(x)), torch_model(torch.tensor(x)))


@pytest.mark.parametrize("name", WITHOUT_DROPOUT)
def test_train_step_matches_torch(name):
    """Train-mode output, parameter gradients and updated running statistics."""
    model, torch_model = twin_models(name)
    model.train(), torch_model.train()
    x = example_input(name)
    if name == "Generator":
        # BatchNorm1d over a batch of 2 divides each feature's difference of two values by its own
        # magnitude: float32 rounding (a different summation order in Linear) gets amplified, so
        # this one is compared in float64.
        model.double(), torch_model.double()
        x = x.astype(np.float64)
    out, expected = model(graphc.tensor(x)), torch_model(torch.tensor(x))
    assert_close(out, expected)
    seed = np.random.default_rng(1).standard_normal(tuple(expected.shape)).astype(x.dtype)
    (out * graphc.tensor(seed)).sum().backward()
    (expected * torch.tensor(seed)).sum().backward()
    torch_params = dict(torch_model.named_parameters())
    for pname, param in model.named_parameters():
        assert_close(param.grad, torch_params[pname].grad, 1e-4, 1e-5, what=pname)
    torch_state = torch_model.state_dict()
    for key, value in model.state_dict().items():
        assert_close(value, torch_state[key], what=key)


def test_mnist_net_train_mode_matches_torch_with_the_same_masks():
    """Dropout's masks come from graphc's generator: redraw them from the same seed and apply
    them by hand in torch."""
    model, torch_model = twin_models("MNISTNet")
    x = example_input("MNISTNet")
    graphc.manual_seed(7)
    out = model.train()(graphc.tensor(x))
    graphc.manual_seed(7)
    keep_channels = torch.tensor(graphc.rand(2, 20, 1, 1).numpy() >= 0.5)
    keep_units = torch.tensor(graphc.rand(2, 50).numpy() >= 0.5)

    tf = torch.nn.functional
    h = tf.relu(tf.max_pool2d(torch_model.conv1(torch.tensor(x)), 2))
    h = tf.relu(tf.max_pool2d(torch_model.conv2(h) * keep_channels / 0.5, 2)).view(-1, 320)
    h = tf.relu(torch_model.fc1(h)) * keep_units / 0.5
    assert_close(out, tf.log_softmax(torch_model.fc2(h), dim=1))


@pytest.mark.parametrize("name", list(INPUT_SHAPES))
def test_state_dict_keys_match_torch_and_round_trip(name):
    model, torch_model = twin_models(name)
    assert list(model.state_dict()) == list(torch_model.state_dict())
    copy = getattr(G, name)()
    copy.load_state_dict(model.state_dict())
    for (key, value), expected in zip(copy.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(value.numpy(), expected.numpy(), err_msg=key)


def test_resnet_state_dict_names():
    keys = list(G.ResNet().state_dict())
    assert keys[:7] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked", "layer1.0.conv1.weight"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]


# -- errors -------------------------------------------------------------------------------------------

def test_wrong_input_channels_name_the_layer_inside_the_sequential():
    with pytest.raises(ShapeError) as info:
        G.CNN()(graphc.zeros(2, 4, 32, 32))
    message = str(info.value)
    assert "in features.0 (Conv2d)" in message
    assert "input has 4 channels but weight expects 3" in message
    assert "f32[2,4,32,32]" in message and "f32[64,3,3,3]" in message


def test_linear_feature_mismatch_names_the_layer():
    with pytest.raises(ShapeError) as info:
        G.LeNet()(graphc.zeros(2, 3, 36, 36))
    message = str(info.value)
    assert "in fc1 (Linear)" in message
    assert "576 features" in message and "expects 400" in message


def test_a_dtype_mismatch_names_the_layer():
    model = graphc.nn.Sequential(graphc.nn.Flatten(), graphc.nn.Linear(4, 2))
    with pytest.raises(ShapeError, match=r"linear: input is f64 but weight is f32.* in 1 \(Linear\) at "):
        model(graphc.zeros(2, 2, 2, dtype=graphc.float64))
    with pytest.raises(ShapeError, match=r"conv2d: dtypes f64 and f32 differ.* in conv1 \(Conv2d\) at "):
        G.LeNet()(graphc.zeros(2, 3, 32, 32, dtype=graphc.float64))


def test_loading_a_mismatched_checkpoint_fails_cleanly():
    model = G.LeNet()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = {k: np.zeros_like(v) for k, v in before.items()}
    state["fc1.weight"] = np.zeros((120, 401), np.float32)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(state)
    assert str(info.value) == ("Error(s) in loading state_dict for LeNet:\n\tsize mismatch for fc1.weight: "
                               "copying a param with shape [120, 401] from checkpoint, the shape in current "
                               "model is [120, 400].")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)


# -- tracing -------------------------------------------------------------------------------------------

def run_traced(graph, model, x):
    state = model.state_dict()
    arrays = {node.name: x if node.tag == "data" else state[node.name].numpy() for node in graph.inputs}
    return run_graph(graph, arrays)


@pytest.mark.parametrize("name", list(INPUT_SHAPES))
def test_eval_trace_runs_like_eager(name):
    model = getattr(G, name)().eval()
    x = example_input(name)
    graph = graphc.trace(model, graphc.tensor(x))
    result = run_traced(graph, model, x)
    np.testing.assert_array_equal(result.outputs[0], model(graphc.tensor(x)).detach().numpy())

    assert [n.tag for n in graph.inputs].count("data") == 1
    params = {n.name for n in graph.inputs if n.tag == "param"}
    assert params == {pname for pname, _ in model.named_parameters()}
    buffers = {n.name for n in graph.inputs if n.tag == "buffer"}
    assert buffers == {b for b, _ in model.named_buffers() if not b.endswith("num_batches_tracked")}
    assert not graph.writes
    assert graphc.parse_graph(str(graph)) == graph


@pytest.mark.parametrize("name", ["ResNet", "Generator", "Discriminator"])
def test_train_trace_writes_back_running_stats(name):
    model = getattr(G, name)().train()
    x = example_input(name)
    graph = graphc.trace(model, graphc.tensor(x))
    written = {target.name for target, _ in graph.writes}
    assert written == {b for b, _ in model.named_buffers()}
    assert any(n.name == "layer1.0.conv1.weight" and n.tag == "param" for n in graph.inputs) or name != "ResNet"
    assert graphc.parse_graph(str(graph)) == graph

    result = run_traced(graph, model, x)
    eager = model(graphc.tensor(x))           # updates the running stats the trace wrote back
    np.testing.assert_array_equal(result.outputs[0], eager.detach().numpy())
    state = model.state_dict()
    for target, value in result.writes.items():
        np.testing.assert_array_equal(value, state[target].numpy(), err_msg=target)


def test_mnist_net_train_trace_draws_from_the_generator_state():
    graph = graphc.trace(G.MNISTNet().train(), graphc.tensor(example_input("MNISTNet")))
    state_inputs = [n for n in graph.inputs if n.tag == "state"]
    assert len(state_inputs) == 1
    assert [target for target, _ in graph.writes] == state_inputs


def test_dcgan_weights_init():
    graphc.manual_seed(0)
    generator = G.Generator().apply(G.weights_init)
    weights = generator.deconv[0].weight.detach().numpy()
    assert abs(weights.mean()) < 1e-3 and weights.std() == pytest.approx(0.02, rel=0.02)
    bn_weight = generator.fc[4].weight.detach().numpy()
    assert bn_weight.mean() == pytest.approx(1.0, abs=1e-3) and bn_weight.std() == pytest.approx(0.02, rel=0.05)
    assert np.all(generator.fc[4].bias.detach().numpy() == 0)
    linear = generator.fc[0].weight.detach().numpy()
    assert np.abs(linear).max() <= 1 / np.sqrt(100)          # Linear keeps its default init
    discriminator = G.Discriminator().apply(G.weights_init)
    assert discriminator.main[0].weight.detach().numpy().std() == pytest.approx(0.02, rel=0.1)
