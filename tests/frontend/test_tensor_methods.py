"""Tensor methods and forms from PyTorch tutorials against PyTorch: in-place forms, new_*, mT,
all/any on bools, advanced and bool-mask indexing, assignment through indices, register_hook;
eager and compiled."""
import numpy as np
import pytest

import graphc
from api_check import assert_same, check
from graphc.errors import ShapeError, TraceError
from optest import require_torch

torch = require_torch()

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4)).astype(np.float32)
CUBE = rng.standard_normal((2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("fn", [
    lambda m, x: x.clone().masked_fill_(x > 0, 0.0), lambda m, x: x.clone().clamp_min_(0.1),
    lambda m, x: x.clone().clamp_max_(-0.1), lambda m, x: (x.clamp_min(0.2), x.clamp_max(0.2), m.clamp_min(x, 0)),
    lambda m, x: x.clone().abs_(), lambda m, x: x.clone().floor_(), lambda m, x: x.clone().ceil_(),
    lambda m, x: x.clone().round_(), lambda m, x: x.clone().exp_(), lambda m, x: x.abs().log_(),
    lambda m, x: x.clone().sigmoid_(),
    lambda m, x: x.clone().tanh_(), lambda m, x: x.clone().cumsum_(1), lambda m, x: x.clone().lerp_(x * 2, 0.3),
    lambda m, x: x.clone().index_fill_(1, m.tensor([0, 2]), -1.0), lambda m, x: x.mT, lambda m, x: x.T,
    lambda m, x: (x.sort(1), x.argsort(0), x.topk(2, 1), x.cumsum(0), x.flip(0), x.unbind(1)),
    lambda m, x: (x.round(), x.floor(), x.ceil(), x.trunc(), x.frac()),
    lambda m, x: x.clone().scatter_(1, m.tensor([[0], [2], [1]]), 9.0),
])
def test_methods(fn):
    check(fn, A, rtol=1e-6)


# Values on the bounds 0 and 2 (and on hardtanh's -1 and 1), between and beyond them, and a NaN.
ON_THE_BOUNDS = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, np.nan]], np.float32)


@pytest.mark.parametrize("fn", [
    lambda m, x: x.clamp(0, 2), lambda m, x: x.clamp(min=0), lambda m, x: x.clamp(max=2),
    lambda m, x: (x.clamp_min(0), x.clamp_max(2)), lambda m, x: (m.clamp(x, 0, 2), m.clip(x, max=2)),
    lambda m, x: x.clone().clamp_(0, 2), lambda m, x: x.clamp(2, 0),
], ids=["clamp", "min", "max", "clamp_min/max", "functions", "in-place", "min-above-max"])
def test_clamp_passes_the_whole_gradient_on_its_bounds(fn):
    check(fn, ON_THE_BOUNDS)


def test_clamp_to_tensor_bounds_on_ties():
    low = np.array([[0.0, 0.0, 0.5, 1.0, 0.0, 2.0, 0.0]], np.float32)
    check(lambda m, x, lo, hi: m.clamp(x, lo, hi), ON_THE_BOUNDS, low, np.float32(2.0))


def test_gradients_at_the_kinks_that_differ_from_clamps():
    # hardtanh passes the gradient strictly inside its bounds only, relu's is 0 at 0, and
    # maximum/minimum split it in half at ties: each as PyTorch's.
    check(lambda m, x: (m.nn.functional.hardtanh(x), m.nn.functional.hardtanh(x, 0.0, 2.0), x.relu(),
                        m.maximum(x, m.zeros_like(x)), m.minimum(x, m.full_like(x, 2.0))), ON_THE_BOUNDS[:, :-1])


def test_mT_of_a_batch_and_of_a_vector():
    check(lambda m, x: x.mT, CUBE)
    with pytest.raises(RuntimeError, match="mT"):
        graphc.ones(3).mT


