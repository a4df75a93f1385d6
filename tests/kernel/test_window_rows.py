"""Window ops computed over whole rows in vectors: masked loads for the padding, span loads for strides.

A window row that hangs over the padding is one masked load (``Load.mask``,
``llvm.masked.load``) rather than a clamped coordinate per lane, and a row read
at stride 2 (pooling, its gradient) is one load of the span it covers and a
shuffle.  Each case here runs compiled against the reference backend on sizes
that leave remainders, and checks the LLVM code has the vector form: the form
is what makes them fast, and it fails silently back to lane-by-lane loads.
"""
import re

import numpy as np
import pytest

from graphc.backends.registry import get_backend
from graphc.ir import GraphBuilder
from graphc.ir.dtypes import f32, u8
from graphc.ir.types import TensorType
from graphc.kernel.ir import Load, statement_exprs, walk_expr, walk_statements
from graphc.passes.memory import plan_memory
from optest import run_checked

CASES = {
    # op, input shapes, attrs, what the LLVM code must contain
    "unfold, padded": ("unfold", [(2, 3, 9, 11)], {"kernel_size": (3, 3), "padding": (1, 1)}, "llvm.masked.load"),
    "fold, padded": ("fold", [(2, 27, 99)], {"kernel_size": (3, 3), "padding": (1, 1), "output_size": (9, 11)},
                     "llvm.masked.load"),
    "max_pool2d_grad 2x2/2": ("max_pool2d_grad", [(2, 3, 5, 7), (2, 3, 5, 7)],
                              {"kernel_size": (2, 2), "stride": (2, 2), "input_size": (10, 14)}, "shufflevector"),
    "max_pool2d_grad 3x3/2 padded": ("max_pool2d_grad", [(2, 3, 5, 8), (2, 3, 5, 8)],
                                     {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1),
                                      "input_size": (10, 16)}, "shufflevector"),
}


def _graph(op, shapes, attrs):
    b = GraphBuilder(op)
    dtypes = [f32, u8]                        # max_pool2d_grad: the gradient and the picked taps
    inputs = [b.input(f"x{i}", TensorType(shape, dtype)) for i, (shape, dtype) in enumerate(zip(shapes, dtypes))]
    b.output(b.op(op, *inputs, **attrs))
    return b.build()


def _arrays(shapes, attrs):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shapes[0]).astype(np.float32)]
    if len(shapes) == 2:                      # max_pool2d_grad's taps, some naming no tap at all
        taps = attrs["kernel_size"][0] * attrs["kernel_size"][1]
        arrays.append(rng.integers(0, taps + 1, shapes[1]).astype(np.uint8))
    return arrays


@pytest.mark.parametrize("case", CASES)
def test_window_rows_agree_with_the_reference(case):
    op, shapes, attrs, _ = CASES[case]
    run_checked(_graph(op, shapes, attrs), _arrays(shapes, attrs))


@pytest.mark.parametrize("case", CASES)
def test_window_rows_are_vector_loads(case):
    op, shapes, attrs, form = CASES[case]
    graph = _graph(op, shapes, attrs)
    executable = get_backend("llvm").build_executable(graph, plan_memory(graph))
    llvm = executable.source.files({"llvm"})["llvm.ll"]
    if form == "shufflevector":               # a span load's shuffle picks lanes apart (a splat's: one)
        masks = re.findall(r"shufflevector .*?, <\d+ x i32> <([^>]*)>", llvm)
        assert any(len({pick.strip() for pick in mask.split(",")}) > 1 for mask in masks), f"{case}: no span load in the kernel"
    else:
        assert form in llvm, f"{case}: no {form} in the kernel"


def test_padding_is_a_masked_load_in_the_kernel_ir():
    op, shapes, attrs, _ = CASES["unfold, padded"]
    graph = _graph(op, shapes, attrs)
    (kernel,) = get_backend("llvm").build_executable(graph, plan_memory(graph)).kernels()
    loads = [e for stmt in walk_statements(kernel.body) for x in statement_exprs(stmt) for e in walk_expr(x)
             if isinstance(e, Load)]
    assert loads and all(load.mask is not None for load in loads)
    assert "min(" not in str(kernel) and "max(" not in str(kernel)       # no clamped coordinates
