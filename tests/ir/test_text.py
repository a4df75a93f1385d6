"""The text IR: printing, parsing, and parse(print(g)) == g for every op and dtype."""
import math

import numpy as np
import pytest

from graphc.errors import ParseError
from graphc.ir import ALL_DTYPES, GraphBuilder, SourceLoc, TensorType, bool_, f32, f64, i16, i32, i64, u8
from graphc.ir.text import parse_graph, parse_type_text, print_graph
from graphc.ops.registry import OPS


def case(*input_types, **attrs):
    """One round-trip case: the op's input types and the attributes to build it with."""
    return input_types, attrs


def fused_body():
    """A fusion group's body, relu(x + b) with b broadcast, for the ``fused`` op's case."""
    b = GraphBuilder("fused_case")
    x, bias = b.input("x0", "f32[2,3]"), b.input("x1", "f32[3]")
    b.output(b.relu(b.add(x, bias)))
    return b.build()


UNARY = ["neg", "abs", "exp", "log", "sqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]

# Every registered op needs at least one case here: test_every_op_has_a_round_trip_case
# fails for an op registered without one (and for a case whose op is gone).
OP_CASES = {
    "full": [case(shape=[2, 3], dtype="f32", value=1.5), case(shape=[], dtype="i64", value=-7),
             case(shape=[2], dtype="bool", value=True)],
    "constant": [case(value=np.array([[1.5, -0.0], [np.nan, -np.inf]], np.float32)),
                 case(value=np.arange(6, dtype=np.int16).reshape(2, 3))],
    **{op: [case("f32[2,3]")] for op in UNARY},
    "neg": [case("f32[2,3]"), case("i32[4]")],
    "relu": [case("f64[]"), case("i64[2,2]")],
    **{op: [case("f32[2,3]", "f32[3]")] for op in BINARY},
    "add": [case("f32[2,1]", "f32[3]"), case("bool[2]", "bool[2]")],
    **{op: [case("i64[2,1]", "i64[3]")] for op in COMPARISONS},
    "where": [case("bool[2,3]", "f32[3]", "f32[2,1]")],
    "cast": [case("f32[3]", dtype="i64"), case("u8[3]", dtype="bool")],
    "stop_gradient": [case("f64[2]")],
    "sum": [case("f32[2,3,4]", axes=[0, 2]), case("i64[2,3]", axes=[-1], keepdims=True), case("f32[3]", axes=[])],
    "max": [case("f32[2,3]", axes=[1])],
    "min": [case("i32[2,3]", axes=[0, 1], keepdims=True)],
    "argmax": [case("f32[2,3]", axis=1), case("f32[2,3]", axis=-2, keepdims=True)],
    "reshape": [case("f32[2,3]", shape=[3, 1, 2]), case("f32[1,1]", shape=[])],
    "permute": [case("f32[2,3,4]", dims=[2, 0, 1])],
    "expand": [case("f32[3,1]", shape=[2, 3, 4])],
    "slice": [case("f32[4,5]", starts=[1, 0], stops=[3, 5], steps=[1, 2])],
    "pad": [case("f32[2,3]", pads=[1, 0, 2, 2]), case("i64[3]", pads=[0, 1], value=-1)],
    "concat": [case("f32[2,3]", "f32[1,3]", "f32[4,3]", axis=0), case("f32[2,3]", axis=-1)],
    "matmul": [case("f32[2,3]", "f32[3,4]")],
    "conv2d": [case("f32[1,4,6,6]", "f32[2,2,3,3]", stride=[2, 1], padding=[1, 0], groups=2),
               case("f32[2,3,7,7]", "f32[4,3,3,3]", dilation=[2, 2])],
    "conv_transpose2d": [case("f32[1,2,4,4]", "f32[2,3,3,3]", stride=[2, 2], padding=[1, 1],
                              output_padding=[1, 1])],
    "conv2d_weight_grad": [case("f32[1,2,5,5]", "f32[1,3,3,3]", kernel_size=[3, 3])],
    "unfold": [case("f32[2,3,6,5]", kernel_size=[3, 2], stride=[2, 1], padding=[1, 0]),
               case("f32[1,2,4,4]", kernel_size=[2, 2], layout="taps_first")],
    "fold": [case("f32[2,12,12]", output_size=[4, 5], kernel_size=[2, 2], stride=[2, 1], padding=[0, 1])],
    "max_pool2d": [case("f32[1,2,5,5]", kernel_size=[2, 2], stride=[2, 2], ceil_mode=True)],
    "max_pool2d_argmax": [case("f32[1,2,5,5]", kernel_size=[2, 2], stride=[2, 2], ceil_mode=True),
                          case("i64[1,1,16,16]", kernel_size=[16, 16], stride=[1, 1])],
    "max_pool2d_grad": [case("f32[1,2,3,3]", "u8[1,2,3,3]", kernel_size=[2, 2], stride=[2, 2], ceil_mode=True,
                             input_size=[5, 5]),
                        case("f64[1,1,1,1]", "i32[1,1,1,1]", kernel_size=[16, 16], stride=[1, 1],
                             dilation=[1, 2], input_size=[16, 31])],
    "avg_pool2d": [case("f32[1,2,5,5]", kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], count_include_pad=False),
                   case("f32[1,2,4,4]", kernel_size=[2, 2], stride=[2, 2], divisor_override=3)],
    "avg_pool2d_grad": [case("f32[1,2,3,3]", kernel_size=[3, 3], stride=[2, 2], padding=[1, 1],
                             input_shape=[1, 2, 5, 5])],
    "gather": [case("f32[3,4]", "i64[3,2]", axis=1)],
    "scatter_add": [case("f32[3,4]", "i64[3,2]", "f32[3,2]", axis=1)],
    "one_hot": [case("i64[4]", num_classes=5), case("i64[2,3]", num_classes=3, dtype="f32")],
    "rand": [case("i64[2]", shape=[2, 3])],
    "randn": [case("i64[2]", shape=[4], dtype="f64")],
    "fused": [case("f32[2,3]", "f32[3]", kind="elementwise", body=fused_body())],
}

