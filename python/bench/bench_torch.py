#!/usr/bin/env python3
"""droppath's fused join against PyTorch eager timm-style ``x + drop_path(f)``, in one process.

For each shape (ViT-B 64x197x768, ResNet-50 32x256x56x56) and thread count
(torch.set_num_threads(n) and the library's num_threads = n, both), it times:

  forward           no autograd: timm's drop_path (bernoulli_ mask, div_, multiply) then
                    the add, against droppath.drop_path_add (dp_forward)
  forward+backward  inputs requiring grad, torch.autograd.grad(out, (x, f), g): autograd's
                    Mul/Add backward against dp_backward through the autograd.Function

Runs alternate (torch, droppath, torch, ...) so drift hits both; the median
of each is reported.  Target rows: forward >= 5x, forward+backward >= 3x, with
PASS/MISS.  Ratios compare runs of this process only; absolute times depend
on the machine and its load.

Then the compacted residual block (bench_block.py): a ViT-S pre-norm MLP block's
training step with droppath.drop_path_block against the dense timm-style block
at p = 0.1 ... 0.5, target >= 1.5x at p = 0.4.

Last, for information, the join rows and the block's p = 0.4 rows again with
glibc told to keep freed memory (what a caching allocator gives torch): the
part of the speed-ups that comes from fresh pages on torch's side (droppath's
output pool; the dense block's activations above glibc's mmap threshold)
rather than from fewer passes or fewer samples.

A table for information (no targets in the issues at this level) times the
LayerScale join (droppath.drop_path_add_ls: dp_forward_ls / dp_backward_ls)
against timm's ``x + drop_path(ls(f))`` = ``x + drop_path(f * gamma)`` and the
join fused with the next norm (droppath.drop_path_add_norm: dp_forward_norm /
dp_backward_norm, returning r and y) against ``r = x + drop_path(f)`` then
``torch.nn.functional.layer_norm(r)``, at ViT-B, forward and
forward+backward (gradients of x, f and the parameters).

A last table, for information, repeats the rows with glibc told to keep
freed memory (what a caching allocator gives torch): the part of the speed-up
that comes from droppath's output pool rather than from fewer passes.

Usage: bench_torch.py [--reps N] [--block-reps N] [--threads 1,2] [--p 0.1] [--only join|block]
                      [--quick] [--no-allocator-rows] [--no-fused-rows]
(DROPPATH_LIBRARY names the library; tools/bench-torch.sh builds it first.)
"""

import argparse
import ctypes
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import droppath  # noqa: E402  (the package of this source tree)
import bench_block  # noqa: E402  (next to this file)

SHAPES = {"ViT-B 64x197x768": (64, 197, 768), "ResNet-50 32x256x56x56": (32, 256, 56, 56)}
QUICK_SHAPES = {"ViT-S 8x197x384": (8, 197, 384)}
TARGETS = {"forward": 5.0, "forward+backward": 3.0}


