"""The simplify pass: each rule on text IR in, expected text IR out; then properties on random graphs."""
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphc.backends.reference import run_graph
from graphc.ir import (GraphBuilder, TensorType, bool_, f32, f64, i16, i32, i64, parse_graph, print_graph, u8,
                       verify)
from graphc.passes.simplify import is_lossless_cast, simplify
from graph_checks import assert_same_results, random_inputs


def check(before: str, after: str) -> None:
    """simplify(before) prints exactly as ``after`` and verifies."""
    result = simplify(parse_graph(before))
    verify(result)
    assert print_graph(result) == textwrap.dedent(after).strip()


# -- dead code ---------------------------------------------------------------------------

def test_dead_code_is_dropped_and_survivors_keep_their_names():
    check("""
        graph g(%x: f32[3] data) {
          %1 = exp(%x) : f32[3]
          %2 = log(%1) : f32[3]
          %3 = tanh(%x) : f32[3]
          return %3
        }""", """
        graph g(%x: f32[3] data) {
          %3 = tanh(%x) : f32[3]
          return %3
        }""")


def test_a_value_only_written_back_is_live():
    check("""
        graph g(%x: f32[3] data, %w: f32[3] param) {
          %1 = mul(%x, %w) : f32[3]
          %2 = sub(%w, %1) : f32[3]
          %3 = exp(%x) : f32[3]
          return write(%w, %2)
        }""", """
        graph g(%x: f32[3] data, %w: f32[3] param) {
          %1 = mul(%x, %w) : f32[3]
          %2 = sub(%w, %1) : f32[3]
          return write(%w, %2)
        }""")


def test_unused_inputs_stay_in_the_signature():
    check("""
        graph g(%x: f32[3] data, %unused: f32[2] data) {
          %1 = exp(%x) : f32[3]
          return %1
        }""", """
        graph g(%x: f32[3] data, %unused: f32[2] data) {
          %1 = exp(%x) : f32[3]
          return %1
        }""")


# -- common subexpressions ---------------------------------------------------------------

def test_equal_nodes_merge_and_their_users_follow():
    check("""
        graph g(%x: f32[3] data, %y: f32[3] data) {
          %1 = mul(%x, %y) : f32[3]
          %2 = mul(%x, %y) : f32[3]
          %3 = exp(%1) : f32[3]
          %4 = exp(%2) : f32[3]
          %5 = add(%3, %4) : f32[3]
          return %5
        }""", """
        graph g(%x: f32[3] data, %y: f32[3] data) {
          %1 = mul(%x, %y) : f32[3]
          %3 = exp(%1) : f32[3]
          %5 = add(%3, %3) : f32[3]
          return %5
        }""")


def test_nodes_differing_in_attributes_or_operand_order_stay_apart():
    check("""
        graph g(%x: f32[2,3] data, %y: f32[2,3] data) {
          %1 = sum(%x) {axes=[0], keepdims=false} : f32[3]
          %2 = sum(%x) {axes=[1], keepdims=false} : f32[2]
          %3 = sub(%x, %y) : f32[2,3]
          %4 = sub(%y, %x) : f32[2,3]
          return %1, %2, %3, %4
        }""", """
        graph g(%x: f32[2,3] data, %y: f32[2,3] data) {
          %1 = sum(%x) {axes=[0], keepdims=false} : f32[3]
          %2 = sum(%x) {axes=[1], keepdims=false} : f32[2]
          %3 = sub(%x, %y) : f32[2,3]
          %4 = sub(%y, %x) : f32[2,3]
          return %1, %2, %3, %4
        }""")


