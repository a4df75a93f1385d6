import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from optest import check_grad_fd, check_grad_torch, op_gradients, require_torch, run_op

# (input shape, attrs): stride != kernel, padding, dilation, ceil_mode with odd sizes, overlap.
MAX_CASES = [
    ((2, 3, 7, 7), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))),
    ((1, 2, 8, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1), ceil_mode=True)),
    ((2, 1, 5, 6), dict(kernel_size=(3, 2), stride=(2, 2), ceil_mode=True)),
    ((1, 2, 6, 6), dict(kernel_size=(2, 2), stride=(2, 2))),
    ((1, 1, 7, 5), dict(kernel_size=(3, 3), stride=(3, 2), padding=(1, 0), dilation=(1, 2), ceil_mode=True)),
    ((3, 2, 6, 5), dict(kernel_size=(3,), stride=(1,), padding=(1,))),
]
AVG_CASES = [
    ((2, 3, 7, 7), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))),
    ((2, 3, 7, 7), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), count_include_pad=False)),
    ((1, 2, 6, 7), dict(kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True)),
    ((1, 2, 6, 7), dict(kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True,
                        count_include_pad=False)),
    ((2, 1, 5, 5), dict(kernel_size=(2, 2), stride=(2, 2), ceil_mode=True, divisor_override=3)),
    ((1, 2, 5, 6), dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))),
    ((1, 1, 9, 4), dict(kernel_size=(4,), stride=(3,), padding=(2,), ceil_mode=True, count_include_pad=False)),
]
# Small cases for finite differences, which run the op once per input element, twice.
FD_MAX = [((1, 2, 5, 5), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)),
          ((1, 1, 6, 5), dict(kernel_size=(2, 2), stride=(1, 2), dilation=(2, 1)))]
FD_AVG = [((1, 2, 5, 5), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True,
                              count_include_pad=False)),
          ((1, 1, 5, 4), dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), divisor_override=4))]


def torch_max_pool(torch, attrs):
    return lambda x: torch.nn.functional.max_pool2d(
        x, attrs["kernel_size"], attrs["stride"], attrs.get("padding", 0),
        attrs.get("dilation", 1), attrs.get("ceil_mode", False))


def torch_avg_pool(torch, attrs):
    return lambda x: torch.nn.functional.avg_pool2d(
        x, attrs["kernel_size"], attrs["stride"], attrs.get("padding", 0), attrs.get("ceil_mode", False),
        attrs.get("count_include_pad", True), attrs.get("divisor_override"))


