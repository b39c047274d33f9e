"""LayerScale in the fused join + norm: drop_path_add_norm(..., ls_gamma=) and
ResidualNorm(..., ls_init_values=) against the package's own LayerScale join and
against timm's ``r = x + drop_path(ls(f))`` then the norm, in torch, fed the same mask.

What is bit for bit (the library's guarantees, README "Fused residual + norm"):
  r                    drop_path_add_ls's r (every dtype combination), so timm's in float32;
  grad_f, gamma.grad   drop_path_add_ls's backward fed grad_out = grad_r (our grad_x,
                       which is grad_r exactly): dp_backward_norm_ls gives
                       dp_backward_ls's grad_f and grad_gamma on that grad_r;
  everything           the same bits on 1 and 2 threads;
  ls_gamma=None        the plain join (dp_backward_norm, not the _ls call).
What is held to tolerances (the norm's sums run in the library's order, not torch's),
against torch autograd in float64: y and the x, f, weight and bias gradients to
test_norm's tolerances; gamma.grad to what grad_r's error carries into its terms plus
LayerScale's summation bound (test_layerscale.grad_gamma_bound):
  |gamma.grad - g64| <= sum over rows |grad_r - grad_r64| * |s*f| + grad_gamma_bound
(measured: under a fifth of that; grad_r = grad_x, held to GRAD_TOL).
"""

import pytest
import torch
from torch import nn

import droppath
from droppath import _lib
from reference import assert_bits_equal, timm_drop_path
from test_layerscale import grad_gamma_bound
from test_norm import GRAD_TOL, Y_TOL, _close, _close_sum, torch_norm

SHAPES = [(8, 16), (6, 7, 33), (4, 3, 5, 24), (5, 2, 200), (3, 4, 1024)]
HALF_COMBOS = [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float16),
               (torch.float32, torch.bfloat16), (torch.float32, torch.float16)]


def _inputs(shape, xd=torch.float32, fd=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2 + 0.5).to(xd).requires_grad_()
    f = torch.randn(shape, generator=g).to(fd).requires_grad_()
    w = (1 + 0.5 * torch.randn(shape[-1], generator=g)).requires_grad_()
    b = (0.1 * torch.randn(shape[-1], generator=g)).requires_grad_()
    # LayerScale factors of both signs and a spread of magnitudes, none exactly 1
    gamma = (torch.randn(shape[-1], generator=g) * 0.7).requires_grad_()
    return x, f, w, b, gamma


def _grads(shape, xd=torch.float32, fd=torch.float32, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen).to(xd), torch.randn(shape, generator=gen).to(fd)


def _eager(x, f, w, b, gamma, p, keep, kind, eps, scale_by_keep=True, dtype=torch.float64):
    """timm's block pieces in torch: r = x + drop_path(ls(f)), y = norm(r), in dtype."""
    cast = (lambda t: None if t is None else t.to(dtype))
    r = cast(x) + timm_drop_path(cast(f) * cast(gamma), p, keep, scale_by_keep)
    return r, torch_norm(r, kind, cast(w), cast(b), eps)


