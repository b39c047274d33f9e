/*
 * Data-parallel training with MPI: N ranks draw exactly the DropPath masks of
 * one process holding the whole batch, whatever N is.
 *
 * Model, replicated on every rank (same initial weights, same updates):
 *
 *   h[l+1] = h[l] + DropPath_l( tanh(W[l] h[l]) )          l = 0..L-1
 *   loss   = 0.5 * sum_b |h[L][b] - target[b]|^2 / B        B = global batch
 *
 * The global batch is cut into contiguous shards, rank r holding samples
 * [start, start + count); the shards are uneven when N does not divide B.
 * What makes the masks independent of the cut is one field:
 *
 *   p.sample_base = start;     (with the same seed and offset on every rank)
 *
 * Sample b's mask is drawn from Philox at counter (sample_base + b, offset),
 * i.e. keyed by its global index, so a rank draws for its samples the very
 * bits one big call would draw for them.  The backward regenerates the mask
 * from the same params, sample_base included.  In batch mode the single draw
 * per call does not depend on sample_base: every rank gets the one decision
 * of the whole global batch.
 *
 * The weight gradient is a sum over samples, reduced across ranks two ways:
 *  - fixed order: every rank gathers the per-sample contributions
 *    (MPI_Allgatherv, in rank order = global sample order, as shards are
 *    contiguous) and sums them in global sample order b = 0..B-1, starting
 *    from 0.  The same float additions in the same order as one process
 *    makes, so the same bits for every N.  The weights are updated with it.
 *  - MPI_Allreduce of the per-rank partial sums: the usual way, cheaper, but
 *    the additions are grouped by shard, so the bits depend on N.  Both are
 *    float sums of the same B terms, each within gamma(B-1) * sum_b |c_b| of
 *    the exact sum (Higham, Accuracy and Stability of Numerical Algorithms,
 *    2nd ed., sec. 4.2: any order of pairwise additions), gamma(n) = n*u/(1 - n*u),
 *    u = 2^-24; so they differ by at most 2 * gamma(B-1) * sum_b |c_b|, per
 *    element.  The program checks that bound.
 *
 * Gathering per-sample contributions costs B copies of the gradient; at
 * scale the same determinism comes from summing fixed chunks of global
 * samples (independent of N) in order, and then the chunk sums in order.
 *
 * Run:  mpirun -n 4 example_mpi_data_parallel [--dump FILE]
 * Rank 0 prints the losses, what the checks found and a digest of every
 * per-sample output, gradient row, scale and fixed-order weight gradient;
 * --dump writes those bytes to FILE (the test compares them across N).
 * The exit status is nonzero if a check fails.
 */
#include <droppath/droppath.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  B = 13,    /* global batch: 1, 2, 3 and 4 ranks all split it differently */
  D = 16,    /* features */
  L = 4,     /* residual blocks */
  STEPS = 3, /* training steps per mode */
  NW = L * D * D, /* weights (and weight-gradient elements) */
  /* One sample's record, gathered to rank 0 in global order: per block l its
   * output row h[l+1], its gradient row dloss/dh[l] and its scale; then its loss. */
  REC_BLOCK = 2 * D + 1,
  REC_SCALE = 2 * D, /* where the scale sits in a block's part */
  REC = L * REC_BLOCK + 1
};
static const double MAX_DROP = 0.5; /* timm linspace schedule: 0 .. 0.5 over the blocks */
static const uint64_t SEED = 2024;
static const float LR = 0.5f;

/* ---------------------------------------------------------------- this rank's shard */

typedef struct shard {
  int rank, size;
  int start, count;         /* this rank's samples: [start, start + count) */
  int starts[B], counts[B]; /* every rank's, for the gathers (at most B ranks) */
} shard;

/* Contiguous, as even as possible: the first B % size ranks get one more sample. */
static void shard_of(int r, int size, int *start, int *count) {
  const int q = B / size, extra = B % size;
  *count = q + (r < extra);
  *start = r * q + (r < extra ? r : extra);
}

/* ---------------------------------------------------------------- data and model */

/* Inputs and targets are functions of the global sample index, so each rank
 * makes its own shard without communication. */
