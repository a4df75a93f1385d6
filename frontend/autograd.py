"""Eager autograd: the tape of recorded ops and ``backward``.

In eager mode every op whose inputs require grad is recorded as an IR Node
(the same Nodes the compiler uses) on a Tape, which also keeps each recorded
value.  ``backward`` gathers the nodes that produced the tensor, runs the
autodiff pass over them (the very pass compiled training steps use) and
evaluates only the new gradient nodes on the reference backend, reading the
forward values from the tape instead of recomputing them.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from graphc.backends.reference import evaluate_nodes
from graphc.ir.builder import GraphBuilder
from graphc.ir.graph import Graph, Node
from graphc.passes.autodiff import gradients

_node_names = itertools.count()


def fresh_node_name() -> str:
    return f"t{next(_node_names)}"


class Tape:
    """Recorded forward values of one autograd graph; tapes merge when their tensors meet."""

    def __init__(self):
        self.values: dict[Node, np.ndarray] = {}
        self.leaves: dict[Node, object] = {}     # leaf input node -> the Tensor whose .grad it fills
        self.freed = False
        self._merged_into: Tape | None = None

    def root(self) -> "Tape":
        tape = self
        while tape._merged_into is not None:
            tape = tape._merged_into
        return tape


def merge_tapes(tapes: Sequence[Tape]) -> Tape:
    roots = list({id(t.root()): t.root() for t in tapes}.values())
    if not roots:
        return Tape()
    big = max(roots, key=lambda t: len(t.values))
    for tape in roots:
        if tape is not big:
            big.values.update(tape.values)
            big.leaves.update(tape.leaves)
            big.freed |= tape.freed
            tape.values, tape.leaves = {}, {}
            tape._merged_into = big
    return big


def _forward_nodes(output: Node) -> tuple[list[Node], list[Node]]:
    """The recorded nodes that produced ``output`` in topological order, and their inputs."""
    order, inputs, seen = [], [], set()
    stack = [(output, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        if node.is_input:
            inputs.append(node)
            continue
        stack.append((node, True))
        stack.extend((i, False) for i in reversed(node.inputs) if i not in seen)
    return order, inputs


def run_backward(tensor, gradient: np.ndarray, retain_graph: bool) -> None:
    """Accumulate d(tensor · gradient)/d(leaf) into every leaf's ``.grad``."""
    from .tensor import Tensor
    tape = tensor._tape.root()
    if tape.freed:
        raise RuntimeError("backward: trying to backward through the graph a second time (or directly "
                           "access saved tensors after they have already been freed). Specify "
                           "retain_graph=True if you need to backward through the graph a second time.")
    forward, inputs = _forward_nodes(tensor._node)
    b = GraphBuilder.extend(Graph("backward", inputs, forward, []))
    seed = b.input(fresh_node_name(), tensor._node.type)
    wrt = [n for n in inputs if n in tape.leaves]
    grads = gradients(b, forward, [tensor._node], [seed], wrt)
    env = dict(tape.values)
    env[seed] = gradient
    evaluate_nodes(b.nodes[len(forward):], env)
    for node, g in zip(wrt, grads):
        if g is None:
            continue
        leaf = tape.leaves[node]
        value = env[g]
        if leaf.grad is None:
            leaf.grad = Tensor._wrap(np.array(value, copy=True))
        else:
            leaf.grad._value = leaf.grad._value + value
    if not retain_graph:
        tape.freed = True
        tape.values.clear()
        tape.leaves.clear()


def backward(tensor, gradient=None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """``tensor.backward()``: PyTorch's checks and messages, then ``run_backward``."""
    from .context import current_trace
    from .tensor import Tensor, as_tensor
    if create_graph:
        raise NotImplementedError("backward(create_graph=True): higher-order gradients are not supported")
    ctx = current_trace()
    if ctx is not None:
        from .traced_backward import traced_backward
        traced_backward(ctx, tensor, gradient)
        return
    if not tensor.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if tensor.numel() != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                               f"(backward() was called on a tensor of shape {list(tensor.shape)}; "
                               "pass gradient=)")
        seed = np.ones(tensor.shape, tensor.dtype.numpy)
    else:
        g = as_tensor(gradient)
        if tuple(g.shape) != tuple(tensor.shape):
            raise RuntimeError(f"backward: gradient has shape {list(g.shape)} but the tensor has shape "
                               f"{list(tensor.shape)}")
        seed = g._value.astype(tensor.dtype.numpy)
    if tensor._tape is None:        # a leaf: its gradient is the seed itself
        tensor.grad = Tensor._wrap(seed.copy()) if tensor.grad is None else \
            Tensor._wrap(tensor.grad._value + seed)
        return
    run_backward(tensor, seed, retain_graph)


def Variable(tensor, requires_grad: bool = False):
    """The identity wrapper PyTorch keeps for old code: returns ``tensor`` (marked if asked)."""
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor
