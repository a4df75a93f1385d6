import numpy as np
import pytest

from graphc.errors import ShapeError
from graphc.ir import GraphBuilder, f32, f64
from graphc.ops.registry import OPS
from graphc.ops.random import blocks_used, philox4x32, philox_blocks
from optest import require_torch, run_op

MASK32 = 0xFFFFFFFF
NUMPY_DTYPES = {"f32": np.float32, "f64": np.float64}

# Philox4x32-10 known-answer vectors from Random123's kat_vectors: (counter, key, result).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32, MASK32, MASK32, MASK32), (MASK32, MASK32),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def scalar_philox(counter, key):
    """Philox4x32-10 written plainly over Python ints: an oracle independent of the numpy version."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(10):
        if round_index > 0:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
    return c0, c1, c2, c3


def scalar_words(seed, offset, n_blocks):
    """The stream's words, one block at a time, through the scalar oracle."""
    words = []
    for b in range(n_blocks):
        c = (offset + b) % 2 ** 64
        words += scalar_philox((c & MASK32, c >> 32, 0, 0), (seed & MASK32, seed >> 32))
    return words


def key(seed, offset=0):
    """An i64[2] key; seeds and offsets at or above 2^63 are stored as their two's complement."""
    return np.array([seed, offset], dtype=np.uint64).view(np.int64)


# -- the generator --------------------------------------------------------------------

@pytest.mark.parametrize("counter, philox_key, expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, philox_key, expected):
    assert scalar_philox(counter, philox_key) == expected
    got = philox4x32(np.array(counter, dtype=np.uint32), philox_key)
    assert got.dtype == np.uint32
    assert tuple(int(w) for w in got) == expected


def test_philox_vectorises_over_counters():
    counters = np.array([c for c, _, _ in KNOWN_ANSWERS[:2]], dtype=np.uint32)
    got = philox4x32(counters, (0, 0))
    assert [tuple(int(w) for w in row) for row in got] == [scalar_philox(tuple(c), (0, 0)) for c in counters.tolist()]


@pytest.mark.parametrize("seed, offset", [(0, 0), (42, 7), (2 ** 40 + 3, 2 ** 35), (5, 2 ** 64 - 2)])
def test_blocks_use_seed_halves_as_key_and_offset_as_counter(seed, offset):
    # The last case wraps the 64-bit counter from 2^64 - 1 to 0.
    got = philox_blocks(seed, offset, 3).reshape(-1)
    assert [int(w) for w in got] == scalar_words(seed, offset, 3)


# -- rand and randn -------------------------------------------------------------------

@pytest.mark.parametrize("op", ["rand", "randn"])
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 0, 4), (2, 3, 4)])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_shape_and_dtype_match_torch(op, shape, dtype):
    torch = require_torch()
    torch_dtype = {"f32": torch.float32, "f64": torch.float64}[dtype]
    want = getattr(torch, op)(shape, dtype=torch_dtype).numpy()
    got = run_op(op, [key(1)], shape=shape, dtype=dtype)
    assert got.shape == want.shape
    assert got.dtype == want.dtype


def test_rand_f32_takes_one_word_per_element():
    words = scalar_words(9, 3, 2)
    want = np.array([(w >> 8) * 2.0 ** -24 for w in words[:7]], dtype=np.float32)
    np.testing.assert_array_equal(run_op("rand", [key(9, 3)], shape=(7,)), want)


def test_rand_f64_joins_word_pairs_low_word_first():
    words = scalar_words(9, 3, 3)
    joined = [lo | hi << 32 for lo, hi in zip(words[0::2], words[1::2])]
    want = np.array([(v >> 11) * 2.0 ** -53 for v in joined[:5]])
    np.testing.assert_array_equal(run_op("rand", [key(9, 3)], shape=(5,), dtype="f64"), want)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_randn_is_box_muller_over_word_pairs(dtype):
    words = scalar_words(11, 0, 3)
    u1 = np.array([((w >> 8) + 1) * 2.0 ** -24 for w in words[0::2][:5]])
    u2 = np.array([(w >> 8) * 2.0 ** -24 for w in words[1::2][:5]])
    want = (np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)).astype(NUMPY_DTYPES[dtype])
    np.testing.assert_array_equal(run_op("randn", [key(11)], shape=(5,), dtype=dtype), want)


@pytest.mark.parametrize("op", ["rand", "randn"])
def test_same_key_same_numbers_other_seed_other_numbers(op):
    first = run_op(op, [key(123, 4)], shape=(4, 6))
    np.testing.assert_array_equal(first, run_op(op, [key(123, 4)], shape=(4, 6)))
    assert not np.any(first == run_op(op, [key(124, 4)], shape=(4, 6)))
    # The seed's high half is part of the Philox key too.
    assert not np.any(first == run_op(op, [key(123 + 2 ** 32, 4)], shape=(4, 6)))


