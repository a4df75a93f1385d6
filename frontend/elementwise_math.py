"""Elementwise math without a primitive of its own, built from the primitives.

Each function here is a small expression of primitive ops, so it runs eagerly,
traces, differentiates (by the chain rule through those ops) and compiles like
any primitive.  Where PyTorch calls a libm function (atan, erf, ...), the
expression is a range reduction plus a polynomial accurate to a few units in
the last place of float32; the rounding functions use float -> int64 casts,
which are exact below 2**23 (float32) or 2**52 (float64), where a float can
still have a fractional part.  Special values (NaN, ±inf, -0.0) come out as
PyTorch's do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graphc.ir.dtypes import DType, bool_, f32, f64, i64

from . import dtypes as _dt
from .context import is_grad_enabled, no_grad
from .creation import full
from .tensor import Tensor, _operands, _scalar, as_tensor, where


def _float(x) -> Tensor:
    """``x`` as a floating-point tensor (integers become the default float dtype, as in PyTorch)."""
    x = as_tensor(x)
    return x if x.dtype.is_float else x.type_as_dtype(_dt.get_default_dtype())


def _polynomial(coefficients, z: Tensor) -> Tensor:
    """Horner's rule; ``coefficients`` from the highest power down."""
    result = _scalar(coefficients[0], z.dtype)
    for c in coefficients[1:]:
        result = result * z + c
    return result


def _signs(x: Tensor) -> tuple[Tensor, Tensor]:
    """Whether each element is negative (-0.0 included, as C's atan2 and copysign see it), and ±1 to match.

    Multiplying by the ±1 gives |x| with the gradient of |x| also at 0, where abs's is 0.
    """
    negative = (x < 0) | ((x == 0) & (x.reciprocal() < 0))
    return negative, where(negative, -1.0, 1.0).type_as_dtype(x.dtype)


# -- inverse trigonometry -----------------------------------------------------------------------

@dataclass(frozen=True)
class _AtanCoefficients:
    """atan(z) = z + z * z**2 * numerator(z**2) / denominator(z**2) on |z| <= reduce_above,
    and atan(t) = pi/4 + atan((t - 1) / (t + 1)) above it (Cephes' atanf and atan)."""
    reduce_above: float
    numerator: tuple[float, ...]
    denominator: tuple[float, ...]


_ATAN = {
    f32: _AtanCoefficients(0.4142135623730950,     # tan(pi/8)
                           (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1), (1.0,)),
    f64: _AtanCoefficients(0.66,
                           (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
                            -1.228866684490136173410e2, -6.485021904942025371773e1),
                           (1.0, 2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
                            4.853903996359136964868e2, 1.945506571482613964425e2)),
}


def _split_constant(value: float, dtype: DType) -> tuple[float, float]:
    """``value`` as high + low parts: high is the nearest ``dtype`` number, low the rest.

    ``high + (low + small)`` keeps bits of pi that ``pi + small`` would round away."""
    high = float(dtype.numpy.type(value))
    return high, value - high


def _atan_of_unit(t: Tensor) -> Tensor:
    """atan(t) for t in [0, 1]."""
    c = _ATAN[t.dtype]
    reduced = t > c.reduce_above
    z = where(reduced, (t - 1) / (t + 1), t)
    zz = z * z
    ratio = _polynomial(c.numerator, zz)
    if len(c.denominator) > 1:
        ratio = ratio / _polynomial(c.denominator, zz)
    p = z + z * zz * ratio
    pi_4, pi_4_low = _split_constant(math.pi / 4, t.dtype)
    return where(reduced, pi_4 + (pi_4_low + p), p)


def _complement(angle: float, r: Tensor) -> Tensor:
    """angle - r, keeping the bits of ``angle`` below the dtype's precision."""
    high, low = _split_constant(angle, r.dtype)
    return high + (low - r)


