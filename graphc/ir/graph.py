"""The graph IR: SSA values (Node), their graph (Graph), and the verifier.

A Graph holds its inputs (placeholders tagged data/param/buffer/state), its
nodes in topological order, the values it returns and the values it writes
back into state inputs.  Every value is a Node with one result of a static
type: a TensorType, or, for a kernel with several outputs (a ``fused`` node
whose body returns several values), a TupleType whose elements only
``tuple_get`` nodes read.  Nodes compare by identity; graphs compare by
structure (``g1 == g2`` when their names, ops, attributes, types and wiring
agree).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..errors import GraphcError, VerifyError
from .types import TensorType, TupleType

INPUT_TAGS = ("data", "param", "buffer", "state")
# Only these inputs may be written back: a data input is the caller's, not ours.
WRITABLE_TAGS = ("param", "buffer", "state")


@dataclass(frozen=True)
class SourceLoc:
    """Where in the user's code a node was created."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Node:
    """One SSA value: an op applied to earlier values, or a graph input.

    Graph inputs have ``op == "input"`` and a ``tag``; every other node names a
    registered primitive in ``op``.
    """
    __slots__ = ("name", "op", "inputs", "attrs", "type", "loc", "tag")

    def __init__(self, name: str, op: str, inputs: Iterable["Node"], attrs: dict[str, Any],
                 type: TensorType, loc: SourceLoc | None = None, tag: str | None = None):
        self.name = name
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs)
        self.type = type
        self.loc = loc
        self.tag = tag

    @property
    def is_input(self) -> bool:
        return self.op == "input"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self) -> str:
        if self.is_input:
            return f"<input %{self.name}: {self.type} {self.tag}>"
        args = ", ".join(f"%{i.name}" for i in self.inputs)
        return f"<%{self.name} = {self.op}({args}) : {self.type}>"


class Graph:
    """A named function from its inputs to its outputs and state write-backs."""

    def __init__(self, name: str, inputs: list[Node], nodes: list[Node],
                 outputs: list[Node], writes: list[tuple[Node, Node]] | None = None):
        self.name = name
        self.inputs = list(inputs)
        self.nodes = list(nodes)
        self.outputs = list(outputs)
        self.writes = list(writes or [])

    # -- lookup -------------------------------------------------------------
    def input(self, name: str) -> Node:
        for node in self.inputs:
            if node.name == name:
                return node
        raise KeyError(f"graph {self.name} has no input %{name}")

    def inputs_tagged(self, tag: str) -> list[Node]:
        return [n for n in self.inputs if n.tag == tag]

    def users(self) -> dict[Node, list[Node]]:
        """Each value's consuming nodes, in graph order."""
        users: dict[Node, list[Node]] = {n: [] for n in (*self.inputs, *self.nodes)}
        for node in self.nodes:
            for inp in node.inputs:
                users[inp].append(node)
        return users

    # -- printing and comparison -------------------------------------------
    def __str__(self) -> str:
        from .text import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"

    def to_networkx(self):
        from .viz import to_networkx
        return to_networkx(self)

    def to_dot(self) -> str:
        from .viz import to_dot
        return to_dot(self)

    def verify(self) -> "Graph":
        verify(self)
        return self

    def _signature(self) -> tuple:
        return (
            self.name,
            tuple((n.name, n.type, n.tag) for n in self.inputs),
            tuple((n.name, n.op, tuple(i.name for i in n.inputs), attrs_key(n.attrs), n.type, n.loc)
                  for n in self.nodes),
            tuple(n.name for n in self.outputs),
            tuple((t.name, v.name) for t, v in self.writes),
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Graph) and self._signature() == other._signature()

    __hash__ = None


def unused_name(name: str, taken: "set[str] | frozenset[str]") -> str:
    """``name``, or ``name2``, ``name3``, ... whichever is first not in ``taken``."""
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{name}{count}"
    return candidate


def attrs_key(attrs: dict[str, Any]) -> tuple:
    """A comparable, hashable form of an attribute dict (used by ==, CSE, caches)."""
    return tuple(sorted((k, _attr_key(v)) for k, v in attrs.items()))


