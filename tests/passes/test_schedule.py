"""The schedule pass: a memory-aware reordering that keeps the graph valid and its results exact."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphc.errors import GraphcError
from graphc.ir import GraphBuilder, parse_graph
from graphc.ir.graph import verify
from graphc.passes.fusion import fuse
from graphc.passes.manager import PassManager, default_pipeline
from graphc.passes.memory import check_plan, peak_live_bytes, plan_memory
from graphc.passes.schedule import schedule
from graph_checks import assert_same_results, random_inputs


def order(text: str) -> list[str]:
    return [node.name for node in schedule(parse_graph(text)).nodes]


# -- the order on hand-written graphs ------------------------------------------------------------

def test_a_kernel_that_frees_its_operand_runs_as_soon_as_it_is_ready():
    # %c is the last reader of %a: running it before %b means %a and %b are never live together.
    assert order("""graph g(%x: f32[256] data) {
      %a = exp(%x) : f32[256]
      %b = neg(%x) : f32[256]
      %c = sum(%a) {axes=[0]} : f32[]
      %d = sum(%b) {axes=[0]} : f32[]
      return %c, %d
    }""") == ["a", "c", "b", "d"]


def test_kernels_that_allocate_keep_their_original_order():
    # Smallest-first would run %small first; allocating kernels stay as the program wrote them.
    assert order("""graph g(%x: f32[256] data) {
      %big = exp(%x) : f32[256]
      %small = sum(%x) {axes=[0]} : f32[]
      return %big, %small
    }""") == ["big", "small"]


# A training step as autodiff and the optimizer leave it (elementwise stand-ins for the
# layers' derivatives): both weight gradients and both updates come after the whole backward pass.
TWO_LAYERS = """graph step(%x: f32[16,64] data, %w1: f32[64] param, %w2: f32[64] param) {
  %h1 = mul(%x, %w1) : f32[16,64]
  %a1 = tanh(%h1) : f32[16,64]
  %h2 = mul(%a1, %w2) : f32[16,64]
  %loss = sum(%h2) {axes=[0,1]} : f32[]
  %dh2 = exp(%h2) : f32[16,64]
  %da1 = mul(%dh2, %w2) : f32[16,64]
  %dh1 = mul(%da1, %a1) : f32[16,64]
  %p1 = mul(%dh1, %x) : f32[16,64]
  %gw1 = sum(%p1) {axes=[0]} : f32[64]
  %p2 = mul(%dh2, %a1) : f32[16,64]
  %gw2 = sum(%p2) {axes=[0]} : f32[64]
  %w1_new = sub(%w1, %gw1) : f32[64]
  %w2_new = sub(%w2, %gw2) : f32[64]
  return %loss, write(%w1, %w1_new), write(%w2, %w2_new)
}"""


def test_a_weight_gradient_and_its_update_run_once_they_free_their_operands():
    # Once %dh1 has read %a1, the second layer's weight gradient is the last reader of %a1 and
    # %dh2, so it runs at once, and the update frees the gradient.
    assert order(TWO_LAYERS) == ["h1", "a1", "h2", "loss", "dh2", "da1", "dh1",
                                 "p2", "gw2", "w2_new", "p1", "gw1", "w1_new"]


def test_scheduling_the_step_lowers_its_peak_and_every_update_takes_its_parameter_storage():
    graph = parse_graph(TWO_LAYERS)
    before, after = plan_memory(graph), plan_memory(schedule(graph))
    assert after.lower_bound_bytes < before.lower_bound_bytes
    assert {b.name: b.into_state for b in after.donated} == {"w1_new": "w1", "w2_new": "w2"}
    check_plan(after)


def test_an_update_waits_for_the_other_readers_of_the_old_value_so_that_it_can_take_its_storage():
    text = """graph step(%x: f32[64] data, %w: f32[64] param) {
      %w_new = sub(%w, %x) : f32[64]
      %y = mul(%x, %w) : f32[64]
      %l = sum(%y) {axes=[0]} : f32[]
      return %l, write(%w, %w_new)
    }"""
    assert plan_memory(parse_graph(text)).donated == []
    assert order(text) == ["y", "l", "w_new"]
    assert plan_memory(schedule(parse_graph(text))).slot("w_new").into_state == "w"


def test_an_update_that_a_reader_of_the_old_value_depends_on_stays_an_ordinary_kernel():
    text = """graph step(%w: f32[64] param) {
      %w_new = neg(%w) : f32[64]
      %z = add(%w_new, %w) : f32[64]
      return %z, write(%w, %w_new)
    }"""
    assert order(text) == ["w_new", "z"]
    assert plan_memory(schedule(parse_graph(text))).donated == []


def test_random_draws_keep_their_order():
    # %r2 frees the key it reads and allocates as much, so it would jump ahead of %r1;
    # draws keep the order they were written in.
    assert order("""graph g(%key: i64[2] state, %advance: i64[2] data) {
      %k1 = add(%key, %advance) : i64[2]
      %r1 = rand(%key) {shape=[64], dtype=f32} : f32[64]
      %r2 = rand(%k1) {shape=[4], dtype=f32} : f32[4]
      return %r1, %r2
    }""") == ["k1", "r1", "r2"]


def test_a_scalar_constant_is_placed_just_before_its_first_reader():
    assert order("""graph g(%x: f32[4] data) {
      %two = full() {shape=[], dtype=f32, value=2.0} : f32[]
      %a = exp(%x) : f32[4]
      %b = mul(%a, %two) : f32[4]
      return %b
    }""") == ["a", "two", "b"]


# -- the pass --------------------------------------------------------------------------------

def test_training_steps_are_scheduled_after_fusion():
    assert default_pipeline(training=True)[-1] == "schedule"
    manager = PassManager(["schedule"])
    assert manager.run(parse_graph(TWO_LAYERS)) == schedule(parse_graph(TWO_LAYERS))


def test_the_pass_takes_no_options():
    with pytest.raises(GraphcError, match="schedule: unknown option"):
        PassManager(["schedule"], options={"schedule": {"depth": 2}}).run(parse_graph(TWO_LAYERS))


# -- properties over random graphs ----------------------------------------------------------------

@st.composite
def training_like_graphs(draw, max_steps=16):
    """Random DAGs over data and state inputs, with write-backs that read their old state
    elementwise or not, returned values, and a random draw or two."""
    b = GraphBuilder("random")
    x = b.input("x", "f32[8,8]")
    states = [b.input(f"s{i}", "f32[8,8]", tag="state") for i in range(3)]
    key = b.input("key", "i64[2]", tag="state")
    pool = [x, *states]
    for _ in range(draw(st.integers(1, max_steps))):
        operand = draw(st.sampled_from(pool))
        step = draw(st.sampled_from(["unary", "binary", "reduce", "permute", "rand"]))
        if step == "unary":
            pool.append(b.op(draw(st.sampled_from(["neg", "exp", "tanh"])), operand))
        elif step == "binary":
            pool.append(b.op(draw(st.sampled_from(["add", "mul", "sub"])), operand, draw(st.sampled_from(pool))))
        elif step == "reduce":
            pool.append(b.op("add", operand, b.sum(operand, axes=[draw(st.integers(0, 1))], keepdims=True)))
        elif step == "permute":
            pool.append(b.permute(operand, dims=[1, 0]))
        else:
            pool.append(b.op("add", operand, b.op("rand", key, shape=[8, 8], dtype="f32")))
    computed = pool[len(states) + 1:]
    b.output(computed[-1], *draw(st.lists(st.sampled_from(pool), max_size=2, unique=True)))
    for state in draw(st.lists(st.sampled_from(states), max_size=3, unique=True)):
        b.write(state, draw(st.sampled_from(computed)))
    return b.build()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(training_like_graphs(), st.booleans())
def test_random_schedules_verify_keep_every_result_bit_for_bit_and_never_raise_the_peak(graph, fused):
    if fused:
        graph = fuse(graph)
    scheduled = schedule(graph)
    verify(scheduled)
    assert sorted(n.name for n in scheduled.nodes) == sorted(n.name for n in graph.nodes)
    assert schedule(graph) == scheduled
    draws = [n.name for n in graph.nodes if n.op == "rand"]
    assert [n.name for n in scheduled.nodes if n.op == "rand"] == draws
    assert_same_results(graph, scheduled, random_inputs(graph))
    plan = plan_memory(scheduled)
    check_plan(plan)
    assert plan.lower_bound_bytes == peak_live_bytes(scheduled) <= peak_live_bytes(graph)


def test_a_lenet_training_step_scheduled_computes_the_same_bits_in_a_smaller_arena():
    import graphc.optim as optim
    from graphc.passes.manager import run_until
    from training_steps import lenet_step_graph
    traced = lenet_step_graph(lambda params: optim.SGD(params, lr=0.01, momentum=0.9), warm_up=True)
    fused = run_until(traced, "fusion")
    scheduled = schedule(fused)
    assert_same_results(fused, scheduled, random_inputs(fused))
    assert plan_memory(scheduled).arena_bytes < plan_memory(fused).arena_bytes
