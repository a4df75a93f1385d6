import time

import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from optest import check_grad_fd, check_grad_torch, op_gradients, require_torch, run_op

# (input shape, weight shape, attrs) for conv2d: weight is [O, C/groups, kh, kw].
CONV2D_CASES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 7), (5, 3, 3, 2), {"stride": (2, 2), "padding": (1, 1)}),       # sizes the stride leaves over
    ((1, 2, 10, 9), (3, 2, 3, 3), {"dilation": (2, 3), "padding": (2, 0)}),
    ((2, 4, 7, 6), (6, 2, 2, 3), {"groups": 2, "stride": (1, 2)}),
    ((2, 4, 6, 6), (4, 1, 3, 3), {"groups": 4, "padding": (1, 1)}),             # depthwise
    ((1, 3, 5, 11), (2, 3, 1, 4), {"stride": (3, 1), "padding": (0, 2), "dilation": (1, 2)}),
]

# (input shape, weight shape, attrs) for conv_transpose2d: weight is [Cin, Cout/groups, kh, kw].
CONV_TRANSPOSE2D_CASES = [
    ((2, 4, 4, 4), (4, 3, 4, 4), {"stride": (2, 2), "padding": (1, 1)}),       # DCGAN's upsampling layer
    ((2, 3, 5, 4), (3, 2, 3, 3), {"stride": (2, 2), "padding": (1, 1), "output_padding": (1, 1)}),
    ((1, 4, 3, 5), (4, 2, 3, 2), {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2),
                                  "groups": 2, "dilation": (1, 2)}),
    ((1, 2, 4, 3), (2, 3, 3, 3), {"dilation": (2, 3), "output_padding": (1, 2)}),  # output_padding >= stride
    ((2, 3, 3, 3), (3, 1, 2, 2), {"groups": 3}),
]


def _arrays(x_shape, w_shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)


def _torch_weight_grad(torch, x, grad_output, weight_shape, attrs):
    """conv2d's weight gradient in torch, kept differentiable in x and grad_output."""
    weight = torch.zeros(weight_shape, dtype=x.dtype, requires_grad=True)
    out = torch.nn.functional.conv2d(x, weight, **attrs)
    (grad,) = torch.autograd.grad(out, weight, grad_output, create_graph=True)
    return grad


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV2D_CASES)
def test_conv2d_matches_torch(x_shape, w_shape, attrs):
    torch = require_torch()
    F = torch.nn.functional
    x, w = _arrays(x_shape, w_shape)
    want = F.conv2d(torch.tensor(x), torch.tensor(w), **attrs).numpy()
    got = run_op("conv2d", [x, w], **attrs)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    check_grad_torch("conv2d", [x, w], lambda a, b: F.conv2d(a, b, **attrs), **attrs)


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_TRANSPOSE2D_CASES)
def test_conv_transpose2d_matches_torch(x_shape, w_shape, attrs):
    torch = require_torch()
    F = torch.nn.functional
    x, w = _arrays(x_shape, w_shape)
    want = F.conv_transpose2d(torch.tensor(x), torch.tensor(w), **attrs).numpy()
    got = run_op("conv_transpose2d", [x, w], **attrs)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    check_grad_torch("conv_transpose2d", [x, w], lambda a, b: F.conv_transpose2d(a, b, **attrs), **attrs)


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV2D_CASES)
def test_conv2d_weight_grad_matches_torch(x_shape, w_shape, attrs):
    torch = require_torch()
    x, w = _arrays(x_shape, w_shape)
    out_shape = run_op("conv2d", [x, w], **attrs).shape
    grad_output = np.random.default_rng(1).standard_normal(out_shape).astype(np.float32)
    kernel_size = w_shape[2:]
    want = _torch_weight_grad(torch, torch.tensor(x), torch.tensor(grad_output), w_shape, attrs)
    got = run_op("conv2d_weight_grad", [x, grad_output], kernel_size=kernel_size, **attrs)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-4)
    check_grad_torch("conv2d_weight_grad", [x, grad_output],
                     lambda a, g: _torch_weight_grad(torch, a, g, w_shape, attrs),
                     kernel_size=kernel_size, **attrs)


# Tiny float64 cases for finite differences (every element is perturbed twice).
FD_CASES = [
    ((1, 2, 4, 5), (2, 2, 2, 3), {"stride": (2, 1), "padding": (1, 1)}),
    ((1, 2, 5, 4), (2, 1, 2, 2), {"groups": 2, "dilation": (2, 1), "stride": (1, 2)}),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", FD_CASES)
def test_conv2d_gradient_finite_differences(x_shape, w_shape, attrs):
    check_grad_fd("conv2d", _arrays(x_shape, w_shape, np.float64), **attrs)


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((1, 2, 3, 2), (2, 2, 3, 2), {"stride": (2, 2), "padding": (1, 0), "output_padding": (1, 1)}),
    ((1, 2, 2, 3), (2, 1, 2, 2), {"groups": 2, "dilation": (3, 1), "output_padding": (2, 0)}),
])
def test_conv_transpose2d_gradient_finite_differences(x_shape, w_shape, attrs):
    check_grad_fd("conv_transpose2d", _arrays(x_shape, w_shape, np.float64), **attrs)


