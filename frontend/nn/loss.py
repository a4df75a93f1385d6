"""Loss functions, as functions (``F.cross_entropy``) and as Modules (``nn.CrossEntropyLoss``).

Every loss is a composite of primitives built through Tensor methods, so its
gradient comes from autodiff and a compiled training step fuses it with the
rest of the graph.  Values, gradients, reductions and argument checks follow
PyTorch's.  Two of PyTorch's rules are easy to miss: a 'mean' over weighted
class targets divides by the total weight of the targets that are not
ignored (not by their count), and BCELoss clamps its logarithms at -100.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from graphc.errors import OutOfRangeError, ShapeError
from graphc.ir.dtypes import i64, u8

from ..context import current_trace, error_context
from ..functions import where
from ..tensor import Tensor, as_tensor, minimum
from .module import Module

__all__ = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "KLDivLoss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss",
           "CrossEntropyLoss", "l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "kl_div",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "nll_loss", "cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


# -- reductions ------------------------------------------------------------------------------

def _reduction(reduction: str, size_average=None, reduce=None) -> str:
    """The reduction to apply, honouring PyTorch's deprecated ``size_average``/``reduce`` flags."""
    if size_average is not None or reduce is not None:
        reduce = True if reduce is None else reduce
        size_average = True if size_average is None else size_average
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _weighted_reduce(losses: Tensor, weights: Tensor, reduction: str) -> Tensor:
    """Like ``_reduce``, but a 'mean' is the weighted mean: the sum divided by the total weight."""
    if reduction == "mean":
        return losses.sum() / weights.sum()
    return _reduce(losses, reduction)


# -- elementwise losses ------------------------------------------------------------------------

def _check_target_broadcasts(input: Tensor, target: Tensor, name: str) -> None:
    """PyTorch broadcasts a target of another shape against the input, with a warning."""
    if target.shape == input.shape:
        return
    warnings.warn(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). "
                  "This will likely lead to incorrect results due to broadcasting. "
                  "Please ensure they have the same size.", stacklevel=3)
    try:
        np.broadcast_shapes(tuple(target.shape), tuple(input.shape))
    except ValueError:
        raise ShapeError(f"{name}: target of shape {list(target.shape)} does not broadcast with input of shape "
                         f"{list(input.shape)}" + error_context()) from None


def _elementwise_loss(errors: Tensor, input: Tensor, weight, reduction: str, name: str) -> Tensor:
    """Reduce the per-element ``errors`` of an L1/MSE loss, weighted as PyTorch's ``weight=`` argument does."""
    if weight is None:
        return _reduce(errors, reduction)
    weight = as_tensor(weight)
    if weight.shape != input.shape:
        raise ShapeError(f"{name}: weight of shape {list(weight.shape)} must have the input's shape "
                         f"{list(input.shape)}" + error_context())
    return _weighted_reduce(errors * weight, weight, reduction)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None) -> Tensor:
    """Mean (or sum) absolute difference between ``input`` and ``target``."""
    reduction = _reduction(reduction, size_average, reduce)
    target = as_tensor(target)
    _check_target_broadcasts(input, target, "l1_loss")
    return _elementwise_loss((input - target).abs(), input, weight, reduction, "l1_loss")


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None) -> Tensor:
    """Mean (or sum) squared difference between ``input`` and ``target``."""
    reduction = _reduction(reduction, size_average, reduce)
    target = as_tensor(target)
    _check_target_broadcasts(input, target, "mse_loss")
    difference = input - target
    return _elementwise_loss(difference * difference, input, weight, reduction, "mse_loss")


