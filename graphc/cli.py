"""The ``graphc`` command.

    graphc ops        list every registered primitive op

Each subcommand is one function taking the parsed arguments and returning
the exit status, plus one ``add_parser`` call in ``build_parser`` that names
it with ``set_defaults(run=...)``.
"""
from __future__ import annotations

import argparse
import itertools
import sys

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


# -- the parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subparser per subcommand, each naming its function as ``run``."""
    parser = argparse.ArgumentParser(prog="graphc", description="graphc: a graph-compiling deep-learning framework")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    commands.add_parser("ops", help="list the registered primitive ops",
                        description="List every registered primitive op, sorted by family and name."
                        ).set_defaults(run=run_ops)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``graphc`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
