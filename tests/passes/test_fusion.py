"""Fusion: which primitives become one kernel, and that fusing never changes a result."""
import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphc.errors import GraphcError, ParseError, ShapeError
from graphc.ir import GraphBuilder, parse_graph, print_graph
from graphc.ir.viz import to_dot
from graphc.ops.registry import infer_node
from graphc.passes.fusion import (DUPLICABLE, FusionReport, classify, count_kernels, find_groups, fuse,
                                  fusion_report)
from graphc.passes.manager import PassManager, get_pass
from graph_checks import assert_same_results


def fused_nodes(graph):
    return [node for node in graph.nodes if node.op == "fused"]


def kinds(graph):
    return [node.attrs["kind"] if node.op == "fused" else node.op for node in graph.nodes]


def body_ops(node):
    return [n.op for n in node.attrs["body"].nodes]


# -- expected groupings on hand-written graphs --------------------------------------------

CONV_BLOCK = """graph conv_block(%x: f32[2,3,8,8] data, %w: f32[4,3,3,3] param, %b: f32[4] param) {
  %conv = conv2d(%x, %w) : f32[2,4,6,6]
  %b4 = reshape(%b) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %biased = add(%conv, %b4) : f32[2,4,6,6]
  %y = relu(%biased) : f32[2,4,6,6]
  return %y
}"""

CONV_BLOCK_FUSED = """graph conv_block(%x: f32[2,3,8,8] data, %w: f32[4,3,3,3] param, %b: f32[4] param) {
  %y = fused(%x, %w, %b) {kind="contraction"} : f32[2,4,6,6] {
    graph fused_y(%x: f32[2,3,8,8] data, %w: f32[4,3,3,3] data, %b: f32[4] data)
    %conv = conv2d(%x, %w) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[2,4,6,6]
    %b4 = reshape(%b) {shape=[1,4,1,1]} : f32[1,4,1,1]
    %biased = add(%conv, %b4) : f32[2,4,6,6]
    %y = relu(%biased) : f32[2,4,6,6]
    return %y
  }
  return %y
}"""


def test_bias_and_relu_fuse_into_the_convolution():
    graph = parse_graph(CONV_BLOCK)
    fused = fuse(graph)
    assert print_graph(fused) == CONV_BLOCK_FUSED
    assert_same_results(graph, fused)


LINEAR_BLOCK = """graph linear_block(%x: f32[4,8] data, %w: f32[8,8] param, %b: f32[8] param) {
  %mm = matmul(%x, %w) : f32[4,8]
  %h = add(%mm, %b) : f32[4,8]
  %r = add(%h, %x) : f32[4,8]
  %zero = full() {shape=[], dtype=f32, value=0.0} : f32[]
  %pos = gt(%r, %zero) : bool[4,8]
  %slope = full() {shape=[], dtype=f32, value=0.2} : f32[]
  %neg = mul(%r, %slope) : f32[4,8]
  %y = where(%pos, %r, %neg) : f32[4,8]
  return %y
}"""


def test_bias_residual_and_leaky_relu_fuse_into_the_matmul():
    graph = parse_graph(LINEAR_BLOCK)
    fused = fuse(graph)
    assert kinds(fused) == ["contraction"]
    assert body_ops(fused.nodes[0]) == ["matmul", "add", "add", "full", "gt", "full", "mul", "where"]
    assert [i.name for i in fused.nodes[0].inputs] == ["x", "w", "b"]
    assert_same_results(graph, fused)


SOFTMAX = """graph softmax(%x: f32[4,10] data) {
  %m = max(%x) {axes=[1], keepdims=true} : f32[4,1]
  %d = sub(%x, %m) : f32[4,10]
  %e = exp(%d) : f32[4,10]
  %s = sum(%e) {axes=[1], keepdims=true} : f32[4,1]
  %p = div(%e, %s) : f32[4,10]
  return %p
}"""


LINEAR_TRAINING = """graph linear(%x: f32[4,6] data, %w: f32[3,6] param, %g: f32[4,3] data, %buf: f32[3,6] state) {
  %wt = permute(%w) {dims=[1,0]} : f32[6,3]
  %y = matmul(%x, %wt) : f32[4,3]
  %xt = permute(%x) {dims=[1,0]} : f32[6,4]
  %gwt = matmul(%xt, %g) : f32[6,3]
  %gw = permute(%gwt) {dims=[1,0]} : f32[3,6]
  %m = full() {shape=[], dtype=f32, value=0.9} : f32[]
  %decayed = mul(%buf, %m) : f32[3,6]
  %new_buf = add(%decayed, %gw) : f32[3,6]
  return %y, write(%buf, %new_buf)
}"""


