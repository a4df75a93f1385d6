"""graphc.Tensor against torch.Tensor: creation, promotion, indexing, math, reductions, in-place ops."""
import numpy as np
import pytest

import graphc
from graphc.errors import ShapeError, TraceError
from optest import require_torch

torch = require_torch()


def same(g, t, rtol=1e-6, atol=1e-6):
    """A graphc result equals a torch one: values, shape and dtype."""
    if isinstance(t, torch.Tensor):
        assert isinstance(g, graphc.Tensor), type(g)
        assert g.dtype.torch_name == str(t.dtype).replace("torch.", ""), (g.dtype, t.dtype)
        assert tuple(g.shape) == tuple(t.shape)
        np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
    else:
        assert g == t


def both(fn, *arrays):
    """Run ``fn`` on graphc tensors and on torch tensors made from the same arrays."""
    return fn(graphc, *[graphc.tensor(a) for a in arrays]), fn(torch, *[torch.tensor(a) for a in arrays])


@pytest.mark.parametrize("data", [[1.5, 2], [1, 2], [True, False], 3.0, 7, [[1, 2], [3, 4]]])
def test_tensor_infers_dtype_like_torch(data):
    same(graphc.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("make", [
    lambda m: m.zeros(2, 3), lambda m: m.ones((2, 3), dtype=m.int64), lambda m: m.full((2,), 7),
    lambda m: m.full((2,), 1.5), lambda m: m.arange(5), lambda m: m.arange(0, 1, 0.25), lambda m: m.eye(3),
    lambda m: m.zeros_like(m.ones(2, dtype=m.int32)), lambda m: m.linspace(0, 1, 5),
])
def test_creation(make):
    same(make(graphc), make(torch))


@pytest.mark.parametrize("expr", [
    lambda m, a, b: a + b, lambda m, a, b: a * 2, lambda m, a, b: 2 - a, lambda m, a, b: a / b,
    lambda m, a, b: a.long() / 2, lambda m, a, b: a.long() * 2.5, lambda m, a, b: a.long() + b,
    lambda m, a, b: a.double() + b, lambda m, a, b: a ** 2, lambda m, a, b: 2 ** a, lambda m, a, b: a @ b.t(),
    lambda m, a, b: (a > 0) & (b < 1), lambda m, a, b: ~(a > 0), lambda m, a, b: a.int() + m.tensor(3),
    lambda m, a, b: m.where(a > 0, a, 0.5), lambda m, a, b: a.clamp(-0.5, 0.5), lambda m, a, b: -a,
    lambda m, a, b: a.abs().sqrt().log(), lambda m, a, b: a.sigmoid() + a.tanh() + a.relu(),
    lambda m, a, b: m.maximum(a, b), lambda m, a, b: a.sum(), lambda m, a, b: a.long().sum(1),
    lambda m, a, b: a.mean(0, keepdim=True), lambda m, a, b: a.var(1), lambda m, a, b: a.std(),
    lambda m, a, b: a.var(0, unbiased=False), lambda m, a, b: a.amax(1), lambda m, a, b: a.argmax(),
    lambda m, a, b: a.argmin(1), lambda m, a, b: a.max(), lambda m, a, b: m.cat([a, b], 1),
    lambda m, a, b: m.stack([a, b], 0), lambda m, a, b: a.softmax(1), lambda m, a, b: a.log_softmax(0),
    lambda m, a, b: a.eq(b), lambda m, a, b: a.sign(), lambda m, a, b: a.square().rsqrt(),
])
def test_math_matches_torch(expr):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    g, t = both(expr, a, b)
    same(g, t, rtol=1e-5)


def test_max_with_dim_returns_values_and_indices():
    a = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]], np.float32)
    g, t = both(lambda m, x: x.max(1, keepdim=True), a)
    same(g.values, t.values)
    same(g.indices, t.indices)
    g, t = both(lambda m, x: m.min(x, 0), a)
    same(g[0], t[0])
    same(g[1], t[1])


@pytest.mark.parametrize("key", [
    0, -1, (1, 2), slice(1, None), (slice(None), 1), (None, 0), (Ellipsis, 1), (slice(0, 3, 2), slice(None, -1)),
    (1, None, slice(2, 4)), (Ellipsis, None),
])
def test_indexing(key):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    g, t = both(lambda m, x: x[key], a)
    same(g, t)


