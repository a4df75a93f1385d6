"""The text form of the IR: one node per line, readable at a glance.

    graph mlp(%x: f32[4,8] data, %w: f32[8,2] param) {
      %1 = matmul(%x, %w) : f32[4,2]
      %2 = relu(%1) : f32[4,2]  # model.py:12
      return %2, write(%w, %5)
    }

Attributes print in braces after the operands: integers as ``3``, floats
always with a point or exponent (``2.0``, ``1e-05``, ``inf``, ``nan``), booleans
as ``true``/``false``, strings in double quotes, dtypes bare (``f32``), lists as
``[1,2]``, a missing optional value as ``none`` and tensors as
``dense<[1.0,2.0] : f32[2]>``.  A trailing ``# file:line`` is the node's source
location.  ``parse_graph(print_graph(g)) == g``.
"""
from __future__ import annotations

import json
import math

import numpy as np

from .dtypes import DType
from .graph import Graph, Node
from .types import TensorType

# Signatures longer than this go one input per line.
_INLINE_INPUTS = 4


def format_attr(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, DType):
        return value.name
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        from .dtypes import dtype_from_numpy
        items = ",".join(format_attr(v) for v in value.reshape(-1).tolist())
        return f"dense<[{items}] : {TensorType(value.shape, dtype_from_numpy(value.dtype))}>"
    if isinstance(value, Graph):
        raise TypeError("graph-valued attributes print as nested bodies, not inline")
    raise TypeError(f"cannot print attribute value {value!r}")


def format_attr_dict(attrs: dict) -> str:
    return "{" + ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items()) + "}"


def format_node(node: Node) -> str:
    args = ", ".join(f"%{i.name}" for i in node.inputs)
    text = f"%{node.name} = {node.op}({args})"
    if node.attrs:
        text += " " + format_attr_dict(node.attrs)
    text += f" : {node.type}"
    if node.loc is not None:
        text += f"  # {node.loc}"
    return text


def print_graph(graph: Graph) -> str:
    params = [f"%{n.name}: {n.type} {n.tag}" for n in graph.inputs]
    if len(params) <= _INLINE_INPUTS:
        header = f"graph {graph.name}({', '.join(params)}) {{"
    else:
        header = f"graph {graph.name}(\n" + ",\n".join(f"    {p}" for p in params) + "\n) {"
    lines = [header]
    lines += [f"  {format_node(n)}" for n in graph.nodes]
    results = [f"%{n.name}" for n in graph.outputs]
    results += [f"write(%{t.name}, %{v.name})" for t, v in graph.writes]
    lines.append(("  return " + ", ".join(results)) if results else "  return")
    lines.append("}")
    return "\n".join(lines)


def parse_type_text(text: str) -> TensorType:
    """Parse a tensor type such as ``f32[4,3]`` or ``i64[]``."""
    import re
    from .dtypes import dtype_from_name
    m = re.fullmatch(r"\s*([a-z0-9]+)\[([0-9,\s]*)\]\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a tensor type; write it like f32[4,3] or i64[]")
    dims = [d for d in m.group(2).replace(" ", "").split(",") if d]
    return TensorType(tuple(int(d) for d in dims), dtype_from_name(m.group(1)))
