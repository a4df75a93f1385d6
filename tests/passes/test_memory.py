"""Memory planning: lifetimes, in-place reuse, placement in one arena, and the plan checker."""
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphc.ir import GraphBuilder, parse_graph
from graphc.passes.fusion import count_kernels, fuse
from graphc.passes.memory import ALIGNMENT, BufferSlot, MemoryPlanError, check_plan, kernel_buffers, plan_memory

CHAIN = """graph chain(%x: f32[16] data, %s: f32[16] state) {
  %a = exp(%x) : f32[16]
  %b = neg(%a) : f32[16]
  %c = sum(%b) {axes=[0]} : f32[]
  %d = add(%b, %x) : f32[16]
  %two = full() {shape=[], dtype=f32, value=2.0} : f32[]
  %e = mul(%c, %two) : f32[]
  %f = tanh(%d) : f32[16]
  return %e, %f, write(%s, %d)
}"""


def test_lifetimes_in_place_reuse_donation_and_offsets_of_a_chain():
    plan = plan_memory(parse_graph(CHAIN))
    # Kernels 0..5 are a..f (the scalar %two is a constant, not a kernel).  %d is written back
    # and %e, %f are returned, so they live to the last kernel; %b and %e each take over an
    # operand that dies where they are written.  Nothing reads %s, so %d is computed straight
    # into its storage and takes no arena bytes.
    assert plan.buffers == [
        BufferSlot("a", 64, 0, 0, 1),
        BufferSlot("b", 64, 0, 1, 3, in_place_of="a"),
        BufferSlot("c", 4, 64, 2, 4),
        BufferSlot("d", 64, None, 3, 5, into_state="s"),
        BufferSlot("e", 4, 64, 4, 5, in_place_of="c"),
        BufferSlot("f", 64, 0, 5, 5),
    ]
    assert plan.kernel_count == 6
    assert plan.arena_bytes == 128            # two 64-byte-aligned blocks
    assert plan.lower_bound_bytes == 68       # at the last kernel: %e and %f (%d is in %s)
    assert plan.naive_bytes == 4 * 64 + 2 * 4
    check_plan(plan)


def test_graph_inputs_and_scalar_constants_take_no_arena_space():
    plan = plan_memory(parse_graph(CHAIN))
    assert {b.name for b in plan.buffers} == {"a", "b", "c", "d", "e", "f"}


def test_a_buffer_nobody_reads_lives_only_at_its_kernel():
    plan = plan_memory(parse_graph("""graph dead(%x: f32[8] data) {
      %unused = exp(%x) : f32[8]
      %y = neg(%x) : f32[8]
      return %y
    }"""))
    assert (plan.slot("unused").first_use, plan.slot("unused").last_use) == (0, 0)


# -- kernels with several outputs -------------------------------------------------------------

MULTI = """graph multi(%x: f32[16] data, %y: f32[16] data, %s: f32[16] state) {
  %a = exp(%x) : f32[16]
  %b = neg(%y) : f32[16]
  %k = fused(%a, %b, %s) {kind="elementwise"} : (f32[16], f32[16], f32[16]) {
    graph fused_k(%a: f32[16] data, %b: f32[16] data, %s: f32[16] data)
    %p = add(%a, %b) : f32[16]
    %q = mul(%a, %b) : f32[16]
    %r = add(%s, %a) : f32[16]
    return %p, %q, %r
  }
  %p = tuple_get(%k) {index=0} : f32[16]
  %q = tuple_get(%k) {index=1} : f32[16]
  %r = tuple_get(%k) {index=2} : f32[16]
  %t = add(%p, %q) : f32[16]
  return %t, write(%s, %r)
}"""