@pytest.mark.parametrize("make", [
    lambda x: x.new_zeros(2, 3), lambda x: x.new_zeros((2,)), lambda x: x.new_ones([1, 2]),
    lambda x: x.new_full((2, 2), 7), lambda x: x.new_tensor([1, 2]), lambda x: x.new_tensor([[1.5]]),
    lambda x: x.new_empty(3).shape, lambda x: x.new_zeros(2, dtype=graphc.int64 if isinstance(x, graphc.Tensor)
                                                           else torch.int64),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_new_tensors_take_the_dtype(make, dtype):
    assert_same(make(graphc.tensor(A.astype(dtype))), make(torch.tensor(A.astype(dtype))))


def test_all_and_any_on_bool_tensors():
    check(lambda m, x: ((x > 0).all(), (x > 0).any(), (x > 0).all(1), (x > -5).all(), (x > 0).any(0, keepdim=True),
                        m.all(x > -9), m.any(x > 9), x.all(), x.any(1), (x[0, 0] > 0).all()), A)


def test_all_and_any_of_a_zero_dim_bool():
    assert graphc.tensor(True).all().item() is True and graphc.tensor(False).any().item() is False


# -- indexing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    lambda m: m.tensor([1, 0, 0]), lambda m: [1, 0], lambda m: (m.tensor([0, 1]), slice(None), m.tensor([3, 2])),
    lambda m: (0, slice(None), [0, 1]), lambda m: (slice(None), [0, 2], [1, 3]), lambda m: (slice(None), None, [0, 1]),
    lambda m: ([0, 1], None, [1, 2]), lambda m: m.tensor(1), lambda m: (m.tensor([[0, 1], [1, 0]]), 2),
    lambda m: (Ellipsis, m.tensor([-1, 0])), lambda m: (slice(1, None), m.tensor([[2], [1]])),
])
def test_integer_tensor_indexing_traces_and_differentiates(key):
    check(lambda m, x: x[key(m)], CUBE)


@pytest.mark.parametrize("key", [
    lambda m, x: x > 0, lambda m, x: x[..., 0] > 0, lambda m, x: (slice(None), m.tensor([True, False, True])),
    lambda m, x: [True, False], lambda m, x: x[:, :, 0] < x[:, :, 1],
])
def test_bool_mask_indexing_is_eager_and_differentiates(key):
    check(lambda m, x: x[key(m, x)], CUBE, compiled=False)


def test_bool_mask_indexing_while_tracing_names_the_line():
    with pytest.raises(TraceError, match=r"bool mask.*test_tensor_methods\.py:\d+"):
        graphc.compile(lambda x: x[x > 0].sum())(graphc.tensor(A))


def masked_assignments(m, x):
    y = x * 1
    y[y > 0.5] = 0.5
    y[x < -0.5] = m.tensor(-1.0)
    rows = x.clone()
    rows[x[:, 0] > 0] = m.tensor([1.0, 2.0, 3.0, 4.0])
    return y, rows


def test_masked_assignment_is_a_where_eager_and_compiled():
    check(masked_assignments, A)


def test_masked_assignment_of_one_value_per_element_is_eager():
    def fn(m, x):
        y = x.clone().detach()
        y[y > 0] = y[y > 0] * 10
        return y
    check(fn, A, compiled=False, grad=False)


def test_integer_index_assignment_eager():
    def fn(m, x):
        y = x.clone().detach()
        y[[0, 2]] = 0.0
        y[m.tensor([1]), 1:3] = m.tensor([5.0, 6.0])
        return y
    check(fn, A, compiled=False, grad=False)


def test_mask_of_the_wrong_shape():
    with pytest.raises(IndexError, match="shape of the mask"):
        x = graphc.zeros(3, 4)
        x[graphc.ones(4, dtype=graphc.bool)] = 1.0


# (key, value): the value a Python scalar or the shape of a random tensor, () for a 0-d one.
ALL = slice(None)
BASIC_ASSIGNMENTS = [
    ((1,), 2.5), ((slice(1, None),), 0.0), ((ALL, 2), (2, 4)), ((ALL, ALL, -1), (2, 3)),
    ((ALL, 1), ()), ((-1, 0), (4,)), ((0, 2, 3), ()), ((1, ALL, 0), (1, 3)),
    ((ALL, 1), (1, 1, 4)), ((..., 0), (3,)), ((0, ...), (1, 4)), ((None, 1), (3, 4)),
    ((ALL, None, 1), (2, 1, 4)), ((slice(0, 2, 2), ALL, slice(1, 4, 2)), (3, 1)),
    ((slice(-2, None), slice(None, None, 2)), (1, 4)), ((ALL, ALL, ALL), (2, 3, 4)), ((slice(5, None),), (4,)),
]