def test_a_matmul_reads_its_left_operand_through_a_transpose_and_writes_through_one():
    graph = parse_graph(LINEAR_TRAINING)
    fused = fuse(graph)
    # The weight gradient reads x transposed and stores its result transposed, straight into the
    # momentum update.  The forward matmul's right operand is read a contiguous row at a time (a
    # register tile's row), so W transposed is stored first, by a kernel of its own.
    assert kinds(fused) == ["permute", "matmul", "contraction"]
    assert body_ops(fused.nodes[2]) == ["permute", "matmul", "permute", "full", "mul", "add"]
    assert_same_results(graph, fused)


def test_a_transposed_product_read_by_two_kernels_is_stored_moved_by_its_matmul():
    """A convolution's weight gradient [taps, O] transposed into the weight's shape, read by two
    kernels (an optimizer's moment and parameter updates): the matmul stores it in the weight's
    shape, rather than each reader reading the product through the transpose; so both become the
    matmul's epilogue, one kernel in all."""
    graph = parse_graph("""graph wg(%a: f32[12,8] data, %b: f32[8,4] data, %m: f32[4,3,2,2] state) {
      %p = matmul(%a, %b) : f32[12,4]
      %t = permute(%p) {dims=[1,0]} : f32[4,12]
      %g = reshape(%t) {shape=[4,3,2,2]} : f32[4,3,2,2]
      %m2 = add(%m, %g) : f32[4,3,2,2]
      %sq = mul(%g, %g) : f32[4,3,2,2]
      %u = sub(%m2, %sq) : f32[4,3,2,2]
      return %u, write(%m, %m2)
    }""")
    fused = fuse(graph)
    kernels = [n for n in fused.nodes if n.op == "fused"]
    assert [(n.attrs["kind"], body_ops(n)) for n in kernels] == \
        [("contraction", ["matmul", "permute", "reshape", "add", "mul", "sub"])]
    assert_same_results(graph, fused)


def test_nothing_joins_a_matmul_through_a_transposed_operand():
    # relu(x) would be computed again each time the matmul reads an element of it.
    graph = parse_graph("""graph g(%x: f32[4,6] data, %w: f32[4,3] data) {
      %r = relu(%x) : f32[4,6]
      %rt = permute(%r) {dims=[1,0]} : f32[6,4]
      %y = matmul(%rt, %w) : f32[6,3]
      return %y
    }""")
    fused = fuse(graph)
    assert kinds(fused) == ["relu", "contraction"]      # relu stays a kernel of its own
    assert body_ops(fused.nodes[1]) == ["permute", "matmul"]
    assert_same_results(graph, fused)


def test_softmax_is_three_kernels_with_the_exponential_computed_in_two():
    graph = parse_graph(SOFTMAX)
    fused = fuse(graph)
    # The max and the sum are each read broadcast, so each ends a kernel; exp(x - max) is cheap
    # and feeds both the sum and the division, so both compute it rather than store it.
    assert kinds(fused) == ["max", "reduction", "elementwise"]
    assert body_ops(fused.nodes[1]) == ["sub", "exp", "sum"]
    assert body_ops(fused.nodes[2]) == ["sub", "exp", "div"]
    assert_same_results(graph, fused)


BATCHNORM = """graph batchnorm(%x: f32[8,3,4,4] data, %gamma: f32[3] param, %beta: f32[3] param) {
  %n = full() {shape=[], dtype=f32, value=0.0078125} : f32[]
  %s = sum(%x) {axes=[0,2,3]} : f32[3]
  %mean = mul(%s, %n) : f32[3]
  %mean4 = reshape(%mean) {shape=[1,3,1,1]} : f32[1,3,1,1]
  %xc = sub(%x, %mean4) : f32[8,3,4,4]
  %sq = mul(%xc, %xc) : f32[8,3,4,4]
  %ss = sum(%sq) {axes=[0,2,3]} : f32[3]
  %var = mul(%ss, %n) : f32[3]
  %eps = full() {shape=[], dtype=f32, value=1e-05} : f32[]
  %ve = add(%var, %eps) : f32[3]
  %sd = sqrt(%ve) : f32[3]
  %rstd = reciprocal(%sd) : f32[3]
  %rstd4 = reshape(%rstd) {shape=[1,3,1,1]} : f32[1,3,1,1]
  %xhat = mul(%xc, %rstd4) : f32[8,3,4,4]
  %g4 = reshape(%gamma) {shape=[1,3,1,1]} : f32[1,3,1,1]
  %b4 = reshape(%beta) {shape=[1,3,1,1]} : f32[1,3,1,1]
  %scaled = mul(%xhat, %g4) : f32[8,3,4,4]
  %y = add(%scaled, %b4) : f32[8,3,4,4]
  return %y
}"""


