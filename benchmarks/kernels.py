"""GFLOP/s of graphc's compiled matrix products and convolutions, beside numpy's BLAS and the FMA peak.

    python benchmarks/kernels.py                      # 1 and 2 threads
    python benchmarks/kernels.py --threads 1 --only sgemm

Three tables:

- **peak**: the machine's multiply-add peak, measured here: a JIT-compiled loop of
  independent FMAs on the widest vectors the CPU has (AVX-512 or AVX2), on each thread.
- **sgemm**: a 1024x1024x1024 product and the example models' Linear layers (batch 32), and
  the largest one's input gradient: graphc (``graphc.compile(lambda a, b: a @ b)``, the LLVM
  backend) against numpy's matmul (OpenBLAS), each in a process of its own with the same
  thread count; beside it graphc's native kernel alone (``profile``), without the few
  microseconds of Python a compiled call spends, which weigh on the smallest products.
- **conv**: every distinct convolution of the ResNet and DCGAN training steps (batch
  32), forward and both gradients, compiled as one-op graphs through the default
  passes (so as the training step runs them: unfold + register-tiled matmul),
  with GFLOP/s and the share of the peak.

Every share of peak is against the peak measured in the same process, just before
the product or convolution: on these virtual machines the second core's speed varies
from minute to minute (two threads' peak measured 385 to 522 GFLOP/s in one hour), so a
peak measured minutes earlier would make the two-thread shares a draw.  Every figure is
the best of ``--repeats`` samples after a warm-up call, each sample a millisecond of
calls in a row.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LINEAR_SHAPES = [  # (M, K, N) = (batch, in features, out features) of the models' Linear layers
    (32, 400, 120), (32, 120, 84), (32, 6272, 10), (32, 100, 1024), (32, 1024, 6272), (32, 6272, 1),
    # and the largest one's input gradient in the DCGAN's step: dy [32, 6272] @ W [6272, 1024]
    (32, 6272, 1024)]


# -- inside a measuring process ----------------------------------------------------------------

def _best(run, repeats: int) -> float:
    """Seconds per call of ``run``: the best of ``repeats`` samples, each enough calls in a row to
    last a millisecond (one call of a small product lasts a few microseconds: timed alone, its
    figure would be the timer's and the warm-up's as much as the product's)."""
    run()
    start = time.perf_counter()
    run()
    calls = max(1, int(1e-3 / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


def measure_peak(threads: int) -> float:
    """GFLOP/s of independent FMAs on the widest vectors, on ``threads`` threads at once."""
    import ctypes

    import llvmlite.ir as ir
    from graphc.backends.llvm.jit import compile_module, vector_target

    lanes = vector_target().vector_bytes // 4
    accumulators, steps = 16, 1 << 22
    f32v = ir.VectorType(ir.FloatType(), lanes)
    module = ir.Module("peak")
    function = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.IntType(64)]), "peak")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    fma = ir.Function(module, ir.FunctionType(f32v, [f32v] * 3), f"llvm.fma.v{lanes}f32")
    start_block, loop, done = b.block, function.append_basic_block("loop"), function.append_basic_block("done")
    b.branch(loop)
    b.position_at_end(loop)
    counter = b.phi(ir.IntType(64))
    counter.add_incoming(ir.Constant(ir.IntType(64), 0), start_block)
    values = []
    for k in range(accumulators):
        phi = b.phi(f32v)
        phi.add_incoming(ir.Constant(f32v, [1.0 + k * 1e-3] * lanes), start_block)
        values.append(phi)
    factor, term = ir.Constant(f32v, [0.999999] * lanes), ir.Constant(f32v, [1e-7] * lanes)
    updated = [b.call(fma, [v, factor, term]) for v in values]
    following = b.add(counter, ir.Constant(ir.IntType(64), 1))
    counter.add_incoming(following, b.block)
    for phi, value in zip(values, updated):
        phi.add_incoming(value, b.block)
    b.cbranch(b.icmp_signed("<", following, function.args[0]), loop, done)
    b.position_at_end(done)
    total = updated[0]
    for value in updated[1:]:
        total = b.fadd(total, value)
    b.ret(b.extract_element(total, ir.Constant(ir.IntType(32), 0)))
    engine, addresses = compile_module(module, ["peak"], "fma peak")
    peak = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(addresses["peak"])

    def on_every_thread():
        workers = [threading.Thread(target=peak, args=(steps,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    seconds = _best(on_every_thread, 5)
    return threads * steps * accumulators * lanes * 2 / seconds / 1e9


def measure_sgemm(library: str, m: int, k: int, n: int, repeats: int) -> list[float]:
    """GFLOP/s of one call of the product (numpy's matmul, or graphc's compiled function), and
    for graphc also of its native kernel alone (``profile``: without the Python of the call) and
    the peak on this process's threads."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    flops = 2 * m * k * n
    if library == "numpy":
        return [flops / _best(lambda: np.matmul(a, b), repeats) / 1e9]
    import graphc
    peak = measure_peak(int(os.environ["GRAPHC_NUM_THREADS"]))
    product = graphc.compile(lambda x, y: x @ y)
    x, y = graphc.tensor(a), graphc.tensor(b)
    seconds = _best(lambda: product(x, y), repeats)
    kernels = sum(timing.seconds for timing in product.profile(x, y, runs=repeats).kernels)
    return [flops / seconds / 1e9, flops / kernels / 1e9, peak]


def _conv_cases() -> list[dict]:
    """Every distinct convolution node of the ResNet and DCGAN training steps at batch 32."""
    sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "examples"), str(ROOT / "tests")]
    import graphc
    import train_step
    cases = {}
    for model in ("resnet", "dcgan"):
        lib, models = train_step._library("graphc llvm")
        step, args = train_step._step(lib, models, model, 32)
        compiled = graphc.compile(step, backend="reference")
        compiled(*args)
        for node in compiled.graph(*args, stage="traced").nodes:
            if node.op in ("conv2d", "conv_transpose2d", "conv2d_weight_grad"):
                attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in node.attrs.items()}
                case = {"model": model, "op": node.op, "inputs": [list(x.shape) for x in node.inputs],
                        "attrs": attrs, "output": list(node.shape)}
                cases.setdefault(json.dumps([case["op"], case["inputs"], attrs], sort_keys=True), case)
    return list(cases.values())


def _flops(case: dict) -> int:
    """2 x the multiply-adds: output elements x contraction length."""
    op, inputs, output = case["op"], case["inputs"], case["output"]
    if op == "conv2d":
        _, c, kh, kw = inputs[1]
        return 2 * int(np.prod(output)) * c * kh * kw
    if op == "conv2d_weight_grad":
        n, _, ho, wo = inputs[1]
        return 2 * int(np.prod(output)) * n * ho * wo
    _, out_per_group, kh, kw = inputs[1]                  # conv_transpose2d: input pixels x weight
    return 2 * int(np.prod(inputs[0])) * out_per_group * kh * kw


def measure_conv(case: dict, repeats: int) -> list[float]:
    """GFLOP/s of the convolution, and the peak on this process's threads."""
    from graphc.backends.registry import get_backend
    from graphc.ir import GraphBuilder
    from graphc.ir.dtypes import f32
    from graphc.ir.types import TensorType
    from graphc.passes.manager import PassManager, default_pipeline
    from graphc.passes.memory import plan_memory
    b = GraphBuilder(case["op"])
    xs = [b.input(f"x{i}", TensorType(tuple(shape), f32)) for i, shape in enumerate(case["inputs"])]
    b.output(b.op(case["op"], *xs, **{k: tuple(v) if isinstance(v, list) else v for k, v in case["attrs"].items()}))
    graph = PassManager(default_pipeline(training=False)).run(b.build())
    executable = get_backend("llvm").build_executable(graph, plan_memory(graph))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape in case["inputs"]]
    peak = measure_peak(int(os.environ["GRAPHC_NUM_THREADS"]))
    seconds = _best(lambda: executable.run(arrays), repeats)
    return [_flops(case) / seconds / 1e9, peak]


# -- the driver -----------------------------------------------------------------------------------

def _in_own_process(threads: int, *job):
    env = {**os.environ, "GRAPHC_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--measure", json.dumps(job)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{job[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_job(job):
    kind, *rest = job
    if kind == "peak":
        return measure_peak(*rest)
    if kind == "sgemm":
        return measure_sgemm(*rest)
    if kind == "cases":
        return _conv_cases()
    return measure_conv(*rest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=("peak", "sgemm", "conv"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(_run_job(json.loads(args.measure))))
        return 0

    peak = {t: _in_own_process(t, "peak", t) for t in args.threads}
    print("peak: independent FMAs on the widest vectors")
    for t in args.threads:
        print(f"  {t} thread(s): {peak[t]:8.1f} GFLOP/s")
    if args.only in (None, "sgemm"):
        print("\nsgemm: GFLOP/s of a call (graphc: the compiled function; numpy: matmul), and of graphc's kernel alone")
        print(f"{'M x K x N':24s} {'threads':>7s} {'graphc':>9s} {'numpy':>9s} {'graphc/numpy':>13s} {'of peak':>8s} "
              f"{'kernel':>9s} {'kernel/numpy':>13s}")
        for m, k, n in [(1024, 1024, 1024), *LINEAR_SHAPES]:
            for t in args.threads:
                ours, kernel, peak_here = _in_own_process(t, "sgemm", "graphc", m, k, n, args.repeats)
                (blas,) = _in_own_process(t, "sgemm", "numpy", m, k, n, args.repeats)
                print(f"{f'{m} x {k} x {n}':24s} {t:7d} {ours:9.1f} {blas:9.1f} {ours / blas:13.2f} "
                      f"{ours / peak_here:8.0%} {kernel:9.1f} {kernel / blas:13.2f}", flush=True)
    if args.only in (None, "conv"):
        print(f"\n{'convolution (batch 32)':60s} {'threads':>7s} {'GFLOP/s':>9s} {'of peak':>8s} {'peak':>9s}")
        for case in _in_own_process(1, "cases"):
            label = f"{case['model']} {case['op']} {case['inputs'][0]}*{case['inputs'][1]}"
            attrs = case["attrs"]
            label += f" s{attrs['stride'][0]} p{attrs['padding'][0]}"
            for t in args.threads:
                rate, peak_here = _in_own_process(t, "conv", case, args.repeats)
                print(f"{label:60s} {t:7d} {rate:9.1f} {rate / peak_here:8.0%} {peak_here:9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
