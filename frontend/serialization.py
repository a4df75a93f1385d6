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

graphc parses the file itself, checking every length, offset, dtype and
shape against the bytes there are, so a damaged or hostile file raises
CheckpointError naming the file and what is wrong, never another exception.
Tensors in BF16 (common in checkpoints from other frameworks) load widened to
float32, which holds every bfloat16 value exactly; other types numpy lacks
(the F8 and F4 formats) are refused with an error naming the tensor.

Saving to a path writes a temporary file beside the target and renames it
over the target only once it is complete, on disk and known to read back, so
a crash, or an object that would not load, leaves the old checkpoint intact;
the temporary files of saves that were killed are removed by the next save
to the same place.  ``f`` may also be a binary file object (``io.BytesIO``),
as for ``torch.save`` and ``torch.load``.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
import secrets
import struct
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from graphc.errors import CheckpointError

from .creation import from_numpy
from .device import device
from .tensor import Tensor

FORMAT_VERSION = 1
METADATA_KEY = "graphc"
CONTENTS = ("Tensors, numpy arrays, int, float, str, bool, None, and dicts (str or int keys), "
            "lists and tuples of them")
# Deeper nesting than any checkpoint needs; a file nested deeper is refused rather than overflowing the stack.
MAX_NESTING = 100
# safetensors' own limit on the JSON header at the start of a file.
MAX_HEADER_BYTES = 100_000_000
# How torch.save's files begin: a zip archive (PyTorch 1.6 on), or the legacy format's pickled
# magic number (protocol 2, a 10-byte long).  As a safetensors header length either would claim
# over 60 MB of JSON, and a safetensors header begins with "{" where a zip has its flags.
TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80\x02\x8a\x0a")
# safetensors dtype names -> numpy dtypes; "BF16" is read as float32 (see _bf16_as_float32).
NUMPY_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
                "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64, "F16": np.float16,
                "F32": np.float32, "F64": np.float64, "C64": np.complex64}
# A save's temporary file: .<target name>.<process id>.<random hex>.tmp
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp")


def save(obj, f) -> None:
    """Write ``obj`` to ``f`` (a path, atomically, or a binary file object) as a safetensors checkpoint."""
    target = _target_name(f, "save")
    encoder = _Encoder(target)
    structure = encoder.encode(obj, ())
    header = json.dumps({"format_version": FORMAT_VERSION, "structure": structure}, allow_nan=False)
    try:
        payload = safetensors.numpy.save(encoder.arrays, metadata={METADATA_KEY: header})
    except (SafetensorError, ValueError, TypeError) as error:
        raise CheckpointError(f"could not save a checkpoint to {target}: {error}") from error
    _read_back(payload, target)
    if hasattr(f, "write"):
        f.write(payload)
        return
    path = Path(os.fspath(f))
    _remove_stale_temporaries(path)
    _write_atomically(path, payload)


def load(f, map_location=None, weights_only: bool = True):
    """Read a checkpoint written by ``save``: Tensors come back as Tensors, numpy arrays as numpy arrays.

    ``f`` is a path or a binary file object.  ``map_location`` and
    ``weights_only`` are accepted for PyTorch's sake: tensors always load onto
    the CPU, and loading never executes code.
    """
    source = _target_name(f, "load")
    _check_map_location(map_location, source)
    data = _read_source(f, source)
    arrays, metadata = _parse_safetensors(data, source)
    # Writable copies (the parsed arrays view the file's bytes), which a model or an optimizer may update in place.
    return _rebuild({name: np.array(array) for name, array in arrays.items()}, metadata, source)


def _target_name(f, action: str) -> str:
    """How messages name ``f``; refuses what is neither a path nor a binary file object."""
    if hasattr(f, "write" if action == "save" else "read"):
        return getattr(f, "name", None) or f"a {type(f).__name__}"
    try:
        return os.fsdecode(os.fspath(f))
    except TypeError:
        raise CheckpointError(f"graphc.{action}: expected a file path or a binary file object, got "
                              f"{type(f).__name__} {f!r:.40}") from None


def _check_map_location(map_location, source: str) -> None:
    """Everything loads onto the CPU: accept None, the CPU, a dict mapping to it, or a function (as PyTorch
    takes), and refuse another device clearly."""
    if map_location is None or callable(map_location):
        return
    places = map_location.values() if isinstance(map_location, dict) else [map_location]
    for place in places:
        if not isinstance(place, (str, device)) or device(place).type != "cpu":
            raise CheckpointError(f"cannot load {source} with map_location={map_location!r}: graphc tensors live "
                                  "on the CPU (an accelerator is a compile backend, graphc.compile(..., "
                                  "backend=...)); leave map_location out or pass 'cpu'")


def _read_source(f, source: str) -> bytes:
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, bytes):
            raise CheckpointError(f"cannot load {source}: it is a text file object; open the file in binary "
                                  "mode ('rb')")
        return data
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"cannot load {path}: no such file")
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot load {path}: {error}") from error