def test_batchnorm_is_mean_then_variance_then_the_affine_map():
    graph = parse_graph(BATCHNORM)
    fused = fuse(graph)
    assert [n.name for n in fused.nodes] == ["mean", "rstd", "y"]
    assert kinds(fused) == ["reduction", "reduction", "elementwise"]
    assert body_ops(fused.nodes[0]) == ["full", "sum", "mul"]
    # The variance kernel: prologue (x - mean)^2, the sum, epilogue 1/sqrt(var/n + eps).
    assert body_ops(fused.nodes[1]) == ["full", "reshape", "sub", "mul", "sum", "mul", "full", "add", "sqrt",
                                        "reciprocal"]
    assert [i.name for i in fused.nodes[2].inputs] == ["mean", "x", "rstd", "gamma", "beta"]
    assert count_kernels(graph) == 16 and count_kernels(fused) == 3
    assert_same_results(graph, fused)


ADAM = """graph adam(%g: f32[16] data, %p: f32[16] param, %m: f32[16] state, %v: f32[16] state) {
  %b1 = full() {shape=[], dtype=f32, value=0.9} : f32[]
  %c1 = full() {shape=[], dtype=f32, value=0.1} : f32[]
  %m1 = mul(%m, %b1) : f32[16]
  %m2 = mul(%g, %c1) : f32[16]
  %m_new = add(%m1, %m2) : f32[16]
  %b2 = full() {shape=[], dtype=f32, value=0.999} : f32[]
  %c2 = full() {shape=[], dtype=f32, value=0.001} : f32[]
  %v1 = mul(%v, %b2) : f32[16]
  %g2 = mul(%g, %g) : f32[16]
  %v2 = mul(%g2, %c2) : f32[16]
  %v_new = add(%v1, %v2) : f32[16]
  %root = sqrt(%v_new) : f32[16]
  %eps = full() {shape=[], dtype=f32, value=1e-08} : f32[]
  %den = add(%root, %eps) : f32[16]
  %step = div(%m_new, %den) : f32[16]
  %lr = full() {shape=[], dtype=f32, value=0.001} : f32[]
  %upd = mul(%step, %lr) : f32[16]
  %p_new = sub(%p, %upd) : f32[16]
  return write(%p, %p_new), write(%m, %m_new), write(%v, %v_new)
}"""


def test_adam_is_one_kernel_with_three_outputs():
    graph = parse_graph(ADAM)
    fused = fuse(graph)
    # The new moments are written back and read by the parameter's update: one kernel
    # stores all three, and tuple_get names each output after its value.
    # The body is the update as written, every node in the order given.
    body = ["    " + line.strip() for line in ADAM.splitlines()[1:-2]]
    assert print_graph(fused).splitlines() == [
        "graph adam(%g: f32[16] data, %p: f32[16] param, %m: f32[16] state, %v: f32[16] state) {",
        '  %m_new.kernel = fused(%m, %g, %v, %p) {kind="elementwise"} : (f32[16], f32[16], f32[16]) {',
        "    graph fused_m_new(%m: f32[16] data, %g: f32[16] data, %v: f32[16] data, %p: f32[16] data)",
        *body,
        "    return %m_new, %v_new, %p_new",
        "  }",
        "  %m_new = tuple_get(%m_new.kernel) {index=0} : f32[16]",
        "  %v_new = tuple_get(%m_new.kernel) {index=1} : f32[16]",
        "  %p_new = tuple_get(%m_new.kernel) {index=2} : f32[16]",
        "  return write(%p, %p_new), write(%m, %m_new), write(%v, %v_new)",
        "}"]
    assert count_kernels(fused) == 1
    assert_same_results(graph, fused)


def updates_of(shapes: list[str]) -> str:
    """A graph updating one parameter per shape with SGD (p - lr * g, lr a state scalar)."""
    inputs = ", ".join(f"%g{i}: {shape} data, %p{i}: {shape} param" for i, shape in enumerate(shapes))
    lines = [f"  %d{i} = mul(%g{i}, %lr) : {shape}\n  %n{i} = sub(%p{i}, %d{i}) : {shape}"
             for i, shape in enumerate(shapes)]
    writes = ", ".join(f"write(%p{i}, %n{i})" for i in range(len(shapes)))
    return f"graph sgd({inputs}, %lr: f32[] state) {{\n" + "\n".join(lines) + f"\n  return {writes}\n}}"


