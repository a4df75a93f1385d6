"""The text form of the IR: one node per line, readable at a glance.

    graph mlp(%x: f32[4,8] data, %w: f32[8,2] param) {
      %1 = matmul(%x, %w) : f32[4,2]
      %2 = relu(%1) : f32[4,2]  # model.py:12
      return %2, write(%w, %5)
    }

Attributes print in braces after the operands: integers as ``3``, floats
always with a point or exponent (``2.0``, ``1e-05``, ``inf``, ``nan``), booleans
as ``true``/``false``, strings in double quotes, dtypes bare (``f32``), lists as
``[1,2]``, a missing optional value as ``none`` and tensors as
``dense<[1.0,2.0] : f32[2]>``.  A trailing ``# file:line`` is the node's source
location.  ``parse_graph(print_graph(g)) == g``.

The parser reads untrusted text: anything it cannot read raises ParseError
with the line and column, never another exception.  It reads this grammar (whitespace and line breaks are free; ``#``
starts a comment that runs to the end of the line)::

    graph   := 'graph' WORD '(' [input {',' input}] ')' '{' {node} return '}'
    input   := VALUE ':' type TAG
    node    := VALUE '=' WORD '(' [VALUE {',' VALUE}] ')' ['{' [attr {',' attr}] '}'] ':' type
               ['{' body '}']
    body    := 'graph' WORD '(' [input {',' input}] ')' {node} return
    return  := 'return' [result {',' result}]
    result  := VALUE | 'write' '(' VALUE ',' VALUE ')'
    type    := tensor | '(' tensor {',' tensor} ')'
    tensor  := DTYPE '[' [INT {',' INT}] ']'
    attr    := WORD '=' value
    value   := INT | FLOAT | '-inf' | 'inf' | 'nan' | 'true' | 'false' | 'none' | STRING | DTYPE
             | '[' [value {',' value}] ']' | 'dense' '<' '[' [value {',' value}] ']' ':' tensor '>'

VALUE is ``%`` followed by a name; names (of values and of the graph) are made
of letters, digits, ``_`` and ``.``.

A node whose op has a graph-valued attribute (``fused``'s ``body``) prints
that graph nested below it, indented, instead of among its attributes; the
body is a scope of its own, seeing only its inputs::

      %5 = fused(%x, %b) {kind="elementwise"} : f32[4,8] {
        graph fused_5(%x: f32[4,8] data, %b: f32[8] data)
        %4 = add(%x, %b) : f32[4,8]
        %5 = relu(%4) : f32[4,8]
        return %5
      }

A kernel with several outputs has a tuple type, and ``tuple_get`` nodes name
its outputs::

      %k = fused(%g, %m) {kind="elementwise"} : (f32[8], f32[8]) {
        graph fused_k(%g: f32[8] data, %m: f32[8] data)
        %1 = add(%m, %g) : f32[8]
        %2 = mul(%1, %g) : f32[8]
        return %1, %2
      }
      %1 = tuple_get(%k) {index=0} : f32[8]
      %2 = tuple_get(%k) {index=1} : f32[8]
"""
from __future__ import annotations

import contextlib
import json
import math
import string
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import GraphcError, ParseError, VerifyError
from ..ops.registry import get_op, infer_node
from .dtypes import DType, bool_, dtype_from_name, dtype_from_numpy
from .graph import INPUT_TAGS, Graph, Node, SourceLoc, verify
from .types import TensorType, TupleType

# Signatures longer than this go one input per line.
_INLINE_INPUTS = 4
# A return line longer than this puts each result on a line of its own.
_LINE_WIDTH = 120
# Deeper nesting of lists or fused bodies than any graph has is refused, not left to overflow the stack.
_MAX_NESTING = 32


# -- printing -------------------------------------------------------------------

