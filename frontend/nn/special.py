"""The error function, built from elementwise primitives (graphc has no erf primitive).

Two approximations, each where it is accurate:

- near 0 (|x| < 0.7), erf(x) = x P(x²) / Q(x²), the rational form of Eigen's
  and XLA's float erf, which keeps erf's relative precision for tiny x;
- further out, erf(x) = sign(x) (1 - erfc(|x|)) with Numerical Recipes'
  Chebyshev fit erfc(z) = t exp(-z² + R(t)), t = 1 / (1 + z/2) (relative
  error below 1.2e-7 for every z), so erf approaches ±1 with the right
  rounding; a single rational form is off by several units in the last place
  there, which GELU's 1 + erf(x/√2) magnifies for negative x.

Against erf in double precision the result is within 1.5e-7 absolutely and
2.3e-7 relatively (1–2 float32 ulps) over the whole line; the often-quoted
Abramowitz–Stegun 7.1.26 is off by 1e-3 of the value near 0.  Its gradient is
the approximation's own derivative, which matches 2/√π exp(-x²) to the same order.
"""
from __future__ import annotations

from ..elementwise_math import ERFC_EXPONENT
from ..functions import where
from ..tensor import Tensor

_SMALL_NUMERATOR = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_SMALL_DENOMINATOR = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                      -1.42647390514189e-02)
_SMALL = 0.7


def _polynomial(x: Tensor, coefficients) -> Tensor:
    """Horner's rule, highest power first."""
    result = x * coefficients[0] + coefficients[1]
    for c in coefficients[2:]:
        result = result * x + c
    return result


def erf(x: Tensor) -> Tensor:
    """The error function of a floating-point tensor."""
    near = x.clamp(-_SMALL, _SMALL)            # each branch sees only inputs it is accurate (and finite) for
    square = near * near
    near_zero = near * _polynomial(square, _SMALL_NUMERATOR) / _polynomial(square, _SMALL_DENOMINATOR)
    z = x.abs()
    t = (z * 0.5 + 1).reciprocal()
    erfc = t * (_polynomial(t, ERFC_EXPONENT) - z * z).exp()
    return where(z < _SMALL, near_zero, x.sign() * (1 - erfc))
