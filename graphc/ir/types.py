"""The static types of IR values.

A value is a tensor (``TensorType``: shape and element type), except the
result of a kernel with several outputs, which is a ``TupleType`` of tensors
that ``tuple_get`` nodes take apart (see ``graphc.ops.fused``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod

from .dtypes import DType


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: DType

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"negative dimension in shape {list(shape)}")
        object.__setattr__(self, "shape", shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    # Cached: the memory passes ask for the sizes of the same types hundreds of thousands of times.
    @cached_property
    def numel(self) -> int:
        return prod(self.shape)

    @cached_property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class TupleType:
    """The result of a multi-output kernel: one TensorType per output, in order."""
    elements: tuple[TensorType, ...]

    def __post_init__(self):
        elements = tuple(self.elements)
        if len(elements) < 2 or not all(isinstance(e, TensorType) for e in elements):
            raise ValueError("a tuple type holds two or more tensor types")
        object.__setattr__(self, "elements", elements)

    def __len__(self) -> int:
        return len(self.elements)

    def __getitem__(self, index: int) -> TensorType:
        return self.elements[index]

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.elements)

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.elements)) + ")"


def format_bytes(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``3.0 MiB``."""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024 or unit == "MiB":
            break
        count /= 1024
    return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
