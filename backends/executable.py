"""What every backend's executable offers, written down once.

A backend turns a planned graph into an ``Executable``.  ``run`` takes the
graph's inputs (numpy arrays, by name or in order) and returns a
``RunResult``: the returned values and the new value of every written-back
state.  ``run(..., in_place=True)`` may instead update the state arrays it was
given (and then returns those very arrays as the new values): a compiled
training step then never copies its parameters; a failing run still leaves
them as they were.  ``profile`` times every kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, Union

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Graph, Node

from .profile import Profile

Inputs = Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]   # by input name, or in input order


@dataclass
class RunResult:
    outputs: list[np.ndarray]
    writes: dict[str, np.ndarray]     # state input name -> its new value


class Executable(Protocol):
    graph: Graph

    def run(self, inputs: Inputs, in_place: bool = False) -> RunResult: ...

    def profile(self, inputs: Inputs, runs: int = 3) -> Profile: ...

    def kernels(self) -> list: ...


def bind_inputs(graph: Graph, inputs: Inputs) -> dict[Node, np.ndarray]:
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
