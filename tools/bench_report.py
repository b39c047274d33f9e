#!/usr/bin/env python3
"""Summarise dp_bench results: GB/s tables, the performance targets, an SVG plot.

    build-bench/bench/dp_bench --dp_suite=short --benchmark_out=short.json \\
        --benchmark_out_format=json
    python3 tools/bench_report.py short.json --svg bench.svg

Reads Google Benchmark JSON (--benchmark_out, or --benchmark_format=json on
stdout; several files are merged) and prints markdown.  GB/s is 1e9 bytes/s
of minimal traffic (see bench/bench_api.cc).  With repetitions the best one
counts by default (--stat): on a shared machine interference only slows a
run down.  Standard library only.
"""

import argparse
import json
import math
import signal
import statistics
import sys

# In the order of src/kernels/isas.h (a new ISA goes here and in COLORS).
ISA_ORDER = ["scalar", "sse2", "avx2", "avx512", "neon"]
API_OPS = ["fwd", "infer", "droppath", "bwd", "bwdx", "bwdxacc"]
REGION_ORDER = ["L1", "L2", "L3", "DRAM", "tiny", "l2", "small", "vit", "resnet", "large"]
TIME_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
# Half-precision forms of the forward (a 7th name segment; f32 has none), with
# the minimal-traffic time ratio to f32 they would reach if memory-bound.
HALF_FORMS = {"bf16": 0.5, "f16": 0.5, "f32-bf16": 10 / 12, "f32-f16": 10 / 12}
# Counters read from the runs: the API rows' kept fraction and working set, the MLP block's
# paired step times (bench/bench_block.cc).
COUNTERS = ("kept_frac", "ws_bytes", "dense_ms", "compact_ms", "ratio", "cpu_ratio", "spread")
# Name segments Google Benchmark appends; not part of a case's identity.
RUN_OPTION_PREFIXES = ("min_time:", "min_warmup_time:", "iterations:", "repeats:", "threads:")
RUN_OPTION_WORDS = ("real_time", "process_time", "manual_time")


class Case:
    """One benchmark case, repetitions folded into one figure."""

    def __init__(self, key, ratio):
        self.key = key
        self.ratio = ratio
        self.runs = []  # (time_ns, bytes_per_second, counters)
        self.aggregates = {}  # aggregate name -> (time_ns, bytes_per_second)

    def pick(self, stat):
        """(time_ns, GB/s) by the chosen statistic."""
        if self.runs:
            times = [r[0] for r in self.runs]
            rates = [r[1] for r in self.runs]
            if stat == "best":
                return min(times), max(rates) / 1e9
            f = statistics.median if stat == "median" else statistics.mean
            return f(times), f(rates) / 1e9
        for name in (stat, "median", "mean"):
            if name in self.aggregates:
                t, b = self.aggregates[name]
                return t, b / 1e9
        return None

    def unsteady(self, limit=1.25):
        """Whether the repetitions disagree: slowest over fastest above limit (one stall, a busy neighbour)."""
        times = [r[0] for r in self.runs]
        return len(times) > 1 and max(times) > limit * min(times)

    def counter(self, name):
        vals = [r[2][name] for r in self.runs if name in r[2]]
        return statistics.mean(vals) if vals else None


def clean_name(name):
    """Case key without run options, and whether it carries the /ratio mark."""
    segs = [s for s in name.split("/") if s not in RUN_OPTION_WORDS and not s.startswith(RUN_OPTION_PREFIXES)]
    ratio = "ratio" in segs
    return "/".join(s for s in segs if s != "ratio"), ratio


def load(paths):
    cases, skipped, context = {}, [], {}
    for path in paths:
        with open(path, encoding="utf-8") as fp:
            text = fp.read()
        # --benchmark_format=json on stdout may follow other output.
        start = text.find("{")
        data = json.loads(text[start:] if start > 0 else text)
        context.update(data.get("context", {}))
        for b in data.get("benchmarks", []):
            key, ratio = clean_name(b.get("run_name", b["name"]))
            if b.get("error_occurred"):
                skipped.append((key, b.get("error_message", "")))
                continue
            c = cases.get(key)
            if c is None:
                c = cases[key] = Case(key, ratio)
            t = float(b["real_time"]) * TIME_NS.get(b.get("time_unit", "ns"), 1.0)
            bps = float(b.get("bytes_per_second", 0.0))
            if b.get("run_type") == "aggregate":
                c.aggregates[b.get("aggregate_name", "")] = (t, bps)
            else:
                counters = {k: float(v) for k, v in b.items() if k in COUNTERS}
                c.runs.append((t, bps, counters))
    return cases, skipped, context


class Results:
    def __init__(self, cases, stat):
        self.cases = cases
        self.stat = stat
        self.touched = None  # keys read, while a target's figure is computed

    def get(self, key):
        if key in self.cases and self.touched is not None:
            self.touched.append(key)
        return self.peek(key)

    def peek(self, key):
        """get() without counting the case among those behind a figure (for the losers of a choice)."""
        c = self.cases.get(key)
        return c.pick(self.stat) if c else None

    def best_of(self, keys, better):
        """The key whose (time, GB/s) figure `better` prefers; only it counts as behind the figure."""
        found = [(self.peek(k), k) for k in keys]
        found = [(v, k) for v, k in found if v]
        if not found:
            return None
        key = better(found)[1]
        self.get(key)
        return key

    def unsteady_of(self, keys):
        return [k for k in keys if k in self.cases and self.cases[k].unsteady()]

    def gbs(self, key):
        v = self.get(key)
        return v[1] if v else None

    def time(self, key):
        v = self.get(key)
        return v[0] if v else None

    def keys(self, first=None):
        return [k for k in self.cases if first is None or k.split("/")[0] == first]


