"""graphc: a graph-compiling deep-learning framework with a PyTorch-like frontend.

    import graphc
    import graphc.nn as nn

Users only import ``graphc``: the frontend (``graphc.frontend``) supplies the
tensor API, ``graphc.nn``, ``graphc.optim`` and ``graphc.utils.data``.
"""
from . import ops  # noqa: F401  (registers the primitives)
from .errors import BackendError, CheckpointError, GraphcError, ParseError, ShapeError, TraceError, VerifyError
from .ir import Graph, GraphBuilder, Node, TensorType, parse_graph, print_graph

from .frontend import *  # noqa: E402,F401,F403
from .frontend import __all__ as _frontend_all  # noqa: E402

__all__ = ["BackendError", "CheckpointError", "GraphcError", "ParseError", "ShapeError", "TraceError",
           "VerifyError", "Graph", "GraphBuilder", "Node", "TensorType", "parse_graph", "print_graph", *_frontend_all]