def atan2(input, other) -> Tensor:
    """The angle of the point (other, input), in [-pi, pi], with C's atan2 rules for zeros and infinities."""
    y, x = _operands(_float(input), _float(other))
    x_negative, x_sign = _signs(x)
    y_negative, y_sign = _signs(y)
    ax, ay = x * x_sign, y * y_sign
    # atan(small/large) in [0, pi/4], then the octant: pi/2 - r, pi - r, -r.
    swap = ay > ax
    small, large = where(swap, ax, ay), where(swap, ay, ax)
    both_infinite = isinf(ax) & isinf(ay)
    ratio = where(both_infinite, 1.0, small / where(large == 0, 1.0, large))
    r = _atan_of_unit(ratio)
    r = where(swap, _complement(math.pi / 2, r), r)
    r = where(x_negative, _complement(math.pi, r), r)
    return where(y_negative, -r, r)


def atan(input) -> Tensor:
    x = _float(input)
    return atan2(x, _scalar(1, x.dtype))


def asin(input) -> Tensor:
    # (1 - x)(1 + x) rather than 1 - x*x: exact near |x| = 1, where 1 - x*x cancels.
    x = _float(input)
    return atan2(x, ((1 - x) * (1 + x)).sqrt())


def acos(input) -> Tensor:
    x = _float(input)
    return atan2(((1 - x) * (1 + x)).sqrt(), x)


def tan(input) -> Tensor:
    x = _float(input)
    return x.sin() / x.cos()


# -- hyperbolic functions -----------------------------------------------------------------------

def _half_exp(magnitude: Tensor) -> Tensor:
    """e**m / 2 for m >= 0, finite up to where e**m / 2 itself overflows (e**m overflows a little sooner)."""
    root = (magnitude * 0.5).exp()
    return where(magnitude < 80, magnitude.clamp(max=80).exp() * 0.5, root * (root * 0.5))


def cosh(input) -> Tensor:
    x = _float(input)
    _, sign = _signs(x)
    magnitude = x * sign
    return _half_exp(magnitude) + (-magnitude).exp() * 0.5


def sinh(input) -> Tensor:
    x = _float(input)
    _, sign = _signs(x)
    magnitude = x * sign
    large = _half_exp(magnitude) - (-magnitude).exp() * 0.5
    # Below 1, e**x/2 - e**-x/2 cancels; 2t / (1 - t**2) with t = tanh(x/2) does not.
    t = (x.clamp(-1, 1) * 0.5).tanh()
    return where(magnitude < 1, 2 * t / (1 - t * t), sign * large)


# -- erf ----------------------------------------------------------------------------------------

# Least-squares fits, in float64 at Chebyshev nodes, of erf(x)/x - 1 in x**2 on [0, 1] and of
# erfc(x)·e**(x**2) in x - 2.5 on [1, 4]; evaluated in float32 they are within 1.3 units in the
# last place of float32 (float64 inputs get this accuracy too).
_ERF_SMALL = (7.898210125e-05, -0.0008024354101, 0.005190053574, -0.02685480853, 0.1128361243, -0.3761262884,
              0.1283791665)
_ERFC_SCALED = (1.49813384e-06, -6.334183257e-06, 1.531716195e-05, -5.384542284e-05, 0.0002111083766,
                -0.0007385663964, 0.002467445426, -0.007999609199, 0.02493780529, -0.07434755786, 0.2108063746)


def erf(input) -> Tensor:
    x = _float(input)
    _, sign = _signs(x)
    magnitude = x * sign
    small = x + x * _polynomial(_ERF_SMALL, x * x)
    # Past 4, erfc(x) < 2e-8 and erf rounds to ±1: the polynomial is held at 4 rather than extrapolated.
    erfc = (-(magnitude * magnitude)).exp() * _polynomial(_ERFC_SCALED, magnitude.clamp(max=4.0) - 2.5)
    return where(magnitude <= 1, small, sign * (1 - erfc))


# Numerical Recipes' Chebyshev fit erfc(z) = t exp(-z**2 + R(t)), t = 1 / (1 + z/2), R's coefficients
# from the highest power down: relative error below 1.2e-7 for every z >= 0 (nn/special.py's erf uses it too).
ERFC_EXPONENT = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418,
                 0.37409196, 1.00002368, -1.26551223)


