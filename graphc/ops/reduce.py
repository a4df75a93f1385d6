"""Reductions: sum, max, min over a set of axes, and argmax along one axis.

Reductions keep the input's dtype (the frontend casts first where PyTorch
would promote, e.g. integer sums to int64) and reject bool inputs.  An empty
``axes`` reduces nothing: the op is a copy.  The frontend turns PyTorch's
``dim=None`` into every axis before it gets here.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.dtypes import bool_, i64
from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from ..kernel.ir import Ref
from .registry import Attr, OpDef, ShapeMismatch, register
from .shapes import normalize_axes, normalize_axis


def _check_not_bool(dtype):
    if dtype == bool_:
        raise ShapeMismatch("input must be numeric, got bool (cast it first)")


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    """``shape`` with ``axes`` removed, or set to 1 when ``keepdims``."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _canonical_axes(types, attrs):
    rank = types[0].rank
    axes = normalize_axes(attrs["axes"], rank)
    # A rank-0 tensor accepts axis 0, as in PyTorch, but has nothing to reduce.
    return {**attrs, "axes": axes if rank else ()}


def _expand_to_input(b, value, node):
    """Broadcast a reduction's output-shaped ``value`` back over the reduced input's shape."""
    x = node.inputs[0]
    kept = _reduced_shape(x.shape, node.attrs["axes"], keepdims=True)
    if value.shape != kept:
        value = b.reshape(value, shape=kept)
    if kept != x.shape:
        value = b.expand(value, shape=x.shape)
    return value


def _input_index(node, index: Index, reduced: dict) -> Index:
    """The input element that output element ``index`` reads, with each reduced axis
    set to ``reduced[axis]`` (a loop variable)."""
    x, axes, keepdims = node.inputs[0], node.attrs.get("axes", (node.attrs.get("axis"),)), node.attrs["keepdims"]
    kept = iter(index.dims)
    dims = []
    for axis in range(len(x.shape)):
        if axis in axes:
            dims.append(reduced[axis])
            if keepdims:
                next(kept)
        else:
            dims.append(next(kept))
    return Index.of(x.shape, dims)


def _extreme(dtype, largest: bool):
    if dtype.is_float:
        return E.const(-np.inf if largest else np.inf, dtype)
    info = np.iinfo(dtype.numpy)
    return E.const(info.min if largest else info.max, dtype)


def _lower_reduction(combine, init, sums: bool = False):
    """A lowering folding ``combine(acc, element)`` over the reduced axes, in order
    (or in any order a backend picks, for a sum)."""
    def lower(ctx, node, index: Index):
        x, axes = node.inputs[0], node.attrs["axes"]
        # Reduced axes that end the input run in one loop over their elements, which lie
        # side by side in memory (a BatchNorm's H and W): one long loop a backend vectorizes.
        tail = len(axes)
        while tail > 0 and axes[tail - 1] == len(x.shape) - len(axes) + tail - 1:
            tail -= 1
        outer, inner = axes[:tail], axes[tail:]
        run = math.prod(x.shape[axis] for axis in inner)

        def update(acc, variables):
            reduced = dict(zip(outer, variables))
            if len(inner) < 2:
                reduced.update(zip(inner, variables[len(outer):]))
                return combine(ctx, acc, ctx.value(x, _input_index(node, index, reduced)))
            position = variables[-1]
            reduced.update(zip(inner, E.unflatten(position, [x.shape[axis] for axis in inner])))
            element = _input_index(node, index, reduced)
            leading = element.dims[:len(x.shape) - len(inner)]
            flat = E.add(E.mul(E.linear(leading, x.shape[:len(leading)]), run), position)
            return combine(ctx, acc, ctx.value(x, Index(element.shape, element.dims, flat)))
        extents = [x.shape[axis] for axis in outer] + ([run] if len(inner) > 1 else [x.shape[a] for a in inner])
        return ctx.reduce(init(node.dtype), extents, update, sums=sums)
    return lower


def _takes_over(acc, element, largest: bool):
    """Whether a max (min) reduction moves on to ``element``: it is larger (smaller), or NaN."""
    beats = E.binary("gt" if largest else "lt", element, acc)
    if element.dtype.is_float:
        beats = E.binary("or", beats, E.unary("isnan", element))
    return beats


def _lower_extremum(largest: bool):
    return _lower_reduction(lambda ctx, acc, x: E.select(_takes_over(acc, x, largest), x, acc),
                            lambda dtype: _extreme(dtype, largest))


# -- sum ---------------------------------------------------------------------------

def _sum_shape(types, attrs):
    x = types[0]
    _check_not_bool(x.dtype)
    return TensorType(_reduced_shape(x.shape, attrs["axes"], attrs["keepdims"]), x.dtype)


