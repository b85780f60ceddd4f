/* SPDX-License-Identifier: MIT
 *
 * The engine's control side under contention, for ThreadSanitizer: a sync
 * reconciles many models in parallel while versions are loaded and unloaded
 * by request, the memory budget evicts idle versions of other models, config
 * and artifact edits start new generations, and requests and metadata reads
 * run meanwhile. Every answer given must be right; the budget must hold.
 */
#include "engine_fixture.h"

#define N_MODELS 10
#define MIB (1024 * 1024)

struct shared {
    qv_engine *e;
    _Atomic bool stop;
    _Atomic int answered, wrong;
};

static void model_name(char *out, size_t len, int i)
{
    snprintf(out, len, "m%02d", i);
}

static void *client_main(void *arg)
{
    struct shared *s = arg;
    unsigned seed = 7;

    while (!atomic_load(&s->stop)) {
        char name[16];
        int err, i = (int)(rand_r(&seed) % N_MODELS);
        int64_t v = 1 + (int64_t)(rand_r(&seed) % 2);
        float y;

        model_name(name, sizeof(name), i);
        y = fx_infer(s->e, name, v, 4, 1.0f, &err);
        if (err)
            continue; /* evicted, unloaded, reloading: refused is fine, wrong is not */
        atomic_fetch_add(&s->answered, 1);
        /* Version v computes scale v (or 3v after an edit) times the mean. */
        if (fabsf(y - fx_expect(1.0f, 0, 4, (double)v)) > 1e-4f &&
            fabsf(y - fx_expect(1.0f, 0, 4, 3.0 * (double)v)) > 1e-4f)
            atomic_fetch_add(&s->wrong, 1);
    }
    return NULL;
}

