"""The LLVM backend on whole models: training steps agree with the reference backend step by step,
threads never change a bit, a failed step changes nothing, dumps show the code (the compile cache:
test_compile_cache.py).

(Every primitive is checked against the reference backend by the op suite: see tests/optest.py.)
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
import graphc.optim as optim
import models
from backend_checks import (check_classifier_steps, check_dcgan_step, check_returned_state_is_its_old_value,
                            classifier_batch, compiled_classifier)
from graphc.errors import OutOfRangeError
from training_steps import classifier_step

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["lenet", "cnn", "resnet", "mnistnet"])
def test_training_steps_agree_with_the_reference_backend(name):
    check_classifier_steps("llvm", name)


def test_the_dcgan_step_agrees_with_the_reference_backend():
    # Adam scales each element's step to about lr whatever its gradient: with the default eps a
    # gradient of 1e-7, 10% of which is float rounding (summed in another order), would move its
    # weight by a different lr-sized step.  A larger eps keeps the comparison about the step.
    check_dcgan_step("llvm", adam_eps=1e-4)


_THREADS_SCRIPT = """
import json, sys
sys.path[:0] = {paths!r}
import numpy as np
import graphc
import graphc.optim as optim
import models
from backend_checks import classifier_batch, compiled_classifier
out = {{}}
for name in ("lenet", "resnet", "mnistnet"):
    model, _, step = compiled_classifier(name, "llvm")
    x, y = classifier_batch(name, batch=8)
    out[name] = [step(x, y).item() for _ in range(2)] + [float(v.numpy().sum()) for v in model.state_dict().values()]
    out[name + " bytes"] = [v.numpy().tobytes().hex() for v in model.state_dict().values()][:4]
print(json.dumps(out))
"""


def test_one_and_two_threads_give_identical_bits():
    script = _THREADS_SCRIPT.format(paths=[str(ROOT / "tests"), str(ROOT / "tests" / "backends"),
                                           str(ROOT / "examples")])
    results = []
    for threads in ("1", "2"):
        env = {**os.environ, "GRAPHC_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert results[0] == results[1]


def test_a_bad_target_index_fails_the_step_and_changes_nothing():
    model, opt, step = compiled_classifier("lenet", "llvm")
    x, y = classifier_batch("lenet")
    step(x, y)
    step(x, y)                          # the momentum buffers exist: the steady-state graph
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    momenta = [opt.state[p]["momentum_buffer"].numpy().copy() for p in model.parameters()]
    bad = graphc.tensor(np.array([1, 2, 37, 0]))
    with pytest.raises(OutOfRangeError, match="37"):
        step(x, bad)
    for key, value in model.state_dict().items():
        assert value.numpy().tobytes() == before[key].tobytes(), key
    for p, momentum in zip(model.parameters(), momenta):
        assert opt.state[p]["momentum_buffer"].numpy().tobytes() == momentum.tobytes()
    step(x, y)                          # and the step still runs


def test_dumps_kernels_and_profile_show_the_native_code(tmp_path):
    graphc.manual_seed(0)
    model = models.LeNet()
    opt = optim.SGD(model.parameters(), lr=0.01)
    step = graphc.compile(classifier_step(model, opt), dump_dir=str(tmp_path))
    x, y = classifier_batch("lenet")
    step(x, y)
    folder = next(p for p in tmp_path.iterdir() if (p / "kernels.kir").exists())
    kernels = (folder / "kernels.kir").read_text()
    assert "kernel k0_" in kernels and "parallel for" in kernels
    assert "define" in (folder / "llvm.ll").read_text()
    assert "graphc_entry" in (folder / "asm.s").read_text()
    assert (folder / "kernels-unscheduled.kir").exists() and (folder / "llvm-optimized.ll").exists()
    listed = step.kernels(x, y)
    assert len(listed) == step.stats(x, y).kernels
    assert "define" in step.kernels(x, y, source="llvm")[0]
    profile = step.profile(x, y)
    assert len(profile.kernels) == len(listed) and profile.total_seconds > 0


_POOL_SCRIPT = """
import os, sys, threading, time
sys.path[:0] = {paths!r}
real_start = threading.Thread.start

def start_late(thread):
    # The pool's workers start only after the first jobs are published, as under heavy load.
    if thread.name.startswith("graphc-worker"):
        real_start(threading.Thread(target=lambda: (time.sleep(0.5), real_start(thread))))
    else:
        real_start(thread)

