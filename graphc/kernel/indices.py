"""Index arithmetic simplified with the ranges of the loops around it.

Lowerings index a tensor through its reshapes and broadcasts by flattening a
position and unflattening it again: a per-channel value of an ``[N, C, H*W]``
tensor is read at ``((n * C + c) * HW + i) / HW % C``.  Knowing that ``i``
stays in ``[0, HW)`` and ``c`` in ``[0, C)``, that index is just ``c``.  Left as
it is, the index differs from lane to lane of a vectorized loop (a gather of
64 loads where one load and a broadcast do), and LLVM spends most of a second
on each such kernel proving what this file proves in a few lines.

The rule, for an index ``e = d * q + r`` that is never negative, with ``d`` a
positive constant and ``0 <= r < d`` on every iteration: ``e / d`` is ``q``
and ``e % d`` is ``r``.  ``simplify_indices`` applies it to every integer
division and remainder by a constant in a kernel, splitting ``e`` into the
terms whose coefficients ``d`` divides (``q``) and the rest (``r``), with the
bounds of ``r`` from ``intervals.bounds``.  Where ``r`` may reach ``d`` but
``q`` and ``r`` are never negative, the multiples of ``d`` still come out:
``e / d`` is ``q + r / d`` and ``e % d`` is ``r % d`` (a flat reduction over a
batch, read through a transpose: one division per step, not one per row).  What
it cannot prove it leaves as it was, so a kernel's results never change.
"""
from __future__ import annotations

from dataclasses import replace
from math import gcd

from ..ir.dtypes import bool_, i64
from . import expr as E
from .intervals import Interval, bounds
from .ir import (Accumulator, Assign, Binary, Cast, Check, Const, Expr, Kernel, Let, Load, Local, Loop, Ref, Select,
                 Store, Unary, Var, walk_expr)

# For each integer comparison, from the bounds of its operands: (always true, never true).
_COMPARISONS = {
    "lt": lambda al, ah, bl, bh: (ah < bl, al >= bh),
    "le": lambda al, ah, bl, bh: (ah <= bl, al > bh),
    "gt": lambda al, ah, bl, bh: (al > bh, ah <= bl),
    "ge": lambda al, ah, bl, bh: (al >= bh, ah < bl),
    "eq": lambda al, ah, bl, bh: (al == ah == bl == bh, ah < bl or al > bh),
    "ne": lambda al, ah, bl, bh: (ah < bl or al > bh, al == ah == bl == bh),
}

# An index as a sum: {term: coefficient} and a constant, each term an expression other than
# a sum, a difference or a product by a constant (a loop variable, a let, a division).
Terms = dict


def simplify_indices(kernel: Kernel) -> Kernel:
    """``kernel`` with every index division and remainder it can prove away removed."""
    simplifier = _Simplifier()
    body = simplifier.statements(kernel.body)
    return kernel if not simplifier.changed else replace(kernel, body=body)


