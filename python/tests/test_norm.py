"""ResidualNorm / drop_path_add_norm against ``r = x + drop_path(f)`` then torch's layer_norm
(or an RMSNorm written in torch), fed the same mask.

r is compared bit for bit (timm's arithmetic).  y and the gradients are the
library's norm, whose row sums run in another order than torch's, so they are
held to stated tolerances against torch in float64:
  y:                 |y - y64| <= 2e-6 * (1 + |y64|)   (a few float32 roundings, D <= 1024)
  grad_x, grad_f:    |g - g64| <= 1e-5 * (1 + |g64|)
  grad_weight/bias:  |g - g64| <= 1e-6 * sum over rows of |term|   (f32 sums of B*T terms)
(the largest error measured over these tests was under a fifth of each), and the
results are the same bits for any thread count.
"""

import io

import pytest
import torch
import torch.nn.functional as TF
from torch import nn

import droppath
from reference import assert_bits_equal, timm_drop_path

Y_TOL, GRAD_TOL, SUM_TOL = 2e-6, 1e-5, 1e-6
SHAPES = [(8, 16), (6, 7, 33), (4, 3, 5, 24), (1, 9, 10), (5, 2, 200), (3, 4, 1024)]


def _inputs(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2 + 0.5).to(dtype).requires_grad_()
    f = torch.randn(shape, generator=g).to(dtype).requires_grad_()
    w = (1 + 0.5 * torch.randn(shape[-1], generator=g)).requires_grad_()
    b = (0.1 * torch.randn(shape[-1], generator=g)).requires_grad_()
    return x, f, w, b


def torch_norm(r, kind, w, b, eps):
    if kind == "layer":
        return TF.layer_norm(r, (r.shape[-1],), w, b, eps)
    y = r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + eps)
    if w is not None:
        y = y * w
    return y if b is None else y + b


def reference(x, f, w, b, p, keep, kind, eps, scale_by_keep=True, dtype=torch.float64):
    """(r, y) in dtype from leaves x, f, w, b: timm's join, then the norm."""
    cast = (lambda t: None if t is None else t.to(dtype))
    r = cast(x) + timm_drop_path(cast(f), p, keep, scale_by_keep)
    return r, torch_norm(r, kind, cast(w), cast(b), eps)


def _close(ours, ref64, rel, what):
    err = (ours.double() - ref64).abs()
    tol = rel * (1 + ref64.abs())
    bad = ~(err <= tol)  # NaN counts as off
    assert not bad.any(), "%s: %d elements off, worst error/tolerance %g" % (
        what, int(bad.sum()), float((err / tol).max()))


