"""torch.* functions built from primitives (reductions, scans, sorting, selection, einsum, linear
algebra, creation) against PyTorch: values, dtypes, shapes and gradients, eager and compiled."""
import warnings

import numpy as np
import pytest

import graphc
from api_check import assert_same, check
from graphc.errors import TraceError
from optest import require_torch

torch = require_torch()

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 5)).astype(np.float32)
B = rng.standard_normal((5, 4)).astype(np.float32)
BATCH = rng.standard_normal((2, 3, 4)).astype(np.float32)
INTS = rng.integers(-5, 6, (3, 5))


# -- reductions and scans ---------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda m, x: m.prod(x), lambda m, x: x.prod(1), lambda m, x: m.prod(x, 0, keepdim=True),
    lambda m, x: m.cumsum(x, 1), lambda m, x: x.cumsum(0), lambda m, x: m.cumprod(x, 1), lambda m, x: x.cumprod(-2),
    lambda m, x: m.logsumexp(x, 1), lambda m, x: x.logsumexp(0, keepdim=True), lambda m, x: m.logsumexp(x * 100, 1),
    lambda m, x: m.logsumexp(x, (0, 1)),
])
def test_reductions_and_scans(fn):
    check(fn, A, rtol=1e-5)


def test_products_and_sums_with_zeros_have_exact_gradients():
    x = np.array([[2.0, 0.0, 3.0, 0.5], [0.0, 0.0, 1.0, 4.0], [1.5, -2.0, 1.0, 7.0]], np.float32)
    check(lambda m, t: (t.prod(1), t.cumprod(1), t.prod()), x)


def test_norm_and_std_have_zero_gradients_where_they_are_zero():
    x = np.array([[0.0, 0.0, 0.0, 0.0], [1.5, 1.5, 1.5, 1.5], [1.0, -2.0, 0.5, 3.0]], np.float32)
    check(lambda m, t: (t.norm(dim=1), t[:2].norm(dim=1, keepdim=True), t[0].norm(), m.norm(t[:2]), t.norm()), x)
    check(lambda m, t: (t.std(1), t.std(1, correction=0), m.std(t[:2], 1, keepdim=True), t[:2].std(),
                        t.var(1), t.var(1, correction=0), m.std_mean(t, 1)), x)


def test_std_and_var_of_single_values():
    x = np.array([[0.0], [2.0]], np.float32)
    check(lambda m, t: (t.std(1, correction=0), t.var(1, correction=0), t.std(0, correction=0)), x)
    # With one value per row and correction=1 PyTorch's value and gradient are NaN.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "std\\(\\)|var\\(\\): degrees of freedom", UserWarning)
        check(lambda m, t: (t.std(1), t.var(1)), x)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_scans_widen_to_int64(dtype):
    x = (INTS > 0) if dtype == np.bool_ else INTS.astype(dtype)
    check(lambda m, t: (t.cumsum(1), t.cumprod(0), t.prod(1), m.prod(t)), x)


def test_logsumexp_of_infinities():
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [0.0, -np.inf]], np.float32)
    check(lambda m, t: m.logsumexp(t, 1), x, grad=False)


def test_odd_and_single_lengths():
    x = rng.standard_normal((7, 1)).astype(np.float32)
    check(lambda m, t: (t.prod(0), t.cumsum(0), t.cumprod(0), t.prod(1)), x)


# -- sorting ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda m, x: m.sort(x), lambda m, x: x.sort(0, descending=True), lambda m, x: m.argsort(x, 1),
    lambda m, x: x.argsort(descending=True), lambda m, x: m.topk(x, 2), lambda m, x: x.topk(3, dim=0, largest=False),
    lambda m, x: m.sort(x, stable=True, dim=-1),
])
def test_sorting(fn):
    check(fn, A)


def test_sort_is_stable_and_puts_nan_last():
    x = np.array([[3.0, 1.0, np.nan, 1.0, 3.0, -np.inf, np.nan, 0.0]], np.float32)
    for descending in (False, True):
        ours, theirs = graphc.sort(graphc.tensor(x), descending=descending), \
            torch.sort(torch.tensor(x), descending=descending, stable=True)
        assert_same(ours.values, theirs.values)
        assert_same(ours.indices, theirs.indices)


