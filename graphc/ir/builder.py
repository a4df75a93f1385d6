"""GraphBuilder: make graphs from code, checked op by op as they are added.

    b = GraphBuilder("mlp")
    x = b.input("x", "f32[4,8]")
    w = b.input("w", "f32[8,2]", tag="param")
    y = b.relu(b.matmul(x, w))
    b.output(y)
    graph = b.build()

Every registered op is a method (``b.relu``, ``b.op("sum", x, axes=[1])``);
each call validates attributes and applies the op's shape rule at once, so a
mistake raises where it is made.  Python numbers given as inputs become
``full`` scalar constants of the first tensor input's dtype.
"""
from __future__ import annotations

import itertools
from numbers import Number

from ..ops.registry import OPS, infer_node
from .dtypes import DType, bool_
from .graph import INPUT_TAGS, Graph, Node, SourceLoc, verify
from .types import TensorType


def parse_type(spec: "TensorType | str") -> TensorType:
    if isinstance(spec, TensorType):
        return spec
    from .text import parse_type_text
    return parse_type_text(spec)


class GraphBuilder:
    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Node] = []
        self.nodes: list[Node] = []
        self.outputs: list[Node] = []
        self.writes: list[tuple[Node, Node]] = []
        self.loc: SourceLoc | None = None       # stamped on every node made while set
        self._names: set[str] = set()
        self._counter = itertools.count(1)

    @classmethod
    def extend(cls, graph: Graph) -> "GraphBuilder":
        """A builder that appends to a copy of ``graph``'s lists (the nodes are shared)."""
        b = cls(graph.name)
        b.inputs = list(graph.inputs)
        b.nodes = list(graph.nodes)
        b.outputs = list(graph.outputs)
        b.writes = list(graph.writes)
        b._names = {n.name for n in (*graph.inputs, *graph.nodes)}
        return b

    # -- names --------------------------------------------------------------
    def unique_name(self, hint: str | None = None) -> str:
        """A name not yet used in this graph: ``hint`` itself if free, else ``hint_N`` (or ``N``)."""
        if hint and hint not in self._names:
            return hint
        while True:
            name = f"{hint}_{next(self._counter)}" if hint else str(next(self._counter))
            if name not in self._names:
                return name

    def fresh_name(self, hint: str | None = None) -> str:
        """Reserve and return a unique name."""
        name = self.unique_name(hint)
        self._names.add(name)
        return name

    # -- building -----------------------------------------------------------
    def input(self, name: str, type: "TensorType | str", tag: str = "data") -> Node:
        if tag not in INPUT_TAGS:
            raise ValueError(f"input tag {tag!r} is not one of {', '.join(INPUT_TAGS)}")
        if name in self._names:
            raise ValueError(f"graph {self.name} already has a value named %{name}")
        self._names.add(name)
        node = Node(name, "input", (), {}, parse_type(type), tag=tag)
        self.inputs.append(node)
        return node

    def op(self, op: str, *inputs, name: str | None = None, **attrs) -> Node:
        nodes = self._as_nodes(inputs)
        canonical, out_type = infer_node(op, [n.type for n in nodes], attrs)
        node = Node(self.fresh_name(name), op, nodes, canonical, out_type, loc=self.loc)
        self.nodes.append(node)
        return node

    def scalar(self, value: Number, dtype: DType) -> Node:
        """A rank-0 constant; the value is converted to the dtype's Python kind so equal constants compare equal."""
        if dtype.is_float:
            value = float(value)
        elif dtype == bool_:
            value = bool(value)
        else:
            value = int(value)
        return self.op("full", shape=(), dtype=dtype, value=value)

    def output(self, *values: Node) -> None:
        self.outputs.extend(values)

    def write(self, target: Node, value: Node) -> None:
        self.writes.append((target, value))

    def build(self, check: bool = True) -> Graph:
        graph = Graph(self.name, self.inputs, self.nodes, self.outputs, self.writes)
        if check:
            verify(graph)
        return graph

    def _as_nodes(self, inputs) -> list[Node]:
        # Numbers take the dtype of the first non-bool tensor operand (in where(cond, g, 0), g's).
        tensors = [i for i in inputs if isinstance(i, Node)]
        dtype = next((t.dtype for t in tensors if t.dtype != bool_), tensors[0].dtype if tensors else None)
        nodes = []
        for value in inputs:
            if isinstance(value, Node):
                nodes.append(value)
            elif isinstance(value, Number) and dtype is not None:
                nodes.append(self.scalar(value, dtype))
            else:
                raise TypeError(f"graph values must be Nodes (or numbers beside a Node), got {value!r}")
        return nodes

    def __getattr__(self, op: str):
        if op.startswith("_") or op not in OPS:
            raise AttributeError(f"GraphBuilder has no attribute or op {op!r}")
        return lambda *inputs, **attrs: self.op(op, *inputs, **attrs)
