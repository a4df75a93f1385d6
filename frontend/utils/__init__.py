"""Utilities beside the tensor API, as ``torch.utils``: ``graphc.utils.data`` loads data in batches."""
from . import data

__all__ = ["data"]
