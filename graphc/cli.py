"""The ``graphc`` command.

    graphc ops        list every registered primitive op
    graphc dump       trace a model class from a Python file and print or draw its graph
    graphc cache      show or empty the compile cache
    graphc devices    list the OpenCL devices and whether graphc's test kernel builds on each

Each subcommand is one function taking the parsed arguments and returning
the exit status, plus one ``add_parser`` call in ``build_parser`` that names
it with ``set_defaults(run=...)``.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import GraphcError
from .ir.text import format_attr
from .ops.registry import OPS, REQUIRED, Attr, OpDef


# -- graphc ops -----------------------------------------------------------------------

def run_ops(args: argparse.Namespace) -> int:
    """Print every primitive op, grouped by family."""
    print(ops_listing())
    return 0


def ops_listing() -> str:
    """Every primitive under its family's heading, sorted by family then name: its signature, then its doc line."""
    ops = sorted(OPS.values(), key=lambda op: (op.family, op.name))
    sections = []
    for family, members in itertools.groupby(ops, key=lambda op: op.family):
        lines = [family]
        for op in members:
            lines.append(f"  {op_signature(op)}")
            doc = _first_line(op.doc)
            if doc:
                lines.append(f"      {doc}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def op_signature(op: OpDef) -> str:
    """An op's inputs and attributes, e.g. ``rand(key) {shape: ints, dtype: dtype = f32}``."""
    text = f"{op.name}({', '.join(op.inputs)})"
    if op.attrs:
        text += " {" + ", ".join(_attr_signature(name, attr) for name, attr in op.attrs.items()) + "}"
    return text


def _attr_signature(name: str, attr: Attr) -> str:
    kind = f"{attr.kind}?" if attr.optional else attr.kind
    if attr.default is REQUIRED:
        return f"{name}: {kind}"
    return f"{name}: {kind} = {format_attr(attr.default)}"


def _first_line(doc: str) -> str:
    lines = doc.strip().splitlines()
    return lines[0] if lines else ""


# -- graphc dump ----------------------------------------------------------------------

# The output formats, and the -o extensions that choose them.
DUMP_FORMATS = ("text", "dot", "svg", "png")
FORMAT_OF_EXTENSION = {"txt": "text", "gir": "text", "text": "text", "dot": "dot", "svg": "svg", "png": "png"}


def run_dump(args: argparse.Namespace) -> int:
    """Trace ``FILE.py:Class`` on zero inputs of the given shapes and print or draw the graph.

    Every argument is checked before the model file is imported, so a mistake
    costs no time and gets a one-line ``graphc: error: ...``.
    """
    import graphc
    from .ir.viz import render
    from .passes.manager import PassManager

    kwargs = parse_kwargs(args.kwargs)
    specs = [parse_input_spec(spec) for spec in args.input]
    fmt = output_format(args.format, args.output)
    model = load_model(args.target, kwargs)
    if args.eval:
        model.eval()
    graph = trace_model(model, [graphc.zeros(*shape, dtype=dtype) for shape, dtype in specs])
    pipeline = Pipeline.for_graph(graph)
    manager = PassManager(pipeline.passes)
    if args.stats:
        manager.run(graph)
        print(f"the {pipeline.describe()}, because {pipeline.reason}")
        print(manager.stats_table())
        return 0
    if args.stage in BACKEND_STAGES:
        _emit(backend_code(manager.run(graph), args.stage, args.backend, fmt) + "\n", args.output)
        return 0
    if args.stage not in ("input", *pipeline.passes):
        raise GraphcError(f"dump: --stage {args.stage} is not a pass of the {pipeline.describe()} nor one of "
                          f"{', '.join(BACKEND_STAGES)}; this graph gets that pipeline because {pipeline.reason}")
    graph = manager.run_until(graph, args.stage)
    if fmt == "text":
        _emit(str(graph) + "\n", args.output)
    elif fmt == "dot":
        _emit(graph.to_dot(), args.output)
    else:
        render(graph, args.output, format=fmt)
    return 0


BACKEND_STAGES = ("kernels", "llvm", "asm", "opencl")
STAGES_OF_BACKEND = {"llvm": ("kernels", "llvm", "asm"), "opencl": ("kernels", "opencl"), "reference": ()}


def backend_code(graph, stage: str, backend: str, fmt: str) -> str:
    """What ``backend`` makes of the optimized ``graph``: its kernel IR, LLVM IR, assembly or OpenCL C."""
    from .backends.llvm import ProgramSource
    from .backends.llvm.threads import thread_count
    from .kernel import lower_program, print_program
    from .passes.memory import plan_memory
    if fmt != "text":
        raise GraphcError(f"dump: --stage {stage} is text; it has no {fmt} form")
    if stage not in STAGES_OF_BACKEND[backend]:
        shown = ", ".join(STAGES_OF_BACKEND[backend]) or "no code (it interprets the graph)"
        raise GraphcError(f"dump: the {backend} backend has no {stage} to show (it shows {shown}); "
                          f"use --backend " + ("opencl" if stage == "opencl" else "llvm"))
    program = lower_program(graph, plan_memory(graph))
    if stage == "kernels":
        return print_program(program)
    if stage == "opencl":
        from .backends.opencl import runtime
        from .backends.opencl.render import render_program
        return render_program(program, runtime().limits).text
    source = ProgramSource(program, thread_count())
    return source.optimized_ir() if stage == "llvm" else source.assembly()


def parse_kwargs(text: str | None) -> dict:
    """``--kwargs``: a JSON object of constructor keyword arguments."""
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as error:
        raise GraphcError(f"dump: --kwargs {text!r} is not JSON ({error.msg} at column {error.colno}); write "
                          f"an object such as '{{\"num_classes\": 10}}'") from None
    if not isinstance(kwargs, dict):
        raise GraphcError(f"dump: --kwargs must be a JSON object of keyword arguments such as "
                          f"'{{\"num_classes\": 10}}', not a JSON {type(kwargs).__name__}")
    return kwargs


def output_format(format: str | None, output: str | None) -> str:
    """The format to write (``--format``, else -o's extension, else text), after checking -o's folder."""
    if output is not None:
        target = Path(output)
        if target.is_dir():
            raise GraphcError(f"dump: -o {output} is a folder; give a file name such as {target / 'graph.svg'}")
        if not target.parent.is_dir():
            raise GraphcError(f"dump: -o {output}: the folder {target.parent} does not exist")
    if format is not None:
        fmt = format
    elif output is None:
        fmt = "text"
    else:
        extension = Path(output).suffix.lstrip(".").lower()
        if extension not in FORMAT_OF_EXTENSION:
            raise GraphcError(f"dump: cannot tell the format from -o {output}; give it one of the extensions "
                              f"{', '.join('.' + e for e in FORMAT_OF_EXTENSION)} or pass --format")
        fmt = FORMAT_OF_EXTENSION[extension]
    if fmt in ("svg", "png") and output is None:
        raise GraphcError(f"dump: --format {fmt} writes a picture file; give its name with -o FILE.{fmt}")
    return fmt


def _emit(text: str, output: str | None) -> None:
    if not output:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text)
    except OSError as error:
        raise GraphcError(f"dump: cannot write {output}: {error.strerror or error}") from None


