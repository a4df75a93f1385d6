"""Every registered primitive is complete: shape rule, reference, lowering, doc, and a gradient rule if
differentiable."""
import pytest

from graphc.ops.registry import OPS

FAMILIES = {"elementwise", "reduction", "movement", "contraction", "window", "index", "random", "source", "fused"}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_is_complete(name):
    op = OPS[name]
    assert op.family in FAMILIES, f"{name}: unknown family {op.family}"
    assert callable(op.shape_rule), f"{name} has no shape rule"
    assert callable(op.reference), f"{name} has no numpy reference"
    assert callable(op.lower), f"{name} has no lowering to kernel IR"
    assert op.doc, f"{name} has no doc line"
    if op.differentiable:
        assert callable(op.grad), f"{name} is differentiable but has no gradient rule"


def test_the_primitive_set_is_the_designed_one():
    expected = {
        "neg", "abs", "exp", "log", "sqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu",
        "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
        "where", "cast", "stop_gradient", "sum", "max", "min", "argmax", "reshape", "permute", "expand",
        "slice", "pad", "concat", "matmul", "conv2d", "conv_transpose2d", "conv2d_weight_grad", "unfold", "fold",
        "max_pool2d", "max_pool2d_argmax", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad", "gather", "scatter_add",
        "one_hot", "rand", "randn", "full", "constant", "fused", "tuple_get",
    }
    assert set(OPS) == expected


def test_what_passes_ask_fits_each_op():
    # The fields passes read instead of keeping lists of op names.
    for name, op in OPS.items():
        if op.reindexes or op.operand_view or op.broadcasts or op.keeps_element_order:
            assert op.family == "movement", name
        if op.cheap:
            assert op.family == "window", name
        if op.reads_operand_views:
            assert op.family == "contraction" or op.operand_view, name
    assert {n for n, op in OPS.items() if op.reindexes} == {"reshape", "permute", "expand", "slice"}
