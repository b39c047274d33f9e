"""Data-parallel training with torch.distributed (gloo): N ranks draw exactly
the DropPath masks of one process holding the whole batch, whatever N is.

    python3 ddp_droppath.py [--world-size N]      (default 4; no torchrun needed)

The script starts N processes on this machine (torch.multiprocessing, gloo on
127.0.0.1), trains the model below on a global batch of 13 cut into contiguous
shards (4 ranks: 4 + 3 + 3 + 3), then runs the same steps in one process over
the whole batch and compares.  Model, replicated on every rank, the blocks of
the MPI example (examples/mpi_data_parallel.c) with this package's modules:

    h[l+1] = h[l] + join_l(h[l], tanh(W[l] h[l]))     joins: ResidualDropPath, DropPath,
    loss   = 0.5 * sum |h[L] - target|^2 / 13              StochasticDepth (row or batch mode)

What a rank sets, and all it sets, for the masks:

    droppath.seed_all(model, SEED)              # the same seed on every rank (not SEED + rank)
    droppath.set_sample_base(model, start)      # global index of the shard's first sample

A sample's mask is drawn at counter (sample_base + b, call number), i.e. keyed
by its global index, so each rank draws for its samples the bits one big call
draws for them; batch mode's single draw per call ignores sample_base, so all
ranks share the one decision of the global batch.

Gradients.  Every sample multiplies by its own view of W (W.expand, bmm), so
autograd leaves each sample's weight-gradient contribution in that view's
.grad besides the usual sum in W.grad.  The rank's W.grad is reduced the way
DDP does it (all_reduce, SUM); the contributions are also gathered from all
ranks (all_gather, rank order = global sample order) and summed in global
sample order: the same float additions in the same order as one process, so
the same bits for every N, and the weights are updated with that sum.  The
all_reduce result and one process's W.grad group the additions differently
(by rank; by torch's reduction), so their last bits differ.  Both are float
sums of the same 13 terms c_b, each within gamma(12) * sum_b |c_b| of the
exact sum (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
sec. 4.2: any order of pairwise additions; gamma(n) = n*u / (1 - n*u),
u = 2^-24), so they may differ by 2 * gamma(12) * sum_b |c_b| per element;
that is checked.

The module can be imported: python/tests/test_distributed.py runs its steps and
checks (train, compare, spawn, ...) as part of its 2- and 4-rank tests.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import droppath

GLOBAL_BATCH, TOKENS, DIM, DEPTH, STEPS, LR = 13, 3, 16, 4, 3, 0.5
SEED = 2024            # every mask stream of the run comes from this one number
TIMEOUT_S = 60         # gloo: rendezvous and each collective; a lost rank fails, never hangs
U = 2.0 ** -24         # float32 unit roundoff


# ---------------------------------------------------------------- model and data

class Block(nn.Module):
    """h + join(h, tanh(W h)); the join is ResidualDropPath (fused) or h + module(f)."""

    def __init__(self, join):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(DIM, DIM) / DIM ** 0.5)
        self.join = join
        self.per_sample = None

    def forward(self, h):
        # A view of W per sample: each sample's product is its own small matrix product (the
        # same arithmetic whatever the batch size) and its gradient lands in per_sample.grad.
        w = self.weight.expand(h.shape[0], DIM, DIM)
        if w.requires_grad:
            w.retain_grad()
        self.per_sample = w
        f = torch.tanh(torch.bmm(h, w.transpose(1, 2)))
        if isinstance(self.join, droppath.ResidualDropPath):
            return self.join(h, f)
        return h + self.join(f)


def make_model(mode):
    """Same weights and mask seeds in every process; mode "row" or "batch"."""
    torch.manual_seed(0)
    rates = droppath.drop_rates("linspace", 0.5, DEPTH)  # timm's schedule: 0 .. 0.5
    if mode == "row":
        joins = [droppath.ResidualDropPath(rates[0]), droppath.DropPath(rates[1]),
                 droppath.StochasticDepth(rates[2], "row"), droppath.ResidualDropPath(rates[3])]
    else:
        joins = [droppath.ResidualDropPath(rates[0], mode="batch"),
                 droppath.StochasticDepth(rates[1], "batch"),
                 droppath.ResidualDropPath(rates[2], mode="batch"),
                 droppath.StochasticDepth(rates[3], "batch")]
    model = nn.Sequential(*[Block(j) for j in joins])
    droppath.seed_all(model, SEED)
    return model


def make_data():
    """The global batch: every rank builds it and takes its shard (a deterministic sampler)."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(GLOBAL_BATCH, TOKENS, DIM, generator=g),
            torch.randn(GLOBAL_BATCH, TOKENS, DIM, generator=g))


