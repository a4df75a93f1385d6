"""BatchNorm folding: hand-written IR in, expected IR out; folded graphs compute the same values."""
import textwrap

import numpy as np
import pytest

import graphc
from graphc.backends.reference import run_graph
from graphc.ir import parse_graph, print_graph, verify
from graphc.passes.bn_fold import bn_fold, find_chains, is_per_channel
from graphc.passes.manager import PassManager
from graphc.passes.simplify import simplify

# What the frontend records for Conv2d(3, 4, 3) (with bias) followed by an eval-mode BatchNorm2d(4).
CONV_BN = """
    graph conv_bn(
        %x: f32[2,3,5,5] data,
        %w: f32[4,3,3,3] param,
        %b: f32[4] param,
        %mean: f32[4] buffer,
        %var: f32[4] buffer,
        %gamma: f32[4] param,
        %beta: f32[4] param
    ) {
      %1 = conv2d(%x, %w) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[2,4,3,3]
      %2 = reshape(%b) {shape=[1,4,1,1]} : f32[1,4,1,1]
      %3 = add(%1, %2) : f32[2,4,3,3]
      %4 = reshape(%mean) {shape=[1,4,1,1]} : f32[1,4,1,1]
      %5 = sub(%3, %4) : f32[2,4,3,3]
      %6 = reshape(%var) {shape=[1,4,1,1]} : f32[1,4,1,1]
      %7 = full() {shape=[], dtype=f32, value=1e-05} : f32[]
      %8 = add(%6, %7) : f32[1,4,1,1]
      %9 = sqrt(%8) : f32[1,4,1,1]
      %10 = div(%5, %9) : f32[2,4,3,3]
      %11 = reshape(%gamma) {shape=[1,4,1,1]} : f32[1,4,1,1]
      %12 = mul(%10, %11) : f32[2,4,3,3]
      %13 = reshape(%beta) {shape=[1,4,1,1]} : f32[1,4,1,1]
      %14 = add(%12, %13) : f32[2,4,3,3]
      %15 = relu(%14) : f32[2,4,3,3]
      return %15
    }"""

SIGNATURE = """graph conv_bn(
    %x: f32[2,3,5,5] data,
    %w: f32[4,3,3,3] param,
    %b: f32[4] param,
    %mean: f32[4] buffer,
    %var: f32[4] buffer,
    %gamma: f32[4] param,
    %beta: f32[4] param
) {"""


def random_inputs(graph, seed=0):
    """Random arrays for every input; inputs named var* are positive, as variances are."""
    rng = np.random.default_rng(seed)
    arrays = {n.name: rng.standard_normal(n.shape).astype(n.dtype.numpy) for n in graph.inputs}
    return {name: np.abs(a) + 0.1 if name.startswith("var") else a for name, a in arrays.items()}


def assert_close_results(graph, folded, seeds=(0, 1)):
    # Several seeds: the fold is computed in the graph, so new parameter values fold anew.
    for seed in seeds:
        inputs = random_inputs(graph, seed)
        for expected, actual in zip(run_graph(graph, inputs).outputs, run_graph(folded, inputs).outputs):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def fold_and_clean(text):
    graph = parse_graph(text)
    folded = simplify(bn_fold(graph))
    verify(folded)
    return graph, folded


