"""Kernel IR to LLVM IR (llvmlite.ir): one function per kernel, one entry per program.

The module a program renders to exports:

- ``graphc_buffers(ptr inputs, ptr arena, ptr table)``: fills ``table`` with every
  buffer's address: a graph input or stored constant is ``inputs[i]`` (graph
  inputs in order, then constants), an arena buffer ``arena + offset``, a value
  computed into a state's storage that state input's address;
- ``graphc_kernel_<k>(ptr table, ptr status, ptr parallel_for)``: runs kernel k,
  handing a parallel outer loop to the thread pool in chunks;
- ``graphc_entry(ptr inputs, ptr arena, ptr status, ptr parallel_for) -> i32``:
  the whole step: the table, every kernel in order, then the copies of write-back
  values into their states; it returns 1 as soon as a kernel reports an index out of
  range in ``status`` (error number + 1, the bad value), before any later kernel runs;
- ``graphc_run() -> i32``: ``graphc_entry`` on the four arguments stored once, at load,
  where ``graphc_arguments_address()`` points: a ctypes call without arguments costs
  0.07 us, one converting four costs 0.24 us, and a small step's whole call is a few.

Each kernel's body is ``body(ptr buffers, i64 lo, i64 hi, ptr status)``: ``buffers`` holds
the addresses of the kernel's own buffers (its runner gathers them from the table), so
kernels that compute the same thing on other buffers share one body; a kernel whose body
is one parallel loop runs iterations lo..hi of it (a chunk), any other runs whole.
A program renders to one module (``render_program``) or, to be compiled in parallel, to
several (``render_entry_module``, ``render_kernel_module``), linked when loaded.
Statements map directly: a let is an SSA value, an accumulator a stack slot
(promoted to a register by LLVM), a loop a header with a phi, a check a branch
to a block that records the error.  Bools are i1 in registers and one byte in memory.
"""
from __future__ import annotations

import dataclasses

import llvmlite.ir as ir

from graphc.ir.dtypes import DType, bool_, f32
from graphc.kernel.ir import (Accumulator, Assign, Binary, Cast, Check, Const, Kernel, Let, Load, Local, Loop, Program,
                              Ref, Select, Store, Unary, Var)
from graphc.kernel.schedule import outer_loop

from .jit import FunctionPointer, vector_target
from .lanes import LaneLoop, constant_trip, renders_as_vectors
from .types import I1, I8, I32, I64, PTR, constant_like, declare_intrinsic, like, memory_type, value_type

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64, PTR])
RUNNER_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR])
TASK_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64])
PARALLEL_FOR_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64])
# Chunks per thread of a parallel loop: several, so a thread that finishes early takes more.
CHUNKS_PER_THREAD = 4


def kernel_function_name(kernel: Kernel) -> str:
    return f"graphc_kernel_{kernel.name}"


def input_order(program: Program) -> list[str]:
    """The buffers the caller passes in ``inputs``: the graph's inputs, then stored constants."""
    constants = [name for name, b in program.buffers.items() if b.place == "constant"]
    return list(program.inputs) + constants


def render_program(program: Program, threads: int) -> ir.Module:
    """``program`` as one module (what ``graphc dump --stage llvm`` shows)."""
    module = ir.Module(name=program.name)
    slots = {name: i for i, name in enumerate(program.buffers)}
    _buffers_function(module, program, slots)
    runners = _kernels(module, program, range(len(program.kernels)), slots, threads)
    _entry(module, program, slots, runners)
    _run_with_stored_arguments(module)
    return module


def render_entry_module(program: Program) -> ir.Module:
    """The module with the buffer table and the entry, which calls every kernel's runner as an
    external function: with the modules ``render_kernel_module`` makes for all the kernels,
    loaded together, it makes the program ``render_program`` makes as one module, in parts
    LLVM can compile apart (in parallel)."""
    slots = {name: i for i, name in enumerate(program.buffers)}
    module = ir.Module(name=program.name)
    _buffers_function(module, program, slots)
    runners = [ir.Function(module, RUNNER_TYPE, kernel_function_name(kernel)) for kernel in program.kernels]
    _entry(module, program, slots, runners)
    _run_with_stored_arguments(module)
    return module