def test_random_nodes_with_the_same_key_merge_because_they_draw_the_same_samples():
    text = """
        graph g(%key: i64[2] state) {
          %1 = rand(%key) {shape=[4], dtype=f32} : f32[4]
          %2 = rand(%key) {shape=[4], dtype=f32} : f32[4]
          %3 = sub(%1, %2) : f32[4]
          return %3
        }"""
    check(text, """
        graph g(%key: i64[2] state) {
          %1 = rand(%key) {shape=[4], dtype=f32} : f32[4]
          %3 = sub(%1, %1) : f32[4]
          return %3
        }""")
    key = np.array([7, 3], np.int64)
    np.testing.assert_array_equal(run_graph(parse_graph(text), [key]).outputs[0], np.zeros(4, np.float32))


def test_equal_outputs_merge_into_one_value_returned_twice():
    check("""
        graph g(%x: f32[3] data) {
          %1 = exp(%x) : f32[3]
          %2 = exp(%x) : f32[3]
          return %1, %2
        }""", """
        graph g(%x: f32[3] data) {
          %1 = exp(%x) : f32[3]
          return %1, %1
        }""")


# -- constant folding ----------------------------------------------------------------------

def test_arithmetic_on_scalars_folds_to_a_full():
    check("""
        graph g(%x: f32[3] data) {
          %1 = full() {shape=[], dtype=f32, value=2.0} : f32[]
          %2 = full() {shape=[], dtype=f32, value=3.0} : f32[]
          %3 = mul(%1, %2) : f32[]
          %4 = sqrt(%3) : f32[]
          %5 = add(%x, %4) : f32[3]
          return %5
        }""", """
        graph g(%x: f32[3] data) {
          %4 = full() {shape=[], dtype=f32, value=2.4494898319244385} : f32[]
          %5 = add(%x, %4) : f32[3]
          return %5
        }""")


def test_uniform_results_of_any_size_fold_to_a_full_without_evaluating_them():
    check("""
        graph g() {
          %1 = full() {shape=[], dtype=f32, value=0.5} : f32[]
          %2 = expand(%1) {shape=[1000,1000,100]} : f32[1000,1000,100]
          %3 = exp(%2) : f32[1000,1000,100]
          %4 = cast(%3) {dtype=f64} : f64[1000,1000,100]
          return %4
        }""", """
        graph g() {
          %4 = full() {shape=[1000,1000,100], dtype=f64, value=1.6487212181091309} : f64[1000,1000,100]
          return %4
        }""")


def test_small_non_uniform_results_fold_to_a_constant():
    check("""
        graph g() {
          %1 = constant() {value=dense<[1.0,2.0,3.0] : f32[3]>} : f32[3]
          %2 = full() {shape=[], dtype=f32, value=2.0} : f32[]
          %3 = mul(%1, %2) : f32[3]
          %4 = reshape(%3) {shape=[3,1]} : f32[3,1]
          return %4
        }""", """
        graph g() {
          %4 = constant() {value=dense<[2.0,4.0,6.0] : f32[3,1]>} : f32[3,1]
          return %4
        }""")


def test_large_non_uniform_results_are_not_stored_in_the_graph():
    check("""
        graph g() {
          %1 = constant() {value=dense<[1.0,2.0] : f32[2]>} : f32[2]
          %2 = pad(%1) {pads=[0,98], value=0.0} : f32[100]
          return %2
        }""", """
        graph g() {
          %1 = constant() {value=dense<[1.0,2.0] : f32[2]>} : f32[2]
          %2 = pad(%1) {pads=[0,98], value=0.0} : f32[100]
          return %2
        }""")


def test_a_uniform_constant_becomes_a_full_and_then_an_identity():
    check("""
        graph g(%x: f32[2] data) {
          %1 = constant() {value=dense<[1.0,1.0] : f32[2]>} : f32[2]
          %2 = mul(%x, %1) : f32[2]
          return %2
        }""", """
        graph g(%x: f32[2] data) {
          return %x
        }""")


