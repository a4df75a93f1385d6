"""Eager autograd: loss.backward() runs graphc's autodiff pass over the recorded ops."""
import numpy as np
import pytest

import graphc
from optest import require_torch

torch = require_torch()


def leaves(m, arrays):
    return [m.tensor(a, requires_grad=True) for a in arrays]


def test_gradients_of_a_composite_expression_match_torch():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(4, 3), (3, 5), (5,)]]

    def loss(m, x, w, b):
        h = (x @ w + b).tanh()
        return ((h * h).mean(0) - h.amax(1).sum() / 3).sum() + m.where(h > 0, h, h * 0.1).var()

    results = []
    for m in (graphc, torch):
        ts = leaves(m, arrays)
        loss(m, *ts).backward()
        results.append([t.grad.numpy() for t in ts])
    for g, t in zip(*results):
        np.testing.assert_allclose(g, t, rtol=1e-5, atol=1e-6)


def test_grad_accumulates_across_backward_calls():
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_backward_twice_through_a_freed_graph_raises_and_retain_graph_allows_it():
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_backward_errors_match_torch_semantics():
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        graphc.tensor([1.0]).sum().backward()
    (x * 2).backward(graphc.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0])


def test_detach_cuts_the_gradient_like_a_gan_discriminator_step():
    g_w = graphc.tensor([2.0], requires_grad=True)
    d_w = graphc.tensor([3.0], requires_grad=True)
    fake = g_w * 5
    d_loss = (fake.detach() * d_w).sum()
    d_loss.backward()
    assert g_w.grad is None
    np.testing.assert_allclose(d_w.grad.numpy(), [10.0])
    g_loss = (fake * d_w).sum()
    g_loss.backward()
    np.testing.assert_allclose(g_w.grad.numpy(), [15.0])


def test_integer_values_get_no_gradient_and_no_grad_records_nothing():
    x = graphc.tensor([1.0, -2.0, 3.0], requires_grad=True)
    idx = x.argmax()
    assert not idx.requires_grad
    with graphc.no_grad():
        assert not (x * 2).requires_grad
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        graphc.tensor([1, 2]).requires_grad_()


def test_inplace_on_a_leaf_that_requires_grad_is_refused():
    w = graphc.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.add_(1)
    with graphc.no_grad():
        w.add_(1)
    np.testing.assert_array_equal(w.detach().numpy(), [2.0, 2.0])


# -- grad mode: a plain call, a with block, a decorator with or without parentheses ------------------------

@pytest.mark.parametrize("m", [graphc, torch], ids=["graphc", "torch"])
def test_grad_modes_work_as_calls_blocks_and_decorators(m):
    x = m.ones(2, requires_grad=True)
    with m.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert m.is_grad_enabled()                  # the block restored the mode it found

    @m.no_grad
    def bare(t):
        return t * 2

    @m.set_grad_enabled(False)
    def decorated(t):
        return t * 2

    @m.inference_mode
    def inferred(t):
        return t * 2

    @m.no_grad()
    def depth(n):
        return depth(n - 1) if n else m.is_grad_enabled()

    assert m.is_grad_enabled()                  # decorating changes nothing outside the function
    assert not any(f(x).requires_grad for f in (bare, decorated, inferred)) and m.is_grad_enabled()
    assert depth(3) is False and m.is_grad_enabled()        # each call restores its own caller's mode
    with m.no_grad():
        assert m.enable_grad(lambda t: t * 2)(x).requires_grad and not m.is_grad_enabled()
    m.set_grad_enabled(False)                   # a plain call sets the mode at once
    try:
        assert not m.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        m.set_grad_enabled(True)


def test_grad_modes_inside_a_compiled_step_cut_the_gradient_as_eager_mode_does():
    w_init = np.array([1.0, 2.0, 3.0], np.float32)
    x_data = np.array([1.0, 1.0, 2.0], np.float32)

    def step(m, w, x):
        @m.no_grad
        def frozen(t):
            return (w * t).sum()
        with m.set_grad_enabled(False):
            scale = (w * x).sum()
        (scale * frozen(x) * w).sum().backward()    # both factors are constants to the gradient
        return w.grad

    expected = step(torch, torch.tensor(w_init, requires_grad=True), torch.tensor(x_data)).numpy()
    w = graphc.tensor(w_init, requires_grad=True)
    np.testing.assert_allclose(step(graphc, w, graphc.tensor(x_data)).numpy(), expected)
    compiled_w = graphc.tensor(w_init, requires_grad=True)
    compiled = graphc.compile(lambda x: step(graphc, compiled_w, x))
    np.testing.assert_allclose(compiled(graphc.tensor(x_data)).numpy(), expected)
    assert graphc.is_grad_enabled()
