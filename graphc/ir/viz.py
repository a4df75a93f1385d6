"""Pictures of graphs: a networkx view for analysis, Graphviz DOT for people.

``to_networkx`` gives one networkx node per IR value, keyed by its name, so
passes can use networkx's reachability, cycle and dominator algorithms.
``to_dot`` draws the same graph: graph inputs by tag (data, param, buffer,
state) in their own shapes and colours, ops as rounded boxes labelled with the
op and its type (``matmul`` over ``f32[4,2]``, the value's name as tooltip),
outputs with a double border and write-backs as dashed edges into the state
they update.  ``render`` writes a picture file, calling Graphviz's ``dot``
program for SVG and PNG.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from ..errors import GraphcError
from .graph import Graph, Node

# -- networkx ---------------------------------------------------------------------


def to_networkx(graph: Graph) -> nx.DiGraph:
    """The graph as a networkx DiGraph with one node per value, keyed by name.

    Node attributes: ``op`` ("input" for graph inputs), ``shape`` (a tuple),
    ``dtype`` (a DType), ``tag`` (the input's tag; None for op nodes) and
    ``output`` (whether the graph returns the value).  A data edge runs from
    an operand to its user, with ``kind="data"`` and ``indices``, the operand
    positions it fills (a tuple, as one value may feed several operands of the
    same node).  Each write-back adds an edge from the new value to the state
    input it overwrites, with ``kind="write"``; these close loops, so analyses
    of the dataflow should keep to the data edges.
    """
    nxg = nx.DiGraph(name=graph.name)
    returned = {node.name for node in graph.outputs}
    for node in (*graph.inputs, *graph.nodes):
        nxg.add_node(node.name, op=node.op, shape=node.shape, dtype=node.dtype, tag=node.tag,
                     output=node.name in returned)
    for node in graph.nodes:
        for operand, indices in _operand_positions(node).items():
            nxg.add_edge(operand.name, node.name, kind="data", indices=indices)
    for target, value in graph.writes:
        nxg.add_edge(value.name, target.name, kind="write")
    return nxg


def _operand_positions(node: Node) -> dict[Node, tuple[int, ...]]:
    """Each distinct operand of ``node`` and the input positions it fills, in operand order."""
    positions: dict[Node, tuple[int, ...]] = {}
    for index, operand in enumerate(node.inputs):
        positions[operand] = positions.get(operand, ()) + (index,)
    return positions


# -- DOT ----------------------------------------------------------------------------

# Graphviz node attributes for each kind of value; outputs add _OUTPUT_STYLE.
_INPUT_STYLES = {
    "data": {"shape": "invhouse", "style": "filled", "fillcolor": "#cfe2ff"},
    "param": {"shape": "box", "style": "filled", "fillcolor": "#ffe08a"},
    "buffer": {"shape": "box", "style": "filled,dashed", "fillcolor": "#e2e3e5"},
    "state": {"shape": "cylinder", "style": "filled", "fillcolor": "#e5d4f5"},
}
_OP_STYLE = {"shape": "box", "style": "rounded,filled", "fillcolor": "white"}
_OUTPUT_STYLE = {"peripheries": "2", "color": "#198754", "penwidth": "1.5"}
_WRITE_EDGE_STYLE = {"style": "dashed", "color": "#6f42c1", "label": "write", "constraint": "false"}


def to_dot(graph: Graph) -> str:
    """The graph in Graphviz's DOT language, drawn top to bottom."""
    lines = [f"digraph {_quote(graph.name)} {{",
             "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    lines += _dot_statements(graph, indent="  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_statements(graph: Graph, indent: str) -> list[str]:
    """Node and edge statements for ``graph``'s values.

    Kept apart from the ``digraph`` header so that a fused group's body
    (``attrs["body"]``) can later be drawn as a ``subgraph cluster_...`` with
    the same statements.
    """
    returned = set(graph.outputs)
    lines = [indent + _node_statement(node, node in returned) for node in (*graph.inputs, *graph.nodes)]
    for node in graph.nodes:
        # Operand positions matter for ops like sub and matmul, so label them where there are several.
        for index, operand in enumerate(node.inputs):
            label = {"label": str(index)} if len(node.inputs) > 1 else {}
            lines.append(indent + _edge_statement(operand.name, node.name, label))
    for target, value in graph.writes:
        lines.append(indent + _edge_statement(value.name, target.name, _WRITE_EDGE_STYLE))
    return lines


def _node_statement(node: Node, is_output: bool) -> str:
    if node.is_input:
        label = f"%{node.name}\n{node.type}\n{node.tag}"
        style = dict(_INPUT_STYLES[node.tag])
    else:
        label = f"{node.op}\n{node.type}"
        # The value's name shows on hover in SVG, to find the node in a text dump.
        style = {**_OP_STYLE, "tooltip": f"%{node.name}"}
    if is_output:
        style.update(_OUTPUT_STYLE)
    return f"{_quote(node.name)} [{_dot_attrs({'label': label, **style})}];"


def _edge_statement(source: str, target: str, attrs: dict[str, str]) -> str:
    text = f"{_quote(source)} -> {_quote(target)}"
    return text + (f" [{_dot_attrs(attrs)}];" if attrs else ";")


def _dot_attrs(attrs: dict[str, str]) -> str:
    return ", ".join(f"{key}={_quote(value)}" for key, value in attrs.items())


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# -- files --------------------------------------------------------------------------

RENDER_FORMATS = ("dot", "svg", "png")

_DOT_MISSING = ("Graphviz's `dot` program is not installed; install graphviz "
                "(apt-get install graphviz) or write .dot")


def render(graph: Graph, path: "str | Path", format: str | None = None) -> Path:
    """Write a picture of ``graph`` to ``path`` and return the path.

    ``format`` is one of "dot", "svg" or "png"; by default it is the file's
    extension.  DOT text is written directly; SVG and PNG are drawn by
    Graphviz's ``dot`` program, which must be installed.
    """
    path = Path(path)
    format = format or path.suffix.lstrip(".").lower()
    if format not in RENDER_FORMATS:
        raise GraphcError(f"cannot draw graph {graph.name} into {path}: format {format!r} is not one of "
                          f"{', '.join(RENDER_FORMATS)} (give the file one of those extensions)")
    dot_text = to_dot(graph)
    if format == "dot":
        path.write_text(dot_text)
        return path
    dot_program = shutil.which("dot")
    if dot_program is None:
        raise GraphcError(_DOT_MISSING)
    result = subprocess.run([dot_program, f"-T{format}", "-o", str(path)], input=dot_text.encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise GraphcError(f"Graphviz's `dot` failed to draw graph {graph.name} as {path}: "
                          f"{result.stderr.decode(errors='replace').strip()}")
    return path
