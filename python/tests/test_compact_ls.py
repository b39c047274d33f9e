"""LayerScale in the compacted block: drop_path_block(..., ls_gamma=) and
DropPathBlock(..., dim=, ls_init_values=), x + drop_path(gamma * block(x)) with the
block run on the kept samples only and the LayerScale done in the join.

Against the dense fused LayerScale join, drop_path_add_ls(x, block(x), gamma, ...),
fed the same mask (exact-k through its autograd function: its public mode takes
"row" and "batch" only), with a block that treats each sample alone:
- the output, x's gradient and gamma's gradient are bit-exact: the library's
  compacted LayerScale calls are dp_forward_ls's and dp_backward_ls's bits, gamma's
  sum included (the same row groups of the whole batch, dropped rows adding
  nothing), and the package describes the tensors as drop_path_add_ls does;
- the block's parameter gradients are sums over other sets of rows (k*T against
  B*T), so they are held to test_compact's PARAM_RTOL;
- the same holds at k == 0 (no block call, gamma's gradient +0.0), k == B (the
  dense join itself), in eval mode and at p == 0, on 1 and 2 threads.
The block shapes keep 64 rows per sample, as test_compact explains (OpenBLAS's
small-matrix kernels give rows other bits depending on how many there are)."""

import pytest
import torch
from torch import nn

import droppath
from droppath import _kernels
from droppath import _lib
from droppath import functional as F
from droppath.layerscale import _LayerScaleJoin
from reference import assert_bits_equal
from test_compact import Recording, _x, assert_params_close, mlp

HALF_COMBOS = [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float16),
               (torch.float32, torch.bfloat16), (torch.float32, torch.float16)]


def _gamma(dim, seed=3, dtype=torch.float32):
    """LayerScale factors of both signs and a spread of magnitudes, none exactly 1."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(dim, generator=g) * 0.7).to(dtype).requires_grad_()


def dense_ls(x, f, gamma, p, mode, seed, offset, scale_by_keep=True, num_threads=None):
    """drop_path_add_ls(x, f, gamma) with the mask of (seed, offset).  exact_k: its
    autograd function, whose dp_forward_ls draws any of the library's masks."""
    if mode != "exact_k":
        return droppath.drop_path_add_ls(x, f, gamma, p, True, scale_by_keep=scale_by_keep,
                                         mode=mode, seed=seed, offset=offset,
                                         num_threads=num_threads)
    return _LayerScaleJoin.apply(x, f, gamma, True, p, seed, offset, 0, _lib.MODE_EXACT_K,
                                 scale_by_keep, F.check_threads(num_threads), False)


def torch_ls(x, f, gamma, keep, scales):
    """timm's arithmetic in torch, x + ((gamma*f)*s) on the kept samples: checks
    that the dense reference itself is fed the mask (keep, scales)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    return torch.where(keep.view(shape), x + (gamma * f) * scales.view(shape), x)


def all_grads(out, x, gamma, block, g):
    """(grad_x, grad_gamma, [block parameter grads, None where unused])."""
    params = list(block.parameters())
    got = torch.autograd.grad(out, [x, gamma] + params, g, allow_unused=True)
    return got[0], got[1], got[2:]


def assert_same_as_dense(x, block, gamma, p, mode, seed, offset, scale_by_keep=True,
                         num_threads=None):
    """Our call against the dense LayerScale join: out, grad_x, gamma.grad bit for bit,
    the block's parameter gradients within PARAM_RTOL.  Returns the kept count."""
    out = droppath.drop_path_block(x, block, p, seed=seed, offset=offset, mode=mode,
                                   scale_by_keep=scale_by_keep, num_threads=num_threads,
                                   ls_gamma=gamma)
    f = block(x)
    ref = dense_ls(x, f, gamma, p, mode, seed, offset, scale_by_keep, num_threads)
    keep, scales = droppath.mask(x.shape[0], p, seed=seed, offset=offset, mode=mode,
                                 scale_by_keep=scale_by_keep)
    assert_bits_equal(ref.detach(), torch_ls(x, f, gamma, keep, scales).detach())
    assert_bits_equal(out.detach(), ref.detach())
    g = torch.randn(x.shape)
    gx, gg, gp = all_grads(out, x, gamma, block, g)
    rgx, rgg, rgp = all_grads(ref, x, gamma, block, g)
    assert_bits_equal(gx, rgx)
    assert_bits_equal(gg, rgg)
    k = int(keep.sum())
    if k == 0:
        assert all(a is None for a in gp)  # the block was not run
        assert_bits_equal(gg, torch.zeros(x.shape[-1]))  # +0.0, as the dense join gives
    else:
        assert_params_close(gp, rgp)
    return k


