"""Adam and AdamW, with PyTorch's update rules (bias corrections, AMSGrad, coupled or decoupled decay)."""
from __future__ import annotations

import math

import numpy as np

from ..functions import where
from ..tensor import Tensor, maximum
from .optimizer import Optimizer, state_tensor


class Adam(Optimizer):
    """torch.optim.Adam: the update of PyTorch's single-tensor implementation.

    The step count is a 0-d float32 tensor, as PyTorch keeps it, and the bias
    corrections ``1 - beta**step`` are computed from it with tensor ops, so a
    traced step reads the count at run time.  ``foreach``, ``fused`` and
    ``capturable`` choose among PyTorch's kernels; graphc compiles the update
    itself, so they are accepted and change nothing.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if differentiable:
            raise NotImplementedError(f"{type(self).__name__}(differentiable=True) is not supported: graphc does "
                                      "not differentiate through optimizer steps")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _update_group(self, group: dict, lr: Tensor) -> None:
        beta2 = group["betas"][1]
        # beta1 as tensors, as the learning rate: OneCycleLR changes it from step to step.
        one_minus_beta1 = self._hyperparameter(group, "one_minus_beta1", lambda g: 1 - g["betas"][0])
        log_beta1 = self._hyperparameter(group, "log_beta1", lambda g: _log(g["betas"][0]))
        weight_decay = group["weight_decay"]
        for p, grad in self._gradients(group):
            state = self._state_of(p, group["amsgrad"])
            step = state["step"].add_(1)
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1 - lr * weight_decay)
                else:
                    grad = grad.add(p, alpha=weight_decay)
            exp_avg = state["exp_avg"].lerp_(grad, one_minus_beta1)
            exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            if group["amsgrad"]:
                # The running maximum of the second moment normalises the step instead of the moment itself.
                exp_avg_sq = state["max_exp_avg_sq"].copy_(maximum(state["max_exp_avg_sq"], exp_avg_sq))
            bias_correction1 = _one_minus_power(log_beta1, step)
            bias_correction2 = _one_minus_power(_log(beta2), step)
            step_size = lr / bias_correction1
            denom = exp_avg_sq.sqrt() / bias_correction2.sqrt() + group["eps"]
            p.addcdiv_(exp_avg, denom, value=-step_size)

    def _state_of(self, p: Tensor, amsgrad: bool) -> dict:
        """The parameter's state, created on its first step as concrete zeros (a traced step lifts them)."""
        state = self.state[p]
        if not state:
            state["step"] = state_tensor(np.array(0.0, np.float32))
            state["exp_avg"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
            state["exp_avg_sq"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
            if amsgrad:
                state["max_exp_avg_sq"] = state_tensor(np.zeros(p.shape, p.dtype.numpy))
        return state


def _log(beta: float) -> float:
    """ln(beta) in double precision (-inf for beta = 0)."""
    return math.log(beta) if beta > 0 else -math.inf


def _one_minus_power(log_beta, step: Tensor) -> Tensor:
    """1 - beta**step (a bias correction) from ln(beta), accurate to float32 rounding.

    Done naively in float32 it loses up to 1e-4 of its value for beta near 1
    (beta itself rounds, and 1 - beta**step cancels), while PyTorch computes it
    in double precision.  So it is -expm1(step * ln(beta)), with ln(beta) taken
    in double precision and expm1 by Kahan's formula (u - 1) * x / ln(u), u = e^x,
    which needs only exp and log (where u rounds to 1 that formula is 0/0, and
    x itself is expm1(x)).  Clamping x at -80 keeps u > 0 (and gives exactly 1
    for beta = 0 or a large step).
    """
    x = (step * log_beta).clamp(min=-80.0)
    u = x.exp()
    return -where(u == 1, x, (u - 1) * x / u.log())


class AdamW(Adam):
    """torch.optim.AdamW: Adam whose weight decay shrinks the parameters directly, p -= lr * weight_decay * p."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False, foreach=None,
                 capturable: bool = False, differentiable: bool = False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # As PyTorch's AdamW: a state dict saved by Adam still loads as AdamW.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
