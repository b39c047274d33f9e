"""torch.distributed (gloo, 127.0.0.1) with 2 and 4 ranks: each rank runs this package's
modules and functional forms on its shard of a global batch with sample_base set to the
shard's first global index; the ranks' masks, outputs and gradient rows, gathered in rank
order, must be the bits one process computes over the whole batch, for equal shards
(sample_base = rank * local_batch) and uneven ones (13 samples); batch mode must give one
decision per call for the whole global batch.  Then the example's data-parallel training
(python/examples/ddp_droppath.py): per-sample outputs, gradient rows, contributions and
fixed-order weight gradients bit-identical, all_reduce within its stated bound.

Ranks are forked from a fork server that has imported torch (ddp_droppath.spawn), so a
size costs about a second; a rank that fails or stalls fails the test (gloo timeout 60 s,
all ranks killed after 240 s)."""

import os

import pytest
import torch
import torch.distributed as dist

import ddp_droppath as ddp
import droppath
from reference import assert_bits_equal

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch without torch.distributed")

CALLS, TOKENS, DIM, LOCAL = 4, 3, 8, 3
P_ROW, P_BATCH = 0.4, 0.5


def _data(batch):
    """Per call: input, branch and output gradient over the global batch."""
    g = torch.Generator().manual_seed(7)
    return [tuple(torch.randn(batch, TOKENS, DIM, generator=g) for _ in range(3))
            for _ in range(CALLS)]


def _same(t):
    return t


def _module_case(module, n, sample_base, needs_f=False, cast=_same):
    """(cast, call(x, f, c) -> out, keep(c) -> the flags of call c) for a module."""
    droppath.set_sample_base(module, sample_base)

    def call(x, f, c):
        return module(x, f) if needs_f else module(x)
    return cast, call, lambda c: ddp.last_mask(module, n)


def _functional_case(fn, seed, p, n, sample_base, mode="row"):
    """The same for a functional form, offset = call number, sample_base given per call."""
    def call(x, f, c):
        return fn(x, f, seed=seed, offset=c, sample_base=sample_base)

    def keep(c):
        return droppath.mask(n, p, seed=seed, offset=c, sample_base=sample_base, mode=mode)[0]
    return _same, call, keep


def _seq_first(t):
    """[B, T, D] -> a [T, B, D] tensor (batch_dim=1); a shard is a slice of its dim 1."""
    return t.transpose(0, 1).contiguous()


def _cases(n, sample_base):
    """name -> case, for a shard of n samples starting at global index sample_base.
    The batch-mode seeds keep the branch in some of the CALLS calls and drop it in others
    (the test checks that both happen)."""
    def module(m, needs_f=False, cast=_same):
        return _module_case(m, n, sample_base, needs_f, cast)

    def functional(fn, seed, p, mode="row"):
        return _functional_case(fn, seed, p, n, sample_base, mode)
    return {
        "DropPath": module(droppath.DropPath(P_ROW, seed=11)),
        "StochasticDepth row": module(droppath.StochasticDepth(P_ROW, "row", seed=12)),
        "StochasticDepth batch": module(droppath.StochasticDepth(P_BATCH, "batch", seed=33)),
        "ResidualDropPath": module(droppath.ResidualDropPath(P_ROW, seed=14), True),
        "ResidualDropPath batch": module(
            droppath.ResidualDropPath(P_BATCH, mode="batch", seed=34), True),
        "ResidualDropPath bf16": module(droppath.ResidualDropPath(P_ROW, seed=16), True,
                                        lambda t: t.bfloat16()),
        "DropPath sequence-first": module(droppath.DropPath(P_ROW, seed=17, batch_dim=1),
                                          cast=_seq_first),
        "drop_path": functional(
            lambda x, f, **kw: droppath.drop_path(x, P_ROW, True, **kw), 21, P_ROW),
        "drop_path_add": functional(
            lambda x, f, **kw: droppath.drop_path_add(x, f, P_ROW, **kw), 22, P_ROW),
        "stochastic_depth batch": functional(
            lambda x, f, **kw: droppath.stochastic_depth(x, P_BATCH, "batch", **kw), 35,
            P_BATCH, "batch"),
    }


def _batch_first(name, t):
    return t.transpose(0, 1) if "sequence-first" in name else t


