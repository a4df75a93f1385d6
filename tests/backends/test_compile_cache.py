"""The compile cache: a compiled step is loaded again, never stale, never a crash.

A hit loads the step without running the passes, lowering or LLVM's optimizer;
any change to what decides the code (the traced graph, the compile options, the
target CPU's features, the threads, graphc's own source) misses; the cache keeps
to its size, least recently used first; a damaged entry is reported and rebuilt;
two processes compiling the same step at once both succeed.  Times are never
asserted: ``benchmarks/compile_time.py`` measures them.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
import graphc.optim as optim
import models
from graphc import cli
from graphc.backends import cache
from graphc.backends.llvm import jit
from training_steps import classifier_step

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _lenet_step(batch=4, **options):
    graphc.manual_seed(0)
    model = models.LeNet()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(1)
    x = graphc.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    y = graphc.tensor(rng.integers(0, 10, batch))
    return graphc.compile(classifier_step(model, opt), **options), (x, y), model


def _first_step(**options):
    """A fresh model's first step compiled and run: (loss, how the cache served it, the model)."""
    step, args, model = _lenet_step(**options)
    loss = step(*args).item()
    return loss, step.compile_times()[0].cache, model


def test_a_second_compile_of_the_same_step_loads_it_and_computes_the_same(cache_dir):
    loss, served, model = _first_step()
    assert served == "miss"
    again, served_again, model_again = _first_step()
    assert served_again == "hit"
    assert again == loss
    for (name, value), (_, other) in zip(model.state_dict().items(), model_again.state_dict().items()):
        assert value.numpy().tobytes() == other.numpy().tobytes(), name


def test_a_loaded_step_runs_no_pass_and_no_llvm_optimization(cache_dir):
    _first_step()
    step, args, _ = _lenet_step()
    step(*args)
    phases = step.compile_times()[0].phases
    assert "tracing" in phases and "first run" in phases
    assert not [name for name in phases if name.startswith("pass ") or "LLVM" in name or name == "lowering"]
    # Asked for, the optimized graph and its plan are made then, from the traced graph.
    assert step.stats(*args).kernels > 0 and step.memory_plan(*args).arena_bytes > 0


def test_every_change_to_what_decides_the_code_misses(cache_dir, monkeypatch):
    from graphc.backends import llvm
    _first_step()
    step, args, _ = _lenet_step(batch=8)                       # another traced graph
    step(*args)
    assert step.compile_times()[0].cache == "miss"
    cpu, features = llvm.host()
    fewer = ",".join(f for f in features.split(",") if f != "+fma") + ",-fma"
    base = llvm.cache_identity()
    changes = {"CPU features": (llvm, "host", lambda: (cpu, fewer)),
               "CPU name": (llvm, "host", lambda: ("another-cpu", features)),
               "graphc source": (cache, "code_version", lambda: "0.0.0+edited"),
               "LLVM options": (llvm, "LLVM_OPTIONS", ("-dse-memoryssa-walklimit=90",))}
    for what, change in changes.items():
        with monkeypatch.context() as patch:
            patch.setattr(*change)
            assert llvm.cache_identity() != base, f"the key ignores the {what}"
    with monkeypatch.context() as patch:
        patch.setitem(jit.LOOP_PIPELINE, "loop_vectorization", False)
        assert llvm.cache_identity() != base, "the key ignores the pipeline"
    assert llvm.cache_identity(threads=1) != llvm.cache_identity(threads=2)
    with monkeypatch.context() as patch:                      # and the same step compiles again
        patch.setattr(llvm, "host", lambda: (cpu, fewer))
        patch.setattr(jit, "host", lambda: (cpu, fewer))
        assert _first_step()[1] == "miss"
    assert _first_step()[1] == "hit"


def test_the_reference_backend_and_dumps_bypass_the_cache(cache_dir):
    # The reference backend keeps nothing; dumps come from compiling, so they never load.
    assert _first_step(backend="reference")[1] == "off"
    assert _first_step(dump_dir=str(cache_dir.parent / "dumps"))[1] == "off"
    assert any((cache_dir.parent / "dumps").rglob("kernels.kir"))


def test_the_cache_keeps_to_its_size_least_recently_used_first(cache_dir):
    for i in range(3):
        cache.store("test", f"{i:064x}", bytes(1000), label=f"entry {i}")
        path = cache._path("test", f"{i:064x}")
        os.utime(path, (i, i))                                  # entry 0 least recently used
    assert len(cache.info().entries) == 3
    cache.evict(2500)
    assert sorted(entry.label for entry in cache.info().entries) == ["entry 1", "entry 2"]
    assert cache.load("test", f"{1:064x}") == bytes(1000)
    assert cache.load("test", f"{0:064x}") is None