def fmt(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def fmt_time(ns):
    if ns is None:
        return "—"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns / 1e6:.2f} ms"


def sort_key(values, order):
    return tuple(order.index(v) if v in order else len(order) for v in values)


def threads_of(keys):
    ts = {s for k in keys for s in k.split("/") if s.startswith("t") and s[1:].isdigit()}
    return sorted(ts, key=lambda s: int(s[1:]))


def isas_of(keys, pos):
    found = {k.split("/")[pos] for k in keys if len(k.split("/")) > pos}
    return [i for i in ISA_ORDER if i in found]


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def api_table(res):
    """op/shape/p/place rows x (isa, threads) columns."""
    keys = [k for k in res.cases if k.split("/")[0] in API_OPS and len(k.split("/")) == 6]
    if not keys:
        return None
    isas, ts = isas_of(keys, 1), threads_of(keys)
    rows = {}
    for k in keys:
        op, isa, shp, p, place, t = k.split("/")
        rows.setdefault((op, shp, p, place), {})[(isa, t)] = k
    header = ["op", "shape", "p", "place"] + [f"{i} {t}" for i in isas for t in ts]
    out = []
    for rk in sorted(rows, key=lambda r: sort_key([r[0], r[1]], API_OPS + REGION_ORDER) + (r[2], r[3])):
        mark = any(res.cases[k].ratio for k in rows[rk].values())
        cells = [rk[0] + (" ◆" if mark else ""), rk[1], rk[2], rk[3]]
        cells += [fmt(res.gbs(rows[rk].get((i, t)))) for i in isas for t in ts]
        out.append(cells)
    return table(header, out)


def half_table(res):
    """Half-precision forward rows: GB/s and time ÷ the same f32 case, per (isa, threads)."""
    keys = [k for k in res.cases if k.split("/")[0] in API_OPS and len(k.split("/")) == 7]
    if not keys:
        return None
    isas, ts = isas_of(keys, 1), threads_of(keys)
    rows = {}
    for k in keys:
        op, isa, shp, p, place, t, form = k.split("/")
        rows.setdefault((op, shp, p, place, form), {})[(isa, t)] = k
    forms = list(HALF_FORMS)
    out = []
    for rk in sorted(rows, key=lambda r: sort_key([r[0], r[1], r[4]], API_OPS + REGION_ORDER + forms) + (r[2], r[3])):
        mark = any(res.cases[k].ratio for k in rows[rk].values())
        cells = [rk[0] + (" ◆" if mark else ""), rk[1], rk[2], rk[3], rk[4]]
        for i in isas:
            for t in ts:
                k = rows[rk].get((i, t))
                r = ratio(res.time(k), res.time(k.rsplit("/", 1)[0])) if k else None
                cells.append(fmt(res.gbs(k)) + ("" if r is None else f" ({r:.2f}×)"))
        out.append(cells)
    return table(["op", "shape", "p", "place", "dtypes"] + [f"{i} {t}" for i in isas for t in ts], out)


def baseline_table(res):
    keys = [k for k in res.cases if k.split("/")[0] in ("triad", "memcpy", "naive")]  # forkjoin: in the notes
    if not keys:
        return None
    ts = threads_of(keys)
    rows = {}
    for k in keys:
        s = k.split("/")
        rows.setdefault(tuple(s[:-1]), {})[s[-1]] = k
    out = []
    for rk in sorted(rows, key=lambda r: (r[0], r[1], sort_key([r[2]], REGION_ORDER), r[3:])):
        mark = any(res.cases[k].ratio for k in rows[rk].values())
        cells = ["/".join(rk) + (" ◆" if mark else "")]
        cells += [fmt(res.gbs(rows[rk].get(t))) for t in ts]
        out.append(cells)
    return table(["baseline"] + ts, out)


def kernel_table(res):
    keys = [k for k in res.keys("kern") if len(k.split("/")) == 5]
    if not keys:
        return None
    isas = isas_of(keys, 2)
    rows = {}
    for k in keys:
        _, fam, isa, size, store = k.split("/")
        rows.setdefault((fam, size, store), {})[isa] = k
    out = []
    for rk in sorted(rows, key=lambda r: (r[0], sort_key([r[1]], REGION_ORDER), r[2])):
        out.append(list(rk) + [fmt(res.gbs(rows[rk].get(i))) for i in isas])
    return table(["kernel", "size", "stores"] + isas, out)


