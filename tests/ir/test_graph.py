"""The graph IR's invariants (verify), the Graph container, and the GraphBuilder's checks."""
import math
import re

import pytest

from graphc.errors import ParseError, ShapeError, VerifyError
from graphc.ir import GraphBuilder, Node, SourceLoc, TensorType, f32, f64, i64, verify
from graphc.ir.graph import Graph
from graphc.ops.registry import OpError

F3 = TensorType((3,), f32)
F4 = TensorType((4,), f32)


def graph_input(name, tag="data", type=F3):
    return Node(name, "input", (), {}, type, tag=tag)


def node(name, op, *inputs, type=F3, **attrs):
    return Node(name, op, inputs, attrs, type)


def assert_rejected(graph, message):
    with pytest.raises(VerifyError, match=re.escape(f"graph g: {message}")):
        verify(graph)


# -- verify: what a well-formed graph must satisfy --------------------------------

def test_well_formed_graph_verifies():
    x, w = graph_input("x"), graph_input("w", tag="param")
    y = node("1", "add", x, w)
    graph = Graph("g", [x, w], [y], [y], [(w, y)])
    assert graph.verify() is graph


def test_wrong_declared_type():
    x = graph_input("x")
    y = node("1", "relu", x, type=F4)
    assert_rejected(Graph("g", [x], [y], [y]), "%1 = relu(...) is typed f32[4] but its inputs give f32[3]")


def test_node_whose_op_rejects_its_inputs():
    x, y = graph_input("x"), graph_input("y", type=F4)
    z = node("1", "add", x, y)
    assert_rejected(Graph("g", [x, y], [z], [z]), "%1: add: shapes [3] and [4] do not broadcast")


def test_unknown_op_in_a_node():
    x = graph_input("x")
    y = node("1", "frob", x)
    assert_rejected(Graph("g", [x], [y], [y]), "%1: unknown op 'frob'")


def test_non_canonical_attributes():
    x = graph_input("x")
    y = node("1", "cast", x, type=TensorType((3,), f64), dtype="f64")
    assert_rejected(Graph("g", [x], [y], [y]),
                    "%1 = cast(...) has non-canonical attributes {'dtype': 'f64'}; expected {'dtype': graphc.float64}")


def test_use_before_def():
    x = graph_input("x")
    first = node("1", "relu", x)
    second = node("2", "neg", first)
    assert_rejected(Graph("g", [x], [second, first], [second]),
                    "%2 = neg(...) uses %1 before it is defined (%1 is defined later in the graph)")


def test_use_of_a_value_outside_the_graph():
    x, stray = graph_input("x"), graph_input("stray")
    y = node("1", "relu", stray)
    assert_rejected(Graph("g", [x], [y], [y]),
                    "%1 = relu(...) uses %stray before it is defined (%stray is defined nowhere in the graph)")


def test_dangling_output():
    x = graph_input("x")
    outside = node("9", "relu", x)
    assert_rejected(Graph("g", [x], [], [outside]), "output %9 is not defined in the graph (dangling output)")


def test_write_back_to_a_data_input():
    x = graph_input("x")
    y = node("1", "relu", x)
    assert_rejected(Graph("g", [x], [y], [], [(x, y)]),
                    "write-back target %x is a data input; only param, buffer, state inputs can be written back")


def test_write_back_to_a_node_that_is_not_an_input():
    x = graph_input("x")
    y = node("1", "relu", x)
    z = node("2", "neg", x)
    assert_rejected(Graph("g", [x], [y, z], [], [(y, z)]), "write-back target %1 is not an input of the graph")


def test_write_back_of_an_undefined_value():
    w = graph_input("w", tag="state")
    outside = node("9", "relu", w)
    assert_rejected(Graph("g", [w], [], [], [(w, outside)]),
                    "write-back value %9 for %w is not defined in the graph")


def test_write_back_type_mismatch():
    w = graph_input("w", tag="param", type=F4)
    x = graph_input("x")
    y = node("1", "relu", x)
    assert_rejected(Graph("g", [x, w], [y], [], [(w, y)]),
                    "write-back of %1 (f32[3]) into %w (f32[4]): types differ")


def test_double_write_back():
    w = graph_input("w", tag="buffer")
    y, z = node("1", "relu", w), node("2", "neg", w)
    assert_rejected(Graph("g", [w], [y, z], [], [(w, y), (w, z)]), "%w is written back twice")


@pytest.mark.parametrize("where", ["two inputs", "input and node", "two nodes"])
def test_duplicate_names(where):
    x = graph_input("x")
    if where == "two inputs":
        graph = Graph("g", [x, graph_input("x")], [], [])
        name = "x"
    elif where == "input and node":
        y = node("x", "relu", x)
        graph = Graph("g", [x], [y], [y])
        name = "x"
    else:
        y, z = node("1", "relu", x), node("1", "neg", x)
        graph = Graph("g", [x], [y, z], [z])
        name = "1"
    assert_rejected(graph, f"%{name} is defined twice")


def test_unknown_input_tag():
    assert_rejected(Graph("g", [graph_input("x", tag="weights")], [], []),
                    "input %x has tag 'weights'; expected one of data, param, buffer, state")


def test_inputs_and_nodes_in_the_wrong_lists():
    x = graph_input("x")
    y = node("1", "relu", x)
    assert_rejected(Graph("g", [x, y], [], []), "%1 is listed as an input but is a relu node")
    assert_rejected(Graph("g", [], [x], []), "input %x appears among the nodes; inputs belong in the signature")


