"""Free functions of the graphc namespace (graphc.cat, graphc.where, graphc.sum, ...).

Most forward to Tensor methods, as torch's do.  The linear-algebra conveniences
(det, inverse, svd) are eager-only numpy calls: they have no primitive and no
gradient, and raise TraceError when traced.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from graphc.errors import ShapeError, TraceError

from . import dtypes as _dt
from .context import current_trace, error_context, user_location
from .dispatch import apply
from .einsum import einsum
from .elementwise_math import *  # noqa: F401,F403
from .elementwise_math import __all__ as _elementwise_math_all
from .scans import *  # noqa: F401,F403
from .scans import __all__ as _scans_all
from .selection import *  # noqa: F401,F403
from .selection import __all__ as _selection_all
from .sorting import *  # noqa: F401,F403
from .sorting import __all__ as _sorting_all
from .tensor import Tensor, as_tensor, matmul, maximum, minimum, where

svd_result = namedtuple("svd_result", ["U", "S", "Vh"])


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ShapeError("cat: expected a non-empty list of tensors" + error_context())
    dtype = _dt.promote(tensors)
    tensors = [t.type_as_dtype(dtype) for t in tensors]
    if len(tensors) == 1:
        return tensors[0]
    return apply("concat", tensors, axis=dim)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ShapeError("stack: expected a non-empty list of tensors" + error_context())
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: expects each tensor to be equal size, got shapes "
                         f"{[list(t.shape) for t in tensors]}" + error_context())
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def _method(name):
    def fn(input, *args, **kwargs):
        return getattr(as_tensor(input), name)(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"graphc.{name}(input, ...) is input.{name}(...)."
    return fn


# graphc.<name>(input, ...) is input.<name>(...) for these, as in torch.
METHOD_FUNCTIONS = (
    "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "neg", "square",
    "sign", "log1p", "expm1", "log2", "log10", "clamp", "clip", "clamp_min", "clamp_max", "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin",
    "var", "std", "all", "any", "norm", "reshape", "flatten", "permute", "transpose", "t", "squeeze", "unsqueeze",
    "softmax", "log_softmax", "gather", "chunk", "split", "numel", "detach", "clone", "logical_not",
    "logical_and", "logical_or", "logical_xor", "unflatten",
)
globals().update({name: _method(name) for name in METHOD_FUNCTIONS})

negative = globals()["neg"]


def add(input, other, alpha=1): return as_tensor(input).add(other, alpha=alpha)
def sub(input, other, alpha=1): return as_tensor(input).sub(other, alpha=alpha)
def mul(input, other): return as_tensor(input) * other
def pow(input, exponent): return as_tensor(input) ** exponent
def mm(input, mat2): return matmul(input, mat2)
def bmm(input, mat2): return matmul(input, mat2)
def mv(input, vec): return matmul(input, vec)
def outer(input, vec2): return as_tensor(input).unsqueeze(1) * as_tensor(vec2).unsqueeze(0)
def eq(a, b): return as_tensor(a) == b
def ne(a, b): return as_tensor(a) != b
def lt(a, b): return as_tensor(a) < b
def le(a, b): return as_tensor(a) <= b
def gt(a, b): return as_tensor(a) > b
def ge(a, b): return as_tensor(a) >= b


def dot(input, other) -> Tensor:
    input, other = as_tensor(input), as_tensor(other)
    if input.dim() != 1 or other.dim() != 1:
        raise RuntimeError(f"dot: 1D tensors expected, but got {input.dim()}D and {other.dim()}D tensors"
                           + error_context())
    return matmul(input, other)


def _scaled_sum(input, product: Tensor, beta, alpha) -> Tensor:
    """beta·input + alpha·product; beta == 0 ignores input, NaNs included, as PyTorch does."""
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:
        return scaled
    return scaled + (input if beta == 1 else as_tensor(input) * beta)


def addmm(input, mat1, mat2, *, beta=1, alpha=1) -> Tensor:
    return _scaled_sum(input, matmul(mat1, mat2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1) -> Tensor:
    return _scaled_sum(input, matmul(mat, vec), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
    return _scaled_sum(input, matmul(batch1, batch2), beta, alpha)


def std_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return (input.std(dim, unbiased, keepdim, correction=correction), input.mean(dim, keepdim))


def var_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return (input.var(dim, unbiased, keepdim, correction=correction), input.mean(dim, keepdim))


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    """Whether ``input``'s dtype is a floating-point one."""
    return input.is_floating_point()


def allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    return bool(np.allclose(_eager("allclose", a), _eager("allclose", b), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b) -> bool:
    a, b = _eager("equal", a), _eager("equal", b)
    return a.shape == b.shape and bool(np.array_equal(a, b))


# -- eager-only linear algebra -------------------------------------------------------------

def _eager(name: str, t) -> np.ndarray:
    t = as_tensor(t)
    if current_trace() is not None or t.is_symbolic:
        loc = user_location()
        raise TraceError(f"{name}() runs only in eager mode (it is computed with numpy and has no graph "
                         f"primitive or gradient){' at ' + str(loc) if loc else ''}; call it outside the "
                         "traced or compiled function")
    return t.detach().numpy()


def det(input) -> Tensor:
    a = _eager("det", input)
    return Tensor._wrap(np.linalg.det(a).astype(a.dtype))


def inverse(input) -> Tensor:
    a = _eager("inverse", input)
    try:
        return Tensor._wrap(np.linalg.inv(a).astype(a.dtype))
    except np.linalg.LinAlgError as err:
        raise RuntimeError(f"inverse: the matrix is singular ({err})") from None


def svd(input, full_matrices: bool = True):
    """torch.linalg.svd: returns (U, S, Vh)."""
    a = _eager("svd", input)
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return svd_result(*(Tensor._wrap(x.astype(a.dtype)) for x in (u, s, vh)))


__all__ = ["cat", "concat", "concatenate", "stack", "where", "maximum", "minimum", "matmul", "mm", "bmm", "mv", "dot",
           "outer", "addmm", "addmv", "baddbmm", "einsum",
           *_elementwise_math_all, *_scans_all, *_selection_all, *_sorting_all,
           "add", "sub", "mul", "pow", "eq", "ne", "lt", "le", "gt", "ge", "std_mean", "var_mean",
           "is_tensor", "is_floating_point", "allclose", "equal", "det", "inverse", "svd", "negative",
           *METHOD_FUNCTIONS]