def shards(world):
    """Contiguous shards as even as possible: [(start, stop)] per rank."""
    base, extra = divmod(GLOBAL_BATCH, world)
    counts = [base + (r < extra) for r in range(world)]
    starts = [sum(counts[:r]) for r in range(world)]
    return [(s, s + c) for s, c in zip(starts, counts)]


def loss_of(out, target):
    return 0.5 * (out - target).square().sum() / GLOBAL_BATCH


def last_mask(module, batch):
    """Keep flags of the module's last call: droppath.mask with the call's arguments."""
    p = module.drop_prob if hasattr(module, "drop_prob") else module.p
    keep, _ = droppath.mask(batch, p, seed=int(module.seed), offset=int(module.calls) - 1,
                            sample_base=module.sample_base, mode=getattr(module, "mode", "row"))
    return keep


# ---------------------------------------------------------------- communication

class Ranks:
    """The collectives a rank needs: rows gathered in global order, sums all-reduced.
    Ranks(None) stands for one process holding the whole batch."""

    def __init__(self, bounds):
        self.bounds = bounds

    def gather_rows(self, t):
        """The global tensor from every rank's rows (uneven shards: padded for all_gather)."""
        if self.bounds is None:
            return t
        most = max(hi - lo for lo, hi in self.bounds)
        padded = torch.zeros((most,) + tuple(t.shape[1:]), dtype=t.dtype)
        padded[:t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in self.bounds]
        dist.all_gather(parts, padded)
        return torch.cat([part[:hi - lo] for part, (lo, hi) in zip(parts, self.bounds)])

    def gather_each(self, t):
        """Every rank's t, stacked in rank order."""
        if self.bounds is None:
            return t[None]
        parts = [torch.empty_like(t) for _ in self.bounds]
        dist.all_gather(parts, t)
        return torch.stack(parts)

    def all_reduce(self, t):
        if self.bounds is not None:
            dist.all_reduce(t)
        return t


# ---------------------------------------------------------------- training

def train(mode, lo, hi, ranks):
    """STEPS steps on samples lo..hi-1 of the global batch; returns what the checks compare,
    as global tensors (gathered from all ranks)."""
    model = make_model(mode)
    droppath.set_sample_base(model, lo)
    x_all, target_all = make_data()
    rec = {k: [] for k in ("loss", "out", "grad_x", "keep", "contrib", "fixed", "allreduce")}
    for _ in range(STEPS):
        x = x_all[lo:hi].clone().requires_grad_()
        out = model(x)
        model.zero_grad(set_to_none=True)
        loss_of(out, target_all[lo:hi]).backward()

        # Per-sample contributions, gathered and summed in global sample order.
        contrib = ranks.gather_rows(torch.stack([blk.per_sample.grad for blk in model], 1))
        fixed = torch.zeros(DEPTH, DIM, DIM)
        for b in range(GLOBAL_BATCH):
            fixed = fixed + contrib[b]
        allreduce = ranks.all_reduce(torch.stack([blk.weight.grad for blk in model]))
        with torch.no_grad():
            for l, blk in enumerate(model):
                blk.weight.sub_(LR * fixed[l])

        out_all = ranks.gather_rows(out.detach())
        rec["loss"].append(loss_of(out_all, target_all))
        rec["out"].append(out_all)
        rec["grad_x"].append(ranks.gather_rows(x.grad))
        keep = torch.stack([last_mask(blk.join, hi - lo) for blk in model], 1)
        rec["keep"].append(ranks.gather_rows(keep.to(torch.uint8)).bool())  # gloo: no bool
        rec["contrib"].append(contrib)
        rec["fixed"].append(fixed)
        rec["allreduce"].append(allreduce)
    rec = {k: torch.stack(v) for k, v in rec.items()}
    rec["weights"] = ranks.gather_each(torch.stack([blk.weight.detach() for blk in model]))
    return rec