def test_the_updates_of_all_parameters_of_one_shape_are_one_kernel():
    graph = parse_graph(updates_of(["f32[3,4]", "f32[5]", "f32[3,4]", "f32[3,4]", "f32[5]", "f32[4,3]"]))
    fused = fuse(graph)
    outputs = [[get.name for get in fused.nodes if get.op == "tuple_get" and get.inputs[0] is node]
               for node in fused_nodes(fused)]
    # One launch per shape (f32[4,3] holds as many elements as f32[3,4], but is another loop nest).
    assert outputs == [["n0", "n2", "n3"], ["n1", "n4"], []]
    assert [n.name for n in fused_nodes(fused)] == ["n0.kernel", "n1.kernel", "n5"]
    assert_same_results(graph, fused)


def test_updates_merged_side_by_side_are_bounded_by_outputs_not_by_group_size():
    graph = parse_graph(updates_of(["f32[8]"] * 4))
    fused = fuse(graph, max_group_size=2)
    # Each update (mul, sub) is within the group size; four of them side by side are one kernel.
    (kernel,) = fused_nodes(fused)
    assert len(kernel.attrs["body"].nodes) == 8 and len(kernel.type) == 4
    assert_same_results(graph, fused)


def test_max_kernel_outputs_bounds_the_updates_merged_into_one_kernel():
    graph = parse_graph(updates_of(["f32[8]"] * 5))
    fused = PassManager(["fusion"], options={"fusion": {"max_kernel_outputs": 2}}).run(graph)
    assert sorted(len(node.type) if node.name.endswith(".kernel") else 1 for node in fused_nodes(fused)) == [1, 2, 2]
    assert_same_results(graph, fused)


def test_an_anchor_stores_the_elementwise_values_read_from_it_in_its_epilogue():
    graph = parse_graph("""graph shared(%x: f32[2,3,6,6] data, %w: f32[3,3,3,3] param) {
      %conv = conv2d(%x, %w) : f32[2,3,4,4]
      %a = relu(%conv) : f32[2,3,4,4]
      %b = tanh(%conv) : f32[2,3,4,4]
      return %a, %b
    }""")
    fused = fuse(graph)
    # The convolution is computed once, and both activations in its epilogue: it need not be stored.
    assert [n.op for n in fused.nodes] == ["fused", "tuple_get", "tuple_get"]
    assert fused.nodes[0].attrs["kind"] == "contraction"
    assert body_ops(fused.nodes[0]) == ["conv2d", "relu", "tanh"]
    assert str(fused.nodes[0].type) == "(f32[2,3,4,4], f32[2,3,4,4])"
    assert_same_results(graph, fused)


def test_a_value_read_through_a_transpose_is_not_merged_into_its_reader():
    graph = parse_graph("""graph t(%x: f32[4,4] data, %y: f32[4,4] data) {
      %e = exp(%x) : f32[4,4]
      %t = permute(%e) {dims=[1,0]} : f32[4,4]
      %s = add(%t, %y) : f32[4,4]
      return %e, %s
    }""")
    fused = fuse(graph)
    # Iteration (i, j) of the reader needs exp at (j, i): not yet computed in one loop nest.
    assert [n.name for n in fused.nodes] == ["e", "s"]
    assert_same_results(graph, fused)


def test_kernels_linked_through_a_third_are_never_merged():
    graph = parse_graph("""graph cycle(%x: f32[8] data, %i: i64[8] data) {
      %a = exp(%x) : f32[8]
      %g = gather(%a, %i) {axis=0} : f32[8]
      %b = add(%a, %g) : f32[8]
      return %a, %b
    }""")
    fused = fuse(graph)
    # %b reads %a directly and through the gather: merging %a into %b's kernel would make
    # the gather read a value its own reader computes.
    assert [n.op for n in fused.nodes] == ["exp", "gather", "add"]
    assert_same_results(graph, fused)


def test_max_pooling_and_its_argmax_are_one_pass_over_the_windows():
    graph = parse_graph("""graph pool(%x: f32[1,2,6,6] data) {
      %p = max_pool2d(%x) {kernel_size=[2,2], stride=[2,2]} : f32[1,2,3,3]
      %i = max_pool2d_argmax(%x) {kernel_size=[2,2], stride=[2,2]} : u8[1,2,3,3]
      %q = avg_pool2d(%x) {kernel_size=[3,3], stride=[3,3]} : f32[1,2,2,2]
      return %p, %i, %q
    }""")
    fused = fuse(graph)
    assert [n.op for n in fused.nodes] == ["fused", "tuple_get", "tuple_get", "avg_pool2d"]
    assert body_ops(fused.nodes[0]) == ["max_pool2d", "max_pool2d_argmax"]
    assert fused.nodes[0].attrs["kind"] == "window"
    assert_same_results(graph, fused)


