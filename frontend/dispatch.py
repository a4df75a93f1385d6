"""The one path every frontend op takes: eager (run the reference now) or traced (add a node).

The frontend never computes anything itself: ``apply`` looks the op up in the
registry, checks shapes there, and either runs the op's numpy reference (eager,
recording a node on the autograd tape when gradients are needed) or appends a
node to the active trace.  Shape errors are re-raised with the user's module
path and source line.
"""
from __future__ import annotations

from typing import Sequence

from graphc.errors import OutOfRangeError, ShapeError, TraceError
from graphc.ir.graph import Node
from graphc.ops.registry import OpError, get_op, infer_node, run_reference

from .autograd import Tape, fresh_node_name, merge_tapes
from .context import current_trace, error_context, is_grad_enabled, user_location


def apply(op: str, inputs: Sequence, **attrs):
    """Apply primitive ``op`` to Tensors ``inputs``; returns a new Tensor."""
    from .tensor import Tensor
    ctx = current_trace()
    needs_grad = (is_grad_enabled() and get_op(op).differentiable
                  and any(t.requires_grad for t in inputs))
    try:
        if ctx is not None:
            nodes = [ctx.node_of(t) for t in inputs]
            ctx.builder.loc = user_location()
            node = ctx.builder.op(op, *nodes, **attrs)
            if not is_grad_enabled():
                # Autodiff differentiates the whole trace: an op traced under no_grad is a constant to
                # it, as eager mode leaves the op off the tape (an optimizer's update, which a GAN's
                # second backward must not differentiate through).
                ctx.made_without_grad.add(node)
            return Tensor._symbolic(node, ctx, needs_grad and node.dtype.is_float)
        for t in inputs:
            if t._value is None:
                raise TraceError(f"{op}: a tensor from a finished trace was used eagerly{error_context()}")
        canonical, out_type = infer_node(op, [t._type for t in inputs], attrs)
    except (ShapeError, OpError) as err:
        raise type(err)(f"{err}{error_context()}") from None
    try:
        value = run_reference(op, [t._value for t in inputs], canonical, out_type)
    except IndexError as err:        # an index value out of range: data, so found only when the op runs
        types = ", ".join(str(t._type) for t in inputs)
        raise OutOfRangeError(f"{err} ({op} of {types}){error_context()}") from None
    out = Tensor._wrap(value)
    if needs_grad and out_type.dtype.is_float:
        _record(op, inputs, canonical, out, out_type)
    return out


def _record(op, inputs, attrs, out, out_type) -> None:
    """Put the op on the autograd tape so that backward() can differentiate it."""
    tape = merge_tapes([t._tape for t in inputs if t._tape is not None]) \
        if any(t._tape is not None for t in inputs) else Tape()
    nodes = [_tape_node(t, tape) for t in inputs]
    node = Node(fresh_node_name(), op, nodes, attrs, out_type)
    tape.values[node] = out._value
    out._node, out._tape, out.requires_grad = node, tape, True


def _tape_node(tensor, tape: Tape) -> Node:
    """The tape node for an op input: its recorded node, or a fresh input node for a leaf or constant."""
    if tensor._tape is not None:
        return tensor._node
    if tensor.requires_grad:
        if tensor._node is None:         # a leaf's input node lives as long as the leaf
            tensor._node = Node(fresh_node_name(), "input", (), {}, tensor._type, tag="param")
        tape.leaves[tensor._node] = tensor
        tape.values[tensor._node] = tensor._value
        return tensor._node
    node = Node(fresh_node_name(), "input", (), {}, tensor._type, tag="data")
    tape.values[node] = tensor._value
    return node
