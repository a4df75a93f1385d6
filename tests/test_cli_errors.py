"""`graphc dump` answers every mistaken argument with one line, `graphc: error: ...` (issue 14, items 7 and 14)."""
from pathlib import Path

import pytest

from graphc import cli

MODELS = str(Path(__file__).resolve().parents[1] / "examples" / "models.py")
LENET = [f"{MODELS}:LeNet", "--input", "2x3x32x32"]


@pytest.fixture
def model_files(tmp_path) -> Path:
    """A folder of Python files that are not what `graphc dump` wants."""
    (tmp_path / "shapes.py").write_text("class Square:\n    pass\n\n\ndef make_model():\n    return None\n")
    (tmp_path / "broken.py").write_text("import graphc\n\nraise RuntimeError('the model file is broken')\n")
    (tmp_path / "notes.txt").write_text("class LeNet\n")
    return tmp_path


def dump_error(capsys, *args) -> str:
    """The one line `graphc dump args` prints, asserting exit status 1 and nothing else printed."""
    assert cli.main(["dump", *map(str, args)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("graphc: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize("kwargs, words", [
    ("{bad", ["--kwargs '{bad' is not JSON", "column 2", '{"num_classes": 10}']),
    ("[1]", ["--kwargs must be a JSON object", "not a JSON list"]),
    ('"ten"', ["--kwargs must be a JSON object", "not a JSON str"]),
    ('{"colour": 1}', ["LeNet(num_classes: int = 10) cannot take --kwargs", "unexpected keyword argument 'colour'"]),
])
def test_kwargs_that_are_not_a_fitting_json_object(capsys, kwargs, words):
    err = dump_error(capsys, *LENET, "--kwargs", kwargs)
    assert all(word in err for word in words), err


@pytest.mark.parametrize("target, words", [
    ("shapes.py:Square", ["Square in", "is the class Square, not a subclass of graphc.nn.Module"]),
    ("shapes.py:make_model", ["make_model in", "is a function, not a subclass of graphc.nn.Module"]),
    ("broken.py:Model", ["importing", "broken.py failed with RuntimeError: the model file is broken",
                         "run `python"]),
    ("notes.txt:LeNet", ["notes.txt is not a Python file"]),
])
def test_targets_that_are_not_model_classes(capsys, model_files, target, words):
    err = dump_error(capsys, model_files / target, "--input", "2x3x32x32")
    assert all(word in err for word in words), err


@pytest.mark.parametrize("spec, words", [
    ("2x-8", ["--input '2x-8' has a negative size"]),
    ("2x3.5", ["--input '2x3.5' is not a shape like 4x3x32x32"]),
    ("f99:4", ["--input 'f99:4' is not a shape"]),
    ("99999999x99999999x3x3", ["zeros", "[99999999, 99999999, 3, 3]", "more than this machine's"]),
])
def test_input_shapes_that_cannot_be(capsys, spec, words):
    err = dump_error(capsys, f"{MODELS}:LeNet", "--input", spec)
    assert all(word in err for word in words), err


def test_a_shape_error_names_the_shape_the_user_typed(capsys):
    err = dump_error(capsys, f"{MODELS}:LeNet", "--input", "4x3x31")
    assert err.startswith("graphc: error: tracing LeNet on f32[4,3,31]: conv2d: the 3-D input f32[4,3,31] is read "
                          "as one unbatched (C, H, W) image"), err
    assert "input has 4 channels but weight expects 3" in err


@pytest.mark.parametrize("output, extra, words", [
    ("missing/graph.txt", [], ["-o", "missing/graph.txt: the folder", "does not exist"]),
    ("missing/graph.svg", [], ["the folder", "does not exist"]),
    (".", [], ["is a folder; give a file name"]),
    ("graph.pdf", [], ["cannot tell the format from -o", "graph.pdf", "--format"]),
    (None, ["--format", "svg"], ["--format svg writes a picture file", "-o FILE.svg"]),
])
def test_outputs_that_cannot_be_written(capsys, tmp_path, monkeypatch, output, extra, words):
    monkeypatch.chdir(tmp_path)
    err = dump_error(capsys, *LENET, *extra, *(["-o", output] if output else []))
    assert all(word in err for word in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_stage_of_the_other_pipeline_says_which_pipeline_and_why(capsys):
    err = dump_error(capsys, *LENET, "--stage", "remat")
    assert "--stage remat is not a pass of the inference pipeline (simplify, bn_fold, gemm, simplify, fusion)" in err
    assert "because the graph writes no state back" in err


def test_stats_say_which_pipeline_and_why(capsys):
    assert cli.main(["dump", *LENET, "--stats"]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line == ("the inference pipeline (simplify, bn_fold, gemm, simplify, fusion), because the graph writes "
                          "no state back")
    assert cli.main(["dump", f"{MODELS}:ResNet", "--input", "2x3x32x32", "--stats"]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("the training pipeline (gemm, simplify, fusion, remat, schedule), because the graph "
                                 "writes 39 state tensor(s) back"), first_line
    assert first_line.endswith("add --eval for the inference pipeline")
