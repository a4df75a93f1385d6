"""The kernel IR: loop nests over typed buffers, the one thing backends consume.

A ``Program`` is the ordered kernels of one planned graph and the buffers
they read and write.  A ``Kernel`` is a list of statements: loops (serial,
parallel, vectorized or unrolled), stores of expression trees into buffers,
scalar lets, accumulators for reductions and checks of data-dependent
indices.  Expressions are immutable trees: constants, loop variables,
references to lets and accumulators, loads with index arithmetic, unary,
binary and select nodes, and casts.  Index arithmetic is ``i64``; every other
value has one of the graph's dtypes.

Everything here is a plain frozen dataclass, so the IR prints
(``graphc.kernel.text``), compares structurally and hashes (the lowering uses
that to compute each value once per element).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

from ..ir.dtypes import DType, bool_, i64

# -- expressions ---------------------------------------------------------------------

# "bitcast": the same bits read as the Unary's dtype, of the same size (graphc.kernel.vmath).
UNARY_OPS = ("neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "not", "isnan", "trunc", "bitcast")
ARITHMETIC_OPS = ("add", "sub", "mul", "div", "rem", "pow", "max", "min")
BITWISE_OPS = ("and", "or", "xor", "shl", "lshr")     # integers and bool
COMPARISON_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
BINARY_OPS = ARITHMETIC_OPS + BITWISE_OPS + COMPARISON_OPS


@dataclass(frozen=True)
class Const:
    value: Union[int, float, bool]
    dtype: DType


@dataclass(frozen=True)
class Var:
    """A loop variable (i64)."""
    name: str
    dtype: DType = i64


@dataclass(frozen=True)
class Ref:
    """The value of a ``Let`` or the current value of an ``Accumulator``."""
    name: str
    dtype: DType


@dataclass(frozen=True)
class Load:
    """Element ``index`` of ``buffer``.  With a ``mask``, only where the mask holds: elsewhere
    nothing is read (the index may be outside the buffer there) and the value is zero.  A
    window's zero padding is one masked load, which a backend renders as a vector load."""
    buffer: str
    index: "Expr"
    dtype: DType
    mask: "Expr | None" = None


@dataclass(frozen=True)
class Unary:
    op: str
    x: "Expr"
    dtype: DType


@dataclass(frozen=True)
class Binary:
    """Arithmetic on two operands of one dtype; comparisons give bool.  Integer ``div`` and
    ``rem`` truncate toward zero (C semantics); ``max``/``min`` on floats propagate NaN."""
    op: str
    a: "Expr"
    b: "Expr"
    dtype: DType


@dataclass(frozen=True)
class Select:
    cond: "Expr"
    a: "Expr"
    b: "Expr"
    dtype: DType


@dataclass(frozen=True)
class Cast:
    """Convert ``x`` to ``dtype``: floats to integers truncate, anything to bool is ``x != 0``."""
    x: "Expr"
    dtype: DType


Expr = Union[Const, Var, Ref, Load, Unary, Binary, Select, Cast]


# -- statements -------------------------------------------------------------------------

LOOP_KINDS = ("serial", "parallel", "vectorized", "unrolled")


@dataclass(frozen=True)
class Let:
    """Bind ``value`` to ``name`` for the rest of the enclosing block."""
    name: str
    value: Expr


@dataclass(frozen=True)
class Accumulator:
    """Declare a mutable scalar, set to ``init``; ``Assign`` updates it, ``Ref`` reads it.

    A ``reassociable`` accumulator sums: a backend may add its terms in another
    order (vectorize the sum, fuse multiply-adds), fixed when it compiles.
    """
    name: str
    init: Expr
    reassociable: bool = False


@dataclass(frozen=True)
class Local:
    """Declare a scratch array of ``size`` elements private to one run of the kernel body
    (one thread's accumulators for a row of outputs); ``Load`` and ``Store`` address it by name."""
    name: str
    dtype: DType
    size: int


@dataclass(frozen=True)
class Assign:
    name: str
    value: Expr


@dataclass(frozen=True)
class Store:
    buffer: str
    index: Expr
    value: Expr
    reassociable: bool = False          # the value is a sum a backend may reorder (see Accumulator)


@dataclass(frozen=True)
class Check:
    """A data-dependent index must satisfy ``cond``; if not, the step fails with ``error``
    (an index into the program's ``errors``) reporting ``value``.  Execution goes on (every
    load is clamped into its buffer), and the program stops after this kernel."""
    cond: Expr
    error: int
    value: Expr


@dataclass(frozen=True)
class Loop:
    """``for var in start..stop``, run as ``kind`` says.  A vectorized loop may be ``padded_to``
    more lanes (a register tile's row of 28 outputs rendered as two 16-lane vectors): a backend
    may compute the lanes from ``stop`` on as well, as long as they read and write no buffer (only
    the scratch rows of their tile, which have room for them) and nothing uses what they compute."""
    var: str
    start: Expr
    stop: Expr
    body: tuple["Stmt", ...]
    kind: str = "serial"
    padded_to: int | None = None


Stmt = Union[Let, Accumulator, Local, Assign, Store, Check, Loop]


# -- buffers, kernels, programs ---------------------------------------------------------------

PLACES = ("arena", "input", "state", "constant")