# Values at the edges of each dtype's range, and the floats that print specially.
EDGE_VALUES = {
    f32: [0.1, -0.0, 1e-05, 3.4e38, math.nan, math.inf, -math.inf],
    f64: [0.1, -0.0, 1e-300, 1.7976931348623157e308, math.nan, math.inf, -math.inf],
    u8: [0, 255],
    i16: [-32768, 32767],
    i32: [-2**31, 2**31 - 1],
    i64: [-2**63, 2**63 - 1],
    bool_: [True, False],
}


def assert_round_trips(graph):
    text = print_graph(graph)
    parsed = parse_graph(text)
    assert parsed == graph, f"parse(print(g)) differs from g:\n{text}\n--- parsed ---\n{print_graph(parsed)}"
    assert print_graph(parsed) == text


def one_op_graph(op, input_types, attrs):
    b = GraphBuilder(f"{op}_case")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(input_types)]
    b.output(b.op(op, *inputs, **attrs))
    return b.build()


# -- round trips ------------------------------------------------------------------

# tuple_get reads a multi-output kernel's tuple, which no graph input is: tested on its own below.
TESTED_APART = {"tuple_get"}


def test_every_op_has_a_round_trip_case():
    missing = sorted(set(OPS) - set(OP_CASES) - TESTED_APART)
    stale = sorted(set(OP_CASES) - set(OPS))
    assert not missing, f"registered ops without a round-trip case in OP_CASES: {missing}"
    assert not stale, f"OP_CASES has cases for ops that are not registered: {stale}"


@pytest.mark.parametrize("op,input_types,attrs", [
    pytest.param(op, types, attrs, id=f"{op}-{i}")
    for op, cases in OP_CASES.items() for i, (types, attrs) in enumerate(cases)
])
def test_every_op_round_trips(op, input_types, attrs):
    assert_round_trips(one_op_graph(op, input_types, attrs))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_every_dtype_round_trips(dtype):
    values = EDGE_VALUES[dtype]
    b = GraphBuilder(f"dtype_{dtype}")
    x = b.input("x", TensorType((2, 3), dtype))
    constant = b.constant(value=np.array(values, dtype.numpy))
    filled = b.full(shape=[len(values)], dtype=dtype, value=values[0])
    b.output(b.stop_gradient(x), b.eq(constant, filled), b.cast(x, dtype=f64), b.cast(constant, dtype=dtype))
    graph = b.build()
    assert_round_trips(graph)
    parsed = parse_graph(print_graph(graph))
    np.testing.assert_array_equal(parsed.nodes[0].attrs["value"], np.array(values, dtype.numpy))


