"""``graphc.device`` and ``graphc.cuda``: PyTorch's device vocabulary, so that tutorial code such as

    device = graphc.device("cuda" if graphc.cuda.is_available() else "cpu")
    model.to(device)

runs unchanged.  graphc tensors live on the CPU; accelerators are reached by compiling
for another backend (``graphc.compile(..., backend=...)``), not by moving tensors.
"""
from __future__ import annotations

import types


class device:
    """A device name, as torch.device: ``device("cpu")``, ``device("cuda", 0)``."""

    def __init__(self, type: str, index: int | None = None):
        if isinstance(type, device):
            type, index = type.type, type.index
        name, _, number = str(type).partition(":")
        self.type = name
        self.index = int(number) if number else index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")

    def __eq__(self, other) -> bool:
        return str(self) == str(device(other)) if isinstance(other, (device, str)) else NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


def check_device(device) -> None:
    """Accept None and the CPU (``"cpu"``, ``device("cpu")``); refuse any other device clearly."""
    if device is not None and str(device).split(":")[0] != "cpu":
        raise NotImplementedError(f"device {device!r}: graphc tensors live on the CPU; choose a compiled "
                                  "backend with graphc.compile(..., backend=...) instead")


cuda = types.ModuleType("graphc.cuda", "There is no CUDA device for graphc tensors; see graphc.device.")
cuda.is_available = lambda: False
cuda.device_count = lambda: 0
