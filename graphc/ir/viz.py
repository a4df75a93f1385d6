"""Pictures of graphs: a networkx view for analysis, Graphviz DOT for people.

``to_networkx`` gives one networkx node per IR value, keyed by its name, so
passes can use networkx's reachability, cycle and dominator algorithms.
``to_dot`` draws the same graph: graph inputs by tag (data, param, buffer,
state) in their own shapes and colours, ops as rounded boxes labelled with the
op and its type (``matmul`` over ``f32[4,2]``, the value's name as tooltip),
outputs with a double border and write-backs as dashed edges into the state
they update.  A fused kernel is a cluster around the ops of its body.
``render`` writes a picture file, calling Graphviz's ``dot`` program for SVG
and PNG.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from ..errors import GraphcError
from .graph import Graph, Node
from .types import TupleType

# -- networkx ---------------------------------------------------------------------


def to_networkx(graph: Graph) -> nx.DiGraph:
    """The graph as a networkx DiGraph with one node per value, keyed by name.

    Node attributes: ``op`` ("input" for graph inputs), ``shape`` (a tuple),
    ``dtype`` (a DType), ``tag`` (the input's tag; None for op nodes) and
    ``output`` (whether the graph returns the value); a multi-output kernel's
    tuple has no shape or dtype (None), its ``tuple_get`` nodes do.  A data edge runs from
    an operand to its user, with ``kind="data"`` and ``indices``, the operand
    positions it fills (a tuple, as one value may feed several operands of the
    same node).  Each write-back adds an edge from the new value to the state
    input it overwrites, with ``kind="write"``; these close loops, so analyses
    of the dataflow should keep to the data edges.
    """
    nxg = nx.DiGraph(name=graph.name)
    returned = {node.name for node in graph.outputs}
    for node in (*graph.inputs, *graph.nodes):
        tensor = not isinstance(node.type, TupleType)
        nxg.add_node(node.name, op=node.op, shape=node.shape if tensor else None,
                     dtype=node.dtype if tensor else None, tag=node.tag, output=node.name in returned)
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
_CLUSTER_STYLE = {"style": "rounded,filled", "fillcolor": "#f1f3f5", "color": "#6c757d",
                  "fontname": "Helvetica", "fontsize": "10", "labeljust": "l"}
_WRITE_EDGE_STYLE = {"style": "dashed", "color": "#6f42c1", "label": "write", "constraint": "false"}


def to_dot(graph: Graph) -> str:
    """The graph in Graphviz's DOT language, drawn top to bottom.

    A node holding a body (a ``fused`` kernel) is drawn as a cluster around
    its body's ops, labelled with its kind and value; edges run from its
    operands into the body and from the body's results to their readers.  A
    ``tuple_get`` is not drawn: its readers are wired to the body's result it names.
    """
    lines = [f"digraph {_quote(graph.name)} {{",
             "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    edges: list[str] = []
    lines += _dot_statements(graph, "  ", {}, "", set(graph.outputs), edges)
    lines += [f"  {edge}" for edge in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_statements(graph: Graph, indent: str, ids: dict[Node, str], prefix: str,
                    returned: set[Node], edges: list[str]) -> list[str]:
    """Node statements for ``graph``'s values, recording each value's DOT id in ``ids``;
    edge statements go to ``edges``.

    Ids are the values' names, under ``prefix`` inside a body so that they
    stay unique.  Inputs already in ``ids`` (a body's inputs, which stand for
    its node's operands) get no statement of their own.  Edges are kept for
    the top level because DOT puts both ends of an edge written inside a
    cluster into that cluster.
    """
    lines = []
    returned_results = _returned_results(graph, returned)
    for node in graph.inputs:
        if node not in ids:
            ids[node] = prefix + node.name
            lines.append(indent + _node_statement(ids[node], node, node in returned))
    for node in graph.nodes:
        body = next((v for v in node.attrs.values() if isinstance(v, Graph)), None)
        if body is not None:
            lines += _cluster_statements(node, body, indent, ids, prefix, returned_results.get(node, set()), edges)
            continue
        if node.op == "tuple_get":
            ids[node] = ids[node.inputs[0]][node.attrs["index"]]
            continue
        ids[node] = prefix + node.name
        lines.append(indent + _node_statement(ids[node], node, node in returned))
        # Operand positions matter for ops like sub and matmul, so label them where there are several.
        for index, operand in enumerate(node.inputs):
            label = {"label": str(index)} if len(node.inputs) > 1 else {}
            edges.append(_edge_statement(ids[operand], ids[node], label))
    for target, value in graph.writes:
        edges.append(_edge_statement(ids[value], ids[target], _WRITE_EDGE_STYLE))
    return lines


def _returned_results(graph: Graph, returned: set[Node]) -> dict[Node, set[int]]:
    """For each node the graph returns results of, which: its value (0), or the outputs of a
    multi-output kernel that returned ``tuple_get``s name."""
    results: dict[Node, set[int]] = {}
    for node in returned:
        if node.op == "tuple_get":
            results.setdefault(node.inputs[0], set()).add(node.attrs["index"])
        elif not isinstance(node.type, TupleType):
            results.setdefault(node, set()).add(0)
    return results


def _cluster_statements(node: Node, body: Graph, indent: str, ids: dict[Node, str], prefix: str,
                        returned_results: set[int], edges: list[str]) -> list[str]:
    """``node`` as a cluster drawing its body; the node's value is its body's result (for a
    multi-output kernel, ``ids`` holds the tuple of its results' ids)."""
    cluster = prefix + node.name
    body_ids = {inp: ids[operand] for inp, operand in zip(body.inputs, node.inputs)}
    label = f"{node.op} {node.attrs.get('kind', '')}".rstrip() + f"\n%{node.name} : {node.type}"
    lines = [f"{indent}subgraph {_quote('cluster_' + cluster)} {{",
             f"{indent}  graph [{_dot_attrs({'label': label, 'tooltip': f'%{node.name}', **_CLUSTER_STYLE})}];"]
    lines += _dot_statements(body, indent + "  ", body_ids, cluster + "/",
                             {body.outputs[i] for i in returned_results}, edges)
    lines.append(indent + "}")
    results = tuple(body_ids[value] for value in body.outputs)
    ids[node] = results if isinstance(node.type, TupleType) else results[0]
    return lines


def _node_statement(node_id: str, node: Node, is_output: bool) -> str:
    if node.is_input:
        label = f"%{node.name}\n{node.type}\n{node.tag}"
        style = dict(_INPUT_STYLES[node.tag])
    else:
        label = f"{node.op}\n{node.type}"
        # The value's name shows on hover in SVG, to find the node in a text dump.
        style = {**_OP_STYLE, "tooltip": f"%{node.name}"}
    if is_output:
        style.update(_OUTPUT_STYLE)
    return f"{_quote(node_id)} [{_dot_attrs({'label': label, **style})}];"


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