@dataclass(frozen=True)
class Buffer:
    """A tensor a kernel reads or writes, flat in row-major order.

    ``place`` says where its bytes are: ``arena`` (at ``offset`` in the program's
    arena, from the memory plan), ``input`` (the graph input ``source``),
    ``state`` (the storage of the state input ``source``, into which a write-back
    value is computed directly) or ``constant`` (``data``, stored with the program).
    """
    name: str
    dtype: DType
    shape: tuple[int, ...]
    place: str
    offset: int | None = None
    source: str | None = None
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True)
class Kernel:
    """One loop nest: it reads ``inputs`` and stores ``outputs`` (buffer names).

    ``node`` names the graph node it computes and ``loc`` the user's source line,
    so a failure can say where it came from.
    """
    name: str
    node: str
    what: str
    body: tuple[Stmt, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    loc: str | None = None

    @property
    def has_checks(self) -> bool:
        return any(isinstance(stmt, Check) for stmt in walk_statements(self.body))


@dataclass(frozen=True)
class OutOfRange:
    """What a failed ``Check`` means: an op, what was out of range and the valid range."""
    op: str
    what: str
    size: int
    detail: str              # more about the range (" along axis 1"), or ""
    node: str
    loc: str | None

    def message(self, value: int) -> str:
        """The message the reference backend gives for the same value."""
        where = f" at {self.loc}" if self.loc else ""
        return (f"{self.op}: {self.what} {value} is out of range [0, {self.size}){self.detail} "
                f"(while running %{self.node}{where})")


@dataclass(frozen=True)
class Copy:
    """After every kernel: copy buffer ``source`` into buffer ``target`` (a write-back
    value that could not be computed into its state's storage)."""
    source: str
    target: str


@dataclass
class Program:
    """The kernels of one graph in run order, its buffers and where its results are."""
    name: str
    buffers: dict[str, Buffer]
    kernels: list[Kernel]
    arena_bytes: int
    inputs: list[str]                    # the graph's inputs, in order (buffer names)
    outputs: list[str]                   # the graph's outputs (buffer names, maybe repeated)
    written: list[str]                   # the state inputs that hold their new values after the run
    copies: list[Copy]
    errors: list[OutOfRange]

    def kernel(self, name: str) -> Kernel:
        for kernel in self.kernels:
            if kernel.name == name:
                return kernel
        raise KeyError(f"program {self.name} has no kernel {name}")

    def __str__(self) -> str:
        from .text import print_program
        return print_program(self)


def walk_statements(body):
    """Every statement of ``body``, loops' bodies included, in order."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, Loop):
            yield from walk_statements(stmt.body)


def walk_expr(expr: Expr):
    """``expr`` and every expression inside it."""
    yield expr
    if isinstance(expr, Load):
        yield from walk_expr(expr.index)
        if expr.mask is not None:
            yield from walk_expr(expr.mask)
    elif isinstance(expr, Unary):
        yield from walk_expr(expr.x)
    elif isinstance(expr, Binary):
        yield from walk_expr(expr.a)
        yield from walk_expr(expr.b)
    elif isinstance(expr, Select):
        yield from walk_expr(expr.cond)
        yield from walk_expr(expr.a)
        yield from walk_expr(expr.b)
    elif isinstance(expr, Cast):
        yield from walk_expr(expr.x)


def substitute_var(body: tuple, var: str, value: "Expr") -> tuple:
    """``body`` with loop variable ``var`` read as ``value`` (a loop renamed, split, fused)."""
    memo: dict[int, tuple] = {}                # by identity: the lowering shares subtrees

    def sub(e):
        if id(e) not in memo:
            memo[id(e)] = (e, _substituted_expr(e, var, value, sub))
        return memo[id(e)][1]

    def statement(stmt):
        if isinstance(stmt, (Let, Assign)):
            return replace(stmt, value=sub(stmt.value))
        if isinstance(stmt, Accumulator):
            return replace(stmt, init=sub(stmt.init))
        if isinstance(stmt, Store):
            return replace(stmt, index=sub(stmt.index), value=sub(stmt.value))
        if isinstance(stmt, Check):
            return replace(stmt, cond=sub(stmt.cond), value=sub(stmt.value))
        if isinstance(stmt, Loop):
            return replace(stmt, start=sub(stmt.start), stop=sub(stmt.stop), body=tuple(map(statement, stmt.body)))
        return stmt                                   # a Local
    return tuple(map(statement, body))


def _substituted_expr(e, var: str, value, sub):
    if isinstance(e, Var):
        return value if e.name == var else e
    if isinstance(e, Load):
        return replace(e, index=sub(e.index), mask=None if e.mask is None else sub(e.mask))
    if isinstance(e, (Unary, Cast)):
        return replace(e, x=sub(e.x))
    if isinstance(e, Binary):
        return replace(e, a=sub(e.a), b=sub(e.b))
    if isinstance(e, Select):
        return replace(e, cond=sub(e.cond), a=sub(e.a), b=sub(e.b))
    return e


def statement_exprs(stmt: Stmt):
    """The expressions a statement evaluates directly (not those of a loop's body)."""
    if isinstance(stmt, (Let, Assign)):
        return (stmt.value,)
    if isinstance(stmt, Accumulator):
        return (stmt.init,)
    if isinstance(stmt, Store):
        return (stmt.index, stmt.value)
    if isinstance(stmt, Check):
        return (stmt.cond, stmt.value)
    if isinstance(stmt, Local):
        return ()
    return (stmt.start, stmt.stop)


def is_comparison(op: str) -> bool:
    return op in COMPARISON_OPS


def result_dtype(op: str, operand: DType) -> DType:
    return bool_ if is_comparison(op) else operand
