"""The default random generator: Philox counter-based, so eager, traced and every backend agree.

Its state is an i64[2] tensor (seed, offset).  Every draw reads the state,
runs the ``rand``/``randn`` op at that counter, and advances the offset by the
blocks it used; in a compiled step the state is a ``state`` input written back
each call, so successive steps draw fresh numbers and a fixed seed reproduces a run.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.random import blocks_used

from . import dtypes as _dt
from .allocation import check_allocation
from .dispatch import apply
from .context import current_trace, no_grad
from .device import check_device


class Generator:
    def __init__(self, seed: int = 0):
        from .tensor import Tensor
        self.state = Tensor._wrap(np.array([seed, 0], np.int64))
        self.state._kind = "state"

    def manual_seed(self, seed: int) -> "Generator":
        self.state._value[...] = (int(seed), 0)
        return self

    def initial_seed(self) -> int:
        return int(self.state._value[0])

    def get_state(self):
        from .tensor import Tensor
        return Tensor._wrap(self.state._value.copy())

    def set_state(self, state) -> None:
        self.state._value[...] = np.asarray(state, np.int64)


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (offset back to 0)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.initial_seed()


def _draw(op: str, shape: tuple, dtype, generator):
    from .tensor import as_tensor
    generator = generator or default_generator
    dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
    if current_trace() is None:
        check_allocation(op, shape, dtype)
    with no_grad():
        out = apply(op, [generator.state], shape=shape, dtype=dtype)
        advance = as_tensor(np.array([0, blocks_used(op, int(np.prod(shape)), dtype)], np.int64))
        generator.state._assign(generator.state + advance)
    return out


def rand(*args, size=None, dtype=None, generator=None, device=None, requires_grad: bool = False):
    """Uniform samples in [0, 1)."""
    from .tensor import _shape_args
    check_device(device)
    return _draw("rand", _shape_args(args, size), dtype, generator).requires_grad_(requires_grad)


def randn(*args, size=None, dtype=None, generator=None, device=None, requires_grad: bool = False):
    """Standard normal samples."""
    from .tensor import _shape_args
    check_device(device)
    return _draw("randn", _shape_args(args, size), dtype, generator).requires_grad_(requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None):
    """torch.normal: samples of N(mean, std²); tensor means and stds broadcast, else ``size`` gives the shape."""
    from .tensor import Tensor, _shape_args
    check_device(device)
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if size is not None:
        shape = _shape_args((size,))
    else:
        shape = np.broadcast_shapes(*(tuple(t.shape) for t in tensors)) if tensors else ()
    if dtype is None:
        dtype = _dt.promote([mean, std]) if tensors else _dt.get_default_dtype()
    with no_grad():         # PyTorch does not differentiate samples with respect to mean and std
        return randn(shape, dtype=dtype, generator=generator) * std + mean


def randint(low=None, high=None, size=None, *, dtype=None, generator=None, device=None):
    """Integers uniform in [low, high), called as PyTorch's ``randint(high, size)`` or
    ``randint(low, high, size)``, by position or keyword; low defaults to 0."""
    if size is None:                # randint(high, size): each argument sits one place to the left
        low, high, size = None, low, high
    elif high is None:              # randint(high, size=...)
        low, high = None, low
    if high is None or size is None:
        raise TypeError("randint() takes (high, size) or (low, high, size)")
    low = 0 if low is None else low
    u = rand(size, dtype=_dt.f64, generator=generator, device=device)
    # Truncating the non-negative offset floors it; truncating after adding a negative low would not.
    offset = (u * (high - low)).type_as_dtype(_dt.i64)
    return (offset + low).type_as_dtype(_dt.as_dtype(dtype) if dtype else _dt.i64)


def randperm(n: int, generator=None, device=None):
    from .tensor import Tensor
    check_device(device)
    keys = rand(n, dtype=_dt.f64, generator=generator)
    return Tensor._wrap(np.argsort(keys.numpy(), kind="stable").astype(np.int64))
