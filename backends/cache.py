"""The on-disk compile cache: entries of bytes under keys, shared by every backend and process.

    key = cache.cache_key("step", graph_text, options, target)
    data = cache.load("step", key)          # None: not there (or damaged: warned, removed)
    cache.store("step", key, data, label="train_step (llvm)")

A key is the sha256 of everything that determines an entry (``cache_key``);
each kind of entry (``step``: a whole compiled step, ``llvm``: object code, ...)
lives in a folder of its own.  An entry is written to a temporary file and
renamed, so a reader never sees half of one, and two processes storing the
same entry at once each rename a whole file over the other's.  It carries a
checksum: a damaged or truncated entry is reported with a warning, removed and
rebuilt, never loaded.  Every load appends a byte to the entry's ``.hits``
file (appends of one byte are atomic, so concurrent processes lose no count)
and marks the entry used, for eviction.

``GRAPHC_CACHE_DIR`` chooses the folder (default ``$XDG_CACHE_HOME/graphc``
or ``~/.cache/graphc``); ``GRAPHC_CACHE_DIR=off`` turns the cache off.  The
cache keeps at most ``GRAPHC_CACHE_MAX_MB`` megabytes (default 1024): a process
that stores entries removes the least recently used ones past that, at its first
store and then after each sixteenth of the limit it has stored (each check reads
every entry's size: 0.3 s for a full cache of 26,000 entries, which a check at
every store had paid dozens of times per compile), so a cache outgrows its limit
by at most a sixteenth per process storing.  ``graphc cache info`` and
``graphc cache clear`` show and empty it.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

MAGIC = b"graphc-cache-2\n"
DEFAULT_MAX_MB = 1024
ENTRY_SUFFIX = ".entry"
EVICTION_CHECKS = 16              # per GRAPHC_CACHE_MAX_MB stored by one process (see store)
HITS_SUFFIX = ".hits"


def cache_dir() -> Path | None:
    value = os.environ.get("GRAPHC_CACHE_DIR")
    if value == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "graphc"


def cache_key(*parts: str | bytes) -> str:
    """The key of an entry determined by ``parts`` (each length-prefixed, so no two lists of parts collide)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _path(kind: str, key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / kind / key[:2] / f"{key}{ENTRY_SUFFIX}"


def load(kind: str, key: str) -> bytes | None:
    """The bytes stored under ``key``, or None (a damaged entry is removed, with a warning)."""
    path = _path(kind, key)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:                   # not there, or removed by another process meanwhile
        return None
    payload = _payload(data)
    if payload is None:
        warnings.warn(f"graphc: the compile cache entry {path} is damaged; compiling again", RuntimeWarning,
                      stacklevel=2)
        _remove(path)
        return None
    _count_hit(path)
    return payload


def _payload(data: bytes) -> bytes | None:
    """The payload of a stored entry, or None if it is not whole."""
    header_end = data.find(b"\n", len(MAGIC))
    label_end = data.find(b"\n", header_end + 1)
    if not data.startswith(MAGIC) or header_end < 0 or label_end < 0:
        return None
    checksum, payload = data[len(MAGIC):header_end], data[label_end + 1:]
    return payload if hashlib.sha256(payload).hexdigest().encode() == checksum else None


def _count_hit(path: Path) -> None:
    try:
        with open(path.with_suffix(HITS_SUFFIX), "ab") as hits:
            hits.write(b".")
        os.utime(path)                # most recently used, for eviction
    except OSError:                   # a read-only cache still serves its entries
        pass


def store(kind: str, key: str, data: bytes, label: str = "") -> None:
    """Store ``data`` under ``key``; ``label`` says what it is in ``graphc cache info``."""
    path = _path(kind, key)
    if path is None:
        return
    header = MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + label.replace("\n", " ").encode() + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as handle:
            handle.write(header + data)
        os.replace(handle.name, path)
    except OSError as err:            # a read-only or full disk: run without caching
        warnings.warn(f"graphc: could not write the compile cache ({err}); continuing without it",
                      RuntimeWarning, stacklevel=2)
        return
    global _unchecked_bytes
    _unchecked_bytes = None if _unchecked_bytes is None else _unchecked_bytes + len(header) + len(data)
    limit = max_bytes()
    if _unchecked_bytes is None or _unchecked_bytes >= limit // EVICTION_CHECKS:
        evict(limit)
        _unchecked_bytes = 0


# Bytes this process has stored since it last checked the cache's size (None: it has not yet).
_unchecked_bytes: int | None = None


def max_bytes() -> int:
    value = os.environ.get("GRAPHC_CACHE_MAX_MB", str(DEFAULT_MAX_MB))
    try:
        return max(0, int(float(value) * 2 ** 20))
    except ValueError:
        return DEFAULT_MAX_MB * 2 ** 20


# -- what is in it --------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    kind: str
    key: str
    label: str
    bytes: int
    hits: int
    last_used: float          # seconds since the epoch

    def __str__(self) -> str:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.last_used))
        return (f"{self.kind:6s} {self.key[:12]}  {self.bytes / 2 ** 20:7.2f} MiB  {self.hits:5d} hits  "
                f"used {used}  {self.label}")


