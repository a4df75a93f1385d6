"""Register tiles: matrix products and convolutions on awkward sizes, on both vector widths.

A matmul's output is computed in tiles of rows x lanes (see graphc.kernel.target),
and the gemm pass makes every convolution and its gradients such a product.
These sizes leave remainders in every tile dimension (rows that do not divide,
columns left over after the whole tiles, single rows and columns), with strides,
padding, dilation and 1x1 windows; each case runs once with this machine's vector
registers and once as AVX2 code (which an AVX-512 machine runs too:
``GRAPHC_ISA=avx2``), against numpy.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc.backends.registry import get_backend
from graphc.ir import GraphBuilder
from graphc.ir.dtypes import f32
from graphc.ir.types import TensorType
from graphc.kernel import lower_program
from graphc.kernel.ir import Local, Loop, walk_statements
from graphc.kernel.target import AVX2, AVX512
from graphc.kernel.verify import verify_program
from graphc.ops.registry import run_reference
from graphc.passes.manager import PassManager, default_pipeline
from graphc.passes.memory import plan_memory

# (batch of the left operand or None, M, K, N), shared right operand when batched
SHAPES = [(None, 1, 1, 1), (None, 5, 3, 7), (None, 13, 9, 33), (None, 28, 17, 70), (None, 32, 64, 16),
          (None, 14, 5, 100), (3, 6, 11, 40), (2, 49, 27, 17)]


def _matmul_cases():
    rng = np.random.default_rng(0)
    for batch, m, k, n in SHAPES:
        lhs = rng.standard_normal((m, k) if batch is None else (batch, m, k)).astype(np.float32)
        yield lhs, rng.standard_normal((k, n)).astype(np.float32)


# (op, input shapes, attrs): forward convolutions with 16+ channels (the gemm form), their weight
# gradients (every channel count), transposed convolutions (input gradients, the DCGAN's layers).
CONV_CASES = [
    ("conv2d", [(2, 3, 9, 7), (16, 3, 3, 3)], {"padding": (1, 1)}),
    ("conv2d", [(3, 5, 11, 10), (20, 5, 4, 3)], {"stride": (2, 3), "padding": (1, 2), "dilation": (1, 2)}),
    ("conv2d", [(1, 7, 5, 5), (17, 7, 1, 1)], {}),
    ("conv2d_weight_grad", [(2, 3, 9, 7), (2, 5, 5, 4)], {"kernel_size": (3, 2), "stride": (2, 2), "padding": (1, 1)}),
    ("conv2d_weight_grad", [(3, 4, 6, 6), (3, 18, 6, 6)], {"kernel_size": (1, 1)}),
    ("conv_transpose2d", [(2, 6, 4, 5), (6, 3, 4, 4)], {"stride": (2, 2), "padding": (1, 1)}),
    ("conv_transpose2d", [(1, 4, 3, 3), (4, 5, 3, 2)], {"stride": (2, 1), "output_padding": (1, 0), "dilation": (1, 2)}),
]


def _matmul_errors() -> list[float]:
    matmul = graphc.compile(lambda a, b: graphc.relu(a @ b + 1.0))
    errors = []
    for lhs, rhs in _matmul_cases():
        got = matmul(graphc.tensor(lhs), graphc.tensor(rhs)).numpy()
        want = np.maximum(lhs.astype(np.float64) @ rhs + 1.0, 0)
        errors.append(float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
    return errors


def _moved_product_errors() -> list[float]:
    """A product stored transposed and reshaped with elementwise work between (the DCGAN
    generator's Linear + BatchNorm + ReLU + view): one kernel, tiled over the product."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 13, 9)).astype(np.float32), rng.standard_normal((9, 40)).astype(np.float32)
    moved = graphc.compile(lambda x, y: graphc.relu((x @ y).permute(0, 2, 1) * 2.0 + 1.0).reshape(3, 520))
    got = moved(graphc.tensor(a), graphc.tensor(b)).numpy()
    want = np.maximum((a.astype(np.float64) @ b).transpose(0, 2, 1) * 2 + 1, 0).reshape(3, 520)
    return [float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))]


def _conv_errors() -> list[float]:
    """Each convolution case as a one-op graph through the default passes (the gemm form), on LLVM."""
    rng = np.random.default_rng(1)
    errors = []
    for op, shapes, attrs in CONV_CASES:
        b = GraphBuilder(op)
        xs = [b.input(f"x{i}", TensorType(shape, f32)) for i, shape in enumerate(shapes)]
        node = b.op(op, *xs, **attrs)
        b.output(node)
        graph = PassManager(default_pipeline(training=False)).run(b.build())
        arrays = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
        got = get_backend("llvm").build_executable(graph, plan_memory(graph)).run(arrays).outputs[0]
        want = run_reference(op, [a.astype(np.float64) for a in arrays], node.attrs, node.type)
        errors.append(float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
    return errors


def _errors() -> list[float]:
    """The largest relative error of each case, compiled for this process's vector registers."""
    return _matmul_errors() + _moved_product_errors() + _conv_errors()


def test_matmul_tiles_agree_with_numpy_on_awkward_sizes():
    assert max(_matmul_errors()) < 1e-5


def test_a_product_stored_transposed_and_reshaped_through_an_epilogue():
    assert max(_moved_product_errors()) < 1e-5


def test_convolutions_as_products_agree_with_numpy_on_awkward_sizes():
    assert max(_conv_errors()) < 1e-5


def test_the_gemm_pass_turns_these_convolutions_into_products():
    for op, shapes, attrs in CONV_CASES:
        b = GraphBuilder(op)
        b.output(b.op(op, *(b.input(f"x{i}", TensorType(s, f32)) for i, s in enumerate(shapes)), **attrs))
        ops = {node.op for node in PassManager(["gemm"]).run(b.build()).nodes}
        assert "matmul" in ops and op not in ops, (op, shapes, attrs)


def test_avx2_tiles_agree_with_numpy_too():
    script = "import json, test_tiles; print(json.dumps(test_tiles._errors()))"
    env = {**os.environ, "GRAPHC_ISA": "avx2", "GRAPHC_CACHE_DIR": os.environ.get("GRAPHC_CACHE_DIR", "")}
    env = {k: v for k, v in env.items() if v}
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max(json.loads(done.stdout.strip().splitlines()[-1])) < 1e-5


@pytest.mark.parametrize("target", [AVX2, AVX512], ids=lambda t: t.name)
def test_a_matmul_kernel_holds_a_register_tile_of_the_targets_shape(target):
    matmul = graphc.compile(lambda a, b: a @ b, backend="reference")
    a, b = graphc.randn(28, 64), graphc.randn(64, 70)
    matmul(a, b)
    program = lower_program(matmul.graph(a, b), matmul.memory_plan(a, b), target=target)
    verify_program(program)
    (kernel,) = program.kernels
    rows, lanes = target.tile(f32)
    rows = max(r for r in range(1, rows + 1) if 28 % r == 0)          # 6 rows on AVX2 -> 4; 14 on AVX-512
    scratch = [s for s in walk_statements(kernel.body) if isinstance(s, Local)]
    assert sorted(s.size for s in scratch) == sorted([rows * lanes, rows * (70 % lanes)])
    unrolled = [s for s in walk_statements(kernel.body) if isinstance(s, Loop) and s.kind == "unrolled"]
    assert unrolled and all(s.stop.value == rows for s in unrolled)
