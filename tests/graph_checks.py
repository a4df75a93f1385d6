"""Checks shared by the pass tests: a pass must not change what a graph computes.

The transformed graph also runs compiled on each compiled backend but OpenCL (``optest.COMPILED_BACKENDS``),
which must agree with the reference: so every fusion pattern the pass tests build is a backend test too.
"""
from __future__ import annotations

import numpy as np

from graphc.backends.reference import run_graph
from optest import COMPILED_BACKENDS, run_compiled

# Whole graphs on unscaled random inputs sum long runs of large, cancelling terms: added in another
# order, a pre-activation near zero can change sign and flip a ReLU mask or a max-pool pick, moving a
# few elements of a gradient.  So floats compare by relative norm, loosely; the example models, with
# their real initialisation, are held to the op tolerance in tests/backends/test_llvm.py.
GRAPH_TOLERANCE = {"float32": 1e-3, "float64": 1e-10}


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
    # Not on OpenCL: PoCL takes about a second to build such a graph, and the OpenCL renderer reads the
    # same kernel IR as LLVM's, which the op suite checks on OpenCL primitive by primitive.
    for backend in [name for name in COMPILED_BACKENDS if name != "opencl"]:
        compiled = run_compiled(backend, second, inputs)
        for i, (want, got) in enumerate(zip(expected.outputs, compiled.outputs, strict=True)):
            _assert_close(f"{backend} {second.name} output {i}", got, want)
        for name, want in expected.writes.items():
            _assert_close(f"{backend} {second.name} write-back {name}", compiled.writes[name], want)


def _assert_close(what: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    finite = np.isfinite(want)
    # NaN and infinities must be the same values in the same places; the rest compares by norm.
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=f"{what}: non-finite values")
    error = np.linalg.norm(got[finite].astype(np.float64) - want[finite].astype(np.float64))
    size = np.linalg.norm(want[finite].astype(np.float64))
    assert error <= GRAPH_TOLERANCE[want.dtype.name] * max(size, 1.0), f"{what}: relative error {error / max(size, 1.0):.2e}"
