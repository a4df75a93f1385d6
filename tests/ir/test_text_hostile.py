"""The text IR parser on malformed and hostile text: always a ParseError with line and column (issue 14, item 5).

Besides a list of known-bad texts, a seeded mutation loop damages the printed
graphs of an example model's training step (fused bodies, dense constants,
write-backs and all) in many ways and asserts that every result either parses
and prints back to itself, or raises ParseError.
"""
import random
import re

import pytest

import graphc
import graphc.nn.functional as F
import graphc.optim as optim
from graphc.errors import ParseError
from graphc.ir import parse_graph, print_graph

import models


def full_node(value: str, dtype: str = "f32") -> str:
    return f"graph g() {{\n  %1 = full() {{shape=[], dtype={dtype}, value={value}}} : {dtype}[]\n  return %1\n}}"


def nested_fused_bodies(depth: int) -> str:
    inner = "%1 = relu(%x) : f32[2]"
    for _ in range(depth):
        inner = (f'%1 = fused(%x) {{kind="elementwise"}} : f32[2] {{\ngraph body(%x: f32[2] data)\n{inner}\n'
                 "return %1\n}")
    return f"graph g(%x: f32[2] data) {{\n{inner}\nreturn %1\n}}"


HOSTILE_TEXTS = {
    "brackets nested 5000 deep": (
        "graph g() {\n  %1 = full() {shape=" + "[" * 5000 + "} : f32[]\n  return %1\n}",
        (2, 54), "nested more than 32 deep"),
    "dense values nested 5000 deep": (
        "graph g() {\n  %1 = constant() {value=dense<" + "[" * 5000 + "} : f32[]\n  return %1\n}",
        (2, 65), "nested more than 32 deep"),
    "fused bodies nested 2000 deep": (nested_fused_bodies(2000), (67, 1), "nested more than 32 deep"),
    "an integer of 5000 digits": (
        full_node("9" * 5000, "i64"), (2, 43), "integer 99999999999999999999... (5000 characters) does"),
    "5000 leading zeros, then too large": (
        full_node("0" * 5000 + "9" * 20, "i64"), (2, 43), "does not fit in 64 bits"),
    "a negative integer of 5000 digits": (full_node("-" + "7" * 5000, "i64"), (2, 43), "does not fit in 64 bits"),
    "a dimension of 30 digits": ("graph g(%x: f32[" + "9" * 30 + "] data) {\n  return %x\n}", (1, 17),
                                 "integer 99999999999999999999... (30 characters)"),
    "inf as an integer fill value": (full_node("inf", "i64"), (2, 8), "full: its attributes do not fit"),
}


@pytest.mark.parametrize("name", list(HOSTILE_TEXTS))
def test_hostile_text_gets_a_parse_error_at_its_place(name):
    text, (line, column), words = HOSTILE_TEXTS[name]
    with pytest.raises(ParseError) as raised:
        parse_graph(text)
    assert (raised.value.line, raised.value.column) == (line, column), str(raised.value)
    assert words in str(raised.value)
    assert len(str(raised.value)) < 400          # a long line is shown as an excerpt around the column


def test_an_excerpt_of_a_long_line_points_at_the_column():
    text = "graph g() {\n  return" + " " * 300 + "@" + " " * 300 + "\n}"
    with pytest.raises(ParseError, match="column 309: unexpected character '@'") as raised:
        parse_graph(text)
    excerpt, caret = str(raised.value).splitlines()[1:3]
    assert excerpt.startswith("    ...") and excerpt.endswith("...") and len(excerpt) < 120
    assert excerpt[caret.index("^")] == "@"


def test_leading_zeros_and_the_extremes_of_64_bits_still_parse():
    assert parse_graph(full_node("0" * 5000 + "5", "i64")).nodes[0].attrs["value"] == 5
    assert parse_graph(full_node(str(-2 ** 63), "i64")).nodes[0].attrs["value"] == -2 ** 63
    assert parse_graph(full_node(str(2 ** 63 - 1), "i64")).nodes[0].attrs["value"] == 2 ** 63 - 1


# -- the mutation loop --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def printed_graphs() -> list[str]:
    """LeNet's SGD training step as traced and after the pass pipeline (fused bodies, tuples, write-backs)."""
    graphc.manual_seed(0)
    model = models.LeNet(num_classes=10)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    @graphc.compile
    def train_step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    x, y = graphc.randn(2, 3, 32, 32), graphc.tensor([1, 2])
    return [print_graph(train_step.graph(x, y, stage="traced")), print_graph(train_step.graph(x, y))]


# Fragments a mutation inserts: the grammar's punctuation and keywords, and values that strain it.
FRAGMENTS = [*"[]{}()<>,:=%\"#-.0123456789e ", "fused", "graph", "dense<[", "inf", "-inf", "nan", "true", "none",
             "9" * 30, "\n", "%1", "f32[", "i64", "bool", "return", "write(", "\\u", "tuple_get"]
# Attribute values of every kind, put in the place of another attribute's value.
VALUES = ["[1,2]", "1.5", '"x"', "f32", "none", "true", "[[1]]", "-1", "99999", "dense<[1.0] : f32[1]>", "[]", "0",
          "[0,0,0,0,0,0,0,0]", "-inf", "nan", "i64", "[true]", "[-5]", '"contraction"', "9" * 25]
ATTRIBUTE_VALUE = re.compile(r"=((?:\[[^\]]*\])|[^,}\s]+)")


def mutate(text: str, rng: random.Random) -> str:
    """``text`` damaged by one to three edits: deletions, insertions, repeats, replacements, swapped values."""
    for _ in range(rng.randint(1, 3)):
        start = rng.randrange(len(text))
        end = min(len(text), start + rng.randint(0, 20))
        kind = rng.randrange(5)
        if kind == 0:
            text = text[:start] + text[end:]
        elif kind == 1:
            text = text[:start] + rng.choice(FRAGMENTS) + text[start:]
        elif kind == 2:
            text = text[:start] + text[start:end] * rng.randint(2, 5) + text[end:]
        elif kind == 3:
            text = text[:start] + rng.choice(FRAGMENTS) + text[end:]
        else:
            value_start, value_end = rng.choice([m.span(1) for m in ATTRIBUTE_VALUE.finditer(text)])
            text = text[:value_start] + rng.choice(VALUES) + text[value_end:]
    return text


@pytest.mark.parametrize("seed", range(4))
def test_mutated_graphs_parse_or_raise_parse_error(printed_graphs, seed):
    rng = random.Random(seed)
    for _ in range(100):
        text = mutate(rng.choice(printed_graphs), rng)
        try:
            graph = parse_graph(text)
        except ParseError as error:
            assert error.line >= 1 and error.column >= 1
            continue
        assert parse_graph(print_graph(graph)) == graph
