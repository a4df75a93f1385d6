"""graphc.save / graphc.load on foreign, damaged and hostile input (issue 14, items 3, 4, 10, 11).

Every refusal is a graphc.CheckpointError whose message names the file and what is wrong with it.
"""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc
from graphc.errors import CheckpointError
from graphc.frontend.serialization import load, save

import hostile_files as hostile

# -- foreign files ---------------------------------------------------------------------------------


def test_bf16_tensors_load_widened_to_float32_exactly(tmp_path):
    values = [1.0, -2.5, 0.15625, 2.0 ** 127, -(2.0 ** -126), float("inf")]     # each exactly a bfloat16
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(hostile.bf16_checkpoint(values))
    w = load(path)["w"]
    assert w.dtype == graphc.float32
    assert w.tolist() == values


def test_bf16_matches_what_pytorch_saves(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    original = torch.randn(3, 5).to(torch.bfloat16)
    safetensors_torch.save_file({"w": original}, str(tmp_path / "t.safetensors"))
    np.testing.assert_array_equal(load(tmp_path / "t.safetensors")["w"].numpy(), original.float().numpy())


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy pickle"])
def test_a_pytorch_checkpoint_is_refused_saying_how_to_convert_it(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), str(path), _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match=r"model\.pt: it is a PyTorch checkpoint .* safetensors\.torch\.save_file"):
        load(path)


def test_a_safetensors_header_whose_length_starts_like_a_pickle_still_loads(tmp_path):
    """A header of 640 bytes is written b"\\x80\\x02..." (a pickle's first two bytes): only torch.save's
    own magic number marks a PyTorch file."""
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'.ljust(0x280)   # JSON, spaces after
    data = hostile.safetensors_bytes(header, np.float32([1.5]).tobytes())
    assert data[:2] == b"\x80\x02"
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    assert load(path)["w"].tolist() == [1.5]


# -- hostile or damaged files: (file bytes, words the message must hold) ------------------------------------

HOSTILE_CHECKPOINTS = {
    "f8 tensor": (hostile.f8_checkpoint(), ["'scale'", "F8_E4M3", "no numpy equivalent"]),
    "metadata a list where a string belongs": (
        hostile.safetensors_bytes({"__metadata__": {"graphc": ["x"]}}), ["__metadata__ is not an object of strings"]),
    "tensor named by a list": (
        hostile.graphc_checkpoint('{"tensor": ["w"]}', {"w": np.ones(2)}), ["names the tensor ['w']", "lacks"]),
    "dict key that is a list": (
        hostile.graphc_checkpoint('{"dict": [[["k"], 1]]}'), ["metadata is damaged"]),
    "graphc JSON nested 5000 deep": (
        hostile.safetensors_bytes({"__metadata__": {"graphc": "[" * 5000 + "]" * 5000}}), ["metadata is damaged"]),
    "structure nested 150 deep": (
        hostile.graphc_checkpoint(hostile.nested_structure(150)), ["nests more than 100 deep"]),
    "header JSON nested 100000 deep": (
        hostile.safetensors_bytes(b"[" * 100_000 + b"]" * 100_000), ["not valid JSON", "RecursionError"]),
    "header not an object": (hostile.safetensors_bytes([1, 2]), ["header is a JSON list"]),
    "header not UTF-8": (hostile.safetensors_bytes(b'{"\xff": 1}'), ["not valid JSON"]),
    "header length past the end": (hostile.safetensors_bytes({}, claimed_size=1 << 40), ["claims 1099511627776"]),
    "header length 2**64-1": (hostile.safetensors_bytes({}, claimed_size=(1 << 64) - 1), ["the header claims"]),
    "offsets past the data": (
        hostile.safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)),
        ["'w' (F32[4]) claims bytes 0..16 of 8"]),
    "shape larger than its bytes": (
        hostile.safetensors_bytes({"w": {"dtype": "F32", "shape": [1 << 62, 1 << 62], "data_offsets": [0, 4]}},
                                  bytes(4)), ["'w'", "claims bytes 0..4"]),
    "negative dimension": (
        hostile.safetensors_bytes({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}),
        ["entry of tensor 'w' is not {dtype, shape, data_offsets}"]),
    "shape of strings": (
        hostile.safetensors_bytes({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, bytes(8)),
        ["entry of tensor 'w'"]),
    "unknown dtype": (
        hostile.safetensors_bytes({"w": {"dtype": "X99", "shape": [], "data_offsets": [0, 0]}}), ["X99"]),
    "format version a list": (
        hostile.safetensors_bytes({"__metadata__": {"graphc": '{"format_version": [1], "structure": null}'}}),
        ["format version [1]"]),
}