def render_kernel_module(program: Program, threads: int, positions: list[int], name: str) -> ir.Module:
    """A module defining the runners of the kernels at ``positions`` (kernels with one ``body_key``
    share one body)."""
    module = ir.Module(name=name)
    _kernels(module, program, positions, {name: i for i, name in enumerate(program.buffers)}, threads)
    return module


def _kernels(module, program: Program, positions, slots: dict[str, int], threads: int) -> list[ir.Function]:
    """The runners of the kernels at ``positions``, each body rendered once per ``body_key``."""
    bodies: dict[tuple, ir.Function] = {}
    runners = []
    for position in positions:
        kernel = program.kernels[position]
        buffers = kernel_buffers(kernel)
        key = body_key(kernel)
        if key not in bodies:
            own_slots = {name: i for i, name in enumerate(buffers)}
            bodies[key] = _KernelRenderer(module, kernel, program, own_slots).function
        elif "noinline" not in bodies[key].attributes:
            bodies[key].attributes.add("noinline")     # inlined into each runner, it is compiled again for each
        runners.append(_runner(module, kernel, bodies[key], threads, [slots[name] for name in buffers]))
    return runners


def kernel_buffers(kernel: Kernel) -> list[str]:
    """The buffers a kernel's body reads and writes, in the order its runner hands them over."""
    return list(dict.fromkeys((*kernel.inputs, *kernel.outputs)))


def body_key(kernel: Kernel) -> tuple:
    """What a kernel's body is, its buffers named by their place in ``kernel_buffers``: kernels
    with one key compute the same thing on other buffers (ResNet's blocks repeat their shapes),
    so one compiled body serves them all, each runner handing it its own buffers."""
    names = {name: f"%{i}" for i, name in enumerate(kernel_buffers(kernel))}
    return _renamed(kernel.body, names)


# The fields of the kernel IR's dataclasses, by class.
_FIELDS = {cls: tuple(field.name for field in dataclasses.fields(cls))
           for cls in (Accumulator, Assign, Binary, Cast, Check, Const, Let, Load, Local, Loop, Ref, Select, Store,
                       Unary, Var)}


def _renamed(value, names: dict[str, str]):
    """``value`` as nested tuples, with every buffer a load or store names renamed by ``names``."""
    kind = type(value)
    if kind is tuple:
        return tuple(_renamed(item, names) for item in value)
    fields = _FIELDS.get(kind)
    if fields is None:
        return value.name if kind is DType else value
    return (kind.__name__, *(names.get(getattr(value, name), getattr(value, name)) if name == "buffer"
                             else _renamed(getattr(value, name), names) for name in fields))


# -- the buffer table and the entry -------------------------------------------------------

def _buffers_function(module, program: Program, slots: dict[str, int]) -> None:
    function = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR]), "graphc_buffers")
    inputs, arena, table = function.args
    b = ir.IRBuilder(function.append_basic_block("entry"))
    position = {name: i for i, name in enumerate(input_order(program))}
    for name, buffer in program.buffers.items():
        if buffer.place == "arena":
            address = b.gep(arena, [ir.Constant(I64, buffer.offset)], source_etype=I8)
        else:
            source = buffer.source if buffer.place == "state" else name
            address = b.load(b.gep(inputs, [ir.Constant(I64, position[source])], source_etype=PTR), typ=PTR)
        b.store(address, b.gep(table, [ir.Constant(I64, slots[name])], source_etype=PTR))
    b.ret_void()


