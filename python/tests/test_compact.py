"""The compacted residual block, drop_path_block / DropPathBlock: x + drop_path(block(x))
with the block run on the kept samples only.

Against the dense timm-style block x + drop_path(block(x)) fed the same mask, with
a row-wise block (pre-norm MLP: every sample on its own):
- the output and x's gradient are bit-exact in float32;
- the block's parameter gradients are sums over rows, B*T rows dense and k*T rows
  compacted: the GEMM and the reductions may add them in another order, so they
  are held to a relative tolerance (PARAM_RTOL); bit-exact where the rows summed
  are the same: against the block run densely on the kept samples gathered by
  torch, and when every sample is kept.
The block sees exactly the kept samples (their bits, their count), which in
exact-k mode are the spec's (tools/droppath_ref.py)."""

import math

import pytest
import torch
from torch import nn

import droppath
import droppath_ref
from droppath import _kernels
from droppath import _lib
from reference import assert_bits_equal, timm_drop_path

# Max |compacted - dense| over a parameter's gradient, relative to the largest dense
# entry: ~80 float32 ulps, room for the different summation order of up to a few
# thousand rows (measured: below 2e-6 at ViT-S sizes, 1 and 2 threads).
PARAM_RTOL = 1e-5


def mlp(dim, seed=0, hidden=4):
    """Pre-norm MLP branch, timm's ViT: LayerNorm, Linear D->4D, GELU, Linear 4D->D."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden * dim), nn.GELU(),
                         nn.Linear(hidden * dim, dim))


class Recording(nn.Module):
    """Wraps a block and keeps what it was called on."""

    def __init__(self, block):
        super().__init__()
        self.block = block
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.block(x)


def dense_reference(x, block, p, mode, seed, offset, scale_by_keep=True, sample_base=0):
    """x + drop_path(block(x)) with the mask of (seed, offset): timm's formula for
    the Bernoulli modes, x + scale*block(x) per sample for exact-k (DINOv2's rule)."""
    keep, scales = droppath.mask(x.shape[0], p, seed=seed, offset=offset, mode=mode,
                                 sample_base=sample_base, scale_by_keep=scale_by_keep)
    f = block(x)
    if mode == "exact_k":
        return x + f * scales.view((-1,) + (1,) * (x.dim() - 1)), keep
    return x + timm_drop_path(f, p, keep, scale_by_keep), keep


def grads(out, x, block, g):
    params = list(block.parameters())
    got = torch.autograd.grad(out, [x] + params, g, allow_unused=True)
    return got[0], got[1:]


def assert_params_close(got, want):
    for a, b in zip(got, want):
        assert a.shape == b.shape
        err = (a - b).abs().max().item()
        assert err <= PARAM_RTOL * b.abs().max().item(), err


def _x(shape, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(dtype).requires_grad_()


# ---------------------------------------------------------------- against the dense block
# Bit-exactness against the dense block needs a block whose rows do not depend on
# how many samples it is given.  OpenBLAS's small-matrix GEMM kernels break that
# below some tens of rows (a Linear on 9x24 rows gives other bits than on 16x9x24),
# so these shapes have 64 rows per sample; test_..._gathered_samples covers small ones.

def assert_dense_bits(ours, dense, gathered, what):
    """ours == dense bit for bit; on failure, say whether the block itself gave the
    kept rows other bits in the dense batch (ours == gathered: the BLAS, not the join)."""
    try:
        assert_bits_equal(ours, dense)
    except AssertionError as e:
        if torch.equal(ours, gathered):
            raise AssertionError("%s: the block's rows depend on the batch size on this BLAS "
                                 "(ours equals the block run on the kept samples): %s"
                                 % (what, e)) from None
        raise


def gathered_reference(x, block, p, mode, seed, offset, scale_by_keep=True):
    """The block run by plain torch on x[kept] and joined by index_add: the same
    rows the compacted call sums."""
    keep, scales = droppath.mask(x.shape[0], p, seed=seed, offset=offset, mode=mode,
                                 scale_by_keep=scale_by_keep)
    idx = keep.nonzero().reshape(-1)
    if idx.numel() == 0:
        return x.clone()
    # f * s, then the add (index_add's alpha would fuse them into one FMA rounding).
    return torch.index_add(x, 0, idx, block(x.index_select(0, idx)) * scales[idx].view(
        (-1,) + (1,) * (x.dim() - 1)))


@pytest.mark.parametrize("mode", ["row", "batch", "exact_k"])
@pytest.mark.parametrize("p", [0.1, 0.4, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(16, 64, 32), (12, 8, 8, 32)])
def test_matches_dense_block(mode, p, shape):
    block = Recording(mlp(shape[-1]))
    for offset in range(4):  # batch mode at p = 0.5: both outcomes over these calls
        x = _x(shape, seed=offset)
        out = droppath.drop_path_block(x, block, p, seed=11, offset=offset, mode=mode)
        ref, keep = dense_reference(x, block.block, p, mode, 11, offset)
        gat = gathered_reference(x, block.block, p, mode, 11, offset)
        assert_dense_bits(out.detach(), ref.detach(), gat.detach(), "output")
        g = torch.randn(shape)
        gx, gp = grads(out, x, block, g)
        rgx, rgp = grads(ref, x, block, g)
        assert_dense_bits(gx, rgx, grads(gat, x, block, g)[0], "grad x")
        if int(keep.sum()) == 0:
            assert all(a is None for a in gp)  # the block was not run
        else:
            assert_params_close(gp, rgp)


def test_matches_dense_block_at_vit_s_size():
    block = mlp(384)
    for mode in ("row", "exact_k"):
        x = _x((8, 197, 384))
        out = droppath.drop_path_block(x, block, 0.4, seed=1, offset=2, mode=mode)
        ref, _ = dense_reference(x, block, 0.4, mode, 1, 2)
        gat = gathered_reference(x, block, 0.4, mode, 1, 2)
        assert_dense_bits(out.detach(), ref.detach(), gat.detach(), "output")
        g = torch.randn(x.shape)
        gx, gp = grads(out, x, block, g)
        rgx, rgp = grads(ref, x, block, g)
        assert_dense_bits(gx, rgx, grads(gat, x, block, g)[0], "grad x")
        assert_params_close(gp, rgp)


@pytest.mark.parametrize("mode", ["row", "exact_k"])
@pytest.mark.parametrize("threads", [1, 2])
def test_params_bit_exact_against_the_block_on_the_gathered_samples(mode, threads):
    """Against the block run by plain torch on the kept samples, every gradient is
    the same bits, parameters included: the same rows are summed."""
    block = mlp(40)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for offset, shape in enumerate([(24, 7, 40), (13, 40), (9, 2, 3, 40)]):
            x = _x(shape, seed=offset)
            out = droppath.drop_path_block(x, block, 0.4, seed=5, offset=offset, mode=mode,
                                           num_threads=threads)
            ref = gathered_reference(x, block, 0.4, mode, 5, offset)
            assert_bits_equal(out.detach(), ref.detach())
            g = torch.randn(out.shape)
            gx, gp = grads(out, x, block, g)
            rgx, rgp = grads(ref, x, block, g)
            assert_bits_equal(gx, rgx)
            for a, b in zip(gp, rgp):
                assert_bits_equal(a, b)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_scale_by_keep_off(scale_by_keep):
    block = mlp(16)
    for mode in ("row", "exact_k"):
        x = _x((20, 64, 16))
        out = droppath.drop_path_block(x, block, 0.3, seed=2, offset=1, mode=mode,
                                       scale_by_keep=scale_by_keep)
        ref, _ = dense_reference(x, block, 0.3, mode, 2, 1, scale_by_keep)
        assert_bits_equal(out.detach(), ref.detach())
        g = torch.randn(out.shape)
        assert_bits_equal(grads(out, x, block, g)[0], grads(ref, x, block, g)[0])


def test_everything_kept_is_the_dense_block_bit_for_bit():
    """k == B (batch mode, the draw keeps): the fused join on the whole batch, so the
    parameter gradients are the dense block's bits too."""
    block = Recording(mlp(24))
    kept_calls = 0
    for offset in range(8):
        x = _x((8, 6, 24), seed=offset)
        out = droppath.drop_path_block(x, block, 0.5, seed=3, offset=offset, mode="batch")
        ref, keep = dense_reference(x, block.block, 0.5, "batch", 3, offset)
        if not keep.all():
            continue
        kept_calls += 1
        assert block.inputs[-1].shape[0] == 8
        g = torch.randn(out.shape)
        gx, gp = grads(out, x, block, g)
        rgx, rgp = grads(ref, x, block, g)
        assert_bits_equal(out.detach(), ref.detach())
        assert_bits_equal(gx, rgx)
        for a, b in zip(gp, rgp):
            assert_bits_equal(a, b)
    assert kept_calls > 0


# ---------------------------------------------------------------- what the block sees

@pytest.mark.parametrize("mode", ["row", "batch", "exact_k"])
def test_block_runs_on_the_kept_samples_only(mode):
    block = Recording(mlp(12))
    x = _x((32, 4, 12))
    for offset in range(6):
        block.inputs.clear()
        droppath.drop_path_block(x, block, 0.5, seed=9, offset=offset, mode=mode)
        keep, _ = droppath.mask(32, 0.5, seed=9, offset=offset, mode=mode)
        k = int(keep.sum())
        if k == 0:
            assert block.inputs == []
            continue
        (seen,) = block.inputs
        assert seen.shape == (k, 4, 12)
        assert_bits_equal(seen, x.detach()[keep])


@pytest.mark.parametrize("batch,p,base", [(32, 0.4, 0), (10, 0.25, 7), (7, 0.9, 2**64 - 3),
                                          (5, 1.0, 0), (33, 0.001, 1)])
def test_exact_k_keeps_the_specs_k_samples_scaled_by_b_over_k(batch, p, base):
    block = Recording(lambda t: t * 0.5 + 1.0)
    x = _x((batch, 3))
    for offset in range(3):
        block.inputs.clear()
        out = droppath.drop_path_block(x, block, p, seed=21, offset=offset, sample_base=base,
                                       mode="exact_k")
        want = droppath_ref.exact_k_indices(21, offset, base, batch, p)
        assert len(want) == max(math.floor(batch * (1 - p)), 1)
        (seen,) = block.inputs
        assert seen.shape[0] == len(want)
        assert_bits_equal(seen, x.detach()[want])
        s = droppath_ref.f32(batch / len(want))
        kept = torch.zeros(batch, dtype=torch.bool)
        kept[want] = True
        expect = torch.where(kept.view(-1, 1), x + (x * 0.5 + 1.0) * s, x)
        assert_bits_equal(out.detach(), expect.detach())
        keep, scales = droppath.mask(batch, p, seed=21, offset=offset, sample_base=base,
                                     mode="exact_k")
        assert torch.equal(keep, kept)
        assert scales.tolist() == droppath_ref.exact_k_mask(21, offset, base, batch, p)


def test_nothing_kept_copies_x_and_skips_the_block():
    block = Recording(mlp(8))
    x = _x((6, 8))
    out = droppath.drop_path_block(x, block, 1.0, seed=0)
    assert block.inputs == []
    assert out is not x
    assert_bits_equal(out.detach(), x.detach())
    g = torch.randn(6, 8)
    gx, gp = grads(out, x, block, g)
    assert_bits_equal(gx, g)
    assert all(a is None for a in gp)


def test_eval_and_p_zero_run_the_whole_block():
    block = Recording(mlp(8))
    x = _x((6, 5, 8))
    f = block.block(x)
    for p, training in ((0.3, False), (0.0, True)):
        block.inputs.clear()
        assert_bits_equal(droppath.drop_path_block(x, block, p, training).detach(),
                          (x + f).detach())
        assert block.inputs[0].shape[0] == 6
    keep = torch.tensor(0.7, dtype=torch.float32)  # Huang et al.'s test rule: x + keep*f
    paper = droppath.drop_path_block(x, block, 0.3, False, scale_by_keep=False)
    assert_bits_equal(paper.detach(), (x + f * keep).detach())
    m = droppath.DropPathBlock(block, 0.3, scale_by_keep=False).eval()
    assert_bits_equal(m(x).detach(), paper.detach())
    assert int(m.calls) == 0


# ---------------------------------------------------------------- dtypes and layouts

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_dtypes(dtype):
    """The join computes x + s*f in f32 and rounds once (the library's rule); x's
    gradient is grad_out plus the block's input gradient, rounded once, as torch adds."""
    w = torch.randn(24).to(dtype).requires_grad_()
    block = lambda t: t * t * w  # noqa: E731  (row-wise, with a parameter)
    x = _x((16, 5, 24), dtype=dtype)
    out = droppath.drop_path_block(x, block, 0.4, seed=4, offset=2)
    keep, scales = droppath.mask(16, 0.4, seed=4, offset=2)
    s = scales.view(16, 1, 1)
    f = block(x)
    ref = torch.where(s != 0, (x.float() + f.float() * s).to(dtype), x)
    assert_bits_equal(out.detach(), ref.detach())
    g = torch.randn(16, 5, 24).to(dtype)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    gf = (g.float() * s).to(dtype)  # the branch's output gradient, rounded once
    rgx_block, rgw = torch.autograd.grad(f, (x, w), gf)
    assert_bits_equal(gx, torch.where(keep.view(16, 1, 1), g + rgx_block, g))
    torch.testing.assert_close(gw, rgw, rtol=2e-2, atol=1e-2)  # sums of rounded terms


def test_float32_x_with_a_half_block():
    block = mlp(16)
    half = lambda t: block(t).to(torch.bfloat16)  # noqa: E731  (autocast-like branch)
    x = _x((12, 64, 16))
    out = droppath.drop_path_block(x, half, 0.5, seed=6, offset=1)
    assert out.dtype == torch.float32
    keep, scales = droppath.mask(12, 0.5, seed=6, offset=1)
    f = half(x)
    ref = torch.where(keep.view(12, 1, 1), x + f.float() * scales.view(12, 1, 1), x)
    assert_bits_equal(out.detach(), ref.detach())
    g = torch.randn(12, 64, 16)
    (gx,) = torch.autograd.grad(out, x, g)
    (rgx,) = torch.autograd.grad(ref, x, g)
    assert_bits_equal(gx, rgx)


def test_sequence_first_batch_dim():
    """batch_dim=1: x is [T][B][D]; the block gets [T][k][D], contiguous like x."""
    block = Recording(mlp(16))
    xs = _x((64, 10, 16))  # [T][B][D]
    out = droppath.drop_path_block(xs, block, 0.5, seed=8, offset=3, batch_dim=1)
    keep, _ = droppath.mask(10, 0.5, seed=8, offset=3)
    (seen,) = block.inputs
    assert seen.shape == (64, int(keep.sum()), 16) and seen.is_contiguous()
    assert_bits_equal(seen, xs.detach()[:, keep])
    xb = xs.detach().transpose(0, 1).contiguous().requires_grad_()
    ref, _ = dense_reference(xb, lambda t: block.block(t.transpose(0, 1)).transpose(0, 1),
                             0.5, "row", 8, 3)
    assert_bits_equal(out.detach(), ref.detach().transpose(0, 1))
    g = torch.randn(64, 10, 16)
    (gx,) = torch.autograd.grad(out, xs, g)
    (rgx,) = torch.autograd.grad(ref, xb, g.transpose(0, 1))
    assert_bits_equal(gx, rgx.transpose(0, 1))


def test_the_block_gets_x_layout_and_views_are_handled():
    w = torch.randn(6, 1, 1, requires_grad=True)
    seen = []

    def block(t):  # per element: any layout gives the same bits
        seen.append(t)
        return torch.sin(t) * w

    base = torch.randn(12, 6, 5, 7)
    cases = {"channels_last": base.to(memory_format=torch.channels_last),
             "padded": torch.randn(12, 6, 5, 9)[..., :7],
             "stepped": torch.randn(12, 6, 5, 14)[..., ::2]}
    for name, x in cases.items():
        x = x.clone().requires_grad_() if name == "channels_last" else x.requires_grad_()
        seen.clear()
        out = droppath.drop_path_block(x, block, 0.5, seed=1, offset=2)
        ref, _ = dense_reference(x, block, 0.5, "row", 1, 2)
        if name == "channels_last":
            assert seen[0].is_contiguous(memory_format=torch.channels_last)
        assert_bits_equal(out.detach(), ref.detach())
        g = torch.randn(x.shape)
        gx, gw = torch.autograd.grad(out, (x, w), g)
        rgx, rgw = torch.autograd.grad(ref, (x, w), g)
        assert_bits_equal(gx, rgx)
        torch.testing.assert_close(gw, rgw, rtol=PARAM_RTOL, atol=0)


def test_block_output_in_another_layout_and_expanded_gradients():
    """A block that returns a transposed tensor, and the gradient of .sum() (zero
    strides): both are copied where the C API cannot describe them."""
    block = lambda t: (t.transpose(1, 2).contiguous() * 2.0).transpose(1, 2)  # noqa: E731
    x = _x((9, 4, 6))
    out = droppath.drop_path_block(x, block, 0.5, seed=3)
    ref, _ = dense_reference(x, block, 0.5, "row", 3, 0)
    assert_bits_equal(out.detach(), ref.detach())
    (gx,) = torch.autograd.grad(out.sum(), x)
    (rgx,) = torch.autograd.grad(ref.sum(), x)
    assert_bits_equal(gx, rgx)


def test_gradients_to_parameters_only_or_x_only():
    block = mlp(8)
    x = _x((10, 8)).detach()  # no gradient wanted for x
    out = droppath.drop_path_block(x, block, 0.5, seed=2)
    ref, _ = dense_reference(x, block, 0.5, "row", 2, 0)
    g = torch.randn(10, 8)
    ps = list(block.parameters())
    assert_params_close(torch.autograd.grad(out, ps, g), torch.autograd.grad(ref, ps, g))
    xg = _x((10, 8))
    frozen = lambda t: torch.tanh(t)  # noqa: E731  (no parameters)
    out = droppath.drop_path_block(xg, frozen, 0.5, seed=2)
    ref, _ = dense_reference(xg, frozen, 0.5, "row", 2, 0)
    assert_bits_equal(torch.autograd.grad(out, xg, g)[0], torch.autograd.grad(ref, xg, g)[0])


def test_a_block_ignoring_its_input_gives_x_only_grad_out():
    bias = torch.randn(8, requires_grad=True)
    x = _x((10, 8))
    out = droppath.drop_path_block(x, lambda t: bias.expand_as(t), 0.5, seed=2)
    g = torch.randn(10, 8)
    gx, gb = torch.autograd.grad(out, (x, bias), g)
    assert_bits_equal(gx, g)
    keep, scales = droppath.mask(10, 0.5, seed=2)
    torch.testing.assert_close(gb, (g * scales.view(10, 1)).sum(0), rtol=PARAM_RTOL, atol=0)


@pytest.mark.parametrize("shape", [(4, 0), (0, 5), (6, 3, 0)])
def test_empty_tensors(shape):
    seen = []
    x = _x(shape)
    out = droppath.drop_path_block(x, lambda t: seen.append(t.shape) or t * 2, 0.5, seed=0)
    keep, _ = droppath.mask(shape[0], 0.5, seed=0)
    assert seen == ([(int(keep.sum()),) + shape[1:]] if keep.any() else [])
    assert out.shape == shape
    out.sum().backward()
    assert x.grad.shape == shape


def test_backward_twice_with_retained_graph_and_accumulated_grads():
    block = mlp(8)
    x = _x((16, 3, 8))
    out = droppath.drop_path_block(x, block, 0.5, seed=4)
    g = torch.randn(out.shape)
    out.backward(g, retain_graph=True)
    first = x.grad.clone()
    out.backward(g)
    assert_bits_equal(x.grad, first + first)


# ---------------------------------------------------------------- the module

def test_module_draws_one_mask_per_call_and_saves_its_state():
    torch.manual_seed(0)
    m = droppath.DropPathBlock(Recording(mlp(8)), 0.5, mode="exact_k", seed=31)
    assert set(m.state_dict()) >= {"seed", "calls", "block.block.0.weight"}
    x = _x((12, 8))
    outs = [m(x) for _ in range(3)]
    for offset, out in enumerate(outs):
        want = droppath.drop_path_block(x, m.block.block, 0.5, seed=31, offset=offset,
                                        mode="exact_k")
        assert_bits_equal(out.detach(), want.detach())
    assert int(m.calls) == 3
    resumed = droppath.DropPathBlock(Recording(mlp(8, seed=5)), 0.5, mode="exact_k", seed=1)
    resumed.load_state_dict(m.state_dict())
    assert_bits_equal(resumed(x).detach(), m(x).detach())


def test_module_given_the_block_at_each_call():
    """The timm wiring: the block's modules stay where they are (names, checkpoints)."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.mlp = nn.LayerNorm(8), mlp(8)[1:]
            self.drop_path = droppath.DropPathBlock(drop_prob=0.5, seed=4)

        def forward(self, x):
            return self.drop_path(x, lambda t: self.mlp(self.norm(t)))

    b = Block()
    assert all(k.startswith(("norm.", "mlp.")) for k in b.state_dict()
               if not k.startswith("drop_path."))
    assert set(k for k in b.state_dict() if k.startswith("drop_path.")) == \
        {"drop_path.seed", "drop_path.calls"}
    x = _x((16, 8))
    for offset in range(2):
        want = droppath.drop_path_block(x, lambda t: b.mlp(b.norm(t)), 0.5, seed=4,
                                        offset=offset)
        assert_bits_equal(b(x).detach(), want.detach())
    with pytest.raises(TypeError, match="at neither"):
        b.drop_path(x)
    with pytest.raises(TypeError, match="at both"):
        droppath.DropPathBlock(mlp(8), 0.5)(x, mlp(8))
    assert int(b.drop_path.calls) == 2  # the refused calls drew nothing


def test_module_sample_base_and_seed_all():
    model = nn.Sequential(droppath.DropPathBlock(mlp(8), 0.5, seed=1),
                          droppath.DropPathBlock(mlp(8, seed=1), 0.5, seed=2))
    droppath.set_sample_base(model, 64)
    droppath.seed_all(model, 100)
    assert [m.sample_base for m in model] == [64, 64]
    assert [int(m.seed) for m in model] == [100, 101]
    x = _x((16, 8))
    out = model[0](x)
    want = droppath.drop_path_block(x, model[0].block, 0.5, seed=100, offset=0, sample_base=64)
    assert_bits_equal(out.detach(), want.detach())


def test_module_repr():
    m = droppath.DropPathBlock(nn.Identity(), 0.25, mode="exact_k")
    assert repr(m) == ("DropPathBlock(\n  drop_prob=0.250, mode=exact_k\n"
                       "  (block): Identity()\n)")
    assert "scale_by_keep=False" in repr(droppath.DropPathBlock(nn.Identity(), 0.1, False))


# ---------------------------------------------------------------- operators and errors

def test_compaction_operators_are_registered():
    if not droppath.TORCH_OPS_REGISTERED:
        pytest.skip("torch.library unavailable")
    x = torch.randn(8, 3)
    x_kept, idx = torch.ops.droppath.compact_gather(x, 0.5, 7, 0, 0, 0, 0)
    keep, _ = droppath.mask(8, 0.5, seed=7)
    assert idx.tolist() == keep.nonzero().reshape(-1).tolist()
    assert_bits_equal(x_kept, x[keep])
    out = torch.ops.droppath.compact_forward(x, x_kept, idx, 0.5, 0, True, 0)
    assert_bits_equal(out, droppath.drop_path_add(x, x, 0.5, seed=7))
    gfk = torch.ops.droppath.compact_backward(x, idx, 0.5, 0, True, torch.float32, 0)
    assert_bits_equal(gfk, x[keep] * 2.0)
    gx = torch.ops.droppath.compact_scatter_add(x, gfk, idx, 0)
    assert_bits_equal(gx, torch.index_add(x, 0, idx, gfk))


def test_argument_errors():
    x = torch.randn(4, 6)
    block = mlp(6)
    for p in (-0.1, 1.5, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="between 0 and 1"):
            droppath.drop_path_block(x, block, p)
        with pytest.raises(ValueError, match="between 0 and 1"):
            droppath.DropPathBlock(block, p)
    for mode in ("col", "exactk", None):
        with pytest.raises(ValueError, match="'row', 'batch' or 'exact_k'"):
            droppath.drop_path_block(x, block, 0.1, mode=mode)
        with pytest.raises(ValueError, match="'row', 'batch' or 'exact_k'"):
            droppath.DropPathBlock(block, 0.1, mode=mode)
        with pytest.raises(ValueError, match="'row', 'batch' or 'exact_k'"):
            droppath.mask(4, 0.1, seed=0, mode=mode)
    with pytest.raises(TypeError, match="block must be callable"):
        droppath.drop_path_block(x, 3, 0.1)
    with pytest.raises(TypeError, match="block must be callable"):
        droppath.DropPathBlock("mlp", 0.1)
    with pytest.raises(TypeError, match="block must be callable"):
        droppath.DropPathBlock(drop_prob=0.1)(x, "mlp")
    with pytest.raises(ValueError, match="offset"):
        droppath.drop_path_block(x, block, 0.1, offset=-2**63 - 1)
    with pytest.raises(ValueError, match="num_threads"):
        droppath.drop_path_block(x, block, 0.1, num_threads=0)
    with pytest.raises(ValueError, match="batch_dim"):
        droppath.drop_path_block(x, block, 0.1, batch_dim=2)


def test_tensor_and_block_output_errors():
    x = torch.randn(8, 6)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        droppath.drop_path_block([1.0], mlp(6), 0.5)
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        droppath.drop_path_block(torch.empty(8, 6, device="meta"), mlp(6), 0.5)
    with pytest.raises(TypeError, match="float32, bfloat16 and float16"):
        droppath.drop_path_block(x.double(), lambda t: t, 0.5)
    # seed 0 keeps 1 to 7 of these 8 samples: the compacted path answers.
    keep, _ = droppath.mask(8, 0.5, seed=0)
    assert 0 < keep.sum() < 8
    with pytest.raises(ValueError, match="input's shape"):
        droppath.drop_path_block(x, lambda t: t[:, :3], 0.5, seed=0)
    with pytest.raises(ValueError, match="input's shape"):
        droppath.drop_path_block(x, lambda t: t.sum(0), 0.5, seed=0)
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        droppath.drop_path_block(x, lambda t: (t, t), 0.5, seed=0)
    with pytest.raises(TypeError, match="is not supported"):
        droppath.drop_path_block(x.bfloat16(), lambda t: t.float(), 0.5, seed=0)
    with pytest.raises(TypeError, match="block's output has dtype torch.float64"):
        droppath.drop_path_block(x, lambda t: t.double(), 0.5, seed=0)
    # The same checks when every sample is kept (the whole-batch path).
    with pytest.raises(ValueError, match="input's shape"):
        droppath.drop_path_block(x, lambda t: t[:, :3], 1e-9, seed=0)


def test_double_backward_is_refused():
    x = _x((8, 6))
    out = droppath.drop_path_block(x, lambda t: t * t, 0.5, seed=0)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()


def test_c_status_from_compaction_calls():
    x = torch.randn(6, 4)
    params = _lib.make_params(0.5)
    bad = torch.tensor([3, 1], dtype=_kernels.INDEX_DTYPE)  # not ascending
    with pytest.raises(droppath.DropPathError, match="dp_compact_forward.*DP_ERR_BAD_ARGUMENT"):
        _kernels.compact_forward(x, torch.randn(2, 4), bad, params)
    with pytest.raises(droppath.DropPathError, match="dp_compact_scatter_add.*DP_ERR_BAD_ARG"):
        _kernels.compact_scatter_add(x, torch.randn(2, 4), torch.tensor(
            [1, 9], dtype=_kernels.INDEX_DTYPE), 0)
    params.mode = 9
    with pytest.raises(droppath.DropPathError, match="DP_ERR_BAD_MODE"):
        _kernels.compact_gather(x, params)


def test_a_library_without_compaction_says_so(monkeypatch):
    class Old:  # a library from before sample compaction: no dp_compact_* symbols
        pass
    monkeypatch.setattr(_lib, "_loaded", (Old(), "libdroppath-old.so.0"))
    with pytest.raises(droppath.LibraryNotFoundError,
                       match="libdroppath-old.so.0 has no dp_compact_gather: it predates"):
        _lib.compact_function("dp_compact_gather")
