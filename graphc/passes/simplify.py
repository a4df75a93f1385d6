"""The "simplify" pass: clean a graph up without changing what it computes.

One sweep over the nodes, in order, applies local rewrites, then drops dead
code; sweeps repeat until the graph stops changing (a fixed point).

- **Dead-code elimination**: a node is live if an output or a write-back value
  depends on it; every other node is dropped (inputs always stay, they are the
  graph's signature).
- **Common-subexpression elimination**: two nodes with the same op, the same
  inputs and equal attributes (``attrs_key``) compute the same value, so the
  second becomes a use of the first.
- **Constant folding**: a node whose inputs are all ``full``/``constant`` is
  evaluated with its op's numpy reference.  A uniform result becomes a
  ``full``, any other only becomes a ``constant`` when it is small (at most
  ``SMALL_CONSTANT`` elements), so folding never inflates the graph.
- **Algebraic identities**: x*1, 1*x, x+0, 0+x, x-0, x/1, -(-x), a cast to the
  same dtype, a reshape/expand/slice/pad/concat that changes nothing, a
  permute by the identity, a sum/max/min over no axes, and ``stop_gradient``
  all become ``x``.  Each fires only when the result's type is exactly x's
  (``x + 0`` where the 0 broadcasts x to a bigger shape is no identity).
  ``stop_gradient`` only guides autodiff, which runs before any pass, so here
  it is a plain copy.
- **Movement chains**: reshape∘reshape and expand∘expand become one op,
  permute∘permute one composed permute, a movement of a ``full`` a ``full`` of
  the new shape, and cast∘cast one cast when the middle dtype holds every value
  of the first exactly.
- **Masks moved through a max pool's gradient**:
  ``where(pred(y), max_pool2d_grad(g, max_pool2d_argmax(y)), 0)``, for a
  comparison ``pred`` of y with a scalar ``full`` (either operand order),
  becomes ``max_pool2d_grad(where(pred(max_pool2d(y)), g, 0), max_pool2d_argmax(y))``.
  This is exact: the gradient is zero off each window's argmax either way, and
  at the argmax y equals the window's maximum.  It is a ReLU's gradient meeting
  max pooling's (the mask reads the ReLU output y); afterwards the backward
  pass reads y only pooled, as the forward pass already computed it (CSE
  merges the two), so y dies in the forward pass.  It fires only when nothing
  broadcasts, the 0 is +0.0 (a -0.0 would show where the mask is false), and
  the gradient's window attributes are the argmax's.

The input graph is never modified: the result is a new Graph of fresh Nodes.
Nodes that survive keep their names; a rewritten node takes the name of the
node it replaces, so outputs and write-backs keep pointing at the right values
(an output may now be an input or a constant).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..ir.builder import GraphBuilder
from ..ir.dtypes import DType, bool_
from ..ir.graph import Graph, Node, attrs_key
from ..ir.types import TensorType
from ..ops.registry import get_op, infer_node, run_reference
from .manager import register_pass

# Folded results with more elements than this stay computed at run time (unless uniform):
# a graph is for people to read, and large literals belong in parameters.
SMALL_CONSTANT = 64
# Non-uniform folds whose inputs and output hold more elements than this are left to run time,
# so that compiling stays quick however large a constant expression is.
FOLD_EVALUATION_LIMIT = 1 << 16

SOURCE_OPS = ("full", "constant")


# -- rebuilding graphs ------------------------------------------------------------

@dataclass(frozen=True)
class NewNode:
    """A node to create in the rewritten graph: an op over values of that graph."""
    op: str
    inputs: tuple[Node, ...]
    attrs: dict
    type: TensorType

    @classmethod
    def of(cls, op: str, inputs: Iterable[Node], **attrs) -> "NewNode":
        """Validate and canonicalise like the builder, so equal nodes have equal attributes."""
        inputs = tuple(inputs)
        canonical, out_type = infer_node(op, [i.type for i in inputs], attrs)
        return cls(op, inputs, canonical, out_type)


class Rewriter:
    """Builds a new graph from an old one, never touching the old graph's nodes.

    ``value(old)`` is an old value's counterpart in the new graph.  Passes walk
    the old nodes in order and either ``copy`` each, ``emit`` a replacement
    under its name, or ``replace`` it with a value already in the new graph.
    ``builder`` makes helper nodes; its names avoid every name of the old
    graph, so a helper never steals the name of a node copied later.
    ``finish`` drops whatever no output or write-back needs.
    """

    def __init__(self, graph: Graph):
        self.graph = graph
        self.builder = GraphBuilder(graph.name)
        for node in (*graph.inputs, *graph.nodes):
            self.builder.fresh_name(node.name)
        self._values: dict[Node, Node] = {}
        for node in graph.inputs:
            fresh = Node(node.name, "input", (), {}, node.type, loc=node.loc, tag=node.tag)
            self.builder.inputs.append(fresh)
            self._values[node] = fresh

    def value(self, old: Node) -> Node:
        return self._values[old]

    def values(self, olds: Iterable[Node]) -> list[Node]:
        return [self._values[o] for o in olds]

    def replace(self, old: Node, new: Node) -> None:
        """From now on ``old`` means ``new``, a value already in the new graph."""
        self._values[old] = new

    def emit(self, old: Node, spec: NewNode) -> Node:
        """Add ``spec`` to the new graph under ``old``'s name and location, standing for ``old``."""
        node = Node(old.name, spec.op, spec.inputs, spec.attrs, spec.type, loc=old.loc)
        self.builder.nodes.append(node)
        self._values[old] = node
        return node

    def copy(self, old: Node) -> Node:
        """``old`` unchanged but for its inputs, which become their new counterparts."""
        return self.emit(old, NewNode(old.op, tuple(self.values(old.inputs)), old.attrs, old.type))

    def finish(self) -> Graph:
        """The new graph: the old outputs and write-backs mapped, dead nodes dropped."""
        outputs = self.values(self.graph.outputs)
        writes = [(self.value(t), self.value(v)) for t, v in self.graph.writes]
        live = live_nodes([*outputs, *(v for _, v in writes)])
        nodes = [n for n in self.builder.nodes if n in live]
        return Graph(self.graph.name, self.builder.inputs, nodes, outputs, writes)


