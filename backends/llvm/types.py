"""The LLVM types of kernel-IR values: bools are i1 in registers and one byte in memory."""
from __future__ import annotations

import llvmlite.ir as ir

from graphc.ir.dtypes import DType, bool_, f32, f64

I1, I8, I32, I64, PTR = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64), ir.PointerType()


def value_type(dtype: DType) -> ir.Type:
    if dtype == f32:
        return ir.FloatType()
    if dtype == f64:
        return ir.DoubleType()
    if dtype == bool_:
        return I1
    return ir.IntType(dtype.itemsize * 8)


def memory_type(dtype: DType) -> ir.Type:
    return I8 if dtype == bool_ else value_type(dtype)


def like(value, scalar: ir.Type) -> ir.Type:
    """``scalar``, or a vector of it as wide as ``value`` where ``value`` is a vector."""
    if isinstance(value.type, ir.VectorType):
        return ir.VectorType(scalar, value.type.count)
    return scalar


def constant_like(value, scalar: ir.Type, number) -> ir.Constant:
    """The constant ``number`` of type ``like(value, scalar)``."""
    type_ = like(value, scalar)
    if isinstance(type_, ir.VectorType):
        return ir.Constant(type_, [number] * type_.count)
    return ir.Constant(type_, number)


def _overload_suffix(type_: ir.Type) -> str:
    if isinstance(type_, ir.VectorType):
        return f"v{type_.count}{type_.element.intrinsic_name}"
    return type_.intrinsic_name


def declare_intrinsic(module: ir.Module, name: str, overloads: list[ir.Type], signature: ir.FunctionType):
    """The LLVM intrinsic ``name`` overloaded on ``overloads``, vectors included (llvmlite's own
    ``declare_intrinsic`` names scalar overloads only)."""
    full_name = ".".join([name, *(_overload_suffix(t) for t in overloads)])
    try:
        return module.get_global(full_name)
    except KeyError:
        return ir.Function(module, signature, full_name)
