"""Tracing: run user code on symbolic tensors and record every op into a Graph.

While a TraceContext is active, ops on symbolic tensors append nodes to its
GraphBuilder.  Concrete tensors the code touches (parameters, buffers,
optimizer state, anything captured) are *lifted*: they become graph inputs
tagged param/buffer/state and named by their module path.  In-place updates
of a lifted tensor (BatchNorm's running stats, an optimizer's step) do not
touch the real tensor; they rebind its current value in the trace, and every
lifted tensor whose value changed becomes a write-back when the trace ends.

Tracing changes nothing outside the graph.  Where traced code must change a
Python object (an optimizer creating its state on its first step), it
records the change as a SideEffect, which is undone when the trace ends and
redone by the compiled step once its first run has succeeded: a trace that
fails, or a compiled step whose first run fails, leaves the world as it was.
"""
from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from graphc.errors import TraceError
from graphc.ir.builder import GraphBuilder
from graphc.ir.graph import Graph, Node

from .context import tracing, user_location


@dataclass
class SideEffect:
    """A change traced code made to a Python object: how to take it back, and how to make it again."""
    undo: Callable[[], None]
    redo: Callable[[], None]


@dataclass
class InputCheck:
    """A check of a data input's values, run on the caller's array before every run of the compiled step
    (a class target in range): values are data, so a graph can only check them when it runs."""
    input_name: str
    check: Callable[[np.ndarray], None]


@dataclass
class Lifted:
    """A concrete tensor seen by the trace: its graph input and its current value node."""
    tensor: object
    input: Node
    current: Node


class TraceContext:
    def __init__(self, name: str, names: dict[int, str] | None = None,
                 name_source: Callable[[], dict[int, str]] | None = None):
        self.builder = GraphBuilder(name)
        self.lifted: dict[int, Lifted] = {}
        self.names = dict(names or {})       # id(tensor) -> qualified name, for lifted inputs
        from .random import default_generator
        self.names.setdefault(id(default_generator.state), "rng")
        # Re-read for tensors created during the trace (an optimizer's state on its first step).
        self._name_source = name_source
        # Python-side facts the graph was specialised on (a module's training flag, the keys of an
        # optimizer's state): a compiled graph is reused only while every guard still holds.
        self.guards: list[tuple[Callable[[], object], object]] = []
        # Run before every execution of the compiled graph (e.g. an optimizer copying its current
        # learning rate into the state tensor the graph reads).
        self.prepare_hooks: list[Callable[[], None]] = []
        # .grad of concrete tensors while tracing: id(tensor) -> symbolic Tensor or None.
        # Gradients live only inside the traced step; the real tensors' .grad is untouched.
        self.grads: dict[int, object] = {}
        self.symbolic_leaves: list = []      # traced inputs created with requires_grad=True
        self.made_without_grad: set[Node] = set()   # ops traced under no_grad: constants to backward()
        self.side_effects: list[SideEffect] = []
        self.input_checks: list[InputCheck] = []
        self._anonymous = 0

    def grad_of(self, tensor) -> tuple[bool, object]:
        key = id(tensor._storage_owner())
        return (key in self.grads, self.grads.get(key))

    def set_grad(self, tensor, grad) -> None:
        self.grads[id(tensor._storage_owner())] = grad

    def add_guard(self, read: Callable[[], object]) -> None:
        """Specialise on ``read()``'s current value; a later change means a retrace."""
        self.guards.append((read, read()))

    def add_prepare_hook(self, hook: Callable[[], None]) -> None:
        if hook not in self.prepare_hooks:
            self.prepare_hooks.append(hook)

    def add_side_effect(self, undo: Callable[[], None], redo: Callable[[], None]) -> None:
        """Record a change made to a Python object; ``record`` undoes it when the trace ends."""
        self.side_effects.append(SideEffect(undo, redo))

    def add_input_check(self, tensor, check: Callable[[np.ndarray], None]) -> bool:
        """Check ``tensor``'s values before every run, if it is one of the traced function's data inputs.

        Returns whether it is: the values of a tensor computed inside the graph cannot be checked
        before the run, and are left to the op that reads them.
        """
        node = tensor._node if tensor._trace is self else None
        if node is None or node.op != "input" or node.tag != "data":
            return False
        self.input_checks.append(InputCheck(node.name, check))
        return True

    # -- values ---------------------------------------------------------------
    def node_of(self, tensor) -> Node:
        """The node holding ``tensor``'s current value in this trace (lifting it if concrete)."""
        if tensor._trace is self:
            return tensor._node
        if tensor._trace is not None:
            raise TraceError("a tensor from another (or a finished) trace was used here"
                             + _at_user_line() + "; tensors created while tracing only live inside that trace")
        tensor = tensor._storage_owner()
        lifted = self.lifted.get(id(tensor))
        if lifted is None:
            tag = tensor._kind or "state"
            node = self.builder.input(self._name_for(tensor, tag), tensor._type, tag=tag)
            lifted = self.lifted[id(tensor)] = Lifted(tensor, node, node)
        return lifted.current

    def assign(self, tensor, node: Node) -> None:
        """Record an in-place update: ``tensor`` now holds ``node``."""
        if tensor._trace is self:
            tensor._node = node
            return
        self.node_of(tensor)                 # lift it if needed
        self.lifted[id(tensor._storage_owner())].current = node

    def lifted_record(self, tensor) -> Lifted | None:
        return self.lifted.get(id(tensor._storage_owner()))

    def _name_for(self, tensor, tag: str) -> str:
        if id(tensor) not in self.names and self._name_source is not None:
            self.names.update(self._name_source())
        name = self.names.get(id(tensor))
        if name is None:
            self._anonymous += 1
            name = f"{tag}{self._anonymous}"
        return self.builder.unique_name(name)

    def dropped_gradients(self, graph: Graph) -> list[str]:
        """Where the traced step computed gradients of real tensors (``backward()``) and nothing in
        the graph reads any of them, their names: a compiled call does not update ``.grad``, so a
        function that calls backward() and leaves the optimizer's step outside loses them.
        (Where some are read, an optimizer stepped; the others are a GAN's discriminator's from
        the generator's loss, or a frozen layer's, which eager mode's next zero_grad() clears.)"""
        computed = {grad._node: key for key, grad in self.grads.items()
                    if grad is not None and grad._trace is self and key in self.lifted}
        # A scan of the edges, not a set of the live nodes: this runs at every trace, at the
        # process's peak of memory (a set of ResNet's step's nodes raised it by 0.5 MiB).
        readers = (value for node in graph.nodes for value in node.inputs)
        if any(value in computed for value in itertools.chain(readers, graph.outputs, (v for _, v in graph.writes))):
            return []
        return [self.lifted[key].input.name for key in computed.values()]

    # -- finishing ------------------------------------------------------------------
    def data_input(self, name: str, type) -> Node:
        return self.builder.input(self.builder.unique_name(name), type, tag="data")

    def symbolic_input(self, node: Node, requires_grad: bool):
        from .tensor import Tensor
        tensor = Tensor._symbolic(node, self, requires_grad)
        if requires_grad:
            self.symbolic_leaves.append(tensor)
        return tensor

    def finish(self, outputs: list[Node]) -> Graph:
        self.builder.output(*outputs)
        for lifted in self.lifted.values():
            if lifted.current is not lifted.input:
                self.builder.write(lifted.input, lifted.current)
        return self.builder.build()