def load_model(target: str, kwargs: dict):
    """Instantiate ``path/to/file.py:ClassName`` with ``kwargs``."""
    from .frontend.nn.module import Module
    path, sep, class_name = target.rpartition(":")
    if not sep or not path or not class_name:
        raise GraphcError(f"dump: expected FILE.py:ClassName, got {target!r}")
    file = Path(path)
    if not file.is_file():
        raise GraphcError(f"dump: no such file {path}")
    cls = getattr(_import_file(file), class_name, None)
    if cls is None:
        raise GraphcError(f"dump: {path} defines no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise GraphcError(f"dump: {class_name} in {path} is {_describe(cls)}, not a subclass of graphc.nn.Module")
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as error:
        raise GraphcError(f"dump: {class_name}{inspect.signature(cls)} cannot take --kwargs {json.dumps(kwargs)}: "
                          f"{error}") from None
    return cls(**kwargs)


def _import_file(file: Path):
    sys.path.insert(0, str(file.resolve().parent))      # so the file's own sibling imports work
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None:
        raise GraphcError(f"dump: {file} is not a Python file (expected FILE.py:ClassName)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:       # the user's file is at fault; its own traceback is one `python FILE` away
        raise GraphcError(f"dump: importing {file} failed with {type(error).__name__}: {error} "
                          f"(run `python {file}` to see where)") from None
    return module


def _describe(value) -> str:
    if isinstance(value, type):
        return f"the class {value.__name__}"
    return f"a {type(value).__name__}"


def parse_input_spec(spec: str):
    """``4x3x32x32`` (float32) or ``i64:4`` → (shape, dtype)."""
    from .frontend.dtypes import as_dtype
    dtype_name, _, dims = spec.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        dtype = as_dtype(dtype_name or "float32")
    except (ValueError, TypeError):
        raise GraphcError(f"dump: --input {spec!r} is not a shape like 4x3x32x32 or i64:4") from None
    if any(size < 0 for size in shape):
        raise GraphcError(f"dump: --input {spec!r} has a negative size; sizes are 0 or more")
    return shape, dtype


def trace_model(model, inputs: list):
    """The model's graph traced on ``inputs``; an error says which shapes the model was traced on."""
    import graphc
    try:
        return graphc.trace(model, *inputs)
    except GraphcError as error:
        shapes = ", ".join(str(x._type) for x in inputs)
        raise type(error)(f"tracing {type(model).__name__} on {shapes}: {error}") from None


@dataclass(frozen=True)
class Pipeline:
    """The passes graphc.compile would run on a graph, and why those."""
    training: bool
    passes: list[str]
    reason: str

    @classmethod
    def for_graph(cls, graph) -> "Pipeline":
        from .passes.manager import default_pipeline, is_training_graph
        training = is_training_graph(graph)
        if training:
            reason = (f"the graph writes {len(graph.writes)} state tensor(s) back, e.g. "
                      f"{graph.writes[0][0].name} (buffers a module updates in train mode, as BatchNorm its running "
                      "statistics); "
                      "add --eval for the inference pipeline")
        else:
            reason = "the graph writes no state back"
        return cls(training, default_pipeline(training=training), reason)

    def describe(self) -> str:
        kind = "training" if self.training else "inference"
        return f"{kind} pipeline ({', '.join(self.passes)})"


# -- the parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subparser per subcommand, each naming its function as ``run``."""
    parser = argparse.ArgumentParser(prog="graphc", description="graphc: a graph-compiling deep-learning framework")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    commands.add_parser("ops", help="list the registered primitive ops",
                        description="List every registered primitive op, sorted by family and name."
                        ).set_defaults(run=run_ops)
    dump = commands.add_parser("dump", help="trace a model class and print or draw its graph",
                               description="Import FILE.py, instantiate ClassName, trace it on zero inputs "
                                           "of the given shapes and print or draw the graph.")
    dump.add_argument("target", metavar="FILE.py:ClassName")
    dump.add_argument("--input", action="append", required=True, metavar="SHAPE",
                      help="an input shape such as 4x3x32x32 (float32) or i64:4; repeat for more inputs")
    dump.add_argument("--kwargs", help="constructor keyword arguments as JSON, e.g. '{\"num_classes\": 10}'")
    dump.add_argument("--eval", action="store_true", help="trace in eval mode (the inference graph)")
    dump.add_argument("--format", choices=DUMP_FORMATS,
                      help="output format (default: from -o's extension, else text)")
    dump.add_argument("--stage", default="input", metavar="PASS",
                      help="show the graph after this pass of the compile pipeline (default: input, as traced), "
                           "or what the backend makes of the optimized graph: kernels (kernel IR), llvm "
                           "(optimized LLVM IR), asm, or opencl (OpenCL C, with --backend opencl)")
    dump.add_argument("--backend", default="llvm", choices=("llvm", "opencl", "reference"),
                      help="the backend whose code --stage kernels|llvm|asm|opencl shows (default: llvm)")
    dump.add_argument("--stats", action="store_true",
                      help="print which pipeline the graph gets and why, then node, kernel and byte counts "
                           "before and after each pass, instead of a graph")
    dump.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    dump.set_defaults(run=run_dump)
    cache = commands.add_parser("cache", help="show or empty the compile cache",
                                description="The compiled steps and object code graphc keeps on disk "
                                            "(GRAPHC_CACHE_DIR; at most GRAPHC_CACHE_MAX_MB megabytes): "
                                            "info lists the entries with their sizes and hits.")
    cache.add_argument("action", choices=("info", "clear"))
    cache.set_defaults(run=run_cache)
    commands.add_parser("devices", help="list the OpenCL devices graphc can run on",
                        description="List every OpenCL platform's devices (type, compute units, memory) and "
                                    "whether graphc's test kernel builds and runs on each; the backend runs on "
                                    "the first that works, or on the one GRAPHC_OPENCL_DEVICE names (its number, "
                                    "or part of its name).").set_defaults(run=run_devices)
    return parser


def run_devices(args: argparse.Namespace) -> int:
    print(devices_listing())
    return 0


def devices_listing() -> str:
    """One block per OpenCL device, marking the one the opencl backend would use."""
    from .backends.opencl import devices
    from .ir.types import format_bytes
    found = devices.list_devices()
    if not found:
        return f"no OpenCL device found. {devices.INSTALL_HINT}"
    try:
        chosen = devices.choose_device()[0].index
    except GraphcError as err:
        chosen, problem = None, str(err)
    lines = []
    for d in found:
        mark = "*" if d.index == chosen else " "
        lines.append(f"{mark} {d.index}: {d.name}  [{d.platform}, driver {d.driver}]")
        lines.append(f"     {d.type}, {d.compute_units} compute units, {format_bytes(d.memory_bytes)} memory, "
                     f"work-groups up to {d.max_work_group_size}")
        lines.append("     " + ("the test kernel builds and runs" if d.usable else d.problem))
    if chosen is None:
        lines.append(f"graphc cannot use any of them: {problem}")
    else:
        lines.append(f"* the device graphc uses ({devices.ENVIRONMENT_VARIABLE} chooses another: a number "
                     f"or part of a name)")
    return "\n".join(lines)


def run_cache(args: argparse.Namespace) -> int:
    from .backends import cache
    if args.action == "clear":
        print(f"removed {cache.clear()} entries from {cache.cache_dir()}")
    else:
        print(cache.info())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``graphc`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except GraphcError as err:
        print(f"graphc: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