def store_table(res):
    """The store-choice rows: each choice's time and the regret, per size."""
    keys = [k for k in res.keys("store") if len(k.split("/")) == 5]
    if not keys:
        return None
    rows = {}
    for k in keys:
        _, use, size, mode, t = k.split("/")
        rows.setdefault((t, use, size), {})[mode] = k
    out = []
    for rk in sorted(rows, key=lambda r: (r[0], r[1], int(r[2][:-3]) if r[2][:-3].isdigit() else 0)):
        ts = {m: res.peek(k) for m, k in rows[rk].items()}
        ts = {m: v[0] for m, v in ts.items() if v}
        forced = [ts[m] for m in ("stream", "normal") if m in ts]
        regret = ts["auto"] / min(forced) if "auto" in ts and len(forced) == 2 else None
        cells = [rk[0], rk[1], rk[2]] + [fmt_time(ts.get(m)) for m in ("auto", "stream", "normal")]
        cells.append("—" if regret is None else f"{regret:.2f}×")
        out.append(cells)
    return table(["threads", "case", "output", "auto", "stream", "normal", "regret"], out)


def tiny_table(res):
    keys = [k for k in res.keys("tiny") if len(k.split("/")) == 5]
    if not keys:
        return None
    isas = isas_of(keys, 2)
    rows = {}
    for k in keys:
        _, how, isa, p, _t = k.split("/")
        rows.setdefault((how, p), {})[isa] = k
    out = []
    for rk in sorted(rows):
        cells = [rk[0], rk[1]]
        if "-" in rows[rk]:  # no ISA and no data: dp_mask alone, time only
            cells += [fmt_time(res.time(rows[rk]["-"]))] + [""] * (len(isas) - 1)
        for i in isas if "-" not in rows[rk] else []:
            k = rows[rk].get(i)
            cells.append(f"{fmt(res.gbs(k))} ({fmt_time(res.time(k))})" if k else "—")
        out.append(cells)
    return table(["tiny B=8 D=384", "p"] + [f"{i} GB/s (time)" for i in isas], out)


# ---------------------------------------------------------------- targets

def best_triad(res, region, t):
    key = res.best_of([f"triad/{var}/{region}/{t}" for var in ("base", "native")], lambda f: max(f, key=lambda e: e[0][1]))
    return res.gbs(key) if key else None


def ratio(a, b):
    return a / b if a and b else None


STORE_MIB = [1, 4, 16, 64, 256, 1024]


