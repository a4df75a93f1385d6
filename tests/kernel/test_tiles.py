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
from graphc.kernel.lower import SUM_BLOCK
from graphc.kernel.target import AVX2, AVX512
from graphc.kernel.verify import verify_program
from graphc.ops.registry import run_reference
from graphc.passes.manager import PassManager, default_pipeline
from graphc.passes.memory import plan_memory

# (batch of the left operand or None, M, K, N), shared right operand when batched
# The last two's right operands outgrow the cache, so their tiles run column by column, the rows
# left over a block of their own in each column (31 rows: 14 + 14 + 3 on AVX-512, 6 x 5 + 1 on
# AVX2); the last one's columns are long panels too (K = 4099, prime), so on AVX-512 each column
# is one tall tile of 33 rows, its sum in blocks of terms (the last block short).
SHAPES = [(None, 1, 1, 1), (None, 5, 3, 7), (None, 13, 9, 33), (None, 28, 17, 70), (None, 32, 64, 16),
          (None, 14, 5, 100), (3, 6, 11, 40), (2, 49, 27, 17), (None, 31, 600, 256), (None, 33, 4099, 64)]


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
    # 32 channels of 4 x 4 x 4 = 64 taps: the product [64, 32] is stored transposed, lane by lane.
    ("conv2d_weight_grad", [(2, 4, 6, 6), (2, 32, 3, 3)], {"kernel_size": (4, 4), "stride": (2, 2), "padding": (1, 1)}),
    ("conv_transpose2d", [(2, 6, 4, 5), (6, 3, 4, 4)], {"stride": (2, 2), "padding": (1, 1)}),
    ("conv_transpose2d", [(1, 4, 3, 3), (4, 5, 3, 2)], {"stride": (2, 1), "output_padding": (1, 0), "dilation": (1, 2)}),
]

# Forward convolutions with fewer than 16 output channels, unstrided, over rows of 16 or more
# pixels: not products but register tiles of their own, the channels as rows and an output row
# as the lanes (padded to whole vectors where that takes fewer: 28 and 30 on AVX-512).
DIRECT_CONV_CASES = [
    ("conv2d", [(2, 3, 12, 32), (6, 3, 5, 5)], {}),
    ("conv2d", [(1, 2, 9, 30), (7, 2, 3, 3)], {"padding": (1, 1)}),
    ("conv2d", [(2, 4, 6, 20), (9, 4, 3, 3)], {"padding": (0, 1)}),
    ("conv2d", [(1, 1, 5, 17), (3, 1, 2, 2)], {}),
]

# x @ W^T with few rows, and products of one column: each output a dot product of two rows read
# along K, in vectors (graphc.ops.linalg.computes_dot_products).  (M, K, N): K with and without
# terms left over a vector, N with and without columns left over a block, M of 1 and prime, and
# M in blocks of fewer rows than DOT_STREAMS (12: two of 6).
DOT_SHAPES = [(4, 400, 120), (3, 70, 13), (1, 200, 30), (8, 64, 9), (32, 100, 1), (5, 67, 1), (12, 70, 1)]


