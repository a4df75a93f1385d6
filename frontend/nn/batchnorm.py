"""BatchNorm1d and BatchNorm2d."""
from __future__ import annotations

from graphc.errors import ShapeError

from ..context import error_context, no_grad
from ..creation import ones, tensor, zeros
from ..dtypes import i64
from ..device import check_device
from . import functional as F
from . import init
from .module import Module, _empty_parameter


class _BatchNorm(Module):
    """Batch normalisation over dim 1 with PyTorch's running statistics.

    momentum=None keeps a cumulative average of the batch statistics
    (factor 1/num_batches_tracked) instead of an exponential one.
    """

    expected_dims: tuple[int, ...] = ()
    dims_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        check_device(device)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = _empty_parameter((num_features,), device, dtype)
            if bias:
                self.bias = _empty_parameter((num_features,), device, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=i64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input) -> None:
        if input.dim() not in self.expected_dims:
            raise ShapeError(f"{type(self).__name__}: expected {self.dims_text} input (got {input.dim()}D input "
                             f"of shape {list(input.shape)})" + error_context())

    def forward(self, input):
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # A tensor, not float(...): under a trace the count is a graph value, not a Python number.
                momentum = 1.0 / self.num_batches_tracked
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # Running stats are passed only where they are read (eval) or updated (training with tracking).
        pass_stats = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if pass_stats else None,
                            self.running_var if pass_stats else None, self.weight, self.bias,
                            use_batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) input."""

    expected_dims = (2, 3)
    dims_text = "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) input."""

    expected_dims = (4,)
    dims_text = "4D"
