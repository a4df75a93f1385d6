"""Tensor methods that are composite functions (``x.atan()`` is ``graphc.atan(x)``), and the
in-place forms PyTorch code uses (``x.floor_()``, ``x.masked_fill_(mask, 0)``, ``x.exp_()``).

The functions live in their own modules, which import Tensor; attaching them here,
once every module is loaded, keeps those imports one-way.
"""
from __future__ import annotations

from . import elementwise_math, functions, scans, selection, sorting
from .tensor import Tensor

# graphc.<name> functions that are not methods in PyTorch either.
_FUNCTIONS_ONLY = {"hstack", "vstack", "meshgrid"}

COMPOSITE_METHODS = {name: getattr(module, name)
                     for module in (elementwise_math, scans, sorting, selection) for name in module.__all__
                     if name not in _FUNCTIONS_ONLY}
COMPOSITE_METHODS.update({name: getattr(functions, name) for name in ("mv", "dot", "outer", "addmm", "addmv", "baddbmm")})

# x.name_(...) is x's value replaced by x.name(...).
IN_PLACE = (
    "atan", "asin", "acos", "atan2", "tan", "cosh", "sinh", "erf", "exp2", "lerp", "trunc", "floor", "ceil", "round",
    "frac", "floor_divide", "remainder", "cumsum", "cumprod", "scatter", "scatter_add", "masked_fill", "index_fill",
    "exp", "log", "log2", "log10", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid", "abs", "sign", "reciprocal",
    "square", "rsqrt", "clamp_min", "clamp_max", "clip", "fix", "tril", "triu",
)


def _in_place(name: str):
    def method(self, *args, **kwargs):
        return self._update(name + "_", getattr(self, name)(*args, **kwargs))
    method.__name__ = name + "_"
    method.__doc__ = f"In-place x.{name}(...)."
    return method


def install() -> None:
    for name, fn in COMPOSITE_METHODS.items():
        setattr(Tensor, name, fn)
    for name in IN_PLACE:
        setattr(Tensor, name + "_", _in_place(name))