def test_a_process_checks_the_size_at_its_first_store_then_after_each_sixteenth_of_the_limit(cache_dir, monkeypatch):
    """Each check reads every entry's size (a third of a second on a full cache): not at every store."""
    checks = []
    monkeypatch.setattr(cache, "evict", lambda limit: checks.append(limit))
    monkeypatch.setattr(cache, "_unchecked_bytes", None)
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", "0.5")            # checks every 32 KiB stored
    for i in range(40):
        cache.store("test", f"{i:064x}", bytes(1000))
    assert len(checks) == 2 and checks[0] == 2 ** 19           # the first store, and after 32 KiB
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", "0")
    cache.store("test", f"{40:064x}", bytes(1000))
    assert len(checks) == 3                                     # a limit of nothing: every store


def test_the_command_shows_sizes_entries_and_hits_and_clears(cache_dir, capsys):
    _first_step()
    _first_step()
    assert cli.main(["cache", "info"]) == 0
    shown = capsys.readouterr().out
    assert "entries" in shown and "MiB" in shown and "step (llvm)" in shown
    assert sum(entry.hits for entry in cache.info().entries if entry.kind == "step") == 1
    assert cli.main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out and cache.info().entries == []


@pytest.mark.parametrize("damage", ["truncated", "garbage with a valid checksum"])
def test_a_damaged_entry_warns_and_is_rebuilt(cache_dir, damage):
    loss = _first_step()[0]
    for path in cache_dir.rglob("*.entry"):
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:100])        # as by a killed writer
        else:
            key = path.stem
            cache.store(path.parent.parent.name, key, b"{not json" if "step" in str(path) else b"\x00" * 64)
    with pytest.warns(RuntimeWarning, match="damaged|could not be read"):
        again, served, _ = _first_step()
    assert again == loss and served == "miss"
    assert _first_step()[1] == "hit"                          # rebuilt: whole again


_RACE = """
import sys
sys.path[:0] = {paths!r}
from test_compile_cache import _first_step
loss, served, _ = _first_step()
print(repr(loss), served)
"""


def test_two_processes_compiling_the_same_step_at_once_both_succeed(cache_dir):
    script = _RACE.format(paths=[str(ROOT / "tests"), str(ROOT / "tests" / "backends"), str(ROOT / "examples")])
    env = {**os.environ, "GRAPHC_CACHE_DIR": str(cache_dir)}
    racers = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [racer.communicate(timeout=300) for racer in racers]
    for racer, (out, err) in zip(racers, results):
        assert racer.returncode == 0, err[-3000:]
        assert "Warning" not in err, err[-3000:]
    losses = {out.split()[0] for out, _ in results}
    assert len(losses) == 1
    # The digest of graphc's source as the racers computed it, not as this process did at its start
    # (a checkout edited meanwhile, by a developer at work, made this step a miss).
    cache.code_version.cache_clear()
    assert _first_step()[1] == "hit"


def test_the_compile_jobs_setting_is_checked(monkeypatch):
    from graphc.errors import BackendError
    monkeypatch.setenv("GRAPHC_COMPILE_JOBS", "1")
    assert jit.compile_jobs() == 1
    for bad in ("0", "two"):
        monkeypatch.setenv("GRAPHC_COMPILE_JOBS", bad)
        with pytest.raises(BackendError, match="GRAPHC_COMPILE_JOBS"):
            jit.compile_jobs()


def test_compiling_in_worker_processes_gives_the_same_code(tmp_path, monkeypatch):
    results = []
    for jobs in ("1", "2"):                    # LeNet's step has enough kernels for two processes
        monkeypatch.setenv("GRAPHC_COMPILE_JOBS", jobs)
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / jobs))
        loss, served, model = _first_step()
        assert served == "miss"
        results.append((loss, [value.numpy().tobytes() for value in model.state_dict().values()]))
    assert results[0] == results[1]


def test_a_module_llvm_cannot_compile_is_a_clear_error_in_any_process(cache_dir, monkeypatch):
    import graphc.backends.llvm as llvm_backend
    monkeypatch.setenv("GRAPHC_COMPILE_JOBS", "2")
    monkeypatch.setattr(llvm_backend, "render_kernel_module", lambda *args: _broken_module())
    with pytest.raises(graphc.BackendError, match="LLVM could not compile graph"):
        _first_step()


def _broken_module():
    """A module LLVM rejects: its function's one block has no terminator."""
    import llvmlite.ir as ir
    module = ir.Module()
    ir.Function(module, ir.FunctionType(ir.VoidType(), []), "broken").append_basic_block("entry")
    return module


def test_the_work_queue_hands_each_part_to_exactly_one_process():
    from graphc.backends.llvm.worker import WorkQueue
    queue = WorkQueue(500)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:                          # the fork takes parts as the parent does, at the same time
        taken = []
        while (part := queue.take()) is not None:
            taken.append(part)
        os.write(write_end, ",".join(map(str, taken)).encode())
        os._exit(0)
    os.close(write_end)
    mine = []
    while (part := queue.take()) is not None:
        mine.append(part)
    with os.fdopen(read_end, "rb") as answer:
        theirs = [int(part) for part in answer.read().decode().split(",") if part]
    os.waitpid(child, 0)
    queue.close()
    assert sorted(mine + theirs) == list(range(500))