def targets(res):
    """Rows of (label, goal text, threads, {isa: (value, unsteady keys)}, passes(value))."""
    api = [k for k in res.cases if k.split("/")[0] in API_OPS or k.startswith(("tiny/", "norm/", "ls/", "block/"))]
    found = {k.split("/")[1] if not k.startswith(("tiny/", "norm/", "ls/")) else k.split("/")[2] for k in api}
    isas = [i for i in ISA_ORDER if i in found]
    ts = threads_of(res.cases)
    ge = lambda goal: (lambda v: v >= goal)
    le = lambda goal: (lambda v: v <= goal)

    def cell(fn):
        """fn's figure, and the cases behind it whose repetitions disagree."""
        res.touched = []
        v = fn()
        keys, res.touched = res.touched, None
        return v, res.unsteady_of(keys)

    def per_isa(fn):
        return {i: cell(lambda i=i: fn(i)) for i in isas}

    rows = []
    for op, what in (("fwd", "fwd"), ("bwdx", "bwd (grad_f + grad_x)")):
        for t in ts:
            vals = per_isa(lambda i: ratio(res.gbs(f"{op}/{i}/large/p0/oop/{t}"), best_triad(res, "large", t)))
            rows.append((f"{what} ÷ triad, large oop p=0", "≥ 1.10", t, vals, ge(1.1)))
    # The machine's limit for the same traffic: the triad's and the backward's
    # shapes with non-temporal stores (bench/bench_store.cc), as a time ratio.
    for op, base, what in (("fwd", "triad_nt", "fwd"), ("bwdx", "split_nt", "bwd (grad_f + grad_x)")):
        for t in ts:
            vals = per_isa(lambda i: ratio(best_nt(res, base, t), res.time(f"{op}/{i}/large/p0/oop/{t}")))
            rows.append((f"{what} ÷ {base} (same traffic, streaming stores), large", "≥ 0.95", t, vals, ge(0.95)))
    for shp, label in (("vit", "ViT-B"), ("resnet", "ResNet-50")):
        for t in ts:
            vals = per_isa(lambda i: ratio(res.gbs(f"fwd/{i}/{shp}/p0.1/oop/{t}"), res.gbs(f"naive/base/{shp}/p0.1/oop/{t}")))
            rows.append((f"fwd ÷ naive, {label} oop p=0.1", "≥ 1.60", t, vals, ge(1.6)))
    # Fused residual + norm (bench/bench_norm.cc) over the same work in separate
    # passes, time ratios: the pass count bounds them at 1.25 (forward: 5 tensor
    # passes over 4) and 1.20 (backward: 6 over 5).
    for shp, label in (("vit", "ViT-B"), ("dram", "64×512×1024")):
        for t in ts:
            vals = per_isa(lambda i: ratio(res.time(f"norm/sep/{i}/{shp}/{t}"), res.time(f"norm/fused/{i}/{shp}/{t}")))
            rows.append((f"norm fwd fused ÷ (dp_forward + separate norm pass), {label}", "≥ 1.20", t, vals, ge(1.2)))
            vals = per_isa(lambda i: ratio(res.time(f"norm/bwdsep/{i}/{shp}/{t}"), res.time(f"norm/bwdfused/{i}/{shp}/{t}")))
            rows.append((f"norm bwd fused ÷ (separate norm bwd + dp_backward), {label}", "≥ 1.20", t, vals, ge(1.2)))
            # With LayerScale: dp_backward_norm then dp_backward_ls for grad_ls_gamma is
            # 8 tensor passes, the fused dp_backward_norm_ls 6 (bound 1.33).
            vals = per_isa(lambda i: ratio(res.time(f"norm/lsbwdsep/{i}/{shp}/{t}"), res.time(f"norm/lsbwdfused/{i}/{shp}/{t}")))
            rows.append((f"norm+LayerScale bwd fused ÷ (norm bwd + dp_backward_ls for grad_ls_gamma), {label}", "≥ 1.20", t,
                         vals, ge(1.2)))
            vals = per_isa(lambda i: ratio(res.time(f"norm/sepc/{i}/{shp}/{t}"), res.time(f"norm/fused/{i}/{shp}/{t}")))
            rows.append((f"reference: norm fwd fused ÷ (dp_forward + plain C LayerNorm -O3 -march=native), {label}", "—",
                         t, vals, None))
    # LayerScale in the join (bench/bench_layerscale.cc): the fused call
    # against the separate passes a caller makes without it, as a speed-up.
    for shp, label in (("vit", "ViT-B"), ("convnext", "ConvNeXt-T stage 1")):
        for op, goal in (("fwd", 1.5), ("bwd", None)):
            for t in ts:
                vals = per_isa(lambda i: ratio(res.time(f"ls/split/{i}/{shp}/{op}/{t}"),
                                               res.time(f"ls/fused/{i}/{shp}/{op}/{t}")))
                what = "fwd, x + drop_path(gamma*f)" if op == "fwd" else "bwd, grad_f + grad_x + grad_gamma"
                rows.append((f"LayerScale {what}: separate passes ÷ fused (time), {label} p=0.1", "≥ 1.50" if goal else "—",
                             t, vals, ge(goal) if goal else None))
    for t in ts:
        vals = per_isa(lambda i: ratio(res.time(f"fwd/{i}/large/p0/inplace/{t}"), res.time(f"fwd/{i}/large/p0.5/inplace/{t}")))
        rows.append(("in-place p=0.5 speedup over p=0, large", "≥ 1.80", t, vals, ge(1.8)))
    for form, ideal in HALF_FORMS.items():
        for t in ts:
            base = "fwd/{}/large/p0/oop/" + t
            vals = per_isa(lambda i: ratio(res.time(base.format(i) + "/" + form), res.time(base.format(i))))
            label = f"{form} ÷ f32 time, large fused fwd oop p=0"
            if form == "bf16":
                rows.append((label, "≤ 0.55", t, vals, le(0.55)))
            else:  # informational: the byte ratio is what a memory-bound kernel reaches
                rows.append((f"{label} (bytes {ideal:.2f})", "—", t, vals, None))
    # Store choice: the library's pick over the better forced one, for the
    # forward alone and followed by a reader of its output (widest ISA).
    for t in ts:
        for use in ("alone", "consumer"):
            for mib in STORE_MIB:
                key = f"store/{use}/{mib}MiB/{{}}/{t}"

                def regret(i, key=key):
                    keys = [key.format("stream"), key.format("normal")]
                    if not all(res.peek(k) for k in keys):
                        return None
                    better = res.best_of(keys, lambda f: min(f, key=lambda e: e[0][0]))
                    return ratio(res.time(key.format("auto")), res.time(better))

                v = cell(lambda: regret(None))
                if v[0] is not None and isas:  # measured on the widest ISA only
                    rows.append((f"store regret, {use}, {mib} MiB out: auto ÷ better forced", "≤ 1.05", t,
                                 {isas[-1]: v}, le(1.05)))
    # direct: the ISA's mask kernel and forward kernel called by hand, what
    # the API does minus validation, dispatch and the row walk.
    vals = per_isa(lambda i: ratio(res.time(f"tiny/api/{i}/p0.1/t1"), res.time(f"tiny/direct/{i}/p0.1/t1")))
    rows.append(("tiny API ÷ direct kernels (time), B=8 D=384", "≤ 1.20", "t1", vals, le(1.2)))
    # Sample compaction on the MLP block: the step's time follows the kept fraction.  The row's own
    # rounds stand in for repetitions: a dense spread above 1.25 marks it unsteady.
    for b in block_rows(res):
        goal = block_goal(b)
        rows.append((f"MLP block step, compacted ÷ dense, {b.mode} p={b.p} (kept {b.kept:.3f})", f"≤ {goal:.2f}", b.t,
                     {b.isa: (b.ratio, [b.key] if b.unsteady else [])}, le(goal)))
    # Not a target: against the row calls alone, scales precomputed, so
    # the mask's Philox latency is in the numerator only.
    vals = per_isa(lambda i: ratio(res.time(f"tiny/api/{i}/p0.1/t1"), res.time(f"tiny/rows/{i}/p0.1/t1")))
    rows.append(("reference: tiny API ÷ row calls without the mask", "—", "t1", vals, None))
    # The cost of the caller's floating-point state: every call switches to
    # round-to-nearest and back when the caller rounds upward.
    vals = per_isa(lambda i: ratio(res.time(f"tiny/api-fpstate/{i}/p0.1/t1"), res.time(f"tiny/api/{i}/p0.1/t1")))
    rows.append(("reference: tiny API, caller rounding upward ÷ default state", "—", "t1", vals, None))
    if len(ts) > 1:
        tn = ts[-1]
        for op, what in (("fwd", "fwd"), ("bwdx", "bwd")):
            vals = per_isa(lambda i: ratio(res.gbs(f"{op}/{i}/l2/p0/oop/{tn}"), res.gbs(f"{op}/{i}/l2/p0/oop/t1")))
            rows.append((f"{what} {tn} ÷ t1, L2-resident (16×4096)", "≥ 1.80", tn, vals, ge(1.8)))
            # The most a call can reach when its t1 work splits evenly and
            # the threads cost only their fork + join: with this run's
            # OpenMP empty region, and with one bare core-to-core round trip
            # (the floor for any thread pool).
            for floor_key, floor_what in ((f"forkjoin/omp/none/{tn}", "OpenMP fork/join"),
                                          ("pingpong/atomic/none/t2", "one core-to-core round trip")):
                cost = res.time(floor_key)
                if not cost or tn != "t2":
                    continue

                def bound(i):
                    t1 = res.time(f"{op}/{i}/l2/p0/oop/t1")
                    return t1 / (t1 / 2 + cost) if t1 else None

                rows.append((f"bound: {what} t1 ÷ (t1/2 + {floor_what}, {cost:.0f} ns)", "—", tn, per_isa(bound), None))
        # Not targets: the same scaling for plain OpenMP loops, to tell the
        # library's share from the runtime's and the machine's.
        for var in ("base", "native"):
            v = cell(lambda var=var: ratio(res.gbs(f"triad/{var}/l2/{tn}"), res.gbs(f"triad/{var}/l2/t1")))
            if v[0] is not None:
                rows.append((f"reference: triad/{var} {tn} ÷ t1, L2-resident", "—", tn, {i: v for i in isas}, None))
    return isas, rows