def _parse_safetensors(data: bytes, source: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays (read-only views of ``data``) and the metadata of a safetensors file, every field checked.

    The format: an 8-byte little-endian header length, a JSON header mapping
    each tensor's name to its dtype, shape and byte range in the data that
    follows, and an optional ``__metadata__`` dict of strings.
    """
    def damaged(reason: str) -> CheckpointError:
        return CheckpointError(f"cannot load {source}: not a readable safetensors file ({reason}); it may be "
                               "truncated, corrupt, or not a checkpoint")

    if data.startswith(TORCH_SAVE_MAGIC) and data[8:9] != b"{":
        raise CheckpointError(
            f"cannot load {source}: it is a PyTorch checkpoint (torch.save's zip or pickle format), which "
            "graphc does not read (unpickling runs the file's code). Save it as safetensors in PyTorch: "
            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors'), then "
            "model.load_state_dict(graphc.load('model.safetensors'))")
    if len(data) < 8:
        raise damaged(f"{len(data)} bytes, too short for the header's length")
    header_size, = struct.unpack("<Q", data[:8])
    if header_size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise damaged(f"the header claims {header_size} bytes, but the file has {len(data) - 8} after its length")
    try:
        header = json.loads(data[8:8 + header_size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise damaged(f"the header is not valid JSON: {type(error).__name__}: {error}") from None
    if not isinstance(header, dict):
        raise damaged(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise damaged("its __metadata__ is not an object of strings")
    buffer = memoryview(data)[8 + header_size:]
    return {name: _tensor_in(buffer, name, entry, damaged, source) for name, entry in header.items()}, metadata


def _tensor_in(buffer: memoryview, name: str, entry, damaged, source: str) -> np.ndarray:
    """The tensor a header entry describes, as a read-only view of ``buffer`` (BF16 widened to float32)."""
    if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
            and _is_int_list(entry.get("shape")) and _is_int_list(entry.get("data_offsets"))
            and len(entry["data_offsets"]) == 2 and min(entry["shape"], default=0) >= 0):
        raise damaged(f"the entry of tensor {name!r} is not {{dtype, shape, data_offsets}}: {entry!r:.80}")
    dtype_name, shape = entry["dtype"], tuple(entry["shape"])
    if dtype_name != "BF16" and dtype_name not in NUMPY_DTYPES:
        raise CheckpointError(f"cannot load the tensor {name!r} from {source}: its dtype {dtype_name} has no "
                              "numpy equivalent (graphc reads BF16, widened to float32, and "
                              f"{', '.join(NUMPY_DTYPES)})")
    dtype = np.dtype(np.uint16 if dtype_name == "BF16" else NUMPY_DTYPES[dtype_name])
    begin, end = entry["data_offsets"]
    if not 0 <= begin <= end <= len(buffer) or end - begin != math.prod(shape) * dtype.itemsize:
        raise damaged(f"tensor {name!r} ({dtype_name}{list(shape)}) claims bytes {begin}..{end} of "
                      f"{len(buffer)}")
    if len(shape) > 32:
        raise damaged(f"tensor {name!r} has {len(shape)} dimensions")
    array = np.frombuffer(buffer[begin:end], dtype).reshape(shape)
    return _bf16_as_float32(array) if dtype_name == "BF16" else array


def _is_int_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)


def _bf16_as_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shifting its bits up gives the same value exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _rebuild(arrays: dict[str, np.ndarray], metadata: dict[str, str], source: str):
    """The saved object: from graphc's structure in the metadata, or a flat dict for another tool's file."""
    if METADATA_KEY not in metadata:
        return {name: _as_tensor(array, name, source) for name, array in arrays.items()}
    try:
        header = json.loads(metadata[METADATA_KEY])
        version = header["format_version"]
        structure = header["structure"]
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise CheckpointError(f"cannot load {source}: its graphc metadata is damaged ({error!r:.200})") from None
    if version != FORMAT_VERSION:
        raise CheckpointError(f"cannot load {source}: it has checkpoint format version {version!r:.20}, and this "
                              f"graphc reads version {FORMAT_VERSION}")
    return _Decoder(arrays, source).decode(structure, 0)


def _read_back(payload: bytes, target: str) -> None:
    """Refuse to write what would not load (a tensor named like the file's own metadata, say)."""
    try:
        _rebuild(*_parse_safetensors(payload, target), target)
    except CheckpointError as error:
        raise CheckpointError(f"could not save a checkpoint to {target}: it would not read back ({error})") from None


class _Encoder:
    """Turns an object into a JSON structure, collecting its arrays by key path."""

    def __init__(self, target: str):
        self.target = target
        self.arrays: dict[str, np.ndarray] = {}
        self._name_of: dict[int, str] = {}   # id of a tensor already stored, so shared tensors are stored once
        self._open: set[int] = set()         # ids of the containers being encoded, to catch one inside itself

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
        if isinstance(value, (dict, list, tuple)):
            return self._container(value, keys)
        raise CheckpointError(f"cannot save {type(value).__name__} at {_key_path(keys)} to {self.target}: a "
                              f"checkpoint holds {CONTENTS}")

    def _container(self, value, keys: tuple) -> dict:
        if id(value) in self._open:
            raise CheckpointError(f"cannot save to {self.target}: the {type(value).__name__} at {_key_path(keys)} "
                                  "contains itself, and a checkpoint cannot hold a cycle")
        if len(keys) >= MAX_NESTING:
            raise CheckpointError(f"cannot save {_key_path(keys[:3])}... to {self.target}: it is nested more than "
                                  f"{MAX_NESTING} deep")
        self._open.add(id(value))
        try:
            if isinstance(value, dict):
                return {"dict": [[self._key(key, keys), self.encode(item, keys + (key,))]
                                 for key, item in value.items()]}
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [self.encode(item, keys + (i,)) for i, item in enumerate(value)]}
        finally:
            self._open.discard(id(value))

    def _key(self, key, keys: tuple):
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise CheckpointError(f"cannot save the dict key {key!r} ({type(key).__name__}) at {_key_path(keys)} "
                                  f"to {self.target}: dict keys must be str or int")
        return key

    def _store(self, owner, array: np.ndarray, keys: tuple) -> str:
        if id(owner) in self._name_of:
            return self._name_of[id(owner)]
        name = _key_path(keys)
        if name == "__metadata__":
            raise CheckpointError(f"cannot save the tensor at {name} to {self.target}: safetensors reserves the "
                                  "name __metadata__ for the file's metadata; use another key")
        unique, n = name, 1
        while unique in self.arrays:      # {"a.b": x} and {"a": {"b": y}} share a path
            n += 1
            unique = f"{name}#{n}"
        self.arrays[unique] = np.require(array, requirements="C")    # (ascontiguousarray would make 0-d 1-d)
        self._name_of[id(owner)] = unique
        return unique


class _Decoder:
    """Rebuilds the object from its JSON structure and the file's arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], source: str):
        self.arrays = arrays
        self.source = source
        self._loaded: dict[str, Tensor] = {}    # a tensor stored once and named twice loads as one Tensor

    def decode(self, node, depth: int):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if depth > MAX_NESTING:
            raise CheckpointError(f"cannot load {self.source}: its graphc metadata nests more than {MAX_NESTING} "
                                  "deep, more than graphc ever writes (a damaged or hostile file?)")
        if isinstance(node, dict) and len(node) == 1:
            (kind, content), = node.items()
            if kind == "tensor":
                array = self._array(content)
                if content not in self._loaded:
                    self._loaded[content] = _as_tensor(array, content, self.source)
                return self._loaded[content]
            if kind == "ndarray":
                return self._array(content)
            if kind == "dict" and isinstance(content, list) and all(_is_pair(item) for item in content):
                return {key: self.decode(item, depth + 1) for key, item in content}
            if kind == "list" and isinstance(content, list):
                return [self.decode(item, depth + 1) for item in content]
            if kind == "tuple" and isinstance(content, list):
                return tuple(self.decode(item, depth + 1) for item in content)
            if kind == "float" and content in ("nan", "inf", "-inf"):
                return float(content)
        raise CheckpointError(f"cannot load {self.source}: its graphc metadata is damaged (unexpected {node!r:.80})")

    def _array(self, name) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise CheckpointError(f"cannot load {self.source}: its graphc metadata names the tensor {name!r:.80}, "
                                  "which the file lacks")
        return self.arrays[name]


def _is_pair(item) -> bool:
    return isinstance(item, list) and len(item) == 2 and isinstance(item[0], (int, str))


def _key_path(keys: tuple) -> str:
    return ".".join(str(key) for key in keys) or "<root>"


def _as_tensor(array: np.ndarray, name: str, source: str) -> Tensor:
    try:
        return from_numpy(array)
    except TypeError as error:
        raise CheckpointError(f"cannot load the tensor {name!r} from {source}: {error}") from error


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files that killed saves to ``path`` left behind (their process has ended)."""
    if os.name != "posix":          # only POSIX can ask whether a process id is alive without touching it
        return
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return
    for candidate in candidates:
        match = TEMPORARY_NAME.fullmatch(candidate.name)
        if match and match["target"] == path.name and not _process_alive(int(match["pid"])):
            candidate.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True                 # another thread of this process may be saving right now
    try:
        os.kill(pid, 0)             # signal 0: nothing is sent, only the existence is checked
    except ProcessLookupError:
        return False
    except OSError:
        return True                 # it exists, owned by someone else
    return True


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
