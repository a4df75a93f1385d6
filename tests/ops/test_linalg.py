import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from optest import check_grad_fd, check_grad_torch, require_torch, run_op

# (lhs shape, rhs shape): plain, batched, and a 2-D operand shared across the batch.
SHAPES = [((3, 4), (4, 5)), ((1, 4), (4, 1)), ((2, 3, 4), (2, 4, 5)),
          ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((3, 1), (1, 2))]


@pytest.mark.parametrize("lhs_shape,rhs_shape", SHAPES)
def test_matmul_matches_torch(lhs_shape, rhs_shape):
    torch = require_torch()
    rng = np.random.default_rng(0)
    a = rng.standard_normal(lhs_shape).astype(np.float32)
    b = rng.standard_normal(rhs_shape).astype(np.float32)
    got = run_op("matmul", [a, b])
    want = torch.matmul(torch.tensor(a), torch.tensor(b)).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    check_grad_torch("matmul", [a, b], torch.matmul)


@pytest.mark.parametrize("lhs_shape,rhs_shape", SHAPES)
def test_matmul_gradient_finite_differences(lhs_shape, rhs_shape):
    rng = np.random.default_rng(1)
    check_grad_fd("matmul", [rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)])


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32, np.int16, np.uint8])
def test_matmul_keeps_the_operand_dtype_like_torch(dtype):
    torch = require_torch()
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, (2, 3, 4)).astype(dtype)
    b = rng.integers(0, 5, (4, 2)).astype(dtype)
    got = run_op("matmul", [a, b])
    want = torch.matmul(torch.tensor(a), torch.tensor(b)).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("lhs,rhs,message", [
    ("f32[2,3]", "f32[4,5]", r"matmul: lhs has 3 columns but rhs has 4 rows \(lhs f32\[2,3\], rhs f32\[4,5\]\)"),
    ("f32[2,3,4]", "f32[5,4,6]", "matmul: batch sizes 2 and 5 differ"),
    ("f32[4]", "f32[4,5]", r"matmul: lhs must be 2-D \[M,K\] or 3-D \[B,M,K\], got rank 1"),
    ("f32[2,3]", "f32[1,2,3,4]", "matmul: rhs must be 2-D .* got rank 4"),
    ("f32[2,3]", "f64[3,4]", "matmul: dtypes f32 and f64 differ"),
    ("bool[2,3]", "bool[3,4]", "matmul: operands must be numeric, got bool"),
])
def test_matmul_shape_errors(lhs, rhs, message):
    b = GraphBuilder()
    x, y = b.input("x", lhs), b.input("y", rhs)
    with pytest.raises(ShapeError, match=message):
        b.matmul(x, y)
