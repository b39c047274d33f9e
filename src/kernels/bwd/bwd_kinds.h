/* The backward's output kinds, shared by the f32 and the half bodies
 * (bwd_body.h, bwd_half_body.h): both resolve a call's mode into a kind per
 * output and run one loop per pair of kinds. */
#ifndef DP_BWD_KINDS_H
#define DP_BWD_KINDS_H

#include "kernels/kernels.h"

/* What a body does with one output: plain store, non-temporal store,
 * accumulate, or nothing (gx == NULL). */
enum { K_SET, K_NT, K_ACC, K_NONE };

/* `return LOOP(..., FK, XK)` with FK, XK the constants equal to fk, xk: one
 * loop per pair of kinds, so the hot loop carries no mode branches. */
#define BWD_BY_KINDS(fk, xk, LOOP, ...)                            \
  switch (fk) {                                                    \
    case K_SET: BWD_BY_XK_(K_SET, xk, LOOP, __VA_ARGS__)           \
    case K_NT: BWD_BY_XK_(K_NT, xk, LOOP, __VA_ARGS__)             \
    default: BWD_BY_XK_(K_ACC, xk, LOOP, __VA_ARGS__)              \
  }
#define BWD_BY_XK_(FK, xk, LOOP, ...)                   \
  switch (xk) {                                         \
    case K_SET: return LOOP(__VA_ARGS__, FK, K_SET);    \
    case K_NT: return LOOP(__VA_ARGS__, FK, K_NT);      \
    case K_ACC: return LOOP(__VA_ARGS__, FK, K_ACC);    \
    default: return LOOP(__VA_ARGS__, FK, K_NONE);      \
  }

#endif /* DP_BWD_KINDS_H */
