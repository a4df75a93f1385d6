"""Time one training step of the example models on graphc and on PyTorch, in the same run.

    python benchmarks/train_step.py                    # LeNet, ResNet and DCGAN at batch 32
    python benchmarks/train_step.py --models lenet --batch-size 64 --repeats 20

For each model it prints the median seconds per step of graphc compiled (per backend),
graphc eager and PyTorch (CPU, same thread count), and graphc's time as a multiple of
PyTorch's.  PyTorch is only the yardstick here; it is imported, never used by graphc.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "tests"))

import graphc  # noqa: E402
import models  # noqa: E402
from graphc.backends.registry import available_backends  # noqa: E402
from training_steps import classifier_step, dcgan_step  # noqa: E402
from torch_twins import TORCH_MODELS  # noqa: E402  (examples/models.py run on torch)


def classifier_case(name: str, image_shape):
    def build(lib, model_lib, batch):
        model = getattr(model_lib, name)()
        opt = (lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if name == "LeNet"
               else lib.optim.Adam(model.parameters(), lr=1e-3))
        step = classifier_step(model, opt, lib.nn.functional.cross_entropy)
        rng = np.random.default_rng(0)
        x = lib.tensor(rng.standard_normal((batch, *image_shape)).astype(np.float32))
        y = lib.tensor(rng.integers(0, 10, batch))
        return step, (x, y)
    return build


def dcgan_case(lib, model_lib, batch):
    gen, disc = model_lib.Generator(), model_lib.Discriminator()
    opt_g = lib.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = lib.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    rng = np.random.default_rng(0)
    real = lib.tensor(rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32))
    noise = lib.tensor(rng.standard_normal((batch, 100)).astype(np.float32))
    return dcgan_step(lib, gen, disc, opt_g, opt_d), (real, noise)


CASES = {
    "lenet": classifier_case("LeNet", (3, 32, 32)),
    "resnet": classifier_case("ResNet", (3, 32, 32)),
    "dcgan": dcgan_case,
}


def seconds_per_step(step, args, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import torch

    print(f"batch {args.batch_size}, median of {args.repeats} steps; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads")
    print(f"{'model':8s} {'runner':22s} {'s/step':>9s} {'x torch':>8s}")
    for name in args.models:
        build = CASES[name]
        torch_step, torch_args = build(torch, TORCH_MODELS, args.batch_size)
        baseline = seconds_per_step(torch_step, torch_args, args.repeats)
        rows = [("torch", baseline)]
        for backend in available_backends():
            step, step_args = build(graphc, models, args.batch_size)
            rows.append((f"graphc {backend}", seconds_per_step(graphc.compile(step, backend=backend), step_args,
                                                               args.repeats)))
        step, step_args = build(graphc, models, args.batch_size)
        rows.append(("graphc eager", seconds_per_step(step, step_args, args.repeats)))
        for runner, seconds in rows:
            print(f"{name:8s} {runner:22s} {seconds:9.4f} {seconds / baseline:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
