"""The kernel IR as text: a program, a kernel or an expression, readable at a glance.

    kernel k0_4 %4 (contraction: conv2d reshape add relu)  # examples/models.py:24
      reads %x, %conv1.weight, %conv1.bias; writes %4
      parallel for i1 in 0..4:
        for i2 in 0..6:
          ...
            acc5: f32 = 0.0
            for r6 in 0..3:
              ...
                acc5 = acc5 + %x[...] * %conv1.weight[...]
            v9 = max(acc5 + %conv1.bias[i2], 0.0)
            %4[i1*4704 + i2*784 + i3*28 + i4] = v9
"""
from __future__ import annotations

from .ir import (Accumulator, Assign, Binary, Buffer, Cast, Check, Const, Expr, Kernel, Let, Load, Local, Loop,
                 Program, Ref, Select, Stmt, Store, Unary, Var, walk_statements)

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "rem": "%", "and": "&", "or": "|", "xor": "^",
          "shl": "<<", "lshr": ">>>", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
# Binding strength: tighter operators print without parentheses inside looser ones.
_PRECEDENCE = {"or": 1, "xor": 2, "and": 3, "eq": 4, "ne": 4, "lt": 5, "le": 5, "gt": 5, "ge": 5,
               "shl": 6, "lshr": 6, "add": 7, "sub": 7, "mul": 8, "div": 8, "rem": 8}


def print_program(program: Program) -> str:
    lines = [f"program {program.name}: {len(program.kernels)} kernels, arena {program.arena_bytes} bytes"]
    lines += ["  " + describe_buffer(b) for b in program.buffers.values()]
    for kernel in program.kernels:
        lines.append("")
        lines.append(print_kernel(kernel))
    for copy in program.copies:
        lines.append(f"copy %{copy.source} -> %{copy.target}")
    lines.append(f"return {', '.join('%' + o for o in program.outputs)}")
    return "\n".join(lines)


def describe_buffer(buffer: Buffer) -> str:
    shape = f"{buffer.dtype}[{','.join(map(str, buffer.shape))}]"
    where = {"arena": f"arena@{buffer.offset}", "input": "input", "constant": "constant",
             "state": f"state %{buffer.source}"}[buffer.place]
    return f"buffer %{buffer.name}: {shape} {where}"


def print_kernel(kernel: Kernel) -> str:
    head = f"kernel {kernel.name} %{kernel.node} ({kernel.what})"
    if kernel.loc:
        head += f"  # {kernel.loc}"
    lines = [head, f"  reads {', '.join('%' + b for b in kernel.inputs) or 'nothing'}; "
                   f"writes {', '.join('%' + b for b in kernel.outputs)}"]
    scratch = frozenset(stmt.name for stmt in walk_statements(kernel.body) if isinstance(stmt, Local))
    _statements(kernel.body, 1, lines, scratch)
    return "\n".join(lines)


def _statements(body, depth: int, lines: list[str], scratch: frozenset[str]) -> None:
    for stmt in body:
        _statement(stmt, depth, lines, scratch)


def _statement(stmt: Stmt, depth: int, lines: list[str], scratch: frozenset[str]) -> None:
    pad = "  " * depth

    def fmt(expr: Expr) -> str:
        return format_expr(expr, scratch=scratch)
    if isinstance(stmt, Loop):
        kind = "" if stmt.kind == "serial" else stmt.kind + " "
        padding = f" (padded to {stmt.padded_to})" if stmt.padded_to else ""
        lines.append(f"{pad}{kind}for {stmt.var} in {fmt(stmt.start)}..{fmt(stmt.stop)}{padding}:")
        _statements(stmt.body, depth + 1, lines, scratch)
    elif isinstance(stmt, Let):
        lines.append(f"{pad}{stmt.name} = {fmt(stmt.value)}")
    elif isinstance(stmt, Accumulator):
        kind = " (sum)" if stmt.reassociable else ""
        lines.append(f"{pad}{stmt.name}: {stmt.init.dtype}{kind} = {fmt(stmt.init)}")
    elif isinstance(stmt, Local):
        lines.append(f"{pad}{stmt.name}: {stmt.dtype}[{stmt.size}]")
    elif isinstance(stmt, Assign):
        lines.append(f"{pad}{stmt.name} = {fmt(stmt.value)}")
    elif isinstance(stmt, Store):
        kind = " (sum)" if stmt.reassociable else ""
        lines.append(f"{pad}{_buffer(stmt.buffer, scratch)}[{fmt(stmt.index)}] ={kind} {fmt(stmt.value)}")
    elif isinstance(stmt, Check):
        lines.append(f"{pad}check {fmt(stmt.cond)} else error {stmt.error} ({fmt(stmt.value)})")
    else:
        raise TypeError(f"not a kernel-IR statement: {stmt!r}")


def _buffer(name: str, scratch: frozenset[str]) -> str:
    """A program buffer as ``%name``, a kernel's scratch row as its bare name."""
    return name if name in scratch else "%" + name


def format_expr(expr: Expr, parent: int = 0, scratch: frozenset[str] = frozenset()) -> str:
    """``expr`` as text; loads from the ``scratch`` rows print without the ``%`` of program buffers."""
    def fmt(e: Expr, strength: int = 0) -> str:
        return format_expr(e, strength, scratch)
    if isinstance(expr, Const):
        return _const(expr)
    if isinstance(expr, (Var, Ref)):
        return expr.name
    if isinstance(expr, Load):
        where = "" if expr.mask is None else f" if {fmt(expr.mask)}"
        return f"{_buffer(expr.buffer, scratch)}[{fmt(expr.index)}{where}]"
    if isinstance(expr, Unary):
        return f"{expr.op}({fmt(expr.x)})"
    if isinstance(expr, Cast):
        return f"{expr.dtype}({fmt(expr.x)})"
    if isinstance(expr, Select):
        return f"select({fmt(expr.cond)}, {fmt(expr.a)}, {fmt(expr.b)})"
    if isinstance(expr, Binary):
        if expr.op not in _INFIX:
            return f"{expr.op}({fmt(expr.a)}, {fmt(expr.b)})"
        strength = _PRECEDENCE[expr.op]
        text = f"{fmt(expr.a, strength)} {_INFIX[expr.op]} {fmt(expr.b, strength + 1)}"
        return f"({text})" if strength < parent else text
    raise TypeError(f"not a kernel-IR expression: {expr!r}")


def _const(expr: Const) -> str:
    if expr.dtype.name == "bool":
        return "true" if expr.value else "false"
    if expr.dtype.is_float:
        return repr(float(expr.value))
    return str(expr.value)
