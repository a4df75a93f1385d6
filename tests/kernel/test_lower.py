"""Lowering to kernel IR: every kernel of every example model verifies; the verifier catches what it must."""
from dataclasses import replace

import numpy as np
import pytest

import graphc
import graphc.optim as optim
import models
from graphc.backends.llvm import compile_program, load_objects
from graphc.backends.llvm.executable import KernelEntry, LLVMExecutable, function_names
from graphc.backends.llvm.threads import pool
from graphc.ir import GraphBuilder
from graphc.ir.dtypes import f32, i64
from graphc.kernel import expr as E
from graphc.kernel import lower_program, print_program
from graphc.kernel.ir import (Binary, Buffer, Const, Kernel, Load, Local, Loop, Program, Store, Var, statement_exprs,
                              walk_expr, walk_statements)
from graphc.kernel.indices import loop_stride
from graphc.kernel.schedule import VECTOR_BLOCK, in_vector_blocks, outer_loop, split
from graphc.kernel.verify import KernelVerifyError, verify_program
from graphc.passes.memory import plan_memory
from training_steps import classifier_step, dcgan_step


def _step_graph(model, opt, x, y):
    step = graphc.compile(classifier_step(model, opt), backend="reference")
    step(x, y)
    return step.graph(x, y), step.memory_plan(x, y)


@pytest.mark.parametrize("name", ["LeNet", "CNN", "ResNet", "MNISTNet"])
def test_every_kernel_of_the_model_steps_verifies(name):
    model = getattr(models, name)()
    x = graphc.randn(2, 1, 28, 28) if name == "MNISTNet" else graphc.randn(2, 3, 32, 32)
    graph, plan = _step_graph(model, optim.Adam(model.parameters()), x, graphc.randint(0, 10, (2,)))
    program = lower_program(graph, plan)
    verify_program(program)
    assert len(program.kernels) == plan.kernel_count
    text = print_program(program)
    assert text.count("\nkernel ") == len(program.kernels)


def test_the_dcgan_step_verifies():
    g, d = models.Generator(), models.Discriminator()
    step = graphc.compile(dcgan_step(graphc, g, d, optim.Adam(g.parameters()), optim.Adam(d.parameters())),
                          backend="reference")
    real, noise = graphc.randn(2, 1, 28, 28), graphc.randn(2, 100)
    step(real, noise)
    verify_program(lower_program(step.graph(real, noise), step.memory_plan(real, noise)))


def _program(body, shape=(8,)):
    buffers = {"a": Buffer("a", f32, shape, "input", source="a"), "out": Buffer("out", f32, shape, "arena", offset=0)}
    kernel = Kernel("k0", "out", "test", tuple(body), ("a",), ("out",))
    return Program("test", buffers, [kernel], 64, ["a"], ["out"], [], [], [])


def _loop(body, stop=8):
    return Loop("i", Const(0, i64), Const(stop, i64), tuple(body))


def test_the_verifier_rejects_an_access_outside_its_buffer():
    i = Var("i")
    verify_program(_program([_loop([Store("out", i, Load("a", i, f32))])]))
    with pytest.raises(KernelVerifyError, match=r"%out\[i\] may reach \[0, 8\], outside \[0, 8\)"):
        verify_program(_program([_loop([Store("out", i, Load("a", i, f32))], stop=9)]))


def test_the_verifier_checks_a_padded_loops_scratch_rows_for_every_lane_computed():
    # A loop of 6 lanes padded to 8 may compute lanes 6 and 7 into its scratch row (not into %out).
    i = Var("i")

    def padded(scratch_size):
        body = Loop("i", Const(0, i64), Const(6, i64), (Store("row", i, Load("a", i, f32)),
                                                       Store("out", i, Load("row", i, f32))), "vectorized", 8)
        return _program([Local("row", f32, scratch_size), body])
    verify_program(padded(8))
    with pytest.raises(KernelVerifyError, match=r"%row\[i\] may reach \[0, 7\] in a padded loop's lanes"):
        verify_program(padded(6))


def test_the_verifier_rejects_a_use_outside_its_loop():
    with pytest.raises(KernelVerifyError, match="i is used outside"):
        verify_program(_program([_loop([]), Store("out", Var("i"), Const(0.0, f32))]))


def test_splitting_a_loop_keeps_what_the_kernel_computes():
    b = GraphBuilder("double")
    x = b.input("x", "f32[10,7]")
    b.output(b.mul(x, 2.0))
    graph = b.build()
    program = lower_program(graph, plan_memory(graph))
    kernel = program.kernels[0]
    # 70 elements in blocks of 16: four blocks, the last one short.
    program.kernels[0] = replace(kernel, body=(*kernel.body[:-1], split(outer_loop(kernel), 16)))
    verify_program(program)
    engine, addresses = load_objects(compile_program(program, pool().threads), function_names(program.kernels))
    kernels = [KernelEntry.of(k) for k in program.kernels]
    executable = LLVMExecutable(graph, program, kernels, engine, addresses, pool().parallel_for, None)
    values = np.arange(70, dtype=np.float32).reshape(10, 7)
    np.testing.assert_array_equal(executable.run({"x": values}).outputs[0], values * 2)


def _innermost_loops(kernel):
    return [s for s in walk_statements(kernel.body) if isinstance(s, Loop) and not any(isinstance(t, Loop) for t in s.body)]


