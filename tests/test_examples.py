"""The example programs run end to end, write their outputs, resume exactly and fail politely.

Each program runs in a subprocess on the built-in digits with tiny settings
(two epochs of two steps of four images), so a run takes a few seconds.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import graphc
from graphc.backends.registry import available_backends

import common

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--max-steps", "2", "--batch-size", "4"]
CLASSIFIER_COLUMNS = ["epoch", "train_loss", "test_accuracy", "images_per_second", "seconds"]
GRID_SIZE = (8 * 30 + 2, 8 * 30 + 2)     # 8 samples of 28 pixels a row, 2 pixels around each
# What each program writes: metrics.csv's columns, the checkpoint's parts, and PNGs (with their size, if fixed).
PROGRAMS = {
    "train_cnn": {"columns": CLASSIFIER_COLUMNS, "state": ["model", "optimizer"], "pngs": {"metrics.png": None}},
    "train_resnet": {"columns": CLASSIFIER_COLUMNS, "state": ["model", "optimizer"], "pngs": {"metrics.png": None}},
    "train_gan": {"columns": ["epoch", "loss_d", "loss_g", "d_real", "d_fake", "images_per_second", "seconds"],
                  "state": ["generator", "discriminator", "optimizer_g", "optimizer_d"],
                  "pngs": {"metrics.png": None, "samples_epoch001.png": GRID_SIZE,
                           "samples_epoch002.png": GRID_SIZE}},
}


def run_script(script: Path, *args, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a Python script with ``args``; with ``check``, fail the test on a non-zero exit status."""
    env = {**os.environ, "TQDM_DISABLE": "1"}      # progress bars only clutter the captured output
    result = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result


