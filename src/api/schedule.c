/* Per-block drop rates under each framework's rule, so a C trainer can match
 * the schedule of the model it ports. Fractions are formed first so that
 * rate * (i/n) never exceeds rate (rate*i/n can round above it). */
#include <math.h>

#include "core/fpenv.h"
#include "core/validate.h"

static int bad_rate(double rate) { return isnan(rate) || rate < 0.0 || rate > 1.0; }

static double rule_rate(dp_schedule rule, double rate, size_t i, size_t depth) {
  switch (rule) {
    case DP_SCHEDULE_LINSPACE:
    case DP_SCHEDULE_RESNET:
      /* linspace(0, rate, 1) is [0]: a single block gets no drop. */
      return depth > 1 ? rate * ((double)i / (double)(depth - 1)) : 0.0;
    case DP_SCHEDULE_EFFICIENTNET: return rate * ((double)i / (double)depth);
    case DP_SCHEDULE_HUANG: return rate * ((double)(i + 1) / (double)depth);
    case DP_SCHEDULE_CONSTANT: return rate;
  }
  return 0.0;
}

static DP_NOINLINE dp_status drop_rates(dp_schedule rule, double rate, size_t depth, double *rates_out) {
  if ((unsigned)rule > DP_SCHEDULE_CONSTANT) return DP_ERR_BAD_ARGUMENT;
  if (bad_rate(rate)) return DP_ERR_BAD_PROBABILITY;
  dp_extent ext;
  const dp_status st = dp_check_array(rates_out, depth, sizeof(double), &ext);
  if (st != DP_OK) return st;
  for (size_t i = 0; i < depth; i++) rates_out[i] = rule_rate(rule, rate, i, depth);
  return DP_OK;
}

static DP_NOINLINE dp_status drop_rates_stagewise(double rate, const size_t *depths, size_t n_stages,
                                                  double *rates_out) {
  if (bad_rate(rate)) return DP_ERR_BAD_PROBABILITY;
  dp_extent de, re;
  dp_status st = dp_check_array(depths, n_stages, sizeof(size_t), &de);
  if (st != DP_OK) return st;
  size_t total = 0;
  for (size_t s = 0; s < n_stages; s++) {
    if (depths[s] > SIZE_MAX - total) return DP_ERR_SIZE_OVERFLOW;
    total += depths[s];
  }
  if ((st = dp_check_array(rates_out, total, sizeof(double), &re)) != DP_OK) return st;
  if (dp_extents_overlap(de, re)) return DP_ERR_OVERLAP;
  /* timm's calculate_drop_path_rates(stagewise=True): one ramp over all
   * blocks, split by stage (not a constant rate per stage). */
  for (size_t k = 0; k < total; k++) rates_out[k] = rule_rate(DP_SCHEDULE_LINSPACE, rate, k, total);
  return DP_OK;
}

/* The public entries: rates computed in the library's floating-point state
 * (core/fpenv.h), behind a call so that none of the work moves across the
 * switch. */
dp_status dp_drop_rates(dp_schedule rule, double rate, size_t depth, double *rates_out) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = drop_rates(rule, rate, depth, rates_out);
  dp_fpenv_leave(e);
  return st;
}

dp_status dp_drop_rates_stagewise(double rate, const size_t *depths, size_t n_stages, double *rates_out) {
  const dp_fpenv e = dp_fpenv_enter();
  const dp_status st = drop_rates_stagewise(rate, depths, n_stages, rates_out);
  dp_fpenv_leave(e);
  return st;
}
