/* SPDX-License-Identifier: MIT
 *
 * Corrupt model artifacts against the real server: one-bit corruptions of a
 * valid XGBoost UBJSON model (some of which crash libxgboost) are refused by
 * the artifact check -- the bounds-checked UBJSON walk or the `quiver model
 * check` child process -- and marked UNAVAILABLE with a one-line reason,
 * while every other version keeps serving. Also `quiver model check` itself
 * and the cleaning of load-failure reasons.
 */
#include "harness.h"

/* Deterministic one-bit corruptions of examples/models/fraud/2/model.ubj:
 * a key length and a typed-array count past the end (caught by the UBJSON
 * walk), and two tree arrays that make libxgboost 1.7 dereference wild
 * indices (caught only by the child-process check). */
static const struct flip {
    long offset;
    int bit;
    bool crashes_library;
} flips[] = {
    {6, 0, false},
    {30310, 0, false},
    {31307, 3, true},
    {60220, 0, true},
};

/* Writes a copy of fraud/2's model with one bit flipped to 'path'. */
static void write_corrupt(const char *path, const struct flip *f)
{
    char src[600];
    size_t len = 0;
    unsigned char *b;
    FILE *fp;

    snprintf(src, sizeof(src), "%s/examples/models/fraud/2/model.ubj", h_env("QV_SOURCE_DIR"));
    b = (unsigned char *)h_read_file(src, &len);
    assert_non_null(b);
    assert_true((size_t)f->offset < len);
    b[f->offset] ^= (unsigned char)(1u << f->bit);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    free(b);
}

/* Adds fraud version v (atomically, via a staging dir) with 'artifact' as its
 * model file: a corrupt copy when f is not NULL, else raw text. */
static void add_version(struct h_srv *s, int v, const struct flip *f, const char *name,
                        const char *text)
{
    char stage[600], to[600], file[700];

    snprintf(stage, sizeof(stage), "%s/fraud/.staging-%d", s->repo, v);
    snprintf(to, sizeof(to), "%s/fraud/%d", s->repo, v);
    h_mkdir("%s", stage);
    snprintf(file, sizeof(file), "%s/%s", stage, name);
    if (f != NULL)
        write_corrupt(file, f);
    else
        h_write_file(file, text);
    assert_int_equal(rename(stage, to), 0);
}

static char *one_row(void)
{
    float x[30];

    for (int i = 0; i < 30; i++)
        x[i] = (float)i * 0.1f;
    return h_kserve_body("r", "features", x, 1, 30);
}

static void expect_infer(const struct h_srv *s, int v, long status)
{
    char path[128], *body = one_row();
    struct h_resp r;

    snprintf(path, sizeof(path), "/v2/models/fraud/versions/%d/infer", v);
    r = h_post(s, path, body);
    if (r.status != status)
        fail_msg("%s: expected %ld, got %ld %s", path, status, r.status, r.body);
    h_resp_free(&r);
    free(body);
}

/* True when every byte of s is printable ASCII or part of valid UTF-8 and
 * there is no line break (jansson already refused invalid UTF-8 if the body
 * parsed; this checks the line). */
static bool one_line(const char *s)
{
    return strchr(s, '\n') == NULL && strchr(s, '\r') == NULL;
}

static void expect_unavailable(const struct h_srv *s, int v, const char *needle)
{
    char st[32], reason[256];

    h_wait_state(s, "fraud", v, "UNAVAILABLE");
    h_state_of(s, "fraud", v, st, sizeof(st), reason, sizeof(reason));
    if (strstr(reason, needle) == NULL)
        fail_msg("fraud/%d: reason \"%s\" does not mention \"%s\"", v, reason, needle);
    assert_true(one_line(reason));
    print_message("fraud/%d: %s\n", v, reason);
}

static bool server_alive(const struct h_srv *s)
{
    return s->pid > 0 && kill(s->pid, 0) == 0 && waitpid(s->pid, NULL, WNOHANG) == 0;
}

static void test_hot_added_corrupt_ubj_never_reaches_the_server(void **state)
{
    struct h_srv *s = *state;
    struct h_loop *l;
    char *body = one_row();
    int v = 3;

    h_copy_examples(s);
    h_start(s, "--poll-ms", "100", NULL);
    h_wait_state(s, "fraud", 2, "READY");
    l = h_loop_start(s, "/v2/models/fraud/versions/1/infer", body);
    h_loop_advance(l, 5);

    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++, v++) {
        add_version(s, v, &flips[i], "model.ubj", NULL);
        expect_unavailable(s, v, flips[i].crashes_library ? "artifact check failed"
                                                          : "malformed UBJSON");
        assert_true(server_alive(s));
        expect_infer(s, 2, 200);
        expect_infer(s, v, 503);
    }
    h_loop_advance(l, 5);
    h_loop_stop(l);
    if (atomic_load(&l->failed) != 0)
        fail_msg("%ld of %ld requests failed; first: %s", atomic_load(&l->failed),
                 atomic_load(&l->total), l->first_failure);
    expect_infer(s, 1, 200);
    expect_infer(s, 2, 200);
    free(body);
    h_stop_ok(s);
}

