"""Random primitives: counter-based uniform and normal samples (Philox4x32-10).

A counter-based generator turns (key, counter) into random bits with a pure
function, so every backend draws exactly the same numbers (dropout masks
agree bit for bit) and there is no hidden generator state in the graph.
Both ops take ``key``, an ``i64[2]`` tensor holding (seed, offset), both read
as unsigned 64-bit:

* the Philox key is (seed low 32 bits, seed high 32 bits);
* block ``b`` of a draw is Philox4x32-10 of the counter
  (c low 32 bits, c high 32 bits, 0, 0) with ``c = offset + b`` (wrapping at
  2^64), giving four 32-bit words ``w0..w3``.

The frontend advances ``offset`` by ``blocks_used(...)`` after each draw, so
consecutive draws never share a block.  How elements take words:

* ``rand`` f32: element i is word i%4 of block i//4; value (w >> 8) * 2^-24.
* ``rand`` f64: element i is word pair (2*(i%2), 2*(i%2)+1) of block i//2,
  joined as v = lo | hi << 32 (the first word is the low half);
  value (v >> 11) * 2^-53.
* ``randn``: element i takes the same word pair (w0, w1) as rand f64 and
  applies Box-Muller in float64 before casting to the output dtype:
  u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1], u2 = (w1 >> 8) * 2^-24,
  z = sqrt(-2 ln u1) * cos(2 pi u2).

Every value lies in [0, 1) for rand (never 1.0) and is finite for randn
(u1 is never 0).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.dtypes import DType, f32, f64, i64
from ..ir.types import TensorType
from ..kernel import expr as E
from ..kernel.builder import Index
from .registry import Attr, OpDef, ShapeMismatch, register

# Philox4x32 multipliers and Weyl key increments (Salmon et al. 2011, Random123).
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint64(0x9E3779B9)
PHILOX_W1 = np.uint64(0xBB67AE85)
PHILOX_ROUNDS = 10

WORDS_PER_BLOCK = 4
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


# -- the generator ------------------------------------------------------------------

def philox4x32(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 of each 4-word counter under a 2-word key.

    ``counters`` has shape (..., 4) and holds 32-bit words; ``key`` is two
    32-bit words.  Returns uint32 words of the same shape.  The arithmetic is
    done in uint64 so that a 32x32-bit product, which always fits, yields its
    high and low halves without overflow.
    """
    counters = np.asarray(counters, dtype=np.uint32).astype(np.uint64)
    c0, c1, c2, c3 = (counters[..., i] for i in range(WORDS_PER_BLOCK))
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for round_index in range(PHILOX_ROUNDS):
        if round_index > 0:
            k0 = (k0 + PHILOX_W0) & _LOW32
            k1 = (k1 + PHILOX_W1) & _LOW32
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _LOW32,
                          (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _LOW32)
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def philox_blocks(seed: int, offset: int, n_blocks: int) -> np.ndarray:
    """The ``n_blocks`` blocks of the stream (seed, offset): uint32 words of shape (n_blocks, 4)."""
    seed, offset = np.uint64(seed), np.uint64(offset)
    key = (int(seed & _LOW32), int(seed >> _SHIFT32))
    # Adding a uint64 array to a uint64 scalar wraps at 2^64, which is the counter's semantics.
    counter = np.arange(n_blocks, dtype=np.uint64) + offset
    counters = np.zeros((n_blocks, WORDS_PER_BLOCK), dtype=np.uint32)
    counters[:, 0] = counter & _LOW32
    counters[:, 1] = counter >> _SHIFT32
    return philox4x32(counters, key)


