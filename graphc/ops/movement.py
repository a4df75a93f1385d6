"""Movement ops: reshape, permute, expand, slice, pad, concat.

They move or repeat elements without computing new values.  Attributes are
fully resolved by the frontend (no -1 sizes, no negative steps), and
canonicalised here so that two ops selecting the same elements have equal
attributes.  References return fresh arrays, never views of their inputs, so
no value of a run aliases another (state write-backs included).
"""
from __future__ import annotations

from math import prod

import numpy as np

from ..ir.dtypes import bool_
from ..kernel import expr as E
from ..kernel.builder import Index
from .grad_helpers import unbroadcast
from .lowering import padded_load
from .registry import Attr, OpDef, ShapeMismatch, register
from .shapes import normalize_axis


def _check_sizes(shape, what: str):
    if any(d < 0 for d in shape):
        raise ShapeMismatch(f"{what} {list(shape)} has a negative size")


def _interleave(firsts, seconds) -> tuple[int, ...]:
    """(firsts[0], seconds[0], firsts[1], seconds[1], ...): the layout of pad's ``pads``."""
    return tuple(v for pair in zip(firsts, seconds) for v in pair)


# -- reshape -----------------------------------------------------------------------

def _reshape_shape(types, attrs):
    x, shape = types[0], attrs["shape"]
    _check_sizes(shape, "shape")
    if prod(shape) != x.numel:
        raise ShapeMismatch(f"cannot reshape {x.numel} elements into shape {list(shape)} "
                            f"({prod(shape)} elements)")
    return x.with_shape(shape)


register(OpDef(
    name="reshape", family="movement", inputs=("input",),
    attrs={"shape": Attr("ints")},
    shape_rule=_reshape_shape,
    reference=lambda xs, a: xs[0].reshape(a["shape"]).copy(),
    grad=lambda b, node, g: [b.reshape(g, shape=node.inputs[0].shape)],
    copies_when_type_kept=True, reindexes=True, keeps_element_order=True, operand_view=True, reads_operand_views=(0,),
    lower=lambda ctx, node, index: ctx.value(node.inputs[0], Index.flat_over(node.inputs[0].shape, index.linear())),
    doc="the same elements in row-major order under a new shape (every size given, no -1)",
))


# -- permute -----------------------------------------------------------------------

def _permute_canonical(types, attrs):
    rank, dims = types[0].rank, attrs["dims"]
    if len(dims) != rank:
        raise ShapeMismatch(f"dims {list(dims)} has {len(dims)} entries but the input has rank {rank}")
    canonical = tuple(normalize_axis(d, rank) for d in dims)
    if sorted(canonical) != list(range(rank)):
        raise ShapeMismatch(f"dims {list(dims)} is not a permutation of the input's {rank} axes")
    return {**attrs, "dims": canonical}


def _permuted_index(node, index: Index) -> Index:
    """Output axis i is input axis dims[i]."""
    dims = [None] * len(index.dims)
    for out_axis, in_axis in enumerate(node.attrs["dims"]):
        dims[in_axis] = index.dims[out_axis]
    return Index.of(node.inputs[0].shape, dims)


register(OpDef(
    name="permute", family="movement", inputs=("input",),
    attrs={"dims": Attr("ints")},
    canonicalize=_permute_canonical,
    shape_rule=lambda types, a: types[0].with_shape(types[0].shape[d] for d in a["dims"]),
    reference=lambda xs, a: np.transpose(xs[0], a["dims"]).copy(),
    grad=lambda b, node, g: [b.permute(g, dims=tuple(np.argsort(node.attrs["dims"])))],
    reindexes=True, operand_view=True, reads_operand_views=(0,),
    lower=lambda ctx, node, index: ctx.value(node.inputs[0], _permuted_index(node, index)),
    doc="reorder axes: output axis i is input axis dims[i]",
))


# -- expand ------------------------------------------------------------------------

def _expand_shape(types, attrs):
    x, shape = types[0], attrs["shape"]
    _check_sizes(shape, "shape")
    new = len(shape) - x.rank
    if new < 0:
        raise ShapeMismatch(f"cannot expand a rank-{x.rank} input to the rank-{len(shape)} shape {list(shape)}")
    for axis, (size, target) in enumerate(zip(x.shape, shape[new:])):
        if size not in (1, target):
            raise ShapeMismatch(f"input axis {axis} has size {size} and cannot expand to {target} "
                                f"(only size-1 axes expand)")
    return x.with_shape(shape)


