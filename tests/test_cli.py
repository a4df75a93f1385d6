import subprocess
import sys

import pytest

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