static float hash_unit(uint64_t x) {
  x += 0x9E3779B97F4A7C15u; /* splitmix64 finaliser */
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
  x ^= x >> 31;
  return (float)(x >> 40) * 0x1p-24f * 2.0f - 1.0f; /* [-1, 1) */
}

typedef struct model {
  float W[L][D * D];
  double rates[L];
} model;

typedef struct activations { /* this rank's rows, [count][D] each */
  float h[L + 1][B * D];     /* block inputs/outputs */
  float f[L][B * D];         /* branch outputs tanh(W h) */
  float scales[L][B];        /* per sample: 1/keep if kept, 0 if dropped */
  float g[L + 1][B * D];     /* dloss/dh[l] */
  float grad_f[B * D];       /* dloss/df[l] of the block at hand */
  float loss[B];             /* per-sample loss terms */
  float contrib[B][NW];      /* per-sample weight-gradient contributions */
} activations;

static void model_init(model *m) {
  if (dp_drop_rates(DP_SCHEDULE_LINSPACE, MAX_DROP, L, m->rates) != DP_OK) abort();
  for (int l = 0; l < L; l++)
    for (int i = 0; i < D * D; i++) m->W[l][i] = 0.25f * hash_unit(1000003u * (uint64_t)l + (uint64_t)i);
}

