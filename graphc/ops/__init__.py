"""The primitive ops.  Importing this package registers every op family."""
from . import (  # noqa: F401  (imported for their registrations)
    source, elementwise, reduce, movement, linalg, conv, unfold, pool, index, random, fused,
)
from .registry import OPS, Attr, OpDef, OpError, ShapeMismatch, get_op, infer_node, register, run_reference

__all__ = ["OPS", "Attr", "OpDef", "OpError", "ShapeMismatch", "get_op", "infer_node", "register", "run_reference"]