# ---------------------------------------------------------------- against the dense join

@pytest.mark.parametrize("mode", ["row", "batch", "exact_k"])
@pytest.mark.parametrize("p", [0.1, 0.4, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(16, 64, 32), (12, 8, 8, 32)])
def test_matches_dense_layerscale_join(mode, p, shape):
    block = mlp(shape[-1])
    gamma = _gamma(shape[-1])
    kept = set()
    for offset in range(4):  # batch mode at p = 0.5: both outcomes over these calls
        x = _x(shape, seed=offset)
        kept.add(assert_same_as_dense(x, block, gamma, p, mode, 11, offset))
    if mode == "batch" and p == 0.5:
        assert kept == {0, shape[0]}  # k == 0 and k == B both checked here


@pytest.mark.parametrize("scale_by_keep", [True, False])
@pytest.mark.parametrize("mode", ["row", "exact_k"])
def test_scale_by_keep(scale_by_keep, mode):
    block, gamma = mlp(16), _gamma(16)
    for offset in range(2):
        assert_same_as_dense(_x((20, 64, 16), seed=offset), block, gamma, 0.3, mode, 2, offset,
                             scale_by_keep)


def test_vit_s_size_and_gamma_as_initialised():
    """timm's init (1e-5 everywhere) at ViT-S sizes: several row groups in gamma's sum."""
    block = mlp(384)
    gamma = torch.full((384,), 1e-5, requires_grad=True)
    for mode in ("row", "exact_k"):
        assert_same_as_dense(_x((8, 197, 384)), block, gamma, 0.4, mode, 1, 2)


@pytest.mark.parametrize("xd,fd", HALF_COMBOS)
def test_half_dtypes(xd, fd):
    """Every dtype pair of the join, a half block output with a float32 x included:
    the join's float32 arithmetic rounded once, the dense join's bits."""
    dim = 24
    w = (torch.randn(dim) + 0.5).to(xd).requires_grad_()
    # Elementwise with a parameter, reading t once: with t twice (t * t) the dense
    # path's autograd would add x's three gradient terms in another order than
    # grad_out + (the block's), and no tanh for float16 on CPU in torch 1.13.
    block = lambda t: (torch.abs(t) * w).to(fd)  # noqa: E731
    gamma = _gamma(dim)
    for offset in range(3):
        x = _x((16, 5, dim), seed=offset, dtype=xd)
        out = droppath.drop_path_block(x, block, 0.4, seed=4, offset=offset, ls_gamma=gamma)
        assert out.dtype == xd
        ref = droppath.drop_path_add_ls(x, block(x), gamma, 0.4, seed=4, offset=offset)
        assert_bits_equal(out.detach(), ref.detach())
        g = torch.randn(x.shape).to(xd)
        gx, gg, gw = torch.autograd.grad(out, (x, gamma, w), g)
        rgx, rgg, rgw = torch.autograd.grad(ref, (x, gamma, w), g)
        assert gg.dtype == torch.float32
        assert_bits_equal(gx, rgx)
        assert_bits_equal(gg, rgg)
        torch.testing.assert_close(gw, rgw, rtol=2e-2, atol=1e-2)  # sums of rounded terms