def test_conv_bias_batchnorm_folds_into_the_textbook_weight_and_bias():
    # scale = gamma / sqrt(var + eps), bias = (b - mean) * scale + beta, computed from the inputs.
    graph = parse_graph(CONV_BN)
    folded = bn_fold(graph)
    verify(folded)
    assert print_graph(folded) == SIGNATURE + """
  %2 = reshape(%b) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %4 = reshape(%mean) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %6 = reshape(%var) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %7 = full() {shape=[], dtype=f32, value=1e-05} : f32[]
  %8 = add(%6, %7) : f32[1,4,1,1]
  %9 = sqrt(%8) : f32[1,4,1,1]
  %11 = reshape(%gamma) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %13 = reshape(%beta) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %16 = reshape(%2) {shape=[4]} : f32[4]
  %17 = reshape(%4) {shape=[4]} : f32[4]
  %18 = sub(%16, %17) : f32[4]
  %19 = reshape(%9) {shape=[4]} : f32[4]
  %20 = reshape(%11) {shape=[4]} : f32[4]
  %21 = reshape(%13) {shape=[4]} : f32[4]
  %22 = div(%20, %19) : f32[4]
  %23 = mul(%18, %22) : f32[4]
  %24 = add(%23, %21) : f32[4]
  %25 = reshape(%22) {shape=[4,1,1,1]} : f32[4,1,1,1]
  %w_folded = mul(%w, %25) : f32[4,3,3,3]
  %26 = reshape(%24) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %1 = conv2d(%x, %w_folded) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[2,4,3,3]
  %14 = add(%1, %26) : f32[2,4,3,3]
  %15 = relu(%14) : f32[2,4,3,3]
  return %15
}"""
    assert_close_results(graph, folded)


def test_after_simplify_only_the_conv_and_one_bias_add_touch_the_activation():
    graph, folded = fold_and_clean(CONV_BN)
    assert print_graph(folded) == SIGNATURE + """
  %6 = reshape(%var) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %7 = full() {shape=[], dtype=f32, value=1e-05} : f32[]
  %8 = add(%6, %7) : f32[1,4,1,1]
  %9 = sqrt(%8) : f32[1,4,1,1]
  %18 = sub(%b, %mean) : f32[4]
  %19 = reshape(%9) {shape=[4]} : f32[4]
  %22 = div(%gamma, %19) : f32[4]
  %23 = mul(%18, %22) : f32[4]
  %24 = add(%23, %beta) : f32[4]
  %25 = reshape(%22) {shape=[4,1,1,1]} : f32[4,1,1,1]
  %w_folded = mul(%w, %25) : f32[4,3,3,3]
  %26 = reshape(%24) {shape=[1,4,1,1]} : f32[1,4,1,1]
  %1 = conv2d(%x, %w_folded) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[2,4,3,3]
  %14 = add(%1, %26) : f32[2,4,3,3]
  %15 = relu(%14) : f32[2,4,3,3]
  return %15
}"""
    assert_close_results(graph, folded)


def test_the_rsqrt_form_without_a_conv_bias_folds():
    text = """
        graph conv_bn(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %mean: f32[3] buffer, %var: f32[3] buffer) {
          %1 = conv2d(%x, %w) : f32[1,3,4,4]
          %2 = reshape(%mean) {shape=[1,3,1,1]} : f32[1,3,1,1]
          %3 = sub(%1, %2) : f32[1,3,4,4]
          %4 = full() {shape=[], dtype=f32, value=0.001} : f32[]
          %5 = add(%var, %4) : f32[3]
          %6 = sqrt(%5) : f32[3]
          %7 = reciprocal(%6) : f32[3]
          %8 = reshape(%7) {shape=[3,1,1]} : f32[3,1,1]
          %9 = mul(%3, %8) : f32[1,3,4,4]
          return %9
        }"""
    graph, folded = fold_and_clean(text)
    assert print_graph(folded) == textwrap.dedent("""
        graph conv_bn(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %mean: f32[3] buffer, %var: f32[3] buffer) {
          %4 = full() {shape=[], dtype=f32, value=0.001} : f32[]
          %5 = add(%var, %4) : f32[3]
          %6 = sqrt(%5) : f32[3]
          %7 = reciprocal(%6) : f32[3]
          %11 = neg(%mean) : f32[3]
          %13 = mul(%11, %7) : f32[3]
          %14 = reshape(%7) {shape=[3,1,1,1]} : f32[3,1,1,1]
          %w_folded = mul(%w, %14) : f32[3,2,1,1]
          %15 = reshape(%13) {shape=[1,3,1,1]} : f32[1,3,1,1]
          %1 = conv2d(%x, %w_folded) {stride=[1,1], padding=[0,0], dilation=[1,1], groups=1} : f32[1,3,4,4]
          %9 = add(%1, %15) : f32[1,3,4,4]
          return %9
        }""").strip()
    assert_close_results(graph, folded)


