"""Stochastic gradient descent, with PyTorch's momentum, dampening, Nesterov and weight-decay rules."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, state_tensor


class SGD(Optimizer):
    """torch.optim.SGD: the update of PyTorch's single-tensor implementation, step for step.

    ``foreach`` and ``fused`` choose among PyTorch's kernels; graphc compiles the
    update itself, so they are accepted and change nothing.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if differentiable:
            raise NotImplementedError("SGD(differentiable=True) is not supported: graphc does not differentiate "
                                      "through optimizer steps")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
                    "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)

    def _update_group(self, group: dict, lr: Tensor) -> None:
        dampening = group["dampening"]
        for p, grad in self._gradients(group):
            if group["weight_decay"] != 0:
                grad = grad.add(p, alpha=group["weight_decay"])
            if group["momentum"] != 0:
                # A tensor, as the learning rate: OneCycleLR changes the momentum from step to step.
                momentum = self._hyperparameter(group, "momentum")
                buf = self._momentum_buffer(p, grad, momentum, dampening)
                if group["nesterov"]:
                    grad = grad + buf * momentum
                else:
                    grad = buf
            p.sub_(grad * lr)

    def _momentum_buffer(self, p: Tensor, grad: Tensor, momentum: Tensor, dampening: float) -> Tensor:
        """The parameter's momentum buffer, updated with ``grad``.

        PyTorch starts the buffer as a copy of the first gradient (undamped); here
        the buffer is created as concrete zeros, so a traced first step is the same
        computation with a state write-back.  Without dampening the first step is the
        update of every later one (0 * momentum + grad is the gradient), so a compiled
        training step's first and later calls trace the same graph and share one
        program; with dampening it is a copy.
        """
        state = self.state[p]
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
            if dampening != 0:
                return buf.copy_(grad)
        return buf.mul_(momentum).add_(grad, alpha=1 - dampening)
