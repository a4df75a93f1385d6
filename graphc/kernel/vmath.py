"""exp, log and tanh of f32 as kernel-IR arithmetic, so every backend vectorizes them.

LLVM has no vector math library here: ``llvm.exp.f32`` on a vector is split
into one libm call per lane, and a kernel with an exp in it (a softmax, a
sigmoid, a tanh generator output) runs at scalar speed.  Written as
polynomials over plain arithmetic, compares and selects, they are ordinary
vector code on every backend, and every backend computes the same bits.

The methods are Cephes' (S. Moshier), each a range reduction by powers of two
(exact, through the float's bits) and a minimax polynomial on what is left.
Maximum errors, measured over every f32 by ``tests/kernel/test_vmath.py``
against float64 numpy, in units in the last place of the f32 result:

- ``exp``: 1 ulp (0.94 measured); overflow gives inf, and underflow the
  subnormals, then 0.
- ``log``: 1 ulp (0.76), subnormal x included; log 0 = -inf, log(x < 0) = nan.
- ``tanh``: 1.5 ulp (1.25, near |x| = 0.65, where 1 - 2 / (e^2|x| + 1) takes over
  from the polynomial); tanh(+-inf) = +-1.

nan gives nan, inf and -inf what numpy gives.  f64 keeps the backends' own
functions.
"""
from __future__ import annotations

from typing import Callable

from ..ir.dtypes import f32, i32
from . import expr as E
from .ir import Expr, Unary

Bind = Callable[[Expr], Expr]

LOG2_E = 1.44269504088896341
LN2_HI, LN2_LO = 0.693359375, -2.12194440e-4          # ln 2 in two parts: n * LN2_HI is exact
EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
            5.0000001201e-1)
LOG_POLY = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
            -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)
# e^x is inf above this and 0 below the other; between, 2^n takes two factors (n in [-150, 129]).
EXP_HIGH, EXP_LOW = 89.0, -104.0
MIN_NORMAL = 1.17549435e-38
TANH_SMALL = 0.625
# Adding 1.5 * 2^23 to an integral float leaves the integer in the low bits of its mantissa.
ROUNDER, ROUNDER_BITS = 12582912.0, 0x4B400000

EXPANDED = ("exp", "log", "tanh")


def unary(bind: Bind, op: str, x: Expr) -> Expr:
    """``op`` of ``x``: exp, log and tanh of f32 as polynomials (``bind`` names the values used
    more than once), any other as the kernel-IR unary op."""
    if x.dtype == f32 and op in EXPANDED:
        return {"exp": exp, "log": log, "tanh": tanh}[op](bind, x)
    return E.unary(op, x)


def _f(value: float) -> Expr:
    return E.const(value, f32)


def _i(value: int) -> Expr:
    return E.const(value, i32)


def _bits(x: Expr) -> Expr:
    return Unary("bitcast", x, i32)


def _float(bits: Expr) -> Expr:
    return Unary("bitcast", bits, f32)


def _horner(bind: Bind, x: Expr, coefficients) -> Expr:
    result = _f(coefficients[0])
    for c in coefficients[1:]:
        result = bind(E.add(E.mul(result, x), _f(c)))
    return result


def _power_of_two(n: Expr) -> Expr:
    """2^n for an integral f32 ``n`` in [-126, 127], built in the exponent's bits."""
    integer = E.sub(_bits(E.add(n, _f(ROUNDER))), _i(ROUNDER_BITS))
    return _float(E.binary("shl", E.add(integer, _i(127)), _i(23)))


def exp(bind: Bind, x: Expr) -> Expr:
    """e^x = 2^n e^r, n = round(x log2 e), |r| <= ln2 / 2."""
    x = bind(E.minimum(E.maximum(x, _f(EXP_LOW)), _f(EXP_HIGH)))      # nan stays nan
    scaled = bind(E.mul(x, _f(LOG2_E)))
    half = E.select(E.ge(scaled, _f(0.0)), _f(0.5), _f(-0.5))
    n = bind(E.unary("trunc", E.add(scaled, half)))                     # round half away from 0
    r = bind(E.sub(E.sub(x, E.mul(n, _f(LN2_HI))), E.mul(n, _f(LN2_LO))))
    r2 = bind(E.mul(r, r))
    p = bind(E.add(E.add(E.mul(_horner(bind, r, EXP_POLY), r2), r), _f(1.0)))
    # 2^n in two factors, each a normal float: n reaches -150 (subnormal results) and 129.
    first = bind(E.unary("trunc", E.mul(n, _f(0.5))))
    return E.mul(E.mul(p, _power_of_two(first)), _power_of_two(E.sub(n, first)))


def log(bind: Bind, x: Expr) -> Expr:
    """log x = e ln 2 + log m, x = m 2^e with m in [sqrt(1/2), sqrt 2)."""
    subnormal = bind(E.lt(x, _f(MIN_NORMAL)))
    scaled = bind(E.select(subnormal, E.mul(x, _f(8388608.0)), x))      # * 2^23: a normal float
    bits = bind(_bits(scaled))
    exponent = E.sub(E.binary("lshr", bits, _i(23)), _i(126))
    mantissa = bind(_float(E.binary("or", E.binary("and", bits, _i(0x007FFFFF)), _i(0x3F000000))))
    small = bind(E.lt(mantissa, _f(0.70710678118654752)))               # m in [1/2, 1): fold below sqrt(1/2)
    e = bind(E.sub(E.cast(exponent, f32), E.add(E.select(small, _f(1.0), _f(0.0)),
                                                 E.select(subnormal, _f(23.0), _f(0.0)))))
    f = bind(E.sub(E.select(small, E.add(mantissa, mantissa), mantissa), _f(1.0)))
    z = bind(E.mul(f, f))
    y = E.mul(E.mul(_horner(bind, f, LOG_POLY), f), z)
    y = E.add(E.add(y, E.mul(e, _f(LN2_LO))), E.mul(z, _f(-0.5)))
    result = bind(E.add(E.add(f, y), E.mul(e, _f(LN2_HI))))
    special = E.select(E.lt(x, _f(0.0)), _f(float("nan")), E.select(E.eq(x, _f(0.0)), _f(float("-inf")), x))
    # x itself where it is nan or inf (log inf = inf), -inf at 0, nan below it.
    ordinary = E.logical_and(E.lt(_f(0.0), x), E.lt(x, _f(float("inf"))))
    return E.select(ordinary, result, special)


def tanh(bind: Bind, x: Expr) -> Expr:
    """An odd polynomial near 0; 1 - 2 / (e^2|x| + 1), signed, beyond."""
    magnitude = bind(E.unary("abs", x))
    z = bind(E.mul(x, x))
    near_zero = E.add(E.mul(E.mul(_horner(bind, z, TANH_POLY), z), x), x)
    far = bind(E.sub(_f(1.0), E.div(_f(2.0), E.add(exp(bind, E.add(magnitude, magnitude)), _f(1.0)))))
    signed = E.select(E.lt(x, _f(0.0)), E.unary("neg", far), far)
    return E.select(E.lt(magnitude, _f(TANH_SMALL)), near_zero, signed)
