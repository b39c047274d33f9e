"""Tensor layouts: what is passed to the C API as strided rows without a copy, what is
copied first, and that both give the same bits as the contiguous call; threads,
shards (sample_base) and empty tensors."""

import pytest
import torch

import droppath
from droppath import _layout
from reference import assert_bits_equal


def _expected(x, f, p, seed, offset=0, batch_dim=0):
    """The contiguous, batch-first call, moved back to x's batch dimension."""
    xc = x.transpose(0, batch_dim).contiguous()
    fc = f.transpose(0, batch_dim).contiguous()
    out = droppath.drop_path_add(xc, fc, p, seed=seed, offset=offset)
    return out.transpose(0, batch_dim)


def _rows(*tensors):
    r, ts = _layout.rows(tensors)
    copied = [a is not b for a, b in zip(ts, tensors)]
    return (r.batch, r.seq, r.dim), r.strides, copied


def test_dense_tensors_are_one_row_per_sample():
    x = torch.empty(4, 197, 768)
    assert _rows(x, torch.empty_like(x)) == ((4, 1, 197 * 768), [(197 * 768, 197 * 768)] * 2,
                                             [False, False])


def test_channels_last_is_read_in_place():
    x = torch.empty(2, 3, 4, 5).to(memory_format=torch.channels_last)
    assert _rows(x, torch.empty_like(x)) == ((2, 1, 60), [(60, 60)] * 2, [False, False])


def test_sequence_first_and_padded_rows_use_strides():
    x = torch.empty(7, 4, 16).transpose(0, 1)  # [B=4][T=7][D=16] over [T][B][D] memory
    assert _rows(x) == ((4, 7, 16), [(16, 64)], [False])
    padded = torch.empty(4, 7, 20)[:, :, :16]
    assert _rows(padded) == ((4, 7, 16), [(140, 20)], [False])


def test_mixed_layouts_share_rows():
    x = torch.empty(4, 7, 16)  # contiguous: could be one row per sample
    f = torch.empty(7, 4, 16).transpose(0, 1)  # rows of 16
    assert _rows(x, f) == ((4, 7, 16), [(112, 16), (16, 64)], [False, False])


def test_undescribable_tensors_are_copied():
    x = torch.empty(4, 8, 6)
    stepped = torch.empty(4, 8, 12)[:, :, ::2]  # no contiguous innermost run
    expanded = torch.empty(1, 8, 6).expand(4, 8, 6)  # samples overlap
    assert _rows(x, stepped)[2] == [False, True]
    assert _rows(x, expanded)[2] == [False, True]
    assert _rows(stepped, x)[2] == [True, False]


CASES = {
    "contiguous": lambda t: t,
    "channels_last": lambda t: t.to(memory_format=torch.channels_last),
    "transposed_inner": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3),
    "seq_first": lambda t: t.transpose(0, 1).contiguous().transpose(0, 1),
    "padded": lambda t: torch.nn.functional.pad(t, (0, 3))[..., :t.shape[-1]],
    "stepped": lambda t: torch.repeat_interleave(t, 2, dim=-1)[..., ::2],
    "batch_slice": lambda t: torch.stack([t, t], 1).flatten(0, 1)[1::2],
}


@pytest.mark.parametrize("xcase", list(CASES))
@pytest.mark.parametrize("fcase", list(CASES))
def test_any_layout_gives_the_contiguous_bits(xcase, fcase):
    base_x = torch.randn(6, 3, 5, 4)
    base_f = torch.randn(6, 3, 5, 4)
    x = CASES[xcase](base_x.clone()).requires_grad_()
    f = CASES[fcase](base_f.clone()).requires_grad_()
    assert torch.equal(x, base_x) and torch.equal(f, base_f)
    out = droppath.drop_path_add(x, f, 0.5, seed=11)
    assert_bits_equal(out.detach(), _expected(base_x, base_f, 0.5, 11))
    g = torch.randn(6, 3, 5, 4)
    gx, gf = torch.autograd.grad(out, (x, f), CASES[xcase](g.clone()))
    _, scales = droppath.mask(6, 0.5, seed=11)
    assert_bits_equal(gx.contiguous(), g)
    assert_bits_equal(gf.contiguous(), g * scales.view(6, 1, 1, 1) + 0.0)


