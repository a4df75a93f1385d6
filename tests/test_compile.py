"""graphc.compile: a whole training step traced into one graph, cached per signature."""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
import graphc.optim as optim
from graphc.backends import opencl
from graphc.errors import TraceError
from training_steps import classifier_step, dcgan_step


def make_mlp(seed=0):
    graphc.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def batch(n=4, seed=1):
    rng = np.random.default_rng(seed)
    return graphc.tensor(rng.standard_normal((n, 8)).astype(np.float32)), graphc.tensor(rng.integers(0, 3, n))


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-3),
    lambda p: optim.AdamW(p, lr=0.01, amsgrad=True),
])
def test_compiled_steps_agree_with_eager_step_by_step(make_opt):
    eager_model, compiled_model = make_mlp(), make_mlp()
    eager_opt, compiled_opt = make_opt(eager_model.parameters()), make_opt(compiled_model.parameters())
    eager = classifier_step(eager_model, eager_opt)
    compiled = graphc.compile(classifier_step(compiled_model, compiled_opt))
    for i in range(4):
        x, y = batch(seed=i)
        le, lc = eager(x, y), compiled(x, y)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-6)
        for pe, pc in zip(eager_model.parameters(), compiled_model.parameters()):
            np.testing.assert_allclose(pc.detach().numpy(), pe.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_compiles_once_per_signature_and_again_for_a_new_batch_size():
    model = make_mlp()
    opt = optim.Adam(model.parameters(), lr=0.01)
    step = graphc.compile(classifier_step(model, opt))
    x, y = batch()
    for _ in range(3):
        step(x, y)
    # The first call traces before Adam has state, the second once it has: two traces, then hits.
    assert step.cache_info().compiles == 2
    assert step.cache_info().hits == 1
    # Adam's first step is the same computation with zeros for state: one graph, one program.
    (traced,) = step._cache.values()
    assert traced[0].executable is traced[1].executable
    step(*batch(n=6))
    assert step.cache_info().compiles == 3
    assert step.cache_info().signatures == 2


def test_an_sgd_step_with_momentum_runs_one_program_from_its_first_call():
    model = make_mlp()
    step = graphc.compile(classifier_step(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)))
    x, y = batch()
    for _ in range(3):
        step(x, y)
    # The first call traces before the momentum buffers exist and the second once they do, but
    # without dampening the first update is the later ones' (zeros times the momentum, plus the
    # gradient): the same graph, one program.
    (traced,) = step._cache.values()
    assert step.cache_info().compiles == 2 and traced[0].executable is traced[1].executable


def test_switching_train_and_eval_retraces():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    forward = graphc.compile(model)
    x = graphc.ones(2, 4)
    forward(x)
    model.eval()
    out = forward(x)
    np.testing.assert_allclose(out.numpy(), model(x).detach().numpy())
    assert forward.cache_info().compiles == 2


def stepped_sgd_mlp():
    """An MLP, its compiled SGD-momentum step, and a batch it has taken one step on."""
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = graphc.compile(classifier_step(model, opt))
    x, y = batch()
    step(x, y)
    return model, step, x, y


def test_the_step_graph_has_parameters_state_and_write_backs():
    _, step, x, y = stepped_sgd_mlp()
    graph = step.graph(x, y)
    tags = {n.name: n.tag for n in graph.inputs}
    assert tags["x"] == "data" and tags["model.0.weight"] == "param"
    assert tags["optimizer.state.model.0.weight.momentum_buffer"] == "state"
    written = {t.name for t, _ in graph.writes}
    assert {"model.0.weight", "model.2.bias", "optimizer.state.model.0.weight.momentum_buffer"} <= written
    assert graphc.parse_graph(str(graph)) == graph


def test_item_inside_a_compiled_function_is_a_trace_error_naming_the_line():
    model = make_mlp()

    @graphc.compile
    def bad(x):
        return model(x) * model(x).sum().item()
    with pytest.raises(TraceError, match=r"\.item\(\).*test_compile\.py:\d+"):
        bad(batch()[0])


def test_dropout_masks_are_fresh_each_call_and_reproducible_under_a_seed():
    def run():
        graphc.manual_seed(7)
        drop = graphc.compile(lambda x: F.dropout(x, 0.5, training=True))
        x = graphc.ones(64)
        return drop(x).numpy().copy(), drop(x).numpy().copy()
    a1, a2 = run()
    b1, b2 = run()
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert set(np.unique(a1)) <= {0.0, 2.0}


