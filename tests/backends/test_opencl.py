"""The OpenCL backend on whole models: training steps agree with the reference backend, the model's
state stays on the device and is right when read, a step moves only its data and results, a failed
step changes nothing, devices are chosen and explained.

(Every primitive is checked against the reference backend by the op suite: see tests/optest.py.)
"""
import numpy as np
import pytest

import graphc
import models
from backend_checks import (check_classifier_steps, check_dcgan_step, check_returned_state_is_its_old_value,
                            classifier_batch, compiled_classifier)
from graphc.backends import opencl
from graphc.errors import BackendError, OutOfRangeError
from graphc.kernel.ir import Kernel
from optest import assert_backend_agrees

pytestmark = pytest.mark.skipif(not opencl.available(), reason="no OpenCL device builds graphc's test kernel "
                                                                "(`graphc devices` says why; apt-get install pocl-opencl-icd)")


def _executable(step, *args):
    return step._lookup(args)[0].executable


@pytest.mark.parametrize("name", ["lenet", "cnn", "resnet", "mnistnet"])
def test_training_steps_agree_with_the_reference_backend(name):
    check_classifier_steps("opencl", name)


def test_the_dcgan_step_agrees_with_the_reference_backend():
    # Sums add in vectors of partial sums here (as LLVM's do): with Adam's default eps, a gradient of
    # about 1e-7, much of it rounding, would move its weight by a different lr-sized step (see test_llvm).
    check_dcgan_step("opencl", adam_eps=1e-4)


def test_state_stays_on_the_device_and_is_right_when_read():
    model, opt, step = compiled_classifier("lenet", "opencl")
    twin, twin_opt, reference = compiled_classifier("lenet", "reference")
    x, y = classifier_batch("lenet")
    weight = model.fc1.weight
    alias = weight.data                       # made before the steps: shares the weight's storage
    before = weight._array.copy()
    for _ in range(2):
        step(x, y)
        reference(x, y)
    assert weight._device is not None and not weight._device.host_current
    np.testing.assert_array_equal(weight._array, before)        # the host copy was not touched...
    assert_backend_agrees("opencl", "fc1.weight read through an alias", alias.numpy(), twin.fc1.weight.detach().numpy())
    assert weight._device is None                                # ...until it was read, which hands it back
    momentum = opt.state[weight]["momentum_buffer"]
    assert momentum._device is not None
    assert_backend_agrees("opencl", "momentum", momentum.numpy(),
                          twin_opt.state[twin.fc1.weight]["momentum_buffer"].numpy())
    step(x, y)                                # read state goes up again, and the step goes on from it
    reference(x, y)
    assert_backend_agrees("opencl", "fc1.weight after a read", weight.detach().numpy(),
                          twin.fc1.weight.detach().numpy())
    for key, value in twin.state_dict().items():
        assert_backend_agrees("opencl", key, model.state_dict()[key].numpy(), value.numpy())


def test_a_step_moves_only_its_data_and_its_results():
    model, opt, step = compiled_classifier("lenet", "opencl")
    x, y = classifier_batch("lenet")
    step(x, y)
    step(x, y)                                # the steady-state graph (momentum buffers exist)
    loss = step(x, y)
    moved = _executable(step, x, y).transfers
    # In: the batch, and the learning rate and momentum scalars the optimizer refreshes from Python
    # before every step (so a scheduler's change reaches the graph); out: the loss.
    assert moved.to_device == x.numpy().nbytes + y.numpy().nbytes + 2 * 4
    assert moved.to_host == loss.numpy().nbytes
    params = sum(p.detach().numpy().nbytes for p in model.parameters())
    step(x, y)                                # every parameter was read back: it goes up again, once
    assert _executable(step, x, y).transfers.to_device == x.numpy().nbytes + y.numpy().nbytes + 8 + params
    assert "host<->device per step" in str(step.profile(x, y))


