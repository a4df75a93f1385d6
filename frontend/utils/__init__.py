"""Utilities beside the tensor API, as ``torch.utils`` and ``torchvision.utils``: ``graphc.utils.data`` loads
data in batches; ``make_grid`` and ``save_image`` show images."""
from . import data
from .image import make_grid, save_image

__all__ = ["data", "make_grid", "save_image"]