/* A corrupt version present at startup: the server starts (no crash loop) and
 * serves the others. */
static void test_corrupt_ubj_at_startup(void **state)
{
    struct h_srv *s = *state;

    h_copy_examples(s);
    add_version(s, 3, &flips[2], "model.ubj", NULL);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 2, "READY");
    expect_unavailable(s, 3, "artifact check failed");
    expect_infer(s, 2, 200);
    assert_true(server_alive(s));
    h_stop_ok(s);
}

/* L7: a load failure quoting artifact bytes (invalid UTF-8, control bytes,
 * several lines) is summarised to one clean line; the metadata endpoint
 * stays valid JSON. With and without the child-process check. */
static void test_failure_reason_is_one_clean_line(void **state)
{
    struct h_srv *s = *state;
    const char *junk = "{\"learner\": \xff\xfe\x01\x02 \"\n\n\x1b[31mgarbage\n}";
    struct h_resp r;
    char st[32], reason[256];

    h_copy_examples(s);
    add_version(s, 3, NULL, "model.json", junk);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 2, "READY");
    h_wait_state(s, "fraud", 3, "UNAVAILABLE");
    r = h_get(s, "/v2/models/fraud");
    assert_int_equal(r.status, 200);
    assert_non_null(r.json); /* valid JSON, hence valid UTF-8 */
    h_resp_free(&r);
    h_state_of(s, "fraud", 3, st, sizeof(st), reason, sizeof(reason));
    assert_true(one_line(reason));
    assert_null(strchr(reason, '\x1b'));
    assert_null(strstr(reason, "Stack trace"));
    assert_non_null(strstr(reason, "artifact check failed"));
    print_message("fraud/3: %s\n", reason);
    h_stop_ok(s);

    /* The same, loaded in process (check turned off for the model). */
    h_writef("{\"backend\": \"xgboost\", \"max_batch_size\": 64,"
             " \"inputs\": [{\"name\": \"features\", \"datatype\": \"FP32\", \"shape\": [-1, 30]}],"
             " \"outputs\": [{\"name\": \"probability\", \"datatype\": \"FP32\", \"shape\": [-1]}],"
             " \"parameters\": {\"artifact_check\": \"off\"}, \"version_policy\": {\"all\": {}}}\n",
             "%s/fraud/config.json", s->repo);
    h_start(s, NULL);
    h_wait_state(s, "fraud", 2, "READY");
    h_wait_state(s, "fraud", 3, "UNAVAILABLE");
    r = h_get(s, "/v2/models/fraud");
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    h_resp_free(&r);
    h_state_of(s, "fraud", 3, st, sizeof(st), reason, sizeof(reason));
    assert_true(one_line(reason));
    assert_null(strchr(reason, '\x1b'));
    assert_null(strstr(reason, "Stack trace"));
    assert_non_null(strstr(reason, "cannot load model"));
    assert_null(strstr(reason, "artifact check failed"));
    print_message("fraud/3: %s\n", reason);
    h_stop_ok(s);
}

/* `quiver model check`: 0 and "ok" for a good artifact, 1 and one line for a
 * corrupt one, 2 for bad usage. */
static void test_model_check_command(void **state)
{
    struct h_srv *s = *state;
    char path[600], out[700], cmd[2048];
    char *text;

    snprintf(path, sizeof(path), "%s/bad.ubj", s->dir);
    snprintf(out, sizeof(out), "%s/out.txt", s->dir);
    write_corrupt(path, &flips[0]);

    snprintf(cmd, sizeof(cmd), "'%s' model check '%s/examples/models/fraud/2/model.ubj' > '%s'",
             h_env("QUIVER_BIN"), h_env("QV_SOURCE_DIR"), out);
    assert_int_equal(system(cmd), 0);
    text = h_read_file(out, NULL);
    assert_non_null(text);
    assert_int_equal(strncmp(text, "ok: xgboost", 11), 0);
    free(text);

    snprintf(cmd, sizeof(cmd), "'%s' model check --max-memory-mb 4096 --timeout 60 '%s' > '%s'",
             h_env("QUIVER_BIN"), path, out);
    {
        int rc = system(cmd);
        assert_true(WIFEXITED(rc));
        assert_int_equal(WEXITSTATUS(rc), 1);
    }
    text = h_read_file(out, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "error: malformed UBJSON at byte"));
    assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
    free(text);

    snprintf(cmd, sizeof(cmd), "'%s' model check --max-memory-mb x '%s' 2>/dev/null",
             h_env("QUIVER_BIN"), path);
    {
        int rc = system(cmd);
        assert_true(WIFEXITED(rc));
        assert_int_equal(WEXITSTATUS(rc), 2);
    }
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_model_check_command),
    H_TEST(test_hot_added_corrupt_ubj_never_reaches_the_server),
    H_TEST(test_corrupt_ubj_at_startup),
    H_TEST(test_failure_reason_is_one_clean_line),
};

H_MAIN(tests)
