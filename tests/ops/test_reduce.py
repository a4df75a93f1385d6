import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from graphc.ops import get_op
from optest import check_grad_fd, check_grad_torch, require_torch, run_op

# (shape, axes) pairs: single, negative, several, every axis, size-1 axes, a scalar.
AXES_CASES = [((2, 3, 4), (1,)), ((2, 3, 4), (-1,)), ((2, 3, 4), (0, -1)), ((2, 3, 4), (0, 1, 2)),
              ((5,), (0,)), ((3, 1, 2), (1,)), ((), (0,))]
TORCH_REDUCTION = {"sum": "sum", "max": "amax", "min": "amin"}


def _torch_reduce(torch, op, t, axes, keepdims):
    return getattr(torch, TORCH_REDUCTION[op])(t, dim=axes, keepdim=keepdims)


@pytest.mark.parametrize("op", sorted(TORCH_REDUCTION))
@pytest.mark.parametrize("shape,axes", AXES_CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_matches_torch(op, shape, axes, keepdims):
    torch = require_torch()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = run_op(op, [x], axes=axes, keepdims=keepdims)
    want = _torch_reduce(torch, op, torch.tensor(x), axes, keepdims).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    check_grad_torch(op, [x], lambda t: _torch_reduce(torch, op, t, axes, keepdims), axes=axes, keepdims=keepdims)


@pytest.mark.parametrize("op", sorted(TORCH_REDUCTION))
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float64])
def test_reduction_keeps_the_input_dtype(op, dtype):
    torch = require_torch()
    x = np.random.default_rng(1).integers(0, 50, (3, 4)).astype(dtype)
    got = run_op(op, [x], axes=[0], keepdims=False)
    assert got.dtype == dtype
    # torch promotes integer sums to int64; the values agree as none overflow here.
    np.testing.assert_array_equal(got, _torch_reduce(torch, op, torch.tensor(x), (0,), False).numpy())


@pytest.mark.parametrize("op", sorted(TORCH_REDUCTION))
def test_empty_axes_reduce_nothing(op):
    x = np.random.default_rng(2).standard_normal((2, 3))
    np.testing.assert_array_equal(run_op(op, [x], axes=[]), x)
    check_grad_fd(op, [x], axes=[])


@pytest.mark.parametrize("op", sorted(TORCH_REDUCTION))
@pytest.mark.parametrize("axes,keepdims", [((1,), False), ((0, 2), True), ((0, 1, 2), False)])
def test_reduction_gradient_finite_differences(op, axes, keepdims):
    x = np.random.default_rng(3).standard_normal((2, 3, 2))
    check_grad_fd(op, [x], axes=axes, keepdims=keepdims)


def test_sum_of_zero_size_axis_is_zero():
    x = np.zeros((0, 3), np.float32)
    np.testing.assert_array_equal(run_op("sum", [x], axes=[0]), np.zeros(3, np.float32))


@pytest.mark.parametrize("op", ["max", "min"])
def test_extremum_ties_share_the_gradient_like_torch(op):
    torch = require_torch()
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 5.0]], np.float32)
    for axes in [(1,), (0,), (0, 1)]:
        check_grad_torch(op, [x], lambda t: _torch_reduce(torch, op, t, axes, False), axes=axes)


@pytest.mark.parametrize("op", ["max", "min"])
def test_extremum_propagates_nan_like_torch(op):
    torch = require_torch()
    x = np.array([[1.0, np.nan, 0.0], [4.0, 2.0, 3.0]], np.float32)
    got = run_op(op, [x], axes=[1])
    np.testing.assert_array_equal(got, _torch_reduce(torch, op, torch.tensor(x), (1,), False).numpy())
    # The NaN row's gradient is NaN throughout (no element equals the result), as in PyTorch.
    check_grad_torch(op, [x], lambda t: _torch_reduce(torch, op, t, (1,), False), axes=[1])


def test_axes_are_canonical():
    b = GraphBuilder()
    x = b.input("x", "f32[2,3,4]")
    assert b.sum(x, axes=[-1, 0]).attrs == {"axes": (0, 2), "keepdims": False}
    assert b.max(b.input("s", "f32[]"), axes=[0]).attrs["axes"] == ()


@pytest.mark.parametrize("shape,axis", [((4, 5), 1), ((4, 5), 0), ((4, 5), -1), ((2, 3, 4), 1), ((6,), 0)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_argmax_matches_torch_and_takes_the_first_tie(shape, axis, keepdims, dtype):
    torch = require_torch()
    x = np.random.default_rng(4).integers(0, 3, shape).astype(dtype)   # small range: many ties
    got = run_op("argmax", [x], axis=axis, keepdims=keepdims)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, torch.tensor(x).argmax(dim=axis, keepdim=keepdims).numpy())


def test_argmax_edge_cases_match_torch():
    torch = require_torch()
    nan = np.array([[1.0, np.nan, 5.0, np.nan]], np.float32)
    np.testing.assert_array_equal(run_op("argmax", [nan], axis=1), torch.tensor(nan).argmax(1).numpy())
    scalar = np.array(2.5, np.float32)
    np.testing.assert_array_equal(run_op("argmax", [scalar], axis=0, keepdims=True),
                                  torch.tensor(scalar).argmax(0, keepdim=True).numpy())
    empty_rows = np.zeros((0, 3), np.float32)
    assert run_op("argmax", [empty_rows], axis=1).shape == (0,)


def test_argmax_has_no_gradient():
    b = GraphBuilder()
    x = b.input("x", "f32[3,4]")
    assert b.argmax(x, axis=-1).type.shape == (3,)
    assert b.argmax(x, axis=-1).attrs["axis"] == 1
    assert not get_op("argmax").differentiable


@pytest.mark.parametrize("op,attrs,message", [
    ("sum", {"axes": [2]}, r"sum: axis 2 is out of range for a rank-2 tensor"),
    ("sum", {"axes": [-3]}, r"sum: axis -3 is out of range for a rank-2 tensor"),
    ("max", {"axes": [0, -2]}, r"max: axes \[0, -2\] name the same axis twice"),
    ("argmax", {"axis": 5}, r"argmax: axis 5 is out of range for a rank-2 tensor \(input f32\[2,0\]\)"),
    ("min", {"axes": [1]}, r"min: cannot take the min over axis 1, which has size 0"),
    ("argmax", {"axis": 1}, r"argmax: cannot take the argmax over axis 1, which has size 0"),
])
def test_bad_axes_are_shape_errors(op, attrs, message):
    b = GraphBuilder()
    x = b.input("x", "f32[2,0]")
    with pytest.raises(ShapeError, match=message):
        b.op(op, x, **attrs)


@pytest.mark.parametrize("op,attrs", [("sum", {"axes": [0]}), ("max", {"axes": [0]}), ("min", {"axes": []}),
                                      ("argmax", {"axis": 0})])
def test_bool_input_is_rejected(op, attrs):
    b = GraphBuilder()
    x = b.input("x", "bool[3]")
    message = rf"{op}: input must be numeric, got bool \(cast it first\) \(input bool\[3\]\)"
    with pytest.raises(ShapeError, match=message):
        b.op(op, x, **attrs)
