"""CIFAR-10, from the binary batches or the pickled "python version" batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .array_dataset import ImageArrayDataset
from .errors import DatasetError
from .files import read_bytes
from .restricted_pickle import load_arrays_pickle

SIDE = 32
IMAGE_BYTES = 3 * SIDE * SIDE
RECORD_BYTES = 1 + IMAGE_BYTES      # a binary record: the label byte, then the red, green and blue planes
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]


class CIFAR10(ImageArrayDataset):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32×32, in 10 classes.

    Read from the binary batches (``data_batch_1.bin`` … ``data_batch_5.bin``,
    ``test_batch.bin``) in ``root`` or ``root/cifar-10-batches-bin``, or else
    from the python batches (``data_batch_1`` …, ``test_batch``) in
    ``root/cifar-10-batches-py``, where torchvision keeps them.  The python
    batches are pickles, read by an unpickler that builds numpy arrays and
    refuses anything else.  graphc never downloads: ``download=True`` only
    makes the message for missing files say so.

    ``data`` is the uint8 array (N, 32, 32, 3) and ``targets`` the list of labels, as in torchvision.
    """

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        self.root = Path(root)
        self.train = train
        names = TRAIN_BATCHES if train else TEST_BATCHES
        binary_folders = [self.root, self.root / "cifar-10-batches-bin"]
        python_folder = self.root / "cifar-10-batches-py"
        how_to_get = _how_to_get(binary_folders, python_folder, download)
        binary_folder = next((f for f in binary_folders if (f / f"{names[0]}.bin").is_file()), None)
        if binary_folder is not None:
            parts = [_read_binary_batch(binary_folder / f"{name}.bin", how_to_get) for name in names]
        elif (python_folder / names[0]).is_file():
            parts = [_read_python_batch(python_folder / name, how_to_get) for name in names]
        else:
            raise DatasetError(f"CIFAR-10 {names[0]} not found as {names[0]}.bin in "
                               f"{' or '.join(str(f) for f in binary_folders)}, nor as {python_folder / names[0]}. "
                               + how_to_get)
        images = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        self.data = images
        self.targets = labels.tolist()
        super().__init__(images, labels, transform, target_transform)


def _how_to_get(binary_folders: list[Path], python_folder: Path, download: bool) -> str:
    no_download = "graphc does not download datasets (this machine has no network access). " if download else ""
    return (f"{no_download}Download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and unpack it into "
            f"{binary_folders[0]} (giving {binary_folders[1]}), or unpack cifar-10-python.tar.gz from the same "
            f"place there (giving {python_folder}).")


def _read_binary_batch(path: Path, how_to_get: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels) from a binary batch of 3,073-byte records."""
    if not path.is_file():
        raise DatasetError(f"{path} not found; the other CIFAR-10 binary batches are beside it. {how_to_get}")
    data = read_bytes(path, how_to_get)
    if not data or len(data) % RECORD_BYTES:
        raise DatasetError(f"{path} is {len(data)} bytes, not a whole number of {RECORD_BYTES}-byte records "
                           f"(a label byte and 3×32×32 pixels): the file is truncated or corrupt. {how_to_get}")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    planes = records[:, 1:].reshape(-1, 3, SIDE, SIDE)
    return _checked(path, np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), records[:, 0].copy(), how_to_get)


def _read_python_batch(path: Path, how_to_get: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels) from a pickled batch: a dict with "data" (N×3072) and "labels"."""
    if not path.is_file():
        raise DatasetError(f"{path} not found; the other CIFAR-10 python batches are beside it. {how_to_get}")
    batch = load_arrays_pickle(read_bytes(path, how_to_get), path, how_to_get)
    data = batch.get("data") if isinstance(batch, dict) else None
    labels = batch.get("labels") if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == IMAGE_BYTES and isinstance(labels, list) and len(labels) == len(data)
            and all(isinstance(label, int) for label in labels)):
        raise DatasetError(f"{path} is not a CIFAR-10 python batch: expected a dict with 'data', a uint8 array "
                           f"N×{IMAGE_BYTES}, and 'labels', a list of N ints. {how_to_get}")
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return _checked(path, np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64), how_to_get)


def _checked(path: Path, images: np.ndarray, labels: np.ndarray, how_to_get: str):
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CIFAR10.classes)):
        raise DatasetError(f"{path}: a label is outside 0..{len(CIFAR10.classes) - 1}; the file is corrupt or "
                           f"not CIFAR-10. {how_to_get}")
    return images, labels