def run_example(program: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``examples/<program>.py`` from the current directory."""
    return run_script(EXAMPLES / f"{program}.py", *args, check=check)


def tensors_of(checkpoint, prefix=""):
    """Every tensor in a loaded checkpoint, by its key path."""
    if isinstance(checkpoint, graphc.Tensor):
        return {prefix: checkpoint.numpy()}
    items = checkpoint.items() if isinstance(checkpoint, dict) else enumerate(checkpoint)
    found = {}
    for key, value in items:
        if isinstance(value, (graphc.Tensor, dict, list, tuple)):
            found.update(tensors_of(value, f"{prefix}.{key}"))
    return found


@pytest.fixture(scope="module", params=list(PROGRAMS))
def two_epoch_run(request, tmp_path_factory):
    """(program, its --out folder) after an uninterrupted two-epoch run."""
    out = tmp_path_factory.mktemp(request.param)
    run_example(request.param, "--epochs", "2", *TINY, "--out", out)
    return request.param, out


def test_a_run_writes_metrics_pngs_and_a_checkpoint(two_epoch_run):
    program, out = two_epoch_run
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == PROGRAMS[program]["columns"]
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert all(np.isfinite(float(value)) for row in rows for value in row.values())
    for name, size in PROGRAMS[program]["pngs"].items():
        with Image.open(out / name) as png:
            assert png.format == "PNG"
            assert png.size == (size or png.size)
            assert np.asarray(png).std() > 0, f"{name} is blank"
    checkpoint = graphc.load(out / common.CHECKPOINT_NAME)
    assert checkpoint["epoch"] == 2
    assert len(checkpoint["metrics"]) == 2
    for name in PROGRAMS[program]["state"]:
        assert checkpoint[name]


@pytest.mark.parametrize("two_epoch_run", ["train_gan"], indirect=True)
def test_the_gan_saves_each_network_on_its_own(two_epoch_run):
    _, out = two_epoch_run
    checkpoint = graphc.load(out / common.CHECKPOINT_NAME)
    for network in ("generator", "discriminator"):
        weights = graphc.load(out / f"{network}.safetensors")
        assert weights.keys() == checkpoint[network].keys()
        for key, value in weights.items():
            np.testing.assert_array_equal(value.numpy(), checkpoint[network][key].numpy(), err_msg=key)


def test_a_resumed_run_ends_bitwise_where_an_uninterrupted_one_does(two_epoch_run, tmp_path):
    program, uninterrupted = two_epoch_run
    run_example(program, "--epochs", "1", *TINY, "--out", tmp_path)
    run_example(program, "--epochs", "2", *TINY, "--out", tmp_path, "--resume", tmp_path / common.CHECKPOINT_NAME)
    expected = tensors_of(graphc.load(uninterrupted / common.CHECKPOINT_NAME))
    resumed = tensors_of(graphc.load(tmp_path / common.CHECKPOINT_NAME))
    assert expected.keys() == resumed.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(resumed[name], array, err_msg=name)
    with open(tmp_path / "metrics.csv", newline="") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["1", "2"]


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_eager_mode_runs(program, tmp_path):
    result = run_example(program, "--eager", "--epochs", "1", "--max-steps", "1", "--batch-size", "4",
                         "--out", tmp_path)
    assert "eager" in result.stdout
    assert (tmp_path / common.CHECKPOINT_NAME).is_file()


def test_a_program_runs_from_its_own_folder_and_writes_to_runs_by_default(tmp_path):
    examples_copy = tmp_path / "examples"        # a copy, so that the default runs/ lands outside the repository
    examples_copy.mkdir()
    for name in ("common.py", "models.py", "train_cnn.py"):
        (examples_copy / name).write_text((EXAMPLES / name).read_text())
    run_script(Path("train_cnn.py"), "--epochs", "1", *TINY, cwd=examples_copy)
    assert (examples_copy / "runs" / "train_cnn" / "metrics.csv").is_file()


def test_an_image_folder_is_resized_and_split(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("circle", "square"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)   # sizes differ: Resize unifies them
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    result = run_example("train_cnn", "--model", "mnistnet", "--data", f"folder:{tmp_path / 'data'}",
                         "--epochs", "1", *TINY, "--out", tmp_path / "out")
    assert "18 training images" in result.stdout


@pytest.mark.parametrize("data, status, message", [
    ("imagenet", 2, "'imagenet' is not a dataset; use digits, mnist:DIR"),
    ("mnist", 2, "'mnist' is not a dataset"),
    ("mnist:{missing}", 2, "is not a directory"),
    ("mnist:{empty}", 1, "train-images-idx3-ubyte not found"),
    ("folder:{empty}", 1, "has no class sub-folders"),
])
def test_bad_data_is_a_clear_error(data, status, message, tmp_path):
    data = data.format(missing=tmp_path / "missing", empty=tmp_path)
    result = run_example("train_cnn", "--data", data, "--out", tmp_path / "out", check=False)
    assert result.returncode == status
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unavailable_backend_is_a_clear_error(tmp_path):
    missing = next((name for name in ("llvm", "opencl") if name not in available_backends()), None)
    if missing is None:
        pytest.skip("every backend is available here")
    result = run_example("train_cnn", "--backend", missing, "--out", tmp_path, check=False)
    assert result.returncode == 2
    assert f"the {missing} backend is not available here" in result.stderr


# -- the shared pieces, in process ----------------------------------------------------------------------------
def test_data_sources_parse():
    assert common.data_source("digits") == common.DataSource("digits")
    assert common.data_source(f"cifar10:{EXAMPLES}") == common.DataSource("cifar10", EXAMPLES)


def test_the_shuffle_order_depends_only_on_seed_and_epoch():
    dataset = graphc.utils.data.TensorDataset(graphc.arange(50))

    def order(seed, epoch):
        return np.concatenate([batch.numpy() for batch, in common.epoch_loader(dataset, 10, seed, epoch)])

    first = order(0, 1)
    graphc.manual_seed(123)           # the default generator plays no part
    assert np.array_equal(order(0, 1), first)
    assert not np.array_equal(order(0, 2), first)
    assert not np.array_equal(order(1, 1), first)
    assert sorted(first) == list(range(50))


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_converting_channels_matches_pillow(channels, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    gray = rgb[..., :1]
    convert = common.ConvertChannels(channels)
    for images in (rgb, gray):
        batch = convert.batch(images)
        singles = [np.asarray(convert(Image.fromarray(image if image.shape[2] == 3 else image[..., 0])))
                   for image in images]
        expected = np.stack([s if s.ndim == 3 else s[..., None] for s in singles])
        assert batch.shape == expected.shape == (4, 5, 6, channels)
        assert np.abs(batch.astype(int) - expected).max() <= 1    # Pillow rounds its fixed-point luma