def test_each_output_of_a_multi_output_kernel_is_a_buffer_of_its_own():
    plan = plan_memory(parse_graph(MULTI))
    # Kernels: a, b, k, t.  The kernel reads %a and %b element for element and both die there,
    # so %p and %q take over their bytes (one operand each); %r goes into %s's own storage.
    assert plan.buffers == [
        BufferSlot("a", 64, 0, 0, 2),
        BufferSlot("b", 64, 64, 1, 2),
        BufferSlot("p", 64, 0, 2, 3, in_place_of="a"),
        BufferSlot("q", 64, 64, 2, 3, in_place_of="b"),
        BufferSlot("r", 64, None, 2, 3, into_state="s"),
        BufferSlot("t", 64, 0, 3, 3, in_place_of="p"),
    ]
    assert plan.kernel_count == 4 and plan.naive_bytes == 6 * 64
    check_plan(plan)


def test_an_epilogue_output_may_take_over_an_operand_only_the_epilogue_reads():
    graph = parse_graph("""graph residual(%x: f32[1,2,4,4] data, %w: f32[2,2,1,1] param) {
      %r = exp(%x) : f32[1,2,4,4]
      %c = neg(%x) : f32[1,2,4,4]
      %k = fused(%c, %w, %r) {kind="contraction"} : f32[1,2,4,4] {
        graph fused_k(%c: f32[1,2,4,4] data, %w: f32[2,2,1,1] data, %r: f32[1,2,4,4] data)
        %conv = conv2d(%c, %w) : f32[1,2,4,4]
        %k = add(%conv, %r) : f32[1,2,4,4]
        return %k
      }
      return %k
    }""")
    plan = plan_memory(graph)
    # The residual %r is read only by the epilogue, element for element: %k may overwrite it.
    # The convolution reads %c at many places for each output element: never overwritten.
    assert plan.slot("k").in_place_of == "r"
    check_plan(plan)


# -- in place only where it is legal -------------------------------------------------------

def in_place_of(text: str, name: str):
    return plan_memory(parse_graph(text)).slot(name).in_place_of


# Each case: the type of %x, the nodes (the last one returned), and what %y is written in place of.
IN_PLACE_CASES = {
    "elementwise over a dying operand": (
        "f32[4,4]", ["%a = exp(%x) : f32[4,4]", "%y = neg(%a) : f32[4,4]"], "a"),
    "a reshape keeps the order of elements": (
        "f32[16]", ["%a = exp(%x) : f32[16]", "%y = reshape(%a) {shape=[4,4]} : f32[4,4]"], "a"),
    "a cast between elements of one size": (
        "f32[4,4]", ["%a = exp(%x) : f32[4,4]", "%y = cast(%a) {dtype=i32} : i32[4,4]"], "a"),
    "a cast to larger elements": (
        "f32[4,4]", ["%a = exp(%x) : f32[4,4]", "%y = cast(%a) {dtype=f64} : f64[4,4]"], None),
    "a permute reads element j to write element i": (
        "f32[4,4]", ["%a = exp(%x) : f32[4,4]", "%y = permute(%a) {dims=[1,0]} : f32[4,4]"], None),
    "a reduction is not elementwise": (
        "f32[4,4]", ["%a = exp(%x) : f32[4,4]", "%y = sum(%a) {axes=[]} : f32[4,4]"], None),
    "the operand is read again later": (
        "f32[4,4]", ["%a = exp(%x) : f32[4,4]", "%y = neg(%a) : f32[4,4]", "%z = add(%y, %a) : f32[4,4]"], None),
    "a broadcast operand is read many times": (
        "f32[4,4]", ["%a = sum(%x) {axes=[0], keepdims=true} : f32[1,4]", "%y = add(%x, %a) : f32[4,4]"], None),
    "a graph input is the caller's": (
        "f32[4,4]", ["%y = neg(%x) : f32[4,4]"], None),
}


@pytest.mark.parametrize("x_type,nodes,expected", IN_PLACE_CASES.values(), ids=IN_PLACE_CASES.keys())
def test_in_place_only_where_each_element_is_read_just_before_it_is_written(x_type, nodes, expected):
    result = nodes[-1].split()[0]
    text = f"graph g(%x: {x_type} data) {{\n" + "".join(f"  {n}\n" for n in nodes) + f"  return {result}\n}}"
    assert in_place_of(text, "y") == expected