def smooth_l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d² / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta=0 is the L1 loss."""
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta.")
    target = as_tensor(target)
    _check_target_broadcasts(input, target, "smooth_l1_loss")
    distance = (input - target).abs()
    if beta == 0:
        return _reduce(distance, reduction)
    return _reduce(where(distance < beta, distance * distance * (0.5 / beta), distance - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0, weight=None) -> Tensor:
    """0.5 d² where |d| < delta, else delta (|d| - 0.5 delta): smooth_l1_loss scaled by delta."""
    reduction = _reduction(reduction)
    if delta <= 0:
        raise ValueError("huber_loss does not support non-positive values for delta.")
    target = as_tensor(target)
    _check_target_broadcasts(input, target, "huber_loss")
    distance = (input - target).abs()
    errors = where(distance < delta, distance * distance * 0.5, (distance - 0.5 * delta) * delta)
    return _elementwise_loss(errors, input, weight, reduction, "huber_loss")


def kl_div(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL divergence of ``target`` from log-probabilities ``input``: target * (log(target) - input),
    0 where target is 0; ``target`` holds log-probabilities too with ``log_target``.

    reduction='batchmean' divides the sum by the batch size (the KL divergence
    proper); 'mean' divides by the number of elements, with PyTorch's warning.
    """
    if reduction == "batchmean":
        if size_average is not None or reduce is not None:
            raise ValueError("kl_div: reduction='batchmean' cannot be combined with size_average or reduce")
    else:
        reduction = _reduction(reduction, size_average, reduce)
        if reduction == "mean":
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                          "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                          "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                          stacklevel=2)
    target = as_tensor(target)
    if log_target:
        pointwise = target.exp() * (target - input)
    else:
        positive = target > 0
        # target * log(target), 0 where target is 0 (the log taken of 1 there, so no inf reaches the gradient).
        pointwise = where(positive, target * where(positive, target, 1.0).log(), 0.0) - target * input
    if reduction == "batchmean":
        return pointwise.sum() / (input.shape[0] if input.dim() else 1)
    return _reduce(pointwise, reduction)


# -- binary cross-entropy --------------------------------------------------------------------------

def _check_binary_target(input: Tensor, target: Tensor, name: str) -> None:
    if target.shape != input.shape:
        raise ShapeError(f"{name}: target of shape {list(target.shape)} must have the input's shape "
                         f"{list(input.shape)}" + error_context())
    if not target.dtype.is_float:
        raise ShapeError(f"{name}: target must be a floating-point tensor (probabilities), got dtype "
                         f"{target.dtype}" + error_context())


def _check_weight_broadcasts(weight: Tensor, input: Tensor, what: str, name: str) -> None:
    """A per-element weight may broadcast to the input, but not enlarge it."""
    try:
        fits = np.broadcast_shapes(tuple(weight.shape), tuple(input.shape)) == tuple(input.shape)
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"{name}: {what} of shape {list(weight.shape)} does not broadcast to the input's shape "
                         f"{list(input.shape)}" + error_context())


def _check_probabilities(input: Tensor) -> None:
    """PyTorch rejects BCE inputs outside [0, 1] (NaN included); only checkable on concrete values."""
    if input.is_symbolic:
        return
    values = input.detach().numpy()
    if not ((values >= 0) & (values <= 1)).all():
        raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1"
                           + error_context())


def _clamped_log(x: Tensor) -> Tensor:
    """log(x) clamped to >= -100, as PyTorch's BCE clamps it.

    Where x == 0 the log is taken of 1 instead and replaced by -100, so that the
    gradient there is 0 rather than 0 * (1/0) = NaN.
    """
    positive = x > 0
    return where(positive, where(positive, x, 1.0).log().clamp(min=-100.0), -100.0)