def test_reductions_over_the_same_axes_of_one_input_are_one_pass():
    graph = parse_graph("""graph bn_backward(%g: f32[8,3,4,4] data, %xhat: f32[8,3,4,4] data, %z: f32[8,3,4,4] data) {
      %db = sum(%g) {axes=[0,2,3]} : f32[3]
      %gx = mul(%g, %xhat) : f32[8,3,4,4]
      %dw = sum(%gx) {axes=[0,2,3]} : f32[3]
      %m = max(%z) {axes=[0,2,3]} : f32[3]
      return %db, %dw, %m
    }""")
    fused = fuse(graph)
    # BatchNorm's backward sums g and g * xhat over the same axes: one pass over g.  The max
    # reads only z, nothing the sums read, so it stays a pass of its own.
    assert [n.op for n in fused.nodes] == ["fused", "tuple_get", "tuple_get", "max"]
    assert body_ops(fused.nodes[0]) == ["sum", "mul", "sum"]
    assert_same_results(graph, fused)


def test_rank_0_work_is_computed_in_every_kernel_that_reads_it():
    graph = parse_graph("""graph bias_correction(%g: f32[8] data, %h: f32[4] data, %t: f32[] state) {
      %one = full() {shape=[], dtype=f32, value=1.0} : f32[]
      %t1 = add(%t, %one) : f32[]
      %c = div(%one, %t1) : f32[]
      %a = mul(%g, %c) : f32[8]
      %b = mul(%h, %c) : f32[4]
      return %a, %b, write(%t, %t1)
    }""")
    fused = fuse(graph)
    # The scalars do not depend on the loop index: a backend computes them once before each loop.
    assert [n.name for n in fused_nodes(fused)] == ["t1", "a", "b"]
    assert body_ops(fused.nodes[1]) == ["full", "div", "mul"]
    assert_same_results(graph, fused)


def test_a_computed_value_is_not_recomputed_for_every_element_of_a_broadcast():
    graph = parse_graph("""graph spread(%x: f32[64,8] data, %b: f32[8] data) {
      %e = exp(%b) : f32[8]
      %y = add(%x, %e) : f32[64,8]
      %z = neg(%y) : f32[64,8]
      return %z
    }""")
    fused = fuse(graph)
    assert [n.name for n in fused.nodes] == ["e", "z"]
    assert body_ops(fused.nodes[1]) == ["add", "neg"]


def test_movement_ops_fuse_into_elementwise_chains_as_re_indexing():
    graph = parse_graph("""graph moves(%x: f32[4,6] data, %b: f32[6,4] data) {
      %t = permute(%b) {dims=[1,0]} : f32[4,6]
      %s = add(%x, %t) : f32[4,6]
      %r = reshape(%s) {shape=[2,12]} : f32[2,12]
      %p = pad(%r) {pads=[0,0,1,1]} : f32[2,14]
      %y = sigmoid(%p) : f32[2,14]
      return %y
    }""")
    fused = fuse(graph)
    assert kinds(fused) == ["elementwise"]
    assert body_ops(fused.nodes[0]) == ["permute", "add", "reshape", "pad", "sigmoid"]
    assert_same_results(graph, fused)


def test_a_group_of_movement_ops_alone_is_a_movement_kernel():
    graph = parse_graph("""graph moves(%x: f32[4,6] data) {
      %t = permute(%x) {dims=[1,0]} : f32[6,4]
      %r = reshape(%t) {shape=[24]} : f32[24]
      return %r
    }""")
    assert kinds(fuse(graph)) == ["movement"]


def test_opaque_ops_stay_kernels_of_their_own():
    graph = parse_graph("""graph pick(%x: f32[4,5] data, %i: i64[4,1] data) {
      %e = exp(%x) : f32[4,5]
      %g = gather(%e, %i) {axis=1} : f32[4,1]
      %y = neg(%g) : f32[4,1]
      return %y
    }""")
    fused = fuse(graph)
    assert kinds(fused) == ["exp", "gather", "neg"]
    assert_same_results(graph, fused)


def test_pooling_takes_an_epilogue_but_no_prologue():
    graph = parse_graph("""graph pool(%x: f32[1,2,6,6] data) {
      %r = relu(%x) : f32[1,2,6,6]
      %p = max_pool2d(%r) {kernel_size=[2,2], stride=[2,2]} : f32[1,2,3,3]
      %y = tanh(%p) : f32[1,2,3,3]
      return %y
    }""")
    fused = fuse(graph)
    assert kinds(fused) == ["relu", "window"]
    assert body_ops(fused.nodes[1]) == ["max_pool2d", "tanh"]
    assert_same_results(graph, fused)


