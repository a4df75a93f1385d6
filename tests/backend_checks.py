"""Whole-model checks every compiled backend runs against the reference backend, written once.

``tests/backends/test_<backend>.py`` call these with their backend's name: the example
models' training steps, three steps each, must agree with the reference backend's losses
and parameters, and a state returned by a step is its value before the step wrote it.
"""
from __future__ import annotations

import numpy as np

import graphc
import graphc.nn.functional as F
import graphc.optim as optim
import models
from optest import assert_backend_agrees
from training_steps import classifier_step, dcgan_step

CLASSIFIERS = {"lenet": models.LeNet, "cnn": models.CNN, "resnet": models.ResNet, "mnistnet": models.MNISTNet}


def compiled_classifier(name: str, backend: str, seed: int = 0):
    """A fresh example classifier, its optimizer and its training step compiled for ``backend``."""
    graphc.manual_seed(seed)
    model = CLASSIFIERS[name]()
    opt = optim.Adam(model.parameters(), eps=1e-3) if name == "resnet" else \
        optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = F.nll_loss if name == "mnistnet" else F.cross_entropy
    return model, opt, graphc.compile(classifier_step(model, opt, loss), backend=backend)


def classifier_batch(name: str, batch: int = 4):
    rng = np.random.default_rng(1)
    shape = (batch, 1, 28, 28) if name == "mnistnet" else (batch, 3, 32, 32)
    return graphc.tensor(rng.standard_normal(shape).astype(np.float32)), graphc.tensor(rng.integers(0, 10, batch))


def check_classifier_steps(backend: str, name: str) -> None:
    """Three steps of classifier ``name`` on ``backend`` agree with the reference backend
    (mnistnet draws dropout masks: Philox gives both backends the very same masks)."""
    runs = {}
    for each in ("reference", backend):
        model, _, step = compiled_classifier(name, each)
        x, y = classifier_batch(name)
        losses = [step(x, y).item() for _ in range(3)]
        runs[each] = (losses, {k: v.numpy().copy() for k, v in model.state_dict().items()})
    np.testing.assert_allclose(runs[backend][0], runs["reference"][0], rtol=1e-4)
    for key, want in runs["reference"][1].items():
        assert_backend_agrees(backend, f"{name} {key} after 3 steps", runs[backend][1][key], want)


def check_dcgan_step(backend: str, adam_eps: float = 1e-8) -> None:
    """Three DCGAN steps (two Adams) on ``backend`` agree with the reference backend."""
    results = {}
    for each in ("reference", backend):
        graphc.manual_seed(0)
        g, d = models.Generator(), models.Discriminator()
        opt_g = optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=adam_eps)
        opt_d = optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=adam_eps)
        step = graphc.compile(dcgan_step(graphc, g, d, opt_g, opt_d), backend=each)
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(3):
            real = graphc.tensor(rng.uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32))
            noise = graphc.tensor(rng.standard_normal((4, 100)).astype(np.float32))
            losses.append([loss.item() for loss in step(real, noise)])
        results[each] = (losses, g.state_dict()["fc.0.weight"].numpy().copy())
    np.testing.assert_allclose(results[backend][0], results["reference"][0], rtol=1e-4)
    assert_backend_agrees(backend, "generator weight", results[backend][1], results["reference"][1])


def check_returned_state_is_its_old_value(build_executable) -> None:
    """A graph returning a state it also writes back returns the value from before the step
    (found by the pass tests' random graphs: the state was returned after its write-back)."""
    from graphc.ir import GraphBuilder
    from graphc.passes.memory import plan_memory
    b = GraphBuilder("returns_old_state")
    x, w = b.input("x", "f32[3]"), b.input("w", "f32[3]", tag="param")
    new = b.mul(x, 2.0)
    b.output(b.neg(x), w, new)                            # the state before the step, and after it
    b.write(w, new)
    graph = b.build()
    xs, ws = np.array([1, 2, 3], np.float32), np.array([7, 8, 9], np.float32)
    result = build_executable(graph, plan_memory(graph)).run({"x": xs, "w": ws}, in_place=True)
    np.testing.assert_array_equal(result.outputs[0], [-1, -2, -3])
    np.testing.assert_array_equal(result.outputs[1], [7, 8, 9])
    np.testing.assert_array_equal(result.outputs[2], [2, 4, 6])
    np.testing.assert_array_equal(ws, [2, 4, 6])          # and the state was updated in place
