"""graphc.datasets: MNIST, FashionMNIST, CIFAR10, ImageFolder and Digits from small files in the real formats."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

import graphc
from graphc.errors import GraphcError
from graphc.frontend.datasets import CIFAR10, MNIST, DatasetError, Digits, FashionMNIST, ImageFolder
from graphc.frontend.transforms import Compose, Normalize, RandomHorizontalFlip, ToTensor
from graphc.frontend.utils.data import DataLoader

RNG = np.random.default_rng(0)


# -- writing the real formats -----------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0x0000, type 0x08, rank, big-endian sizes, then the values."""
    return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder, n=12, prefix="train", gz=False):
    images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = RNG.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


def cifar_batch(n):
    images = RNG.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = RNG.integers(0, 10, n, dtype=np.uint8)
    return images, labels


def binary_batch_bytes(images, labels):
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels[:, None], planes], axis=1).tobytes()


def python_batch_bytes(images, labels):
    # Protocol 2, as the published (Python 2) files; the row layout is CIFAR's: red, green, blue planes.
    batch = {"batch_label": "testing batch 1 of 1", "labels": labels.tolist(),
             "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1), "filenames": ["a.png"] * len(images)}
    return pickle.dumps(batch, protocol=2)


def write_cifar(folder, fmt, batch=3):
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images, labels = cifar_batch(batch)
        parts[name] = images, labels
        if fmt == "bin":
            (folder / f"{name}.bin").write_bytes(binary_batch_bytes(images, labels))
        else:
            (folder / name).write_bytes(python_batch_bytes(images, labels))
    return parts


def expected_image(uint8_hwc):
    array = uint8_hwc if uint8_hwc.ndim == 3 else uint8_hwc[:, :, None]
    return array.transpose(2, 0, 1).astype(np.float32) / np.float32(255)


def check_batched_path_matches_samples(dataset):
    images, labels = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    for i in range(len(dataset)):
        image, label = dataset[i]
        np.testing.assert_allclose(images.numpy()[i], image.numpy(), rtol=1e-6)
        assert labels.numpy()[i] == label and isinstance(label, int)


# -- MNIST ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["root", "raw"])
def test_mnist_reads_idx_files(tmp_path, gz, layout):
    folder = tmp_path if layout == "root" else tmp_path / "MNIST" / "raw"
    images, labels = write_mnist(folder, gz=gz)
    test_images, test_labels = write_mnist(folder, n=5, prefix="t10k", gz=gz)
    train = MNIST(tmp_path)
    assert len(train) == 12 and len(MNIST(str(tmp_path), train=False)) == 5
    image, label = train[3]
    assert image.dtype == graphc.float32 and image.shape == (1, 28, 28)
    np.testing.assert_array_equal(image.numpy(), expected_image(images[3]))
    assert label == labels[3]
    assert train.data.dtype == graphc.uint8 and train.data.shape == (12, 28, 28)
    assert train.targets.dtype == graphc.int64 and train.targets.tolist() == labels.tolist()
    assert MNIST(tmp_path, train=False).targets.tolist() == test_labels.tolist()
    check_batched_path_matches_samples(train)


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    _, labels = write_mnist(tmp_path / "FashionMNIST" / "raw")
    dataset = FashionMNIST(tmp_path)
    assert dataset.targets.tolist() == labels.tolist()
    assert dataset.classes[9] == "Ankle boot" and dataset.class_to_idx["Trouser"] == 1
    with pytest.raises(DatasetError):
        MNIST(tmp_path)    # MNIST does not look in FashionMNIST's folder


def test_mnist_transforms_receive_pillow_images(tmp_path):
    images, labels = write_mnist(tmp_path)
    seen = []
    transform = Compose([lambda image: seen.append(image) or image, ToTensor(), Normalize((0.5,), (0.5,))])
    dataset = MNIST(tmp_path, transform=transform, target_transform=lambda y: y + 100)
    image, label = dataset[0]
    assert isinstance(seen[0], Image.Image) and seen[0].mode == "L"
    np.testing.assert_allclose(image.numpy(), (expected_image(images[0]) - 0.5) / 0.5, rtol=1e-6)
    assert label == labels[0] + 100
    batch_images, batch_labels = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch_images.shape == (4, 1, 28, 28) and batch_labels.tolist() == (labels[:4] + 100).tolist()


def test_mnist_batches_apply_graphc_transforms_in_one_step(tmp_path):
    write_mnist(tmp_path)
    dataset = MNIST(tmp_path, transform=Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]))
    check_batched_path_matches_samples(dataset)