def test_scalar_constants_are_copied_into_every_kernel_that_reads_them():
    graph = parse_graph("""graph consts(%x: f32[4] data, %w: f32[4,4] data) {
      %two = full() {shape=[], dtype=f32, value=2.0} : f32[]
      %a = mul(%x, %two) : f32[4]
      %m = matmul(%w, %w) : f32[4,4]
      %b = add(%m, %two) : f32[4,4]
      return %a, %b, %two
    }""")
    fused = fuse(graph)
    # %two is also returned, so it stays a node too; neither kernel reads it from memory.
    assert [n.op for n in fused.nodes] == ["full", "fused", "fused"]
    for node in fused_nodes(fused):
        assert "full" in body_ops(node) and all(i.op != "full" for i in node.inputs)
    assert_same_results(graph, fused)


def test_a_group_with_nothing_to_read_stays_unfused():
    graph = parse_graph("""graph consts(%x: f32[4] data) {
      %two = full() {shape=[], dtype=f32, value=2.0} : f32[]
      %four = expand(%two) {shape=[4]} : f32[4]
      %y = add(%x, %four) : f32[4]
      return %four, %y
    }""")
    fused = fuse(graph)
    # fused takes at least one operand, so the constant's group is written out as it was.
    assert [n.op for n in fused.nodes] == ["full", "expand", "add"]
    assert_same_results(graph, fused)


def test_classes():
    graph = parse_graph(BATCHNORM)
    ops = {node.op: classify(node) for node in graph.nodes}
    assert ops == {"full": "constant", "sum": "reduction", "mul": "elementwise", "reshape": "movement",
                   "sub": "elementwise", "add": "elementwise", "sqrt": "elementwise", "reciprocal": "elementwise"}


# -- kernels and the report -----------------------------------------------------------------

def test_kernels_are_every_node_but_scalar_constants():
    graph = parse_graph("""graph k(%x: f32[4] data) {
      %one = full() {shape=[], dtype=f32, value=1.0} : f32[]
      %ones = full() {shape=[4], dtype=f32, value=1.0} : f32[4]
      %a = add(%x, %one) : f32[4]
      %b = mul(%a, %ones) : f32[4]
      return %b
    }""")
    assert count_kernels(graph) == 3
    fused = fuse(graph)
    assert count_kernels(fused) == 1 and len(fused.nodes) == 1


def test_the_report_counts_nodes_before_and_kernels_after():
    graph = parse_graph(SOFTMAX)
    report = fusion_report(graph, fuse(graph))
    assert report == FusionReport(nodes_before=5, kernels_after=3, fused_kinds={"reduction": 1, "elementwise": 1})
    assert str(report) == "fusion: 5 nodes -> 3 kernels (60%); fused: 1 elementwise, 1 reduction"


# -- the pass ---------------------------------------------------------------------------------

def test_fusion_is_registered_as_a_pass_with_its_group_size_option():
    graph = parse_graph(BATCHNORM)
    assert get_pass("fusion").run(graph, {}) == fuse(graph)
    manager = PassManager(["fusion"], options={"fusion": {"max_group_size": 4}})
    fused = manager.run(graph)
    assert all(len(node.attrs["body"].nodes) <= 4 for node in fused_nodes(fused))
    assert manager.records[0].kernels_after == count_kernels(fused)


def test_unknown_options_and_impossible_sizes_are_errors():
    graph = parse_graph(SOFTMAX)
    with pytest.raises(GraphcError, match="unknown option.*max_groups"):
        get_pass("fusion").run(graph, {"max_groups": 3})
    with pytest.raises(GraphcError, match="max_group_size must be at least 1"):
        fuse(graph, max_group_size=0)


def test_fusing_twice_changes_nothing_more():
    fused = fuse(parse_graph(BATCHNORM))
    assert fuse(fused) == fused


# -- the fused op -----------------------------------------------------------------------------

def test_fused_checks_its_operands_against_its_body():
    body = fuse(parse_graph(CONV_BLOCK)).nodes[0].attrs["body"]
    x, w, b = (n.type for n in body.inputs)
    with pytest.raises(ShapeError, match="body fused_y takes 3 inputs but the node has 2"):
        infer_node("fused", [x, w], {"kind": "contraction", "body": body})
    with pytest.raises(ShapeError, match=r"operand f32\[4\] does not match body input %w"):
        infer_node("fused", [x, b, b], {"kind": "contraction", "body": body})
    with pytest.raises(ShapeError, match="kind 'loop' is not one of"):
        infer_node("fused", [x, w, b], {"kind": "loop", "body": body})


def test_fused_is_not_differentiable():
    from graphc.ops.registry import get_op
    assert get_op("fused").differentiable is False


# -- text and pictures ------------------------------------------------------------------------

