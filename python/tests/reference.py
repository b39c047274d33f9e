"""timm's and torchvision's DropPath formulas in plain torch, with the Bernoulli
draw replaced by given keep flags, and bit-level comparison helpers.

timm (layers/drop.py, drop_path):
    keep_prob = 1 - drop_prob
    random_tensor = x.new_empty((B, 1, ...)).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep: random_tensor.div_(keep_prob)
    return x * random_tensor
torchvision (ops/stochastic_depth.py):
    survival_rate = 1.0 - p
    noise = torch.empty([B, 1, ...] or [1, 1, ...], dtype=input.dtype).bernoulli_(survival_rate)
    if survival_rate > 0.0: noise.div_(survival_rate)
    return input * noise
"""

import torch

import droppath_ref  # tools/droppath_ref.py: the mask spec in pure Python


def timm_drop_path(x, drop_prob, keep, scale_by_keep=True):
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = keep.to(x.dtype).reshape(shape).clone()  # stands for bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


def torchvision_stochastic_depth(input, p, mode, keep):
    survival_rate = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    noise = keep.to(input.dtype).reshape(size).clone()  # stands for bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


def spec_keep(batch, p, seed, offset, sample_base=0, mode="row"):
    """Keep flags from the independent pure-Python model of the mask spec."""
    batch_mode = mode == "batch"
    n = 1 if batch_mode else batch
    return torch.tensor([droppath_ref.is_kept(seed, offset, sample_base, b, batch_mode, p)
                         for b in range(n)], dtype=torch.bool)


_INT_OF = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


def bits(t):
    return t.contiguous().view(_INT_OF[t.dtype])


def assert_bits_equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    if not torch.equal(bits(a), bits(b)):
        diff = (bits(a) != bits(b)).nonzero()
        raise AssertionError("%d elements differ in bits, first at %s: %r vs %r" % (
            diff.shape[0], tuple(diff[0].tolist()), a[tuple(diff[0])].item(),
            b[tuple(diff[0])].item()))


def assert_kept_bits_equal(ours, theirs, keep):
    """Bits of kept samples equal; dropped samples are +0.0 in ours (the C API's
    rule) where torch's v*0 gives -0.0 for a negative v: equal as values.  For
    drop_path outputs and branch gradients."""
    keep = keep.reshape(-1)
    if keep.numel() == 1:
        keep = keep.expand(ours.shape[0])
    assert_bits_equal(ours[keep], theirs[keep])
    dropped = ours[~keep]
    assert torch.equal(bits(dropped), torch.zeros_like(bits(dropped))), "dropped rows are +0.0"
    assert torch.equal(theirs[~keep], torch.zeros_like(theirs[~keep]))