register(OpDef(
    name="expand", family="movement", inputs=("input",),
    attrs={"shape": Attr("ints")},
    shape_rule=_expand_shape,
    reference=lambda xs, a: np.broadcast_to(xs[0], a["shape"]).copy(),
    grad=lambda b, node, g: [unbroadcast(b, g, node.inputs[0].shape)],
    copies_when_type_kept=True, reindexes=True, broadcasts=True,
    lower=lambda ctx, node, index: ctx.value(node.inputs[0], index.broadcast_to(node.inputs[0].shape)),
    doc="repeat size-1 axes (and add leading axes) up to shape, like torch.expand without -1",
))


# -- slice -------------------------------------------------------------------------

def _slice_canonical(types, attrs):
    shape = types[0].shape
    for name in ("starts", "stops", "steps"):
        if len(attrs[name]) != len(shape):
            raise ShapeMismatch(f"{name} has {len(attrs[name])} entries but the input has rank {len(shape)}")
    starts, stops, steps = [], [], []
    for axis, (size, start, stop, step) in enumerate(zip(shape, attrs["starts"], attrs["stops"], attrs["steps"])):
        if step <= 0:
            raise ShapeMismatch(f"step {step} on axis {axis} is not positive")
        start, stop, step = slice(start, stop, step).indices(size)
        count = len(range(start, stop, step))
        # Tighten so that equal selections have equal attributes: stop just past the
        # last element taken, and step 1 where at most one element is taken.
        step = step if count > 1 else 1
        starts.append(start)
        stops.append(start + (count - 1) * step + 1 if count else start)
        steps.append(step)
    return {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)}


def _crop(b, value, corner, shape):
    """The contiguous block of ``value`` of the given shape whose first element is at ``corner``."""
    return b.slice(value, starts=corner, stops=[c + size for c, size in zip(corner, shape)], steps=[1] * len(shape))