def test_training_graph_round_trips_with_tags_writes_locations_and_long_header():
    b = GraphBuilder("mlp.train")
    x = b.input("x", "f32[4,8]")
    w = b.input("layer1.weight", "f32[8,2]", tag="param")
    mean = b.input("bn.running_mean", "f32[2]", tag="buffer")
    moment = b.input("adam.m_1", "f32[8,2]", tag="state")
    lr = b.input("lr", "f32[]")
    b.loc = SourceLoc("C:/work/models/net v2.py", 41)
    hidden = b.relu(b.matmul(x, w), name="hidden")
    b.loc = None
    loss = b.sum(hidden, axes=[0, 1], name="loss")
    grad = b.expand(b.reshape(b.mul(loss, lr), shape=[1, 1]), shape=[8, 2], name="w.grad")
    b.output(loss)
    b.write(w, b.sub(w, grad))
    b.write(moment, b.add(moment, grad))
    b.write(mean, b.maximum(mean, b.full(shape=[2], dtype=f32, value=-math.inf)))
    graph = b.build()
    text = print_graph(graph)
    assert text.startswith("graph mlp.train(\n    %x: f32[4,8] data,\n")
    assert "# C:/work/models/net v2.py:41" in text
    assert_round_trips(graph)


MULTI_OUTPUT = """graph moments(%g: f32[8] data, %m: f32[8] state, %v: f32[8] state) {
  %m_new.kernel = fused(%m, %g, %v) {kind="elementwise"} : (f32[8], f32[8]) {  # adam.py:3
    graph fused_m_new(%m: f32[8] data, %g: f32[8] data, %v: f32[8] data)
    %m_new = add(%m, %g) : f32[8]
    %g2 = mul(%g, %g) : f32[8]
    %v_new = add(%v, %g2) : f32[8]
    return %m_new, %v_new
  }
  %m_new = tuple_get(%m_new.kernel) {index=0} : f32[8]  # adam.py:3
  %v_new = tuple_get(%m_new.kernel) {index=1} : f32[8]
  return %m_new, write(%m, %m_new), write(%v, %v_new)
}"""


def test_a_multi_output_kernel_round_trips_with_its_tuple_type():
    graph = parse_graph(MULTI_OUTPUT)
    assert print_graph(graph) == MULTI_OUTPUT
    kernel = graph.nodes[0]
    assert str(kernel.type) == "(f32[8], f32[8])" and kernel.type.nbytes == 64
    assert [n.type for n in graph.nodes[1:]] == list(kernel.type.elements)
    assert_round_trips(graph)


def test_empty_graph_round_trips():
    assert_round_trips(GraphBuilder("nothing").build())


# -- reading hand-written text ----------------------------------------------------

def test_parser_canonicalises_attributes_and_reads_comments():
    graph = parse_graph("""
        # A hand-written graph: comments and blank lines are ignored.
        graph g(%x: f32[2,3] data) {

          %s = sum(%x) {axes=[-1]} : f32[2]   # this comment is not a location
          %c = cast(%s) {dtype="f\\u00364"} : f64[2]  # lib/a:b/model.py:7
          %n = neg(%c) {} : f64[2]
          return %n
        }
    """)
    s, c, n = graph.nodes
    assert s.attrs == {"axes": (1,), "keepdims": False}
    assert s.loc is None
    assert c.attrs == {"dtype": f64}
    assert c.loc == SourceLoc("lib/a:b/model.py", 7)
    assert graph.outputs == [n]


