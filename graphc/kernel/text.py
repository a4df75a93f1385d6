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

from .ir import (Accumulator, Local, Assign, Binary, Buffer, Cast, Check, Const, Expr, Kernel, Let, Load, Loop, Program,
                 Ref, Select, Stmt, Store, Unary, Var)

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
    _statements(kernel.body, 1, lines)
    return "\n".join(lines)


def _statements(body, depth: int, lines: list[str]) -> None:
    for stmt in body:
        _statement(stmt, depth, lines)


def _statement(stmt: Stmt, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if isinstance(stmt, Loop):
        kind = "" if stmt.kind == "serial" else stmt.kind + " "
        lines.append(f"{pad}{kind}for {stmt.var} in {format_expr(stmt.start)}..{format_expr(stmt.stop)}:")
        _statements(stmt.body, depth + 1, lines)
    elif isinstance(stmt, Let):
        lines.append(f"{pad}{stmt.name} = {format_expr(stmt.value)}")
    elif isinstance(stmt, Accumulator):
        kind = " (sum)" if stmt.reassociable else ""
        lines.append(f"{pad}{stmt.name}: {stmt.init.dtype}{kind} = {format_expr(stmt.init)}")
    elif isinstance(stmt, Local):
        lines.append(f"{pad}{stmt.name}: {stmt.dtype}[{stmt.size}]")
    elif isinstance(stmt, Assign):
        lines.append(f"{pad}{stmt.name} = {format_expr(stmt.value)}")
    elif isinstance(stmt, Store):
        target = stmt.buffer if stmt.buffer.startswith("row") else "%" + stmt.buffer
        kind = " (sum)" if stmt.reassociable else ""
        lines.append(f"{pad}{target}[{format_expr(stmt.index)}] ={kind} {format_expr(stmt.value)}")
    elif isinstance(stmt, Check):
        lines.append(f"{pad}check {format_expr(stmt.cond)} else error {stmt.error} ({format_expr(stmt.value)})")
    else:
        raise TypeError(f"not a kernel-IR statement: {stmt!r}")


def format_expr(expr: Expr, parent: int = 0) -> str:
    if isinstance(expr, Const):
        return _const(expr)
    if isinstance(expr, (Var, Ref)):
        return expr.name
    if isinstance(expr, Load):
        target = expr.buffer if expr.buffer.startswith("row") else "%" + expr.buffer
        return f"{target}[{format_expr(expr.index)}]"
    if isinstance(expr, Unary):
        return f"{expr.op}({format_expr(expr.x)})"
    if isinstance(expr, Cast):
        return f"{expr.dtype}({format_expr(expr.x)})"
    if isinstance(expr, Select):
        return f"select({format_expr(expr.cond)}, {format_expr(expr.a)}, {format_expr(expr.b)})"
    if isinstance(expr, Binary):
        if expr.op not in _INFIX:
            return f"{expr.op}({format_expr(expr.a)}, {format_expr(expr.b)})"
        strength = _PRECEDENCE[expr.op]
        text = f"{format_expr(expr.a, strength)} {_INFIX[expr.op]} {format_expr(expr.b, strength + 1)}"
        return f"({text})" if strength < parent else text
    raise TypeError(f"not a kernel-IR expression: {expr!r}")


def _const(expr: Const) -> str:
    if expr.dtype.name == "bool":
        return "true" if expr.value else "false"
    if expr.dtype.is_float:
        return repr(float(expr.value))
    return str(expr.value)
