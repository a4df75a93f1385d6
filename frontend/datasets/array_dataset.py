"""The base of datasets whose images all fit in memory as one uint8 array."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..creation import from_numpy
from ..transforms import ToTensor, batched
from ..utils.data import Dataset, default_collate


class ImageArrayDataset(Dataset):
    """Images as a uint8 array (N, H, W, C) with C = 1 or 3, and int labels.

    A sample is ``(image, label)``.  Without a transform the image is a float32
    C×H×W Tensor in [0, 1], as ``transforms.ToTensor`` makes it; with one, the
    transform receives a Pillow image, as in torchvision.  ``__getitems__``
    builds a whole batch with one indexing operation and transforms it in one
    step when the transform has a batch form (every graphc transform does).
    """

    classes: list[str] = []

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None, target_transform=None):
        self._images = images
        self._labels = labels.astype(np.int64)
        self.transform = transform
        self.target_transform = target_transform

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index):
        image = self._images[index]
        label = int(self._labels[index])
        if self.transform is not None:
            image = self.transform(Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image))
        else:
            image = ToTensor()(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __getitems__(self, indices: np.ndarray):
        transform = ToTensor().batch if self.transform is None else batched(self.transform)
        if transform is None:
            return default_collate([self[int(i)] for i in indices])
        labels = self._labels[indices]
        if self.target_transform is None:
            targets = from_numpy(labels)
        else:
            targets = default_collate([self.target_transform(int(label)) for label in labels])
        return [transform(self._images[indices]), targets]
