"""LayerScaleDropPath / drop_path_add_ls against timm's ``x + drop_path(f * gamma)`` fed
the same mask: outputs, grad_x and grad_f bit for bit in float32; grad_gamma (the
library's fixed summation order) within the documented bound of the exact sum and
bit-identical across thread counts."""

import copy
import io
import pytest
import torch
from torch import nn

import droppath
from reference import assert_bits_equal, assert_kept_bits_equal, timm_drop_path

SHAPES = [(8, 16), (16, 7, 33), (4, 3, 5, 6), (1, 9, 10), (33, 1), (5, 2, 200)]
PROBS = [0.0, 0.1, 0.5, 0.9, 1.0]


def _inputs(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dtype).requires_grad_()
    f = torch.randn(shape, generator=g).to(dtype).requires_grad_()
    gamma = torch.randn(shape[-1], generator=g).requires_grad_()
    return x, f, gamma


def grad_gamma_bound(gs, f):
    """The library's bound on |grad_gamma - exact| (droppath.h, LayerScale): (P + groups
    + 2) * 2^-24 * sum|gs*f| per channel, with gs = grad_out*s over the kept rows."""
    dim = f.shape[-1]
    rows = f.numel() // dim
    most = min(64, max(1, (1 << 22) // dim))
    per = max(-(-(1 << 16) // dim), -(-rows // most))
    groups = -(-rows // per)
    terms = (gs.double() * f.double()).abs().reshape(rows, dim).sum(0)
    return (per + groups + 2) * 2.0 ** -24 * terms


def exact_grad_gamma(gs, f):
    dim = f.shape[-1]
    return (gs.double() * f.double()).reshape(-1, dim).sum(0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", PROBS)
@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_matches_timm_layer_scale_then_drop_path(shape, p, scale_by_keep):
    x, f, gamma = _inputs(shape)
    seed, offset = 321, 4
    out = droppath.drop_path_add_ls(x, f, gamma, p, True, scale_by_keep=scale_by_keep, seed=seed,
                                    offset=offset)
    keep, scales = droppath.mask(shape[0], p, seed=seed, offset=offset,
                                 scale_by_keep=scale_by_keep)
    if p == 0.0:  # timm's drop_path returns its input: no mask at all
        keep = torch.ones(shape[0], dtype=torch.bool)
    ref = x + timm_drop_path(f * gamma, p, keep, scale_by_keep)  # timm: x + dp(ls(f))
    assert_bits_equal(out.detach(), ref.detach())

    g = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    gx, gf, gg = torch.autograd.grad(out, (x, f, gamma), g)
    rgx, rgf, rgg = torch.autograd.grad(ref, (x, f, gamma), g)
    assert_bits_equal(gx, rgx)
    assert_kept_bits_equal(gf, rgf, keep)

    s = scales if p > 0 else torch.ones(shape[0])
    gs = g * s.view((-1,) + (1,) * (len(shape) - 1))
    bound = grad_gamma_bound(gs, f.detach())
    err = (gg.double() - exact_grad_gamma(gs, f.detach())).abs()
    assert (err <= bound).all(), "grad_gamma off the exact sum by %g > bound %g" % (
        (err - bound).max(), bound.max())
    # torch sums in an order of its own (cascade sums, error far below the bound): the
    # two f32 results lie within twice the bound of each other.
    assert ((gg.double() - rgg.double()).abs() <= 2 * bound).all()


@pytest.mark.parametrize("shape", [(64, 197, 96), (16, 50, 768), (256, 3)])
def test_grad_gamma_is_the_same_bits_for_any_thread_count(shape):
    x, f, gamma = _inputs(shape, seed=2)
    g = torch.randn(shape)
    grads = []
    for threads in (1, 2):
        out = droppath.drop_path_add_ls(x, f, gamma, 0.2, seed=11, offset=3, num_threads=threads)
        grads.append(torch.autograd.grad(out, (x, f, gamma), g) + (out.detach(),))
    for a, b in zip(*grads):
        assert_bits_equal(a, b)


def test_module_draws_one_mask_per_call_and_defaults_like_timm():
    m = droppath.LayerScaleDropPath(12, init_values=1e-5, drop_prob=0.5, seed=5)
    assert m.gamma.shape == (12,) and torch.equal(m.gamma.detach(), 1e-5 * torch.ones(12))
    x, f = torch.randn(40, 3, 12), torch.randn(40, 3, 12)
    for offset in range(3):
        out = m(x, f)
        keep, _ = droppath.mask(40, 0.5, seed=5, offset=offset)
        assert_bits_equal(out.detach(), (x + timm_drop_path(f * m.gamma, 0.5, keep)).detach())
    assert int(m.calls) == 3
    m.eval()(x, f)
    assert int(m.calls) == 3  # eval draws nothing
    assert repr(m) == "LayerScaleDropPath(dim=12, drop_prob=0.500)"


@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_eval_is_x_plus_gamma_f_and_differentiable(scale_by_keep):
    x, f, gamma = _inputs((6, 5, 20), seed=3)
    m = droppath.LayerScaleDropPath(20, drop_prob=0.3, scale_by_keep=scale_by_keep).eval()
    with torch.no_grad():
        m.gamma.copy_(gamma)
    out = m(x, f)
    keep = float(torch.tensor(0.7, dtype=torch.float32))
    ref = x + f * m.gamma if scale_by_keep else x + (f * m.gamma) * keep
    assert_bits_equal(out.detach(), ref.detach())
    g = torch.randn(6, 5, 20)
    for a, b in zip(torch.autograd.grad(out, (x, f, m.gamma), g),
                    torch.autograd.grad(ref, (x, f, m.gamma), g)):
        if a.dim() == 1:  # grad_gamma: sums in another order
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        else:
            assert_bits_equal(a, b)
    with torch.no_grad():
        assert_bits_equal(out.detach(), torch.ops.droppath.inference_add_ls(
            x, f, m.gamma, 0.3, scale_by_keep, 0)[0])


def test_state_dict_round_trip_and_timm_checkpoint():
    class TimmLayerScale(nn.Module):  # timm.layers.LayerScale's parameter
        def __init__(self, dim, init_values=1e-5):
            super().__init__()
            self.gamma = nn.Parameter(init_values * torch.ones(dim))

    timm_block = nn.Module()
    timm_block.ls1 = TimmLayerScale(8)
    with torch.no_grad():
        timm_block.ls1.gamma.copy_(torch.randn(8))
    ours = nn.Module()
    ours.ls1 = droppath.LayerScaleDropPath(8, drop_prob=0.25)
    ours.load_state_dict(timm_block.state_dict())  # strict: ls1.gamma maps, no mask state needed
    assert torch.equal(ours.ls1.gamma, timm_block.ls1.gamma)

    x, f = torch.randn(32, 4, 8), torch.randn(32, 4, 8)
    m = ours.ls1
    m(x, f)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    assert set(m.state_dict()) == {"seed", "calls", "gamma"}
    resumed = droppath.LayerScaleDropPath(8, drop_prob=0.25, seed=12345)
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf))
    assert_bits_equal(resumed(x, f).detach(), m(x, f).detach())  # call 1's mask on both
    twin = copy.deepcopy(m)
    assert_bits_equal(twin(x, f).detach(), m(x, f).detach())


def test_inplace_writes_x_and_gives_the_same_gradients():
    x0, f, gamma = _inputs((16, 6, 24), seed=4)
    g = torch.randn(16, 6, 24)
    ref = droppath.drop_path_add_ls(x0, f, gamma, 0.4, seed=2)
    ref_grads = torch.autograd.grad(ref, (x0, f, gamma), g)
    x = x0 * 1.0  # a non-leaf residual, as in a network
    ptr = x.data_ptr()
    out = droppath.drop_path_add_ls(x, f, gamma, 0.4, seed=2, inplace=True)
    assert out.data_ptr() == ptr
    assert_bits_equal(out.detach(), ref.detach())
    for a, b in zip(torch.autograd.grad(out, (x0, f, gamma), g), ref_grads):
        assert_bits_equal(a, b)


def test_layouts_give_the_contiguous_bits():
    x, f, gamma = _inputs((7, 9, 32), seed=5)
    xs, fs = x.detach().transpose(0, 1).contiguous().transpose(0, 1), f.detach()[:, :, :]
    padded = torch.randn(7, 9, 40)[:, :, :32].copy_(fs)  # padded rows: a view, read in place
    ref = droppath.drop_path_add_ls(x.detach(), f.detach(), gamma.detach(), 0.3, seed=8)
    for xx, ff in ((xs, fs), (x.detach(), padded), (xs, padded)):
        out = droppath.drop_path_add_ls(xx, ff, gamma.detach(), 0.3, seed=8)
        assert_bits_equal(out, ref)
    step = torch.randn(7, 9, 64)[:, :, ::2]  # a step in the channels: copied first
    step.copy_(f.detach())
    assert_bits_equal(droppath.drop_path_add_ls(x.detach(), step, gamma.detach(), 0.3, seed=8),
                      ref)


def test_dropped_branch_is_never_read():
    x = torch.randn(64, 10)
    f = torch.full((64, 10), float("nan"))
    out = droppath.drop_path_add_ls(x, f, torch.ones(10), 0.5, seed=3)
    keep, _ = droppath.mask(64, 0.5, seed=3)
    assert 0 < keep.sum() < 64
    assert_bits_equal(out[~keep], x[~keep])
    assert torch.isnan(out[keep]).all()


@pytest.mark.parametrize("xd,fd", [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float16),
                                   (torch.float32, torch.bfloat16), (torch.float32, torch.float16)])
def test_half_dtypes_compute_in_f32_and_round_once(xd, fd):
    x, f, gamma = _inputs((16, 9, 40), torch.float32, seed=6)
    x = x.detach().to(xd).requires_grad_()
    f = f.detach().to(fd).requires_grad_()
    out = droppath.drop_path_add_ls(x, f, gamma, 0.3, seed=8, offset=2)
    assert out.dtype == xd
    _, scales = droppath.mask(16, 0.3, seed=8, offset=2)
    s = scales.view(16, 1, 1)
    g32 = gamma.detach()
    ref = torch.where(s != 0, x.float() + (g32 * f.float()) * s, x.float()).to(xd)
    assert_bits_equal(out.detach(), ref)
    g = torch.randn(16, 9, 40).to(xd)
    gx, gf, gg = torch.autograd.grad(out, (x, f, gamma), g)
    assert gf.dtype == fd
    assert_bits_equal(gx, g)
    assert_bits_equal(gf, ((g.float() * s) * g32).to(fd) + 0.0)
    gs = g.float() * s
    bound = grad_gamma_bound(gs, f.detach().float())
    assert ((gg.double() - exact_grad_gamma(gs, f.detach().float())).abs() <= bound).all()


def test_errors():
    x, f = torch.randn(4, 6), torch.randn(4, 6)
    with pytest.raises(ValueError, match="gamma must be a vector"):
        droppath.drop_path_add_ls(x, f, torch.ones(5), 0.1, seed=0)
    with pytest.raises(ValueError, match="gamma must be a vector"):
        droppath.drop_path_add_ls(x, f, torch.ones(1, 6), 0.1, seed=0)
    with pytest.raises(TypeError, match="gamma must be a torch.Tensor"):
        droppath.drop_path_add_ls(x, f, [1.0] * 6, 0.1, seed=0)
    with pytest.raises(TypeError, match="gamma has dtype"):
        droppath.drop_path_add_ls(x, f, torch.ones(6, dtype=torch.float64), 0.1, seed=0)
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        droppath.drop_path_add_ls(x, f, torch.ones(6, device="meta"), 0.1, seed=0)
    with pytest.raises(ValueError, match="same shape"):
        droppath.drop_path_add_ls(x, f[:, :3], torch.ones(6), 0.1, seed=0)
    with pytest.raises(ValueError, match="batch and a channel"):
        droppath.drop_path_add_ls(torch.randn(4), torch.randn(4), torch.ones(4), 0.1, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        droppath.drop_path_add_ls(x, f, torch.ones(6), 1.5, seed=0)
    with pytest.raises(ValueError, match="mode"):
        droppath.drop_path_add_ls(x, f, torch.ones(6), 0.1, mode="column", seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        droppath.LayerScaleDropPath(6, drop_prob=-0.1)
    m = droppath.LayerScaleDropPath(6)
    with pytest.raises(ValueError, match="gamma must be a vector"):
        m(torch.randn(4, 5), torch.randn(4, 5))


@pytest.mark.parametrize("shape", [(0, 5, 8), (4, 0, 8)])
def test_empty_tensors(shape):
    x, f, gamma = _inputs(shape)
    out = droppath.drop_path_add_ls(x, f, gamma, 0.5, seed=1)
    assert out.shape == shape
    gx, gf, gg = torch.autograd.grad(out, (x, f, gamma), torch.ones(shape))
    assert gf.shape == shape and torch.equal(gg, torch.zeros(8))
