"""Building kernel-IR expressions, folding what is known while building.

Lowerings write index arithmetic freely (``add(mul(i, 784), 0)``); these
constructors fold constants and identities as they go, so the printed IR
and the backends see ``i * 784`` rather than the arithmetic that built it.
"""
from __future__ import annotations

import math
from typing import Sequence

from ..ir.dtypes import DType, bool_, i64
from .ir import Binary, Cast, Const, Expr, Select, Unary


def const(value, dtype: DType = i64) -> Const:
    if dtype == bool_:
        return Const(bool(value), dtype)
    return Const(float(value) if dtype.is_float else int(value), dtype)


def index(value: "int | Expr") -> Expr:
    return value if not isinstance(value, int) else Const(value, i64)


def _is(expr: Expr, value) -> bool:
    return isinstance(expr, Const) and expr.value == value and not isinstance(expr.value, bool)


def fold_integer(op: str, a: int, b: int) -> int | None:
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div" and b:
        return abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    if op == "rem" and b:
        return a - b * fold_integer("div", a, b)
    if op == "max":
        return max(a, b)
    if op == "min":
        return min(a, b)
    return None


def binary(op: str, a: "Expr | int", b: "Expr | int") -> Expr:
    a, b = index(a), index(b)
    dtype = a.dtype
    if dtype == i64 and isinstance(a, Const) and isinstance(b, Const):
        folded = fold_integer(op, a.value, b.value)
        if folded is not None:
            return Const((folded + 2 ** 63) % 2 ** 64 - 2 ** 63, i64)    # i64 arithmetic wraps
    if dtype == i64:                  # identities, only for index arithmetic (floats keep -0.0, NaN)
        if op == "add" and _is(a, 0):
            return b
        if op in ("add", "sub") and _is(b, 0):
            return a
        if op == "mul" and (_is(a, 0) or _is(b, 0)):
            return Const(0, i64)
        if op == "mul" and _is(a, 1):
            return b
        if op in ("mul", "div") and _is(b, 1):
            return a
        if op == "rem" and _is(b, 1):
            return Const(0, i64)
    from .ir import result_dtype
    return Binary(op, a, b, result_dtype(op, dtype))


def add(a, b): return binary("add", a, b)
def sub(a, b): return binary("sub", a, b)
def mul(a, b): return binary("mul", a, b)
def div(a, b): return binary("div", a, b)
def rem(a, b): return binary("rem", a, b)
def maximum(a, b): return binary("max", a, b)
def minimum(a, b): return binary("min", a, b)
def lt(a, b): return binary("lt", a, b)
def le(a, b): return binary("le", a, b)
def ge(a, b): return binary("ge", a, b)
def eq(a, b): return binary("eq", a, b)


def logical_and(a: Expr, b: Expr) -> Expr:
    if isinstance(a, Const) and a.dtype == bool_:
        return b if a.value else a
    if isinstance(b, Const) and b.dtype == bool_:
        return a if b.value else b
    return Binary("and", a, b, bool_)


def all_of(conditions: Sequence[Expr]) -> Expr:
    result: Expr = Const(True, bool_)
    for cond in conditions:
        result = logical_and(result, cond)
    return result


def in_range(value: Expr, size: int) -> Expr:
    """0 <= value < size, folded where the value is known."""
    return logical_and(ge(value, 0), lt(value, size))


def clamp(value: Expr, size: int) -> Expr:
    """``value`` forced into [0, size): a safe address whatever the value (size > 0)."""
    return minimum(maximum(value, 0), max(size - 1, 0))


def select(cond: Expr, a: Expr, b: Expr) -> Expr:
    if isinstance(cond, Const):
        return a if cond.value else b
    if a == b:
        return a
    return Select(cond, a, b, a.dtype)


def cast(x: Expr, dtype: DType) -> Expr:
    if x.dtype == dtype:
        return x
    if isinstance(x, Const) and x.dtype == i64 and dtype.is_float:
        return Const(float(x.value), dtype)
    return Cast(x, dtype)


def unary(op: str, x: Expr) -> Expr:
    return Unary(op, x, x.dtype if op not in ("isnan", "not") else bool_)


def linear(dims: Sequence[Expr], shape: Sequence[int]) -> Expr:
    """The row-major flat position of the element at ``dims`` in a tensor of ``shape``."""
    flat: Expr = Const(0, i64)
    for dim, size in zip(dims, shape):
        flat = add(mul(flat, size), dim)
    return flat


def unflatten(flat: Expr, shape: Sequence[int]) -> tuple[Expr, ...]:
    """The coordinates of flat position ``flat`` in a tensor of ``shape`` (row-major)."""
    dims = []
    stride = 1
    for size in reversed(shape):
        coordinate = div(flat, stride)
        if stride * size != math.prod(shape):
            coordinate = rem(coordinate, size)
        dims.append(coordinate if size != 1 else Const(0, i64))
        stride *= size
    return tuple(reversed(dims))
