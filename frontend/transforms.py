"""Image transforms for datasets, as ``torchvision.transforms``.

Datasets hand their transform a Pillow image (as torchvision does), so a
torchvision pipeline such as ``Compose([RandomCrop(32, padding=4),
RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)])`` ports unchanged.
Resize, RandomCrop, RandomHorizontalFlip, CenterCrop and Grayscale also take C×H×W Tensors.

Every transform here also has a ``batch`` form that transforms a whole batch
at once: where one sample is a Pillow image, a batch is a uint8 N×H×W×C numpy
array, and where one sample is a C×H×W Tensor, a batch is an N×C×H×W Tensor.
graphc's in-memory datasets use it (see ``batched``), so augmenting a batch
costs a few numpy operations instead of a Python call chain per image.

The random transforms draw from a numpy stream seeded from graphc's default
generator, so ``graphc.manual_seed`` reproduces them (a batch draws its
numbers in another order than single samples do, so the two differ).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps

from .creation import from_numpy
from .tensor import Tensor
from .utils.data.seeding import default_numpy_rng


def batched(transform) -> Callable | None:
    """``transform``'s whole-batch form, or None when it (or a step of a Compose) works per sample only."""
    if isinstance(transform, Compose):
        steps = [batched(step) for step in transform.transforms]
        if any(step is None for step in steps):
            return None
        return Compose(steps)
    return getattr(transform, "batch", None)


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({lines}\n)"


