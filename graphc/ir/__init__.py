"""The graph IR: types, nodes, graphs, the builder, text and pictures."""
from .builder import GraphBuilder
from .dtypes import ALL_DTYPES, DType, bool_, dtype_from_name, dtype_from_numpy, f32, f64, i16, i32, i64, u8
from .graph import INPUT_TAGS, Graph, Node, SourceLoc, verify
from .text import parse_graph, print_graph
from .types import TensorType, TupleType

__all__ = ["GraphBuilder", "ALL_DTYPES", "DType", "bool_", "dtype_from_name", "dtype_from_numpy",
           "f32", "f64", "i16", "i32", "i64", "u8", "INPUT_TAGS", "Graph", "Node", "SourceLoc", "verify",
           "TensorType", "TupleType", "parse_graph", "print_graph"]
