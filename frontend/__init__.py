"""The PyTorch-like frontend: Tensor, creation and math functions, autograd, tracing.

Exposed to users through ``graphc`` itself (``graphc.tensor``, ``graphc.nn``, ...).
"""
from .context import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import *  # noqa: F401,F403
from .device import cuda, device
from .creation import __all__ as _creation_all
from .dtypes import bool, double, float, float32, float64, int, int16, int32, int64, long, short, uint8
from .functions import *  # noqa: F401,F403
from .functions import __all__ as _functions_all
from .random import Generator, default_generator, manual_seed, rand, randint, randn, randperm, seed
from .tensor import Size, Tensor
from .trace import trace

__all__ = ["cuda", "device", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled", "bool", "double", "float",
           "float32", "float64", "int", "int16", "int32", "int64", "long", "short", "uint8", "Generator",
           "default_generator", "manual_seed", "rand", "randint", "randn", "randperm", "seed", "Size", "Tensor",
           "trace", *_creation_all, *_functions_all]
