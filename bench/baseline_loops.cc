// Baseline loops; see baseline_loops.h.  Only plain C-style code here: this
// file is also built with -march=native, and an inline function shared with
// other files could let the linker keep the native copy for everyone.
#include "baseline_loops.h"

#include <cstring>

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

}  // namespace

void triad(float *a, const float *b, const float *c, float s, size_t n, int threads) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      size_t lo, hi;
      my_range(n, &lo, &hi);
      triad_range(a, b, c, s, lo, hi);
    }
    return;
  }
#endif
  (void)threads;
  triad_range(a, b, c, s, 0, n);
}

void scale_rows(float *tmp, const float *f, const float *mask, size_t batch, size_t dim, int threads) {
  const size_t n = batch * dim;
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      size_t lo, hi;
      my_range(n, &lo, &hi);
      scale_range(tmp, f, mask, dim, lo, hi);
    }
    return;
  }
#endif
  (void)threads;
  scale_range(tmp, f, mask, dim, 0, n);
}

void add(float *out, const float *x, const float *tmp, size_t n, int threads) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      size_t lo, hi;
      my_range(n, &lo, &hi);
      add_range(out, x, tmp, lo, hi);
    }
    return;
  }
#endif
  (void)threads;
  add_range(out, x, tmp, 0, n);
}

void add_inplace(float *x, const float *tmp, size_t n, int threads) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      size_t lo, hi;
      my_range(n, &lo, &hi);
      add_inplace_range(x, tmp, lo, hi);
    }
    return;
  }
#endif
  (void)threads;
  add_inplace_range(x, tmp, 0, n);
}

void copy(void *dst, const void *src, size_t bytes, int threads) {
#if DP_BENCH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      // Chunks in floats' units keep the 64-byte split of my_range.
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
