"""State kept on a device between compiled steps: the seam between tensors and backends.

A backend whose memory is not the host's (OpenCL) keeps a model's parameters,
buffers and optimizer state on its device across steps, so that a step moves
only its data batch in and its results out.  A tensor then holds a
``DeviceCopy`` beside its host array, and its host array may be stale; reading
the tensor on the host (``.numpy()``, ``.item()``, printing, ``state_dict``,
``graphc.save``, an eager op) copies the value back first and hands the tensor
back to the host.  The next compiled step uploads it again.

The compiled step hands such a backend one ``StateSlot`` per state input; the
backend binds ``slot.device`` where it holds the newest value, uploads
``slot.array`` where not, and leaves in ``slot.device`` where the value lives
after the step.  This module imports nothing from the frontend or the
backends: the frontend's tensors and the backend's executables meet here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

import numpy as np


class DeviceCopy(Protocol):
    """A state's value held in a device's memory."""

    host_current: bool          # the host array holds this value too (the steps only read it)

    def read_into(self, array: np.ndarray) -> None:
        """Copy the value into ``array`` (host memory of the same shape and dtype)."""


@dataclass(eq=False)
class StateSlot:
    """One state input of a step: its host array (its shape and dtype; its value unless
    ``device`` holds a newer one) and the device copy, which the backend may replace."""
    array: np.ndarray
    device: DeviceCopy | None


@runtime_checkable
class ResidentExecutable(Protocol):
    """An executable that keeps state on its device between runs."""

    def run_resident(self, data: Mapping[str, np.ndarray], state: Mapping[str, StateSlot]): ...


def host_value(array: np.ndarray, device: DeviceCopy | None) -> np.ndarray:
    """``array`` holding the newest value: read back from ``device`` where the host's is stale."""
    if device is not None and not device.host_current:
        device.read_into(array)
    return array
