/* SPDX-License-Identifier: MIT
 *
 * The compiled forest of the xgboost backend against libxgboost itself: every
 * model in tests/unit/backend/forest (written by scripts/make_forest_models.py)
 * and every example XGBoost model is loaded with both engines, and both
 * predict the same 10,000 rows (a fixed seed: NaNs, values exactly at the
 * model's thresholds and one float either side, ordinary values); the
 * largest difference must be at most 1e-6. Also: the Python package's own
 * predictions, what falls back to libxgboost, "engine" and "iteration_end"
 * parameters, and trees that are not trees.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/forest.h"
#include "backend/ubj_check.h"

#define N_ROWS 10000
#define TOLERANCE 1e-6

static char *src_path(const char *rel)
{
    const char *s = getenv("QV_SOURCE_DIR");
    size_t n = strlen(s ? s : ".") + strlen(rel) + 2;
    char *p = malloc(n);

    snprintf(p, n, "%s/%s", s ? s : ".", rel);
    return p;
}

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* Loads path with "engine" set to engine (NULL: not set) and optional
 * "iteration_end". Returns the backend's error. */
static int load(const char *path, const char *engine, const char *iter_end, void **state,
                struct qv_diag *d)
{
    struct qv_signature declared;
    struct qv_kv kv[2];
    int n = 0;
    struct qv_backend_params p;

    memset(&declared, 0, sizeof(declared));
    if (engine) {
        kv[n].key = "engine";
        kv[n++].value = engine;
    }
    if (iter_end) {
        kv[n].key = "iteration_end";
        kv[n++].value = iter_end;
    }
    p = (struct qv_backend_params){.version_dir = ".", .threads = 1, .declared = &declared,
                                   .params = kv, .n_params = n};
    memset(d, 0, sizeof(*d));
    return qv_backend_load(qv_backend_find("xgboost"), path, &p, state, d);
}

static const char *engine_of(void *state)
{
    static struct qv_signature sig;

    assert_int_equal(qv_backend_describe(qv_backend_find("xgboost"), state, &sig), QV_OK);
    return sig.engine;
}

/* Predicts rows [n][nf] with a loaded state; returns the owned output. */
static float *predict(void *state, const float *x, int64_t n, int64_t nf, int64_t *n_values)
{
    struct qv_tensor in, out[QV_MAX_IO];
    struct qv_diag d = {{0}};
    int n_out = 0;
    float *res;

    memset(&in, 0, sizeof(in));
    memset(out, 0, sizeof(out));
    snprintf(in.name, sizeof(in.name), "input__0");
    in.dtype = QV_DTYPE_F32;
    in.ndim = 2;
    in.shape[0] = n;
    in.shape[1] = nf;
    in.data = (void *)x;
    in.nbytes = (size_t)(n * nf) * sizeof(float);
    assert_int_equal(qv_backend_infer(qv_backend_find("xgboost"), state, &in, 1, out, &n_out, &d),
                     QV_OK);
    assert_int_equal(n_out, 1);
    assert_int_equal(out[0].shape[0], n);
    *n_values = (int64_t)(out[0].nbytes / sizeof(float));
    res = malloc(out[0].nbytes);
    memcpy(res, out[0].data, out[0].nbytes);
    qv_tensor_fini(&out[0]);
    return res;
}

/* 10,000 rows: per value, 10% NaN, 30% a threshold of that feature exactly,
 * 15% one float above or below one, the rest spread values (some huge). */
