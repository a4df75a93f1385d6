"""Elementwise primitives: unary math, broadcasting binary ops, comparisons, where, cast.

Binary ops broadcast like numpy and PyTorch but do not promote: both operands
must already share a dtype (the frontend inserts casts, as PyTorch's type
promotion would).  Transcendental ops take floating-point tensors only.
"""
from __future__ import annotations

import numpy as np

from ..ir.dtypes import bool_
from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel import vmath
from .grad_helpers import unbroadcast
from .lowering import elementwise
from .registry import Attr, OpDef, ShapeMismatch, register
from .shapes import broadcast_shapes

# -- dtype classes --------------------------------------------------------------

FLOAT = "float"        # f32, f64
NUMERIC = "numeric"    # every dtype but bool
ANY = "any"            # bool too


def _check_dtype(dtype, allowed: str, what: str):
    if allowed == FLOAT and not dtype.is_float:
        raise ShapeMismatch(f"{what} must be floating point, got {dtype}")
    if allowed == NUMERIC and dtype == bool_:
        raise ShapeMismatch(f"{what} must be numeric, got bool")


# -- unary ----------------------------------------------------------------------

def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _unary(name, fn, allowed, grad, doc, lower=None):
    def shape_rule(types, attrs):
        _check_dtype(types[0].dtype, allowed, "input")
        return types[0]
    lower = lower or elementwise(lambda ctx, node, x: vmath.unary(ctx.builder.bind, name, x))
    register(OpDef(name=name, family="elementwise", inputs=("input",), shape_rule=shape_rule,
                   reference=lambda xs, a: fn(xs[0]), grad=grad, lower=lower, doc=doc))


def _lower_sigmoid(ctx, node, x):
    # As the reference computes it: e^-|x| never overflows.
    e = ctx.builder.bind(vmath.unary(ctx.builder.bind, "exp", E.unary("neg", E.unary("abs", x))))
    one = E.const(1, x.dtype)
    denominator = ctx.builder.bind(E.add(one, e))
    return E.select(E.ge(x, E.const(0, x.dtype)), E.div(one, denominator), E.div(e, denominator))


_unary("neg", np.negative, NUMERIC, lambda b, n, g: [b.neg(g)], "-x")
_unary("abs", np.abs, NUMERIC,
       lambda b, n, g: [b.where(b.gt(n.inputs[0], 0), g, b.where(b.lt(n.inputs[0], 0), b.neg(g), 0))],
       "|x|; its gradient at 0 is 0, as PyTorch's")
_unary("exp", np.exp, FLOAT, lambda b, n, g: [b.mul(g, n)], "e^x")
_unary("log", np.log, FLOAT, lambda b, n, g: [b.div(g, n.inputs[0])], "natural logarithm")
_unary("sqrt", np.sqrt, FLOAT, lambda b, n, g: [b.div(g, b.mul(n, 2))], "square root")
_unary("reciprocal", np.reciprocal, FLOAT, lambda b, n, g: [b.neg(b.mul(g, b.mul(n, n)))], "1/x",
       lower=elementwise(lambda ctx, node, x: E.div(E.const(1, x.dtype), x)))
_unary("sin", np.sin, FLOAT, lambda b, n, g: [b.mul(g, b.cos(n.inputs[0]))], "sine")
_unary("cos", np.cos, FLOAT, lambda b, n, g: [b.neg(b.mul(g, b.sin(n.inputs[0])))], "cosine")
_unary("tanh", np.tanh, FLOAT, lambda b, n, g: [b.mul(g, b.sub(1, b.mul(n, n)))], "hyperbolic tangent")
_unary("sigmoid", _sigmoid, FLOAT, lambda b, n, g: [b.mul(g, b.mul(n, b.sub(1, n)))],
       "1/(1+e^-x), computed without overflow", lower=elementwise(_lower_sigmoid))
_unary("relu", lambda x: np.maximum(x, np.zeros((), x.dtype)), NUMERIC,
       # The mask reads relu's output (y > 0 exactly where x > 0), so backward needs only the output
       # and fusion can keep the pre-activation inside the forward kernel.
       lambda b, n, g: [b.where(b.gt(n, 0), g, 0)], "max(x, 0); its gradient at 0 is 0",
       lower=elementwise(lambda ctx, node, x: E.maximum(x, E.const(0, x.dtype))))


# -- binary ---------------------------------------------------------------------

def _binary_shape(allowed, result_dtype=None):
    def shape_rule(types, attrs):
        a, b = types
        if a.dtype != b.dtype:
            raise ShapeMismatch(f"dtypes {a.dtype} and {b.dtype} differ (cast one operand first)")
        _check_dtype(a.dtype, allowed, "operands")
        return TensorType(broadcast_shapes(a.shape, b.shape), result_dtype or a.dtype)
    return shape_rule


# On bool operands add and maximum are logical or, mul and minimum logical and.
_BOOL_FORMS = {"add": "or", "maximum": "or", "mul": "and", "minimum": "and"}
_KERNEL_OPS = {"maximum": "max", "minimum": "min"}


def _lower_binary(name):
    def compute(ctx, node, a, b):
        op = _BOOL_FORMS[name] if a.dtype == bool_ and name in _BOOL_FORMS else _KERNEL_OPS.get(name, name)
        return E.binary(op, a, b)
    return elementwise(compute)


