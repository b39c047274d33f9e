"""The compacted residual block against the dense timm-style block (run by bench_torch.py).

A pre-norm transformer MLP block at ViT-S sizes (B = 32, T = 197, D = 384,
hidden 4D: LayerNorm, Linear D->4D, GELU, Linear 4D->D), one training step:
forward and torch.autograd.grad of the output for x and every parameter.

  dense      x + drop_path(mlp(x)), timm's drop_path: the block runs on all B samples
  row        droppath.drop_path_block(x, mlp, p): the block runs on the kept samples
             (a Bernoulli draw per sample; k varies from call to call)
  exact_k    the same with mode="exact_k": k = max(floor(B*(1-p)), 1) every call

Runs alternate (dense, row, exact_k, dense, ...) so drift hits all three; each
reports its median.  Call i of a compacted mode uses (seed 1, offset i), so the
kept fraction shown (the mean of k/B over the timed calls) is the same on
every run.  1/kept is the speed-up if the block's time were proportional to
its samples and nothing else cost anything.  Target rows: >= 1.5x at p = 0.4.

Speed-ups above 1/kept are noise or glibc: the dense block's hidden
activations (B*T*4D floats, 39 MB at ViT-S) are above glibc's largest mmap
threshold (32 MiB), so each step maps and faults in fresh pages for them,
while the compacted block's smaller ones are reused from the heap.
bench_torch.py's last table shows the p = 0.4 rows again with glibc keeping
freed memory, where that difference is gone.
"""

import ctypes
import statistics
import sys

import torch
from torch import nn

import droppath

VIT_S = (32, 197, 384)
QUICK = (8, 50, 64)
PROBS = (0.1, 0.2, 0.3, 0.4, 0.5)
MODES = ("row", "exact_k")
TARGET_P, TARGET = 0.4, 1.5
SEED = 1


def mlp(dim, hidden=4):
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden * dim), nn.GELU(),
                         nn.Linear(hidden * dim, dim))


def set_blas_threads(n):
    """OpenBLAS keeps its own thread count (torch.set_num_threads does not reach the
    BLAS Debian's torch calls): set it where the mapped BLAS is OpenBLAS.  Returns
    whether it could."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "blas" in line.rsplit("/", 1)[-1]}
    except OSError:
        return False
    done = False
    for path in paths:
        try:
            fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads", None)
        except OSError:
            continue
        if fn is not None:
            fn(n)
            done = True
    return done


def _medians(fns, reps, timed):
    for fn in fns:  # warm-up: first-call setup, the pool's first mappings
        fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, t in zip(fns, times):
            t.append(timed(fn))
    return [statistics.median(t) for t in times]


def bench_p(shape, p, threads, reps, timed, drop_path):
    """(dense s, {mode: (s, kept fraction)}) for one p and thread count."""
    torch.manual_seed(0)
    block = mlp(shape[-1])
    params = list(block.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).requires_grad_()
    grad = torch.randn(shape, generator=g)
    inputs = [x] + params

    def dense():
        out = x + drop_path(block(x), p, True)
        torch.autograd.grad(out, inputs, grad)

    offsets = {m: [0] for m in MODES}

    def compacted(mode):
        def step():
            out = droppath.drop_path_block(x, block, p, seed=SEED, offset=offsets[mode][0],
                                           mode=mode, num_threads=threads)
            offsets[mode][0] += 1
            # allow_unused: a call that keeps no sample does not run the block.
            torch.autograd.grad(out, inputs, grad, allow_unused=True)
        return step

    t = _medians([dense] + [compacted(m) for m in MODES], reps, timed)
    rows = {}
    for mode, tm in zip(MODES, t[1:]):
        kept = [int(droppath.mask(shape[0], p, seed=SEED, offset=o, mode=mode)[0].sum())
                for o in range(1, offsets[mode][0])]  # offset 0 was the warm-up
        rows[mode] = (tm, sum(kept) / (len(kept) * shape[0]))
    return t[0], rows


def run(thread_counts, reps, quick, timed, drop_path, probs=PROBS):
    """Print the table; returns [(threads, mode, speed-up at TARGET_P)] (empty when quick)."""
    shape, probs = (QUICK, (TARGET_P,)) if quick else (VIT_S, probs)
    print("Compacted MLP block (droppath.drop_path_block) vs the dense timm-style block "
          "x + drop_path(mlp(norm(x))), B x T x D = %d x %d x %d, hidden %d, float32, one "
          "training step (forward + grad of x and the parameters), median of %d alternated runs"
          % (shape + (4 * shape[2], reps)))
    print()
    print("| p | threads | mode | kept fraction | dense ms | compacted ms | speed-up | 1/kept |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    blas_unset = False
    for n in thread_counts:
        torch.set_num_threads(n)
        blas = set_blas_threads(n)
        blas_unset |= not blas
        for p in probs:
            t_dense, rows = bench_p(shape, p, n, reps, timed, drop_path)
            for mode, (t, kept) in rows.items():
                print("| %.1f | %d%s | %s | %.3f | %.1f | %.1f | %.2fx | %.2fx |" % (
                    p, n, "" if blas else "*", mode, kept, t_dense * 1e3, t * 1e3,
                    t_dense / t, 1.0 / kept))
                sys.stdout.flush()
                if p == TARGET_P and not quick:
                    results.append((n, mode, t_dense / t))
    if blas_unset:
        print("\n\\* OpenBLAS not found in this process: the BLAS kept its own thread count")
    return results