def distinct_values(shape, rng, dtype=np.float32):
    """A random permutation, spaced out: no ties, so max pooling's gradient is smooth near it."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 3).astype(dtype)


# -- max_pool2d ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape,attrs", MAX_CASES)
def test_max_pool2d_matches_torch(shape, attrs):
    torch = require_torch()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = torch_max_pool(torch, attrs)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(run_op("max_pool2d", [x], **attrs), want)
    check_grad_torch("max_pool2d", [x], torch_max_pool(torch, attrs), **attrs)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.float64])
def test_max_pool2d_other_dtypes_match_torch(dtype):
    torch = require_torch()
    x = np.random.default_rng(1).integers(0, 200, (2, 2, 5, 5)).astype(dtype)
    attrs = dict(kernel_size=(2, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True)
    got = run_op("max_pool2d", [x], **attrs)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, torch_max_pool(torch, attrs)(torch.tensor(x)).numpy())


@pytest.mark.parametrize("shape,attrs", FD_MAX)
def test_max_pool2d_gradient_finite_differences(shape, attrs):
    check_grad_fd("max_pool2d", [distinct_values(shape, np.random.default_rng(2), np.float64)], **attrs)


@pytest.mark.parametrize("attrs", [dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),
                                   dict(kernel_size=(2, 3), stride=(1, 2), ceil_mode=True),
                                   dict(kernel_size=(3, 3), stride=(2, 1), padding=(1, 1), dilation=(2, 1))])
def test_max_pool2d_grad_ties_and_overlap_match_torch(attrs):
    # Few distinct values and stride < kernel: windows overlap and most contain ties,
    # so the gradient must go to the first maximal element and accumulate.
    torch = require_torch()
    x = np.random.default_rng(3).integers(0, 3, (2, 2, 6, 7)).astype(np.float32)
    check_grad_torch("max_pool2d", [x], torch_max_pool(torch, attrs), **attrs)


def test_max_pool2d_grad_special_values_match_torch():
    # Windows of -inf (padding must not take the gradient), and NaN (the last NaN wins).
    torch = require_torch()
    x = np.full((1, 1, 4, 6), -np.inf, np.float32)
    x[0, 0, :, 3:] = [[1.0, np.nan, 2.0], [np.nan, 5.0, np.nan], [0.0, 0.0, 0.0], [np.nan, np.nan, 1.0]]
    attrs = dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    want = torch_max_pool(torch, attrs)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(run_op("max_pool2d", [x], **attrs), want)
    check_grad_torch("max_pool2d", [x], torch_max_pool(torch, attrs), **attrs)


def test_max_pool2d_grad_direct_call():
    x = np.array([[[[1.0, 3.0, 3.0], [0.0, 2.0, 3.0]]]])
    g = np.array([[[[10.0, 20.0]]]])
    got = run_op("max_pool2d_grad", [x, g], kernel_size=(2, 2), stride=(1, 1))
    np.testing.assert_array_equal(got, [[[[0.0, 30.0, 0.0], [0.0, 0.0, 0.0]]]])


# -- avg_pool2d -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape,attrs", AVG_CASES)
def test_avg_pool2d_matches_torch(shape, attrs):
    torch = require_torch()
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    want = torch_avg_pool(torch, attrs)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(run_op("avg_pool2d", [x], **attrs), want, rtol=1e-5, atol=1e-6)
    check_grad_torch("avg_pool2d", [x], torch_avg_pool(torch, attrs), **attrs)


def test_avg_pool2d_int64_truncates_like_torch():
    torch = require_torch()
    x = np.random.default_rng(5).integers(-50, 50, (2, 2, 5, 5)).astype(np.int64)
    for attrs in (dict(kernel_size=(2, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True),
                  dict(kernel_size=(3, 3), stride=(2, 2), divisor_override=-4)):
        got = run_op("avg_pool2d", [x], **attrs)
        np.testing.assert_array_equal(got, torch_avg_pool(torch, attrs)(torch.tensor(x)).numpy())


@pytest.mark.parametrize("shape,attrs", FD_AVG)
def test_avg_pool2d_gradient_finite_differences(shape, attrs):
    check_grad_fd("avg_pool2d", [np.random.default_rng(6).standard_normal(shape)], **attrs)


@pytest.mark.parametrize("shape,attrs", FD_AVG)
def test_avg_pool2d_grad_is_differentiable(shape, attrs):
    pooled = run_op("avg_pool2d", [np.zeros(shape)], **attrs).shape
    g = np.random.default_rng(7).standard_normal(pooled)
    check_grad_fd("avg_pool2d_grad", [g], input_shape=shape, **attrs)


@pytest.mark.parametrize("shape,attrs", AVG_CASES[:5])
def test_avg_pool2d_grad_matches_torch_backward(shape, attrs):
    torch = require_torch()
    x = torch.zeros(shape, requires_grad=True)
    out = torch_avg_pool(torch, attrs)(x)
    g = np.random.default_rng(8).standard_normal(tuple(out.shape)).astype(np.float32)
    out.backward(torch.tensor(g))
    got = run_op("avg_pool2d_grad", [g], input_shape=shape, **attrs)
    np.testing.assert_allclose(got, x.grad.numpy(), rtol=1e-5, atol=1e-6)


# -- output size and validation, against torch over random geometries ----------------------------------

@settings(max_examples=150, deadline=None)
@given(size=st.tuples(st.integers(1, 9), st.integers(1, 9)), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 4), st.integers(1, 4)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)), ceil_mode=st.booleans(),
       count_include_pad=st.booleans())
def test_pooling_geometry_matches_torch(size, kernel, stride, padding, dilation, ceil_mode, count_include_pad):
    torch = require_torch()
    x = np.random.default_rng(9).standard_normal((1, 2, *size)).astype(np.float32)
    cases = [("max_pool2d", torch_max_pool, dict(dilation=dilation)),
             ("avg_pool2d", torch_avg_pool, dict(count_include_pad=count_include_pad))]
    for op, torch_pool, extra in cases:
        attrs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, **extra)
        try:
            want = torch_pool(torch, attrs)(torch.tensor(x)).numpy()
        except RuntimeError:
            with pytest.raises(ShapeError, match=op):
                run_op(op, [x], **attrs)
            continue
        np.testing.assert_allclose(run_op(op, [x], **attrs), want, rtol=1e-5, atol=1e-6)


# -- errors ------------------------------------------------------------------------------------

def _pool(op, type_text, **attrs):
    b = GraphBuilder()
    return b.op(op, b.input("x", type_text), **attrs)


@pytest.mark.parametrize("op,type_text,attrs,message", [
    ("max_pool2d", "f32[1,1,5,5]", dict(kernel_size=(3, 3), stride=(1, 1), padding=(2, 1)),
     r"padding \[2, 1\] is more than half of kernel_size \[3, 3\]"),
    ("max_pool2d", "f32[1,1,5,5]", dict(kernel_size=(0, 2), stride=(1, 1)),
     r"kernel_size must be positive, got \[0, 2\]"),
    ("avg_pool2d", "f32[1,1,5,5]", dict(kernel_size=(2,), stride=(0,)), r"stride must be positive, got \[0, 0\]"),
    ("max_pool2d", "f32[1,1,5,5]", dict(kernel_size=(2,), stride=(1,), dilation=(1, 0)),
     r"dilation must be positive, got \[1, 0\]"),
    ("avg_pool2d", "f32[1,1,5,5]", dict(kernel_size=(2,), stride=(1,), padding=(-1,)),
     r"padding must be non-negative, got \[-1, -1\]"),
    ("max_pool2d", "f32[1,1,5,5]", dict(kernel_size=(2, 2, 2), stride=(1,)),
     r"kernel_size must have 1 or 2 values \(height, width\), got 3"),
    ("max_pool2d", "f32[1,1,2,6]", dict(kernel_size=(2,), stride=(1,), dilation=(2,)),
     r"output size would be 0x4: a 3x3 window does not fit the 2x6 input padded by \[0, 0\]"),
    ("avg_pool2d", "f32[1,5,5]", dict(kernel_size=(2,), stride=(2,)), r"input must be 4-d \(N, C, H, W\), got rank 3"),
    ("max_pool2d", "f32[1,0,5,5]", dict(kernel_size=(2,), stride=(2,)),
     r"input \[1, 0, 5, 5\] has an empty channel or spatial dimension"),
    ("max_pool2d", "bool[1,1,5,5]", dict(kernel_size=(2,), stride=(2,)), "input must be numeric, got bool"),
    ("avg_pool2d", "i32[1,1,5,5]", dict(kernel_size=(2,), stride=(2,)), "input must be f32, f64 or i64"),
    ("avg_pool2d", "f32[1,1,5,5]", dict(kernel_size=(2,), stride=(2,), divisor_override=0),
     "divisor_override must not be zero"),
])
def test_bad_pooling_raises_shape_error(op, type_text, attrs, message):
    with pytest.raises(ShapeError, match=f"{op}: {message}"):
        _pool(op, type_text, **attrs)


def test_pooling_gradient_ops_check_grad_output():
    b = GraphBuilder()
    x = b.input("x", "f32[1,2,6,6]")
    with pytest.raises(ShapeError, match=r"max_pool2d_grad: grad_output has shape \[1, 2, 2, 2\] "
                                         r"but max_pool2d of this input gives \[1, 2, 3, 3\]"):
        b.max_pool2d_grad(x, b.input("g", "f32[1,2,2,2]"), kernel_size=(2,), stride=(2,))
    with pytest.raises(ShapeError, match="max_pool2d_grad: input and grad_output must share one floating-point "
                                         "dtype, got f32 and f64"):
        b.max_pool2d_grad(x, b.input("g64", "f64[1,2,3,3]"), kernel_size=(2,), stride=(2,))
    with pytest.raises(ShapeError, match=r"avg_pool2d_grad: grad_output has shape \[1, 2, 6, 6\] but avg_pool2d "
                                         r"of an input of shape \[1, 2, 9, 9\] gives \[1, 2, 4, 4\]"):
        b.avg_pool2d_grad(x, kernel_size=(3,), stride=(2,), input_shape=(1, 2, 9, 9))


def test_pair_attributes_are_canonical():
    b = GraphBuilder()
    x = b.input("x", "f32[1,1,6,6]")
    short, full = b.max_pool2d(x, kernel_size=(2,), stride=(2,)), b.max_pool2d(x, kernel_size=(2, 2), stride=(2, 2))
    assert short.attrs == full.attrs
    assert short.attrs["padding"] == (0, 0) and short.attrs["dilation"] == (1, 1)


def test_max_pool2d_grad_has_no_second_derivative():
    x = distinct_values((1, 1, 4, 4), np.random.default_rng(10), np.float64)
    g = np.ones((1, 1, 2, 2))
    grads = op_gradients("max_pool2d_grad", [x, g], np.ones((1, 1, 4, 4)), kernel_size=(2,), stride=(2,))
    assert grads == [None, None]