static float *make_rows(const qv_forest *f, uint32_t nf, uint64_t seed)
{
    size_t n_splits = qv_forest_splits(f, NULL, NULL, 0);
    uint32_t *feat = calloc(n_splits + 1, sizeof(uint32_t));
    float *thr = calloc(n_splits + 1, sizeof(float));
    size_t *start = calloc(nf + 1, sizeof(size_t)), *count = calloc(nf + 1, sizeof(size_t));
    float *by_feat = calloc(n_splits + 1, sizeof(float));
    float *x = malloc((size_t)N_ROWS * nf * sizeof(float));

    qv_forest_splits(f, feat, thr, n_splits);
    for (size_t i = 0; i < n_splits; i++)
        count[feat[i]]++;
    for (uint32_t j = 1; j <= nf; j++)
        start[j] = start[j - 1] + count[j - 1];
    memset(count, 0, (nf + 1) * sizeof(size_t));
    for (size_t i = 0; i < n_splits; i++)
        by_feat[start[feat[i]] + count[feat[i]]++] = thr[i];

    rng_state = seed;
    for (size_t r = 0; r < N_ROWS; r++) {
        for (uint32_t j = 0; j < nf; j++) {
            double u = unif();
            float v;
            if (u < 0.10) {
                v = NAN;
            } else if (u < 0.55 && count[j] > 0) {
                v = by_feat[start[j] + rnd() % count[j]];
                if (u >= 0.40)
                    v = nextafterf(v, u < 0.475 ? INFINITY : -INFINITY);
            } else {
                double g = (unif() + unif() + unif() + unif() - 2.0) * 2.5;
                v = (float)(unif() < 0.02 ? g * 1e30 : g);
            }
            x[r * nf + j] = v;
        }
    }
    free(feat);
    free(thr);
    free(start);
    free(count);
    free(by_feat);
    return x;
}

static double max_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;

    for (int64_t i = 0; i < n; i++) {
        double dd = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i]))
            return INFINITY;
        if (!isnan(a[i]) && dd > worst)
            worst = dd;
    }
    return worst;
}

/* Both engines on the same rows, whole batch and row by row. */
static void compare_engines(const char *path, const char *iter_end, uint64_t seed)
{
    void *lib = NULL, *comp = NULL;
    struct qv_diag d;
    const qv_forest *f;
    float *x, *a, *b;
    int64_t na, nb;
    uint32_t nf;
    double worst;

    assert_int_equal(load(path, "libxgboost", iter_end, &lib, &d), QV_OK);
    assert_int_equal(load(path, NULL, iter_end, &comp, &d), QV_OK);
    assert_string_equal(engine_of(lib), "libxgboost");
    assert_string_equal(engine_of(comp), "compiled");
    assert_null(qv__xgb_forest(lib));
    f = qv__xgb_forest(comp);
    assert_non_null(f);
    nf = qv_forest_n_features(f);
    x = make_rows(f, nf, seed);
    a = predict(lib, x, N_ROWS, nf, &na);
    b = predict(comp, x, N_ROWS, nf, &nb);
    assert_int_equal(na, nb);
    assert_int_equal(na, (int64_t)N_ROWS * qv_forest_n_outputs(f));
    worst = max_diff(a, b, na);
    if (worst > TOLERANCE)
        fail_msg("%s: max abs difference %g over %d rows", path, worst, N_ROWS);
    print_message("%s: max abs difference %g over %d rows\n", strrchr(path, '/') + 1, worst,
                  N_ROWS);
    /* Batch 1 walks the same trees as the blocked batch. */
    for (int r = 0; r < 200; r++) {
        int64_t n1;
        float *one = predict(comp, x + (size_t)r * nf, 1, nf, &n1);
        uint32_t k = qv_forest_n_outputs(f);
        assert_int_equal(n1, k);
        assert_memory_equal(one, b + (size_t)r * k, k * sizeof(float));
        free(one);
    }
    free(a);
    free(b);
    free(x);
    qv_backend_unload(qv_backend_find("xgboost"), lib);
    qv_backend_unload(qv_backend_find("xgboost"), comp);
}

static void test_generated_models(void **state)
{
    char *dir = src_path("tests/unit/backend/forest"), line[256], file[128], engine[32];
    char manifest[4096];
    FILE *mf;
    int n = 0;

    (void)state;
    snprintf(manifest, sizeof(manifest), "%s/MANIFEST", dir);
    mf = fopen(manifest, "r");
    assert_non_null(mf);
    while (fgets(line, sizeof(line), mf)) {
        char path[4096];
        int nf;
        void *st = NULL;
        struct qv_diag d;
        if (sscanf(line, "%127s %d %31s", file, &nf, engine) != 3)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        if (strcmp(engine, "compiled") == 0) {
            compare_engines(path, NULL, 42 + (uint64_t)n);
        } else {
            /* Not compiled: the library predicts, and "compiled" is refused. */
            assert_int_equal(load(path, NULL, NULL, &st, &d), QV_OK);
            assert_string_equal(engine_of(st), "libxgboost");
            assert_null(qv__xgb_forest(st));
            qv_backend_unload(qv_backend_find("xgboost"), st);
            assert_int_equal(load(path, "compiled", NULL, &st, &d), QV_ENOTSUP);
            assert_non_null(strstr(d.msg, "parameters.engine"));
        }
        n++;
    }
    fclose(mf);
    assert_true(n >= 10);
    free(dir);
}

