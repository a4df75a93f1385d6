"""The ``graphc`` command.

    graphc ops        list every registered primitive op
    graphc dump       trace a model class from a Python file and print or draw its graph

Each subcommand is one function taking the parsed arguments and returning
the exit status, plus one ``add_parser`` call in ``build_parser`` that names
it with ``set_defaults(run=...)``.
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
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

def run_dump(args: argparse.Namespace) -> int:
    """Trace ``FILE.py:Class`` on zero inputs of the given shapes and print or draw the graph."""
    import graphc
    from .ir.viz import render
    from .passes.manager import PassManager, default_pipeline, is_training_graph

    model = load_model(args.target, json.loads(args.kwargs) if args.kwargs else {})
    if args.eval:
        model.eval()
    inputs = [graphc.zeros(*shape, dtype=dtype) for shape, dtype in map(parse_input_spec, args.input)]
    graph = graphc.trace(model, *inputs)
    manager = PassManager(default_pipeline(training=is_training_graph(graph)))
    if args.stats:
        manager.run(graph)
        print(manager.stats_table())
        return 0
    graph = manager.run_until(graph, args.stage)
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output else "text")
    fmt = {"gir": "text", "txt": "text"}.get(fmt, fmt)
    if fmt == "text":
        _emit(str(graph) + "\n", args.output)
    elif fmt == "dot":
        _emit(graph.to_dot(), args.output)
    else:
        if not args.output:
            raise GraphcError(f"--format {fmt} writes a picture file; give its name with -o FILE.{fmt}")
        render(graph, args.output, format=fmt)
    return 0


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


def load_model(target: str, kwargs: dict):
    """Instantiate ``path/to/file.py:ClassName`` with ``kwargs``."""
    path, sep, class_name = target.rpartition(":")
    if not sep or not path or not class_name:
        raise GraphcError(f"dump: expected FILE.py:ClassName, got {target!r}")
    file = Path(path)
    if not file.is_file():
        raise GraphcError(f"dump: no such file {path}")
    sys.path.insert(0, str(file.resolve().parent))      # so the file's own sibling imports work
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise GraphcError(f"dump: {path} defines no {class_name}")
    return cls(**kwargs)


def parse_input_spec(spec: str):
    """``4x3x32x32`` (float32) or ``i64:4`` → (shape, dtype)."""
    from .frontend.dtypes import as_dtype
    dtype_name, _, dims = spec.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        return shape, as_dtype(dtype_name or "float32")
    except ValueError:
        raise GraphcError(f"dump: --input {spec!r} is not a shape like 4x3x32x32 or i64:4") from None


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
    dump.add_argument("--format", choices=["text", "dot", "svg", "png"],
                      help="output format (default: from -o's extension, else text)")
    dump.add_argument("--stage", default="input", metavar="PASS",
                      help="show the graph after this pass of the compile pipeline (default: input, as traced)")
    dump.add_argument("--stats", action="store_true",
                      help="print node, kernel and byte counts before and after each pass instead of a graph")
    dump.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    dump.set_defaults(run=run_dump)
    return parser


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
