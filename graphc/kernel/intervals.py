"""Bounds of integer index expressions, from the ranges of the loops around them.

``bounds(expr, ranges)`` gives an interval [lo, hi] that contains every value
``expr`` takes while each loop variable ``v`` stays in ``ranges[v]``.  The
lowering uses it to drop padding checks that can never fail; the verifier
uses it to prove every load and store inside its buffer.  Anything the rules
below cannot bound (a loaded value, a product of two unknowns) is unbounded,
so a proof never rests on a guess.
"""
from __future__ import annotations

import math

from .ir import Binary, Cast, Const, Expr, Ref, Select, Var

Interval = tuple[float, float]
UNBOUNDED: Interval = (-math.inf, math.inf)


def bounds(expr: Expr, ranges: dict[str, Interval]) -> Interval:
    if isinstance(expr, Const):
        return (expr.value, expr.value) if not isinstance(expr.value, bool) else (int(expr.value),) * 2
    if isinstance(expr, (Var, Ref)):
        return ranges.get(expr.name, UNBOUNDED)
    if isinstance(expr, Select):
        a, b = bounds(expr.a, ranges), bounds(expr.b, ranges)
        return min(a[0], b[0]), max(a[1], b[1])
    if isinstance(expr, Cast):
        return bounds(expr.x, ranges) if not expr.dtype.is_float else UNBOUNDED
    if isinstance(expr, Binary):
        return _binary(expr.op, bounds(expr.a, ranges), bounds(expr.b, ranges))
    return UNBOUNDED


def _binary(op: str, a: Interval, b: Interval) -> Interval:
    if op == "add":
        return a[0] + b[0], a[1] + b[1]
    if op == "sub":
        return a[0] - b[1], a[1] - b[0]
    if op == "mul":
        products = [x * y for x in a for y in b if not (math.isinf(x) or math.isinf(y)) or (x and y)]
        return (min(products), max(products)) if len(products) == 4 else UNBOUNDED
    if op == "max":
        return max(a[0], b[0]), max(a[1], b[1])
    if op == "min":
        return min(a[0], b[0]), min(a[1], b[1])
    if op == "div" and b[0] == b[1] and b[0] > 0 and a[0] >= 0:
        return a[0] // b[0], a[1] // b[0]
    if op == "rem" and b[0] == b[1] and b[0] > 0 and a[0] >= 0:
        return 0, min(a[1], b[0] - 1)
    return UNBOUNDED


def within(expr: Expr, size: int, ranges: dict[str, Interval]) -> bool:
    """Whether ``expr`` is certainly in [0, size)."""
    lo, hi = bounds(expr, ranges)
    return lo >= 0 and hi < size
