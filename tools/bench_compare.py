#!/usr/bin/env python3
"""Before/after speed check of two dp_bench binaries.

Runs the two binaries alternately (A B B A ...) on the same benchmark filter,
so slow drifts of the machine and the order within a pair hit both alike, and prints for every row the
median over the alternations of time(after) / time(before): below 1 is
faster.  Rows outside the tolerance (default +-3%) are marked.

  tools/bench_compare.py BEFORE/dp_bench AFTER/dp_bench \\
      --filter 'kern/.*/(L1|L2)/|tiny/' --runs 5 [--min-time 0.05] [--out table.md]

Each run is one dp_bench process per binary with --benchmark_repetitions=1;
only rows both binaries produce are compared.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(binary, flt, min_time, extra):
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [binary, "--dp_suite=full", f"--benchmark_filter={flt}", f"--benchmark_min_time={min_time}",
           "--benchmark_repetitions=1", f"--benchmark_out={path}", "--benchmark_out_format=json"] + extra
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(path) as fp:
        text = fp.read()
    os.unlink(path)
    rows = json.loads(text)["benchmarks"] if text.strip() else []  # no row matched: no JSON at all
    return {r["name"]: r["real_time"] for r in rows if not r.get("error_occurred") and r.get("run_type") != "aggregate"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--filter", required=True, help="Google Benchmark filter (regex)")
    ap.add_argument("--runs", type=int, default=5, help="alternations (default 5)")
    ap.add_argument("--min-time", default="0.05", help="--benchmark_min_time per row (default 0.05)")
    ap.add_argument("--tolerance", type=float, default=0.03, help="flag rows off by more (default 0.03)")
    ap.add_argument("--out", help="also write the table (Markdown) here")
    ap.add_argument("extra", nargs="*", help="more dp_bench flags, after --")
    a = ap.parse_args()

    ratios = {}
    times = {}
    for i in range(a.runs):
        # A B B A ...: whichever runs second in a pair meets the machine as the first left it.
        if i % 2 == 0:
            before = run(a.before, a.filter, a.min_time, a.extra)
            after = run(a.after, a.filter, a.min_time, a.extra)
        else:
            after = run(a.after, a.filter, a.min_time, a.extra)
            before = run(a.before, a.filter, a.min_time, a.extra)
        for name in before.keys() & after.keys():
            ratios.setdefault(name, []).append(after[name] / before[name])
            times.setdefault(name, ([], []))
            times[name][0].append(before[name])
            times[name][1].append(after[name])
        print(f"run {i + 1}/{a.runs}: {len(before)} / {len(after)} rows", file=sys.stderr)

    if not ratios:
        sys.exit("bench_compare: the two binaries have no row of the filter in common")
    lines = ["| row | before (median) | after (median) | after ÷ before (median of runs) | |",
             "|---|---|---|---|---|"]
    off = 0
    for name in sorted(ratios):
        r = statistics.median(ratios[name])
        flag = "" if abs(r - 1.0) <= a.tolerance else ("faster" if r < 1.0 else "SLOWER")
        off += flag == "SLOWER"
        tb, ta = statistics.median(times[name][0]), statistics.median(times[name][1])
        short = name.replace("/real_time", "")
        lines.append(f"| {short} | {tb:.4g} | {ta:.4g} | {r:.3f} | {flag} |")
    allr = [statistics.median(v) for v in ratios.values()]
    lines.append("")
    lines.append(f"{len(ratios)} rows, {a.runs} alternations; ratio median {statistics.median(allr):.3f}, "
                 f"min {min(allr):.3f}, max {max(allr):.3f}; slower than {1 + a.tolerance:.2f}: {off}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as fp:
            fp.write(text + "\n")


if __name__ == "__main__":
    main()
