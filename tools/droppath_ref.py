#!/usr/bin/env python3
"""Independent pure-Python model of libdroppath's masks and drop-rate schedules.

How to reproduce our masks in Python (or any language): every decision
depends only on (seed, offset, g, drop_prob), never on threads, ISA or call
order.

    key      = (seed & 0xffffffff, seed >> 32)
    g        = sample_base + b        (row mode: one draw per sample b)
             = 2**64 - 1              (batch mode: one draw for the whole call)
    counter  = (g & 0xffffffff, g >> 32, offset & 0xffffffff, offset >> 32)
    w0       = philox4x32_10(counter, key)[0]
    u        = (w0 >> 8) * 2**-24                 # exact in binary32
    keep     = float32(1.0 - drop_prob)           # 1 - p in double, then rounded
    kept     = u < keep
    s        = float32(1 / keep) if scale_by_keep and keep > 0 else 1.0
    scale[b] = s if kept else 0.0

Exact-k mode (DP_MODE_EXACT_K) keeps exactly k of a call's B > 0 samples:

    k        = max(floor(B * (1.0 - drop_prob)), 1)    # in double, as DINOv2's int(b * (1 - p))
    kept     = the k samples b with the smallest (w0, b), w0 as in row mode
    s        = float32(B / k) if scale_by_keep else 1.0

Usage:
    droppath_ref.py --mask --seed S --offset O --batch B [--sample-base N]
                    [--drop-prob P] [--batch-mode] [--no-scale]
    droppath_ref.py --vectors > tests/vectors/droppath_masks.txt
    droppath_ref.py --check-vectors tests/vectors/droppath_masks.txt
    droppath_ref.py --check-kat tests/vectors/philox4x32_10_kat.txt
    droppath_ref.py --exact-k-vectors > tests/vectors/droppath_exact_k.txt
    droppath_ref.py --check-exact-k tests/vectors/droppath_exact_k.txt
    droppath_ref.py --mask --exact-k ...        (exact-k mode instead of row mode)
    droppath_ref.py --rates RULE RATE DEPTH     (RULE: linspace resnet efficientnet huang constant)
    droppath_ref.py --stagewise RATE D1 D2 ...

Only the standard library is used, so the model stays independent of the C
code and of numpy/torch.
"""

import argparse
import struct
import sys

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
BATCH_COUNTER = MASK64

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85  # golden ratio, sqrt(3) - 1


def philox4x32(counter, key, rounds=10):
    """Philox4x32-R as specified by Random123 (key bumped between rounds)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32)
    return [c0, c1, c2, c3]


def f32(x):
    """Round a double to the nearest binary32 (ties to even), as C's (float) cast."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def keep_of(drop_prob):
    return f32(1.0 - drop_prob)


def scale_of(drop_prob, scale_by_keep=True):
    keep = keep_of(drop_prob)
    # 1/keep in double then to binary32 equals binary32 division: 53 >= 2*24 + 2.
    return f32(1.0 / keep) if scale_by_keep and keep > 0.0 else 1.0


def counter_of(g, offset):
    return [g & MASK32, g >> 32, offset & MASK32, offset >> 32]


def draw_word(seed, offset, g):
    return philox4x32(counter_of(g, offset), [seed & MASK32, seed >> 32])[0]


def sample_counter(sample_base, b, batch_mode):
    return BATCH_COUNTER if batch_mode else (sample_base + b) & MASK64


def is_kept(seed, offset, sample_base, b, batch_mode, drop_prob):
    w0 = draw_word(seed, offset, sample_counter(sample_base, b, batch_mode))
    return (w0 >> 8) * 2.0**-24 < keep_of(drop_prob)


def mask(seed, offset, sample_base, batch, batch_mode, drop_prob, scale_by_keep=True):
    """Per-sample scales of one call: s for kept samples, 0.0 for dropped."""
    s = scale_of(drop_prob, scale_by_keep)
    return [s if is_kept(seed, offset, sample_base, b, batch_mode, drop_prob) else 0.0
            for b in range(batch)]


def exact_k_count(batch, drop_prob):
    return max(int(batch * (1.0 - drop_prob)), 1) if batch else 0


def exact_k_indices(seed, offset, sample_base, batch, drop_prob):
    """The kept samples of an exact-k call, ascending."""
    k = exact_k_count(batch, drop_prob)
    pairs = sorted((draw_word(seed, offset, (sample_base + b) & MASK64), b) for b in range(batch))
    return sorted(b for _, b in pairs[:k])


