"""Helpers the ops' lowerings share: elementwise operands and window coordinates.

A lowering returns the kernel-IR expression of its node's value at one
output element (see ``graphc.kernel.builder.LoweringContext``).  Elementwise
ops read each operand at the element broadcasting maps there; window ops
(convolutions, pooling) map an output pixel and a kernel tap to an input
coordinate, which may fall into the padding.
"""
from __future__ import annotations

import math
from typing import Callable

from ..kernel import expr as E
from ..kernel.builder import Index


def elementwise(compute: Callable) -> Callable:
    """A lowering that reads every operand at this element (as broadcast) and
    returns ``compute(ctx, node, *operand expressions)``."""
    def lower(ctx, node, index: Index):
        operands = [ctx.value(operand, index.broadcast_to(operand.shape)) for operand in node.inputs]
        return compute(ctx, node, *operands)
    return lower


def window_coordinate(out: E.Expr, tap: E.Expr, stride: int, padding: int, dilation: int) -> E.Expr:
    """The input coordinate that tap ``tap`` of the window at output position ``out`` reads."""
    return E.add(E.sub(E.mul(out, stride), padding), E.mul(tap, dilation))


def strided(attrs: dict) -> bool:
    """Whether a window op's taps step more than one element per output (``ctx.reduce``'s
    ``strided``: a tile unrolls their loops)."""
    return any(step > 1 for step in attrs["stride"])


def window_origin(coordinate: E.Expr, tap: E.Expr, stride: int, padding: int, dilation: int,
                  out_size: int) -> tuple[E.Expr, E.Expr]:
    """The inverse of ``window_coordinate``: the output position whose window reads input
    ``coordinate`` at ``tap``, and whether there is one (the position is meaningful only
    where there is: read it with ``guarded_load``)."""
    offset = E.sub(E.add(coordinate, padding), E.mul(tap, dilation))
    position = E.div(offset, stride)
    exists = [E.ge(offset, 0), E.lt(position, out_size)]
    if stride > 1:
        exists.insert(1, E.eq(E.rem(offset, stride), 0))
    return position, E.all_of(exists)


def guarded_load(ctx, node, dims: list[E.Expr], exists: E.Expr) -> E.Expr:
    """``node`` at ``dims`` where ``exists`` holds (``dims`` need be in range only there), else
    zero: one masked load of a stored tensor, whose lanes stay neighbours where ``dims`` are."""
    masked = ctx.masked_value(node, Index.of(node.shape, dims), exists)
    if masked is not None:
        return masked
    safe = [E.clamp(d, size) for d, size in zip(dims, node.shape)]
    return E.select(exists, ctx.value(node, Index.of(node.shape, safe)), E.const(0, node.dtype))


def padded_load(ctx, node, dims: list[E.Expr], zero) -> E.Expr:
    """``node`` at ``dims``, or ``zero`` where some coordinate falls outside the tensor."""
    unsure = [not ctx.known_inside(d, size) for d, size in zip(dims, node.shape)]
    inside = E.all_of([E.in_range(d, size) for d, size, check in zip(dims, node.shape, unsure) if check])
    if any(unsure):
        # A stored tensor: one masked load at the unclamped coordinates, whose neighbouring
        # lanes stay neighbours (a vector load, where clamped ones are read lane by lane).
        masked = ctx.masked_value(node, Index.of(node.shape, dims), inside)
        if masked is not None:
            return masked if _is_zero(zero) else E.select(inside, masked, zero)
    safe = [E.clamp(d, size) if check else d for d, size, check in zip(dims, node.shape, unsure)]
    return E.select(inside, ctx.value(node, Index.of(node.shape, safe)), zero)


def _is_zero(value: E.Expr) -> bool:
    """Whether ``value`` is a masked load's zero (+0, not the -0.0 a sum's padding may be)."""
    return isinstance(value, E.Const) and value.value == 0 and math.copysign(1.0, value.value) > 0