def _mask(batch, p, seed, offset, scale_by_keep=True):
    if p == 0.0:  # no mask drawn: every sample kept, s = 1
        return torch.ones(batch, dtype=torch.bool), torch.ones(batch)
    return droppath.mask(batch, p, seed=seed, offset=offset, scale_by_keep=scale_by_keep)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_join_is_layerscale_join_and_grads_match_torch(shape, p, kind):
    x, f, w, b, gamma = _inputs(shape)
    bias = b if kind == "layer" else None
    eps = 1e-5 if kind == "layer" else 1e-6
    seed, offset = 41, 3
    r, y = droppath.drop_path_add_norm(x, f, p, w, bias, True, ls_gamma=gamma, norm=kind, eps=eps,
                                       seed=seed, offset=offset)
    keep, scales = _mask(shape[0], p, seed, offset)
    # r: the package's LayerScale join, and timm's x + drop_path(f * gamma), bit for bit
    r_ls = droppath.drop_path_add_ls(x, f, gamma, p, True, seed=seed, offset=offset)
    assert_bits_equal(r.detach(), r_ls.detach())
    r32, _ = _eager(x, f, w, bias, gamma, p, keep, kind, eps, dtype=torch.float32)
    assert_bits_equal(r.detach(), r32.detach())
    # y: the norm of that r, against float64 (as test_norm)
    wb64 = (w.detach().double(), None if bias is None else bias.detach().double())
    y64 = torch_norm(r32.detach().double(), kind, *wb64, eps)
    _close(y.detach(), y64, Y_TOL, "y")

    gr, gy = _grads(shape)
    leaves = (x, f, w, gamma) + (() if bias is None else (bias,))
    ours = dict(zip(("x", "f", "w", "gamma", "b"), torch.autograd.grad((r, y), leaves, (gr, gy))))
    r_ref, y_ref = _eager(x, f, w, bias, gamma, p, keep, kind, eps)
    ref = dict(zip(("x", "f", "w", "gamma", "b"),
                   torch.autograd.grad((r_ref, y_ref), leaves, (gr.double(), gy.double()))))
    _close(ours["x"], ref["x"], GRAD_TOL, "grad_x")
    _close(ours["f"], ref["f"], GRAD_TOL, "grad_f")
    xhat = (y64 - (0 if bias is None else wb64[1])) / wb64[0]
    rows = gy.double().reshape(-1, shape[-1])
    _close_sum(ours["w"], ref["w"], (rows * xhat.reshape(rows.shape)).abs().sum(0), "grad_weight")
    if bias is not None:
        _close_sum(ours["b"], ref["b"], rows.abs().sum(0), "grad_bias")
    # gamma.grad = sum over kept rows of (grad_r*s)*f, grad_r being our grad_x (held to
    # GRAD_TOL above): off float64 by what grad_x's error carries into the terms plus
    # the f32 sum's error, at most LayerScale's bound.
    s = scales.view((-1,) + (1,) * (len(shape) - 1)).double()
    sf = (s * f.detach().double()).abs().reshape(-1, shape[-1])
    carried = ((ours["x"].double() - ref["x"]).abs().reshape(sf.shape) * sf).sum(0)
    bound = carried + grad_gamma_bound(ours["x"] * s.float(), f.detach())
    err = (ours["gamma"].double() - ref["gamma"]).abs()
    assert (err <= bound).all(), "gamma.grad off by %g > %g" % ((err - bound).max(), bound.max())

    # grad_x is grad_r exactly; fed to the LayerScale join's backward it gives our
    # grad_f and gamma.grad, bit for bit (one summation order for every parameter gradient).
    ls_gf, ls_gg = torch.autograd.grad(r_ls, (f, gamma), ours["x"])
    assert_bits_equal(ours["f"], ls_gf)
    assert_bits_equal(ours["gamma"], ls_gg)
    if p == 1.0:  # every sample dropped: no LayerScale gradient at all
        assert torch.equal(ours["gamma"], torch.zeros(shape[-1]))


