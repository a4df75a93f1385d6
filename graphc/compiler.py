"""``graphc.compile``: trace a function once per input signature, build an executable, run it.

    @graphc.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

On a call whose signature (tensor shapes and dtypes, other arguments' values)
has no cached graph — or whose cached graphs' guards (modules' train/eval
flags, the shape of optimizer state) no longer hold — the function is traced
with symbolic inputs into one Graph: forward, backward and update.  The graph
reads parameters, buffers and optimizer state as inputs and writes their new
values back, so after each call ``model.parameters()`` and ``opt.state`` hold
the updated values, exactly as after the eager step.

The traced graph then goes through the pass pipeline and the backend, unless
the on-disk compile cache (``graphc.backends.cache``) holds the step: keyed by
the traced graph's text, the pipeline and the backend's identity (target CPU
and features, versions), it gives the backend's executable back without any
pass, lowering or LLVM work.  Every compile records where its time went
(``graphc.timing``; ``compiled.compile_times()``).
"""
from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import json
import warnings
from collections import Counter, namedtuple
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .backends import cache
from .backends.profile import Profile
from .backends.registry import get_backend
from .errors import GraphcError, OutOfRangeError, TraceError
from .frontend.naming import referenced_objects, tensor_names
from .frontend.tensor import Tensor
from .frontend.trace import InputCheck, SideEffect, TraceContext, identifier, record
from .ir.graph import Graph
from .ir.text import print_graph
from .passes.fusion import count_kernels
from .passes.manager import BACKEND_STAGES, PassManager, default_pipeline, dump_settings, is_training_graph
from .passes.memory import MemoryPlan, plan_memory
from .residency import ResidentExecutable, StateSlot
from .timing import CompileTimes, phase, recording, report

_TENSOR_VALUE = Tensor._value.fget

CacheInfo = namedtuple("CacheInfo", ["compiles", "hits", "signatures"])
CompileStats = namedtuple("CompileStats", ["primitive_nodes", "kernels", "passes"])

# The layout of a compiled step in the compile cache; a change makes older entries misses.
STEP_FORMAT = 1


@dataclass
class Optimized:
    """What the pass pipeline made of a traced graph."""
    graph: Graph                             # after the pass pipeline: what the backend runs
    pass_records: list                       # the PassManager's record of each pass
    plan: MemoryPlan                         # where each intermediate lives while the step runs


