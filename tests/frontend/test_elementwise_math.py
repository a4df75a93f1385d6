"""The composite elementwise functions (atan, erf, floor, ...) against PyTorch: accuracy over the
whole float range, special values, dtypes and gradients, eager and compiled."""
import numpy as np
import pytest

import graphc
from api_check import check
from optest import require_torch

torch = require_torch()

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan]


def wide_range(dtype=np.float32):
    """Values from tiny to huge, both signs, the specials, and a dense grid where the functions bend."""
    magnitudes = np.logspace(-30, 38, 3001)
    grid = np.linspace(-10, 10, 20001)
    return np.concatenate([magnitudes, -magnitudes, grid, SPECIALS]).astype(dtype)


def units_in_last_place(ours: np.ndarray, theirs: np.ndarray) -> float:
    finite = np.isfinite(theirs)
    spacing = np.spacing(np.abs(theirs[finite]).astype(ours.dtype)).astype(np.float64)
    return float(np.max(np.abs(ours[finite].astype(np.float64) - theirs[finite]) / spacing))


def assert_special_values_match(ours: np.ndarray, theirs: np.ndarray):
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    infinite = np.isinf(theirs)
    np.testing.assert_array_equal(ours[infinite], theirs[infinite])
    zero = theirs == 0
    np.testing.assert_array_equal(np.signbit(ours[zero]), np.signbit(theirs[zero]), err_msg="sign of zero")


# name, bound on the error in units in the last place of float32, inputs
ACCURACY = [
    ("atan", 2, wide_range()), ("tan", 3, np.linspace(-10, 10, 20001, dtype=np.float32)),
    ("sinh", 3, wide_range()), ("cosh", 3, wide_range()), ("erf", 2, wide_range()), ("exp2", 1, wide_range()),
    ("asin", 3, np.concatenate([np.linspace(-1, 1, 20001), [1.0000001, -2.0] + SPECIALS]).astype(np.float32)),
    ("acos", 3, np.concatenate([np.linspace(-1, 1, 20001), [1.0000001, -2.0] + SPECIALS]).astype(np.float32)),
    ("trunc", 0, wide_range()), ("floor", 0, wide_range()), ("ceil", 0, wide_range()), ("round", 0, wide_range()),
    ("frac", 0, wide_range()),
]


@pytest.mark.parametrize("name, max_ulp, x", ACCURACY, ids=[a[0] for a in ACCURACY])
def test_float32_accuracy_and_special_values(name, max_ulp, x):
    ours = getattr(graphc, name)(graphc.tensor(x)).numpy()
    theirs = getattr(torch, name)(torch.tensor(x)).numpy()
    assert ours.dtype == np.float32
    assert_special_values_match(ours, theirs)
    assert units_in_last_place(ours, theirs) <= max_ulp


def test_rounding_halves_to_even_and_the_largest_floats():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.0 ** 23 - 0.5, 2.0 ** 23 + 1, -(2.0 ** 24) + 2,
                  3.4e38, -0.0, 1e-45], np.float32)
    for name in ("round", "floor", "ceil", "trunc", "frac"):
        ours, theirs = getattr(graphc, name)(graphc.tensor(x)).numpy(), getattr(torch, name)(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
        assert_special_values_match(ours, theirs)


def test_round_to_decimals():
    x = np.array([1.2345, -2.5551, 1234.5678], np.float32)
    check(lambda m, a: m.round(a, decimals=2), x, rtol=1e-6)
    check(lambda m, a: a.round(decimals=-1), x)


def test_atan2_quadrants_zeros_and_infinities():
    values = np.array(SPECIALS + [1.0, -1.0, 3.0, -1e-30], np.float32)
    y, x = (a.ravel() for a in np.meshgrid(values, values))
    ours, theirs = graphc.atan2(graphc.tensor(y), graphc.tensor(x)).numpy(), torch.atan2(torch.tensor(y),
                                                                                         torch.tensor(x)).numpy()
    assert_special_values_match(ours, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=2.5e-7)
    rng = np.random.default_rng(0)
    y, x = (rng.standard_normal(10000) * np.exp(rng.uniform(-30, 30, 10000))).astype(np.float32), \
        (rng.standard_normal(10000) * np.exp(rng.uniform(-30, 30, 10000))).astype(np.float32)
    ours, theirs = graphc.atan2(graphc.tensor(y), graphc.tensor(x)).numpy(), torch.atan2(torch.tensor(y),
                                                                                         torch.tensor(x)).numpy()
    assert units_in_last_place(ours, theirs) <= 2


@pytest.mark.parametrize("name", ["atan", "asin", "acos", "tan", "sinh", "cosh", "floor", "round", "trunc"])
def test_float64_inputs_keep_float64(name):
    x = np.linspace(-0.99, 0.99, 101)
    ours, theirs = getattr(graphc, name)(graphc.tensor(x)), getattr(torch, name)(torch.tensor(x))
    assert ours.dtype == graphc.float64
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-15, atol=1e-300)


