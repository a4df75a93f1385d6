"""Indexing primitives: gather, scatter_add, one_hot.

gather and scatter_add are each other's adjoints and share one addressing
scheme, PyTorch's: element ``p`` of ``index`` addresses the tensor at ``p``
itself, except along ``axis``, where it addresses ``index[p]``.  So
``index`` has the tensor's rank and may be smaller than it in any dimension
but ``axis``.  Index values are data, so out-of-range values can only be
caught when the op runs: the references raise IndexError naming the op, the
bad value and the valid range.
"""
from __future__ import annotations

import numpy as np

from ..ir.dtypes import bool_, i64
from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from .grad_helpers import zeros
from .registry import Attr, OpDef, ShapeMismatch, register
from .shapes import normalize_axis

# -- shared checks and addressing --------------------------------------------------------


def _canonicalize_axis(types, attrs):
    return {**attrs, "axis": normalize_axis(attrs["axis"], types[0].rank)}


def _check_index_type(index: TensorType, tensor: TensorType):
    if index.dtype != i64:
        raise ShapeMismatch(f"index must be i64, got {index.dtype}")
    if tensor.rank == 0:
        raise ShapeMismatch("input must have at least one dimension")
    if index.rank != tensor.rank:
        raise ShapeMismatch(f"index has rank {index.rank} but input has rank {tensor.rank}; they must match")


def _check_index_fits(index: TensorType, name: str, tensor: TensorType, axis: int | None = None):
    """index.shape[d] <= tensor.shape[d] for every d (but ``axis``, if given)."""
    for d, (n, limit) in enumerate(zip(index.shape, tensor.shape)):
        if d != axis and n > limit:
            raise ShapeMismatch(f"index has size {n} in dimension {d} but {name} has only {limit}")


def _check_in_range(op: str, what: str, values: np.ndarray, size: int, where: str = ""):
    """Raise IndexError naming the first of ``values`` outside [0, size)."""
    out_of_range = (values < 0) | (values >= size)
    if out_of_range.any():
        raise IndexError(f"{op}: {what} {values[out_of_range][0]} is out of range [0, {size}){where}")