def erfc(input) -> Tensor:
    """1 - erf(x), keeping its relative precision in the right tail, where 1 - erf(x) rounds to 0.

    Below 0.5, where erfc(x) > 0.47, it is 1 - erf(x).  From 0.5 on it is Numerical Recipes' fit
    with exp(-z**2) taken as exp(-h**2) exp(-(z - h)(z + h)), h being z cut to 8 bits after the
    point: h**2 is exact, so z**2 rounded (by up to 100 float32 units in the last place of the
    result near z = 10) never reaches the exponent.  Within 6 float32 units in the last place,
    on float64 inputs too.
    """
    x = _float(input)
    # Past 30 erfc underflows to 0 even in float64; the clamp keeps inf out of the split.
    z = x.clamp(0.5, 30.0)
    t = (z * 0.5 + 1).reciprocal()
    head = _truncated(z.detach() * 256) * (1 / 256)
    tail = t * (-(head * head)).exp() * (_polynomial(ERFC_EXPONENT, t) - (z - head) * (z + head)).exp()
    return where(x < 0.5, 1 - erf(x), tail)


# -- powers and logarithms ----------------------------------------------------------------------

def exp2(input) -> Tensor:
    x = _float(input)
    return _scalar(2, x.dtype) ** x


def lerp(input, end, weight) -> Tensor:
    """start + weight·(end - start), computed from the nearer end as PyTorch does."""
    start = _float(input)
    start, end = _operands(start, end)
    weight = as_tensor(weight, start.dtype) if not isinstance(weight, Tensor) else weight
    difference = end - start
    return where(weight.abs() < 0.5, start + weight * difference, end - difference * (1 - weight))


# -- rounding -----------------------------------------------------------------------------------

def _with_zero_gradient(value: Tensor, x: Tensor) -> Tensor:
    """``value`` (computed without gradient) as a result of ``x`` whose gradient is zero,
    as PyTorch's floor, round, ... have: ``backward`` through it gives zeros, not an error."""
    if not (x.requires_grad and is_grad_enabled()):
        return value
    return where(full(x.shape, True, dtype=bool_), value, x)


def _rounding(compute):
    """A rounding function of a float tensor; integer and bool tensors are already whole."""
    def rounding(input) -> Tensor:
        x = as_tensor(input)
        if not x.dtype.is_float:
            return x.clone()
        with no_grad():
            value = compute(x)
        return _with_zero_gradient(value, x)
    rounding.__name__ = compute.__name__
    rounding.__doc__ = compute.__doc__
    return rounding


def _truncated(x: Tensor) -> Tensor:
    """x rounded toward zero, for a float tensor, with -0.0 where PyTorch gives it."""
    mantissa_bits = 23 if x.dtype == f32 else 52
    has_fraction = x.abs() < 2.0 ** mantissa_bits          # false for inf and NaN, which pass through
    whole = where(has_fraction, x, 0.0).type_as_dtype(i64).type_as_dtype(x.dtype)
    whole = where(has_fraction, whole, x)
    return where(whole == 0, x * 0, whole)                  # x * 0 is -0.0 for negative x


def _is_odd(whole: Tensor) -> Tensor:
    half = whole * 0.5
    return _truncated(half) != half


@_rounding
def trunc(x: Tensor) -> Tensor:
    """Round toward zero."""
    return _truncated(x)


@_rounding
def floor(x: Tensor) -> Tensor:
    """Round toward -inf."""
    t = _truncated(x)
    return where(t > x, t - 1, t)


@_rounding
def ceil(x: Tensor) -> Tensor:
    """Round toward +inf."""
    t = _truncated(x)
    return where(t < x, t + 1, t)


@_rounding
def _round_half_even(x: Tensor) -> Tensor:
    """Round to the nearest integer, halves to the even one."""
    t = _truncated(x)
    fraction = (x - t).abs()                                # exact: x and t share their leading bits
    away = (fraction > 0.5) | ((fraction == 0.5) & _is_odd(t))
    return where(away, where(x < 0, t - 1, t + 1), t)


