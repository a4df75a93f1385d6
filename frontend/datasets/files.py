"""Finding a dataset's files on disk and reading them whole, with errors that say what to do."""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from .errors import DatasetError


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
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"could not read {path}: {error} (a truncated or corrupt file?). {how_to_get}") from error
