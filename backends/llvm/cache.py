"""The on-disk cache of compiled object code.

An entry is keyed by everything that determines the machine code: the
program's text and its stored constants, the number of threads it was built
for, the optimization pipeline's options, the target CPU's name and features (an object built for AVX-512 never
loads on an AVX2 machine), and the graphc and llvmlite versions.  Entries are
written to a temporary file and renamed, so a reader never sees half an
entry, and carry a checksum: a corrupt or truncated entry is reported with a
warning and rebuilt, never loaded.

``GRAPHC_CACHE_DIR`` chooses the folder (default ``$XDG_CACHE_HOME/graphc``
or ``~/.cache/graphc``); ``GRAPHC_CACHE_DIR=off`` turns the cache off.  The
cache keeps at most ``GRAPHC_CACHE_MAX_MB`` megabytes (default 1024): storing
an entry past that removes the least recently used ones (a load marks an
entry used).  ``graphc cache info`` and ``graphc cache clear`` show and empty it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import llvmlite

MAGIC = b"graphc-object-1\n"
DEFAULT_MAX_MB = 1024


def cache_dir() -> Path | None:
    value = os.environ.get("GRAPHC_CACHE_DIR")
    if value == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "graphc"


def _graphc_version() -> str:
    try:
        return metadata.version("graphc")
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_key(program_text: str, constants: list[bytes], threads: int, cpu: str, features: str,
              options: str) -> str:
    digest = hashlib.sha256()
    for part in (program_text, str(threads), cpu, features, options, _graphc_version(), llvmlite.__version__):
        digest.update(part.encode())
        digest.update(b"\0")
    for data in constants:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def _path(key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / "llvm" / key[:2] / f"{key}.o"


def load(key: str) -> bytes | None:
    """The object code stored under ``key``, or None (a damaged entry is removed, with a warning)."""
    path = _path(key)
    if path is None or not path.exists():
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header_size = len(MAGIC) + 64
    checksum, payload = data[len(MAGIC):header_size].decode("ascii", "replace"), data[header_size:]
    if not data.startswith(MAGIC) or hashlib.sha256(payload).hexdigest() != checksum:
        warnings.warn(f"graphc: the compile cache entry {path} is damaged; compiling again", RuntimeWarning,
                      stacklevel=3)
        _remove(path)
        return None
    os.utime(path)                    # most recently used, for eviction
    return payload


def store(key: str, object_code: bytes) -> None:
    path = _path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as handle:
            handle.write(MAGIC + hashlib.sha256(object_code).hexdigest().encode() + object_code)
        os.replace(handle.name, path)
    except OSError as err:            # a read-only or full disk: run without caching
        warnings.warn(f"graphc: could not write the compile cache ({err}); continuing without it",
                      RuntimeWarning, stacklevel=3)
        return
    evict(max_bytes())


def max_bytes() -> int:
    value = os.environ.get("GRAPHC_CACHE_MAX_MB", str(DEFAULT_MAX_MB))
    try:
        return max(0, int(float(value) * 2 ** 20))
    except ValueError:
        return DEFAULT_MAX_MB * 2 ** 20


@dataclass(frozen=True)
class CacheInfo:
    folder: Path | None
    entries: int
    bytes: int

    def __str__(self) -> str:
        if self.folder is None:
            return "the compile cache is off (GRAPHC_CACHE_DIR=off)"
        return (f"{self.folder}: {self.entries} compiled program(s), {self.bytes / 2 ** 20:.1f} MiB "
                f"(at most {max_bytes() / 2 ** 20:.0f} MiB, least recently used removed first)")


def _entries() -> list[Path]:
    folder = cache_dir()
    return [] if folder is None else sorted((folder / "llvm").glob("*/*.o"))


def info() -> CacheInfo:
    entries = _entries()
    return CacheInfo(cache_dir(), len(entries), sum(_size(path) for path in entries))


def clear() -> int:
    """Remove every entry; returns how many there were."""
    entries = _entries()
    for path in entries:
        _remove(path)
    return len(entries)


def evict(limit: int) -> None:
    """Remove the least recently used entries until the cache holds at most ``limit`` bytes."""
    entries = [(path.stat().st_mtime, path) for path in _entries() if path.exists()]
    total = sum(_size(path) for _, path in entries)
    for _, path in sorted(entries):
        if total <= limit:
            break
        total -= _size(path)
        _remove(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
