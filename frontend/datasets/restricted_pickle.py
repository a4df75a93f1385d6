"""Reading the pickled numpy arrays of CIFAR's "python version" files without running their code.

A pickle can call any importable function while it loads.  CIFAR's batches
need only numpy's array reconstruction, so this unpickler resolves exactly
those names and refuses every other one (``os.system``, ``builtins.eval``, ...)
before anything is called.
"""
from __future__ import annotations

import _codecs
import io
import pickle
from pathlib import Path

import numpy as np

from .errors import DatasetError

try:
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:          # numpy < 2
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

# Arrays pickled by numpy 1 name numpy.core, by numpy 2 numpy._core.  Protocols up to 4 rebuild an
# array with _reconstruct and its __setstate__; protocol 5 with _frombuffer(bytes, dtype, shape,
# order), which only views the bytes (numpy refuses object dtypes there).  Python 3 pickles bytes
# for protocol 2 (which the CIFAR files use) as _codecs.encode(text, "latin1").
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the names in ALLOWED; ``path`` is named in its errors."""

    def __init__(self, data: bytes, path: Path):
        # latin1 turns Python 2's byte strings (the CIFAR files are Python 2 pickles) into str, as numpy expects.
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(f"{self.path} asks to call {module}.{name} while loading; graphc refuses it, "
                               "as a dataset file needs only numpy arrays (the file may be malicious or "
                               "not a dataset file)") from None


def load_arrays_pickle(data: bytes, path: Path, how_to_get: str):
    """The object pickled in ``data``, built from plain values and numpy arrays only."""
    try:
        return ArrayUnpickler(data, path).load()
    except DatasetError:
        raise
    except Exception as error:      # a damaged pickle can fail in any of many ways; all mean the same here
        raise DatasetError(f"could not unpickle {path}: {type(error).__name__}: {error} "
                           f"(a truncated or corrupt file?). {how_to_get}") from error