def _peek(tensor) -> np.ndarray:
    """A resident tensor's value on the device, read without handing the tensor back to the host."""
    value = np.empty_like(tensor._array)
    tensor._device.read_into(value)
    return value


def test_a_bad_target_index_fails_the_step_and_changes_nothing():
    model, opt, step = compiled_classifier("lenet", "opencl")
    x, y = classifier_batch("lenet")
    for _ in range(3):                        # the steady-state graph, its state on the device
        step(x, y)
    state = [*model.parameters(), *(opt.state[p]["momentum_buffer"] for p in model.parameters())]
    assert all(t._device is not None for t in state)
    before = [_peek(t) for t in state]
    bad = graphc.tensor(np.array([1, 2, 37, 0]))
    with pytest.raises(OutOfRangeError, match="37"):
        step(x, bad)
    for tensor, value in zip(state, before):
        assert tensor.detach().numpy().tobytes() == value.tobytes()
    step(x, y)                                # and the step still runs


def test_a_returned_state_is_its_value_before_the_step_writes_it():
    check_returned_state_is_its_old_value(opencl.build_executable)


def test_a_kernel_statement_the_renderer_does_not_know_fails_loudly():
    from graphc.kernel.ir import Program
    from graphc.backends.opencl.render import render_program

    class Barrier:                            # a statement kind from the future
        pass

    kernel = Kernel("k0", "x", "mystery", (Barrier(),), (), ())
    program = Program("p", {}, [kernel], 0, [], [], [], [], [])
    with pytest.raises(BackendError, match="cannot render the kernel statement Barrier"):
        render_program(program, opencl.runtime().limits)


def test_the_device_is_chosen_by_name_or_number_and_a_bad_choice_is_explained(monkeypatch):
    from graphc.backends.opencl import devices
    usable = next(d for d in devices.list_devices() if d.usable)
    monkeypatch.setenv("GRAPHC_OPENCL_DEVICE", str(usable.index))
    assert devices.choose_device()[0] == usable
    monkeypatch.setenv("GRAPHC_OPENCL_DEVICE", usable.name[:6].upper())
    assert devices.choose_device()[0].usable
    monkeypatch.setenv("GRAPHC_OPENCL_DEVICE", "no-such-device")
    with pytest.raises(BackendError, match="'no-such-device' names no OpenCL device; there are: 0: "):
        devices.choose_device()


def test_graphc_devices_lists_each_device_and_its_test_kernel(capsys):
    from graphc.cli import main
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "the test kernel builds and runs" in out and "compute units" in out
    assert out.count("* ") == 2               # the chosen device, and the line that explains the mark


def test_program_binaries_go_into_the_compile_cache_where_they_are_worth_keeping(tmp_path, monkeypatch):
    from graphc.backends import cache
    from graphc.backends.opencl.devices import Runtime
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    text = "__kernel void graphc_cached(__global float* x) { x[get_global_id(0)] += 1.0f; }\n"
    rt = opencl.runtime()
    if not rt.binaries_worth_caching:         # PoCL: nothing is stored (its binaries cost more than they save)
        opencl.build_program(text, rt, "not cached")
        assert cache.info().entries == []
        monkeypatch.setattr(Runtime, "binaries_worth_caching", True)     # the path a GPU's driver takes
    opencl.build_program(text, rt, "cached")
    assert len(cache.info().entries) == 1
    loaded = []
    monkeypatch.setattr(cache, "load", lambda kind, key, load=cache.load: loaded.append(kind) or load(kind, key))
    program = opencl.build_program(text, rt, "cached")
    assert loaded == ["opencl"] and program.get_info(__import__("pyopencl").program_info.KERNEL_NAMES) == "graphc_cached"
    assert len(cache.info().entries) == 1


