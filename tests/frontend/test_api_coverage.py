"""What graphc covers of PyTorch's namespaces: ``torch.*`` functions and ``torch.Tensor`` methods.

The two lists are the names graphc provides (each also PyTorch's, so a typo fails too).  A name
that disappears from graphc fails the test; the session summary shows how much of each
namespace is covered.  Add a name here when graphc gains it.
"""
import graphc
from optest import require_torch

torch = require_torch()

# graphc.trace is graphc's tracer, not torch.trace (the sum of a matrix's diagonal), so it is not listed.
TORCH_FUNCTIONS = """
    abs acos add addmm addmv all allclose amax amin any arange argmax argmin argsort argwhere as_tensor asin
    atan atan2 baddbmm bmm broadcast_to cat ceil chunk clamp clamp_max clamp_min clip clone compile concat
    concatenate cos cosh count_nonzero cumprod cumsum det detach device diag diagonal diff div dot einsum empty
    empty_like enable_grad eq equal erf erfc exp exp2 expm1 eye fix flatten flip fliplr flipud floor floor_divide
    frac from_numpy full full_like gather ge get_default_dtype gt hstack index_fill index_select
    inference_mode inverse is_floating_point is_grad_enabled is_tensor isclose isfinite isinf isnan le lerp
    linspace load log log10 log1p log2 log_softmax logical_and logical_not logical_or logical_xor logspace
    logsumexp lt manual_seed masked_fill masked_select matmul max maximum mean meshgrid min minimum mm
    moveaxis movedim mul mv nan_to_num narrow ne neg negative no_grad nonzero norm normal numel ones ones_like outer
    permute pow prod rand rand_like randint randn randn_like randperm ravel reciprocal relu remainder
    repeat_interleave reshape roll round rsqrt save scatter scatter_add seed select set_default_dtype
    set_grad_enabled sigmoid sign sin sinh softmax sort split sqrt square squeeze stack std std_mean sub sum
    svd swapaxes swapdims t take_along_dim tan tanh tensor tile topk transpose tril triu trunc unbind
    unflatten unsqueeze var var_mean vstack where zeros zeros_like
""".split()

TENSOR_METHODS = """
    T abs abs_ acos acos_ add add_ addcdiv_ addcmul_ addmm addmv all amax amin any argmax argmin argsort
    argwhere asin asin_ atan atan2 atan2_ atan_ backward baddbmm bernoulli_ bmm bool broadcast_to byte ceil
    ceil_ chunk clamp clamp_ clamp_max clamp_max_ clamp_min clamp_min_ clip clip_ clone contiguous copy_ cos
    cos_ cosh cosh_ count_nonzero cpu cuda cumprod cumprod_ cumsum cumsum_ data detach detach_ device diag
    diagonal diff dim div div_ dot double dtype element_size eq erf erf_ erfc exp exp2 exp2_ exp_ expand expand_as
    expm1 expm1_ fill_ fix fix_ flatten flip fliplr flipud float floor floor_ floor_divide floor_divide_
    frac frac_ gather ge grad grad_fn gt half index_fill index_fill_ index_select int is_floating_point is_leaf isclose
    isfinite isinf isnan item le lerp lerp_ log log10 log10_ log1p log1p_ log2 log2_ log_ log_softmax
    logical_and logical_not logical_or logical_xor logsumexp long lt mT masked_fill masked_fill_
    masked_select matmul max mean min mm moveaxis movedim mul mul_ mv nan_to_num narrow ndim ne neg neg_ new_empty
    new_full new_ones new_tensor new_zeros nonzero norm normal_ numel numpy outer permute pow pow_ prod
    ravel reciprocal reciprocal_ register_hook relu relu_ remainder remainder_ repeat repeat_interleave
    requires_grad_ reshape reshape_as retain_grad roll round round_ rsqrt rsqrt_ scatter scatter_
    scatter_add scatter_add_ select shape short sigmoid sigmoid_ sign sign_ sin sin_ sinh sinh_ size softmax
    sort split sqrt sqrt_ square square_ squeeze std sub sub_ sum swapaxes swapdims t take_along_dim tan
    tan_ tanh tanh_ tile to tolist topk transpose tril tril_ triu triu_ true_divide trunc trunc_ type
    type_as unbind unflatten uniform_ unsqueeze var view view_as zero_
""".split()


def public_functions(module) -> list[str]:
    return [n for n in dir(module) if not n.startswith("_") and n[0].islower() and callable(getattr(module, n))]


def test_torch_functions(figures):
    assert [n for n in TORCH_FUNCTIONS if not hasattr(torch, n)] == []
    assert [n for n in TORCH_FUNCTIONS if not hasattr(graphc, n)] == []
    figures.append(f"torch.*: graphc has {len(TORCH_FUNCTIONS)} of PyTorch's {len(public_functions(torch))} "
                   "public functions")


def test_tensor_methods(figures):
    assert [n for n in TENSOR_METHODS if not hasattr(torch.Tensor, n)] == []
    assert [n for n in TENSOR_METHODS if not hasattr(graphc.Tensor, n)] == []
    public = [n for n in dir(torch.Tensor) if not n.startswith("_")]
    figures.append(f"torch.Tensor: graphc has {len(TENSOR_METHODS)} of PyTorch's {len(public)} public methods "
                   "and attributes")