def run_cases(lo, hi, batch, ranks, sample_base=None):
    """Every case over samples lo..hi-1 of the global batch, CALLS calls each, sample_base
    lo unless given; returns per case the global (gathered) outputs, gradients of x and f
    and keep flags, batch first, float32 (bf16 widened, exactly)."""
    data = _data(batch)
    cases = _cases(hi - lo, lo if sample_base is None else sample_base)
    results = {}
    for name, (cast, call, keep) in cases.items():
        rec = {"out": [], "grad_x": [], "grad_f": [], "keep": []}
        for c, (x_all, f_all, g_all) in enumerate(data):
            x = cast(x_all[lo:hi]).requires_grad_()
            f = cast(f_all[lo:hi]).requires_grad_()
            out = call(x, f, c)
            out.backward(cast(g_all[lo:hi]))
            for key, t in (("out", out.detach()), ("grad_x", x.grad),
                           ("grad_f", f.grad if f.grad is not None else torch.zeros_like(f))):
                rec[key].append(_batch_first(name, t).float())
            rec["keep"].append(keep(c).to(torch.uint8))  # gloo has no bool
        # One gather per record: [sample, call, ...] rows, then calls first again.
        results[name] = {k: ranks.gather_rows(torch.stack(v, 1)).transpose(0, 1)
                         for k, v in rec.items()}
        results[name]["keep"] = results[name]["keep"].bool()
    return results


def _equal_bounds(world):
    return [(r * LOCAL, (r + 1) * LOCAL) for r in range(world)]


def _worker(rank, world, outdir):
    # Equal shards: sample_base = rank * local_batch.
    lo, hi = _equal_bounds(world)[rank]
    assert (lo, hi) == (rank * LOCAL, rank * LOCAL + LOCAL)
    result = {"equal": run_cases(lo, hi, world * LOCAL, ddp.Ranks(_equal_bounds(world)))}
    # Uneven shards (13 samples: 7+6, 4+3+3+3).
    lo, hi = ddp.shards(world)[rank]
    result["uneven"] = run_cases(lo, hi, ddp.GLOBAL_BATCH, ddp.Ranks(ddp.shards(world)))
    # The usual mistake, every rank drawing as if its shard were the whole batch: must differ.
    result["no sample_base"] = run_cases(lo, hi, ddp.GLOBAL_BATCH, ddp.Ranks(ddp.shards(world)), 0)
    result["train"] = {mode: ddp.train(mode, lo, hi, ddp.Ranks(ddp.shards(world)))
                       for mode in ("row", "batch")}
    result["world"] = dist.get_world_size()
    if rank == 0:
        torch.save(result, os.path.join(outdir, "rank0.pt"))


@pytest.fixture(scope="module")
def one_process():
    """One process holding each global batch, on one thread as the ranks run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {batch: run_cases(0, batch, batch, ddp.Ranks(None))
                for batch in (2 * LOCAL, 4 * LOCAL, ddp.GLOBAL_BATCH)}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_compute_the_global_batch(world, tmp_path, one_process):
    ddp.spawn(_worker, world, (str(tmp_path),))
    got = torch.load(tmp_path / "rank0.pt")
    assert got["world"] == world

    for split, batch in (("equal", world * LOCAL), ("uneven", ddp.GLOBAL_BATCH)):
        ref = one_process[batch]
        for name, rec in got[split].items():
            for key, t in rec.items():
                try:
                    if t.is_floating_point():
                        assert_bits_equal(t, ref[name][key])
                    else:
                        assert torch.equal(t, ref[name][key])
                except AssertionError as e:
                    raise AssertionError("%s shards, %s, %s: %s" % (split, name, key, e))
            keep = ref[name]["keep"]  # [call, sample]
            if "batch" in name:
                assert (keep == keep[:, :1]).all(), name  # one decision for the global batch
                decisions = keep[:, 0]
                assert decisions.any() and not decisions.all(), "%s: both outcomes" % name
            else:
                assert keep.any() and not keep.all(), "%s: kept and dropped samples" % name

    # Without sample_base the ranks' row-mode masks are not the global batch's.
    ref = one_process[ddp.GLOBAL_BATCH]
    for name in ("DropPath", "ResidualDropPath", "drop_path_add"):
        assert not torch.equal(got["no sample_base"][name]["keep"], ref[name]["keep"]), name
    assert torch.equal(got["no sample_base"]["ResidualDropPath batch"]["keep"],
                       ref["ResidualDropPath batch"]["keep"])  # batch mode needs none

    for mode in ("row", "batch"):
        rec = got["train"][mode]
        assert ddp.compare(rec, ddp.single_process(mode)) == [], mode
        assert rec["keep"].any() and not rec["keep"].all(), mode
        if mode == "batch":
            assert ddp.batch_decisions(rec).all()
