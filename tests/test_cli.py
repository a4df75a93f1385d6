import subprocess
import sys
from pathlib import Path

import pytest

import graphc
from graphc import cli
from graphc.ops.registry import OPS, Attr, OpDef


def listed_ops(text: str) -> list[tuple[str, str]]:
    """(family, op name) for each signature line of `graphc ops` output, in printed order."""
    pairs, family = [], None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            family = line
        elif line.startswith("  ") and not line.startswith("   "):
            pairs.append((family, line.strip().split("(")[0]))
    return pairs


def test_ops_lists_every_primitive_sorted_by_family_then_name(capsys):
    assert cli.main(["ops"]) == 0
    printed = listed_ops(capsys.readouterr().out)
    expected = sorted((op.family, op.name) for op in OPS.values())
    assert printed == expected


def test_ops_shows_inputs_attributes_defaults_and_doc(capsys):
    cli.main(["ops"])
    out = capsys.readouterr().out
    assert "\nrandom\n  rand(key) {shape: ints, dtype: dtype = f32}\n      Uniform samples in [0, 1)" in out
    assert "\n  where(condition, input, other)\n      condition ? input : other" in out
    assert "\n  full() {shape: ints, dtype: dtype, value: scalar}\n" in out


def test_op_signature_formats_every_kind_of_attribute():
    op = OpDef(name="demo", family="test", inputs=("x", "*rest"), shape_rule=None, reference=None,
               attrs={"axes": Attr("ints"), "pads": Attr("ints", (0, 0)), "eps": Attr("float", 1e-05),
                      "flag": Attr("bool", True), "mode": Attr("str", "same"),
                      "limit": Attr("int", None, optional=True)})
    assert cli.op_signature(op) == ('demo(x, *rest) {axes: ints, pads: ints = [0,0], eps: float = 1e-05, '
                                    'flag: bool = true, mode: str = "same", limit: int? = none}')


def test_ops_leaves_out_the_doc_line_of_an_undocumented_op(monkeypatch):
    undocumented = OpDef(name="zz_undocumented", family="zz", inputs=("x",), shape_rule=None, reference=None)
    monkeypatch.setitem(OPS, undocumented.name, undocumented)
    assert cli.ops_listing().endswith("\n\nzz\n  zz_undocumented(x)")


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_python_dash_m_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "graphc.cli", "ops"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "  rand(key) {shape: ints, dtype: dtype = f32}" in result.stdout
    assert len(listed_ops(result.stdout)) == len(OPS)


# -- graphc dump -------------------------------------------------------------------------------

MODELS = str(Path(__file__).resolve().parents[1] / "examples" / "models.py")


def test_dump_prints_the_traced_graph_of_a_model_class(capsys):
    assert cli.main(["dump", f"{MODELS}:LeNet", "--input", "2x3x32x32", "--eval"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("graph LeNet(")
    assert "%conv1.weight: f32[6,3,5,5] param" in text
    assert "conv2d(" in text and "max_pool2d(" in text
    graph = graphc.parse_graph(text)
    assert [n.name for n in graph.inputs_tagged("data")] == ["x"]


def test_dump_in_train_mode_shows_batchnorm_write_backs_and_takes_kwargs(capsys):
    assert cli.main(["dump", f"{MODELS}:ResNet", "--input", "2x3x32x32", "--kwargs", '{"num_classes": 5}']) == 0
    text = capsys.readouterr().out
    assert "write(%bn1.running_mean, " in text
    assert "write(%layer1.0.bn1.num_batches_tracked, " in text
    assert "f32[5,64] param" in text


def test_dump_writes_dot_to_a_file(tmp_path):
    out = tmp_path / "lenet.dot"
    assert cli.main(["dump", f"{MODELS}:LeNet", "--input", "1x3x32x32", "-o", str(out)]) == 0
    assert out.read_text().startswith("digraph")


def test_dump_errors_are_clear(capsys):
    assert cli.main(["dump", f"{MODELS}:NoSuchModel", "--input", "1x3x32x32"]) == 1
    assert "defines no NoSuchModel" in capsys.readouterr().err
    assert cli.main(["dump", f"{MODELS}:LeNet", "--input", "1x4x32x32"]) == 1
    assert "conv2d: input has 4 channels but weight expects 3" in capsys.readouterr().err
    assert cli.main(["dump", f"{MODELS}:LeNet", "--input", "banana"]) == 1
    assert "not a shape" in capsys.readouterr().err


def test_graphc_dump_runs_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "graphc.cli", "dump", f"{MODELS}:LeNet", "--input",
                             "2x3x32x32"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "graph LeNet(" in result.stdout


def test_dump_shows_the_kernels_llvm_ir_and_assembly_of_a_model(capsys):
    args = ["dump", f"{MODELS}:LeNet", "--input", "2x3x32x32", "--eval", "--stage"]
    assert cli.main([*args, "kernels"]) == 0
    kernels = capsys.readouterr().out
    # The first convolution (6 channels over rows of 28 pixels) keeps its direct lowering in tiles
    # of its own, the second becomes unfold + matmul (graphc.passes.gemm), and at a batch of 2 each
    # Linear layer reads its weight as stored, transposed in a view: dot products of rows.
    titles = [line for line in kernels.splitlines() if line.startswith("kernel ")]
    assert kernels.startswith("program LeNet: 8 kernels") and sum("unfold" in t for t in titles) == 1
    assert "(contraction: conv2d reshape add relu)" in titles[0]
    assert "(contraction: permute matmul add relu)" in kernels and "row" in kernels
    assert cli.main([*args, "llvm"]) == 0
    assert "i32 @graphc_entry(" in capsys.readouterr().out
    assert cli.main([*args, "asm"]) == 0
    assert "graphc_entry:" in capsys.readouterr().out
    assert cli.main([*args, "asm", "--backend", "reference"]) == 1
    assert "has no asm to show" in capsys.readouterr().err
