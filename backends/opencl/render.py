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

**Vector code.**  On a device that prefers vectors (a CPU: PoCL), a vectorized loop whose
lanes do float arithmetic stays inside the work-item as OpenCL vector code (``float16``)
rather than joining the NDRange: a row that hangs over a window's padding is then one
vector load and a select (``graphc_masked_vload``), where a work-item per element made
PoCL read it lane by lane (ResNet's unfolds: 24.9 -> 5.4 ms).  Rows of widths OpenCL has
no vector for run in chunks it has (28: 16 + 8 + 4), lanes stored through a permute are
scattered from the vector, and masks (window bounds, float comparisons, isnan, logic on
them) are integer vectors as wide as the values they select.  A GPU, whose work-items
are its lanes, gets a work-item per element.  A serial loop that only adds terms to sums
the kernel IR lets a backend reorder keeps a vector of partial sums per sum, as many
lanes as the device prefers (none on a GPU).

**Work-group reductions.**  Where a kernel's outputs are too few to fill the device
and its reductions are long, a work-group computes each output instead, its
work-items sharing the reduction through local memory in a fixed order
(``groups.py``): again the same result whatever the work-group size.

**Staged tiles.**  On a device with local memory of its own (a GPU), a matmul's register
tiles are computed by work-groups that copy the operand values their work-items share
into local memory, a chunk of reduction steps at a time (``tiles.py``).

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
from dataclasses import dataclass, field, replace

from graphc.errors import BackendError
from graphc.ir.dtypes import DType, bool_, f32, f64, i16, i32, i64, u8
from graphc.kernel.ir import (Accumulator, Assign, Binary, Cast, Check, Const, Copy, Kernel, Let, Load,
                              Local, Loop, Program, Ref, Select, Store, Unary, Var, statement_exprs, walk_expr,
                              walk_statements)
from graphc.kernel.schedule import outer_loop

from .groups import LEFT, RIGHT, DeviceLimits, GroupReduction, plan_group_reductions
from .tiles import LOCAL_IDS, StagedTile, stage_tiles

STATEMENTS = (Let, Accumulator, Local, Assign, Store, Check, Loop)
C_TYPES = {f32: "float", f64: "double", u8: "uchar", i16: "short", i32: "int", i64: "long", bool_: "bool"}

PRELUDE = """\
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL FP_CONTRACT OFF

/* max/min that propagate NaN and order -0 below +0, as the reference does. */
inline float graphc_fmax_f32(float a, float b) { return isnan(a) ? a : isnan(b) ? b : a > b ? a : b > a ? b : signbit(a) ? b : a; }
inline float graphc_fmin_f32(float a, float b) { return isnan(a) ? a : isnan(b) ? b : a < b ? a : b < a ? b : signbit(a) ? a : b; }
inline double graphc_fmax_f64(double a, double b) { return isnan(a) ? a : isnan(b) ? b : a > b ? a : b > a ? b : signbit(a) ? b : a; }
inline double graphc_fmin_f64(double a, double b) { return isnan(a) ? a : isnan(b) ? b : a < b ? a : b < a ? b : signbit(a) ? a : b; }

/* The same, lane by lane, for vectors (graphc_fmax_float16): the later selects take precedence. */
#define GRAPHC_VECTOR_MAX_MIN(T) \
inline T graphc_fmax_##T(T a, T b) { \
    T r = select(a, b, signbit(a)); r = select(r, b, b > a); r = select(r, a, a > b); \
    r = select(r, b, isnan(b)); return select(r, a, isnan(a)); } \
inline T graphc_fmin_##T(T a, T b) { \
    T r = select(b, a, signbit(a)); r = select(r, b, b < a); r = select(r, a, a < b); \
    r = select(r, b, isnan(b)); return select(r, a, isnan(a)); }
GRAPHC_VECTOR_MAX_MIN(float2) GRAPHC_VECTOR_MAX_MIN(float3) GRAPHC_VECTOR_MAX_MIN(float4)
GRAPHC_VECTOR_MAX_MIN(float8) GRAPHC_VECTOR_MAX_MIN(float16)
GRAPHC_VECTOR_MAX_MIN(double2) GRAPHC_VECTOR_MAX_MIN(double3) GRAPHC_VECTOR_MAX_MIN(double4)
GRAPHC_VECTOR_MAX_MIN(double8) GRAPHC_VECTOR_MAX_MIN(double16)

/* A masked vector load: lane k is p[base + k] where mask m sets it, else 0.  One vector load
   where all the lanes lie inside the buffer's n elements (a lane outside the mask then reads a
   neighbour, which the select drops: the padded row of a window), else lane by lane, reading
   only the lanes the mask sets (the buffer's first and last rows). */
#define GRAPHC_MASKED_VLOAD(T, M, W) \
inline T##W graphc_masked_vload##W##_##T(M##W m, long base, long n, const __global T* p) { \
    if (base >= 0 && base + W <= n) return select((T##W)(0), vload##W(0, p + base), m); \
    T lanes[W]; M mask[W]; vstore##W(m, 0, mask); \
    for (int k = 0; k < W; k++) lanes[k] = mask[k] ? p[base + k] : (T)0; \
    return vload##W(0, lanes); }
GRAPHC_MASKED_VLOAD(float, int, 2) GRAPHC_MASKED_VLOAD(float, int, 3) GRAPHC_MASKED_VLOAD(float, int, 4)
GRAPHC_MASKED_VLOAD(float, int, 8) GRAPHC_MASKED_VLOAD(float, int, 16)
GRAPHC_MASKED_VLOAD(double, long, 2) GRAPHC_MASKED_VLOAD(double, long, 3) GRAPHC_MASKED_VLOAD(double, long, 4)
GRAPHC_MASKED_VLOAD(double, long, 8) GRAPHC_MASKED_VLOAD(double, long, 16)

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
    """How a kernel runs: a 2-D grid of ``rows`` x ``columns`` work-items, each computing what one
    iteration of the collapsed loops computes (one work-item for a kernel with no loop to spread).
    Dimension 0 is the innermost loop, straight from ``get_global_id(0)``: neighbouring work-items
    then touch neighbouring elements, and a CPU device vectorizes across them (PoCL ran im2col 4x
    faster so than with every loop decoded from one flat id).

    ``group``: a work-group per output (per column and row), of as many work-items as the
    runtime chooses up to ``group`` (those sharing its reductions' folds); 0: a work-item per
    output, in groups the runtime shapes.  ``tile``: the work-group shape a kernel staging
    through local memory was written for (it divides the grid)."""
    columns: int
    rows: int = 1
    group: int = 0
    tile: tuple[int, int] | None = None


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


def render_program(program: Program, limits: DeviceLimits, prefix: str = "") -> ProgramSource:
    """``program`` as OpenCL C for a device of ``limits``, every function's name starting
    ``graphc_<prefix>`` (several programs built as one need distinct names)."""
    sources = []
    uniforms = 0
    first_check = next((i for i, k in enumerate(program.kernels) if k.has_checks), len(program.kernels))
    for i, kernel in enumerate(program.kernels):
        name = function_name(prefix + kernel.name)
        renderer = _KernelRenderer(program, kernel, name, limits, stops_on_error=i > first_check,
                                   first_uniform=uniforms)
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


def _header(function: str, parameters: list[str], stops_on_error: bool, grouped: bool = False,
            tile: tuple[int, int] | None = None) -> list[str]:
    """A kernel function's first lines; ``grouped``: its work-groups meet at barriers, so they stop
    as a whole, on the status their first work-item saw (a check failing in this very kernel
    may set it while others start); ``tile``: the work-group shape it requires."""
    required = f"__attribute__((reqd_work_group_size({tile[0]}, {tile[1]}, 1))) " if tile else ""
    lines = [f"__kernel {required}void {function}(__global uchar* arena, __global long* status"
             + "".join(f", {p}" for p in parameters) + ") {"]
    if stops_on_error and grouped:
        lines += ["    __local int stopped;",
                  "    if (get_local_id(0) == 0 && get_local_id(1) == 0) stopped = ((volatile __global int*)status)[0];",
                  "    barrier(CLK_LOCAL_MEM_FENCE);",
                  "    if (stopped != 0) return;"]
    elif stops_on_error:         # an earlier kernel's index check failed: the step has stopped
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
    lines += ["    const long g = get_global_id(0);",
              f"    if (g < {source.numel}) {refs[copy.target]}[g] = {refs[copy.source]}[g];",
              "}"]
    return KernelSource(function, "\n".join(lines) + "\n", tuple(names), LaunchShape(max(1, source.numel)), None)


class _KernelRenderer:
    def __init__(self, program: Program, kernel: Kernel, function: str, limits: DeviceLimits, stops_on_error: bool,
                 first_uniform: int):
        self.program = program
        self.limits = limits
        self.groups: dict[int, GroupReduction] = {}       # the reduction nests work-groups compute, by loop id
        self.staged: dict[int, StagedTile] = {}           # the tiles' reduction loops staged, by loop id
        self.grid = None                                  # (inner loop, outer loops, rows) of the NDRange
        self.first_uniform = first_uniform
        self.uniforms: dict[str, int] = {}        # prelude let -> its slot after the status word
        self.kernel = kernel
        self.function = function
        self.index_type = "int" if _fits_int(program) else "long"
        self.index_names: set[str] = set()        # loop variables and lets rendered as index_type
        for stmt in walk_statements(kernel.body):   # a statement kind added to the IR since: say so, loudly
            if not isinstance(stmt, STATEMENTS):
                raise BackendError(f"the OpenCL backend cannot render the kernel statement {type(stmt).__name__} "
                                   f"(kernel {kernel.name}, node %{kernel.node})")
        kernel = self.kernel = _without_aliases(kernel)
        self.vectors = vector_plan(kernel, limits.float_vector_width)
        scratch = [s for s in walk_statements(kernel.body) if isinstance(s, Local)]
        self.local_sizes = {s.name: s.size for s in scratch}
        self.local_dtypes = {s.name: s.dtype for s in scratch}
        self.stops_on_error = stops_on_error
        self.lines: list[str] = []
        self.names: dict[str, str] = {}       # kernel-IR name (buffer, local, let, loop variable) -> C name
        self.reassociable = False
        self.lane = None                          # (loop, width, varying names) inside a vector loop
        self.mask_type = "int"                    # the integers of that loop's masks (see _mask_type)

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
        collapsed, rest = _collapsible(kernel, self.vectors.loops if limits_prefer_vectors(self.limits) else {})
        work_items = math.prod(loop.stop.value - loop.start.value for loop in collapsed)
        prelude = kernel.body[:-1] if collapsed else ()
        self.groups = plan_group_reductions(rest, work_items, self.limits)
        group = max((plan.partials for plan in self.groups.values()), default=0)
        rest, self.staged = stage_tiles(collapsed, rest, self.limits)
        tile = next(iter(self.staged.values())).group if self.staged else None
        if self.staged:
            self.vectors = vector_plan(replace(kernel, body=tuple(rest)), self.limits.float_vector_width)
            self.index_names.update(LOCAL_IDS)
            self.names.update({name: name for name in LOCAL_IDS})
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
        self.open(self.function, parameters, tile)
        launch = LaunchShape(1, 1, group)
        if self.groups:
            self.line(1, "const int lid = get_local_id(0), lsize = get_local_size(0);")
        if self.staged:
            self.line(1, "const int l0 = get_local_id(0), l1 = get_local_id(1);")
        if collapsed:
            *outer, inner = collapsed
            columns = _width(inner)
            rows = work_items // columns if columns else 0
            self.grid = (inner, outer, rows)
            launch = LaunchShape(max(1, columns), max(1, rows), group, tile)    # an empty tensor: one idle work-item
            index = self.index_type
            first = "get_group_id(0)" if self.groups else "get_global_id(0)"
            self.line(1, f"const {index} g0 = {first}, g1 = get_global_id(1);")
            self.line(1, f"if (g0 >= {columns} || g1 >= {rows}) return;")       # a whole group or none
            for let in prelude:
                value = f"*({self.uniform(let)})"
                self.declare(let, f"({value} != 0)" if let.value.dtype == bool_ else value)
            for loop, position in [(inner, "g0"), *self.decode(outer, "g1", rows)]:
                self.names[loop.var] = self.fresh(loop.var)
                self.index_names.add(loop.var)
                self.line(1, f"const {index} {self.names[loop.var]} = {loop.start.value} + {position};")
            self.statements(rest, 1)
        else:
            self.statements(kernel.body, 1)
        self.lines.append("}")
        sources.append(KernelSource(self.function, "\n".join(self.lines) + "\n", tuple(arguments), launch, kernel))
        return sources

    @staticmethod
    def decode(loops: list[Loop], flat: str, total: int) -> list[tuple[Loop, str]]:
        """Each of ``loops``' positions in the flat id ``flat`` (the innermost varying fastest)."""
        positions, stride = [], 1
        for loop in reversed(loops):
            extent = _width(loop)
            position = flat if stride == 1 else f"{flat} / {stride}"
            positions.append((loop, position if stride * extent == total else f"({position}) % {extent}"))
            stride *= extent
        return positions

    def open(self, function: str, parameters: list[str], tile: tuple[int, int] | None = None) -> None:
        """Start a function: its header, its local memory, and a pointer to each arena buffer it uses."""
        self.lines = _header(function, parameters, self.stops_on_error, bool(self.groups or self.staged), tile)
        for plan in self.groups.values():
            for fold in plan.folds:
                self.line(1, f"__local {c_type(fold.dtype, memory=True)} {self.partials(fold)}[{plan.partials}];")
        for plan in self.staged.values():
            for load in plan.loads:
                self.names[load.name] = load.name
                self.line(1, f"__local {c_type(load.dtype, memory=True)} {load.name}[{load.size}];")
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
            if stmt.name in self.vectors.rows:        # a register tile: an array of vectors
                self.line(depth, f"{self.row_type(stmt.name)} {self.names[stmt.name]}[{self.row_count(stmt.name)}];")
            else:
                self.line(depth, f"{c_type(stmt.dtype, memory=True)} {self.names[stmt.name]}[{max(1, stmt.size)}];")
        elif isinstance(stmt, Assign):
            self.line(depth, f"{self.names[stmt.name]} = {self.sum_expr(stmt.value, self._reassociable(stmt.name))};")
        elif isinstance(stmt, Store):
            value = self.sum_expr(stmt.value, stmt.reassociable)
            if stmt.value.dtype == bool_:
                value = f"(uchar)({value})"
            guard = "if (lid == 0) " if self.groups and depth == 1 else ""     # a work-group's output: stored once
            self.line(depth, f"{guard}{self.names[stmt.buffer]}[{self.expr(stmt.index)}] = {value};")
        elif isinstance(stmt, Check):
            self.line(depth, f"if (!({self.expr(stmt.cond)})) graphc_fail(status, {stmt.error}, "
                             f"(long)({self.expr(stmt.value)}));")
        elif isinstance(stmt, Loop) and id(stmt) in self.groups:
            self.group_reduction(self.groups[id(stmt)], depth)
        elif isinstance(stmt, Loop) and id(stmt) in self.staged:
            self.staged_loop(self.staged[id(stmt)], depth)
        elif isinstance(stmt, Loop) and id(stmt) in self.vectors.loops:
            self.vector_loop(stmt, depth)
        elif isinstance(stmt, Loop) and id(stmt) in self.vectors.chains:
            self.tile_chains(stmt, self.vectors.chains[id(stmt)], depth)
        elif isinstance(stmt, Loop) and id(stmt) in self.vectors.sums:
            self.vector_sum(stmt, self.vectors.sums[id(stmt)], depth)
        elif isinstance(stmt, Loop):
            var = self.names[stmt.var] = self.fresh(stmt.var)
            self.index_names.add(stmt.var)
            if stmt.kind in ("unrolled", "vectorized"):      # a register tile: its indices become constants
                self.line(depth, "#pragma unroll")
            self.line(depth, f"for ({self.index_type} {var} = {self.expr(stmt.start)}; {var} < {self.expr(stmt.stop)}; "
                             f"{var}++) {{")
            self.statements(stmt.body, depth + 1)
            self.line(depth, "}")
        else:
            raise BackendError(f"the OpenCL backend cannot render the kernel statement {type(stmt).__name__} "
                               f"(kernel {self.kernel.name}, node %{self.kernel.node})")

    # -- work-group reductions -------------------------------------------------------------
    def partials(self, fold) -> str:
        """The local array of a fold's partial results."""
        return self.fresh(fold.accumulator) + "_partials"

    def group_reduction(self, plan: GroupReduction, depth: int) -> None:
        """A reduction nest shared by a work-group (see groups.py): each work-item folds its share of
        the ``partials`` folds into local memory, then the folds combine in a fixed tree."""
        index, count = self.index_type, plan.partials
        self.line(depth, f"for (int p = lid; p < {count}; p += lsize) {{")
        outer = {fold.accumulator: self.names[fold.accumulator] for fold in plan.folds}
        for fold in plan.folds:          # this fold's own accumulator, hiding the output's
            self.line(depth + 1, f"{c_type(fold.dtype)} {outer[fold.accumulator]}_fold = {self.expr(fold.init)};")
            self.names[fold.accumulator] = outer[fold.accumulator] + "_fold"
        self.line(depth + 1, f"for ({index} f = p; f < {plan.length}; f += {count}) {{")
        stride = plan.length
        for loop in plan.loops:          # each loop's variable from the flat element number
            extent = _width(loop)
            stride //= max(1, extent)
            position = "f" if stride == 1 else f"f / {stride}"
            if loop is not plan.loops[0]:
                position = f"({position}) % {extent}"
            self.names[loop.var] = self.fresh(loop.var)
            self.index_names.add(loop.var)
            self.line(depth + 2, f"const {index} {self.names[loop.var]} = {loop.start.value} + {position};")
        self.statements(plan.loops[-1].body, depth + 2)
        self.line(depth + 1, "}")
        for fold in plan.folds:
            self.line(depth + 1, f"{self.partials(fold)}[p] = {self.names[fold.accumulator]};")
            self.names[fold.accumulator] = outer[fold.accumulator]
        self.line(depth, "}")
        self.line(depth, "barrier(CLK_LOCAL_MEM_FENCE);")
        self.line(depth, f"for (int gap = {count // 2}; gap > 0; gap /= 2) {{")
        self.line(depth + 1, "for (int p = lid; p < gap; p += lsize) {")
        for fold in plan.folds:
            partials = self.partials(fold)
            self.names[LEFT], self.names[RIGHT] = f"{partials}[p]", f"{partials}[p + gap]"
            self.line(depth + 2, f"{partials}[p] = {self.expr(fold.combine)};")
        self.line(depth + 1, "}")
        self.line(depth + 1, "barrier(CLK_LOCAL_MEM_FENCE);")
        self.line(depth, "}")
        for fold in plan.folds:
            self.line(depth, f"{outer[fold.accumulator]} = {self.partials(fold)}[0];")

    # -- staged tiles ----------------------------------------------------------------------
    def staged_loop(self, plan: StagedTile, depth: int) -> None:
        """A tile's reduction loop chunk by chunk: the group copies what its work-items share of a
        chunk into local memory, then each work-item runs the chunk's steps (see tiles.py)."""
        loop, index = plan.loop, self.index_type
        chunk = self.names[loop.var] = self.fresh(loop.var)
        self.index_names.add(loop.var)
        self.line(depth, f"for ({index} {chunk} = 0; {chunk} < {loop.stop.value}; {chunk}++) {{")
        self.line(depth + 1, "barrier(CLK_LOCAL_MEM_FENCE);")     # every work-item done with the last chunk
        for load in plan.loads:
            self.staged_copy(plan, load, chunk, depth + 1)
        self.line(depth + 1, "barrier(CLK_LOCAL_MEM_FENCE);")
        self.statements(loop.body, depth + 1)
        self.line(depth, "}")

    def staged_copy(self, plan: StagedTile, load, chunk: str, depth: int) -> None:
        """The group's work-items copy a chunk of ``load``'s values, element ``e`` of the local array
        by work-item ``e % group size``; the loops' variables decoded from ``e``'s place in it."""
        g0, g1 = plan.group
        inner, outer, rows = self.grid
        self.line(depth, f"for (int e = l1 * {g0} + l0; e < {load.size}; e += {g0 * g1}) {{")
        extents = [("step", plan.chunk)] + [(LOCAL_IDS[d], plan.group[d]) for d in load.group_dims] + \
            [(var, n) for var, n in load.tile_vars]
        saved = dict(self.names)
        stride = load.size
        for name, extent in extents:
            stride //= extent
            position = "e" if stride == 1 else f"e / {stride}"
            if name != "step":
                position = f"({position}) % {extent}"
            self.line(depth + 1, f"const int c_{name} = {position};")
            self.names[name] = f"c_{name}"
        step = f"({chunk} * {plan.chunk} + c_step)"
        self.names[plan.variable] = step
        local = {d: f"c_{LOCAL_IDS[d]}" if d in load.group_dims else "0" for d in (0, 1)}
        self.names[inner.var] = f"({inner.start.value} + get_group_id(0) * {g0} + {local[0]})"
        self.line(depth + 1, f"const int c_g1 = get_group_id(1) * {g1} + {local[1]};")
        for loop, position in self.decode(outer, "c_g1", rows):
            self.names[loop.var] = f"({loop.start.value} + {position})"
        value = f"{self.names[load.buffer]}[{self.expr(load.index)}]"
        self.line(depth + 1, f"if ({step} < {plan.length}) {load.name}[e] = {value};")
        self.names = saved
        self.line(depth, "}")

    # -- vector loops --------------------------------------------------------------------
    def vector_loop(self, loop: Loop, depth: int) -> None:
        """A vectorized loop as blocks of vector code, one per chunk of its lanes that OpenCL has a
        vector type for (5 lanes: 4, then 1 as scalar code)."""
        first = loop.start.value
        for width in _chunks(_width(loop)):
            chunk = replace(loop, start=Const(first, loop.start.dtype), stop=Const(first + width, loop.stop.dtype))
            if width == 1:
                self.names[loop.var] = str(first)
                self.index_names.add(loop.var)
                self.line(depth, "{")
                self.statements(loop.body, depth + 1)
                self.line(depth, "}")
            else:
                self.vector_chunk(chunk, depth)
            first += width

    def vector_chunk(self, loop: Loop, depth: int) -> None:
        """Lanes of a vectorized loop as one block of vector code: what varies across them is a vector
        (``float16``), loaded and stored whole where consecutive, gathered where not."""
        width = _width(loop)
        self.lane = (loop, width, {loop.var})
        self.mask_type = _mask_type(loop)
        self.line(depth, "{")
        for stmt in loop.body:
            varying = self.lane[2]
            if isinstance(stmt, Let):
                self.vector_let(stmt, depth + 1)
                continue
            value = self.vexpr(stmt.value, stmt.reassociable)
            if not _varies(stmt.value, varying):
                value = f"({c_type(stmt.value.dtype)}{width})({value})"
            base = self.lane_base(stmt.index)
            if stmt.buffer in self.vectors.rows:
                self.row_store(stmt.buffer, base, width, value, depth + 1)
            elif _lane_coefficient(stmt.index, loop.var, varying) == 1:
                self.line(depth + 1, f"vstore{width}({value}, 0, {self.names[stmt.buffer]} + ({base}));")
            else:                             # scattered lane by lane, in the lanes' order
                lanes = self.fresh(f"{stmt.buffer}_lanes")
                self.line(depth + 1, f"{{ const {c_type(stmt.value.dtype)}{width} {lanes} = {value};")
                for k in range(width):
                    index = self.expr(_substitute(stmt.index, loop.var, self.lane_value(k)))
                    self.line(depth + 2, f"{self.names[stmt.buffer]}[{index}] = {lanes}.s{k:x};")
                self.line(depth + 1, "}")
        self.line(depth, "}")
        self.lane = None

    def vector_let(self, stmt: Let, depth: int) -> None:
        """A let inside vector code: a vector where it differs from lane to lane."""
        _, width, varying = self.lane
        if not _varies(stmt.value, varying):
            self.statement(stmt, depth)
            return
        self.names[stmt.name] = self.fresh(stmt.name)
        value = stmt.value
        type_ = self.mask_type if value.dtype == bool_ else c_type(value.dtype)
        self.line(depth, f"const {type_}{width} {self.names[stmt.name]} = {self.vexpr(value)};")
        varying.add(stmt.name)

    def vector_sum(self, loop: Loop, width: int, depth: int) -> None:
        """A loop adding terms to reorderable sums, ``width`` iterations at a time: each sum keeps a
        vector of partial sums (lane k: iterations k, k + width, ...), added up in a fixed tree when
        the loop ends; the last iterations, fewer than ``width``, run one by one."""
        var = self.names[loop.var] = self.fresh(loop.var)
        self.index_names.add(loop.var)
        start, stop = loop.start.value, loop.stop.value
        end = start + (stop - start) // width * width
        assigns = [stmt for stmt in loop.body if isinstance(stmt, Assign)]
        self.line(depth, "{")
        for a in assigns:
            type_ = c_type(a.value.dtype)
            self.line(depth + 1, f"{type_}{width} {self.names[a.name]}_lanes = ({type_}{width})(0);")
        self.line(depth + 1, f"for ({self.index_type} {var} = {start}; {var} < {end}; {var} += {width}) {{")
        self.lane = (replace(loop, start=Var(loop.var), stop=Const(width, i64)), width, {loop.var})
        self.mask_type = _mask_type(loop)
        for stmt in loop.body:
            if isinstance(stmt, Let):
                self.vector_let(stmt, depth + 2)
                continue
            term, partials = _sum_term(stmt, set()), f"{self.names[stmt.name]}_lanes"
            if isinstance(term, Binary) and term.op == "mul":
                self.line(depth + 2, f"{partials} = fma({self.vector_of(term.a)}, {self.vector_of(term.b)}, {partials});")
            else:
                self.line(depth + 2, f"{partials} = {partials} + {self.vector_of(term)};")
        self.lane = None
        self.line(depth + 1, "}")
        for a in assigns:
            partials, lanes = f"{self.names[a.name]}_lanes", width
            while lanes > 2:
                lanes //= 2
                self.line(depth + 1, f"const {c_type(a.value.dtype)}{lanes} {partials}{lanes} = "
                                     f"{partials}.lo + {partials}.hi;")
                partials = f"{partials}{lanes}"
            self.line(depth + 1, f"{self.names[a.name]} = {self.names[a.name]} + ({partials}.x + {partials}.y);")
        if end < stop:
            self.line(depth + 1, f"for ({self.index_type} {var} = {end}; {var} < {stop}; {var}++) {{")
            self.statements(loop.body, depth + 2)
            self.line(depth + 1, "}")
        self.line(depth, "}")

    def tile_chains(self, loop: Loop, copies: int, depth: int) -> None:
        """A register tile's reduction loop adding iteration ``r`` to copy ``r % copies`` of the tile's
        rows (copy 0 the rows themselves), so ``copies`` times as many FMAs are independent; the
        copies are added to the rows in order when the loop ends, after the last iterations (fewer
        than ``copies``) have added to the rows one by one."""
        rows = _tile_sums(loop, self.vectors.loops, self.vectors.rows)
        own = {name: self.names[name] for name in rows}
        var = self.fresh(loop.var)
        self.index_names.add(loop.var)
        start, stop = loop.start.value, loop.stop.value
        end = start + (stop - start) // copies * copies
        for name in rows:
            type_, count = self.row_type(name), self.row_count(name)
            for k in range(1, copies):
                self.line(depth, f"{type_} {own[name]}_{k}[{count}];")
                self.line(depth, f"for (int j = 0; j < {count}; j++) {own[name]}_{k}[j] = ({type_})(0);")
        self.line(depth, f"for ({self.index_type} {var} = {start}; {var} < {end}; {var} += {copies}) {{")
        for k in range(copies):
            self.names[loop.var] = var if k == 0 else f"({var} + {k})"
            self.names.update({name: f"{c}_{k}" if k else c for name, c in own.items()})
            self.line(depth + 1, "{")
            self.statements(loop.body, depth + 2)
            self.line(depth + 1, "}")
        self.line(depth, "}")
        self.names.update(own)
        self.names[loop.var] = var
        if end < stop:
            self.line(depth, f"for ({self.index_type} {var} = {end}; {var} < {stop}; {var}++) {{")
            self.statements(loop.body, depth + 1)
            self.line(depth, "}")
        for name in rows:
            count = self.row_count(name)
            total = " + ".join([f"{own[name]}[j]"] + [f"{own[name]}_{k}[j]" for k in range(1, copies)])
            self.line(depth, f"for (int j = 0; j < {count}; j++) {own[name]}[j] = {total};")

    # -- register tiles: scratch rows as arrays of vectors of their unit's width -------------
    def row_type(self, name: str) -> str:
        unit = self.vectors.rows[name]
        return c_type(self.local_dtypes[name]) + (str(unit) if unit > 1 else "")

    def row_count(self, name: str) -> int:
        return max(1, -(-self.local_sizes[name] // self.vectors.rows[name]))

    def row_load(self, name: str, base: str, width: int) -> str:
        """``width`` lanes of row ``name`` from element ``base`` (a multiple of the row's unit)."""
        unit = self.vectors.rows[name]
        first = f"({base}) / {unit}" if unit > 1 else f"({base})"
        if unit == width:
            return f"{self.names[name]}[{first}]"
        parts = ", ".join(f"{self.names[name]}[{first} + {j}]" for j in range(width // unit))
        return f"(({c_type(self.local_dtypes[name])}{width})({parts}))"

    def row_store(self, name: str, base: str, width: int, value: str, depth: int) -> None:
        unit = self.vectors.rows[name]
        first = f"({base}) / {unit}" if unit > 1 else f"({base})"
        if unit == width:
            self.line(depth, f"{self.names[name]}[{first}] = {value};")
            return
        self.line(depth, f"{{ const {c_type(self.local_dtypes[name])}{width} row_lanes = {value};")
        for j in range(width // unit):
            lanes = "".join(f"{k:x}" for k in range(j * unit, (j + 1) * unit))
            self.line(depth + 1, f"{self.names[name]}[{first} + {j}] = row_lanes.s{lanes};")
        self.line(depth, "}")

    def lane_value(self, k: int):
        """The lane variable's value in lane ``k``, as an expression."""
        start = self.lane[0].start
        return Const(start.value + k, start.dtype) if isinstance(start, Const) else Binary("add", start, Const(k, i64), i64)

    def lane_base(self, index) -> str:
        """``index`` at the loop's first lane."""
        loop = self.lane[0]
        return self.expr(_substitute(index, loop.var, loop.start))

    def vexpr(self, e, reassociable: bool = False) -> str:
        loop, width, varying = self.lane
        if not _varies(e, varying):
            return self.expr(e)
        if isinstance(e, (Var, Ref)):
            return self.names[e.name]
        if isinstance(e, Load):
            type_ = c_type(e.dtype)
            if _lane_coefficient(e.index, loop.var, varying) == 1:
                base = self.lane_base(e.index)
                if e.buffer in self.vectors.rows:
                    return self.row_load(e.buffer, base, width)
                if e.mask is None:
                    return f"vload{width}(0, {self.names[e.buffer]} + ({base}))"
                if e.buffer in self.program.buffers and e.dtype in MASK_TYPES and _lane_mask_ok(e.mask, loop.var):
                    return (f"graphc_masked_vload{width}_{type_}({self.lane_mask(e.mask, MASK_TYPES[e.dtype])}, "
                            f"{base}, {self.program.buffers[e.buffer].numel}, {self.names[e.buffer]})")
            lanes = [self.expr(_substitute(e, loop.var, self.lane_value(k))) for k in range(width)]
            return f"(({type_}{width})({', '.join(lanes)}))"
        if e.dtype == bool_:
            return self.vmask(e)
        if isinstance(e, Unary) and e.op == "bitcast":
            return f"as_{c_type(e.dtype)}{width}({self.vexpr(e.x)})"
        if isinstance(e, Unary):
            return f"(-{self.vexpr(e.x)})" if e.op == "neg" else f"{VECTOR_FUNCTIONS[e.op]}({self.vexpr(e.x)})"
        if isinstance(e, Cast):
            return f"convert_{c_type(e.dtype)}{width}({self.vexpr(e.x)})"
        if isinstance(e, Binary) and e.dtype in VECTOR_INTEGERS:
            if e.op == "lshr":
                type_ = f"{c_type(e.dtype)}{width}"
                return f"as_{type_}(as_u{type_}({self.vector_of(e.a)}) >> {self.vexpr(e.b)})"
            return f"({self.vexpr(e.a)} {INTEGER_SYMBOLS[e.op]} {self.vexpr(e.b)})"
        if isinstance(e, Select):             # lanes where the mask holds take a, the others b
            if not _varies(e.cond, varying):
                return f"({self.expr(e.cond)} ? {self.vector_of(e.a)} : {self.vector_of(e.b)})"
            return f"select({self.vector_of(e.b)}, {self.vector_of(e.a)}, {self.vexpr(e.cond)})"
        if reassociable and e.op == "add":
            for product, other in ((e.b, e.a), (e.a, e.b)):
                if isinstance(product, Binary) and product.op == "mul":
                    args = [self.vector_of(x) for x in (product.a, product.b, other)]
                    return f"fma({', '.join(args)})"
        if e.op in ("max", "min"):
            return f"graphc_f{e.op}_{c_type(e.dtype)}{width}({self.vector_of(e.a)}, {self.vector_of(e.b)})"
        symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[e.op]
        return f"({self.vexpr(e.a)} {symbol} {self.vexpr(e.b)})"

    def vmask(self, e) -> str:
        """Bool ``e`` as a mask of the loop's mask type: -1 in the lanes where it holds, 0 elsewhere
        (a comparison of floats, an isnan, a window's bounds, logic on them)."""
        _, width, varying = self.lane
        mask = self.mask_type
        if not _varies(e, varying):
            return f"(({mask}{width})(-({mask})({self.expr(e)})))"
        if isinstance(e, Ref):
            return self.names[e.name]
        if isinstance(e, Unary) and e.op == "not":
            return f"(~{self.vmask(e.x)})"
        if isinstance(e, Binary) and e.op in ("and", "or", "xor"):
            return f"({self.vmask(e.a)} {INTEGER_SYMBOLS[e.op]} {self.vmask(e.b)})"
        if isinstance(e, Unary):                  # isnan
            natural, value = MASK_TYPES[e.x.dtype], f"isnan({self.vexpr(e.x)})"
        elif not e.a.dtype.is_float and _lane_index_ok(e.a, self.lane[0].var) and \
                _lane_index_ok(e.b, self.lane[0].var) and not _varies(e, varying - {self.lane[0].var}):
            natural = self.index_type
            value = f"({self.lane_index(e.a)} {COMPARISONS[e.op]} {self.lane_index(e.b)})"
        else:
            natural = {1: "char", 2: "short", 4: "int", 8: "long"}[e.a.dtype.itemsize]
            value = f"({self.vector_of(e.a)} {COMPARISONS[e.op]} {self.vector_of(e.b)})"
        return value if natural == mask else f"convert_{mask}{width}({value})"

    def lane_mask(self, e, mask_type: str) -> str:
        """Bool ``e`` (see ``_lane_mask_ok``) as a vector of ``mask_type``: -1 in the lanes where it
        holds, 0 elsewhere (what ``select`` reads)."""
        loop, width, _ = self.lane
        if not _varies(e, {loop.var}):
            return f"(({mask_type}{width})(-({mask_type})({self.expr(e)})))"
        if isinstance(e, Unary):
            return f"(~{self.lane_mask(e.x, mask_type)})"
        if e.op in COMPARISONS:
            index = self.index_type
            value = f"({self.lane_index(e.a)} {COMPARISONS[e.op]} {self.lane_index(e.b)})"
            return value if index == mask_type else f"convert_{mask_type}{width}({value})"
        symbol = {"and": "&", "or": "|", "xor": "^"}[e.op]
        return f"({self.lane_mask(e.a, mask_type)} {symbol} {self.lane_mask(e.b, mask_type)})"

    def lane_index(self, e) -> str:
        """Integer ``e`` (index arithmetic on the lane variable) in every lane, as a vector."""
        loop, width, _ = self.lane
        type_ = f"{self.index_type}{width}"
        if not _varies(e, {loop.var}):
            return f"(({type_})({self.expr(e)}))"
        if isinstance(e, Var):
            if isinstance(loop.start, Const):
                return f"(({type_})({', '.join(str(loop.start.value + k) for k in range(width))}))"
            lanes = f"(({type_})({', '.join(map(str, range(width)))}))"
            return f"((({type_})({self.expr(loop.start)})) + {lanes})"
        symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "rem": "%"}[e.op]
        return f"({self.lane_index(e.a)} {symbol} {self.lane_index(e.b)})"

    def vector_of(self, e) -> str:
        """``e`` as a vector (a value the same in every lane broadcast)."""
        _, width, varying = self.lane
        value = self.vexpr(e)
        return value if _varies(e, varying) else f"(({c_type(e.dtype)}{width})({value}))"

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
            value = f"({value} != 0)" if e.dtype == bool_ else value
            if e.mask is not None:                # C's ?: reads nothing on the branch not taken
                return f"({self.expr(e.mask)} ? {value} : {constant(0, e.dtype)})"
            return value
        if isinstance(e, Unary):
            if e.op == "bitcast":
                return f"as_{c_type(e.dtype)}({self.expr(e.x)})"
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
            # & and |, not && and ||: no branches (both sides are plain values), so a device can vectorize
            return {"and": f"({a} & {b})", "or": f"({a} | {b})", "xor": f"({a} != {b})",
                    "max": f"({a} | {b})", "min": f"({a} & {b})"}[op]
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


# -- which vectorized loops become OpenCL vector code ------------------------------------------

VECTOR_WIDTHS = (2, 3, 4, 8, 16)
# Lanes of the widest vectorized loop rendered as vector code, chunk by chunk (each chunk is code of
# its own: a row of 6272 lanes made a kernel of a megabyte for PoCL to compile).
MAX_LANES = 64
VECTOR_OPS = ("add", "sub", "mul", "div", "max", "min")
# Unary ops on vectors, and their OpenCL functions (exact, or correctly rounded as the scalar ones).
VECTOR_FUNCTIONS = {"sqrt": "sqrt", "abs": "fabs", "trunc": "trunc"}
# Integer arithmetic on vectors: the bits of floats (graphc.kernel.vmath builds 2^n in an exponent's).
VECTOR_INTEGERS = (u8, i32, i64)
INTEGER_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "shl": "<<", "and": "&", "or": "|", "xor": "^"}
COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
# A comparison of float vectors is a mask of integers as wide as the floats.
MASK_TYPES = {f32: "int", f64: "long"}
# A vector loop's masks are integers as wide as the values its selects choose among.
SELECT_MASKS = {f32: "int", f64: "long", i32: "int", i64: "long"}


@dataclass(frozen=True)
class VectorPlan:
    """The vectorized loops rendered as vector code (by id, with their width), the scratch rows
    held as arrays of vectors (a register tile: ``float16 row[4]`` for ``row[row * 16 + lane]``),
    the loops that fold terms into reorderable sums run so many iterations at a time (by id,
    with the lanes: a vector of partial sums per accumulator), and the loops that add into
    register tiles with the tile's rows kept in so many copies (by id: see ``_tile_chains``)."""
    loops: dict[int, int]
    rows: dict[str, int]
    sums: dict[int, int] = field(default_factory=dict)
    chains: dict[int, int] = field(default_factory=dict)


def vector_plan(kernel: Kernel, float_lanes: int = 1) -> VectorPlan:
    """Which of ``kernel``'s vectorized loops, and which of its scratch rows, are rendered as vectors.

    A vectorized loop qualifies (in chunks of the widths OpenCL has vectors of) when its body only lets and stores, and
    what varies across its lanes is float arithmetic (+ - * / max min sqrt abs, comparisons as masks,
    selects) on loads (masked ones too), constants and lets; a scratch row qualifies when every
    access to it is such a loop's, at ``base + lane`` with ``base`` a multiple of the width.  A loop
    that touches a scratch row that does not qualify stays scalar.  Sums: see ``_vector_sums``."""
    loops = {id(s): _width(s) for s in walk_statements(kernel.body)
             if isinstance(s, Loop) and s.kind == "vectorized" and _vectorizable(s)}
    local_names = {s.name: s for s in walk_statements(kernel.body) if isinstance(s, Local)}
    while True:
        rows = {name: width for name, width in _row_widths(kernel, loops, local_names).items() if width}
        rejected = [key for key, loop in _loops_by_id(kernel).items() if key in loops and
                    any(access in local_names and access not in rows for access in _accessed(loop))]
        if not rejected:
            chains = _tile_chains(kernel, loops, rows, float_lanes) if float_lanes > 1 else {}
            return VectorPlan(loops, rows, _vector_sums(kernel, float_lanes), chains)
        for key in rejected:
            del loops[key]


def _vector_sums(kernel: Kernel, float_lanes: int) -> dict[int, int]:
    """The serial loops whose every iteration adds terms to reorderable sums (a reduction's row):
    the kernel IR lets a backend add those in another order, so each sum keeps a vector of partial
    sums, ``float_lanes`` of them for f32 (the device's preferred vector width: none on a GPU, whose
    reductions are its work-groups'), added up once the loop ends."""
    reorderable = {s.name: s.init.dtype for s in walk_statements(kernel.body)
                   if isinstance(s, Accumulator) and s.reassociable and s.init.dtype in MASK_TYPES}
    sums = {}
    for loop in walk_statements(kernel.body):
        if not (isinstance(loop, Loop) and loop.kind == "serial" and isinstance(loop.start, Const)
                and isinstance(loop.stop, Const)) or not all(isinstance(s, (Let, Assign)) for s in loop.body):
            continue
        assigns = [s for s in loop.body if isinstance(s, Assign)]
        dtypes = {reorderable.get(a.name) for a in assigns}
        if not assigns or None in dtypes or len(dtypes) > 1 or len({a.name for a in assigns}) < len(assigns):
            continue
        lanes = float_lanes * 4 // dtypes.pop().itemsize
        if lanes in VECTOR_WIDTHS and lanes != 3 and _width(loop) >= lanes and \
                all(_sum_term(a, set(reorderable)) is not None for a in assigns) and _vectorizable(loop, sums=True):
            sums[id(loop)] = lanes
    return sums


# Vector FMAs a CPU core keeps in flight (two units, four cycles each): a register tile's loop
# needs that many independent accumulators, or each step waits for the last one's sums.
FMA_CHAINS = 8
# Copies of a tile's rows at most: each copy's accumulators take registers.
MAX_TILE_COPIES = 4


def _tile_chains(kernel: Kernel, loops: dict[int, int], rows: dict[str, int], float_lanes: int) -> dict[int, int]:
    """The reduction loops of register tiles whose vectors are too few to keep a CPU's FMA units
    busy (a 4 x 16 tile: 4 chains of dependent FMAs, each waiting four cycles for the last), by id,
    with how many copies of the tile's rows their iterations take turns adding to: the stores are
    reorderable sums, so iteration ``r`` may add to copy ``r % copies``, the copies summed at the end.
    As many copies as fit ``FMA_CHAINS`` whole: ResNet's 4 x 16 tiles on PoCL 0.59 -> 0.46 ms with
    two, its 6 x 16 ones 0.41 -> 0.45 ms (one of them; others gained 9%)."""
    chains = {}
    sizes = {s.name: s for s in walk_statements(kernel.body) if isinstance(s, Local)}
    for loop in walk_statements(kernel.body):
        if not (isinstance(loop, Loop) and loop.kind == "serial" and isinstance(loop.start, Const)
                and isinstance(loop.stop, Const)):
            continue
        stored = _tile_sums(loop, loops, rows)
        if not stored:
            continue
        vectors = sum(-(-sizes[name].size * sizes[name].dtype.itemsize // (4 * float_lanes)) for name in stored)
        copies = min(MAX_TILE_COPIES, FMA_CHAINS // vectors, _width(loop))
        if copies > 1:
            chains[id(loop)] = copies
    return chains


def _tile_sums(loop: Loop, vector_loops: dict[int, int], rows: dict[str, int]) -> list[str]:
    """The vector rows ``loop`` adds to, where all it does is add reorderable terms to them in
    vector loops (``row[i] = row[i] + x``, and reads them nowhere else); [] where not."""
    stored = {}
    for stmt in walk_statements(loop.body):
        if isinstance(stmt, Loop):
            if stmt.kind not in ("unrolled", "vectorized") or not isinstance(stmt.stop, Const) or \
                    (stmt.kind == "vectorized" and id(stmt) not in vector_loops):
                return []
            continue
        if not isinstance(stmt, (Let, Store)):
            return []
        if isinstance(stmt, Store):
            own = Load(stmt.buffer, stmt.index, stmt.value.dtype)
            if not (stmt.reassociable and stmt.buffer in rows and isinstance(stmt.value, Binary)
                    and stmt.value.op == "add" and own in (stmt.value.a, stmt.value.b)):
                return []
            stored[stmt.buffer] = None
    for stmt in walk_statements(loop.body):       # a row read other than by its own sums: not a tile
        for e in statement_exprs(stmt):
            for x in walk_expr(e):
                if isinstance(x, Load) and x.buffer in stored and not (
                        isinstance(stmt, Store) and x == Load(stmt.buffer, stmt.index, stmt.value.dtype)):
                    return []
    return list(stored)


def _sum_term(assign: Assign, accumulators: set[str]):
    """What ``assign`` adds to its sum (``acc = acc + x``: x, which reads no accumulator), or None."""
    value = assign.value
    if not (isinstance(value, Binary) and value.op == "add"):
        return None
    for own, term in ((value.a, value.b), (value.b, value.a)):
        if own == Ref(assign.name, value.dtype) and \
                not any(isinstance(x, Ref) and x.name in accumulators for x in walk_expr(term)):
            return term
    return None


def _width(loop: Loop) -> int:
    return loop.stop.value - loop.start.value


def _chunks(lanes: int) -> list[int]:
    """``lanes`` as widths OpenCL has vectors of, widest first (28: 16, 8, 4; 5: 4, 1)."""
    chunks = []
    for width in (16, 8, 4, 3, 2, 1):
        while lanes >= width:
            chunks.append(width)
            lanes -= width
    return chunks


def _loops_by_id(kernel: Kernel) -> dict[int, Loop]:
    return {id(s): s for s in walk_statements(kernel.body) if isinstance(s, Loop)}


def _accessed(loop: Loop) -> set[str]:
    names = {s.buffer for s in loop.body if isinstance(s, Store)}
    for stmt in loop.body:
        for e in (stmt.value, *((stmt.index,) if isinstance(stmt, Store) else ())):
            names |= {x.buffer for x in walk_expr(e) if isinstance(x, Load)}
    return names


def _vectorizable(loop: Loop, sums: bool = False) -> bool:
    """Whether ``loop``'s iterations run as lanes of vector code (``sums``: its iterations' terms
    added to vectors of partial sums, any number of them, its assignments' terms as lanes; at least
    one load read whole, or the lanes cost more than they save)."""
    if not (isinstance(loop.start, Const) and isinstance(loop.stop, Const)) or _width(loop) < 2 or \
            (_width(loop) > MAX_LANES and not sums):
        return False
    varying = {loop.var}
    if sums:
        loads = [x for s in loop.body for x in walk_expr(s.value) if isinstance(x, Load) and _varies(x, varying)]
        if not loads or any(_lane_coefficient(x.index, loop.var, {loop.var}) != 1 for x in loads):
            return False
    for stmt in loop.body:
        if sums and isinstance(stmt, Assign):
            if not _lanes_ok(stmt.value, varying, loop.var):
                return False
            continue
        if not isinstance(stmt, (Let, Store)):
            return False
        if not _lanes_ok(stmt.value, varying, loop.var):
            return False
        if isinstance(stmt, Let) and _varies(stmt.value, varying):
            varying.add(stmt.name)
        if isinstance(stmt, Store) and (not (stmt.value.dtype.is_float or stmt.value.dtype in VECTOR_INTEGERS)
                                        or _varies(stmt.index, varying - {loop.var})):
            return False                  # every lane stores its element (consecutive ones whole)
    selected = {SELECT_MASKS[x.dtype] for stmt in loop.body for x in walk_expr(stmt.value) if isinstance(x, Select)}
    return len(selected) <= 1             # one mask type: as wide as every select's values


def _mask_type(loop: Loop) -> str:
    """The integer type of a vector loop's masks: as wide as the values its selects choose among
    (``select`` reads each lane's top bit), else as the floats it compares."""
    exprs = [x for stmt in loop.body for x in walk_expr(stmt.value)]
    for x in exprs:
        if isinstance(x, Select):
            return SELECT_MASKS[x.dtype]
    for x in exprs:
        if isinstance(x, Binary) and x.op in COMPARISONS and x.a.dtype in MASK_TYPES:
            return MASK_TYPES[x.a.dtype]
    return "int"


def _varies(e, varying: set[str]) -> bool:
    return any(isinstance(x, (Var, Ref)) and x.name in varying for x in walk_expr(e))


def _lanes_ok(e, varying: set[str], lane: str) -> bool:
    """Whether the part of ``e`` that varies across lanes is float arithmetic on loads and lets."""
    if not _varies(e, varying):
        return True
    if isinstance(e, Ref) and e.name != lane:
        return e.dtype.is_float or e.dtype == bool_ or e.dtype in VECTOR_INTEGERS  # a bool: a mask (_vectorizable)
    if isinstance(e, Load):                   # consecutive lanes loaded whole, any others gathered
        return (e.dtype.is_float or e.dtype in VECTOR_INTEGERS) and not any(_varies(x, varying - {lane}) for x in (e.index, e.mask) if x is not None)
    if isinstance(e, Binary) and e.op in VECTOR_OPS and e.dtype.is_float:
        return _lanes_ok(e.a, varying, lane) and _lanes_ok(e.b, varying, lane)
    if isinstance(e, Unary) and (e.op == "neg" or e.op in VECTOR_FUNCTIONS) and e.dtype.is_float:
        return _lanes_ok(e.x, varying, lane)
    if isinstance(e, Binary) and e.op in COMPARISONS and (e.a.dtype.is_float or e.a.dtype in VECTOR_INTEGERS):
        if not e.a.dtype.is_float and not _varies(e, varying - {lane}) and \
                _lane_index_ok(e.a, lane) and _lane_index_ok(e.b, lane):
            return True                       # a window's bounds
        return _lanes_ok(e.a, varying, lane) and _lanes_ok(e.b, varying, lane)
    if isinstance(e, Unary) and e.op == "isnan" and e.x.dtype.is_float:
        return _lanes_ok(e.x, varying, lane)
    if isinstance(e, Select) and e.dtype in SELECT_MASKS:
        return all(_lanes_ok(x, varying, lane) for x in (e.cond, e.a, e.b))
    if isinstance(e, Binary) and e.dtype == bool_ and e.op in ("and", "or", "xor"):     # logic on masks
        return _lanes_ok(e.a, varying, lane) and _lanes_ok(e.b, varying, lane)
    if isinstance(e, Unary) and e.op == "not" and e.dtype == bool_:
        return _lanes_ok(e.x, varying, lane)
    if isinstance(e, Binary) and e.dtype in VECTOR_INTEGERS and (e.op in INTEGER_SYMBOLS or e.op == "lshr"):
        return _lanes_ok(e.a, varying, lane) and _lanes_ok(e.b, varying, lane)
    if isinstance(e, Unary) and e.op == "bitcast" and (e.dtype.is_float or e.dtype in VECTOR_INTEGERS):
        return _lanes_ok(e.x, varying, lane)
    if isinstance(e, Cast) and e.x.dtype in VECTOR_INTEGERS and (e.dtype.is_float or e.dtype in VECTOR_INTEGERS):
        return _lanes_ok(e.x, varying, lane)
    return False


def _lane_mask_ok(e, lane: str) -> bool:
    """Whether bool ``e`` renders as a vector mask: logic on comparisons of index arithmetic
    (+ - * / %) on the lane variable (a window's padding)."""
    if not _varies(e, {lane}):
        return True
    if isinstance(e, Unary) and e.op == "not":
        return _lane_mask_ok(e.x, lane)
    if isinstance(e, Binary) and e.op in COMPARISONS and not e.a.dtype.is_float:
        return _lane_index_ok(e.a, lane) and _lane_index_ok(e.b, lane)
    if isinstance(e, Binary) and e.op in ("and", "or", "xor") and e.dtype == bool_:
        return _lane_mask_ok(e.a, lane) and _lane_mask_ok(e.b, lane)
    return False


def _lane_index_ok(e, lane: str) -> bool:
    if not _varies(e, {lane}):
        return not e.dtype.is_float
    if isinstance(e, Var):
        return True
    return isinstance(e, Binary) and e.op in ("add", "sub", "mul", "div", "rem") and e.dtype == i64 and \
        _lane_index_ok(e.a, lane) and _lane_index_ok(e.b, lane)


def _lane_coefficient(e, lane: str, varying: set[str]) -> int | None:
    """``e``'s step per lane where it is affine in the lane variable alone (None where not)."""
    if not _varies(e, varying):
        return 0
    if isinstance(e, Var) and e.name == lane:
        return 1
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        a, b = _lane_coefficient(e.a, lane, varying), _lane_coefficient(e.b, lane, varying)
        return None if a is None or b is None else (a + b if e.op == "add" else a - b)
    if isinstance(e, Binary) and e.op == "mul":
        for x, c in ((e.a, e.b), (e.b, e.a)):
            if isinstance(c, Const):
                k = _lane_coefficient(x, lane, varying)
                return None if k is None else k * int(c.value)
    return None


def _multiple_of(e, width: int) -> bool:
    """Whether ``e`` (a lane's base index) is provably a multiple of ``width``."""
    if isinstance(e, Const):
        return int(e.value) % width == 0
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        return _multiple_of(e.a, width) and _multiple_of(e.b, width)
    if isinstance(e, Binary) and e.op == "mul":
        return any(isinstance(c, Const) and int(c.value) % width == 0 for c in (e.a, e.b))
    return False


def _row_widths(kernel: Kernel, loops: dict[int, int], local_names: dict) -> dict[str, int]:
    """Each scratch row's unit: the widest vector width (16, 8, 4, 2 or 1) that divides every chunk of
    lanes accessing it and their first element (a tile's rows of 28: 16 + 8 + 4 lanes from 28 * row,
    a unit of 4); 0 where some access to it is not a vector loop's, at ``base + lane``."""
    widths: dict[str, int] = {name: 16 for name, local in local_names.items()
                              if local.dtype.is_float or local.dtype in VECTOR_INTEGERS}
    widths.update({name: 0 for name in local_names if name not in widths})

    def visit(body, inside: Loop | None) -> None:
        for stmt in body:
            if isinstance(stmt, Loop):
                visit(stmt.body, stmt if id(stmt) in loops else None)
                continue
            exprs = [e for e in statement_exprs(stmt)]
            accesses = [(x.buffer, x.index) for e in exprs for x in walk_expr(e) if isinstance(x, Load)]
            if isinstance(stmt, Store):
                accesses.append((stmt.buffer, stmt.index))
            for name, index in accesses:
                if name not in widths:
                    continue
                if inside is None:
                    widths[name] = 0
                    continue
                if _lane_coefficient(index, inside.var, {inside.var}) != 1:
                    widths[name] = 0
                    continue
                first = inside.start.value
                for width in _chunks(_width(inside)):
                    base = _substitute(index, inside.var, Const(first, i64))
                    while widths[name] > 1 and not (width % widths[name] == 0 and _multiple_of(base, widths[name])):
                        widths[name] //= 2
                    first += width

    visit(kernel.body, None)
    return widths


def _without_aliases(kernel: Kernel) -> Kernel:
    """``kernel`` with each let that only renames a loop variable (``r36 = r3``: sibling reductions
    fused into one loop each keep their own names) replaced by the variable, so that the index
    arithmetic of the loads after it shows how they move from lane to lane."""
    def block(body, aliases: dict) -> tuple:
        out = []
        for stmt in body:
            if isinstance(stmt, Let) and isinstance(stmt.value, Var):
                aliases = {**aliases, stmt.name: stmt.value}
            else:
                out.append(statement(stmt, aliases) if aliases or isinstance(stmt, Loop) else stmt)
        return tuple(out)

    def renamed(e, aliases: dict):
        for name, var in aliases.items():
            e = _substitute(e, name, var)
        return e

    def statement(stmt, aliases: dict):
        if isinstance(stmt, Loop):
            return replace(stmt, start=renamed(stmt.start, aliases), stop=renamed(stmt.stop, aliases),
                           body=block(stmt.body, aliases))
        if isinstance(stmt, (Let, Assign)):
            return replace(stmt, value=renamed(stmt.value, aliases))
        if isinstance(stmt, Accumulator):
            return replace(stmt, init=renamed(stmt.init, aliases))
        if isinstance(stmt, Store):
            return replace(stmt, index=renamed(stmt.index, aliases), value=renamed(stmt.value, aliases))
        if isinstance(stmt, Check):
            return replace(stmt, cond=renamed(stmt.cond, aliases), value=renamed(stmt.value, aliases))
        return stmt

    return replace(kernel, body=block(kernel.body, {}))


def _substitute(e, var: str, value):
    """``e`` with the variable (or let) named ``var`` replaced by the expression ``value``."""
    if isinstance(e, (Var, Ref)) and e.name == var:
        return value
    if isinstance(e, Binary):
        return replace(e, a=_substitute(e.a, var, value), b=_substitute(e.b, var, value))
    if isinstance(e, Unary):
        return replace(e, x=_substitute(e.x, var, value))
    if isinstance(e, Select):
        return replace(e, cond=_substitute(e.cond, var, value), a=_substitute(e.a, var, value),
                       b=_substitute(e.b, var, value))
    if isinstance(e, Cast):
        return replace(e, x=_substitute(e.x, var, value))
    if isinstance(e, Load):
        mask = None if e.mask is None else _substitute(e.mask, var, value)
        return replace(e, index=_substitute(e.index, var, value), mask=mask)
    return e


# -- which loops become the NDRange ---------------------------------------------------------

def limits_prefer_vectors(limits: DeviceLimits) -> bool:
    """Whether a device runs a vectorized loop's lanes best as vector code in one work-item (a CPU's
    SIMD registers) rather than as work-items (a GPU's lanes)."""
    return limits.float_vector_width > 1


def _collapsible(kernel: Kernel, vector_loops: dict[int, int]) -> tuple[list[Loop], tuple]:
    """The kernel's outer loop and the output loops nested alone inside it that can run as
    work-items, and the body each work-item runs; ([], body) when none can.  The loops in
    ``vector_loops`` (rendered as vector code) stay inside the work-item."""
    loop = outer_loop(kernel)
    collapsed: list[Loop] = []
    writes_what_it_reads = bool(set(kernel.outputs) & set(kernel.inputs))
    while loop is not None and isinstance(loop.start, Const) and isinstance(loop.stop, Const) and \
            id(loop) not in vector_loops:
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