@pytest.mark.parametrize("op, dtype", [("rand", "f32"), ("rand", "f64"), ("randn", "f32"), ("randn", "f64")])
@pytest.mark.parametrize("skip", [1, 5])
def test_offset_continues_the_stream(op, dtype, skip):
    per_block = 4 if (op, dtype) == ("rand", "f32") else 2
    long_draw = run_op(op, [key(77, 0)], shape=(per_block * (skip + 6),), dtype=dtype)
    tail = run_op(op, [key(77, skip)], shape=(per_block * 6,), dtype=dtype)
    np.testing.assert_array_equal(tail, long_draw[per_block * skip:])


def test_offset_wraps_at_two_to_the_64():
    wrapped = run_op("rand", [key(3, 2 ** 64 - 1)], shape=(8,))
    np.testing.assert_array_equal(wrapped[4:], run_op("rand", [key(3, 0)], shape=(4,)))


def test_blocks_used():
    assert [blocks_used("rand", n, f32) for n in (0, 1, 4, 5, 12)] == [0, 1, 1, 2, 3]
    assert [blocks_used("rand", n, f64) for n in (0, 1, 2, 3)] == [0, 1, 1, 2]
    assert [blocks_used("randn", n, dtype) for n in (1, 2, 3) for dtype in (f32, f64)] == [1, 1, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="'dropout' is not a random op"):
        blocks_used("dropout", 4, f32)


def test_consecutive_draws_advanced_by_blocks_used_do_not_overlap():
    n = 10
    first = run_op("rand", [key(5, 0)], shape=(n,))
    second = run_op("rand", [key(5, blocks_used("rand", n, f32))], shape=(n,))
    whole = run_op("rand", [key(5, 0)], shape=(2 * n + 2,))
    np.testing.assert_array_equal(first, whole[:n])
    np.testing.assert_array_equal(second, whole[12:12 + n])


# -- statistics -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_rand_is_uniform_on_zero_one(dtype):
    x = run_op("rand", [key(2024)], shape=(200_000,), dtype=dtype).astype(np.float64)
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.005
    assert abs(x.var() - 1 / 12) < 0.002
    counts, _ = np.histogram(x, bins=10, range=(0.0, 1.0))
    np.testing.assert_allclose(counts / len(x), 0.1, atol=0.005)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_randn_is_standard_normal(dtype):
    z = run_op("randn", [key(2025)], shape=(200_000,), dtype=dtype).astype(np.float64)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 0.01
    assert abs(z.var() - 1.0) < 0.02
    assert abs(np.mean(z ** 3)) < 0.05              # skewness of N(0,1) is 0
    assert abs(np.mean(z ** 4) - 3.0) < 0.1         # kurtosis of N(0,1) is 3
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6827) < 0.005


def test_randn_quantiles_are_the_normal_distributions():
    z = np.sort(run_op("randn", [key(31)], shape=(100_000,), dtype="f64"))
    # Phi^-1 at 1%, 10%, 50%, 90% and 99%.
    normal_quantiles = [-2.326348, -1.281552, 0.0, 1.281552, 2.326348]
    np.testing.assert_allclose(z[[1_000, 10_000, 50_000, 90_000, 99_000]], normal_quantiles, atol=0.03)


# -- the op definitions -------------------------------------------------------------------

@pytest.mark.parametrize("op", ["rand", "randn"])
def test_random_ops_are_not_differentiable_and_default_to_f32(op):
    assert OPS[op].family == "random"
    assert not OPS[op].differentiable
    b = GraphBuilder()
    assert b.op(op, b.input("key", "i64[2]"), shape=(2, 3)).type.dtype == f32


@pytest.mark.parametrize("op", ["rand", "randn"])
@pytest.mark.parametrize("key_type, reason", [
    ("i32[2]", r"key must be i64\[2\] holding \(seed, offset\), got i32\[2\]"),
    ("i64[3]", r"key must be i64\[2\] holding \(seed, offset\), got i64\[3\]"),
    ("i64[1,2]", r"key must be i64\[2\] holding \(seed, offset\), got i64\[1,2\]"),
    ("f32[2]", r"key must be i64\[2\] holding \(seed, offset\), got f32\[2\]"),
])
def test_key_must_be_i64_pair(op, key_type, reason):
    b = GraphBuilder()
    with pytest.raises(ShapeError, match=rf"{op}: {reason}"):
        b.op(op, b.input("key", key_type), shape=(4,))


@pytest.mark.parametrize("op", ["rand", "randn"])
@pytest.mark.parametrize("dtype", ["i64", "i32", "u8", "bool"])
def test_dtype_must_be_floating_point(op, dtype):
    b = GraphBuilder()
    with pytest.raises(ShapeError, match=rf"{op}: dtype must be f32 or f64, got {dtype}"):
        b.op(op, b.input("key", "i64[2]"), shape=(4,), dtype=dtype)


def test_negative_dimension_is_rejected():
    b = GraphBuilder()
    with pytest.raises(ShapeError, match=r"rand: negative dimension in shape \[2, -1\]"):
        b.op("rand", b.input("key", "i64[2]"), shape=(2, -1))
