import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder, i32, u8
from graphc.ops.registry import OPS
from graphc.passes.autodiff import gradients
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
    # Windows side by side: a global pool, and one whose last rows and columns no window covers.
    ((2, 3, 8, 8), dict(kernel_size=(8, 8), stride=(8, 8))),
    ((1, 2, 7, 11), dict(kernel_size=(3, 2), stride=(3, 2))),
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
    # Window 0 picked tap 1 (row 0, col 1), window 1 tap 0 (row 0, col 1 too): the two add up.
    # Window 2 picked tap 3 of its window; window 3 names no tap (4) and one on padding (tap 2).
    g = np.array([[[[10.0, 20.0, 5.0, 7.0]]]])
    got = run_op("max_pool2d_grad", [g, np.array([[[[1, 0, 3, 4]]]], np.uint8)],
                 kernel_size=(2, 2), stride=(1, 1), input_size=(2, 5))
    np.testing.assert_array_equal(got, [[[[0.0, 30.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0, 0.0]]]])
    # Indices that no argmax makes, naming taps on padding (windows 0 and 1), give nothing.
    g, taps = np.array([[[[1.0, 2.0], [4.0, 8.0]]]]), np.array([[[[2, 0], [1, 0]]]], np.int32)
    padded = run_op("max_pool2d_grad", [g, taps], kernel_size=(2, 2), stride=(1, 1), padding=(1, 1),
                    input_size=(1, 1))
    np.testing.assert_array_equal(padded, [[[[12.0]]]])


# -- max_pool2d_argmax ------------------------------------------------------------------------

def plane_indices(taps, input_hw, attrs):
    """Window-local taps as PyTorch's indices: flat positions in each (H, W) plane."""
    def pair(name):
        values = {"padding": (0,), "dilation": (1,), **attrs}[name]
        return values * 2 if len(values) == 1 else values
    (_, kw), stride, padding, dilation = (pair(name) for name in ("kernel_size", "stride", "padding", "dilation"))
    _, _, out_rows, out_cols = np.indices(taps.shape)
    taps = taps.astype(np.int64)
    rows = out_rows * stride[0] - padding[0] + taps // kw * dilation[0]
    cols = out_cols * stride[1] - padding[1] + taps % kw * dilation[1]
    return rows * input_hw[1] + cols


@pytest.mark.parametrize("values", ["distinct", "ties"])
@pytest.mark.parametrize("shape,attrs", MAX_CASES)
def test_max_pool2d_argmax_matches_torch_indices(shape, attrs, values):
    torch = require_torch()
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) if values == "distinct" else rng.integers(0, 3, shape)).astype(np.float32)
    taps = run_op("max_pool2d_argmax", [x], **attrs)
    _, want = torch.nn.functional.max_pool2d(torch.tensor(x), attrs["kernel_size"], attrs["stride"],
                                             attrs.get("padding", 0), attrs.get("dilation", 1),
                                             attrs.get("ceil_mode", False), return_indices=True)
    assert taps.dtype == np.uint8
    np.testing.assert_array_equal(plane_indices(taps, shape[2:], attrs), want.numpy())


def test_max_pool2d_argmax_special_values_match_torch():
    # NaN wins (the last one), -inf windows point at their first real element, never at padding.
    torch = require_torch()
    x = np.full((1, 1, 4, 6), -np.inf, np.float32)
    x[0, 0, :, 3:] = [[1.0, np.nan, 2.0], [np.nan, 5.0, np.nan], [0.0, 0.0, 0.0], [np.nan, np.nan, 1.0]]
    attrs = dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    taps = run_op("max_pool2d_argmax", [x], **attrs)
    _, want = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 1, 1, return_indices=True)
    np.testing.assert_array_equal(plane_indices(taps, (4, 6), attrs), want.numpy())


def test_a_window_with_no_real_element_has_no_tap_and_no_gradient():
    # Dilation 2 steps from the top padding row over the single input row to the bottom one.
    torch = require_torch()
    attrs = dict(kernel_size=(2, 1), stride=(1, 1), padding=(1, 0), dilation=(2, 1))
    x = np.array([[[[1.0, -2.0, 3.0]]]], np.float32)
    np.testing.assert_array_equal(run_op("max_pool2d_argmax", [x], **attrs), [[[[2, 2, 2]]]])
    np.testing.assert_array_equal(run_op("max_pool2d", [x], **attrs), [[[[-np.inf] * 3]]])
    check_grad_torch("max_pool2d", [x], torch_max_pool(torch, attrs), **attrs)


def test_max_pool2d_argmax_is_u8_up_to_255_taps_then_i32():
    b = GraphBuilder()
    x = b.input("x", "f32[1,1,16,17]")
    assert b.max_pool2d_argmax(x, kernel_size=(15, 17), stride=(1,)).dtype == u8
    assert b.max_pool2d_argmax(x, kernel_size=(16, 16), stride=(1,)).dtype == i32
    image = np.zeros((1, 1, 16, 17), np.float32)
    image[0, 0, 15, 14] = 1.0
    taps = run_op("max_pool2d_argmax", [image], kernel_size=(16, 16), stride=(1,))
    np.testing.assert_array_equal(taps, [[[[15 * 16 + 14, 15 * 16 + 13]]]])
    g = np.array([[[[2.0, 3.0]]]], np.float32)
    grad = run_op("max_pool2d_grad", [g, taps], kernel_size=(16, 16), stride=(1,), input_size=(16, 17))
    assert grad[0, 0, 15, 14] == 5.0 and np.count_nonzero(grad) == 1