@dataclass
class CompiledStep:
    """One traced graph, its executable, and how its inputs bind to the caller's world."""
    traced: Graph                            # as traced: primitives only
    # The optimized graph: made while compiling, or (a step loaded from the compile cache) only
    # when someone asks for it.
    optimize: Callable[[], Optimized]
    times: CompileTimes                      # where the compile's time went
    executable: Any
    data_positions: dict[str, int]           # data input name -> index into the flattened call arguments
    bound: dict[str, Tensor]                 # param/buffer/state input name -> the live tensor it reads
    writes: list[tuple[str, Tensor]]         # write-back target name -> the live tensor it updates
    guards: list[tuple[Callable[[], object], object]]
    prepare_hooks: list[Callable[[], None]]
    input_checks: list[InputCheck]           # run on the call's data before every run
    # Changes the trace made outside the graph (an optimizer's new state), undone when tracing
    # ended; made again once the first run succeeds, so a failed first run changes nothing.
    pending_effects: list[SideEffect]
    result_structure: Any                    # the function's return value with tensors as output indices
    # Outputs that are graph inputs, or returned twice, are copied so that a returned tensor never
    # aliases the caller's argument, live state the next step overwrites, or another output.
    copy_outputs: list[bool]
    _optimized: Optimized | None = field(default=None, repr=False)

    @property
    def optimized(self) -> Optimized:
        if self._optimized is None:
            self._optimized = self.optimize()
        return self._optimized

    @property
    def graph(self) -> Graph:
        return self.optimized.graph

    def guards_hold(self) -> bool:
        for read, expected in self.guards:
            if read() != expected:
                return False
        return True

    @functools.cached_property
    def _input_sources(self) -> list[tuple[int | None, Tensor | None]]:
        """Where each graph input's value comes from, in input order (the passes keep the inputs:
        names, order, types): the position of the call's argument, or the live tensor it reads."""
        return [(self.data_positions[node.name], None) if node.name in self.data_positions
                else (None, self.bound[node.name]) for node in self.traced.inputs]

    def input_arrays(self, args: Sequence) -> list[np.ndarray]:
        """The graph's inputs in order: the call's tensors and the live state they read."""
        for hook in self.prepare_hooks:
            hook()
        if len(args) == self._arguments_read:
            return list(map(_TENSOR_VALUE, args))          # no Python loop
        return [args[position]._value if tensor is None else tensor._value
                for position, tensor in self._input_sources]

    @functools.cached_property
    def _arguments_read(self) -> int | None:
        """Where the graph's inputs are the call's arguments' tensors in order (a function of its
        arguments alone, not of any model state), how many: a call with that many arguments has
        no others, and its inputs are its arguments' values.  None where the graph reads others."""
        positions = [position for position, _ in self._input_sources]
        return len(positions) if positions == list(range(len(positions))) else None

    def run_resident(self, args: list):
        """Run on a backend that keeps state on its device: the tensors hand it their device
        copies (graphc.residency) and take back where their values now live."""
        for hook in self.prepare_hooks:
            hook()
        data = {name: args[position]._value for name, position in self.data_positions.items()}
        slots = {name: StateSlot(tensor._array, tensor._device) for name, tensor in self.bound.items()}
        try:
            return self.executable.run_resident(data, slots)
        finally:
            for name, tensor in self.bound.items():
                tensor._device = slots[name].device

    @functools.cached_property
    def copied_outputs(self) -> bool:
        return any(self.copy_outputs)

    @functools.cached_property
    def resident(self) -> bool:
        """Whether the executable keeps state on its device (asked once: a Protocol's isinstance
        check costs tens of microseconds, as much as the rest of a small step's call)."""
        return isinstance(self.executable, ResidentExecutable)

    @functools.cached_property
    def _returns_only(self) -> bool:
        """Whether a call does nothing but compute its one returned tensor (no state written or kept
        on a device, no checks or hooks, a result that is no input): a compiled function of its
        arguments, or a model's inference, whose calls take ``call_returning``."""
        return (not self.resident and not self.writes and not self.input_checks and not self.prepare_hooks
                and type(self.result_structure) is _Output and not self.copied_outputs)

    @functools.cached_property
    def call(self) -> Callable[[Sequence], Any]:
        """What a call that finds this step in the cache runs: ``run``, or ``call_returning``."""
        return self.call_returning if self._returns_only else self.run

    def call_returning(self, args: Sequence) -> Tensor:
        """``run`` for a step that only returns a tensor: its inputs straight to
        ``Executable.output_of``.  Each line here is paid on every call; the whole of a small
        product's call is about 2 us of Python."""
        if self.pending_effects:
            return self.run(args)
        # input_arrays' shortcut inline (a step returning only has no prepare hooks): a call fewer is
        # 0.15 of this path's 1.9 us, and measured 0.92-1.03x -> 1.00-1.13x OpenBLAS on 32x6272x1.
        arrays = list(map(_TENSOR_VALUE, args)) if len(args) == self._arguments_read else self.input_arrays(args)
        try:
            return Tensor._wrap(self.executable.output_of(arrays, self.result_structure.index))
        except IndexError as error:      # an index out of range in the graph
            raise _out_of_range(error) from None

    def run(self, args: Sequence) -> Any:
        for check in self.input_checks:
            check.check(args[self.data_positions[check.input_name]]._value)
        try:
            if self.resident:
                result = self.run_resident(args)
            else:
                result = self.executable.run(self.input_arrays(args), in_place=True)
        except IndexError as error:      # an index the checks could not see, out of range in the graph
            raise _out_of_range(error) from None
        # Every output is computed before any state changes: a failed step leaves the model as it was.
        for name, tensor in self.writes:
            if name in result.writes and result.writes[name] is not tensor._value:   # not updated in place
                np.copyto(tensor._value, result.writes[name])
        if self.pending_effects:
            for effect in self.pending_effects:
                effect.redo()
            self.pending_effects.clear()
        outputs = result.outputs
        if self.copied_outputs:
            outputs = [a.copy() if fresh else a for a, fresh in zip(outputs, self.copy_outputs)]
        if type(self.result_structure) is _Output:           # one tensor returned
            return Tensor._wrap(outputs[self.result_structure.index])
        return _rebuild(self.result_structure, [Tensor._wrap(a) for a in outputs])


