"""graphc.transforms: ToTensor, Normalize, Resize and the seeded random transforms, on Pillow images and Tensors."""
import numpy as np
import pytest
from PIL import Image

import graphc
from graphc.frontend.transforms import (Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize, ToTensor,
                                       batched)


def rgb_array(height=6, width=8):
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_to_tensor_from_pillow_and_arrays():
    array = rgb_array()
    for picture in (Image.fromarray(array), array):
        t = ToTensor()(picture)
        assert t.dtype == graphc.float32 and t.shape == (3, 6, 8)
        np.testing.assert_array_equal(t.numpy(), array.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    gray = ToTensor()(Image.fromarray(array[:, :, 0]))
    assert gray.shape == (1, 6, 8)
    bits = ToTensor()(Image.fromarray(array[:, :, 0] > 127))
    np.testing.assert_array_equal(bits.numpy()[0], (array[:, :, 0] > 127).astype(np.float32))


def test_to_tensor_keeps_values_of_other_dtypes():
    t = ToTensor()(np.full((2, 3), 7.5, np.float32))
    assert t.shape == (1, 2, 3) and float(t.numpy().max()) == 7.5


def test_to_tensor_rejects_tensors():
    with pytest.raises(TypeError, match="already a Tensor"):
        ToTensor()(graphc.zeros(3, 4, 4))


def test_normalize_matches_the_formula():
    image = ToTensor()(rgb_array())
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    out = Normalize(mean, std)(image).numpy()
    expected = (image.numpy() - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    one_value = Normalize((0.5,), (0.5,))(image).numpy()
    np.testing.assert_allclose(one_value, (image.numpy() - 0.5) / 0.5, rtol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="zero"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="one value per channel"):
        Normalize((0.5, 0.5), (1.0, 1.0))(graphc.zeros(3, 2, 2))
    with pytest.raises(TypeError, match="ToTensor"):
        Normalize((0.5,), (0.5,))(Image.fromarray(rgb_array()))


@pytest.mark.parametrize("size,expected", [((4, 5), (4, 5)), (3, (3, 4)), (12, (12, 16))])
def test_resize_sizes(size, expected):
    image = Image.fromarray(rgb_array())
    resized = Resize(size)(image)
    assert (resized.height, resized.width) == expected
    assert Resize(size)(ToTensor()(image)).shape == (3, *expected)


def test_resize_tensor_agrees_with_pillow():
    image = Image.fromarray(rgb_array(16, 16))
    via_pillow = ToTensor()(Resize(8)(image)).numpy()
    via_tensor = Resize(8)(ToTensor()(image)).numpy()
    np.testing.assert_allclose(via_tensor, via_pillow, atol=1 / 255 + 1e-6)


def test_horizontal_flip_with_p_one_and_zero():
    array = rgb_array()
    flipped = RandomHorizontalFlip(p=1.0)(Image.fromarray(array))
    np.testing.assert_array_equal(np.asarray(flipped), array[:, ::-1])
    tensor = ToTensor()(array)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(tensor).numpy(), tensor.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(tensor).numpy(), tensor.numpy())


def test_random_crop_takes_a_window_of_the_padded_image():
    array = rgb_array(6, 8)
    padded = np.pad(array, ((2, 2), (2, 2), (0, 0)))
    windows = {(top, left): padded[top:top + 6, left:left + 8] for top in range(5) for left in range(5)}
    for _ in range(10):
        crop = np.asarray(RandomCrop((6, 8), padding=2)(Image.fromarray(array)))
        assert any(np.array_equal(crop, w) for w in windows.values())
        tensor_crop = RandomCrop((6, 8), padding=2)(ToTensor()(array))
        assert tensor_crop.shape == (3, 6, 8)
        assert any(np.array_equal(tensor_crop.numpy(), ToTensor()(w).numpy()) for w in windows.values())


def test_random_crop_padding_spellings_and_errors():
    image = Image.fromarray(rgb_array(6, 8))
    assert RandomCrop(4)(image).size == (4, 4)
    assert RandomCrop((8, 10), padding=(1, 1))(image).size == (10, 8)
    assert RandomCrop((7, 9), padding=(1, 0, 0, 1))(image).size == (9, 7)
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(10)(image)


def test_random_transforms_follow_manual_seed():
    pipeline = Compose([RandomCrop(6, padding=3), RandomHorizontalFlip(), ToTensor()])
    image = Image.fromarray(rgb_array(8, 8))

    def run():
        return [pipeline(image).numpy() for _ in range(8)]

    graphc.manual_seed(42)
    first = run()
    graphc.manual_seed(42)
    again = run()
    graphc.manual_seed(43)
    other = run()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert len({a.tobytes() for a in first}) > 1


def test_compose_applies_in_order():
    pipeline = Compose([ToTensor(), Normalize((0.5,), (0.5,))])
    out = pipeline(np.full((2, 2), 255, np.uint8))
    np.testing.assert_allclose(out.numpy(), np.ones((1, 2, 2)))
    assert "ToTensor()" in repr(pipeline)


# -- whole batches ----------------------------------------------------------------------------------------

def uint8_batch(n=5, height=6, width=8, channels=3):
    return np.random.default_rng(1).integers(0, 256, (n, height, width, channels), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("pipeline", [
    lambda c: Compose([ToTensor(), Normalize((0.5,) * c, (0.25,) * c)]),
    lambda c: Compose([Resize((4, 5)), ToTensor()]),
    lambda c: Compose([ToTensor(), Resize(12)]),
    lambda c: Compose([RandomCrop((6, 8)), RandomHorizontalFlip(p=0.0), ToTensor()]),
])
def test_batch_form_matches_samples_for_deterministic_pipelines(pipeline, channels):
    images = uint8_batch(channels=channels)
    transform = pipeline(channels)
    batch = batched(transform)(images)
    assert isinstance(batch, graphc.Tensor)
    for image, result in zip(images, batch.numpy()):
        single = transform(Image.fromarray(image[:, :, 0] if channels == 1 else image))
        np.testing.assert_allclose(result, single.numpy(), atol=1e-6)


def test_batched_is_none_when_a_step_works_per_sample_only():
    assert batched(Compose([ToTensor(), lambda t: t])) is None
    assert batched(lambda t: t) is None


def test_batch_flip_and_crop_treat_each_image_on_its_own():
    images = uint8_batch(n=64, height=5, width=5)
    graphc.manual_seed(0)
    flipped = RandomHorizontalFlip().batch(images)
    was_flipped = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
    assert all(f or np.array_equal(out, i) for f, out, i in zip(was_flipped, flipped, images))
    assert 10 < sum(was_flipped) < 54
    crops = RandomCrop(5, padding=1).batch(ToTensor().batch(images)).numpy()
    padded = np.pad(ToTensor().batch(images).numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    corners = set()
    for crop, source in zip(crops, padded):
        found = [(t, l) for t in range(3) for l in range(3) if np.array_equal(crop, source[:, t:t + 5, l:l + 5])]
        assert found
        corners.add(found[0])
    assert len(corners) > 3


def test_batch_augmentation_follows_manual_seed():
    transform = batched(Compose([RandomCrop(6, padding=2), RandomHorizontalFlip(), ToTensor()]))
    images = uint8_batch(n=16, height=6, width=6)
    graphc.manual_seed(5)
    first = transform(images).numpy()
    graphc.manual_seed(5)
    np.testing.assert_array_equal(transform(images).numpy(), first)
    assert not np.array_equal(transform(images).numpy(), first)