def test_a_returned_value_is_never_overwritten():
    assert in_place_of("""graph g(%x: f32[4] data) {
      %a = exp(%x) : f32[4]
      %y = neg(%a) : f32[4]
      return %a, %y
    }""", "y") is None


FUSED_BODIES = """graph g(%x: f32[4,4] data, %b: f32[4] data) {{
  %a = exp(%x) : f32[4,4]
  %y = fused(%a, %b) {{kind="elementwise"}} : f32[4,4] {{
    graph fused_y(%a: f32[4,4] data, %b: f32[4] data)
    {path}
    return %y
  }}
  return %y
}}"""


def test_a_fused_kernel_writes_in_place_only_over_an_operand_it_reads_elementwise():
    straight = "%t = tanh(%a) : f32[4,4]\n    %y = add(%t, %b) : f32[4,4]"
    turned = "%t = permute(%a) {dims=[1,0]} : f32[4,4]\n    %y = add(%t, %b) : f32[4,4]"
    assert in_place_of(FUSED_BODIES.format(path=straight), "y") == "a"
    assert in_place_of(FUSED_BODIES.format(path=turned), "y") is None


# -- donating state storage to write-back values --------------------------------------------------

def into_state(text: str, name: str = "w_new"):
    return plan_memory(parse_graph(text)).slot(name).into_state


# Each case: the nodes, the values returned besides the write-back of %w_new into %w, and
# which state %w_new is computed into.
DONATION_CASES = {
    "an update reading its parameter element for element": (
        ["%w_new = sub(%w, %g) : f32[4,4]"], [], "w"),
    "an update not reading its parameter": (
        ["%w_new = neg(%g) : f32[4,4]"], [], "w"),
    "an earlier reader of the old value, even a reduction": (
        ["%m = sum(%w) {axes=[0], keepdims=true} : f32[1,4]", "%w_new = sub(%w, %m) : f32[4,4]"], [], "w"),
    "a later reader of the old value": (
        ["%w_new = sub(%w, %g) : f32[4,4]", "%late = mul(%w, %g) : f32[4,4]"], ["%late"], None),
    "the update reads the old value other than element for element": (
        ["%w_new = permute(%w) {dims=[1,0]} : f32[4,4]"], [], None),
    "the old value is returned": (
        ["%w_new = sub(%w, %g) : f32[4,4]"], ["%w"], None),
    "the new value is returned": (
        ["%w_new = sub(%w, %g) : f32[4,4]"], ["%w_new"], None),
}


def donation_graph(nodes: list[str], returned: list[str]) -> str:
    outputs = ", ".join([*returned, "write(%w, %w_new)"])
    return ("graph step(%g: f32[4,4] data, %w: f32[4,4] param) {\n" + "".join(f"  {n}\n" for n in nodes)
            + f"  return {outputs}\n}}")


@pytest.mark.parametrize("nodes,returned,expected", DONATION_CASES.values(), ids=DONATION_CASES.keys())
def test_a_write_back_takes_its_state_storage_only_once_nothing_else_needs_the_old_value(nodes, returned, expected):
    assert into_state(donation_graph(nodes, returned)) == expected


def test_a_fused_update_reading_its_parameter_element_for_element_takes_its_storage():
    graph = fuse(parse_graph(donation_graph(
        ["%lr = full() {shape=[], dtype=f32, value=0.1} : f32[]", "%step = mul(%g, %lr) : f32[4,4]",
         "%w_new = sub(%w, %step) : f32[4,4]"], [])))
    assert [node.op for node in graph.nodes] == ["fused"]
    assert plan_memory(graph).slot("w_new").into_state == "w"