def test_parsed_values_have_python_types():
    graph = parse_graph("graph g() {\n"
                        "  %1 = full() {shape=[2], dtype=f32, value=1e-05} : f32[2]\n"
                        "  %2 = full() {shape=[], dtype=i64, value=-3} : i64[]\n"
                        "  %3 = full() {shape=[], dtype=bool, value=true} : bool[]\n"
                        "  %4 = constant() {value=dense<[1,2,3,4] : i32[2,2]>} : i32[2,2]\n"
                        "  return %1, %2, %3, %4\n"
                        "}")
    values = [n.attrs["value"] for n in graph.nodes]
    assert values[:3] == [1e-05, -3, True]
    assert [type(v) for v in values[:3]] == [float, int, bool]
    assert values[3].dtype == np.int32 and values[3].tolist() == [[1, 2], [3, 4]]


def test_parse_type_text():
    assert parse_type_text("f32[4,3]") == TensorType((4, 3), f32)
    assert parse_type_text("  i64[] ") == TensorType((), i64)
    assert parse_type_text("bool[0]") == TensorType((0,), bool_)
    with pytest.raises(ValueError, match="unknown dtype 'f33'"):
        parse_type_text("f33[2]")
    with pytest.raises(ValueError, match=r"expected the end of the text after the type, found 'x'"):
        parse_type_text("f32[2] x")


# -- malformed text ---------------------------------------------------------------

def body(*lines, inputs="%x: f32[3] data, %y: f32[4] data"):
    """A graph whose header is line 1 and whose body lines (indented by 2) start at line 2."""
    return "\n".join([f"graph g({inputs}) {{", *(f"  {line}" for line in lines), "}"])


# A multi-output kernel over %x, lines 2 to 7 of a body.
TWO_OUTPUTS = ('%k = fused(%x) {kind="elementwise"} : (f32[3], f32[3]) {',
               "  graph fused_k(%x: f32[3] data)", "  %a = neg(%x) : f32[3]", "  %b = exp(%x) : f32[3]",
               "  return %a, %b", "}")

