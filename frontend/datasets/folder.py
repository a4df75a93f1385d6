"""ImageFolder: images sorted into one sub-folder per class, read with Pillow."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ..transforms import ToTensor
from ..utils.data import Dataset
from .errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUT = "root/<class name>/<image file>"


class ImageFolder(Dataset):
    """Images in ``root/<class>/...`` (sub-folders of a class included), as torchvision's ImageFolder.

    Classes are the sub-folder names, sorted; ``class_to_idx`` maps them to
    labels and ``samples`` lists ``(path, label)`` in order.  Images are read
    with Pillow and converted to RGB; without a transform a sample's image is
    a float32 3×H×W Tensor in [0, 1], with one the transform receives the
    Pillow image.  Images of different sizes need a Resize (or a crop) before
    they can be batched.
    """

    def __init__(self, root, transform=None, target_transform=None):
        self.root = Path(root)
        self.transform = transform
        self.target_transform = target_transform
        if not self.root.is_dir():
            raise DatasetError(f"ImageFolder: {self.root} is not a folder; expected the layout {LAYOUT}")
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise DatasetError(f"ImageFolder: {self.root} has no class sub-folders; expected the layout {LAYOUT}")
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        self.samples = [(str(path), self.class_to_idx[name]) for name in self.classes
                        for path in _image_files(self.root / name)]
        self.targets = [label for _, label in self.samples]
        present = set(self.targets)
        empty = [name for name in self.classes if self.class_to_idx[name] not in present]
        if empty:
            raise DatasetError(f"ImageFolder: no image files in {', '.join(str(self.root / n) for n in empty)} "
                               f"(image files end in {', '.join(IMAGE_EXTENSIONS)})")
        self.imgs = self.samples
        self._to_tensor = ToTensor()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as file:
                image = file.convert("RGB")
        except OSError as error:       # Pillow's UnidentifiedImageError is an OSError too
            raise DatasetError(f"ImageFolder: could not read the image {path}: {error}") from error
        image = self.transform(image) if self.transform is not None else self._to_tensor(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, in sorted order at every level."""
    found = []
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        subdirectories.sort()
        found += [Path(directory) / name for name in sorted(files) if name.lower().endswith(IMAGE_EXTENSIONS)]
    return found