def test_a_transpose_runs_as_scalar_code_and_a_copy_in_vectors():
    """A copy reading every lane far from the last (a transpose) builds each vector lane by lane,
    slower than the scalar loop: it is not vectorized.  Reads a few elements apart (a stride-2
    row) or side by side still are, and so is a transpose that computes something."""
    x = graphc.randn(40, 48)
    kinds = {}
    for fn in (lambda x: x.permute(1, 0).contiguous(), lambda x: x.permute(1, 0) * 2.0, lambda x: x[:, ::2].contiguous()):
        compiled = graphc.compile(fn, backend="reference")
        compiled(x)
        program = lower_program(compiled.graph(x), compiled.memory_plan(x))
        verify_program(program)
        (kernel,) = program.kernels
        kinds[kernel.what] = [loop.kind for loop in _innermost_loops(kernel)]
    assert kinds == {"permute": ["serial"], "elementwise: permute mul": ["vectorized"], "slice": ["vectorized"]}


def test_an_elementwise_loop_of_many_buffers_runs_in_vector_blocks():
    """A flat elementwise loop is split into blocks of VECTOR_BLOCK vectorized lanes: LLVM's own
    vectorizer checks every pair of buffers for overlap at run time and leaves a loop of a dozen
    inputs (a fused Adam update) scalar.  The blocks compute what the flat loop did."""
    xs = [graphc.randn(4, 40) for _ in range(12)]

    def many(*xs):
        return sum((x * float(i) + 1.5 for i, x in enumerate(xs)), xs[0]).abs().sqrt()
    compiled = graphc.compile(many, backend="reference")
    compiled(*xs)
    program = lower_program(compiled.graph(*xs), compiled.memory_plan(*xs))
    verify_program(program)
    (kernel,) = program.kernels
    assert len(kernel.inputs) == 12
    (blocks,) = [s for s in kernel.body if isinstance(s, Loop)]
    (lanes,) = blocks.body
    assert (blocks.stop.value, lanes.kind, lanes.stop.value) == (160 // VECTOR_BLOCK, "vectorized", VECTOR_BLOCK)
    expected = np.sqrt(np.abs(sum((x.numpy() * float(i) + 1.5 for i, x in enumerate(xs)), xs[0].numpy())))
    np.testing.assert_allclose(graphc.compile(many)(*xs).numpy(), expected, rtol=1e-6)


def test_a_loop_whose_lanes_could_overlap_is_not_split_into_vector_blocks():
    """Only a loop storing each output's element at its own iteration, and reading an output
    only there, is split: not a scatter, not a loop reading an element another lane stores, not
    one whose trip count is not a multiple of the block (its last block would need masks)."""
    i = Var("i")
    flat = [Store("out", i, Load("a", i, f32))]
    scatter = [Store("out", E.sub(63, i), Load("a", i, f32))]
    shifted = [Store("out", i, E.add(Load("a", i, f32), Load("out", E.rem(E.add(i, 1), 64), f32)))]
    assert in_vector_blocks(_loop(flat, stop=64)) is not None
    for body, stop in ((flat, 8 * VECTOR_BLOCK + 8), (scatter, 64), (shifted, 64)):
        assert in_vector_blocks(_loop(body, stop=stop)) is None


def test_a_row_of_merged_axes_runs_split_at_its_divisor_without_a_division_per_lane():
    """An output row whose lanes merge axes of a permuted operand (a BatchNorm gradient stored
    channel-major: [N, C, H*W] read as [C, N*H*W]) divides each lane's position by H*W.  The
    schedule splits the row at that divisor, its lanes over H*W, and the divisions fold away."""
    x = graphc.randn(4, 8, 9)

    def channel_major(x):
        return (x * 2.0 + 1.0).permute(1, 0, 2).reshape(8, 36)
    compiled = graphc.compile(channel_major, backend="reference")
    compiled(x)
    program = lower_program(compiled.graph(x), compiled.memory_plan(x))
    verify_program(program)
    (kernel,) = program.kernels
    (lanes,) = [loop for loop in walk_statements(kernel.body) if isinstance(loop, Loop) and loop.kind == "vectorized"]
    assert lanes.stop.value == 9
    divisions = [e for s in walk_statements(kernel.body) for x_ in statement_exprs(s) for e in walk_expr(x_)
                 if isinstance(e, Binary) and e.op in ("div", "rem")]
    assert divisions == []
    want = (x.numpy() * 2.0 + 1.0).transpose(1, 0, 2).reshape(8, 36)
    np.testing.assert_allclose(graphc.compile(channel_major)(x).numpy(), want, rtol=1e-6)


def test_a_transpose_that_computes_runs_its_lanes_along_the_operands_it_reads():
    """Output rows across channels (a BatchNorm gradient stored [N*H*W, C] for the weight
    gradient) read each operand lane by lane, 49 elements apart.  The schedule brings the loop
    along which the operands lie side by side innermost (split at a vector's worth: 98 = 2 x 49),
    so each operand is read as vectors and only the result is stored lane by lane."""
    x, y = graphc.randn(4, 16, 98), graphc.randn(4, 16, 98)

    def pixels_by_channel(x, y):
        return (x * y + 1.0).permute(0, 2, 1).reshape(392, 16)
    compiled = graphc.compile(pixels_by_channel, backend="reference")
    compiled(x, y)
    program = lower_program(compiled.graph(x, y), compiled.memory_plan(x, y))
    verify_program(program)
    (kernel,) = program.kernels
    (lanes,) = [loop for loop in walk_statements(kernel.body) if isinstance(loop, Loop) and loop.kind == "vectorized"]
    assert lanes.stop.value == 49
    loads = [e for s in lanes.body for x_ in statement_exprs(s) for e in walk_expr(x_) if isinstance(e, Load)]
    assert len(loads) == 2 and all(loop_stride(load.index, lanes.var) == 1 for load in loads)
    want = (x.numpy() * y.numpy() + 1.0).transpose(0, 2, 1).reshape(392, 16)
    np.testing.assert_allclose(graphc.compile(pixels_by_channel)(x, y).numpy(), want, rtol=1e-6)
