import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from optest import check_grad_fd, check_grad_torch, op_gradients, require_torch, run_op

# (input shape, index shape, axis): every axis, negative axes, index smaller than
# input off the axis and larger than it along the axis (repeated picks).
GATHER_CASES = [
    ((3, 4), (3, 4), 0), ((3, 4), (2, 6), 1), ((3, 4), (3, 2), -1),
    ((2, 3, 4), (2, 3, 4), 0), ((2, 3, 4), (1, 5, 2), 1), ((2, 3, 4), (2, 2, 3), -1), ((2, 3, 4), (1, 3, 4), -3),
    ((5,), (7,), 0),
]
# (input shape, index shape, src shape, axis): src may be larger than index.
SCATTER_CASES = [
    ((3, 4), (5, 4), (5, 4), 0), ((3, 4), (3, 6), (3, 6), 1), ((3, 4), (2, 3), (4, 5), -1),
    ((2, 3, 4), (3, 2, 4), (3, 3, 4), 0), ((2, 3, 4), (2, 5, 3), (2, 5, 3), -2), ((2, 3, 4), (1, 2, 6), (2, 2, 6), 2),
]


def random_index(shape, size, rng):
    """int64 values in [0, size); with more picks than size there are duplicates."""
    return rng.integers(0, size, shape).astype(np.int64)


# -- gather -------------------------------------------------------------------------------

@pytest.mark.parametrize("input_shape,index_shape,axis", GATHER_CASES)
def test_gather_matches_torch(input_shape, index_shape, axis):
    torch = require_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(np.float32)
    index = random_index(index_shape, input_shape[axis], rng)
    want = torch.gather(torch.tensor(x), axis, torch.tensor(index)).numpy()
    np.testing.assert_array_equal(run_op("gather", [x, index], axis=axis), want)
    check_grad_torch("gather", [x, index], lambda a, i: torch.gather(a, axis, i), axis=axis)


def test_gather_keeps_integer_dtype():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = run_op("gather", [x, np.array([[2, 0, 1, 2]])], axis=0)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [[8, 1, 6, 11]])


@pytest.mark.parametrize("input_shape,index_shape,axis", [((3, 4), (4, 2), 0), ((2, 3, 2), (2, 2, 3), -1)])
def test_gather_gradient_finite_differences(input_shape, index_shape, axis):
    rng = np.random.default_rng(1)
    index = random_index(index_shape, input_shape[axis], rng)
    check_grad_fd("gather", [rng.standard_normal(input_shape), index], axis=axis)


# -- scatter_add ---------------------------------------------------------------------------

@pytest.mark.parametrize("input_shape,index_shape,src_shape,axis", SCATTER_CASES)
def test_scatter_add_matches_torch(input_shape, index_shape, src_shape, axis):
    torch = require_torch()
    rng = np.random.default_rng(2)
    x = rng.standard_normal(input_shape).astype(np.float32)
    src = rng.standard_normal(src_shape).astype(np.float32)
    index = random_index(index_shape, input_shape[axis], rng)
    want = torch.tensor(x).scatter_add(axis, torch.tensor(index), torch.tensor(src)).numpy()
    np.testing.assert_allclose(run_op("scatter_add", [x, index, src], axis=axis), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("input_shape,index_shape,src_shape,axis",
                         [case for case in SCATTER_CASES if case[1] == case[2]])
def test_scatter_add_gradient_matches_torch(input_shape, index_shape, src_shape, axis):
    # PyTorch differentiates src only where src has index's shape.
    require_torch()
    rng = np.random.default_rng(3)
    x = rng.standard_normal(input_shape).astype(np.float32)
    src = rng.standard_normal(src_shape).astype(np.float32)
    index = random_index(index_shape, input_shape[axis], rng)
    check_grad_torch("scatter_add", [x, index, src], lambda a, i, s: a.scatter_add(axis, i, s), axis=axis)


@pytest.mark.parametrize("input_shape,index_shape,src_shape,axis",
                         [((3, 2), (4, 2), (4, 2), 0), ((2, 3), (2, 2), (2, 4), -1),
                          ((2, 2, 3), (1, 2, 2), (2, 3, 2), 1)])
def test_scatter_add_gradient_finite_differences(input_shape, index_shape, src_shape, axis):
    # Includes src larger than index: its unread elements get zero gradient.
    rng = np.random.default_rng(4)
    x, src = rng.standard_normal(input_shape), rng.standard_normal(src_shape)
    index = random_index(index_shape, input_shape[axis], rng)
    check_grad_fd("scatter_add", [x, index, src], axis=axis)


def test_scatter_add_accumulates_duplicates():
    x = np.zeros(3, np.float32)
    got = run_op("scatter_add", [x, np.array([0, 2, 0, 0]), np.array([1.0, 2.0, 3.0, 4.0], np.float32)], axis=0)
    np.testing.assert_array_equal(got, [8.0, 0.0, 2.0])


# -- one_hot ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,num_classes", [((5,), 5), ((2, 3), 7), ((), 3)])
def test_one_hot_matches_torch(shape, num_classes):
    torch = require_torch()
    index = random_index(shape, num_classes, np.random.default_rng(5))
    got = run_op("one_hot", [index], num_classes=num_classes)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, torch.nn.functional.one_hot(torch.tensor(index), num_classes).numpy())


