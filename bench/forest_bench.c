/* SPDX-License-Identifier: MIT
 *
 * The compiled forest (src/backend/forest.c) against libxgboost's in-place
 * prediction on the same model, in process, one thread each: batch 1 (time
 * per call) and batch 64 (rows per second). libxgboost is called exactly as
 * the xgboost backend calls it (nthread 1, the same array interface and
 * predict config). Rows are random (fixed seed, 10% NaN); both engines'
 * outputs are compared first. Not a test: built by CMake as `forest_bench`
 * (not part of `all`), run by bench/run.sh.
 *
 *   forest_bench MODEL [SECONDS_PER_CASE]
 *
 * Prints, per batch size, one line of key=value pairs:
 *   forest batch=1 libxgboost_us=.. compiled_us=.. speedup=..
 *   forest batch=64 libxgboost_rows_s=.. compiled_rows_s=.. speedup=..
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xgboost/c_api.h>

#include "backend/forest.h"

#define N_ROWS 4096

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *predict_config =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0,"
    " \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";

static int lib_predict(BoosterHandle h, const float *x, int rows, uint64_t nf, float *out,
                       size_t n_out)
{
    char iface[192];
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;

    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%d, %llu], \"typestr\": \"<f4\","
             " \"version\": 3}",
             (unsigned long long)(uintptr_t)x, rows, (unsigned long long)nf);
    if (XGBoosterPredictFromDense(h, iface, predict_config, NULL, &shape, &dim, &res) != 0)
        return -1;
    memcpy(out, res, n_out * sizeof(float));
    return 0;
}

/* Seconds per call of one engine at one batch size, over about `budget` s. */
static double time_case(BoosterHandle h, const qv_forest *f, const float *x, uint64_t nf,
                        int batch, float *out, double budget)
{
    size_t n_out = (size_t)batch * qv_forest_n_outputs(f);
    long calls = 0, per_round = batch == 1 ? 2000 : 100;
    double t0 = now_s(), t = t0;

    while (t - t0 < budget) {
        for (long i = 0; i < per_round; i++) {
            const float *rows = x + (size_t)((calls + i) * batch % (N_ROWS - batch)) * nf;
            if (h != NULL)
                lib_predict(h, rows, batch, nf, out, n_out);
            else
                qv_forest_predict(f, rows, (size_t)batch, out);
        }
        calls += per_round;
        t = now_s();
    }
    return (t - t0) / (double)calls;
}

int main(int argc, char **argv)
{
    BoosterHandle h = NULL;
    bst_ulong nf = 0, len = 0;
    const char *json = NULL;
    qv_forest *f = NULL;
    struct qv_diag d = {{0}};
    struct qv_forest_range all = {0, 0};
    double budget = argc > 2 ? atof(argv[2]) : 1.0, worst = 0;
    float *x, *a, *b;
    uint64_t s = 12345;

    if (argc < 2) {
        fprintf(stderr, "usage: forest_bench MODEL [SECONDS_PER_CASE]\n");
        return 2;
    }
    if (XGBoosterCreate(NULL, 0, &h) != 0 || XGBoosterLoadModel(h, argv[1]) != 0 ||
        XGBoosterSetParam(h, "nthread", "1") != 0 || XGBoosterGetNumFeature(h, &nf) != 0 ||
        XGBoosterSaveModelToBuffer(h, "{\"format\": \"json\"}", &len, &json) != 0) {
        fprintf(stderr, "forest_bench: %s\n", XGBGetLastError());
        return 1;
    }
    if (qv_forest_build(json, (size_t)len, all, &f, &d) != 0) {
        fprintf(stderr, "forest_bench: the model is not compiled: %s\n", d.msg);
        return 1;
    }
    x = malloc((size_t)N_ROWS * nf * sizeof(float));
    a = malloc((size_t)N_ROWS * qv_forest_n_outputs(f) * sizeof(float));
    b = malloc((size_t)N_ROWS * qv_forest_n_outputs(f) * sizeof(float));
    for (size_t i = 0; i < (size_t)N_ROWS * nf; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (s >> 40) % 10 == 0 ? NAN : ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 6.0f;
    }
    /* Same answers first. */
    lib_predict(h, x, N_ROWS, nf, a, (size_t)N_ROWS * qv_forest_n_outputs(f));
    qv_forest_predict(f, x, N_ROWS, b);
    for (size_t i = 0; i < (size_t)N_ROWS * qv_forest_n_outputs(f); i++)
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    printf("forest model=%s rows=%d max_abs_diff=%g\n", argv[1], N_ROWS, worst);

    {
        double lib1 = time_case(h, f, x, nf, 1, a, budget);
        double com1 = time_case(NULL, f, x, nf, 1, b, budget);
        double lib64 = time_case(h, f, x, nf, 64, a, budget);
        double com64 = time_case(NULL, f, x, nf, 64, b, budget);

        printf("forest batch=1 libxgboost_us=%.3f compiled_us=%.3f speedup=%.1f goal=10\n",
               lib1 * 1e6, com1 * 1e6, lib1 / com1);
        printf("forest batch=64 libxgboost_rows_s=%.0f compiled_rows_s=%.0f speedup=%.1f "
               "goal=2\n", 64 / lib64, 64 / com64, lib64 / com64);
    }
    qv_forest_destroy(f);
    XGBoosterFree(h);
    free(x);
    free(a);
    free(b);
    return worst <= 1e-6 ? 0 : 1;
}
