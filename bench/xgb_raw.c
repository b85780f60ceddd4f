/* SPDX-License-Identifier: MIT
 *
 * The floor under quiver's XGBoost latency: libxgboost's own prediction time for one request,
 * with no HTTP, JSON or queue in the way. Loads a model, reads the rows of a KServe v2 request
 * body, and times XGBoosterPredictFromDense with the same configuration the xgboost backend
 * uses (src/backend/xgboost.c: in-place prediction, nthread 1, the same array interface and
 * predict config). Not a test: bench/run.sh compiles and runs it.
 *
 *   xgb_raw MODEL REQUEST.json [CALLS] [WARMUP]
 *
 * Prints one line of key=value pairs on stdout:
 *   raw calls=N rows=R p50_us=.. p99_us=.. mean_us=.. first=<first output value>
 */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xgboost/c_api.h>

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Reads inputs[0] of a KServe v2 body: a flat FP32 array and its [rows, cols] shape. */
static float *read_rows(const char *path, long long *rows, long long *cols)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr), *in, *data, *shape;
    float *buf = NULL;
    size_t n;

    if (root == NULL) {
        fprintf(stderr, "xgb_raw: %s:%d: %s\n", path, jerr.line, jerr.text);
        return NULL;
    }
    in = json_array_get(json_object_get(root, "inputs"), 0);
    data = json_object_get(in, "data");
    shape = json_object_get(in, "shape");
    if (!json_is_array(data) || json_array_size(shape) != 2) {
        fprintf(stderr, "xgb_raw: %s: expected inputs[0] with data and a 2-d shape\n", path);
        goto out;
    }
    *rows = json_integer_value(json_array_get(shape, 0));
    *cols = json_integer_value(json_array_get(shape, 1));
    n = json_array_size(data);
    if (*rows <= 0 || *cols <= 0 || (size_t)(*rows * *cols) != n) {
        fprintf(stderr, "xgb_raw: %s: shape does not match %zu values\n", path, n);
        goto out;
    }
    buf = malloc(n * sizeof(*buf));
    if (buf == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)json_number_value(json_array_get(data, i));
out:
    json_decref(root);
    return buf;
}

int main(int argc, char **argv)
{
    const char *config = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0,"
                         " \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN,"
                         " \"cache_id\": 0}";
    BoosterHandle booster = NULL;
    long long rows = 0, cols = 0, calls, warmup;
    const bst_ulong *oshape = NULL;
    const float *res = NULL;
    bst_ulong odim = 0;
    double *t = NULL, sum = 0;
    float *x = NULL, first = 0;
    char iface[192];
    int rc = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: xgb_raw MODEL REQUEST.json [CALLS] [WARMUP]\n");
        return 2;
    }
    calls = argc > 3 ? atoll(argv[3]) : 20000;
    warmup = argc > 4 ? atoll(argv[4]) : 2000;
    if (calls < 1 || warmup < 0) {
        fprintf(stderr, "xgb_raw: CALLS must be >= 1 and WARMUP >= 0\n");
        return 2;
    }
    x = read_rows(argv[2], &rows, &cols);
    t = malloc((size_t)calls * sizeof(*t));
    if (x == NULL || t == NULL)
        goto out;
    if (XGBoosterCreate(NULL, 0, &booster) != 0 || XGBoosterLoadModel(booster, argv[1]) != 0 ||
        XGBoosterSetParam(booster, "nthread", "1") != 0) {
        fprintf(stderr, "xgb_raw: %s: %s\n", argv[1], XGBGetLastError());
        goto out;
    }
    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%lld, %lld], \"typestr\": \"<f4\","
             " \"version\": 3}",
             (unsigned long long)(uintptr_t)x, rows, cols);
    for (long long i = 0; i < warmup + calls; i++) {
        double t0 = now_us();

        if (XGBoosterPredictFromDense(booster, iface, config, NULL, &oshape, &odim, &res) != 0) {
            fprintf(stderr, "xgb_raw: prediction failed: %s\n", XGBGetLastError());
            goto out;
        }
        if (i >= warmup)
            t[i - warmup] = now_us() - t0;
    }
    first = res[0];
    for (long long i = 0; i < calls; i++)
        sum += t[i];
    qsort(t, (size_t)calls, sizeof(*t), cmp_double);
    printf("raw calls=%lld rows=%lld p50_us=%.2f p99_us=%.2f mean_us=%.2f first=%.9g\n", calls,
           rows, t[(calls - 1) * 50 / 100], t[(calls - 1) * 99 / 100], sum / (double)calls,
           (double)first);
    rc = 0;
out:
    if (booster != NULL)
        XGBoosterFree(booster);
    free(t);
    free(x);
    return rc;
}
