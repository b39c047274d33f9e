"""Modules: timm/torchvision behaviour (identity, repr), the mask stream (seed, call
counter, state_dict), sample_base and seed_all."""

import copy
import io

import pytest
import torch
from torch import nn

import droppath
from reference import assert_bits_equal, spec_keep


def test_eval_mode_and_p_zero_are_identity():
    x = torch.randn(4, 5)
    f = torch.randn(4, 5)
    for m in (droppath.DropPath(0.5), droppath.StochasticDepth(0.5, "row")):
        assert m.eval()(x) is x  # timm and torchvision return the input itself
    assert droppath.DropPath(0.0).train()(x) is x
    assert droppath.StochasticDepth(0.0, "batch").train()(x) is x
    assert droppath.drop_path(x, 0.5, training=False) is x
    assert droppath.stochastic_depth(x, 0.5, "row", training=False) is x
    join = droppath.ResidualDropPath(0.5)
    assert_bits_equal(join.eval()(x, f), x + f)
    assert_bits_equal(droppath.ResidualDropPath(0.0).train()(x, f), x + f)
    paper = droppath.ResidualDropPath(0.25, scale_by_keep=False).eval()
    assert_bits_equal(paper(x, f), x + f * 0.75)  # Huang et al.'s test-time rule


def test_eval_matches_the_library_inference_add():
    x, f = torch.randn(8, 33), torch.randn(8, 33)
    for sbk in (True, False):
        eager = droppath.ResidualDropPath(0.3, scale_by_keep=sbk).eval()(x, f)
        assert_bits_equal(eager, torch.ops.droppath.inference_add(x, f, 0.3, sbk, 0))


def test_reprs_match_timm_and_torchvision():
    assert repr(droppath.DropPath(0.1)) == "DropPath(drop_prob=0.100)"
    assert repr(droppath.DropPath()) == "DropPath(drop_prob=0.000)"
    assert repr(droppath.StochasticDepth(0.2, "row")) == "StochasticDepth(p=0.2, mode=row)"
    assert repr(droppath.StochasticDepth(0.5, "batch")) == "StochasticDepth(p=0.5, mode=batch)"
    assert repr(droppath.ResidualDropPath(0.25)) == "ResidualDropPath(drop_prob=0.250)"
    assert repr(droppath.ResidualDropPath(0.25, False, mode="batch")) == \
        "ResidualDropPath(drop_prob=0.250, mode=batch, scale_by_keep=False)"


def test_each_call_draws_the_next_offset():
    m = droppath.DropPath(0.5, seed=77)
    x = torch.ones(64, 2)
    for offset in range(5):
        kept = m(x)[:, 0] != 0
        assert torch.equal(kept, spec_keep(64, 0.5, 77, offset))
    assert int(m.calls) == 5
    m.eval()(x)
    assert int(m.calls) == 5  # eval calls draw nothing


def test_seed_from_torch_generator_and_state_dict():
    torch.manual_seed(3)
    a = droppath.DropPath(0.5)
    torch.manual_seed(3)
    b = droppath.DropPath(0.5)
    c = droppath.DropPath(0.5)
    assert int(a.seed) == int(b.seed) != int(c.seed)
    sd = a.state_dict()
    assert set(sd) == {"seed", "calls"} and sd["seed"].dtype == torch.int64


def test_resume_from_state_dict_draws_the_same_masks():
    model = nn.Sequential(droppath.DropPath(0.5, seed=1), droppath.StochasticDepth(0.5, "row"))
    x = torch.randn(32, 8)
    for _ in range(3):
        model(x)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    expect = [model(x) for _ in range(3)]

    resumed = nn.Sequential(droppath.DropPath(0.5, seed=5), droppath.StochasticDepth(0.5, "row"))
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf))
    for e in expect:
        assert_bits_equal(resumed(x), e)
    fresh = copy.deepcopy(resumed)
    fresh[0].calls.zero_()
    assert not torch.equal(fresh(x), expect[0])  # the counter is what carries the masks


def test_timm_checkpoints_without_mask_state_load():
    class Block(nn.Module):
        def __init__(self, drop):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.drop_path = drop

    timm_like = Block(nn.Identity())  # timm's DropPath has no state either
    ours = Block(droppath.DropPath(0.1, seed=9))
    ours.load_state_dict(timm_like.state_dict())  # strict: no missing-key error
    assert int(ours.drop_path.seed) == 9
    with pytest.raises(RuntimeError, match="Missing key"):
        ours.load_state_dict({})  # other missing keys still count


def test_sample_base_and_seed_all():
    model = nn.Sequential(droppath.DropPath(0.5), droppath.ResidualDropPath(0.5),
                          nn.Sequential(droppath.StochasticDepth(0.5, "row")))
    assert len(droppath.mask_modules(model)) == 3
    droppath.seed_all(model, 2**64 - 2)
    assert [int(m.seed) & (2**64 - 1) for m in droppath.mask_modules(model)] == \
        [2**64 - 2, 2**64 - 1, 0]
    droppath.set_sample_base(model, 48)
    assert all(m.sample_base == 48 for m in droppath.mask_modules(model))

    whole = droppath.DropPath(0.5, seed=4)
    half = droppath.DropPath(0.5, seed=4, sample_base=8)
    x = torch.randn(16, 3)
    assert_bits_equal(half(x[8:]), whole(x)[8:])


def test_mode_batch_drops_all_or_nothing():
    m = droppath.StochasticDepth(0.5, "batch", seed=12)
    x = torch.ones(16, 4)
    outcomes = set()
    for _ in range(16):
        kept = m(x)[:, 0] != 0
        assert kept.all() or not kept.any()
        outcomes.add(bool(kept.all()))
    assert outcomes == {True, False}


def test_gradient_flows_through_modules_in_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), droppath.DropPath(0.5), nn.Linear(6, 1))
    x = torch.randn(10, 6)
    model(x).sum().backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()


def test_drop_rates():
    assert droppath.drop_rates("linspace", 0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert droppath.drop_rates("huang", 0.5, 2) == [0.25, 0.5]
    assert droppath.drop_rates("constant", 0.2, 0) == []
