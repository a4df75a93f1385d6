"""The gemm pass: each rewrite happens where it should, nowhere else, and keeps every result
(up to rounding: sums run in another order), on the reference backend and compiled."""
import numpy as np
import pytest
from graph_checks import random_inputs
from optest import run_compiled

from graphc.backends.reference import run_graph
from graphc.ir.text import parse_graph
from graphc.passes.gemm import gemm
from graphc.passes.manager import PassManager, default_pipeline


def assert_same_results(graph, rewritten) -> None:
    inputs = random_inputs(graph)
    (want,) = run_graph(graph, inputs).outputs
    for got in (run_graph(rewritten, inputs).outputs[0], run_compiled("llvm", rewritten, inputs).outputs[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def ops(graph) -> list[str]:
    return [node.op for node in graph.nodes]


def test_a_convolution_becomes_a_product_over_unfolded_windows():
    graph = parse_graph("""graph g(%x: f32[2,3,8,8] data, %w: f32[16,3,3,3] param) {
      %y = conv2d(%x, %w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=1} : f32[2,16,8,8]
      return %y
    }""")
    rewritten = gemm(graph)
    assert ops(rewritten) == ["reshape", "unfold", "matmul", "reshape"]
    assert_same_results(graph, rewritten)


def test_few_channels_and_groups_keep_the_direct_convolution():
    graph = parse_graph("""graph g(%x: f32[2,4,8,8] data, %w: f32[3,4,3,3] param, %v: f32[16,2,3,3] param) {
      %y = conv2d(%x, %w) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[2,3,6,6]
      %z = conv2d(%x, %v) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=2} : f32[2,16,6,6]
      return %y, %z
    }""")
    assert ops(gemm(graph)) == ["conv2d", "conv2d"]


@pytest.mark.parametrize("channels,layout,shape", [(17, "taps_first", (27, 2, 16)), (16, "taps_last", (2, 16, 27)),
                                                    (5, "taps_last", (2, 16, 27))])
def test_a_weight_gradient_contracts_the_whole_batch_at_once(channels, layout, shape):
    """Taps first, the product's rows are the taps and its lanes the output channels; with no more
    channels than an AVX2 tile's lanes, the rows are the channels and the lanes the taps."""
    graph = parse_graph(f"""graph g(%x: f32[2,3,8,8] data, %gy: f32[2,{channels},4,4] data) {{
      %gw = conv2d_weight_grad(%x, %gy) {{stride=[2,2], padding=[1,1], dilation=[1,1], groups=1, kernel_size=[3,3]}} : f32[{channels},3,3,3]
      return %gw
    }}""")
    rewritten = gemm(graph)
    assert "conv2d_weight_grad" not in ops(rewritten)
    (unfold,) = [node for node in rewritten.nodes if node.op == "unfold"]
    assert unfold.attrs["layout"] == layout and unfold.shape == shape
    assert_same_results(graph, rewritten)


def test_a_transposed_convolution_folds_a_product():
    graph = parse_graph("""graph g(%x: f32[2,6,4,4] data, %w: f32[6,3,4,4] param) {
      %y = conv_transpose2d(%x, %w) {stride=[2,2], padding=[1,1], dilation=[1,1], groups=1, output_padding=[0,0]} : f32[2,3,8,8]
      return %y
    }""")
    rewritten = gemm(graph)
    assert ops(rewritten)[-2:] == ["matmul", "fold"]
    assert_same_results(graph, rewritten)


def test_a_transposed_product_becomes_a_product_of_transposes():
    graph = parse_graph("""graph g(%x: f32[4,6] data, %g: f32[4,3] data) {
      %xt = permute(%x) {dims=[1,0]} : f32[6,4]
      %p = matmul(%xt, %g) : f32[6,3]
      %gw = permute(%p) {dims=[1,0]} : f32[3,6]
      return %gw
    }""")
    rewritten = gemm(graph)
    assert ops(rewritten)[-1] == "matmul"
    assert_same_results(graph, rewritten)


def test_a_wide_transposed_weight_is_not_transposed_but_the_batch_is():
    wide = """graph g(%x: f32[2,8] data, %w: f32[131072,8] param) {
      %wt = permute(%w) {dims=[1,0]} : f32[8,131072]
      %y = matmul(%x, %wt) : f32[2,131072]
      return %y
    }"""
    graph = parse_graph(wide)
    rewritten = gemm(graph)
    assert ops(rewritten) == ["permute", "matmul", "permute"]         # x^T, W x^T, its transpose
    product = rewritten.nodes[1]
    assert product.inputs[0].name == "w" and product.shape == (131072, 2)
    assert_same_results(graph, rewritten)
    # A weight smaller than the batch and the result, or small, is cheaper to transpose: left alone.
    narrow = parse_graph(wide.replace("f32[2,8] data", "f32[65536,8] data").replace("f32[2,131072]", "f32[65536,131072]"))
    assert ops(gemm(narrow)) == ["permute", "matmul"]
    small = parse_graph(wide.replace("131072", "40").replace("f32[2,8] data", "f32[9,8] data").replace("f32[2,40]", "f32[9,40]"))
    assert ops(gemm(small)) == ["permute", "matmul"]
    # So is a Linear layer's at a small batch, whose outputs are dot products of x's and W's rows
    # (graphc.ops.linalg.computes_dot_products): the product reads W^T as W, no copy made.
    few = parse_graph(wide.replace("131072", "120").replace(",8]", ",400]").replace("[8,", "[400,"))
    assert ops(gemm(few)) == ["permute", "matmul"]
    fused = PassManager(default_pipeline(training=False)).run(few)
    assert [node.op for node in fused.nodes] == ["fused"]             # the permute read as a view
    assert_same_results(few, gemm(few))


def test_images_of_ragged_pixel_counts_are_convolved_as_one_batch():
    """7x7 outputs (49 pixels: a sliver past a tile's columns) take one product over the batch's
    pixels, stored back image by image: forward and transposed."""
    graph = parse_graph("""graph g(%x: f32[2,4,9,9] data, %w: f32[16,4,3,3] param, %v: f32[16,8,3,3] param) {
      %y = conv2d(%x, %w) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[2,16,7,7]
      %z = conv_transpose2d(%y, %v) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=1, output_padding=[0,0]} : f32[2,8,7,7]
      return %y, %z
    }""")
    rewritten = gemm(graph)
    products = [node for node in rewritten.nodes if node.op == "matmul"]
    assert [p.shape for p in products] == [(16, 2 * 49), (8 * 9, 2 * 49)]
    (unfold,) = [node for node in rewritten.nodes if node.op == "unfold"]
    assert unfold.attrs["layout"] == "taps_first"
    inputs = random_inputs(graph)
    for got, want in zip(run_compiled("llvm", rewritten, inputs).outputs, run_graph(graph, inputs).outputs):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
