"""The kernel IR verifier: a program is well formed and every access stays in its buffer.

Checked for every kernel:

- names: every variable, let and accumulator is defined before use, in an
  enclosing block; every buffer it touches is declared by the program (or is a
  scratch row of the kernel);
- types: operands of a binary op share a dtype, conditions are bool, index
  expressions and loop bounds are i64, stores match their buffer's dtype;
- bounds: every load and store index lies in [0, size) for every value the
  loops around it allow (interval arithmetic over the loop ranges, so a
  data-dependent index must be clamped); a ``Check`` guards the values the
  clamp changed; a scratch row also for the lanes a padded loop may compute
  past its stop (``Loop.padded_to``);
- the in-place contract: a kernel that writes a buffer it also reads (the
  memory plan's in-place buffers share bytes) stores each element at the
  element it reads, so a store never runs ahead of a read of the same element.

``verify_program`` raises ``KernelVerifyError`` naming the kernel and the
statement; the lowering's tests run it on every kernel of every test model.
"""
from __future__ import annotations

from ..errors import GraphcError
from ..ir.dtypes import bool_, i64
from .intervals import bounds
from .ir import (Accumulator, Assign, Binary, Cast, Check, Const, Let, Load, Local, Loop, Program, Ref, Select, Store,
                 Unary, Var, is_comparison)
from .text import format_expr


class KernelVerifyError(GraphcError):
    """A kernel breaks an invariant of the kernel IR."""


def verify_program(program: Program) -> None:
    overlaps = _shared_bytes(program)
    for kernel in program.kernels:
        _KernelChecker(program, kernel, overlaps).check()


def _shared_bytes(program: Program) -> dict[str, set[str]]:
    """For each buffer, the other buffers whose bytes it shares (in-place arena buffers, or a
    write-back computed into the storage of a state the kernel also reads)."""
    spans = {}
    for name, buffer in program.buffers.items():
        if buffer.place == "arena":
            spans[name] = ("arena", buffer.offset, buffer.offset + buffer.nbytes)
        elif buffer.place in ("input", "state"):
            source = buffer.source
            spans[name] = (f"input {source}", 0, buffer.nbytes)
    overlaps: dict[str, set[str]] = {name: set() for name in program.buffers}
    for a, (space_a, lo_a, hi_a) in spans.items():
        for b, (space_b, lo_b, hi_b) in spans.items():
            if a != b and space_a == space_b and lo_a < hi_b and lo_b < hi_a:
                overlaps[a].add(b)
    return overlaps