def _dot_errors() -> list[float]:
    """relu(x @ W^T + b), a Linear layer, for each of DOT_SHAPES."""
    rng = np.random.default_rng(3)
    linear = graphc.compile(lambda x, w, b: graphc.relu(x @ w.t() + b))
    errors = []
    for m, k, n in DOT_SHAPES:
        x, w, b = (rng.standard_normal(shape).astype(np.float32) for shape in ((m, k), (n, k), (n,)))
        got = linear(graphc.tensor(x), graphc.tensor(w), graphc.tensor(b)).numpy()
        want = np.maximum(x.astype(np.float64) @ w.T + b, 0)
        errors.append(float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
    return errors


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
    """Each convolution case as a one-op graph through the default passes, on LLVM."""
    rng = np.random.default_rng(1)
    errors = []
    for op, shapes, attrs in CONV_CASES + DIRECT_CONV_CASES:
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
    return _matmul_errors() + _moved_product_errors() + _conv_errors() + _dot_errors()


def test_matmul_tiles_agree_with_numpy_on_awkward_sizes():
    assert max(_matmul_errors()) < 1e-5


def test_a_product_stored_transposed_and_reshaped_through_an_epilogue():
    assert max(_moved_product_errors()) < 1e-5


@pytest.mark.parametrize("target", [AVX2, AVX512], ids=lambda t: t.name)
def test_a_product_too_large_for_the_cache_runs_column_by_column_with_a_block_of_the_rows_left(target):
    matmul = graphc.compile(lambda a, b: a @ b, backend="reference")
    a, b = graphc.randn(31, 600), graphc.randn(600, 256)              # b: 600 KB
    matmul(a, b)
    program = lower_program(matmul.graph(a, b), matmul.memory_plan(a, b), target=target)
    verify_program(program)
    (kernel,) = program.kernels
    rows, lanes = target.tile(f32)
    scratch = sorted(s.size for s in walk_statements(kernel.body) if isinstance(s, Local))
    assert scratch == sorted([rows * lanes, 31 % rows * lanes])       # every block whole, then the rest


@pytest.mark.parametrize("target, m, k", [(AVX2, 20, 4099), (AVX512, 33, 4099), (AVX512, 30, 6272)],
                         ids=["avx2", "avx512", "avx512-k-divisible"])
def test_a_product_with_long_column_panels_runs_a_tall_tile_per_column_in_blocks_of_terms(target, m, k):
    """Few rows by a right operand whose column panels (K x lanes) spill L2: each column is one tile
    of all the rows, its sum a block of terms at a time, register block of rows after register block
    (the DCGAN generator's 32 x 6272 x 1024 input gradient), rather than a tile per block of rows
    each reading the whole panel.  Each output's terms are still added in order."""
    matmul = graphc.compile(lambda a, b: a @ b, backend="reference")
    a, b = graphc.randn(m, k), graphc.randn(k, 64)
    matmul(a, b)
    program = lower_program(matmul.graph(a, b), matmul.memory_plan(a, b), target=target)
    verify_program(program)
    (kernel,) = program.kernels
    rows, lanes = target.tile(f32)
    assert [s.size for s in walk_statements(kernel.body) if isinstance(s, Local)] == [m * lanes]
    (blocks,) = [loop for loop in walk_statements(kernel.body) if isinstance(loop, Loop) and loop.body
                 and all(isinstance(s, Loop) and s.kind == "serial" for s in loop.body)]
    # The divisor of K nearest below SUM_BLOCK (not below half of it), else SUM_BLOCK: 4099 is prime.
    block = next((d for d in range(SUM_BLOCK, SUM_BLOCK // 2, -1) if k % d == 0), SUM_BLOCK)
    assert blocks.stop.value == -(-k // block)
    assert len(blocks.body) == -(-m // rows)                  # a loop over the block's terms per block of rows


@pytest.mark.parametrize("target", [AVX2, AVX512], ids=lambda t: t.name)
def test_a_product_stored_transposed_stores_each_lane_as_a_vector_of_its_rows(target):
    """A weight gradient's tile lands transposed: its lanes (output channels) 64 taps apart, its
    rows side by side.  Its stores loop over the lanes, each lane's rows one vector."""
    op, shapes, attrs = CONV_CASES[5]
    b = GraphBuilder(op)
    b.output(b.op(op, *(b.input(f"x{i}", TensorType(s, f32)) for i, s in enumerate(shapes)), **attrs))
    graph = PassManager(default_pipeline(training=False)).run(b.build())
    program = lower_program(graph, plan_memory(graph), target=target)
    verify_program(program)
    product = next(k for k in program.kernels if "matmul" in k.what)
    lanes = target.tile(f32)[1]                      # 32 channels: one tile's lanes or two
    stores = [loop for loop in walk_statements(product.body) if isinstance(loop, Loop) and loop.kind == "serial"
              and len(loop.body) == 1 and isinstance(loop.body[0], Loop) and loop.body[0].kind == "vectorized"]
    assert stores and all(loop.stop.value == lanes and 64 % loop.body[0].stop.value == 0 for loop in stores)


def test_convolutions_as_products_agree_with_numpy_on_awkward_sizes():
    assert max(_conv_errors()) < 1e-5


def test_the_gemm_pass_turns_these_convolutions_into_products():
    for op, shapes, attrs in CONV_CASES:
        b = GraphBuilder(op)
        b.output(b.op(op, *(b.input(f"x{i}", TensorType(s, f32)) for i, s in enumerate(shapes)), **attrs))
        ops = {node.op for node in PassManager(["gemm"]).run(b.build()).nodes}
        assert "matmul" in ops and op not in ops, (op, shapes, attrs)


def test_dot_products_agree_with_numpy_on_awkward_sizes():
    assert max(_dot_errors()) < 1e-5


@pytest.mark.parametrize("target", [AVX2, AVX512], ids=lambda t: t.name)
def test_a_linear_layer_at_a_small_batch_reads_its_weight_as_stored(target):
    linear = graphc.compile(lambda x, w, b: x @ w.t() + b, backend="reference")
    x, w, b = graphc.randn(4, 400), graphc.randn(120, 400), graphc.randn(120)
    linear(x, w, b)
    program = lower_program(linear.graph(x, w, b), linear.memory_plan(x, w, b), target=target)
    verify_program(program)
    (kernel,) = program.kernels                  # no kernel copies W transposed
    lanes = target.lanes(f32)
    # A block of 4 rows by as many columns as the registers hold (a vector of partial sums per
    # output, one of each row of x and one of W beside), then the columns left over.
    columns = (target.registers - 4 - 2) // 4
    scratch = sorted(s.size for s in walk_statements(kernel.body) if isinstance(s, Local))
    assert scratch == sorted({4 * columns * lanes, 4 * (120 % columns or columns) * lanes})
    vectorized = [s for s in walk_statements(kernel.body) if isinstance(s, Loop) and s.kind == "vectorized"]
    assert {s.stop.value for s in vectorized} >= {lanes, lanes // 2, 1}   # the sums, then their halves


def test_a_product_of_one_column_is_dot_products():
    product = graphc.compile(lambda x, w: x @ w, backend="reference")
    x, w = graphc.randn(32, 6272), graphc.randn(6272, 1)              # the DCGAN discriminator's last layer
    product(x, w)
    program = lower_program(product.graph(x, w), product.memory_plan(x, w), target=AVX512)
    (kernel,) = program.kernels
    scratch = [s for s in walk_statements(kernel.body) if isinstance(s, Local)]
    # 8 rows' partial sums, 16 lanes each: the registers would hold 16 rows, but 8 are as many
    # streams as the prefetchers follow (lower.DOT_STREAMS)
    assert [s.size for s in scratch] == [8 * 16]


def test_narrow_unstrided_convolutions_keep_their_direct_tiles():
    for op, shapes, attrs in DIRECT_CONV_CASES:
        b = GraphBuilder(op)
        b.output(b.op(op, *(b.input(f"x{i}", TensorType(s, f32)) for i, s in enumerate(shapes)), **attrs))
        ops = {node.op for node in PassManager(["gemm"]).run(b.build()).nodes}
        assert op in ops and "matmul" not in ops, (op, shapes, attrs)


@pytest.mark.parametrize("target", [AVX2, AVX512], ids=lambda t: t.name)
def test_a_direct_convolution_tiles_its_channels_as_rows_and_pads_its_rows(target):
    conv = graphc.compile(lambda x, w: graphc.nn.functional.conv2d(x, w), backend="reference")
    x, w = graphc.randn(2, 3, 12, 32), graphc.randn(6, 3, 5, 5)        # 28 output pixels a row
    conv(x, w)
    program = lower_program(conv.graph(x, w), conv.memory_plan(x, w), target=target)
    verify_program(program)
    (kernel,) = program.kernels
    lanes = [s for s in walk_statements(kernel.body) if isinstance(s, Loop) and s.kind == "vectorized"]
    rows = [s for s in walk_statements(kernel.body) if isinstance(s, Loop) and s.kind == "unrolled"]
    assert lanes and all(loop.stop.value == 28 for loop in lanes)
    # AVX-512: two 16-lane vectors hold a row of 28 (16 + 8 + 4 would take three); on AVX2 four
    # 8-lane vectors take as many as 16 + 8 + 4, so the row is not padded.
    assert all(loop.padded_to == (32 if target is AVX512 else None) for loop in lanes)
    # The accumulators of 6 rows fit AVX-512's registers (2 vectors a row); of 3 rows AVX2's (4 each).
    assert rows and all(loop.stop.value == (6 if target is AVX512 else 3) for loop in rows)


def test_a_padded_row_stores_through_a_masked_store():
    b = GraphBuilder("conv")
    x, w = b.input("x", TensorType((2, 3, 12, 32), f32)), b.input("w", TensorType((6, 3, 5, 5), f32))
    b.output(b.op("conv2d", x, w))
    conv_graph = PassManager(default_pipeline(training=False)).run(b.build())
    executable = get_backend("llvm").build_executable(conv_graph, plan_memory(conv_graph))
    padded = [s for k in executable.kernels() for s in walk_statements(k.body) if isinstance(s, Loop) and s.padded_to]
    if not padded:
        pytest.skip("this machine's vectors hold a row of 28 without padding (AVX2)")
    llvm = executable.source.files({"llvm"})["llvm.ll"]
    assert "llvm.masked.store" in llvm and "llvm.masked.load" in llvm


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
    vector = target.lanes(f32)                  # the last 6 columns in one (masked) vector
    assert sorted(s.size for s in scratch) == sorted([rows * lanes, rows * vector])
    unrolled = [s for s in walk_statements(kernel.body) if isinstance(s, Loop) and s.kind == "unrolled"]
    assert unrolled and all(s.stop.value == rows for s in unrolled)