def test_fused_graphs_round_trip_through_text():
    for text in (CONV_BLOCK, LINEAR_BLOCK, SOFTMAX, BATCHNORM, ADAM):
        fused = fuse(parse_graph(text))
        printed = print_graph(fused)
        assert parse_graph(printed) == fused
        assert print_graph(parse_graph(printed)) == printed


def test_a_body_sees_only_its_own_inputs():
    # The body's third input renamed: %b is still an input of the outer graph, but not of the body.
    text = CONV_BLOCK_FUSED.replace("%b: f32[4] data)", "%c: f32[4] data)")
    with pytest.raises(ParseError, match="unknown value %b"):
        parse_graph(text)


def test_only_ops_with_a_body_take_one():
    with pytest.raises(ParseError, match="relu takes no nested body"):
        parse_graph("graph g(%x: f32[2] data) {\n  %y = relu(%x) : f32[2] {\n  }\n  return %y\n}")


def test_a_fused_node_draws_as_a_cluster_around_its_body():
    dot = to_dot(fuse(parse_graph(CONV_BLOCK)))
    assert 'subgraph "cluster_y" {' in dot
    assert 'label="fused contraction\\n%y : f32[2,4,6,6]"' in dot
    assert '"y/conv" [label="conv2d\\nf32[2,4,6,6]"' in dot
    # Operands flow into the body's ops; the body's ops are the cluster's only members.
    assert '"x" -> "y/conv" [label="0"];' in dot and '"b" -> "y/b4";' in dot
    cluster = dot[dot.index('subgraph "cluster_y"'):]
    assert "->" not in cluster[:cluster.index("\n  }")]


# -- properties over random graphs ----------------------------------------------------------

SQUARE = (4, 4)
BROADCASTABLE = [(4, 4), (4, 1), (1, 4), ()]


def _pick(draw, pool, shapes=None):
    candidates = [v for v in pool if v.dtype.is_float and (shapes is None or v.shape in shapes)]
    return draw(st.sampled_from(candidates)) if candidates else None


def _unary(b, draw, pool):
    return b.op(draw(st.sampled_from(["neg", "relu", "tanh", "sigmoid", "abs", "exp"])), _pick(draw, pool))


def _binary(b, draw, pool):
    lhs, rhs = _pick(draw, pool), _pick(draw, pool)
    return b.op(draw(st.sampled_from(["add", "sub", "mul", "maximum"])), lhs, rhs)


def _select(b, draw, pool):
    lhs, rhs = _pick(draw, pool), _pick(draw, pool)
    return b.where(b.gt(lhs, rhs), lhs, rhs)


def _scalar(b, draw, pool):
    return b.scalar(draw(st.sampled_from([0.5, -1.0, 2.0])), pool[0].dtype)


def _reduce(b, draw, pool):
    x = _pick(draw, pool, [SQUARE])
    axes = draw(st.sampled_from([[0], [1], [0, 1]]))
    return b.op(draw(st.sampled_from(["sum", "max"])), x, axes=axes, keepdims=len(axes) == 1)


def _expand(b, draw, pool):
    small = _pick(draw, pool, [(4, 1), (1, 4), ()])
    return b.expand(small, shape=SQUARE) if small is not None else None


def _move(b, draw, pool):
    x = _pick(draw, pool, [SQUARE])
    if draw(st.booleans()):
        return b.permute(x, dims=[1, 0])
    return b.reshape(b.slice(b.pad(x, pads=[1, 0, 0, 1]), starts=[0, 1], stops=[4, 5], steps=[1, 1]), shape=SQUARE)


def _matmul(b, draw, pool):
    return b.matmul(_pick(draw, pool, [SQUARE]), _pick(draw, pool, [SQUARE]))


def _pool(b, draw, pool):
    image = b.reshape(_pick(draw, pool, [SQUARE]), shape=[1, 1, 4, 4])
    pooled = b.avg_pool2d(image, kernel_size=[3, 3], stride=[1, 1], padding=[1, 1])
    return b.reshape(pooled, shape=SQUARE)


def _gather(b, draw, pool):
    index = next(node for node in b.inputs if node.name == "i")
    return b.gather(_pick(draw, pool, [SQUARE]), index, axis=1)


BUILDERS = [_unary, _binary, _select, _scalar, _reduce, _expand, _move, _matmul, _pool, _gather]


