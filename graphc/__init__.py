"""graphc: a graph-compiling deep-learning framework with a PyTorch-like frontend.

    import graphc
    import graphc.nn as nn

Users only import ``graphc``: the frontend (``graphc.frontend``) supplies the
tensor API, ``graphc.nn``, ``graphc.optim`` and ``graphc.utils.data``.
"""
from importlib import metadata as _metadata

from . import ops  # noqa: F401  (registers the primitives)
from .errors import (BackendError, CheckpointError, GraphcError, OutOfMemoryError, OutOfRangeError, ParseError,
                     ShapeError, TraceError, VerifyError)
from .ir import Graph, GraphBuilder, Node, TensorType, parse_graph, print_graph

from .frontend import *  # noqa: E402,F401,F403
from .frontend import __all__ as _frontend_all  # noqa: E402
from .compiler import compile  # noqa: E402
from .frontend.serialization import load, save  # noqa: E402


def _expose(public: str, private: str) -> None:
    """Make ``graphc.<public>`` the very module ``graphc.frontend.<private>`` (one module object,
    so ``import graphc.nn.functional as F`` and isinstance checks see the same classes)."""
    import importlib
    import sys
    module = importlib.import_module(f"graphc.frontend.{private}")
    sys.modules[f"graphc.{public}"] = module
    parent, _, attr = f"graphc.{public}".rpartition(".")
    setattr(sys.modules[parent], attr, module)


for _public, _private in [("nn", "nn"), ("nn.functional", "nn.functional"), ("nn.init", "nn.init"),
                          ("nn.utils", "nn.utils"), ("optim", "optim"), ("optim.lr_scheduler", "optim.lr_scheduler"),
                          ("autograd", "autograd"), ("utils", "utils"), ("utils.data", "utils.data"),
                          ("datasets", "datasets"), ("transforms", "transforms")]:
    _expose(_public, _private)

try:
    __version__ = _metadata.version("graphc")      # as pyproject.toml gives it, through the installed metadata
except _metadata.PackageNotFoundError:             # a source tree that was never pip-installed
    __version__ = "0+unknown"

__all__ = ["BackendError", "CheckpointError", "GraphcError", "OutOfMemoryError", "OutOfRangeError", "ParseError",
           "ShapeError", "TraceError",
           "VerifyError", "Graph", "GraphBuilder", "Node", "TensorType", "parse_graph", "print_graph", "compile", "save", "load", *_frontend_all]
