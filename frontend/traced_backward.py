"""``loss.backward()`` while tracing: the autodiff pass appends the gradient nodes to the trace.

Gradients flow to every tensor that requires grad and whose value the loss
used: parameters (at the value the forward pass read, so a GAN's second
backward sees the discriminator as already updated) and symbolic leaves.  They
accumulate into the trace's record of ``.grad``, where ``optimizer.step()``
finds them.
"""
from __future__ import annotations

from graphc.passes.autodiff import gradients

from .context import no_grad


def traced_backward(ctx, tensor, gradient=None) -> None:
    from .tensor import Tensor, as_tensor
    if not tensor.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    b = ctx.builder
    loss = ctx.node_of(tensor)
    if gradient is None:
        if tensor.numel() != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs (backward() was called "
                               f"on a tensor of shape {list(tensor.shape)}; pass gradient=)")
        seed = b.full(shape=loss.shape, dtype=loss.dtype, value=1.0)
    else:
        seed = ctx.node_of(as_tensor(gradient).type_as_dtype(tensor.dtype).expand(tensor.shape))

    leaves = [rec.tensor for rec in ctx.lifted.values() if rec.tensor.requires_grad]
    leaves += ctx.symbolic_leaves
    wrt = [ctx.node_of(t) for t in leaves]
    differentiable = [node for node in b.nodes if node not in ctx.made_without_grad]
    grads = gradients(b, differentiable, [loss], [seed], wrt)
    with no_grad():
        for leaf, g in zip(leaves, grads):
            if g is None:
                continue
            g = Tensor._symbolic(g, ctx, False)
            for hook in leaf._hooks or ():
                replaced = hook(g)
                g = g if replaced is None else replaced
            leaf.grad = g if leaf.grad is None else leaf.grad + g
