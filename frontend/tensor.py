"""graphc.Tensor: a PyTorch-like tensor that is either concrete or symbolic.

A concrete tensor holds a numpy array (eager mode: every op runs at once); a
symbolic tensor holds a Node of the graph being traced.  Both go through one
dispatch path (``dispatch.apply``) to the op registry, so eager execution and
tracing share every op's definition.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple
from numbers import Number

import numpy as np

from graphc.errors import ShapeError, TraceError
from graphc.ir.dtypes import DType, bool_, i64
from graphc.ir.types import TensorType
from graphc.residency import host_value

from . import dtypes as _dt
from .context import current_trace, error_context, is_grad_enabled, no_grad, user_location
from .device import check_device
from .dims import wrap_dim
from .dispatch import apply

values_indices = namedtuple("values_indices", ["values", "indices"])

# Tensor.type()'s legacy names, as torch.Tensor.type() gives them ("torch.FloatTensor").
_TENSOR_TYPE_NAMES = {"f32": "Float", "f64": "Double", "i64": "Long", "i32": "Int", "i16": "Short", "u8": "Byte",
                      "bool": "Bool"}


class Size(tuple):
    """A tensor's shape: a tuple of ints, as torch.Size."""

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"graphc.Size({list(self)})"


def _shape_args(args, size=None) -> tuple:
    """Accept f(2, 3), f((2, 3)), f([2, 3]) and f(size=(2, 3)) as PyTorch does."""
    if size is not None:
        if args:
            raise TypeError("give the size either by position or as size=, not both")
        args = (size,)
    if len(args) == 1 and isinstance(args[0], (tuple, list, Size)):
        return tuple(int(s) for s in args[0])
    return tuple(int(s) for s in args)


def _needs_value(what: str, suggestion: str):
    loc = user_location()
    return TraceError(f"{what} needs a concrete value, but this tensor is symbolic while tracing"
                      + (f" (at {loc})" if loc else "") + f". {suggestion}")


