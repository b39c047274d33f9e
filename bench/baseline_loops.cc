// Baseline loops; see baseline_loops.h.  Only plain C-style code here: this
// file is also built with -march=native, and an inline function shared with
// other files could let the linker keep the native copy for everyone.
#include "baseline_loops.h"

#include <cstring>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#if DP_BENCH_OPENMP
#include <omp.h>
#endif

#ifndef DP_BASELINE_NS
#error "DP_BASELINE_NS names the variant (dpb_base or dpb_native)"
#endif

namespace DP_BASELINE_NS {
namespace {

#if DP_BENCH_OPENMP
// This thread's share of [0, n): contiguous, split on 16-element (64-byte)
// boundaries so neighbours never share a cache line of an aligned array.
void my_range(size_t n, size_t *lo, size_t *hi) {
  const size_t k = size_t(omp_get_thread_num()), m = size_t(omp_get_num_threads());
  size_t per = (n + m - 1) / m;
  per = (per + 15) & ~size_t(15);
  *lo = k * per < n ? k * per : n;
  *hi = *lo + per < n ? *lo + per : n;
}
#endif

// body(lo, hi) over [0, n): each of `threads` OpenMP threads on its
// my_range share, or the calling thread on all of it.
template <class Body>
void over_range(size_t n, int threads, Body body) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      size_t lo, hi;
      my_range(n, &lo, &hi);
      body(lo, hi);
    }
    return;
  }
#endif
  (void)threads;
  body(size_t(0), n);
}

void triad_range(float *__restrict a, const float *__restrict b, const float *__restrict c, float s, size_t lo,
                 size_t hi) {
  for (size_t i = lo; i < hi; i++) a[i] = b[i] + s * c[i];
}

void scale_range(float *__restrict tmp, const float *__restrict f, const float *mask, size_t dim, size_t lo,
                 size_t hi) {
  // Row by row like a broadcasting elementwise op: no division per element.
  for (size_t i = lo; i < hi;) {
    const size_t row = i / dim, end = (row + 1) * dim < hi ? (row + 1) * dim : hi;
    const float m = mask[row];
    for (size_t j = i; j < end; j++) tmp[j] = f[j] * m;
    i = end;
  }
}

void add_range(float *__restrict out, const float *__restrict x, const float *__restrict tmp, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; i++) out[i] = x[i] + tmp[i];
}

void add_inplace_range(float *__restrict x, const float *__restrict tmp, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; i++) x[i] += tmp[i];
}

#if defined(__SSE2__)
// Widest non-temporal store the build allows; p must be aligned to its width.
#if defined(__AVX512F__)
constexpr size_t kNtLanes = 16;
inline void nt_store(float *p, const float *v) { _mm512_stream_ps(p, _mm512_loadu_ps(v)); }
#elif defined(__AVX__)
constexpr size_t kNtLanes = 8;
inline void nt_store(float *p, const float *v) { _mm256_stream_ps(p, _mm256_loadu_ps(v)); }
#else
constexpr size_t kNtLanes = 4;
inline void nt_store(float *p, const float *v) { _mm_stream_ps(p, _mm_loadu_ps(v)); }
#endif
#endif

// [lo, hi) with ranges starting on 64-byte boundaries of 64-byte aligned
// arrays (my_range), so whole vectors stream; the tail is stored normally.
void triad_nt_range(float *__restrict a, const float *__restrict b, const float *__restrict c, float s, size_t lo,
                    size_t hi) {
  size_t i = lo;
#if defined(__SSE2__)
  for (; i + kNtLanes <= hi; i += kNtLanes) {
    float v[kNtLanes];
    for (size_t k = 0; k < kNtLanes; k++) v[k] = b[i + k] + s * c[i + k];
    nt_store(a + i, v);
  }
  _mm_sfence();
#endif
  for (; i < hi; i++) a[i] = b[i] + s * c[i];
}

void split_nt_range(float *__restrict a, float *__restrict b, const float *__restrict c, float s, size_t lo,
                    size_t hi) {
  size_t i = lo;
#if defined(__SSE2__)
  for (; i + kNtLanes <= hi; i += kNtLanes) {
    float v[kNtLanes];
    for (size_t k = 0; k < kNtLanes; k++) v[k] = s * c[i + k];
    nt_store(a + i, v);
    nt_store(b + i, c + i);
  }
  _mm_sfence();
#endif
  for (; i < hi; i++) {
    a[i] = s * c[i];
    b[i] = c[i];
  }
}

float sum_range(const float *__restrict a, size_t lo, size_t hi) {
  float acc[16] = {};
  size_t i = lo;
  for (; i + 16 <= hi; i += 16)
    for (size_t k = 0; k < 16; k++) acc[k] += a[i + k];
  float t = 0.0f;
  for (size_t k = 0; k < 16; k++) t += acc[k];
  for (; i < hi; i++) t += a[i];
  return t;
}

// A LayerNorm as one would write it in C: the mean, the variance of the
// deviations, then y; the compiler vectorises what it may (no -ffast-math,
// so the sums stay sequential).
void layernorm_rows(float *__restrict y, const float *__restrict x, const float *__restrict gamma,
                    const float *__restrict beta, float *mean, float *rstd, size_t dim, float eps, size_t lo,
                    size_t hi) {
  for (size_t r = lo; r < hi; r++) {
    const float *xr = x + r * dim;
    float *yr = y + r * dim;
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) s += xr[i];
    const float m = s / float(dim);
    float v = 0.0f;
    for (size_t i = 0; i < dim; i++) v += (xr[i] - m) * (xr[i] - m);
    const float rs = 1.0f / __builtin_sqrtf(v / float(dim) + eps);
    for (size_t i = 0; i < dim; i++) yr[i] = (xr[i] - m) * rs * gamma[i] + beta[i];
    mean[r] = m;
    rstd[r] = rs;
  }
}