def _runner(module, kernel: Kernel, body: ir.Function, threads: int, gather: list[int]) -> ir.Function:
    """``graphc_kernel_<k>(table, status, parallel_for)``: the kernel over all its iterations.
    Its body gets a table of its own buffers: the program table's entries at ``gather``."""
    runner = ir.Function(module, RUNNER_TYPE, kernel_function_name(kernel))
    program_table, status, parallel_for = runner.args
    b = ir.IRBuilder(runner.append_basic_block("entry"))
    table = b.alloca(PTR, ir.Constant(I64, max(1, len(gather))))
    for i, slot in enumerate(gather):
        address = b.load(b.gep(program_table, [ir.Constant(I64, slot)], source_etype=PTR), typ=PTR)
        b.store(address, b.gep(table, [ir.Constant(I64, i)], source_etype=PTR))
    loop = outer_loop(kernel)
    if loop is None or loop.kind != "parallel" or threads < 2:
        if loop is not None and loop.kind == "parallel":      # one thread: every iteration in one call
            bounds = [ir.Constant(I64, loop.start.value), ir.Constant(I64, loop.stop.value)]
        else:
            bounds = [ir.Constant(I64, 0), ir.Constant(I64, 0)]   # unused: the body runs whole
        b.call(body, [table, *bounds, status])
        b.ret_void()
        return runner
    start, stop = loop.start.value, loop.stop.value
    chunks = min(stop - start, threads * CHUNKS_PER_THREAD)
    # The task's context: the table, the status and nothing else; chunk c covers an even share.
    task = ir.Function(module, TASK_TYPE, f"graphc_task_{kernel.name}")
    task.linkage = "internal"
    tb = ir.IRBuilder(task.append_basic_block("entry"))
    context, chunk = task.args
    table_of = tb.load(tb.gep(context, [ir.Constant(I64, 0)], source_etype=PTR), typ=PTR)
    status_of = tb.load(tb.gep(context, [ir.Constant(I64, 1)], source_etype=PTR), typ=PTR)
    extent = ir.Constant(I64, stop - start)
    lo = tb.add(ir.Constant(I64, start), tb.sdiv(tb.mul(chunk, extent), ir.Constant(I64, chunks)))
    hi = tb.add(ir.Constant(I64, start), tb.sdiv(tb.mul(tb.add(chunk, ir.Constant(I64, 1)), extent),
                                                 ir.Constant(I64, chunks)))
    tb.call(body, [table_of, lo, hi, status_of])
    tb.ret_void()
    pair = b.alloca(PTR, ir.Constant(I64, 2))
    b.store(table, b.gep(pair, [ir.Constant(I64, 0)], source_etype=PTR))
    b.store(status, b.gep(pair, [ir.Constant(I64, 1)], source_etype=PTR))
    b.call(FunctionPointer(parallel_for, PARALLEL_FOR_TYPE), [task, pair, ir.Constant(I64, chunks)])
    b.ret_void()
    return runner


def _entry(module, program: Program, slots: dict[str, int], runners: list[ir.Function]) -> None:
    function = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "graphc_entry")
    inputs, arena, status, parallel_for = function.args
    b = ir.IRBuilder(function.append_basic_block("entry"))
    table = b.alloca(PTR, ir.Constant(I64, max(1, len(slots))))
    b.call(module.get_global("graphc_buffers"), [inputs, arena, table])
    failed = function.append_basic_block("failed")
    for kernel, runner in zip(program.kernels, runners):
        b.call(runner, [table, status, parallel_for])
        if kernel.has_checks:
            error = b.load(status, typ=I64)
            go_on = function.append_basic_block(f"after_{kernel.name}")
            b.cbranch(b.icmp_signed("!=", error, ir.Constant(I64, 0)), failed, go_on)
            b.position_at_end(go_on)
    memcpy = module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
    for copy in program.copies:
        source = b.load(b.gep(table, [ir.Constant(I64, slots[copy.source])], source_etype=PTR), typ=PTR)
        target = b.load(b.gep(table, [ir.Constant(I64, slots[copy.target])], source_etype=PTR), typ=PTR)
        b.call(memcpy, [target, source, ir.Constant(I64, program.buffers[copy.source].nbytes), ir.Constant(I1, 0)])
    b.ret(ir.Constant(I32, 0))
    b.position_at_end(failed)
    b.ret(ir.Constant(I32, 1))


def _run_with_stored_arguments(module) -> None:
    """``graphc_run``, calling the entry on the arguments in ``graphc_arguments`` (internal: each
    loaded program has its own), and ``graphc_arguments_address``, where the loader stores them."""
    stored = ir.GlobalVariable(module, ir.ArrayType(PTR, 4), "graphc_arguments")
    stored.linkage = "internal"
    stored.initializer = ir.Constant(ir.ArrayType(PTR, 4), None)
    address = ir.Function(module, ir.FunctionType(PTR, []), "graphc_arguments_address")
    ir.IRBuilder(address.append_basic_block("entry")).ret(stored)
    run = ir.Function(module, ir.FunctionType(I32, []), "graphc_run")
    b = ir.IRBuilder(run.append_basic_block("entry"))
    arguments = [b.load(b.gep(stored, [ir.Constant(I64, 0), ir.Constant(I64, i)], source_etype=stored.value_type),
                        typ=PTR) for i in range(4)]
    b.ret(b.call(module.get_global("graphc_entry"), arguments))


