"""Kernel IR to OpenCL C: one ``__kernel`` per kernel of a program, one source per program.

Every kernel takes the same leading arguments, ``(arena, status)``, then one pointer
per graph input, state or stored constant it touches (``KernelSource.arguments``).
A buffer in the arena is ``arena + offset``, cast to its element type: the memory
plan's offsets are multiples of 64 bytes, so every cast is aligned.

**Work-items.** A kernel's outer loop and the loops nested alone inside it (the
output loops: each iteration computes its own output elements whole) become one
flat NDRange: work-item ``g`` decodes its loop variables from ``g``, the innermost
varying fastest, so neighbouring work-items touch neighbouring elements.  The
rest of the nest (reductions, a row of accumulators) runs inside the work-item
exactly as the kernel IR orders it, so results never depend on the work-group
size.  A serial loop joins the NDRange only where that is safe to see from the IR:
constant bounds, and every store it makes to a buffer indexed by its variable.

**Index arithmetic** is ``i64`` in the kernel IR; here it is ``int`` wherever that cannot
overflow: when every buffer of the program has fewer than 2**31 elements, loop variables
and the lets computed from them alone are ``int`` (a linear index never exceeds its
buffer's size), while any value loaded from memory keeps its 64 bits, and C's promotions
carry them through (a class target of 2**32 still fails its check).  64-bit index
arithmetic costs PoCL five times as much per work-item, as it does a GPU.

**Errors.** A failed ``Check`` sets ``status`` (error number + 1, then the bad
value) with an atomic compare-and-swap, so one report wins whole.  Every kernel
after the first checking one returns at once once ``status`` is set: as on the
LLVM backend, the step stops after the failing kernel, and no later kernel (nor
write-back copy) changes state.

Floats follow the reference: contraction of ``a * b + c`` into an FMA is off,
except in sums the kernel IR marks reassociable; float ``max``/``min`` propagate
NaN; float-to-integer casts truncate and saturate, NaN giving 0.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from graphc.errors import BackendError
from graphc.ir.dtypes import DType, bool_, f32, f64, i16, i32, i64, u8
from graphc.kernel.ir import (Accumulator, Assign, Binary, Cast, Check, Const, Copy, Kernel, Let, Load,
                              Local, Loop, Program, Ref, Select, Store, Unary, Var, walk_expr, walk_statements)
from graphc.kernel.schedule import outer_loop

C_TYPES = {f32: "float", f64: "double", u8: "uchar", i16: "short", i32: "int", i64: "long", bool_: "bool"}

PRELUDE = """\
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL FP_CONTRACT OFF

/* max/min that propagate NaN and order -0 below +0, as the reference does. */
inline float graphc_fmax_f32(float a, float b) { return isnan(a) ? a : isnan(b) ? b : a > b ? a : b > a ? b : signbit(a) ? b : a; }
inline float graphc_fmin_f32(float a, float b) { return isnan(a) ? a : isnan(b) ? b : a < b ? a : b < a ? b : signbit(a) ? a : b; }
inline double graphc_fmax_f64(double a, double b) { return isnan(a) ? a : isnan(b) ? b : a > b ? a : b > a ? b : signbit(a) ? b : a; }
inline double graphc_fmin_f64(double a, double b) { return isnan(a) ? a : isnan(b) ? b : a < b ? a : b < a ? b : signbit(a) ? a : b; }