def best_nt(res, base, t):
    key = res.best_of([f"{base}/{var}/large/{t}" for var in ("native", "base")], lambda f: min(f, key=lambda e: e[0][0]))
    return res.time(key) if key else None


def targets_table(res):
    isas, rows = targets(res)
    out, met, total, excluded, unsteady = [], 0, 0, 0, []
    for label, goal, t, vals, ok in rows:
        if all(v[0] is None for v in vals.values()):
            continue  # the run did not include these cases
        cells = [label, goal, t]
        for i in isas:
            v, shaky = vals.get(i, (None, []))
            if v is None:
                cells.append("—")
                continue
            if ok is None:
                cells.append(f"{v:.2f}×")
            elif shaky and not ok(v):
                # A MISS resting on repetitions that disagree says more about
                # the machine than the code: flag it, do not count it.
                cells.append(f"{v:.2f}× UNSTEADY")
                unsteady += shaky
            else:
                cells.append(f"{v:.2f}× {'PASS' if ok(v) else 'MISS'}")
        out.append(cells)
        if ok is not None and isas and vals.get(isas[-1], (None, []))[0] is not None:
            v, shaky = vals[isas[-1]]
            if ok(v) or not shaky:
                total += 1
                met += ok(v)
            else:
                excluded += 1
    text = table(["target", "goal", "threads"] + isas, out)
    if total or excluded:
        text += f"\n\nWidest ISA ({isas[-1]}): {met}/{total} targets met"
        text += f", {excluded} more UNSTEADY (not counted)." if excluded else "."
    if unsteady:
        text += ("\n\nUNSTEADY: the repetitions of a case behind the figure (an MLP block row: the rounds of one "
                 "mask) disagree by more than 25% "
                 f"(rerun it): {', '.join(sorted(set(unsteady)))}.")
    return text


def kept_note(res):
    notes = []
    for k in res.keys("forkjoin"):
        notes.append(f"OpenMP fork/join of an empty parallel region ({k.split('/')[-1]}): {fmt_time(res.time(k))}")
    for k in res.keys("pingpong"):
        notes.append(f"core-to-core round trip of one cache line, two spinning threads: {fmt_time(res.time(k))}")
    for k in res.keys("fwd"):
        if k.startswith("fwd/") and "/large/p0.5/inplace/" in k:
            kf = res.cases[k].counter("kept_frac")
            if kf:
                notes.append(f"{k}: kept {kf:.3f} (ideal speedup {1 / kf:.2f}×)")
    return notes


# ---------------------------------------------------------------- sample compaction (MLP block)

class BlockRow:
    """One MLP-block row: its paired dense and compacted step times (bench/bench_block.cc)."""

    def __init__(self, key, case):
        _, self.isa, self.mode, p, self.t = key.split("/")
        self.key, self.p = key, p[1:]
        self.kept = case.counter("kept_frac") or 0.0
        self.dense_ms, self.compact_ms = case.counter("dense_ms"), case.counter("compact_ms")
        self.ratio, self.cpu_ratio = case.counter("ratio"), case.counter("cpu_ratio")
        self.unsteady = (case.counter("spread") or 1.0) > 1.25


def block_rows(res):
    keys = [k for k in res.keys("block") if len(k.split("/")) == 5 and res.cases[k].counter("ratio") is not None]
    rows = [BlockRow(k, res.cases[k]) for k in keys]
    return sorted(rows, key=lambda b: (int(b.t[1:]), float(b.p), b.mode != "row"))