@pytest.mark.parametrize("name", list(HOSTILE_CHECKPOINTS))
def test_a_hostile_checkpoint_gets_a_checkpoint_error(tmp_path, name):
    data, words = HOSTILE_CHECKPOINTS[name]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as raised:
        load(path)
    message = str(raised.value)
    assert str(path) in message and all(word in message for word in words), message


# -- saving: refuse what would not load, and never replace a good checkpoint with it -------------------------


def self_referencing_list():
    items = [1]
    items.append(items)
    return items


def self_referencing_dict():
    state = {"epoch": 1}
    state["again"] = state
    return state


def nested_lists(depth: int):
    value = None
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("obj, words", [
    ({"__metadata__": graphc.ones(2)}, ["tensor at __metadata__", "reserves the name __metadata__"]),
    (self_referencing_list(), ["the list at 1 contains itself"]),
    (self_referencing_dict(), ["the dict at again contains itself"]),
    ({"deep": nested_lists(150)}, ["deep.0.0", "nested more than 100 deep"]),
    ({"names": np.array(["a", "b"])}, ["could not save"]),
])
def test_an_object_that_would_not_load_is_refused_and_the_old_checkpoint_kept(tmp_path, obj, words):
    path = tmp_path / "ckpt.safetensors"
    save({"epoch": 1, "w": graphc.ones(3)}, path)
    with pytest.raises(CheckpointError) as raised:
        save(obj, path)
    assert all(word in str(raised.value) for word in words), str(raised.value)
    assert load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_an_object_shared_twice_is_not_a_cycle(tmp_path):
    shared = [1, 2]
    save({"a": shared, "b": shared, "c": (shared, shared)}, tmp_path / "c")
    assert load(tmp_path / "c") == {"a": [1, 2], "b": [1, 2], "c": ([1, 2], [1, 2])}


def test_a_metadata_key_holding_plain_values_round_trips(tmp_path):
    save({"__metadata__": {"author": "me"}}, tmp_path / "c")
    assert load(tmp_path / "c") == {"__metadata__": {"author": "me"}}


# -- what load accepts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("f", [None, 3, 2.5, ["ckpt"]])
def test_load_from_something_that_is_not_a_file(f):
    with pytest.raises(CheckpointError, match="expected a file path or a binary file object, got"):
        load(f)


def test_save_and_load_through_binary_file_objects():
    buffer = io.BytesIO()
    save({"w": graphc.arange(3), "epoch": 2}, buffer)
    buffer.seek(0)
    loaded = load(buffer)
    assert loaded["w"].tolist() == [0, 1, 2] and loaded["epoch"] == 2


def test_a_text_file_object_is_refused(tmp_path):
    save({"epoch": 1}, tmp_path / "c")
    with open(tmp_path / "c", encoding="latin-1") as text:
        with pytest.raises(CheckpointError, match="binary mode"):
            load(text)


@pytest.mark.parametrize("map_location", ["cpu", graphc.device("cpu"), {"cuda:0": "cpu"},
                                          lambda storage, location: storage])
def test_map_locations_that_put_tensors_on_the_cpu(tmp_path, map_location):
    save({"w": graphc.ones(1)}, tmp_path / "c")
    assert load(tmp_path / "c", map_location=map_location)["w"].tolist() == [1.0]


@pytest.mark.parametrize("map_location", ["cuda", graphc.device("cuda", 1), {"cpu": "cuda:0"}, 7])
def test_map_locations_elsewhere_are_refused(tmp_path, map_location):
    save({"w": graphc.ones(1)}, tmp_path / "c")
    with pytest.raises(CheckpointError, match="graphc tensors live on the CPU"):
        load(tmp_path / "c", map_location=map_location)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="Is a directory"):
        load(tmp_path)


# -- temporary files of killed saves ---------------------------------------------------------------------


def ended_process_id() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_next_save_removes_what_killed_saves_left_behind(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    dead = ended_process_id()
    stale = tmp_path / f".ckpt.safetensors.{dead}.0badf00d.tmp"
    stale.write_bytes(bytes(1000))
    # Not ours to remove: a save in progress in a live process (this one), and another checkpoint's leftover.
    in_progress = tmp_path / f".ckpt.safetensors.{os.getppid()}.12345678.tmp"
    in_progress.write_bytes(b"")
    other = tmp_path / f".other.safetensors.{dead}.0badf00d.tmp"
    other.write_bytes(b"")
    save({"epoch": 1}, path)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, in_progress.name, other.name])
