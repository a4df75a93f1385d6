"""What every backend's executable offers, written down once.

A backend turns a planned graph into an ``Executable``.  ``run`` takes the
graph's inputs (numpy arrays, by name or in order) and returns a
``RunResult``: the returned values and the new value of every written-back
state.  ``run(..., in_place=True)`` may instead update the state arrays it was
given (and then returns those very arrays as the new values): a compiled
training step then never copies its parameters; a failing run still leaves
them as they were.  ``output_of`` is one of ``run``'s returned values alone,
for a program that writes no state: the hot path of a compiled function of
its arguments, which a backend may take with less around it.  ``profile`` times
every kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, Union

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Graph, Node
from graphc.kernel.ir import Program

from .profile import Profile

Inputs = Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]   # by input name, or in input order


@dataclass(slots=True)
class RunResult:
    outputs: list[np.ndarray]
    writes: dict[str, np.ndarray]     # state input name -> its new value


class Executable(Protocol):
    graph: Graph

    def run(self, inputs: Inputs, in_place: bool = False) -> RunResult: ...

    def output_of(self, inputs: list[np.ndarray], index: int) -> np.ndarray: ...

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


def written_before_last_check(program: Program, kernels: Sequence) -> list[str]:
    """The states that ``kernels`` (the program's, in run order: Kernels, or what a backend keeps
    of them, each with its ``outputs`` and ``has_checks``) write into directly up to the last one
    that checks data-dependent indices: those a failing step could have changed before it
    stopped, so they are saved before a step and put back when it fails."""
    checking = [i for i, kernel in enumerate(kernels) if kernel.has_checks]
    if not checking:
        return []
    states = []
    for kernel in kernels[:checking[-1] + 1]:
        for name in kernel.outputs:
            buffer = program.buffers[name]
            if buffer.place == "state":
                states.append(buffer.source)
    return list(dict.fromkeys(states))