@pytest.mark.parametrize("method,args,shape", [
    ("view", (2, -1), (2, 3, 4)), ("reshape", ((4, 6),), (2, 3, 4)), ("flatten", (), (2, 3, 4)),
    ("flatten", (1,), (2, 3, 4)), ("permute", (1, 0, 2), (2, 3, 4)), ("transpose", (0, 2), (2, 3, 4)),
    ("unsqueeze", (1,), (2, 3, 4)), ("squeeze", (), (2, 1, 3, 1)), ("squeeze", (1,), (2, 1, 3)),
    ("expand", (3, -1, 4, 5), (3, 1, 5)), ("repeat", (2, 1, 3), (2, 3, 4)), ("t", (), (2, 3)),
])
def test_shape_methods(method, args, shape):
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    g, t = both(lambda m, x: getattr(x, method)(*args), a)
    same(g, t)


def test_setitem_and_inplace_match_torch():
    def run(m):
        x = m.zeros(3, 4)
        x[1] = 5
        x[:, 2:] = m.ones(3, 2) * 2
        x[0, 0] = 7
        x.add_(1).mul_(2)
        y = x.clone()
        y.zero_()
        return x, y
    (gx, gy), (tx, ty) = run(graphc), run(torch)
    same(gx, tx)
    same(gy, ty)


def _set_slice(m):
    x = m.arange(3)
    x[1:] = 2.5
    return x


@pytest.mark.parametrize("update", [
    lambda m: m.zeros(3).add_(m.arange(3)), lambda m: m.zeros(3).sub_(m.ones(3, dtype=m.float64)),
    lambda m: m.arange(3, dtype=m.int32).mul_(m.arange(3)), lambda m: m.arange(3).add_(True),
    lambda m: m.arange(3).floor_(), lambda m: m.arange(3).clamp_(0, 1), lambda m: m.arange(3).copy_(m.ones(3) * 1.5),
    lambda m: m.arange(3).fill_(2.7), lambda m: m.arange(3).masked_fill_(m.tensor([True, False, True]), 1.5),
    _set_slice,
], ids=["int-into-float", "f64-into-f32", "i64-into-i32", "bool-into-int", "floor_", "clamp_", "copy_", "fill_",
        "masked_fill_", "setitem"])
def test_inplace_results_are_cast_within_or_up_a_category_like_torch(update):
    same(update(graphc), update(torch))


@pytest.mark.parametrize("update, words", [
    (lambda x: x.add_(1.5), "add_: result type float32 can't be cast to the desired output type int64"),
    (lambda x: x.div_(2), "div_: result type float32"),
    (lambda x: x.sigmoid_(), "sigmoid_: result type float32"),
    (lambda x: x.clamp_(0.5, 1.5), "clamp_: result type float32"),
    (lambda x: x.__imul__(0.5), "mul_: result type float32"),
    (lambda x: (x > 0).add_(1), "add_: result type int64 can't be cast to the desired output type bool"),
])
def test_an_inplace_op_refuses_a_result_its_dtype_would_truncate(update, words):
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        update(torch.arange(3))
    x = graphc.arange(3)
    with pytest.raises(ShapeError, match=r"test_tensor\.py:\d+") as raised:
        update(x)
    assert words in str(raised.value)
    assert x.tolist() == [0, 1, 2]
    with pytest.raises(ShapeError, match="can't be cast"):
        graphc.trace(update, graphc.arange(3))


def test_data_alias_updates_the_tensor_in_place():
    w = graphc.ones(2, 2, requires_grad=True)
    w.data.mul_(3)
    np.testing.assert_array_equal(w.detach().numpy(), np.full((2, 2), 3, np.float32))


def test_numpy_bridge_and_conversions():
    arr = np.arange(6, dtype=np.float32)
    t = graphc.from_numpy(arr)
    arr[0] = 42
    assert t[0].item() == 42
    assert t.tolist()[:2] == [42.0, 1.0]
    assert t.long().dtype == graphc.int64
    assert t.to(graphc.float64).dtype == graphc.float64
    assert t.to("cpu") is t
    assert t.numel() == 6 and t.dim() == 1 and t.size(0) == 6 and t.shape == (6,)
    assert float(graphc.tensor(2.5)) == 2.5
    with pytest.raises(NotImplementedError, match="cuda"):
        t.cuda()