def _close_sum(ours, ref64, terms, what):
    err = (ours.double() - ref64).abs()
    assert (err <= SUM_TOL * terms + 1e-30).all(), "%s off by %g" % (what, (err / terms).max())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_matches_add_then_torch_norm(shape, p, kind):
    x, f, w, b = _inputs(shape)
    bias = b if kind == "layer" else None
    eps = 1e-5 if kind == "layer" else 1e-6
    seed, offset = 77, 2
    r, y = droppath.drop_path_add_norm(x, f, p, w, bias, True, norm=kind, eps=eps, seed=seed,
                                       offset=offset)
    keep, scales = droppath.mask(shape[0], p, seed=seed, offset=offset)
    if p == 0.0:
        keep, scales = torch.ones(shape[0], dtype=torch.bool), torch.ones(shape[0])
    r32, _ = reference(x, f, w, bias, p, keep, kind, eps, dtype=torch.float32)
    assert_bits_equal(r.detach(), r32.detach())  # the join: timm's bits
    # y against the norm of that r, in float64 (torch's own f32 layer_norm sums in
    # yet another order: it is within the same tolerance of float64).
    r64 = r32.detach().double()
    y64 = torch_norm(r64, kind, w.detach().double(),
                     None if bias is None else bias.detach().double(), eps)
    _close(y.detach(), y64, Y_TOL, "y")
    _close(torch_norm(r32, kind, w, bias, eps).detach(), y64, Y_TOL, "torch's own y")

    gen = torch.Generator().manual_seed(5)
    gr, gy = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    leaves = (x, f, w) + (() if bias is None else (bias,))
    ours = torch.autograd.grad((r, y), leaves, (gr, gy))
    r_ref, y_ref = reference(x, f, w, bias, p, keep, kind, eps)
    ref = torch.autograd.grad((r_ref, y_ref), leaves, (gr.double(), gy.double()))
    _close(ours[0], ref[0], GRAD_TOL, "grad_x")
    _close(ours[1], ref[1], GRAD_TOL, "grad_f")
    # grad_f is m*s*grad_r and grad_x is grad_r, exactly (dropped rows +0.0)
    s = scales.view((-1,) + (1,) * (len(shape) - 1))
    assert_bits_equal(ours[1], ours[0] * s + 0.0)
    # parameter gradients: sums over the B*T rows
    xhat = (y64 - (0 if bias is None else bias.detach().double())) / w.detach().double()
    rows = gy.double().reshape(-1, shape[-1])
    _close_sum(ours[2], ref[2], (rows * xhat.reshape(rows.shape)).abs().sum(0), "grad_weight")
    if bias is not None:
        _close_sum(ours[3], ref[3], rows.abs().sum(0), "grad_bias")


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_same_bits_for_any_thread_count(kind):
    shape = (32, 197, 384)
    x, f, w, b = _inputs(shape, seed=1)
    gen = torch.Generator().manual_seed(2)
    gr, gy = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    results = []
    for threads in (1, 2):
        r, y = droppath.drop_path_add_norm(x, f, 0.2, w, b, norm=kind, seed=3, num_threads=threads)
        grads = torch.autograd.grad((r, y), (x, f, w, b), (gr, gy))
        results.append((r.detach(), y.detach()) + grads)
    for a, c in zip(*results):
        assert_bits_equal(a, c)


def test_gradient_from_one_output_only():
    x, f, w, b = _inputs((6, 5, 48), seed=3)
    g = torch.randn(6, 5, 48)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, seed=4)
    gx, gf = torch.autograd.grad(r, (x, f), g)  # y unused
    keep, scales = droppath.mask(6, 0.5, seed=4)
    assert_bits_equal(gx, g)
    assert_bits_equal(gf, g * scales.view(6, 1, 1) + 0.0)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, seed=4)
    gx_y, gw = torch.autograd.grad(y, (x, w), g)  # r unused
    r_ref, y_ref = reference(x, f, w, b, 0.5, keep, "layer", 1e-5)
    rgx, rgw = torch.autograd.grad(y_ref, (x, w), g.double())
    _close(gx_y, rgx, GRAD_TOL, "grad_x from y alone")
    _close(gw, rgw, GRAD_TOL, "grad_weight from y alone")


@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_eval_and_p_zero(scale_by_keep):
    x, f, w, b = _inputs((5, 6, 64), seed=6)
    m = droppath.ResidualNorm(64, drop_prob=0.25, scale_by_keep=scale_by_keep)
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
    r, y = m.eval()(x, f)
    keep = float(torch.tensor(0.75, dtype=torch.float32))
    assert_bits_equal(r.detach(), (x + f if scale_by_keep else x + f * keep).detach())
    _close(y.detach(), torch_norm(r.detach().double(), "layer", w.detach().double(),
                                  b.detach().double(), 1e-5), Y_TOL, "eval y")
    with torch.no_grad():  # the registered operator gives the same bits
        ops = torch.ops.droppath.inference_norm(x, f, m.weight, m.bias, 0, 1e-5, 0.25,
                                                scale_by_keep, 0)
    assert_bits_equal(ops[0], r.detach())
    assert_bits_equal(ops[1], y.detach())
    assert int(m.calls) == 0
    # differentiable in eval mode too (fine-tuning a frozen-dropout model)
    g = torch.randn(5, 6, 64)
    (gf,) = torch.autograd.grad(y, (f,), g)
    ref = (x + f if scale_by_keep else x + f * keep).double()
    (rgf,) = torch.autograd.grad(torch_norm(ref, "layer", w.double(), b.double(), 1e-5), (f,),
                                 g.double())
    _close(gf, rgf, GRAD_TOL, "eval grad_f")
    # training at p = 0 is the eval arithmetic
    r0, y0 = droppath.ResidualNorm(64, drop_prob=0.0).train()(x, f)
    assert_bits_equal(r0.detach(), (x + f).detach())


