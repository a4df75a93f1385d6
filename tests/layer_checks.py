"""A layer against its PyTorch twin: same weights, same input, same outputs and gradients, eager and compiled."""
import numpy as np

import graphc
from optest import require_torch

torch = require_torch()


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, graphc.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, what=""):
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def copy_weights(module, torch_module):
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return module


def _flat(result) -> list:
    """The tensors of a (nested) tuple result, in order (an RNN returns output, (h, c))."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat(item)]
    return [result]


def _weighted_sum(outputs, seeds, lib):
    return sum((out * lib.tensor(seed)).sum() for out, seed in zip(outputs, seeds))


# The compiled checks run the traced and optimized graph on the reference backend: they test that a layer
# traces, differentiates and survives the passes with PyTorch's numbers, without building native code for
# each of a hundred small graphs (the LLVM backend is checked against the reference on every graph by its own
# tests, and the sequence-model training steps in test_rnn.py run on it).
COMPILE_BACKEND = "reference"


def check_layer(module, torch_module, x: np.ndarray, rtol=1e-5, atol=1e-6, grad_rtol=1e-4, grad_atol=1e-5,
                compiled=True, call=lambda m, x: m(x)):
    """``module`` (given ``torch_module``'s weights) matches it on ``x``: every output, and with a float
    ``x`` the gradients of a random weighting of the outputs w.r.t. the input and every parameter, eagerly
    and as one compiled function.  ``call(module, input)`` runs the layer."""
    copy_weights(module, torch_module)
    differentiable = x.dtype.kind == "f"
    tx = torch.tensor(x, requires_grad=differentiable)
    torch_module.zero_grad()
    expected = _flat(call(torch_module, tx))
    seeds = [randn(*e.shape, seed=i + 1) for i, e in enumerate(expected)]
    _weighted_sum(expected, seeds, torch).backward()
    expected_grads = [tx.grad] if differentiable else []
    expected_grads += [p.grad for _, p in torch_module.named_parameters()]

    def forward_backward(gx):
        module.zero_grad()
        outputs = _flat(call(module, gx))
        _weighted_sum(outputs, seeds, graphc).backward()
        grads = [gx.grad] if differentiable else []
        return outputs, grads + [p.grad for p in module.parameters()]

    runs = [("eager", forward_backward)]
    if compiled:
        runs.append(("compiled", graphc.compile(forward_backward, backend=COMPILE_BACKEND)))
    for how, run in runs:
        outputs, grads = run(graphc.tensor(x, requires_grad=differentiable))
        assert len(outputs) == len(expected)
        for i, (out, e) in enumerate(zip(outputs, expected)):
            assert_close(out, e, rtol, atol, f"{how} output {i}")
        names = (["input"] if differentiable else []) + [name for name, _ in torch_module.named_parameters()]
        for name, grad, e in zip(names, grads, expected_grads):
            assert_close(grad, e, grad_rtol, grad_atol, f"{how} gradient of {name}")
