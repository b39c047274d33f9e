"""Functional forms: drop_path_add (fused x + drop_path(f)), drop_path, stochastic_depth, mask.

Masks are libdroppath's (README "Masks"): sample b of a call is kept or
dropped by Philox4x32-10 keyed by ``seed`` at counter (sample_base + b,
offset), so a (seed, offset) pair names one mask, the same on any thread
count, ISA or batch split.  With ``seed=None`` a seed is drawn from torch's
default generator (``torch.manual_seed`` makes it repeatable), as timm and
torchvision draw their masks from it.

Tensors: CPU, float32 / bfloat16 / float16, batch in ``batch_dim`` (default
0), any strides the C API can describe as [B][T][D] rows (others are copied
first, see _layout.py).  drop_path_add also takes a float32 x with a bfloat16
or float16 f (the output is float32, as torch's type promotion gives).
"""

import math
import numbers

import torch
from torch.autograd.function import once_differentiable

from . import _kernels
from . import _lib
from . import _ops
from ._layout import DTYPES

MODES = {"row": _lib.MODE_ROW, "batch": _lib.MODE_BATCH}
# Exact-k (README "Masks") for the compacted block and mask(): k samples of B, not a Bernoulli draw.
MASK_MODES = dict(MODES, exact_k=_lib.MODE_EXACT_K)
_U64_MIN, _U64_END = -(1 << 63), 1 << 64


# ---------------------------------------------------------------- argument checks

def check_prob(p, name="drop_prob"):
    if type(p) is float and 0.0 <= p <= 1.0:  # fast path; NaN fails the comparison
        return p
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError("%s has to be between 0 and 1, but got %r" % (name, p))
    return float(p)


def check_mode(mode):
    if mode not in MODES:
        raise ValueError("mode has to be either 'batch' or 'row', but got %r" % (mode,))
    return MODES[mode]


def check_mask_mode(mode):
    if not isinstance(mode, str) or mode not in MASK_MODES:
        raise ValueError("mode has to be one of 'row', 'batch' or 'exact_k', but got %r" % (mode,))
    return MASK_MODES[mode]


def check_counter(value, name):
    """seed, offset, sample_base: 64-bit counters (an int64's bits are taken as uint64)."""
    if type(value) is int and 0 <= value < _U64_END:  # fast path
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            not _U64_MIN <= value < _U64_END:
        raise ValueError("%s must be an integer in [-2**63, 2**64), got %r" % (name, value))
    return int(value) & _lib.MASK64


