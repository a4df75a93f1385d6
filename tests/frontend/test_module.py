"""nn.Module and nn.Parameter bookkeeping, compared with PyTorch's where it has an answer."""
from collections import OrderedDict

import numpy as np
import pytest

import graphc
import graphc.nn as nn
from graphc.frontend.context import tracing
from graphc.frontend.trace import TraceContext
from graphc.ir.types import TensorType
from optest import require_torch

torch = require_torch()


def build(lib):
    """The same nested module in graphc (lib=graphc) or torch (lib=torch): a shared submodule,
    a non-persistent buffer, a bias-less layer and containers."""
    tnn = lib.nn

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(2, 2, 3, padding=1, bias=False)
            self.bn = tnn.BatchNorm2d(2)
            self.register_buffer("scale", lib.ones(2), persistent=False)

        def forward(self, x):
            return self.bn(self.conv(x)) * self.scale.reshape(1, 2, 1, 1)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            shared = tnn.Linear(4, 4)
            self.blocks = tnn.Sequential(Block(), tnn.ReLU(), Block())
            self.heads = tnn.ModuleList([shared, tnn.Linear(4, 2), shared])
            self.extra = tnn.ModuleDict({"out": tnn.Linear(2, 1)})
            self.register_parameter("temperature", tnn.Parameter(lib.ones(1)))

        def forward(self, x):
            return self.blocks(x)

    return Net()


def test_traversal_names_and_order_match_torch():
    model, torch_model = build(graphc), build(torch)
    for method in ("named_parameters", "named_buffers", "named_modules", "named_children"):
        names = [name for name, _ in getattr(model, method)()]
        assert names == [name for name, _ in getattr(torch_model, method)()], method
    assert len(list(model.parameters())) == len(list(torch_model.parameters()))
    assert len(list(model.modules())) == len(list(torch_model.modules()))
    assert [type(m).__name__ for m in model.children()] == [type(m).__name__ for m in torch_model.children()]
    names = [n for n, _ in model.named_parameters(prefix="net", remove_duplicate=False)]
    assert names == [n for n, _ in torch_model.named_parameters(prefix="net", remove_duplicate=False)]
    assert [n for n, _ in model.named_parameters(recurse=False)] == ["temperature"]


def test_state_dict_keys_match_torch_and_skip_non_persistent_buffers():
    model, torch_model = build(graphc), build(torch)
    keys = list(model.state_dict())
    assert keys == list(torch_model.state_dict())
    assert "blocks.0.bn.num_batches_tracked" in keys
    assert not any(k.endswith("scale") for k in keys)
    assert "blocks.0.scale" in dict(model.named_buffers())


def test_registration_rules():
    m = nn.Module()
    m.w = nn.Parameter(graphc.zeros(2))
    m.child = nn.Linear(2, 2)
    m.register_buffer("stat", graphc.zeros(2))
    m.plain = graphc.zeros(1)
    assert list(m._parameters) == ["w"] and list(m._modules) == ["child"] and list(m._buffers) == ["stat"]
    assert m.w._kind == "param" and m.stat._kind == "buffer"
    m.stat = graphc.ones(3)                 # a buffer stays a buffer when reassigned
    assert m._buffers["stat"] is m.stat and m.stat._kind == "buffer"
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = graphc.zeros(2)
    m.w = None
    assert m.w is None and "w" in m._parameters
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", graphc.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    del m.child
    assert "child" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'child'"):
        m.child

    class Early(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(1, 1)
            super().__init__()
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(graphc.zeros(1))


def test_parameter():
    data = graphc.tensor([1.0, 2.0])
    p = nn.Parameter(data)
    assert isinstance(p, graphc.Tensor) and p.requires_grad and p.is_leaf and p._kind == "param"
    with graphc.no_grad():
        p.mul_(3)
    np.testing.assert_array_equal(data.numpy(), [3.0, 6.0])     # shares data's storage
    assert repr(nn.Parameter(graphc.tensor([1.0, 2.0]))) == repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))
    assert not nn.Parameter(graphc.zeros(2), requires_grad=False).requires_grad
    assert tuple(nn.Parameter().shape) == (0,)