def live_nodes(roots: Iterable[Node]) -> set[Node]:
    """Every value the roots depend on, the roots included."""
    live: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in live:
            live.add(node)
            stack.extend(node.inputs)
    return live


# -- the pass -----------------------------------------------------------------------

def simplify(graph: Graph) -> Graph:
    """Apply every rewrite and dead-code elimination until nothing changes."""
    while True:
        simpler = _sweep(graph)
        if simpler == graph:
            return simpler
        graph = simpler


# A rule looks at an old node and its inputs' new values; it answers with a value already in
# the new graph (the node is redundant), a NewNode to build instead, or None (no rewrite).
Rewrite = Node | NewNode | None
Rule = Callable[[Node, list[Node]], Rewrite]


def _sweep(graph: Graph) -> Graph:
    """One pass over the nodes: the first rule that fires rewrites a node, then CSE, then DCE."""
    rewriter = Rewriter(graph)
    seen: dict[tuple, Node] = {}
    for node in graph.nodes:
        inputs = rewriter.values(node.inputs)
        rewrite = _first_rewrite(node, inputs, rewriter.builder)
        if isinstance(rewrite, Node):
            rewriter.replace(node, rewrite)
            continue
        spec = rewrite or NewNode(node.op, tuple(inputs), node.attrs, node.type)
        # rand/randn look like they must never merge, but they are pure: samples are a
        # function of the key input (counter-based Philox) and the attributes, so two
        # nodes with the same key and attributes draw the same numbers.
        key = (spec.op, spec.inputs, attrs_key(spec.attrs))
        if key in seen:
            rewriter.replace(node, seen[key])
        else:
            seen[key] = rewriter.emit(node, spec)
    return rewriter.finish()


