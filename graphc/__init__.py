"""graphc: a graph-compiling deep-learning framework with a PyTorch-like frontend."""
from . import ops  # noqa: F401  (registers the primitives)
from .errors import BackendError, CheckpointError, GraphcError, ParseError, ShapeError, TraceError, VerifyError
from .ir import Graph, GraphBuilder, Node, TensorType

__all__ = ["BackendError", "CheckpointError", "GraphcError", "ParseError", "ShapeError", "TraceError",
           "VerifyError", "Graph", "GraphBuilder", "Node", "TensorType"]