def test_max_pool2d_gradient_keeps_indices_not_the_input():
    b = GraphBuilder()
    x = b.input("x", "f32[2,3,8,8]")
    pooled = b.max_pool2d(x, kernel_size=(2,), stride=(2,))
    seed = b.input("seed", pooled.type)
    (grad,) = gradients(b, list(b.nodes), [pooled], [seed], [x])
    indices = grad.inputs[1]
    assert (grad.op, grad.inputs[0], grad.attrs["input_size"]) == ("max_pool2d_grad", seed, (8, 8))
    assert (indices.op, indices.inputs, str(indices.type)) == ("max_pool2d_argmax", (x,), "u8[2,3,4,4]")


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

@settings(max_examples=75, deadline=None)
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
    ("max_pool2d_argmax", "bool[1,1,5,5]", dict(kernel_size=(2,), stride=(2,)), "input must be numeric, got bool"),
    ("max_pool2d_argmax", "f32[1,1,5,5]", dict(kernel_size=(2,), stride=(1,), padding=(2,)),
     r"padding \[2, 2\] is more than half of kernel_size \[2, 2\]"),
    ("avg_pool2d", "i32[1,1,5,5]", dict(kernel_size=(2,), stride=(2,)), "input must be f32, f64 or i64"),
    ("avg_pool2d", "f32[1,1,5,5]", dict(kernel_size=(2,), stride=(2,), divisor_override=0),
     "divisor_override must not be zero"),
])
def test_bad_pooling_raises_shape_error(op, type_text, attrs, message):
    with pytest.raises(ShapeError, match=f"{op}: {message}"):
        _pool(op, type_text, **attrs)


def test_avg_pool2d_grad_checks_grad_output():
    b = GraphBuilder()
    x = b.input("x", "f32[1,2,6,6]")
    with pytest.raises(ShapeError, match=r"avg_pool2d_grad: grad_output has shape \[1, 2, 6, 6\] but avg_pool2d "
                                         r"of an input of shape \[1, 2, 9, 9\] gives \[1, 2, 4, 4\]"):
        b.avg_pool2d_grad(x, kernel_size=(3,), stride=(2,), input_shape=(1, 2, 9, 9))


@pytest.mark.parametrize("grad_output,indices,input_size,message", [
    ("f32[1,2,2,2]", "u8[1,2,3,3]", (6, 6), r"grad_output has shape \[1, 2, 2, 2\] but max_pool2d of an input of "
                                             r"shape \[1, 2, 6, 6\] gives \[1, 2, 3, 3\]"),
    ("f32[1,2,3,3]", "u8[1,2,3,2]", (6, 6), r"indices have shape \[1, 2, 3, 2\] but max_pool2d of an input of "
                                             r"shape \[1, 2, 6, 6\] gives \[1, 2, 3, 3\]"),
    ("i32[1,2,3,3]", "u8[1,2,3,3]", (6, 6), "grad_output must be floating-point, got i32"),
    ("f32[1,2,3,3]", "i64[1,2,3,3]", (6, 6), r"indices must be u8 or i32 \(as max_pool2d_argmax gives\), got i64"),
    ("f32[1,2,3,3]", "u8[1,2,3,3]", (1, 6, 6), r"input_size must have 2 values \(height, width\), got 3"),
    ("f32[2,3,3]", "u8[2,3,3]", (6, 6), r"grad_output must be 4-d \(N, C, H, W\), got rank 3"),
    ("f32[1,2,1,3]", "u8[1,2,1,3]", (1, 6), r"output size would be 0x3"),
])
def test_max_pool2d_grad_checks_its_operands(grad_output, indices, input_size, message):
    b = GraphBuilder()
    with pytest.raises(ShapeError, match=f"max_pool2d_grad: {message}"):
        b.max_pool2d_grad(b.input("g", grad_output), b.input("i", indices), kernel_size=(2,), stride=(2,),
                          input_size=input_size)


def test_pair_attributes_are_canonical():
    b = GraphBuilder()
    x = b.input("x", "f32[1,1,6,6]")
    short, full = b.max_pool2d(x, kernel_size=(2,), stride=(2,)), b.max_pool2d(x, kernel_size=(2, 2), stride=(2, 2))
    assert short.attrs == full.attrs
    assert short.attrs["padding"] == (0, 0) and short.attrs["dilation"] == (1, 1)


def test_max_pool2d_argmax_and_grad_have_no_gradient():
    x = distinct_values((1, 1, 4, 4), np.random.default_rng(10), np.float64)
    taps = run_op("max_pool2d_argmax", [x], kernel_size=(2,), stride=(2,))
    assert op_gradients("max_pool2d_argmax", [x], np.ones((1, 1, 2, 2)), kernel_size=(2,), stride=(2,)) == [None]
    grads = op_gradients("max_pool2d_grad", [np.ones((1, 1, 2, 2)), taps], np.ones((1, 1, 4, 4)),
                         kernel_size=(2,), stride=(2,), input_size=(4, 4))
    assert grads == [None, None]
    assert not OPS["max_pool2d_argmax"].differentiable and not OPS["max_pool2d_grad"].differentiable