class ToTensor:
    """A Pillow image or an H×W(×C) numpy array as a C×H×W Tensor.

    uint8 values (and Pillow's 1-bit images) are scaled to float32 in [0, 1];
    other dtypes keep their values and dtype, as in torchvision.
    """

    def __call__(self, picture) -> Tensor:
        if isinstance(picture, Image.Image):
            array = np.asarray(picture)
            if picture.mode == "1":
                array = array.astype(np.uint8) * np.uint8(255)
        elif isinstance(picture, np.ndarray):
            array = picture
        else:
            raise TypeError(f"ToTensor takes a Pillow image or a numpy array, not {type(picture).__name__}"
                            + ("; this is already a Tensor, so leave ToTensor out" if isinstance(picture, Tensor)
                               else ""))
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"ToTensor takes an H×W or H×W×C image, got an array of shape {list(array.shape)}")
        return _only_sample(self.batch(array[None]))

    def batch(self, images: np.ndarray) -> Tensor:
        """N×H×W×C images as an N×C×H×W Tensor."""
        nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if nchw.dtype == np.uint8:
            nchw = nchw.astype(np.float32) / np.float32(255)
        return from_numpy(nchw)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(image - mean) / std`` per channel of a float C×H×W (or N×C×H×W) Tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = [float(m) for m in np.atleast_1d(mean)]
        self.std = [float(s) for s in np.atleast_1d(std)]
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std {self.std} has a zero, which would divide by zero")

    def __call__(self, image: Tensor) -> Tensor:
        if not isinstance(image, Tensor) or not image.dtype.is_float:
            raise TypeError("Normalize takes a float Tensor (apply ToTensor first), not "
                            + (f"a {image.dtype!r} Tensor" if isinstance(image, Tensor) else type(image).__name__))
        array = image.detach().numpy()
        if array.ndim < 3:
            raise ValueError(f"Normalize takes a C×H×W image, got shape {list(array.shape)}")
        if {len(self.mean), len(self.std)} - {1, array.shape[-3]}:
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} need one value per channel, "
                             f"and the image has {array.shape[-3]} (shape {list(array.shape)})")
        mean = np.asarray(self.mean, dtype=array.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=array.dtype).reshape(-1, 1, 1)
        return from_numpy((array - mean) / std)

    def batch(self, images: Tensor) -> Tensor:
        return self(images)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Resize:
    """Resize with Pillow's bilinear filter.

    ``size`` as (height, width) gives that size; a single int sets the shorter
    side and keeps the aspect ratio, as in torchvision.
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = size

    def __call__(self, image):
        if isinstance(image, Image.Image):
            new_height, new_width = self._target_size(image.height, image.width)
            return image.resize((new_width, new_height), Image.Resampling.BILINEAR)
        return _only_sample(self.batch(_tensor_batch_of_one(image, "Resize")))

    def batch(self, images):
        array, height_axis = _array_and_height_axis(images)
        new_height, new_width = self._target_size(*array.shape[height_axis:height_axis + 2])
        if isinstance(images, np.ndarray):
            resized = [np.asarray(_pillow_image(image).resize((new_width, new_height), Image.Resampling.BILINEAR))
                       for image in images]
            return np.stack(resized).reshape(len(images), new_height, new_width, -1)
        # Pillow resizes float32 images ("F" mode) one channel at a time.
        channels = array.astype(np.float32).reshape(-1, *array.shape[2:])
        resized = [np.asarray(Image.fromarray(channel, mode="F").resize((new_width, new_height),
                                                                        Image.Resampling.BILINEAR))
                   for channel in channels]
        return from_numpy(np.stack(resized).reshape(*array.shape[:2], new_height, new_width))

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        if isinstance(self.size, Sequence):
            return int(self.size[0]), int(self.size[1])
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomHorizontalFlip:
    """Mirror the image left to right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image):
        if not isinstance(image, Image.Image):
            return _only_sample(self.batch(_tensor_batch_of_one(image, "RandomHorizontalFlip")))
        if default_numpy_rng().random() >= self.p:
            return image
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def batch(self, images):
        array, height_axis = _array_and_height_axis(images)
        flip = default_numpy_rng().random(len(array)) < self.p
        flipped = array.copy()
        flipped[flip] = np.flip(array[flip], axis=height_axis + 1)
        return flipped if isinstance(images, np.ndarray) else from_numpy(flipped)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Crop a random ``size`` (an int for a square, or (height, width)) window, after zero ``padding``.

    ``padding`` is one int for every side, (left/right, top/bottom), or
    (left, top, right, bottom), as in torchvision.
    """

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None):
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.padding = padding
        self._borders = _borders(padding)

    def __call__(self, image):
        if not isinstance(image, Image.Image):
            return _only_sample(self.batch(_tensor_batch_of_one(image, "RandomCrop")))
        if any(self._borders):
            image = ImageOps.expand(image, border=self._borders, fill=0)
        top, left = self._corners(image.height, image.width, 1)
        crop_height, crop_width = self.size
        return image.crop((left[0], top[0], left[0] + crop_width, top[0] + crop_height))

    def batch(self, images):
        array, height_axis = _array_and_height_axis(images)
        left, top, right, bottom = self._borders
        widths = [(0, 0)] * array.ndim
        widths[height_axis:height_axis + 2] = [(top, bottom), (left, right)]
        padded = np.pad(array, widths)
        tops, lefts = self._corners(*padded.shape[height_axis:height_axis + 2], len(padded))
        # Every window of every image as a view, indexed by its corner; one fancy index picks each
        # image's own window, leaving N×C×crop_height×crop_width for either layout.
        windows = sliding_window_view(padded, self.size, axis=(height_axis, height_axis + 1))
        if isinstance(images, np.ndarray):
            return np.ascontiguousarray(np.moveaxis(windows[np.arange(len(padded)), tops, lefts], 1, -1))
        return from_numpy(np.ascontiguousarray(windows[np.arange(len(padded)), :, tops, lefts]))

    def _corners(self, height: int, width: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` random (top, left) corners of the crop window in a (padded) image of height×width."""
        crop_height, crop_width = self.size
        if crop_height > height or crop_width > width:
            raise ValueError(f"RandomCrop: the crop {crop_height}×{crop_width} is larger than the "
                             f"{'padded ' if any(self._borders) else ''}image, {height}×{width}")
        rng = default_numpy_rng()
        return rng.integers(0, height - crop_height + 1, count), rng.integers(0, width - crop_width + 1, count)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class CenterCrop:
    """Crop the central ``size`` (an int for a square, or (height, width)) window; an image smaller than
    that is first padded with zeros around it, as in torchvision."""

    def __init__(self, size: int | Sequence[int]):
        if isinstance(size, int):
            self.size = (size, size)
        elif len(size) == 1:
            self.size = (int(size[0]), int(size[0]))
        else:
            self.size = (int(size[0]), int(size[1]))

    def __call__(self, image):
        if not isinstance(image, Image.Image):
            return _only_sample(self.batch(_tensor_batch_of_one(image, "CenterCrop")))
        (left, top, right, bottom), (crop_top, crop_left) = self._placement(image.height, image.width)
        if left or top or right or bottom:
            image = ImageOps.expand(image, border=(left, top, right, bottom), fill=0)
        crop_height, crop_width = self.size
        return image.crop((crop_left, crop_top, crop_left + crop_width, crop_top + crop_height))

    def batch(self, images):
        array, height_axis = _array_and_height_axis(images)
        (left, top, right, bottom), (crop_top, crop_left) = self._placement(*array.shape[height_axis:height_axis + 2])
        widths = [(0, 0)] * array.ndim
        widths[height_axis:height_axis + 2] = [(top, bottom), (left, right)]
        window = [slice(None)] * array.ndim
        window[height_axis:height_axis + 2] = [slice(crop_top, crop_top + self.size[0]),
                                               slice(crop_left, crop_left + self.size[1])]
        cropped = np.ascontiguousarray(np.pad(array, widths)[tuple(window)])
        return cropped if isinstance(images, np.ndarray) else from_numpy(cropped)

    def _placement(self, height: int, width: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """The zero padding (left, top, right, bottom) an image of height×width needs, and the crop's
        (top, left) corner in the padded image (torchvision's rounding: Python's round, half to even)."""
        crop_height, crop_width = self.size
        extra_width, extra_height = max(crop_width - width, 0), max(crop_height - height, 0)
        padding = (extra_width // 2, extra_height // 2, (extra_width + 1) // 2, (extra_height + 1) // 2)
        height, width = height + extra_height, width + extra_width
        return padding, (int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0)))

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class Grayscale:
    """Convert to grayscale with 1 or 3 (equal) channels.

    Pillow images use Pillow's "L" conversion (ITU-R 601-2 luma); tensors use
    torchvision's 0.2989 R + 0.587 G + 0.114 B.  A one-channel input stays as it is.
    """

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError("num_output_channels should be either 1 or 3")
        self.num_output_channels = num_output_channels

    def __call__(self, image):
        if not isinstance(image, Image.Image):
            return _only_sample(self.batch(_tensor_batch_of_one(image, "Grayscale")))
        gray = image.convert("L")
        if self.num_output_channels == 1:
            return gray
        return Image.fromarray(np.dstack([np.asarray(gray)] * 3), "RGB")

    def batch(self, images):
        array, height_axis = _array_and_height_axis(images)
        channel_axis = 3 if isinstance(images, np.ndarray) else 1
        channels = array.shape[channel_axis]
        if channels not in (1, 3):
            raise ValueError(f"Grayscale takes images with 1 or 3 channels, got {channels}")
        if channels == 3:
            red, green, blue = (np.take(array, [c], axis=channel_axis) for c in range(3))
            if isinstance(images, np.ndarray):     # Pillow's integer luma, as __call__ gives per image
                luma = (red * np.int32(19595) + green * np.int32(38470) + blue * np.int32(7471) + 0x8000) >> 16
            else:
                luma = 0.2989 * red + 0.587 * green + 0.114 * blue
            array = luma.astype(array.dtype)
        gray = np.ascontiguousarray(np.repeat(array, self.num_output_channels, axis=channel_axis))
        return gray if isinstance(images, np.ndarray) else from_numpy(gray)

    def __repr__(self) -> str:
        return f"Grayscale(num_output_channels={self.num_output_channels})"


def _borders(padding) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from torchvision's three spellings of padding."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[1], padding[0], padding[1])
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding must be an int or a sequence of 2 or 4 ints, got {padding!r}")


def _tensor_batch_of_one(image, what: str) -> Tensor:
    if not isinstance(image, Tensor) or image.dim() != 3:
        raise TypeError(f"{what} takes a Pillow image or a C×H×W Tensor, not "
                        + (f"a Tensor of shape {list(image.shape)}" if isinstance(image, Tensor)
                           else type(image).__name__))
    return from_numpy(image.detach().numpy()[None])


def _only_sample(batch: Tensor) -> Tensor:
    return from_numpy(batch.numpy()[0])


def _array_and_height_axis(images) -> tuple[np.ndarray, int]:
    """A batch's numpy array and the axis of its height: 1 for N×H×W×C images, 2 for N×C×H×W Tensors."""
    if isinstance(images, np.ndarray):
        return images, 1
    return images.detach().numpy(), 2


def _pillow_image(hwc: np.ndarray) -> Image.Image:
    return Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
