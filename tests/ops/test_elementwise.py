import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder
from graphc.ops.registry import OpError
from optest import check_grad_fd, check_grad_torch, require_torch, run_op

UNARY = {
    "neg": lambda t, x: -x, "abs": lambda t, x: x.abs(), "exp": lambda t, x: x.exp(),
    "log": lambda t, x: x.log(), "sqrt": lambda t, x: x.sqrt(), "reciprocal": lambda t, x: x.reciprocal(),
    "sin": lambda t, x: x.sin(), "cos": lambda t, x: x.cos(), "tanh": lambda t, x: x.tanh(),
    "sigmoid": lambda t, x: x.sigmoid(), "relu": lambda t, x: x.relu(),
}
POSITIVE = {"log", "sqrt", "reciprocal"}
BINARY = {
    "add": lambda t, a, b: a + b, "sub": lambda t, a, b: a - b, "mul": lambda t, a, b: a * b,
    "div": lambda t, a, b: a / b, "pow": lambda t, a, b: a ** b,
    "maximum": lambda t, a, b: t.maximum(a, b), "minimum": lambda t, a, b: t.minimum(a, b),
}
COMPARE = {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}
SHAPE_PAIRS = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (2, 3)), ((4, 1, 3), (1, 2, 1))]


def _sample(shape, op, rng, dtype=np.float32):
    x = rng.standard_normal(shape).astype(dtype)
    if op in POSITIVE or op == "pow":
        x = np.abs(x) + 0.5
    return x


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_unary_matches_torch(op, shape):
    torch = require_torch()
    x = _sample(shape, op, np.random.default_rng(0))
    got = run_op(op, [x])
    want = UNARY[op](torch, torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    check_grad_torch(op, [x], lambda a: UNARY[op](torch, a))


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_gradient_finite_differences(op):
    x = _sample((2, 3), op, np.random.default_rng(1), np.float64)
    if op in ("abs", "relu"):
        x[np.abs(x) < 1e-3] = 0.5     # keep away from the kink
    check_grad_fd(op, [x])


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS)
def test_binary_broadcasting_matches_torch(op, shapes):
    torch = require_torch()
    rng = np.random.default_rng(2)
    a, b = (_sample(s, op, rng) for s in shapes)
    got = run_op(op, [a, b])
    want = BINARY[op](torch, torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    check_grad_torch(op, [a, b], lambda x, y: BINARY[op](torch, x, y))


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_gradient_finite_differences(op):
    rng = np.random.default_rng(3)
    a, b = _sample((3, 1), op, rng, np.float64), _sample((1, 4), op, rng, np.float64)
    check_grad_fd(op, [a, b])


def test_maximum_ties_split_gradient_like_torch():
    torch = require_torch()
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([1.0, 5.0, 0.0], np.float32)
    for op in ("maximum", "minimum"):
        check_grad_torch(op, [a, b], lambda x, y: BINARY[op](torch, x, y))


@pytest.mark.parametrize("op", sorted(COMPARE))
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_comparisons(op, dtype):
    torch = require_torch()
    rng = np.random.default_rng(4)
    a = rng.integers(-2, 3, (3, 4)).astype(dtype)
    b = rng.integers(-2, 3, (4,)).astype(dtype)
    got = run_op(op, [a, b])
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, getattr(torch, COMPARE[op])(torch.tensor(a), torch.tensor(b)).numpy())


def test_where_broadcasts_and_differentiates():
    torch = require_torch()
    rng = np.random.default_rng(5)
    cond = rng.random((3, 1)) > 0.5
    x = rng.standard_normal((1, 4)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(run_op("where", [cond, x, y]),
                                  torch.where(torch.tensor(cond), torch.tensor(x), torch.tensor(y)).numpy())
    check_grad_torch("where", [cond, x, y], lambda c, a, b: torch.where(c, a, b))


@pytest.mark.parametrize("src,dst", [("f32", "i32"), ("f32", "i64"), ("f32", "bool"), ("i64", "f32"),
                                      ("f32", "f64"), ("bool", "f32"), ("i32", "u8"), ("f64", "i16")])
def test_cast_matches_torch(src, dst):
    torch = require_torch()
    names = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "bool": "bool",
             "u8": "uint8", "i16": "int16"}
    x = np.array([-2.7, -0.5, 0.0, 0.4, 1.5, 3.9, 100.2], np.float64).astype(names[src])
    got = run_op("cast", [x], dtype=dst)
    want = torch.tensor(x).to(getattr(torch, names[dst])).numpy()
    np.testing.assert_array_equal(got, want)


def test_cast_gradient_between_floats():
    # f32 rounding swamps a tiny step, so difference over a wide one.
    check_grad_fd("cast", [np.random.default_rng(6).standard_normal((2, 3))], dtype="f32", eps=1e-2,
                  rtol=1e-3, atol=1e-4)


def test_binary_dtype_mismatch_is_a_shape_error_naming_everything():
    b = GraphBuilder()
    x = b.input("x", "f32[2,3]")
    y = b.input("y", "i64[3]")
    with pytest.raises(ShapeError, match=r"add: dtypes f32 and i64 differ.*lhs f32\[2,3\], rhs i64\[3\]"):
        b.add(x, y)


def test_broadcast_mismatch_is_a_shape_error():
    b = GraphBuilder()
    x, y = b.input("x", "f32[2,3]"), b.input("y", "f32[4]")
    with pytest.raises(ShapeError, match=r"mul: shapes \[2, 3\] and \[4\] do not broadcast"):
        b.mul(x, y)


def test_transcendental_needs_float():
    b = GraphBuilder()
    with pytest.raises(ShapeError, match="exp: input must be floating point, got i64"):
        b.exp(b.input("x", "i64[2]"))


def test_unknown_op_and_attribute_raise_at_build_time():
    b = GraphBuilder()
    x = b.input("x", "f32[2]")
    with pytest.raises(OpError, match="unknown op 'frobnicate'"):
        b.op("frobnicate", x)
    with pytest.raises(OpError, match=r"cast: unknown attribute 'dtyp'"):
        b.cast(x, dtyp="f64")
    with pytest.raises(OpError, match="cast: missing required attribute 'dtype'"):
        b.cast(x)
    with pytest.raises(OpError, match=r"relu: takes \(input\) but was given 2"):
        b.op("relu", x, x)