@pytest.mark.parametrize("x_shape,w_shape,attrs", FD_CASES)
def test_conv2d_weight_grad_gradient_finite_differences(x_shape, w_shape, attrs):
    x, w = _arrays(x_shape, w_shape, np.float64)
    out_shape = run_op("conv2d", [x, w], **attrs).shape
    grad_output = np.random.default_rng(2).standard_normal(out_shape)
    check_grad_fd("conv2d_weight_grad", [x, grad_output], kernel_size=w_shape[2:], **attrs)


def _build_op(op, types, **attrs):
    b = GraphBuilder()
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    return b.op(op, *inputs, **attrs)


@pytest.mark.parametrize("op,types,attrs,message", [
    ("conv2d", ["f32[8,4,32,32]", "f32[16,3,3,3]"], {},
     r"conv2d: input has 4 channels but weight expects 3 \(input f32\[8,4,32,32\], weight f32\[16,3,3,3\]\)"),
    ("conv2d", ["f32[1,4,8,8]", "f32[6,1,3,3]"], {"groups": 2},
     r"input has 4 channels but weight expects 2 \(1 per group x 2 groups\)"),
    ("conv2d", ["f32[1,4,8,8]", "f32[5,2,3,3]"], {"groups": 2},
     "5 weight output channels are not divisible by groups=2"),
    ("conv2d", ["f32[1,2,3,3]", "f32[4,2,5,5]"], {},
     "conv2d: input 3x3 is smaller than the dilated kernel 5x5 after padding"),
    ("conv2d", ["f32[1,2,4,4]", "f32[4,2,3,3]"], {"dilation": (2, 2)},
     "input 4x4 is smaller than the dilated kernel 5x5 after padding"),
    ("conv2d", ["f32[1,2,8,8]", "f32[4,2,3,3]"], {"stride": (0, 1)}, r"stride must be positive, got \[0, 1\]"),
    ("conv2d", ["f32[1,2,8,8]", "f32[4,2,3,3]"], {"padding": (-1, 0)},
     r"padding must be non-negative, got \[-1, 0\]"),
    ("conv2d", ["f32[1,2,8,8]", "f32[4,2,3,3]"], {"dilation": (1, 1, 1)},
     r"dilation must have 2 values \(height, width\), got \[1, 1, 1\]"),
    ("conv2d", ["f32[1,2,8,8]", "f32[4,2,3,3]"], {"groups": 0}, "groups must be positive, got 0"),
    ("conv2d", ["f32[2,8,8]", "f32[4,2,3,3]"], {}, "input must be 4-D, got rank 3"),
    ("conv2d", ["f32[1,2,8,8]", "f64[4,2,3,3]"], {}, "dtypes f32 and f64 differ"),
    ("conv2d", ["i64[1,2,8,8]", "i64[4,2,3,3]"], {}, "operands must be floating point, got i64"),
    ("conv_transpose2d", ["f32[1,4,4,4]", "f32[3,2,3,3]"], {},
     "conv_transpose2d: input has 4 channels but weight expects 3"),
    ("conv_transpose2d", ["f32[1,6,4,4]", "f32[6,2,3,3]"], {"groups": 4},
     "6 input channels are not divisible by groups=4"),
    ("conv_transpose2d", ["f32[1,2,4,4]", "f32[2,2,3,3]"], {"stride": (2, 2), "output_padding": (2, 0)},
     r"output_padding \[2, 0\] must be smaller than either stride \[2, 2\] or dilation \[1, 1\]"),
    ("conv_transpose2d", ["f32[1,2,1,1]", "f32[2,3,1,1]"], {"padding": (1, 1)},
     r"padding \[1, 1\] trims away the whole 1x1 result \(output would be -1x-1\)"),
    ("conv2d_weight_grad", ["f32[2,3,8,8]", "f32[2,4,5,5]"], {"kernel_size": (3, 3)},
     "grad_output is 5x5 but conv2d of the 8x8 input gives 6x6"),
    ("conv2d_weight_grad", ["f32[2,3,8,8]", "f32[3,4,6,6]"], {"kernel_size": (3, 3)},
     "input has batch size 2 but grad_output has 3"),
    ("conv2d_weight_grad", ["f32[2,3,8,8]", "f32[2,4,6,6]"], {"kernel_size": (0, 3)},
     r"kernel_size must be positive, got \[0, 3\]"),
])
def test_shape_errors(op, types, attrs, message):
    with pytest.raises(ShapeError, match=message):
        _build_op(op, types, **attrs)


def test_lenet_conv_step_timing():
    # A LeNet first layer at batch 32: forward, then both gradients, on the
    # reference backend.  Printed for the record (speed is never asserted).
    x, w = _arrays((32, 3, 32, 32), (6, 3, 5, 5))
    seed = np.ones((32, 6, 28, 28), np.float32)
    start = time.perf_counter()
    run_op("conv2d", [x, w])
    input_grad, weight_grad = op_gradients("conv2d", [x, w], seed)
    elapsed = time.perf_counter() - start
    assert input_grad.shape == x.shape and weight_grad.shape == w.shape
    print(f"\nLeNet conv 32x3x32x32 * 6x3x5x5: forward + input grad + weight grad in {elapsed * 1e3:.1f} ms")