static void check_dp(dp_status st, const char *what) {
  if (st == DP_OK) return;
  fprintf(stderr, "%s: %s\n", what, dp_status_string(st));
  MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Forward and backward over this rank's shard; fills a->contrib. */
static void forward_backward(const model *m, const shard *s, int mode, int step, activations *a) {
  const int n = s->count;
  const dp_shape sh = {(size_t)n, 1, D};
  dp_params p;
  dp_params_init(&p);
  p.seed = SEED; /* the same on every rank */
  p.mode = mode;
  p.sample_base = (uint64_t)s->start; /* the global index of this shard's first sample */

  for (int b = 0; b < n; b++)
    for (int i = 0; i < D; i++) a->h[0][b * D + i] = hash_unit(((uint64_t)(s->start + b) << 20) + (uint64_t)i);

  for (int l = 0; l < L; l++) {
    p.drop_prob = m->rates[l];
    p.offset = (uint64_t)step * L + (uint64_t)l; /* the same on every rank */
    for (int b = 0; b < n; b++)
      for (int i = 0; i < D; i++) {
        float acc = 0;
        for (int j = 0; j < D; j++) acc += m->W[l][i * D + j] * a->h[l][b * D + j];
        a->f[l][b * D + i] = tanhf(acc);
      }
    check_dp(dp_forward(&p, sh, dp_tensor_dense(a->h[l + 1], DP_F32, sh), dp_tensor_dense(a->h[l], DP_F32, sh),
                        dp_tensor_dense(a->f[l], DP_F32, sh), a->scales[l]),
             "dp_forward");
  }

  for (int b = 0; b < n; b++) {
    float loss = 0;
    for (int i = 0; i < D; i++) {
      const float target = 0.5f * hash_unit(((uint64_t)(s->start + b) << 20) + 0x80000u + (uint64_t)i);
      const float e = a->h[L][b * D + i] - target;
      loss += 0.5f * e * e / B;
      a->g[L][b * D + i] = e / B;
    }
    a->loss[b] = loss;
  }

  memset(a->contrib, 0, sizeof a->contrib);
  for (int l = L - 1; l >= 0; l--) {
    p.drop_prob = m->rates[l];
    p.offset = (uint64_t)step * L + (uint64_t)l;
    /* grad_f = m*s*g[l+1], mask regenerated from p; the same pass copies the
     * residual's gradient g[l] = g[l+1]; the branch's part is added below. */
    check_dp(dp_backward(&p, sh, dp_tensor_dense(a->grad_f, DP_F32, sh), dp_tensor_dense(a->g[l], DP_F32, sh),
                         dp_tensor_dense(a->g[l + 1], DP_F32, sh), NULL, 0),
             "dp_backward");
    for (int b = 0; b < n; b++) {
      float *c = a->contrib[b] + l * D * D;
      for (int i = 0; i < D; i++) {
        const float fi = a->f[l][b * D + i];
        const float g_pre = a->grad_f[b * D + i] * (1.0f - fi * fi); /* tanh' */
        for (int j = 0; j < D; j++) {
          c[i * D + j] = g_pre * a->h[l][b * D + j];
          a->g[l][b * D + j] += m->W[l][i * D + j] * g_pre;
        }
      }
    }
  }
}

/* ---------------------------------------------------------------- reductions */

/* Fixed order: gather every sample's contribution, sum in global sample order.
 * Also returns sum_b |c_b| per element, the scale of the rounding-error bound. */
static void reduce_fixed_order(const shard *s, const activations *a, float *gW, double *abs_sum) {
  static float all[B][NW];
  int counts[B], displs[B];
  for (int r = 0; r < s->size; r++) {
    counts[r] = s->counts[r] * NW;
    displs[r] = s->starts[r] * NW;
  }
  MPI_Allgatherv(a->contrib, s->count * NW, MPI_FLOAT, all, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
  for (int k = 0; k < NW; k++) {
    float sum = 0;
    double abs = 0;
    for (int b = 0; b < B; b++) {
      sum += all[b][k];
      abs += fabs((double)all[b][k]);
    }
    gW[k] = sum;
    abs_sum[k] = abs;
  }
}

/* The usual data-parallel reduction: local partial sums, then MPI_Allreduce. */
static void reduce_allreduce(const shard *s, const activations *a, float *gW) {
  static float partial[NW];
  for (int k = 0; k < NW; k++) {
    float sum = 0;
    for (int b = 0; b < s->count; b++) sum += a->contrib[b][k];
    partial[k] = sum;
  }
  MPI_Allreduce(partial, gW, NW, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

/* ---------------------------------------------------------------- checks and output */

typedef struct report {
  uint64_t digest;  /* FNV-1a over every byte rank 0 dumps */
  FILE *dump;
  int failures;
} report;

static void record(report *rep, const void *data, size_t bytes) {
  const unsigned char *c = data;
  for (size_t i = 0; i < bytes; i++) rep->digest = (rep->digest ^ c[i]) * 0x100000001B3u;
  if (rep->dump && fwrite(data, 1, bytes, rep->dump) != bytes) rep->failures++;
}

/* Gathers every sample's record to rank 0 in global order. */
static void gather_records(const shard *s, const activations *a, float (*all)[REC]) {
  static float mine[B][REC];
  int counts[B], displs[B];
  for (int b = 0; b < s->count; b++) {
    float *r = mine[b];
    for (int l = 0; l < L; l++) {
      memcpy(r, a->h[l + 1] + b * D, D * sizeof(float));
      memcpy(r + D, a->g[l] + b * D, D * sizeof(float));
      r[REC_SCALE] = a->scales[l][b];
      r += REC_BLOCK;
    }
    *r = a->loss[b];
  }
  for (int r = 0; r < s->size; r++) {
    counts[r] = s->counts[r] * REC;
    displs[r] = s->starts[r] * REC;
  }
  MPI_Gatherv(mine, s->count * REC, MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
}

/* Batch mode: each block's call made one decision, which every sample of every
 * rank must share.  Adds the dropped blocks and the blocks whose samples
 * disagree (the same on every rank: the extremes are global). */
static void check_batch_decisions(const shard *s, const activations *a, int *dropped, int *disagree) {
  for (int l = 0; l < L; l++) {
    float lo = INFINITY, hi = -INFINITY, glo, ghi;
    for (int b = 0; b < s->count; b++) {
      lo = fminf(lo, a->scales[l][b]);
      hi = fmaxf(hi, a->scales[l][b]);
    }
    MPI_Allreduce(&lo, &glo, 1, MPI_FLOAT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&hi, &ghi, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    *disagree += glo != ghi;
    *dropped += ghi == 0;
  }
}

/* Trains STEPS steps in one mode; rank 0 prints and records what it sees. */
static void train(const shard *s, int mode, report *rep) {
  static model m;
  static activations a;
  static float all[B][REC], gW[NW], gW_mpi[NW];
  static double abs_sum[NW];
  const double u = 0x1p-24, gamma = (B - 1) * u / (1 - (B - 1) * u);
  int dropped_samples = 0, dropped_blocks = 0, disagree = 0, differ = 0;
  double worst = 0; /* largest |allreduce - fixed| / bound */

  model_init(&m);
  if (s->rank == 0) printf("%s mode, loss per step:", mode == DP_MODE_ROW ? "row  " : "batch");
  for (int step = 0; step < STEPS; step++) {
    forward_backward(&m, s, mode, step, &a);
    reduce_fixed_order(s, &a, gW, abs_sum);
    reduce_allreduce(s, &a, gW_mpi);
    if (mode == DP_MODE_BATCH) check_batch_decisions(s, &a, &dropped_blocks, &disagree);
    gather_records(s, &a, all);
    /* Every rank applies the same fixed-order gradient: the replicas stay equal. */
    for (int k = 0; k < NW; k++) m.W[k / (D * D)][k % (D * D)] -= LR * gW[k];

    if (s->rank != 0) continue;
    double loss = 0;
    for (int b = 0; b < B; b++) {
      loss += all[b][REC - 1];
      for (int l = 0; l < L; l++) dropped_samples += all[b][l * REC_BLOCK + REC_SCALE] == 0;
    }
    printf(" %.6f", loss);
    for (int k = 0; k < NW; k++) {
      const double diff = fabs((double)gW_mpi[k] - (double)gW[k]), bound = 2 * gamma * abs_sum[k];
      differ += gW_mpi[k] != gW[k];
      if (diff > bound) rep->failures++;
      if (bound > 0 && diff / bound > worst) worst = diff / bound;
    }
    record(rep, all, sizeof all);
    record(rep, gW, sizeof gW);
  }
  if (s->rank != 0) return;
  rep->failures += disagree;
  printf("\n  dropped %d of %d sample-blocks", dropped_samples, STEPS * L * B);
  if (mode == DP_MODE_BATCH) {
    printf(" (%d of %d block calls); ", dropped_blocks, STEPS * L);
    if (disagree)
      printf("ranks DISAGREE within %d calls", disagree);
    else
      printf("one decision per call, shared by every rank");
  }
  printf("\n  MPI_Allreduce vs fixed order: %d of %d weight-gradient elements differ, largest gap %.3f of the bound\n",
         differ, STEPS * NW, worst);
}

int main(int argc, char **argv) {
  shard s;
  report rep = {0xCBF29CE484222325u, NULL, 0};
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &s.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &s.size);
  if (s.size > B) {
    if (s.rank == 0) fprintf(stderr, "run with at most %d ranks\n", B);
    MPI_Finalize();
    return 2;
  }
  for (int r = 0; r < s.size; r++) shard_of(r, s.size, &s.starts[r], &s.counts[r]);
  s.start = s.starts[s.rank];
  s.count = s.counts[s.rank];

  if (s.rank == 0) {
    if (argc == 3 && strcmp(argv[1], "--dump") == 0 && !(rep.dump = fopen(argv[2], "wb"))) rep.failures++;
    printf("libdroppath %s (%s), %d rank%s, global batch %d split", dp_version_string(),
           dp_isa_name(dp_active_isa()), s.size, s.size > 1 ? "s" : "", B);
    for (int r = 0; r < s.size; r++) printf("%s%d", r ? "+" : " ", s.counts[r]);
    printf("\n");
  }
  train(&s, DP_MODE_ROW, &rep);
  train(&s, DP_MODE_BATCH, &rep);

  /* Rank 0 counted the failures (batch decisions, bounds, dump); every rank exits with the verdict. */
  int failures = 0;
  MPI_Allreduce(&rep.failures, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (s.rank == 0) {
    if (rep.dump && fclose(rep.dump) != 0) failures++;
    printf("digest %016llx (per-sample outputs, gradient rows, scales, fixed-order weight gradients)\n",
           (unsigned long long)rep.digest);
    printf("%s\n", failures ? "FAILED" : "checks passed");
  }
  MPI_Finalize();
  return failures != 0;
}
