"""The ``fused`` op: one kernel's worth of primitives, held as a subgraph.

The fusion pass (``graphc.passes.fusion``) replaces each fusion group with one
``fused`` node.  Its ``body`` attribute is a Graph whose inputs correspond
one to one to the node's operands (all tagged ``data``) and whose single
output is the node's value; ``kind`` tells a backend how to emit the loop
nest:

- ``elementwise``: one loop over the output; movement ops inside only
  re-index their operands.
- ``movement``: the same loop, but the body only moves elements (a copy).
- ``reduction``: an elementwise prologue feeding one reduction, followed by
  an elementwise epilogue over the reduction's output.
- ``contraction``: one conv2d, conv_transpose2d, conv2d_weight_grad or matmul
  with an elementwise epilogue (bias, BatchNorm affine, activation, residual).
- ``window``: one pooling op (or its gradient) with an elementwise epilogue.

A body may return several values, all of one shape: the kernel then has
several outputs, computed in one loop nest over that shape (each iteration
stores an element of every output), and the node's type is a TupleType.
``tuple_get(%k) {index=i}`` names output i; it is no kernel and moves no
data: a backend gives each output its own buffer, and a tuple_get is that
buffer.  Several outputs let one kernel compute values that are used
outside it without computing anything twice (Adam's new moments and its
new parameter), and independent kernels over one shape become one launch
(every parameter update of one shape).  Fusion runs after autodiff, so
neither op has a gradient rule.
"""
from __future__ import annotations

from ..ir.graph import Node, verify
from ..ir.types import TupleType
from .registry import Attr, OpDef, ShapeMismatch, register, run_reference

FUSED_KINDS = ("elementwise", "movement", "reduction", "contraction", "window")


def _fused_shape(types, attrs):
    body, kind = attrs["body"], attrs["kind"]
    if kind not in FUSED_KINDS:
        raise ShapeMismatch(f"kind {kind!r} is not one of {', '.join(FUSED_KINDS)}")
    if not body.outputs or body.writes:
        raise ShapeMismatch(f"body {body.name} must return one or more values and write nothing back")
    if len(types) != len(body.inputs):
        raise ShapeMismatch(f"body {body.name} takes {len(body.inputs)} inputs but the node has {len(types)}")
    for given, body_input in zip(types, body.inputs):
        if given != body_input.type:
            raise ShapeMismatch(f"operand {given} does not match body input %{body_input.name}: "
                                f"{body_input.type}")
    verify(body)
    results = [value.type for value in body.outputs]
    if len(results) == 1:
        return results[0]
    if len({t.shape for t in results}) != 1:
        raise ShapeMismatch(f"body {body.name} returns values of several shapes "
                            f"({', '.join(map(str, results))}); a kernel's outputs share one shape")
    if len(set(body.outputs)) != len(body.outputs):
        raise ShapeMismatch(f"body {body.name} returns a value twice")
    return TupleType(tuple(results))


def _run_body(arrays, attrs):
    """Interpret the body node by node with each primitive's own reference, so a
    fused graph computes bit for bit what the unfused graph computes."""
    body = attrs["body"]
    values = dict(zip(body.inputs, arrays))
    for node in body.nodes:
        values[node] = run_reference(node.op, [values[i] for i in node.inputs], node.attrs, node.type)
    if len(body.outputs) == 1:
        return values[body.outputs[0]]
    return tuple(values[value] for value in body.outputs)


def _lower_output(ctx, kernel, position: int, index):
    """Output ``position`` of a fused kernel at ``index``: its body, lowered in place."""
    body = kernel.attrs["body"]
    ctx.inline(body, kernel.inputs)
    return ctx.value(body.outputs[position], index)


register(OpDef(
    name="fused", family="fused", inputs=("*inputs",),
    attrs={"kind": Attr("str"), "body": Attr("graph")},
    shape_rule=_fused_shape,
    reference=_run_body,
    lower=lambda ctx, node, index: _lower_output(ctx, node, 0, index),
    differentiable=False,
    doc="one kernel: the subgraph body applied to the inputs (made by the fusion pass, "
        "which runs after autodiff, so it has no gradient)",
))


def _tuple_get_shape(types, attrs):
    (given,) = types
    if not isinstance(given, TupleType):
        raise ShapeMismatch(f"reads {given}, which is no tuple (only a multi-output kernel's result is)")
    if not 0 <= attrs["index"] < len(given):
        raise ShapeMismatch(f"index {attrs['index']} is out of range for a tuple of {len(given)}")
    return given[attrs["index"]]


register(OpDef(
    name="tuple_get", family="fused", inputs=("tuple",),
    attrs={"index": Attr("int")},
    shape_rule=_tuple_get_shape,
    reference=lambda arrays, attrs: arrays[0][attrs["index"]],
    lower=lambda ctx, node, index: _lower_output(ctx, node.inputs[0], node.attrs["index"], index),
    differentiable=False,
    doc="output ``index`` of a multi-output fused kernel: no work, the name of that output's buffer",
))


# -- what runs as a kernel -----------------------------------------------------------------

def is_kernel(node: Node) -> bool:
    """Whether running ``node`` launches a kernel: every node but a rank-0 ``full`` and a ``tuple_get``.

    A scalar constant is folded into the kernels that read it, and a
    ``tuple_get`` only names an output of the kernel before it; anything
    else, an unfused primitive or a whole fused group, is one kernel.
    """
    return not ((node.op == "full" and node.shape == ()) or node.op == "tuple_get")


def kernel_outputs(graph) -> dict:
    """The kernels of a (fused) graph in run order, each with the values it stores: itself, or
    for a multi-output kernel its ``tuple_get`` nodes in output order."""
    outputs = {node: [] if isinstance(node.type, TupleType) else [node] for node in graph.nodes if is_kernel(node)}
    for node in sorted((n for n in graph.nodes if n.op == "tuple_get"), key=lambda n: n.attrs["index"]):
        outputs[node.inputs[0]].append(node)
    return outputs