BLOCK_MASKS = 5  # kMasks in bench/bench_block.cc


def block_goal(b):
    """Issue 11's targets: the kept fraction plus 0.05 at p >= 0.1, no more than 3% slower at p = 0."""
    return 1.03 if float(b.p) == 0 else b.kept + 0.05


def block_fit(points):
    """Least squares ratio = a*kept + c over (kept, ratio) points; None when kept does not vary."""
    n = len(points)
    if n < 2:
        return None
    mk = sum(k for k, _ in points) / n
    mr = sum(r for _, r in points) / n
    sxx = sum((k - mk) ** 2 for k, _ in points)
    if sxx <= 0:
        return None
    a = sum((k - mk) * (r - mr) for k, r in points) / sxx
    return a, mr - a * mk


def block_fit_note(label, pts):
    """One line on the fitted ratio = a*kept + c: compaction's fixed cost and the break-even drop rate."""
    if len(pts) < 4:  # a line through fewer rows says nothing about the break-even
        return None
    f = block_fit(pts)
    if not f:
        return None
    a, c = f
    overhead = a + c - 1  # the fitted ratio at kept = 1, minus 1
    line = (f"{label}: compacted ÷ dense ≈ {a:.3f}·kept {c:+.3f} (least squares, {len(pts)} rows); at kept = 1 "
            f"the fit gives {a + c:.3f} (compaction's fixed cost {overhead * 100:+.1f}%)")
    if a > 0 and overhead > 0:
        line += f", so compaction pays above p ≈ {overhead / a:.3f} (break-even: kept = {(1 - c) / a:.3f})"
    else:
        line += ", so it pays at any p > 0 within this run's noise"
    return line + "."


def block_table(res):
    rows = block_rows(res)
    if not rows:
        return None
    out, fits, cpu_fit = [], {}, []
    for b in rows:
        goal = block_goal(b)
        verdict = "PASS" if b.ratio <= goal else "UNSTEADY" if b.unsteady else "MISS"
        cpu = b.cpu_ratio if b.t == "t1" else None
        out.append([b.t, b.p, b.mode, f"{b.kept:.3f}", fmt_time(b.dense_ms * 1e6 / BLOCK_MASKS),
                    fmt_time(b.compact_ms * 1e6 / BLOCK_MASKS), fmt(b.ratio, 3), f"≤ {goal:.2f}", verdict, fmt(cpu, 3)])
        fits.setdefault(b.t, []).append((b.kept, b.ratio))
        if cpu is not None:
            cpu_fit.append((b.kept, cpu))
    text = table(["threads", "p", "mask", "kept", "dense step", "compacted step", "compacted ÷ dense", "goal", "",
                  "CPU-time ratio"], out)
    notes = ["One training step (forward + backward) of a pre-norm MLP block at ViT-S sizes (B=32, T=197, D=384), "
             f"dense and compacted back to back on each of {BLOCK_MASKS} masks, each path's fastest of its rounds "
             "per mask; step = the mean over the masks of those times; kept = the fraction of samples the masks "
             "kept. CPU-time ratio (one thread): the same ratio of the calling thread's CPU time, which is all "
             "the work there and leaves out time spent waiting for a processor (a cross-check on a busy machine)."]
    for t, pts in sorted(fits.items(), key=lambda e: int(e[0][1:])):
        notes.append(block_fit_note(t, pts))
    notes.append(block_fit_note("t1, CPU time", cpu_fit))
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes if n)


# ---------------------------------------------------------------- SVG

COLORS = {"scalar": "#8c564b", "sse2": "#1f77b4", "avx2": "#2ca02c", "avx512": "#d62728", "neon": "#9467bd"}


def plot_series(res, family):
    """{label: (style, [(ws_bytes, GB/s, size name)])}, kernel rows if any, else API rows."""
    series = {}

    def add(label, style, key, size):
        c = res.cases.get(key)
        gbs = res.gbs(key)
        ws = c.counter("ws_bytes") if c else None
        if gbs and ws:
            series.setdefault(label, (style, []))[1].append((ws, gbs, size))

    kern = [k for k in res.keys("kern") if k.split("/")[1].startswith(family + "_f32")]
    if kern:
        for k in kern:
            _, _, isa, size, store = k.split("/")
            add(f"{isa} {store}", (COLORS.get(isa, "#333"), "" if store == "store" else "6,4", 2.0), k, size)
        baselines = [k for k in res.cases if k.split("/")[0] in ("triad", "memcpy") and k.endswith("/t1")
                     and k.split("/")[2] in ("L1", "L2", "L3", "DRAM")]
        title = f"{family} kernels (f32, 1 thread) vs baselines"
    else:
        for k in res.keys(family):
            s = k.split("/")
            if len(s) == 6 and s[3] == "p0" and s[4] == "oop" and s[5] == "t1":
                add(s[1], (COLORS.get(s[1], "#333"), "", 2.0), k, s[2])
        baselines = [k for k in res.cases if k.split("/")[0] in ("triad", "memcpy") and k.endswith("/t1")
                     and k.split("/")[2] in REGION_ORDER[5:]]
        title = f"{family} through the API (p=0, out-of-place, 1 thread) vs baselines"
    base_style = {"triad/base": ("#000000", "2,3", 1.5), "triad/native": ("#000000", "8,3", 1.5),
                  "memcpy/libc": ("#ff7f0e", "1,0", 1.2)}
    for k in baselines:
        s = k.split("/")
        name = f"{s[0]}/{s[1]}"
        add(name, base_style.get(name, ("#777", "3,3", 1.0)), k, s[2])
    for _, pts in series.values():
        pts.sort()
    return title, series


