"""MNIST and Fashion-MNIST, read from the standard IDX files (optionally gzipped)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..creation import from_numpy
from .array_dataset import ImageArrayDataset
from .errors import DatasetError
from ..allocation import format_size, physical_memory_bytes
from .files import find_file, open_data_file, read_up_to

# An IDX file starts with 0x00 0x00, a type code (0x08: unsigned bytes) and the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IMAGE_SHAPE = (28, 28)


class MNIST(ImageArrayDataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28×28 grayscale.

    The files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally
    ``.gz``) are read from ``root`` or from ``root/MNIST/raw``, where
    torchvision keeps them.  graphc never downloads: ``download=True`` only
    makes the message for missing files say so.

    ``data`` is the uint8 Tensor of images (N, 28, 28) and ``targets`` the int64 labels.
    """

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    source = "https://ossci-datasets.s3.amazonaws.com/mnist/ (or http://yann.lecun.com/exdb/mnist/)"

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        self.root = Path(root)
        self.train = train
        prefix = "train" if train else "t10k"
        folders = [self.root, self.root / type(self).__name__ / "raw"]
        how_to_get = self._how_to_get(folders, download)
        images = read_idx(find_file([f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"],
                                    folders, how_to_get), IMAGES_MAGIC, how_to_get, IMAGE_SHAPE)
        labels = read_idx(find_file([f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz"],
                                    folders, how_to_get), LABELS_MAGIC, how_to_get)
        if len(images) != len(labels):
            raise DatasetError(f"{type(self).__name__} in {self.root}: {len(images)} images but {len(labels)} "
                               f"labels; the {prefix} files do not belong together. {how_to_get}")
        if len(labels) and labels.max() >= len(self.classes):
            raise DatasetError(f"{type(self).__name__} in {self.root}: label {labels.max()} is out of range "
                               f"(there are {len(self.classes)} classes). {how_to_get}")
        self.data = from_numpy(images)
        self.targets = from_numpy(labels.astype(np.int64))
        super().__init__(images[:, :, :, None], labels, transform, target_transform)

    def _how_to_get(self, folders: list[Path], download: bool) -> str:
        no_download = "graphc does not download datasets (this machine has no network access). " if download else ""
        return (f"{no_download}Download the four IDX files of {type(self).__name__} from {self.source} "
                f"and put them in {folders[0]} or {folders[1]}.")


class FashionMNIST(MNIST):
    """Fashion-MNIST: Zalando's 28×28 grayscale clothing images, in MNIST's file format.

    The files are read from ``root`` or ``root/FashionMNIST/raw``.
    """

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    source = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def read_idx(path: Path, magic: int, how_to_get: str, item_shape: tuple[int, ...] = ()) -> np.ndarray:
    """The uint8 array stored in the IDX file at ``path``, whose header must start with ``magic`` and
    describe items of ``item_shape`` (28×28 images).

    The header is checked before the values are read, and no more values are
    read than it describes, so a file that decompresses to gigabytes (a gzip
    bomb) is refused after reading what the header promised.
    """
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    with open_data_file(path, how_to_get) as file:
        header = read_up_to(file, header_size, path, how_to_get)
        if len(header) < header_size:
            raise DatasetError(f"{path} is {len(header)} bytes, too short for an IDX header ({header_size} bytes); "
                               f"the file is truncated. {how_to_get}")
        found = int.from_bytes(header[:4], "big")
        if found != magic:
            raise DatasetError(f"{path} starts with {found:#010x}, but an IDX file of {ndim}-d unsigned bytes "
                               f"starts with {magic:#010x}: it is not the expected file. {how_to_get}")
        shape = tuple(int(size) for size in np.frombuffer(header, ">u4", count=ndim, offset=4))
        if shape[1:] != item_shape:
            raise DatasetError(f"{path} holds items of shape {list(shape[1:])}, but MNIST's are "
                               f"{list(item_shape)}: it is not the expected file. {how_to_get}")
        expected = math.prod(shape)
        memory = physical_memory_bytes()
        if memory is not None and expected > memory:
            raise DatasetError(f"{path}: its header describes {list(shape)} values, {format_size(expected)}, more "
                               f"than this machine's memory: the file is corrupt. {how_to_get}")
        values = read_up_to(file, expected + 1, path, how_to_get)    # one more byte tells a longer file
    if len(values) < expected:
        raise DatasetError(f"{path} is {header_size + len(values)} bytes, but its header describes {list(shape)} "
                           f"values, {header_size + expected} bytes in all: the file is truncated or corrupt. "
                           + how_to_get)
    if len(values) > expected:
        raise DatasetError(f"{path} holds more than the {header_size + expected} bytes its header describes "
                           f"({list(shape)} values): the file is corrupt, or a decompression bomb. {how_to_get}")
    return np.frombuffer(values, np.uint8).reshape(shape)
