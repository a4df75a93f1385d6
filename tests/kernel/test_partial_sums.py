"""Sums over terms side by side added in rows of partial sums (graphc.kernel.partial_sums): which
loop nests are rewritten, and that the sums agree with the reference."""
import numpy as np
import pytest

from graphc.ir import GraphBuilder
from graphc.ir.dtypes import f32, i64
from graphc.ir.types import TensorType
from graphc.kernel import lower_program
from graphc.kernel.ir import (Accumulator, Assign, Binary, Const, Kernel, Let, Load, Local, Loop, Ref, Store, Var,
                              walk_statements)
from graphc.kernel.partial_sums import sums_in_vectors
from graphc.passes.manager import PassManager, default_pipeline
from graphc.passes.memory import plan_memory
from optest import run_checked


def _bn_sums(shape):
    """BatchNorm's backward sums per channel: of g, and of g * x (fused into one loop nest)."""
    b = GraphBuilder("bn_sums")
    g, x = (b.input(name, TensorType(shape, f32)) for name in ("g", "x"))
    b.output(b.sum(g, axes=(0, 2, 3)), b.sum(b.mul(g, x), axes=(0, 2, 3)))
    return b.build()


def test_per_channel_sums_over_an_image_add_in_rows_of_partial_sums():
    graph = PassManager(default_pipeline(training=False)).run(_bn_sums((3, 5, 4, 16)))   # 64 terms an image
    (kernel,) = lower_program(graph, plan_memory(graph)).kernels
    rewritten = sums_in_vectors(kernel)
    statements = list(walk_statements(rewritten.body))
    assert not any(isinstance(s, (Accumulator, Assign)) for s in statements)
    assert [s.size for s in statements if isinstance(s, Local)] == [64, 64]        # a row per sum
    (adding,) = [s for s in statements if isinstance(s, Loop) and s.kind == "vectorized"
                 and any(isinstance(t, Store) and t.reassociable for t in s.body)]
    assert adding.stop.value == 64 and sum(isinstance(t, Store) for t in adding.body) == 2   # one pass over g


@pytest.mark.parametrize("shape", [(3, 5, 4, 16), (2, 3, 8, 12)], ids=["64", "96"])
def test_per_channel_sums_agree_with_the_reference(shape):
    """Rows of 64 lanes, and of 32 (96 terms: three blocks)."""
    rng = np.random.default_rng(0)
    run_checked(_bn_sums(shape), [rng.standard_normal(shape).astype(np.float32) for _ in range(2)])


def _kernel(body) -> Kernel:
    return Kernel("k", "n", "reduction", tuple(body), ("x",), ("y",))


def _sum(term, trip=32) -> list:
    return [Accumulator("a", Const(0.0, f32), True),
            Loop("r", Const(0, i64), Const(trip, i64), (Let("v", term), Assign("a", Binary("add", Ref("a", f32), Ref("v", f32), f32)))),
            Store("y", Const(0, i64), Ref("a", f32))]


def test_sums_whose_terms_do_not_lie_side_by_side_keep_their_accumulators():
    side_by_side = Load("x", Var("r"), f32)
    strided = Load("x", Binary("mul", Var("r"), Const(3, i64), i64), f32)
    reading_the_sum = Binary("mul", side_by_side, Ref("a", f32), f32)
    assert sums_in_vectors(_kernel(_sum(side_by_side))).body != tuple(_sum(side_by_side))
    for body in (_sum(strided), _sum(reading_the_sum), _sum(side_by_side, trip=24)):
        assert sums_in_vectors(_kernel(body)).body == tuple(body)
