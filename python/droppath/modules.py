"""Modules: DropPath (timm), StochasticDepth (torchvision), ResidualDropPath (fused
x + drop_path(f)), DropPathBlock (x + drop_path(block(x)), block run on kept samples only).

Each module owns a mask stream: a ``seed`` (drawn from torch's default
generator when not given, so ``torch.manual_seed`` before building the model
fixes it) and ``calls``, the number of training-mode forward calls so far.
Call n draws the mask (seed, offset = n).  Both are int64 buffers, so they
are saved in ``state_dict`` and a resumed run draws the masks the
uninterrupted run would have; a state_dict without them (a timm or
torchvision checkpoint) loads without complaint and keeps the module's own.

``sample_base`` (an attribute, not saved: it belongs to the process, not the
model) is the global index of this process's first sample: a shard of a
batch split over processes then gets exactly the masks its samples get in the
whole batch.  ``set_sample_base(model, n)`` sets it on every module.
"""

import numbers

import torch
from torch import nn

from . import functional as F
from .compact import drop_path_block
from ._ops import to_int64

_STATE = ("seed", "calls")


def _join_repr(m):
    """extra_repr of a module with drop_prob, mode and scale_by_keep (defaults left out)."""
    s = "drop_prob=%0.3f" % round(m.drop_prob, 3)
    if m.mode != "row":
        s += ", mode=%s" % m.mode
    if not m.scale_by_keep:
        s += ", scale_by_keep=False"
    return s


