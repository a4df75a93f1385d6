"""Ops with no tensor inputs: constants."""
from __future__ import annotations

import numpy as np

from ..ir.dtypes import dtype_from_numpy
from ..ir.types import TensorType
from ..kernel import expr as E
from .registry import Attr, OpDef, ShapeMismatch, register


def _full_shape(types, attrs):
    if any(d < 0 for d in attrs["shape"]):
        raise ShapeMismatch(f"negative dimension in shape {list(attrs['shape'])}")
    value, dtype = attrs["value"], attrs["dtype"]
    if isinstance(value, float) and not dtype.is_float and value == value and value != int(value):
        raise ShapeMismatch(f"value {value} does not fit dtype {dtype}")
    return TensorType(attrs["shape"], dtype)


register(OpDef(
    name="full", family="source", inputs=(),
    attrs={"shape": Attr("ints"), "dtype": Attr("dtype"), "value": Attr("scalar")},
    shape_rule=_full_shape,
    reference=lambda xs, a: np.full(a["shape"], a["value"], dtype=a["dtype"].numpy),
    grad=lambda b, node, g: [],
    lower=lambda ctx, node, index: E.const(node.attrs["value"], node.dtype),
    doc="A tensor of the given shape and dtype filled with one value.",
))


def _constant_shape(types, attrs):
    try:
        dtype = dtype_from_numpy(attrs["value"].dtype)
    except TypeError as err:
        raise ShapeMismatch(str(err)) from None
    return TensorType(attrs["value"].shape, dtype)


register(OpDef(
    name="constant", family="source", inputs=(),
    attrs={"value": Attr("tensor")},
    shape_rule=_constant_shape,
    reference=lambda xs, a: a["value"].copy(),
    grad=lambda b, node, g: [],
    # The values are stored with the program, in a buffer of their own.
    lower=lambda ctx, node, index: ctx.load(ctx.buffer(node), node.dtype, index),
    doc="A tensor whose every element is stored in the graph (small constants only).",
))