def test_a_uniform_constant_keeps_the_sign_of_zero():
    check("""
        graph g() {
          %1 = constant() {value=dense<[0.0,-0.0] : f32[2]>} : f32[2]
          %2 = constant() {value=dense<[-0.0,-0.0] : f32[2]>} : f32[2]
          return %1, %2
        }""", """
        graph g() {
          %1 = constant() {value=dense<[0.0,-0.0] : f32[2]>} : f32[2]
          %2 = full() {shape=[2], dtype=f32, value=-0.0} : f32[2]
          return %1, %2
        }""")


def test_integer_and_bool_constants_fold_in_their_dtype():
    check("""
        graph g() {
          %1 = full() {shape=[2], dtype=i32, value=7} : i32[2]
          %2 = full() {shape=[], dtype=i32, value=2} : i32[]
          %3 = sub(%1, %2) : i32[2]
          %4 = gt(%3, %2) : bool[2]
          return %3, %4
        }""", """
        graph g() {
          %3 = full() {shape=[2], dtype=i32, value=5} : i32[2]
          %4 = full() {shape=[2], dtype=bool, value=true} : bool[2]
          return %3, %4
        }""")


def test_a_reduction_of_constants_is_evaluated():
    check("""
        graph g() {
          %1 = constant() {value=dense<[1.0,2.0,3.0,4.0] : f32[2,2]>} : f32[2,2]
          %2 = sum(%1) {axes=[1], keepdims=false} : f32[2]
          return %2
        }""", """
        graph g() {
          %2 = constant() {value=dense<[3.0,7.0] : f32[2]>} : f32[2]
          return %2
        }""")


# -- identities -----------------------------------------------------------------------

@pytest.mark.parametrize("expression", [
    "mul(%x, %one)", "mul(%one, %x)", "add(%x, %zero)", "add(%zero, %x)", "sub(%x, %zero)", "div(%x, %one)",
])
def test_a_neutral_scalar_operand_is_dropped(expression):
    check(f"""
        graph g(%x: f32[2,3] data) {{
          %one = full() {{shape=[], dtype=f32, value=1.0}} : f32[]
          %zero = full() {{shape=[], dtype=f32, value=0.0}} : f32[]
          %r = {expression} : f32[2,3]
          %y = exp(%r) : f32[2,3]
          return %y
        }}""", """
        graph g(%x: f32[2,3] data) {
          %y = exp(%x) : f32[2,3]
          return %y
        }""")


@pytest.mark.parametrize("op", [
    "reshape(%x) {shape=[2,3]}",
    "permute(%x) {dims=[0,1]}",
    "expand(%x) {shape=[2,3]}",
    "slice(%x) {starts=[0,0], stops=[2,3], steps=[1,1]}",
    "pad(%x) {pads=[0,0,0,0], value=5.0}",
    "cast(%x) {dtype=f32}",
    "sum(%x) {axes=[], keepdims=false}",
    "max(%x) {axes=[], keepdims=true}",
    "stop_gradient(%x)",
    "concat(%x) {axis=1}",
])
def test_ops_that_change_nothing_are_dropped(op):
    check(f"""
        graph g(%x: f32[2,3] data) {{
          %1 = {op} : f32[2,3]
          %2 = exp(%1) : f32[2,3]
          return %2
        }}""", """
        graph g(%x: f32[2,3] data) {
          %2 = exp(%x) : f32[2,3]
          return %2
        }""")


def test_a_sum_over_a_kept_unit_axis_is_a_copy():
    check("""
        graph g(%x: f32[2,1] data) {
          %1 = sum(%x) {axes=[1], keepdims=true} : f32[2,1]
          return %1
        }""", """
        graph g(%x: f32[2,1] data) {
          return %x
        }""")


def test_double_negation_cancels():
    check("""
        graph g(%x: i32[3] data) {
          %1 = neg(%x) : i32[3]
          %2 = neg(%1) : i32[3]
          %3 = mul(%1, %2) : i32[3]
          return %3
        }""", """
        graph g(%x: i32[3] data) {
          %1 = neg(%x) : i32[3]
          %3 = mul(%1, %x) : i32[3]
          return %3
        }""")