def _first_rewrite(node: Node, inputs: list[Node], builder: GraphBuilder) -> Rewrite:
    for rule in RULES:
        rewrite = rule(node, inputs)
        if rewrite is not None:
            return rewrite
    # The one rule that needs more new nodes than the one it answers with builds them through
    # the rewriter's builder, whose names never clash with the old graph's.
    return _move_mask_to_pooled_side(node, inputs, builder)


# -- identities ---------------------------------------------------------------------

# op -> (operand position, value) pairs of a neutral scalar operand.  Bool add/mul are or/and,
# whose neutral values False/True equal 0/1.  x + 0 turns a -0.0 into +0.0; only a division by
# that zero can tell them apart, and compilers for deep learning make the same trade.
_NEUTRAL_OPERANDS = {"add": ((0, 0), (1, 0)), "sub": ((1, 0),), "mul": ((0, 1), (1, 1)), "div": ((1, 1),)}


def _identity(node: Node, inputs: list[Node]) -> Node | None:
    """The input that ``node`` merely reproduces, if it is one of the identities."""
    # A cast to the same dtype, a reshape/expand to the same shape, a slice of everything, a pad
    # by nothing, a reduction over no axes (or only size-1 axes kept), a lone concat operand.
    if get_op(node.op).copies_when_type_kept:
        return inputs[0] if len(inputs) == 1 and inputs[0].type == node.type else None
    if node.op == "permute":
        return inputs[0] if node.attrs["dims"] == tuple(range(node.type.rank)) else None
    if node.op == "neg" and inputs[0].op == "neg":
        return inputs[0].inputs[0]
    for position, neutral in _NEUTRAL_OPERANDS.get(node.op, ()):
        scalar, other = inputs[position], inputs[1 - position]
        if _is_full_of(scalar, neutral) and other.type == node.type:
            return other
    return None


def _is_full_of(node: Node, value) -> bool:
    return node.op == "full" and node.attrs["value"] == value


# -- movement and cast chains ---------------------------------------------------------

def _fold_chain(node: Node, inputs: list[Node]) -> NewNode | None:
    """Two movement ops (or casts) in a row as one."""
    inner = inputs[0] if len(inputs) == 1 else None
    if inner is None or inner.op != node.op:
        return None
    source = inner.inputs[0]
    if node.op in ("reshape", "expand"):
        return NewNode.of(node.op, [source], shape=node.attrs["shape"])
    if node.op == "permute":
        # Output axis i is the inner result's axis dims[i], which is the source's axis inner_dims[dims[i]].
        return NewNode.of("permute", [source], dims=[inner.attrs["dims"][d] for d in node.attrs["dims"]])
    if node.op == "cast" and is_lossless_cast(source.dtype, inner.dtype):
        return NewNode.of("cast", [source], dtype=node.dtype)
    return None


def is_lossless_cast(source: DType, target: DType) -> bool:
    """Whether every ``source`` value converts to ``target`` exactly (so a later cast sees the same number)."""
    if source == target or source == bool_:
        return True
    if target == bool_ or (source.is_float and not target.is_float):
        return False
    if target.is_float:
        if source.is_float:
            return target.itemsize >= source.itemsize
        value_bits = np.iinfo(source.numpy).bits - source.is_signed
        return value_bits <= np.finfo(target.numpy).nmant + 1
    source_range, target_range = np.iinfo(source.numpy), np.iinfo(target.numpy)
    return target_range.min <= source_range.min and source_range.max <= target_range.max


# -- constants ------------------------------------------------------------------------


def _uniform_constant(node: Node, inputs: list[Node]) -> NewNode | None:
    """A ``constant`` whose elements are all the same as the equivalent ``full``."""
    if node.op != "constant":
        return None
    value = uniform_value(node.attrs["value"])
    return _full(node.type, value) if value is not None else None