@pytest.mark.parametrize("steps", [
    ["%4 = neg(%1) : f32[2,3,4,4]", "%5 = add(%4, %p) : f32[2,3,4,4]"],
    ["%4 = sub(%p, %1) : f32[2,3,4,4]", "%5 = mul(%4, %s) : f32[2,3,4,4]"],
    ["%4 = mul(%s, %1) : f32[2,3,4,4]", "%5 = sub(%4, %p) : f32[2,3,4,4]"],
    ["%4 = div(%1, %p) : f32[2,3,4,4]", "%5 = div(%4, %s) : f32[2,3,4,4]"],
    ["%4 = add(%p, %1) : f32[2,3,4,4]", "%5 = div(%4, %p) : f32[2,3,4,4]"],
])
def test_any_per_channel_affine_chain_folds(steps):
    # %p is a [1,3,1,1] parameter, %s a scalar: both vary along channels only.
    body = "\n".join(f"  {s}" for s in steps)
    text = f"""
graph chain(%x: f32[2,2,6,6] data, %w: f32[3,2,3,3] param, %q: f32[3] param) {{
  %1 = conv2d(%x, %w) : f32[2,3,4,4]
  %p = reshape(%q) {{shape=[1,3,1,1]}} : f32[1,3,1,1]
  %s = full() {{shape=[], dtype=f32, value=0.5}} : f32[]
{body}
  return %5
}}"""
    graph, folded = fold_and_clean(text)
    assert [n.op for n in folded.nodes if n.shape == (2, 3, 4, 4)] in (["conv2d"], ["conv2d", "add"])
    assert folded.outputs[0].name == "5"
    assert_close_results(graph, folded)


def test_the_input_graph_is_left_untouched():
    graph = parse_graph(CONV_BN)
    before = print_graph(graph)
    folded = bn_fold(graph)
    assert print_graph(graph) == before
    assert not {id(n) for n in graph.nodes} & {id(n) for n in folded.nodes}


def test_a_spelled_out_broadcast_of_the_parameters_is_looked_through():
    text = """
        graph g(%x: f32[2,2,4,4] data, %w: f32[3,2,1,1] param, %gamma: f32[3] param) {
          %1 = conv2d(%x, %w) : f32[2,3,4,4]
          %2 = reshape(%gamma) {shape=[1,3,1,1]} : f32[1,3,1,1]
          %3 = expand(%2) {shape=[2,3,4,4]} : f32[2,3,4,4]
          %4 = mul(%1, %3) : f32[2,3,4,4]
          return %4
        }"""
    graph, folded = fold_and_clean(text)
    assert [n.op for n in folded.nodes] == ["reshape", "mul", "conv2d"]
    assert_close_results(graph, folded)


def test_grouped_convolutions_fold_per_output_channel():
    text = """
        graph g(%x: f32[1,4,5,5] data, %w: f32[6,2,3,3] param, %gamma: f32[6] param, %beta: f32[6] param) {
          %1 = conv2d(%x, %w) {groups=2, padding=[1,1]} : f32[1,6,5,5]
          %2 = reshape(%gamma) {shape=[1,6,1,1]} : f32[1,6,1,1]
          %3 = mul(%1, %2) : f32[1,6,5,5]
          %4 = reshape(%beta) {shape=[1,6,1,1]} : f32[1,6,1,1]
          %5 = add(%3, %4) : f32[1,6,5,5]
          return %5
        }"""
    graph, folded = fold_and_clean(text)
    assert sum(n.op == "conv2d" for n in folded.nodes) == 1
    assert_close_results(graph, folded)


