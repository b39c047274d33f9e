"""torch.set_flush_denormal(True) (flush-to-zero and denormals-are-zero on x86) must not
change the package's results: the library computes in its own floating-point
state on every thread and gives the caller's back."""

import pytest
import torch

import droppath
from reference import assert_bits_equal

TINY = 1e-39  # below float32's smallest normal, 1.18e-38


def _subnormals(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(64, 4096, generator=g) * TINY).to(dtype)


def _run(x, f, g, threads):
    xr, fr = x.clone().requires_grad_(), f.clone().requires_grad_()
    out = droppath.drop_path_add(xr, fr, 0.5, seed=6, num_threads=threads)
    _, gf = torch.autograd.grad(out, (xr, fr), g)
    dp = droppath.drop_path(x, 0.5, True, seed=6, num_threads=threads)
    return out.detach(), gf, dp


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flush_denormal_does_not_change_results(threads, dtype):
    x, f, g = (_subnormals(s, dtype) for s in (1, 2, 3))
    expect = _run(x, f, g, threads)
    assert all((t != 0).any() for t in expect), "the expected results hold subnormals"

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        torch_before = x * 2 + f  # torch's own arithmetic under the caller's state
        got = _run(x, f, g, threads)
        torch_after = x * 2 + f
    finally:
        torch.set_flush_denormal(False)

    # The state was live (torch flushed) before and after the calls: the library
    # neither saw it nor left its own behind.
    assert not torch_before.any() and not torch_after.any()
    for e, r in zip(expect, got):
        assert_bits_equal(r, e)