def test_identities_that_would_change_the_type_do_not_fire():
    # x + 0 broadcasts x up to [2,3]; x * 1 of a bool is logical and, kept as it is typed bool.
    check("""
        graph g(%x: f32[3] data, %m: bool[3] data) {
          %zero = full() {shape=[2,3], dtype=f32, value=0.0} : f32[2,3]
          %1 = add(%x, %zero) : f32[2,3]
          %2 = sub(%zero, %x) : f32[2,3]
          %3 = permute(%1) {dims=[1,0]} : f32[3,2]
          %true = full() {shape=[2,3], dtype=bool, value=true} : bool[2,3]
          %4 = mul(%m, %true) : bool[2,3]
          return %2, %3, %4
        }""", """
        graph g(%x: f32[3] data, %m: bool[3] data) {
          %zero = full() {shape=[2,3], dtype=f32, value=0.0} : f32[2,3]
          %1 = add(%x, %zero) : f32[2,3]
          %2 = sub(%zero, %x) : f32[2,3]
          %3 = permute(%1) {dims=[1,0]} : f32[3,2]
          %true = full() {shape=[2,3], dtype=bool, value=true} : bool[2,3]
          %4 = mul(%m, %true) : bool[2,3]
          return %2, %3, %4
        }""")


def test_an_output_may_become_an_input():
    check("""
        graph g(%x: f32[3] data, %w: f32[3] param) {
          %1 = full() {shape=[], dtype=f32, value=1.0} : f32[]
          %2 = mul(%x, %1) : f32[3]
          %3 = stop_gradient(%w) : f32[3]
          return %2, write(%w, %3)
        }""", """
        graph g(%x: f32[3] data, %w: f32[3] param) {
          return %x, write(%w, %w)
        }""")


# -- movement chains ----------------------------------------------------------------------

def test_reshape_of_reshape_is_one_reshape():
    check("""
        graph g(%x: f32[2,3,4] data) {
          %1 = reshape(%x) {shape=[6,4]} : f32[6,4]
          %2 = reshape(%1) {shape=[24]} : f32[24]
          %3 = reshape(%2) {shape=[4,6]} : f32[4,6]
          return %3
        }""", """
        graph g(%x: f32[2,3,4] data) {
          %3 = reshape(%x) {shape=[4,6]} : f32[4,6]
          return %3
        }""")


def test_reshapes_back_to_the_start_vanish():
    check("""
        graph g(%x: f32[2,3] data) {
          %1 = reshape(%x) {shape=[6]} : f32[6]
          %2 = reshape(%1) {shape=[2,3]} : f32[2,3]
          return %2
        }""", """
        graph g(%x: f32[2,3] data) {
          return %x
        }""")


def test_permute_of_permute_composes():
    check("""
        graph g(%x: f32[2,3,4] data) {
          %1 = permute(%x) {dims=[2,0,1]} : f32[4,2,3]
          %2 = permute(%1) {dims=[0,2,1]} : f32[4,3,2]
          %3 = permute(%x) {dims=[1,2,0]} : f32[3,4,2]
          %4 = permute(%3) {dims=[2,0,1]} : f32[2,3,4]
          return %2, %4
        }""", """
        graph g(%x: f32[2,3,4] data) {
          %2 = permute(%x) {dims=[2,1,0]} : f32[4,3,2]
          return %2, %x
        }""")


def test_expand_of_expand_is_one_expand():
    check("""
        graph g(%x: f32[3,1] data) {
          %1 = expand(%x) {shape=[2,3,1]} : f32[2,3,1]
          %2 = expand(%1) {shape=[2,3,4]} : f32[2,3,4]
          return %2
        }""", """
        graph g(%x: f32[3,1] data) {
          %2 = expand(%x) {shape=[2,3,4]} : f32[2,3,4]
          return %2
        }""")


