"""The "bn_fold" pass: fold the per-channel affine work after a conv2d into its weight.

In eval mode BatchNorm is per-channel arithmetic on the convolution's output,

    y = (conv2d(x, w) + b - mean) / sqrt(var + eps) * gamma + beta

however the frontend spells it ((x - mean) * rsqrt(var + eps), a bias add
first or none, [1,C,1,1] reshapes of the parameters).  Every such chain is
``conv2d(x, w) * scale + bias`` for per-channel ``scale`` and ``bias``, and
conv2d is linear in its weight, so the chain equals

    conv2d(x, w * scale[:, None, None, None]) + bias[None, :, None, None]

with, for BatchNorm, scale = gamma / sqrt(var + eps) and
bias = (b - mean) * scale + beta.  The pass finds the chains as a structural
match on the node DAG: starting at each conv2d, it follows the single user
through add/sub/mul/div/neg steps whose other operand varies only along the
channel axis and is computed from parameters, buffers and constants alone.
The folded weight and bias are computed *in the graph* from those inputs, so
a compiled function stays correct when the parameters change; the work per
element moves from the activation (N*C*H*W elements) to the weight (C*C'*kh*kw).

The rewrite is exact algebra (up to rounding), so it is correct in any graph;
the default pipeline runs it on inference graphs, where eval-mode BatchNorm
appears.  The reshapes it leaves behind are for ``simplify`` to tidy up.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph, Node
from .manager import register_pass
from .simplify import NewNode, Rewriter

CHANNEL_AXIS = 1            # conv2d's output is [N, C, H, W]
_AFFINE_OPS = ("add", "sub", "mul", "div", "neg")


@dataclass(frozen=True)
class AffineStep:
    """One node of a chain: ``op`` applied to the chain's value and ``operand`` (None for neg).

    ``chain_first`` says whether the chain's value is the op's first operand,
    which matters for sub (x - p versus p - x).
    """
    node: Node
    operand: Node | None
    chain_first: bool


@dataclass(frozen=True)
class FoldableChain:
    """A conv2d and the per-channel affine steps after it, the last of which the fold replaces."""
    conv: Node
    steps: tuple[AffineStep, ...]

    @property
    def end(self) -> Node:
        return self.steps[-1].node


def bn_fold(graph: Graph) -> Graph:
    """Rewrite every foldable conv2d → affine chain into one conv2d on a folded weight (+ a bias add)."""
    chains = {chain.end: chain for chain in find_chains(graph)}
    absorbed = {n for chain in chains.values() for n in (chain.conv, *(s.node for s in chain.steps[:-1]))}
    rewriter = Rewriter(graph)
    for node in graph.nodes:
        if node in chains:
            _emit_folded(rewriter, chains[node])
        elif node not in absorbed:
            rewriter.copy(node)
    return rewriter.finish()


# -- matching -------------------------------------------------------------------------

def find_chains(graph: Graph) -> list[FoldableChain]:
    """Every conv2d whose output flows only through per-channel affine steps worth folding."""
    users = graph.users()
    escaping = {*graph.outputs, *(value for _, value in graph.writes)}
    static = static_values(graph)
    chains = []
    for conv in graph.nodes:
        if conv.op != "conv2d" or not conv.dtype.is_float or conv in static:
            continue
        steps = _affine_steps(conv, users, escaping, static)
        if _worth_folding(steps):
            chains.append(FoldableChain(conv, tuple(steps)))
    return chains


def static_values(graph: Graph) -> set[Node]:
    """Values computed from parameters, buffers, state and constants alone, never from data.

    A chain operand must be static: it then cannot depend on the conv (no
    cycle), and folding it costs work proportional to the weight, not the batch.
    A conv that is itself static has no batch to save work on.
    """
    static = {n for n in graph.inputs if n.tag != "data"}
    for node in graph.nodes:
        if all(i in static for i in node.inputs):
            static.add(node)
    return static


def _affine_steps(conv: Node, users: dict[Node, list[Node]], escaping: set[Node],
                  static: set[Node]) -> list[AffineStep]:
    """The longest run of affine steps from ``conv`` in which each value has one user, the next step."""
    steps: list[AffineStep] = []
    value = conv
    while value not in escaping and len(users[value]) == 1:
        step = _as_affine_step(users[value][0], value, conv, static)
        if step is None:
            break
        steps.append(step)
        value = step.node
    return steps


def _as_affine_step(node: Node, value: Node, conv: Node, static: set[Node]) -> AffineStep | None:
    """``node`` as a per-channel affine function of ``value``, if it is one."""
    if node.op not in _AFFINE_OPS or node.type != conv.type:
        return None
    if node.op == "neg":
        return AffineStep(node, None, True)
    lhs, rhs = node.inputs
    if (lhs is value) == (rhs is value):        # x * x is not affine; neither is a step off the chain
        return None
    chain_first = lhs is value
    operand = rhs if chain_first else lhs
    if node.op == "div" and not chain_first:    # p / x is not affine in x
        return None
    if operand not in static or not is_per_channel(unexpanded(operand).shape, conv.shape):
        return None
    return AffineStep(node, operand, chain_first)


def is_per_channel(shape: tuple[int, ...], output_shape: tuple[int, ...]) -> bool:
    """Whether a value of ``shape``, broadcast against ``output_shape``, varies along the channel axis only."""
    offset = len(output_shape) - len(shape)
    if offset < 0:
        return False
    return all(size == 1 or (offset + axis == CHANNEL_AXIS and size == output_shape[CHANNEL_AXIS])
               for axis, size in enumerate(shape))


def unexpanded(node: Node) -> Node:
    """``node`` without the expands on top: a broadcast the frontend spelled out, which the ops do anyway."""
    while node.op == "expand":
        node = node.inputs[0]
    return node


def _worth_folding(steps: list[AffineStep]) -> bool:
    """A lone bias add is already as cheap as it gets; a scale, or several steps, is worth folding."""
    return len(steps) > 1 or any(s.node.op in ("mul", "div", "neg") for s in steps)


# -- rewriting ------------------------------------------------------------------------

def _emit_folded(rewriter: Rewriter, chain: FoldableChain) -> None:
    """Emit conv2d(x, w * scale) + bias in place of the chain, keeping the conv's and the chain end's names."""
    b = rewriter.builder
    b.loc = chain.conv.loc              # helper nodes point at the user's conv
    affine = _compose(rewriter, chain)
    scale = affine.scale()
    bias = affine.bias(scale)
    x, w = rewriter.values(chain.conv.inputs)
    channels = chain.conv.shape[CHANNEL_AXIS]
    if scale is not None:
        per_output_channel = b.reshape(scale, shape=(channels, 1, 1, 1)) if scale.shape else scale
        w = b.mul(w, per_output_channel, name=f"{w.name}_folded")
    if bias is not None and bias.shape:
        bias = b.reshape(bias, shape=(1, channels, 1, 1))
    b.loc = None
    folded_conv = NewNode.of("conv2d", [x, w], **chain.conv.attrs)
    # The old conv's only user was the chain, so its name is free for the folded conv.
    if bias is None:
        rewriter.emit(chain.end, folded_conv)
    else:
        rewriter.emit(chain.end, NewNode.of("add", [rewriter.emit(chain.conv, folded_conv), bias]))


class AffineMap:
    """y = (conv + offset) * numerator / denominator + shift, per channel, as nodes being built.

    Offsets met before any scaling are kept apart from those after, and the
    scale is kept as a fraction, so BatchNorm folds into its textbook form:
    scale = gamma / sqrt(var + eps) and bias = (b - mean) * scale + beta.
    Each part is a [C] or [] node, or None (0 for the sums, 1 for the factors).
    """

    def __init__(self, builder, dtype):
        self.b = builder
        self.dtype = dtype
        self.offset = self.numerator = self.denominator = self.shift = None

    @property
    def scaled(self) -> bool:
        return self.numerator is not None or self.denominator is not None

    def add(self, p: Node) -> None:
        if self.scaled:
            self.shift = self.b.add(self.shift, p) if self.shift is not None else p
        else:
            self.offset = self.b.add(self.offset, p) if self.offset is not None else p

    def subtract(self, p: Node) -> None:
        if self.scaled:
            self.shift = self.b.sub(self.shift, p) if self.shift is not None else self.b.neg(p)
        else:
            self.offset = self.b.sub(self.offset, p) if self.offset is not None else self.b.neg(p)

    def negate(self) -> None:
        self.numerator = self.b.neg(self.numerator) if self.numerator is not None else self.b.scalar(-1, self.dtype)
        self.shift = self.b.neg(self.shift) if self.shift is not None else None

    def multiply(self, p: Node) -> None:
        self.numerator = self.b.mul(self.numerator, p) if self.numerator is not None else p
        self.shift = self.b.mul(self.shift, p) if self.shift is not None else None

    def divide(self, p: Node) -> None:
        self.denominator = self.b.mul(self.denominator, p) if self.denominator is not None else p
        self.shift = self.b.div(self.shift, p) if self.shift is not None else None

    def scale(self) -> Node | None:
        """numerator / denominator, the factor for the conv's weight (None: 1)."""
        if self.denominator is None:
            return self.numerator
        if self.numerator is None:
            return self.b.reciprocal(self.denominator)
        return self.b.div(self.numerator, self.denominator)

    def bias(self, scale: Node | None) -> Node | None:
        """offset * scale + shift, the bias added after the folded conv (None: 0)."""
        bias = self.offset
        if bias is not None and scale is not None:
            bias = self.b.mul(bias, scale)
        if self.shift is not None:
            bias = self.b.add(bias, self.shift) if bias is not None else self.shift
        return bias


