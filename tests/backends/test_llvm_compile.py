"""How the LLVM backend compiles: what it leaves behind in the process that compiled.

Times are never asserted: ``benchmarks/compile_time.py`` measures them.
"""
import gc

import llvmlite.ir as ir

from graphc.backends import llvm


def _module_of_straight_code(length: int) -> ir.Module:
    """A kernel-like module: one function, a long block of loads, arithmetic and stores."""
    module = ir.Module()
    f32 = ir.FloatType()
    function = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.PointerType()]), "straight")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    base = function.args[0]
    for i in range(length):
        address = b.gep(base, [ir.Constant(ir.IntType(64), i)], source_etype=f32)
        b.store(b.fmul(b.load(address, typ=f32), ir.Constant(f32, 2.0)), address)
    b.ret_void()
    return module


def test_a_rendered_module_leaves_almost_nothing_for_the_collector():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        before = len(gc.get_objects())
        module = _module_of_straight_code(200)
        made = len(gc.get_objects()) - before
        text = llvm._text(module)
        del module
        assert text.count("store float") == 200
        # Each instruction and its operands were freed as the module was taken apart; what is
        # left in cycles (the function and its module, arguments) does not grow with the code.
        assert gc.collect() < made / 20
    finally:
        if was_enabled:
            gc.enable()
