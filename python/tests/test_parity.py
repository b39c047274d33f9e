"""Outputs and gradients against timm's and torchvision's formulas fed the same mask,
bit for bit in float32; bfloat16/float16 against the library's rule (f32 math,
one rounding); masks against the pure-Python model of the spec."""

import pytest
import torch

import droppath
from reference import (assert_bits_equal, assert_kept_bits_equal, spec_keep, timm_drop_path,
                       torchvision_stochastic_depth)

SHAPES = [(8, 16), (16, 7, 33), (4, 3, 5, 6), (1, 9, 10), (33, 1)]
PROBS = [0.1, 0.25, 0.5, 0.9, 1.0]


def _inputs(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dtype)
    f = torch.randn(shape, generator=g).to(dtype)
    return x.requires_grad_(), f.requires_grad_()


@pytest.mark.parametrize("batch,p,seed,offset,base", [
    (64, 0.1, 0, 0, 0), (100, 0.5, 42, 7, 0), (37, 0.25, 2**64 - 1, 2**40 + 3, 2**64 - 5),
    (16, 0.999, 5, 1, 123)])
@pytest.mark.parametrize("mode", ["row", "batch"])
def test_mask_matches_pure_python_spec(batch, p, seed, offset, base, mode):
    keep, scales = droppath.mask(batch, p, seed=seed, offset=offset, sample_base=base, mode=mode)
    expect = spec_keep(batch, p, seed, offset, base, mode).expand(batch)
    assert torch.equal(keep, expect)
    s = torch.tensor(1.0, dtype=torch.float32) / torch.tensor(1.0 - p, dtype=torch.float32)
    assert torch.equal(scales, torch.where(keep, s, torch.zeros(())))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", PROBS)
@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_drop_path_add_is_timm_bit_exact(shape, p, scale_by_keep):
    x, f = _inputs(shape)
    seed, offset = 1234, 5
    out = droppath.drop_path_add(x, f, p, True, scale_by_keep=scale_by_keep, seed=seed,
                                 offset=offset)
    keep, _ = droppath.mask(shape[0], p, seed=seed, offset=offset)
    ref = x + timm_drop_path(f, p, keep, scale_by_keep)
    assert_bits_equal(out.detach(), ref.detach())

    g = torch.randn(shape)
    gx, gf = torch.autograd.grad(out, (x, f), g)
    rgx, rgf = torch.autograd.grad(ref, (x, f), g)
    assert_bits_equal(gx, rgx)
    assert_kept_bits_equal(gf, rgf, keep)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", PROBS)
def test_drop_path_module_is_timm_bit_exact(shape, p):
    x, _ = _inputs(shape, seed=1)
    m = droppath.DropPath(p, seed=99).train()
    outs = [m(x) for _ in range(3)]  # calls 0, 1, 2: three masks
    for offset, out in enumerate(outs):
        keep, _ = droppath.mask(shape[0], p, seed=99, offset=offset)
        ref = timm_drop_path(x, p, keep)
        assert_kept_bits_equal(out.detach(), ref.detach(), keep)
        g = torch.randn(shape)
        (gx,) = torch.autograd.grad(out, x, g)
        (rgx,) = torch.autograd.grad(ref, x, g)
        assert_kept_bits_equal(gx, rgx, keep)


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.2, 0.5, 1.0])
def test_stochastic_depth_is_torchvision_bit_exact(mode, p):
    for offset in range(6):  # batch mode: both outcomes occur over these calls at p = 0.5
        x, _ = _inputs((12, 5, 7), seed=offset)
        out = droppath.stochastic_depth(x, p, mode, True, seed=7, offset=offset)
        keep, _ = droppath.mask(12, p, seed=7, offset=offset, mode=mode)
        ref = torchvision_stochastic_depth(x, p, mode, keep[:1] if mode == "batch" else keep)
        assert_kept_bits_equal(out.detach(), ref.detach(), keep)
        g = torch.randn(x.shape)
        (gx,) = torch.autograd.grad(out, x, g)
        (rgx,) = torch.autograd.grad(ref, x, g)
        assert_kept_bits_equal(gx, rgx, keep)


def test_masks_come_from_the_spec_not_the_library_alone():
    # The module's masks, read back from its outputs, match the pure-Python model.
    x = torch.ones(40, 3)
    m = droppath.DropPath(0.5, seed=2024)
    for offset in range(4):
        kept = m(x)[:, 0] != 0
        assert torch.equal(kept, spec_keep(40, 0.5, 2024, offset))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_dtypes_compute_in_f32_and_round_once(dtype):
    x, f = _inputs((16, 9, 40), dtype, seed=3)
    out = droppath.drop_path_add(x, f, 0.3, seed=8, offset=2)
    _, scales = droppath.mask(16, 0.3, seed=8, offset=2)
    s = scales.view(16, 1, 1)
    ref = torch.where(s != 0, x.float() + f.float() * s, x.float()).to(dtype)
    assert_bits_equal(out.detach(), ref)
    g = torch.randn(16, 9, 40).to(dtype)
    gx, gf = torch.autograd.grad(out, (x, f), g)
    assert_bits_equal(gx, g)
    assert_bits_equal(gf, (g.float() * s).to(dtype) + 0.0)  # + 0.0: dropped rows are +0


@pytest.mark.parametrize("fdtype", [torch.bfloat16, torch.float16])
def test_mixed_f32_residual_with_half_branch(fdtype):
    x, _ = _inputs((8, 5, 24), seed=4)
    _, f = _inputs((8, 5, 24), fdtype, seed=5)
    out = droppath.drop_path_add(x, f, 0.4, seed=1)
    assert out.dtype == torch.float32  # as x + f promotes
    _, scales = droppath.mask(8, 0.4, seed=1)
    s = scales.view(8, 1, 1)
    assert_bits_equal(out.detach(), torch.where(s != 0, x + f.float() * s, x).detach())
    g = torch.randn(8, 5, 24)
    gx, gf = torch.autograd.grad(out, (x, f), g)
    assert gf.dtype == fdtype
    assert_bits_equal(gx, g)
    assert_bits_equal(gf, (g * s).to(fdtype) + 0.0)


def test_dropped_branch_is_never_read():
    x = torch.randn(64, 10)
    f = torch.full((64, 10), float("nan"))
    out = droppath.drop_path_add(x, f, 0.5, seed=3)
    keep, _ = droppath.mask(64, 0.5, seed=3)
    assert 0 < keep.sum() < 64
    assert_bits_equal(out[~keep], x[~keep])  # timm gives x + 0*NaN = NaN here
    assert torch.isnan(out[keep]).all()


def test_p_one_drops_everything_without_dividing_by_zero():
    x, f = _inputs((6, 4))
    assert_bits_equal(droppath.drop_path_add(x, f, 1.0, seed=0).detach(), x.detach())
    out = droppath.drop_path(x, 1.0, True, seed=0)
    assert torch.equal(out, torch.zeros_like(x)) and not torch.signbit(out).any()
