"""The reference backend: run any verified graph op by op on numpy.

It is the semantic oracle for every other backend, so it favours plainness:
each node calls its op's numpy reference from the registry.
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from graphc.ir.graph import Graph, Node
from graphc.evaluator import evaluate, run_node
from graphc.ops.fused import kernel_outputs

from .executable import RunResult, bind_inputs
from .profile import KernelTiming, Profile, describe_kernel


def run_graph(graph: Graph, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]") -> RunResult:
    """Run ``graph`` on numpy arrays, given by input name or in input order."""
    env = evaluate(graph, bind_inputs(graph, inputs))
    return RunResult(outputs=[env[n] for n in graph.outputs],
                     writes={t.name: env[v] for t, v in graph.writes})


def run_in_arena(graph: Graph, plan, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]",
                 seconds: "dict[Node, float] | None" = None) -> RunResult:
    """Run ``graph`` keeping every value where ``plan`` puts it, as a compiled backend must.

    Kernel outputs live in one byte arena at their planned offsets, so a plan
    that lets two live values share bytes corrupts the results; a write-back
    value donated its state's storage is written into that state's array (a
    copy of the caller's, so a failing step changes nothing), where later
    readers of the old state would see it.  Scalar constants are not kernels
    and stay outside.  Returns fresh arrays, like ``run_graph``.  Given ``seconds``, adds each
    node's run time (storing included) to its entry.
    """
    env = bind_inputs(graph, inputs)
    state = {node.name: np.array(env[node]) for node, _ in graph.writes}
    for node in graph.inputs:
        if node.name in state:
            env[node] = state[node.name]
    arena = np.zeros(plan.arena_bytes, np.uint8)
    slots = {slot.name: slot for slot in plan.buffers}
    for node in graph.nodes:
        start = time.perf_counter() if seconds is not None else 0.0
        value = run_node(node, env)
        slot = slots.get(node.name)
        if slot is None:                 # a scalar constant or a multi-output kernel: no buffer of its own
            env[node] = value
        else:
            storage = state[slot.into_state] if slot.into_state else \
                arena[slot.offset:slot.offset + slot.size].view(node.dtype.numpy).reshape(node.shape)
            np.copyto(storage, value)
            env[node] = storage
        if seconds is not None:
            seconds[node] = seconds.get(node, 0.0) + time.perf_counter() - start
    return RunResult(outputs=[np.array(env[n]) for n in graph.outputs],
                     writes={t.name: np.array(env[v]) for t, v in graph.writes})


class ReferenceExecutable:
    """A graph bound to the reference interpreter: the oracle every compiled backend is checked
    against.  Given a memory plan, it runs through that plan's arena (``run_in_arena``)."""

    def __init__(self, graph: Graph, plan=None):
        """``plan``: the graph's MemoryPlan (from graphc.passes.memory), or None to run without an arena."""
        self.graph = graph
        self.plan = plan

    def run(self, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]", in_place: bool = False) -> RunResult:
        """Run the graph; it never changes ``inputs`` (``in_place`` is accepted, as every
        executable accepts it, and the new state values are returned for the caller to store)."""
        if self.plan is None:
            return run_graph(self.graph, inputs)
        return run_in_arena(self.graph, self.plan, inputs)

    def output_of(self, inputs: list[np.ndarray], index: int) -> np.ndarray:
        return self.run(inputs).outputs[index]

    def kernels(self) -> list[Node]:
        """The graph's kernel nodes in run order (the reference backend interprets them)."""
        return list(kernel_outputs(self.graph))

    def profile(self, inputs: "Mapping[str, np.ndarray] | Sequence[np.ndarray]", runs: int = 3) -> Profile:
        """Run the graph ``runs`` times through its arena and time every kernel (the best run each).

        A multi-output kernel's time includes storing its outputs (its ``tuple_get`` nodes).
        """
        outputs = kernel_outputs(self.graph)
        stored_by = {value: kernel for kernel, values in outputs.items() for value in values}
        best: dict[Node, float] = {}
        for _ in range(max(1, runs)):
            seconds: dict[Node, float] = {}
            if self.plan is not None:
                run_in_arena(self.graph, self.plan, inputs, seconds)
            else:
                _timed_run(self.graph, inputs, seconds)
            per_kernel: dict[Node, float] = {}
            for node, spent in seconds.items():
                kernel = stored_by.get(node, node)
                if kernel in outputs:
                    per_kernel[kernel] = per_kernel.get(kernel, 0.0) + spent
            for kernel, spent in per_kernel.items():
                best[kernel] = min(spent, best.get(kernel, spent))
        timings = [KernelTiming(kernel.name, describe_kernel(kernel),
                                sum(value.type.nbytes for value in values), best[kernel])
                   for kernel, values in outputs.items()]
        return Profile(self.graph.name, timings, max(1, runs))


def _timed_run(graph: Graph, inputs, seconds: dict[Node, float]) -> None:
    env = bind_inputs(graph, inputs)
    for node in graph.nodes:
        start = time.perf_counter()
        env[node] = run_node(node, env)
        seconds[node] = seconds.get(node, 0.0) + time.perf_counter() - start


def build_executable(graph: Graph, plan=None) -> ReferenceExecutable:
    return ReferenceExecutable(graph, plan)
