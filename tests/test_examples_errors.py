"""The example programs refuse bad arguments up front, summarize a wrong checkpoint, keep logs short and
say where their outputs went (issue 14, items 8, 12, 13).

Argument errors are argparse's (exit status 2, usage and `PROG: error: ...`); problems found once the
data is loaded end with `PROG: error: ...` and exit status 1.  Never a traceback.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import graphc
import graphc.optim as optim

import models

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_program(program: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / f"{program}.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def assert_refused(result: subprocess.CompletedProcess, status: int, program: str, *words: str) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"{program}.py: error: "), result.stderr
    assert all(word in last_line for word in words), last_line


@pytest.mark.parametrize("program", ["train_cnn", "train_gan"])
@pytest.mark.parametrize("lr", ["-1", "0", "nan", "inf"])
def test_a_learning_rate_that_is_not_positive(tmp_path, program, lr):
    result = run_program(program, "--lr", lr, "--out", tmp_path / "out")
    assert_refused(result, 2, program, f"argument --lr: expected a learning rate > 0, got {lr}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out, blocker", [("a_file", "a_file"), ("a_file/run", "a_file")])
def test_an_out_that_is_a_file(tmp_path, out, blocker):
    (tmp_path / "a_file").write_text("not a folder")
    result = run_program("train_cnn", "--out", tmp_path / out)
    assert_refused(result, 2, "train_cnn", f"--out {tmp_path / out}: {tmp_path / blocker} is a file, not a folder")


@pytest.mark.parametrize("program", ["train_cnn", "train_gan"])
def test_a_batch_larger_than_the_training_set(tmp_path, program):
    result = run_program(program, "--batch-size", "5000", "--out", tmp_path)
    assert_refused(result, 1, program, "--batch-size 5000 is larger than the training set (1500 images of digits)")
    assert os.listdir(tmp_path) == []


def test_an_empty_test_set(tmp_path):
    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / label / f"{index}.png")
    result = run_program("train_cnn", "--data", f"folder:{tmp_path / 'images'}", "--batch-size", "2",
                         "--out", tmp_path / "out")
    assert_refused(result, 1, "train_cnn", "the test set of folder is empty", "train/ and test/ sub-folders")


def test_resuming_from_another_models_checkpoint_summarizes_the_mismatch(tmp_path):
    resnet = models.ResNet(num_classes=10)
    checkpoint = tmp_path / "resnet.safetensors"
    graphc.save({"model": resnet.state_dict(), "optimizer": optim.SGD(resnet.parameters(), lr=0.1).state_dict(),
                 "epoch": 1, "seed": 0, "rng_state": graphc.default_generator.get_state(), "metrics": []}, checkpoint)
    result = run_program("train_cnn", "--resume", checkpoint, "--out", tmp_path / "out")
    assert_refused(result, 1, "train_cnn", f"{checkpoint} does not fit this train_cnn.py run: its model lacks 9 of "
                   "the model's 10 tensors (conv1.bias, conv2.weight, conv2.bias, ...), has 79 tensors the model "
                   "lacks (bn1.weight, bn1.bias, bn1.running_mean, ...), has 1 tensor of other shapes "
                   "(conv1.weight [64, 3, 7, 7] instead of [6, 3, 5, 5])")
    assert len(result.stderr) < 400, result.stderr


def test_a_log_gets_no_progress_bar_and_the_outputs_are_named(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TQDM_DISABLE"}
    result = subprocess.run([sys.executable, str(EXAMPLES / "train_cnn.py"), "--eager", "--epochs", "2",
                             "--max-steps", "3", "--batch-size", "4", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "step/s" not in result.stderr and "it/s" not in result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert lines[-1] == f"wrote metrics.csv, metrics.png, checkpoint.safetensors to {tmp_path}"