@pytest.mark.parametrize("value, spec", [(0.1235, ".4f"), (0.1235, ""), (7, "d"), (7, ">4"), (2.5, "e"), (True, "")])
def test_a_0d_tensor_formats_as_its_number_like_torch(value, spec):
    grad = isinstance(value, float)
    assert f"{graphc.tensor(value, requires_grad=grad):{spec}}" == f"{torch.tensor(value, requires_grad=grad):{spec}}"


@pytest.mark.parametrize("data", [[0.5], [[1, 2], [3, 4]]])
def test_other_tensors_format_only_with_an_empty_spec_like_torch(data):
    assert f"{graphc.tensor(data)}" == str(graphc.tensor(data))
    for m in (graphc, torch):
        with pytest.raises(TypeError, match="unsupported format string"):
            f"{m.tensor(data):.2f}"


def test_formatting_a_traced_tensor_is_the_trace_error_of_item():
    def fn(x):
        print(f"{x.sum():.2f}")
        return x
    with pytest.raises(TraceError, match=r"\.item\(\) needs a concrete value.*test_tensor\.py:\d+"):
        graphc.trace(fn, graphc.ones(3))


def test_eager_linear_algebra():
    a = np.array([[4.0, 1.0], [2.0, 3.0]], np.float32)
    g, t = both(lambda m, x: m.det(x) if m is graphc else torch.det(x), a)
    same(g, t, rtol=1e-5)
    g, t = both(lambda m, x: m.inverse(x), a)
    same(g, t, rtol=1e-5)
    u, s, vh = graphc.svd(graphc.tensor(a))
    np.testing.assert_allclose(s.numpy(), torch.linalg.svd(torch.tensor(a)).S.numpy(), rtol=1e-5)


def test_linear_algebra_is_eager_only():
    with pytest.raises(TraceError, match=r"det\(\) runs only in eager mode"):
        graphc.trace(lambda x: graphc.det(x), graphc.ones(2, 2))


def test_item_while_tracing_names_the_line():
    def fn(x):
        return x * x.sum().item()
    with pytest.raises(TraceError, match=r"\.item\(\) needs a concrete value.*test_tensor\.py:\d+"):
        graphc.trace(fn, graphc.ones(3))


def test_if_on_a_traced_tensor_is_a_trace_error():
    def fn(x):
        return x if x.sum() > 0 else -x
    with pytest.raises(TraceError, match="bool"):
        graphc.trace(fn, graphc.ones(3))


def test_shape_errors_name_the_op_shapes_and_line():
    with pytest.raises(ShapeError, match=r"add: shapes \[2, 3\] and \[4\] do not broadcast.*test_tensor\.py:\d+"):
        graphc.ones(2, 3) + graphc.ones(4)
    with pytest.raises(ShapeError, match=r"reshape: shape \[5, -1\] is invalid for input of size 6"):
        graphc.ones(2, 3).view(5, -1)


def test_manual_seed_reproduces_draws():
    graphc.manual_seed(3)
    a = graphc.rand(5)
    b = graphc.randn(2, 2)
    graphc.manual_seed(3)
    np.testing.assert_array_equal(a.numpy(), graphc.rand(5).numpy())
    np.testing.assert_array_equal(b.numpy(), graphc.randn(2, 2).numpy())
    assert not np.array_equal(a.numpy(), graphc.rand(5).numpy())


def test_no_grad_and_variable():
    x = graphc.ones(2, requires_grad=True)
    with graphc.no_grad():
        y = x * 2
    assert not y.requires_grad
    assert (x * 2).requires_grad


def test_type_names_follow_torch():
    for dtype in ("float32", "float64", "int64", "int32", "int16", "uint8", "bool"):
        g, t = graphc.zeros(1, dtype=getattr(graphc, dtype)), torch.zeros(1, dtype=getattr(torch, dtype))
        assert g.type() == t.type().replace("torch", "graphc")


def test_the_device_idiom_of_tutorials_runs():
    device = graphc.device("cuda" if graphc.cuda.is_available() else "cpu")
    model = graphc.nn.Linear(2, 2).to(device)
    x = graphc.ones(1, 2).to(device)
    assert model(x).device == device == "cpu"
    assert str(graphc.device("cuda", 1)) == "cuda:1"
    with pytest.raises(NotImplementedError, match="graphc tensors live on the CPU"):
        x.to(graphc.device("cuda:0"))