def _attr_key(value):
    """A comparable, hashable form of an attribute value."""
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, Graph):
        return ("graph", value._signature())
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    if isinstance(value, float):
        if value != value:
            return ("nan",)
        # 0.0 == -0.0, but a full of -0.0 is another constant (x + -0.0 keeps x's sign; x + 0.0 does not).
        return ("float", value, math.copysign(1.0, value))
    return (type(value).__name__, value)


def verify(graph: Graph, typed: "dict[Node, tuple] | None" = None) -> None:
    """Check the IR's invariants; raise VerifyError naming the first broken one.

    SSA (each name defined once), topological order (no use before def),
    every node's type equal to its op's shape rule, outputs defined, and
    write-backs targeting writable inputs with the value's exact type.

    ``typed`` remembers the nodes whose type and attributes were checked, with the inputs and
    type they had: a pass manager verifying graph after graph, each mostly the nodes of the
    one before, checks each node's type once (nodes are never changed in place).
    """
    from ..ops.registry import infer_node

    def fail(msg: str):
        raise VerifyError(f"graph {graph.name}: {msg}")

    defined: set[Node] = set()
    names: set[str] = set()

    for node in graph.inputs:
        if not node.is_input:
            fail(f"%{node.name} is listed as an input but is a {node.op} node")
        if node.tag not in INPUT_TAGS:
            fail(f"input %{node.name} has tag {node.tag!r}; expected one of {', '.join(INPUT_TAGS)}")
        if node.name in names:
            fail(f"%{node.name} is defined twice")
        names.add(node.name)
        defined.add(node)

    for node in graph.nodes:
        if node.is_input:
            fail(f"input %{node.name} appears among the nodes; inputs belong in the signature")
        if node.name in names:
            fail(f"%{node.name} is defined twice")
        for inp in node.inputs:
            if inp not in defined:
                where = "later in the graph" if any(inp is n for n in graph.nodes) else "nowhere in the graph"
                fail(f"%{node.name} = {node.op}(...) uses %{inp.name} before it is defined "
                     f"(%{inp.name} is defined {where})")
        known = typed.get(node) if typed is not None else None
        if known is None or known[0] is not node.inputs or known[1] is not node.type:
            try:
                attrs, expected = infer_node(node.op, [i.type for i in node.inputs], node.attrs)
            except GraphcError as err:
                fail(f"%{node.name}: {err}")
            if expected != node.type:
                fail(f"%{node.name} = {node.op}(...) is typed {node.type} but its inputs give {expected}")
            if attrs_key(attrs) != attrs_key(node.attrs):
                fail(f"%{node.name} = {node.op}(...) has non-canonical attributes {node.attrs}; expected {attrs}")
            if typed is not None:
                typed[node] = (node.inputs, node.type)
        if isinstance(node.type, TupleType) and node.op != "fused":
            fail(f"%{node.name} = {node.op}(...) has the tuple type {node.type}; only a fused kernel has several outputs")
        names.add(node.name)
        defined.add(node)

    for out in graph.outputs:
        if out not in defined:
            fail(f"output %{out.name} is not defined in the graph (dangling output)")
        if isinstance(out.type, TupleType):
            fail(f"output %{out.name} is a tuple {out.type}; return its elements (tuple_get) instead")

    written: set[Node] = set()
    for target, value in graph.writes:
        if not target.is_input or target not in defined:
            fail(f"write-back target %{target.name} is not an input of the graph")
        if target.tag not in WRITABLE_TAGS:
            fail(f"write-back target %{target.name} is a {target.tag} input; only "
                 f"{', '.join(WRITABLE_TAGS)} inputs can be written back")
        if value not in defined:
            fail(f"write-back value %{value.name} for %{target.name} is not defined in the graph")
        if value.type != target.type:
            fail(f"write-back of %{value.name} ({value.type}) into %{target.name} ({target.type}): types differ")
        if target in written:
            fail(f"%{target.name} is written back twice")
        written.add(target)