def test_layer_norm_checkpoint_loads_and_state_round_trips():
    ln = nn.LayerNorm(32)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(32))
        ln.bias.copy_(torch.randn(32))
    m = droppath.ResidualNorm(32, drop_prob=0.2, seed=9)
    m.load_state_dict(ln.state_dict())  # strict: weight and bias, no mask state needed
    x, f = torch.randn(16, 4, 32), torch.randn(16, 4, 32)
    with torch.no_grad():
        _, y = m.eval()(x, f)
        _close(y, TF.layer_norm((x + f).double(), (32,), ln.weight.double(), ln.bias.double()),
               Y_TOL, "y with a LayerNorm's parameters")
    m.train()(x, f)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    assert set(m.state_dict()) == {"seed", "calls", "weight", "bias"}
    buf.seek(0)
    resumed = droppath.ResidualNorm(32, drop_prob=0.2, seed=1)
    resumed.load_state_dict(torch.load(buf))
    for a, c in zip(resumed(x, f), m(x, f)):  # call 1's mask on both
        assert_bits_equal(a.detach(), c.detach())
    rms = droppath.ResidualNorm(32, "rms", eps=1e-6)
    assert set(rms.state_dict()) == {"seed", "calls", "weight"}
    assert set(droppath.ResidualNorm(32, elementwise_affine=False).state_dict()) == {"seed", "calls"}
    assert repr(m) == ("ResidualNorm((32,), norm=layer, eps=1e-05, elementwise_affine=True, "
                       "drop_prob=0.200)")


def test_without_affine_parameters():
    x, f, _, _ = _inputs((4, 6, 40), seed=7)
    m = droppath.ResidualNorm(40, "rms", eps=1e-6, drop_prob=0.5, elementwise_affine=False,
                              seed=2)
    r, y = m(x, f)
    keep, _ = droppath.mask(4, 0.5, seed=2)
    r_ref, y_ref = reference(x, f, None, None, 0.5, keep, "rms", 1e-6)
    _close(y.detach(), y_ref.detach(), Y_TOL, "rms y")
    g = torch.randn(4, 6, 40)
    (gx,) = torch.autograd.grad(y, (x,), g)
    (rgx,) = torch.autograd.grad(y_ref, (x,), g.double())
    _close(gx, rgx, GRAD_TOL, "rms grad_x")


def test_dropped_sample_is_the_norm_of_x_and_f_is_not_read():
    x = torch.randn(64, 3, 16)
    f = torch.full((64, 3, 16), float("nan"))
    r, y = droppath.drop_path_add_norm(x, f, 0.5, seed=3)
    keep, _ = droppath.mask(64, 0.5, seed=3)
    assert 0 < keep.sum() < 64
    assert_bits_equal(r[~keep], x[~keep])
    _close(y[~keep], TF.layer_norm(x[~keep].double(), (16,)), Y_TOL, "y of dropped samples")
    assert torch.isnan(y[keep]).all()


@pytest.mark.parametrize("fdtype", [torch.bfloat16, torch.float16])
def test_f32_residual_with_half_branch(fdtype):
    x, _, w, b = _inputs((6, 5, 64), seed=8)
    _, f, _, _ = _inputs((6, 5, 64), fdtype, seed=9)
    r, y = droppath.drop_path_add_norm(x, f, 0.3, w, b, seed=1)
    assert r.dtype == torch.float32 and y.dtype == fdtype  # y feeds the half-precision branch
    _, scales = droppath.mask(6, 0.3, seed=1)
    s = scales.view(6, 1, 1)
    r_ref = torch.where(s != 0, x + f.float() * s, x).detach()
    assert_bits_equal(r.detach(), r_ref)
    y64 = torch_norm(r_ref.double(), "layer", w.detach().double(), b.detach().double(), 1e-5)
    unit = 2.0 ** -8 if fdtype == torch.bfloat16 else 2.0 ** -11  # y's own rounding
    _close(y.detach(), y64, Y_TOL + unit, "half y")
    gr, gy = torch.randn(6, 5, 64), torch.randn(6, 5, 64).to(fdtype)
    gx, gf = torch.autograd.grad((r, y), (x, f), (gr, gy))
    assert gx.dtype == torch.float32 and gf.dtype == fdtype