def test_gamma_stored_as_a_half():
    """gamma in bfloat16 (used as float32 by the library): its gradient comes back in
    gamma's dtype, the dense join's bits."""
    block, gamma = mlp(16), _gamma(16, dtype=torch.bfloat16)
    assert_same_as_dense(_x((10, 64, 16)), block, gamma, 0.5, "row", 5, 1)


@pytest.mark.parametrize("mode", ["row", "exact_k"])
def test_same_bits_on_one_and_two_threads(mode):
    shape = (16, 197, 64)  # 3152 rows of 64: four row groups in gamma's sum
    block, gamma = mlp(64), _gamma(64)
    x = _x(shape)
    g = torch.randn(shape)
    results = []
    for threads in (1, 2):
        out = droppath.drop_path_block(x, block, 0.3, seed=8, offset=1, mode=mode,
                                       num_threads=threads, ls_gamma=gamma)
        gx, gg, _ = all_grads(out, x, gamma, block, g)
        results.append((out.detach(), gx, gg))
    for a, b in zip(*results):
        assert_bits_equal(a, b)
    ref = dense_ls(x, block(x), gamma, 0.3, mode, 8, 1, num_threads=1)
    assert_bits_equal(results[1][2], torch.autograd.grad(ref, gamma, g)[0])


# ---------------------------------------------------------------- the paths: k, eval, None

@pytest.mark.parametrize("mode", ["row", "batch", "exact_k"])
def test_block_runs_on_the_kept_samples_only(mode):
    block = Recording(mlp(12))
    x = _x((32, 4, 12))
    gamma = _gamma(12)
    for offset in range(6):
        block.inputs.clear()
        droppath.drop_path_block(x, block, 0.5, seed=9, offset=offset, mode=mode, ls_gamma=gamma)
        keep, _ = droppath.mask(32, 0.5, seed=9, offset=offset, mode=mode)
        k = int(keep.sum())
        if k == 0:
            assert block.inputs == []
            continue
        (seen,) = block.inputs
        assert seen.shape == (k, 4, 12)
        assert_bits_equal(seen, x.detach()[keep])


def test_nothing_kept():
    """k == 0: the block is not called; out is a new tensor with x's bits, x's gradient
    is grad_out, gamma's is +0.0 (the dense join's), the block's parameters get none."""
    block = Recording(mlp(8))
    gamma = _gamma(8)
    x = _x((6, 64, 8))
    keep, _ = droppath.mask(6, 1.0, seed=0)
    assert not keep.any()
    k = assert_same_as_dense(x, block, gamma, 1.0, "row", 0, 0)
    assert k == 0
    out = droppath.drop_path_block(x, block, 1.0, seed=0, ls_gamma=gamma)
    assert out is not x
    assert_bits_equal(out.detach(), x.detach())
    assert len(block.inputs) == 1  # assert_same_as_dense's dense reference only
    g = torch.randn(x.shape)
    gx, gg = torch.autograd.grad(out, (x, gamma), g)
    assert_bits_equal(gx, g)
    assert_bits_equal(gg, torch.zeros(8))


def test_everything_kept_is_the_dense_join():
    """k == B: the dense LayerScale join on the whole batch, so the block's parameter
    gradients are the dense ones bit for bit as well."""
    block = Recording(mlp(24))
    gamma = _gamma(24)
    cases = [("batch", 0.5, (8, 6, 24), offset) for offset in range(8)]
    cases += [("exact_k", 0.7, (1, 6, 24), 0),  # one sample: exact-k keeps it
              ("row", 1e-9, (8, 6, 24), 0)]
    kept_calls = 0
    for mode, p, shape, offset in cases:
        keep, _ = droppath.mask(shape[0], p, seed=3, offset=offset, mode=mode)
        if not keep.all():
            continue
        kept_calls += 1
        x = _x(shape, seed=offset)
        block.inputs.clear()
        out = droppath.drop_path_block(x, block, p, seed=3, offset=offset, mode=mode,
                                       ls_gamma=gamma)
        assert [t.shape[0] for t in block.inputs] == [shape[0]]
        ref = dense_ls(x, block.block(x), gamma, p, mode, 3, offset)
        assert_bits_equal(out.detach(), ref.detach())
        g = torch.randn(shape)
        got, want = all_grads(out, x, gamma, block, g), all_grads(ref, x, gamma, block, g)
        for a, b in zip(got[:2] + tuple(got[2]), want[:2] + tuple(want[2])):
            assert_bits_equal(a, b)
    assert kept_calls >= 3


