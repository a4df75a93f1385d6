"""The reference backend: runs any verified graph on numpy and checks what it is given."""
import numpy as np
import pytest

from graphc.backends.reference import build_executable, run_graph
from graphc.backends.registry import available_backends, get_backend
from graphc.errors import BackendError, ShapeError
from graphc.ir import GraphBuilder, parse_graph

SGD_STEP = """
graph sgd(%x: f32[2,3] data, %w: f32[3] param) {
  %1 = mul(%x, %w) : f32[2,3]
  %2 = sum(%1) {axes=[0,1], keepdims=false} : f32[]
  %3 = full() {shape=[], dtype=f32, value=0.5} : f32[]
  %4 = mul(%w, %3) : f32[3]
  return %2, write(%w, %4)
}
"""


def test_runs_a_graph_given_inputs_by_name_or_position_and_returns_write_backs():
    graph = parse_graph(SGD_STEP)
    x, w = np.ones((2, 3), np.float32), np.array([1, 2, 3], np.float32)
    for inputs in ({"x": x, "w": w}, [x, w]):
        result = run_graph(graph, inputs)
        assert result.outputs[0] == pytest.approx(12.0)
        np.testing.assert_array_equal(result.writes["w"], [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(w, [1, 2, 3])      # the caller's arrays are not touched


def test_wrong_inputs_are_clear_shape_errors():
    graph = parse_graph(SGD_STEP)
    x, w = np.ones((2, 3), np.float32), np.ones(3, np.float32)
    with pytest.raises(ShapeError, match=r"input %x expects f32\[2,3\], got an array of shape \[3, 2\]"):
        run_graph(graph, {"x": x.T, "w": w})
    with pytest.raises(ShapeError, match=r"input %w expects f32\[3\], got .* dtype float64"):
        run_graph(graph, {"x": x, "w": w.astype(np.float64)})
    with pytest.raises(ShapeError, match=r"no value given for input\(s\) %w"):
        run_graph(graph, {"x": x})
    with pytest.raises(ShapeError, match="takes 2 inputs, got 1"):
        run_graph(graph, [x])


def test_the_executable_and_the_backend_registry():
    b = GraphBuilder("double")
    x = b.input("x", "f32[4]")
    b.output(b.add(x, x))
    executable = build_executable(b.build())
    np.testing.assert_array_equal(executable.run([np.arange(4, dtype=np.float32)]).outputs[0], [0, 2, 4, 6])
    assert "reference" in available_backends()
    assert get_backend("reference").build_executable is build_executable
    with pytest.raises(BackendError, match="unknown backend 'cuda'; available: llvm, (opencl, )?reference"):
        get_backend("cuda")
