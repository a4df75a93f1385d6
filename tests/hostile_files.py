"""A corpus of hostile and foreign files, built by the tests themselves (nothing is downloaded or stored).

Each builder returns the bytes of one file (or writes it), so a test can put
it where a reader looks and assert the error that reader gives.  The files
are what a damaged disk, another framework or an attacker might hand graphc:
checkpoints with odd dtypes and lying headers, IDX files that decompress to
gigabytes, pickles that call functions, images that decompress to gigapixels.
"""
from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import zlib

import numpy as np

# -- safetensors checkpoints -------------------------------------------------------------------


def safetensors_bytes(header: dict | bytes, data: bytes = b"", claimed_size: int | None = None) -> bytes:
    """A safetensors file: the 8-byte header length (``claimed_size`` if given), the JSON header, the data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(text) if claimed_size is None else claimed_size
    return struct.pack("<Q", size) + text + data


def bf16_checkpoint(values: list[float]) -> bytes:
    """A foreign checkpoint with one BF16 tensor ``w`` (the top 16 bits of each float32 value)."""
    bits = (np.array(values, np.float32).view(np.uint32) >> 16).astype("<u2")
    return safetensors_bytes({"w": {"dtype": "BF16", "shape": [len(values)], "data_offsets": [0, bits.nbytes]}},
                             bits.tobytes())


def f8_checkpoint() -> bytes:
    """A foreign checkpoint with one F8_E4M3 tensor ``scale``: a type numpy has no equivalent of."""
    return safetensors_bytes({"scale": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, bytes(4))


def graphc_checkpoint(structure_json: str, tensors: dict[str, np.ndarray] | None = None) -> bytes:
    """A file that claims to be graphc's, with the given text as its structure (and float32 tensors)."""
    header, data = {}, b""
    for name, array in (tensors or {}).items():
        raw = np.ascontiguousarray(array, "<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"graphc": '{"format_version": 1, "structure": ' + structure_json + "}"}
    return safetensors_bytes(header, data)


def nested_structure(depth: int) -> str:
    """A graphc structure of ``depth`` lists, one inside the other."""
    return '{"list": [' * depth + "null" + "]}" * depth


# -- IDX files (MNIST) --------------------------------------------------------------------------


def idx_header(magic: int, shape: tuple[int, ...]) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in shape)


def gzip_bomb(header: bytes, zero_bytes: int) -> bytes:
    """``header`` followed by ``zero_bytes`` zeros, gzipped: ~1 KB on disk per MB it decompresses to."""
    out = io.BytesIO()
    chunk = bytes(1 << 20)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as file:
        file.write(header)
        for _ in range(zero_bytes // len(chunk)):
            file.write(chunk)
        file.write(bytes(zero_bytes % len(chunk)))
    return out.getvalue()


# -- pickles (CIFAR-10's python batches) -------------------------------------------------------------


def cifar_batch_pickle(count: int, protocol: int) -> bytes:
    """A valid CIFAR-10 python batch of ``count`` images, pickled with ``protocol``."""
    rng = np.random.default_rng(count)
    batch = {"batch_label": "testing batch 1 of 1",
             "labels": [int(label) for label in rng.integers(0, 10, count)],
             "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
             "filenames": [f"image_{i}.png" for i in range(count)]}
    return pickle.dumps(batch, protocol=protocol)


class _RunsACommand:
    """Unpickling this calls os.system: what a malicious dataset file does."""

    def __reduce__(self):
        import os
        return os.system, ("echo pwned > /dev/null",)


def malicious_pickle(protocol: int = 2) -> bytes:
    return pickle.dumps({"data": _RunsACommand(), "labels": [0]}, protocol=protocol)


# -- images ----------------------------------------------------------------------------------


def png_bytes(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A grayscale PNG of the given size: tiny on disk when the pixels are all zero, whatever the size."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = rows if rows is not None else _zero_rows(width, height)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _zero_rows(width: int, height: int) -> bytes:
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)           # a filter byte, then the pixels
    return b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
