"""Helpers for testing single ops: run them, differentiate them, check them.

Every op test builds a one-op graph with the GraphBuilder, runs it on the
reference backend, and compares against PyTorch (the oracle, skipped with a
reason where it is not installed) or against central finite differences.

Every graph an op test runs (the op, and its gradient graph) also runs on each
compiled backend (``COMPILED_BACKENDS``), which must agree with the reference:
floats within ``FLOAT_TOLERANCE`` of the largest value, integers and bools
exactly, the same error for an out-of-range index.  So the op suite is the
backends' op suite too.  Finite-difference checks test gradient rules, not
backends, and stay on the reference.

OpenCL checks are deferred and run in batches (``check_compiled``): PoCL pays
about 0.05 s a kernel, so each batch of 100 graphs is built as one program (a
kernel several graphs share compiled once), on a thread of its own while the
tests go on.  Every batch is finished and its failures reported when the test
module ends; a failure names the graph and the test that made it.

A test parametrized over a cross product (every binary op on every pair of
shapes) runs on OpenCL for a covering part of it: a case goes to OpenCL when one
of its parameter values has not been there yet in that test, so every op and
every shape is checked on OpenCL, while the LLVM backend checks the whole
product (the same kernel IR: what OpenCL adds is how each construct renders).
That takes the OpenCL op suite from 2230 kernels (1159 distinct) to 1449 (841).
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
import pytest

from graphc.backends import opencl
from graphc.backends.reference import run_graph
from graphc.backends.registry import get_backend
from graphc.ir import GraphBuilder, dtype_from_numpy
from graphc.ir.graph import Graph
from graphc.ir.types import TensorType
from graphc.passes.autodiff import gradients
from graphc.passes.memory import plan_memory

# OpenCL where a device builds kernels (CI installs PoCL; tests/backends/test_opencl.py says when none does).
COMPILED_BACKENDS = ("llvm", *(("opencl",) if opencl.available() else ()))
# rtol, and atol as a fraction of the largest magnitude: a long f32 sum in another order differs by that much.
FLOAT_TOLERANCE = {"float32": (1e-4, 2e-5), "float64": (1e-12, 1e-13)}


def run_checked(graph: Graph, arrays) -> list[np.ndarray]:
    """``graph``'s outputs on the reference backend, after checking every compiled backend agrees."""
    try:
        expected = run_graph(graph, arrays).outputs
    except (IndexError, ValueError) as err:
        kind, message = type(err), str(err)      # kept: `err` is gone after the except block

        def fails_alike(backend, run):
            with pytest.raises(kind) as raised:
                run()
            assert str(raised.value) == message, f"{backend}: {raised.value} instead of {message}"
        for backend in COMPILED_BACKENDS:
            check_compiled(backend, graph, arrays, fails_alike)
        raise

    def agrees(backend, run):
        for got, want in zip(run().outputs, expected, strict=True):
            assert_backend_agrees(backend, graph.name, got, want)
    for backend in COMPILED_BACKENDS:
        check_compiled(backend, graph, arrays, agrees)
    return expected


# OpenCL checks waiting for their batch: (graph, arrays, check, the test that made it); and the batches
# being built and checked on a thread of their own while the tests go on (pytest uses one core, PoCL
# the other: its build releases the GIL).
_deferred: list[tuple[Graph, object, Callable, str]] = []
_batches: list[Future] = []
_builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opencl-checks")
OPENCL_BATCH = 100


# The test case running now: (its test function, its parameters as (name, repr) pairs); set by conftest.py.
current_case: tuple[str, frozenset] | None = None
# Each test function's parameter values that some case of it checked on OpenCL; the cases doing so.
_opencl_values: dict[str, set] = {}
_opencl_cases: set = set()


def _covers_new_ground() -> bool:
    """Whether the running case goes to OpenCL: one of its parameter values is new to its test there."""
    if current_case is None:
        return True
    function, values = current_case
    seen = _opencl_values.setdefault(function, set())
    if current_case in _opencl_cases or not values <= seen:
        _opencl_cases.add(current_case)
        seen |= values
        return True
    return False


def check_compiled(backend: str, graph: Graph, arrays, check: Callable) -> None:
    """``check(backend, run)`` where ``run()`` runs ``graph`` compiled for ``backend`` on ``arrays``:
    now, or for OpenCL in the next batch (if the case covers new ground there)."""
    if backend != "opencl":
        check(backend, lambda: run_compiled(backend, graph, arrays))
        return
    if not _covers_new_ground():
        return
    copied = {k: np.array(v) for k, v in arrays.items()} if isinstance(arrays, dict) else [np.array(a) for a in arrays]
    _deferred.append((graph, copied, check, os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]))
    if len(_deferred) >= OPENCL_BATCH:
        _start_batch()


def _start_batch() -> None:
    batch, _deferred[:] = list(_deferred), []
    if batch:
        _batches.append(_builder.submit(_check_batch, batch))


def _check_batch(batch) -> list[str]:
    """Build a batch's graphs as one OpenCL program, run each and check it: the failures."""
    try:
        executables = opencl.build_executables([(graph, plan_memory(graph)) for graph, _, _, _ in batch])
    except Exception as err:              # the whole batch failed to build: every graph says so
        return [f"{test}: graph {graph.name}: {type(err).__name__}: {err}" for graph, _, _, test in batch]
    failures = []
    for (graph, arrays, check, test), executable in zip(batch, executables):
        try:
            check("opencl", lambda: executable.run(arrays))
        except Exception as err:          # every graph of the batch is checked, then all failures reported
            failures.append(f"{test}: graph {graph.name}: {type(err).__name__}: {err}")
    return failures