class Tensor:
    """A multi-dimensional array with PyTorch's API."""

    __array_priority__ = 1000       # so numpy scalars defer to Tensor's reflected operators

    def __init__(self, data=None, *, dtype=None, requires_grad: bool = False):
        # torch.Tensor(data) makes the default float dtype; graphc.tensor(data) infers the dtype.
        array = np.zeros((0,), np.float32) if data is None else np.asarray(data)
        dtype = _dt.as_dtype(dtype) if dtype is not None else (
            _dt.get_default_dtype() if not isinstance(data, np.ndarray) else _dt.dtype_of_data(array))
        self._init(np.array(array, dtype=dtype.numpy), None, requires_grad)

    # -- construction ----------------------------------------------------------------
    def _init(self, value, node, requires_grad, trace=None):
        self._base: Tensor | None = None    # the tensor whose storage .data aliases
        self._array = value                 # the host array (None while symbolic): see _value
        self._device = None                 # a DeviceCopy where a compiled step keeps the value
        self._node = node                   # symbolic value, or the autograd tape's node
        self._trace = trace                 # the TraceContext a symbolic tensor belongs to
        self._tape = None                   # the autograd Tape of a recorded eager tensor
        self._kind: str | None = None       # "param", "buffer" or "state" when lifted into a trace
        self.requires_grad = bool(requires_grad)
        self._grad: Tensor | None = None
        self._hooks: list | None = None     # gradient hooks of a leaf (an intermediate's live on its tape)

    @classmethod
    def _wrap(cls, value: np.ndarray, requires_grad: bool = False) -> "Tensor":
        t = cls.__new__(cls)
        t._init(value, None, requires_grad)
        return t

    @classmethod
    def _symbolic(cls, node, trace, requires_grad: bool) -> "Tensor":
        t = cls.__new__(cls)
        t._init(None, node, requires_grad, trace)
        return t

    @property
    def _value(self) -> np.ndarray | None:
        """The value as a host array, copied back first where a compiled step left a newer one on a
        device (graphc.residency): reading a tensor on the host hands it back to the host."""
        owner = self if self._base is None else self._storage_owner()
        if owner._device is not None:
            device, owner._device = owner._device, None
            host_value(owner._array, device)
        return self._array

    @_value.setter
    def _value(self, value: np.ndarray | None) -> None:
        self._array = value
        self._device = None                 # a DeviceCopy where a compiled step keeps the value

    @property
    def _type(self) -> TensorType:
        if self._array is None:
            return self._node.type
        return TensorType(self._array.shape, _dt.dtype_of_data(self._array))

    def _storage_owner(self) -> "Tensor":
        return self._base._storage_owner() if self._base is not None else self

    @property
    def is_symbolic(self) -> bool:
        return self._array is None

    # -- attributes ----------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._type.shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[wrap_dim(dim, self.dim(), "size", self.shape)]

    def dim(self) -> int:
        return len(self._type.shape)

    ndim = property(dim)

    @property
    def dtype(self) -> DType:
        return self._type.dtype

    def is_floating_point(self) -> bool:
        """Whether the dtype is a floating-point one."""
        return self.dtype.is_float

    @property
    def device(self):
        from .device import device
        return device("cpu")

    @property
    def is_leaf(self) -> bool:
        return self._tape is None

    @property
    def grad_fn(self):
        return self._node if self._tape is not None else None

    def numel(self) -> int:
        return math.prod(self._type.shape)

    def element_size(self) -> int:
        return self.dtype.itemsize

    def __len__(self) -> int:
        if self.dim() == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # -- values ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        if self._value is None:
            raise _needs_value(".numpy()", "Return the tensor from the traced function and convert the result.")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._value

    def item(self):
        if self._value is None:
            raise _needs_value(".item()", "Return the tensor from the compiled function and call .item() "
                                          "on the result outside it.")
        if self.numel() != 1:
            raise ValueError(f"item(): a Tensor with {self.numel()} elements cannot be converted to a scalar")
        return self._value.reshape(()).item()

    def tolist(self):
        if self._value is None:
            raise _needs_value(".tolist()", "Return the tensor from the traced function instead.")
        return self._value.tolist()

    def __bool__(self) -> bool:
        if self._value is None:
            raise _needs_value("bool(tensor) (an if/while on a tensor)",
                               "Python control flow cannot depend on traced values; use graphc.where instead.")
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.numel()} elements is ambiguous")
        return bool(self._value.reshape(()))

    def __format__(self, spec: str) -> str:
        # As PyTorch: a 0-d tensor formats as its number (f"{loss:.4f}"); any other only as its str.
        if self.dim() == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_float or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        array = self.detach().numpy()
        return array.astype(dtype) if dtype is not None else array

    def __repr__(self) -> str:
        if self._value is None:
            return f"tensor(<symbolic %{self._node.name}: {self._node.type}>)"
        body = np.array2string(self._value, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.dtype not in (_dt.get_default_dtype(), i64, bool_) or self.numel() == 0:
            extras.append(f"dtype={self.dtype!r}")
        if self._tape is not None:
            extras.append(f"grad_fn=<{self._node.op}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __hash__(self):
        return id(self)

    # -- grad bookkeeping -------------------------------------------------------------
    @property
    def grad(self) -> "Tensor | None":
        """The accumulated gradient.  While tracing, a concrete tensor's gradient lives in the trace."""
        ctx = current_trace()
        if ctx is not None and self._trace is None:
            found, grad = ctx.grad_of(self)
            if found:
                return grad
        return self._grad

    @grad.setter
    def grad(self, value: "Tensor | None"):
        ctx = current_trace()
        if ctx is not None and self._trace is None:
            ctx.set_grad(self, value)
        else:
            self._grad = value

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self._tape is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        if not self.dtype.is_float and requires_grad:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, not {self.dtype!r}")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> "Tensor":
        """A tensor with the same value and no gradient history."""
        ctx = current_trace()
        if ctx is not None:
            with no_grad():
                return apply("stop_gradient", [self])
        return Tensor._wrap(self._value)

    def detach_(self) -> "Tensor":
        self._tape, self._node, self.requires_grad = None, None, False
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a tensor it returns replaces the gradient."""
        from .autograd import register_hook
        return register_hook(self, hook)

    def retain_grad(self) -> None:
        """Keep this intermediate value's gradient in ``.grad`` (a leaf's is kept anyway)."""
        if self._tape is None:
            return

        def keep(grad):
            self._grad = grad if self._grad is None else self._grad + grad
        self.register_hook(keep)

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False):
        from .autograd import backward
        backward(self, gradient, retain_graph=bool(retain_graph), create_graph=create_graph)

    @property
    def data(self) -> "Tensor":
        """The same storage without autograd: in-place changes to it change this tensor."""
        if self._value is None:
            with no_grad():
                return apply("stop_gradient", [self])
        alias = Tensor._wrap(self._value)
        alias._base = self
        return alias

    @data.setter
    def data(self, other: "Tensor"):
        other = as_tensor(other)
        self._check_same_type(other, "data assignment")
        with no_grad():                  # assigning .data is not an op autograd sees, as in PyTorch
            self._assign(other)

    def clone(self) -> "Tensor":
        return apply("mul", [self, _scalar(1, self.dtype)]) if self.dtype != bool_ else \
            apply("stop_gradient", [self])

    def contiguous(self) -> "Tensor":
        return self

    # -- conversion ---------------------------------------------------------------------
    def to(self, *args, **kwargs) -> "Tensor":
        dtype = kwargs.get("dtype")
        for arg in (*args, kwargs.get("device")):
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) or arg is None or type(arg).__name__ == "device":
                check_device(arg)
            else:
                dtype = arg
        return self if dtype is None else self.type_as_dtype(_dt.as_dtype(dtype))

    def type_as_dtype(self, dtype: DType) -> "Tensor":
        if dtype == self.dtype:
            return self
        return apply("cast", [self], dtype=dtype)

    def type(self, dtype=None):
        if dtype is None:
            return f"graphc.{_TENSOR_TYPE_NAMES[self.dtype.name]}Tensor"
        return self.type_as_dtype(_dt.as_dtype(dtype))

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.type_as_dtype(other.dtype)

    def float(self): return self.type_as_dtype(_dt.f32)
    def double(self): return self.type_as_dtype(_dt.f64)
    def long(self): return self.type_as_dtype(_dt.i64)
    def int(self): return self.type_as_dtype(_dt.i32)
    def short(self): return self.type_as_dtype(_dt.i16)
    def byte(self): return self.type_as_dtype(_dt.u8)
    def bool(self): return self.type_as_dtype(bool_)

    # -- new tensors like this one ---------------------------------------------------------
    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        from .creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_args(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_args(size), 1, dtype=dtype, device=device, requires_grad=requires_grad)

    new_empty = new_zeros

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        from .creation import tensor
        return tensor(data, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, *args, **kwargs):
        raise NotImplementedError("cuda(): graphc tensors live on the CPU; choose a compiled backend with "
                                  "graphc.compile(..., backend='opencl') to run on an accelerator")

    def half(self):
        raise NotImplementedError("half(): float16 is not supported by graphc")

    # -- shape ops ---------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        shape = _infer_reshape(self.shape, _shape_args(shape), "reshape")
        if shape == tuple(self.shape):
            return self
        return apply("reshape", [self], shape=shape)

    view = reshape

    def view_as(self, other): return self.reshape(other.shape)
    reshape_as = view_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.dim() == 0:
            return self.reshape(1)
        start = wrap_dim(start_dim, self.dim(), "flatten", self.shape)
        end = wrap_dim(end_dim, self.dim(), "flatten", self.shape)
        shape = self.shape
        return self.reshape(*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])

    def unflatten(self, dim: int, sizes) -> "Tensor":
        dim = wrap_dim(dim, self.dim(), "unflatten", self.shape)
        return self.reshape(*self.shape[:dim], *sizes, *self.shape[dim + 1:])

    def permute(self, *dims) -> "Tensor":
        return apply("permute", [self], dims=_shape_args(dims))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        if self.dim() < 2 and dim0 in (0, -1) and dim1 in (0, -1):
            return self
        dims = list(range(self.dim()))
        dim0, dim1 = (wrap_dim(d, self.dim(), "transpose", self.shape) for d in (dim0, dim1))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    def t(self) -> "Tensor":
        if self.dim() > 2:
            raise ShapeError(f"t(): expects a tensor with <= 2 dimensions, but self is {self.dim()}D"
                             + error_context())
        return self.transpose(0, 1) if self.dim() == 2 else self

    @property
    def T(self) -> "Tensor":
        return self.permute(list(reversed(range(self.dim()))))

    @property
    def mT(self) -> "Tensor":
        """The matrices of a batch transposed (the last two dims swapped)."""
        if self.dim() < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices, got a "
                               f"{self.dim()}-D tensor" + error_context())
        return self.transpose(-2, -1)

    def unsqueeze(self, dim: int) -> "Tensor":
        dim = wrap_dim(dim, self.dim(), "unsqueeze", self.shape, extra=1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim=None) -> "Tensor":
        if dim is None:
            return self.reshape([s for s in self.shape if s != 1])
        dims = {wrap_dim(d, self.dim(), "squeeze", self.shape)
                for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        return self.reshape([s for i, s in enumerate(self.shape) if not (i in dims and s == 1)])

    def expand(self, *sizes) -> "Tensor":
        sizes = _shape_args(sizes)
        lead = len(sizes) - self.dim()
        if lead < 0:
            raise ShapeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                             f"to the number of dimensions in the tensor ({self.dim()})" + error_context())
        shape = tuple(self.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
        if shape == tuple(self.shape):
            return self
        return apply("expand", [self], shape=shape)

    def expand_as(self, other): return self.expand(other.shape)

    def repeat(self, *sizes) -> "Tensor":
        sizes = _shape_args(sizes)
        x = self.reshape((1,) * (len(sizes) - self.dim()) + tuple(self.shape))
        # repeat = insert a unit axis before each dim, expand it, and merge.
        interleaved = [d for s in x.shape for d in (1, s)]
        expanded = [d for r, s in zip(sizes, x.shape) for d in (r, s)]
        return x.reshape(interleaved).expand(expanded).reshape([r * s for r, s in zip(sizes, x.shape)])

    def chunk(self, chunks: int, dim: int = 0):
        size = -(-self.shape[wrap_dim(dim, self.dim(), "chunk", self.shape)] // chunks)
        return self.split(size, dim)

    def split(self, split_size, dim: int = 0):
        dim = wrap_dim(dim, self.dim(), "split", self.shape)
        n = self.shape[dim]
        sizes = split_size if isinstance(split_size, (list, tuple)) else \
            [min(split_size, n - s) for s in range(0, n, split_size)]
        out, start = [], 0
        for size in sizes:
            index = [slice(None)] * dim + [slice(start, start + size)]
            out.append(self[tuple(index)])
            start += size
        return tuple(out)

    # -- indexing -------------------------------------------------------------------------
    def __getitem__(self, key) -> "Tensor":
        from .indexing import getitem
        return getitem(self, key)

    def __setitem__(self, key, value) -> None:
        from .indexing import setitem
        setitem(self, key, value)

    # -- in-place updates -------------------------------------------------------------------
    def _check_same_type(self, other: "Tensor", what: str):
        if tuple(other.shape) != tuple(self.shape):
            try:
                np.broadcast_shapes(tuple(other.shape), tuple(self.shape))
            except ValueError:
                raise ShapeError(f"{what}: value of shape {list(other.shape)} cannot be written into a tensor "
                                 f"of shape {list(self.shape)}" + error_context()) from None

    def _assign(self, result: "Tensor") -> "Tensor":
        """Make ``result`` this tensor's value, in place, cast to its dtype and expanded to its shape."""
        if self._tape is None and self.requires_grad and is_grad_enabled() and current_trace() is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation. "
                               "Wrap the update in `with graphc.no_grad():`" + error_context())
        if result.dtype != self.dtype:
            result = result.type_as_dtype(self.dtype)
        if tuple(result.shape) != tuple(self.shape):
            result = result.expand(self.shape)
        ctx = current_trace()
        if ctx is not None:
            ctx.assign(self, ctx.node_of(result))
            if self._trace is ctx:
                self.requires_grad = self.requires_grad or result.requires_grad
            return self
        if result._tape is not None or self._tape is not None:
            # Recorded values must not change under the tape, so the tensor takes the new array.
            self._value, self._node, self._tape = result._value, result._node, result._tape
            self.requires_grad = result.requires_grad
        else:
            np.copyto(self._value, result._value)     # shared with .data aliases and numpy views
        return self

    def _update(self, op: str, result: "Tensor") -> "Tensor":
        """``result`` as this tensor's value, for the in-place op ``op`` (``add_``).

        As PyTorch, an in-place op refuses a result it could only keep by casting it down a
        category (``int_tensor.add_(1.5)``) rather than truncating it; copy_, fill_ and index
        assignment do cast, so they call _assign directly.
        """
        if not _dt.can_cast(result.dtype, self.dtype):
            raise ShapeError(f"{op}: result type {result.dtype.torch_name} can't be cast to the desired output type "
                             f"{self.dtype.torch_name} of the tensor it updates ({self._type})" + error_context())
        return self._assign(result)

    def copy_(self, src) -> "Tensor":
        src = as_tensor(src)
        self._check_same_type(src, "copy_")
        return self._assign(src)

    def zero_(self): return self.fill_(0)
    def abs_(self): return self._update("abs_", self.abs())

    def fill_(self, value) -> "Tensor":
        return self._assign(full_like(self, value.item() if isinstance(value, Tensor) else value))

    def add_(self, other, alpha=1): return self._update("add_", self.add(other, alpha=alpha))
    def sub_(self, other, alpha=1): return self._update("sub_", self.sub(other, alpha=alpha))
    def mul_(self, other): return self._update("mul_", self * other)
    def div_(self, other, *, rounding_mode=None):
        return self._update("div_", self.div(other, rounding_mode=rounding_mode))
    def pow_(self, other): return self._update("pow_", self ** other)
    def sqrt_(self): return self._update("sqrt_", self.sqrt())
    def neg_(self): return self._update("neg_", -self)
    def relu_(self): return self._update("relu_", self.relu())
    def clamp_(self, min=None, max=None): return self._update("clamp_", self.clamp(min, max))
    def addcmul_(self, t1, t2, value=1): return self._update("addcmul_", self + value * t1 * t2)
    def addcdiv_(self, t1, t2, value=1): return self._update("addcdiv_", self + value * t1 / t2)
    def maximum_(self, other): return self._update("maximum_", maximum(self, other))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        from .random import rand
        return self._assign(rand(self.shape, dtype=self.dtype) * (b - a) + a)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        from .random import randn
        return self._assign(randn(self.shape, dtype=self.dtype) * std + mean)

    def bernoulli_(self, p: float = 0.5) -> "Tensor":
        from .random import rand
        return self._assign((rand(self.shape) < p).type_as_dtype(self.dtype))

    # -- arithmetic ---------------------------------------------------------------------------
    def add(self, other, alpha=1):
        return _binary("add", self, other * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        return _binary("sub", self, other * alpha if alpha != 1 else other)

    def __add__(self, other): return _binary("add", self, other)
    def __radd__(self, other): return _binary("add", other, self)
    def __sub__(self, other): return _binary("sub", self, other)
    def __rsub__(self, other): return _binary("sub", other, self)
    def __mul__(self, other): return _binary("mul", self, other)
    def __rmul__(self, other): return _binary("mul", other, self)
    def __truediv__(self, other): return _binary("div", self, other, float_only=True)
    def __rtruediv__(self, other): return _binary("div", other, self, float_only=True)
    def __pow__(self, other): return _pow(self, other)
    def __rpow__(self, other): return _pow(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return apply("neg", [self]) if self.dtype != bool_ else self.logical_not()
    def __pos__(self): return self
    def __abs__(self): return self.abs()
    def __iadd__(self, other): return self.add_(other)
    def __isub__(self, other): return self.sub_(other)
    def __imul__(self, other): return self.mul_(other)
    def __itruediv__(self, other): return self.div_(other)

    def __floordiv__(self, other): return _integer_division("floor_divide", self, other)
    def __rfloordiv__(self, other): return _integer_division("floor_divide", other, self)
    def __mod__(self, other): return _integer_division("remainder", self, other)
    def __rmod__(self, other): return _integer_division("remainder", other, self)
    def __ifloordiv__(self, other): return self._update("floor_divide_", self // other)
    def __imod__(self, other): return self._update("remainder_", self % other)

    def __and__(self, other): return _logical("mul", self, other)
    def __or__(self, other): return _logical("add", self, other)
    def __xor__(self, other): return _logical("ne", self, other)
    def __invert__(self): return self.logical_not()

    def logical_not(self):
        if self.dtype != bool_:
            return _binary("eq", self, 0)
        return _binary("eq", self, False)

    def logical_and(self, other): return _logical("mul", self, other)
    def logical_or(self, other): return _logical("add", self, other)
    def logical_xor(self, other): return _logical("ne", self, other)

    # comparisons give bool tensors
    def __eq__(self, other): return _binary("eq", self, other)   # type: ignore[override]
    def __ne__(self, other): return _binary("ne", self, other)   # type: ignore[override]
    def __lt__(self, other): return _binary("lt", self, other)
    def __le__(self, other): return _binary("le", self, other)
    def __gt__(self, other): return _binary("gt", self, other)
    def __ge__(self, other): return _binary("ge", self, other)
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    mul, true_divide, pow = __mul__, __truediv__, __pow__

    def matmul(self, other): return matmul(self, other)
    def mm(self, other): return matmul(self, other)
    def bmm(self, other): return matmul(self, other)

    # -- unary math ----------------------------------------------------------------------
    def _float_unary(self, op):
        x = self if self.dtype.is_float else self.type_as_dtype(_dt.get_default_dtype())
        return apply(op, [x])

    def exp(self): return self._float_unary("exp")
    def log(self): return self._float_unary("log")
    def sqrt(self): return self._float_unary("sqrt")
    def reciprocal(self): return self._float_unary("reciprocal")
    def sin(self): return self._float_unary("sin")
    def cos(self): return self._float_unary("cos")
    def tanh(self): return self._float_unary("tanh")
    def sigmoid(self): return self._float_unary("sigmoid")
    def rsqrt(self): return self.sqrt().reciprocal()
    def log1p(self): return (self + 1).log()
    def expm1(self): return self.exp() - 1
    def log2(self): return self.log() / math.log(2)
    def log10(self): return self.log() / math.log(10)
    def square(self): return self * self
    def abs(self): return apply("abs", [self]) if self.dtype != bool_ else self
    def neg(self): return -self
    def relu(self): return apply("relu", [self])

    def sign(self):
        return (self > 0).type_as_dtype(self.dtype) - (self < 0).type_as_dtype(self.dtype)

    def clamp(self, min=None, max=None):
        # The gradient passes whole wherever min <= x <= max, bounds included, as PyTorch's: maximum and
        # minimum alone would split it in half at a bound.  Off the selected side they still give the
        # value, so a NaN (in x or in a bound) propagates, and a tensor bound gets its gradient.
        out = self
        if min is not None:
            out = where(out >= min, out, maximum(out, min))
        if max is not None:
            out = where(out <= max, out, minimum(out, max))
        return out

    clip = clamp

    def clamp_min(self, min): return self.clamp(min=min)
    def clamp_max(self, max): return self.clamp(max=max)

    def softmax(self, dim: int):
        from .nn.functional import softmax
        return softmax(self, dim)

    def log_softmax(self, dim: int):
        from .nn.functional import log_softmax
        return log_softmax(self, dim)

    # -- reductions -----------------------------------------------------------------------
    def _axes(self, dim):
        if dim is None:
            return tuple(range(self.dim()))
        return tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)

    def sum(self, dim=None, keepdim: bool = False, dtype=None):
        x = self
        if dtype is not None:
            x = x.type_as_dtype(_dt.as_dtype(dtype))
        elif not x.dtype.is_float and x.dtype != i64:
            x = x.long()      # PyTorch sums integers and bools into int64
        return apply("sum", [x], axes=x._axes(dim), keepdims=keepdim)

    def mean(self, dim=None, keepdim: bool = False, dtype=None):
        x = self.type_as_dtype(_dt.as_dtype(dtype)) if dtype is not None else self
        if not x.dtype.is_float:
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating "
                               f"point or complex dtype. Got: {x.dtype.torch_name.capitalize()}")
        axes = x._axes(dim)
        count = math.prod(x.shape[a] for a in axes)
        return x.sum(axes, keepdim) * (1.0 / count if count else math.nan)

    def _reduce_extremum(self, op, dim, keepdim):
        if dim is None:
            return apply(op, [self], axes=self._axes(None), keepdims=False)
        values = apply(op, [self], axes=(dim,), keepdims=keepdim)
        arg = (self if op == "max" else -self) if self.dtype != bool_ else self.long() * (1 if op == "max" else -1)
        indices = apply("argmax", [arg], axis=dim, keepdims=keepdim)
        return values_indices(values, indices)

    def max(self, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return maximum(self, dim)
        return self._reduce_extremum("max", dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return minimum(self, dim)
        return self._reduce_extremum("min", dim, keepdim)

    def amax(self, dim=None, keepdim: bool = False):
        return apply("max", [self], axes=self._axes(dim), keepdims=keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        return apply("min", [self], axes=self._axes(dim), keepdims=keepdim)

    def argmax(self, dim=None, keepdim: bool = False):
        if dim is None:
            return apply("argmax", [self.reshape(-1)], axis=0, keepdims=False)
        return apply("argmax", [self], axis=dim, keepdims=keepdim)

    def argmin(self, dim=None, keepdim: bool = False):
        return (-self if self.dtype != bool_ else -self.long()).argmax(dim, keepdim)

    def var(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
        correction = 1 if correction is None and unbiased is None else (
            correction if correction is not None else int(bool(unbiased)))
        axes = self._axes(dim)
        count = math.prod(self.shape[a] for a in axes)
        centered = self - self.mean(axes, keepdim=True)
        return (centered * centered).sum(axes, keepdim) * (1.0 / builtins.max(count - correction, 0)
                                                           if count - correction > 0 else math.nan)

    def std(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
        return _sqrt_with_zero_gradient_at_zero(self.var(dim, unbiased, keepdim, correction=correction))

    # The reductions take no bool: truth values are reduced as 0/1 bytes.
    def all(self, dim=None, keepdim: bool = False):
        return apply("min", [self.bool().byte()], axes=self._axes(dim), keepdims=keepdim).bool()

    def any(self, dim=None, keepdim: bool = False):
        return apply("max", [self.bool().byte()], axes=self._axes(dim), keepdims=keepdim).bool()

    def norm(self, p=2, dim=None, keepdim: bool = False):
        if p != 2:
            raise NotImplementedError(f"norm(p={p}): only the 2-norm is supported")
        return _sqrt_with_zero_gradient_at_zero((self * self).sum(dim, keepdim))

    def gather(self, dim: int, index: "Tensor"):
        return apply("gather", [self, index], axis=dim)


# -- helpers shared by the methods ---------------------------------------------------------------

def _infer_reshape(old_shape, shape, what: str) -> tuple:
    shape = tuple(int(s) for s in shape)
    numel = math.prod(old_shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"{what}: only one dimension can be inferred (-1), got {list(shape)}" + error_context())
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or numel % known:
            raise ShapeError(f"{what}: shape {list(shape)} is invalid for input of size {numel} "
                             f"(shape {list(old_shape)})" + error_context())
        shape = tuple(numel // known if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise ShapeError(f"{what}: shape {list(shape)} is invalid for input of size {numel} "
                         f"(shape {list(old_shape)})" + error_context())
    return shape


def _sqrt_with_zero_gradient_at_zero(x: Tensor) -> Tensor:
    """sqrt(x), whose gradient is 0 where x == 0 instead of inf, which the chain rule turns into NaN.

    PyTorch's norm and std take that gradient (x / norm, (x - mean) / std) as 0 where the
    denominator is 0.  The inner where keeps sqrt's own gradient finite there; the outer one zeroes it.
    """
    zero = x == 0
    return where(zero, 0.0, where(zero, 1.0, x).sqrt())


def _scalar(value, dtype: DType) -> Tensor:
    """A 0-d tensor (a ``full`` node while tracing)."""
    ctx = current_trace()
    if ctx is not None:
        node = ctx.builder.scalar(value, dtype)
        return Tensor._symbolic(node, ctx, False)
    return Tensor._wrap(np.array(value, dtype=dtype.numpy))


def as_tensor(value, dtype=None) -> Tensor:
    """``value`` as a Tensor (numbers become 0-d tensors; numpy arrays keep their dtype)."""
    if isinstance(value, Tensor):
        return value if dtype is None else value.type_as_dtype(_dt.as_dtype(dtype))
    if isinstance(value, Number) and not isinstance(value, np.ndarray):
        return _scalar(value, _dt.as_dtype(dtype) if dtype is not None else _dt.promote([value]))
    dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.dtype_of_data(value)
    array = np.array(value, dtype=dtype.numpy)
    ctx = current_trace()
    if ctx is not None:
        node = ctx.builder.op("constant", value=array)
        return Tensor._symbolic(node, ctx, False)
    return Tensor._wrap(array)


def _operands(a, b, float_only=False):
    dtype = _dt.promote([a, b])
    if float_only and not dtype.is_float:
        dtype = _dt.get_default_dtype()
    return as_tensor(a, dtype), as_tensor(b, dtype)


def _binary(op: str, a, b, float_only: bool = False) -> Tensor:
    for x in (a, b):
        if not isinstance(x, (Tensor, Number)):
            if isinstance(x, np.ndarray):
                continue
            return NotImplemented
    x, y = _operands(a, b, float_only)
    return apply(op, [x, y])


def _integer_division(name: str, a, b) -> Tensor:
    from . import elementwise_math
    if not all(isinstance(x, (Tensor, Number, np.ndarray)) for x in (a, b)):
        return NotImplemented
    return getattr(elementwise_math, name)(a, b)


def _logical(op: str, a, b) -> Tensor:
    x, y = as_tensor(a), as_tensor(b)
    if x.dtype != bool_ or y.dtype != bool_:
        raise NotImplementedError("bitwise &, |, ^ on integer tensors are not supported; use them on bool tensors")
    return apply(op, [x, y])


def _pow(a, b) -> Tensor:
    if isinstance(b, Number) and not isinstance(b, bool) and isinstance(a, Tensor):
        if b == 2:
            return a * a
        if b == 1:
            return a.clone()
        if b == 0.5 and a.dtype.is_float:
            return a.sqrt()
    return _binary("pow", a, b, float_only=True)


def where(condition, input, other) -> Tensor:
    condition = as_tensor(condition)
    if condition.dtype != bool_:
        condition = condition.bool()
    x, y = _operands(input, other)
    return apply("where", [condition, x, y])


def maximum(a, b) -> Tensor:
    return _binary("maximum", a, b)


def minimum(a, b) -> Tensor:
    return _binary("minimum", a, b)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """torch.matmul: 1-D operands are promoted to matrices and the added dims removed."""
    a, b = _operands(a, b)
    if a.dim() == 0 or b.dim() == 0:
        raise ShapeError(f"matmul: both arguments need at least 1 dimension, got {a.dim()}D and {b.dim()}D"
                         + error_context())
    squeeze = []
    if a.dim() == 1:
        a, squeeze = a.unsqueeze(0), squeeze + [-2]
    if b.dim() == 1:
        b, squeeze = b.unsqueeze(1), squeeze + [-1]
    if a.dim() > 3 or b.dim() > 3:
        lead = a.shape[:-2] if a.dim() >= b.dim() else b.shape[:-2]
        a3 = a.reshape(-1, *a.shape[-2:]) if a.dim() > 2 else a
        b3 = b.reshape(-1, *b.shape[-2:]) if b.dim() > 2 else b
        out = apply("matmul", [a3, b3])
        out = out.reshape(*lead, *out.shape[-2:])
    else:
        out = apply("matmul", [a, b])
    for dim in squeeze:
        out = out.squeeze(dim if len(squeeze) == 1 else -1)
    return out


def full_like(t: Tensor, value, dtype=None) -> Tensor:
    from .creation import full
    return full(t.shape, value, dtype=dtype or t.dtype)
