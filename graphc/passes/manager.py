"""The pass manager: run a pipeline of graph → graph passes, checking and recording each.

    manager = PassManager(default_pipeline(training=False), dump_dir="dumps")
    optimized = manager.run(graph)
    print(manager.stats_table())

Every pass is a function ``run(graph, options) -> Graph`` registered by name
with ``register_pass``.  After each pass the manager verifies the graph (and
that the pass kept the graph's signature), so a broken rewrite is reported
with the name of the pass that made it, not as a crash in a backend later.
Each pass's effect is recorded as a ``PassRecord`` (node, kernel and byte
counts, time), and the graph can be dumped after every pass as text IR and
Graphviz DOT, numbered in pipeline order::

    00-input.gir  00-input.dot  01-simplify.gir  01-simplify.dot  02-fusion.gir ...

Dumps are asked for with ``dump_dir=``/``dump=`` or, without touching code,
with the environment: ``GRAPHC_DUMP=all`` (or a comma-separated list of
stages, e.g. ``GRAPHC_DUMP=simplify,fusion``; ``input`` names the graph before
any pass) writes into ``GRAPHC_DUMP_DIR`` (default ``./graphc_dump``).
``dump_subdir`` puts one graph's files in a folder of their own there:
``graphc.compile`` gives every graph it compiles one named after the graph
(``graphc_dump/step/``; ``step-2/`` for the next graph of that name), so a
script compiling a training step and an evaluation step keeps both apart.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import GraphcError, VerifyError
from ..ir.types import format_bytes  # noqa: F401  (re-exported: the passes' reports use it)
from ..ir.graph import Graph, verify
from ..ir.text import print_graph
from ..ir.viz import to_dot
from ..timing import phase

# The options given to one pass: PassManager(options={"fusion": {"max_group_size": 32}})
# hands {"max_group_size": 32} to the fusion pass, and an empty mapping to the others.
PassOptions = Mapping[str, Any]

# The passes that live in graphc.passes and register themselves when their module is imported.
BUILTIN_PASS_MODULES = ("simplify", "bn_fold", "gemm", "fusion", "remat", "schedule")

INPUT_STAGE = "input"
DEFAULT_DUMP_DIR = "graphc_dump"


@dataclass(frozen=True)
class Pass:
    """A named graph → graph transformation."""
    name: str
    run: Callable[[Graph, PassOptions], Graph]
    doc: str


PASSES: dict[str, Pass] = {}


def register_pass(name: str, run: Callable[[Graph, PassOptions], Graph], doc: str | None = None) -> Pass:
    """Make ``run`` available to pipelines as ``name``; ``doc`` defaults to its docstring's first line."""
    if name in PASSES:
        raise ValueError(f"pass {name} is registered twice")
    if doc is None:
        doc = (run.__doc__ or "").strip().split("\n")[0]
    PASSES[name] = Pass(name, run, doc)
    return PASSES[name]


def get_pass(name: str) -> Pass:
    """The pass registered as ``name``, importing ``graphc.passes.<name>`` first if need be.

    Passes register themselves on import.  Looking them up only when asked
    lets the passes import this module without a cycle, and lets a pipeline
    list a pass that it never reaches without importing that pass.
    """
    check_pass_name(name)
    if name not in PASSES:
        importlib.import_module(f"{__package__}.{name}")
    return PASSES[name]


def check_pass_name(name: str) -> None:
    """Raise GraphcError unless ``name`` is a registered or a built-in pass."""
    if name not in PASSES and name not in BUILTIN_PASS_MODULES:
        known = ", ".join(sorted(set(PASSES) | set(BUILTIN_PASS_MODULES)))
        raise GraphcError(f"unknown pass {name!r}; the passes are {known}")


def is_training_graph(graph: Graph) -> bool:
    """A training step writes state back (parameters, running stats); an inference graph writes nothing."""
    return bool(graph.writes)


