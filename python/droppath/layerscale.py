"""LayerScale in the join: ``x + drop_path(gamma * f)`` in one pass (dp_forward_ls).

ConvNeXt, DINOv2, CaiT, EVA and timm's ViTs with ``init_values`` scale the
branch per channel before DropPath (timm: ``x + self.drop_path1(self.ls1(f))``,
``LayerScale.gamma`` a vector over the last dimension).  Fused, the multiply
costs no pass of its own and the backward gives grad_f, grad_x and
grad_gamma from one pass over grad_out and f (dp_backward_ls).

Arithmetic: timm's, ``x + ((gamma_d*f)*s)`` rounded in f32 at each step, so
outputs, grad_x and grad_f are timm's bits in float32.  grad_gamma is summed
in the library's fixed order (README "LayerScale in the join"): the same bits
for any thread count, within (P + groups + 2) * 2^-24 * sum|grad*s*f| of the
exact sum, where autograd's sum has an order of its own.

Tensors: CPU, batch first, gamma over the last dimension (D elements, stored
in any float dtype, used as float32); other layouts than [B][T][D] rows with
contiguous channels are copied first.  dtypes as the residual join's:
float32, bfloat16, float16, or a float32 x with a bfloat16/float16 f; the
arithmetic is float32 with one rounding to the stored dtype at the end.
"""

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import _kernels
from . import _lib
from . import _ops
from . import functional as F
from .modules import _MaskStream


def check_channel_vector(v, x, name):
    """v: a CPU float32/bfloat16/float16 vector of x.shape[-1] elements."""
    F.check_tensor(v, name)
    if v.dim() != 1 or v.shape[0] != x.shape[-1]:
        raise ValueError("%s must be a vector of x.shape[-1] = %d elements, got shape %s"
                         % (name, x.shape[-1], tuple(v.shape)))


def check_channels_last(x, f):
    """x and f as the channel-wise calls take them: same shape, batch first, D last."""
    F.check_residual(x, f)
    if x.dim() < 2:
        raise ValueError("x must have a batch and a channel dimension ([B, ..., D]), got shape %s"
                         % (tuple(x.shape),))


class _LayerScaleJoin(torch.autograd.Function):
    """out = x + m*s*(gamma*f): forward dp_forward_ls (training) or
    dp_inference_add_ls (inference, s = 1 or keep); backward dp_backward_ls."""

    @staticmethod
    def forward(ctx, x, f, gamma, training, drop_prob, seed, offset, sample_base, mode,
                scale_by_keep, num_threads, inplace):
        if inplace:  # out is x itself: not a registered operator (it writes an input)
            params = _lib.make_params(drop_prob, seed, offset, sample_base, mode, scale_by_keep,
                                      num_threads)
            out, scales = _kernels.ls_forward(x, f, gamma, params, inference=not training, out=x)
            ctx.mark_dirty(x)
        elif training:
            out, scales = _ops.forward_ls(x, f, gamma, drop_prob, _ops.to_int64(seed),
                                          _ops.to_int64(offset), _ops.to_int64(sample_base), mode,
                                          scale_by_keep, num_threads)
        else:
            out, scales = _ops.inference_add_ls(x, f, gamma, drop_prob, scale_by_keep, num_threads)
        # f is read again only for grad_gamma.
        ctx.save_for_backward(f if ctx.needs_input_grad[2] else None, gamma, scales)
        ctx.f_dtype = f.dtype
        ctx.num_threads = num_threads
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        f, gamma, scales = ctx.saved_tensors
        need_x, need_f, need_gamma = ctx.needs_input_grad[:3]
        grad_f = grad_gamma = None
        if need_f or need_gamma:
            grad_f, gg = _ops.backward_ls(grad_out, f if need_gamma else None, gamma, scales,
                                          ctx.f_dtype, ctx.num_threads)
            grad_f = grad_f if need_f else None
            grad_gamma = gg.to(gamma.dtype) if need_gamma else None
        return (grad_out if need_x else None, grad_f, grad_gamma) + (None,) * 9


def drop_path_add_ls(x, f, gamma, p=0.0, training=True, *, scale_by_keep=True, mode="row",
                     seed=None, offset=0, sample_base=0, num_threads=None, inplace=False):
    """``x + drop_path(gamma * f, p)`` in one pass, gamma over the last dimension.

    Training with p > 0 draws the mask as drop_path_add does (dp_forward_ls);
    otherwise it is ``x + gamma*f``, or ``x + (gamma*f)*(1-p)`` without
    scale_by_keep (dp_inference_add_ls), differentiable as well.  A dropped
    sample's f is never read.  inplace: the result is written into x (which
    autograd then sees as modified) instead of a new tensor."""
    p = F.check_prob(p, "p")
    F.check_mode(mode)
    check_channels_last(x, f)
    check_channel_vector(gamma, x, "gamma")
    num_threads = F.check_threads(num_threads)
    if training and p > 0.0:
        args = (True, p, F._seed_or_draw(seed), F.check_counter(offset, "offset"),
                F.check_counter(sample_base, "sample_base"), F.MODES[mode])
    else:
        args = (False, p, 0, 0, 0, F.MODES[mode])
    return _LayerScaleJoin.apply(x, f, gamma, *args, bool(scale_by_keep), num_threads,
                                 bool(inplace))


class LayerScaleDropPath(_MaskStream):
    """timm's ``LayerScale(dim, init_values)`` followed by ``DropPath(drop_prob)`` and
    the residual add, fused: ``forward(x, f) = x + drop_path(gamma * f)``.

    ``gamma`` is timm's parameter (``init_values * torch.ones(dim)``): name the
    module as timm names the LayerScale (``ls1``, ``ls2``) and a timm
    checkpoint's ``blocks.N.ls1.gamma`` loads into it.  Masks: the package's
    mask stream (seed and calls buffers, sample_base).  Eval: ``x + gamma*f``
    (or ``x + (gamma*f)*(1-p)`` without scale_by_keep)."""

    def __init__(self, dim, init_values=1e-5, drop_prob=0.0, scale_by_keep=True, inplace=False, *,
                 mode="row", seed=None, sample_base=0, num_threads=None):
        super().__init__(seed, sample_base, num_threads)
        self.dim = dim
        self.gamma = nn.Parameter(init_values * torch.ones(dim))
        self.drop_prob = F.check_prob(drop_prob)
        F.check_mode(mode)
        self.scale_by_keep = scale_by_keep
        self.inplace = inplace
        self.mode = mode

    def forward(self, x, f):
        if not self.training:
            return drop_path_add_ls(x, f, self.gamma, self.drop_prob, False,
                                    scale_by_keep=self.scale_by_keep, num_threads=self.num_threads,
                                    inplace=self.inplace)
        draw = self._draw()
        draw.pop("batch_dim")
        return drop_path_add_ls(x, f, self.gamma, self.drop_prob, True,
                                scale_by_keep=self.scale_by_keep, mode=self.mode,
                                inplace=self.inplace, **draw)

    def extra_repr(self):
        s = "dim=%d, drop_prob=%0.3f" % (self.dim, round(self.drop_prob, 3))
        if self.mode != "row":
            s += ", mode=%s" % self.mode
        if not self.scale_by_keep:
            s += ", scale_by_keep=False"
        if self.inplace:
            s += ", inplace=True"
        return s