def exact_k_mask(seed, offset, sample_base, batch, drop_prob, scale_by_keep=True):
    """Per-sample scales of an exact-k call: B/k (or 1) for kept samples, 0.0 for dropped."""
    kept = set(exact_k_indices(seed, offset, sample_base, batch, drop_prob))
    s = f32(batch / len(kept)) if scale_by_keep and kept else 1.0
    return [s if b in kept else 0.0 for b in range(batch)]


# ---------------------------------------------------------------- schedules

RULES = ("linspace", "resnet", "efficientnet", "huang", "constant")


def drop_rates(rule, rate, depth):
    """dp_drop_rates in double precision.  timm evaluates linspace in float32, so
    its values differ from these by rounding (relative error < 2**-23)."""
    # rate * (i / n), not rate * i / n: the fraction is exactly 1 at the end, so
    # the last block gets exactly rate, as torch.linspace gives.
    if rule in ("linspace", "resnet"):
        # timm: torch.linspace(0, rate, depth); a single block gets 0.
        return [rate * (i / (depth - 1)) if depth > 1 else 0.0 for i in range(depth)]
    if rule == "efficientnet":
        return [rate * (i / depth) for i in range(depth)]
    if rule == "huang":
        return [rate * (i / depth) for i in range(1, depth + 1)]
    if rule == "constant":
        return [rate] * depth
    raise ValueError("unknown rule " + rule)


def drop_rates_stagewise(rate, depths):
    """What timm's calculate_drop_path_rates(rate, depths, stagewise=True) computes:
    torch.linspace(0, rate, sum(depths)).split(depths), i.e. the per-block ramp
    over all blocks, only grouped by stage (flattened here)."""
    return drop_rates("linspace", rate, sum(depths))


# ---------------------------------------------------------------- known answers

def parse_kat(path):
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] != "philox4x32" or len(words) != 12:
                raise ValueError("%s:%d: not a philox4x32 line" % (path, lineno))
            vals = [int(w, 16) for w in words[2:]]
            yield lineno, int(words[1]), vals[0:4], vals[4:6], vals[6:10]


def check_kat(path):
    n = bad = 0
    for lineno, rounds, ctr, key, expect in parse_kat(path):
        n += 1
        got = philox4x32(ctr, key, rounds)
        if got != expect:
            bad += 1
            print("%s:%d: got %s" % (path, lineno, " ".join("%08x" % w for w in got)))
    print("%d known-answer vectors, %d mismatches" % (n, bad))
    return bad == 0


# ---------------------------------------------------------------- mask vectors

VECTOR_HEADER = """\
# libdroppath mask test vectors.  Generated by: python3 tools/droppath_ref.py --vectors
# One line per (call parameters, sample index b):
#   seed offset sample_base b mode drop_prob w0 kept scale
# seed, offset, sample_base: uint64 in hex.  b: index of the sample within the call.
# mode: row (g = sample_base + b) or batch (g = 2^64-1).  drop_prob: a double, written
# so that strtod returns it exactly.  w0: Philox4x32-10 output word 0 for that sample
# (hex).  kept: 1 if u = (w0 >> 8) * 2^-24 < (float)(1 - drop_prob).  scale: dp_mask's
# scales_out[b] with scale_by_keep = 1 (binary32 1/keep, or 0 when dropped), exact decimal.
# Sections: natural p values; batch mode; boundary draws found by brute-force search;
# drop_prob placed at the draw's own u (keep == u drops; next float up keeps; a double
# just above u that rounds to u still drops; and 24-bit vs 32-bit u).
"""

SEEDS = [0, 1, 0xDEADBEEF, 0xFFFFFFFF, 0x100000000, 0x123456789ABCDEF0, 0xFFFFFFFFFFFFFFFF]
OFFSETS = [0, 1, 0xFFFFFFFF, 0x100000000, 0x8000000000000000, 0xFFFFFFFFFFFFFFFE, MASK64]
# 0xfffffffe + b crosses into g's high word; 2^64-16 + b stays below the batch counter.
BASES = [0, 0xFFFFFFFE, 0x10000000000, 0xFFFFFFFFFFFFFFF0]

# (p, seed, offset, g) whose w0 >> 8 sits on either side of ceil(keep * 2^24), found
# once by a brute-force C search over g; checked again every time vectors are made.
BOUNDARY = [
    (0.1, 0x0123456789ABCDEF, 0x7, 0x3000C307A2, False),
    (0.1, 0x0123456789ABCDEF, 0x7, 0x3000FD7FD5, True),
    (0.25, 0xFEDCBA9876543210, 0x1234567890, 0x600024C486, True),
    (0.25, 0xFEDCBA9876543210, 0x1234567890, 0x60006C2C83, False),
    (0.5, 0x2A, 0xFFFFFFFFFFFFFF00, 0x90003D0352, True),
    (0.5, 0x2A, 0xFFFFFFFFFFFFFF00, 0x900186C5FE, False),
    (0.9, 0x100000000, 0x80000000, 0xC000D503B8, False),
    (0.9, 0x100000000, 0x80000000, 0xC0013B11E0, True),
]


