"""The pass manager: pipelines, verification after each pass, records, the stats table and dumps."""
import pytest

from graphc.errors import GraphcError, VerifyError
from graphc.ir import Graph, Node, parse_graph, print_graph
from graphc.passes import manager as manager_module
from graphc.passes.manager import (PASSES, Pass, PassManager, default_pipeline, format_bytes, get_pass,
                                   intermediate_bytes, is_training_graph, kernel_count, register_pass, run_until)
from graphc.passes.simplify import simplify

GRAPH = """
    graph g(%x: f32[4,8] data, %w: f32[8] param) {
      %1 = full() {shape=[], dtype=f32, value=1.0} : f32[]
      %2 = mul(%x, %1) : f32[4,8]
      %3 = exp(%2) : f32[4,8]
      %4 = exp(%2) : f32[4,8]
      %5 = add(%3, %4) : f32[4,8]
      %6 = tanh(%x) : f32[4,8]
      return %5
    }"""

INFERENCE_WITH_BN = """
    graph g(%x: f32[1,2,4,4] data, %w: f32[3,2,1,1] param, %gamma: f32[3] param) {
      %1 = conv2d(%x, %w) : f32[1,3,4,4]
      %2 = reshape(%gamma) {shape=[1,3,1,1]} : f32[1,3,1,1]
      %3 = mul(%1, %2) : f32[1,3,4,4]
      return %3
    }"""

@pytest.fixture
def test_pass(monkeypatch):
    """Register a pass for one test only: test_pass(name, run)."""
    def register(name, run):
        monkeypatch.setitem(PASSES, name, Pass(name, run, "a pass for a test"))
    return register


@pytest.fixture(autouse=True)
def no_dump_environment(monkeypatch):
    monkeypatch.delenv("GRAPHC_DUMP", raising=False)
    monkeypatch.delenv("GRAPHC_DUMP_DIR", raising=False)


# -- the registry and the default pipelines ------------------------------------------------

def test_builtin_passes_are_found_by_name():
    assert get_pass("simplify").name == "simplify"
    assert get_pass("bn_fold").doc


def test_unknown_passes_are_named_in_the_error():
    with pytest.raises(GraphcError, match=r"unknown pass 'simplfy'; the passes are .*simplify"):
        PassManager(["simplfy"])


def test_registering_a_name_twice_fails(test_pass):
    test_pass("twice", lambda graph, options: graph)
    with pytest.raises(ValueError, match="registered twice"):
        register_pass("twice", lambda graph, options: graph)


def test_register_pass_takes_the_doc_from_the_docstring(monkeypatch):
    monkeypatch.setattr(manager_module, "PASSES", {})

    def tidy(graph, options):
        """Tidy the graph up.

        More words.
        """
        return graph
    assert register_pass("tidy", tidy).doc == "Tidy the graph up."


def test_default_pipelines():
    assert default_pipeline(training=True) == ["gemm", "simplify", "fusion", "remat", "schedule"]
    assert default_pipeline(training=False) == ["simplify", "bn_fold", "gemm", "simplify", "fusion"]


def test_a_graph_with_write_backs_is_a_training_graph():
    assert not is_training_graph(parse_graph(GRAPH))
    assert is_training_graph(parse_graph("""
        graph step(%w: f32[2] param) {
          %1 = neg(%w) : f32[2]
          return write(%w, %1)
        }"""))


def test_the_default_inference_pipeline_runs_end_to_end():
    manager = PassManager(default_pipeline(training=False))
    manager.run(parse_graph(INFERENCE_WITH_BN))
    assert [r.name for r in manager.records] == ["simplify", "bn_fold", "gemm", "simplify", "fusion"]


# -- running, verifying, recording -------------------------------------------------------------

def test_passes_run_in_order_and_each_is_recorded():
    graph = parse_graph(GRAPH)
    manager = PassManager(["simplify", "simplify"])
    result = manager.run(graph)
    assert result == simplify(graph)
    first, second = manager.records
    assert (first.name, first.nodes_before, first.nodes_after) == ("simplify", 6, 2)
    assert (second.nodes_before, second.nodes_after) == (2, 2)
    assert first.kernels_after == 2
    assert first.bytes_before == 5 * 4 * 8 * 4 + 4 and first.bytes_after == 2 * 4 * 8 * 4
    assert all(r.seconds >= 0 for r in manager.records)


def test_kernels_count_every_node_but_scalar_constants():
    graph = parse_graph("""
        graph g(%x: f32[3] data) {
          %1 = full() {shape=[], dtype=f32, value=2.0} : f32[]
          %2 = full() {shape=[3], dtype=f32, value=2.0} : f32[3]
          %3 = mul(%x, %1) : f32[3]
          %4 = add(%3, %2) : f32[3]
          return %4
        }""")
    assert kernel_count(graph) == 3
    assert intermediate_bytes(graph) == 4 + 3 * 12


def test_options_reach_their_pass(test_pass):
    seen = {}

    def remember(graph, options):
        seen.update(options)
        return graph
    test_pass("remember", remember)
    PassManager(["remember", "simplify"], options={"remember": {"max_group_size": 3}}).run(parse_graph(GRAPH))
    assert seen == {"max_group_size": 3}


def test_options_for_a_pass_outside_the_pipeline_are_an_error():
    with pytest.raises(GraphcError, match="options given for fuson"):
        PassManager(["simplify"], options={"fuson": {}})


