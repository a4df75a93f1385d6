"""RMSprop, with PyTorch's update rule (smoothing constant alpha, optional centering and momentum)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, state_tensor


class RMSprop(Optimizer):
    """torch.optim.RMSprop: the update of PyTorch's single-tensor implementation.

    The state per parameter is PyTorch's: ``step`` (a 0-d float32 tensor),
    ``square_avg``, ``momentum_buffer`` (when momentum > 0) and ``grad_avg``
    (when centered).  ``foreach`` and ``capturable`` are accepted and change nothing.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False, foreach=None,
                 maximize: bool = False, differentiable: bool = False):
        for name, value in (("learning rate", lr), ("epsilon value", eps), ("momentum value", momentum),
                            ("weight_decay value", weight_decay), ("alpha value", alpha)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value}")
        if differentiable:
            raise NotImplementedError("RMSprop(differentiable=True) is not supported: graphc does not differentiate "
                                      "through optimizer steps")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable}
        super().__init__(params, defaults)

    def _update_group(self, group: dict, lr: Tensor) -> None:
        alpha = group["alpha"]
        for p, grad in self._gradients(group):
            state = self._state_of(p, group)
            state["step"].add_(1)
            if group["weight_decay"] != 0:
                grad = grad.add(p, alpha=group["weight_decay"])
            square_avg = state["square_avg"].mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
            if group["centered"]:
                grad_avg = state["grad_avg"].lerp_(grad, 1 - alpha)
                avg = (square_avg - grad_avg * grad_avg).sqrt()
            else:
                avg = square_avg.sqrt()
            avg = avg + group["eps"]
            if group["momentum"] > 0:
                momentum = self._hyperparameter(group, "momentum")      # OneCycleLR may cycle it
                buf = state["momentum_buffer"].mul_(momentum).addcdiv_(grad, avg)
                p.sub_(buf * lr)
            else:
                p.addcdiv_(grad, avg, value=-lr)

    def _state_of(self, p: Tensor, group: dict) -> dict:
        """The parameter's state, created on its first step as concrete zeros (a traced step lifts them)."""
        state = self.state[p]
        if not state:
            state["step"] = state_tensor(np.array(0.0, np.float32))
            state["square_avg"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
            if group["momentum"] > 0:
                state["momentum_buffer"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
            if group["centered"]:
                state["grad_avg"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
        return state