def test_sorting_integers_and_bools():
    check(lambda m, t: (m.sort(t, stable=True), t.argsort(stable=True, descending=True)), INTS)
    check(lambda m, t: m.sort(t > 0, stable=True), INTS)
    check(lambda m, t: (t.topk(2), t.topk(3, largest=False)), rng.permutation(12).reshape(3, 4))


# -- selection, scatter, rearrangement ----------------------------------------------------------

INDEX = np.array([2, 0, 2, 4])


@pytest.mark.parametrize("fn", [
    lambda m, x, i: m.index_select(x, 1, i), lambda m, x, i: x.index_select(0, i[:2]),
    lambda m, x, i: m.narrow(x, 1, 1, 3), lambda m, x, i: x.narrow(0, -2, 2), lambda m, x, i: m.select(x, 1, -1),
    lambda m, x, i: m.unbind(x, 1), lambda m, x, i: x.unbind(), lambda m, x, i: m.flip(x, [0, 1]),
    lambda m, x, i: x.flip(1), lambda m, x, i: m.fliplr(x), lambda m, x, i: m.flipud(x),
    lambda m, x, i: m.roll(x, 2, 1), lambda m, x, i: x.roll((1, -2), (0, 1)), lambda m, x, i: m.roll(x, 4),
    lambda m, x, i: m.tile(x, (2, 1)), lambda m, x, i: x.tile((2,)), lambda m, x, i: m.broadcast_to(x[:1], (4, 5)),
    lambda m, x, i: x.broadcast_to(2, -1, 5), lambda m, x, i: m.repeat_interleave(x, 2, 1),
    lambda m, x, i: x.repeat_interleave(3),
    lambda m, x, i: m.masked_fill(x, x > 0.5, -1.0), lambda m, x, i: x.masked_fill(x < 0, m.tensor(2.0)),
    lambda m, x, i: x.index_fill(1, i, 0.5),
])
def test_selection(fn):
    check(fn, A, INDEX)


def test_repeat_interleave_with_repeats_per_element_is_eager():
    check(lambda m, r: m.repeat_interleave(r), np.array([2, 0, 3]), compiled=False)
    check(lambda m, x, r: (m.repeat_interleave(x, r, dim=0), x.repeat_interleave(r[:1])), A, np.array([1, 0, 2]),
          compiled=False)


def test_scatter_and_scatter_add():
    index = np.array([[0, 1, 2, 0, 1], [2, 0, 1, 2, 0]])
    src = rng.standard_normal((2, 5)).astype(np.float32)
    x = np.zeros((3, 5), np.float32)
    check(lambda m, t, i, s: m.scatter(t, 0, i, s), x, index, src)
    check(lambda m, t, i, s: t.scatter(0, i, 2.5), x, index, src)
    check(lambda m, t, i, s: m.scatter_add(t, 0, i, s), x, index, src)
    check(lambda m, t, i, s: t.scatter_add(1, i[:, :2], s[:, :2]), x, index, src)
    check(lambda m, t, i, s: t.clone().scatter_(1, i[:, :3], s[:, :3]), x, index, src)
    labels = np.array([2, 0, 1])
    check(lambda m, t: m.zeros(3, 4).scatter_(1, t.unsqueeze(1), 1.0), labels)
    check(lambda m, t: m.zeros(3, 4, dtype=m.int64).scatter(1, t.unsqueeze(1), 7), labels)


def test_scatter_of_agreeing_duplicates_writes_that_value():
    index = np.array([[1, 1, 0]])
    x = graphc.zeros(1, 3).scatter(1, graphc.tensor(index), 4.0)
    np.testing.assert_array_equal(x.numpy(), [[4.0, 4.0, 0.0]])


def test_nonzero_and_masked_select_are_eager():
    mask = A > 0
    check(lambda m, x: (m.nonzero(x > 0), m.nonzero(x > 0, as_tuple=True), m.argwhere(x < 0)), A, compiled=False)
    check(lambda m, x: (m.masked_select(x, x > 0), x.masked_select(m.tensor(mask[0]))), A, compiled=False)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.nonzero(x), lambda m, x: x.masked_select(x > 0), lambda m, x: x[x > 0],
    lambda m, x: m.repeat_interleave(x, (x > 0).long().sum(0), dim=1),
])
def test_value_dependent_shapes_raise_trace_error_naming_the_line(fn):
    with pytest.raises(TraceError, match=r"depends on the tensor's values.*test_torch_functions\.py:\d+"):
        graphc.compile(lambda x: fn(graphc, x))(graphc.tensor(A))