def make_gan():
    graphc.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    disc = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
    opt_g = optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return gen, disc, dcgan_step(graphc, gen, disc, opt_g, opt_d)


def test_a_gan_step_with_two_optimizers_and_detach_compiles_to_one_graph():
    gen_e, disc_e, eager = make_gan()
    gen_c, disc_c, step = make_gan()
    compiled = graphc.compile(step)
    real, noise = graphc.randn(5, 8), graphc.randn(5, 4)
    for _ in range(3):
        (ld_e, lg_e), (ld_c, lg_c) = eager(real, noise), compiled(real, noise)
        np.testing.assert_allclose([ld_c.item(), lg_c.item()], [ld_e.item(), lg_e.item()], rtol=1e-6)
        for pe, pc in zip([*gen_e.parameters(), *disc_e.parameters()], [*gen_c.parameters(), *disc_c.parameters()]):
            np.testing.assert_allclose(pc.detach().numpy(), pe.detach().numpy(), rtol=1e-5, atol=1e-7)
    graph = compiled.graph(real, noise)
    written = {t.name for t, _ in graph.writes}
    assert any(n.startswith("generator.") for n in written) and any(n.startswith("discriminator.") for n in written)
    assert compiled.cache_info().compiles == 2


def test_compiled_results_keep_the_returned_structure():
    f = graphc.compile(lambda x: {"a": x * 2, "b": (x + 1, x.sum())})
    out = f(graphc.ones(3))
    assert set(out) == {"a", "b"} and isinstance(out["b"], tuple)
    np.testing.assert_array_equal(out["b"][1].numpy(), 3.0)


def test_keyword_arguments_are_bound_to_their_positions():
    f = graphc.compile(lambda x, scale=2.0: x * scale)
    x = graphc.ones(3)
    np.testing.assert_array_equal(f(x, scale=3.0).numpy(), [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(f(x=x).numpy(), [2.0, 2.0, 2.0])
    assert f.cache_info().compiles == 2


def test_a_step_that_fails_while_running_names_the_line_and_leaves_the_model_as_it_was():
    model, step, x, y = stepped_sgd_mlp()
    before = [p.detach().numpy().copy() for p in model.parameters()]
    with pytest.raises(graphc.OutOfRangeError,
                       match=r"cross_entropy: target 7 is out of bounds for 3 classes at .*training_steps\.py:\d+"):
        step(x, graphc.tensor([0, 1, 2, 7]))          # class 7 of a 3-class model
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), old)


def test_profiling_times_every_kernel_and_leaves_the_model_as_it_was():
    from graphc.passes.fusion import is_kernel
    model, step, x, y = stepped_sgd_mlp()
    before = [p.detach().numpy().copy() for p in model.parameters()]
    profile = step.profile(x, y, runs=2)
    graph = step.graph(x, y)
    assert [k.name for k in profile.kernels] == [n.name for n in graph.nodes if is_kernel(n)]
    assert profile.runs == 2 and all(k.seconds >= 0 for k in profile.kernels)
    assert profile.total_seconds == pytest.approx(sum(k.seconds for k in profile.kernels))
    # Every kernel output counts once, donated write-backs included, as in the plan's naive sum.
    plan = step.memory_plan(x, y)
    assert sum(k.stored_bytes for k in profile.kernels) == plan.naive_bytes
    assert any(k.kind.startswith("contraction: ") for k in profile.kernels)
    table = profile.table(count=3)
    assert table.splitlines()[1].split() == ["kernel", "ms", "share", "stores", "what"]
    assert len(table.splitlines()) == 2 + 3
    for old, new in zip(before, model.parameters()):
        np.testing.assert_array_equal(old, new.detach().numpy())


