"""The remat pass: cheap kernels computed again for their late readers, only where the peak falls."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphc.errors import GraphcError
from graphc.ir import GraphBuilder, parse_graph
from graphc.ir.graph import verify
from graphc.passes.fusion import fuse
from graphc.passes.manager import PassManager, default_pipeline
from graphc.passes.memory import check_plan, peak_live_bytes, plan_memory
from graphc.passes.remat import is_cheap, rematerialize
from graphc.passes.schedule import schedule
from graph_checks import assert_same_results, random_inputs


def remat(text: str):
    graph = parse_graph(text)
    return graph, rematerialize(graph)


# -- hand-written graphs -------------------------------------------------------------------------

# A forward/backward shape in miniature: %h is read at once by %t and again, after the 4 KiB
# %u has come and gone, by %g; its input %x is a graph input, alive throughout.
READ_EARLY_AND_LATE = """graph step(%x: f32[1024] data) {
  %h = exp(%x) : f32[1024]
  %t = sum(%h) {axes=[0]} : f32[]
  %u = mul(%x, %t) : f32[1024]
  %v = sum(%u) {axes=[0]} : f32[]
  %g = mul(%h, %v) : f32[1024]
  return %g
}"""


def test_a_cheap_kernel_read_early_and_late_is_computed_again_just_before_its_late_reader():
    graph, result = remat(READ_EARLY_AND_LATE)
    assert result == parse_graph("""graph step(%x: f32[1024] data) {
      %h = exp(%x) : f32[1024]
      %t = sum(%h) {axes=[0]} : f32[]
      %u = mul(%x, %t) : f32[1024]
      %v = sum(%u) {axes=[0]} : f32[]
      %h.remat = exp(%x) : f32[1024]
      %g = mul(%h.remat, %v) : f32[1024]
      return %g
    }""")
    # %h and %u were live together (8 KiB and %t); now 4 KiB is the most at any kernel.
    assert (peak_live_bytes(graph), peak_live_bytes(result)) == (8196, 4100)


def test_a_fused_elementwise_kernel_is_copied_whole():
    # The matmuls take no prologue, so fusion stores %h (exp and neg) for both its readers.
    graph = fuse(parse_graph("""graph step(%x: f32[32,32] data, %c: f32[32,1] data) {
      %e = exp(%x) : f32[32,32]
      %h = neg(%e) : f32[32,32]
      %m = matmul(%h, %c) : f32[32,1]
      %u = mul(%x, %m) : f32[32,32]
      %v = matmul(%u, %c) : f32[32,1]
      %g = mul(%h, %v) : f32[32,32]
      return %g
    }"""))
    stored = next(node for node in graph.nodes if node.name == "h")
    assert stored.op == "fused" and stored.attrs["kind"] == "elementwise"
    result = rematerialize(graph)
    assert [node.name for node in result.nodes] == ["h", "m", "u", "v", "h.remat", "g"]
    copy = result.nodes[4]
    assert (copy.op, copy.inputs, copy.attrs["body"]) == ("fused", stored.inputs, stored.attrs["body"])
    assert peak_live_bytes(result) < 0.55 * peak_live_bytes(graph)


def test_a_forward_max_pool_is_cheap_enough_to_pool_again():
    # As in LeNet: a pooled activation read by the next layer at once and by its weight gradient
    # at the end, while the pool's input is alive anyway (for the pool's own gradient).
    graph, result = remat("""graph step(%x: f32[4,4,16,16] data) {
      %h = max_pool2d(%x) {kernel_size=[2,2], stride=[2,2]} : f32[4,4,8,8]
      %t = sum(%h) {axes=[0,1,2,3]} : f32[]
      %u = mul(%x, %t) : f32[4,4,16,16]
      %v = sum(%u) {axes=[0,1,2,3]} : f32[]
      %g = mul(%h, %v) : f32[4,4,8,8]
      return %g
    }""")
    assert [node.name for node in result.nodes] == ["h", "t", "u", "v", "h.remat", "g"]
    assert peak_live_bytes(result) < peak_live_bytes(graph)


@pytest.mark.parametrize("first_nodes", [
    # A contraction is too expensive to run twice.
    ["%h = matmul(%x, %x) : f32[32,32]"],
    # A reduction (here keeping every element) likewise.
    ["%h = sum(%x) {axes=[], keepdims=true} : f32[32,32]"],
    # Its input dies at once: a copy would keep that input alive across the gap instead.
    ["%p = tanh(%x) : f32[32,32]", "%h = exp(%p) : f32[32,32]"],
], ids=["contraction", "reduction", "input dies early"])
def test_other_kernels_read_early_and_late_are_left_alone(first_nodes):
    graph, result = remat("\n".join([
        "graph step(%x: f32[32,32] data) {", *first_nodes,
        "%t = sum(%h) {axes=[0,1]} : f32[]",
        "%u = mul(%x, %t) : f32[32,32]",
        "%v = sum(%u) {axes=[0,1]} : f32[]",
        "%g = mul(%h, %v) : f32[32,32]",
        "return %g", "}"]))
    assert result is graph


def test_a_copy_that_saves_bytes_only_away_from_the_peak_is_not_made():
    # The 64 KiB %z at the end is the peak whatever happens to %h.
    graph, result = remat(READ_EARLY_AND_LATE.replace("return %g", """
      %z = mul(%g, %wide) : f32[16,1024]
      return %z""").replace("%x: f32[1024] data", "%x: f32[1024] data, %wide: f32[16,1024] data"))
    assert result is graph


def test_a_copy_that_would_cost_a_parameter_update_its_storage_is_not_made():
    # %w_new is computed into %w's storage once nothing else reads %w; a copy of %h after it
    # would read %w too late for that, and %w_new would need 4 KiB of its own to the end.
    graph, result = remat("""graph step(%x: f32[1024] data, %w: f32[1024] param) {
      %h = mul(%x, %w) : f32[1024]
      %t = sum(%h) {axes=[0]} : f32[]
      %u = mul(%t, %t) : f32[]
      %w_new = sub(%w, %u) : f32[1024]
      %g = mul(%h, %w_new) : f32[1024]
      return %g, write(%w, %w_new)
    }""")
    assert result is graph
    assert plan_memory(schedule(graph)).slot("w_new").into_state == "w"


# -- the pass ------------------------------------------------------------------------------------

def test_training_steps_are_rematerialized_between_fusion_and_schedule():
    assert default_pipeline(training=True)[-3:] == ["fusion", "remat", "schedule"]
    assert "remat" not in default_pipeline(training=False)
    graph = parse_graph(READ_EARLY_AND_LATE)
    assert PassManager(["remat"]).run(graph) == rematerialize(graph)


def test_the_pass_takes_no_options():
    with pytest.raises(GraphcError, match="remat: unknown option"):
        PassManager(["remat"], options={"remat": {"budget": 2}}).run(parse_graph(READ_EARLY_AND_LATE))


# -- properties over random graphs ---------------------------------------------------------------

@st.composite
def training_like_steps(draw):
    """A forward pass of random ops (a random draw among them), then a backward chain that
    reads forward values again, and sometimes a parameter update."""
    b = GraphBuilder("step")
    x, w = b.input("x", "f32[8,8]"), b.input("w", "f32[8,8]", tag="param")
    key = b.input("key", "i64[2]", tag="state")
    forward = [x, w]
    for _ in range(draw(st.integers(2, 8))):
        operand, other = draw(st.sampled_from(forward)), draw(st.sampled_from(forward))
        step = draw(st.sampled_from(["unary", "binary", "normalise", "permute", "matmul", "rand"]))
        if step == "unary":
            forward.append(b.op(draw(st.sampled_from(["neg", "exp", "tanh"])), operand))
        elif step == "binary":
            forward.append(b.op(draw(st.sampled_from(["add", "mul"])), operand, other))
        elif step == "normalise":
            forward.append(b.op("sub", operand, b.sum(operand, axes=[1], keepdims=True)))
        elif step == "permute":
            forward.append(b.permute(operand, dims=[1, 0]))
        elif step == "matmul":
            forward.append(b.matmul(operand, other))
        else:
            forward.append(b.op("add", operand, b.op("rand", key, shape=[8, 8], dtype="f32")))
    grad = b.tanh(forward[-1])
    for value in draw(st.lists(st.sampled_from(forward[2:]), min_size=1, max_size=6)):
        if draw(st.booleans()):
            grad = b.matmul(grad, value)
        else:
            grad = b.op("mul", b.op("add", grad, b.sum(value, axes=[0], keepdims=True)), value)
    b.output(b.sum(grad, axes=[0, 1]))
    if draw(st.booleans()):
        b.write(w, b.op("sub", w, grad))
    return b.build()


def original_name(name: str) -> str:
    """The node that a copy (``%h.remat``, ``%h.remat.remat``, ``%h.remat2``...) computes again."""
    return name.split(".remat")[0]


def assert_copies_are_of_cheap_kernels(graph, result):
    """Every new node computes what a cheap node of ``graph`` computes, from the same
    values (an operand may itself be a copy)."""
    originals = {node.name: node for node in graph.nodes}
    for node in result.nodes:
        if node.name in originals:
            continue
        source = originals[original_name(node.name)]
        assert is_cheap(source)
        assert (node.op, node.attrs, node.type) == (source.op, source.attrs, source.type)
        assert [original_name(i.name) for i in node.inputs] == [i.name for i in source.inputs]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(training_like_steps(), st.booleans())
def test_random_steps_verify_keep_every_result_bit_for_bit_and_never_raise_the_peak(graph, fused):
    if fused:
        graph = fuse(graph)
    result = rematerialize(graph)
    verify(result)
    assert rematerialize(graph) == result
    assert_same_results(graph, result, random_inputs(graph))
    assert_copies_are_of_cheap_kernels(graph, result)
    if result is not graph:
        # The peak falls, and the schedule pass that runs next keeps it down.
        assert peak_live_bytes(schedule(result)) <= peak_live_bytes(result) < peak_live_bytes(schedule(graph))
    check_plan(plan_memory(schedule(result)))


# -- a real training step ------------------------------------------------------------------------

def test_the_resnet_step_recomputes_its_batchnorm_activations_in_a_much_smaller_arena():
    import graphc
    import graphc.optim as optim
    import models
    from training_steps import classifier_step
    graphc.manual_seed(0)
    model = models.ResNet()
    step = graphc.compile(classifier_step(model, optim.Adam(model.parameters(), lr=1e-3)))
    step(graphc.randn(2, 3, 32, 32), graphc.randint(0, 10, (2,)))     # creates the optimizer state
    traced = step.graph(graphc.randn(8, 3, 32, 32), graphc.randint(0, 10, (8,)), stage="traced")
    without = PassManager([name for name in default_pipeline(training=True) if name != "remat"]).run(traced)
    final = PassManager(default_pipeline(training=True)).run(traced)

    copies = [node for node in final.nodes if ".remat" in node.name]
    assert copies and all(node.op == "fused" and node.attrs["kind"] == "elementwise" for node in copies)
    before, after = plan_memory(without), plan_memory(final)
    check_plan(after)
    # Remat still saves a sixth of the peak after the merges of multi-output fusion, which
    # lowered the peak of the pipeline without it too, and with the convolutions' unfolded
    # columns (graphc.passes.gemm), which both peaks hold alike.
    assert after.lower_bound_bytes < 0.85 * before.lower_bound_bytes
    assert after.arena_bytes < before.naive_bytes / 3
    assert_same_results(without, final, random_inputs(traced))