def test_expanded_gradient_from_sum():
    x = torch.randn(8, 10, requires_grad=True)
    droppath.DropPath(0.5, seed=1)(x).sum().backward()  # grad_out is expand()ed ones
    _, scales = droppath.mask(8, 0.5, seed=1)
    assert_bits_equal(x.grad, scales.view(8, 1).expand(8, 10) + 0.0)


@pytest.mark.parametrize("batch_dim", [1, -2])
def test_batch_dim(batch_dim):
    x = torch.randn(5, 8, 12)  # [T][B][D]
    f = torch.randn(5, 8, 12)
    out = droppath.drop_path_add(x, f, 0.5, seed=21, batch_dim=batch_dim)
    assert out.shape == x.shape
    assert_bits_equal(out, _expected(x, f, 0.5, 21, batch_dim=1))
    keep, _ = droppath.mask(8, 0.5, seed=21)
    dp = droppath.drop_path(x, 0.5, True, seed=21, batch_dim=batch_dim)
    assert torch.equal(dp[:, ~keep], torch.zeros(5, int((~keep).sum()), 12))


def test_shards_with_sample_base_get_the_whole_batch_masks():
    x, f = torch.randn(16, 3, 8), torch.randn(16, 3, 8)
    whole = droppath.drop_path_add(x, f, 0.5, seed=5, offset=9)
    parts = [droppath.drop_path_add(x[i:i + 4], f[i:i + 4], 0.5, seed=5, offset=9,
                                    sample_base=i) for i in range(0, 16, 4)]
    assert_bits_equal(whole, torch.cat(parts))
    unshifted = torch.cat([droppath.drop_path_add(x[i:i + 4], f[i:i + 4], 0.5, seed=5, offset=9)
                           for i in range(0, 16, 4)])
    assert not torch.equal(whole, unshifted)  # the shard offset matters


def test_thread_counts_give_the_same_bits():
    x, f = torch.randn(64, 4096), torch.randn(64, 4096)
    outs = [droppath.drop_path_add(x, f, 0.3, seed=3, num_threads=n) for n in (1, 2, 3)]
    for o in outs[1:]:
        assert_bits_equal(o, outs[0])
    saved = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert_bits_equal(droppath.drop_path_add(x, f, 0.3, seed=3), outs[0])
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (3, 0, 2)])
def test_empty_tensors(shape):
    x = torch.randn(shape, requires_grad=True)
    f = torch.randn(shape, requires_grad=True)
    out = droppath.drop_path_add(x, f, 0.5, seed=1)
    assert out.shape == x.shape
    gx, gf = torch.autograd.grad(out.sum(), (x, f))
    assert gx.shape == gf.shape == x.shape
    assert droppath.drop_path(x, 0.5, True, seed=1).shape == x.shape


def test_torch_ops_are_registered_and_callable():
    assert droppath.TORCH_OPS_REGISTERED
    x, f = torch.randn(4, 6), torch.randn(4, 6)
    out, scales = torch.ops.droppath.forward(x, f, 0.5, 3, 0, 0, 0, True, 0)
    assert_bits_equal(out, droppath.drop_path_add(x, f, 0.5, seed=3))
    assert torch.equal(scales, droppath.mask(4, 0.5, seed=3)[1])
    grad_f = torch.ops.droppath.backward(x, scales, torch.float32, 0)
    assert_bits_equal(grad_f, x * scales.view(4, 1) + 0.0)
    dp, _ = torch.ops.droppath.drop_path(x, 0.5, 3, 0, 0, 0, True, 0)
    assert torch.equal(dp, droppath.drop_path(x, 0.5, True, seed=3))
    assert_bits_equal(torch.ops.droppath.inference_add(x, f, 0.25, False, 0), x + f * 0.75)


def test_a_second_registration_falls_back_to_direct_calls():
    from droppath import _ops
    assert _ops._register() is None  # the namespace is taken: callers use the Python functions
