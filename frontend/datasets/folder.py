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
        image = _read_rgb(path)
        image = self.transform(image) if self.transform is not None else self._to_tensor(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label


def _read_rgb(path: str) -> Image.Image:
    """The image at ``path`` in RGB; a damaged or hostile file raises DatasetError naming it."""
    try:
        with Image.open(path) as file:
            return file.convert("RGB")
    except Image.DecompressionBombError as error:
        raise DatasetError(f"ImageFolder: refused the image {path}: {error} (Pillow's limit on pixels guards "
                           "against images made to exhaust memory; raise PIL.Image.MAX_IMAGE_PIXELS if the "
                           "image is genuine)") from None
    except Exception as error:      # decoders fail on damaged files in many ways (OSError, ValueError, ...)
        raise DatasetError(f"ImageFolder: could not read the image {path}: {type(error).__name__}: {error}") \
            from error


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, in sorted order at every level.

    Symbolic links to folders are followed, but each folder is read once: a
    link back to a folder above would otherwise list its images over and over.
    """
    found = []
    seen = set()
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        identity = _folder_identity(directory)
        if identity in seen:
            subdirectories.clear()
            continue
        seen.add(identity)
        subdirectories.sort()
        found += [Path(directory) / name for name in sorted(files) if name.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _folder_identity(directory: str) -> tuple[int, int]:
    """The device and inode of a folder: the same for every path (and link) that reaches it."""
    status = os.stat(directory)
    return status.st_dev, status.st_ino
