"""The example models on PyTorch, so the tests can copy weights across and compare step by step.

``load_torch_models()`` runs examples/models.py with ``graphc`` replaced by
``torch``: the very same model code on PyTorch, which is also the check that
the examples are PyTorch code with only the import changed.
"""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np

from optest import require_torch

torch = require_torch()

MODELS_PATH = Path(__file__).resolve().parents[1] / "examples" / "models.py"


def load_torch_models() -> types.ModuleType:
    module = types.ModuleType("torch_example_models")
    exec(compile(MODELS_PATH.read_text().replace("graphc", "torch"), str(MODELS_PATH), "exec"), module.__dict__)
    return module


TORCH_MODELS = load_torch_models()


def twin(model, **kwargs):
    """The PyTorch model of ``model``'s class, holding the same weights and buffers, in the same mode."""
    t = getattr(TORCH_MODELS, type(model).__name__)(**kwargs)
    t.load_state_dict({k: torch.tensor(np.array(v.numpy())) for k, v in model.state_dict().items()})
    return t.train(model.training)


def to_torch(x):
    return torch.tensor(np.array(x.numpy()))


def assert_same_parameters(model, t_model, rtol=1e-4, atol=1e-5, what=""):
    t_params = dict(t_model.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), t_params[name].detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{what}{name}")
    t_buffers = dict(t_model.named_buffers())
    for name, b in model.named_buffers():
        np.testing.assert_allclose(b.numpy(), t_buffers[name].numpy(), rtol=rtol, atol=atol, err_msg=f"{what}{name}")