def _splitmix(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def _ulp32(x):
    """Spacing of binary32 values at x, for 2^-126 <= x < 1."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    return struct.unpack("<f", struct.pack("<I", bits + 1))[0] - x


def _line(seed, offset, base, b, batch_mode, p):
    g = sample_counter(base, b, batch_mode)
    w0 = draw_word(seed, offset, g)
    kept = (w0 >> 8) * 2.0**-24 < keep_of(p)
    s = scale_of(p) if kept else 0.0
    return "0x%016x 0x%016x 0x%016x %d %s %r %08x %d %r" % (
        seed, offset, base, b, "batch" if batch_mode else "row", p, w0, int(kept), s)


def _p_for_keep(keep_double, expect_keep):
    p = 1.0 - keep_double
    assert keep_of(p) == expect_keep, (keep_double, p)
    return p


def make_vectors():
    out = [VECTOR_HEADER.rstrip("\n")]
    rnd = _splitmix(0x5EED)

    def pick(seq):
        return seq[next(rnd) % len(seq)]

    out.append("# -- row mode, p in {0, 0.1, 0.25, 0.5, 0.9, 1}")
    for p, count in ((0.0, 12), (0.1, 36), (0.25, 36), (0.5, 36), (0.9, 36), (1.0, 12)):
        for _ in range(count):
            out.append(_line(pick(SEEDS), pick(OFFSETS), pick(BASES), pick([0, 1, 2, 3, 7]), False, p))
    out.append("# -- g carries into its high word, and g near the top of the range")
    for b in range(4):
        out.append(_line(0x123456789ABCDEF0, 0x100000000, 0xFFFFFFFE, b, False, 0.5))
    for b in range(14):
        out.append(_line(0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFF0, b, False, 0.5))

    out.append("# -- batch mode: every b of a call shares one draw; sample_base is ignored")
    for p in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        for _ in range(6):
            seed, offset = pick(SEEDS), pick(OFFSETS)
            for b in (0, 5):
                out.append(_line(seed, offset, pick(BASES), b, True, p))

    out.append("# -- boundary draws: w0 >> 8 == ceil(keep * 2^24) - 1 (kept) or == ceil(keep * 2^24) (dropped)")
    for p, seed, offset, g, expect in BOUNDARY:
        w0 = draw_word(seed, offset, g)
        keep = keep_of(p)
        assert ((w0 >> 8) * 2.0**-24 < keep) == expect
        assert abs((w0 >> 8) - keep * 2**24) <= 1
        out.append(_line(seed, offset, g, 0, False, p))

    out.append("# -- drop_prob placed at this draw's u")
    found_low = 0
    for i in range(64):
        seed, offset, g = next(rnd), next(rnd) >> (i % 64), next(rnd)
        g = min(g, MASK64 - 1)
        w0 = draw_word(seed, offset, g)
        u = (w0 >> 8) * 2.0**-24
        if u < 2.0**-20:
            continue
        up = u + _ulp32(u)
        if i < 6:
            for keep_d, keep_f in ((u, u), (up, up), (u + _ulp32(u) / 4, u)):
                out.append(_line(seed, offset, g, 0, False, _p_for_keep(keep_d, keep_f)))
        elif found_low < 4 and u < 0.5 and (w0 & 0xFF) * 2.0**-32 >= _ulp32(u):
            # keep lies between the 24-bit u and the 32-bit w0 * 2^-32: kept only if
            # the generator uses the top 24 bits as specified.
            found_low += 1
            out.append(_line(seed, offset, g, 0, False, _p_for_keep(up, up)))
    assert found_low == 4
    return "\n".join(out) + "\n"


def parse_vectors(path):
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            yield lineno, (int(w[0], 16), int(w[1], 16), int(w[2], 16), int(w[3]), w[4] == "batch",
                           float(w[5]), int(w[6], 16), int(w[7]), float(w[8]))


def check_vectors(path):
    n = bad = 0
    for lineno, (seed, offset, base, b, batch_mode, p, w0, kept, s) in parse_vectors(path):
        n += 1
        got_w0 = draw_word(seed, offset, sample_counter(base, b, batch_mode))
        got = mask(seed, offset, base, b + 1, batch_mode, p)[b]
        if got_w0 != w0 or int(got != 0.0) != kept or got != s:
            bad += 1
            print("%s:%d: w0 %08x kept %d scale %r" % (path, lineno, got_w0, int(got != 0.0), got))
    print("%d mask vectors, %d mismatches" % (n, bad))
    return bad == 0


EXACT_K_HEADER = """\
# libdroppath exact-k mask vectors.  Generated by: python3 tools/droppath_ref.py --exact-k-vectors
# One line per call: seed offset sample_base batch drop_prob scale k indices
# seed, offset, sample_base: uint64 in hex.  drop_prob: a double, written so that strtod
# returns it exactly.  scale: dp_mask's scale of a kept sample with scale_by_keep = 1
# (binary32 B/k), exact decimal.  indices: the k kept samples, ascending, comma-separated.
"""


def make_exact_k_vectors():
    out = [EXACT_K_HEADER.rstrip("\n")]
    rnd = _splitmix(0xE6AC7)
    for batch in (1, 2, 3, 5, 8, 16, 17, 31, 64, 100, 257):
        for p in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0, 0.37):
            seed, offset = next(rnd), next(rnd) >> (batch % 64)
            base = MASK64 - 3 if batch in (5, 17) else next(rnd) % 1000
            idx = exact_k_indices(seed, offset, base, batch, p)
            out.append("0x%016x 0x%016x 0x%016x %d %r %r %d %s" % (
                seed, offset, base, batch, p, f32(batch / len(idx)), len(idx), ",".join(map(str, idx))))
    return "\n".join(out) + "\n"


def check_exact_k(path):
    n = bad = 0
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            n += 1
            seed, offset, base, batch = int(w[0], 16), int(w[1], 16), int(w[2], 16), int(w[3])
            p, s, k, idx = float(w[4]), float(w[5]), int(w[6]), [int(v) for v in w[7].split(",")]
            got = exact_k_mask(seed, offset, base, batch, p)
            want = [s if b in idx else 0.0 for b in range(batch)]
            if got != want or len(idx) != k or k != exact_k_count(batch, p):
                bad += 1
                print("%s:%d: mismatch" % (path, lineno))
    print("%d exact-k vectors, %d mismatches" % (n, bad))
    return bad == 0


# ---------------------------------------------------------------- command line

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vectors", action="store_true", help="print the mask vector file")
    ap.add_argument("--check-vectors", metavar="FILE")
    ap.add_argument("--check-kat", metavar="FILE")
    ap.add_argument("--exact-k-vectors", action="store_true", help="print the exact-k vector file")
    ap.add_argument("--check-exact-k", metavar="FILE")
    ap.add_argument("--exact-k", action="store_true", help="--mask in exact-k mode")
    ap.add_argument("--mask", action="store_true", help="print one call's scales")
    ap.add_argument("--seed", type=lambda s: int(s, 0), default=0)
    ap.add_argument("--offset", type=lambda s: int(s, 0), default=0)
    ap.add_argument("--sample-base", type=lambda s: int(s, 0), default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--drop-prob", type=float, default=0.0)
    ap.add_argument("--batch-mode", action="store_true")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--rates", nargs=3, metavar=("RULE", "RATE", "DEPTH"))
    ap.add_argument("--stagewise", nargs="+", metavar="X", help="RATE D1 D2 ...")
    a = ap.parse_args(argv)
    ok = True
    if a.vectors:
        sys.stdout.write(make_vectors())
    if a.check_vectors:
        ok &= check_vectors(a.check_vectors)
    if a.check_kat:
        ok &= check_kat(a.check_kat)
    if a.exact_k_vectors:
        sys.stdout.write(make_exact_k_vectors())
    if a.check_exact_k:
        ok &= check_exact_k(a.check_exact_k)
    if a.mask and a.exact_k:
        for v in exact_k_mask(a.seed, a.offset, a.sample_base, a.batch, a.drop_prob, not a.no_scale):
            print(repr(v))
    elif a.mask:
        for v in mask(a.seed, a.offset, a.sample_base, a.batch, a.batch_mode, a.drop_prob,
                      not a.no_scale):
            print(repr(v))
    if a.rates:
        for v in drop_rates(a.rates[0], float(a.rates[1]), int(a.rates[2])):
            print(repr(v))
    if a.stagewise:
        for v in drop_rates_stagewise(float(a.stagewise[0]), [int(d) for d in a.stagewise[1:]]):
            print(repr(v))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
