import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from graphc.ir.types import TensorType
from graphc.ir.dtypes import f32
from optest import check_grad_fd, check_grad_torch, require_torch, run_op

# (input shape, window attrs): the windows of conv2d, strides and padding that leave rows over,
# dilation, a 1x1 window.
CASES = [
    ((2, 3, 8, 8), {"kernel_size": (3, 3), "padding": (1, 1)}),
    ((2, 2, 9, 7), {"kernel_size": (4, 4), "stride": (2, 2), "padding": (1, 1)}),
    ((1, 2, 10, 9), {"kernel_size": (3, 2), "dilation": (2, 3), "padding": (2, 0)}),
    ((1, 3, 5, 11), {"kernel_size": (1, 4), "stride": (3, 1), "padding": (0, 2), "dilation": (1, 2)}),
    ((2, 4, 3, 3), {"kernel_size": (1, 1)}),
]


def _window(attrs):
    return {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), **attrs}


@pytest.mark.parametrize("shape,attrs", CASES)
def test_unfold_matches_torch(shape, attrs):
    torch = require_torch()
    F = torch.nn.functional
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = F.unfold(torch.tensor(x), **_window(attrs)).numpy()
    got = run_op("unfold", [x], **attrs)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    check_grad_torch("unfold", [x], lambda a: F.unfold(a, **_window(attrs)), **attrs)


@pytest.mark.parametrize("shape,attrs", CASES)
def test_fold_matches_torch(shape, attrs):
    torch = require_torch()
    F = torch.nn.functional
    n, c, h, w = shape
    cols = F.unfold(torch.zeros(shape), **_window(attrs)).shape
    x = np.random.default_rng(1).standard_normal(cols).astype(np.float32)
    want = F.fold(torch.tensor(x), output_size=(h, w), **_window(attrs)).numpy()
    got = run_op("fold", [x], output_size=(h, w), **attrs)
    assert got.shape == want.shape == (n, c, h, w)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    check_grad_torch("fold", [x], lambda a: F.fold(a, output_size=(h, w), **_window(attrs)),
                     output_size=(h, w), **attrs)


@pytest.mark.parametrize("layout,order", [("taps_first", (1, 0, 2)), ("taps_last", (0, 2, 1))])
@pytest.mark.parametrize("shape,attrs", CASES[:3])
def test_unfold_layouts(shape, attrs, layout, order):
    torch = require_torch()
    F = torch.nn.functional
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = F.unfold(torch.tensor(x), **_window(attrs)).permute(*order)
    np.testing.assert_array_equal(run_op("unfold", [x], layout=layout, **attrs), want.numpy())
    check_grad_torch("unfold", [x], lambda a: F.unfold(a, **_window(attrs)).permute(*order), layout=layout, **attrs)


@pytest.mark.parametrize("layout,order", [("taps_first", (1, 0, 2)), ("taps_last", (0, 2, 1))])
@pytest.mark.parametrize("shape,attrs", CASES[:3])
def test_fold_layouts(shape, attrs, layout, order):
    # fold reads its columns in unfold's layouts: a transposed convolution's product over the whole
    # batch, [C*kh*kw, N, L], folds as it is stored (graphc.passes.gemm).
    torch = require_torch()
    F = torch.nn.functional
    n, c, h, w = shape
    cols = F.unfold(torch.zeros(shape), **_window(attrs)).shape
    x = np.random.default_rng(1).standard_normal(cols).astype(np.float32)
    laid_out = np.ascontiguousarray(x.transpose(order))
    want = F.fold(torch.tensor(x), output_size=(h, w), **_window(attrs)).numpy()
    got = run_op("fold", [laid_out], output_size=(h, w), layout=layout, **attrs)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    inverse = tuple(order.index(axis) for axis in range(3))
    check_grad_torch("fold", [laid_out], lambda a: F.fold(a.permute(*inverse), output_size=(h, w), **_window(attrs)),
                     output_size=(h, w), layout=layout, **attrs)


def test_unfold_names_the_layouts_it_knows():
    b = GraphBuilder("bad_layout")
    x = b.input("x", TensorType((1, 1, 4, 4), f32))
    with pytest.raises(ShapeError, match="layout must be one of columns, taps_first, taps_last"):
        b.unfold(x, kernel_size=(2, 2), layout="taps_middle")


def test_unfold_and_fold_gradients_finite_differences():
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 4))
    attrs = {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1)}
    check_grad_fd("unfold", [x], **attrs)
    cols = np.random.default_rng(3).standard_normal((1, 12, 15))
    check_grad_fd("fold", [cols], output_size=(5, 4), **attrs)


@pytest.mark.parametrize("op,shape,attrs,message", [
    ("unfold", (2, 3, 8), {"kernel_size": (3, 3)}, "must be 4-D"),
    ("unfold", (1, 1, 2, 2), {"kernel_size": (3, 3)}, "smaller than the dilated kernel"),
    ("unfold", (1, 1, 4, 4), {"kernel_size": (0, 3)}, "kernel_size must be positive"),
    ("fold", (1, 10, 4), {"kernel_size": (3, 3), "output_size": (4, 4)}, "not divisible by the kernel's 9 taps"),
    ("fold", (1, 9, 5), {"kernel_size": (3, 3), "output_size": (4, 4)}, "has 2x2 = 4 windows"),
])
def test_shape_errors(op, shape, attrs, message):
    b = GraphBuilder("bad")
    x = b.input("x", TensorType(shape, f32))
    with pytest.raises(ShapeError, match=message):
        b.op(op, x, **attrs)