def round(input, decimals: int = 0) -> Tensor:
    """Round half to even; with ``decimals``, at that many decimal places (x·10**d rounded, over 10**d)."""
    x = as_tensor(input)
    if decimals == 0 or not x.dtype.is_float:
        return _round_half_even(x)
    scale = 10.0 ** decimals
    return _round_half_even(x * scale) / scale


fix = trunc


def frac(input) -> Tensor:
    x = as_tensor(input)
    return x - trunc(x)


# -- classification -----------------------------------------------------------------------------

def isnan(input) -> Tensor:
    x = as_tensor(input)
    return x != x


def isinf(input) -> Tensor:
    x = as_tensor(input)
    if not x.dtype.is_float:
        return full(x.shape, False, dtype=bool_)
    return x.abs() == math.inf


def isfinite(input) -> Tensor:
    x = as_tensor(input)
    if not x.dtype.is_float:
        return full(x.shape, True, dtype=bool_)
    return x.abs() < math.inf


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|a - b| <= atol + rtol·|b|, with equal infinities close and NaNs close only under ``equal_nan``."""
    a, b = _operands(input, other)
    if a.dtype == bool_:
        return a == b
    difference = a - b
    # A finite difference: an infinity is close only to itself (inf <= rtol·inf must not count).
    close = (a == b) | (isfinite(difference) & (difference.abs() <= atol + rtol * b.abs()))
    return close | (isnan(a) & isnan(b)) if equal_nan else close


def nan_to_num(input, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf``; the infinities default to the
    dtype's largest and smallest finite values.  Integer and bool tensors come back unchanged (a copy)."""
    x = as_tensor(input)
    if not x.dtype.is_float:
        return x.clone()
    largest = float(np.finfo(x.dtype.numpy).max)
    posinf = largest if posinf is None else posinf
    neginf = -largest if neginf is None else neginf
    return where(isnan(x), nan, where(x == math.inf, posinf, where(x == -math.inf, neginf, x)))


# -- integer-style division -----------------------------------------------------------------------

def div(input, other, *, rounding_mode: str | None = None) -> Tensor:
    """a / b.  With rounding_mode="trunc" the quotient is rounded toward zero, with "floor" toward -inf
    (floor_divide); integers then stay integers, as in PyTorch, divided in float64 (exact while
    |a| < 2**53).  Rounded quotients have zero gradient."""
    if rounding_mode is None:
        return as_tensor(input) / other
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode != "trunc":
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"{rounding_mode!r}")
    return _rounded_quotient(input, other, trunc, "div(rounding_mode='trunc')")


def floor_divide(input, other) -> Tensor:
    """a // b, rounding the quotient toward -inf.  Integers are divided in float64, exact while
    |a| < 2**53; float quotients are floor(a / b), which can differ from PyTorch's fmod-based
    result in the last place (1 // 0.1 is 10 here, 9 in PyTorch)."""
    return _rounded_quotient(input, other, floor, "floor_divide")


def _rounded_quotient(input, other, rounding, op: str) -> Tensor:
    """a / b rounded by ``rounding`` (floor or trunc): floats as rounding(a / b); integers divided
    in float64 (exact while |a| < 2**53) and kept integers; bools refused, naming ``op``."""
    a, b = _operands(input, other)
    if a.dtype.is_float:
        return rounding(a / b)
    if a.dtype == bool_:
        raise RuntimeError(f"{op}: bool tensors cannot be divided")
    return rounding(a.type_as_dtype(f64) / b.type_as_dtype(f64)).type_as_dtype(a.dtype)


def remainder(input, other) -> Tensor:
    """a - b·(a // b): the remainder with the sign of the divisor, as Python's % and PyTorch's."""
    a, b = _operands(input, other)
    return a - floor_divide(a, b) * b


__all__ = ["atan2", "atan", "asin", "acos", "tan", "cosh", "sinh", "erf", "erfc", "exp2", "lerp", "trunc", "fix",
           "floor", "ceil", "round", "frac", "isnan", "isinf", "isfinite", "nan_to_num", "div", "floor_divide",
           "remainder", "isclose"]
