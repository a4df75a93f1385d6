"""How long the first training step takes to compile and run, cold and from the compile cache.

    python benchmarks/compile_time.py                      # LeNet, ResNet, DCGAN at batch 32
    python benchmarks/compile_time.py --models lenet --rounds 3

For each model the script runs, each in a fresh process: a cold start (an empty
compile cache in a temporary folder) and then a warm one (a new process, the
cache now filled).  Each process times its first call of the compiled training
step, from the call to its result, and prints where the time went, phase by
phase, as graphc's compiler recorded it (``compiled.compile_times()``: tracing,
each pass, lowering, LLVM, loading, the first run).  The second step compiles
again (its graph reads the optimizer state the first one made); its time is
shown beside.  Where PyTorch is installed, torch.compile's cold first LeNet
step is timed too, in a process of its own with an empty inductor cache.
Each figure is the best of ``--rounds`` rounds (cold and warm alternate).  Beside each
model the machine's load average as its rounds began: on a shared machine the wall times
grow with it, the CPU times hardly.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MODELS = ("lenet", "resnet", "dcgan")
TARGETS = {"lenet": (1.0, 0.2), "resnet": (5.0, 0.5), "dcgan": (5.0, 0.5)}   # issue 12: cold, warm seconds


# -- inside a measuring process -----------------------------------------------------------

def measure_graphc(name: str, batch: int) -> dict:
    start = time.perf_counter()
    import graphc
    from train_step import _library, _step
    _, models = _library("graphc llvm")
    step, args = _step(graphc, models, name, batch)
    compiled = graphc.compile(step)
    imported = time.perf_counter()
    cpu_before = _cpu_seconds()
    compiled(*args)
    first = time.perf_counter()
    cpu = [after - before for after, before in zip(_cpu_seconds(), cpu_before)]
    compiled(*args)
    second = time.perf_counter()
    times = compiled.compile_times()
    return {"import": imported - start, "first": first - imported, "second": second - first, "cpu": cpu,
            "cache": times[0].cache, "phases": times[0].phases, "workers": times[0].worker_phases}


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by this process and by its finished children (LLVM workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measure_torch(batch: int) -> dict:
    import torch
    from train_step import _library, _step
    lib, models = _library("torch")
    sys.modules[models.__name__] = models          # torch.compile imports the module of the code it traces
    torch.set_num_threads(int(os.environ.get("GRAPHC_NUM_THREADS", "2")))
    step, args = _step(lib, models, "lenet", batch)
    compiled = torch.compile(step)
    start = time.perf_counter()
    compiled(*args)
    return {"first": time.perf_counter() - start}


# -- the driver -------------------------------------------------------------------------------

def _in_own_process(what: list[str], env: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", *what], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(what)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _phase_table(cold: dict, warm: dict) -> list[str]:
    names = list(dict.fromkeys([*cold["phases"], *warm["phases"]]))
    lines = [f"    {'phase':28s} {'cold ms':>9s} {'warm ms':>9s}"]
    for phase in names:
        cells = [f"{run['phases'][phase] * 1e3:9.1f}" if phase in run["phases"] else f"{'':9s}" for run in (cold, warm)]
        lines.append(f"    {phase:28s} {cells[0]} {cells[1]}")
    unrecorded = [run["first"] - sum(run["phases"].values()) for run in (cold, warm)]
    lines.append(f"    {'(outside the phases)':28s} {unrecorded[0] * 1e3:9.1f} {unrecorded[1] * 1e3:9.1f}")
    for phase, seconds in cold["workers"].items():
        lines.append(f"    {phase + ' (workers, CPU)':28s} {seconds * 1e3:9.1f}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="cold/warm rounds per model (the best is kept)")
    parser.add_argument("--no-torch", action="store_true", help="leave out torch.compile")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        what = args.measure
        result = measure_torch(int(what[1])) if what[0] == "torch" else measure_graphc(what[0], int(what[1]))
        print(json.dumps(result))
        return 0

    env = {**os.environ, "GRAPHC_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    print(f"first training step at batch {args.batch_size}, {args.threads} threads, each start in a fresh "
          f"process; best of {args.rounds} round(s)")
    print("cold and warm: wall seconds from the first call to its result; CPU: seconds of CPU the cold call took "
          "in this process + in LLVM worker processes (on a busy machine the wall time grows, the CPU time hardly); "
          "load: the machine's load average over the last minute as the model's rounds began")
    print(f"{'model':8s} {'cold s':>8s} {'warm s':>8s} {'target':>12s} {'cold CPU s':>12s} {'warm CPU s':>11s} "
          f"{'2nd step cold':>14s} {'import s':>9s} {'load':>5s}")
    for name in args.models:
        load = os.getloadavg()[0]
        best = {}
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="graphc-cache-") as folder:
                run_env = {**env, "GRAPHC_CACHE_DIR": folder}
                for start in ("cold", "warm"):
                    result = _in_own_process([name, str(args.batch_size)], run_env)
                    if start not in best or result["first"] < best[start]["first"]:
                        best[start] = result
        cold, warm = best["cold"], best["warm"]
        target = "≤{:g} / ≤{:g}".format(*TARGETS[name])
        cold_cpu = "{:.2f}+{:.2f}".format(*cold["cpu"])
        print(f"{name:8s} {cold['first']:8.2f} {warm['first']:8.2f} {target:>12s} {cold_cpu:>12s} "
              f"{warm['cpu'][0]:11.2f} {cold['second']:14.2f} {cold['import']:9.2f} {load:5.1f}")
        print("\n".join(_phase_table(cold, warm)), flush=True)
    if not args.no_torch and "lenet" in args.models and importlib.util.find_spec("torch") is not None:
        with tempfile.TemporaryDirectory(prefix="torchinductor-") as folder:
            torch_env = {**env, "TORCHINDUCTOR_CACHE_DIR": folder, "TRITON_CACHE_DIR": folder}
            seconds = _in_own_process(["torch", str(args.batch_size)], torch_env)["first"]
        print(f"torch.compile, LeNet, cold first step: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