class CompiledFunction:
    """A function (or module) compiled per input signature; call it like the original."""

    def __init__(self, fn: Callable, backend: str = "llvm", dump_dir: str | None = None,
                 fold_batchnorm: bool = True):
        self.fn = fn
        self.backend = backend
        self.dump_dir = dump_dir
        self.fold_batchnorm = fold_batchnorm
        get_backend(backend)                 # fail now on an unknown backend
        self._cache: dict[tuple, list[CompiledStep]] = {}
        # Each executable built, by the text of the graph traced: a step traced again into the same
        # graph (an optimizer's first step made its state; the next one reads it) runs the same program.
        self._executables: dict[str, tuple[Any, list[bool]]] = {}
        self._compiles = 0
        self._hits = 0
        self._times: list[CompileTimes] = []
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args, **kwargs):
        if kwargs:
            args = self._positional(args, kwargs)
        step = self._cached(_signature(args))
        if step is not None:
            self._hits += 1
            return step.call(args)
        step, _ = self._lookup(args)
        with recording(step.times), phase("first run"):
            result = step.run(args)
        report(step.times)
        return result

    def _positional(self, args: tuple, kwargs: dict) -> tuple:
        """Keyword arguments moved into their positions, so one call has one signature."""
        from .frontend.nn.module import Module
        target = self.fn.forward if isinstance(self.fn, Module) else self.fn
        bound = inspect.signature(target).bind(*args, **kwargs)
        if bound.kwargs:
            raise TypeError(f"compiled {getattr(self.fn, '__name__', 'function')}: keyword-only arguments "
                            f"({', '.join(bound.kwargs)}) are not supported; pass them by position")
        return bound.args

    def graph(self, *args, stage: str = "final") -> Graph:
        """The graph this function runs for ``args``'s signature (tracing it if need be).

        ``stage="traced"`` gives the graph as traced, before any pass.
        """
        step = self._lookup(args)[0]
        return step.traced if stage == "traced" else step.graph

    def stats(self, *args) -> CompileStats:
        """Primitive nodes as traced, kernels after fusion, and the per-pass records."""
        step = self._lookup(args)[0]
        return CompileStats(len(step.traced.nodes), count_kernels(step.graph), step.optimized.pass_records)

    def compile_times(self) -> list[CompileTimes]:
        """Where each compile so far spent its time, in the order they ran: tracing, each pass,
        lowering, LLVM, loading, the first run (``GRAPHC_TIMINGS=1`` prints each as it ends).
        A training step compiles twice: its second graph reads the optimizer state the first made."""
        return list(self._times)

    def memory_plan(self, *args) -> MemoryPlan:
        """How the compiled graph's intermediates are placed in one arena."""
        return self._lookup(args)[0].optimized.plan

    def profile(self, *args, runs: int = 3) -> Profile:
        """Time every kernel of the compiled graph on ``args`` (the best of ``runs`` runs each).

        The results are thrown away: profiling a training step does not update the model.
        """
        step = self._lookup(args)[0]
        return step.executable.profile(step.input_arrays(list(args)), runs)

    def kernels(self, *args, source: str | None = None) -> list:
        """The kernels the backend runs for ``args``'s signature, in order: kernel IR
        (``graphc.kernel.print_kernel`` prints one).  ``source="llvm"`` or ``"asm"`` returns
        the whole program's LLVM IR or assembly instead (LLVM backend)."""
        executable = self._lookup(args)[0].executable
        if source is None:
            return executable.kernels()
        files = executable.source.files({source})
        return [text for name, text in files.items() if name in ("llvm-optimized.ll", "asm.s")]

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._compiles, self._hits, len(self._cache))

    # -- tracing -------------------------------------------------------------------------
    def _cached(self, key: tuple) -> CompiledStep | None:
        """The step compiled for signature ``key`` whose guards hold, if any."""
        for step in self._cache.get(key, ()):
            if not step.guards or step.guards_hold():
                return step
        return None

    def _lookup(self, args) -> tuple[CompiledStep, bool]:
        key = _signature(args)
        step = self._cached(key)
        if step is not None:
            return step, True
        step = self._trace(args)
        self._cache.setdefault(key, []).append(step)
        self._times.append(step.times)
        self._compiles += 1
        return step, False

    def _trace(self, args) -> CompiledStep:
        from .frontend.nn.module import Module
        fn = self.fn
        name = identifier(getattr(fn, "__name__", type(fn).__name__))
        times = CompileTimes(name)
        with recording(times), _collector_paused():
            with phase("tracing"):
                objects = {"self": fn} if isinstance(fn, Module) else referenced_objects(fn)
                name_source = functools.partial(_strip_self_prefix, objects)
                ctx = TraceContext(name, name_source(), name_source)
                traced = record(fn, args, ctx)
            _warn_of_dropped_gradients(name, ctx.dropped_gradients(traced.graph))
            executable, copy_outputs, optimized = self._build(traced.graph, times)
        bound = {rec.input.name: rec.tensor for rec in ctx.lifted.values()}
        writes = [(target.name, bound[target.name]) for target, _ in traced.graph.writes]
        structure = _structure(traced.result, iter(range(len(traced.outputs))))
        return CompiledStep(traced.graph, lambda: self._optimize(traced.graph)[0], times, executable,
                            traced.data_positions, bound, writes, ctx.guards, ctx.prepare_hooks, ctx.input_checks,
                            ctx.side_effects, structure, copy_outputs, optimized)

    def _build(self, traced: Graph, times: CompileTimes) -> tuple[Any, list[bool], Optimized | None]:
        """The executable for ``traced`` (and which outputs to copy): loaded from the compile cache
        when it holds one, else compiled (and stored there) from the optimized graph, also returned."""
        backend = get_backend(self.backend)
        with phase("cache key"):
            text = print_graph(traced)
        if text in self._executables:
            times.cache = "hit"
            return (*self._executables[text], None)
        key = self._step_key(traced, text, backend)
        if key is not None:
            with phase("cache lookup"):
                loaded = _load_step(backend, traced, key)
            if loaded is not None:
                times.cache = "hit"
                self._executables[text] = loaded
                return (*loaded, None)
        optimized, dumps = self._optimize(traced)
        executable = backend.build_executable(optimized.graph, optimized.plan)
        _dump_backend_code(dumps, executable)
        copy_outputs = _outputs_to_copy(optimized.graph)
        if key is not None:
            times.cache = "miss"
            with phase("cache store"):
                header = json.dumps({"format": STEP_FORMAT, "copy_outputs": copy_outputs}).encode()
                cache.store("step", key, header + b"\n" + backend.save_executable(executable),
                            label=f"{traced.name} ({self.backend})")
        self._executables[text] = executable, copy_outputs
        return executable, copy_outputs, optimized

    def _optimize(self, traced: Graph) -> tuple[Optimized, Any]:
        """The pass pipeline and the memory plan for ``traced``, and the dump settings it wrote by."""
        manager = PassManager(self._pipeline(traced), dump_dir=self.dump_dir, dump_subdir=_dump_folder(traced.name))
        graph = manager.run(traced)
        with phase("memory planning"):
            plan = plan_memory(graph)
        return Optimized(graph, manager.records, plan), manager.dumps

    def _step_key(self, traced: Graph, text: str, backend) -> str | None:
        """The compile cache's key for ``traced`` compiled here, or None when the step is not cached:
        a backend that cannot store executables, dumps asked for (they come from compiling), the
        cache turned off."""
        if not hasattr(backend, "save_executable") or cache.cache_dir() is None \
                or dump_settings(self.dump_dir, None) is not None:
            return None
        with phase("cache key"):
            options = json.dumps({"format": STEP_FORMAT, "pipeline": self._pipeline(traced)})
            return cache.cache_key("graphc step", text, options, backend.cache_identity())

    def _pipeline(self, graph: Graph) -> list[str]:
        pipeline = default_pipeline(training=is_training_graph(graph))
        return [name for name in pipeline if name != "bn_fold" or self.fold_batchnorm]


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while compiling: tracing, the passes and rendering
    allocate millions of objects that all stay alive until the compile ends, and the collector,
    triggered by the count of allocations, walked them again and again to find nothing (a fifth
    of ResNet's tracing, passes and lowering).  What they leave behind is collected afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_step(backend, traced: Graph, key: str) -> tuple[Any, list[bool]] | None:
    """The executable and output copies stored under ``key``, or None.  An entry that cannot be
    read is reported and compiled again (the new entry replaces it): never a crash."""
    data = cache.load("step", key)
    if data is None:
        return None
    try:
        header_end = data.index(b"\n")
        header = json.loads(data[:header_end])
        if header["format"] != STEP_FORMAT:
            return None
        copy_outputs = [bool(flag) for flag in header["copy_outputs"]]
        if len(copy_outputs) != len(traced.outputs):
            raise ValueError("it returns another number of outputs")
        executable = backend.load_executable(traced, data[header_end + 1:])
    except (ValueError, KeyError, TypeError, GraphcError) as err:
        warnings.warn(f"graphc: the compile cache entry for {traced.name} ({key[:12]}) could not be read "
                      f"({err}); compiling again", RuntimeWarning, stacklevel=2)
        return None
    return None if executable is None else (executable, copy_outputs)


def _dump_backend_code(dumps, executable) -> None:
    """Write what the backend made of the graph (kernel IR, LLVM IR, assembly) beside the pass dumps."""
    source = getattr(executable, "source", None)
    if dumps is None or source is None:
        return
    stages = None if dumps.stages is None else dumps.stages & set(BACKEND_STAGES)
    if stages is not None and not stages:
        return
    dumps.directory.mkdir(parents=True, exist_ok=True)
    for name, text in source.files(stages).items():
        (dumps.directory / name).write_text(text + "\n")


# How many graphs of each name this process has compiled: each dumps into a folder of its own.
_compiled_names: Counter[str] = Counter()


def _dump_folder(graph_name: str) -> str:
    """``graph_name`` for the first graph of that name compiled, then ``graph_name-2``, ..."""
    _compiled_names[graph_name] += 1
    count = _compiled_names[graph_name]
    return graph_name if count == 1 else f"{graph_name}-{count}"


def _outputs_to_copy(graph: Graph) -> list[bool]:
    seen = set()
    flags = []
    for node in graph.outputs:
        flags.append(node.is_input or node in seen)
        seen.add(node)
    return flags


def _out_of_range(error: IndexError) -> IndexError:
    """An index out of range in a compiled graph as graphc's error (the backend's, where it made one)."""
    return error if isinstance(error, GraphcError) else OutOfRangeError(str(error))


def _warn_of_dropped_gradients(function: str, dropped: list[str]) -> None:
    if dropped:
        shown = ", ".join(dropped[:4]) + (f" and {len(dropped) - 4} more" if len(dropped) > 4 else "")
        warnings.warn(f"graphc.compile: {function} computes the gradients of {shown} with backward(), but "
                      f"nothing in it reads any (an optimizer's step()) and it does not return them; a "
                      f"compiled call does not update .grad, so they are lost. Call the optimizer's step() "
                      f"inside the compiled function, or return the gradients.", stacklevel=5)


def _strip_self_prefix(objects: dict) -> dict[int, str]:
    names = tensor_names(objects)
    return {k: v[len("self."):] if v.startswith("self.") else v for k, v in names.items()}


def _signature(args) -> tuple:
    key = []
    for value in args:
        if isinstance(value, Tensor):
            # The array's own shape and dtype: Tensor.shape and .dtype build a TensorType each,
            # which cost more than the rest of a small step's call.
            array = value._array
            if array is None:
                raise TraceError("a compiled function was called with a symbolic tensor; call it outside tracing")
            key.append((array.shape, array.dtype, value.requires_grad))
        elif isinstance(value, (int, float, bool, str, type(None))):
            key.append((type(value), value))
        else:
            raise TypeError(f"compiled functions take tensors and Python numbers/strings, not "
                            f"{type(value).__name__}")
    return tuple(key)


class _Output:
    """Marks where the i-th output tensor goes in a rebuilt result."""
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _structure(result, counter):
    if isinstance(result, Tensor):
        return _Output(next(counter))
    if isinstance(result, (list, tuple)):
        items = [_structure(r, counter) for r in result]
        return type(result)(items) if not hasattr(result, "_fields") else type(result)(*items)
    if isinstance(result, dict):
        return {k: _structure(v, counter) for k, v in result.items()}
    return result


def _rebuild(structure, outputs):
    if isinstance(structure, _Output):
        return outputs[structure.index]
    if isinstance(structure, (list, tuple)):
        items = [_rebuild(s, outputs) for s in structure]
        return type(structure)(items) if not hasattr(structure, "_fields") else type(structure)(*items)
    if isinstance(structure, dict):
        return {k: _rebuild(v, outputs) for k, v in structure.items()}
    return structure


def compile(fn: Callable | None = None, *, backend: str = "llvm", dump_dir: str | None = None,
            fold_batchnorm: bool = True):
    """Compile ``fn`` (a function or an nn.Module); usable as ``@graphc.compile``,
    ``@graphc.compile(backend="reference")`` or ``graphc.compile(model)``.

    ``backend`` is ``llvm`` (native CPU code, the default), ``opencl`` (OpenCL kernels on the device
    ``graphc devices`` lists first, or ``GRAPHC_OPENCL_DEVICE``; the model's state stays there
    between steps) or ``reference`` (numpy, op by op: the oracle the others are tested against).

    ``dump_dir`` writes the graph after every pass (text IR and DOT); ``GRAPHC_DUMP=all``
    does the same from the environment.  ``fold_batchnorm`` folds eval-mode
    BatchNorm into the preceding convolution (inference graphs only).
    """
    options = dict(backend=backend, dump_dir=dump_dir, fold_batchnorm=fold_batchnorm)
    if fn is None:
        return lambda f: CompiledFunction(f, **options)
    return CompiledFunction(fn, **options)