def test_erf_of_float64_has_float32_accuracy():
    x = np.linspace(-5, 5, 1001)
    np.testing.assert_allclose(graphc.erf(graphc.tensor(x)).numpy(), torch.erf(torch.tensor(x)).numpy(), rtol=2e-7)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.atan(x), lambda m, x: m.asin(x * 0.9), lambda m, x: m.acos(x * 0.9), lambda m, x: m.tan(x),
    lambda m, x: m.sinh(x * 3), lambda m, x: m.cosh(x * 3), lambda m, x: m.erf(x * 2), lambda m, x: m.exp2(x),
    lambda m, x: m.log2(x.abs() + 0.1), lambda m, x: m.log10(x.abs() + 0.1), lambda m, x: x.frac() * x,
    lambda m, x: m.floor(x) + x, lambda m, x: x.ceil() * x, lambda m, x: x.round() - x, lambda m, x: m.trunc(x),
], ids=["atan", "asin", "acos", "tan", "sinh", "cosh", "erf", "exp2", "log2", "log10", "frac", "floor", "ceil",
        "round", "trunc"])
def test_values_and_gradients_eager_and_compiled(fn):
    x = np.random.default_rng(0).uniform(-1, 1, (3, 5)).astype(np.float32)
    check(fn, x, rtol=2e-6, atol=1e-6)


def test_atan2_gradients_on_the_axes_and_diagonals():
    y = np.array([1.0, -2.0, 0.0, 3.0, 1.0, -1.0, 0.5], np.float32)
    x = np.array([0.0, 0.0, 2.0, -3.0, 1.0, -1.0, -0.25], np.float32)
    check(lambda m, a, b: m.atan2(a, b), y, x)
    check(lambda m, a, b: a.atan2(b * 2), y, x)


def test_integer_inputs():
    a = np.array([[1, -2, 3], [0, 5, -7]], np.int64)
    for name in ("atan", "erf", "exp2", "sinh", "floor", "round", "trunc", "ceil", "isnan", "isinf", "isfinite"):
        check(lambda m, x, name=name: getattr(m, name)(x), a)
    check(lambda m, x: m.atan2(x, x * 2 + 1), a)


def test_classification():
    x = np.array([1.0, np.nan, np.inf, -np.inf, -0.0], np.float32)
    for name in ("isnan", "isinf", "isfinite"):
        check(lambda m, t, name=name: getattr(t, name)(), x, grad=False)


def test_lerp():
    rng = np.random.default_rng(1)
    a, b, w = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3))
    check(lambda m, x, y, z: m.lerp(x, y, z), a, b, w)
    check(lambda m, x, y: x.lerp(y, 0.7), a, b)
    check(lambda m, x, y: x.lerp(y, 0.2), a, b)


