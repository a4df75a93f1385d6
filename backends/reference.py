"""The reference backend: run any verified graph op by op on numpy.

It is the semantic oracle for every other backend, so it favours plainness:
each node calls its op's numpy reference from the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Graph, Node
from graphc.ops.registry import run_reference


@dataclass
class RunResult:
    outputs: list[np.ndarray]
    writes: dict[str, np.ndarray]     # state input name -> its new value


def bind_inputs(graph: Graph, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]") -> dict[Node, np.ndarray]:
    """Match arrays to the graph's inputs (by name or position), checking shape and dtype."""
    if not isinstance(inputs, Mapping):
        if len(inputs) != len(graph.inputs):
            raise ShapeError(f"graph {graph.name} takes {len(graph.inputs)} inputs, got {len(inputs)}")
        inputs = {n.name: a for n, a in zip(graph.inputs, inputs)}
    missing = [n.name for n in graph.inputs if n.name not in inputs]
    if missing:
        raise ShapeError(f"graph {graph.name}: no value given for input(s) {', '.join('%' + m for m in missing)}")
    env: dict[Node, np.ndarray] = {}
    for node in graph.inputs:
        array = np.asarray(inputs[node.name])
        if array.shape != node.type.shape or array.dtype != node.type.dtype.numpy:
            raise ShapeError(f"graph {graph.name}: input %{node.name} expects {node.type}, "
                             f"got an array of shape {list(array.shape)} and dtype {array.dtype}")
        env[node] = array
    return env


def evaluate_nodes(nodes: Sequence[Node], env: dict[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Compute ``nodes`` in order, reading their inputs from (and adding them to) ``env``."""
    for node in nodes:
        env[node] = run_reference(node.op, [env[i] for i in node.inputs], node.attrs, node.type)
    return env


def evaluate(graph: Graph, env: dict[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Compute every node of ``graph`` given its bound inputs; returns the extended env."""
    return evaluate_nodes(graph.nodes, env)


def run_graph(graph: Graph, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]") -> RunResult:
    """Run ``graph`` on numpy arrays, given by input name or in input order."""
    env = evaluate(graph, bind_inputs(graph, inputs))
    return RunResult(outputs=[env[n] for n in graph.outputs],
                     writes={t.name: env[v] for t, v in graph.writes})


class ReferenceExecutable:
    """A graph bound to the reference interpreter: the oracle every compiled backend is checked against."""

    def __init__(self, graph: Graph):
        self.graph = graph

    def run(self, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]") -> RunResult:
        return run_graph(self.graph, inputs)


def build_executable(graph: Graph) -> ReferenceExecutable:
    return ReferenceExecutable(graph)