def test_expand_of_a_scalar_full_is_a_full():
    check("""
        graph g(%x: f32[2,3] data) {
          %1 = full() {shape=[], dtype=f32, value=2.0} : f32[]
          %2 = expand(%1) {shape=[2,3]} : f32[2,3]
          %3 = mul(%x, %2) : f32[2,3]
          return %3
        }""", """
        graph g(%x: f32[2,3] data) {
          %2 = full() {shape=[2,3], dtype=f32, value=2.0} : f32[2,3]
          %3 = mul(%x, %2) : f32[2,3]
          return %3
        }""")


def test_cast_through_a_lossless_middle_is_one_cast():
    check("""
        graph g(%x: f32[3] data, %i: i16[3] data) {
          %1 = cast(%x) {dtype=f64} : f64[3]
          %2 = cast(%1) {dtype=i32} : i32[3]
          %3 = cast(%i) {dtype=i64} : i64[3]
          %4 = cast(%3) {dtype=i16} : i16[3]
          return %2, %4
        }""", """
        graph g(%x: f32[3] data, %i: i16[3] data) {
          %2 = cast(%x) {dtype=i32} : i32[3]
          return %2, %i
        }""")


def test_cast_through_a_lossy_middle_stays():
    check("""
        graph g(%x: f64[3] data) {
          %1 = cast(%x) {dtype=f32} : f32[3]
          %2 = cast(%1) {dtype=f64} : f64[3]
          %3 = cast(%x) {dtype=i32} : i32[3]
          %4 = cast(%3) {dtype=f64} : f64[3]
          return %2, %4
        }""", """
        graph g(%x: f64[3] data) {
          %1 = cast(%x) {dtype=f32} : f32[3]
          %2 = cast(%1) {dtype=f64} : f64[3]
          %3 = cast(%x) {dtype=i32} : i32[3]
          %4 = cast(%3) {dtype=f64} : f64[3]
          return %2, %4
        }""")


@pytest.mark.parametrize("source, target, lossless", [
    (bool_, u8, True), (u8, i16, True), (i16, u8, False), (i32, i64, True), (i64, i32, False),
    (u8, f32, True), (i16, f32, True), (i32, f32, False), (i32, f64, True), (i64, f64, False),
    (f32, f64, True), (f64, f32, False), (f32, i64, False), (i32, bool_, False),
])
def test_lossless_casts(source, target, lossless):
    assert is_lossless_cast(source, target) == lossless


# -- a mask over a max pool's gradient ------------------------------------------------------

POOL = "kernel_size=[2,2], stride=[2,2], padding=[0,0], dilation=[1,1], ceil_mode=false"


def test_a_relu_mask_moves_to_the_pooled_side_of_a_max_pool_gradient():
    # relu then max pooling, differentiated: the relu's mask reads %y at full size in the backward
    # pass.  Moved to the pooled side it reads max_pool2d(%y), which is the forward pass's %p.
    check(f"""
        graph g(%x: f32[1,2,4,4] data, %seed: f32[1,2,2,2] data) {{
          %y = relu(%x) : f32[1,2,4,4]
          %p = max_pool2d(%y) {{{POOL}}} : f32[1,2,2,2]
          %i = max_pool2d_argmax(%y) {{{POOL}}} : u8[1,2,2,2]
          %gp = max_pool2d_grad(%seed, %i) {{{POOL}, input_size=[4,4]}} : f32[1,2,4,4]
          %zero = full() {{shape=[], dtype=f32, value=0.0}} : f32[]
          %m = gt(%y, %zero) : bool[1,2,4,4]
          %gy = where(%m, %gp, %zero) : f32[1,2,4,4]
          return %p, %gy
        }}""", f"""
        graph g(%x: f32[1,2,4,4] data, %seed: f32[1,2,2,2] data) {{
          %y = relu(%x) : f32[1,2,4,4]
          %p = max_pool2d(%y) {{{POOL}}} : f32[1,2,2,2]
          %i = max_pool2d_argmax(%y) {{{POOL}}} : u8[1,2,2,2]
          %zero = full() {{shape=[], dtype=f32, value=0.0}} : f32[]
          %2 = gt(%p, %zero) : bool[1,2,2,2]
          %3 = where(%2, %seed, %zero) : f32[1,2,2,2]
          %gy = max_pool2d_grad(%3, %i) {{{POOL}, input_size=[4,4]}} : f32[1,2,4,4]
          return %p, %gy
        }}""")