def test_pre_norm_blocks_fused_like_the_readme():
    """The README's pattern: block n's join + block n+1's norm1 in one ResidualNorm,
    against the same model written with nn.LayerNorm and timm's drop_path fed the
    same masks."""
    torch.manual_seed(0)
    dim, depth, p = 32, 3, 0.3
    mlps = [nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            for _ in range(2 * depth)]
    first = nn.LayerNorm(dim)
    fused = [droppath.ResidualNorm(dim, drop_prob=p, seed=100 + i) for i in range(2 * depth)]
    lns = [nn.LayerNorm(dim) for _ in range(2 * depth)]
    for m, ln in zip(fused, lns):
        with torch.no_grad():
            ln.weight.normal_()
            ln.bias.normal_()
        m.load_state_dict(ln.state_dict())
    x0 = torch.randn(16, 10, dim)

    x, y = x0, first(x0)
    for i in range(2 * depth):  # branch i's join, fused with the norm the next branch reads
        x, y = fused[i](x, mlps[i](y))
    out_fused = y

    x, y = x0, first(x0)
    for i in range(2 * depth):
        keep, _ = droppath.mask(16, p, seed=100 + i, offset=0)
        x = x + timm_drop_path(mlps[i](y), p, keep)
        y = lns[i](x)
    torch.testing.assert_close(out_fused, y, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(y)
    w = mlps[0][0].weight
    torch.testing.assert_close(torch.autograd.grad(out_fused, w, g)[0],
                               torch.autograd.grad(y, w, g)[0], rtol=1e-3, atol=1e-3)


def test_errors():
    x, f = torch.randn(4, 6), torch.randn(4, 6)
    with pytest.raises(ValueError, match='norm must be "layer" or "rms"'):
        droppath.drop_path_add_norm(x, f, 0.1, norm="batch", seed=0)
    with pytest.raises(ValueError, match='norm must be "layer" or "rms"'):
        droppath.ResidualNorm(6, "group")
    for eps in (-1e-5, float("nan"), float("inf"), 1e39, True, "1e-5"):
        with pytest.raises(ValueError, match="eps must be"):
            droppath.drop_path_add_norm(x, f, 0.1, eps=eps, seed=0)
    with pytest.raises(ValueError, match="weight must be a vector"):
        droppath.drop_path_add_norm(x, f, 0.1, torch.ones(5), seed=0)
    with pytest.raises(ValueError, match="bias must be a vector"):
        droppath.drop_path_add_norm(x, f, 0.1, torch.ones(6), torch.ones(7), seed=0)
    with pytest.raises(TypeError, match="bias has dtype"):
        droppath.drop_path_add_norm(x, f, 0.1, None, torch.ones(6, dtype=torch.int32), seed=0)
    with pytest.raises(ValueError, match="same shape"):
        droppath.drop_path_add_norm(x, f[:, :2], 0.1, seed=0)
    with pytest.raises(ValueError, match="batch and a channel"):
        droppath.drop_path_add_norm(torch.randn(4), torch.randn(4), 0.1, seed=0)
    with pytest.raises(TypeError, match="not supported"):
        droppath.drop_path_add_norm(x.half(), f, 0.1, seed=0)
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        droppath.drop_path_add_norm(x.to("meta"), f.to("meta"), 0.1, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        droppath.ResidualNorm(6, drop_prob=2.0)
    with pytest.raises(ValueError, match="weight must be a vector"):
        droppath.ResidualNorm(6)(torch.randn(2, 5), torch.randn(2, 5))


@pytest.mark.parametrize("shape", [(0, 5, 8), (4, 0, 8)])
def test_empty_tensors(shape):
    x, f, w, b = _inputs(shape)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, seed=1)
    assert r.shape == y.shape == shape
    gx, gf, gw, gb = torch.autograd.grad((r, y), (x, f, w, b), (torch.ones(shape),) * 2)
    assert gx.shape == gf.shape == shape and torch.equal(gw, torch.zeros(8))