def human_bytes(v):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= div:
            return f"{v / div:.0f} {unit}" if v / div >= 10 else f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def nice_step(span, n=6):
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def y_ticks(ys, log):
    """(tick values, value -> fraction of the plot height)."""
    if log:
        lo, hi = math.log10(min(ys) / 1.15), math.log10(max(ys) * 1.15)
        ticks = [m * 10 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)
                 if lo <= math.log10(m * 10 ** e) <= hi]
        return ticks, lambda v: (math.log10(v) - lo) / (hi - lo)
    step = nice_step(max(ys) * 1.05)
    top = step * math.ceil(max(ys) * 1.05 / step)
    return [i * step for i in range(int(round(top / step)) + 1)], lambda v: v / top


def write_svg(path, title, series, log_y=True):
    W, H, L, R, T, B = 900, 480, 70, 190, 40, 60
    pw, ph = W - L - R, H - T - B
    xs = [p[0] for _, pts in series.values() for p in pts]
    ys = [p[1] for _, pts in series.values() for p in pts]
    lx0, lx1 = math.log2(min(xs)) - 0.5, math.log2(max(xs)) + 0.5
    yt, yfrac = y_ticks(ys, log_y)
    X = lambda v: L + (math.log2(v) - lx0) / (lx1 - lx0) * pw
    Y = lambda v: T + ph - yfrac(v) * ph
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
         f'<text x="{L + pw / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>']
    for y in yt:
        o.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{L + pw}" y2="{Y(y):.1f}" stroke="#e5e5e5"/>')
        o.append(f'<text x="{L - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    # One tick per power of 4 bytes, plus the size-class names at their points.
    e = math.ceil(lx0 / 2) * 2
    while e <= lx1:
        x = L + (e - lx0) / (lx1 - lx0) * pw
        o.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#f0f0f0"/>')
        o.append(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{human_bytes(2 ** e)}</text>')
        e += 2
    names = {}
    for _, pts in series.values():
        for ws, _, size in pts:
            names.setdefault(size, ws)
    for size, ws in names.items():
        o.append(f'<text x="{X(ws):.1f}" y="{T + ph + 32}" text-anchor="middle" fill="#555">{esc(size)}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 8}" text-anchor="middle">working set (bytes touched per call)</text>')
    o.append(f'<text x="16" y="{T + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {T + ph / 2})">'
             f'GB/s (minimal traffic{", log scale" if log_y else ""})</text>')
    def legend_order(label):
        head = label.split(" ")[0]
        return (0, ISA_ORDER.index(head), label) if head in ISA_ORDER else (1, 0, label)

    for n, label in enumerate(sorted(series, key=legend_order)):
        (color, dash, width), pts = series[label]
        d = " ".join(f"{X(ws):.1f},{Y(g):.1f}" for ws, g, _ in pts)
        o.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                 f'stroke-dasharray="{dash}"/>')
        for ws, g, _ in pts:
            o.append(f'<circle cx="{X(ws):.1f}" cy="{Y(g):.1f}" r="2.5" fill="{color}"/>')
        ly = T + 10 + 18 * n
        o.append(f'<line x1="{L + pw + 12}" y1="{ly}" x2="{L + pw + 42}" y2="{ly}" stroke="{color}" '
                 f'stroke-width="{width}" stroke-dasharray="{dash}"/>')
        o.append(f'<text x="{L + pw + 48}" y="{ly + 4}">{esc(label)}</text>')
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as fp:
        fp.write("\n".join(o) + "\n")


def write_block_svg(path, res):
    """Compacted ÷ dense step time against the kept fraction, one series per (threads, mask), with
    the ideal (ratio = kept) and the goal (kept + 0.05) as lines.  False when there are no block rows."""
    series = {}
    for b in block_rows(res):
        series.setdefault((b.t, b.mode), []).append((b.kept, b.ratio, b.p))
    if not series:
        return False
    W, H, L, R, T, B = 760, 480, 70, 190, 40, 60
    pw, ph = W - L - R, H - T - B
    pts = [p for s in series.values() for p in s]
    x0, x1 = math.floor(min(p[0] for p in pts) * 10 - 0.5) / 10, 1.0
    y0, y1 = min(x0, math.floor(min(p[1] for p in pts) * 10) / 10), max(1.1, math.ceil(max(p[1] for p in pts) * 10) / 10)
    X = lambda v: L + (v - x0) / (x1 - x0) * pw
    Y = lambda v: T + ph - (v - y0) / (y1 - y0) * ph
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
         f'<text x="{L + pw / 2}" y="22" text-anchor="middle" font-size="15">'
         'MLP block training step (ViT-S), compacted ÷ dense</text>']
    for i in range(int(round((y1 - y0) * 10)) + 1):
        y = y0 + i / 10
        o.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{L + pw}" y2="{Y(y):.1f}" stroke="#e5e5e5"/>')
        o.append(f'<text x="{L - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
    for i in range(int(round((x1 - x0) * 10)) + 1):
        x = x0 + i / 10
        o.append(f'<line x1="{X(x):.1f}" y1="{T}" x2="{X(x):.1f}" y2="{T + ph}" stroke="#f0f0f0"/>')
        o.append(f'<text x="{X(x):.1f}" y="{T + ph + 16}" text-anchor="middle">{x:.1f}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 18}" text-anchor="middle">kept fraction of samples (p = 1 − kept '
             'on average)</text>')
    o.append(f'<text x="16" y="{T + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {T + ph / 2})">'
             'step time, compacted ÷ dense</text>')
    lines = [("ideal: ratio = kept", 0.0, "#000000", "4,3"), ("goal: kept + 0.05", 0.05, "#999999", "1,3")]
    for label, off, color, dash in lines:
        o.append(f'<line x1="{X(x0):.1f}" y1="{Y(x0 + off):.1f}" x2="{X(x1):.1f}" y2="{Y(x1 + off):.1f}" '
                 f'stroke="{color}" stroke-dasharray="{dash}"/>')
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    legend = [(label, color, dash, None) for label, _, color, dash in lines]
    for n, ((t, mode), sp) in enumerate(sorted(series.items(), key=lambda e: (int(e[0][0][1:]), e[0][1]))):
        color = colors[n % len(colors)]
        sp.sort()
        d = " ".join(f"{X(k):.1f},{Y(r):.1f}" for k, r, _ in sp)
        o.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for k, r, _ in sp:
            shape = (f'<circle cx="{X(k):.1f}" cy="{Y(r):.1f}" r="3" fill="{color}"/>' if mode == "row" else
                     f'<rect x="{X(k) - 3:.1f}" y="{Y(r) - 3:.1f}" width="6" height="6" fill="{color}"/>')
            o.append(shape)
        legend.append((f"{mode} mask, {t[1:]} thread{'s' if t != 't1' else ''}", color, "", mode))
    for n, (label, color, dash, mode) in enumerate(legend):
        ly = T + 10 + 18 * n
        o.append(f'<line x1="{L + pw + 12}" y1="{ly}" x2="{L + pw + 42}" y2="{ly}" stroke="{color}" '
                 f'stroke-width="1.5" stroke-dasharray="{dash}"/>')
        o.append(f'<text x="{L + pw + 48}" y="{ly + 4}">{esc(label)}</text>')
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as fp:
        fp.write("\n".join(o) + "\n")
    return True


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="Google Benchmark JSON output file(s)")
    ap.add_argument("--svg", help="write a GB/s-vs-size plot here")
    ap.add_argument("--plot-family", default="fwd", choices=["fwd", "scale", "bwd"],
                    help="kernel family of the plot (default fwd)")
    ap.add_argument("--linear-y", action="store_true", help="linear GB/s axis (default: logarithmic)")
    ap.add_argument("--block-svg", help="write the sample-compaction plot (MLP block rows) here")
    ap.add_argument("--stat", default="best", choices=["best", "median", "mean"],
                    help="how repetitions fold into one figure (default best)")
    args = ap.parse_args(argv)

    cases, skipped, ctx = load(args.json)
    if not cases:
        print("no benchmark results found", file=sys.stderr)
        return 1
    res = Results(cases, args.stat)
    reps = max(len(c.runs) for c in cases.values())
    print("# libdroppath benchmark report\n")
    info = [f"{k}={ctx[k]}" for k in ("host_name", "num_cpus", "mhz_per_cpu", "dp_version", "dp_suite",
                                      "dp_best_isa", "dp_threads_all") if k in ctx]
    print(f"{', '.join(info)}; {len(cases)} cases, {reps} repetition(s), statistic: {args.stat}.")
    print("GB/s = 1e9 bytes/s of minimal traffic; ◆ = row feeds a target.\n")
    print("## Targets\n")
    print(targets_table(res))
    for n in kept_note(res):
        print(f"- {n}")
    for title, fn in (("Operations through the API (GB/s)", api_table),
                      ("Half-precision storage (GB/s, time ÷ f32)", half_table), ("Baselines (GB/s)", baseline_table),
                      ("Store choice: fused forward, widest ISA (time per call)", store_table),
                      ("Tiny call", tiny_table), ("Kernels, one call, one thread (GB/s)", kernel_table),
                      ("Sample compaction: MLP block training step", block_table)):
        t = fn(res)
        if t:
            print(f"\n## {title}\n\n{t}")
    if skipped:
        print(f"\n{len(skipped)} case(s) skipped: " +
              "; ".join(sorted({f'{m}' for _, m in skipped})) + ".")
    if args.svg:
        title, series = plot_series(res, args.plot_family)
        if series:
            write_svg(args.svg, title, series, log_y=not args.linear_y)
            print(f"\nPlot: {args.svg}")
        elif write_block_svg(args.svg, res):  # a block-only run: the compaction plot
            print(f"\nPlot: {args.svg}")
        else:
            print("\nno rows to plot", file=sys.stderr)
    if args.block_svg:
        if write_block_svg(args.block_svg, res):
            print(f"Plot: {args.block_svg}")
        else:
            print("no MLP block rows to plot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):  # quiet under `| head`
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