def test_missing_mnist_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte not found.*MNIST/raw.*Download") as error:
        MNIST(tmp_path / "nowhere")
    assert isinstance(error.value, GraphcError)
    with pytest.raises(DatasetError, match="does not download.*no network"):
        MNIST(tmp_path, download=True)


def test_download_true_with_the_files_present_reads_them(tmp_path):
    write_mnist(tmp_path)
    assert len(MNIST(tmp_path, download=True)) == 12


@pytest.mark.parametrize("damage,message", [
    (lambda data: data[:-10], "truncated or corrupt"),
    (lambda data: data[:6], "too short"),
    (lambda data: b"\x00\x00\x08\x01" + data[4:], "starts with 0x00000801.*0x00000803"),
])
def test_malformed_idx_files(tmp_path, damage, message):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match=message) as error:
        MNIST(tmp_path)
    assert str(path) in str(error.value)


def test_truncated_gzip_and_mismatched_counts(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DatasetError, match="could not read .*train-labels-idx1-ubyte.gz"):
        MNIST(tmp_path)
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(7, np.uint8))))
    with pytest.raises(DatasetError, match="12 images but 7 labels"):
        MNIST(tmp_path)
    path.write_bytes(gzip.compress(idx_bytes(np.full(12, 10, np.uint8))))
    with pytest.raises(DatasetError, match="label 10 is out of range"):
        MNIST(tmp_path)


# -- CIFAR-10 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,subfolder", [("bin", ""), ("bin", "cifar-10-batches-bin"),
                                           ("py", "cifar-10-batches-py")])
def test_cifar10_reads_both_formats(tmp_path, fmt, subfolder):
    parts = write_cifar(tmp_path / subfolder, fmt)
    train, test = CIFAR10(tmp_path), CIFAR10(tmp_path, train=False)
    assert len(train) == 15 and len(test) == 3
    expected_images = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
    expected_labels = np.concatenate([parts[f"data_batch_{i}"][1] for i in range(1, 6)])
    np.testing.assert_array_equal(train.data, expected_images)
    assert train.targets == expected_labels.tolist()
    image, label = test[2]
    assert image.shape == (3, 32, 32)
    np.testing.assert_array_equal(image.numpy(), expected_image(parts["test_batch"][0][2]))
    assert label == parts["test_batch"][1][2]
    assert train.classes[0] == "airplane"
    check_batched_path_matches_samples(train)


def test_cifar10_python_batches_written_by_numpy_1(tmp_path):
    # numpy 1 names its array reconstructor numpy.core.multiarray, as the published files do.
    images, labels = cifar_batch(4)
    data = python_batch_bytes(images, labels).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(data)
    np.testing.assert_array_equal(CIFAR10(tmp_path, train=False).data, images)


class Hostile:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar10_refuses_a_pickle_that_runs_code(tmp_path):
    Hostile.marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Hostile(), "labels": [1]}, protocol=2))
    with pytest.raises(DatasetError, match=r"system.*refuses") as error:
        CIFAR10(tmp_path, train=False)
    assert "test_batch" in str(error.value)
    assert not Hostile.marker.exists()


@pytest.mark.parametrize("contents,message", [
    (lambda: binary_batch_bytes(*cifar_batch(2))[:-1], "not a whole number of 3073-byte records"),
    (lambda: b"", "not a whole number"),
    (lambda: binary_batch_bytes(cifar_batch(2)[0], np.array([3, 12], np.uint8)), "label is outside"),
])
def test_malformed_cifar_binary_batches(tmp_path, contents, message):
    write_cifar(tmp_path, "bin")
    (tmp_path / "test_batch.bin").write_bytes(contents())
    with pytest.raises(DatasetError, match=message):
        CIFAR10(tmp_path, train=False)


def test_malformed_cifar_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, "py")
    (folder / "test_batch").write_bytes(pickle.dumps({"data": [1, 2]}, protocol=2))
    with pytest.raises(DatasetError, match="not a CIFAR-10 python batch"):
        CIFAR10(tmp_path, train=False)
    (folder / "test_batch").write_bytes(python_batch_bytes(*cifar_batch(2))[:-30])
    with pytest.raises(DatasetError, match="could not unpickle .*test_batch"):
        CIFAR10(tmp_path, train=False)