@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_eval_and_p_zero_are_the_dense_inference_join(scale_by_keep):
    block = Recording(mlp(8))
    gamma = _gamma(8)
    x = _x((6, 5, 8))
    for p, training in ((0.3, False), (0.0, True), (0.0, False)):
        block.inputs.clear()
        out = droppath.drop_path_block(x, block, p, training, scale_by_keep=scale_by_keep,
                                       ls_gamma=gamma)
        assert [t.shape[0] for t in block.inputs] == [6]
        f = block.block(x)
        ref = droppath.drop_path_add_ls(x, f, gamma, p, False, scale_by_keep=scale_by_keep)
        assert_bits_equal(out.detach(), ref.detach())
        # timm's eval, x + gamma*f; Huang et al.'s rule x + (gamma*f)*(1-p) without scale_by_keep
        keep = torch.tensor(1.0 - p if not scale_by_keep else 1.0, dtype=torch.float32)
        assert_bits_equal(out.detach(), (x + (gamma * f) * keep).detach())
        g = torch.randn(x.shape)
        got, want = all_grads(out, x, gamma, block, g), all_grads(ref, x, gamma, block, g)
        for a, b in zip(got[:2] + tuple(got[2]), want[:2] + tuple(want[2])):
            assert_bits_equal(a, b)


def test_none_is_the_plain_compacted_block(monkeypatch):
    """ls_gamma=None: the calls of before (none of the _ls operators), and gamma = 1
    (a multiplication by one, exact) gives the same bits through the _ls ones."""
    block = mlp(16)
    x = _x((12, 64, 16))
    g = torch.randn(x.shape)
    ones = torch.ones(16, requires_grad=True)
    for offset in range(3):
        unit = droppath.drop_path_block(x, block, 0.5, seed=2, offset=offset, ls_gamma=ones)
        ugx, _, ugp = all_grads(unit, x, ones, block, g)
        with monkeypatch.context() as mp:
            for name in ("compact_forward_ls", "compact_backward_ls", "forward_ls",
                         "inference_add_ls", "backward_ls"):
                mp.setattr(droppath._ops, name, None)  # a call would raise TypeError
            plain = droppath.drop_path_block(x, block, 0.5, seed=2, offset=offset)
            params = list(block.parameters())
            pgx, *pgp = torch.autograd.grad(plain, [x] + params, g, allow_unused=True)
        assert_bits_equal(plain.detach(), unit.detach())
        assert_bits_equal(pgx, ugx)
        for a, b in zip(pgp, ugp):
            assert (a is None) == (b is None)
            if a is not None:
                assert_bits_equal(a, b)


def test_f_kept_is_saved_only_for_gammas_gradient():
    outputs = []

    def block(t):
        outputs.append(t * 2.0 + 1.0)
        return outputs[-1]

    x = _x((8, 5, 6))
    gamma = _gamma(6)
    keep, _ = droppath.mask(8, 0.5, seed=0)
    assert 0 < keep.sum() < 8  # the compacted join

    def saved(ls_gamma):
        outputs.clear()
        out = droppath.drop_path_block(x, block, 0.5, seed=0, ls_gamma=ls_gamma)
        ptrs = {t.data_ptr() for t in out.grad_fn.saved_tensors if t is not None}
        return out, outputs[0].data_ptr() in ptrs

    assert saved(gamma)[1]
    out, kept_alive = saved(gamma.detach())  # frozen LayerScale: f_kept not kept alive
    assert not kept_alive
    # and x's gradient still carries the LayerScale factor
    g = torch.randn(x.shape)
    ref = droppath.drop_path_add_ls(x, block(x), gamma.detach(), 0.5, seed=0)
    assert_bits_equal(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])