@pytest.mark.parametrize("xd,fd", HALF_COMBOS)
@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_half_dtypes(xd, fd, kind):
    shape = (12, 9, 48)
    x, f, w, b, gamma = _inputs(shape, xd, fd, seed=7)
    bias = b if kind == "layer" else None
    r, y = droppath.drop_path_add_norm(x, f, 0.3, w, bias, ls_gamma=gamma, norm=kind, seed=8,
                                       offset=1)
    assert r.dtype == xd and y.dtype == fd
    # r: x.float() + (gamma*f.float())*s rounded once to x's dtype, the LayerScale join's bits
    r_ls = droppath.drop_path_add_ls(x, f, gamma, 0.3, seed=8, offset=1)
    assert_bits_equal(r.detach(), r_ls.detach())
    _, scales = droppath.mask(12, 0.3, seed=8, offset=1)
    s = scales.view(12, 1, 1)
    r_ref = torch.where(s != 0, x.float() + (gamma * f.float()) * s, x.float()).to(xd).detach()
    assert_bits_equal(r.detach(), r_ref)
    y64 = torch_norm(r_ref.double(), kind, w.detach().double(),
                     None if bias is None else bias.detach().double(), 1e-5)
    unit = 2.0 ** -8 if fd == torch.bfloat16 else 2.0 ** -11  # y's own rounding
    _close(y.detach(), y64, Y_TOL + unit, "half y")
    gr, gy = _grads(shape, xd, fd)
    gx, gf, gg = torch.autograd.grad((r, y), (x, f, gamma), (gr, gy))
    assert gx.dtype == xd and gf.dtype == fd and gg.dtype == torch.float32
    ls_gf, ls_gg = torch.autograd.grad(r_ls, (f, gamma), gx)  # grad_r as stored, in x's dtype
    assert_bits_equal(gf, ls_gf)
    assert_bits_equal(gg, ls_gg)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_same_bits_for_any_thread_count(kind):
    shape = (32, 197, 384)  # several row groups: the two threads split the sums
    x, f, w, b, gamma = _inputs(shape, seed=1)
    gr, gy = _grads(shape, seed=2)
    results = []
    for threads in (1, 2):
        r, y = droppath.drop_path_add_norm(x, f, 0.2, w, b, ls_gamma=gamma, norm=kind, seed=3,
                                           num_threads=threads)
        grads = torch.autograd.grad((r, y), (x, f, w, b, gamma), (gr, gy))
        results.append((r.detach(), y.detach()) + grads)
    for a, c in zip(*results):
        assert_bits_equal(a, c)
    # and the LayerScale join's gamma.grad on the same grad_r, on either thread count
    r_ls = droppath.drop_path_add_ls(x, f, gamma, 0.2, seed=3, num_threads=2)
    assert_bits_equal(results[0][-1], torch.autograd.grad(r_ls, gamma, results[0][2])[0])


def test_none_is_the_plain_join():
    shape = (6, 5, 40)
    x, f, w, b, _ = _inputs(shape, seed=4)
    gr, gy = _grads(shape)
    plain = droppath.drop_path_add_norm(x, f, 0.5, w, b, seed=6)
    plain_grads = torch.autograd.grad(plain, (x, f, w, b), (gr, gy))
    # gamma = 1 multiplies by one exactly: the same bits through the _ls calls
    ones = torch.ones(40, requires_grad=True)
    unit = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=ones, seed=6)
    unit_grads = torch.autograd.grad(unit, (x, f, w, b), (gr, gy))
    for a, c in zip(plain + plain_grads, unit + unit_grads):
        assert_bits_equal(a.detach(), c.detach())
    # the module without ls_init_values: no gamma, the repr and state of before
    m = droppath.ResidualNorm(40, drop_prob=0.5, seed=6)
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
    assert m.gamma is None and "gamma" not in m.state_dict()
    assert "ls_init_values" not in repr(m)
    for a, c in zip(m(x, f), plain):
        assert_bits_equal(a.detach(), c.detach())


