"""Time one training step of the example models on graphc and on PyTorch, in the same run.

    python benchmarks/train_step.py                    # every example model at batch 32, 2 threads
    python benchmarks/train_step.py --models lenet --batch-size 4 --threads 1 2 --rounds 3
    python benchmarks/train_step.py --mode infer --models resnet dcgan --runners "graphc llvm"

``--mode infer`` times the eval-mode forward pass without gradients instead (the DCGAN's:
its generator).  The last column is each measuring process's peak resident memory.

Every measurement runs in a process of its own that imports only the library it times: thread
pools keep spinning after their last call, so two libraries timed in one process slow each
other (by 1.5-3x, measured here).  The processes alternate, round after round (torch, graphc
llvm, graphc reference, graphc eager, torch, ...), so a machine that gets busier part-way
through slows every runner alike; each runner's figure is its best round, each round the
median of ``--repeats`` steps after warm-up.  PyTorch runs with ``torch.set_num_threads(n)``,
graphc with ``GRAPHC_NUM_THREADS=n``, and PoCL (the OpenCL runner, on the device ``graphc
devices`` marks) with ``POCL_CPU_MAX_CU_COUNT=n`` (``POCL_MAX_PTHREAD_COUNT`` in older PoCL).  The table gives milliseconds per step and graphc's time
as a multiple of PyTorch's (below 1: graphc is faster).  PyTorch is only the yardstick: it is
never imported by graphc.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ("torch", "graphc llvm", "graphc opencl", "graphc reference", "graphc eager")
MODELS = ("lenet", "mnistnet", "cnn", "resnet", "dcgan")
CLASSIFIERS = {"lenet": ("LeNet", (3, 32, 32)), "mnistnet": ("MNISTNet", (1, 28, 28)), "cnn": ("CNN", (3, 32, 32)),
               "resnet": ("ResNet", (3, 32, 32))}


# -- inside a measuring process -----------------------------------------------------------

def _library(runner: str):
    """The library a runner times, and the example models written for it."""
    if runner == "torch":
        import torch
        source = (ROOT / "examples" / "models.py").read_text().replace("graphc", "torch")
        models = types.ModuleType("torch_example_models")
        exec(compile(source, "examples/models.py (torch)", "exec"), models.__dict__)
        return torch, models
    sys.path.insert(0, str(ROOT / "examples"))
    import graphc
    import models
    return graphc, models


def _step(lib, models, name: str, batch: int):
    """The training step of model ``name`` (zero_grad, forward, loss, backward, update) and its inputs."""
    sys.path.insert(0, str(ROOT / "tests"))
    from training_steps import classifier_step, dcgan_step
    rng = np.random.default_rng(0)
    if name == "dcgan":
        gen, disc = models.Generator(), models.Discriminator()
        opt_g = lib.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = lib.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
        real = lib.tensor(rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32))
        noise = lib.tensor(rng.standard_normal((batch, 100)).astype(np.float32))
        return dcgan_step(lib, gen, disc, opt_g, opt_d), (real, noise)
    class_name, shape = CLASSIFIERS[name]
    model = getattr(models, class_name)()
    opt = (lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if name in ("lenet", "mnistnet")
           else lib.optim.Adam(model.parameters(), lr=1e-3))
    loss = lib.nn.functional.nll_loss if name == "mnistnet" else lib.nn.functional.cross_entropy
    step = classifier_step(model, opt, loss)
    x = lib.tensor(rng.standard_normal((batch, *shape)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, batch))
    return step, (x, y)


def _inference(lib, models, name: str, batch: int):
    """The eval-mode forward pass of model ``name`` without gradients (the DCGAN: its generator)."""
    rng = np.random.default_rng(0)
    if name == "dcgan":
        model, x = models.Generator(), rng.standard_normal((batch, 100))
    else:
        class_name, shape = CLASSIFIERS[name]
        model, x = getattr(models, class_name)(), rng.standard_normal((batch, *shape))
    model.eval()

    def forward(inputs):
        with lib.no_grad():
            return model(inputs)
    return forward, (lib.tensor(x.astype(np.float32)),)


def measure(runner: str, name: str, batch: int, threads: int, repeats: int, mode: str) -> dict:
    """The median seconds of ``repeats`` steps, after warm-up (compiling included there), and the
    process's peak resident memory in MiB."""
    lib, models = _library(runner)
    if runner == "torch":
        lib.set_num_threads(threads)
    step, args = (_step if mode == "train" else _inference)(lib, models, name, batch)
    if runner.startswith("graphc ") and runner != "graphc eager":
        step = lib.compile(step, backend=runner.split()[1])
    for _ in range(3):
        step(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(*args)
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": statistics.median(times), "peak_mib": peak_mib}


# -- the driver -------------------------------------------------------------------------------

def _in_own_process(runner: str, name: str, batch: int, threads: int, repeats: int, mode: str) -> dict:
    env = {**os.environ, "GRAPHC_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "POCL_CPU_MAX_CU_COUNT": str(threads), "POCL_MAX_PTHREAD_COUNT": str(threads)}
    command = [sys.executable, __file__, "--measure", runner, name, str(batch), str(threads), str(repeats), mode]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{runner} on {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=10, help="steps timed per round (the median is kept)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (the best is kept)")
    parser.add_argument("--mode", choices=("train", "infer"), default="train",
                        help="a training step, or an eval-mode forward pass without gradients")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        runner, name, batch, threads, repeats, mode = args.measure
        print(json.dumps(measure(runner, name, int(batch), int(threads), int(repeats), mode)))
        return 0

    runners = ["torch", *(r for r in args.runners if r != "torch")]
    print(f"{args.mode}, batch {args.batch_size}; best of {args.rounds} alternating rounds, each the median of "
          f"{args.repeats} steps; every runner in a process of its own (peak: its resident memory)")
    print(f"{'model':8s} {'threads':>7s} {'runner':18s} {'ms/step':>9s} {'x torch':>8s} {'peak MiB':>9s}")
    for name in args.models:
        for threads in args.threads:
            best = {runner: float("inf") for runner in runners}
            peak = {runner: 0.0 for runner in runners}
            for _ in range(args.rounds):
                for runner in runners:
                    result = _in_own_process(runner, name, args.batch_size, threads, args.repeats, args.mode)
                    best[runner] = min(best[runner], result["seconds"])
                    peak[runner] = max(peak[runner], result["peak_mib"])
            for runner in runners:
                print(f"{name:8s} {threads:7d} {runner:18s} {best[runner] * 1e3:9.3f} {best[runner] / best['torch']:8.2f} "
                      f"{peak[runner]:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
