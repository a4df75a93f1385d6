"""Checks shared by the pass tests: a pass must not change what a graph computes."""
from __future__ import annotations

import numpy as np

from graphc.backends.reference import run_graph


def random_inputs(graph, seed: int = 0, int_high: int = 4) -> dict[str, np.ndarray]:
    """Normal samples for float inputs; integers in [0, int_high) (random keys, indices) for the others."""
    rng = np.random.default_rng(seed)
    return {n.name: (rng.standard_normal(n.shape) if n.dtype.is_float else rng.integers(0, int_high, n.shape)
                     ).astype(n.dtype.numpy) for n in graph.inputs}


def assert_same_results(first, second, inputs=None, seed: int = 0) -> None:
    """Bit for bit the same outputs and write-backs from both graphs (on random inputs by default)."""
    inputs = random_inputs(first, seed) if inputs is None else inputs
    expected, actual = run_graph(first, inputs), run_graph(second, inputs)
    assert len(expected.outputs) == len(actual.outputs)
    for want, got in zip(expected.outputs, actual.outputs):
        np.testing.assert_array_equal(got, want)
    assert expected.writes.keys() == actual.writes.keys()
    for name, want in expected.writes.items():
        np.testing.assert_array_equal(actual.writes[name], want)
