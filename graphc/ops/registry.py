"""The op registry: one OpDef per primitive, the only place an op is defined.

An OpDef carries everything graphc knows about a primitive: its inputs and
attributes, its shape/dtype rule, its numpy reference implementation, its
gradient rule and its lowering to kernel IR.  The builder, the verifier, the
reference backend, autodiff and the kernel lowering all look ops up here, so
adding an op is adding one ``register(OpDef(...))``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import GraphcError, ShapeError
from ..ir.dtypes import DType, dtype_from_name
from ..ir.types import TensorType


class OpError(GraphcError, ValueError):
    """An unknown op, an unknown or missing attribute, or the wrong number of inputs."""


class ShapeMismatch(Exception):
    """Raised by shape rules with a short reason; the registry adds the context."""


REQUIRED = object()

# Attribute kinds and how a given value is coerced into its canonical form.
ATTR_KINDS = ("int", "float", "bool", "str", "dtype", "ints", "scalar", "tensor", "graph")


@dataclass(frozen=True)
class Attr:
    kind: str
    default: Any = REQUIRED
    optional: bool = False        # None is a valid value

    def coerce(self, op: str, name: str, value):
        if value is None and self.optional:
            return None
        try:
            return _COERCE[self.kind](value)
        except (TypeError, ValueError):
            raise OpError(f"{op}: attribute {name}={value!r} is not a valid {self.kind}") from None


def _to_int(v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError
    return int(v)


def _to_float(v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError
    return float(v)


def _to_bool(v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError
    return bool(v)


def _to_str(v):
    if not isinstance(v, str):
        raise TypeError
    return v


def _to_dtype(v):
    if isinstance(v, DType):
        return v
    if isinstance(v, str):
        return dtype_from_name(v)
    raise TypeError


def _to_ints(v):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        raise TypeError
    return tuple(_to_int(x) for x in v)


def _to_scalar(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    raise TypeError


def _to_tensor(v):
    if not isinstance(v, np.ndarray):
        raise TypeError
    return v


def _to_graph(v):
    from ..ir.graph import Graph
    if not isinstance(v, Graph):
        raise TypeError
    return v


_COERCE = {"int": _to_int, "float": _to_float, "bool": _to_bool, "str": _to_str, "dtype": _to_dtype,
           "ints": _to_ints, "scalar": _to_scalar, "tensor": _to_tensor, "graph": _to_graph}

# Rules take (input types, canonical attrs); references take (arrays, attrs);
# gradient rules take (builder, node, grad of node) and return one gradient
# value (or None) per input, built as new nodes through the builder;
# lowerings take (a graphc.kernel LoweringContext, node, the Index of an output
# element) and return the kernel-IR expression of the node's value there.
ShapeRule = Callable[[Sequence[TensorType], dict], TensorType]
Reference = Callable[[Sequence[np.ndarray], dict], np.ndarray]
GradRule = Callable[[Any, Any, Any], Sequence[Any]]
Lowering = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class OpDef:
    name: str
    family: str                              # elementwise, reduction, movement, contraction, window, index, random, source, fused
    inputs: tuple[str, ...]                  # names used in messages; "*name" marks a variadic tail
    shape_rule: ShapeRule
    reference: Reference
    attrs: dict[str, Attr] = field(default_factory=dict)
    grad: GradRule | None = None
    lower: Lowering | None = None
    differentiable: bool = True              # False for ops with no gradient at all (comparisons, argmax, ...)
    # What the passes ask about an op, so that they keep no lists of op names:
    copies_when_type_kept: bool = False      # the identity whenever its result has its input's type
    reindexes: bool = False                  # only re-indexes its input: a uniform input gives a uniform output
    keeps_element_order: bool = False        # element i of the output is element i of the input (beyond elementwise)
    broadcasts: bool = False                 # reads input elements repeatedly, as an elementwise op broadcasting
    operand_view: bool = False               # a contraction that reads views reads through it at no cost
    # The inputs it reads through an operand_view op (as BLAS a transpose; views of views: a
    # transposed reshape), or a function of the node giving them (see operand_views_read).
    reads_operand_views: tuple[int, ...] | Callable[[Any], tuple[int, ...]] = ()
    cheap: bool = False                      # about one pass over its output: worth recomputing (forward pooling)
    # The loops a kernel anchored at it runs over: each output axis split, row-major, into
    # these sizes, so its lowering reads the parts (Index.split) rather than dividing for them.
    loop_axes: Callable[[Any], tuple[tuple[int, ...], ...]] | None = None
    canonicalize: Callable[[Sequence[TensorType], dict], dict] | None = None
    doc: str = ""

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].startswith("*")

    def input_label(self, i: int) -> str:
        if self.variadic and i >= len(self.inputs) - 1:
            return f"{self.inputs[-1][1:]}[{i - len(self.inputs) + 1}]"
        return self.inputs[i]


OPS: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in OPS:
        raise ValueError(f"op {opdef.name} is registered twice")
    for name, attr in opdef.attrs.items():
        assert attr.kind in ATTR_KINDS, f"{opdef.name}.{name}: unknown attribute kind {attr.kind}"
    OPS[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise OpError(f"unknown op {name!r}; `graphc ops` lists the registered primitives") from None


def operand_views_read(node) -> tuple[int, ...]:
    """The inputs ``node`` reads through an operand_view op (OpDef.reads_operand_views)."""
    views = get_op(node.op).reads_operand_views
    return views(node) if callable(views) else views


def format_attrs(attrs: dict) -> str:
    from ..ir.text import format_attr_dict
    return format_attr_dict(attrs)


def describe_inputs(opdef: OpDef, types: Sequence[TensorType]) -> str:
    return ", ".join(f"{opdef.input_label(i)} {t}" for i, t in enumerate(types))


def infer_node(op: str, input_types: Sequence[TensorType], attrs: dict) -> tuple[dict, TensorType]:
    """Validate ``attrs`` and input count, canonicalize attrs, apply the shape rule.

    Returns (canonical attrs, output type).  Raises OpError for unknown ops or
    attributes and ShapeError, naming the op, its attributes and every input
    type, when the inputs do not fit.
    """
    opdef = get_op(op)
    n_fixed = len(opdef.inputs) - (1 if opdef.variadic else 0)
    if (len(input_types) != n_fixed) if not opdef.variadic else (len(input_types) < n_fixed + 1):
        expected = ", ".join(opdef.inputs) or "no inputs"
        raise OpError(f"{op}: takes ({expected}) but was given {len(input_types)} input(s)")

    if op != "tuple_get":
        for i, given in enumerate(input_types):
            if not isinstance(given, TensorType):
                raise ShapeError(f"{op}: {opdef.input_label(i)} is the tuple {given}, the result of a "
                                 f"multi-output kernel; only tuple_get reads a tuple")
    canonical = {}
    for name in attrs:
        if name not in opdef.attrs:
            known = ", ".join(opdef.attrs) or "none"
            raise OpError(f"{op}: unknown attribute {name!r} (its attributes: {known})")
    for name, spec in opdef.attrs.items():
        if name in attrs:
            canonical[name] = spec.coerce(op, name, attrs[name])
        elif spec.default is REQUIRED:
            raise OpError(f"{op}: missing required attribute {name!r}")
        else:
            canonical[name] = spec.default
    try:
        if opdef.canonicalize is not None:
            canonical = opdef.canonicalize(input_types, canonical)
        out = opdef.shape_rule(input_types, canonical)
    except ShapeMismatch as err:
        context = [f"({describe_inputs(opdef, input_types)})"] if input_types else []
        context += [format_attrs(canonical)] if canonical else []
        raise ShapeError(f"{op}: {err} " + " ".join(context) if context else f"{op}: {err}") from None
    return canonical, out


def run_reference(op: str, arrays: Sequence, attrs: dict, out_type) -> "np.ndarray | tuple[np.ndarray, ...]":
    """Run an op's numpy reference and check it honoured its shape rule (element by element
    for a multi-output kernel, which returns a tuple of arrays)."""
    with np.errstate(all="ignore"):
        result = get_op(op).reference(arrays, attrs)
    if not isinstance(out_type, TensorType):
        return tuple(_checked(op, r, t) for r, t in zip(result, out_type.elements, strict=True))
    return _checked(op, result, out_type)


def _checked(op: str, result, out_type: TensorType) -> np.ndarray:
    result = np.asarray(result)
    if result.dtype != out_type.dtype.numpy:
        result = result.astype(out_type.dtype.numpy)
    if result.shape != out_type.shape:
        raise AssertionError(f"{op}: reference produced shape {result.shape}, shape rule says {out_type.shape}")
    return result