def _addresses(index: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """numpy advanced-index coordinates for every element of ``index``:
    its own position in every dimension but ``axis``, its value along ``axis``."""
    coords = list(np.indices(index.shape, sparse=True))
    coords[axis] = index
    return tuple(coords)


def _checked_index(ctx, node, index_node, at: Index, size: int, what: str, op: str, detail: str = "",
                   where: E.Expr | None = None):
    """The index value at ``at`` as i64, clamped into [0, size); the step fails (with the
    reference's message) if the value was outside."""
    value = ctx.builder.bind(E.cast(ctx.value(index_node, at), i64))
    inside = E.in_range(value, size)
    if where is not None and not (isinstance(where, E.Const) and where.value):
        inside = E.binary("or", E.unary("not", where), inside)
    ctx.check(inside, value, op, what, size, node, detail)
    return E.clamp(value, size)


# -- gather --------------------------------------------------------------------------------

def _gather_shape(types, attrs):
    x, index = types
    _check_index_type(index, x)
    _check_index_fits(index, "input", x, attrs["axis"])
    return TensorType(index.shape, x.dtype)


def _gather_reference(xs, attrs):
    x, index = xs
    axis = attrs["axis"]
    _check_in_range("gather", "index value", index, x.shape[axis], f" along axis {axis}")
    return x[_addresses(index, axis)]


def _gather_grad(b, node, g):
    x, index = node.inputs
    return [b.scatter_add(zeros(b, x), index, g, axis=node.attrs["axis"]), None]


def _lower_gather(ctx, node, index: Index):
    x, index_node = node.inputs
    axis = node.attrs["axis"]
    position = _checked_index(ctx, node, index_node, index, x.shape[axis], "index value", "gather",
                              f" along axis {axis}")
    return ctx.value(x, Index.of(x.shape, index.with_dim(axis, position).dims))


register(OpDef(
    name="gather", family="index", inputs=("input", "index"),
    attrs={"axis": Attr("int")},
    canonicalize=_canonicalize_axis, shape_rule=_gather_shape, reference=_gather_reference,
    grad=_gather_grad, lower=_lower_gather,
    doc="torch.gather: out[p] = input[p with p[axis] replaced by index[p]]; out has index's shape",
))


# -- scatter_add ---------------------------------------------------------------------------

def _scatter_add_shape(types, attrs):
    x, index, src = types
    _check_index_type(index, x)
    if src.dtype != x.dtype:
        raise ShapeMismatch(f"src has dtype {src.dtype} but input has {x.dtype}; they must match")
    if src.rank != x.rank:
        raise ShapeMismatch(f"src has rank {src.rank} but input has rank {x.rank}; they must match")
    _check_index_fits(index, "src", src)
    _check_index_fits(index, "input", x, attrs["axis"])
    return x


def _scatter_add_reference(xs, attrs):
    x, index, src = xs
    axis = attrs["axis"]
    _check_in_range("scatter_add", "index value", index, x.shape[axis], f" along axis {axis}")
    used_src = src[tuple(slice(0, n) for n in index.shape)]
    out = x.copy()
    np.add.at(out, _addresses(index, axis), used_src)    # duplicate addresses accumulate
    return out


def _scatter_add_grad(b, node, g):
    _, index, src = node.inputs
    g_src = b.gather(g, index, axis=node.attrs["axis"])
    if g_src.shape != src.shape:
        # src elements beyond index's extent are never read: their gradient is zero.
        pads = [amount for used, size in zip(index.shape, src.shape) for amount in (0, size - used)]
        g_src = b.pad(g_src, pads=pads, value=0.0)
    return [g, None, g_src]


def _lower_scatter_add(ctx, node, index: Index):
    # As a gather: output element q adds every src element whose index names it, in the
    # order np.add.at adds them (along the axis, first to last).
    x, index_node, src = node.inputs
    axis = node.attrs["axis"]
    covered = E.all_of([E.lt(dim, size) for d, (dim, size) in enumerate(zip(index.dims, index_node.shape))
                        if d != axis and size < x.shape[d]])
    base = [E.clamp(dim, size) if d != axis else dim for d, (dim, size) in enumerate(zip(index.dims, index_node.shape))]

    def update(acc, variables):
        (k,) = variables
        at = Index.of(index_node.shape, base[:axis] + [k] + base[axis + 1:])
        target = _checked_index(ctx, node, index_node, at, x.shape[axis], "index value", "scatter_add",
                                f" along axis {axis}", where=covered)
        hit = E.logical_and(covered, E.eq(target, index.dims[axis]))
        return E.select(hit, E.add(acc, ctx.value(src, Index.of(src.shape, at.dims))), acc)
    return ctx.reduce(ctx.value(x, index), [index_node.shape[axis]], update)


register(OpDef(
    name="scatter_add", family="index", inputs=("input", "index", "src"),
    attrs={"axis": Attr("int")},
    canonicalize=_canonicalize_axis, shape_rule=_scatter_add_shape, reference=_scatter_add_reference,
    grad=_scatter_add_grad, lower=_lower_scatter_add,
    doc="torch.Tensor.scatter_add: a copy of input with src[p] added at input[p with p[axis] "
        "replaced by index[p]]; duplicate addresses accumulate",
))


# -- one_hot -----------------------------------------------------------------------------------

def _one_hot_shape(types, attrs):
    index, num_classes = types[0], attrs["num_classes"]
    if index.dtype.is_float or index.dtype == bool_:
        raise ShapeMismatch(f"index must have an integer dtype, got {index.dtype}")
    if num_classes < 1:
        raise ShapeMismatch(f"num_classes must be positive, got {num_classes}")
    return TensorType(index.shape + (num_classes,), attrs["dtype"])


def _one_hot_reference(xs, attrs):
    index, num_classes = xs[0], attrs["num_classes"]
    _check_in_range("one_hot", "class value", index, num_classes)
    return (index[..., None] == np.arange(num_classes)).astype(attrs["dtype"].numpy)


def _lower_one_hot(ctx, node, index: Index):
    index_node = node.inputs[0]
    *position, klass = index.dims
    value = _checked_index(ctx, node, index_node, Index.of(index_node.shape, position), node.attrs["num_classes"],
                           "class value", "one_hot")
    return E.cast(E.eq(value, klass), node.dtype)


register(OpDef(
    name="one_hot", family="index", inputs=("index",),
    attrs={"num_classes": Attr("int"), "dtype": Attr("dtype", i64)},
    shape_rule=_one_hot_shape, reference=_one_hot_reference, lower=_lower_one_hot, differentiable=False,
    doc="index.shape + [num_classes]: 1 where the last coordinate equals the class value, else 0",
))
