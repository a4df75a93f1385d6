"""Finding a dataset's files on disk and reading them whole, with errors that say what to do."""
from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from .errors import DatasetError

READ_CHUNK = 1 << 20


def find_file(names: Sequence[str], folders: Sequence[Path], how_to_get: str) -> Path:
    """The first of ``names`` that exists in the first folder holding one, searching ``folders`` in order."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    places = ", ".join(str(folder) for folder in folders)
    raise DatasetError(f"{names[0]} not found (looked in {places}). {how_to_get}")


def read_bytes(path: Path, how_to_get: str) -> bytes:
    """The contents of ``path``, decompressed when it ends in .gz."""
    with open_data_file(path, how_to_get) as file:
        return read_up_to(file, None, path, how_to_get)


@contextlib.contextmanager
def open_data_file(path: Path, how_to_get: str):
    """``path`` opened for reading bytes, through gzip when it ends in .gz; read errors become DatasetErrors."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as file:
            yield file
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"could not read {path}: {error} (a truncated or corrupt file?). {how_to_get}") from error


def read_up_to(file, limit: int | None, path: Path, how_to_get: str) -> bytearray:
    """At most ``limit`` bytes from ``file`` (all of it for None), read a chunk at a time, so that a file
    that decompresses to far more than expected (a gzip bomb) is stopped at the limit."""
    data = bytearray()
    try:
        while limit is None or len(data) < limit:
            chunk = file.read(READ_CHUNK if limit is None else min(READ_CHUNK, limit - len(data)))
            if not chunk:
                break
            data += chunk
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"could not read {path}: {error} (a truncated or corrupt file?). {how_to_get}") from error
    return data