def _compose(rewriter: Rewriter, chain: FoldableChain) -> AffineMap:
    """The chain's steps as one AffineMap of the conv's output."""
    affine = AffineMap(rewriter.builder, chain.conv.dtype)
    for step in chain.steps:
        if step.node.op == "neg":
            affine.negate()
            continue
        p = _channel_vector(rewriter, rewriter.value(step.operand), chain.conv.shape)
        if step.node.op == "add":
            affine.add(p)
        elif step.node.op == "sub" and step.chain_first:
            affine.subtract(p)
        elif step.node.op == "sub":         # p - x
            affine.negate()
            affine.add(p)
        elif step.node.op == "mul":
            affine.multiply(p)
        else:
            affine.divide(p)
    return affine


def _channel_vector(rewriter: Rewriter, operand: Node, output_shape: tuple[int, ...]) -> Node:
    """A per-channel operand as a [C] vector, or as a scalar when it is one value for every channel."""
    operand = unexpanded(operand)
    if operand.type.numel == 1:
        target = ()
    else:
        target = (output_shape[CHANNEL_AXIS],)
    return operand if operand.shape == target else rewriter.builder.reshape(operand, shape=target)


register_pass("bn_fold", lambda graph, options: bn_fold(graph),
              "fold per-channel affine chains after conv2d (eval-mode BatchNorm, bias) into its weight")