class _MaskStream(nn.Module):
    """seed and calls buffers, the sample base and thread count of one module."""

    def __init__(self, seed=None, sample_base=0, num_threads=None, batch_dim=0):
        super().__init__()
        seed = F._seed_or_draw(seed)
        self.register_buffer("seed", torch.tensor(to_int64(seed), dtype=torch.int64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.sample_base = F.check_counter(sample_base, "sample_base")
        if num_threads is not None:
            F.check_threads(num_threads)
        self.num_threads = num_threads
        self.batch_dim = batch_dim

    def _draw(self):
        """Keyword arguments of this call's mask; counts the call."""
        offset = int(self.calls)
        with torch.no_grad():
            self.calls.add_(1)
        return dict(seed=int(self.seed), offset=offset, sample_base=self.sample_base,
                    num_threads=self.num_threads, batch_dim=self.batch_dim)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        # Checkpoints of timm's and torchvision's modules carry no mask state.
        for name in _STATE:
            if prefix + name in missing_keys:
                missing_keys.remove(prefix + name)


class DropPath(_MaskStream):
    """timm's ``DropPath(drop_prob=0., scale_by_keep=True)``: per sample, out = m*s*x
    with s = 1/(1-drop_prob); the input itself in eval mode or at drop_prob 0."""

    def __init__(self, drop_prob=0.0, scale_by_keep=True, *, seed=None, sample_base=0,
                 num_threads=None, batch_dim=0):
        super().__init__(seed, sample_base, num_threads, batch_dim)
        self.drop_prob = F.check_prob(drop_prob)
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        if not self.training:
            return x
        return F.drop_path(x, self.drop_prob, True, self.scale_by_keep, **self._draw())

    def extra_repr(self):
        return "drop_prob=%0.3f" % round(self.drop_prob, 3)


class StochasticDepth(_MaskStream):
    """torchvision's ``StochasticDepth(p, mode)``, mode "row" (one draw per sample)
    or "batch" (one draw per call); ValueError on a bad p or mode."""

    def __init__(self, p, mode, *, seed=None, sample_base=0, num_threads=None, batch_dim=0):
        super().__init__(seed, sample_base, num_threads, batch_dim)
        F.check_prob(p, "drop probability")
        F.check_mode(mode)
        self.p = p
        self.mode = mode

    def forward(self, input):
        if not self.training:
            F.check_prob(self.p, "drop probability")
            F.check_mode(self.mode)
            return input
        return F.stochastic_depth(input, self.p, self.mode, True, **self._draw())

    def __repr__(self):
        return "%s(p=%s, mode=%s)" % (self.__class__.__name__, self.p, self.mode)


class ResidualDropPath(_MaskStream):
    """The residual join ``x + drop_path(f)`` fused: ``forward(x, f)``.

    Training: out[b] = x[b] + m[b]*s*f[b] in one pass (dp_forward; backward
    dp_backward), a dropped sample's f never read.  Eval: x + f, or
    x + (1-p)*f when scale_by_keep is False (Huang et al.'s test rule)."""

    def __init__(self, drop_prob=0.0, scale_by_keep=True, *, mode="row", seed=None,
                 sample_base=0, num_threads=None, batch_dim=0):
        super().__init__(seed, sample_base, num_threads, batch_dim)
        self.drop_prob = F.check_prob(drop_prob)
        F.check_mode(mode)
        self.scale_by_keep = scale_by_keep
        self.mode = mode

    def forward(self, x, f):
        if not self.training:
            return F.drop_path_add(x, f, self.drop_prob, False, scale_by_keep=self.scale_by_keep)
        return F.drop_path_add(x, f, self.drop_prob, True, scale_by_keep=self.scale_by_keep,
                               mode=self.mode, **self._draw())

    def extra_repr(self):
        return _join_repr(self)


class DropPathBlock(_MaskStream):
    """``x + drop_path(block(x))`` with ``block`` run on the kept samples only
    (sample compaction, droppath.compact).

    Either own the block, ``DropPathBlock(mlp, 0.1)(x)`` (its parameters are then
    this module's ``block.*``), or be given it at each call,
    ``DropPathBlock(drop_prob=0.1)(x, lambda t: self.mlp(self.norm(t)))``, which
    leaves a model's parameter names (and its checkpoints) as they were.

    Training: block sees the k samples the call's mask keeps; mode "row" (a
    draw per sample), "batch" (one draw per call) or "exact_k" (exactly
    max(floor(B*(1-p)), 1) samples, scaled by B/k: not shard-invariant).
    Eval: x + block(x), or x + (1-p)*block(x) when scale_by_keep is False.
    The block must treat each sample on its own.

    LayerScale: ``ls_init_values`` (None: none) adds timm's and DINOv2's
    LayerScale parameter ``gamma`` = ls_init_values * ones(dim) and makes the
    module ``x + drop_path(gamma * block(x))`` (eval: ``x + gamma*block(x)``),
    the scaling done in the join (drop_path_block's ls_gamma) rather than in
    the block, gamma's gradient coming from the join's backward.  The module
    does not see D until it is called, so ``dim`` (x.shape[-1], the channels)
    must be given with ls_init_values; without it dim is not used.  gamma is
    named as in timm's LayerScale: a module given the block at each call and
    named as the block's LayerScale (``ls1``) loads a timm or DINOv2
    checkpoint's ``ls1.gamma``."""

    def __init__(self, block=None, drop_prob=0.0, scale_by_keep=True, *, mode="row", seed=None,
                 sample_base=0, num_threads=None, batch_dim=0, dim=None, ls_init_values=None):
        super().__init__(seed, sample_base, num_threads, batch_dim)
        if block is not None and not callable(block):
            raise TypeError("block must be callable (a module or function) or None, got %s"
                            % type(block).__name__)
        self.block = block
        self.drop_prob = F.check_prob(drop_prob)
        F.check_mask_mode(mode)
        self.scale_by_keep = scale_by_keep
        self.mode = mode
        self.ls_init_values = F.check_init_values(ls_init_values)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)
                                or dim < 0):
            raise ValueError("dim must be None or a non-negative integer, got %r" % (dim,))
        if self.ls_init_values is not None and dim is None:
            raise ValueError("ls_init_values needs dim, the number of channels (x.shape[-1]) "
                             "LayerScale's gamma scales")
        self.dim = None if dim is None else int(dim)
        # timm's LayerScale: gamma = init_values * torch.ones(dim)
        self.register_parameter("gamma", None if self.ls_init_values is None else
                                nn.Parameter(self.ls_init_values * torch.ones(self.dim)))

    def forward(self, x, block=None):
        if (block is None) == (self.block is None):
            raise TypeError("DropPathBlock: give the block once, when building the module or "
                            "at the call (%s)" % ("at both" if block is not None else "at neither"))
        block = self.block if block is None else block
        if not self.training:
            return drop_path_block(x, block, self.drop_prob, False,
                                   scale_by_keep=self.scale_by_keep, ls_gamma=self.gamma,
                                   num_threads=self.num_threads, batch_dim=self.batch_dim)
        return drop_path_block(x, block, self.drop_prob, True, mode=self.mode,
                               scale_by_keep=self.scale_by_keep, ls_gamma=self.gamma,
                               **self._draw())

    def extra_repr(self):
        s = _join_repr(self)
        if self.ls_init_values is not None:
            s += ", dim=%d, ls_init_values=%s" % (self.dim, self.ls_init_values)
        return s


def mask_modules(model):
    """The modules of this package in model, in model.modules() order."""
    return [m for m in model.modules() if isinstance(m, _MaskStream)]


def set_sample_base(model, sample_base):
    """Set the global index of this process's first sample on every module of model."""
    value = F.check_counter(sample_base, "sample_base")
    for m in mask_modules(model):
        m.sample_base = value


def seed_all(model, seed):
    """Give the modules of model the seeds seed, seed+1, ... (model.modules() order)
    and restart their call counters: one number then fixes every mask of a run."""
    base = F.check_counter(seed, "seed")
    with torch.no_grad():
        for i, m in enumerate(mask_modules(model)):
            m.seed.fill_(to_int64(base + i))
            m.calls.zero_()
