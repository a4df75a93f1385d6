"""graphc.save / graphc.load: safetensors checkpoints, round trips, damaged files and interrupted saves."""
import json
import math
import os

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

import graphc
from graphc.errors import CheckpointError
from graphc.frontend import serialization
from graphc.frontend.serialization import load, save


def training_state():
    """What a training script saves: a model's and an optimizer's state_dicts, counters, settings."""
    return {
        "model": {"conv.weight": graphc.randn(4, 3, 3, 3), "conv.bias": graphc.zeros(4),
                  "bn.num_batches_tracked": graphc.tensor(17), "mask": graphc.tensor([True, False, True]),
                  "pixels": graphc.tensor(np.arange(6, dtype=np.uint8).reshape(2, 3)),
                  "f64": graphc.tensor(np.array([1.5, -2.25])), "i16": graphc.tensor(np.array([-3], np.int16)),
                  "i32": graphc.tensor(np.array([[7]], np.int32)), "scalar": graphc.tensor(2.5)},
        "optimizer": {"state": {0: {"step": graphc.tensor(3.0), "exp_avg": graphc.ones(4)}, 1: {}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "amsgrad": False,
                                        "foreach": None}]},
        "epoch": 12, "best": float("inf"), "lost": float("nan"), "big": 2 ** 62, "name": "résnet ✓",
        "history": [0.5, 0.25], "numpy": np.arange(4, dtype=np.int64), "empty": [],
    }


def assert_same(loaded, original):
    assert type(loaded) is type(original), (type(loaded), type(original))
    if isinstance(original, graphc.Tensor):
        assert loaded.dtype == original.dtype and loaded.shape == original.shape
        np.testing.assert_array_equal(loaded.numpy(), original.numpy())
    elif isinstance(original, np.ndarray):
        assert loaded.dtype == original.dtype
        np.testing.assert_array_equal(loaded, original)
    elif isinstance(original, dict):
        assert list(loaded) == list(original)
        for key in original:
            assert_same(loaded[key], original[key])
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original)
        for a, b in zip(loaded, original):
            assert_same(a, b)
    elif isinstance(original, float) and math.isnan(original):
        assert math.isnan(loaded)
    else:
        assert loaded == original


def test_round_trip_of_a_training_state(tmp_path):
    state = training_state()
    save(state, tmp_path / "ckpt.safetensors")
    loaded = load(tmp_path / "ckpt.safetensors")
    assert_same(loaded, state)
    assert loaded["model"]["scalar"].shape == () and loaded["model"]["scalar"].dtype == graphc.float32
    assert list(loaded["optimizer"]["state"]) == [0, 1]


@pytest.mark.parametrize("obj", [graphc.arange(5), [1, "two", None], 3.5, {"only": None}, (graphc.ones(1),)])
def test_round_trip_of_other_roots(tmp_path, obj):
    save(obj, str(tmp_path / "x.ckpt"))
    assert_same(load(str(tmp_path / "x.ckpt")), obj)


def test_tensors_requiring_grad_and_views_are_saved(tmp_path):
    weight = graphc.ones(3, 4, requires_grad=True)
    view = graphc.from_numpy(np.arange(12.0, dtype=np.float32).reshape(3, 4).T)
    save({"w": weight, "t": view}, tmp_path / "c")
    loaded = load(tmp_path / "c")
    assert not loaded["w"].requires_grad
    np.testing.assert_array_equal(loaded["t"].numpy(), view.numpy())


def test_file_is_plain_safetensors(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    state = training_state()
    save(state, path)
    with safe_open(path, framework="numpy") as file:
        names = set(file.keys())
        np.testing.assert_array_equal(file.get_tensor("model.conv.weight"), state["model"]["conv.weight"].numpy())
        header = json.loads(file.metadata()["graphc"])
    assert {"model.conv.weight", "optimizer.state.0.exp_avg", "numpy"} <= names
    assert header["format_version"] == serialization.FORMAT_VERSION


def test_shared_and_colliding_tensors(tmp_path):
    shared = graphc.ones(2)
    save({"a": shared, "b": shared, "x.y": graphc.zeros(1), "x": {"y": graphc.ones(1)}}, tmp_path / "c")
    loaded = load(tmp_path / "c")
    assert loaded["a"] is loaded["b"]
    assert loaded["x.y"].tolist() == [0.0] and loaded["x"]["y"].tolist() == [1.0]


def test_a_foreign_safetensors_file_loads_as_a_flat_dict(tmp_path):
    path = tmp_path / "weights.safetensors"
    safetensors.numpy.save_file({"fc.weight": np.ones((2, 2), np.float32), "fc.bias": np.zeros(2, np.float32)},
                                str(path))
    loaded = load(path)
    assert set(loaded) == {"fc.weight", "fc.bias"}
    assert isinstance(loaded["fc.weight"], graphc.Tensor) and loaded["fc.weight"].shape == (2, 2)


@pytest.mark.parametrize("value,message", [({"f": lambda: 0}, "cannot save function at f"),
                                           ({(1, 2): graphc.ones(1)}, "dict keys must be str or int"),
                                           ({True: 1}, "dict keys must be str or int")])
def test_unsavable_values(tmp_path, value, message):
    with pytest.raises(CheckpointError, match=message):
        save(value, tmp_path / "c")
    assert not os.listdir(tmp_path)


def test_truncated_random_and_missing_files(tmp_path):
    path = tmp_path / "ckpt"
    save(training_state(), path)
    data = path.read_bytes()
    for damaged in (data[:len(data) // 2], data[:5], b"", np.random.default_rng(0).bytes(4096)):
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError, match="not a readable safetensors file") as error:
            load(path)
        assert str(path) in str(error.value)
    with pytest.raises(CheckpointError, match="no such file"):
        load(tmp_path / "absent")


def write_with_header(path, header: str, arrays=None):
    path.write_bytes(safetensors.numpy.save(arrays or {"t": np.ones(1, np.float32)}, metadata={"graphc": header}))


@pytest.mark.parametrize("header,message", [
    ("{not json", "metadata is damaged"),
    ('{"structure": 1}', "metadata is damaged"),
    ('{"format_version": 1, "structure": {"tensor": "missing"}}', "names the tensor 'missing'"),
    ('{"format_version": 1, "structure": {"set": [1]}}', "metadata is damaged"),
    ('{"format_version": 99, "structure": null}', "format version 99"),
])
def test_damaged_graphc_metadata(tmp_path, header, message):
    write_with_header(tmp_path / "c", header)
    with pytest.raises(CheckpointError, match=message):
        load(tmp_path / "c")


def test_a_crash_while_renaming_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    save({"epoch": 1, "w": graphc.ones(3)}, path)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CheckpointError, match="disk full"):
        save({"epoch": 2, "w": graphc.zeros(3)}, path)
    assert load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt"]


def test_an_interrupt_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    save({"epoch": 1}, path)

    def interrupted(descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"epoch": 2, "w": graphc.zeros(1000)}, path)
    monkeypatch.undo()
    assert load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ckpt"]


def test_saving_into_a_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="could not save"):
        save({"epoch": 1}, tmp_path / "no" / "ckpt")


def test_new_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save({"epoch": 1}, tmp_path / "ckpt")
    finally:
        os.umask(umask)
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o644


def test_map_location(tmp_path):
    save({"w": graphc.ones(1)}, tmp_path / "c")
    assert load(tmp_path / "c", map_location="cpu", weights_only=True)["w"].tolist() == [1.0]
    with pytest.raises(CheckpointError, match="map_location='cuda:0': graphc tensors live on the CPU"):
        load(tmp_path / "c", map_location="cuda:0")
