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

Nodes have a single output, so a group with several externally used values
is never one fused node: the pass keeps each such value the output of its
own node (see the fusion module).  Fusion runs after autodiff, so ``fused``
has no gradient rule.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import verify
from .registry import Attr, OpDef, ShapeMismatch, register, run_reference

FUSED_KINDS = ("elementwise", "movement", "reduction", "contraction", "window")


def _fused_shape(types, attrs):
    body, kind = attrs["body"], attrs["kind"]
    if kind not in FUSED_KINDS:
        raise ShapeMismatch(f"kind {kind!r} is not one of {', '.join(FUSED_KINDS)}")
    if len(body.outputs) != 1 or body.writes:
        raise ShapeMismatch(f"body {body.name} must return exactly one value and write nothing back")
    if len(types) != len(body.inputs):
        raise ShapeMismatch(f"body {body.name} takes {len(body.inputs)} inputs but the node has {len(types)}")
    for given, body_input in zip(types, body.inputs):
        if given != body_input.type:
            raise ShapeMismatch(f"operand {given} does not match body input %{body_input.name}: "
                                f"{body_input.type}")
    verify(body)
    return body.outputs[0].type


def _run_body(arrays, attrs) -> np.ndarray:
    """Interpret the body node by node with each primitive's own reference, so a
    fused graph computes bit for bit what the unfused graph computes."""
    body = attrs["body"]
    values = dict(zip(body.inputs, arrays))
    for node in body.nodes:
        values[node] = run_reference(node.op, [values[i] for i in node.inputs], node.attrs, node.type)
    return values[body.outputs[0]]


register(OpDef(
    name="fused", family="fused", inputs=("*inputs",),
    attrs={"kind": Attr("str"), "body": Attr("graph")},
    shape_rule=_fused_shape,
    reference=_run_body,
    differentiable=False,
    doc="one kernel: the subgraph body applied to the inputs (made by the fusion pass, "
        "which runs after autodiff, so it has no gradient)",
))
