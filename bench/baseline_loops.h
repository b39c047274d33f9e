// Plain loops for the baselines, compiled twice: with the project's flags
// (namespace dpb_base) and, where the compiler allows, with -march=native
// (dpb_native).  threads > 1 splits the range across an OpenMP team.
#ifndef DP_BENCH_BASELINE_LOOPS_H
#define DP_BENCH_BASELINE_LOOPS_H

#include <cstddef>

#define DP_BASELINE_DECLS                                                                       \
  /* STREAM triad: a[i] = b[i] + s*c[i]. */                                                     \
  void triad(float *a, const float *b, const float *c, float s, size_t n, int threads);        \
  /* Framework-style scale pass: tmp[b][i] = f[b][i] * mask[b] (mask already divided by keep). */ \
  void scale_rows(float *tmp, const float *f, const float *mask, size_t batch, size_t dim,      \
                  int threads);                                                                 \
  /* Residual add pass: out = x + tmp, and its in-place form x += tmp. */                       \
  void add(float *out, const float *x, const float *tmp, size_t n, int threads);               \
  void add_inplace(float *x, const float *tmp, size_t n, int threads);                         \
  /* memcpy, one contiguous chunk per thread. */                                                \
  void copy(void *dst, const void *src, size_t bytes, int threads);                             \
  /* An empty parallel region: the fork/join every threaded call pays. */                      \
  void fork_join(int threads);                                                                  \
  /* The physical limit of the fused passes: the triad (read two, write one) and its backward */ \
  /* shape a = s*c, b = c (read one, write two), with non-temporal stores where the build has */ \
  /* them (x86), so no write pays a read-for-ownership. */                                      \
  void triad_nt(float *a, const float *b, const float *c, float s, size_t n, int threads);     \
  void split_nt(float *a, float *b, const float *c, float s, size_t n, int threads);           \
  /* The next layer reading an output once: the sum of its elements. */                         \
  float sum(const float *a, size_t n, int threads);                                             \
  /* Plain LayerNorm over rows of dim: two passes for the statistics, one for y. */             \
  void layernorm(float *y, const float *x, const float *gamma, const float *beta, float *mean,  \
                 float *rstd, size_t rows, size_t dim, float eps, int threads);                 \
  /* LayerScale as separate passes over rows of dim (gamma: dim floats): t = f * gamma; */      \
  /* g *= gamma in place; grad_gamma = the column sums of gt * f (per-thread partials of */     \
  /* dim floats in `partials`, room for threads * dim, then added on the calling thread). */    \
  void ls_scale(float *t, const float *f, const float *gamma, size_t rows, size_t dim, int threads); \
  void ls_mul_inplace(float *g, const float *gamma, size_t rows, size_t dim, int threads);     \
  void ls_grad_gamma(float *grad_gamma, float *partials, const float *gt, const float *f, size_t rows, \
                     size_t dim, int threads);

namespace dpb_base {
DP_BASELINE_DECLS
}
namespace dpb_native {
DP_BASELINE_DECLS
}

#endif
