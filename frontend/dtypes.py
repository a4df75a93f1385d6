"""PyTorch's dtype names for graphc's DTypes, and PyTorch's type promotion.

This module rebinds ``float``, ``int`` and ``bool`` to dtypes (as ``torch.float``
is), so its functions reach Python's own types through ``builtins``.
"""
from __future__ import annotations

import builtins
from numbers import Integral

import numpy as np

from graphc.ir.dtypes import ALL_DTYPES, DType, bool_, dtype_from_name, dtype_from_numpy, f32, f64, i16, i32, i64, u8

float32 = float = f32
float64 = double = f64
int64 = long = i64
int32 = int = i32
int16 = short = i16
uint8 = u8
bool = bool_

# Named so that asking for them gets a clear NotImplementedError rather than an AttributeError.
UNSUPPORTED = ("float16", "half", "bfloat16", "complex64", "complex128", "cfloat", "cdouble", "int8")

_CATEGORY = {bool_: 0, u8: 1, i16: 1, i32: 1, i64: 1, f32: 2, f64: 2}
_ORDER = {d: i for i, d in enumerate((bool_, u8, i16, i32, i64, f32, f64))}

# The dtype of float data, float Python numbers and float-valued results of integer inputs.
_default_float = f32


def get_default_dtype() -> DType:
    return _default_float


def set_default_dtype(dtype) -> None:
    """torch.set_default_dtype: float32 or float64 for new floating-point tensors."""
    global _default_float
    dtype = as_dtype(dtype)
    if not dtype.is_float:
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, "
                        f"got {dtype!r}")
    _default_float = dtype


def _default_of_category(category: builtins.int) -> DType:
    return (bool_, i64, _default_float)[category]


def _number_category(x) -> builtins.int:
    if isinstance(x, (builtins.bool, np.bool_)):
        return 0
    return 1 if isinstance(x, Integral) else 2


def promote(operands) -> DType:
    """The dtype PyTorch's type promotion gives ``operands`` (Tensors and Python numbers).

    Dimensioned tensors outrank zero-dim tensors, which outrank Python numbers;
    an operand of a higher category (bool < integer < float) still lifts the
    result into its category (to that tier's dtype, or i64/the default float dtype for numbers).
    """
    from .tensor import Tensor
    dimensioned = [x.dtype for x in operands if isinstance(x, Tensor) and x.dim() > 0]
    zero_dim = [x.dtype for x in operands if isinstance(x, Tensor) and x.dim() == 0]
    numbers = [_number_category(x) for x in operands if not isinstance(x, Tensor)]
    result = None
    for dtypes in (dimensioned, zero_dim):
        if dtypes:
            best = max(dtypes, key=_ORDER.__getitem__)
            if result is None or _CATEGORY[best] > _CATEGORY[result]:
                result = best
    for category in numbers:
        if result is None or category > _CATEGORY[result]:
            result = _default_of_category(category)
    return result if result is not None else _default_float


def can_cast(source: DType, target: DType) -> bool:
    """torch.can_cast: a value may move within its category or up (bool to integer to float), never down."""
    return _CATEGORY[source] <= _CATEGORY[target]


def as_dtype(dtype) -> DType:
    """A graphc DType from a DType, a name ("float32", "f32"), a Python type or a numpy dtype."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str):
        for d in ALL_DTYPES:
            if dtype in (d.name, d.torch_name):
                return d
        if dtype in UNSUPPORTED:
            raise NotImplementedError(f"dtype {dtype} is not supported by graphc")
        return dtype_from_name(dtype)
    python_types = {builtins.float: f64, builtins.int: i64, builtins.bool: bool_}
    if dtype in python_types:
        return python_types[dtype]
    return dtype_from_numpy(np.dtype(dtype))


def dtype_of_data(data) -> DType:
    """The dtype ``graphc.tensor(data)`` infers, as torch.tensor does."""
    if isinstance(data, np.ndarray):
        return dtype_from_numpy(data.dtype)
    array = np.asarray(data)
    if array.dtype.kind == "f":
        return _default_float
    if array.dtype.kind in "iu":
        return i64
    if array.dtype.kind == "b":
        return bool_
    raise TypeError(f"cannot make a tensor from {type(data).__name__} data of numpy kind {array.dtype}")
