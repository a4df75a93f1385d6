"""Sibling reduction loops fused into one pass (graphc.kernel.fuse_loops), and reductions over an
image in one loop over its elements (graphc.ops.reduce)."""
import numpy as np

from graphc.ir import GraphBuilder
from graphc.ir.dtypes import f32, i64
from graphc.ir.types import TensorType
from graphc.kernel.fuse_loops import fuse_sibling_loops
from graphc.kernel.ir import (Accumulator, Assign, Binary, Const, Kernel, Load, Loop, Ref, Store, Var, walk_expr,
                              walk_statements)
from optest import run_checked


def _sum_loop(acc: str, var: str, extra=None) -> list:
    value = Load("x", Var(var), f32)
    if extra is not None:
        value = Binary("mul", value, extra, f32)
    return [Accumulator(acc, Const(0.0, f32), True),
            Loop(var, Const(0, i64), Const(8, i64), (Assign(acc, Binary("add", Ref(acc, f32), value, f32)),))]


def _kernel(body) -> Kernel:
    return Kernel("k", "n", "reduction", tuple(body), ("x",), ("y",))


def _loops(kernel: Kernel) -> list[Loop]:
    return [stmt for stmt in walk_statements(kernel.body) if isinstance(stmt, Loop)]


def test_two_sums_over_one_range_share_one_loop():
    stores = [Store("y", Const(0, i64), Ref("a", f32)), Store("y", Const(1, i64), Ref("b", f32))]
    fused = fuse_sibling_loops(_kernel(_sum_loop("a", "r") + _sum_loop("b", "s") + stores))
    (loop,) = _loops(fused)
    assert [type(s) for s in fused.body[:2]] == [Accumulator, Accumulator]
    assert [s.name for s in loop.body if isinstance(s, Assign)] == ["a", "b"]
    assert all(load.index == Var("r") for stmt in loop.body for load in walk_expr(stmt.value)
               if isinstance(load, Load))                           # the second loop's variable renamed the first's


def test_a_sum_that_reads_the_one_before_keeps_its_own_loop():
    body = _sum_loop("a", "r") + _sum_loop("b", "s", extra=Ref("a", f32))    # b = sum(x * a): needs a whole
    assert len(_loops(fuse_sibling_loops(_kernel(body)))) == 2


def test_loops_over_other_ranges_or_that_store_stay_apart():
    other = _sum_loop("a", "r")
    other[1] = Loop("r", Const(0, i64), Const(9, i64), other[1].body)
    assert len(_loops(fuse_sibling_loops(_kernel(other + _sum_loop("b", "s"))))) == 2
    storing = _sum_loop("a", "r")
    storing[1] = Loop("r", Const(0, i64), Const(8, i64), (*storing[1].body, Store("y", Var("r"), Ref("a", f32))))
    assert len(_loops(fuse_sibling_loops(_kernel(storing + _sum_loop("b", "s"))))) == 2


def test_per_channel_sums_agree_with_the_reference():
    """BatchNorm's sums per channel: over the batch and, in one loop over its elements, the image."""
    b = GraphBuilder("bn_sums")
    g, x = (b.input(name, TensorType((3, 5, 4, 6), f32)) for name in ("g", "x"))
    b.output(b.sum(g, axes=(0, 2, 3)), b.sum(b.mul(g, x), axes=(0, 2, 3)))
    rng = np.random.default_rng(0)
    run_checked(b.build(), [rng.standard_normal((3, 5, 4, 6)).astype(np.float32) for _ in range(2)])
