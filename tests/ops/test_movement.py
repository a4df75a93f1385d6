import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from optest import check_grad_fd, check_grad_torch, require_torch, run_op


def _sample(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _check_against_torch(op, x, torch_fn, **attrs):
    """Forward (exactly: no arithmetic happens) and gradient of ``op`` against ``torch_fn``."""
    torch = require_torch()
    got = run_op(op, [x], **attrs)
    want = torch_fn(torch.tensor(x)).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    if x.dtype.kind == "f":
        check_grad_torch(op, [x], torch_fn, **attrs)


def _shape_error(op, input_type, message, **attrs):
    b = GraphBuilder()
    with pytest.raises(ShapeError, match=message):
        b.op(op, b.input("x", input_type), **attrs)


# -- reshape -----------------------------------------------------------------------

@pytest.mark.parametrize("shape,new_shape", [((2, 3, 4), (6, 4)), ((2, 3, 4), (24,)), ((6,), (1, 2, 1, 3)),
                                             ((1,), ()), ((), (1, 1)), ((0, 3), (3, 0, 5))])
def test_reshape_matches_torch(shape, new_shape):
    _check_against_torch("reshape", _sample(shape), lambda t: t.reshape(new_shape), shape=new_shape)


def test_reshape_of_a_non_contiguous_value_matches_torch_view_order():
    torch = require_torch()
    x = _sample((3, 4))
    transposed = run_op("permute", [x], dims=[1, 0])
    got = run_op("reshape", [transposed], shape=[2, 6])
    np.testing.assert_array_equal(got, torch.tensor(x).t().reshape(2, 6).numpy())


def test_reshape_gradient_finite_differences():
    check_grad_fd("reshape", [_sample((2, 3), dtype=np.float64)], shape=[3, 1, 2])


def test_reshape_errors():
    _shape_error("reshape", "f32[2,3]", r"reshape: cannot reshape 6 elements into shape \[4, 2\] \(8 elements\) "
                                        r"\(input f32\[2,3\]\)", shape=[4, 2])
    _shape_error("reshape", "f32[2,3]", r"reshape: shape \[-1, 3\] has a negative size", shape=[-1, 3])


# -- permute -----------------------------------------------------------------------

@pytest.mark.parametrize("shape,dims", [((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (-1, 0, -2)),
                                        ((2, 3, 4, 5), (0, 2, 3, 1)), ((4,), (0,)), ((), ())])
def test_permute_matches_torch(shape, dims):
    _check_against_torch("permute", _sample(shape), lambda t: t.permute(dims), dims=dims)


def test_permute_dims_are_canonical_and_gradient_is_the_inverse():
    b = GraphBuilder()
    assert b.permute(b.input("x", "f32[2,3,4]"), dims=[-1, 0, 1]).attrs["dims"] == (2, 0, 1)
    check_grad_fd("permute", [_sample((2, 3, 4), dtype=np.float64)], dims=[2, 0, 1])


def test_permute_errors():
    _shape_error("permute", "f32[2,3,4]", r"permute: dims \[0, 2, -1\] is not a permutation of the input's 3 axes",
                 dims=[0, 2, -1])
    _shape_error("permute", "f32[2,3,4]", r"permute: dims \[1, 0\] has 2 entries but the input has rank 3",
                 dims=[1, 0])
    _shape_error("permute", "f32[2,3]", r"permute: axis 2 is out of range for a rank-2 tensor", dims=[0, 2])


# -- expand ------------------------------------------------------------------------

@pytest.mark.parametrize("shape,target", [((3, 1), (3, 4)), ((1,), (5,)), ((4,), (2, 3, 4)), ((1, 3, 1), (2, 2, 3, 5)),
                                          ((), (2, 3)), ((2, 3), (2, 3)), ((1,), (0,)), ((3,), (0, 3))])
def test_expand_matches_torch(shape, target):
    _check_against_torch("expand", _sample(shape), lambda t: t.expand(target), shape=target)


def test_expand_gradient_finite_differences():
    check_grad_fd("expand", [_sample((3, 1), dtype=np.float64)], shape=[2, 3, 4])


def test_expand_errors():
    _shape_error("expand", "f32[3,2]", r"expand: input axis 1 has size 2 and cannot expand to 4 "
                                       r"\(only size-1 axes expand\)", shape=[3, 4])
    _shape_error("expand", "f32[2,3,4]", r"expand: cannot expand a rank-3 input to the rank-2 shape \[3, 4\]",
                 shape=[3, 4])
    _shape_error("expand", "f32[1]", r"expand: shape \[-1\] has a negative size", shape=[-1])


# -- slice -------------------------------------------------------------------------

SLICES = [  # (shape, starts, stops, steps), with the same selection written as a Python index
    ((7,), (1,), (5,), (1,)),
    ((7,), (0,), (7,), (2,)),
    ((7,), (-3,), (100,), (1,)),
    ((7,), (-100,), (-2,), (3,)),
    ((7,), (5,), (2,), (1,)),                 # empty
    ((6, 5), (1, 0), (5, 5), (2, 3)),
    ((6, 5), (0, -4), (6, -1), (4, 1)),
    ((3, 4, 5), (0, 1, 4), (3, 4, 5), (1, 2, 1)),
]


def _python_index(starts, stops, steps):
    return tuple(slice(*s) for s in zip(starts, stops, steps))


@pytest.mark.parametrize("shape,starts,stops,steps", SLICES)
def test_slice_matches_torch_indexing(shape, starts, stops, steps):
    index = _python_index(starts, stops, steps)
    _check_against_torch("slice", _sample(shape), lambda t: t[index], starts=starts, stops=stops, steps=steps)


@pytest.mark.parametrize("shape,starts,stops,steps", SLICES)
def test_slice_gradient_finite_differences(shape, starts, stops, steps):
    check_grad_fd("slice", [_sample(shape, dtype=np.float64)], starts=starts, stops=stops, steps=steps)


def test_slice_attrs_are_canonical():
    b = GraphBuilder()
    x = b.input("x", "f32[7,5]")
    same = [b.slice(x, starts=[-100, 1], stops=[100, -1], steps=[3, 2]),
            b.slice(x, starts=[0, 1], stops=[7, 4], steps=[3, 2])]
    assert same[0].attrs == same[1].attrs == {"starts": (0, 1), "stops": (7, 4), "steps": (3, 2)}
    single = b.slice(x, starts=[2, 0], stops=[3, 5], steps=[4, 1])
    assert single.attrs == {"starts": (2, 0), "stops": (3, 5), "steps": (1, 1)}


def test_slice_of_int_values():
    _check_against_torch("slice", np.arange(20, dtype=np.int64).reshape(4, 5), lambda t: t[1:, ::2],
                         starts=[1, 0], stops=[4, 5], steps=[1, 2])


def test_slice_errors():
    _shape_error("slice", "f32[4,5]", r"slice: step 0 on axis 1 is not positive",
                 starts=[0, 0], stops=[4, 5], steps=[1, 0])
    _shape_error("slice", "f32[4,5]", r"slice: step -1 on axis 0 is not positive",
                 starts=[0, 0], stops=[4, 5], steps=[-1, 1])
    _shape_error("slice", "f32[4,5]", r"slice: stops has 1 entries but the input has rank 2",
                 starts=[0, 0], stops=[4], steps=[1, 1])


# -- pad ---------------------------------------------------------------------------

def _torch_pads(pads):
    """graphc's (lo0, hi0, lo1, hi1, ...) as F.pad's (lo_last, hi_last, lo_second_last, ...)."""
    pairs = list(zip(pads[0::2], pads[1::2]))
    return tuple(v for pair in reversed(pairs) for v in pair)


@pytest.mark.parametrize("shape,pads,value", [((3,), (1, 2), 0.0), ((2, 3), (0, 0, 2, 1), -1.5),
                                              ((2, 3, 4), (1, 0, 0, 2, 3, 3), 7.0), ((2, 2), (0, 0, 0, 0), 1.0),
                                              ((0, 2), (1, 1, 0, 0), 2.0)])
def test_pad_matches_torch(shape, pads, value):
    F = require_torch().nn.functional
    _check_against_torch("pad", _sample(shape), lambda t: F.pad(t, _torch_pads(pads), value=value),
                         pads=pads, value=value)


@pytest.mark.parametrize("dtype,value", [(np.int32, 1.7), (np.int32, -1.7), (np.int64, 3), (np.uint8, 255),
                                         (np.bool_, 0.5), (np.bool_, 0)])
def test_pad_value_is_cast_to_the_input_dtype_like_torch(dtype, value):
    F = require_torch().nn.functional
    x = np.arange(1, 4).astype(dtype)
    _check_against_torch("pad", x, lambda t: F.pad(t, (1, 2), value=value), pads=[1, 2], value=value)


def test_pad_gradient_finite_differences():
    check_grad_fd("pad", [_sample((2, 3), dtype=np.float64)], pads=[1, 0, 2, 3], value=4.0)


def test_pad_errors():
    _shape_error("pad", "f32[2,3]", r"pad: pads \[1, -1, 0, 0\] has a negative entry \(use slice to crop\)",
                 pads=[1, -1, 0, 0])
    _shape_error("pad", "f32[2,3]", r"pad: pads has 2 entries but a rank-2 input needs 4 \(lo, hi per axis\)",
                 pads=[1, 1])
    _shape_error("pad", "u8[2]", r"pad: pad value -1 does not fit dtype u8", pads=[1, 1], value=-1)
    _shape_error("pad", "i32[2]", r"pad: pad value nan does not fit dtype i32", pads=[1, 1], value=float("nan"))


# -- concat ------------------------------------------------------------------------

@pytest.mark.parametrize("shapes,axis", [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1),
                                         ([(2, 3), (2, 1)], -1), ([(2, 0, 4), (2, 3, 4)], 1), ([(5,)], 0)])
def test_concat_matches_torch(shapes, axis):
    torch = require_torch()
    arrays = [_sample(s, seed=i) for i, s in enumerate(shapes)]
    got = run_op("concat", arrays, axis=axis)
    np.testing.assert_array_equal(got, torch.cat([torch.tensor(a) for a in arrays], dim=axis).numpy())
    check_grad_torch("concat", arrays, lambda *ts: torch.cat(ts, dim=axis), axis=axis)


def test_concat_gradient_finite_differences():
    arrays = [_sample(s, seed=i, dtype=np.float64) for i, s in enumerate([(2, 1), (2, 3)])]
    check_grad_fd("concat", arrays, axis=-1)


@pytest.mark.parametrize("types,axis,message", [
    (["f32[2,3]", "f32[3,3]"], 1, r"concat: inputs\[1\] has size 3 on axis 0 but inputs\[0\] has 2 "
                                  r"\(only axis 1 may differ\) \(inputs\[0\] f32\[2,3\], inputs\[1\] f32\[3,3\]\)"),
    (["f32[2,3]", "f32[2]"], 0, r"concat: inputs\[1\] has rank 1 but inputs\[0\] has rank 2"),
    (["f32[2]", "i64[2]"], 0, r"concat: inputs\[1\] has dtype i64 but inputs\[0\] has f32 \(cast first\)"),
    (["f32[2]", "f32[2]"], 1, r"concat: axis 1 is out of range for a rank-1 tensor"),
    (["f32[]", "f32[]"], 0, r"concat: rank-0 tensors cannot be concatenated"),
])
def test_concat_errors(types, axis, message):
    b = GraphBuilder()
    xs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    with pytest.raises(ShapeError, match=message):
        b.concat(*xs, axis=axis)
