"""Adagrad, with PyTorch's update rule (learning-rate decay, initial accumulator)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, state_tensor


class Adagrad(Optimizer):
    """torch.optim.Adagrad: the update of PyTorch's single-tensor implementation.

    As in PyTorch, every parameter's state (``step``, a 0-d float32 tensor, and
    ``sum``, filled with ``initial_accumulator_value``) exists from construction,
    so the first compiled step is already the one every later step reuses.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        for name, value in (("learning rate", lr), ("lr_decay value", lr_decay),
                            ("weight_decay value", weight_decay),
                            ("initial_accumulator_value value", initial_accumulator_value), ("epsilon value", eps)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value}")
        if differentiable:
            raise NotImplementedError("Adagrad(differentiable=True) is not supported: graphc does not differentiate "
                                      "through optimizer steps")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._state_of(p, group)

    def _update_group(self, group: dict, lr: Tensor) -> None:
        for p, grad in self._gradients(group):
            state = self._state_of(p, group)
            step = state["step"].add_(1)
            if group["weight_decay"] != 0:
                grad = grad.add(p, alpha=group["weight_decay"])
            decayed_lr = lr / ((step - 1) * group["lr_decay"] + 1)
            state_sum = state["sum"].addcmul_(grad, grad, value=1)
            p.addcdiv_(grad, state_sum.sqrt() + group["eps"], value=-decayed_lr)

    def _state_of(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = state_tensor(np.array(0.0, np.float32))
            state["sum"] = state_tensor(np.full(p.shape, group["initial_accumulator_value"], p.dtype.numpy))
        return state
