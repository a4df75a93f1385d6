"""A kernel-IR Program as JSON-ready data and back, for the compile cache.

Loading a cached program must never run code (DESIGN: no pickle), so the
program is stored as plain lists, dicts, strings and numbers, and read back
by constructing only the kernel IR's own dataclasses:

- a dataclass of ``graphc.kernel.ir`` is ``["@Name", field, field, ...]`` in
  field order (a list field of ``Program`` comes back a list, any other
  sequence a tuple, as the frozen dataclasses hold them);
- a DType is ``["@DType", "f32"]``; a numpy array (a stored constant) is
  ``["@ndarray", dtype, shape, base64 bytes]``;
- a string that starts with ``@`` gets one more in front, so no name is ever
  read as a tag.

Fields added to the IR's dataclasses are carried along without a change here,
as long as they hold values of these kinds.
"""
from __future__ import annotations

import base64
import dataclasses

import numpy as np

from ..ir.dtypes import DType, dtype_from_name
from . import ir

_CLASSES = {cls.__name__: cls for cls in vars(ir).values()
            if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == ir.__name__}
_FIELDS = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _CLASSES.values()}
# The fields that hold lists (Program's); every other sequence in the IR is a tuple.
_LIST_FIELDS = {cls: tuple(i for i, f in enumerate(dataclasses.fields(cls)) if str(f.type).startswith("list"))
                for cls in _CLASSES.values()}


class StoredProgramError(ValueError):
    """Stored data that is not a program this version of graphc wrote."""


def encode(value):
    """``value`` (a Program, or any part of one) as JSON-ready data."""
    kind = type(value)
    if kind in _FIELDS:
        return ["@" + kind.__name__, *[encode(getattr(value, name)) for name in _FIELDS[kind]]]
    if kind is str:
        return "@" + value if value.startswith("@") else value
    if kind is tuple or kind is list:
        return [encode(item) for item in value]
    if kind is dict:
        return {key: encode(item) for key, item in value.items()}
    if kind is DType:
        return ["@DType", value.name]
    if kind is np.ndarray:
        data = base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii")
        return ["@ndarray", value.dtype.str, list(value.shape), data]
    if value is None or kind in (int, float, bool):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {kind.__name__} in a kernel-IR program")


def decode(data):
    """The kernel-IR value ``encode`` made ``data`` from; raises StoredProgramError on anything else."""
    kind = type(data)
    if kind is list:
        if data and type(data[0]) is str and data[0].startswith("@") and not data[0].startswith("@@"):
            return _decode_tagged(data[0][1:], data[1:])
        return tuple(decode(item) for item in data)
    if kind is str:
        return data[1:] if data.startswith("@@") else data
    if kind is dict:
        return {key: decode(item) for key, item in data.items()}
    if data is None or kind in (int, float, bool):
        return data
    raise StoredProgramError(f"unexpected {kind.__name__} in a stored program")


def _decode_tagged(tag: str, items: list):
    try:
        if tag == "DType":
            return dtype_from_name(items[0])
        if tag == "ndarray":
            dtype, shape, data = items
            return np.frombuffer(base64.b64decode(data), np.dtype(dtype)).reshape(shape).copy()
        cls = _CLASSES[tag]
        values = [decode(item) for item in items]
        if len(values) != len(_FIELDS[cls]):
            raise StoredProgramError(f"a stored {tag} has {len(values)} fields, not {len(_FIELDS[cls])}")
        for index in _LIST_FIELDS[cls]:
            values[index] = list(values[index])
        return cls(*values)
    except StoredProgramError:
        raise
    except (KeyError, ValueError, TypeError) as err:
        raise StoredProgramError(f"a stored {tag} could not be read: {err}") from None


def program_from_data(data) -> ir.Program:
    program = decode(data)
    if not isinstance(program, ir.Program):
        raise StoredProgramError("the stored data is not a program")
    return program