def test_floor_division_and_remainder():
    a = np.array([7, -7, 6, -6, 0], np.int64)
    b = np.array([2, 2, -4, 4, 3], np.int64)
    check(lambda m, x, y: (x // y, x % y, x // 3, x % 3, 10 // y, m.floor_divide(x, y), m.remainder(x, y)), a, b)
    check(lambda m, x, y: (x // y, x % y), a.astype(np.int32), b.astype(np.int32))
    f = np.array([5.5, -5.5, 7.0, -0.5], np.float32)
    check(lambda m, x: (x // 2, x % 2, x % -1.5), f, grad=False)
    check(lambda m, x: (x % 2, x % -1.5), f)


def test_in_place_forms():
    x = np.array([[-1.5, 0.3], [2.5, -0.7]], np.float32)

    def fn(m, t):
        t = t.clone()
        t.floor_()
        u = t.clone().abs_().exp_().clamp_min_(3.0)
        return t, u, t.clone().atan_(), t.clone().clamp_max_(0.5), t.clone().round_(), t.clone().sigmoid_()
    check(fn, x, grad=False)


def test_erfc_keeps_its_relative_precision_in_the_tail():
    x = np.concatenate([np.linspace(-10, 10, 20001), np.linspace(9, 10.5, 1001), SPECIALS]).astype(np.float32)
    ours, theirs = graphc.erfc(graphc.tensor(x)).numpy(), torch.erfc(torch.tensor(x)).numpy()
    assert_special_values_match(ours, theirs)
    normal = theirs >= np.finfo(np.float32).tiny          # below it the spacing is fixed: compared absolutely
    assert units_in_last_place(ours[normal], theirs[normal]) <= 6
    np.testing.assert_allclose(ours[~normal], theirs[~normal], rtol=0, atol=4e-45)
    x = np.linspace(-6, 26, 3201)
    np.testing.assert_allclose(graphc.erfc(graphc.tensor(x)).numpy(), torch.erfc(torch.tensor(x)).numpy(), rtol=5e-7)
    check(lambda m, t: m.erfc(t), np.array([-3.0, -0.5, 0.0, 0.49, 0.5, 1.0, 4.0, 9.0, 40.0], np.float32), rtol=2e-6,
          atol=1e-30)
    check(lambda m, t: t.erfc(), np.array([-1, 0, 2]))


def test_nan_to_num():
    x = np.array([1.5, np.nan, np.inf, -np.inf, -0.0, -3e38], np.float32)
    check(lambda m, t: m.nan_to_num(t), x)
    check(lambda m, t: t.nan_to_num(nan=-1.0, posinf=7.0, neginf=-7.0), x)
    check(lambda m, t: m.nan_to_num(t, posinf=1e300), x.astype(np.float64), rtol=0, atol=0)
    check(lambda m, t: m.nan_to_num(t), np.array([3, -2], np.int32))
    check(lambda m, t: m.nan_to_num(t), np.array([True, False]))


def test_diff():
    x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    check(lambda m, t: m.diff(t), x)
    check(lambda m, t: (t.diff(n=2, dim=0), m.diff(t, n=3), m.diff(t, n=7), m.diff(t, n=0)), x)
    check(lambda m, t, p, a: m.diff(t, dim=0, prepend=p, append=a), x, x[:2] * 3, x[:1])
    check(lambda m, t, p: m.diff(t, n=2, append=p), x, np.array([[1], [2], [3]]))
    check(lambda m, t: (m.diff(t), m.diff(t, append=t[:1] * 0)), np.array([[4, -7, 2, 2]], np.int64))
    check(lambda m, t: m.diff(t, n=2), np.array([True, False, False, True, True]))
    check(lambda m, t: m.diff(t), np.array([1.0, np.inf, np.inf, np.nan, 2.0], np.float32), grad=False)
    with pytest.raises(RuntimeError, match="at least one-dimensional"):
        graphc.diff(graphc.tensor(1.0))


def test_div_rounding_modes():
    a = np.array([7.0, -7.0, 7.5, -7.5, 0.0, 1e30, -3.0, 5.0, np.inf, np.nan], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 7.0, 0.0, 0.0, 2.0, 1.0], np.float32)
    for mode in (None, "trunc", "floor"):
        # inf // 2 is NaN in PyTorch and inf in graphc's floor_divide (floor(a / b)); the other modes agree on it.
        x, y = (a, b) if mode != "floor" else (np.delete(a, 8), np.delete(b, 8))
        check(lambda m, x, y, mode=mode: (m.div(x, y, rounding_mode=mode), x.div(2.5, rounding_mode=mode),
                                          m.div(-9.0, y[:4], rounding_mode=mode)), x, y, grad=False)
        check(lambda m, x, y, mode=mode: m.div(x, y, rounding_mode=mode) * x, a[:6], b[:6])
    i, j = np.array([7, -7, 7, -7, 0, 9], np.int64), np.array([2, 2, -2, -2, 3, -10], np.int64)
    for mode in (None, "trunc", "floor"):
        check(lambda m, x, y, mode=mode: (m.div(x, y, rounding_mode=mode), x.div(-2, rounding_mode=mode),
                                          m.div(x, 2.5, rounding_mode=mode)), i, j)
        check(lambda m, x, y, mode=mode: x.div(y, rounding_mode=mode), i.astype(np.int32), j.astype(np.int32))

    def in_place(m, x, y):
        x = x.clone()
        x.div_(y, rounding_mode="trunc")
        return x
    check(in_place, i, j)
    check(in_place, a[:6], b[:6], grad=False)
    with pytest.raises(ValueError, match="rounding_mode"):
        graphc.div(graphc.tensor([1.0]), 2, rounding_mode="round")


def test_is_floating_point():
    for dtype in (graphc.float32, graphc.float64, graphc.int64, graphc.int32, graphc.bool):
        t = graphc.zeros(2, dtype=dtype)
        expected = torch.zeros(2, dtype=getattr(torch, dtype.torch_name)).is_floating_point()
        assert t.is_floating_point() is expected and graphc.is_floating_point(t) is expected