def _sum_reference(xs, attrs):
    x = xs[0]
    # Accumulate in the output dtype (the input's): integer sums wrap, never widen.
    return np.sum(x, axis=attrs["axes"], keepdims=attrs["keepdims"], dtype=x.dtype)


register(OpDef(
    name="sum", family="reduction", inputs=("input",),
    attrs={"axes": Attr("ints"), "keepdims": Attr("bool", False)},
    canonicalize=_canonical_axes, shape_rule=_sum_shape, reference=_sum_reference,
    lower=_lower_reduction(lambda ctx, acc, x: E.add(acc, x), lambda dtype: E.const(0, dtype), sums=True),
    copies_when_type_kept=True,
    grad=lambda b, node, g: [_expand_to_input(b, g, node)],
    doc="sum over axes (sorted, non-negative; empty reduces nothing); keeps the input dtype",
))


# -- max, min ----------------------------------------------------------------------

def _extremum_shape(name):
    def shape_rule(types, attrs):
        x = types[0]
        _check_not_bool(x.dtype)
        for axis in attrs["axes"]:
            if x.shape[axis] == 0:
                raise ShapeMismatch(f"cannot take the {name} over axis {axis}, which has size 0")
        return TensorType(_reduced_shape(x.shape, attrs["axes"], attrs["keepdims"]), x.dtype)
    return shape_rule


def _extremum_grads(b, node, g):
    """Gradient of amax/amin: shared evenly among the elements equal to the result, as PyTorch does."""
    if not node.attrs["axes"]:
        return [g]    # reducing nothing is the identity, NaN or not
    x = node.inputs[0]
    winners = b.cast(b.eq(x, _expand_to_input(b, node, node)), dtype=x.dtype)
    ties = b.sum(winners, axes=node.attrs["axes"], keepdims=True)
    share = b.div(_expand_to_input(b, g, node), b.expand(ties, shape=x.shape))
    return [b.mul(share, winners)]


for _name, _fn in (("max", np.amax), ("min", np.amin)):
    register(OpDef(
        name=_name, family="reduction", inputs=("input",),
        attrs={"axes": Attr("ints"), "keepdims": Attr("bool", False)},
        canonicalize=_canonical_axes, shape_rule=_extremum_shape(_name),
        reference=lambda xs, a, fn=_fn: fn(xs[0], axis=a["axes"], keepdims=a["keepdims"]),
        grad=_extremum_grads, lower=_lower_extremum(_name == "max"), copies_when_type_kept=True,
        doc=f"{_name} over axes, like torch.a{_name}: NaN propagates; ties share the gradient evenly",
    ))


# -- argmax ------------------------------------------------------------------------

def _argmax_canonical(types, attrs):
    return {**attrs, "axis": normalize_axis(attrs["axis"], types[0].rank)}


def _argmax_shape(types, attrs):
    x, axis = types[0], attrs["axis"]
    _check_not_bool(x.dtype)
    if x.rank == 0:
        return TensorType((), i64)
    if x.shape[axis] == 0:
        raise ShapeMismatch(f"cannot take the argmax over axis {axis}, which has size 0")
    return TensorType(_reduced_shape(x.shape, (axis,), attrs["keepdims"]), i64)


def _argmax_reference(xs, attrs):
    x = xs[0]
    if x.ndim == 0:
        return np.zeros((), np.int64)    # a scalar's only element is at index 0
    # numpy, like PyTorch, returns the first of tied maxima and treats NaN as the maximum.
    return np.argmax(x, axis=attrs["axis"], keepdims=attrs["keepdims"])


def _lower_argmax(ctx, node, index: Index):
    x = node.inputs[0]
    if not x.shape:
        return E.const(0, i64)
    axis = node.attrs["axis"]
    builder = ctx.builder
    best = builder.accumulator(_extreme(x.dtype, largest=True))
    position = builder.accumulator(E.const(0, i64))
    best_ref, position_ref = Ref(best, x.dtype), Ref(position, i64)
    with builder.loop(0, x.shape[axis], prefix="r") as r:
        element = ctx.value(x, _input_index(node, index, {axis: r}))
        # The first maximum wins, and the first NaN beats everything (as numpy and PyTorch).
        take = E.binary("gt", element, best_ref)
        if x.dtype.is_float:
            take = E.binary("or", take, E.logical_and(E.unary("isnan", element),
                                                       E.unary("not", E.unary("isnan", best_ref))))
        take = builder.bind(take)
        builder.assign(best, E.select(take, element, best_ref))
        builder.assign(position, E.select(take, r, position_ref))
    return position_ref


register(OpDef(
    name="argmax", family="reduction", inputs=("input",),
    attrs={"axis": Attr("int"), "keepdims": Attr("bool", False)},
    canonicalize=_argmax_canonical, shape_rule=_argmax_shape, reference=_argmax_reference,
    lower=_lower_argmax,
    differentiable=False,
    doc="index (i64) of the largest element along axis; the first one among ties",
))
