"""Conv1d, Conv2d and ConvTranspose2d."""
from __future__ import annotations

from . import functional as F
from . import init
from .functional import _pair, _single_tuple
from .module import Module, _empty_parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_PADDING_STRINGS = ("valid", "same")


class _ConvNd(Module):
    """What the convolutions share: checked settings, weight and bias, init and repr.

    ``_ntuple`` turns an int or a sequence into the per-spatial-dimension tuple
    the layer stores (1 for Conv1d, 2 for the 2-D layers), as PyTorch's do.
    """

    _ntuple = staticmethod(_pair)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation,
                 transposed: bool, output_padding, groups: int, bias: bool, padding_mode: str, device, dtype):
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}(padding_mode={padding_mode!r}) is not supported; "
                                      "only padding_mode='zeros' is")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = self._ntuple(kernel_size)
        self.stride = self._ntuple(stride)
        self.padding = padding if isinstance(padding, str) else self._ntuple(padding)
        self.dilation = self._ntuple(dilation)
        self.transposed = transposed
        self.output_padding = self._ntuple(output_padding)
        self.groups = groups
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = _empty_parameter(shape, device, dtype)
        if bias:
            self.bias = _empty_parameter((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init._reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        zeros, ones = (0,) * len(self.kernel_size), (1,) * len(self.kernel_size)
        if self.padding != zeros:
            text += f", padding={self.padding}"
        if self.dilation != ones:
            text += f", dilation={self.dilation}"
        if self.output_padding != zeros:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


def _check_padding_string(padding, stride) -> None:
    if isinstance(padding, str):
        if padding not in _PADDING_STRINGS:
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {list(_PADDING_STRINGS)}")
        if padding == "same" and any(s != 1 for s in _pair(stride)):
            raise ValueError("padding='same' is not supported for strided convolutions")


class _Conv(_ConvNd):
    """A forward (not transposed) convolution: PyTorch's constructor, and ``_convolve`` in forward."""

    _convolve = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        _check_padding_string(padding, stride)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups,
                         bias, padding_mode, device, dtype)

    def forward(self, input):
        return self._convolve(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D cross-correlation over NCL (or unbatched CL) input, as torch.nn.Conv1d."""

    _ntuple = staticmethod(_single_tuple)
    _convolve = staticmethod(F.conv1d)


class Conv2d(_Conv):
    """2-D cross-correlation over NCHW (or unbatched CHW) input, as torch.nn.Conv2d."""

    _convolve = staticmethod(F.conv2d)


class ConvTranspose2d(_ConvNd):
    """The transpose (input gradient) of Conv2d, as torch.nn.ConvTranspose2d; weight [in, out/groups, kh, kw]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise NotImplementedError(f"ConvTranspose2d(padding={padding!r}): string padding is not supported")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding,
                         groups, bias, padding_mode, device, dtype)

    def forward(self, input, output_size=None):
        if output_size is not None:
            raise NotImplementedError("ConvTranspose2d.forward(output_size=...) is not supported; "
                                      "give output_padding to the constructor instead")
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)