def test_every_compiled_graph_dumps_into_a_folder_of_its_own(tmp_path):
    model = make_mlp()
    step = graphc.compile(classifier_step(model, optim.SGD(model.parameters(), lr=0.1)), dump_dir=tmp_path)
    evaluate = graphc.compile(lambda x: model(x).argmax(1), dump_dir=tmp_path)
    step(*batch(4))
    step(*batch(6))                   # another signature: another graph named step
    evaluate(batch(4)[0])
    folders = sorted(p.name for p in tmp_path.iterdir())
    # Names count up over the whole process, so only their stems are known here.
    assert [name.split("-")[0] for name in folders] == ["_lambda_", "step", "step"]
    for folder in folders:
        names = {p.name for p in (tmp_path / folder).iterdir()}
        assert "00-input.gir" in names and any(name.endswith("-simplify.gir") for name in names)


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_a_function_of_its_arguments_returns_a_result_of_its_own_every_call(backend):
    """A compiled function that writes no state takes the executable's ``output_of`` (its calls'
    hot path): each call's result is its own (the next call, on the same arrays or others, leaves
    it as it was), and an index out of range in a kernel still fails naming the op and line."""
    f = graphc.compile(lambda x, i: graphc.nn.functional.one_hot(i, 3).float() @ x + 1.0, backend=backend)
    x, other = graphc.randn(3, 2), graphc.randn(3, 2)
    i = graphc.tensor(np.array([0, 2, 1, 2]))
    first = f(x, i)
    kept = first.numpy().copy()
    np.testing.assert_allclose(kept, x.numpy()[[0, 2, 1, 2]] + 1.0, rtol=1e-6)
    np.testing.assert_allclose(f(other, i).numpy(), other.numpy()[[0, 2, 1, 2]] + 1.0, rtol=1e-6)
    f(x, i)
    np.testing.assert_array_equal(first.numpy(), kept)
    with pytest.raises(graphc.OutOfRangeError, match=r"one_hot: class value 5 is out of range \[0, 3\) .*test_compile\.py"):
        f(x, graphc.tensor(np.array([0, 5, 1, 2])))
    np.testing.assert_allclose(f(x, i).numpy(), kept, rtol=1e-6)


def test_a_function_of_its_arguments_called_from_two_threads_runs_each_call_on_its_own_arrays():
    """One executable serves both threads: a call whose arrays are not the ones bound binds them
    under the lock, so neither thread's result is computed from the other's arrays."""
    import threading
    f = graphc.compile(lambda x, w: x @ w)
    w = graphc.randn(96, 1)
    inputs = [graphc.randn(32, 96) for _ in range(2)]
    f(inputs[0], w)
    expected = [x.numpy() @ w.numpy() for x in inputs]
    wrong = []

    def calls(k):
        for _ in range(300):
            result = f(inputs[k], w).numpy()
            if not np.allclose(result, expected[k], rtol=1e-5, atol=1e-5):
                wrong.append(k)
    threads = [threading.Thread(target=calls, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


@pytest.mark.parametrize("backend", ["llvm", "reference", *(("opencl",) if opencl.available() else ())])
def test_a_batch_of_none_compiles_and_runs_as_eager_does(backend):
    """A batch of no images through a Linear layer, a convolution and a pooling, and a training
    step on it: nothing to compute, sums of no terms, no weight moved (the product's tiles are
    not chosen for an empty matrix, whose row count divides by nothing)."""
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 5))
    forward = graphc.compile(lambda x: model(x), backend=backend)
    assert forward(graphc.zeros(0, 3, 8, 8)).shape == (0, 5)
    product = graphc.compile(lambda a, b: (a @ b).relu().sum(0), backend=backend)
    np.testing.assert_array_equal(product(graphc.zeros(0, 3), graphc.ones(3, 4)).numpy(), np.zeros(4, np.float32))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().numpy().copy() for p in model.parameters()]

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction="sum")
        loss.backward()
        opt.step()
        return loss
    assert graphc.compile(step, backend=backend)(graphc.zeros(0, 3, 8, 8), graphc.zeros(0, dtype=graphc.int64)).item() == 0
    for old, new in zip(before, model.parameters()):
        np.testing.assert_array_equal(new.detach().numpy(), old)


def test_gradients_a_compiled_function_computes_and_drops_are_warned_of():
    """A compiled call does not update .grad: a function that calls backward() and leaves the
    optimizer's step outside says so when it compiles, and backward() on what it returns says
    where backward() goes.  A training step, whose step() reads the gradients (all, or some of
    them), says nothing."""
    import warnings
    model = make_mlp()
    x, y = batch()

    def forward_backward(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    with pytest.warns(UserWarning, match=r"forward_backward computes the gradients of model\.0\.weight, model\.0\.bias, "
                                         r"model\.2\.weight, model\.2\.bias with backward\(\).* does not update \.grad"):
        graphc.compile(forward_backward)(x, y)
    with pytest.raises(RuntimeError, match="returned by a graphc.compile'd function"):
        graphc.compile(lambda x, y: F.cross_entropy(model(x), y))(x, y).backward()
    opt = optim.SGD(model.parameters(), lr=0.1)
    first_layer = optim.SGD(model[0].parameters(), lr=0.1)   # the rest's gradients unread, as a GAN's are
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphc.compile(classifier_step(model, opt))(x, y)
        graphc.compile(classifier_step(model, first_layer))(x, y)