def default_pipeline(training: bool) -> list[str]:
    """The passes ``graphc.compile`` runs.

    Convolutions become matrix products over unfolded windows, and transposed
    products products of transposes (gemm); the simplify after it merges the
    reshapes and transposes that leaves.  Inference graphs
    first fold BatchNorm into the preceding convolution (which needs the conv2d
    still whole); the second simplify cleans up the reshapes of both before
    fusion groups what remains.  Training steps then compute cheap forward
    kernels again for the backward pass where that lowers the peak of live
    bytes (remat), and are scheduled so that gradients and the activations
    they need die early; an inference graph's forward order already is as
    tight (on the example models scheduling changed nothing), so it is left
    as fusion makes it.
    """
    if training:
        return ["gemm", "simplify", "fusion", "remat", "schedule"]
    return ["simplify", "bn_fold", "gemm", "simplify", "fusion"]


# -- measuring graphs ---------------------------------------------------------------

def intermediate_bytes(graph: Graph) -> int:
    """The bytes of every value the graph computes (inputs are the caller's, so not counted)."""
    return sum(node.type.nbytes for node in graph.nodes)


def kernel_count(graph: Graph) -> int:
    """How many kernels running the graph launches, counted as the fusion pass counts them."""
    from .fusion import count_kernels      # here, not at the top: fusion imports this module
    return count_kernels(graph)


@dataclass(frozen=True)
class PassRecord:
    """What one pass did to the graph."""
    name: str
    nodes_before: int
    nodes_after: int
    kernels_after: int
    bytes_before: int
    bytes_after: int
    seconds: float


# -- dumping ----------------------------------------------------------------------

# What a backend dumps after the passes: the kernel IR, its LLVM IR, the machine code.
BACKEND_STAGES = ("kernels", "llvm", "asm")


@dataclass(frozen=True)
class DumpSettings:
    """Where dumps go and which stages (pass names, or "input") are written; None means all."""
    directory: Path
    stages: frozenset[str] | None

    def wants(self, stage: str) -> bool:
        return self.stages is None or stage in self.stages

    def write(self, index: int, stage: str, graph: Graph) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self.directory / f"{index:02d}-{stage}"
        stem.with_suffix(".gir").write_text(print_graph(graph) + "\n")
        stem.with_suffix(".dot").write_text(to_dot(graph))


def dump_settings(dump_dir: str | Path | None, dump: str | None) -> DumpSettings | None:
    """Resolve the dump arguments against GRAPHC_DUMP / GRAPHC_DUMP_DIR; None when nothing is dumped.

    An argument wins over its environment variable.  A directory alone dumps
    every stage; a stage list alone dumps into GRAPHC_DUMP_DIR or ./graphc_dump.
    """
    dump = dump if dump is not None else os.environ.get("GRAPHC_DUMP") or None
    if dump is None and dump_dir is None:
        return None
    directory = Path(dump_dir if dump_dir is not None else os.environ.get("GRAPHC_DUMP_DIR", DEFAULT_DUMP_DIR))
    if dump is None or dump.strip() == "all":
        return DumpSettings(directory, None)
    stages = frozenset(s.strip() for s in dump.split(",") if s.strip())
    for stage in stages - {INPUT_STAGE, *BACKEND_STAGES}:
        check_pass_name(stage)          # a misspelt stage should fail loudly, not dump nothing
    return DumpSettings(directory, stages)


# -- the manager --------------------------------------------------------------------