def single_process(mode):
    """The same steps in this process over the whole batch, on one thread as the ranks run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(mode, 0, GLOBAL_BATCH, Ranks(None))
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- processes

def _rank_entry(rank, world, port, fn, args):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback, whatever the host name says
    torch.set_num_threads(1)  # N ranks share this machine's cores
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    store = dist.TCPStore("127.0.0.1", port, world, False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timeout)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn(fn, world, args=(), timeout=4 * TIMEOUT_S):
    """Run fn(rank, world, *args) in `world` new processes joined by a gloo process group
    on 127.0.0.1; a rank's exception is raised here, and ranks still running after
    `timeout` seconds are killed (TimeoutError).

    The rendezvous store (what MASTER_ADDR/MASTER_PORT name under torchrun) is served by
    this process on a port the system picks, listening before any rank starts: no port
    race, and no rank waits out the one-second retry of a connection refused.  The ranks
    are forked from multiprocessing's fork server, a fresh interpreter that has imported
    torch and never run a parallel region (no OpenMP threads to lose in a fork): a rank
    starts in milliseconds, where "spawn" would import torch in each."""
    store = dist.TCPStore("127.0.0.1", 0, world, True, wait_for_workers=False,
                          timeout=datetime.timedelta(seconds=TIMEOUT_S))
    mp.set_forkserver_preload(["torch"])
    ctx = mp.start_processes(_rank_entry, args=(world, store.port, fn, args), nprocs=world,
                             join=False, start_method="forkserver")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=max(deadline - time.monotonic(), 0.01)):
            if time.monotonic() >= deadline:
                raise TimeoutError("%d ranks still running after %d s" % (world, timeout))
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
            p.join()
        del store


def _rank_main(rank, world, outdir):
    lo, hi = shards(world)[rank]
    ranks = Ranks(shards(world))
    result = {mode: train(mode, lo, hi, ranks) for mode in ("row", "batch")}
    if rank == 0:
        torch.save(result, os.path.join(outdir, "ranks.pt"))


def run_ranks(world):
    """train() on `world` ranks; rank 0's gathered results."""
    with tempfile.TemporaryDirectory() as outdir:
        spawn(_rank_main, world, (outdir,))
        return torch.load(os.path.join(outdir, "ranks.pt"))


# ---------------------------------------------------------------- checks

def bits(t):
    return t.contiguous().view(torch.int32) if t.dtype == torch.float32 else t


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(bits(a), bits(b))


def allreduce_gap(ranks_rec, single_rec):
    """(elements that differ, largest |all_reduce - one process| as a fraction of the bound)."""
    n = GLOBAL_BATCH - 1
    gamma = n * U / (1 - n * U)
    bound = 2 * gamma * single_rec["contrib"].abs().double().sum(1)  # [step, l, i, j]
    gap = (ranks_rec["allreduce"].double() - single_rec["allreduce"].double()).abs()
    return int((gap != 0).sum()), float((gap / bound.clamp_min(1e-300)).max())


BIT_EXACT = ("keep", "out", "grad_x", "contrib", "fixed", "loss")


def compare(ranks_rec, single_rec):
    """Names of the records that differ from one process's (empty when all is well)."""
    bad = [k for k in BIT_EXACT if not same_bits(ranks_rec[k], single_rec[k])]
    if not all(same_bits(w, single_rec["weights"][0]) for w in ranks_rec["weights"]):
        bad.append("weights (of some rank)")
    if allreduce_gap(ranks_rec, single_rec)[1] > 1.0:
        bad.append("all_reduce beyond its bound")
    return bad


def batch_decisions(rec):
    """Per block call in batch mode: True if every sample of the global batch got one decision."""
    keep = rec["keep"]  # [step, sample, block]
    return (keep == keep[:, :1]).all(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world-size", type=int, default=4)
    world = ap.parse_args().world_size
    if not 1 <= world <= GLOBAL_BATCH:
        ap.error("--world-size must be 1..%d" % GLOBAL_BATCH)
    info = droppath.library_info()
    counts = [hi - lo for lo, hi in shards(world)]
    print("droppath %s on libdroppath %s (%s), torch %s, gloo, %d rank%s, global batch %d split %s"
          % (droppath.__version__, info["version"], info["isa"], torch.__version__, world,
             "s" * (world > 1), GLOBAL_BATCH, "+".join(map(str, counts))), flush=True)
    results = run_ranks(world)
    failures = 0
    for mode in ("row", "batch"):
        got, ref = results[mode], single_process(mode)
        print("%-5s mode, loss per step: %s" % (mode, " ".join("%.6f" % v for v in got["loss"])))
        keep = got["keep"]
        line = "  dropped %d of %d sample-blocks" % (int((~keep).sum()), keep.numel())
        if mode == "batch":
            one = batch_decisions(got)
            line += " (%d of %d block calls); %s" % (
                int((~keep[:, 0]).sum()), one.numel(),
                "one decision per call, shared by every rank" if one.all()
                else "ranks DISAGREE in %d calls" % int((~one).sum()))
            failures += not one.all()
        print(line)
        differ, gap = allreduce_gap(got, ref)
        print("  all_reduce of W.grad vs one process's W.grad: %d of %d elements differ "
              "(all steps), largest gap %.3f of the bound"
              % (differ, got["allreduce"].numel(), gap))
        bad = compare(got, ref)
        print("  vs one process over the whole batch: " +
              ("masks, per-sample outputs, input-gradient rows, per-sample weight-gradient "
               "contributions, fixed-order weight gradients, losses, weights bit-identical"
               if not bad else "DIFFERENT: " + ", ".join(bad)))
        failures += bool(bad)
    print("checks passed" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