# ---------------------------------------------------------------- layouts and edge shapes

def test_sequence_first_batch_dim():
    """batch_dim=1 ([T][B][D]): drop_path_add_ls's result on x moved batch first, in
    training and eval, gamma's gradient included (the same [B][T][D] rows)."""
    block = Recording(mlp(16))
    gamma = _gamma(16)
    blk_b = lambda t: block.block(t.transpose(0, 1)).transpose(0, 1)  # noqa: E731
    for training in (True, False):
        block.inputs.clear()
        xs = _x((64, 10, 16))
        out = droppath.drop_path_block(xs, block, 0.5, training, seed=8, offset=3, batch_dim=1,
                                       ls_gamma=gamma)
        keep, _ = droppath.mask(10, 0.5, seed=8, offset=3)
        (seen,) = block.inputs
        assert seen.shape == (64, int(keep.sum()) if training else 10, 16)
        xb = xs.detach().transpose(0, 1).contiguous().requires_grad_()
        g2 = gamma.detach().clone().requires_grad_()
        ref = droppath.drop_path_add_ls(xb, blk_b(xb), g2, 0.5, training, seed=8, offset=3)
        assert_bits_equal(out.detach(), ref.detach().transpose(0, 1))
        g = torch.randn(64, 10, 16)
        gx, gg = torch.autograd.grad(out, (xs, gamma), g)
        rgx, rgg = torch.autograd.grad(ref, (xb, g2), g.transpose(0, 1))
        assert_bits_equal(gx, rgx.transpose(0, 1))
        assert_bits_equal(gg, rgg)


def test_block_output_in_another_layout_and_expanded_gradients():
    """A transposed block output and the gradient of .sum() (zero strides): copied
    where no [B][T][D] view describes them."""
    block = lambda t: (t.transpose(1, 2).contiguous() * 2.0).transpose(1, 2)  # noqa: E731
    gamma = _gamma(6)
    x = _x((9, 4, 6))
    out = droppath.drop_path_block(x, block, 0.5, seed=3, ls_gamma=gamma)
    ref = droppath.drop_path_add_ls(x, block(x), gamma, 0.5, seed=3)
    assert_bits_equal(out.detach(), ref.detach())
    got = torch.autograd.grad(out.sum(), (x, gamma))
    want = torch.autograd.grad(ref.sum(), (x, gamma))
    for a, b in zip(got, want):
        assert_bits_equal(a, b)


@pytest.mark.parametrize("shape", [(4, 0), (0, 5), (6, 3, 0)])
def test_empty_tensors(shape):
    seen = []
    x = _x(shape)
    gamma = _gamma(shape[-1])
    out = droppath.drop_path_block(x, lambda t: seen.append(t.shape) or t * 2, 0.5, seed=0,
                                   ls_gamma=gamma)
    keep, _ = droppath.mask(shape[0], 0.5, seed=0)
    assert seen == ([(int(keep.sum()),) + shape[1:]] if keep.any() else [])
    assert out.shape == shape
    out.sum().backward()
    assert x.grad.shape == shape and gamma.grad.shape == (shape[-1],)


def test_backward_twice_accumulates():
    block, gamma = mlp(8), _gamma(8)
    x = _x((16, 3, 8))
    out = droppath.drop_path_block(x, block, 0.5, seed=4, ls_gamma=gamma)
    g = torch.randn(out.shape)
    out.backward(g, retain_graph=True)
    first_x, first_gamma = x.grad.clone(), gamma.grad.clone()
    out.backward(g)
    assert_bits_equal(x.grad, first_x + first_x)
    assert_bits_equal(gamma.grad, first_gamma + first_gamma)