def test_graphc_dump_shows_a_models_opencl_c(capsys):
    from pathlib import Path
    from graphc.cli import main
    models_file = Path(models.__file__)
    args = ["dump", f"{models_file}:LeNet", "--input", "2x3x32x32", "--eval", "--stage", "opencl"]
    assert main([*args, "--backend", "opencl"]) == 0
    assert "__kernel void graphc_k0_" in capsys.readouterr().out
    assert main(args) == 1                    # the LLVM backend has no OpenCL C
    assert "has no opencl to show" in capsys.readouterr().err


def test_a_second_compile_of_the_same_step_loads_it_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    runs = []
    for _ in range(2):
        model, _, step = compiled_classifier("lenet", "opencl")
        x, y = classifier_batch("lenet")
        loss = step(x, y).item()
        phases = step.compile_times()[0].phases
        runs.append((loss, step.compile_times()[0].cache, any(p.startswith("pass ") for p in phases),
                     model.fc1.weight.detach().numpy().tobytes()))
    (loss, served, passes, weight), (again, served_again, passes_again, weight_again) = runs
    assert (served, served_again) == ("miss", "hit") and passes and not passes_again
    assert again == loss and weight_again == weight


def test_a_work_group_reduction_gives_the_same_bits_whatever_the_work_group_size():
    from graphc.ir import GraphBuilder
    from graphc.passes.memory import plan_memory
    b = GraphBuilder("sums")
    x = b.input("x", "f32[3,20000]")
    b.output(b.sum(x, axes=[1]), b.op("max", x, axes=[1]))
    graph = b.build()
    (executable,) = opencl.build_executables([(graph, plan_memory(graph))])
    assert all(ks.launch.group for _, ks, _, _ in executable._launches)
    data = np.random.default_rng(0).standard_normal((3, 20000)).astype(np.float32) * 100
    results = set()
    for size in (1, 8, 64, max(ks.launch.group for _, ks, _, _ in executable._launches)):
        executable._launches = [(kernel, ks, ((ks.launch.columns * size, ks.launch.rows), (size, 1)), bound)
                                for kernel, ks, _, bound in executable._launches]
        results.add(b"".join(out.tobytes() for out in executable.run([data]).outputs))
    assert len(results) == 1
    expected = [data.sum(axis=1, dtype=np.float64), data.max(axis=1)]
    for got, want in zip(executable.run([data]).outputs, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(data).sum())   # f32 rounding of the sum


def test_tiles_staged_through_local_memory_agree_with_the_reference_backend(monkeypatch):
    """A GPU's local memory is its own, and matmul tiles are staged through it; PoCL's is not (it
    runs unstaged), so here the device is taken for one that has it (LeNet's steps ran staged too)."""
    import dataclasses
    from graphc.backends.opencl.devices import Runtime
    from graphc.backends.reference import run_graph
    from graphc.ir import GraphBuilder
    from graphc.passes.memory import plan_memory
    limits = Runtime.limits
    monkeypatch.setattr(Runtime, "limits", property(
        lambda self: dataclasses.replace(limits.fget(self), dedicated_local_memory=True)))
    rng = np.random.default_rng(0)
    cases = []
    for left, right in [((64, 128), (128, 96)), ((3, 8, 20), (3, 20, 64)), ((32, 150), (150, 64))]:
        b = GraphBuilder("staged")
        x, w = b.input("x", f"f32[{','.join(map(str, left))}]"), b.input("w", f"f32[{','.join(map(str, right))}]")
        b.output(b.matmul(x, w))
        arrays = [rng.standard_normal(shape).astype(np.float32) for shape in (left, right)]
        cases.append((b.build(), arrays))
    executables = opencl.build_executables([(graph, plan_memory(graph)) for graph, _ in cases])
    assert sum(bool(ks.launch.tile) for e in executables for _, ks, _, _ in e._launches) >= 2
    for (graph, arrays), executable in zip(cases, executables):
        for got, want in zip(executable.run(arrays).outputs, run_graph(graph, arrays).outputs):
            assert_backend_agrees("opencl", "a staged product", got, want)