@pytest.mark.parametrize("mask", ["gt(%y, %c)", "ge(%c, %y)", "lt(%y, %c)", "le(%c, %y)", "eq(%y, %c)",
                                  "ne(%c, %y)"])
def test_moving_a_mask_through_a_max_pool_gradient_is_exact(mask):
    # Overlapping windows, padding and ceil_mode; inputs with ties, NaN and -inf.
    attrs = "kernel_size=[3,3], stride=[2,1], padding=[1,1], dilation=[1,1], ceil_mode=true"
    graph = parse_graph(f"""
        graph g(%y: f32[2,2,5,6] data, %seed: f32[2,2,3,6] data) {{
          %i = max_pool2d_argmax(%y) {{{attrs}}} : u8[2,2,3,6]
          %gp = max_pool2d_grad(%seed, %i) {{{attrs}, input_size=[5,6]}} : f32[2,2,5,6]
          %c = full() {{shape=[], dtype=f32, value=1.0}} : f32[]
          %zero = full() {{shape=[], dtype=f32, value=0.0}} : f32[]
          %m = {mask} : bool[2,2,5,6]
          %gy = where(%m, %gp, %zero) : f32[2,2,5,6]
          return %gy
        }}""")
    simpler = simplify(graph)
    verify(simpler)
    y = simpler.inputs[0]
    assert [n.op for n in simpler.nodes if y in n.inputs] == ["max_pool2d_argmax", "max_pool2d"]
    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, (2, 2, 5, 6)).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.nan
    values[rng.random(values.shape) < 0.1] = -np.inf
    inputs = {"y": values, "seed": rng.standard_normal((2, 2, 3, 6)).astype(np.float32)}
    assert_same_results(graph, simpler, inputs)


MASKED_POOL_GRADIENT = f"""
    graph g(%y: f32[1,2,4,4] data, %seed: f32[1,2,2,2] data) {{{{
      %i = max_pool2d_argmax(%y) {{{{{POOL}}}}} : u8[1,2,2,2]
      %gp = max_pool2d_grad(%seed, %i) {{{{{POOL}, input_size=[4,4]}}}} : f32[1,2,4,4]
      {{nodes}}
      return %gy
    }}}}"""


@pytest.mark.parametrize("nodes", [
    # where the mask is false the gradient is 1 (or -0.0), not the 0 that max_pool2d_grad gives
    ["%c = full() {shape=[], dtype=f32, value=0.0} : f32[]",
     "%one = full() {shape=[], dtype=f32, value=1.0} : f32[]",
     "%m = gt(%y, %c) : bool[1,2,4,4]",
     "%gy = where(%m, %gp, %one) : f32[1,2,4,4]"],
    ["%c = full() {shape=[], dtype=f32, value=0.5} : f32[]",
     "%minus_zero = full() {shape=[], dtype=f32, value=-0.0} : f32[]",
     "%m = gt(%y, %c) : bool[1,2,4,4]",
     "%gy = where(%m, %gp, %minus_zero) : f32[1,2,4,4]"],
    # the mask broadcasts %y to a larger shape
    ["%c = full() {shape=[3,1,1,1], dtype=f32, value=0.0} : f32[3,1,1,1]",
     "%zero = full() {shape=[], dtype=f32, value=0.0} : f32[]",
     "%m = gt(%y, %c) : bool[3,2,4,4]",
     "%gy = where(%m, %gp, %zero) : f32[3,2,4,4]"],
    # the threshold is no constant
    ["%t = exp(%y) : f32[1,2,4,4]",
     "%zero = full() {shape=[], dtype=f32, value=0.0} : f32[]",
     "%m = gt(%y, %t) : bool[1,2,4,4]",
     "%gy = where(%m, %gp, %zero) : f32[1,2,4,4]"],
], ids=["else-value one", "else-value minus zero", "broadcast mask", "threshold not constant"])
def test_a_mask_that_is_not_exactly_a_pooled_one_stays(nodes):
    text = MASKED_POOL_GRADIENT.format(nodes="\n      ".join(nodes))
    check(text, text)


