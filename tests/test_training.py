"""The example models train for a few steps eagerly and compiled, in step with PyTorch."""
import numpy as np

import graphc
import graphc.nn.functional as F
import graphc.optim as optim
from torch_twins import assert_same_parameters, to_torch, torch, twin
from training_steps import classifier_step, dcgan_step

import models


def data(shape, classes=10, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(graphc.tensor(rng.standard_normal(shape).astype(np.float32)),
             graphc.tensor(rng.integers(0, classes, shape[0]))) for _ in range(n)]


def run_classifier(make_model, make_opt, shape, loss="cross_entropy", mode="train", rtol=1e-4, atol=1e-5):
    graphc.manual_seed(0)
    eager_model = make_model()
    compiled_model = make_model()
    compiled_model.load_state_dict(eager_model.state_dict())
    t_model = twin(eager_model)
    for m in (eager_model, compiled_model, t_model):
        m.train(mode == "train")
    loss_fn = {"cross_entropy": F.cross_entropy, "nll": F.nll_loss}[loss]
    t_loss_fn = {"cross_entropy": torch.nn.functional.cross_entropy, "nll": torch.nn.functional.nll_loss}[loss]
    eager = classifier_step(eager_model, make_opt(eager_model.parameters(), optim), loss_fn)
    compiled = graphc.compile(classifier_step(compiled_model, make_opt(compiled_model.parameters(), optim), loss_fn))
    t_opt = make_opt(t_model.parameters(), torch.optim)
    for step, (x, y) in enumerate(data(shape)):
        t_opt.zero_grad()
        t_loss = t_loss_fn(t_model(to_torch(x)), to_torch(y))
        t_loss.backward()
        t_opt.step()
        le, lc = eager(x, y), compiled(x, y)
        np.testing.assert_allclose(le.item(), t_loss.item(), rtol=rtol)
        np.testing.assert_allclose(lc.item(), t_loss.item(), rtol=rtol)
        assert_same_parameters(eager_model, t_model, rtol, atol, what=f"eager step {step}: ")
        assert_same_parameters(compiled_model, t_model, rtol, atol, what=f"compiled step {step}: ")


def test_lenet_with_sgd_momentum():
    run_classifier(models.LeNet, lambda p, o: o.SGD(p, lr=0.01, momentum=0.9), (4, 3, 32, 32))


def test_cnn_with_sgd_nesterov_and_weight_decay():
    run_classifier(models.CNN, lambda p, o: o.SGD(p, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4),
                   (2, 3, 32, 32))


def test_resnet_with_adam():
    # Adam's first steps move each weight by about lr * sign(grad); a weight whose gradient is as small
    # as eps turns float32 rounding noise into a visible difference.  A larger eps keeps the comparison
    # about the arithmetic, not about the sign of a rounding error.
    run_classifier(models.ResNet, lambda p, o: o.Adam(p, lr=1e-3, eps=1e-3), (2, 3, 32, 32),
                   rtol=2e-4, atol=2e-5)


def test_mnist_net_with_dropout_disabled_matches_torch():
    run_classifier(models.MNISTNet, lambda p, o: o.SGD(p, lr=0.01, momentum=0.5), (4, 1, 28, 28), loss="nll",
                   mode="eval")


def test_mnist_net_with_dropout_agrees_between_eager_and_compiled_under_one_seed():
    results = []
    for compiled in (False, True):
        graphc.manual_seed(1)
        model = models.MNISTNet()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        step = classifier_step(model, opt, F.nll_loss)
        step = graphc.compile(step) if compiled else step
        graphc.manual_seed(2)
        losses = [step(x, y).item() for x, y in data((4, 1, 28, 28))]
        results.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def make_dcgan(lib, generator, discriminator):
    # The generator's Linear biases feed BatchNorm, so their true gradient is 0 and what autodiff
    # computes is rounding noise, which Adam with a tiny eps would blow up to +-lr: see test_resnet_with_adam.
    opt_g = lib.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-3)
    opt_d = lib.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-3)
    return dcgan_step(lib, generator, discriminator, opt_g, opt_d)


def test_dcgan_discriminator_then_generator_steps():
    graphc.manual_seed(0)
    nets = {}
    for kind in ("eager", "compiled"):
        g, d = models.Generator(), models.Discriminator()
        g.apply(models.weights_init)
        d.apply(models.weights_init)
        nets[kind] = (g, d)
    nets["compiled"][0].load_state_dict(nets["eager"][0].state_dict())
    nets["compiled"][1].load_state_dict(nets["eager"][1].state_dict())
    t_g, t_d = twin(nets["eager"][0]), twin(nets["eager"][1])
    eager = make_dcgan(graphc, *nets["eager"])
    compiled = graphc.compile(make_dcgan(graphc, *nets["compiled"]))
    t_step = make_dcgan(torch, t_g, t_d)
    rng = np.random.default_rng(0)
    batch = 4
    for step in range(3):
        real = graphc.tensor(rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32))
        noise = graphc.tensor(rng.standard_normal((batch, 100)).astype(np.float32))
        t_losses = t_step(to_torch(real), to_torch(noise))
        for name, fn in (("eager", eager), ("compiled", compiled)):
            losses = fn(real, noise)
            np.testing.assert_allclose([l.item() for l in losses], [l.item() for l in t_losses], rtol=1e-4)
            g, d = nets[name]
            assert_same_parameters(g, t_g, 2e-4, 2e-5, what=f"{name} step {step} G: ")
            assert_same_parameters(d, t_d, 2e-4, 2e-5, what=f"{name} step {step} D: ")


def test_lenet_learns_a_small_synthetic_task():
    """A loose learning check: the loss on a fixed, learnable task falls clearly (not a timing)."""
    graphc.manual_seed(0)
    rng = np.random.default_rng(0)
    prototypes = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 4, 64)
    images = prototypes[labels] + 0.5 * rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    model = models.LeNet(num_classes=4)
    opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    step = graphc.compile(classifier_step(model, opt, F.cross_entropy))
    losses = []
    for epoch in range(12):
        for i in range(0, 64, 16):
            losses.append(step(graphc.tensor(images[i:i + 16]), graphc.tensor(labels[i:i + 16])).item())
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4]), losses