def test_a_value_written_into_two_states_takes_the_first_ones_storage():
    plan = plan_memory(parse_graph("""graph step(%g: f32[4] data, %a: f32[4] state, %b: f32[4] state) {
      %v = neg(%g) : f32[4]
      return write(%a, %v), write(%b, %v)
    }"""))
    assert plan.slot("v").into_state == "a"


def test_donated_values_take_no_arena_bytes_and_the_lower_bound_leaves_them_out():
    plan = plan_memory(parse_graph("""graph step(%g: f32[256] data, %w: f32[256] param) {
      %t = tanh(%g) : f32[256]
      %s = sum(%t) {axes=[0]} : f32[]
      %w_new = sub(%w, %t) : f32[256]
      return %s, write(%w, %w_new)
    }"""))
    assert [b.name for b in plan.donated] == ["w_new"]
    assert plan.lower_bound_bytes == 1024 + 4         # %t and %s; %w_new lives in %w
    assert plan.arena_bytes == 1024 + 64
    assert plan.naive_bytes == 2 * 1024 + 4           # every kernel output, donated or not
    check_plan(plan)


# -- the checker ------------------------------------------------------------------------------

def test_check_plan_catches_shared_bytes_misalignment_and_false_in_place_claims():
    plan = plan_memory(parse_graph(CHAIN))
    f = plan.slot("f")
    overlapping = dataclasses.replace(plan, buffers=[*plan.buffers[:5], dataclasses.replace(f, offset=64)])
    with pytest.raises(MemoryPlanError, match="%e .* and %f .* are live together in the same bytes"):
        check_plan(overlapping)
    misaligned = dataclasses.replace(plan, buffers=[*plan.buffers[:5], dataclasses.replace(f, offset=100)])
    with pytest.raises(MemoryPlanError, match="starts at 100, not a multiple of 64"):
        check_plan(misaligned)
    outside = dataclasses.replace(plan, buffers=[*plan.buffers[:5], dataclasses.replace(f, offset=128)])
    with pytest.raises(MemoryPlanError, match="outside the arena"):
        check_plan(outside)
    e = plan.slot("e")
    false_claim = dataclasses.replace(plan, buffers=[*plan.buffers[:4], dataclasses.replace(e, in_place_of="a"),
                                                     plan.buffers[5]])
    with pytest.raises(MemoryPlanError, match="%e is in place of %a but does not start"):
        check_plan(false_claim)


def forced_donation(case: str):
    """The plan of a donation case with %w_new claimed to be computed into %w anyway."""
    plan = plan_memory(parse_graph(donation_graph(*DONATION_CASES[case][:2])))
    buffers = [dataclasses.replace(b, offset=None, into_state="w") if b.name == "w_new" else b
               for b in plan.buffers]
    return dataclasses.replace(plan, buffers=buffers)


@pytest.mark.parametrize("case,message", [
    ("a later reader of the old value", "overwrites the old value that kernel 1 reads later"),
    ("the old value is returned", "overwrites the old value that the graph's return reads later"),
    ("the update reads the old value other than element for element",
     "reads the old value other than element for element"),
])
def test_check_plan_rejects_a_donation_while_the_old_value_is_still_needed(case, message):
    with pytest.raises(MemoryPlanError, match=f"%w_new, computed into %w's storage by kernel 0, {message}"):
        check_plan(forced_donation(case))


def test_check_plan_rejects_a_donation_to_a_state_the_buffer_is_not_written_into():
    plan = plan_memory(parse_graph(CHAIN))
    wrong = dataclasses.replace(plan, buffers=[dataclasses.replace(b, offset=None, into_state="s")
                                               if b.name == "f" else b for b in plan.buffers])
    with pytest.raises(MemoryPlanError, match="%f, computed into %s's storage .* is not the value written back"):
        check_plan(wrong)


# -- the table and the picture ------------------------------------------------------------------