class _WithoutNormLs:
    """The loaded library as one from before dp_backward_norm_ls (and possibly
    before dp_norm.ls_gamma) would look: every other symbol is the real one."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        if name == "dp_backward_norm_ls":
            raise AttributeError(name)
        return getattr(self._real, name)


def test_a_library_without_backward_norm_ls(monkeypatch):
    assert set(_lib._OPTIONAL_FEATURES) == set(_lib._OPTIONAL_SIGNATURES)  # each says what it is
    shape = (6, 3, 16)
    x, f, w, b, gamma = _inputs(shape, seed=9)
    gr, gy = _grads(shape)
    r0, y0 = droppath.drop_path_add_norm(x, f, 0.5, w, b, seed=1)
    want = (r0, y0) + torch.autograd.grad((r0, y0), (x, f, w, b), (gr, gy))
    monkeypatch.setattr(_lib, "_loaded", (_WithoutNormLs(_lib.lib()), "libdroppath-old.so.0"))
    # Without LayerScale nothing needs the new call: the same results as before.
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, seed=1)
    got = (r, y) + torch.autograd.grad((r, y), (x, f, w, b), (gr, gy))
    for a, c in zip(got, want):
        assert_bits_equal(a.detach(), c.detach())
    # With it, a clear error before any work, training or eval, functional or module
    # (such a library might not read dp_norm.ls_gamma at all and join without it).
    msg = "libdroppath-old.so.0 has no dp_backward_norm_ls: it predates LayerScale in the fused"
    for training in (True, False):
        with pytest.raises(droppath.LibraryNotFoundError, match=msg):
            droppath.drop_path_add_norm(x, f, 0.5, w, b, training, ls_gamma=gamma, seed=1)
    m = droppath.ResidualNorm(16, drop_prob=0.5, ls_init_values=1e-5)
    with pytest.raises(droppath.LibraryNotFoundError, match=msg):
        m(x, f)
    with pytest.raises(droppath.LibraryNotFoundError, match=msg):  # the operator itself too
        torch.ops.droppath.inference_norm(x.detach(), f.detach(), w, b, 0, 1e-5, 0.5, True, 0,
                                          gamma.detach())


def test_f_is_saved_only_for_gamma_grad():
    x, f, w, b, gamma = _inputs((4, 3, 8), seed=10)
    f_ptr = f.data_ptr()

    def saved_ptrs(ls_gamma):
        r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=ls_gamma, seed=2)
        return {t.data_ptr() for t in y.grad_fn.saved_tensors if t is not None}

    assert f_ptr in saved_ptrs(gamma)
    assert f_ptr not in saved_ptrs(gamma.detach())  # frozen LayerScale: f not kept alive
    assert f_ptr not in saved_ptrs(None)
    # frozen: grad_f still has the LayerScale factor (the LayerScale join's bits)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=gamma.detach(), seed=2)
    gx, gf = torch.autograd.grad((r, y), (x, f), _grads((4, 3, 8)))
    r_ls = droppath.drop_path_add_ls(x, f, gamma.detach(), 0.5, seed=2)
    assert_bits_equal(gf, torch.autograd.grad(r_ls, f, gx)[0])


def test_gradient_from_one_output_only():
    shape = (6, 5, 48)
    x, f, w, b, gamma = _inputs(shape, seed=3)
    g = torch.randn(shape)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=gamma, seed=4)
    gg = torch.autograd.grad(r, gamma, g)[0]  # y unused: grad_r is g itself
    r_ls = droppath.drop_path_add_ls(x, f, gamma, 0.5, seed=4)
    assert_bits_equal(gg, torch.autograd.grad(r_ls, gamma, g, retain_graph=True)[0])
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=gamma, seed=4)
    gx, gg = torch.autograd.grad(y, (x, gamma), g)  # r unused
    assert_bits_equal(gg, torch.autograd.grad(r_ls, gamma, gx)[0])


def test_dropped_samples_f_is_not_read():
    shape = (64, 3, 16)
    x, f, w, b, gamma = _inputs(shape, seed=11)
    keep, _ = droppath.mask(64, 0.5, seed=3)
    assert 0 < keep.sum() < 64
    f_nan = f.detach().clone()
    f_nan[~keep] = float("nan")
    f_nan.requires_grad_()
    gr, gy = _grads(shape)
    r, y = droppath.drop_path_add_norm(x, f_nan, 0.5, w, b, ls_gamma=gamma, seed=3)
    r1, y1 = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=gamma, seed=3)
    for a, c in zip((r, y) + torch.autograd.grad((r, y), (x, f_nan, w, b, gamma), (gr, gy)),
                    (r1, y1) + torch.autograd.grad((r1, y1), (x, f, w, b, gamma), (gr, gy))):
        assert_bits_equal(a.detach(), c.detach())  # NaN in a dropped branch reaches nothing


@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_eval_mode(scale_by_keep):
    shape = (5, 6, 64)
    x, f, w, b, gamma = _inputs(shape, seed=6)
    m = droppath.ResidualNorm(64, drop_prob=0.25, scale_by_keep=scale_by_keep, ls_init_values=0.1)
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
        m.gamma.copy_(gamma)
    m.eval()
    r, y = m(x, f)
    assert int(m.calls) == 0
    # x + gamma*f, or x + (gamma*f)*keep: the LayerScale join's eval bits
    ls = droppath.LayerScaleDropPath(64, drop_prob=0.25, scale_by_keep=scale_by_keep).eval()
    with torch.no_grad():
        ls.gamma.copy_(gamma)
    r_ls = ls(x, f)
    assert_bits_equal(r.detach(), r_ls.detach())
    keep = float(torch.tensor(0.75, dtype=torch.float32))
    ref = x + f * m.gamma if scale_by_keep else x + (f * m.gamma) * keep
    assert_bits_equal(r.detach(), ref.detach())
    _close(y.detach(), torch_norm(r.detach().double(), "layer", w.detach().double(),
                                  b.detach().double(), 1e-5), Y_TOL, "eval y")
    with torch.no_grad():  # the registered operator, given ls_gamma, gives the same bits
        ops = torch.ops.droppath.inference_norm(x, f, m.weight, m.bias, 0, 1e-5, 0.25,
                                                scale_by_keep, 0, m.gamma)
    assert_bits_equal(ops[0], r.detach())
    assert_bits_equal(ops[1], y.detach())
    # differentiable in eval mode: gamma.grad is the LayerScale join's on grad_r
    gr, gy = _grads(shape)
    gx, gf, gg = torch.autograd.grad((r, y), (x, f, m.gamma), (gr, gy))
    ls_gf, ls_gg = torch.autograd.grad(r_ls, (f, ls.gamma), gx)
    assert_bits_equal(gf, ls_gf)
    assert_bits_equal(gg, ls_gg)


def test_module_parameters_masks_and_timm_checkpoint():
    m = droppath.ResidualNorm(12, drop_prob=0.5, ls_init_values=1e-5, seed=5)
    assert m.gamma.shape == (12,) and m.gamma.dtype == torch.float32
    assert torch.equal(m.gamma.detach(), 1e-5 * torch.ones(12))  # timm's init_values * ones(dim)
    assert {n for n, _ in m.named_parameters()} == {"weight", "bias", "gamma"}
    assert set(m.state_dict()) == {"seed", "calls", "weight", "bias", "gamma"}
    assert repr(m) == ("ResidualNorm((12,), norm=layer, eps=1e-05, elementwise_affine=True, "
                       "drop_prob=0.500, ls_init_values=1e-05)")
    # timm's ls1.gamma (LayerScale) and norm2.* (LayerNorm) load into one module
    ln, ls = nn.LayerNorm(12), droppath.LayerScaleDropPath(12)
    with torch.no_grad():
        for t in (ln.weight, ln.bias, ls.gamma):
            t.normal_()
    timm_sd = {"blocks.0.ls1.gamma": ls.gamma.detach(), "blocks.0.norm2.weight": ln.weight.detach(),
               "blocks.0.norm2.bias": ln.bias.detach()}
    m.load_state_dict({k.split(".")[-1]: v for k, v in timm_sd.items()}, strict=False)
    assert torch.equal(m.gamma, ls.gamma) and torch.equal(m.weight, ln.weight)
    # each training call draws the next mask of the module's stream
    x, f = torch.randn(40, 3, 12), torch.randn(40, 3, 12)
    for offset in range(2):
        r, y = m(x, f)
        r_ref, y_ref = droppath.drop_path_add_norm(x, f, 0.5, m.weight, m.bias, ls_gamma=m.gamma,
                                                   seed=5, offset=offset)
        assert_bits_equal(r.detach(), r_ref.detach())
        assert_bits_equal(y.detach(), y_ref.detach())
        keep, _ = droppath.mask(40, 0.5, seed=5, offset=offset)
        assert_bits_equal(r.detach(), (x + timm_drop_path(f * m.gamma, 0.5, keep)).detach())
    # RMSNorm with LayerScale: weight and gamma, no bias
    rms = droppath.ResidualNorm(12, "rms", eps=1e-6, ls_init_values=0.5)
    assert set(rms.state_dict()) == {"seed", "calls", "weight", "gamma"}
    # the whole module in bfloat16: gamma's gradient comes back in its dtype
    half = droppath.ResidualNorm(12, drop_prob=0.5, ls_init_values=0.5, seed=1).to(torch.bfloat16)
    r, y = half(x.bfloat16(), f.bfloat16())
    (gg,) = torch.autograd.grad((r, y), half.gamma, (torch.ones_like(r), torch.ones_like(y)))
    assert gg.dtype == torch.bfloat16


def test_errors():
    x, f = torch.randn(4, 6), torch.randn(4, 6)
    with pytest.raises(ValueError, match="ls_gamma must be a vector of x.shape\\[-1\\] = 6"):
        droppath.drop_path_add_norm(x, f, 0.1, ls_gamma=torch.ones(5), seed=0)
    with pytest.raises(ValueError, match="ls_gamma must be a vector"):
        droppath.drop_path_add_norm(x, f, 0.1, ls_gamma=torch.ones(1, 6), seed=0)
    with pytest.raises(TypeError, match="ls_gamma has dtype torch.float64"):
        droppath.drop_path_add_norm(x, f, 0.1, ls_gamma=torch.ones(6, dtype=torch.float64),
                                    seed=0)
    with pytest.raises(TypeError, match="ls_gamma has dtype torch.int32"):
        droppath.drop_path_add_norm(x, f, 0.1, ls_gamma=torch.ones(6, dtype=torch.int32), seed=0)
    with pytest.raises(TypeError, match="ls_gamma must be a torch.Tensor"):
        droppath.drop_path_add_norm(x, f, 0.1, ls_gamma=[1.0] * 6, seed=0)
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        droppath.drop_path_add_norm(x, f, 0.1, ls_gamma=torch.ones(6, device="meta"), seed=0)
    with pytest.raises(TypeError, match="positional"):  # keyword only: not mistaken for another
        droppath.drop_path_add_norm(x, f, 0.1, None, None, True, torch.ones(6))
    for v in (True, float("nan"), float("inf"), "1e-5", torch.ones(6)):
        with pytest.raises(ValueError, match="ls_init_values must be None or a finite number"):
            droppath.ResidualNorm(6, ls_init_values=v)
    m = droppath.ResidualNorm(6, ls_init_values=1e-5)
    with pytest.raises(ValueError, match="weight must be a vector"):  # the first vector checked
        m(torch.randn(2, 5), torch.randn(2, 5))
    m = droppath.ResidualNorm(6, elementwise_affine=False, ls_init_values=1e-5)
    with pytest.raises(ValueError, match="ls_gamma must be a vector"):
        m(torch.randn(2, 5), torch.randn(2, 5))


def test_operators_and_the_direct_fallback():
    """torch.ops.droppath.forward_norm's ls_gamma and backward_norm_ls, and the Python
    functions callers use where the operators could not be registered: the same bits
    as the autograd path."""
    from droppath import _ops
    shape = (8, 3, 24)
    x, f, w, b, gamma = _inputs(shape, seed=12)
    gr, gy = _grads(shape)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=gamma, seed=7, offset=2)
    want = (r.detach(), y.detach()) + torch.autograd.grad((r, y), (x, f, w, b, gamma), (gr, gy))
    xd, fd, wd, bd, gd = (t.detach() for t in (x, f, w, b, gamma))
    assert droppath.TORCH_OPS_REGISTERED
    for fwd, bwd in ((torch.ops.droppath.forward_norm, torch.ops.droppath.backward_norm_ls),
                     (_ops._forward_norm, _ops._backward_norm_ls)):
        r2, y2, mean, rstd, scales = fwd(xd, fd, wd, bd, 0, 1e-5, 0.5, 7, 2, 0, 0, True, 0, gd)
        gx, gf, gw, gb, gg = bwd(gy, gr, r2, fd, mean, rstd, scales, wd, gd, 0, 1e-5, True, True,
                                 True, 0)
        for a, c in zip((r2, y2, gx, gf, gw, gb, gg), want):
            assert_bits_equal(a, c)
        # f None: no LayerScale gradient asked for (an empty tensor), the rest unchanged
        out = bwd(gy, gr, r2, None, mean, rstd, scales, wd, gd, 0, 1e-5, True, True, True, 0)
        assert out[4].numel() == 0
        for a, c in zip(out[:4], want[2:6]):
            assert_bits_equal(a, c)


@pytest.mark.parametrize("shape", [(0, 5, 8), (4, 0, 8)])
def test_empty_tensors(shape):
    x, f, w, b, gamma = _inputs(shape)
    r, y = droppath.drop_path_add_norm(x, f, 0.5, w, b, ls_gamma=gamma, seed=1)
    assert r.shape == y.shape == shape
    grads = torch.autograd.grad((r, y), (x, f, w, b, gamma), (torch.ones(shape),) * 2)
    assert grads[1].shape == shape and torch.equal(grads[4], torch.zeros(8))
