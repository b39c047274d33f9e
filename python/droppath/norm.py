"""The pre-norm block's join fused with the next norm: ``r = x + drop_path(f)``,
``y = norm(r)`` in one pass (dp_forward_norm), forward and backward, with
LayerScale in the join if wanted: ``r = x + drop_path(ls_gamma * f)``.

In a pre-norm transformer the branch output joins the residual stream and the
sum is normalised for the next branch: ``x = x + drop_path(attn(norm1(x)))``
then ``mlp(norm2(x))``.  ``ResidualNorm`` returns both the next residual r
and y = norm(r), reading x and f once and writing r and y (four passes where
the add and the norm take five); its backward takes the gradients arriving on
r and on y (dp_backward_norm).  In a timm block it replaces the pieces
``x = x + self.drop_path1(self.ls1(f))`` and the ``self.norm2(x)`` that
follows (or the next block's ``norm1``): DropPath, the residual add, the
LayerNorm and, with ``ls_init_values``, the LayerScale ``ls1`` (its
``gamma`` becomes this module's ``gamma``; dp_backward_norm_ls then gives
gamma's gradient in the same backward pass).

Numbers: r is ``x + drop_path(f)`` bit for bit (timm's arithmetic, the same
mask as the package's other joins), and with LayerScale ``x + ((gamma*f)*s)``,
drop_path_add_ls's bits; y is the library's norm over the last
dimension (README "Fused residual + norm": 16-lane row sums in a fixed tree,
two-pass variance, f32 statistics), within a few float32 roundings of
torch's layer_norm but not its bits, since torch sums in another order.
The weight and bias gradients are summed in a fixed order: the same bits for
any thread count; LayerScale's gamma gradient is drop_path_add_ls's
(dp_backward_ls's) on the same gradient of r, bit for bit, in the same order.

Tensors: CPU, batch first, the norm over the last dimension D; x and r share
the residual dtype, f and y the branch dtype (all float32, all bfloat16, all
float16, or a float32 residual with a bfloat16/float16 branch); weight,
bias and ls_gamma are used as float32.

LayerScale needs a library with dp_backward_norm_ls (an older 0.1.0 one
raises LibraryNotFoundError saying so; without LayerScale it still serves).
"""

import math
import numbers

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import _lib
from . import _ops
from . import functional as F
from .functional import check_init_values
from .layerscale import check_channel_vector, check_channels_last
from .modules import _MaskStream

NORMS = {"layer": _lib.NORM_LAYER, "rms": _lib.NORM_RMS}
_F32_MAX = float(torch.finfo(torch.float32).max)


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError('norm must be "layer" or "rms", got %r' % (norm,))
    return NORMS[norm]


def check_eps(eps):
    """eps reaches the library as a float32: finite and >= 0 there too."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or math.isnan(eps) or \
            not 0.0 <= eps <= _F32_MAX:
        raise ValueError("eps must be a finite number >= 0, got %r" % (eps,))
    return float(eps)


class _ResidualNorm(torch.autograd.Function):
    """(r, y): forward dp_forward_norm (training) or dp_inference_norm (inference,
    s = 1 or keep); backward dp_backward_norm from the gradients on r and y, or
    with ls_gamma dp_backward_norm_ls (which also gives ls_gamma's gradient)."""

    @staticmethod
    def forward(ctx, x, f, weight, bias, ls_gamma, training, kind, eps, drop_prob, seed, offset,
                sample_base, mode, scale_by_keep, num_threads):
        # ls_gamma travels only when given: without it the operators are called
        # exactly as before LayerScale existed.
        ls = () if ls_gamma is None else (ls_gamma,)
        if training:
            r, y, mean, rstd, scales = _ops.forward_norm(
                x, f, weight, bias, kind, eps, drop_prob, _ops.to_int64(seed), _ops.to_int64(offset),
                _ops.to_int64(sample_base), mode, scale_by_keep, num_threads, *ls)
        else:
            r, y, mean, rstd, scales = _ops.inference_norm(x, f, weight, bias, kind, eps, drop_prob,
                                                           scale_by_keep, num_threads, *ls)
        # f is read again only for ls_gamma's gradient: kept alive only then.
        ctx.save_for_backward(r, mean, rstd, scales, weight, ls_gamma,
                              f if ctx.needs_input_grad[4] else None)
        ctx.set_materialize_grads(False)
        ctx.kind, ctx.eps, ctx.num_threads = kind, eps, num_threads
        ctx.branch_dtype = f.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return r, y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_r, grad_y):
        r, mean, rstd, scales, weight, ls_gamma, f = ctx.saved_tensors
        need_x, need_f, need_w, need_b, need_ls = ctx.needs_input_grad[:5]
        if grad_y is None:  # y unused: only the residual's gradient flows
            grad_y = torch.zeros(r.shape, dtype=ctx.branch_dtype)
        common = (ctx.kind, ctx.eps, need_x, need_w, need_b, ctx.num_threads)
        if ls_gamma is None:
            grad_x, grad_f, grad_w, grad_b = _ops.backward_norm(
                grad_y, grad_r, r, mean, rstd, scales, weight, *common)
            grad_ls = None
        else:
            grad_x, grad_f, grad_w, grad_b, grad_ls = _ops.backward_norm_ls(
                grad_y, grad_r, r, f if need_ls else None, mean, rstd, scales, weight, ls_gamma,
                *common)
            grad_ls = grad_ls.to(ls_gamma.dtype) if need_ls else None
        return (grad_x if need_x else None, grad_f if need_f else None,
                grad_w.to(weight.dtype) if need_w else None,
                grad_b.to(ctx.bias_dtype) if need_b else None, grad_ls) + (None,) * 10