/* The Python package's predictions (written with the models) agree too. */
static void test_python_predictions(void **state)
{
    char *dir = src_path("tests/unit/backend/forest"), line[256], file[128], engine[32];
    char path[4096];
    FILE *mf;

    (void)state;
    snprintf(path, sizeof(path), "%s/MANIFEST", dir);
    mf = fopen(path, "r");
    assert_non_null(mf);
    while (fgets(line, sizeof(line), mf)) {
        int nf;
        void *st = NULL;
        struct qv_diag d;
        float x[64 * 64], want[64 * 8], *got;
        int64_t n;
        FILE *fp;
        char *dot;
        if (sscanf(line, "%127s %d %31s", file, &nf, engine) != 3 || nf > 64)
            continue;
        if (strcmp(engine, "compiled") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        assert_int_equal(load(path, NULL, NULL, &st, &d), QV_OK);
        dot = strrchr(path, '.');
        snprintf(dot, sizeof(path) - (size_t)(dot - path), ".rows.f32");
        fp = fopen(path, "rb");
        assert_non_null(fp);
        assert_int_equal(fread(x, sizeof(float) * (size_t)nf, 64, fp), 64);
        fclose(fp);
        got = predict(st, x, 64, nf, &n);
        assert_true(n <= 64 * 8);
        snprintf(dot, sizeof(path) - (size_t)(dot - path), ".pred.f32");
        fp = fopen(path, "rb");
        assert_non_null(fp);
        assert_int_equal(fread(want, sizeof(float), (size_t)n, fp), (size_t)n);
        fclose(fp);
        if (max_diff(got, want, n) > TOLERANCE)
            fail_msg("%s: differs from the Python package by %g", path, max_diff(got, want, n));
        free(got);
        qv_backend_unload(qv_backend_find("xgboost"), st);
    }
    fclose(mf);
    free(dir);
}

static void test_example_models(void **state)
{
    static const char *const models[] = {"examples/models/fraud/1/model.json",
                                         "examples/models/fraud/2/model.ubj",
                                         "examples/models/housing/1/model.json"};

    (void)state;
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        char *p = src_path(models[i]);
        compare_engines(p, NULL, 7 + i);
        free(p);
    }
}

/* iteration_end selects rounds the same way in both engines, also with
 * several classes and parallel trees per round; and it changes the answer. */
static void test_iteration_end(void **state)
{
    static const struct {
        const char *file, *end;
    } cases[] = {{"early_d3_r60.json", "best"},
                 {"softprob_d5_r40.ubj", "3"},
                 {"forest_d5_r10_p4.ubj", "2"},
                 {"bin_d4_r100.ubj", "1"}};
    char *dir = src_path("tests/unit/backend/forest"), path[4096];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *all = NULL, *part = NULL;
        struct qv_diag d;
        float *a, *b, *x;
        int64_t na, nb;
        uint32_t nf;

        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
        compare_engines(path, cases[i].end, 100 + i);
        assert_int_equal(load(path, NULL, NULL, &all, &d), QV_OK);
        assert_int_equal(load(path, NULL, cases[i].end, &part, &d), QV_OK);
        nf = qv_forest_n_features(qv__xgb_forest(all));
        x = make_rows(qv__xgb_forest(all), nf, 5);
        a = predict(all, x, 100, nf, &na);
        b = predict(part, x, 100, nf, &nb);
        assert_true(max_diff(a, b, na) > 1e-4);
        free(a);
        free(b);
        free(x);
        qv_backend_unload(qv_backend_find("xgboost"), all);
        qv_backend_unload(qv_backend_find("xgboost"), part);
    }
    snprintf(path, sizeof(path), "%s/bin_d4_r100.ubj", dir);
    {
        void *st = NULL;
        struct qv_diag d;
        assert_int_equal(load(path, NULL, "101", &st, &d), QV_EINVAL);
        assert_non_null(strstr(d.msg, "parameters.iteration_end"));
        assert_int_equal(load(path, NULL, "-1", &st, &d), QV_EINVAL);
        assert_int_equal(load(path, NULL, "ten", &st, &d), QV_EINVAL);
        /* "best" is best_iteration + 1 (here every round). */
        assert_int_equal(load(path, NULL, "best", &st, &d), QV_OK);
        qv_backend_unload(qv_backend_find("xgboost"), st);
        assert_int_equal(load(path, "fast", NULL, &st, &d), QV_EINVAL);
        assert_non_null(strstr(d.msg, "parameters.engine"));
    }
    free(dir);
}