UNFOLDABLE = {
    "the conv's output is also returned": """
        graph g(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %g: f32[1,3,1,1] param) {
          %1 = conv2d(%x, %w) : f32[1,3,4,4]
          %2 = mul(%1, %g) : f32[1,3,4,4]
          return %1, %2
        }""",
    "the operand varies over the image": """
        graph g(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %g: f32[1,1,4,4] param) {
          %1 = conv2d(%x, %w) : f32[1,3,4,4]
          %2 = mul(%1, %g) : f32[1,3,4,4]
          return %2
        }""",
    "the operand is computed from data (training-mode batch statistics)": """
        graph g(%x: f32[2,2,4,4] data, %w: f32[3,2,1,1] param) {
          %1 = conv2d(%x, %w) : f32[2,3,4,4]
          %2 = sum(%1) {axes=[0,2,3], keepdims=true} : f32[1,3,1,1]
          %3 = sub(%1, %2) : f32[2,3,4,4]
          return %3
        }""",
    "a lone bias add": """
        graph g(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %b: f32[3] param) {
          %1 = conv2d(%x, %w) : f32[1,3,4,4]
          %2 = reshape(%b) {shape=[1,3,1,1]} : f32[1,3,1,1]
          %3 = add(%1, %2) : f32[1,3,4,4]
          return %3
        }""",
    "division by the conv's output": """
        graph g(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %g: f32[1,3,1,1] param) {
          %1 = conv2d(%x, %w) : f32[1,3,4,4]
          %2 = div(%g, %1) : f32[1,3,4,4]
          return %2
        }""",
    "the operand broadcasts the result to a bigger shape": """
        graph g(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %g: f32[2,3,1,1] param) {
          %1 = conv2d(%x, %w) : f32[1,3,4,4]
          %2 = mul(%1, %g) : f32[2,3,4,4]
          return %2
        }""",
}


@pytest.mark.parametrize("why", UNFOLDABLE)
def test_chains_that_cannot_or_need_not_fold_are_left_alone(why):
    graph = parse_graph(UNFOLDABLE[why])
    assert find_chains(graph) == []
    assert bn_fold(graph) == graph


@pytest.mark.parametrize("shape, per_channel", [
    ((1, 4, 1, 1), True), ((4, 1, 1), True), ((), True), ((1,), True), ((1, 1, 1, 1), True),
    ((4,), False), ((1, 4, 2, 1), False), ((2, 4, 1, 1), False), ((1, 1, 4, 1, 1), False),
])
def test_per_channel_shapes(shape, per_channel):
    assert is_per_channel(shape, (2, 4, 3, 3)) == per_channel


# -- a model from the frontend ---------------------------------------------------------------

def test_a_traced_conv_batchnorm_model_folds_and_matches_eager():
    nn = graphc.nn
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, bias=False), nn.BatchNorm2d(4))
    for bn in (model[1], model[4]):          # running statistics that are not the identity
        bn.running_mean.copy_(graphc.randn(bn.num_features))
        bn.running_var.copy_(graphc.rand(bn.num_features) + 0.5)
        bn.weight.data.copy_(graphc.randn(bn.num_features))
        bn.bias.data.copy_(graphc.randn(bn.num_features))
    x = graphc.randn(2, 3, 8, 8)
    graph = graphc.trace(model.eval(), x)
    manager = PassManager(["simplify", "bn_fold", "simplify"])
    folded = manager.run(graph)

    activation_ops = [n.op for n in folded.nodes if len(n.shape) == 4 and n.shape[0] == 2]
    assert activation_ops == ["conv2d", "add", "relu", "conv2d", "add"]
    arrays = {n.name: x.numpy() if n.tag == "data" else dict(model.state_dict())[n.name].numpy()
              for n in graph.inputs}
    with graphc.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(run_graph(folded, arrays).outputs[0], expected, rtol=1e-4, atol=1e-5)


def test_a_training_graph_keeps_its_batch_statistics():
    nn = graphc.nn
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    graph = graphc.trace(model.train(), graphc.randn(2, 3, 6, 6))
    assert find_chains(graph) == []
