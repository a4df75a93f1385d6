"""Dataset readers on hostile files: bombs, pickles, symlink loops (issue 14, item 9).

Every refusal is a graphc.datasets.DatasetError naming the file; nothing reads
more than its header promised, and no pickle runs code.
"""
import gzip
import os
import tracemalloc

import numpy as np
import pytest

from graphc.frontend.datasets import CIFAR10, MNIST, DatasetError, ImageFolder

import hostile_files as hostile

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801


def write_labels(folder, count: int = 12) -> None:
    labels = np.arange(count, dtype=np.uint8) % 10
    (folder / "train-labels-idx1-ubyte").write_bytes(hostile.idx_header(LABELS_MAGIC, (count,)) + labels.tobytes())


# -- MNIST's IDX files --------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_stopped_after_what_its_header_promised(tmp_path):
    write_labels(tmp_path)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(hostile.gzip_bomb(hostile.idx_header(IMAGES_MAGIC, (12, 28, 28)), 64 << 20))
    assert bomb.stat().st_size < 200_000            # 64 MiB of zeros behind a 12-image header
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as raised:
            MNIST(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(raised.value)
    assert str(bomb) in message and "holds more than the 9424 bytes its header describes" in message
    assert "decompression bomb" in message
    assert peak < 16 << 20, f"read {peak} bytes of a bomb"


def test_a_header_promising_more_than_memory_is_refused_before_reading(tmp_path):
    write_labels(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(hostile.idx_header(IMAGES_MAGIC, (2 ** 32 - 1, 28, 28))))
    with pytest.raises(DatasetError, match=r"describes \[4294967295, 28, 28\] values, 3.\d TiB, more than this "
                                           "machine's memory"):
        MNIST(tmp_path)


def test_images_of_another_size_are_not_mnist(tmp_path):
    write_labels(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(hostile.idx_header(IMAGES_MAGIC, (12, 13, 13)) + bytes(12 * 13 * 13))
    with pytest.raises(DatasetError, match=r"holds items of shape \[13, 13\], but MNIST's are \[28, 28\]"):
        MNIST(tmp_path)


def test_a_file_longer_than_its_header_is_corrupt(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(hostile.idx_header(IMAGES_MAGIC, (12, 28, 28)) + bytes(9408))
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(hostile.idx_header(LABELS_MAGIC, (12,)) + bytes(13))
    with pytest.raises(DatasetError, match="holds more than the 20 bytes its header describes"):
        MNIST(tmp_path)


# -- CIFAR-10's pickled batches --------------------------------------------------------------------------------


def write_python_batches(root, data: bytes) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_valid_batches_load_whatever_the_pickle_protocol(tmp_path, protocol):
    write_python_batches(tmp_path, hostile.cifar_batch_pickle(3, protocol))
    dataset = CIFAR10(tmp_path)
    assert len(dataset) == 15 and dataset.data.shape == (15, 32, 32, 3)
    expected = hostile.cifar_batch_pickle(3, 2)             # the same batch, as the published files pickle it
    write_python_batches(tmp_path, expected)
    np.testing.assert_array_equal(CIFAR10(tmp_path).data, dataset.data)


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_pickle_that_calls_a_function_is_refused_before_calling_it(tmp_path, protocol):
    write_python_batches(tmp_path, hostile.malicious_pickle(protocol))
    with pytest.raises(DatasetError, match=r"asks to call (posix|nt)\.system while loading; graphc refuses it"):
        CIFAR10(tmp_path)


# -- ImageFolder ----------------------------------------------------------------------------------------------


def image_folder(root, images: dict[str, bytes]):
    """root/digit/<name> for each image; returns the dataset."""
    (root / "digit").mkdir(parents=True)
    for name, data in images.items():
        (root / "digit" / name).write_bytes(data)
    return ImageFolder(root)


def test_a_decompression_bomb_image_is_refused_by_name(tmp_path):
    # 20000x20000 pixels in the header: Pillow refuses it before decoding a byte.
    dataset = image_folder(tmp_path, {"bomb.png": hostile.png_bytes(20000, 20000, rows=b"")})
    with pytest.raises(DatasetError) as raised:
        dataset[0]
    message = str(raised.value)
    assert "refused the image" in message and "bomb.png" in message and "400000000 pixels" in message
    assert "MAX_IMAGE_PIXELS" in message


@pytest.mark.parametrize("name, data", [
    ("header.ppm", b"P6\n1\xd8\xce 4\n255\n" + bytes(12)),          # Pillow raises ValueError reading it
    ("truncated.png", hostile.png_bytes(8, 8)[:40]),
    ("text.png", b"not an image at all"),
])
def test_a_damaged_image_is_a_dataset_error(tmp_path, name, data):
    dataset = image_folder(tmp_path, {name: data})
    with pytest.raises(DatasetError, match=f"could not read the image .*{name}"):
        dataset[0]


def test_a_symlink_loop_lists_each_image_once(tmp_path):
    dataset_root = tmp_path / "data"
    image_folder(dataset_root, {"one.png": hostile.png_bytes(4, 4)})
    os.symlink(dataset_root / "digit", dataset_root / "digit" / "again")       # digit/again -> digit
    os.symlink(dataset_root, dataset_root / "digit" / "root")                  # digit/root -> the root
    dataset = ImageFolder(dataset_root)
    assert [os.path.basename(path) for path, _ in dataset.samples] == ["one.png"]
    image, label = dataset[0]
    assert tuple(image.shape) == (3, 4, 4) and label == 0