/* Record a failed index check; the first one to get here wins, error and value together. */
inline void graphc_fail(__global long* status, int error, long value) {
    if (atomic_cmpxchg((volatile __global int*)status, 0, error + 1) == 0) status[1] = value;
}
"""


def c_type(dtype: DType, memory: bool = False) -> str:
    """The OpenCL C type of a value (``memory``: of an element in a buffer, where a bool is a byte)."""
    if dtype == bool_ and memory:
        return "uchar"
    try:
        return C_TYPES[dtype]
    except KeyError:
        raise BackendError(f"the OpenCL backend has no type for {dtype}") from None


@dataclass(frozen=True)
class LaunchShape:
    """How a kernel runs: ``work_items`` work-items, each computing what one iteration of the
    collapsed loops computes (one work-item for a kernel with no loop to spread)."""
    work_items: int


@dataclass(frozen=True)
class KernelSource:
    """One rendered kernel: its OpenCL C function name and text, the buffers after (arena, status),
    how it runs."""
    function: str
    text: str
    arguments: tuple[str, ...]
    launch: LaunchShape
    kernel: Kernel | None                     # None for a write-back copy
    role: str = "kernel"                      # or "prelude": the rank-0 values the kernel's work-items share


@dataclass(frozen=True)
class ProgramSource:
    """A program's kernels in OpenCL C and how to call each (the write-back copies last), and the
    bytes of its status buffer (the error word, then the preludes' values)."""
    kernels: list[KernelSource]
    status_bytes: int

    @property
    def text(self) -> str:
        """The whole OpenCL C program."""
        return PRELUDE + "\n" + "\n".join(k.text for k in self.kernels)


def render_program(program: Program, prefix: str = "") -> ProgramSource:
    """``program`` as OpenCL C, every function's name starting ``graphc_<prefix>`` (several programs
    built as one need distinct names)."""
    sources = []
    uniforms = 0
    first_check = next((i for i, k in enumerate(program.kernels) if k.has_checks), len(program.kernels))
    for i, kernel in enumerate(program.kernels):
        name = function_name(prefix + kernel.name)
        renderer = _KernelRenderer(program, kernel, name, stops_on_error=i > first_check, first_uniform=uniforms)
        sources += renderer.render()
        uniforms += len(renderer.uniforms)
    for n, copy in enumerate(program.copies):
        name = function_name(f"{prefix}copy_{n}")
        sources.append(_render_copy(program, copy, name, stops_on_error=first_check < len(program.kernels)))
    return ProgramSource(sources, 16 + 8 * uniforms)


def function_name(kernel_name: str) -> str:
    return "graphc_" + re.sub(r"\W", "_", kernel_name)


def _parameter(program: Program, name: str, index: int, written: bool) -> str:
    buffer = program.buffers[name]
    const = "" if written else "const "
    return f"__global {const}{c_type(buffer.dtype, memory=True)}* b{index}"


def _header(function: str, parameters: list[str], stops_on_error: bool) -> list[str]:
    lines = [f"__kernel void {function}(__global uchar* arena, __global long* status"
             + "".join(f", {p}" for p in parameters) + ") {"]
    if stops_on_error:           # an earlier kernel's index check failed: the step has stopped
        lines.append("    if (((volatile __global int*)status)[0] != 0) return;")
    return lines


def _render_copy(program: Program, copy: Copy, function: str, stops_on_error: bool):
    """A write-back copy as a kernel: one element per work-item."""
    source = program.buffers[copy.source]
    names = [name for name in dict.fromkeys((copy.source, copy.target)) if program.buffers[name].place != "arena"]
    parameters = [_parameter(program, name, i, name == copy.target) for i, name in enumerate(names)]
    refs = {}
    for name in (copy.source, copy.target):
        buffer = program.buffers[name]
        refs[name] = (f"((__global {c_type(buffer.dtype, memory=True)}*)(arena + {buffer.offset}))"
                      if buffer.place == "arena" else f"b{names.index(name)}")
    lines = _header(function, parameters, stops_on_error)
    lines += [f"    const long g = get_global_id(0);",
              f"    if (g < {source.numel}) {refs[copy.target]}[g] = {refs[copy.source]}[g];",
              "}"]
    return KernelSource(function, "\n".join(lines) + "\n", tuple(names), LaunchShape(max(1, source.numel)), None)


class _KernelRenderer:
    def __init__(self, program: Program, kernel: Kernel, function: str, stops_on_error: bool, first_uniform: int):
        self.program = program
        self.first_uniform = first_uniform
        self.uniforms: dict[str, int] = {}        # prelude let -> its slot after the status word
        self.kernel = kernel
        self.function = function
        self.index_type = "int" if _fits_int(program) else "long"
        self.index_names: set[str] = set()        # loop variables and lets rendered as index_type
        self.stops_on_error = stops_on_error
        self.lines: list[str] = []
        self.names: dict[str, str] = {}       # kernel-IR name (buffer, local, let, loop variable) -> C name
        self.locals: dict[str, Local] = {}
        self.reassociable = False

    def render(self) -> list[KernelSource]:
        """The kernel's function, preceded by its prelude's where it has one."""
        kernel, program = self.kernel, self.program
        used = list(dict.fromkeys((*kernel.inputs, *kernel.outputs)))
        arguments = [name for name in used if program.buffers[name].place != "arena"]
        parameters = []
        for i, name in enumerate(arguments):
            self.names[name] = f"b{i}"
            parameters.append(_parameter(program, name, i, name in kernel.outputs))
        for name in used:
            if program.buffers[name].place == "arena":
                self.names[name] = f"a{len(self.names)}"
        collapsed, rest = _collapsible(kernel)
        work_items = math.prod(loop.stop.value - loop.start.value for loop in collapsed)
        prelude = kernel.body[:-1] if collapsed else ()
        sources = []
        if prelude:
            # The values every iteration shares are computed once, by a work-item of their own, and kept
            # in the status buffer after the status word: no work-item recomputes them (an optimizer's
            # bias corrections are exps and logs), nor reads a buffer another has begun to write.
            self.open(self.function + "_prelude", parameters)
            self.statements(prelude, 1)
            for let in prelude:
                self.line(1, f"*({self.uniform(let)}) = {self.stored(let.value)};")
            self.lines.append("}")
            sources.append(KernelSource(self.function + "_prelude", "\n".join(self.lines) + "\n", tuple(arguments),
                                        LaunchShape(1), kernel, "prelude"))
        self.open(self.function, parameters)
        if collapsed:
            self.line(1, f"const {self.index_type} g = get_global_id(0);")
            self.line(1, f"if (g >= {work_items}) return;")
            for let in prelude:
                value = f"*({self.uniform(let)})"
                self.declare(let, f"({value} != 0)" if let.value.dtype == bool_ else value)
            stride = 1
            for loop in reversed(collapsed):
                extent = loop.stop.value - loop.start.value
                self.names[loop.var] = self.fresh(loop.var)
                self.index_names.add(loop.var)
                position = "g" if stride == 1 else f"g / {stride}"
                position = position if stride * extent == work_items else f"({position}) % {extent}"
                self.line(1, f"const {self.index_type} {self.names[loop.var]} = {loop.start.value} + {position};")
                stride *= extent
            self.statements(rest, 1)
        else:
            self.statements(kernel.body, 1)
        self.lines.append("}")
        sources.append(KernelSource(self.function, "\n".join(self.lines) + "\n", tuple(arguments),
                                    LaunchShape(max(1, work_items)), kernel))
        return sources

    def open(self, function: str, parameters: list[str]) -> None:
        """Start a function: its header, and a pointer to each arena buffer it uses."""
        self.lines = _header(function, parameters, self.stops_on_error)
        for name in dict.fromkeys((*self.kernel.inputs, *self.kernel.outputs)):
            buffer = self.program.buffers[name]
            if buffer.place == "arena":
                type_ = c_type(buffer.dtype, memory=True)
                self.line(1, f"__global {type_}* {self.names[name]} = (__global {type_}*)(arena + {buffer.offset});")

    def uniform(self, let: Let) -> str:
        """The address of a prelude value's slot: 8 bytes each, after the 16 of the status word."""
        slot = self.uniforms.setdefault(let.name, self.first_uniform + len(self.uniforms))
        type_ = c_type(let.value.dtype, memory=True)
        return f"(__global {type_}*)((__global uchar*)status + {16 + 8 * slot})"

    def stored(self, e) -> str:
        value = self.expr(e)
        return f"(uchar)({value})" if e.dtype == bool_ else value

    def declare(self, let: Let, value: str, depth: int = 1) -> None:
        is_index = let.value.dtype == i64 and self.is_index(let.value)      # before the name is bound
        self.names[let.name] = self.fresh(let.name)
        if is_index:
            self.index_names.add(let.name)
        self.line(depth, f"const {self.index_type if is_index else c_type(let.value.dtype)} "
                         f"{self.names[let.name]} = {value};")

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def fresh(self, name: str) -> str:
        return "v_" + re.sub(r"\W", "_", name)

    # -- statements ----------------------------------------------------------------
    def statements(self, body, depth: int) -> None:
        for stmt in body:
            self.statement(stmt, depth)

    def statement(self, stmt, depth: int) -> None:
        if isinstance(stmt, Let):
            self.declare(stmt, self.expr(stmt.value), depth)
        elif isinstance(stmt, Accumulator):
            self.names[stmt.name] = self.fresh(stmt.name)
            self.line(depth, f"{c_type(stmt.init.dtype)} {self.names[stmt.name]} = {self.expr(stmt.init)};")
        elif isinstance(stmt, Local):
            self.names[stmt.name] = self.fresh(stmt.name)
            self.locals[stmt.name] = stmt
            self.line(depth, f"{c_type(stmt.dtype, memory=True)} {self.names[stmt.name]}[{max(1, stmt.size)}];")
        elif isinstance(stmt, Assign):
            self.line(depth, f"{self.names[stmt.name]} = {self.sum_expr(stmt.value, self._reassociable(stmt.name))};")
        elif isinstance(stmt, Store):
            value = self.sum_expr(stmt.value, stmt.reassociable)
            if stmt.value.dtype == bool_:
                value = f"(uchar)({value})"
            self.line(depth, f"{self.names[stmt.buffer]}[{self.expr(stmt.index)}] = {value};")
        elif isinstance(stmt, Check):
            self.line(depth, f"if (!({self.expr(stmt.cond)})) graphc_fail(status, {stmt.error}, "
                             f"(long)({self.expr(stmt.value)}));")
        elif isinstance(stmt, Loop):
            var = self.names[stmt.var] = self.fresh(stmt.var)
            self.index_names.add(stmt.var)
            self.line(depth, f"for ({self.index_type} {var} = {self.expr(stmt.start)}; {var} < {self.expr(stmt.stop)}; "
                             f"{var}++) {{")
            self.statements(stmt.body, depth + 1)
            self.line(depth, "}")
        else:
            raise BackendError(f"the OpenCL backend cannot render the kernel statement {type(stmt).__name__} "
                               f"(kernel {self.kernel.name}, node %{self.kernel.node})")

    def is_index(self, e) -> bool:
        """Whether ``e`` is index arithmetic: loop variables, constants and lets of them, nothing loaded."""
        for x in walk_expr(e):
            if isinstance(x, (Load, Cast)) or (isinstance(x, (Var, Ref)) and x.name not in self.index_names):
                return False
        return True

    def _reassociable(self, name: str) -> bool:
        for stmt in walk_statements(self.kernel.body):
            if isinstance(stmt, Accumulator) and stmt.name == name:
                return stmt.reassociable
        return False

    def sum_expr(self, e, reassociable: bool) -> str:
        """``e``, with products added into a reassociable sum fused into FMAs."""
        self.reassociable = reassociable
        try:
            return self.expr(e)
        finally:
            self.reassociable = False

    # -- expressions -----------------------------------------------------------------
    def expr(self, e) -> str:
        if isinstance(e, Const):
            if e.dtype == i64 and self.index_type == "int" and abs(int(e.value)) < 2 ** 31:
                return str(int(e.value))           # an int: it leaves index arithmetic in 32 bits
            return constant(e.value, e.dtype)
        if isinstance(e, (Var, Ref)):
            return self.names[e.name]
        if isinstance(e, Load):
            value = f"{self.names[e.buffer]}[{self.expr(e.index)}]"
            return f"({value} != 0)" if e.dtype == bool_ else value
        if isinstance(e, Unary):
            return self.unary(e.op, self.expr(e.x), e.x.dtype)
        if isinstance(e, Binary):
            if self.reassociable and e.op == "add" and e.dtype.is_float:
                for product, other in ((e.b, e.a), (e.a, e.b)):
                    if isinstance(product, Binary) and product.op == "mul":
                        return f"fma({self.expr(product.a)}, {self.expr(product.b)}, {self.expr(other)})"
            return self.binary(e.op, self.expr(e.a), self.expr(e.b), e.a.dtype)
        if isinstance(e, Select):
            return f"({self.expr(e.cond)} ? {self.expr(e.a)} : {self.expr(e.b)})"
        if isinstance(e, Cast):
            return cast(self.expr(e.x), e.x.dtype, e.dtype)
        raise BackendError(f"the OpenCL backend cannot render the kernel expression {type(e).__name__} "
                           f"(kernel {self.kernel.name}, node %{self.kernel.node})")

    def unary(self, op: str, x: str, dtype: DType) -> str:
        if op == "not":
            return f"(!{x})" if dtype == bool_ else f"(~{x})"
        if op == "isnan":
            return f"(isnan({x}) != 0)" if dtype.is_float else "false"
        if op == "neg":
            return f"(-{x})"
        if dtype.is_float and op in ("exp", "log", "sqrt", "sin", "cos", "tanh", "trunc"):
            return f"{op}({x})"
        if op == "abs":
            if dtype.is_float:
                return f"fabs({x})"
            return f"(({c_type(dtype)})abs({x}))" if dtype.is_signed else x
        if op == "trunc" and not dtype.is_float:
            return x
        raise BackendError(f"the OpenCL backend cannot render {op} on {dtype} (kernel {self.kernel.name}, "
                           f"node %{self.kernel.node})")

    def binary(self, op: str, a: str, b: str, dtype: DType) -> str:
        symbols = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "==", "ne": "!=", "lt": "<", "le": "<=",
                   "gt": ">", "ge": ">="}
        if dtype == bool_ and op in ("and", "or", "xor", "max", "min"):
            return {"and": f"({a} && {b})", "or": f"({a} || {b})", "xor": f"({a} != {b})",
                    "max": f"({a} || {b})", "min": f"({a} && {b})"}[op]
        if op in symbols and not (op == "div" and dtype == bool_):
            return f"({a} {symbols[op]} {b})"
        if dtype.is_float:
            if op == "rem":
                return f"fmod({a}, {b})"
            if op == "pow":
                return f"pow({a}, {b})"
            if op in ("max", "min"):
                return f"graphc_f{op}_{dtype.name}({a}, {b})"
        else:
            if op == "rem":
                return f"({a} % {b})"
            if op in ("max", "min"):          # not the builtins: an int and a long may meet here
                return f"({a} {'>' if op == 'max' else '<'} {b} ? {a} : {b})"
            if op in ("and", "or", "xor"):
                return f"({a} {dict(zip(('and', 'or', 'xor'), '&|^'))[op]} {b})"
            if op == "shl":
                return f"({a} << {b})"
            if op == "lshr":
                type_ = c_type(dtype)
                unsigned = type_ if type_.startswith("u") else "u" + type_
                return f"(({type_})(({unsigned}){a} >> {b}))"
        raise BackendError(f"the OpenCL backend cannot render {op} on {dtype} (kernel {self.kernel.name}, "
                           f"node %{self.kernel.node})")