def _at_user_line() -> str:
    loc = user_location()
    return f" at {loc}" if loc else ""


def argument_names(fn, count: int) -> list[str]:
    """The names of ``fn``'s first ``count`` positional parameters (``inputN`` where it has none)."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in params[:count]]
    except (TypeError, ValueError):
        names = []
    names += [f"input{i}" for i in range(len(names), count)]
    return names


def module_tensor_names(module, prefix: str = "") -> dict[int, str]:
    """id(tensor) -> qualified name for every parameter and buffer of ``module``."""
    names = {}
    for name, t in module.named_parameters():
        names.setdefault(id(t), prefix + name)
    for name, t in module.named_buffers():
        names.setdefault(id(t), prefix + name)
    return names


@dataclass
class Recording:
    """What tracing a call recorded: the graph, and how it relates to the call."""
    graph: Graph
    result: object                    # what the function returned (its tensors symbolic)
    outputs: list                     # the tensors in ``result``, in the graph's output order
    data_positions: dict[str, int]    # data input name -> the position of the argument it stands for


def record(fn, args, ctx: TraceContext) -> Recording:
    """Call ``fn(*args)`` inside ``ctx``, every tensor argument a data input named after
    ``fn``'s parameter; other arguments are passed as they are (specialised on)."""
    from .nn.module import Module
    from .tensor import Tensor
    target = fn.forward if isinstance(fn, Module) else fn
    data_positions = {}
    try:
        with tracing(ctx):
            symbolic = []
            for position, (name, value) in enumerate(zip(argument_names(target, len(args)), args)):
                if isinstance(value, Tensor):
                    node = ctx.data_input(name, value._type)
                    data_positions[node.name] = position
                    value = ctx.symbolic_input(node, value.requires_grad)
                symbolic.append(value)
            result = fn(*symbolic)
            outputs = flatten_outputs(result)
            graph = ctx.finish([ctx.node_of(t) for t in outputs])
    finally:
        for effect in reversed(ctx.side_effects):
            effect.undo()
    return Recording(graph, result, outputs, data_positions)


def trace(fn, *example_inputs, name: str | None = None) -> Graph:
    """Trace ``fn`` (a function or an nn.Module) on example inputs into a Graph.

    The graph's data inputs are the example inputs (named after ``fn``'s
    arguments); every parameter and buffer the code touches becomes an input
    tagged param or buffer and named by its module path (``layer1.0.conv1.weight``).
    Python control flow is specialised to the example inputs, as
    torch.jit.trace does.
    """
    from .nn.module import Module
    from .tensor import as_tensor

    names = module_tensor_names(fn) if isinstance(fn, Module) else {}
    graph_name = name or (type(fn).__name__ if isinstance(fn, Module) else getattr(fn, "__name__", "traced"))
    return record(fn, [as_tensor(value) for value in example_inputs],
                  TraceContext(identifier(graph_name), names)).graph


def flatten_outputs(result) -> list:
    """The tensors in a (nested) tuple/list/dict result, in order."""
    from .tensor import Tensor
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in flatten_outputs(item)]
    if isinstance(result, dict):
        return [t for key in result for t in flatten_outputs(result[key])]
    if result is None:
        return []
    raise TraceError(f"a traced function may return tensors and tuples/lists/dicts of them, "
                     f"not {type(result).__name__}")


def identifier(name: str) -> str:
    """``name`` made fit to name a graph: letters, digits and underscores."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned or "traced"