def _fold_constant(node: Node, inputs: list[Node]) -> NewNode | None:
    """Evaluate a node whose inputs are all constants, if the result is worth storing."""
    if not inputs or any(i.op not in SOURCE_OPS for i in inputs):
        return None
    if all(i.op == "full" for i in inputs):
        uniform = _fold_uniform(node, inputs)
        if uniform is not None:
            return uniform
    if sum(t.numel for t in (node.type, *(i.type for i in inputs))) > FOLD_EVALUATION_LIMIT:
        return None
    arrays = [run_reference(i.op, [], i.attrs, i.type) for i in inputs]
    result = run_reference(node.op, arrays, node.attrs, node.type)
    value = uniform_value(result)
    if value is not None:
        return _full(node.type, value)
    if result.size <= SMALL_CONSTANT:
        return NewNode.of("constant", [], value=result)
    return None


def _fold_uniform(node: Node, inputs: list[Node]) -> NewNode | None:
    """Ops that map uniform tensors to a uniform tensor, folded without building any array.

    An elementwise op computes the same function at every element, so it is
    evaluated once on scalars; a re-indexing movement keeps the value.
    """
    if get_op(node.op).reindexes:
        return NewNode.of("full", [], shape=node.shape, dtype=node.dtype, value=inputs[0].attrs["value"])
    if get_op(node.op).family != "elementwise":
        return None
    scalars = [np.array(i.attrs["value"], dtype=i.dtype.numpy) for i in inputs]
    result = run_reference(node.op, scalars, node.attrs, node.type.with_shape(()))
    return _full(node.type, result)


def uniform_value(array: np.ndarray) -> np.ndarray | None:
    """The one value every element of ``array`` has, bit for bit (so -0.0 is not 0.0), else None."""
    flat = array.reshape(-1)
    if flat.size == 0:
        return np.zeros((), array.dtype)
    first = flat[:1]
    same = flat.view(np.uint8).reshape(flat.size, -1) == first.view(np.uint8)
    return flat[0] if same.all() else None


def _full(out_type: TensorType, value) -> NewNode:
    return NewNode.of("full", [], shape=out_type.shape, dtype=out_type.dtype, value=np.asarray(value).item())


# -- a mask over a max pool's gradient ---------------------------------------------------

COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")


def _move_mask_to_pooled_side(node: Node, inputs: list[Node], builder: GraphBuilder) -> NewNode | None:
    """``where(pred(y), max_pool2d_grad(g, max_pool2d_argmax(y)), 0)`` with the mask moved to
    the pooled side, ``max_pool2d_grad(where(pred(max_pool2d(y)), g, 0), max_pool2d_argmax(y))``
    (see the module docstring)."""
    if node.op != "where":
        return None
    mask, pooled_grad, zero = inputs
    if mask.op not in COMPARISONS or pooled_grad.op != "max_pool2d_grad" or not _is_positive_zero(zero):
        return None
    g, indices = pooled_grad.inputs
    if indices.op != "max_pool2d_argmax":
        return None
    y = indices.inputs[0]
    operands = list(mask.inputs)
    y_position = next((i for i, operand in enumerate(operands) if operand is y), None)
    if y_position is None:
        return None
    threshold = operands[1 - y_position]
    window_attrs = {name: value for name, value in pooled_grad.attrs.items() if name != "input_size"}
    if (threshold.op != "full" or threshold.shape != () or not (y.shape == mask.shape == pooled_grad.shape)
            or window_attrs != indices.attrs):
        return None
    saved_loc, builder.loc = builder.loc, node.loc
    operands[y_position] = builder.max_pool2d(y, **indices.attrs)
    masked = builder.where(builder.op(mask.op, *operands), g, zero)
    builder.loc = saved_loc
    return NewNode.of("max_pool2d_grad", [masked, indices], **pooled_grad.attrs)


def _is_positive_zero(node: Node) -> bool:
    return node.op == "full" and node.shape == () and node.attrs["value"] == 0 and not np.signbit(node.attrs["value"])


RULES: tuple[Rule, ...] = (_uniform_constant, _identity, _fold_chain, _fold_constant)

register_pass("simplify", lambda graph, options: simplify(graph),
              "dead code, common subexpressions, constant folding, identities and movement chains")