# ---------------------------------------------------------------- the module

def test_module_gamma_is_timms_layerscale_parameter():
    m = droppath.DropPathBlock(mlp(16), 0.4, mode="exact_k", seed=7, dim=16, ls_init_values=1e-5)
    assert isinstance(m.gamma, nn.Parameter) and m.gamma.dtype == torch.float32
    assert_bits_equal(m.gamma.detach(), 1e-5 * torch.ones(16))  # timm: init_values * ones(dim)
    assert list(m.state_dict())[:3] == ["gamma", "seed", "calls"]
    assert any(name == "gamma" for name, _ in m.named_parameters())
    with torch.no_grad():
        m.gamma.copy_(_gamma(16))  # trained values: both signs, none alike
    x = _x((12, 64, 16))
    g = torch.randn(x.shape)
    for offset in range(3):
        m.gamma.grad = None
        out = m(x)
        want = droppath.drop_path_block(x, m.block, 0.4, seed=7, offset=offset, mode="exact_k",
                                        ls_gamma=m.gamma)
        assert_bits_equal(out.detach(), want.detach())
        out.backward(g)
        assert_bits_equal(m.gamma.grad, torch.autograd.grad(want, m.gamma, g)[0])
    assert int(m.calls) == 3
    m.eval()
    f = m.block(x)
    assert_bits_equal(m(x).detach(), droppath.drop_path_add_ls(x, f, m.gamma, 0.4, False).detach())
    assert int(m.calls) == 3  # eval draws nothing
    resumed = droppath.DropPathBlock(mlp(16, seed=5), 0.4, mode="exact_k", dim=16,
                                     ls_init_values=1.0)
    resumed.load_state_dict(m.state_dict())
    assert_bits_equal(resumed.gamma.detach(), m.gamma.detach())


def test_module_named_as_the_blocks_layerscale_loads_a_timm_checkpoint():
    """DINOv2/timm: x + drop_path1(ls1(mlp(norm1(x)))).  The module named ls1, given the
    branch at each call, holds ls1.gamma: a timm state_dict (no seed, no calls) loads."""

    class TimmBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.mlp = nn.LayerNorm(8), mlp(8)[1:]
            self.ls1 = nn.Module()
            self.ls1.gamma = nn.Parameter(_gamma(8).detach())

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.mlp = nn.LayerNorm(8), mlp(8, seed=1)[1:]
            self.ls1 = droppath.DropPathBlock(drop_prob=0.5, seed=4, dim=8, ls_init_values=1e-5)

        def forward(self, x):
            return self.ls1(x, lambda t: self.mlp(self.norm1(t)))

    timm = TimmBlock()
    b = Block()
    b.load_state_dict(timm.state_dict())  # strict: ls1.seed and ls1.calls may be absent
    assert_bits_equal(b.ls1.gamma.detach(), timm.ls1.gamma.detach())
    x = _x((16, 64, 8))
    want = droppath.drop_path_block(x, lambda t: b.mlp(b.norm1(t)), 0.5, seed=4, offset=0,
                                    ls_gamma=b.ls1.gamma)
    assert_bits_equal(b(x).detach(), want.detach())


def test_module_without_layerscale_is_unchanged():
    m = droppath.DropPathBlock(nn.Identity(), 0.25, mode="exact_k", dim=8)  # dim alone: unused
    assert m.gamma is None and "gamma" not in m.state_dict()
    assert repr(m) == ("DropPathBlock(\n  drop_prob=0.250, mode=exact_k\n"
                       "  (block): Identity()\n)")
    with_ls = droppath.DropPathBlock(nn.Identity(), 0.25, dim=8, ls_init_values=0.1)
    assert repr(with_ls) == ("DropPathBlock(\n  drop_prob=0.250, dim=8, ls_init_values=0.1\n"
                             "  (block): Identity()\n)")