# -- kernels ------------------------------------------------------------------------------

_FLOAT_INTRINSICS = {"exp": "llvm.exp", "log": "llvm.log", "sqrt": "llvm.sqrt", "sin": "llvm.sin",
                     "cos": "llvm.cos", "abs": "llvm.fabs", "trunc": "llvm.trunc"}
_LIBM = {"tanh": ("tanhf", "tanh")}
_FLOAT_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class _KernelRenderer:
    def __init__(self, module: ir.Module, kernel: Kernel, program: Program, slots: dict[str, int]):
        self.module = module
        self.program = program
        self.function = ir.Function(module, KERNEL_TYPE, f"graphc_body_{kernel.name}")
        self.function.linkage = "internal"
        table, lo, hi, self.status = self.function.args
        self.entry = self.function.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.values: dict[str, object] = {}
        self.accumulators: dict[str, tuple] = {}
        self.fast = ()                    # fast-math flags for the sum being rendered, if reassociable
        self.bases = {}
        self.scratch: set[str] = set()    # the kernel's scratch rows (Local), of all its bases
        self.target = vector_target()     # the vector unit the code is for (GRAPHC_ISA or the host's)
        for name in dict.fromkeys((*kernel.inputs, *kernel.outputs)):
            slot = self.b.gep(table, [ir.Constant(I64, slots[name])], source_etype=PTR)
            self.bases[name] = self.b.load(slot, typ=PTR, name=f"base_{len(self.bases)}")
        outer = outer_loop(kernel)
        if outer is not None and outer.kind == "parallel":     # this call runs iterations lo..hi of it
            self.statements(kernel.body[:-1])
            self.loop(outer, lo, hi)
        else:
            self.statements(kernel.body)
        self.b.ret_void()

    # -- statements ----------------------------------------------------------------
    def statements(self, body) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt) -> None:
        b = self.b
        if isinstance(stmt, Let):
            self.values[stmt.name] = self.expr(stmt.value)
        elif isinstance(stmt, Accumulator):
            with b.goto_entry_block():
                slot = b.alloca(value_type(stmt.init.dtype), name=stmt.name)
            self.accumulators[stmt.name] = (slot, stmt.init.dtype, stmt.reassociable)
            b.store(self.expr(stmt.init), slot)
        elif isinstance(stmt, Local):
            with b.goto_entry_block():
                row = b.alloca(memory_type(stmt.dtype), ir.Constant(I64, stmt.size), name=stmt.name)
            row.align = 64
            row.type = PTR        # an opaque pointer, as every buffer's base is (llvmlite types allocas)
            self.bases[stmt.name] = row
            self.scratch.add(stmt.name)
        elif isinstance(stmt, Assign):
            slot, _, reassociable = self.accumulators[stmt.name]
            b.store(self.sum_expr(stmt.value, reassociable), slot)
        elif isinstance(stmt, Store):
            value = self.sum_expr(stmt.value, stmt.reassociable)
            dtype = stmt.value.dtype
            if dtype == bool_:
                value = b.zext(value, I8)
            b.store(value, self.address(stmt.buffer, stmt.index, dtype))
        elif isinstance(stmt, Check):
            self.check(stmt)
        elif isinstance(stmt, Loop):
            if stmt.kind == "unrolled" and constant_trip(stmt) is not None:
                for i in range(stmt.start.value, stmt.stop.value):
                    self.values[stmt.var] = ir.Constant(I64, i)
                    self.statements(stmt.body)
                self.values.pop(stmt.var, None)   # a loop of the same variable later is another
            elif renders_as_vectors(stmt):
                LaneLoop(self, stmt).render(stmt.body)
            else:
                self.loop(stmt, self.expr(stmt.start), self.expr(stmt.stop))
        else:
            raise TypeError(f"cannot render {stmt!r}")

    def loop(self, loop: Loop, start, stop) -> None:
        b, function = self.b, self.function
        before = b.block
        header = function.append_basic_block(f"{loop.var}.head")
        body = function.append_basic_block(f"{loop.var}.body")
        done = function.append_basic_block(f"{loop.var}.done")
        b.branch(header)
        b.position_at_end(header)
        var = b.phi(I64, name=loop.var)
        var.add_incoming(start, before)
        b.cbranch(b.icmp_signed("<", var, stop), body, done)
        b.position_at_end(body)
        self.values[loop.var] = var
        self.statements(loop.body)
        var.add_incoming(b.add(var, ir.Constant(I64, 1), flags=["nsw"]), b.block)
        b.branch(header)
        b.position_at_end(done)

    def check(self, stmt: Check) -> None:
        b, function = self.b, self.function
        fail = function.append_basic_block("index_error")
        go_on = function.append_basic_block("index_ok")
        b.cbranch(self.expr(stmt.cond), go_on, fail)
        b.position_at_end(fail)
        b.store(ir.Constant(I64, stmt.error + 1), self.status)
        b.store(self.expr(stmt.value), b.gep(self.status, [ir.Constant(I64, 1)], source_etype=I64))
        b.branch(go_on)
        b.position_at_end(go_on)

    def sum_expr(self, e, reassociable: bool):
        """``e``, letting LLVM reorder and fuse its float additions where it is a reassociable sum."""
        self.fast = ("reassoc", "contract") if reassociable else ()
        try:
            return self.expr(e)
        finally:
            self.fast = ()

    def address(self, buffer: str, index, dtype: DType):
        return self.element_address(buffer, self.expr(index), dtype)

    def element_address(self, buffer: str, index: ir.Value, dtype: DType):
        return self.b.gep(self.bases[buffer], [index], inbounds=True, source_etype=memory_type(dtype))

    # -- expressions -----------------------------------------------------------------
    def expr(self, e):
        b = self.b
        if isinstance(e, Const):
            return ir.Constant(value_type(e.dtype), int(e.value) if e.dtype == bool_ else e.value)
        if isinstance(e, (Var, Ref)):
            if e.name in self.accumulators:
                slot, dtype, _ = self.accumulators[e.name]
                return b.load(slot, typ=value_type(dtype))
            return self.values[e.name]
        if isinstance(e, Load):
            if e.mask is not None:
                return self.masked_load(e)
            value = b.load(self.address(e.buffer, e.index, e.dtype), typ=memory_type(e.dtype))
            return b.icmp_unsigned("!=", value, ir.Constant(I8, 0)) if e.dtype == bool_ else value
        if isinstance(e, Unary):
            if e.op == "bitcast":
                return self.bitcast(self.expr(e.x), e.dtype)
            return self.unary(e.op, self.expr(e.x), e.x.dtype)
        if isinstance(e, Binary):
            return self.binary(e.op, self.expr(e.a), self.expr(e.b), e.a.dtype)
        if isinstance(e, Select):
            return b.select(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
        if isinstance(e, Cast):
            return self.cast(self.expr(e.x), e.x.dtype, e.dtype)
        raise TypeError(f"cannot render {e!r}")

    def masked_load(self, e: Load):
        """A masked load of one element: element 0 is read where the mask fails (a safe address
        in any buffer it may index), and zero taken instead."""
        b, mask = self.b, self.expr(e.mask)
        index = b.select(mask, self.expr(e.index), ir.Constant(I64, 0))
        value = b.load(self.element_address(e.buffer, index, e.dtype), typ=memory_type(e.dtype))
        if e.dtype == bool_:
            value = b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
        return b.select(mask, value, ir.Constant(value.type, None))

    def intrinsic(self, name: str, dtype: DType, args):
        type_ = like(args[0], value_type(dtype))
        function = declare_intrinsic(self.module, name, [type_], ir.FunctionType(type_, [type_] * len(args)))
        return self.b.call(function, args)

    def libm(self, names: tuple[str, str], dtype: DType, x):
        if isinstance(x.type, ir.VectorType):            # no vector library: lane by lane
            result = x
            for i in range(x.type.count):
                lane = ir.Constant(I32, i)
                result = self.b.insert_element(result, self.libm(names, dtype, self.b.extract_element(x, lane)), lane)
            return result
        name = names[0] if dtype == f32 else names[1]
        try:
            function = self.module.get_global(name)
        except KeyError:
            type_ = value_type(dtype)
            function = ir.Function(self.module, ir.FunctionType(type_, [type_]), name)
        return self.b.call(function, [x])

    def unary(self, op: str, x, dtype: DType):
        b = self.b
        if op == "not":
            return b.not_(x)
        if op == "isnan":
            return b.fcmp_unordered("uno", x, x) if dtype.is_float else constant_like(x, I1, 0)
        if op == "neg":
            return b.fneg(x) if dtype.is_float else b.neg(x)
        if dtype.is_float:
            if op in _FLOAT_INTRINSICS:
                return self.intrinsic(_FLOAT_INTRINSICS[op], dtype, [x])
            if op in _LIBM:
                return self.libm(_LIBM[op], dtype, [x][0])
        if op == "abs":
            negative = b.icmp_signed("<", x, constant_like(x, value_type(dtype), 0))
            return b.select(negative, b.neg(x), x) if dtype.is_signed else x
        if op == "trunc":
            return x
        raise TypeError(f"cannot render {op} on {dtype}")

    def bitcast(self, x, dtype: DType):
        return self.b.bitcast(x, like(x, value_type(dtype)))

    def binary(self, op: str, x, y, dtype: DType):
        b = self.b
        if dtype.is_float:
            if op in _FLOAT_COMPARE:
                compare = b.fcmp_unordered if op == "ne" else b.fcmp_ordered
                return compare(_FLOAT_COMPARE[op], x, y)
            simple = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv, "rem": b.frem}
            if op in simple:
                return simple[op](x, y, flags=self.fast) if op in ("add", "mul") else simple[op](x, y)
            named = {"pow": "llvm.pow", "max": "llvm.maximum", "min": "llvm.minimum"}
            if op in named:
                return self.intrinsic(named[op], dtype, [x, y])
        else:
            signed = dtype.is_signed
            if op in _FLOAT_COMPARE:
                return (b.icmp_signed if signed else b.icmp_unsigned)(_FLOAT_COMPARE[op], x, y)
            simple = {"add": b.add, "sub": b.sub, "mul": b.mul, "and": b.and_, "or": b.or_, "xor": b.xor,
                      "shl": b.shl, "lshr": b.lshr, "div": b.sdiv if signed else b.udiv,
                      "rem": b.srem if signed else b.urem}
            if op in simple:
                return simple[op](x, y)
            if op in ("max", "min"):
                name = ("llvm.smax" if op == "max" else "llvm.smin") if signed else \
                       ("llvm.umax" if op == "max" else "llvm.umin")
                return self.intrinsic(name, dtype, [x, y])
        raise TypeError(f"cannot render {op} on {dtype}")

    def cast(self, x, source: DType, target: DType):
        b = self.b
        to = like(x, value_type(target))
        if source == target:
            return x
        if target == bool_:
            zero = constant_like(x, value_type(source), 0.0 if source.is_float else 0)
            return (b.fcmp_unordered if source.is_float else b.icmp_unsigned)("!=", x, zero)
        if source.is_float and target.is_float:
            return b.fpext(x, to) if target.itemsize > source.itemsize else b.fptrunc(x, to)
        if source.is_float:
            # Truncate toward zero through i64, saturating (NaN gives 0, never poison), then wrap.
            wide_type = like(x, I64)
            saturating = declare_intrinsic(self.module, "llvm.fptosi.sat", [wide_type, x.type],
                                                       ir.FunctionType(wide_type, [x.type]))
            wide = b.call(saturating, [x])
            return wide if to == wide_type else b.trunc(wide, to)
        if target.is_float:
            return b.sitofp(x, to) if source.is_signed and source != bool_ else b.uitofp(x, to)
        width, source_width = value_type(target).width, value_type(source).width
        if width > source_width:
            return b.sext(x, to) if source.is_signed and source != bool_ else b.zext(x, to)
        if width < source_width:
            return b.trunc(x, to)
        return x