class _KernelChecker:
    def __init__(self, program: Program, kernel, overlaps):
        self.program, self.kernel, self.overlaps = program, kernel, overlaps
        self.types: dict[str, object] = {}
        self.ranges: dict[str, tuple] = {}
        self.padding: dict[str, tuple] = {}      # padded loops' variables over all the lanes computed
        self.sizes = {name: b.numel for name, b in program.buffers.items()}
        self.dtypes = {name: b.dtype for name, b in program.buffers.items()}
        self.stores: dict[str, list] = {}
        self.loads: dict[str, list] = {}

    def fail(self, message: str):
        raise KernelVerifyError(f"kernel {self.kernel.name} (%{self.kernel.node}): {message}")

    def check(self) -> None:
        self.block(self.kernel.body)
        for written, indices in self.stores.items():
            for read in (written, *self.overlaps[written]):
                for index in self.loads.get(read, []):
                    if index not in indices and read in self.kernel.inputs:
                        self.fail(f"%{written} is written in place over %{read}, but %{read}[{format_expr(index)}] "
                                  f"is read at an element no store of this iteration writes")

    def block(self, body) -> None:
        saved = dict(self.types)
        for stmt in body:
            self.statement(stmt)
        self.types = saved

    def statement(self, stmt) -> None:
        if isinstance(stmt, Let):
            self.types[stmt.name] = self.expr(stmt.value)
            if self.types[stmt.name] == i64:          # an index (a split loop's variable): its bounds too
                self.ranges[stmt.name] = bounds(stmt.value, self.ranges)
        elif isinstance(stmt, Accumulator):
            self.types[stmt.name] = self.expr(stmt.init)
        elif isinstance(stmt, Local):
            self.sizes[stmt.name], self.dtypes[stmt.name] = stmt.size, stmt.dtype
        elif isinstance(stmt, Assign):
            if stmt.name not in self.types:
                self.fail(f"{stmt.name} is assigned before it is declared")
            if self.expr(stmt.value) != self.types[stmt.name]:
                self.fail(f"{stmt.name} is assigned a {stmt.value.dtype} value")
        elif isinstance(stmt, Store):
            self.access(stmt.buffer, stmt.index)
            if self.expr(stmt.value) != self.dtypes[stmt.buffer]:
                self.fail(f"a {stmt.value.dtype} value is stored into %{stmt.buffer} ({self.dtypes[stmt.buffer]})")
            if stmt.buffer in self.program.buffers:
                self.stores.setdefault(stmt.buffer, []).append(stmt.index)
        elif isinstance(stmt, Check):
            if self.expr(stmt.cond) != bool_:
                self.fail(f"check condition {format_expr(stmt.cond)} is not bool")
            if not 0 <= stmt.error < len(self.program.errors):
                self.fail(f"check names error {stmt.error}, which the program does not describe")
            self.expr(stmt.value)
        elif isinstance(stmt, Loop):
            for bound in (stmt.start, stmt.stop):
                if self.expr(bound) != i64:
                    self.fail(f"loop {stmt.var} has a bound of type {bound.dtype}")
            enclosing = self.ranges.get(stmt.var)
            self.ranges[stmt.var] = (bounds(stmt.start, self.ranges)[0], bounds(stmt.stop, self.ranges)[1] - 1)
            if stmt.padded_to:                       # the lanes a backend may compute past the stop
                self.padding[stmt.var] = (self.ranges[stmt.var][0], self.ranges[stmt.var][0] + stmt.padded_to - 1)
            outside = dict(self.types)
            self.types[stmt.var] = i64
            self.block(stmt.body)
            self.types = outside
            self.padding.pop(stmt.var, None)
            if enclosing is None:
                del self.ranges[stmt.var]
            else:
                self.ranges[stmt.var] = enclosing
        else:
            self.fail(f"{stmt!r} is not a kernel-IR statement")

    def access(self, buffer: str, index, bounded: bool = True) -> None:
        if buffer not in self.sizes:
            self.fail(f"%{buffer} is no buffer of the program")
        if self.expr(index) != i64:
            self.fail(f"%{buffer} is indexed by a {index.dtype} value")
        if not bounded:
            return
        lo, hi = bounds(index, self.ranges)
        if lo < 0 or hi >= self.sizes[buffer]:
            self.fail(f"%{buffer}[{format_expr(index)}] may reach [{lo}, {hi}], outside [0, {self.sizes[buffer]})")
        if self.padding and buffer not in self.program.buffers:
            # A scratch row is read and written in a padded loop's extra lanes too (Loop.padded_to).
            lo, hi = bounds(index, {**self.ranges, **self.padding})
            if lo < 0 or hi >= self.sizes[buffer]:
                self.fail(f"%{buffer}[{format_expr(index)}] may reach [{lo}, {hi}] in a padded loop's lanes, "
                          f"outside [0, {self.sizes[buffer]})")

    def expr(self, e):
        if isinstance(e, Const):
            return e.dtype
        if isinstance(e, (Var, Ref)):
            if e.name not in self.types:
                self.fail(f"{e.name} is used outside the block that defines it")
            return self.types[e.name]
        if isinstance(e, Load):
            # A masked load's index is the lowering's to keep in range where its mask holds
            # (padded_load builds both from the same coordinates); it may leave it elsewhere.
            self.access(e.buffer, e.index, bounded=e.mask is None)
            if e.mask is not None and self.expr(e.mask) != bool_:
                self.fail(f"the mask {format_expr(e.mask)} of a load from %{e.buffer} is not bool")
            if e.dtype != self.dtypes[e.buffer]:
                self.fail(f"%{e.buffer} holds {self.dtypes[e.buffer]} but is loaded as {e.dtype}")
            if e.buffer in self.program.buffers:
                self.loads.setdefault(e.buffer, []).append(e.index)
            return e.dtype
        if isinstance(e, Unary):
            self.expr(e.x)
            return e.dtype
        if isinstance(e, Binary):
            a, b = self.expr(e.a), self.expr(e.b)
            if a != b:
                self.fail(f"{format_expr(e)} combines {a} and {b}")
            if e.dtype != (bool_ if is_comparison(e.op) else a):
                self.fail(f"{format_expr(e)} is typed {e.dtype}")
            return e.dtype
        if isinstance(e, Select):
            if self.expr(e.cond) != bool_:
                self.fail(f"select condition {format_expr(e.cond)} is not bool")
            if self.expr(e.a) != self.expr(e.b):
                self.fail(f"{format_expr(e)} has branches of two types")
            return e.dtype
        if isinstance(e, Cast):
            self.expr(e.x)
            return e.dtype
        self.fail(f"{e!r} is not a kernel-IR expression")

