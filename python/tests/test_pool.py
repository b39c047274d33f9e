"""The output pool: large outputs come from reused mappings, go back when their last
tensor dies (views and autograd's saved tensors included), never leak stale data
into results, and respect the idle limit."""

import gc

import pytest
import torch

import droppath
from droppath import _pool
from reference import assert_bits_equal

BIG = (64, 4096)  # 1 MiB of float32: pooled


@pytest.fixture(autouse=True)
def fresh_pool():
    droppath.empty_cache()
    saved = _pool._state["limit"]
    yield
    _pool._state["limit"] = saved
    droppath.empty_cache()


def _ptr(t):
    return t.storage().data_ptr()


def test_outputs_are_reused_after_their_tensors_die():
    x, f = torch.randn(BIG), torch.randn(BIG)
    a = droppath.drop_path_add(x, f, 0.5, seed=1)
    first = _ptr(a)
    assert _pool.idle_bytes() == 0
    view = a[3:5]
    del a
    gc.collect()
    assert _pool.idle_bytes() == 0  # a view still holds it
    del view
    assert _pool.idle_bytes() == x.numel() * 4
    b = droppath.drop_path_add(x, f, 0.5, seed=1)
    assert _ptr(b) == first and _pool.idle_bytes() == 0


def test_stale_contents_never_reach_a_result():
    x, f = torch.randn(BIG), torch.randn(BIG)
    expect = droppath.drop_path_add(x, f, 0.5, seed=2).clone()
    for fn in (lambda: droppath.drop_path_add(x, f, 0.5, seed=2),
               lambda: droppath.drop_path(x, 0.5, True, seed=2)):
        t = fn()
        t.fill_(float("nan"))
        ptr = _ptr(t)
        del t
        again = fn()
        assert _ptr(again) == ptr
        assert not torch.isnan(again).any()
    assert_bits_equal(droppath.drop_path_add(x, f, 0.5, seed=2), expect)


def test_a_tensor_saved_by_autograd_keeps_its_block():
    x = torch.randn(BIG)
    w = torch.ones(1, requires_grad=True)
    mid = droppath.drop_path(x, 0.5, True, seed=3)
    y = (mid * w).sum()  # MulBackward saves mid for w's gradient
    del mid
    assert _pool.idle_bytes() == 0
    y.backward()
    del y
    assert _pool.idle_bytes() == x.numel() * 4


def test_layouts_and_dtypes():
    x = torch.randn(16, 64, 32, 16).to(memory_format=torch.channels_last)  # 2 MiB
    out = droppath.drop_path_add(x, x, 0.5, seed=1)
    assert out.stride() == x.stride() and out.is_contiguous(memory_format=torch.channels_last)
    h = torch.randn(BIG).to(torch.bfloat16)
    xg = torch.randn(BIG, requires_grad=True)
    hg = h.clone().requires_grad_()
    out = droppath.drop_path_add(xg, hg, 0.5, seed=1)
    (gh,) = torch.autograd.grad(out, hg, torch.ones(BIG))
    assert gh.dtype == torch.bfloat16 and gh.shape == BIG
    padded = torch.randn(64, 4200)[:, :4096]
    assert droppath.drop_path_add(padded, padded, 0.5, seed=1).is_contiguous()


def test_idle_limit_and_off_switch():
    x = torch.randn(BIG)
    _pool._state["limit"] = x.numel() * 4  # room for one idle block
    a, b = droppath.drop_path(x, 0.5, True, seed=1), droppath.drop_path(x, 0.5, True, seed=2)
    del a, b
    assert _pool.idle_bytes() == x.numel() * 4
    assert droppath.empty_cache() == x.numel() * 4 and _pool.idle_bytes() == 0
    _pool._state["limit"] = 0  # DROPPATH_POOL_BYTES=0
    c = droppath.drop_path(x, 0.5, True, seed=1)
    del c
    assert _pool.idle_bytes() == 0


def test_small_outputs_are_not_pooled():
    x = torch.randn(8, 100)
    del x
    out = droppath.drop_path(torch.randn(8, 100), 0.5, True, seed=1)
    del out
    assert _pool.idle_bytes() == 0


def test_bad_pool_setting(monkeypatch):
    monkeypatch.setenv("DROPPATH_POOL_BYTES", "lots")
    with pytest.raises(ValueError, match="DROPPATH_POOL_BYTES"):
        _pool._limit_from_env()
    monkeypatch.setenv("DROPPATH_POOL_BYTES", "0")
    assert _pool._limit_from_env() == 0