MALFORMED = [
    # (text, line, column, message)
    ("", 1, 1, "expected 'graph' at the start of the text, found the end of the text"),
    ("grph g() {\n  return\n}", 1, 1, "expected 'graph' at the start of the text, found 'grph'"),
    (body("return", inputs="%x: f33[3] data"), 1, 13, "unknown dtype 'f33'"),
    (body("return", inputs="%x: f32[-3] data"), 1, 17, "dimension -3 is negative"),
    (body("return", inputs="%x: f32[3] weights"), 1, 20,
     "unknown input tag 'weights'; expected one of data, param, buffer, state"),
    (body("return", inputs="%x: f32[3] data, %x: f32[3] param"), 1, 26, "%x is defined twice (first on line 1)"),
    (body("%1 = relu(%z) : f32[3]", "return %1"), 2, 13, "unknown value %z"),
    (body("%1 = add(%x, %2) : f32[3]", "%2 = neg(%x) : f32[3]", "return %1"), 2, 16, "unknown value %2"),
    (body("%1 = frob(%x) : f32[3]", "return %1"), 2, 8, "unknown op 'frob'"),
    (body("%1 = relu(%x) : f32[3]", "%1 = neg(%x) : f32[3]", "return %1"), 3, 3,
     "%1 is defined twice (first on line 2)"),
    (body("%1 = relu(%x) : f32[4]", "return %1"), 2, 19, "node type f32[4] does not match its op's result f32[3]"),
    (body("%1 = relu(%x) f32[3]", "return %1"), 2, 17, "expected ':' after the operands, found 'f32'"),
    (body("%1 = cast(%x) {dtype=i64} i64[3]", "return %1"), 2, 29,
     "expected ':' after the attributes, found 'i64'"),
    (body("%1 relu(%x) : f32[3]", "return %1"), 2, 6, "expected '=' after %1, found 'relu'"),
    (body("%1 = relu(%x %y) : f32[3]", "return %1"), 2, 16, "expected ',' or ')' after an operand, found '%y'"),
    (body("%1 = add(%x, %y) : f32[3]", "return %1"), 2, 8, "add: shapes [3] and [4] do not broadcast"),
    (body("%1 = relu(%x) {alpha=0.1} : f32[3]", "return %1"), 2, 8, "relu: unknown attribute 'alpha'"),
    (body("%1 = cast(%x) {dtype=i64, dtype=i32} : i64[3]", "return %1"), 2, 29,
     "attribute 'dtype' is given twice"),
    (body('%1 = cast(%x) {dtype="f32} : f32[3]', "return %1"), 2, 24, "unterminated string"),
    (body(r'%1 = cast(%x) {dtype="f\q"} : f32[3]', "return %1"), 2, 24, 'invalid string "f\\q"'),
    (body("%1 = cast(%x) {dtype=f33} : f32[3]", "return %1"), 2, 24, "unknown dtype 'f33'"),
    (body("%1 = full() {shape=[3], dtype=f32, value=-foo} : f32[3]", "return %1"), 2, 45,
     "expected 'inf' after '-', found 'foo'"),
    (body("%1 = full() {shape=[3], dtype=f32, value=%x} : f32[3]", "return %1"), 2, 44,
     "expected an attribute value, found '%x'"),
    (body("%1 = constant() {value=dense<[1.0,2.0] : f32[3]>} : f32[3]", "return %1"), 2, 26,
     "dense<...> has 2 values but its type f32[3] holds 3"),
    (body("%1 = constant() {value=dense<[1.5] : i64[1]>} : i64[1]", "return %1"), 2, 26,
     "dense<...> value 1.5 does not fit dtype i64"),
    (body("%1 = constant() {value=dense<[256] : u8[1]>} : u8[1]", "return %1"), 2, 26,
     "dense<...> has a value out of range for u8"),
    (body("%1 = relu(%x) @ : f32[3]", "return %1"), 2, 17, "unexpected character '@'"),
    (body("%1 = relu(%) : f32[3]", "return %1"), 2, 13, "expected a value name after '%'"),
    (body("relu(%x) : f32[3]", "return"), 2, 3,
     "expected a node ('%name = op(...) : type') or 'return', found 'relu'"),
    (body("return %x") + "\ngraph h() {", 4, 1,
     "expected the end of the text after the graph's closing '}', found 'graph'"),
    (body("return %x")[:-2], 2, 12, "expected ',' or '}' after a returned value, found the end of the text"),
    (body("%1 = relu(%x) : f32[3]", "return write(%x, %1)"), 3, 3,
     "graph g: write-back target %x is a data input; only param, buffer, state inputs can be written back"),
    (body("return write(%x %x)"), 2, 19, "expected ',' between the write-back's target and value, found '%x'"),
    (body("%1 = relu(%x) : (f32[3])", "return %1"), 2, 19, "a tuple type holds two or more tensor types"),
    (body("%1 = tuple_get(%x) {index=0} : f32[3]", "return %1"), 2, 8,
     "tuple_get: reads f32[3], which is no tuple (only a multi-output kernel's result is)"),
    (body(*TWO_OUTPUTS, "%2 = neg(%k) : f32[3]", "return %2"), 8, 8,
     "neg: input is the tuple (f32[3], f32[3]), the result of a multi-output kernel; only tuple_get reads a tuple"),
    (body(*TWO_OUTPUTS, "%2 = tuple_get(%k) {index=2} : f32[3]", "return %2"), 8, 8,
     "tuple_get: index 2 is out of range for a tuple of 2"),
    (body(*TWO_OUTPUTS, "return %k"), 8, 3,
     "graph g: output %k is a tuple (f32[3], f32[3]); return its elements (tuple_get) instead"),
]


@pytest.mark.parametrize("text,line,column,message", MALFORMED, ids=[m[3][:40] for m in MALFORMED])
def test_malformed_text_names_line_column_and_problem(text, line, column, message):
    with pytest.raises(ParseError) as info:
        parse_graph(text)
    err = info.value
    assert message in str(err)
    assert (err.line, err.column) == (line, column), str(err)


def test_parse_error_shows_the_line_and_points_at_the_column():
    with pytest.raises(ParseError) as info:
        parse_graph(body("%1 = relu(%z) : f32[3]", "return %1"))
    assert str(info.value) == ("line 2, column 13: unknown value %z\n"
                               "      %1 = relu(%z) : f32[3]\n"
                               "                ^")