def test_vector_max_and_min_match_the_scalar_ones_bit_for_bit():
    """The vector forms rendered for a tile's epilogue (a ReLU) keep the reference's NaN and -0 rules."""
    import itertools
    import pyopencl as cl
    from graphc.backends.opencl.render import PRELUDE
    rt = opencl.runtime()
    source = PRELUDE + """
__kernel void graphc_extremes(__global const float* a, __global const float* b, __global float* out) {
    const int g = get_global_id(0), n = get_global_size(0) * 4;
    vstore4(graphc_fmax_float4(vload4(g, a), vload4(g, b)), g, out);
    vstore4(graphc_fmin_float4(vload4(g, a), vload4(g, b)), g, out + n);
    for (int k = 4 * g; k < 4 * g + 4; k++) {
        out[2 * n + k] = graphc_fmax_f32(a[k], b[k]);
        out[3 * n + k] = graphc_fmin_f32(a[k], b[k]);
    }
}
"""
    values = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf]
    pairs = list(itertools.product(values, values)) + [(0.0, 0.0)] * 3          # 52: whole vectors
    a, b = (np.array(side, np.float32) for side in zip(*pairs))
    flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
    out = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE, 4 * a.nbytes)
    program = cl.Program(rt.context, source).build("-w")
    program.graphc_extremes(rt.queue, (len(a) // 4,), None, cl.Buffer(rt.context, flags, hostbuf=a),
                            cl.Buffer(rt.context, flags, hostbuf=b), out)
    got = np.empty(4 * len(a), np.float32)
    cl.enqueue_copy(rt.queue, got, out)
    vector_max, vector_min, scalar_max, scalar_min = got.reshape(4, -1)
    for vector, scalar in ((vector_max, scalar_max), (vector_min, scalar_min)):
        assert np.array_equal(np.isnan(vector), np.isnan(scalar))
        assert vector[~np.isnan(vector)].tobytes() == scalar[~np.isnan(scalar)].tobytes()



def _one_op(op: str, arrays: list, **attrs):
    """A graph of ``op`` alone over inputs like ``arrays``, and the arrays."""
    from graphc.ir import GraphBuilder, dtype_from_numpy
    from graphc.ir.types import TensorType
    b = GraphBuilder(op)
    xs = [b.input(f"x{i}", TensorType(a.shape, dtype_from_numpy(a.dtype))) for i, a in enumerate(arrays)]
    b.output(b.op(op, *xs, **attrs))
    return b.build(), arrays


def _agree_and_render(graphs, construct: str) -> str:
    """Build the (graph, input arrays) pairs as one OpenCL program; check every output against the
    reference backend and that ``construct`` appears in the kernels' OpenCL C: the kernels' text."""
    from graphc.backends.reference import run_graph
    from graphc.passes.memory import plan_memory
    executables = opencl.build_executables([(graph, plan_memory(graph)) for graph, _ in graphs])
    for (graph, arrays), executable in zip(graphs, executables):
        for got, want in zip(executable.run(arrays).outputs, run_graph(graph, arrays).outputs):
            assert_backend_agrees("opencl", graph.name, got, want)
    text = "\n".join(e.source.rendered.text.replace(opencl.render.PRELUDE, "") for e in executables)
    assert construct in text
    return text


def test_padded_window_rows_are_masked_vector_loads():
    """An unfold's rows that hang over the padding (and the buffer's first and last rows, read lane
    by lane) on rows of 3, 4, 8 and 16 lanes, f32 and f64."""
    rng = np.random.default_rng(0)
    graphs = [_one_op("unfold", [rng.standard_normal(shape).astype(np.float32)], **attrs) for shape, attrs in [
        ((2, 3, 8, 8), {"kernel_size": (3, 3), "padding": (1, 1)}),
        ((1, 2, 5, 16), {"kernel_size": (3, 5), "padding": (2, 2)}),
        ((3, 1, 3, 3), {"kernel_size": (2, 3), "padding": (1, 1), "dilation": (2, 1)}),
        ((1, 2, 6, 4), {"kernel_size": (3, 3), "padding": (1, 1)}),
    ]]
    graphs.append(_one_op("unfold", [rng.standard_normal((2, 2, 8, 8))], kernel_size=(3, 3), padding=(1, 1)))
    _agree_and_render(graphs, "graphc_masked_vload")


def test_reorderable_sums_add_a_vector_of_partial_sums():
    """Sums over rows of 37 (whole vectors and 5 left over), 16 and 300 elements, of f32 and f64, and a
    product of a row and a column (its terms fused into FMAs), in as many lanes as the device prefers."""
    rng = np.random.default_rng(1)
    graphs = [_one_op("sum", [rng.standard_normal(shape).astype(dtype)], axes=[1])
              for shape, dtype in [((5, 37), np.float32), ((3, 16), np.float32), ((2, 300), np.float64)]]
    graphs.append(_one_op("matmul", [rng.standard_normal(shape).astype(np.float32) for shape in ((6, 45), (45, 1))]))
    lanes = opencl.runtime().limits.float_vector_width         # 1 on a GPU: its work-groups sum
    text = _agree_and_render(graphs, "_lanes = fma(" if lanes > 1 else "")
    assert lanes == 1 or f"float{lanes} " in text


def test_a_device_without_vector_preference_gets_a_work_item_per_lane(monkeypatch):
    """A GPU prefers no vectors (its work-items are its lanes): padded rows and sums run a work-item
    per element there, scalar code; taken here by giving PoCL a GPU's preference."""
    import dataclasses
    from graphc.backends.opencl.devices import Runtime
    limits = Runtime.limits
    monkeypatch.setattr(Runtime, "limits", property(
        lambda self: dataclasses.replace(limits.fget(self), float_vector_width=1)))
    rng = np.random.default_rng(2)
    graphs = [_one_op("unfold", [rng.standard_normal((2, 3, 8, 8)).astype(np.float32)], kernel_size=(3, 3),
                      padding=(1, 1)),
              _one_op("sum", [rng.standard_normal((5, 37)).astype(np.float32)], axes=[1])]
    text = _agree_and_render(graphs, " ? b0[")
    assert "graphc_masked_vload" not in text and "_lanes" not in text


def test_register_tiles_of_few_vectors_add_alternate_steps_into_copies():
    """On a CPU device a 4 x 16 tile's steps take turns adding to two copies of its rows (odd
    reductions of 21 and 75 steps: the last one added to the rows alone)."""
    rng = np.random.default_rng(3)
    graphs = [_one_op("matmul", [rng.standard_normal(shape).astype(np.float32) for shape in shapes])
              for shapes in [((3, 8, 21), (3, 21, 64)), ((8, 75), (75, 32))]]
    _agree_and_render(graphs, "_1[j] = " if opencl.runtime().limits.float_vector_width > 1 else "")


def test_a_tile_stored_through_a_permute_scatters_its_vectors():
    """A product's tile stored permuted (its 35 columns as [7, 3, 5]): the tile stays in vectors, each
    stored lane by lane."""
    from graphc.ir import GraphBuilder
    from graphc.passes.fusion import fuse
    rng = np.random.default_rng(4)
    b = GraphBuilder("permuted_product")
    x, w = b.input("x", "f32[3,20]"), b.input("w", "f32[20,35]")
    b.output(b.op("permute", b.op("reshape", b.matmul(x, w), shape=[3, 5, 7]), dims=[2, 0, 1]))
    arrays = [rng.standard_normal((3, 20)).astype(np.float32), rng.standard_normal((20, 35)).astype(np.float32)]
    _agree_and_render([(fuse(b.build()), arrays)], "_lanes.s1;")


def test_rows_of_widths_without_a_vector_type_run_in_chunks():
    """A window's taps in rows of 5 (4 + 1) and 7 (4 + 3) lanes: vector code, chunk by chunk."""
    rng = np.random.default_rng(5)
    graphs = [_one_op("unfold", [rng.standard_normal(shape).astype(np.float32)], layout="taps_last", kernel_size=size)
              for shape, size in [((2, 3, 9, 9), (5, 5)), ((2, 2, 9, 12), (3, 7))]]
    text = _agree_and_render(graphs, "vstore3(")
    assert "vstore4(" in text


def test_register_tiles_of_rows_without_a_vector_type_stay_in_vectors():
    """Convolutions with rows of 12 (8 + 4 lanes: a tile of float4s) and 7 outputs (4 + 3: of floats)."""
    rng = np.random.default_rng(6)
    graphs = [_one_op("conv2d", [rng.standard_normal(shape).astype(np.float32),
                                 rng.standard_normal((6, shape[1], 5, 5)).astype(np.float32)])
              for shape in [(2, 3, 16, 16), (1, 2, 11, 11)]]
    text = _agree_and_render(graphs, "= row_lanes.s4567;")
    assert "= row_lanes.s3;" in text


def test_exp_log_and_tanh_in_vector_code_compute_the_llvm_backends_bits():
    """vmath's polynomials in vectorized rows of 16 and 9 (8 + 1) lanes: their bitcasts and integer
    exponent arithmetic as vector code, the same bits as LLVM's, nan and inf included."""
    rng = np.random.default_rng(7)
    for shape in [(6, 16), (5, 3, 9, 9)]:
        x = (rng.standard_normal(shape) * 30).astype(np.float32)
        x.flat[:4] = [np.nan, np.inf, -np.inf, 0.0]
        inputs = (graphc.tensor(x), graphc.tensor(rng.standard_normal((shape[0],) + (1,) * (len(shape) - 1))
                                                  .astype(np.float32)))
        results = {}
        for backend in ("opencl", "llvm", "reference"):
            step = graphc.compile(lambda t, u: ((t + u).exp(), (t + u).log(), (t + u).tanh()), backend=backend)
            results[backend] = [value.numpy() for value in step(*inputs)]
            if backend == "opencl":
                assert "as_uint" in _executable(step, *inputs).source.rendered.text
        for got, same, want in zip(results["opencl"], results["llvm"], results["reference"]):
            assert np.array_equal(got, same, equal_nan=True)
            assert_backend_agrees("opencl", "exp, log, tanh", got, want)


def test_max_pooling_windows_run_as_vector_code():
    """Max pooling, its taps and its gradient on rows of 7 (4 + 3) and 16 lanes, stride 2, padded, with
    NaNs: window bounds, isnan and the taps' comparisons as masks, the taps chosen kept in long
    vectors."""
    from graphc.ir import GraphBuilder
    from graphc.passes.fusion import fuse
    rng = np.random.default_rng(8)
    graphs = []
    for shape, attrs in [((2, 3, 14, 14), {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}),
                         ((1, 2, 9, 32), {"kernel_size": (2, 2), "stride": (2, 2)})]:
        b = GraphBuilder("max_pool")
        x = b.input("x", f"f32[{','.join(map(str, shape))}]")
        pooled, taps = b.op("max_pool2d", x, **attrs), b.op("max_pool2d_argmax", x, **attrs)
        seed = b.input("seed", f"f32[{','.join(map(str, pooled.shape))}]")
        b.output(pooled, taps, b.op("max_pool2d_grad", seed, taps, **attrs, input_size=shape[2:]))
        x_value = rng.standard_normal(shape).astype(np.float32)
        x_value.flat[::37] = np.nan
        graphs.append((fuse(b.build()), [x_value, rng.standard_normal(pooled.shape).astype(np.float32)]))
    text = _agree_and_render(graphs, "isnan(v_")
    assert "long4 v_row" in text or "long8 v_row" in text or "long16 v_row" in text
