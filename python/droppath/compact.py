"""The compacted residual block: ``x + drop_path(block(x))``, block run on the kept samples only.

Stochastic depth's saving: a dropped sample's branch output is multiplied by
zero, so it need not be computed.  In training,

    x_kept, x_pass, idx = _Gather(x)      dp_compact_gather: the k kept samples of x
    f_kept = block(x_kept)                recorded by autograd like any module call
    out = _Join(x_pass, f_kept, idx)      dp_compact_forward: out = x, out[idx] += s*f_kept

Backward, and why x's gradient is right without an extra pass over memory:
x has one consumer in the graph, _Gather, whose outputs are x_kept (read by
the block) and x_pass (x itself, read by _Join).  _Join's backward gives
grad_out itself to x_pass (no copy) and s*grad_out[idx] to f_kept
(dp_compact_backward, the kept samples alone); autograd runs the block's
backward; _Gather's backward then receives both gradients together and
returns grad_out + scatter(grad of x_kept): one copy of grad_out with the
block's input gradient added to the kept samples (dp_compact_scatter_add).
Gradients handed in by autograd are only read, never written, so nothing
aliases a buffer autograd still holds.

The block must act on each sample alone (a per-token MLP, attention within a
sample; not BatchNorm over the batch) and return a tensor of its input's
shape; that is what makes the result the dense block's, fed the same mask.
"""

import torch
from torch.autograd.function import once_differentiable

from . import _kernels
from . import _lib
from . import _ops
from ._ops import to_int64
from .functional import (_ResidualDropPath, _batch_first, _seed_or_draw, check_counter,
                         check_mask_mode, check_prob, check_tensor, check_threads, drop_path_add)


def _check_block_output(x_kept, f_kept):
    if not isinstance(f_kept, torch.Tensor):
        raise TypeError("block must return a torch.Tensor, got %s" % type(f_kept).__name__)
    if f_kept.shape != x_kept.shape:
        raise ValueError("block must return a tensor of its input's shape (a residual branch), "
                         "got %s from %s" % (tuple(f_kept.shape), tuple(x_kept.shape)))
    check_tensor(f_kept, "block's output")
    if (x_kept.dtype, f_kept.dtype) not in _kernels.RESIDUAL_COMBOS:
        raise TypeError("block's output %s with x %s is not supported: the same dtype as x, or "
                        "bfloat16 or float16 with a float32 x" % (f_kept.dtype, x_kept.dtype))


class _Gather(torch.autograd.Function):
    """x -> (x_kept, x_pass, idx); backward: grad_x_pass + scatter(grad_x_kept)."""

    @staticmethod
    def forward(ctx, x, drop_prob, seed, offset, sample_base, mode, num_threads):
        x_kept, idx = _ops.compact_gather(x, drop_prob, to_int64(seed), to_int64(offset),
                                          to_int64(sample_base), mode, num_threads)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.set_materialize_grads(False)
        ctx.num_threads = num_threads
        return x_kept, x, idx  # x returned as is: autograd hands _Join a view of it

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_kept, grad_pass, _grad_idx):
        (idx,) = ctx.saved_tensors
        # grad_pass is never None: the block's output reaches the loss only through out.
        if grad_kept is None:  # the block's output did not depend on its input
            return (grad_pass,) + (None,) * 6
        return (_ops.compact_scatter_add(grad_pass, grad_kept, idx, ctx.num_threads),) + (None,) * 6


class _Join(torch.autograd.Function):
    """out = x, out[idx] += s*f_kept; backward: grad_out for x, s*grad_out[idx] for f_kept."""

    @staticmethod
    def forward(ctx, x, f_kept, idx, drop_prob, mode, scale_by_keep, num_threads):
        out = _ops.compact_forward(x, f_kept, idx, drop_prob, mode, scale_by_keep, num_threads)
        ctx.save_for_backward(idx)
        ctx.args = (drop_prob, mode, scale_by_keep, f_kept.dtype, num_threads)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (idx,) = ctx.saved_tensors
        grad_x = grad_out if ctx.needs_input_grad[0] else None
        grad_f = _ops.compact_backward(grad_out, idx, *ctx.args) if ctx.needs_input_grad[1] \
            else None
        return (grad_x, grad_f) + (None,) * 5


def drop_path_block(x, block, p, training=True, *, mode="row", scale_by_keep=True, seed=None,
                    offset=0, sample_base=0, num_threads=None, batch_dim=0):
    """``x + drop_path(block(x), p)`` with ``block`` run on the kept samples only.

    Training with p > 0: the mask of (seed, offset) keeps k of the B samples
    ("row": a draw per sample, "batch": one draw for all, "exact_k": exactly
    max(floor(B*(1-p)), 1) samples, scaled by B/k; README "Masks"); ``block``
    is called once, on a batch of those k samples (in x's layout, the batch in
    ``batch_dim``), and out = x with x + s*block(x_kept) on the kept samples.
    Gradients reach x and everything block uses through autograd.  k == 0: out
    is a copy of x and block is not called (its parameters get no gradient
    from this call, where the dense form gives them zeros).  Eval mode or
    p == 0: ``x + block(x)``, or ``x + (1-p)*block(x)`` without scale_by_keep.

    ``block`` must treat each sample on its own and return a tensor of its
    input's shape: x's dtype, or bfloat16/float16 with a float32 x."""
    p = check_prob(p, "p")
    mode_id = check_mask_mode(mode)
    if not callable(block):
        raise TypeError("block must be callable (a module or function), got %s"
                        % type(block).__name__)
    if not training or p == 0.0:
        return drop_path_add(x, block(x), p, False, scale_by_keep=scale_by_keep)
    check_tensor(x, "x")
    args = (_seed_or_draw(seed), check_counter(offset, "offset"),
            check_counter(sample_base, "sample_base"))
    threads = check_threads(num_threads)
    xb = _batch_first(x, batch_dim)
    batch = xb.shape[0]
    k = _kernels.kept_count(_lib.make_params(p, *args, mode=mode_id), batch)
    if k == 0:
        return x.clone()
    if k == batch:  # nothing to compact: the fused join on the whole batch, same mask
        f = block(x)
        _check_block_output(x, f)
        return _batch_first(_ResidualDropPath.apply(xb, _batch_first(f, batch_dim), p, *args,
                                                    mode_id, bool(scale_by_keep), threads),
                            batch_dim)
    x_kept, x_pass, idx = _Gather.apply(xb, p, *args, mode_id, threads)
    x_kept = _batch_first(x_kept, batch_dim)
    f_kept = block(x_kept)
    _check_block_output(x_kept, f_kept)
    out = _Join.apply(x_pass, _batch_first(f_kept, batch_dim), idx, p, mode_id,
                      bool(scale_by_keep), threads)
    return _batch_first(out, batch_dim)

