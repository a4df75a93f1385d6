"""Eager autograd: the tape of recorded ops and ``backward``.

In eager mode every op whose inputs require grad is recorded as an IR Node
(the same Nodes the compiler uses) on a Tape, which also keeps each recorded
value.  ``backward`` gathers the nodes that produced the tensor, runs the
autodiff pass over them (the very pass compiled training steps use) and
evaluates only the new gradient nodes on the reference backend, reading the
forward values from the tape instead of recomputing them.

Hooks (``tensor.register_hook``) see and may replace a gradient before it flows
on.  A hooked intermediate value cuts the graph: its readers read a stand-in
input instead, its gradient is computed and passed through the hooks first,
and the rest of the backward pass starts from the hooked result.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from graphc.evaluator import evaluate_nodes
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
        self.hooks: dict[Node, list] = {}        # recorded node -> hooks on the gradient of its value
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
            big.hooks.update(tape.hooks)
            big.freed |= tape.freed
            tape.values, tape.leaves, tape.hooks = {}, {}, {}
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


def _evaluate_gradients(nodes: list[Node], inputs: list[Node], outputs: list[Node], seeds: list[np.ndarray],
                        wrt: list[Node], env: dict) -> list[np.ndarray | None]:
    """d(sum of outputs · seeds)/d(wrt), evaluated over the recorded values in ``env``."""
    b = GraphBuilder.extend(Graph("backward", inputs, nodes, []))
    seed_nodes = [b.input(fresh_node_name(), o.type) for o in outputs]
    grads = gradients(b, nodes, outputs, seed_nodes, wrt)
    env = dict(env)
    env.update(zip(seed_nodes, seeds))
    evaluate_nodes(b.nodes[len(nodes):], env)
    return [env[g] if g is not None else None for g in grads]


def _run_hooks(hooks, gradient: np.ndarray) -> np.ndarray:
    from .tensor import Tensor
    for hook in list(hooks or ()):
        replaced = hook(Tensor._wrap(gradient))
        if replaced is not None:
            gradient = np.asarray(replaced.detach().numpy() if isinstance(replaced, Tensor) else replaced,
                                  gradient.dtype)
    return gradient


def _cut_at(forward: list[Node], hooked: list[Node], env: dict):
    """The forward nodes with every reader of a hooked node reading a stand-in input instead.

    Returns the new forward nodes, a map from each original node to its new version, each hooked
    node's stand-in, and ``env`` extended to the new nodes."""
    stand_ins = {h: Node(fresh_node_name(), "input", (), {}, h.type, tag="data") for h in hooked}
    env = dict(env)
    rewired: dict[Node, Node] = {}
    for node in forward:
        inputs = [stand_ins.get(i) or rewired.get(i, i) for i in node.inputs]
        if inputs != list(node.inputs):
            rewired[node] = Node(fresh_node_name(), node.op, inputs, node.attrs, node.type, node.loc)
            env[rewired[node]] = env[node]
    for h, stand_in in stand_ins.items():
        env[stand_in] = env[h]
    return [rewired.get(n, n) for n in forward], rewired, stand_ins, env


def _leaf_gradients(tape: "Tape", output: Node, seed: np.ndarray) -> tuple[list[Node], list]:
    """The leaves ``output`` depends on and d(output · seed)/d(leaf), running hooks of intermediate values."""
    forward, inputs = _forward_nodes(output)
    wrt = [n for n in inputs if n in tape.leaves]
    hooked = [n for n in forward if n in tape.hooks and n is not output]
    if not hooked:
        return wrt, _evaluate_gradients(forward, inputs, [output], [seed], wrt, tape.values)
    nodes, rewired, stand_ins, env = _cut_at(forward, hooked, tape.values)
    all_inputs = inputs + list(stand_ins.values())
    outputs, seeds = [rewired.get(output, output)], [seed]
    for h in reversed(hooked):              # the last hooked value first: its gradient is complete
        grad, = _evaluate_gradients(nodes, all_inputs, outputs, seeds, [stand_ins[h]], env)
        if grad is not None:
            outputs.append(rewired.get(h, h))
            seeds.append(_run_hooks(tape.hooks[h], grad))
    return wrt, _evaluate_gradients(nodes, all_inputs, outputs, seeds, wrt, env)


def run_backward(tensor, gradient: np.ndarray, retain_graph: bool) -> None:
    """Accumulate d(tensor · gradient)/d(leaf) into every leaf's ``.grad``."""
    tape = tensor._tape.root()
    if tape.freed:
        raise RuntimeError("backward: trying to backward through the graph a second time (or directly "
                           "access saved tensors after they have already been freed). Specify "
                           "retain_graph=True if you need to backward through the graph a second time.")
    seed = _run_hooks(tape.hooks.get(tensor._node), gradient)
    wrt, grads = _leaf_gradients(tape, tensor._node, seed)
    for node, value in zip(wrt, grads):
        if value is not None:
            accumulate_grad(tape.leaves[node], value)
    if not retain_graph:
        tape.freed = True
        tape.values.clear()
        tape.leaves.clear()
        tape.hooks.clear()


def accumulate_grad(leaf, value: np.ndarray) -> None:
    """Add ``value``, passed through the leaf's hooks, to ``leaf.grad``."""
    from .tensor import Tensor
    value = _run_hooks(leaf._hooks, value)
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(np.array(value, copy=True))
    else:
        leaf.grad._value = leaf.grad._value + value


class RemovableHandle:
    """What register_hook returns: ``handle.remove()`` takes the hook off again."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register_hook(tensor, hook) -> RemovableHandle:
    """Call ``hook(grad)`` with the gradient of ``tensor`` during backward; a returned tensor replaces it."""
    from .tensor import _needs_value
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if tensor.is_symbolic and not any(tensor is leaf for leaf in tensor._trace.symbolic_leaves):
        raise _needs_value("register_hook on an intermediate value", "Hooks on intermediate values run in eager "
                                                                     "mode; hooks on parameters also run compiled.")
    if tensor._tape is None:                # a leaf: a parameter, or an input that requires grad
        if tensor._hooks is None:
            tensor._hooks = []
        hooks = tensor._hooks
    else:
        hooks = tensor._tape.root().hooks.setdefault(tensor._node, [])
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def backward(tensor, gradient=None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """``tensor.backward()``: PyTorch's checks and messages, then ``run_backward``."""
    from .context import current_trace
    from .tensor import as_tensor
    if create_graph:
        raise NotImplementedError("backward(create_graph=True): higher-order gradients are not supported")
    ctx = current_trace()
    if ctx is not None:
        from .traced_backward import traced_backward
        traced_backward(ctx, tensor, gradient)
        return
    if not tensor.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn (a tensor "
                           "returned by a graphc.compile'd function has none: call backward() inside it)")
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
        accumulate_grad(tensor, seed)
        return
    run_backward(tensor, seed, retain_graph)


def Variable(tensor, requires_grad: bool = False):
    """The identity wrapper PyTorch keeps for old code: returns ``tensor`` (marked if asked)."""
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor
