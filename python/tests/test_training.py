"""A small ViT-style model trained a few hundred steps with this package's modules,
against the same model with pure-PyTorch joins (timm's formula) fed the same masks
(drawn by the pure-Python model of the spec): the losses must be identical at every
step.  Then a run resumed from a state_dict must continue exactly as the
uninterrupted one."""

import copy
import io

import torch
from torch import nn

import droppath
from reference import spec_keep, timm_drop_path

DIM, HEADS, TOKENS, DEPTH, BATCH, CLASSES = 32, 4, 16, 3, 8, 5
STEPS = 300


class TimmStyleJoin(nn.Module):
    """x + drop_path(f) as timm writes it, the Bernoulli draw replaced by the spec's mask
    for (seed, offset = number of training calls so far)."""

    def __init__(self, p, seed):
        super().__init__()
        self.p, self.seed, self.calls = p, seed, 0

    def forward(self, x, f):
        offset, self.calls = self.calls, self.calls + 1
        if self.p == 0.0:
            return x + f
        return x + timm_drop_path(f, self.p, spec_keep(x.shape[0], self.p, self.seed, offset))


class DropPathJoin(nn.Module):
    """timm's usual wiring, x + self.drop_path(f), with this package's DropPath."""

    def __init__(self, p, seed):
        super().__init__()
        self.drop_path = droppath.DropPath(p, seed=seed)

    def forward(self, x, f):
        return x + self.drop_path(f)


class StochasticDepthJoin(nn.Module):
    def __init__(self, p, seed):
        super().__init__()
        self.sd = droppath.StochasticDepth(p, "row", seed=seed)

    def forward(self, x, f):
        return x + self.sd(f)


def fused_join(p, seed):
    return droppath.ResidualDropPath(p, seed=seed)


class Block(nn.Module):
    def __init__(self, join1, join2):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))
        self.join1, self.join2 = join1, join2

    def forward(self, x):
        h = self.norm1(x)
        x = self.join1(x, self.attn(h, h, h, need_weights=False)[0])
        return self.join2(x, self.mlp(self.norm2(x)))


class TinyViT(nn.Module):
    def __init__(self, make_join):
        super().__init__()
        rates = droppath.drop_rates("linspace", 0.4, 2 * DEPTH)  # 0 for the first join
        self.embed = nn.Linear(12, DIM)
        self.pos = nn.Parameter(torch.randn(1, TOKENS, DIM) * 0.02)
        self.blocks = nn.Sequential(*[
            Block(make_join(2 * i, rates[2 * i], 100 + 2 * i),
                  make_join(2 * i + 1, rates[2 * i + 1], 101 + 2 * i)) for i in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, x):
        x = self.blocks(self.embed(x) + self.pos)
        return self.head(self.norm(x).mean(1))


def ours(i, p, seed):
    # Every kind of module in one model: fused join, timm-style DropPath, torchvision's.
    return (fused_join, DropPathJoin, StochasticDepthJoin)[i % 3](p, seed)


def reference(i, p, seed):
    return TimmStyleJoin(p, seed)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, TOKENS, 12, generator=g)
    y = torch.randint(0, CLASSES, (64,), generator=g)
    return x, y


def _train(model, opt, steps, start=0):
    x, y = _data()
    losses = []
    for step in range(start, start + steps):
        i = (step * BATCH) % 64
        loss = nn.functional.cross_entropy(model(x[i:i + BATCH]), y[i:i + BATCH])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _models():
    torch.manual_seed(0)
    a = TinyViT(ours)
    torch.manual_seed(0)
    b = TinyViT(reference)
    b.load_state_dict(a.state_dict(), strict=False)  # the same weights; b has no mask buffers
    return a, b


def test_losses_identical_to_pure_pytorch_every_step():
    a, b = _models()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    la = _train(a, torch.optim.AdamW(a.parameters(), lr=2e-3), STEPS)
    lb = _train(b, torch.optim.AdamW(b.parameters(), lr=2e-3), STEPS)
    first_diff = next((i for i, (u, v) in enumerate(zip(la, lb)) if u != v), None)
    assert first_diff is None, "step %d: %r vs %r" % (first_diff, la[first_diff], lb[first_diff])
    assert la[-1] < 0.5 * la[0], "the model learns"
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    # The masks were live: a run with other seeds takes another path.
    c, _ = _models()
    droppath.seed_all(c, 999)
    assert _train(c, torch.optim.AdamW(c.parameters(), lr=2e-3), 20) != la[:20]


def test_resumed_run_continues_exactly():
    a, _ = _models()
    opt = torch.optim.AdamW(a.parameters(), lr=2e-3)
    _train(a, opt, 40)
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "opt": opt.state_dict()}, buf)
    expect = _train(a, opt, 40, start=40)

    torch.manual_seed(123)  # other weights and other seeds until the checkpoint loads
    b = TinyViT(ours)
    opt_b = torch.optim.AdamW(b.parameters(), lr=2e-3)
    buf.seek(0)
    state = torch.load(buf)
    b.load_state_dict(state["model"])
    opt_b.load_state_dict(state["opt"])
    assert _train(b, opt_b, 40, start=40) == expect

    c = copy.deepcopy(b)
    buf.seek(0)
    c.load_state_dict(state["model"])
    for m in droppath.mask_modules(c):
        m.calls.zero_()  # the counter is part of the state: without it the masks differ
    opt_c = torch.optim.AdamW(c.parameters(), lr=2e-3)
    opt_c.load_state_dict(state["opt"])
    assert _train(c, opt_c, 40, start=40) != expect