# -- linear algebra and einsum --------------------------------------------------------------------

def test_products():
    v, w = A[0], B[:, 0]
    check(lambda m, a, b, x, y: (m.mv(a, x), m.dot(x, y), m.outer(x, a[:, 0]), a.mv(y), x.dot(y), x.outer(y)),
          A, B, A[1], w)
    check(lambda m, a, b, c: (m.addmm(c, a, b), m.addmm(c, a, b, beta=0.5, alpha=2), c.addmm(a, b, beta=0)),
          A, B, rng.standard_normal((3, 4)).astype(np.float32))
    check(lambda m, i, x, y: (m.baddbmm(i, x, y), m.baddbmm(i, x, y, alpha=0.5, beta=2)),
          rng.standard_normal((2, 3, 3)).astype(np.float32), BATCH, BATCH.transpose(0, 2, 1).copy())
    check(lambda m, c, a, x: m.addmv(c, a, x, beta=2), rng.standard_normal(3).astype(np.float32), A, v)
    check(lambda m, x, y: m.dot(x, y), INTS[0], INTS[1])


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(3, 5), (5, 4)]), ("ij,jk", [(3, 5), (5, 4)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i->", [(5,), (5,)]), ("i,j->ij", [(3,), (4,)]), ("ij->ji", [(3, 5)]), ("ij->", [(3, 5)]),
    ("ii->i", [(4, 4)]), ("ii", [(4, 4)]), ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ab,cd->", [(2, 3), (4, 5)]), ("i,i->i", [(4,), (4,)]), ("b i d, b j d -> b i j", [(2, 3, 4), (2, 5, 4)]),
    ("i...->...", [(3, 4, 5)]),
])
def test_einsum(equation, shapes):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    check(lambda m, *xs: m.einsum(equation, *xs), *arrays, rtol=1e-5, atol=1e-5)


def test_einsum_takes_a_list_of_operands():
    check(lambda m, a, b: m.einsum("ij,jk->ik", [a, b]), A, B, rtol=1e-5)


# -- creation and random --------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda m: m.zeros(size=(2, 3)), lambda m: m.ones(size=[2]), lambda m: m.empty(size=(2, 2)).shape,
    lambda m: m.zeros(m.Size([2, 3])), lambda m: m.ones([2, 3], dtype=m.int32), lambda m: m.full(size=(2,), fill_value=3),
    lambda m: m.logspace(0, 2, 5), lambda m: m.logspace(-1, 1, 3, base=2), lambda m: m.randn(size=(4, 2)).shape,
    lambda m: m.rand(size=[3]).shape, lambda m: m.randint(0, 5, size=(2, 3)).shape, lambda m: m.randn(2, 3).dtype,
    lambda m: m.normal(0.0, 1.0, size=(2, 3)).shape, lambda m: m.normal(m.zeros(4), 2.0).shape,
    lambda m: m.normal(m.zeros(2, 1), m.ones(3)).shape, lambda m: m.normal(m.zeros(3, dtype=m.float64), 1.0).dtype,
    lambda m: m.randint(5, (3,)).shape, lambda m: m.randint(5, size=(2, 2)).dtype,
    lambda m: m.randint(high=5, size=[2]).shape, lambda m: m.randint(low=1, high=5, size=(3,), dtype=m.int32).dtype,
])
def test_creation_forms(make):
    assert_same(make(graphc), make(torch))


@pytest.mark.parametrize("args", [(5, (20000,)), (-3, 2, (20000,))])
def test_randint_draws_each_integer_of_its_range_evenly(args):
    graphc.manual_seed(0)
    low, high = (0, args[0]) if len(args) == 2 else args[:2]
    values, counts = np.unique(graphc.randint(*args).numpy(), return_counts=True)
    assert values.tolist() == list(range(low, high)) and counts.min() > 0.9 * 20000 / (high - low)
    for m in (graphc, torch):
        with pytest.raises(TypeError):
            m.randint(5)