@pytest.mark.parametrize("key,value", BASIC_ASSIGNMENTS, ids=[str(case) for case in BASIC_ASSIGNMENTS])
def test_basic_index_assignment_matches_torch(key, value):
    """Eager, compiled, and the gradients of the tensor written into and of the value, as PyTorch."""
    def assign(m, x, v=value):
        y = x * 1                   # a recorded tensor under autograd, a traced one when compiled
        y[key] = v
        return y
    if isinstance(value, float):
        check(assign, CUBE[:2])
    else:
        check(assign, CUBE[:2], rng.standard_normal(value).astype(np.float32))


def test_assigning_a_value_that_requires_grad_into_a_plain_tensor_reaches_its_gradient():
    def assign(m, row):
        y = m.zeros(3, 4)
        y[:, 1:3] = row
        return y
    check(assign, A[0, :2])


def test_in_place_operators_on_an_indexed_column():
    def scale_columns(m, x):
        y = x * 1
        y[:, 1] *= 3
        y[..., 0] -= y[:, 2]
        return y
    check(scale_columns, A)


def test_assigning_to_a_row_of_a_parameter_under_no_grad():
    def overwrite(m):
        w = m.nn.Parameter(m.tensor(A))
        with m.no_grad():
            w[0] = 5.0
            w[:, -1] = m.tensor([1.0, 2.0, 3.0])
        return w
    g, t = overwrite(graphc), overwrite(torch)
    assert_same(g, t)
    assert g.requires_grad and g.is_leaf


@pytest.mark.parametrize("mode", ["eager", "autograd", "compiled"])
def test_a_value_that_does_not_broadcast_to_the_region_names_both_shapes_and_the_line(mode):
    def assign(x):
        y = x * 1
        y[:, 1] = graphc.ones(4)
        return y
    x = graphc.tensor(A, requires_grad=mode == "autograd")
    with pytest.raises(ShapeError, match=r"setitem: value of shape \[4\] does not fit the indexed region of "
                                         r"shape \[3\] at .*test_tensor_methods\.py:\d+"):
        graphc.compile(assign)(x) if mode == "compiled" else assign(x)


# -- hooks --------------------------------------------------------------------------------------------

def hooked_backward(m):
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.detach().numpy().copy()))
    y = x * 2
    y.register_hook(lambda g: g * 10)
    z = y * y + x
    z.retain_grad()
    handle = z.register_hook(lambda g: g * 1000)
    handle.remove()
    y.register_hook(lambda g: seen.append(g.detach().numpy().copy()))
    (z * m.tensor([1.0, 2.0, 3.0])).sum().backward()
    return x.grad, z.grad, seen


def test_register_hook_sees_and_replaces_gradients_like_torch():
    (gx, gz, g_seen), (tx, tz, t_seen) = hooked_backward(graphc), hooked_backward(torch)
    assert_same(gx, tx)
    assert_same(gz, tz)
    assert len(g_seen) == len(t_seen) == 2
    for a, b in zip(g_seen, t_seen):
        np.testing.assert_allclose(a, b)


def test_hooks_on_a_backward_output_and_on_shared_values():
    def fn(m):
        x = m.tensor([0.5, -1.0], requires_grad=True)
        a = x.exp()
        a.register_hook(lambda g: g + 1)
        b = a * x                                   # a read twice: by b and by the sum below
        b.register_hook(lambda g: g * 3)
        loss = (b + a).sum()
        loss.register_hook(lambda g: g * 2)
        loss.backward()
        return x.grad
    assert_same(fn(graphc), fn(torch))


def test_parameter_hooks_also_run_in_compiled_steps():
    w = graphc.tensor([1.0, -2.0], requires_grad=True)
    w.register_hook(lambda g: g.clamp(-0.5, 0.5))

    @graphc.compile
    def step(x):
        loss = (w * x).sum()
        loss.backward()
        return w.grad
    np.testing.assert_allclose(step(graphc.tensor([3.0, -0.25])).numpy(), [0.5, -0.25])


def test_hooks_on_intermediate_values_while_tracing_are_a_trace_error():
    def fn(x):
        y = x * 2
        y.register_hook(print)
        return y
    with pytest.raises(TraceError, match="register_hook"):
        graphc.compile(fn)(graphc.ones(2, requires_grad=True))


def test_hook_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        graphc.ones(2).register_hook(print)