def drop_path_add_norm(x, f, p=0.0, weight=None, bias=None, training=True, *, ls_gamma=None,
                       norm="layer", eps=1e-5, scale_by_keep=True, mode="row", seed=None,
                       offset=0, sample_base=0, num_threads=None):
    """``r = x + drop_path(f, p)`` and ``y = norm(r) * weight + bias`` over the last
    dimension in one pass; returns (r, y).  norm: "layer" (LayerNorm) or "rms"
    (RMSNorm); weight and bias: vectors of D, or None.  ls_gamma: LayerScale's
    vector of D (timm's ``LayerScale.gamma``), or None: with it
    r = x + drop_path(ls_gamma * f), computed as drop_path_add_ls computes it.
    Training with p > 0 draws the mask as drop_path_add does; otherwise
    r = x + f (or x + (1-p)*f without scale_by_keep), f standing for ls_gamma*f
    with LayerScale.  Differentiable in x, f, weight, bias and ls_gamma."""
    p = F.check_prob(p, "p")
    F.check_mode(mode)
    kind = check_norm(norm)
    eps = check_eps(eps)
    check_channels_last(x, f)
    for v, name in ((weight, "weight"), (bias, "bias"), (ls_gamma, "ls_gamma")):
        if v is not None:
            check_channel_vector(v, x, name)
    if ls_gamma is not None:
        _lib.norm_ls_function()  # before any work: a library too old for it says so
    num_threads = F.check_threads(num_threads)
    if training and p > 0.0:
        args = (True, kind, eps, p, F._seed_or_draw(seed), F.check_counter(offset, "offset"),
                F.check_counter(sample_base, "sample_base"), F.MODES[mode])
    else:
        args = (False, kind, eps, p, 0, 0, 0, F.MODES[mode])
    return _ResidualNorm.apply(x, f, weight, bias, ls_gamma, *args, bool(scale_by_keep),
                               num_threads)


class ResidualNorm(_MaskStream):
    """A pre-norm block's join and the next norm, fused: ``forward(x, f)`` returns
    ``(r, y)`` with r = x + drop_path(f) (the next residual) and y = norm(r);
    with ``ls_init_values`` r = x + drop_path(gamma * f), LayerScale in the join.

    It replaces a timm block's ``x + self.drop_path1(self.ls1(f))`` and the
    norm applied to that x next (``norm2``, or the next block's ``norm1``).
    norm "layer" is ``nn.LayerNorm(dim, eps)``, "rms" an RMSNorm
    (``r / sqrt(mean(r*r) + eps) * weight``, no bias unless bias=True).  The
    norm's parameters are nn.LayerNorm's, ``weight`` and ``bias``: a
    LayerNorm's state_dict (``norm2.*`` of a timm block, say) loads into it.
    ls_init_values (None: no LayerScale) adds timm's LayerScale parameter
    ``gamma`` = ls_init_values * ones(dim), named as in timm's LayerScale so
    ``ls1.gamma`` loads into it under this module's prefix.  Masks: the
    package's mask stream (seed and calls buffers, sample_base).  Eval:
    r = x + f (or x + (1-p)*f without scale_by_keep), with gamma*f in place of
    f under LayerScale."""

    def __init__(self, dim, norm="layer", eps=1e-5, drop_prob=0.0, elementwise_affine=True,
                 scale_by_keep=True, *, bias=None, ls_init_values=None, mode="row", seed=None,
                 sample_base=0, num_threads=None):
        super().__init__(seed, sample_base, num_threads)
        self.kind = check_norm(norm)
        self.norm = norm
        self.normalized_shape = (int(dim),)
        self.eps = check_eps(eps)
        self.drop_prob = F.check_prob(drop_prob)
        F.check_mode(mode)
        self.mode = mode
        self.scale_by_keep = scale_by_keep
        self.elementwise_affine = elementwise_affine
        if bias is None:
            bias = norm == "layer"
        self.register_parameter("weight", nn.Parameter(torch.ones(dim)) if elementwise_affine
                                else None)
        self.register_parameter("bias", nn.Parameter(torch.zeros(dim))
                                if elementwise_affine and bias else None)
        self.ls_init_values = check_init_values(ls_init_values)
        # timm's LayerScale: gamma = init_values * torch.ones(dim)
        self.register_parameter("gamma", None if self.ls_init_values is None else
                                nn.Parameter(self.ls_init_values * torch.ones(dim)))

    def forward(self, x, f):
        common = dict(norm=self.norm, eps=self.eps, scale_by_keep=self.scale_by_keep,
                      ls_gamma=self.gamma)
        if not self.training:
            return drop_path_add_norm(x, f, self.drop_prob, self.weight, self.bias, False,
                                      num_threads=self.num_threads, **common)
        draw = self._draw()
        draw.pop("batch_dim")
        return drop_path_add_norm(x, f, self.drop_prob, self.weight, self.bias, True,
                                  mode=self.mode, **common, **draw)

    def extra_repr(self):
        s = "%s, norm=%s, eps=%s, elementwise_affine=%s, drop_prob=%0.3f" % (
            self.normalized_shape, self.norm, self.eps, self.elementwise_affine,
            round(self.drop_prob, 3))
        if self.ls_init_values is not None:
            s += ", ls_init_values=%s" % self.ls_init_values
        if self.mode != "row":
            s += ", mode=%s" % self.mode
        if not self.scale_by_keep:
            s += ", scale_by_keep=False"
        return s