class _Simplifier:
    def __init__(self):
        self.ranges: dict[str, Interval] = {}     # loop variables and integer lets: the values they take
        # Each expression object's simplified form, by identity: hashing a tree hashes all of it,
        # and the lowering shares subtrees as objects.  The expression is kept, so its id stays its own.
        self.memo: dict[int, tuple[Expr, Expr]] = {}
        self.changed = False

    # -- statements ---------------------------------------------------------------------
    def statements(self, body) -> tuple:
        return tuple(self.statement(stmt) for stmt in body)

    def statement(self, stmt):
        if isinstance(stmt, Let):
            value = self.expr(stmt.value)
            if value.dtype == i64:
                self.ranges[stmt.name] = bounds(value, self.ranges)
            return stmt if value is stmt.value else replace(stmt, value=value)
        if isinstance(stmt, Loop):
            start, stop = self.expr(stmt.start), self.expr(stmt.stop)
            self.ranges[stmt.var] = (bounds(start, self.ranges)[0], bounds(stop, self.ranges)[1] - 1)
            return replace(stmt, start=start, stop=stop, body=self.statements(stmt.body))
        if isinstance(stmt, Store):
            return replace(stmt, index=self.expr(stmt.index), value=self.expr(stmt.value))
        if isinstance(stmt, (Assign, Accumulator)):
            field = "value" if isinstance(stmt, Assign) else "init"
            return replace(stmt, **{field: self.expr(getattr(stmt, field))})
        if isinstance(stmt, Check):
            return replace(stmt, cond=self.expr(stmt.cond), value=self.expr(stmt.value))
        if isinstance(stmt, Local):
            return stmt
        raise TypeError(f"cannot simplify {stmt!r}")

    # -- expressions ---------------------------------------------------------------------
    def expr(self, e: Expr) -> Expr:
        known = self.memo.get(id(e))
        if known is None:
            known = self.memo[id(e)] = (e, self._expr(e))
        return known[1]

    def _expr(self, e: Expr) -> Expr:
        if isinstance(e, Load):
            index = self.expr(e.index)
            return e if index is e.index else replace(e, index=index)
        if isinstance(e, (Unary, Cast)):
            x = self.expr(e.x)
            return e if x is e.x else replace(e, x=x)
        if isinstance(e, Select):
            cond, a, b = self.expr(e.cond), self.expr(e.a), self.expr(e.b)
            return e if (cond, a, b) == (e.cond, e.a, e.b) else E.select(cond, a, b)
        if not isinstance(e, Binary):
            return e
        a, b = self.expr(e.a), self.expr(e.b)
        if a.dtype == i64:
            simpler = self.decided(e.op, a, b)
            if simpler is not None:
                self.changed = True
                return simpler
        if (a, b) == (e.a, e.b):
            return e
        return E.logical_and(a, b) if e.op == "and" and e.dtype == bool_ else E.binary(e.op, a, b)

    def decided(self, op: str, a: Expr, b: Expr) -> Expr | None:
        """Integer ``a op b`` made simpler by what the ranges say, or None."""
        if op in ("div", "rem") and isinstance(b, Const) and b.value > 0:
            return self.divided(op, a, b.value)
        if op in ("min", "max"):                    # a clamp that never clamps
            (a_low, a_high), (b_low, b_high) = bounds(a, self.ranges), bounds(b, self.ranges)
            if (a_high <= b_low) == (op == "min") and (a_high <= b_low or a_low >= b_high):
                return a
            if (b_high <= a_low) == (op == "min") and (b_high <= a_low or b_low >= a_high):
                return b
            return None
        if op in _COMPARISONS:
            (a_low, a_high), (b_low, b_high) = bounds(a, self.ranges), bounds(b, self.ranges)
            always, never = _COMPARISONS[op](a_low, a_high, b_low, b_high)
            return Const(True, bool_) if always else Const(False, bool_) if never else None
        return None

    def divided(self, op: str, numerator: Expr, divisor: int) -> Expr | None:
        """``numerator / divisor`` or ``numerator % divisor`` without the division, if provable."""
        if bounds(numerator, self.ranges)[0] < 0:        # C division truncates: the rule needs e >= 0
            return None
        if op == "div" and isinstance(numerator, Binary) and numerator.op == "div" \
                and isinstance(numerator.b, Const) and numerator.b.value > 0 \
                and bounds(numerator.a, self.ranges)[0] >= 0:
            inner = numerator.b.value                     # e / a / b is e / (a * b) for e >= 0
            return self.divided("div", numerator.a, inner * divisor) or \
                E.div(numerator.a, inner * divisor)
        terms, constant = index_terms(numerator)
        quotient: Terms = {}
        rest: Terms = {}
        for term, coefficient in terms.items():
            if coefficient % divisor == 0:
                quotient[term] = coefficient // divisor
            else:
                rest[term] = coefficient
        quotient_constant, rest_constant = divmod(constant, divisor)
        remainder = _sum(rest, rest_constant)
        low, high = bounds(remainder, self.ranges)
        if low >= 0 and high < divisor:
            return _sum(quotient, quotient_constant) if op == "div" else remainder
        if low >= 0 and quotient and bounds(_sum(quotient, quotient_constant), self.ranges)[0] >= 0:
            # (d*q + r) / d = q + r / d and (d*q + r) % d = r % d for q, r >= 0: the multiples of d
            # come out (a row's offset in a flat reduction over a batch: the division once per
            # reduction step, shared by every row, rather than once per row).
            part = self.divided(op, remainder, divisor) or E.binary(op, remainder, divisor)
            return E.add(_sum(quotient, quotient_constant), part) if op == "div" else part
        return self.divided_in_steps(op, terms, constant, divisor)

    def divided_in_steps(self, op: str, terms: Terms, constant: int, divisor: int) -> Expr | None:
        """``e = k*q + r`` with ``k`` a factor of the divisor ``d = k*m`` (the coefficients of some
        terms multiples of it) and ``0 <= r < k``, ``q >= 0``: ``e / d`` is ``q / m`` and ``e % d`` is
        ``(q % m) * k + r``.  A transpose's flat index ``(p*128 + c) / 6272`` with ``c < 128`` is
        ``p / 49``: one division per row rather than one per lane."""
        for step in sorted({gcd(c, divisor) for c in terms.values()} - {1, divisor}, reverse=True):
            quotient = {term: c // step for term, c in terms.items() if c % step == 0}
            rest = {term: c for term, c in terms.items() if c % step}
            quotient_constant, rest_constant = divmod(constant, step)
            remainder = _sum(rest, rest_constant)
            low, high = bounds(remainder, self.ranges)
            scaled = _sum(quotient, quotient_constant)
            if low < 0 or high >= step or bounds(scaled, self.ranges)[0] < 0:
                continue
            part = self.divided(op, scaled, divisor // step) or E.binary(op, scaled, divisor // step)
            return part if op == "div" else E.add(E.mul(part, step), remainder)
        return None


# Lanes of a vectorized loop that access elements further apart than this are accessed one by
# one (a backend gathers nearer ones as one span: graphc.backends.llvm.lanes.MAX_SPAN).
FAR_APART = 4


def lanes_far_apart(index: Expr, var: str, lets: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether the lanes of loop ``var`` access ``index`` more than FAR_APART elements apart, or
    not a constant distance apart (see ``loop_stride``)."""
    stride = loop_stride(index, var, lets)
    return stride is None or abs(stride) > FAR_APART


def loop_stride(index: Expr, var: str, lets: frozenset[str] | set[str] = frozenset()) -> int | None:
    """How far ``index`` moves from one iteration of loop ``var`` to the next: a constant, or
    None where it does not move by a constant (a division of the variable, or a let in ``lets``:
    those the loop's body defines)."""
    terms, _ = index_terms(index)
    stride = 0
    for term, coefficient in terms.items():
        if isinstance(term, Var) and term.name == var:
            stride += coefficient
        elif _mentions(term, var, lets):
            return None
    return stride


def _mentions(e: Expr, var: str, lets) -> bool:
    return any(isinstance(x, Var) and x.name == var or isinstance(x, Ref) and x.name in lets for x in walk_expr(e))


def index_terms(e: Expr, scale: int = 1, into: Terms | None = None) -> tuple[Terms, int]:
    """``e`` as ``sum(coefficient * term) + constant``."""
    terms = {} if into is None else into
    constant = 0
    if isinstance(e, Const):
        return terms, scale * e.value
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        _, left = index_terms(e.a, scale, terms)
        _, right = index_terms(e.b, scale if e.op == "add" else -scale, terms)
        return terms, left + right
    if isinstance(e, Binary) and e.op == "mul" and isinstance(e.b, Const):
        return index_terms(e.a, scale * e.b.value, terms)
    if isinstance(e, Binary) and e.op == "mul" and isinstance(e.a, Const):
        return index_terms(e.b, scale * e.a.value, terms)
    terms[e] = terms.get(e, 0) + scale
    return terms, constant


def _sum(terms: Terms, constant: int) -> Expr:
    total: Expr = Const(0, i64)
    for term, coefficient in terms.items():
        if coefficient:
            total = E.add(total, E.mul(term, coefficient))
    return E.add(total, constant)
