"""Digits: scikit-learn's 1,797 real handwritten digits, shipped with graphc, as an MNIST-like dataset.

The images (8×8, values 0..16) and labels in ``data/digits.npz`` were taken
once from ``sklearn.datasets.load_digits()`` (the test part of the UCI
"Optical Recognition of Handwritten Digits" set), so graphc needs neither
scikit-learn nor a download to train on real data.
"""
from __future__ import annotations

from importlib import resources

import numpy as np
from PIL import Image

from ..creation import from_numpy
from .array_dataset import ImageArrayDataset

TRAIN_SIZE = 1500      # the first 1,500 digits train, the remaining 297 test; both hold every class
LEVELS = 16            # the source images count 0..16 dark pixels per 4×4 block


class Digits(ImageArrayDataset):
    """Handwritten digits 0–9 resized to ``size``×``size`` with ``channels`` (1 or 3) identical channels.

    The split is fixed: the first 1,500 images are the training set and the
    last 297 the test set.  The 8×8 originals are scaled to 0..255 and resized
    with Pillow's bilinear filter, so a sample's image is float32 in [0, 1] as
    ToTensor gives it; a transform receives the Pillow image instead.
    ``data`` is the uint8 Tensor (N, size, size) and ``targets`` the int64 labels.
    """

    classes = [str(digit) for digit in range(10)]

    def __init__(self, train: bool = True, size: int = 28, channels: int = 1, transform=None,
                 target_transform=None):
        if channels not in (1, 3):
            raise ValueError(f"Digits: channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if size < 1:
            raise ValueError(f"Digits: size must be positive, got {size}")
        self.train = train
        images, labels = _packaged_digits()
        part = slice(None, TRAIN_SIZE) if train else slice(TRAIN_SIZE, None)
        gray = _resized(images[part], size)
        self.data = from_numpy(gray)
        self.targets = from_numpy(labels[part].astype(np.int64))
        super().__init__(np.repeat(gray[:, :, :, None], channels, axis=3), labels[part], transform,
                         target_transform)


def _packaged_digits() -> tuple[np.ndarray, np.ndarray]:
    with resources.files(__package__).joinpath("data", "digits.npz").open("rb") as file:
        with np.load(file, allow_pickle=False) as arrays:
            return arrays["images"], arrays["targets"]


def _resized(images: np.ndarray, size: int) -> np.ndarray:
    """The 0..16 images as uint8 0..255 images of ``size``×``size``."""
    scaled = np.round(images.astype(np.float32) * (255 / LEVELS)).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
                     for image in scaled])