def test_missing_cifar_batches(tmp_path):
    with pytest.raises(DatasetError, match="data_batch_1.*cifar-10-binary.tar.gz"):
        CIFAR10(tmp_path)
    write_cifar(tmp_path, "bin")
    (tmp_path / "data_batch_4.bin").unlink()
    with pytest.raises(DatasetError, match="data_batch_4.bin not found"):
        CIFAR10(tmp_path)


def test_cifar10_augmentation_pipeline(tmp_path):
    write_cifar(tmp_path, "bin")
    transform = Compose([RandomHorizontalFlip(), ToTensor(), Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])
    dataset = CIFAR10(tmp_path, transform=transform)
    images, labels = next(iter(DataLoader(dataset, batch_size=8, shuffle=True, generator=0)))
    assert images.shape == (8, 3, 32, 32) and labels.dtype == graphc.int64


# -- ImageFolder ------------------------------------------------------------------------------------------

def write_folder(root):
    arrays = {}
    for name, count in (("dog", 2), ("cat", 3)):
        (root / name / "nested").mkdir(parents=True)
        for i in range(count):
            array = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
            path = root / name / ("nested" if i == 2 else "") / f"{i}.png"
            Image.fromarray(array).save(path)
            arrays[str(path)] = array
    (root / "cat" / "notes.txt").write_text("not an image")
    Image.fromarray(np.full((5, 6), 200, np.uint8)).save(root / "dog" / "gray.bmp")
    return arrays


def test_image_folder(tmp_path):
    arrays = write_folder(tmp_path)
    dataset = ImageFolder(tmp_path)
    assert dataset.classes == ["cat", "dog"] and dataset.class_to_idx == {"cat": 0, "dog": 1}
    assert len(dataset) == 6 and dataset.targets == [0, 0, 0, 1, 1, 1]
    assert [os.path.basename(p) for p, _ in dataset.samples] == ["0.png", "1.png", "2.png", "0.png", "1.png",
                                                                 "gray.bmp"]
    for i, (path, label) in enumerate(dataset.samples):
        image, got = dataset[i]
        assert got == label and image.shape == (3, 5, 6)
        expected = arrays.get(path, np.full((5, 6, 3), 200, np.uint8))    # grayscale is converted to RGB
        np.testing.assert_array_equal(image.numpy(), expected_image(expected))
    images, labels = next(iter(DataLoader(dataset, batch_size=6)))
    assert images.shape == (6, 3, 5, 6) and labels.tolist() == dataset.targets


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        ImageFolder(tmp_path)
    write_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files in .*empty"):
        ImageFolder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    dataset = ImageFolder(tmp_path)
    with pytest.raises(DatasetError, match="could not read the image .*broken.png"):
        dataset[dataset.targets.index(dataset.class_to_idx["empty"])]


# -- Digits -----------------------------------------------------------------------------------------------

def test_digits_split_and_values():
    train, test = Digits(), Digits(train=False)
    assert len(train) == 1500 and len(test) == 297
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == graphc.float32 and label == 0
    values = np.stack([test[i][0].numpy() for i in range(len(test))])
    assert values.min() == 0.0 and 0.9 < values.max() <= 1.0
    assert sorted(set(test.targets.tolist())) == list(range(10))
    assert train.data.shape == (1500, 28, 28) and train.data.dtype == graphc.uint8
    check_batched_path_matches_samples(test)


def test_digits_sizes_and_channels():
    small = Digits(size=8)
    rgb = Digits(size=16, channels=3, train=False)
    assert small[5][0].shape == (1, 8, 8)
    image = rgb[5][0].numpy()
    assert image.shape == (3, 16, 16)
    np.testing.assert_array_equal(image[0], image[2])
    with pytest.raises(ValueError, match="channels"):
        Digits(channels=2)


def test_packaged_digits_are_scikit_learns():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    small = Digits(size=8, train=False)
    np.testing.assert_array_equal(small.targets.numpy(), digits.target[1500:])
    np.testing.assert_array_equal(small.data.numpy(), np.round(digits.images[1500:] * 255 / 16))