def format_attr(value) -> str:
    """One attribute value in the text form (the inverse of the parser's attribute values)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, DType):
        return value.name
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        items = ",".join(format_attr(v) for v in value.reshape(-1).tolist())
        return f"dense<[{items}] : {TensorType(value.shape, dtype_from_numpy(value.dtype))}>"
    raise TypeError(f"cannot print attribute value {value!r}")


def format_attr_dict(attrs: dict) -> str:
    """An attribute dict as ``{name=value, ...}``; graph values are left out (they print as nested bodies)."""
    return "{" + ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items() if not isinstance(v, Graph)) + "}"


def _body(node: Node) -> Graph | None:
    """The graph nested in ``node`` (``fused``'s body), if it holds one."""
    return next((v for v in node.attrs.values() if isinstance(v, Graph)), None)


def format_node(node: Node) -> str:
    """One node as ``%name = op(%a, %b) {attrs} : type  # file:line``.

    A node holding a body ends its line with `` {``; ``print_graph`` writes
    the body on the lines after it.
    """
    args = ", ".join(f"%{i.name}" for i in node.inputs)
    text = f"%{node.name} = {node.op}({args})"
    if any(not isinstance(v, Graph) for v in node.attrs.values()):
        text += " " + format_attr_dict(node.attrs)
    text += f" : {node.type}"
    if _body(node) is not None:
        text += " {"
    if node.loc is not None:
        text += f"  # {node.loc}"
    return text


def print_graph(graph: Graph) -> str:
    """The whole graph in the text form that ``parse_graph`` reads back."""
    return "\n".join(_graph_lines(graph, nested=False))


def _graph_lines(graph: Graph, nested: bool) -> list[str]:
    """The lines of ``graph``; a nested body has no braces of its own and no indentation."""
    params = [f"%{n.name}: {n.type} {n.tag}" for n in graph.inputs]
    if len(params) <= _INLINE_INPUTS:
        lines = [f"graph {graph.name}({', '.join(params)})"]
    else:
        lines = [f"graph {graph.name}(", *(f"    {p}," for p in params[:-1]), f"    {params[-1]}", ")"]
    indent = "" if nested else "  "
    if not nested:
        lines[-1] += " {"
    for node in graph.nodes:
        lines += [indent + line for line in _node_lines(node)]
    results = [f"%{n.name}" for n in graph.outputs]
    results += [f"write(%{t.name}, %{v.name})" for t, v in graph.writes]
    one_line = "return " + ", ".join(results) if results else "return"
    if len(results) <= _INLINE_INPUTS or len(indent + one_line) <= _LINE_WIDTH:
        lines.append(indent + one_line)
    else:       # a training step returns dozens of write-backs: one per line
        lines += [indent + "return " + results[0] + ","]
        lines += [indent + "    " + r + "," for r in results[1:-1]] + [indent + "    " + results[-1]]
    if not nested:
        lines.append("}")
    return lines


def _node_lines(node: Node) -> list[str]:
    """A node's line, followed by its body indented and closed with ``}`` if it holds one."""
    body = _body(node)
    if body is None:
        return [format_node(node)]
    return [format_node(node), *(f"  {line}" for line in _graph_lines(body, nested=True)), "}"]


# -- parsing: entry points ------------------------------------------------------

def parse_graph(text: str) -> Graph:
    """Read a graph in the text form ``print_graph`` writes, and verify it.

    Each node's attributes are canonicalised by its op and its declared type
    must equal the op's result type.  Any problem raises ParseError naming the
    line, the column and what was expected.
    """
    return _Parser(text).graph()


def parse_type_text(text: str) -> TensorType:
    """Parse a tensor type such as ``f32[4,3]`` or ``i64[]``; raises ParseError (a ValueError)."""
    parser = _Parser(text)
    tensor_type = parser.tensor_type()
    parser.expect_end("after the type")
    return tensor_type


# -- tokens ---------------------------------------------------------------------

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.")
_WORD_START = frozenset(string.ascii_letters + "_")
_DIGITS = frozenset(string.digits)
_PUNCTUATION = frozenset("(){}[],:=<>-")


@dataclass(frozen=True)
class _Token:
    kind: str        # word, value (%name), int, float, string, punct or end
    text: str        # exactly as written; a value token keeps its '%'
    line: int        # 1-based
    column: int      # 1-based

    def describe(self) -> str:
        return "the end of the text" if self.kind == "end" else f"'{self.text}'"


def _tokenize(text: str) -> tuple[list[_Token], dict[int, str]]:
    """Split ``text`` into tokens, ending with an ``end`` token.

    Comments are not tokens; the second result maps each line that has one to
    its text, so the parser can read a node's trailing ``# file:line``.
    """
    lines = text.splitlines()
    tokens: list[_Token] = []
    comments: dict[int, str] = {}
    for line_no, line in enumerate(lines, start=1):
        col = 0
        while col < len(line):
            char = line[col]
            if char.isspace():
                col += 1
                continue
            if char == "#":
                comments[line_no] = line[col + 1:].strip()
                break
            kind, end = _scan_token(line, line_no, col)
            tokens.append(_Token(kind, line[col:end], line_no, col + 1))
            col = end
    last_line = len(lines) or 1
    tokens.append(_Token("end", "", last_line, len(lines[-1]) + 1 if lines else 1))
    return tokens, comments


def _scan_token(line: str, line_no: int, col: int) -> tuple[str, int]:
    """The kind of the token starting at ``line[col]`` and the column just past it."""
    char = line[col]
    following = line[col + 1] if col + 1 < len(line) else ""
    if char == "%":
        end = _scan_while(line, col + 1, _NAME_CHARS)
        if end == col + 1:
            raise ParseError("expected a value name after '%'", line_no, col + 1, line)
        return "value", end
    if char in _WORD_START:
        return "word", _scan_while(line, col, _NAME_CHARS)
    if char in _DIGITS or (char == "-" and following in _DIGITS):
        return _scan_number(line, col)
    if char == '"':
        return "string", _scan_string(line, line_no, col)
    if char in _PUNCTUATION:
        return "punct", col + 1
    raise ParseError(f"unexpected character {char!r}", line_no, col + 1, line)


def _scan_while(line: str, col: int, chars: frozenset) -> int:
    while col < len(line) and line[col] in chars:
        col += 1
    return col


def _scan_number(line: str, col: int) -> tuple[str, int]:
    """An integer (``-3``) or a float (``2.0``, ``1e-05``, ``-1.5e+20``)."""
    end = _scan_while(line, col + 1, _DIGITS)
    kind = "int"
    if end < len(line) and line[end] == ".":
        kind, end = "float", _scan_while(line, end + 1, _DIGITS)
    if end < len(line) and line[end] in "eE":
        exponent = end + 1
        if exponent < len(line) and line[exponent] in "+-":
            exponent += 1
        if exponent < len(line) and line[exponent] in _DIGITS:
            kind, end = "float", _scan_while(line, exponent, _DIGITS)
    return kind, end


def _scan_string(line: str, line_no: int, col: int) -> int:
    """The column just past the JSON string starting at ``line[col]``."""
    end = col + 1
    while end < len(line):
        if line[end] == "\\":
            end += 2
        elif line[end] == '"':
            return end + 1
        else:
            end += 1
    raise ParseError("unterminated string: expected a closing '\"' on the same line", line_no, col + 1, line)


# -- the recursive-descent parser ----------------------------------------------

_KEYWORD_VALUES = {"true": True, "false": False, "none": None, "inf": math.inf, "nan": math.nan}


class _Parser:
    """One pass over the tokens; values must be defined before they are used."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.tokens, self.comments = _tokenize(text)
        self.pos = 0
        self.depth = 0                           # lists and bodies open around the current token
        self.values: dict[str, Node] = {}
        self.defined_on: dict[str, int] = {}     # value name -> line, for "defined twice" messages

    # -- token helpers ----------------------------------------------------------
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token.kind in ("punct", "word") and token.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.advance()
            return True
        return False

    def expect(self, text: str, expectation: str) -> _Token:
        """Consume the punctuation or keyword ``text``; else fail with "expected <expectation>"."""
        if not self.at(text):
            raise self.expected(expectation)
        return self.advance()

    def expect_kind(self, kind: str, expectation: str) -> _Token:
        if self.peek().kind != kind:
            raise self.expected(expectation)
        return self.advance()

    def expect_end(self, where: str) -> None:
        if self.peek().kind != "end":
            raise self.expected(f"the end of the text {where}")

    def expected(self, expectation: str) -> ParseError:
        token = self.peek()
        return self.error(f"expected {expectation}, found {token.describe()}", token)

    def error(self, message: str, token: _Token) -> ParseError:
        source_line = self.lines[token.line - 1] if token.line <= len(self.lines) else ""
        return ParseError(message, token.line, token.column, source_line)

    @contextlib.contextmanager
    def nested(self, token: _Token):
        """Parse inside a list or a body opened at ``token``, refusing nesting deeper than any graph's."""
        if self.depth >= _MAX_NESTING:
            raise self.error(f"lists or fused bodies nested more than {_MAX_NESTING} deep", token)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def integer(self, token: _Token) -> int:
        """An int token's value, which must fit in 64 bits."""
        negative = token.text.startswith("-")
        significant = token.text.lstrip("-").lstrip("0") or "0"
        # The length first: Python's int() refuses thousands of digits with a ValueError.
        if len(significant) > 19 or int(significant) > (2 ** 63 if negative else 2 ** 63 - 1):
            shown = token.text if len(token.text) <= 25 else f"{token.text[:20]}... ({len(token.text)} characters)"
            raise self.error(f"integer {shown} does not fit in 64 bits", token)
        return -int(significant) if negative else int(significant)

    def sequence(self, parse_item: Callable[[], object], close: str, item: str) -> list:
        """Comma-separated items up to ``close`` (consumed); there may be none."""
        items = []
        if self.accept(close):
            return items
        while True:
            items.append(parse_item())
            if self.accept(close):
                return items
            self.expect(",", f"',' or '{close}' after {item}")

    # -- values (SSA names) -------------------------------------------------------
    def check_new_name(self, token: _Token) -> str:
        name = token.text[1:]
        if name in self.values:
            raise self.error(f"{token.text} is defined twice (first on line {self.defined_on[name]})", token)
        return name

    def define(self, token: _Token, node: Node) -> None:
        self.values[node.name] = node
        self.defined_on[node.name] = token.line

    def use(self) -> Node:
        token = self.expect_kind("value", "a value such as %x")
        try:
            return self.values[token.text[1:]]
        except KeyError:
            raise self.error(f"unknown value {token.text}", token) from None

    # -- the graph --------------------------------------------------------------
    def graph(self) -> Graph:
        self.expect("graph", "'graph' at the start of the text")
        graph = self.graph_after_keyword(nested=False)
        self.expect_end("after the graph's closing '}'")
        return graph

    def body(self) -> Graph:
        """A node's nested body, after its '{': a graph in a scope of its own, closed by '}'."""
        outer_scope = self.values, self.defined_on
        self.values, self.defined_on = {}, {}
        with self.nested(self.expect("graph", "'graph' and the body's inputs after '{'")):
            body = self.graph_after_keyword(nested=True)
        self.values, self.defined_on = outer_scope
        return body

    def graph_after_keyword(self, nested: bool) -> Graph:
        """Name, inputs, nodes and return statement; a nested body has no '{' of its own."""
        name = self.expect_kind("word", "the graph's name after 'graph'").text
        self.expect("(", "'(' and the inputs after the graph's name")
        inputs = self.sequence(self.graph_input, ")", "an input")
        if not nested:
            self.expect("{", "'{' and the graph's body after its inputs")
        nodes = []
        while not self.at("return"):
            if self.peek().kind != "value":
                raise self.expected("a node ('%name = op(...) : type') or 'return'")
            nodes.append(self.node())
        return_token = self.advance()
        results = self.sequence(self.result, "}", "a returned value")
        outputs = [r for r in results if isinstance(r, Node)]
        writes = [r for r in results if isinstance(r, tuple)]
        graph = Graph(name, inputs, nodes, outputs, writes)
        try:
            verify(graph)
        except VerifyError as err:
            # Nodes were checked as they were read, so only the return statement can be at fault.
            raise self.error(str(err), return_token) from None
        return graph

    def graph_input(self) -> Node:
        name_token = self.expect_kind("value", "an input such as '%x: f32[4] data'")
        name = self.check_new_name(name_token)
        self.expect(":", f"':' and a type after the input {name_token.text}")
        tensor_type = self.tensor_type()
        tag_token = self.expect_kind("word", f"the input's tag ({', '.join(INPUT_TAGS)})")
        if tag_token.text not in INPUT_TAGS:
            raise self.error(f"unknown input tag '{tag_token.text}'; expected one of {', '.join(INPUT_TAGS)}",
                             tag_token)
        node = Node(name, "input", (), {}, tensor_type, tag=tag_token.text)
        self.define(name_token, node)
        return node

    def node(self) -> Node:
        name_token = self.advance()
        name = self.check_new_name(name_token)
        self.expect("=", f"'=' after {name_token.text}")
        op_token = self.expect_kind("word", "an op name after '='")
        try:
            get_op(op_token.text)
        except GraphcError:
            raise self.error(f"unknown op '{op_token.text}'", op_token) from None
        self.expect("(", f"'(' and the operands after {op_token.text}")
        operands = self.sequence(self.use, ")", "an operand")
        attrs = self.attr_dict() if self.at("{") else {}
        self.expect(":", "':' after the attributes" if attrs else "':' after the operands")
        type_token = self.peek()
        declared = self.value_type()
        loc = self.source_loc(self.tokens[self.pos - 1].line)
        if self.at("{"):
            body_attr = self.body_attr(op_token)
            self.advance()
            attrs = {**attrs, body_attr: self.body()}
        try:
            attrs, result = infer_node(op_token.text, [n.type for n in operands], attrs)
        except GraphcError as err:
            raise self.error(str(err), op_token) from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as err:
            # Op rules are written for the values the frontend makes; text can hold any value (inf for
            # an integer's fill), and what a rule cannot take is an error in the text at this node.
            raise self.error(f"{op_token.text}: its attributes do not fit its inputs ({type(err).__name__}: "
                             f"{err})", op_token) from None
        if declared != result:
            raise self.error(f"node type {declared} does not match its op's result {result}", type_token)
        node = Node(name, op_token.text, operands, attrs, declared, loc=loc)
        self.define(name_token, node)
        return node

    def body_attr(self, op_token: _Token) -> str:
        """The name of the graph-valued attribute that a '{' after the node's type fills."""
        names = [name for name, attr in get_op(op_token.text).attrs.items() if attr.kind == "graph"]
        if not names:
            raise self.error(f"{op_token.text} takes no nested body, but '{{' follows its type", self.peek())
        return names[0]

    def source_loc(self, line: int) -> SourceLoc | None:
        """The node's location from a ``# file:line`` comment on its last line; other comments are not."""
        file, colon, line_text = self.comments.get(line, "").rpartition(":")
        if not colon or not (line_text.isascii() and line_text.isdigit()):
            return None
        return SourceLoc(file, int(line_text))

    def result(self) -> Node | tuple[Node, Node]:
        if not self.accept("write"):
            return self.use()
        self.expect("(", "'(' after write")
        target = self.use()
        self.expect(",", "',' between the write-back's target and value")
        value = self.use()
        self.expect(")", "')' after the write-back's value")
        return target, value

    # -- types ------------------------------------------------------------------
    def value_type(self) -> TensorType | TupleType:
        """A node's type: a tensor type, or a parenthesised tuple of two or more."""
        open_token = self.peek()
        if not self.accept("("):
            return self.tensor_type()
        elements = self.sequence(self.tensor_type, ")", "a tensor type")
        if len(elements) < 2:
            raise self.error("a tuple type holds two or more tensor types", open_token)
        return TupleType(tuple(elements))

    def tensor_type(self) -> TensorType:
        dtype = self.dtype(self.expect_kind("word", "a tensor type such as f32[4,3]"))
        self.expect("[", f"'[' and the shape after {dtype.name}")
        return TensorType(tuple(self.sequence(self.dimension, "]", "a dimension")), dtype)

    def dimension(self) -> int:
        token = self.expect_kind("int", "a dimension (a non-negative integer)")
        if token.text.startswith("-"):
            raise self.error(f"dimension {token.text:.25} is negative", token)
        return self.integer(token)

    def dtype(self, token: _Token) -> DType:
        try:
            return dtype_from_name(token.text)
        except ValueError as err:
            raise self.error(str(err), token) from None

    # -- attributes -------------------------------------------------------------
    def attr_dict(self) -> dict:
        self.advance()   # the '{'
        attrs = {}
        for name_token, value in self.sequence(self.attr, "}", "an attribute"):
            if name_token.text in attrs:
                raise self.error(f"attribute '{name_token.text}' is given twice", name_token)
            attrs[name_token.text] = value
        return attrs

    def attr(self) -> tuple[_Token, object]:
        name_token = self.expect_kind("word", "an attribute name")
        self.expect("=", f"'=' after the attribute name {name_token.text}")
        return name_token, self.attr_value()

    def attr_value(self):
        token = self.peek()
        if token.kind == "int":
            return self.integer(self.advance())
        if token.kind == "float":
            return float(self.advance().text)
        if token.kind == "string":
            return self.string(self.advance())
        if self.accept("["):
            with self.nested(token):
                return self.sequence(self.attr_value, "]", "a list item")
        if self.accept("-"):
            self.expect("inf", "'inf' after '-'")
            return -math.inf
        if token.kind != "word":
            raise self.expected("an attribute value")
        self.advance()
        if token.text in _KEYWORD_VALUES:
            return _KEYWORD_VALUES[token.text]
        if token.text == "dense":
            return self.dense(token)
        return self.dtype(token)

    def string(self, token: _Token) -> str:
        try:
            return json.loads(token.text)
        except json.JSONDecodeError as err:
            raise self.error(f"invalid string {token.text}: {err.msg}", token) from None

    def dense(self, dense_token: _Token) -> np.ndarray:
        self.expect("<", "'<' after dense")
        self.expect("[", "'[' and the tensor's values after 'dense<'")
        values = self.sequence(self.attr_value, "]", "a tensor value")
        self.expect(":", "':' and the tensor's type after its values")
        tensor_type = self.tensor_type()
        self.expect(">", "'>' to close dense<...>")
        if len(values) != tensor_type.numel:
            raise self.error(f"dense<...> has {len(values)} values but its type {tensor_type} "
                             f"holds {tensor_type.numel}", dense_token)
        for value in values:
            if not _fits_dtype(value, tensor_type.dtype):
                raise self.error(f"dense<...> value {format_attr(value)} does not fit dtype {tensor_type.dtype}",
                                 dense_token)
        try:
            array = np.array(values, dtype=tensor_type.dtype.numpy)
        except OverflowError:
            raise self.error(f"dense<...> has a value out of range for {tensor_type.dtype}", dense_token) from None
        return array.reshape(tensor_type.shape)


def _fits_dtype(value, dtype: DType) -> bool:
    """Whether a parsed value can be an element of a ``dtype`` tensor without rounding."""
    if dtype == bool_:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (dtype.is_float and isinstance(value, float))