def test_a_mask_stays_when_the_gradient_windows_are_not_the_argmax_windows():
    # 3x3 windows at stride 1 also pool a 4x4 input to 2x2, but tap numbers mean other elements there.
    other_windows = "kernel_size=[3,3], stride=[1,1], padding=[0,0], dilation=[1,1], ceil_mode=false"
    text = f"""
        graph g(%y: f32[1,2,4,4] data, %seed: f32[1,2,2,2] data) {{
          %i = max_pool2d_argmax(%y) {{{POOL}}} : u8[1,2,2,2]
          %gp = max_pool2d_grad(%seed, %i) {{{other_windows}, input_size=[4,4]}} : f32[1,2,4,4]
          %zero = full() {{shape=[], dtype=f32, value=0.0}} : f32[]
          %m = gt(%y, %zero) : bool[1,2,4,4]
          %gy = where(%m, %gp, %zero) : f32[1,2,4,4]
          return %gy
        }}"""
    check(text, text)


# -- the pass as a whole ------------------------------------------------------------------

def test_the_input_graph_is_left_untouched_and_shares_no_nodes():
    text = """
        graph g(%x: f32[3] data) {
          %1 = full() {shape=[], dtype=f32, value=1.0} : f32[]
          %2 = mul(%x, %1) : f32[3]
          %3 = exp(%2) : f32[3]
          return %3
        }"""
    graph = parse_graph(text)
    before = print_graph(graph)
    result = simplify(graph)
    assert print_graph(graph) == before
    original = {id(n) for n in (*graph.inputs, *graph.nodes)}
    assert not original & {id(n) for n in (*result.inputs, *result.nodes)}


def test_source_locations_survive():
    check("""
        graph g(%x: f32[3] data) {
          %1 = exp(%x) : f32[3]  # model.py:3
          %2 = exp(%x) : f32[3]  # model.py:4
          %3 = add(%1, %2) : f32[3]  # model.py:5
          return %3
        }""", """
        graph g(%x: f32[3] data) {
          %1 = exp(%x) : f32[3]  # model.py:3
          %3 = add(%1, %1) : f32[3]  # model.py:5
          return %3
        }""")


# -- properties on random graphs -------------------------------------------------------------

SCALARS = (0.0, 1.0, 2.0, -0.5)


def _shapes(draw, rank_max=3):
    return tuple(draw(st.lists(st.integers(1, 3), max_size=rank_max)))


def _unary(draw, b, x):
    return b.op(draw(st.sampled_from(["neg", "exp", "relu", "abs", "tanh", "stop_gradient"])), x)