def _binary(name, fn, allowed, grad, doc):
    register(OpDef(name=name, family="elementwise", inputs=("lhs", "rhs"),
                   shape_rule=_binary_shape(allowed), reference=lambda xs, a: fn(xs[0], xs[1]),
                   grad=grad, lower=_lower_binary(name), doc=doc))


def _both(b, n, ga, gb):
    x, y = n.inputs
    return [unbroadcast(b, ga, x.shape) if ga is not None else None,
            unbroadcast(b, gb, y.shape) if gb is not None else None]


def _pow_grads(b, n, g):
    x, y = n.inputs
    gx = b.mul(g, b.mul(y, b.pow(x, b.sub(y, 1))))
    # d/dy x^y = x^y log x, taken as 0 where x == 0 and y >= 0 (PyTorch's convention).
    gy_raw = b.mul(g, b.mul(n, b.log(x)))
    gy = b.where(b.mul(b.eq(x, 0), b.ge(y, 0)), 0, gy_raw)
    return _both(b, n, gx, gy)


def _extremum_grads(b, n, g, wins):
    # Ties split the gradient in half, as PyTorch's maximum/minimum do.
    x, y = n.inputs
    half = b.mul(g, 0.5)
    gx = b.where(wins(x, y), g, b.where(b.eq(x, y), half, 0))
    gy = b.where(wins(y, x), g, b.where(b.eq(x, y), half, 0))
    return _both(b, n, gx, gy)


# bool operands are allowed where PyTorch defines them: add/maximum is logical or, mul/minimum is logical and.
_binary("add", np.add, ANY, lambda b, n, g: _both(b, n, g, g), "x + y")
_binary("sub", np.subtract, NUMERIC, lambda b, n, g: _both(b, n, g, b.neg(g)), "x - y")
_binary("mul", np.multiply, ANY,
        lambda b, n, g: _both(b, n, b.mul(g, n.inputs[1]), b.mul(g, n.inputs[0])), "x * y")
_binary("div", np.divide, FLOAT,
        lambda b, n, g: _both(b, n, b.div(g, n.inputs[1]), b.neg(b.div(b.mul(g, n), n.inputs[1]))),
        "x / y (true division)")
_binary("pow", np.power, FLOAT, _pow_grads, "x ** y")
_binary("maximum", np.maximum, ANY, lambda b, n, g: _extremum_grads(b, n, g, b.gt),
        "elementwise max; NaN propagates")
_binary("minimum", np.minimum, ANY, lambda b, n, g: _extremum_grads(b, n, g, b.lt),
        "elementwise min; NaN propagates")

for _name, _fn in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
    register(OpDef(name=_name, family="elementwise", inputs=("lhs", "rhs"),
                   shape_rule=_binary_shape(ANY, result_dtype=bool_),
                   reference=lambda xs, a, fn=_fn: fn(xs[0], xs[1]),
                   lower=_lower_binary(_name), differentiable=False, doc=f"comparison ({_name}), giving bool"))


# -- where, cast ------------------------------------------------------------------

def _where_shape(types, attrs):
    cond, x, y = types
    if cond.dtype != bool_:
        raise ShapeMismatch(f"condition must be bool, got {cond.dtype}")
    if x.dtype != y.dtype:
        raise ShapeMismatch(f"branches have dtypes {x.dtype} and {y.dtype}; they must match")
    return TensorType(broadcast_shapes(cond.shape, x.shape, y.shape), x.dtype)


def _where_grads(b, n, g):
    cond, x, y = n.inputs
    return [None,
            unbroadcast(b, b.where(cond, g, 0), x.shape),
            unbroadcast(b, b.where(cond, 0, g), y.shape)]


register(OpDef(
    name="where", family="elementwise", inputs=("condition", "input", "other"),
    shape_rule=_where_shape, reference=lambda xs, a: np.where(xs[0], xs[1], xs[2]),
    grad=_where_grads, lower=elementwise(lambda ctx, node, c, x, y: E.select(c, x, y)),
    doc="condition ? input : other, broadcasting all three",
))


def _cast_grads(b, n, g):
    x = n.inputs[0]
    return [b.cast(g, dtype=x.dtype) if x.dtype.is_float else None]


def _cast_reference(xs, attrs):
    x, dtype = xs[0], attrs["dtype"]
    if x.dtype.kind == "f" and not dtype.is_float and dtype != bool_:
        # C semantics (truncate toward zero), like PyTorch; NaN and out-of-range are undefined there.
        with np.errstate(invalid="ignore"):
            return np.trunc(x).astype(dtype.numpy)
    return x.astype(dtype.numpy)


register(OpDef(
    name="cast", family="elementwise", inputs=("input",),
    attrs={"dtype": Attr("dtype")},
    shape_rule=lambda types, a: types[0].with_dtype(a["dtype"]),
    reference=_cast_reference, grad=_cast_grads,
    lower=elementwise(lambda ctx, node, x: E.cast(x, node.dtype)), copies_when_type_kept=True,
    doc="convert to another dtype; float to int truncates toward zero, anything to bool is x != 0",
))


register(OpDef(
    name="stop_gradient", family="elementwise", inputs=("input",),
    shape_rule=lambda types, a: types[0], reference=lambda xs, a: xs[0].copy(),
    lower=elementwise(lambda ctx, node, x: x), differentiable=False, copies_when_type_kept=True,
    doc="identity whose output carries no gradient (what Tensor.detach() records)",
))