def constant(value, dtype: DType) -> str:
    if dtype == bool_:
        return "true" if value else "false"
    if dtype.is_float:
        value = float(value)
        suffix = "f" if dtype == f32 else ""
        type_ = c_type(dtype)
        if math.isnan(value):
            return f"(({type_})NAN)"
        if math.isinf(value):
            return f"(({type_})INFINITY)" if value > 0 else f"(-({type_})INFINITY)"
        return f"{value!r}{suffix}"
    value = int(value)
    if dtype == i64 and value == -2 ** 63:
        return "(-9223372036854775807L - 1L)"
    if dtype == i64:
        return f"{value}L"
    return str(value) if dtype == i32 else f"(({c_type(dtype)}){value})"


def cast(x: str, source: DType, target: DType) -> str:
    if source == target:
        return x
    if target == bool_:
        return f"({x} != 0)"
    if source.is_float and not target.is_float:
        # Truncate toward zero through long, saturating (NaN gives 0), then wrap to the target.
        wide = f"convert_long_sat_rtz({x})"
        return wide if target == i64 else f"(({c_type(target)}){wide})"
    return f"(({c_type(target)}){x})"


def _fits_int(program: Program) -> bool:
    """Whether every index of ``program`` fits in an int: every buffer and scratch row has fewer than
    2**31 elements (the arena fewer bytes)."""
    sizes = [program.arena_bytes, *(b.numel for b in program.buffers.values())]
    sizes += [s.size for k in program.kernels for s in walk_statements(k.body) if isinstance(s, Local)]
    return max(sizes, default=0) < 2 ** 31


