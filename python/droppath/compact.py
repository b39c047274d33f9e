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

LayerScale (``ls_gamma``, DINOv2's ``x + drop_path(ls(f(x)))``) goes into the
join instead of the block: _JoinLS (dp_compact_forward_ls) writes
out[idx] = x + ((gamma*f_kept)*s), and its backward (dp_compact_backward_ls)
gives f_kept's gradient (grad_out[idx]*s)*gamma and gamma's, summed over the
kept rows in the row groups of the whole batch: drop_path_add_ls's bits, which
is why these calls describe tensors as channel rows ([B][T][D], D the last
dimension) as drop_path_add_ls does.  f_kept is saved only when gamma wants a
gradient.  k == 0 runs that join on no samples (out = x, gamma's gradient
+0.0, the dense join's), k == B drop_path_add_ls's join itself.
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


def _layerscale():
    """droppath.layerscale, imported at first use: it imports modules.py, which
    imports this module, so a top-level import here would be circular."""
    from . import layerscale
    return layerscale


def _check_layer_scale(x, ls_gamma, batch_dim):
    """ls_gamma as drop_path_add_ls takes its gamma: a float vector of x.shape[-1],
    the channels of a [B, ..., D] x (so the batch cannot be that last dimension)."""
    check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError("with ls_gamma, x must have a batch and a channel dimension "
                         "([B, ..., D]), got shape %s" % (tuple(x.shape),))
    _batch_first(x, batch_dim)  # batch_dim in range
    if batch_dim % x.dim() == x.dim() - 1:
        raise ValueError("with ls_gamma, batch_dim cannot be x's last dimension: that is "
                         "LayerScale's channel dimension")
    _layerscale().check_channel_vector(ls_gamma, x, "ls_gamma")


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


class _JoinLS(torch.autograd.Function):
    """out = x, out[idx] += (gamma*f_kept)*s; backward: grad_out for x,
    (grad_out[idx]*s)*gamma for f_kept, the kept rows' sum of (grad_out*s)*f_kept
    for gamma."""

    @staticmethod
    def forward(ctx, x, f_kept, gamma, idx, drop_prob, mode, scale_by_keep, num_threads):
        out = _ops.compact_forward_ls(x, f_kept, gamma, idx, drop_prob, mode, scale_by_keep,
                                      num_threads)
        # f_kept is read again only for gamma's gradient: kept alive only then.
        ctx.save_for_backward(idx, gamma, f_kept if ctx.needs_input_grad[2] else None)
        ctx.args = (drop_prob, mode, scale_by_keep, f_kept.dtype, num_threads)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        idx, gamma, f_kept = ctx.saved_tensors
        need_x, need_f, need_gamma = ctx.needs_input_grad[:3]
        grad_f = grad_gamma = None
        if need_f or need_gamma:
            grad_f, gg = _ops.compact_backward_ls(grad_out, f_kept if need_gamma else None, gamma,
                                                  idx, *ctx.args)
            grad_f = grad_f if need_f else None
            grad_gamma = gg.to(gamma.dtype) if need_gamma else None
        return (grad_out if need_x else None, grad_f, grad_gamma) + (None,) * 5


def drop_path_block(x, block, p, training=True, *, mode="row", scale_by_keep=True, seed=None,
                    offset=0, sample_base=0, num_threads=None, batch_dim=0, ls_gamma=None):
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

    ``ls_gamma`` (a vector of x.shape[-1] elements, timm's and DINOv2's
    ``LayerScale.gamma``; None: no LayerScale) makes it
    ``x + drop_path(ls_gamma * block(x), p)``, the LayerScale applied in the
    join, computed as drop_path_add_ls computes it: the output, x's gradient
    and ls_gamma's gradient are drop_path_add_ls's bits with the same mask
    (the block acting on each sample alone), in eval mode and at p == 0 too.
    ls_gamma is differentiable; at k == 0 its gradient is zeros, as the dense
    join gives.  x must then be [B, ..., D] with D its last dimension, not the
    batch; with batch_dim != 0 the result is drop_path_add_ls's on x moved
    batch first.  Training with ls_gamma needs a library with
    dp_compact_forward_ls and dp_compact_backward_ls (LibraryNotFoundError
    otherwise, before the block runs).

    ``block`` must treat each sample on its own and return a tensor of its
    input's shape: x's dtype, or bfloat16/float16 with a float32 x."""
    p = check_prob(p, "p")
    mode_id = check_mask_mode(mode)
    if not callable(block):
        raise TypeError("block must be callable (a module or function), got %s"
                        % type(block).__name__)
    if ls_gamma is not None:
        _check_layer_scale(x, ls_gamma, batch_dim)
    if not training or p == 0.0:
        if ls_gamma is None:
            return drop_path_add(x, block(x), p, False, scale_by_keep=scale_by_keep)
        # drop_path_add_ls's inference join (mode and counters unused), batch first.
        f = block(x)
        _check_block_output(x, f)
        out = _layerscale()._LayerScaleJoin.apply(
            _batch_first(x, batch_dim), _batch_first(f, batch_dim), ls_gamma, False, p, 0, 0, 0,
            _lib.MODE_ROW, bool(scale_by_keep), check_threads(num_threads), False)
        return _batch_first(out, batch_dim)
    check_tensor(x, "x")
    args = (_seed_or_draw(seed), check_counter(offset, "offset"),
            check_counter(sample_base, "sample_base"))
    threads = check_threads(num_threads)
    if ls_gamma is not None:
        _lib.compact_ls_functions()  # before any work: a library too old for it says so
    xb = _batch_first(x, batch_dim)
    batch = xb.shape[0]
    k = _kernels.kept_count(_lib.make_params(p, *args, mode=mode_id), batch)
    if k == 0:
        if ls_gamma is None:
            return x.clone()
        # The compacted join of no samples: out = x, and ls_gamma's gradient the
        # dense join's +0.0 rather than none at all.
        no_f = xb.new_empty((0,) + tuple(xb.shape[1:]))
        no_idx = torch.empty(0, dtype=_kernels.INDEX_DTYPE)
        return _batch_first(_JoinLS.apply(xb, no_f, ls_gamma, no_idx, p, mode_id,
                                          bool(scale_by_keep), threads), batch_dim)
    if k == batch:  # nothing to compact: the fused join on the whole batch, same mask
        f = block(x)
        _check_block_output(x, f)
        fb = _batch_first(f, batch_dim)
        if ls_gamma is None:
            out = _ResidualDropPath.apply(xb, fb, p, *args, mode_id, bool(scale_by_keep), threads)
        else:
            out = _layerscale()._LayerScaleJoin.apply(xb, fb, ls_gamma, True, p, *args, mode_id,
                                                      bool(scale_by_keep), threads, False)
        return _batch_first(out, batch_dim)
    x_kept, x_pass, idx = _Gather.apply(xb, p, *args, mode_id, threads)
    x_kept = _batch_first(x_kept, batch_dim)
    f_kept = block(x_kept)
    _check_block_output(x_kept, f_kept)
    fb = _batch_first(f_kept, batch_dim)
    if ls_gamma is None:
        out = _Join.apply(x_pass, fb, idx, p, mode_id, bool(scale_by_keep), threads)
    else:
        out = _JoinLS.apply(x_pass, fb, ls_gamma, idx, p, mode_id, bool(scale_by_keep), threads)
    return _batch_first(out, batch_dim)
