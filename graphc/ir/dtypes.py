"""Element types of graphc tensors.

Each DType knows its short IR name (``f32``), its numpy dtype and its PyTorch
spelling, so the IR, the reference backend and the frontend agree on one table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    name: str          # the IR spelling: f32, i64, bool, ...
    torch_name: str    # the frontend spelling: float32, int64, bool, ...
    numpy: np.dtype
    is_float: bool
    is_signed: bool

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    def __repr__(self) -> str:
        return f"graphc.{self.torch_name}"

    def __str__(self) -> str:
        return self.name


f32 = DType("f32", "float32", np.dtype(np.float32), True, True)
f64 = DType("f64", "float64", np.dtype(np.float64), True, True)
u8 = DType("u8", "uint8", np.dtype(np.uint8), False, False)
i16 = DType("i16", "int16", np.dtype(np.int16), False, True)
i32 = DType("i32", "int32", np.dtype(np.int32), False, True)
i64 = DType("i64", "int64", np.dtype(np.int64), False, True)
bool_ = DType("bool", "bool", np.dtype(np.bool_), False, False)

ALL_DTYPES: tuple[DType, ...] = (f32, f64, u8, i16, i32, i64, bool_)
_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NUMPY = {d.numpy: d for d in ALL_DTYPES}


def dtype_from_name(name: str) -> DType:
    """The DType whose IR name is ``name`` (``f32``, ``i64``, ``bool``, ...)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ValueError(f"unknown dtype {name!r}; graphc knows {known}") from None


def dtype_from_numpy(dtype) -> DType:
    """The DType of a numpy dtype; raises TypeError for dtypes graphc lacks."""
    np_dtype = np.dtype(dtype)
    try:
        return _BY_NUMPY[np_dtype]
    except KeyError:
        known = ", ".join(str(d.numpy) for d in ALL_DTYPES)
        raise TypeError(f"numpy dtype {np_dtype} has no graphc equivalent; graphc supports {known}") from None