def check_init_values(v):
    """ls_init_values (ResidualNorm, DropPathBlock): None (no LayerScale) or a finite
    number (timm's init_values)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError("ls_init_values must be None or a finite number, got %r" % (v,))
    return float(v)


_threads_set = [None]  # the default last handed to dp_set_num_threads


def check_threads(num_threads):
    """None follows torch.get_num_threads() (as the library default, so small calls
    stay on one thread); n >= 1 is passed on as dp_params.num_threads."""
    if num_threads is None:
        want = torch.get_num_threads()
        if _threads_set[0] != want:
            _lib.check("dp_set_num_threads", _lib.lib().dp_set_num_threads(want))
            _threads_set[0] = want
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral) or \
            not 1 <= num_threads <= 1 << 30:
        raise ValueError("num_threads must be None or a positive integer, got %r" % (num_threads,))
    return int(num_threads)


def check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s must be a torch.Tensor, got %s" % (name, type(t).__name__))
    if t.device.type != "cpu":
        raise RuntimeError("droppath runs on CPU tensors only; %s is on %s (use timm's or "
                           "torchvision's modules on other devices)" % (name, t.device))
    if t.layout != torch.strided:
        raise TypeError("%s must be a strided (dense) tensor, got layout %s" % (name, t.layout))
    if t.dtype not in DTYPES:
        raise TypeError("%s has dtype %s; droppath supports float32, bfloat16 and float16"
                        % (name, t.dtype))
    if t.dim() < 1:
        raise ValueError("%s must have a batch dimension, got a 0-dim tensor" % name)


def check_residual(x, f):
    check_tensor(x, "x")
    check_tensor(f, "f")
    if x.shape != f.shape:
        raise ValueError("x and f must have the same shape (no broadcasting), got %s and %s"
                         % (tuple(x.shape), tuple(f.shape)))
    if (x.dtype, f.dtype) not in _kernels.RESIDUAL_COMBOS:
        raise TypeError("x %s with f %s is not supported: x and f of one dtype, or a float32 x "
                        "with a bfloat16 or float16 f" % (x.dtype, f.dtype))


def _batch_first(t, batch_dim):
    if batch_dim == 0 and type(batch_dim) is int:
        return t
    if isinstance(batch_dim, bool) or not isinstance(batch_dim, numbers.Integral) or \
            not -t.dim() <= batch_dim < t.dim():
        raise ValueError("batch_dim %r is out of range for a %d-dim tensor" % (batch_dim, t.dim()))
    return t.transpose(0, batch_dim) if batch_dim % t.dim() else t


def _seed_or_draw(seed):
    if seed is None:  # from torch's default generator, as timm's bernoulli_ draws
        return int(torch.randint(0, (1 << 63) - 1, (1,), dtype=torch.int64))
    return check_counter(seed, "seed")


# ---------------------------------------------------------------- autograd

class _ResidualDropPath(torch.autograd.Function):
    """out = x + m*s*f: forward dp_forward, backward dp_backward for f and grad_out for x."""

    @staticmethod
    def forward(ctx, x, f, drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads):
        out, scales = _ops.forward(x, f, drop_prob, _ops.to_int64(seed), _ops.to_int64(offset),
                                   _ops.to_int64(sample_base), mode, scale_by_keep, num_threads)
        ctx.save_for_backward(scales)
        ctx.branch_dtype = f.dtype
        ctx.num_threads = num_threads
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (scales,) = ctx.saved_tensors
        grad_x = grad_out if ctx.needs_input_grad[0] else None
        grad_f = None
        if ctx.needs_input_grad[1]:
            grad_f = _ops.backward(grad_out, scales, ctx.branch_dtype, ctx.num_threads)
        return (grad_x, grad_f) + (None,) * 7


class _DropPath(torch.autograd.Function):
    """out = m*s*x: forward dp_drop_path, backward dp_backward."""

    @staticmethod
    def forward(ctx, x, drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads):
        out, scales = _ops.drop_path(x, drop_prob, _ops.to_int64(seed), _ops.to_int64(offset),
                                     _ops.to_int64(sample_base), mode, scale_by_keep, num_threads)
        ctx.save_for_backward(scales)
        ctx.num_threads = num_threads
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (scales,) = ctx.saved_tensors
        grad_x = _ops.backward(grad_out, scales, grad_out.dtype, ctx.num_threads)
        return (grad_x,) + (None,) * 7


# ---------------------------------------------------------------- public functions

def drop_path_add(x, f, p, training=True, *, scale_by_keep=True, mode="row", seed=None, offset=0,
                  sample_base=0, num_threads=None, batch_dim=0):
    """``x + drop_path(f, p)`` in one pass: out[b] = x[b] + m[b]*s*f[b], s = 1/(1-p).

    Training with p > 0 runs dp_forward (backward: dp_backward for f, grad_out
    itself for x).  Otherwise it is ``x + f``, or ``x + (1-p)*f`` without
    scale_by_keep (the paper's test-time rule), in plain torch.  A dropped
    sample's f is never read: out = x exactly, even where f holds NaN."""
    p = check_prob(p, "p")
    check_mode(mode)
    if not training or p == 0.0:
        if scale_by_keep or p == 0.0:
            return x + f
        return x + f * float(torch.tensor(1.0 - p, dtype=torch.float32))
    check_residual(x, f)
    args = (p, _seed_or_draw(seed), check_counter(offset, "offset"),
            check_counter(sample_base, "sample_base"), MODES[mode], bool(scale_by_keep),
            check_threads(num_threads))
    xb, fb = _batch_first(x, batch_dim), _batch_first(f, batch_dim)
    return _batch_first(_ResidualDropPath.apply(xb, fb, *args), batch_dim)


def drop_path(x, drop_prob=0.0, training=False, scale_by_keep=True, *, mode="row", seed=None,
              offset=0, sample_base=0, num_threads=None, batch_dim=0):
    """timm's ``drop_path(x, drop_prob, training, scale_by_keep)``: x itself in eval
    mode or at drop_prob 0, else m*s*x per sample (dp_drop_path; dropped samples
    are +0.0 and not read)."""
    drop_prob = check_prob(drop_prob)
    check_mode(mode)
    if drop_prob == 0.0 or not training:
        return x
    check_tensor(x, "x")
    args = (drop_prob, _seed_or_draw(seed), check_counter(offset, "offset"),
            check_counter(sample_base, "sample_base"), MODES[mode], bool(scale_by_keep),
            check_threads(num_threads))
    return _batch_first(_DropPath.apply(_batch_first(x, batch_dim), *args), batch_dim)


def stochastic_depth(input, p, mode, training=True, **kwargs):
    """torchvision's ``stochastic_depth(input, p, mode, training)``: ValueError on a p
    outside [0, 1] or a mode other than "row"/"batch"; the extra keywords are
    drop_path's (seed, offset, sample_base, num_threads, batch_dim)."""
    check_prob(p, "drop probability")
    check_mode(mode)
    return drop_path(input, p, training, True, mode=mode, **kwargs)


def mask(batch, p, *, seed, offset=0, sample_base=0, mode="row", scale_by_keep=True):
    """The mask of one call (dp_mask): (keep, scales), a bool tensor and a float32
    tensor of B entries (s for kept samples, 0 for dropped ones).  The forward
    with the same arguments uses exactly this mask; mode "exact_k" gives the
    mask of drop_path_block(..., mode="exact_k")."""
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 0:
        raise ValueError("batch must be a non-negative integer, got %r" % (batch,))
    params = _lib.make_params(check_prob(p, "p"), check_counter(seed, "seed"),
                              check_counter(offset, "offset"),
                              check_counter(sample_base, "sample_base"), check_mask_mode(mode),
                              scale_by_keep)
    return _kernels.mask(params, int(batch))


SCHEDULES = {"linspace": 0, "resnet": 1, "efficientnet": 2, "huang": 3, "constant": 4}


def drop_rates(rule, rate, depth):
    """Per-block drop rates (dp_drop_rates): "linspace" (timm ViT), "resnet",
    "efficientnet", "huang" (Huang et al. 2016), "constant"."""
    if rule not in SCHEDULES:
        raise ValueError("rule must be one of %s, got %r" % (", ".join(SCHEDULES), rule))
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 0:
        raise ValueError("depth must be a non-negative integer, got %r" % (depth,))
    return _kernels.drop_rates(SCHEDULES[rule], check_prob(rate, "rate"), int(depth))
