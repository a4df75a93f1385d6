"""Running through the memory plan's arena: a compiled step gives the plain interpreter's results,
and a plan that lets two live values share bytes is caught by the results.

Not bit for bit: numpy's reductions take alignment-dependent SIMD paths, and an arena view sits
at other addresses than a fresh array, so sums may round differently in the last place.
"""
import dataclasses

import numpy as np
import pytest

import graphc
import graphc.optim as optim
import models
from graph_checks import random_inputs
from graphc.backends.reference import run_graph, run_in_arena
from graphc.ir import parse_graph
from graphc.passes.memory import plan_memory
from training_steps import classifier_step, dcgan_step


def compiled_graph(step, args):
    step(*args)                               # the optimizers' state exists from here on
    return step.graph(*args), step.memory_plan(*args)


def lenet():
    model = models.LeNet()
    step = graphc.compile(classifier_step(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9)))
    return compiled_graph(step, (graphc.randn(4, 3, 32, 32), graphc.randint(0, 10, (4,))))


def resnet():
    model = models.ResNet(num_blocks=2)
    step = graphc.compile(classifier_step(model, optim.Adam(model.parameters(), lr=1e-3)))
    return compiled_graph(step, (graphc.randn(2, 3, 32, 32), graphc.randint(0, 10, (2,))))


def dcgan():
    gen, disc = models.Generator(), models.Discriminator()
    opt_g = optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    step = graphc.compile(dcgan_step(graphc, gen, disc, opt_g, opt_d))
    return compiled_graph(step, (graphc.randn(2, 1, 28, 28), graphc.randn(2, 100)))


@pytest.mark.parametrize("make", [lenet, resnet, dcgan], ids=["LeNet", "ResNet", "DCGAN"])
def test_a_compiled_training_step_gives_the_same_results_through_its_arena(make):
    graphc.manual_seed(0)
    graph, plan = make()
    assert any(slot.in_place_of for slot in plan.buffers) and plan.donated
    inputs = random_inputs(graph, int_high=2)
    expected, actual = run_graph(graph, inputs), run_in_arena(graph, plan, inputs)
    for want, got in zip(expected.outputs, actual.outputs):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for name, want in expected.writes.items():
        np.testing.assert_allclose(actual.writes[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


OVERLAPPING = """graph g(%x: f32[4] data) {
  %a = exp(%x) : f32[4]
  %b = neg(%x) : f32[4]
  %c = add(%a, %b) : f32[4]
  return %c
}"""


def test_a_plan_that_shares_live_bytes_corrupts_the_results():
    graph = parse_graph(OVERLAPPING)
    plan = plan_memory(graph)
    inputs = {"x": np.arange(4, dtype=np.float32)}
    np.testing.assert_array_equal(run_in_arena(graph, plan, inputs).outputs[0], run_graph(graph, inputs).outputs[0])
    # %a and %b are both live at %c: putting them in the same bytes must show.
    a, b = plan.slot("a"), plan.slot("b")
    wrong = dataclasses.replace(plan, buffers=[dataclasses.replace(s, offset=a.offset) if s is b else s
                                               for s in plan.buffers])
    assert not np.array_equal(run_in_arena(graph, wrong, inputs).outputs[0], run_graph(graph, inputs).outputs[0])


def test_the_callers_arrays_are_not_touched_by_donated_write_backs():
    graph = parse_graph("""graph g(%w: f32[3] param) {
      %h = full() {shape=[], dtype=f32, value=0.5} : f32[]
      %n = mul(%w, %h) : f32[3]
      return write(%w, %n)
    }""")
    plan = plan_memory(graph)
    assert plan.slot("n").into_state == "w"
    w = np.array([2.0, 4.0, 6.0], np.float32)
    result = run_in_arena(graph, plan, {"w": w})
    np.testing.assert_array_equal(result.writes["w"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w, [2.0, 4.0, 6.0])