def test_one_hot_other_dtypes():
    got = run_op("one_hot", [np.array([[2, 0]], np.int32)], num_classes=3, dtype="f32")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[[0, 0, 1], [1, 0, 0]]])


def test_one_hot_is_not_differentiable():
    index = np.array([0, 1])
    grads = op_gradients("one_hot", [index], np.ones((2, 2), np.float32), num_classes=2, dtype="f32")
    assert grads == [None]


# -- errors ----------------------------------------------------------------------------------------

def _build(op, types, **attrs):
    b = GraphBuilder()
    return b.op(op, *(b.input(f"x{i}", t) for i, t in enumerate(types)), **attrs)


@pytest.mark.parametrize("op,types,attrs,message", [
    ("gather", ["f32[3,4]", "i32[3,4]"], dict(axis=0), "index must be i64, got i32"),
    ("gather", ["f32[3,4]", "i64[3]"], dict(axis=0), "index has rank 1 but input has rank 2; they must match"),
    ("gather", ["f32[3,4]", "i64[2,5]"], dict(axis=0), "index has size 5 in dimension 1 but input has only 4"),
    ("gather", ["f32[3,4]", "i64[3,4]"], dict(axis=2), "axis 2 is out of range for a rank-2 tensor"),
    ("gather", ["f32[]", "i64[]"], dict(axis=0), "input must have at least one dimension"),
    ("scatter_add", ["f32[3,4]", "i64[2,4]", "f64[2,4]"], dict(axis=0), "src has dtype f64 but input has f32"),
    ("scatter_add", ["f32[3,4]", "i64[2,4]", "f32[8]"], dict(axis=0), "src has rank 1 but input has rank 2"),
    ("scatter_add", ["f32[3,4]", "i64[2,4]", "f32[2,3]"], dict(axis=0),
     "index has size 4 in dimension 1 but src has only 3"),
    ("scatter_add", ["f32[3,4]", "i64[3,5]", "f32[3,5]"], dict(axis=0),
     "index has size 5 in dimension 1 but input has only 4"),
    ("one_hot", ["f32[3]"], dict(num_classes=3), "index must have an integer dtype, got f32"),
    ("one_hot", ["i64[3]"], dict(num_classes=0), "num_classes must be positive, got 0"),
])
def test_bad_indexing_raises_shape_error(op, types, attrs, message):
    with pytest.raises(ShapeError, match=f"{op}: {message}"):
        _build(op, types, **attrs)


def test_out_of_range_index_values_raise_when_run():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(IndexError, match=r"gather: index value 4 is out of range \[0, 4\) along axis 1"):
        run_op("gather", [x, np.array([[0, 4]])], axis=-1)
    with pytest.raises(IndexError, match=r"gather: index value -1 is out of range \[0, 3\) along axis 0"):
        run_op("gather", [x, np.array([[-1]])], axis=0)
    with pytest.raises(IndexError, match=r"scatter_add: index value 3 is out of range \[0, 3\) along axis 0"):
        run_op("scatter_add", [x, np.array([[3]]), np.ones((1, 1), np.float32)], axis=0)
    with pytest.raises(IndexError, match=r"one_hot: class value 5 is out of range \[0, 5\)"):
        run_op("one_hot", [np.array([1, 5])], num_classes=5)
    with pytest.raises(IndexError, match=r"one_hot: class value -2 is out of range \[0, 5\)"):
        run_op("one_hot", [np.array([-2])], num_classes=5)
