"""The training steps the tests compile, written once (as a user would write them).

Each works with graphc and, where noted, with torch as well, so the same step
runs on both sides of a comparison.
"""
from __future__ import annotations


def classifier_step(model, optimizer, loss_fn=None):
    """zero_grad, forward, loss, backward, update; returns the loss (cross-entropy by default)."""
    if loss_fn is None:
        import graphc.nn.functional as F
        loss_fn = F.cross_entropy

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def dcgan_step(lib, generator, discriminator, opt_g, opt_d):
    """The DCGAN step of the seed code: D on real then on fake.detach(), its update, then G's.

    ``lib`` is ``graphc`` or ``torch``: the step is the same code on either.
    """
    bce = lib.nn.BCELoss()

    def step(real, noise):
        ones, zeros = lib.ones(real.shape[0], 1), lib.zeros(real.shape[0], 1)
        opt_d.zero_grad()
        loss_real = bce(discriminator(real), ones)
        loss_real.backward()
        fake = generator(noise)
        loss_fake = bce(discriminator(fake.detach()), zeros)
        loss_fake.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = bce(discriminator(fake), ones)
        loss_g.backward()
        opt_g.step()
        return loss_real + loss_fake, loss_g
    return step


def lenet_step_graph(make_optimizer, batch: int = 8, warm_up: bool = False):
    """The traced (unoptimized) graph of a LeNet training step; ``warm_up`` runs one eager
    step first so that the optimizer's state exists, as in every step after the first."""
    import graphc
    import models
    model = models.LeNet()
    step = classifier_step(model, make_optimizer(model.parameters()))
    images, labels = graphc.randn(batch, 3, 32, 32), graphc.randint(0, 10, (batch,))
    if warm_up:
        step(images, labels)
    return graphc.compile(step).graph(images, labels, stage="traced")