def test_train_eval_apply_zero_grad_requires_grad():
    model = build(graphc)
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="boolean"):
        model.train("yes")
    visited = []
    model.blocks.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Conv2d", "BatchNorm2d", "Block", "ReLU", "Conv2d", "BatchNorm2d", "Block", "Sequential"]

    out = model(graphc.tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)))
    out.sum().backward()
    weight = model.blocks[0].conv.weight
    assert weight.grad is not None
    model.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(weight.grad.numpy(), 0)
    model.zero_grad()
    assert weight.grad is None
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_state_dict_round_trip_shares_and_detaches():
    model = build(graphc)
    state = model.state_dict()
    assert isinstance(state, OrderedDict)
    assert not any(t.requires_grad for t in state.values())
    assert state["heads.0.weight"].numpy() is not None
    assert model.state_dict(keep_vars=True)["heads.0.weight"] is model.heads[0].weight
    other = build(graphc)
    saved = {k: v.numpy().copy() for k, v in state.items()}
    result = other.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved[key])
    weight = other.heads[1].weight
    other.load_state_dict({**saved, "heads.1.weight": np.full((2, 4), 7.0)})
    assert other.heads[1].weight is weight                        # copied in place, not replaced
    np.testing.assert_array_equal(weight.detach().numpy(), 7.0)


def test_load_state_dict_errors_leave_the_module_unchanged():
    model = build(graphc)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    bad = {k: v + 1 for k, v in before.items()}
    del bad["heads.1.bias"]
    bad["heads.1.weight"] = np.zeros((2, 5), np.float32)
    bad["unknown.weight"] = np.zeros(1, np.float32)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    assert str(info.value) == (
        "Error(s) in loading state_dict for Net:\n"
        '\tMissing key(s) in state_dict: "heads.1.bias". \n'
        '\tUnexpected key(s) in state_dict: "unknown.weight". \n'
        "\tsize mismatch for heads.1.weight: copying a param with shape [2, 5] from checkpoint, "
        "the shape in current model is [2, 4].")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])

    del bad["heads.1.weight"]
    result = model.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["heads.1.weight", "heads.1.bias"]
    assert result.unexpected_keys == ["unknown.weight"]
    np.testing.assert_array_equal(model.heads[0].bias.detach().numpy(), before["heads.0.bias"] + 1)
    with pytest.raises(NotImplementedError, match="assign=True"):
        model.load_state_dict(bad, assign=True)


def test_load_state_dict_from_torch_numpy():
    model, torch_model = build(graphc), build(torch)
    model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    for (name, value), (_, expected) in zip(model.state_dict().items(), torch_model.state_dict().items()):
        np.testing.assert_array_equal(value.numpy(), expected.numpy(), err_msg=name)
        assert value.dtype.torch_name == str(expected.dtype).removeprefix("torch.")


REPR_CASES = [
    lambda nn: nn.Linear(3, 4, bias=False),
    lambda nn: nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=1, bias=False),
    lambda nn: nn.Conv2d(4, 4, 3, padding="same", groups=2),
    lambda nn: nn.Conv2d(4, 4, 1, padding="valid"),
    lambda nn: nn.ConvTranspose2d(4, 2, 4, 2, 1, output_padding=1, groups=2, dilation=1),
    lambda nn: nn.BatchNorm1d(5, momentum=None, affine=False, track_running_stats=False),
    lambda nn: nn.BatchNorm2d(5, eps=1e-3, bias=False),
    lambda nn: nn.ReLU(inplace=True),
    lambda nn: nn.LeakyReLU(0.2, True),
    lambda nn: nn.Softmax(dim=1),
    lambda nn: nn.LogSoftmax(dim=-1),
    lambda nn: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    lambda nn: nn.AvgPool2d((2, 3), padding=1),
    lambda nn: nn.AdaptiveAvgPool2d((1, None)),
    lambda nn: nn.Flatten(0, 2),
    lambda nn: nn.Unflatten(1, (2, 3)),
    lambda nn: nn.Dropout(0.3),
    lambda nn: nn.Dropout2d(inplace=True),
    lambda nn: nn.Identity(),
    lambda nn: nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.Sigmoid(),
                                         inner=nn.Sequential(nn.Tanh(), nn.Identity()))),
    lambda nn: nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)]),
    lambda nn: nn.ModuleList(),
    lambda nn: nn.ModuleDict({"a": nn.ReLU(), "b": nn.ModuleList([nn.Tanh()])}),
]


@pytest.mark.parametrize("make", REPR_CASES)
def test_repr_matches_torch(make):
    assert repr(make(nn)) == repr(make(torch.nn))


def test_whole_model_repr_matches_torch():
    assert repr(build(graphc)) == repr(build(torch))