def test_normal_has_the_asked_mean_and_std():
    graphc.manual_seed(0)
    x = graphc.normal(3.0, 0.5, size=(20000,))
    assert abs(x.mean().item() - 3.0) < 0.02 and abs(x.std().item() - 0.5) < 0.02
    check(lambda m, mean: m.normal(mean, 0.0), A, grad=False)


def test_default_dtype():
    assert graphc.get_default_dtype() == graphc.float32
    graphc.set_default_dtype(graphc.float64)
    torch.set_default_dtype(torch.float64)
    try:
        for make in (lambda m: m.tensor([1.5]), lambda m: m.zeros(2), lambda m: m.randn(2).dtype,
                     lambda m: m.tensor([1, 2]) / 2, lambda m: m.arange(0.0, 1.0, 0.5), lambda m: m.tensor([1]).exp(),
                     lambda m: m.ones(2, dtype=m.float32) * 2.5, lambda m: m.linspace(0, 1, 3), lambda m: m.eye(2),
                     lambda m: m.Tensor([1, 2])):
            assert_same(make(graphc), make(torch))
        assert graphc.get_default_dtype() == graphc.float64
    finally:
        graphc.set_default_dtype(graphc.float32)
        torch.set_default_dtype(torch.float32)
    with pytest.raises(TypeError, match="floating-point"):
        graphc.set_default_dtype(graphc.int64)


def test_inference_mode():
    x = graphc.ones(2, requires_grad=True)
    with graphc.inference_mode():
        assert not (x * 2).requires_grad
    with graphc.inference_mode(False):
        assert (x * 2).requires_grad

    @graphc.inference_mode()
    def double(t):
        return t * 2
    assert not double(x).requires_grad and graphc.is_grad_enabled()


# -- triangles, diagonals, stacking, axes -----------------------------------------------------------

SQUARE = rng.standard_normal((4, 4)).astype(np.float32)


@pytest.mark.parametrize("fn", [
    lambda m, x: (m.tril(x), m.triu(x), x.tril(1), x.triu(-1), m.tril(x[:3]), m.triu(x[:, :3], 2)),
    lambda m, x: (m.diagonal(x), x.diagonal(1), x.diagonal(-2), m.diag(x), m.diag(x, -1), m.diag(x[0]),
                  m.diag(x[0], 2), m.diag(x[1], -1)),
    lambda m, x: (m.movedim(x.reshape(2, 2, 4), 0, -1), x.reshape(2, 2, 4).movedim((0, 1), (2, 0)),
                  m.moveaxis(x.reshape(2, 2, 4), -1, 0), m.swapaxes(x, 0, 1), x.swapdims(1, 0), m.ravel(x),
                  x.ravel()),
    lambda m, x: (m.hstack([x, x[:, :1]]), m.vstack([x, x[:1]]), m.hstack([x[0], x[1]]), m.vstack([x[0], x[1]])),
    lambda m, x: m.meshgrid(x[0], x[1, :3], indexing="ij") + m.meshgrid(x[0], x[1, :3], indexing="xy"),
    lambda m, x: (m.take_along_dim(x, x.argsort(1), 1), x.take_along_dim(m.tensor([[0], [3], [1], [2]]), dim=1)),
    lambda m, x: (m.count_nonzero(x > 0), (x > 0).count_nonzero(1), m.isclose(x, x + 1e-6),
                  m.isclose(x, x * 1.01, rtol=0.1), m.logical_xor(x > 0, x > 1), m.unflatten(x, 1, (2, 2))),
])
def test_matrix_pieces_and_axes(fn):
    check(fn, SQUARE)


def test_tril_of_a_batch_and_isclose_of_specials():
    check(lambda m, x: (m.tril(x), x.triu_(1)), BATCH, grad=False)
    a = np.array([np.inf, -np.inf, np.nan, 1.0, np.inf], np.float32)
    b = np.array([np.inf, np.inf, np.nan, np.inf, 1e30], np.float32)
    check(lambda m, x, y: (m.isclose(x, y), m.isclose(x, y, equal_nan=True)), a, b, grad=False)
