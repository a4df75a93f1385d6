"""CenterCrop and Grayscale, make_grid and save_image (torchvision's behaviour), and graphc.__version__."""
import io
from importlib import metadata

import numpy as np
import pytest
from PIL import Image

import graphc
import graphc.transforms as T
from graphc.utils import make_grid, save_image


def pil_image(height, width, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8))


@pytest.mark.parametrize("size, shape", [(3, (5, 7)), ((4, 2), (5, 7)), (6, (4, 5)), ((2, 9), (5, 4)), ([5], (5, 5))])
def test_center_crop_on_pillow_tensors_and_batches_agree(size, shape):
    image = pil_image(*shape)
    crop = T.CenterCrop(size)
    expected = np.asarray(crop(image))
    array = np.asarray(image)
    # torchvision's placement: the crop's corner at round((H - h) / 2), zero padding around a small image.
    height, width = crop.size
    padded = np.zeros((max(height, shape[0]), max(width, shape[1]), 3), np.uint8)
    top_pad, left_pad = max(height - shape[0], 0) // 2, max(width - shape[1], 0) // 2
    padded[top_pad:top_pad + shape[0], left_pad:left_pad + shape[1]] = array
    top, left = round((padded.shape[0] - height) / 2), round((padded.shape[1] - width) / 2)
    np.testing.assert_array_equal(expected, padded[top:top + height, left:left + width])
    as_tensor = T.ToTensor()(image)
    np.testing.assert_allclose(crop(as_tensor).numpy(), T.ToTensor()(Image.fromarray(expected)).numpy())
    np.testing.assert_array_equal(crop.batch(array[None])[0], expected)


def test_grayscale_matches_pillow_and_torchvision_weights():
    image = pil_image(4, 6)
    gray = T.Grayscale()(image)
    assert gray.mode == "L"
    np.testing.assert_array_equal(np.asarray(gray), np.asarray(image.convert("L")))
    three = np.asarray(T.Grayscale(3)(image))
    assert three.shape == (4, 6, 3) and (three == np.asarray(gray)[:, :, None]).all()
    np.testing.assert_array_equal(T.Grayscale(3).batch(np.asarray(image)[None])[0], three)
    rgb = T.ToTensor()(image).numpy()
    expected = 0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    np.testing.assert_allclose(T.Grayscale()(graphc.tensor(rgb)).numpy()[0], expected, rtol=1e-6)
    assert T.Grayscale(3)(graphc.tensor(rgb)).shape == (3, 4, 6)
    with pytest.raises(ValueError, match="1 or 3"):
        T.Grayscale(2)


def test_make_grid_lays_images_out_as_torchvision_does():
    images = graphc.tensor(np.arange(5 * 1 * 2 * 3, dtype=np.float32).reshape(5, 1, 2, 3))
    grid = make_grid(images, nrow=2, padding=1, pad_value=-1).numpy()
    assert grid.shape == (3, 3 * 3 + 1, 2 * 4 + 1)               # 3 rows, 2 columns, single channel made RGB
    for k in range(5):
        top, left = 1 + (k // 2) * 3, 1 + (k % 2) * 4
        np.testing.assert_array_equal(grid[:, top:top + 2, left:left + 3], np.repeat(images.numpy()[k], 3, 0))
    assert (grid[:, 7:9, 5:8] == -1).all() and (grid[:, 0, :] == -1).all()     # the empty sixth cell, the border
    single = make_grid(graphc.ones(3, 4, 4))
    assert single.shape == (3, 4, 4)
    assert make_grid([graphc.zeros(3, 2, 2)] * 3).shape == (3, 6, 14)


def test_make_grid_normalizes_by_batch_range_or_per_image():
    images = graphc.tensor(np.array([[[[0.0, 2.0]]], [[[4.0, 8.0]]]], np.float32))
    together = make_grid(images, normalize=True, padding=0).numpy()[0]
    np.testing.assert_allclose(together, [[0.0, 0.25, 0.5, 1.0]])
    each = make_grid(images, normalize=True, scale_each=True, padding=0).numpy()[0]
    np.testing.assert_allclose(each, [[0.0, 1.0, 0.0, 1.0]])
    clamped = make_grid(images, normalize=True, value_range=(1.0, 5.0), padding=0).numpy()[0]
    np.testing.assert_allclose(clamped, [[0.0, 0.25, 0.75, 1.0]])


def test_save_image_writes_the_grid_rounded_to_8_bits(tmp_path):
    images = graphc.tensor(np.linspace(0, 1, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4))
    path = tmp_path / "grid.png"
    save_image(images, path, nrow=2, padding=1)
    saved = np.asarray(Image.open(path))
    grid = make_grid(images, nrow=2, padding=1).numpy()
    np.testing.assert_array_equal(saved, np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    buffer = io.BytesIO()
    save_image(images[0], buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).size == (4, 4)


def test_version_is_the_installed_one():
    assert graphc.__version__ == metadata.version("graphc")