def binary_cross_entropy(input: Tensor, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy between probabilities ``input`` and ``target``.

    Where ``input`` is exactly 0 or 1 the clamped logarithm has gradient 0;
    PyTorch's hand-written backward instead divides by max(x(1-x), 1e-12) there.
    """
    reduction = _reduction(reduction, size_average, reduce)
    target = as_tensor(target)
    _check_binary_target(input, target, "binary_cross_entropy")
    if target.dtype != input.dtype:
        raise ShapeError(f"binary_cross_entropy: target has dtype {target.dtype} but input has {input.dtype}; "
                         "they must match" + error_context())
    _check_probabilities(input)
    losses = (target - 1) * _clamped_log(1 - input) - target * _clamped_log(input)
    if weight is not None:
        weight = as_tensor(weight)
        _check_weight_broadcasts(weight, input, "weight", "binary_cross_entropy")
        losses = losses * weight
    return _reduce(losses, reduction)


def _log_sigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), which neither overflows nor loses small values."""
    return minimum(x, 0.0) - (-x.abs()).exp().log1p()


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """Binary cross-entropy of sigmoid(``input``) against ``target``, computed stably from the logits.

    ``pos_weight`` scales the loss of the positive term (broadcast along the last dimension).
    """
    reduction = _reduction(reduction, size_average, reduce)
    target = as_tensor(target)
    _check_binary_target(input, target, "binary_cross_entropy_with_logits")
    log_sigmoid = _log_sigmoid(input)
    if pos_weight is not None:
        pos_weight = as_tensor(pos_weight)
        _check_weight_broadcasts(pos_weight, input, "pos_weight", "binary_cross_entropy_with_logits")
        log_sigmoid = log_sigmoid * ((pos_weight - 1) * target + 1)
    losses = (1 - target) * input - log_sigmoid
    if weight is not None:
        weight = as_tensor(weight)
        _check_weight_broadcasts(weight, input, "weight", "binary_cross_entropy_with_logits")
        losses = losses * weight
    return _reduce(losses, reduction)


# -- class targets: NLL and cross-entropy ---------------------------------------------------------------

def _class_dim(input: Tensor, name: str) -> int:
    """Where the classes are: dim 0 of an unbatched (C,) input, else dim 1 of (N, C, d1, ...)."""
    if input.dim() == 0:
        raise ShapeError(f"{name}: input must have shape (C,) or (N, C, d1, ...), got a 0-d tensor"
                         + error_context())
    return 0 if input.dim() == 1 else 1


def _check_class_weight(weight: Tensor, n_classes: int, name: str) -> None:
    if weight.shape != (n_classes,):
        raise ShapeError(f"{name}: weight should have one entry per class, shape [{n_classes}], but has shape "
                         f"{list(weight.shape)}" + error_context())


class _ClassTargets(NamedTuple):
    """Class-index targets, checked against the input and ready to pick its entries."""
    index: Tensor       # the targets, with ignored ones replaced by class 0 so that every index is valid
    ignored: Tensor     # bool: target == ignore_index
    weight: Tensor      # each target's class weight (1 without weights), 0 where ignored


def _class_targets(input: Tensor, target, weight, ignore_index: int, name: str) -> _ClassTargets:
    target = as_tensor(target)
    class_dim = _class_dim(input, name)
    n_classes = input.shape[class_dim]
    if target.dtype not in (i64, u8):
        raise ShapeError(f"{name}: class-index targets must have dtype i64, got {target.dtype}" + error_context())
    expected = input.shape[:class_dim] + input.shape[class_dim + 1:]
    if target.shape != expected:
        raise ShapeError(f"{name}: expected target of shape {list(expected)} for input of shape "
                         f"{list(input.shape)}, got target of shape {list(target.shape)}" + error_context())
    _check_class_range(target, n_classes, ignore_index, name)
    target = target.long()
    ignored = target == ignore_index
    index = where(ignored, 0, target)
    if weight is None:
        return _ClassTargets(index, ignored, ignored.logical_not().type_as_dtype(input.dtype))
    weight = as_tensor(weight)
    _check_class_weight(weight, n_classes, name)
    picked = weight.gather(0, index.reshape(-1)).reshape(index.shape)
    return _ClassTargets(index, ignored, where(ignored, 0.0, picked))


def _check_class_range(target: Tensor, n_classes: int, ignore_index: int, name: str) -> None:
    """Name an out-of-range class as PyTorch does.

    While tracing, the values are only known when the compiled step runs; a
    target that is an argument of the step is checked then, before the step
    runs, with this line named (one computed inside the step fails in the op
    that reads it).
    """
    def check(values: np.ndarray, where: str) -> None:
        bad = values[((values < 0) | (values >= n_classes)) & (values != ignore_index)]
        if bad.size:
            raise OutOfRangeError(f"{name}: target {bad[0]} is out of bounds for {n_classes} classes{where}")

    if not target.is_symbolic:
        check(target.numpy(), error_context())
        return
    where = error_context()
    current_trace().add_input_check(target, lambda values: check(values, where))


def _check_logits(input: Tensor, name: str) -> None:
    """PyTorch refuses integer logits (its log_softmax has no integer kernel); so does graphc."""
    if not input.dtype.is_float:
        raise ShapeError(f"{name}: input must be floating-point, got {input._type} (convert it with .float())"
                         + error_context())


def _broadcast_over_classes(weight: Tensor, input: Tensor, class_dim: int) -> Tensor:
    """A (C,) class weight reshaped to multiply an input of shape (N, C, d1, ...)."""
    return weight.reshape([weight.shape[0]] + [1] * (input.dim() - class_dim - 1))


def nll_loss(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class-index ``target`` under log-probabilities ``input``."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_logits(input, "nll_loss")
    targets = _class_targets(input, target, weight, ignore_index, "nll_loss")
    return _nll(input, targets, _class_dim(input, "nll_loss"), reduction)


def _nll(log_probs: Tensor, targets: _ClassTargets, class_dim: int, reduction: str) -> Tensor:
    picked = log_probs.gather(class_dim, targets.index.unsqueeze(class_dim)).squeeze(class_dim)
    return _weighted_reduce(-picked * targets.weight, targets.weight, reduction)


def cross_entropy(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits ``input`` and ``target``.

    ``target`` holds class indices (shape (N, d1, ...), dtype i64) or, with the
    input's shape and a float dtype, class probabilities.  ``label_smoothing``
    mixes the target with the uniform distribution over classes.
    """
    reduction = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    target = as_tensor(target)
    _check_logits(input, "cross_entropy")
    class_dim = _class_dim(input, "cross_entropy")
    log_probs = input.log_softmax(class_dim)
    if target.shape == input.shape:
        if ignore_index != -100:
            raise ValueError("cross_entropy: ignore_index is not supported for class-probability targets")
        return _cross_entropy_with_probabilities(log_probs, target, weight, reduction, label_smoothing, class_dim)
    targets = _class_targets(input, target, weight, ignore_index, "cross_entropy")
    nll = _nll(log_probs, targets, class_dim, reduction)
    if label_smoothing == 0.0:
        return nll
    # The smoothing term is the loss against a uniform target: -sum_c weight_c * log p_c, per sample.
    if weight is not None:
        log_probs = log_probs * _broadcast_over_classes(as_tensor(weight), log_probs, class_dim)
    smooth = where(targets.ignored, 0.0, -log_probs.sum(class_dim))
    n_classes = input.shape[class_dim]
    return (1 - label_smoothing) * nll + _weighted_reduce(smooth, targets.weight, reduction) * (
        label_smoothing / n_classes)


def _cross_entropy_with_probabilities(log_probs: Tensor, target: Tensor, weight, reduction: str,
                                      label_smoothing: float, class_dim: int) -> Tensor:
    if not target.dtype.is_float:
        raise ShapeError(f"cross_entropy: a target of the input's shape {list(target.shape)} holds class "
                         f"probabilities and must be floating-point, got dtype {target.dtype}; class indices "
                         f"have shape {list(log_probs.shape[:class_dim] + log_probs.shape[class_dim + 1:])}"
                         + error_context())
    n_classes = log_probs.shape[class_dim]
    if label_smoothing > 0.0:
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    products = log_probs * target
    if weight is not None:
        weight = as_tensor(weight)
        _check_class_weight(weight, n_classes, "cross_entropy")
        products = products * _broadcast_over_classes(weight, log_probs, class_dim)
    if reduction == "none":
        return -products.sum(class_dim)
    if reduction == "sum":
        return -products.sum()
    # PyTorch's mean over probability targets counts samples, ignoring the class weights.
    return -products.sum() / (log_probs.numel() / n_classes)


# -- the Modules ---------------------------------------------------------------------------------

class _Loss(Module):
    """A loss Module: holds the reduction and calls its functional form."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction(reduction, size_average, reduce)


class _WeightedLoss(_Loss):
    """A loss with an optional per-class or per-element ``weight``, kept as a buffer as PyTorch does."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean absolute error, as torch.nn.L1Loss."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error, as torch.nn.MSELoss."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Squared error below ``beta``, absolute error above it, as torch.nn.SmoothL1Loss."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Squared error below ``delta``, delta-scaled absolute error above it, as torch.nn.HuberLoss."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence of log-probabilities, as torch.nn.KLDivLoss."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        if reduction == "batchmean":
            super().__init__(size_average, reduce)
            self.reduction = "batchmean"
        else:
            super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy on probabilities, as torch.nn.BCELoss."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one stable step, as torch.nn.BCEWithLogitsLoss."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                reduction=self.reduction)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices, as torch.nn.NLLLoss."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Log-softmax and NLL in one, as torch.nn.CrossEntropyLoss."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)