def _slice_counts(attrs) -> tuple[int, ...]:
    return tuple(len(range(*s)) for s in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


def _slice_reference(xs, attrs):
    index = tuple(slice(*s) for s in zip(attrs["starts"], attrs["stops"], attrs["steps"]))
    return xs[0][index].copy()


def _dilate(b, g, steps):
    """Spread ``g``'s elements ``steps[i]`` apart along each axis i, zeros between.

    The adjoint of taking every step-th element.  Each axis of size c is
    followed by a unit axis that is padded out to the step, so after flattening
    the pair every element sits at a multiple of the step; the zeros after the
    last element are then cut off.
    """
    counts = g.shape
    g = b.reshape(g, shape=_interleave(counts, [1] * len(counts)))
    g = b.pad(g, pads=[pad for step in steps for pad in (0, 0, 0, step - 1)])
    g = b.reshape(g, shape=[c * step for c, step in zip(counts, steps)])
    return _crop(b, g, [0] * len(counts), [(c - 1) * step + 1 for c, step in zip(counts, steps)])


def _slice_grad(b, node, g):
    starts, stops, steps = node.attrs["starts"], node.attrs["stops"], node.attrs["steps"]
    if any(step > 1 for step in steps):
        g = _dilate(b, g, steps)
    sizes = node.inputs[0].shape
    return [b.pad(g, pads=_interleave(starts, [size - stop for size, stop in zip(sizes, stops)]))]


register(OpDef(
    name="slice", family="movement", inputs=("input",),
    attrs={"starts": Attr("ints"), "stops": Attr("ints"), "steps": Attr("ints")},
    canonicalize=_slice_canonical,
    shape_rule=lambda types, a: types[0].with_shape(_slice_counts(a)),
    reference=_slice_reference, grad=_slice_grad, copies_when_type_kept=True, reindexes=True, lower=lambda ctx, node, index: ctx.value(
        node.inputs[0], Index.of(node.inputs[0].shape, [E.add(start, E.mul(dim, step)) for dim, start, step in
                                                         zip(index.dims, node.attrs["starts"], node.attrs["steps"])])),
    doc="input[start:stop:step] on every axis, Python's rules for negative and out-of-range bounds; "
        "steps must be positive",
))


# -- pad ---------------------------------------------------------------------------

def _pad_value(value, dtype):
    """``value`` converted to ``dtype`` as PyTorch's F.pad does: floats truncate, out-of-range is an error."""
    if dtype.is_float:
        return float(value)
    if dtype == bool_:
        return bool(value)
    info = np.iinfo(dtype.numpy)
    if not (isinstance(value, int) or np.isfinite(value)) or not info.min <= int(value) <= info.max:
        raise ShapeMismatch(f"pad value {value} does not fit dtype {dtype}")
    return int(value)


def _pad_canonical(types, attrs):
    x, pads = types[0], attrs["pads"]
    if len(pads) != 2 * x.rank:
        raise ShapeMismatch(f"pads has {len(pads)} entries but a rank-{x.rank} input needs {2 * x.rank} "
                            f"(lo, hi per axis)")
    if any(p < 0 for p in pads):
        raise ShapeMismatch(f"pads {list(pads)} has a negative entry (use slice to crop)")
    return {**attrs, "value": _pad_value(attrs["value"], x.dtype)}


def _pad_shape(types, attrs):
    x, pads = types[0], attrs["pads"]
    return x.with_shape(size + lo + hi for size, lo, hi in zip(x.shape, pads[0::2], pads[1::2]))


def _pad_reference(xs, attrs):
    x, pads = xs[0], attrs["pads"]
    if x.ndim == 0:                      # np.pad rejects an empty pad list; a scalar pads to itself
        return x.copy()
    return np.pad(x, list(zip(pads[0::2], pads[1::2])), constant_values=np.asarray(attrs["value"], x.dtype))


def _pad_grad(b, node, g):
    return [_crop(b, g, node.attrs["pads"][0::2], node.inputs[0].shape)]


register(OpDef(
    name="pad", family="movement", inputs=("input",),
    attrs={"pads": Attr("ints"), "value": Attr("scalar", 0.0)},
    canonicalize=_pad_canonical, shape_rule=_pad_shape, reference=_pad_reference, grad=_pad_grad,
    copies_when_type_kept=True,
    lower=lambda ctx, node, index: padded_load(ctx, node.inputs[0],
                                               [E.sub(dim, lo) for dim, lo in zip(index.dims, node.attrs["pads"][0::2])],
                                               E.const(node.attrs["value"], node.dtype)),
    doc="add pads[2i] elements before and pads[2i+1] after axis i, all equal to value "
        "(cast to the input's dtype); pads are non-negative",
))


# -- concat ------------------------------------------------------------------------

def _concat_canonical(types, attrs):
    return {**attrs, "axis": normalize_axis(attrs["axis"], types[0].rank)}


def _concat_shape(types, attrs):
    first, axis = types[0], attrs["axis"]
    if first.rank == 0:
        raise ShapeMismatch("rank-0 tensors cannot be concatenated")
    for i, t in enumerate(types[1:], start=1):
        if t.rank != first.rank:
            raise ShapeMismatch(f"inputs[{i}] has rank {t.rank} but inputs[0] has rank {first.rank}")
        if t.dtype != first.dtype:
            raise ShapeMismatch(f"inputs[{i}] has dtype {t.dtype} but inputs[0] has {first.dtype} "
                                f"(cast first)")
        for d, (size, size0) in enumerate(zip(t.shape, first.shape)):
            if d != axis and size != size0:
                raise ShapeMismatch(f"inputs[{i}] has size {size} on axis {d} but inputs[0] has {size0} "
                                    f"(only axis {axis} may differ)")
    total = sum(t.shape[axis] for t in types)
    return first.with_shape(first.shape[:axis] + (total,) + first.shape[axis + 1:])


def _concat_grads(b, node, g):
    axis, grads, offset = node.attrs["axis"], [], 0
    for x in node.inputs:
        corner = [offset if d == axis else 0 for d in range(len(x.shape))]
        grads.append(_crop(b, g, corner, x.shape))
        offset += x.shape[axis]
    return grads


def _lower_concat(ctx, node, index: Index):
    # The last input's value, then each earlier one where the element falls inside it.
    axis, position = node.attrs["axis"], index.dims[node.attrs["axis"]]
    starts = np.cumsum([0] + [x.shape[axis] for x in node.inputs])
    value = None
    for x, start, stop in reversed(list(zip(node.inputs, starts[:-1], starts[1:]))):
        if x.shape[axis] == 0:
            continue
        here = ctx.value(x, Index.of(x.shape, index.with_dim(axis, E.clamp(E.sub(position, int(start)),
                                                                             x.shape[axis])).dims))
        value = here if value is None else E.select(E.lt(position, int(stop)), here, value)
    return value if value is not None else E.const(0, node.dtype)     # no element to compute


register(OpDef(
    name="concat", family="movement", inputs=("*inputs",),
    attrs={"axis": Attr("int")},
    canonicalize=_concat_canonical, shape_rule=_concat_shape,
    reference=lambda xs, a: np.concatenate(xs, axis=a["axis"]),
    grad=_concat_grads, lower=_lower_concat, copies_when_type_kept=True,
    doc="join inputs (same rank and dtype, equal sizes off axis) along axis, like torch.cat",
))
