/* SPDX-License-Identifier: MIT
 *
 * router/compare.c -- choosing among, or combining, the outputs of several versions
 * for one request (compare policy), and measuring how much a shadow agrees with
 * the primary. Pure functions over float arrays; no allocation.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "router_int.h"

/* The class of one row: argmax for several columns (first on ties), threshold 0.5
 * for a single column. */
static size_t row_class(const float *row, size_t cols)
{
    size_t best = 0;

    if (cols == 1)
        return row[0] >= 0.5f ? 1 : 0;
    for (size_t j = 1; j < cols; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

static void select_mean(const float *const *outs, int n, size_t count, float *combined)
{
    for (size_t k = 0; k < count; k++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += outs[i][k];
        combined[k] = (float)(s / n);
    }
}

static void select_majority(const float *const *outs, int n, size_t rows, size_t cols,
                            float *combined)
{
    size_t cls[QV_ROUTE_MAX_COMPARE * 4];
    int max_n = (int)QV_ARRAY_LEN(cls);

    assert(n <= max_n);
    for (size_t r = 0; r < rows; r++) {
        int winner = 0, winner_votes = 0;
        for (int i = 0; i < n; i++)
            cls[i] = row_class(outs[i] + r * cols, cols);
        /* The first version whose class gets strictly more votes than any earlier
         * candidate wins: ties go to the class voted first. */
        for (int i = 0; i < n; i++) {
            int votes = 0;
            for (int j = 0; j < n; j++)
                votes += cls[j] == cls[i];
            if (votes > winner_votes) {
                winner = i;
                winner_votes = votes;
            }
        }
        memcpy(combined + r * cols, outs[winner] + r * cols, cols * sizeof(float));
    }
}

int qv_compare_select(enum qv_select mode, const float *const *outs, int n, size_t rows,
                      size_t cols, const double *scores, float *combined, int *chosen)
{
    if (n < 1 || outs == NULL || chosen == NULL)
        return QV_EINVAL;
    switch (mode) {
    case QV_SELECT_FIRST:
        *chosen = 0;
        return 0;
    case QV_SELECT_BEST_SCORE:
        *chosen = 0;
        if (scores != NULL) {
            double best = INFINITY;
            for (int i = 0; i < n; i++)
                if (isfinite(scores[i]) && scores[i] < best) {
                    best = scores[i];
                    *chosen = i;
                }
        }
        return 0;
    case QV_SELECT_MEAN:
        if (combined == NULL || cols == 0)
            return QV_EINVAL;
        select_mean(outs, n, rows * cols, combined);
        *chosen = -1;
        return 0;
    case QV_SELECT_MAJORITY:
        if (combined == NULL || cols == 0 || n > QV_ROUTE_MAX_COMPARE * 4)
            return QV_EINVAL;
        select_majority(outs, n, rows, cols, combined);
        *chosen = -1;
        return 0;
    }
    return QV_EINVAL;
}

void qv_compare_agreement(const float *a, const float *b, size_t rows, size_t cols,
                          struct qv_agreement *out)
{
    double sum = 0, max = 0;

    memset(out, 0, sizeof(*out));
    out->rows = rows;
    for (size_t r = 0; cols > 0 && r < rows; r++) {
        if (row_class(a + r * cols, cols) == row_class(b + r * cols, cols))
            out->same_class++;
        for (size_t j = 0; j < cols; j++) {
            double diff = fabs((double)a[r * cols + j] - (double)b[r * cols + j]);
            sum += diff;
            if (diff > max)
                max = diff;
        }
    }
    out->agree_rate = rows > 0 ? (double)out->same_class / (double)rows : 1.0;
    out->mean_abs_diff = rows * cols > 0 ? sum / (double)(rows * cols) : 0.0;
    out->max_abs_diff = max;
}