def test_the_table_lists_every_buffer_in_aligned_columns():
    table = plan_memory(parse_graph(CHAIN)).table()
    assert table == "\n".join([
        "chain: arena 128 B for 6 buffers over 6 kernels (lower bound 68 B, naive 264 B); "
        "write-backs computed into their state's storage: 1 (64 B)",
        "buffer  size  offset  first  last  in place of  into state",
        "%a        64       0      0     1",
        "%b        64       0      1     3  %a",
        "%c         4      64      2     4",
        "%d        64       -      3     5               %s",
        "%e         4      64      4     5  %c",
        "%f        64       0      5     5",
    ])


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_the_plan_draws_as_a_picture(tmp_path, suffix, magic):
    path = plan_memory(parse_graph(CHAIN)).draw(tmp_path / f"plan{suffix}")
    assert path.read_bytes().startswith(magic)


# -- properties over random graphs ---------------------------------------------------------------

SHAPES = [(8, 8), (8, 1), (1, 8), (64,), ()]


@st.composite
def random_graphs(draw, max_steps=20):
    """Random DAGs of elementwise, reduction and movement ops with varied shapes and lifetimes."""
    b = GraphBuilder("random")
    pool = [b.input("x", "f32[8,8]"), b.input("s", "f32[8,8]", tag="state")]
    for _ in range(draw(st.integers(1, max_steps))):
        x = draw(st.sampled_from(pool))
        step = draw(st.sampled_from(["unary", "binary", "reduce", "reshape", "permute"]))
        if step == "unary":
            pool.append(b.op(draw(st.sampled_from(["neg", "exp", "tanh"])), x))
        elif step == "binary" and x.shape != (64,):
            other = draw(st.sampled_from([v for v in pool if v.shape != (64,)]))
            pool.append(b.op(draw(st.sampled_from(["add", "mul"])), x, other))
        elif step == "reduce" and x.shape == (8, 8):
            pool.append(b.sum(x, axes=[draw(st.integers(0, 1))], keepdims=True))
        elif step == "reshape" and x.shape in ((8, 8), (64,)):
            pool.append(b.reshape(x, shape=(64,) if x.shape == (8, 8) else (8, 8)))
        elif step == "permute" and x.shape == (8, 8):
            pool.append(b.permute(x, dims=[1, 0]))
    computed = pool[2:] or [b.neg(pool[0])]
    b.output(computed[-1], *draw(st.lists(st.sampled_from(computed), max_size=2, unique=True)))
    square = [n for n in computed if n.shape == (8, 8)]
    if square and draw(st.booleans()):
        b.write(pool[1], draw(st.sampled_from(square)))
    return b.build()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(), st.booleans())
def test_random_plans_are_safe_and_between_their_bounds(graph, fused):
    if fused:
        graph = fuse(graph)
    plan = plan_memory(graph)
    check_plan(plan)
    assert plan.kernel_count == count_kernels(graph)
    assert [b.name for b in plan.buffers] == [v.name for v in kernel_buffers(graph).values()]
    assert plan.lower_bound_bytes <= plan.arena_bytes
    assert plan.arena_bytes <= sum(-(-b.size // ALIGNMENT) * ALIGNMENT for b in plan.buffers)
    returned = {n.name for n in graph.outputs} | {v.name for _, v in graph.writes}
    for buffer in plan.buffers:
        if buffer.name in returned:
            assert buffer.last_use == plan.kernel_count - 1
    written = {target.name: value.name for target, value in graph.writes}
    assert all(written[buffer.into_state] == buffer.name for buffer in plan.donated)


# -- a real training step ----------------------------------------------------------------------

def test_a_lenet_training_step_fits_within_a_tenth_of_its_lower_bound():
    import graphc.optim as optim
    from graphc.passes.manager import run_until
    from training_steps import lenet_step_graph
    traced = lenet_step_graph(lambda params: optim.Adam(params, lr=1e-3))
    plan = plan_memory(run_until(traced, "fusion"))
    check_plan(plan)
    assert plan.arena_bytes <= 1.1 * plan.lower_bound_bytes
    assert any(buffer.in_place_of for buffer in plan.buffers)