/* Hand-written models: trees that are not trees are refused, not walked. */
static const char *model_json(char *buf, size_t cap, const char *left, const char *right,
                              const char *feat)
{
    snprintf(buf, cap,
             "{\"learner\":{\"gradient_booster\":{\"name\":\"gbtree\",\"model\":{"
             "\"gbtree_model_param\":{\"num_parallel_tree\":\"1\",\"num_trees\":\"1\"},"
             "\"tree_info\":[0],\"trees\":[{\"tree_param\":{\"num_nodes\":\"3\","
             "\"size_leaf_vector\":\"0\"},\"left_children\":%s,\"right_children\":%s,"
             "\"split_indices\":%s,\"split_conditions\":[0.5,-1.0,2.0],"
             "\"default_left\":[1,0,0],\"split_type\":[0,0,0],\"categories_nodes\":[]}]}},"
             "\"learner_model_param\":{\"base_score\":\"5E-1\",\"num_class\":\"0\","
             "\"num_feature\":\"2\",\"num_target\":\"1\"},"
             "\"objective\":{\"name\":\"reg:squarederror\"}}}",
             left, right, feat);
    return buf;
}

static void test_malformed_trees(void **state)
{
    char j[2048];
    struct qv_forest_range all = {0, 0};
    qv_forest *f = NULL;
    struct qv_diag d = {{0}};
    float x[2 * 3] = {0.25f, 0, 0.5f, 0, NAN, 0}, out[3];

    (void)state;
    model_json(j, sizeof(j), "[1,-1,-1]", "[2,-1,-1]", "[0,0,0]");
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_OK);
    qv_forest_predict(f, x, 3, out);
    /* 0.5 + leaf: 0.25 < 0.5 goes left, 0.5 right, NaN the default (left). */
    assert_true(out[0] == -0.5f && out[1] == 2.5f && out[2] == -0.5f);
    qv_forest_destroy(f);
    f = NULL;
    /* A cycle, a child that is the root, a shared child, an index past the
     * end, a feature past num_feature. */
    model_json(j, sizeof(j), "[1,0,-1]", "[2,2,-1]", "[0,0,0]");
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_EINVAL);
    model_json(j, sizeof(j), "[0,-1,-1]", "[2,-1,-1]", "[0,0,0]");
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_EINVAL);
    model_json(j, sizeof(j), "[1,-1,-1]", "[1,-1,-1]", "[0,0,0]");
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_EINVAL);
    model_json(j, sizeof(j), "[1,-1,-1]", "[3,-1,-1]", "[0,0,0]");
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_EINVAL);
    model_json(j, sizeof(j), "[1,-1,-1]", "[2,-1,-1]", "[2,0,0]");
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_EINVAL);
    /* A node count the arrays do not have is refused. */
    model_json(j, sizeof(j), "[1,-1,-1]", "[2,-1,-1]", "[0,0,0]");
    memcpy(strstr(j, "\"num_nodes\":\"3\""), "\"num_nodes\":\"9\"", 15);
    assert_int_equal(qv_forest_build(j, strlen(j), all, &f, &d), QV_EINVAL);
    assert_null(f);
    assert_int_equal(qv_forest_build("{", 1, all, &f, &d), QV_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_trees),
        cmocka_unit_test(test_generated_models),
        cmocka_unit_test(test_python_predictions),
        cmocka_unit_test(test_example_models),
        cmocka_unit_test(test_iteration_end),
    };

    qv_xgb_check_disable();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