@st.composite
def random_graphs(draw, max_steps=14):
    """Random DAGs mixing every class of op, with outputs and a write-back."""
    b = GraphBuilder("random")
    pool = [b.input("x", "f32[4,4]"), b.input("y", "f32[4,1]"), b.input("s", "f32[4,4]", tag="state")]
    b.input("i", "i64[4,4]")
    for _ in range(draw(st.integers(1, max_steps))):
        pool.append(draw(st.sampled_from(BUILDERS))(b, draw, pool) or b.neg(pool[0]))
    computed = list(dict.fromkeys(pool[3:]))
    b.output(computed[-1], *draw(st.lists(st.sampled_from(computed), max_size=2, unique=True)))
    square = [n for n in computed if n.shape == SQUARE and n.dtype.is_float]
    if square and draw(st.booleans()):
        b.write(pool[2], draw(st.sampled_from(square)))
    return b.build()


def group_dag(groups):
    """The groups as networkx nodes, with an edge from each group to the groups reading its root."""
    producer = {group.root: i for i, group in enumerate(groups)}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(groups)))
    for i, group in enumerate(groups):
        for member in group.members:
            dag.add_edges_from((producer[v], i) for v in member.inputs if v not in group and v in producer)
    return dag


PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(random_graphs(), st.integers(1, 6))
def test_fusion_never_makes_a_cycle_and_never_changes_a_result(graph, max_group_size):
    groups = find_groups(graph, max_group_size)
    assert nx.is_directed_acyclic_graph(group_dag(groups))
    membership = {node: sum(node in g for g in groups) for node in graph.nodes}
    assert all(count >= 1 for count in membership.values())
    assert all(count == 1 for node, count in membership.items() if classify(node) not in DUPLICABLE)
    fused = fuse(graph, max_group_size).verify()
    assert count_kernels(fused) <= count_kernels(graph)
    assert_same_results(graph, fused)


@PROPERTY_SETTINGS
@given(random_graphs(), st.integers(1, 6))
def test_max_group_size_is_respected(graph, max_group_size):
    fused = fuse(graph, max_group_size)
    written = {value.name for _, value in graph.writes} - {value.name for value in graph.outputs}
    for node in fused_nodes(fused):
        body = node.attrs["body"]
        if len(body.nodes) > max_group_size:
            # Only parameter updates merged side by side exceed it, each within it on its own.
            assert {value.name for value in body.outputs} <= written
            assert all(len(cone(body, value)) <= max_group_size for value in body.outputs)


def cone(body, value) -> set:
    """The body nodes that ``value`` is computed from, itself included."""
    needed, pending = set(), [value]
    while pending:
        node = pending.pop()
        if node not in needed and not node.is_input:
            needed.add(node)
            pending.extend(node.inputs)
    return needed


@PROPERTY_SETTINGS
@given(random_graphs())
def test_a_group_size_of_one_fuses_nothing(graph):
    assert fuse(graph, max_group_size=1) == graph


@PROPERTY_SETTINGS
@given(random_graphs())
def test_random_fused_graphs_round_trip_through_text(graph):
    fused = fuse(graph)
    assert parse_graph(print_graph(fused)) == fused


# -- a real training step ---------------------------------------------------------------------

def test_a_lenet_training_step_needs_at_most_two_kernels_for_five_primitives():
    import graphc.optim as optim
    from graphc.passes.manager import run_until
    from training_steps import lenet_step_graph
    traced = lenet_step_graph(lambda params: optim.Adam(params, lr=1e-3))
    simplified = run_until(traced, "simplify")
    fused = run_until(traced, "fusion")
    assert count_kernels(fused) <= 0.4 * len(simplified.nodes)
    assert_same_results(simplified, fused)


def test_the_resnet_step_updates_all_parameters_of_one_shape_in_one_kernel():
    import graphc
    import graphc.optim as optim
    import models
    from training_steps import classifier_step
    graphc.manual_seed(0)
    model = models.ResNet(num_blocks=2)
    step = graphc.compile(classifier_step(model, optim.Adam(model.parameters(), lr=1e-3)))
    x, y = graphc.randn(2, 3, 32, 32), graphc.randint(0, 10, (2,))
    step(x, y)                                    # creates the optimizer state
    graph = step.graph(x, y)
    kernel_of = {node: node.inputs[0] if node.op == "tuple_get" else node for node in graph.nodes}
    by_shape: dict[tuple, set[str]] = {}
    for target, value in graph.writes:
        if target.tag == "param":
            by_shape.setdefault(target.shape, set()).add(kernel_of[value].name)
    shared = {shape: kernels for shape, kernels in by_shape.items()
              if sum(t.shape == shape for t, _ in graph.writes if t.tag == "param") > 1}
    assert shared, "the model has parameters that share a shape"
    # Each update writes the parameter and its two moments: up to 64 outputs is 21 parameters per kernel.
    for shape, kernels in shared.items():
        count = sum(t.shape == shape for t, _ in graph.writes if t.tag == "param")
        assert len(kernels) == -(-count // 21), (shape, count, kernels)