# ---------------------------------------------------------------- operators and errors

def test_operators_are_registered():
    if not droppath.TORCH_OPS_REGISTERED:
        pytest.skip("torch.library unavailable")
    x = torch.randn(8, 3, 5)
    gamma = torch.randn(5)
    x_kept, idx = torch.ops.droppath.compact_gather(x, 0.5, 7, 0, 0, 0, 0)
    f_kept = torch.randn(x_kept.shape)
    f = torch.zeros_like(x)
    f[idx] = f_kept
    out = torch.ops.droppath.compact_forward_ls(x, f_kept, gamma, idx, 0.5, 0, True, 0)
    assert_bits_equal(out, droppath.drop_path_add_ls(x, f, gamma, 0.5, seed=7))
    g = torch.randn(x.shape)
    gfk, gg = torch.ops.droppath.compact_backward_ls(g, f_kept, gamma, idx, 0.5, 0, True,
                                                     torch.float32, 0)
    fr, gr = f.clone().requires_grad_(), gamma.clone().requires_grad_()
    rgf, rgg = torch.autograd.grad(droppath.drop_path_add_ls(x, fr, gr, 0.5, seed=7), (fr, gr), g)
    assert_bits_equal(gfk, rgf[idx])
    assert_bits_equal(gg, rgg)
    gfk2, none = torch.ops.droppath.compact_backward_ls(g, None, gamma, idx, 0.5, 0, True,
                                                        torch.float32, 0)
    assert_bits_equal(gfk2, gfk)
    assert none.numel() == 0  # grad_gamma not asked for


def test_c_status_from_the_compacted_layerscale_calls():
    x = torch.randn(6, 4)
    params = _lib.make_params(0.5)
    bad = torch.tensor([3, 1], dtype=_kernels.INDEX_DTYPE)  # not ascending
    with pytest.raises(droppath.DropPathError, match="dp_compact_forward_ls.*DP_ERR_BAD_ARG"):
        _kernels.compact_ls_forward(x, torch.randn(2, 4), torch.ones(4), bad, params)
    with pytest.raises(droppath.DropPathError, match="dp_compact_backward_ls.*DP_ERR_BAD_ARG"):
        _kernels.compact_ls_backward(x, torch.randn(2, 4), torch.ones(4), bad, torch.float32,
                                     params)


def test_ls_gamma_errors_before_the_block_runs():
    block = Recording(mlp(6))
    x = torch.randn(8, 64, 6)
    cases = [
        (torch.ones(7), ValueError, "ls_gamma must be a vector of x.shape\\[-1\\] = 6"),
        (torch.ones(1), ValueError, "ls_gamma must be a vector"),  # no broadcasting
        (torch.ones(2, 6), ValueError, "ls_gamma must be a vector"),
        (torch.ones(6, dtype=torch.float64), TypeError, "ls_gamma has dtype torch.float64"),
        (torch.ones(6, dtype=torch.int32), TypeError, "ls_gamma has dtype torch.int32"),
        ([1.0] * 6, TypeError, "ls_gamma must be a torch.Tensor"),
        (torch.ones(6, device="meta"), RuntimeError, "CPU tensors only"),
    ]
    for training in (True, False):
        for gamma, err, msg in cases:
            with pytest.raises(err, match=msg):
                droppath.drop_path_block(x, block, 0.5, training, seed=0, ls_gamma=gamma)
        with pytest.raises(ValueError, match="batch and a channel dimension"):
            droppath.drop_path_block(torch.randn(8), block, 0.5, training, ls_gamma=torch.ones(8))
        for bd in (2, -1):
            with pytest.raises(ValueError, match="batch_dim cannot be x's last dimension"):
                droppath.drop_path_block(x, block, 0.5, training, batch_dim=bd,
                                         ls_gamma=torch.ones(6))
        with pytest.raises(ValueError, match="batch_dim"):
            droppath.drop_path_block(x, block, 0.5, training, batch_dim=3, ls_gamma=torch.ones(6))
    assert block.inputs == []
    # the block's output is checked as without LayerScale, in eval too
    for training in (True, False):
        with pytest.raises(ValueError, match="input's shape"):
            droppath.drop_path_block(x, lambda t: t[..., :3], 0.5, training, seed=0,
                                     ls_gamma=torch.ones(6))
        with pytest.raises(TypeError, match="is not supported"):
            droppath.drop_path_block(x.bfloat16(), lambda t: t.float(), 0.5, training, seed=0,
                                     ls_gamma=torch.ones(6))


