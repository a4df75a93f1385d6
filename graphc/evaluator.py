"""Evaluating graph nodes with their ops' numpy references, one after another.

The semantics every backend is held to.  The reference backend runs whole
graphs with it, and the frontend's eager ``backward()`` evaluates the
gradient nodes that autodiff built with it, so eager and compiled gradients
come from one rule.  It sits below both (DESIGN.md: the frontend never
imports a backend).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .ir.graph import Graph, Node
from .ops.registry import run_reference


def run_node(node: Node, env: dict[Node, np.ndarray]) -> np.ndarray:
    """``node``'s value from its inputs' values in ``env``.  A value the op cannot take (an index
    out of range) raises the op's error with the node and the user's source line added."""
    try:
        return run_reference(node.op, [env[i] for i in node.inputs], node.attrs, node.type)
    except (IndexError, ValueError) as err:
        where = f" at {node.loc}" if node.loc else ""
        raise type(err)(f"{err} (while running %{node.name}{where})") from None


def evaluate_nodes(nodes: Sequence[Node], env: dict[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Compute ``nodes`` in order, reading their inputs from (and adding them to) ``env``."""
    for node in nodes:
        env[node] = run_node(node, env)
    return env


def evaluate(graph: Graph, env: dict[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Compute every node of ``graph`` given its bound inputs; returns the extended env."""
    return evaluate_nodes(graph.nodes, env)