def test_sequential_container():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[1] is list(seq)[1]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail._modules) == ["1", "2"]
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    with pytest.raises(IndexError, match="out of range"):
        seq[4]
    x = graphc.tensor(np.ones((5, 2), np.float32))
    expected = seq[3](seq[2](seq[1](seq[0](x))))
    np.testing.assert_array_equal(seq(x).detach().numpy(), expected.detach().numpy())


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(1, 1)])
    layers.append(nn.ReLU())
    layers.extend([nn.Tanh(), nn.Sigmoid()])
    layers += [nn.Identity()]
    assert len(layers) == 5 and isinstance(layers[-1], nn.Identity)
    assert list(layers[1:3]._modules) == ["0", "1"]
    layers[0] = nn.Linear(1, 2)
    assert layers[0].out_features == 2
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias"]

    heads = nn.ModuleDict({"a": nn.Linear(1, 1)})
    heads["b"] = nn.Linear(1, 2)
    heads.update([("c", nn.ReLU())])
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert isinstance(heads.pop("c"), nn.ReLU) and list(heads.keys()) == ["a", "b"]
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    with pytest.raises(NotImplementedError):
        heads(graphc.zeros(1))


def test_to_cpu_and_dtype():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert model.to("cpu") is model and model.cpu() is model and model.to(device="cpu") is model
    with pytest.raises(NotImplementedError, match="cuda"):
        model.to("cuda")
    with pytest.raises(NotImplementedError, match="CPU"):
        model.cuda()
    weight = model[0].weight
    model.double()
    assert model[0].weight is weight and weight.dtype == graphc.float64
    assert model[1].running_mean.dtype == graphc.float64
    assert model[1].num_batches_tracked.dtype == graphc.int64
    out = model(graphc.ones(3, 2, dtype=graphc.float64))
    assert out.dtype == graphc.float64
    out.sum().backward()
    assert weight.grad.dtype == graphc.float64
    model.to(graphc.float32)
    assert weight.dtype == graphc.float32 and weight.grad.dtype == graphc.float32
    with pytest.raises(TypeError, match="floating point"):
        model.to(graphc.int64)
    with pytest.raises(NotImplementedError, match="float16"):
        model.half()


def test_dtype_factory_kwarg():
    layer = nn.Linear(2, 3, dtype=graphc.float64)
    assert layer.weight.dtype == graphc.float64 and layer.bias.dtype == graphc.float64
    with pytest.raises(NotImplementedError, match="cuda"):
        nn.Conv2d(1, 1, 1, device="cuda")


def test_call_under_a_trace_guards_on_the_training_flag():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    ctx = TraceContext("guarded")
    with tracing(ctx):
        x = graphc.Tensor._symbolic(ctx.data_input("x", TensorType((1, 2), graphc.float32)), ctx, False)
        model(x)
    assert ctx.guards and all(read() == value for read, value in ctx.guards)
    model.eval()
    assert any(read() != value for read, value in ctx.guards)


def _hooked(lib, calls: list):
    """Linear -> ReLU -> Linear with the same weights in graphc and torch, and hooks on it: a pre-hook
    doubling the last layer's input, a forward hook adding 1 to its output, two recording ones (the
    second prepended, so it runs first), and a kwargs pre-hook, each noting its call in ``calls``."""
    rng = np.random.default_rng(0)
    model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.ReLU(), lib.nn.Linear(4, 2))
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    model[2].register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    model[2].register_forward_hook(lambda m, args, out: out + 1)
    model[0].register_forward_hook(lambda m, args, out: calls.append(("after", tuple(out.shape))))
    model[0].register_forward_hook(lambda m, args, out: calls.append(("first", tuple(args[0].shape))), prepend=True)
    model[0].register_forward_pre_hook(lambda m, args, kwargs: calls.append(("kwargs", sorted(kwargs))), with_kwargs=True)
    return model


def test_forward_hooks_run_change_and_come_off_as_torch_s():
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    results = {}
    for lib in (torch, graphc):
        calls = []
        model = _hooked(lib, calls)
        first = model(lib.tensor(x)).detach().numpy()
        handle = model[2].register_forward_hook(lambda m, args, out: out * 0)
        zeroed = model(lib.tensor(x)).detach().numpy()
        handle.remove()
        results[lib.__name__] = first, zeroed, model(lib.tensor(x)).detach().numpy(), calls
    (first, zeroed, again, calls), (t_first, t_zeroed, t_again, t_calls) = results["graphc"], results["torch"]
    np.testing.assert_allclose(first, t_first, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(again, t_first, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(zeroed, t_zeroed)
    assert calls == t_calls == [("kwargs", []), ("first", (5, 3)), ("after", (5, 4))] * 3


def test_forward_hooks_are_traced_into_a_compiled_function():
    x = graphc.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
    calls = []
    model = _hooked(graphc, calls)
    compiled = graphc.compile(lambda x: model(x))
    np.testing.assert_allclose(compiled(x).numpy(), model(x).detach().numpy(), rtol=1e-6)
    assert len(calls) == 6                   # once while tracing, once eagerly: a cached call runs none
    compiled(x)
    assert len(calls) == 6