def test_module_argument_errors():
    for bad in (float("nan"), float("inf"), "1e-5", True, torch.ones(3)):
        with pytest.raises(ValueError, match="ls_init_values must be None or a finite number"):
            droppath.DropPathBlock(mlp(6), 0.1, dim=6, ls_init_values=bad)
    with pytest.raises(ValueError, match="ls_init_values needs dim"):
        droppath.DropPathBlock(mlp(6), 0.1, ls_init_values=1e-5)
    for dim in (-1, 2.5, True, "6"):
        with pytest.raises(ValueError, match="dim must be None or a non-negative integer"):
            droppath.DropPathBlock(mlp(6), 0.1, dim=dim, ls_init_values=1e-5)
    m = droppath.DropPathBlock(mlp(6), 0.1, dim=8, ls_init_values=1e-5)
    with pytest.raises(ValueError, match="ls_gamma must be a vector of x.shape\\[-1\\] = 6"):
        m(torch.randn(4, 6))  # dim given is not x's channel count
    with pytest.raises(ValueError, match="ls_gamma must be a vector of x.shape\\[-1\\] = 6"):
        m.eval()(torch.randn(4, 6))


class _Without:
    """The loaded library as one without some optional symbols would look: every
    other symbol is the real one."""

    def __init__(self, real, missing):
        self._real, self._missing = real, missing

    def __getattr__(self, name):
        if name in self._missing:
            raise AttributeError(name)
        return getattr(self._real, name)


@pytest.mark.parametrize("missing", [("dp_compact_forward_ls", "dp_compact_backward_ls"),
                                     ("dp_compact_backward_ls",)])
def test_a_library_without_compacted_layerscale(monkeypatch, missing):
    block = Recording(mlp(6))
    x = _x((8, 64, 6))
    gamma = _gamma(6)
    plain = droppath.drop_path_block(x, block, 0.5, seed=1).detach()
    inference = droppath.drop_path_block(x, block, 0.5, False, ls_gamma=gamma).detach()
    monkeypatch.setattr(_lib, "_loaded", (_Without(_lib.lib(), missing), "libdroppath-old.so.0"))
    # Without LayerScale, or in eval (dp_inference_add_ls), nothing needs the new calls.
    assert_bits_equal(droppath.drop_path_block(x, block, 0.5, seed=1).detach(), plain)
    assert_bits_equal(droppath.drop_path_block(x, block, 0.5, False, ls_gamma=gamma).detach(),
                      inference)
    # Training with it: one clear error before the block runs, whatever the mask keeps.
    msg = "libdroppath-old.so.0 has no %s: it predates LayerScale in sample compaction" % missing[0]
    module = droppath.DropPathBlock(block, 0.5, dim=6, ls_init_values=1e-5)
    for p in (0.5, 1.0, 1e-9):  # 0 < k < B, k == 0, k == B
        block.inputs.clear()
        with pytest.raises(droppath.LibraryNotFoundError, match=msg):
            droppath.drop_path_block(x, block, p, seed=1, ls_gamma=gamma)
        module.drop_prob = p
        with pytest.raises(droppath.LibraryNotFoundError, match=msg):
            module(x)
        assert block.inputs == []