# -- Graph: lookup and structural equality ----------------------------------------

def small_graph(name="g", hint="h", value=1.0, loc=None):
    b = GraphBuilder(name)
    x = b.input("x", "f32[3]")
    w = b.input("w", "f32[3]", tag="param")
    b.loc = loc
    h = b.mul(x, w, name=hint)
    b.output(b.add(h, value))
    return b.build()


def test_graph_lookup_and_users():
    graph = small_graph()
    x, w = graph.inputs
    h, one, out = graph.nodes
    assert graph.input("w") is w
    assert graph.inputs_tagged("param") == [w]
    assert graph.users() == {x: [h], w: [h], h: [out], one: [out], out: []}
    with pytest.raises(KeyError, match="graph g has no input %y"):
        graph.input("y")


def test_graphs_compare_by_structure():
    assert small_graph() == small_graph()
    assert small_graph(value=math.nan) == small_graph(value=math.nan)
    assert small_graph() != small_graph(name="other")
    assert small_graph() != small_graph(hint="renamed")
    assert small_graph() != small_graph(value=2.0)
    assert small_graph() != small_graph(loc=SourceLoc("model.py", 3))


# -- GraphBuilder -----------------------------------------------------------------

def test_builder_shape_errors_name_op_attrs_and_input_types():
    b = GraphBuilder()
    x = b.input("x", "f32[2,3]")
    with pytest.raises(ShapeError, match=re.escape(
            "sum: axis 3 is out of range for a rank-2 tensor (input f32[2,3]) {axes=[3], keepdims=false}")):
        b.sum(x, axes=[3])
    image, weight = b.input("image", "f32[8,4,32,32]"), b.input("weight", "f32[16,3,3,3]")
    with pytest.raises(ShapeError, match=re.escape(
            "conv2d: input has 4 channels but weight expects 3 (input f32[8,4,32,32], weight f32[16,3,3,3]) "
            "{stride=[1,1], padding=[0,0], dilation=[1,1], groups=1}")):
        b.conv2d(image, weight)
    with pytest.raises(ShapeError, match=re.escape("add: dtypes f32 and i64 differ (cast one operand first) "
                                                   "(lhs f32[2,3], rhs i64[3])")):
        b.add(x, b.input("n", "i64[3]"))
    assert b.nodes == [], "a rejected op must not be added"


def test_builder_op_errors():
    b = GraphBuilder()
    x = b.input("x", "f32[2]")
    with pytest.raises(OpError, match="unknown op 'frob'"):
        b.op("frob", x)
    with pytest.raises(OpError, match="cast: unknown attribute 'dtyp' \\(its attributes: dtype\\)"):
        b.cast(x, dtyp="f64")
    with pytest.raises(OpError, match="cast: missing required attribute 'dtype'"):
        b.cast(x)
    with pytest.raises(OpError, match=re.escape("cast: attribute dtype=3 is not a valid dtype")):
        b.cast(x, dtype=3)
    with pytest.raises(OpError, match=re.escape("relu: takes (input) but was given 2 input(s)")):
        b.op("relu", x, x)
    with pytest.raises(AttributeError, match="GraphBuilder has no attribute or op 'frob'"):
        b.frob(x)


def test_builder_input_errors():
    b = GraphBuilder("g")
    b.input("x", "f32[2]")
    with pytest.raises(ValueError, match="graph g already has a value named %x"):
        b.input("x", "f32[2]")
    with pytest.raises(ValueError, match="input tag 'weights' is not one of data, param, buffer, state"):
        b.input("w", "f32[2]", tag="weights")
    with pytest.raises(ParseError, match="unknown dtype 'f33'"):
        b.input("y", "f33[2]")


def test_builder_names_numbers_and_locations():
    b = GraphBuilder()
    x = b.input("x", "i64[3]")
    b.loc = SourceLoc("train.py", 12)
    first = b.relu(x, name="h")
    second = b.neg(x, name="h")
    summed = b.add(first, 2)
    assert (first.name, second.name) == ("h", "h_1")
    constant = summed.inputs[1]
    assert (constant.op, constant.attrs) == ("full", {"shape": (), "dtype": i64, "value": 2})
    assert {n.loc for n in b.nodes} == {SourceLoc("train.py", 12)}


def test_builder_build_verifies_unless_told_not_to():
    b = GraphBuilder("g")
    x = b.input("x", "f32[3]")
    b.write(x, b.relu(x))
    with pytest.raises(VerifyError, match="write-back target %x is a data input"):
        b.build()
    assert b.build(check=False).writes == [(x, b.nodes[0])]


def test_builder_extend_leaves_the_original_graph_alone():
    graph = small_graph()
    b = GraphBuilder.extend(graph)
    b.output(b.neg(graph.outputs[0], name="h"))
    extended = b.build()
    assert len(graph.nodes) == 3 and len(graph.outputs) == 1
    assert [n.name for n in extended.nodes] == ["h", "1", "2", "h_1"]


def test_attribute_keys_tell_negative_zero_from_zero():
    from graphc.ir.graph import attrs_key
    # CSE compares attributes by key: a full of -0.0 must not become a full of 0.0.
    assert attrs_key({"value": -0.0}) != attrs_key({"value": 0.0})
    assert attrs_key({"value": 0.0}) == attrs_key({"value": 0.0})
    assert attrs_key({"value": float("nan")}) == attrs_key({"value": float("nan")})