def _binary(draw, b, x, values):
    op = draw(st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
    other = draw(st.sampled_from(values))
    if draw(st.booleans()):
        other = b.full(shape=(), dtype=x.dtype, value=draw(st.sampled_from(SCALARS)))
    if other.dtype != x.dtype or not _broadcastable(x.shape, other.shape):
        other = x
    return b.op(op, *((x, other) if draw(st.booleans()) else (other, x)))


def _broadcastable(a, b):
    return all(p == q or 1 in (p, q) for p, q in zip(reversed(a), reversed(b)))


def _movement(draw, b, x):
    rank = x.type.rank
    # pad's numpy reference cannot pad a rank-0 tensor (np.pad rejects an empty pad list).
    kind = draw(st.sampled_from(["reshape", "permute", "expand", "slice", "pad"][:5 if rank else 4]))
    if kind == "reshape":
        shape = draw(st.sampled_from([x.shape, (x.type.numel,), (1, *x.shape), x.shape[::-1]]))
        return b.reshape(x, shape=shape) if np.prod(shape) == x.type.numel else b.reshape(x, shape=x.shape)
    if kind == "permute":
        return b.permute(x, dims=draw(st.permutations(range(rank))))
    if kind == "expand":
        lead = draw(st.sampled_from([(), (2,)]))
        return b.expand(x, shape=lead + tuple(2 if d == 1 and draw(st.booleans()) else d for d in x.shape))
    if kind == "slice":
        starts = [draw(st.integers(0, d - 1)) for d in x.shape]
        return b.slice(x, starts=starts, stops=[d for d in x.shape], steps=[1] * rank)
    return b.pad(x, pads=[draw(st.integers(0, 1)) for _ in range(2 * rank)])


def _reduction(draw, b, x):
    axes = draw(st.lists(st.integers(0, max(x.type.rank - 1, 0)), unique=True, max_size=x.type.rank))
    return b.op(draw(st.sampled_from(["sum", "max"])), x, axes=axes if x.type.rank else [],
                keepdims=draw(st.booleans()))


def _cast(draw, b, x):
    middle = b.cast(x, dtype=draw(st.sampled_from([f32, f64, i32])))
    return b.cast(middle, dtype=f32)


def _constant(draw, b, x):
    if draw(st.booleans()):
        return b.full(shape=_shapes(draw), dtype=f32, value=draw(st.sampled_from(SCALARS)))
    values = draw(st.lists(st.sampled_from(SCALARS), min_size=1, max_size=4))
    return b.constant(value=np.array(values, np.float32))


@st.composite
def random_graphs(draw):
    """Small valid graphs of elementwise, movement, reduction, cast and constant nodes.

    Scalars 0 and 1, repeated subexpressions and chains of movements arise
    often, so every simplify rule gets exercised; some values are written back.
    """
    b = GraphBuilder("random")
    values = [b.input(f"x{i}", TensorType(_shapes(draw), f32)) for i in range(draw(st.integers(1, 3)))]
    state = b.input("w", TensorType(_shapes(draw), f32), tag="param")
    values.append(state)
    for _ in range(draw(st.integers(1, 14))):
        x = draw(st.sampled_from(values))
        kind = draw(st.sampled_from(["unary", "binary", "movement", "reduction", "cast", "constant", "repeat"]))
        if kind == "binary":
            value = _binary(draw, b, x, values)
        elif kind == "repeat" and b.nodes:        # the same op again: food for CSE
            node = draw(st.sampled_from(b.nodes))
            value = b.op(node.op, *node.inputs, **node.attrs)
        else:
            maker = {"unary": _unary, "movement": _movement, "reduction": _reduction, "cast": _cast,
                     "constant": _constant, "repeat": _unary}[kind]
            value = maker(draw, b, x)
        if value.dtype == f32:                    # a repeated cast may give the middle of a cast pair
            values.append(value)
    b.output(values[-1], *draw(st.lists(st.sampled_from(values), max_size=2)))
    same_type_as_state = [v for v in values if v.type == state.type]
    if draw(st.booleans()):
        b.write(state, draw(st.sampled_from(same_type_as_state)))
    return b.build()


PROPERTY_SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(random_graphs(), st.integers(0, 2**32 - 1))
def test_simplify_keeps_the_graph_valid_and_its_results_exact(graph, seed):
    # No rule reassociates arithmetic, so results agree exactly (NaN with NaN).
    simpler = simplify(graph)
    verify(simpler)
    assert len(simpler.nodes) <= len(graph.nodes)
    assert_same_results(graph, simpler, random_inputs(graph, seed))


@PROPERTY_SETTINGS
@given(random_graphs())
def test_simplify_is_idempotent(graph):
    once = simplify(graph)
    assert simplify(once) == once