class PassManager:
    """Runs named passes in order, verifying, recording and optionally dumping after each.

    Pass names are checked when the manager is made; each pass is looked up
    only when the pipeline reaches it.
    """

    def __init__(self, pipeline: list[str], options: dict[str, dict] | None = None,
                 dump_dir: str | Path | None = None, dump: str | None = None, dump_subdir: str | None = None):
        for name in pipeline:
            check_pass_name(name)
        self.pipeline = list(pipeline)
        self.options = dict(options or {})
        stray = set(self.options) - set(pipeline)
        if stray:
            raise GraphcError(f"options given for {', '.join(sorted(stray))}, which the pipeline "
                              f"{pipeline} does not run")
        self.dumps = dump_settings(dump_dir, dump)
        if self.dumps is not None and dump_subdir is not None:
            self.dumps = DumpSettings(self.dumps.directory / dump_subdir, self.dumps.stages)
        self.records: list[PassRecord] = []

    def run(self, graph: Graph) -> Graph:
        """Run every pass of the pipeline over ``graph``; returns the final graph."""
        return self._run_passes(graph, self.pipeline)

    def run_until(self, graph: Graph, stage: str) -> Graph:
        """The graph after the first pass named ``stage`` (``"input"``: the graph as given)."""
        if stage == INPUT_STAGE:
            return self._run_passes(graph, [])
        if stage not in self.pipeline:
            stages = ", ".join([INPUT_STAGE, *self.pipeline])
            raise GraphcError(f"unknown stage {stage!r}; the stages are {stages}")
        return self._run_passes(graph, self.pipeline[:self.pipeline.index(stage) + 1])

    def _run_passes(self, graph: Graph, names: list[str]) -> Graph:
        self.records = []
        # The nodes whose types are checked: a pass keeps most of its input's nodes as they are.
        typed: dict = {}
        with phase("verifying the graph"):
            _verify_stage(graph, "the graph given to the pass manager is invalid", typed)
        self._dump(0, INPUT_STAGE, graph)
        for index, name in enumerate(names, start=1):
            graph = self._run_one(get_pass(name), graph, typed)
            self._dump(index, name, graph)
        return graph

    def _run_one(self, pass_: Pass, graph: Graph, typed: dict) -> Graph:
        with phase(f"pass {pass_.name}"):
            start = time.perf_counter()
            result = pass_.run(graph, self.options.get(pass_.name, {}))
            seconds = time.perf_counter() - start
            with phase("verifying the graph"):
                _verify_stage(result, f"pass {pass_.name} produced an invalid graph", typed)
                _check_signature_kept(graph, result, pass_.name)
            self.records.append(PassRecord(
                name=pass_.name, nodes_before=len(graph.nodes), nodes_after=len(result.nodes),
                kernels_after=kernel_count(result), bytes_before=intermediate_bytes(graph),
                bytes_after=intermediate_bytes(result), seconds=seconds))
        return result

    def _dump(self, index: int, stage: str, graph: Graph) -> None:
        if self.dumps is not None and self.dumps.wants(stage):
            self.dumps.write(index, stage, graph)

    def stats_table(self) -> str:
        """The records of the last run as an aligned text table, one row per pass."""
        header = ("pass", "nodes before", "nodes after", "kernels", "bytes before", "bytes after", "time (ms)")
        rows = [(r.name, str(r.nodes_before), str(r.nodes_after), str(r.kernels_after),
                 format_bytes(r.bytes_before), format_bytes(r.bytes_after), f"{r.seconds * 1e3:.2f}")
                for r in self.records]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        # The pass name reads left to right; the numbers line up on their last digit.
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                 for row in (header, *rows)]
        return "\n".join(lines)


def run_until(graph: Graph, stage: str, pipeline: list[str] | None = None) -> Graph:
    """The graph after ``stage`` of ``pipeline`` (by default the one ``graphc.compile`` would run)."""
    if pipeline is None:
        pipeline = default_pipeline(training=is_training_graph(graph))
    return PassManager(pipeline).run_until(graph, stage)


# -- checks ---------------------------------------------------------------------------

def _verify_stage(graph: Graph, context: str, typed: dict) -> None:
    try:
        verify(graph, typed)
    except VerifyError as err:
        raise VerifyError(f"{context}: {err}") from None


def _check_signature_kept(before: Graph, after: Graph, pass_name: str) -> None:
    """A pass may change how values are computed, never what the graph takes, returns or writes."""
    def signature(graph: Graph) -> tuple:
        return (tuple((n.name, n.type, n.tag) for n in graph.inputs),
                tuple(n.type for n in graph.outputs),
                tuple(target.name for target, _ in graph.writes))

    if signature(before) != signature(after):
        raise VerifyError(f"pass {pass_name} changed the graph's signature (its inputs, the types of its "
                          f"outputs or the state it writes back); a pass may only change how values are computed")
