/* SPDX-License-Identifier: MIT
 *
 * backend/forest.h -- a compiled tree ensemble: the trees of an XGBoost gbtree
 * model in flat arrays, evaluated by quiver itself. Built once at load from
 * the model's JSON (as libxgboost writes it); predictions equal libxgboost's
 * (same float32 thresholds, `x < threshold` goes left, NaN follows the
 * default direction, leaves summed in tree order in float, the same output
 * transform).
 *
 * Threads: qv_forest_predict() is re-entrant and does not allocate, lock or
 * make a system call; build and destroy are for the loading thread.
 */
#ifndef QV_FOREST_H
#define QV_FOREST_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"

typedef struct qv_forest qv_forest; /* opaque; defined in forest.c */

/* Which trees to use, in boosting rounds (XGBoost's iteration_range):
 * [begin, end); end 0 means every round. */
struct qv_forest_range {
    int begin, end;
};

/* Builds a forest from XGBoost JSON model text (json, len bytes). On success
 * *out owns the forest (qv_forest_destroy). QV_ENOTSUP with the reason in d
 * when the model uses something the forest does not evaluate (a booster
 * other than gbtree, categorical splits, vector leaves, an objective not
 * covered): the caller then uses libxgboost. QV_EINVAL for a range past the
 * model's rounds or a malformed tree. */
int qv_forest_build(const char *json, size_t len, struct qv_forest_range range, qv_forest **out,
                    struct qv_diag *d);
void qv_forest_destroy(qv_forest *f); /* NULL is a no-op */

uint32_t qv_forest_n_features(const qv_forest *f);
/* Values per row of qv_forest_predict's output: the class count for
 * multi:softprob, else 1 (multi:softmax gives the class index). */
uint32_t qv_forest_n_outputs(const qv_forest *f);
/* Boosting rounds in the model (all of them, whatever the range). */
int qv_forest_n_rounds(const qv_forest *f);
const char *qv_forest_objective(const qv_forest *f);
size_t qv_forest_memory(const qv_forest *f);

/* Predicts rows x [rows][n_features] (row-major float32, NaN = missing) into
 * out [rows][n_outputs]. Any thread; no allocation, lock or system call. */
void qv_forest_predict(const qv_forest *f, const float *x, size_t rows, float *out);

/* The forest's split points (feature, threshold), in tree order, at most cap
 * of them; returns how many there are in all. For tests and tools. */
size_t qv_forest_splits(const qv_forest *f, uint32_t *feature, float *threshold, size_t cap);

/* The compiled forest of a state loaded by the xgboost backend; NULL when
 * libxgboost predicts for it. For tests and benchmarks (xgboost.c). */
const qv_forest *qv__xgb_forest(const void *state);

#endif /* QV_FOREST_H */