# How many entries ``graphc cache info`` lists one by one (the most recently used).
SHOWN_ENTRIES = 20


@dataclass(frozen=True)
class CacheInfo:
    folder: Path | None
    entries: list[Entry]

    @property
    def bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries)

    @property
    def hits(self) -> int:
        return sum(entry.hits for entry in self.entries)

    def __str__(self) -> str:
        if self.folder is None:
            return "the compile cache is off (GRAPHC_CACHE_DIR=off)"
        lines = [f"{self.folder}: {len(self.entries)} entries, {self.bytes / 2 ** 20:.1f} MiB "
                 f"(at most {max_bytes() / 2 ** 20:.0f} MiB, least recently used removed first), "
                 f"{self.hits} hits"]
        for kind in sorted({entry.kind for entry in self.entries}):
            of_kind = [entry for entry in self.entries if entry.kind == kind]
            lines.append(f"  {kind:6s} {len(of_kind):5d} entries  {sum(e.bytes for e in of_kind) / 2 ** 20:7.2f} MiB  "
                         f"{sum(e.hits for e in of_kind):5d} hits")
        recent = sorted(self.entries, key=lambda entry: -entry.last_used)
        if recent:
            lines.append(f"the {min(len(recent), SHOWN_ENTRIES)} most recently used:")
            lines += [f"  {entry}" for entry in recent[:SHOWN_ENTRIES]]
        return "\n".join(lines)


def _entry_paths() -> list[Path]:
    folder = cache_dir()
    return [] if folder is None else sorted(folder.glob(f"*/*/*{ENTRY_SUFFIX}"))


def _describe(path: Path) -> Entry | None:
    try:
        stat = path.stat()
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC) + 65 + 4096)
    except OSError:
        return None
    lines = head[len(MAGIC):].split(b"\n")
    label = lines[1].decode("utf-8", "replace") if len(lines) > 2 else "(damaged)"
    return Entry(path.parent.parent.name, path.stem, label, stat.st_size, _size(path.with_suffix(HITS_SUFFIX)),
                 stat.st_mtime)


def info() -> CacheInfo:
    entries = [entry for entry in map(_describe, _entry_paths()) if entry is not None]
    return CacheInfo(cache_dir(), entries)


def clear() -> int:
    """Remove every entry; returns how many there were."""
    entries = _entry_paths()
    for path in entries:
        _remove(path)
    return len(entries)


def evict(limit: int) -> None:
    """Remove the least recently used entries until the cache holds at most ``limit`` bytes."""
    entries = []
    for path in _entry_paths():
        try:
            stat = path.stat()
        except OSError:                   # removed by another process meanwhile
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        total -= size
        _remove(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove(path: Path) -> None:
    for each in (path, path.with_suffix(HITS_SUFFIX)):
        try:
            each.unlink()
        except OSError:
            pass


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """graphc's version and a digest of its source files: an edit to graphc (an editable
    install, a developer's checkout) changes every key, so no entry outlives the code that made it."""
    import graphc
    digest = hashlib.sha256()
    for package in (graphc, graphc.frontend, graphc.backends):
        folder = Path(package.__file__).parent
        for path in sorted(folder.rglob("*.py")):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    try:
        version = metadata.version("graphc")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}+{digest.hexdigest()[:16]}"