static void *control_main(void *arg)
{
    struct shared *s = arg;
    unsigned seed = 11;

    while (!atomic_load(&s->stop)) {
        char name[16];
        struct qv_diag d = {{0}};
        int i = (int)(rand_r(&seed) % N_MODELS);
        int64_t v = 1 + (int64_t)(rand_r(&seed) % 2);

        model_name(name, sizeof(name), i);
        if (rand_r(&seed) % 2)
            qv_engine_load_version(s->e, name, v, &d);
        else
            qv_engine_unload_version(s->e, name, v, &d);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    struct shared *s = arg;

    while (!atomic_load(&s->stop)) {
        char (*names)[QV_MODEL_NAME_MAX];
        int n = 0;

        qv_engine_model_names(s->e, &names, &n);
        for (int i = 0; i < n; i++) {
            struct qv_model_info info;
            if (qv_engine_model_info(s->e, names[i], &info) == QV_OK)
                qv_model_info_free(&info);
            qv_engine_is_ready(s->e, names[i], 1);
        }
        free(names);
        (void)qv_engine_is_ready_all(s->e);
    }
    return NULL;
}

static void test_parallel_reconcile_races(void **state)
{
    struct shared s;
    pthread_t clients[2], control, reader;
    qv_monitor *mon;
    const char *env = getenv("QV_RACE_ROUNDS");
    int rounds = env ? atoi(env) : 30;

    (void)state;
    fx_repo_new();
    for (int i = 0; i < N_MODELS; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "m%02d/config.json", i);
        fx_write(rel, "{\"backend\": \"test\", \"max_batch_size\": 4}");
        for (int v = 1; v <= 2; v++) {
            char text[200];
            snprintf(rel, sizeof(rel), "m%02d/%d/model.test", i, v);
            snprintf(text, sizeof(text),
                     "{\"features\": 4, \"linear\": true, \"scale\": %d, \"memory_bytes\": %d}", v,
                     MIB);
            fx_write(rel, text);
        }
    }
    memset(&s, 0, sizeof(s));
    /* Room for about half the versions: loads evict idle ones of other models. */
    s.e = fx_engine(&mon, 11 * MIB, 1);
    assert_int_equal(pthread_create(&clients[0], NULL, client_main, &s), 0);
    assert_int_equal(pthread_create(&clients[1], NULL, client_main, &s), 0);
    assert_int_equal(pthread_create(&control, NULL, control_main, &s), 0);
    assert_int_equal(pthread_create(&reader, NULL, reader_main, &s), 0);
    for (int r = 0; r < rounds; r++) {
        char rel[64], text[200];
        int i = r % N_MODELS;
        /* Edits that start new generations, then a sync of everything. */
        if (r % 3 == 0) {
            snprintf(rel, sizeof(rel), "m%02d/config.json", i);
            snprintf(text, sizeof(text), "{\"backend\": \"test\", \"max_batch_size\": %d}",
                     4 + r % 5);
            fx_write(rel, text);
        } else if (r % 3 == 1) {
            snprintf(rel, sizeof(rel), "m%02d/1/model.test", i);
            snprintf(text, sizeof(text),
                     "{\"features\": 4, \"linear\": true, \"scale\": %d, \"memory_bytes\": %d}",
                     r % 2 ? 3 : 1, MIB);
            fx_write(rel, text);
        }
        qv_engine_sync(s.e);
        assert_true(qv_engine_memory_used(s.e) <= 11 * MIB);
    }
    atomic_store(&s.stop, true);
    pthread_join(clients[0], NULL);
    pthread_join(clients[1], NULL);
    pthread_join(control, NULL);
    pthread_join(reader, NULL);
    print_message("%d answers during %d syncs\n", atomic_load(&s.answered), rounds);
    assert_int_equal(atomic_load(&s.wrong), 0);
    assert_true(atomic_load(&s.answered) > 0);
    qv_engine_destroy(s.e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* Listing the repository (model info: every version's state and reason,
 * whether the model was unloaded by request) while whole models are loaded
 * and unloaded by request: the listing reads what the loads write. */
struct lister {
    qv_engine *e;
    _Atomic bool stop;
    _Atomic int listed, bad;
};

static void *lister_main(void *arg)
{
    struct lister *l = arg;

    while (!atomic_load(&l->stop)) {
        char (*names)[QV_MODEL_NAME_MAX];
        int n = 0;

        qv_engine_model_names(l->e, &names, &n);
        for (int i = 0; i < n; i++) {
            struct qv_model_info info;
            if (qv_engine_model_info(l->e, names[i], &info) != QV_OK)
                continue;
            for (int k = 0; k < info.n_versions; k++)
                if (info.versions[k].state == QV_STATE_READY && info.versions[k].reason[0])
                    atomic_fetch_add(&l->bad, 1); /* a READY version has no reason */
            atomic_fetch_add(&l->listed, 1);
            qv_model_info_free(&info);
        }
        free(names);
    }
    return NULL;
}

static void test_model_info_during_model_load_unload(void **state)
{
    struct lister l;
    pthread_t th[2];
    qv_monitor *mon;
    const char *env = getenv("QV_RACE_ROUNDS");
    int rounds = env ? atoi(env) * 2 : 60;
    struct qv_model_info info;

    (void)state;
    fx_repo_new();
    for (int i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "m%02d/config.json", i);
        fx_write(rel, "{\"backend\": \"test\"}");
        snprintf(rel, sizeof(rel), "m%02d/1/model.test", i);
        fx_write(rel, "{\"features\": 4, \"linear\": true, \"scale\": 1}");
    }
    memset(&l, 0, sizeof(l));
    l.e = fx_engine(&mon, 0, 0);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, lister_main, &l), 0);
    for (int r = 0; r < rounds; r++) {
        struct qv_diag d = {{0}};
        char name[16];
        model_name(name, sizeof(name), r % 2);
        if ((r / 2) % 2 == 0)
            assert_int_equal(qv_engine_unload_model(l.e, name, &d), QV_OK);
        else
            assert_int_equal(qv_engine_load_model(l.e, name, &d), QV_OK);
    }
    atomic_store(&l.stop, true);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    assert_true(atomic_load(&l.listed) > 0);
    assert_int_equal(atomic_load(&l.bad), 0);
    /* The last round loaded both models again. */
    for (int i = 0; i < 2; i++) {
        char name[16];
        model_name(name, sizeof(name), i);
        assert_int_equal(qv_engine_model_info(l.e, name, &info), QV_OK);
        assert_true(info.asked_for); /* not unloaded through the API */
        assert_int_equal(info.n_versions, 1);
        assert_int_equal(info.versions[0].state, QV_STATE_READY);
        qv_model_info_free(&info);
    }
    {
        struct qv_diag d = {{0}};
        assert_int_equal(qv_engine_unload_model(l.e, "m00", &d), QV_OK);
        assert_int_equal(qv_engine_model_info(l.e, "m00", &info), QV_OK);
        assert_false(info.asked_for); /* unloaded through the API */
        qv_model_info_free(&info);
    }
    qv_engine_destroy(l.e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_reconcile_races),
        cmocka_unit_test(test_model_info_during_model_load_unload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