// Whole rows [lo, hi) of dim: what a broadcasting framework op does.
void ls_scale_rows(float *__restrict t, const float *__restrict f, const float *__restrict gamma, size_t dim,
                   size_t lo, size_t hi) {
  for (size_t r = lo; r < hi; r++)
    for (size_t d = 0; d < dim; d++) t[r * dim + d] = f[r * dim + d] * gamma[d];
}

void ls_mul_rows(float *__restrict g, const float *__restrict gamma, size_t dim, size_t lo, size_t hi) {
  for (size_t r = lo; r < hi; r++)
    for (size_t d = 0; d < dim; d++) g[r * dim + d] *= gamma[d];
}

void ls_colsum_rows(float *__restrict acc, const float *__restrict gt, const float *__restrict f, size_t dim,
                    size_t lo, size_t hi) {
  for (size_t d = 0; d < dim; d++) acc[d] = 0.0f;
  for (size_t r = lo; r < hi; r++)
    for (size_t d = 0; d < dim; d++) acc[d] += gt[r * dim + d] * f[r * dim + d];
}

// body(lo, hi, k) over rows [0, rows): thread k of `threads` takes a
// contiguous share.
template <class Body>
void over_rows(size_t rows, int threads, Body body) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      const size_t k = size_t(omp_get_thread_num()), m = size_t(omp_get_num_threads());
      body(rows * k / m, rows * (k + 1) / m, k);
    }
    return;
  }
#endif
  (void)threads;
  body(size_t(0), rows, size_t(0));
}

}  // namespace

void layernorm(float *y, const float *x, const float *gamma, const float *beta, float *mean, float *rstd, size_t rows,
               size_t dim, float eps, int threads) {
  over_range(rows, threads, [=](size_t lo, size_t hi) { layernorm_rows(y, x, gamma, beta, mean, rstd, dim, eps, lo, hi); });
}

void ls_scale(float *t, const float *f, const float *gamma, size_t rows, size_t dim, int threads) {
  over_rows(rows, threads, [=](size_t lo, size_t hi, size_t) { ls_scale_rows(t, f, gamma, dim, lo, hi); });
}

void ls_mul_inplace(float *g, const float *gamma, size_t rows, size_t dim, int threads) {
  over_rows(rows, threads, [=](size_t lo, size_t hi, size_t) { ls_mul_rows(g, gamma, dim, lo, hi); });
}

void ls_grad_gamma(float *grad_gamma, float *partials, const float *gt, const float *f, size_t rows, size_t dim,
                   int threads) {
  const int m = threads > 1 ? threads : 1;
  over_rows(rows, m, [=](size_t lo, size_t hi, size_t k) { ls_colsum_rows(partials + k * dim, gt, f, dim, lo, hi); });
  for (size_t d = 0; d < dim; d++) grad_gamma[d] = partials[d];
  for (int k = 1; k < m; k++)
    for (size_t d = 0; d < dim; d++) grad_gamma[d] += partials[size_t(k) * dim + d];
}

void triad_nt(float *a, const float *b, const float *c, float s, size_t n, int threads) {
  over_range(n, threads, [=](size_t lo, size_t hi) { triad_nt_range(a, b, c, s, lo, hi); });
}

void split_nt(float *a, float *b, const float *c, float s, size_t n, int threads) {
  over_range(n, threads, [=](size_t lo, size_t hi) { split_nt_range(a, b, c, s, lo, hi); });
}

float sum(const float *a, size_t n, int threads) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
    float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      size_t lo, hi;
      my_range(n, &lo, &hi);
      total += sum_range(a, lo, hi);
    }
    return total;
  }
#endif
  (void)threads;
  return sum_range(a, 0, n);
}

void triad(float *a, const float *b, const float *c, float s, size_t n, int threads) {
  over_range(n, threads, [=](size_t lo, size_t hi) { triad_range(a, b, c, s, lo, hi); });
}

void scale_rows(float *tmp, const float *f, const float *mask, size_t batch, size_t dim, int threads) {
  over_range(batch * dim, threads, [=](size_t lo, size_t hi) { scale_range(tmp, f, mask, dim, lo, hi); });
}

void add(float *out, const float *x, const float *tmp, size_t n, int threads) {
  over_range(n, threads, [=](size_t lo, size_t hi) { add_range(out, x, tmp, lo, hi); });
}

void add_inplace(float *x, const float *tmp, size_t n, int threads) {
  over_range(n, threads, [=](size_t lo, size_t hi) { add_inplace_range(x, tmp, lo, hi); });
}

void copy(void *dst, const void *src, size_t bytes, int threads) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      // Chunks in floats' units keep the 64-byte split of my_range; the
      // thread with the last non-empty chunk takes the odd bytes.
      size_t lo, hi;
      my_range(bytes / 4, &lo, &hi);
      const size_t end = lo < hi && hi == bytes / 4 ? bytes : hi * 4;
      if (end > lo * 4)
        std::memcpy(static_cast<char *>(dst) + lo * 4, static_cast<const char *>(src) + lo * 4, end - lo * 4);
    }
    return;
  }
#endif
  (void)threads;
  std::memcpy(dst, src, bytes);
}

void fork_join(int threads) {
#if DP_BENCH_OPENMP
#pragma omp parallel num_threads(threads)
  { __asm__ volatile("" ::: "memory"); }
#else
  (void)threads;
#endif
}

}  // namespace DP_BASELINE_NS