threading.Thread.start = start_late
from backend_checks import classifier_batch, compiled_classifier
_, _, step = compiled_classifier("lenet", "llvm")
x, y = classifier_batch("lenet", batch=32)
losses = [step(x, y).item() for _ in range(3)]
child = os.fork()
if child == 0:                      # a DataLoader worker has the pool's memory, not its threads
    os._exit(0 if abs(step(x, y).item() - step(x, y).item()) < 10 else 1)
_, status = os.waitpid(child, 0)
print("done", status, losses)
"""


def test_the_thread_pool_survives_late_workers_and_fork():
    script = _POOL_SCRIPT.format(paths=[str(ROOT / "tests"), str(ROOT / "tests" / "backends"),
                                        str(ROOT / "examples")])
    env = {**os.environ, "GRAPHC_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("done 0 "), done.stdout


def test_a_returned_state_is_its_value_before_the_step_writes_it():
    from graphc.backends.llvm import build_executable
    check_returned_state_is_its_old_value(build_executable)


def _copy_loop(lanes: int, buffer: str = "out", value=None):
    from graphc.ir.dtypes import f32
    from graphc.kernel.ir import Const, Load, Loop, Store, Var
    i = Var("i")
    value = value if value is not None else Load("x", i, f32)
    return Loop("i", Const(0, i.dtype), Const(lanes, i.dtype), (Store(buffer, i, value),), "vectorized")


def test_a_row_of_several_vector_pieces_is_padded_to_one_register_on_avx512_only():
    """7 lanes are 4 + 2 + 1 vectors (a load, a shuffle and a store each in a strided window row):
    on AVX-512 one masked vector of 8; on AVX2, whose masked stores are slow, still three pieces."""
    from types import SimpleNamespace
    from graphc.backends.llvm.lanes import padded_lanes
    from graphc.ir.dtypes import i64
    from graphc.kernel import expr as E
    from graphc.kernel.ir import Load, Var
    from graphc.kernel.target import AVX2, AVX512
    avx512, avx2 = (SimpleNamespace(target=t, scratch={"row"}) for t in (AVX512, AVX2))
    assert padded_lanes(_copy_loop(7), 7, avx512) == 8 and padded_lanes(_copy_loop(7), 7, avx2) == 7
    assert padded_lanes(_copy_loop(12), 12, avx512) == 16
    assert padded_lanes(_copy_loop(8), 8, avx512) == 8          # one piece already
    assert padded_lanes(_copy_loop(24), 24, avx512) == 24       # 32 lanes are two registers
    assert padded_lanes(_copy_loop(7, buffer="row"), 7, avx512) == 7     # a scratch row has no room past 7
    quotient = E.div(Load("n", Var("i"), i64), Load("d", Var("i"), i64))   # a masked lane's divisor is 0
    assert padded_lanes(_copy_loop(7, value=quotient), 7, avx512) == 7


def test_an_input_missing_from_a_first_in_place_run_is_named():
    """No array is bound yet on a first run: a missing input is reported, not taken as bound."""
    import numpy as np
    from graphc.backends.llvm import build_executable
    from graphc.errors import ShapeError
    from graphc.ir import GraphBuilder
    from graphc.passes.memory import plan_memory
    b = GraphBuilder("sum")
    b.output(b.add(b.input("x", "f32[3]"), b.input("y", "f32[3]")))
    graph = b.build()
    executable = build_executable(graph, plan_memory(graph))
    with pytest.raises(ShapeError, match=r"no value given for input\(s\) %y"):
        executable.run({"x": np.ones(3, np.float32)}, in_place=True)


def test_two_loads_of_one_program_each_run_on_their_own_arrays():
    """graphc_run reads the arguments stored in its own loaded copy of the program: a second
    executable of the same object code (from the compile cache) has its own arena and inputs,
    and an executable given other arrays than last time binds them."""
    from graphc.backends.llvm import build_executable
    from graphc.ir import GraphBuilder
    from graphc.passes.memory import plan_memory
    b = GraphBuilder("scaled")
    x, y = b.input("x", "f32[5]"), b.input("y", "f32[5]")
    b.output(b.mul(b.add(x, y), 2.0))
    graph = b.build()
    first, second = (build_executable(graph, plan_memory(graph)) for _ in range(2))
    ones, twos, threes = (np.full(5, v, np.float32) for v in (1, 2, 3))
    for inputs, executable, expected in [([ones, twos], first, 6), ([threes, threes], second, 12),
                                         ([ones, twos], first, 6), ([twos, twos], first, 8),
                                         ([ones, twos], first, 6), ([threes, ones], second, 8)]:
        out = executable.run(inputs, in_place=True).outputs[0]
        np.testing.assert_array_equal(out, np.full(5, expected, np.float32))
