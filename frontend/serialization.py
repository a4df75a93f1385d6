"""graphc.save and graphc.load: checkpoints as safetensors files, loadable without running any code.

A checkpoint is any nesting of dicts (str or int keys), lists and tuples
holding Tensors, numpy arrays and plain values (int, float, str, bool, None):
a model's state_dict, an optimizer's, an epoch counter.  Every array is
stored as a safetensors tensor named by its key path (``model.fc.weight``),
so other tools read the weights directly; the nesting and the plain values
are JSON in the file's metadata under the key ``graphc``:

    {"format_version": 1, "structure": <node>}

where a node is a JSON scalar (a plain value), ``{"tensor": name}`` or
``{"ndarray": name}`` (an array stored under ``name``, loaded back as a Tensor
or a numpy array), ``{"dict": [[key, node], ...]}``, ``{"list": [...]}``,
``{"tuple": [...]}``, or ``{"float": "nan" | "inf" | "-inf"}``, which JSON
cannot spell.  A safetensors file without that metadata (written by another
tool) loads as a flat dict from tensor name to Tensor.

Saving writes a temporary file beside the target and renames it over the
target only once it is complete and on disk, so a crash leaves the old
checkpoint intact.
"""
from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError, safe_open

from graphc.errors import CheckpointError

from .creation import from_numpy
from .device import check_device
from .tensor import Tensor

FORMAT_VERSION = 1
METADATA_KEY = "graphc"
CONTENTS = ("Tensors, numpy arrays, int, float, str, bool, None, and dicts (str or int keys), "
            "lists and tuples of them")


def save(obj, f) -> None:
    """Write ``obj`` to the file at path ``f`` as a safetensors checkpoint, atomically."""
    path = Path(os.fspath(f))
    encoder = _Encoder(path)
    structure = encoder.encode(obj, ())
    header = json.dumps({"format_version": FORMAT_VERSION, "structure": structure}, allow_nan=False)
    try:
        payload = safetensors.numpy.save(encoder.arrays, metadata={METADATA_KEY: header})
    except (SafetensorError, ValueError, TypeError) as error:
        raise CheckpointError(f"could not save a checkpoint to {path}: {error}") from error
    _write_atomically(path, payload)


def load(f, map_location=None, weights_only: bool = True):
    """Read a checkpoint written by ``save``: Tensors come back as Tensors, numpy arrays as numpy arrays.

    ``map_location`` and ``weights_only`` are accepted for PyTorch's sake:
    tensors always load onto the CPU, and loading never executes code.
    """
    check_device(map_location)
    path = Path(os.fspath(f))
    if not path.exists():
        raise CheckpointError(f"cannot load {path}: no such file")
    try:
        with safe_open(path, framework="numpy") as file:
            metadata = file.metadata() or {}
            arrays = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot load {path}: not a readable safetensors file ({error}); it may be "
                              "truncated, corrupt, or not a checkpoint") from error
    if METADATA_KEY not in metadata:
        return {name: _as_tensor(array, name, path) for name, array in arrays.items()}
    try:
        header = json.loads(metadata[METADATA_KEY])
        version = header["format_version"]
        structure = header["structure"]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"cannot load {path}: its graphc metadata is damaged ({error!r})") from error
    if version != FORMAT_VERSION:
        raise CheckpointError(f"cannot load {path}: it has checkpoint format version {version}, and this graphc "
                              f"reads version {FORMAT_VERSION}")
    return _Decoder(arrays, path).decode(structure)


class _Encoder:
    """Turns an object into a JSON structure, collecting its arrays by key path."""

    def __init__(self, path: Path):
        self.path = path
        self.arrays: dict[str, np.ndarray] = {}
        self._name_of: dict[int, str] = {}   # id of a tensor already stored, so shared tensors are stored once

    def encode(self, value, keys: tuple):
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, np.generic):
            return self.encode(value.item(), keys)
        if isinstance(value, Tensor):
            return {"tensor": self._store(value, value.detach().numpy(), keys)}
        if isinstance(value, np.ndarray):
            return {"ndarray": self._store(value, value, keys)}
        if isinstance(value, dict):
            return {"dict": [[self._key(key, keys), self.encode(item, keys + (key,))] for key, item in value.items()]}
        if isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [self.encode(item, keys + (i,)) for i, item in enumerate(value)]}
        raise CheckpointError(f"cannot save {type(value).__name__} at {_key_path(keys)} to {self.path}: a "
                              f"checkpoint holds {CONTENTS}")

    def _key(self, key, keys: tuple):
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise CheckpointError(f"cannot save the dict key {key!r} ({type(key).__name__}) at {_key_path(keys)} "
                                  f"to {self.path}: dict keys must be str or int")
        return key

    def _store(self, owner, array: np.ndarray, keys: tuple) -> str:
        if id(owner) in self._name_of:
            return self._name_of[id(owner)]
        name = _key_path(keys)
        unique, n = name, 1
        while unique in self.arrays:      # {"a.b": x} and {"a": {"b": y}} share a path
            n += 1
            unique = f"{name}#{n}"
        self.arrays[unique] = np.require(array, requirements="C")    # (ascontiguousarray would make 0-d 1-d)
        self._name_of[id(owner)] = unique
        return unique


class _Decoder:
    """Rebuilds the object from its JSON structure and the file's arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], path: Path):
        self.arrays = arrays
        self.path = path
        self._loaded: dict[str, Tensor] = {}    # a tensor stored once and named twice loads as one Tensor

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, dict) and len(node) == 1:
            (kind, content), = node.items()
            if kind == "tensor":
                if content not in self._loaded:
                    self._loaded[content] = _as_tensor(self._array(content), content, self.path)
                return self._loaded[content]
            if kind == "ndarray":
                return self._array(content)
            if kind == "dict" and isinstance(content, list) and all(_is_pair(item) for item in content):
                return {key: self.decode(item) for key, item in content}
            if kind == "list" and isinstance(content, list):
                return [self.decode(item) for item in content]
            if kind == "tuple" and isinstance(content, list):
                return tuple(self.decode(item) for item in content)
            if kind == "float" and content in ("nan", "inf", "-inf"):
                return float(content)
        raise CheckpointError(f"cannot load {self.path}: its graphc metadata is damaged (unexpected {node!r:.80})")

    def _array(self, name) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise CheckpointError(f"cannot load {self.path}: its graphc metadata names the tensor {name!r}, "
                                  "which the file lacks")
        return self.arrays[name]


def _is_pair(item) -> bool:
    return isinstance(item, list) and len(item) == 2 and isinstance(item[0], (int, str))


def _key_path(keys: tuple) -> str:
    return ".".join(str(key) for key in keys) or "<root>"


def _as_tensor(array: np.ndarray, name: str, path: Path) -> Tensor:
    try:
        return from_numpy(array)
    except TypeError as error:
        raise CheckpointError(f"cannot load the tensor {name!r} from {path}: {error}") from error


def _write_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that ``path`` holds either its old contents or all of ``payload``."""
    # A unique name beside the target (a rename across file systems is not atomic); os.open with
    # mode 0o666 lets the umask set the permissions, as for any new file (mkstemp would force 0o600).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise CheckpointError(f"could not save a checkpoint to {path}: {error}") from error
    _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Make the rename itself durable; platforms that cannot open a folder (Windows) skip this."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
