"""Check one graphc function against PyTorch: values, dtypes, shapes and gradients, eager and compiled.

``check(fn, *arrays)`` runs ``fn(module, *tensors)`` with ``module`` = torch and = graphc on
tensors made from the same numpy arrays, eagerly and through ``graphc.compile`` on every
available backend but OpenCL (PoCL builds a graph in about a second; the op suite checks the
OpenCL backend primitive by primitive, in batches).  With
``grad=True`` every floating-point input requires grad, and the gradients of
sum(output · seed) (a fixed random seed per float output) are compared as well,
from eager ``backward()`` and from a compiled step that calls ``backward()`` inside.
"""
from __future__ import annotations

import numpy as np

import graphc
from graphc.backends.registry import available_backends
from optest import require_torch

torch = require_torch()
COMPILED_BACKENDS = [name for name in available_backends() if name != "opencl"]


def _flat(result) -> list:
    if isinstance(result, (tuple, list)):
        return [r for item in result for r in _flat(item)]
    return [result]


def assert_same(g, t, rtol=1e-6, atol=1e-6, what="output"):
    """A graphc result equals a torch one: dtype, shape and values (NaN where torch has NaN)."""
    if isinstance(t, torch.dtype):
        assert g.torch_name == str(t).replace("torch.", ""), (what, g, t)
        return
    if not isinstance(t, torch.Tensor):
        assert g == t, (what, g, t)
        return
    assert isinstance(g, graphc.Tensor), (what, type(g))
    assert g.dtype.torch_name == str(t.dtype).replace("torch.", ""), (what, g.dtype, t.dtype)
    assert tuple(g.shape) == tuple(t.shape), (what, tuple(g.shape), tuple(t.shape))
    np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol, err_msg=what)


def _inputs(module, arrays, grad):
    tensors = []
    for a in arrays:
        t = module.tensor(a)
        if grad and np.asarray(a).dtype.kind == "f":
            t.requires_grad_(True)
        tensors.append(t)
    return tensors


def _seeds(outputs):
    rng = np.random.default_rng(42)
    return [rng.standard_normal(tuple(o.shape)).astype(np.float64) if o.dtype.is_floating_point else None
            for o in outputs]


def _weighted_sum(module, outputs, seeds):
    terms = [(o * module.tensor(s, dtype=o.dtype)).sum() for o, s in zip(outputs, seeds) if s is not None]
    return sum(terms[1:], terms[0])


def _torch_gradients(fn, arrays):
    xs = _inputs(torch, arrays, grad=True)
    outputs = _flat(fn(torch, *xs))
    seeds = _seeds(outputs)
    _weighted_sum(torch, outputs, seeds).backward()
    return [x.grad if x.requires_grad else None for x in xs], seeds


def check(fn, *arrays, grad: bool = True, compiled: bool = True, rtol=1e-6, atol=1e-6):
    arrays = [np.asarray(a) for a in arrays]
    expected = _flat(fn(torch, *_inputs(torch, arrays, grad=False)))
    eager = _flat(fn(graphc, *_inputs(graphc, arrays, grad=False)))
    assert len(eager) == len(expected)
    for i, (g, t) in enumerate(zip(eager, expected)):
        assert_same(g, t, rtol, atol, f"eager output {i}")
    if compiled:
        for backend in COMPILED_BACKENDS:
            step = graphc.compile(lambda *xs: fn(graphc, *xs), backend=backend)
            for i, (g, t) in enumerate(zip(_flat(step(*_inputs(graphc, arrays, grad=False))), expected)):
                assert_same(g, t, rtol, atol, f"output {i} compiled for {backend}")
    if grad and any(a.dtype.kind == "f" for a in arrays) and any(t.dtype.is_floating_point for t in expected):
        _check_gradients(fn, arrays, compiled, rtol, atol)


def _check_gradients(fn, arrays, compiled, rtol, atol):
    expected, seeds = _torch_gradients(fn, arrays)

    def step(*xs):
        outputs = _flat(fn(graphc, *xs))
        _weighted_sum(graphc, outputs, seeds).backward()
        return [x.grad for x in xs]

    runs = [("eager", step(*_inputs(graphc, arrays, grad=True)))]
    if compiled:
        runs += [(f"compiled for {backend}", graphc.compile(step, backend=backend)(*_inputs(graphc, arrays, grad=True)))
                 for backend in COMPILED_BACKENDS]
    for how, grads in runs:
        for i, (g, t) in enumerate(zip(grads, expected)):
            if t is None:
                continue
            if g is None:           # an input the output does not depend on: PyTorch has zeros there
                assert not t.detach().numpy().any(), f"{how} gradient {i} is missing"
                continue
            assert_same(g, t, rtol, atol, f"{how} gradient {i}")