# -- which loops become the NDRange ---------------------------------------------------------

def _collapsible(kernel: Kernel) -> tuple[list[Loop], tuple]:
    """The kernel's outer loop and the output loops nested alone inside it that can run as
    work-items, and the body each work-item runs; ([], body) when none can."""
    loop = outer_loop(kernel)
    collapsed: list[Loop] = []
    writes_what_it_reads = bool(set(kernel.outputs) & set(kernel.inputs))
    while loop is not None and isinstance(loop.start, Const) and isinstance(loop.stop, Const):
        if loop.kind != "parallel" and (writes_what_it_reads or not _stores_depend_on(loop)):
            break
        collapsed.append(loop)
        body = loop.body
        loop = body[0] if len(body) == 1 and isinstance(body[0], Loop) else None
    return collapsed, (collapsed[-1].body if collapsed else kernel.body)


def _stores_depend_on(loop: Loop) -> bool:
    """Whether every store to a buffer inside ``loop`` has an index that varies with its
    variable (directly or through lets): then no two iterations write one element."""
    depends: dict[str, bool] = {loop.var: True}

    def varies(e) -> bool:
        return any(isinstance(x, (Var, Ref)) and depends.get(x.name, False) for x in walk_expr(e))

    local_names = {s.name for s in walk_statements(loop.body) if isinstance(s, Local)}
    for stmt in walk_statements(loop.body):
        if isinstance(stmt, Let):
            depends[stmt.name] = varies(stmt.value)
        elif isinstance(stmt, Loop):
            depends[stmt.var] = varies(stmt.start) or varies(stmt.stop)
        elif isinstance(stmt, Store) and stmt.buffer not in local_names and not varies(stmt.index):
            return False
    return True