def run_deferred() -> None:
    """Check every OpenCL graph still waiting (called as each test module ends); report every failure."""
    _start_batch()
    failures = [failure for batch in _batches for failure in batch.result()]
    _batches.clear()
    assert not failures, f"{len(failures)} OpenCL check(s) failed:\n" + "\n".join(failures)


def assert_backend_agrees(backend: str, what: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{backend} {what}: {got.dtype}{list(got.shape)} instead of {want.dtype}{list(want.shape)}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=f"{backend} {what} vs the reference backend")
        return
    rtol, atol = FLOAT_TOLERANCE[want.dtype.name]
    finite = want[np.isfinite(want)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(scale, 1.0),
                               err_msg=f"{backend} {what} vs the reference backend")


def run_compiled(backend: str, graph: Graph, arrays):
    """``graph`` compiled for ``backend`` over its memory plan and run once: a RunResult."""
    return get_backend(backend).build_executable(graph, plan_memory(graph)).run(arrays)


def require_torch():
    """The torch module, or skip: torch==2.13.0 is the oracle, installed in CI."""
    return pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed; "
                                               "pip install torch==2.13.0")


def _input_types(arrays):
    return [TensorType(a.shape, dtype_from_numpy(a.dtype)) for a in arrays]


def run_op(op: str, arrays: Sequence[np.ndarray], compiled: bool = True, **attrs) -> np.ndarray:
    """Build a one-node graph of ``op`` over ``arrays`` and run it on the reference backend
    (checking the compiled backends against it, unless ``compiled`` is false)."""
    arrays = [np.asarray(a) for a in arrays]
    b = GraphBuilder(f"{op}_test")
    xs = [b.input(f"x{i}", t) for i, t in enumerate(_input_types(arrays))]
    b.output(b.op(op, *xs, **attrs))
    graph = b.build()
    return (run_checked(graph, arrays) if compiled else run_graph(graph, arrays).outputs)[0]


def op_gradients(op: str, arrays: Sequence[np.ndarray], seed: np.ndarray, **attrs) -> list[np.ndarray | None]:
    """Gradients of sum(op(arrays) * seed) w.r.t. each array, through graphc's autodiff."""
    arrays = [np.asarray(a) for a in arrays]
    b = GraphBuilder(f"{op}_grad_test")
    xs = [b.input(f"x{i}", t) for i, t in enumerate(_input_types(arrays))]
    out = b.op(op, *xs, **attrs)
    s = b.input("seed", TensorType(out.shape, out.dtype))
    nodes = list(b.nodes)
    grads = gradients(b, nodes, [out], [s], xs)
    present = [g for g in grads if g is not None]
    b.output(*present)
    values = iter(run_checked(b.build(), [*arrays, seed.astype(out.dtype.numpy)]))
    return [next(values) if g is not None else None for g in grads]


def check_grad_fd(op: str, arrays: Sequence[np.ndarray], rtol=1e-5, atol=1e-7, eps=1e-6,
                  check: Sequence[int] | None = None, **attrs) -> None:
    """Compare autodiff gradients with central finite differences (use float64 arrays)."""
    arrays = [np.asarray(a) for a in arrays]
    out = run_op(op, arrays, **attrs)
    rng = np.random.default_rng(0)
    seed = rng.standard_normal(out.shape).astype(out.dtype)
    grads = op_gradients(op, arrays, seed, **attrs)
    for i, a in enumerate(arrays):
        if (check is not None and i not in check) or a.dtype.kind != "f":
            continue
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus, minus = [x.copy() for x in arrays], [x.copy() for x in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            f_plus = np.sum(run_op(op, plus, compiled=False, **attrs) * seed)
            f_minus = np.sum(run_op(op, minus, compiled=False, **attrs) * seed)
            numeric[idx] = (f_plus - f_minus) / (2 * eps)
        assert grads[i] is not None, f"{op}: no gradient for input {i}"
        np.testing.assert_allclose(grads[i], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{op} {attrs}: gradient of input {i} vs finite differences")


def check_grad_torch(op: str, arrays: Sequence[np.ndarray], torch_fn: Callable, rtol=1e-4, atol=1e-5,
                     check: Sequence[int] | None = None, **attrs) -> None:
    """Compare autodiff gradients with PyTorch's for ``torch_fn`` (the same computation in torch)."""
    torch = require_torch()
    arrays = [np.asarray(a) for a in arrays]
    out = run_op(op, arrays, **attrs)
    seed = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    grads = op_gradients(op, arrays, seed, **attrs)
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    t_out = torch_fn(*ts)
    (t_out * torch.tensor(seed)).sum().backward()
    for i, t in enumerate(ts):
        if (check is not None and i not in check) or not t.requires_grad:
            continue
        expected = t.grad.numpy() if t.grad is not None else np.zeros_like(arrays[i])
        assert grads[i] is not None, f"{op}: no gradient for input {i}"
        np.testing.assert_allclose(grads[i], expected, rtol=rtol, atol=atol,
                                   err_msg=f"{op} {attrs}: gradient of input {i} vs PyTorch")
