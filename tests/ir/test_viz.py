import re
import shutil

import networkx as nx
import pytest

from graphc.errors import GraphcError
from graphc.ir import GraphBuilder, f32
from graphc.ir import viz


def simple_graph():
    """Every input tag, a value used twice by one node, outputs (one an input) and two write-backs."""
    b = GraphBuilder("simple")
    x = b.input("x", "f32[4,3]")
    w = b.input("w", "f32[4,3]", tag="param")
    m = b.input("m", "f32[4,3]", tag="state")
    s = b.input("s", "f32[4,3]", tag="buffer")
    squared = b.mul(x, x, name="squared")
    diff = b.sub(squared, w, name="diff")
    b.output(diff, s)
    b.write(w, diff)
    b.write(m, b.add(m, w, name="m_new"))
    return b.build()


def dot_node_attrs(dot: str, name: str) -> dict[str, str]:
    """The attributes of node ``name``'s statement in DOT text."""
    match = re.search(rf'^\s*"{re.escape(name)}" \[(.*)\];$', dot, re.MULTILINE)
    assert match, f"no node statement for {name} in\n{dot}"
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1)))


def dot_edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    edges = []
    for source, target, attrs in re.findall(r'^\s*"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?;$', dot, re.MULTILINE):
        edges.append((source, target, dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', attrs))))
    return edges


# -- networkx -------------------------------------------------------------------------

def test_networkx_has_one_node_per_value_with_its_type_and_tag():
    nxg = simple_graph().to_networkx()
    assert isinstance(nxg, nx.DiGraph)
    assert nxg.graph["name"] == "simple"
    assert set(nxg.nodes) == {"x", "w", "m", "s", "squared", "diff", "m_new"}
    assert nxg.nodes["x"] == {"op": "input", "shape": (4, 3), "dtype": f32, "tag": "data", "output": False}
    assert nxg.nodes["diff"] == {"op": "sub", "shape": (4, 3), "dtype": f32, "tag": None, "output": True}
    assert nxg.nodes["s"]["tag"] == "buffer" and nxg.nodes["s"]["output"]
    assert [nxg.nodes[n]["tag"] for n in ("w", "m")] == ["param", "state"]


def test_networkx_data_edges_carry_operand_positions():
    nxg = simple_graph().to_networkx()
    assert nxg.edges["x", "squared"] == {"kind": "data", "indices": (0, 1)}
    assert nxg.edges["squared", "diff"] == {"kind": "data", "indices": (0,)}
    assert nxg.edges["w", "diff"] == {"kind": "data", "indices": (1,)}


def test_networkx_write_backs_are_edges_into_their_state():
    nxg = simple_graph().to_networkx()
    writes = {(u, v) for u, v, kind in nxg.edges(data="kind") if kind == "write"}
    assert writes == {("diff", "w"), ("m_new", "m")}
    assert not nx.is_directed_acyclic_graph(nxg)     # a write-back closes a loop ...
    dataflow = nxg.edge_subgraph((u, v) for u, v, kind in nxg.edges(data="kind") if kind == "data")
    assert nx.is_directed_acyclic_graph(dataflow)     # ... which the data edges alone never do
    assert nx.ancestors(dataflow, "diff") == {"x", "squared", "w"}


def test_networkx_module_function_is_what_the_graph_method_returns():
    graph = simple_graph()
    assert nx.utils.graphs_equal(viz.to_networkx(graph), graph.to_networkx())


# -- DOT ----------------------------------------------------------------------------------

def test_dot_is_a_digraph_named_after_the_graph():
    dot = simple_graph().to_dot()
    assert dot.startswith('digraph "simple" {\n')
    assert dot.rstrip().endswith("}")
    assert dot == viz.to_dot(simple_graph())


def test_dot_labels_ops_with_op_and_type():
    dot = simple_graph().to_dot()
    assert dot_node_attrs(dot, "squared")["label"] == r"mul\nf32[4,3]"
    assert dot_node_attrs(dot, "squared")["tooltip"] == "%squared"
    assert dot_node_attrs(dot, "x")["label"] == r"%x\nf32[4,3]\ndata"


def test_dot_draws_each_input_tag_ops_and_outputs_differently():
    dot = simple_graph().to_dot()
    looks = {name: dot_node_attrs(dot, name) for name in ("x", "w", "s", "m", "squared")}
    appearances = {(a["shape"], a["style"], a["fillcolor"]) for a in looks.values()}
    assert len(appearances) == len(looks)
    for output in ("diff", "s"):
        assert dot_node_attrs(dot, output)["peripheries"] == "2"
    for not_output in ("x", "squared", "m_new"):
        assert "peripheries" not in dot_node_attrs(dot, not_output)


def test_dot_edges_are_labelled_by_operand_and_write_backs_are_dashed():
    edges = dot_edges(simple_graph().to_dot())
    data = [(u, v, a.get("label")) for u, v, a in edges if a.get("style") != "dashed"]
    assert sorted(data) == sorted([("x", "squared", "0"), ("x", "squared", "1"), ("squared", "diff", "0"),
                                   ("w", "diff", "1"), ("m", "m_new", "0"), ("w", "m_new", "1")])
    writes = [(u, v, a["label"]) for u, v, a in edges if a.get("style") == "dashed"]
    assert writes == [("diff", "w", "write"), ("m_new", "m", "write")]


def test_dot_leaves_single_operand_edges_unlabelled():
    b = GraphBuilder("one")
    x = b.input("x", "f32[2]")
    b.output(b.relu(x, name="r"))
    assert dot_edges(b.build().to_dot()) == [("x", "r", {})]


def test_dot_quotes_names_that_need_it():
    b = GraphBuilder('say "hi"')
    x = b.input('a"b\\c', "f32[2]")
    b.output(b.neg(x, name="n"))
    dot = b.build().to_dot()
    assert dot.startswith(r'digraph "say \"hi\"" {')
    assert r'"a\"b\\c" -> "n";' in dot


# -- render ----------------------------------------------------------------------------------

def test_render_dot_writes_the_dot_text(tmp_path):
    graph = simple_graph()
    path = viz.render(graph, tmp_path / "g.dot")
    assert path == tmp_path / "g.dot"
    assert path.read_text() == graph.to_dot()


def test_render_format_overrides_the_extension(tmp_path):
    path = viz.render(simple_graph(), str(tmp_path / "picture.txt"), format="dot")
    assert path.read_text().startswith('digraph "simple"')


@pytest.mark.parametrize("name", ["g.pdf", "g"])
def test_render_rejects_unknown_formats(tmp_path, name):
    with pytest.raises(GraphcError, match=r"format '(pdf)?' is not one of dot, svg, png"):
        viz.render(simple_graph(), tmp_path / name)


@pytest.mark.parametrize("name", ["g.svg", "g.png"])
def test_render_without_graphviz_says_how_to_get_it(tmp_path, monkeypatch, name):
    monkeypatch.setattr(viz.shutil, "which", lambda program: None)
    with pytest.raises(GraphcError, match=r"Graphviz's `dot` program is not installed; install graphviz "
                                          r"\(apt-get install graphviz\) or write \.dot"):
        viz.render(simple_graph(), tmp_path / name)
    assert not (tmp_path / name).exists()


def test_render_reports_a_failing_dot(tmp_path, monkeypatch):
    failing = shutil.which("false")
    if failing is None:
        pytest.skip("no `false` program to stand in for a failing dot")
    monkeypatch.setattr(viz.shutil, "which", lambda program: failing)
    with pytest.raises(GraphcError, match=r"Graphviz's `dot` failed to draw graph simple"):
        viz.render(simple_graph(), tmp_path / "g.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_svg_with_graphviz(tmp_path):
    path = viz.render(simple_graph(), tmp_path / "g.svg")
    svg = path.read_text()
    assert "<svg" in svg
    assert "mul" in svg and "f32[4,3]" in svg


def test_a_multi_output_kernel_wires_each_output_to_its_readers():
    from graphc.ir import parse_graph
    graph = parse_graph("""graph moments(%g: f32[8] data, %m: f32[8] state, %v: f32[8] state) {
      %m_new.kernel = fused(%m, %g, %v) {kind="elementwise"} : (f32[8], f32[8]) {
        graph fused_m_new(%m: f32[8] data, %g: f32[8] data, %v: f32[8] data)
        %m_new = add(%m, %g) : f32[8]
        %v_new = add(%v, %g) : f32[8]
        return %m_new, %v_new
      }
      %m_new = tuple_get(%m_new.kernel) {index=0} : f32[8]
      %v_new = tuple_get(%m_new.kernel) {index=1} : f32[8]
      return %m_new, write(%m, %m_new), write(%v, %v_new)
    }""")
    dot = viz.to_dot(graph)
    # No box for a tuple_get: each write-back leaves the body's op computing that output.
    assert "tuple_get" not in dot
    assert '"m_new.kernel/m_new" -> "m" [style="dashed"' in dot
    assert '"m_new.kernel/v_new" -> "v" [style="dashed"' in dot
    assert '"m_new.kernel/m_new" [label="add\\nf32[8]", shape="box", style="rounded,filled", fillcolor="white", ' \
           'tooltip="%m_new", peripheries="2"' in dot
    nxg = viz.to_networkx(graph)
    assert nxg.nodes["m_new.kernel"]["shape"] is None and nxg.nodes["v_new"]["shape"] == (8,)
    assert nxg.has_edge("m_new.kernel", "v_new")
