"""RNN, LSTM and GRU against PyTorch: outputs, final states and gradients, eager and compiled, and a few
compiled training steps of a sequence model step for step."""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
from graphc.errors import ShapeError
from layer_checks import assert_close, check_layer, copy_weights, randn, torch

LAYERS = [
    ("RNN", dict(input_size=3, hidden_size=4)),
    ("RNN", dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu", bias=False)),
    ("LSTM", dict(input_size=3, hidden_size=4)),
    ("LSTM", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", dict(input_size=3, hidden_size=4, proj_size=2)),
    ("GRU", dict(input_size=3, hidden_size=4)),
    ("GRU", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)),
]


def twins(name, kwargs, seed=0):
    torch.manual_seed(seed)
    torch_layer = getattr(torch.nn, name)(**kwargs)
    return copy_weights(getattr(nn, name)(**kwargs), torch_layer), torch_layer


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("name, kwargs", LAYERS)
def test_sequence_layers_match_torch(name, kwargs):
    layer, torch_layer = twins(name, kwargs)
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in torch_layer.named_parameters()]
    assert repr(layer) == repr(torch_layer)
    check_layer(layer, torch_layer, randn(5, 2, 3), atol=1e-5)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_initial_states_and_unbatched_input(name):
    kwargs = dict(input_size=3, hidden_size=4, num_layers=2)
    layer, torch_layer = twins(name, kwargs)
    h0, c0 = randn(2, 2, 4, seed=7), randn(2, 2, 4, seed=8)

    def with_state(module, x):
        lib = graphc if isinstance(module, nn.Module) else torch
        state = (lib.tensor(h0), lib.tensor(c0)) if name == "LSTM" else lib.tensor(h0)
        return module(x, state)
    check_layer(layer, torch_layer, randn(4, 2, 3), atol=1e-5, call=with_state)
    check_layer(layer, torch_layer, randn(4, 3), atol=1e-5, compiled=False)        # (L, H_in): no batch dim


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells(name):
    layer, torch_layer = twins(name, dict(input_size=3, hidden_size=4))
    assert repr(layer) == repr(torch_layer)
    check_layer(layer, torch_layer, randn(2, 3), atol=1e-5)
    check_layer(layer, torch_layer, randn(3), atol=1e-5, compiled=False)


def test_default_init_is_uniform_within_one_over_sqrt_hidden():
    graphc.manual_seed(0)
    weights = np.concatenate([p.detach().numpy().ravel() for p in nn.LSTM(8, 16).parameters()])
    assert np.abs(weights).max() <= 0.25 and np.abs(weights).max() > 0.24


def test_dropout_between_layers_only_in_training():
    graphc.manual_seed(0)
    layer = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = graphc.tensor(randn(5, 2, 3))
    trained = [layer(x)[0].detach().numpy() for _ in range(2)]
    assert not np.allclose(trained[0], trained[1])
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0].detach().numpy(), layer(x)[0].detach().numpy())


def test_shape_errors_say_what_was_expected():
    layer = nn.LSTM(3, 4)
    with pytest.raises(ShapeError, match="input_size. Expected 3, got 5"):
        layer(graphc.zeros(2, 1, 5))
    with pytest.raises(ShapeError, match=r"Expected hidden size \[1, 1, 4\], got \[1, 2, 4\]"):
        layer(graphc.zeros(2, 1, 3), (graphc.zeros(1, 2, 4), graphc.zeros(1, 1, 4)))


class Tagger:
    """A sequence model: an embedding, a recurrent layer and a classifier at every step (graphc or torch)."""

    @staticmethod
    def build(lib, name, num_layers):
        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = lib.nn.Embedding(10, 6)
                self.rnn = getattr(lib.nn, name)(6, 8, num_layers=num_layers, batch_first=True, bidirectional=True)
                self.head = lib.nn.Linear(16, 5)

            def forward(self, tokens):
                out, _ = self.rnn(self.embed(tokens))
                return self.head(out).reshape(-1, 5)
        return Model()


@pytest.mark.parametrize("name, num_layers, make_opt, backend", [
    ("LSTM", 1, lambda lib, p: lib.optim.Adam(p, lr=0.01), "llvm"),
    ("GRU", 2, lambda lib, p: lib.optim.SGD(p, lr=0.1, momentum=0.9), "reference"),
    ("RNN", 1, lambda lib, p: lib.optim.Adam(p, lr=0.01), "reference"),
])
def test_compiled_training_steps_agree_with_torch(name, num_layers, make_opt, backend):
    torch.manual_seed(0)
    torch_model, model = Tagger.build(torch, name, num_layers), Tagger.build(graphc, name, num_layers)
    copy_weights(model, torch_model)
    torch_opt, opt = make_opt(torch, torch_model.parameters()), make_opt(graphc, model.parameters())
    rng = np.random.default_rng(0)
    tokens, labels = rng.integers(0, 10, (3, 4)), rng.integers(0, 5, 12)

    @graphc.compile(backend=backend)
    def step(tokens, labels):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(tokens), labels)
        loss.backward()
        opt.step()
        return loss
    for _ in range(3):
        torch_opt.zero_grad()
        expected = torch.nn.functional.cross_entropy(torch_model(torch.tensor(tokens)), torch.tensor(labels))
        expected.backward()
        torch_opt.step()
        assert_close(step(graphc.tensor(tokens), graphc.tensor(labels)), expected, rtol=1e-5)
    for (key, p), t in zip(model.named_parameters(), torch_model.parameters()):
        assert_close(p, t, rtol=1e-4, atol=1e-5, what=key)
    assert step.cache_info().compiles == 2        # before and after the optimizer has state
