"""The PyTorch-like frontend: Tensor, creation and math functions, autograd, tracing.

Exposed to users through ``graphc`` itself (``graphc.tensor``, ``graphc.nn``, ...).
"""
from .context import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .creation import *  # noqa: F401,F403
from .device import cuda, device
from .creation import __all__ as _creation_all
from .dtypes import (bool, double, float, float32, float64, get_default_dtype, int, int16, int32, int64, long,
                     set_default_dtype, short, uint8)
from .functions import *  # noqa: F401,F403
from .functions import __all__ as _functions_all
from .methods import install as _install_methods
from .random import Generator, default_generator, manual_seed, normal, rand, randint, randn, randperm, seed
from .tensor import Size, Tensor
from .trace import trace

__all__ = ["cuda", "device", "enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled", "bool",
           "double", "float", "float32", "float64", "get_default_dtype", "int", "int16", "int32", "int64", "long",
           "set_default_dtype", "short", "uint8", "Generator", "default_generator", "manual_seed", "normal", "rand",
           "randint", "randn", "randperm", "seed", "Size", "Tensor",
           "trace", *_creation_all, *_functions_all]

_install_methods()
