"""Image grids and image files from tensors: ``make_grid`` and ``save_image`` as torchvision.utils has them.

Both work on concrete values (numpy underneath) and return or write plain
images; they are for looking at results, not for use inside a traced step.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..creation import from_numpy
from ..tensor import Tensor


def _as_batch(tensor) -> np.ndarray:
    """A B×C×H×W float array from a 4-D tensor, a list of C×H×W tensors, or one C×H×W / H×W image;
    single-channel images become three channels, as torchvision's grid does."""
    if isinstance(tensor, list):
        for t in tensor:
            if not isinstance(t, Tensor):
                raise TypeError(f"tensor or list of tensors expected, got a list containing {type(t)}")
        array = np.stack([t.detach().numpy() for t in tensor])
    elif isinstance(tensor, Tensor):
        array = tensor.detach().numpy()
    else:
        raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"make_grid takes B×C×H×W images (or C×H×W, H×W), got shape {list(array.shape)}")
    if array.shape[1] == 1:
        array = np.concatenate([array] * 3, axis=1)
    return array


def _normalized(images: np.ndarray, value_range, scale_each: bool) -> np.ndarray:
    """Values clamped to [low, high] (value_range, or each batch's / image's min and max) and mapped to [0, 1]."""
    if value_range is not None and not isinstance(value_range, tuple):
        raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")

    def rescale(image):
        low, high = value_range if value_range is not None else (float(image.min()), float(image.max()))
        return (np.clip(image, low, high) - low) / max(high - low, 1e-5)
    if scale_each:
        return np.stack([rescale(image) for image in images]).astype(images.dtype)
    return rescale(images).astype(images.dtype)


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False, value_range=None,
              scale_each: bool = False, pad_value: float = 0.0) -> Tensor:
    """Lay a batch of images out in a grid, ``nrow`` images per row, ``padding`` pixels of ``pad_value``
    around each: a C×H'×W' Tensor, as torchvision.utils.make_grid.

    ``normalize`` maps values to [0, 1] from ``value_range`` (default: the
    batch's min and max, or each image's with ``scale_each``).
    """
    images = _as_batch(tensor)
    if normalize:
        images = _normalized(images, value_range, scale_each)
    if len(images) == 1:
        return from_numpy(np.ascontiguousarray(images[0]))
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    cell_height, cell_width = height + padding, width + padding
    grid = np.full((channels, cell_height * rows + padding, cell_width * columns + padding), pad_value,
                   dtype=images.dtype)
    for k, image in enumerate(images):
        top, left = (k // columns) * cell_height + padding, (k % columns) * cell_width + padding
        grid[:, top:top + height, left:left + width] = image
    return from_numpy(grid)


def save_image(tensor, fp, format: str | None = None, **kwargs) -> None:
    """Write images to ``fp`` (a path or a binary file) with Pillow: a batch as ``make_grid(tensor, **kwargs)``,
    values in [0, 1] rounded to 8 bits, as torchvision.utils.save_image."""
    grid = make_grid(tensor, **kwargs).numpy()
    pixels = np.clip(grid * 255 + 0.5, 0, 255).transpose(1, 2, 0).astype(np.uint8)
    Image.fromarray(pixels).save(fp, format=format)