def _retyped(graph: Graph) -> Graph:
    """The graph with its last node claiming a wrong type: what a buggy pass might return."""
    last = graph.nodes[-1]
    wrong = Node(last.name, last.op, last.inputs, last.attrs, last.type.with_shape((99,)))
    outputs = [wrong if o is last else o for o in graph.outputs]
    return Graph(graph.name, graph.inputs, [*graph.nodes[:-1], wrong], outputs, graph.writes)


def test_a_pass_that_breaks_the_graph_is_named(test_pass):
    test_pass("breaker", lambda graph, options: _retyped(graph))
    with pytest.raises(VerifyError, match=r"pass breaker produced an invalid graph: .*typed f32\[99\]"):
        PassManager(["simplify", "breaker"]).run(parse_graph(GRAPH))


def test_a_pass_that_changes_the_signature_is_named(test_pass):
    def drop_output(graph, options):
        return Graph(graph.name, graph.inputs, graph.nodes, [], graph.writes)
    test_pass("dropper", drop_output)
    with pytest.raises(VerifyError, match="pass dropper changed the graph's signature"):
        PassManager(["dropper"]).run(parse_graph(GRAPH))


def test_an_invalid_input_graph_is_reported_before_any_pass_runs():
    graph = parse_graph(GRAPH)
    with pytest.raises(VerifyError, match="the graph given to the pass manager is invalid"):
        PassManager(["simplify"]).run(_retyped(graph))


# -- stats ----------------------------------------------------------------------------------------

def test_the_stats_table_is_aligned():
    manager = PassManager(["simplify", "bn_fold", "simplify"])
    manager.run(parse_graph(INFERENCE_WITH_BN))
    lines = manager.stats_table().splitlines()
    assert lines[0].split() == ["pass", "nodes", "before", "nodes", "after", "kernels", "bytes", "before",
                                "bytes", "after", "time", "(ms)"]
    assert [line.split()[0] for line in lines[1:]] == ["simplify", "bn_fold", "simplify"]
    assert len({len(line) for line in lines}) == 1        # every column right-aligned to the same edge
    assert lines[2].split()[1:4] == ["3", "5", "5"]        # bn_fold: 3 nodes in, 5 out, 5 kernels


@pytest.mark.parametrize("count, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 << 20, "3.0 MiB"),
                                         (5 << 30, "5120.0 MiB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


# -- dumps ----------------------------------------------------------------------------------------

def test_dump_dir_writes_text_and_dot_after_every_pass(tmp_path):
    graph = parse_graph(INFERENCE_WITH_BN)
    result = PassManager(["simplify", "bn_fold", "simplify"], dump_dir=tmp_path).run(graph)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00-input.dot", "00-input.gir", "01-simplify.dot", "01-simplify.gir",
                     "02-bn_fold.dot", "02-bn_fold.gir", "03-simplify.dot", "03-simplify.gir"]
    assert parse_graph((tmp_path / "00-input.gir").read_text()) == graph
    assert parse_graph((tmp_path / "03-simplify.gir").read_text()) == result
    assert (tmp_path / "02-bn_fold.dot").read_text().startswith("digraph")


def test_the_environment_chooses_stages_and_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DUMP", "input,bn_fold")
    monkeypatch.setenv("GRAPHC_DUMP_DIR", str(tmp_path / "dumps"))
    PassManager(["simplify", "bn_fold", "simplify"]).run(parse_graph(INFERENCE_WITH_BN))
    assert sorted(p.name for p in (tmp_path / "dumps").iterdir()) == [
        "00-input.dot", "00-input.gir", "02-bn_fold.dot", "02-bn_fold.gir"]


def test_graphc_dump_all_defaults_to_graphc_dump_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRAPHC_DUMP", "all")
    PassManager(["simplify"]).run(parse_graph(GRAPH))
    assert sorted(p.name for p in (tmp_path / "graphc_dump").iterdir()) == [
        "00-input.dot", "00-input.gir", "01-simplify.dot", "01-simplify.gir"]


def test_the_dump_argument_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DUMP", "all")
    PassManager(["simplify"], dump_dir=tmp_path, dump="simplify").run(parse_graph(GRAPH))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01-simplify.dot", "01-simplify.gir"]


def test_nothing_is_dumped_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    PassManager(["simplify"]).run(parse_graph(GRAPH))
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_dump_stage_is_an_error(tmp_path):
    with pytest.raises(GraphcError, match="unknown pass 'simplfy'"):
        PassManager(["simplify"], dump_dir=tmp_path, dump="simplfy")


# -- run_until ----------------------------------------------------------------------------------

def test_run_until_stops_after_the_named_stage():
    graph = parse_graph(INFERENCE_WITH_BN)
    assert run_until(graph, "input") == graph
    after_simplify = run_until(graph, "simplify")
    assert after_simplify == simplify(graph)
    after_fold = run_until(graph, "bn_fold")
    assert [n.op for n in after_fold.nodes if n.shape == (1, 3, 4, 4)] == ["conv2d"]


def test_run_until_names_the_stages_it_knows():
    with pytest.raises(GraphcError, match="unknown stage 'fold'; the stages are input, simplify, bn_fold"):
        run_until(parse_graph(INFERENCE_WITH_BN), "fold")


def test_run_until_follows_a_given_pipeline():
    graph = parse_graph(GRAPH)
    assert print_graph(run_until(graph, "simplify", pipeline=["simplify"])) == print_graph(simplify(graph))
