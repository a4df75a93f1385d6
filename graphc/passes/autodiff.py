"""Reverse-mode autodiff as a graph → graph pass.

``gradients`` walks the graph backwards from the seeded outputs and asks each
op's gradient rule (in the op registry) for the vector-Jacobian product,
emitting it as new primitive nodes through a GraphBuilder.  Compiled training
steps and eager ``loss.backward()`` both call it, so one rule serves both.

Only floating-point values carry gradients; ``stop_gradient`` (what
``Tensor.detach()`` records) cuts the flow, as do ops registered as not
differentiable (comparisons, argmax, ...).
"""
from __future__ import annotations

from typing import Sequence

from ..errors import GraphcError
from ..ir.builder import GraphBuilder
from ..ir.graph import Graph, Node
from ..ops.registry import get_op


def _between(graph_nodes: Sequence[Node], sources: set[Node], targets: Sequence[Node]) -> list[Node]:
    """Nodes (in graph order) that depend on a source and feed a target."""
    forward = set(sources)
    for node in graph_nodes:
        if any(i in forward for i in node.inputs) and get_op(node.op).differentiable:
            forward.add(node)
    backward = set(t for t in targets if t in forward)
    relevant = []
    for node in reversed(graph_nodes):
        if node in backward:
            relevant.append(node)
            backward.update(i for i in node.inputs if i in forward)
    relevant.reverse()
    return relevant


def gradients(b: GraphBuilder, graph_nodes: Sequence[Node], outputs: Sequence[Node],
              seeds: Sequence[Node], wrt: Sequence[Node]) -> list[Node | None]:
    """Gradients of ``sum(output * seed for output, seed)`` with respect to each of ``wrt``.

    ``graph_nodes`` is the forward computation in topological order; new nodes
    are appended through ``b``.  A value of ``wrt`` that the outputs do not
    depend on (or only through non-differentiable paths) gets None.
    """
    for out, seed in zip(outputs, seeds):
        if out.type != seed.type:
            raise GraphcError(f"gradient seed for %{out.name} has type {seed.type}, expected {out.type}")
    grads: dict[Node, Node] = {}

    def accumulate(node: Node, g: Node):
        grads[node] = b.add(grads[node], g) if node in grads else g

    for out, seed in zip(outputs, seeds):
        if out.dtype.is_float:
            accumulate(out, seed)

    sources = {w for w in wrt if w.dtype.is_float}
    for node in reversed(_between(graph_nodes, sources, outputs)):
        g = grads.get(node)
        if g is None:
            continue
        opdef = get_op(node.op)
        if opdef.grad is None:
            raise GraphcError(f"{node.op}: no gradient rule is registered, so %{node.name} cannot be differentiated")
        saved_loc, b.loc = b.loc, node.loc
        input_grads = opdef.grad(b, node, g)
        b.loc = saved_loc
        if len(input_grads) != len(node.inputs):
            raise AssertionError(f"{node.op}: gradient rule returned {len(input_grads)} values "
                                 f"for {len(node.inputs)} inputs")
        for inp, ig in zip(node.inputs, input_grads):
            if ig is None or not inp.dtype.is_float:
                continue
            if ig.type != inp.type:
                raise AssertionError(f"{node.op}: gradient for input %{inp.name} has type {ig.type}, "
                                     f"expected {inp.type}")
            accumulate(inp, ig)
    return [grads.get(w) for w in wrt]


def grad_graph(graph: Graph, output: Node | None = None, wrt: Sequence[Node] | None = None,
               name: str | None = None) -> Graph:
    """A new graph returning ``graph``'s outputs followed by d(output)/d(wrt).

    ``output`` defaults to the graph's only (scalar) output and ``wrt`` to its
    float parameters; a value with no gradient path gets zeros.
    """
    if output is None:
        if len(graph.outputs) != 1:
            raise GraphcError(f"grad_graph: graph {graph.name} has {len(graph.outputs)} outputs; name one")
        output = graph.outputs[0]
    if output.shape != ():
        raise GraphcError(f"grad_graph: output %{output.name} has shape {list(output.shape)}; "
                          "a gradient needs a scalar (or give seeds to `gradients`)")
    if wrt is None:
        wrt = [n for n in graph.inputs if n.tag == "param" and n.dtype.is_float]
    b = GraphBuilder.extend(graph)
    b.name = name or f"{graph.name}_grad"
    seed = b.scalar(1.0, output.dtype)
    result = gradients(b, graph.nodes, [output], [seed], wrt)
    for w, g in zip(wrt, result):
        b.output(g if g is not None else b.full(shape=w.shape, dtype=w.dtype, value=0.0))
    return b.build()