def timm_drop_path(x, drop_prob, training=False, scale_by_keep=True):
    """timm.layers.drop.drop_path, as timm writes it."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _compare(torch_fn, ours_fn, reps):
    for _ in range(2):  # warm-up: page faults of fresh outputs, first-call setup
        torch_fn()
        ours_fn()
    a, b = [], []
    for _ in range(reps):
        a.append(_timed(torch_fn))
        b.append(_timed(ours_fn))
    return statistics.median(a), statistics.median(b)


def bench_shape(shape, threads, p, reps):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    f = torch.randn(shape, generator=g)
    grad = torch.randn(shape, generator=g)
    calls = [0]

    def ours(xx, ff):
        calls[0] += 1
        return droppath.drop_path_add(xx, ff, p, True, seed=1, offset=calls[0],
                                      num_threads=threads)

    rows = []
    with torch.no_grad():
        t_torch, t_ours = _compare(lambda: x + timm_drop_path(f, p, True),
                                   lambda: ours(x, f), reps)
    rows.append(("forward", t_torch, t_ours))

    xg, fg = x.clone().requires_grad_(), f.clone().requires_grad_()

    def torch_step():
        out = xg + timm_drop_path(fg, p, True)
        torch.autograd.grad(out, (xg, fg), grad)

    def ours_step():
        out = ours(xg, fg)
        torch.autograd.grad(out, (xg, fg), grad)

    t_torch, t_ours = _compare(torch_step, ours_step, reps)
    rows.append(("forward+backward", t_torch, t_ours))
    return rows


FUSED_SHAPES = {"ViT-B 64x197x768": (64, 197, 768)}
QUICK_FUSED_SHAPES = {"ViT-S 8x197x384": (8, 197, 384)}


def bench_fused(shape, threads, p, reps):
    """Info rows: the LayerScale join, the join + LayerNorm and the LayerScale join +
    LayerNorm (a DINOv2/CaiT block's ls1, drop_path, add and norm2) against eager torch."""
    g = torch.Generator().manual_seed(0)
    x, f, grad, grad_y = (torch.randn(shape, generator=g) for _ in range(4))
    dim = shape[-1]
    gamma = torch.full((dim,), 1e-5).requires_grad_()
    weight, bias = torch.ones(dim).requires_grad_(), torch.zeros(dim).requires_grad_()
    calls = [0]

    def offset():
        calls[0] += 1
        return calls[0]

    def ls_torch(xx, ff):
        return xx + timm_drop_path(ff * gamma, p, True)

    def ls_ours(xx, ff):
        return droppath.drop_path_add_ls(xx, ff, gamma, p, True, seed=1, offset=offset(),
                                         num_threads=threads)

    def norm_torch(xx, ff):
        r = xx + timm_drop_path(ff, p, True)
        return r, torch.nn.functional.layer_norm(r, (dim,), weight, bias)

    def norm_ours(xx, ff):
        return droppath.drop_path_add_norm(xx, ff, p, weight, bias, True, seed=1,
                                           offset=offset(), num_threads=threads)

    def ls_norm_torch(xx, ff):
        r = xx + timm_drop_path(ff * gamma, p, True)
        return r, torch.nn.functional.layer_norm(r, (dim,), weight, bias)

    def ls_norm_ours(xx, ff):
        return droppath.drop_path_add_norm(xx, ff, p, weight, bias, True, ls_gamma=gamma, seed=1,
                                           offset=offset(), num_threads=threads)

    rows = []
    xg, fg = x.clone().requires_grad_(), f.clone().requires_grad_()
    for name, torch_fn, ours_fn, params, grads in (
            ("LayerScale join", ls_torch, ls_ours, (gamma,), (grad,)),
            ("join + LayerNorm", norm_torch, norm_ours, (weight, bias), (grad, grad_y)),
            ("LayerScale join + LayerNorm", ls_norm_torch, ls_norm_ours, (gamma, weight, bias),
             (grad, grad_y))):
        with torch.no_grad():
            t_torch, t_ours = _compare(lambda: torch_fn(x, f), lambda: ours_fn(x, f), reps)
        rows.append((name + ", forward", t_torch, t_ours))
        inputs = (xg, fg) + params

        def step(fn, inputs=inputs, grads=grads):
            torch.autograd.grad(fn(xg, fg), inputs, grads)

        t_torch, t_ours = _compare(lambda: step(torch_fn), lambda: step(ours_fn), reps)
        rows.append((name + ", forward+backward", t_torch, t_ours))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=11, help="timed runs per join case (default 11)")
    ap.add_argument("--block-reps", type=int, default=7,
                    help="timed runs per compacted-block case (default 7)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--p", type=float, default=0.1, help="join drop probability (default 0.1)")
    ap.add_argument("--only", choices=("join", "block"), help="run one part only")
    ap.add_argument("--quick", action="store_true", help="small shapes, 3 runs: a smoke test")
    ap.add_argument("--no-allocator-rows", action="store_true",
                    help="skip the last tables (torch with glibc keeping freed memory)")
    ap.add_argument("--no-fused-rows", action="store_true",
                    help="skip the LayerScale and join + norm table")
    args = ap.parse_args()
    shapes, reps = (QUICK_SHAPES, 3) if args.quick else (SHAPES, args.reps)
    block_reps = 3 if args.quick else args.block_reps
    thread_counts = [int(t) for t in args.threads.split(",")]

    info = droppath.library_info()
    print("torch %s (BLAS: %s), libdroppath %s (%s, OpenMP %s), %d processors" % (
        torch.__version__, _blas(), info["version"], info["isa"],
        "on" if info["openmp"] else "off", os.cpu_count()))
    print()
    targets = []  # (name, goal, ratio)
    if args.only != "block":
        print("droppath vs PyTorch eager timm-style x + drop_path(f), p = %g, float32, "
              "median of %d alternated runs" % (args.p, reps))
        print()
        for name, n, case, ratio in _table(shapes, thread_counts, args.p, reps):
            targets.append(("%s, %s, t%d" % (case, name, n), TARGETS[case], ratio))
        print()
        if not args.no_fused_rows:
            print("For information, no targets: LayerScale join x + drop_path(f * gamma) and the "
                  "join fused with the next LayerNorm (r, y), without and with LayerScale, against eager torch")
            print()
            _table(QUICK_FUSED_SHAPES if args.quick else FUSED_SHAPES, thread_counts, args.p, reps,
                   bench_fused)
            print()
    if args.only != "join":
        for n, mode, ratio in bench_block.run(thread_counts, block_reps, args.quick, _timed,
                                              timm_drop_path):
            targets.append(("compacted block, p = %.1f, %s, t%d" % (bench_block.TARGET_P, mode, n),
                            bench_block.TARGET, ratio))
        print()
    if args.quick:
        print("--quick: a smoke run at small shapes; the targets are judged at ViT-B and "
              "ResNet-50 (join) and ViT-S (block)")
        return
    print("| target | goal | measured | result |")
    print("|---|---|---|---|")
    missed = 0
    for name, goal, ratio in targets:
        ok = ratio >= goal
        missed += not ok
        print("| %s | >= %.1fx | %.2fx | %s |" % (name, goal, ratio, "PASS" if ok else "MISS"))
    print()
    print("targets: %d of %d met" % (len(targets) - missed, len(targets)))
    if args.no_allocator_rows:
        return
    print()
    print("For information, no targets: rows again with glibc keeping freed memory for reuse "
          "(mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB), as a caching allocator such as "
          "jemalloc or tcmalloc would. Join: torch's outputs then skip the page faults that "
          "droppath's output pool (python/droppath/_pool.py) skips, and the ratios are those of "
          "the passes over memory alone. Block: the dense block's activations above glibc's "
          "32 MiB mmap threshold are then reused too, as the compacted block's smaller ones "
          "already were.")
    if not _glibc_keep_freed_memory():
        print("(mallopt refused: not glibc?)")
        return
    print()
    if args.only != "block":
        _table(shapes, thread_counts, args.p, reps)
        print()
        if not args.no_fused_rows:
            _table(FUSED_SHAPES, thread_counts, args.p, reps, bench_fused)
            print()
    if args.only != "join":
        bench_block.run(thread_counts, block_reps, False, _timed, timm_drop_path,
                        probs=(bench_block.TARGET_P,))


def _table(shapes, thread_counts, p, reps, bench=None):
    bench = bench_shape if bench is None else bench
    print("| shape | threads | case | torch eager ms | droppath ms | speed-up |")
    print("|---|---|---|---|---|---|")
    results = []
    for name, shape in shapes.items():
        for n in thread_counts:
            torch.set_num_threads(n)
            for case, t_torch, t_ours in bench(shape, n, p, reps):
                ratio = t_torch / t_ours
                results.append((name, n, case, ratio))
                print("| %s | %d | %s | %.2f | %.2f | %.2fx |" % (
                    name, n, case, t_torch * 1e3, t_ours * 1e3, ratio))
                sys.stdout.flush()
    return results


def _glibc_keep_freed_memory():
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    try:
        libc = ctypes.CDLL(None)
        return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    except (OSError, AttributeError):
        return False


def _blas():
    """The BLAS libraries this process mapped (Debian picks them through alternatives)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "blas" in line.rsplit("/", 1)[-1]}
    except OSError:
        return "unknown"
    return ", ".join(sorted("/".join(os.path.realpath(q).split("/")[-2:]) for q in paths)) or "none"


if __name__ == "__main__":
    main()
