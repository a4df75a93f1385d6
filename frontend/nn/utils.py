"""graphc.nn.utils: gradient clipping and flattening parameters, as torch.nn.utils.

Clipping is tensor arithmetic on the gradients (no value is read back), so it
runs inside a compiled training step between ``backward()`` and ``step()``.
"""
from __future__ import annotations

import math

from graphc.errors import TraceError

from ..context import current_trace, error_context, no_grad
from ..functions import cat, stack
from ..tensor import Tensor, as_tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _tensor_list(parameters) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _norm(tensor: Tensor, norm_type: float) -> Tensor:
    if norm_type == math.inf:
        return tensor.abs().amax()
    if norm_type == 2:
        return (tensor * tensor).sum().sqrt()
    if norm_type == 1:
        return tensor.abs().sum()
    return (tensor.abs() ** norm_type).sum() ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale the gradients of ``parameters`` so that their joint ``norm_type``-norm is at most ``max_norm``.

    Returns the norm before clipping (a 0-d tensor).  As PyTorch, the scale is
    max_norm / (norm + 1e-6), clamped at 1.
    """
    grads = [p.grad for p in _tensor_list(parameters) if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return as_tensor(0.0)
    total = _norm(stack([_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite:
        if current_trace() is not None:
            raise TraceError("clip_grad_norm_(error_if_nonfinite=True) needs the norm's value, which a traced "
                             "step does not have" + error_context())
        if not math.isfinite(total.item()):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                               "non-finite, so it cannot be clipped. To disable this error and scale the gradients "
                               "by the non-finite norm anyway, set `error_if_nonfinite=False`")
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    with no_grad():
        for g in grads:
            g.mul_(scale)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient of ``parameters`` to [-clip_value, clip_value], in place."""
    with no_grad():
        for p in _tensor_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters) -> Tensor:
    """The parameters flattened and joined into one 1-D tensor."""
    return cat([p.reshape(-1) for p in _tensor_list(parameters)])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into ``parameters``, in place."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in _tensor_list(parameters):
            count = p.numel()
            p.copy_(vec[offset:offset + count].reshape(p.shape))
            offset += count
