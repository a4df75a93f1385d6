"""Index arithmetic simplified by loop ranges: what it proves away, what it leaves, and that every
simplified index takes the values the original took on every iteration."""
import itertools
import random

import pytest

from graphc.ir.dtypes import bool_, f32, i64
from graphc.kernel import expr as E
from graphc.kernel.indices import simplify_indices
from graphc.kernel.ir import Binary, Const, Kernel, Load, Loop, Store, Var
from graphc.kernel.text import format_expr


def _kernel(index, loops):
    """A kernel copying ``src[index]`` to ``out`` inside ``loops`` ([(var, start, stop)], outermost first)."""
    body = (Store("out", Const(0, i64), Load("src", index, f32)),)
    for var, start, stop in reversed(loops):
        body = (Loop(var, Const(start, i64), Const(stop, i64), body),)
    return Kernel("k", "n", "test", body, ("src",), ("out",))


def _simplified_index(index, loops):
    kernel = simplify_indices(_kernel(index, loops))
    stmt = kernel.body[0]
    while isinstance(stmt, Loop):
        stmt = stmt.body[0]
    return stmt.value.index


i1, i2, i3 = Var("i1"), Var("i2"), Var("i3")
LOOPS = [("i1", 0, 32), ("i2", 0, 64), ("i3", 0, 64)]


def test_a_per_channel_read_through_a_flat_position_is_the_channel():
    flat = E.add(E.mul(E.add(E.mul(i1, 64), i2), 64), i3)
    assert _simplified_index(E.rem(E.div(flat, 64), 64), LOOPS) == i2
    assert format_expr(_simplified_index(E.div(flat, 64), LOOPS)) == "i1 * 64 + i2"
    assert _simplified_index(E.rem(flat, 64), LOOPS) == i3


def test_a_division_of_a_division_is_one_division():
    flat = E.add(E.mul(i1, 64), i2)
    assert format_expr(_simplified_index(E.div(E.div(flat, 2), 4), [("i1", 0, 4), ("i2", 0, 20)])) == \
        "i1 * 8 + i2 / 8"


def test_a_transposes_flat_index_divides_once_per_row():
    """(p*128 + c) / 6272 with c < 128 is p / 49: the divisor's factor 128 comes out of the terms
    whose coefficients it divides, and the rest never reaches it."""
    p, c = Var("p"), Var("c")
    loops = [("p", 0, 1568), ("c", 0, 128)]
    flat = E.add(E.mul(p, 128), c)
    assert format_expr(_simplified_index(E.div(flat, 6272), loops)) == "p / 49"
    assert format_expr(_simplified_index(E.rem(flat, 6272), loops)) == "p % 49 * 128 + c"
    kernel = _kernel(E.div(flat, 6272), [("p", 0, 1568), ("c", 0, 129)])   # c may reach 128
    assert simplify_indices(kernel) is kernel


def test_what_cannot_be_proved_is_left_as_it_was():
    flat = E.add(E.mul(i2, 64), i3)
    # i3 may reach 64: only the multiples of 64 come out of the division.
    assert format_expr(_simplified_index(E.div(flat, 64), [("i2", 0, 64), ("i3", 0, 65)])) == "i2 + i3 / 64"
    kernel = _kernel(E.div(flat, 64), [("i2", 0, 64), ("i3", -1, 63)])     # the sum may be negative
    assert simplify_indices(kernel) is kernel


def test_clamps_that_never_clamp_and_comparisons_that_never_change_fold():
    r = Var("r")
    assert _simplified_index(E.clamp(r, 8), [("r", 0, 8)]) == r
    assert format_expr(_simplified_index(E.clamp(E.sub(r, 1), 8), [("r", 0, 8)])) == "max(r - 1, 0)"
    check = E.select(E.in_range(r, 8), r, Const(0, i64))
    assert _simplified_index(check, [("r", 0, 8)]) == r
    assert _simplified_index(E.select(E.lt(r, 0), Const(1, i64), r), [("r", 0, 8)]) == r


# -- every simplified index takes the original's values -----------------------------------------------

def _evaluate(e, env):
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Var):
        return env[e.name]
    if e.op == "and":
        return _evaluate(e.a, env) and _evaluate(e.b, env)
    a, b = _evaluate(e.a, env), _evaluate(e.b, env)
    if e.op == "div":                                       # C: toward zero
        return abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    if e.op == "rem":
        return a - b * (abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1))
    return {"add": a + b, "sub": a - b, "mul": a * b, "max": max(a, b), "min": min(a, b), "lt": a < b,
            "ge": a >= b}[e.op]


def _random_index(rng, depth):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([i1, i2, i3, Const(rng.randint(-3, 9), i64)])
    op = rng.choice(["add", "add", "sub", "mul", "div", "rem", "max", "min"])
    a = _random_index(rng, depth - 1)
    b = Const(rng.choice([1, 2, 3, 4, 8]), i64) if op in ("mul", "div", "rem") else _random_index(rng, depth - 1)
    return Binary(op, a, b, i64)


@pytest.mark.parametrize("seed", range(4))
def test_simplified_indices_agree_with_the_originals_on_every_iteration(seed):
    rng = random.Random(seed)
    loops = [("i1", 0, 3), ("i2", 0, 4), ("i3", -2, 5)]
    for _ in range(150):
        index = _random_index(rng, 4)
        simplified = _simplified_index(index, loops)
        for values in itertools.product(*(range(start, stop) for _, start, stop in loops)):
            env = dict(zip(("i1", "i2", "i3"), values))
            assert _evaluate(simplified, env) == _evaluate(index, env), \
                f"{format_expr(index)} -> {format_expr(simplified)} at {env}"