def blocks_used(op_name: str, n: int, dtype: DType) -> int:
    """How many Philox blocks ``op_name`` ("rand" or "randn") consumes for ``n`` elements of ``dtype``.

    The frontend adds this to the offset of its key after each draw.
    """
    if op_name == "rand" and dtype == f32:
        per_block = 4
    elif op_name in ("rand", "randn"):
        per_block = 2
    else:
        raise ValueError(f"blocks_used: {op_name!r} is not a random op (expected 'rand' or 'randn')")
    return -(-n // per_block)


# -- words to numbers -----------------------------------------------------------------

def _stream_words(key: np.ndarray, n_blocks: int) -> np.ndarray:
    """The flat uint32 words of the stream named by an i64[2] (seed, offset) key."""
    seed, offset = np.ascontiguousarray(key, dtype=np.int64).view(np.uint64)
    return philox_blocks(seed, offset, n_blocks).reshape(-1)


def _word_pairs(words: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and second word of each of the first ``n`` word pairs, as uint64."""
    return words[0::2][:n].astype(np.uint64), words[1::2][:n].astype(np.uint64)


def _uniform24(words: np.ndarray) -> np.ndarray:
    """The top 24 bits of each word as an exact float64 in [0, 1)."""
    return (words >> np.uint64(8)).astype(np.float64) * 2.0 ** -24


def _rand_reference(arrays, attrs):
    shape, dtype = attrs["shape"], attrs["dtype"]
    n = math.prod(shape)
    words = _stream_words(arrays[0], blocks_used("rand", n, dtype))
    if dtype == f32:
        top24 = (words[:n] >> np.uint32(8)).astype(np.float32)
        values = top24 * np.float32(2.0 ** -24)
    else:
        lo, hi = _word_pairs(words, n)
        top53 = ((hi << _SHIFT32) | lo) >> np.uint64(11)
        values = top53.astype(np.float64) * 2.0 ** -53
    return values.reshape(shape)


def _randn_reference(arrays, attrs):
    shape, dtype = attrs["shape"], attrs["dtype"]
    n = math.prod(shape)
    w0, w1 = _word_pairs(_stream_words(arrays[0], blocks_used("randn", n, dtype)), n)
    u1 = _uniform24(w0) + 2.0 ** -24          # in (0, 1]: the logarithm stays finite
    u2 = _uniform24(w1)
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return z.astype(dtype.numpy).reshape(shape)


# -- lowering: Philox in 64-bit integer arithmetic -------------------------------------
#
# Each element computes the block it takes its words from.  The 32-bit words
# live in i64 values: a product of two of them fits 64 bits (its bit pattern is
# right even where it passes 2^63), ``lshr`` takes its high half and a mask its low.

def _philox_words(ctx, key_node, block: E.Expr) -> list[E.Expr]:
    bind, low = ctx.builder.bind, E.const(0xFFFFFFFF, i64)
    seed = ctx.value(key_node, Index.of((2,), (0,)))
    offset = ctx.value(key_node, Index.of((2,), (1,)))
    counter = bind(E.add(offset, block))
    c0, c1 = bind(E.binary("and", counter, low)), bind(E.binary("lshr", counter, E.const(32, i64)))
    c2 = c3 = E.const(0, i64)
    k0, k1 = bind(E.binary("and", seed, low)), bind(E.binary("lshr", seed, E.const(32, i64)))
    for round_index in range(PHILOX_ROUNDS):
        if round_index > 0:
            k0 = bind(E.binary("and", E.add(k0, int(PHILOX_W0)), low))
            k1 = bind(E.binary("and", E.add(k1, int(PHILOX_W1)), low))
        p0 = bind(E.mul(c0, int(PHILOX_M0)))
        p1 = bind(E.mul(c2, int(PHILOX_M1)))
        c0, c1, c2, c3 = (
            bind(E.binary("xor", E.binary("xor", E.binary("lshr", p1, E.const(32, i64)), c1), k0)),
            bind(E.binary("and", p1, low)),
            bind(E.binary("xor", E.binary("xor", E.binary("lshr", p0, E.const(32, i64)), c3), k1)),
            bind(E.binary("and", p0, low)))
    return [c0, c1, c2, c3]


def _pick(position: E.Expr, choices: list[E.Expr]) -> E.Expr:
    """``choices[position]`` for a position known to be in range."""
    value = choices[-1]
    for i in reversed(range(len(choices) - 1)):
        value = E.select(E.eq(position, i), choices[i], value)
    return value


def _word_pair(ctx, node, index: Index) -> tuple[E.Expr, E.Expr]:
    """The (first, second) words of element ``index``'s pair: pair i%2 of block i//2."""
    flat = index.linear()
    w = _philox_words(ctx, node.inputs[0], E.div(flat, 2))
    second_pair = E.eq(E.rem(flat, 2), 1)
    return E.select(second_pair, w[2], w[0]), E.select(second_pair, w[3], w[1])


def _top_bits_scaled(word: E.Expr, shift: int, dtype: DType, scale: float) -> E.Expr:
    return E.mul(E.cast(E.binary("lshr", word, E.const(shift, i64)), dtype), E.const(scale, dtype))


def _lower_rand(ctx, node, index: Index):
    if node.dtype == f32:
        flat = index.linear()
        word = _pick(E.rem(flat, WORDS_PER_BLOCK), _philox_words(ctx, node.inputs[0], E.div(flat, WORDS_PER_BLOCK)))
        return _top_bits_scaled(word, 8, f32, 2.0 ** -24)
    first, second = _word_pair(ctx, node, index)
    joined = E.binary("or", first, E.binary("shl", second, E.const(32, i64)))
    return _top_bits_scaled(joined, 11, f64, 2.0 ** -53)


def _lower_randn(ctx, node, index: Index):
    first, second = _word_pair(ctx, node, index)
    u1 = E.add(_top_bits_scaled(first, 8, f64, 2.0 ** -24), E.const(2.0 ** -24, f64))
    u2 = _top_bits_scaled(second, 8, f64, 2.0 ** -24)
    radius = E.unary("sqrt", E.mul(E.const(-2.0, f64), E.unary("log", u1)))
    z = E.mul(radius, E.unary("cos", E.mul(E.const(2.0 * math.pi, f64), u2)))
    return E.cast(z, node.dtype)


# -- registration -----------------------------------------------------------------------

def _random_shape(types, attrs):
    (key,) = types
    if key != TensorType((2,), i64):
        raise ShapeMismatch(f"key must be i64[2] holding (seed, offset), got {key}")
    shape, dtype = attrs["shape"], attrs["dtype"]
    if any(d < 0 for d in shape):
        raise ShapeMismatch(f"negative dimension in shape {list(shape)}")
    if dtype not in (f32, f64):
        raise ShapeMismatch(f"dtype must be f32 or f64, got {dtype}")
    return TensorType(shape, dtype)


_RANDOM_ATTRS = {"shape": Attr("ints"), "dtype": Attr("dtype", f32)}

register(OpDef(
    name="rand", family="random", inputs=("key",), attrs=_RANDOM_ATTRS,
    shape_rule=_random_shape, reference=_rand_reference, lower=_lower_rand, differentiable=False,
    doc="Uniform samples in [0, 1) from the Philox4x32-10 stream at key = (seed, offset).",
))

register(OpDef(
    name="randn", family="random", inputs=("key",), attrs=_RANDOM_ATTRS,
    shape_rule=_random_shape, reference=_randn_reference, lower=_lower_randn, differentiable=False,
    doc="Standard normal samples (Box-Muller) from the Philox4x32-10 stream at key = (seed, offset).",
))
