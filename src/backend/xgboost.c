/* SPDX-License-Identifier: MIT
 *
 * The XGBoost backend, on libxgboost's C API. The only file that sees
 * <xgboost/c_api.h>. Loads XGBoost JSON and UBJSON models; predicts on dense
 * FP32 batches with the compiled forest (forest.c), built at load from the
 * model as libxgboost saves it to JSON, or, for what the forest does not
 * cover, with XGBoosterPredictFromDense (in-place prediction, which the
 * library documents as thread-safe).
 */
#define _GNU_SOURCE /* pipe2 */
#include "backend_impl.h"

#define QV_LOG_MODULE "xgboost"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "forest.h"
#include "ubj_check.h"

extern char **environ;

#define XGB_MAX_ARTIFACT ((size_t)4 << 30)      /* 4 GiB */
#define XGB_CHECK_TIMEOUT_S 60u                 /* default for artifact_check_timeout_s */
#define XGB_CHECK_MEMORY_MB 4096u               /* default floor for artifact_check_memory_mb */
#define XGB_CHECK_CACHE 64                      /* verdicts remembered, by SHA-256 */
#define XGB_CHILD_ENV "QV_MODEL_CHECK_CHILD=1"  /* set in the checker's environment */

struct xgb_model {
    BoosterHandle booster;
    uint64_t n_features;
    int n_outputs;  /* per row: 1 for binary/regression/multi:softmax, k for multi:softprob */
    size_t memory;  /* serialized size, as the in-memory trees' proxy */
    qv_forest *forest; /* NULL: predictions by libxgboost */
    char config[200];
};

/* libxgboost's messages can span lines (a stack trace) and quote artifact
 * bytes: the whole text goes to the log, the reason keeps the first line. */
static int xgb_error(struct qv_diag *d, const char *what)
{
    const char *full = XGBGetLastError();

    qv_log(QV_LOG_WARN, "%s: %s", what, full ? full : "");
    return qv_fail(d, QV_EBACKEND, "%s: %s", what, full ? full : "unknown error");
}

/* ---- The artifact check ----
 * Before libxgboost parses an artifact in the server's process, the same
 * bytes are loaded and probed (one prediction) by `quiver model check` in a
 * child process with an address-space limit and a deadline. A crash, a
 * signal, a limit or a refusal there makes the load fail with the reason;
 * the server is never exposed. Verdicts are cached by SHA-256, so reloading
 * the same bytes does not check them again. */

static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER;
static char checker_path[4096];      /* Guarded by check_mu; "" = default. */
static atomic_bool check_disabled;
static struct {
    char sha[QV_SHA256_HEX];
    unsigned memory_mb, timeout_s; /* the limits the verdict was reached under */
    bool ok;
    char reason[sizeof(((struct qv_diag *)0)->msg)];
} check_cache[XGB_CHECK_CACHE]; /* Guarded by check_mu. */
static unsigned check_next;     /* Guarded by check_mu. */

void qv_xgb_set_checker_path(const char *path)
{
    pthread_mutex_lock(&check_mu);
    snprintf(checker_path, sizeof(checker_path), "%s", path ? path : "");
    pthread_mutex_unlock(&check_mu);
}

void qv_xgb_check_disable(void)
{
    atomic_store(&check_disabled, true);
}

void qv_xgb_check_cache_clear(void)
{
    pthread_mutex_lock(&check_mu);
    memset(check_cache, 0, sizeof(check_cache));
    check_next = 0;
    pthread_mutex_unlock(&check_mu);
}

static void sha256_hex(const unsigned char *buf, size_t len, char hex[QV_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    hex[0] = '\0';
    if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) != 1)
        return;
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static bool cache_get(const char *sha, unsigned memory_mb, unsigned timeout_s, bool *ok,
                      char *reason, size_t cap)
{
    bool hit = false;

    pthread_mutex_lock(&check_mu);
    for (int i = 0; i < XGB_CHECK_CACHE && !hit; i++) {
        if (strcmp(check_cache[i].sha, sha) == 0 && check_cache[i].memory_mb == memory_mb &&
            check_cache[i].timeout_s == timeout_s) {
            *ok = check_cache[i].ok;
            snprintf(reason, cap, "%s", check_cache[i].reason);
            hit = true;
        }
    }
    pthread_mutex_unlock(&check_mu);
    return hit;
}

static void cache_put(const char *sha, unsigned memory_mb, unsigned timeout_s, bool ok,
                      const char *reason)
{
    pthread_mutex_lock(&check_mu);
    snprintf(check_cache[check_next].sha, QV_SHA256_HEX, "%s", sha);
    check_cache[check_next].memory_mb = memory_mb;
    check_cache[check_next].timeout_s = timeout_s;
    check_cache[check_next].ok = ok;
    snprintf(check_cache[check_next].reason, sizeof(check_cache[0].reason), "%s", reason);
    check_next = (check_next + 1) % XGB_CHECK_CACHE;
    pthread_mutex_unlock(&check_mu);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGTRAP: return "SIGTRAP";
    default: return "?";
    }
}

static const char *param(const struct qv_backend_params *p, const char *key)
{
    for (int i = 0; p != NULL && p->params != NULL && i < p->n_params; i++)
        if (p->params[i].key != NULL && strcmp(p->params[i].key, key) == 0)
            return p->params[i].value;
    return NULL;
}

static bool is_off(const char *v)
{
    return v != NULL && (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 ||
                         strcmp(v, "off") == 0 || strcmp(v, "no") == 0);
}

static unsigned param_uint(const struct qv_backend_params *p, const char *key, unsigned dflt,
                           unsigned max)
{
    const char *v = param(p, key);
    char *end;
    unsigned long n;

    if (v == NULL)
        return dflt;
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n == 0 || n > max)
        return dflt;
    return (unsigned)n;
}

/* Runs `CHECKER model check --max-memory-mb M --expect-sha256 SHA PATH` and
 * waits at most timeout_s. 0 when the checker said "ok"; otherwise a reason. */
static int run_checker(const char *path, const char *sha, unsigned memory_mb, unsigned timeout_s,
                       char *reason, size_t cap)
{
    char exe[4096], mem[24], out[512];
    const char *env_bin = getenv("QUIVER_BIN");
    char *argv[9];
    char **envp;
    size_t n_env = 0, got = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int pfd[2], rc, status = 0;
    pid_t pid;
    uint64_t deadline;
    bool exited = false, killed = false, pipe_open = true;

    pthread_mutex_lock(&check_mu);
    snprintf(exe, sizeof(exe), "%s",
             checker_path[0] ? checker_path
                             : (env_bin && *env_bin ? env_bin : "/proc/self/exe"));
    pthread_mutex_unlock(&check_mu);
    snprintf(mem, sizeof(mem), "%u", memory_mb);
    argv[0] = exe;
    argv[1] = "model";
    argv[2] = "check";
    argv[3] = "--max-memory-mb";
    argv[4] = mem;
    argv[5] = "--expect-sha256";
    argv[6] = (char *)sha;
    argv[7] = (char *)path;
    argv[8] = NULL;

    /* The environment, after (so getenv finds them first) a marker -- a
     * checker never starts checkers -- and one OpenMP thread and few malloc
     * arenas, so that the address-space limit measures the model, not the
     * machine's core count. */
    while (environ != NULL && environ[n_env] != NULL)
        n_env++;
    envp = calloc(n_env + 4, sizeof(char *));
    if (envp == NULL) {
        snprintf(reason, cap, "cannot start the artifact check: out of memory");
        return -1;
    }
    envp[0] = (char *)XGB_CHILD_ENV;
    envp[1] = (char *)"OMP_NUM_THREADS=1";
    envp[2] = (char *)"MALLOC_ARENA_MAX=2";
    for (size_t i = 0; i < n_env; i++)
        envp[3 + i] = environ[i];

    if (pipe2(pfd, O_CLOEXEC) != 0) {
        free(envp);
        snprintf(reason, cap, "cannot start the artifact check: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* The server's sockets and files stay with the server. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&pid, exe, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(envp);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        snprintf(reason, cap, "cannot start the artifact check (%s): %s", exe, strerror(rc));
        return -1;
    }

    deadline = qv_now_ns() + (uint64_t)timeout_s * 1000000000ull;
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    while (!exited) {
        struct pollfd pf = {.fd = pipe_open ? pfd[0] : -1, .events = POLLIN};
        pid_t w;

        /* With the pipe closed (fd -1), poll just waits 20 ms. */
        if (poll(&pf, 1, 20) > 0) {
            char tmp[256];
            ssize_t r = read(pfd[0], tmp, sizeof(tmp));
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                pipe_open = false;
            if (r > 0 && got < sizeof(out) - 1) {
                size_t take = (size_t)r < sizeof(out) - 1 - got ? (size_t)r : sizeof(out) - 1 - got;
                memcpy(out + got, tmp, take);
                got += take;
            }
        }
        w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) {
            exited = w == pid;
            break;
        }
        if (!killed && qv_now_ns() > deadline) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    if (!exited) {
        close(pfd[0]);
        snprintf(reason, cap, "cannot wait for the artifact check: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t r = got < sizeof(out) - 1 ? read(pfd[0], out + got, sizeof(out) - 1 - got) : 0;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(pfd[0]);
    out[got] = '\0';
    qv_reason_clean(out);

    if (killed) {
        snprintf(reason, cap, "artifact check failed: no verdict within %u s", timeout_s);
        return -1;
    }
    if (WIFSIGNALED(status)) {
        snprintf(reason, cap, "artifact check failed: killed by signal %d (%s)",
                 WTERMSIG(status), signal_name(WTERMSIG(status)));
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strncmp(out, "ok", 2) == 0)
        return 0;
    if (strncmp(out, "error: ", 7) == 0)
        snprintf(reason, cap, "artifact check failed: %s", out + 7);
    else
        snprintf(reason, cap, "artifact check failed: the checker exited with status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
}

/* Checks the bytes about to be loaded: the UBJSON structure in process, then
 * the child-process load and probe (unless turned off). */
static int check_artifact(const char *path, const unsigned char *buf, size_t len,
                          const struct qv_backend_params *p, struct qv_diag *d)
{
    char sha[QV_SHA256_HEX], reason[sizeof(d->msg)];
    const char *env_switch = getenv("QUIVER_ARTIFACT_CHECK");
    size_t n = strlen(path);
    bool ok = false;
    unsigned timeout_s, memory_mb;
    uint64_t floor_mb;

    if (n > 4 && strcmp(path + n - 4, ".ubj") == 0) {
        int err = qv_ubj_check(buf, len, d);
        if (err)
            return err;
    }
    if (atomic_load(&check_disabled) || getenv("QV_MODEL_CHECK_CHILD") != NULL ||
        is_off(env_switch) || is_off(param(p, "artifact_check")))
        return QV_OK;
    /* The trees take a few times the artifact's size; the floor leaves room
     * for the runtime itself. */
    floor_mb = XGB_CHECK_MEMORY_MB + (uint64_t)len / (1u << 20) * 16u;
    memory_mb = param_uint(p, "artifact_check_memory_mb",
                           floor_mb > 1u << 20 ? 1u << 20 : (unsigned)floor_mb, 1u << 20);
    timeout_s = param_uint(p, "artifact_check_timeout_s", XGB_CHECK_TIMEOUT_S, 3600);
    sha256_hex(buf, len, sha);
    if (cache_get(sha, memory_mb, timeout_s, &ok, reason, sizeof(reason)))
        return ok ? QV_OK : qv_fail(d, QV_EINVAL, "%s", reason);
    reason[0] = '\0';
    ok = run_checker(path, sha, memory_mb, timeout_s, reason, sizeof(reason)) == 0;
    if (!ok)
        qv_log(QV_LOG_WARN, "%s: %s", path, reason);
    /* A checker that could not start or ran out of time (a busy machine?)
     * says nothing for sure about the bytes: not remembered. */
    if (ok || (strncmp(reason, "artifact check failed", 21) == 0 &&
               strstr(reason, "no verdict within") == NULL))
        cache_put(sha, memory_mb, timeout_s, ok, reason);
    return ok ? QV_OK : qv_fail(d, QV_EINVAL, "%s", reason);
}

/* Reads num_class and the objective's name from the booster's
 * configuration, to describe the output. */
static int read_num_class(BoosterHandle h, char *objective, size_t cap)
{
    bst_ulong len = 0;
    const char *cfg = NULL;
    json_t *root, *learner, *v;
    int k = 0;

    objective[0] = '\0';
    if (XGBoosterSaveJsonConfig(h, &len, &cfg) != 0 || cfg == NULL)
        return 0;
    root = json_loadb(cfg, len, 0, NULL);
    learner = json_object_get(root, "learner");
    v = json_object_get(json_object_get(learner, "learner_model_param"), "num_class");
    if (json_is_string(v))
        k = atoi(json_string_value(v));
    v = json_object_get(json_object_get(learner, "objective"), "name");
    if (json_is_string(v))
        snprintf(objective, cap, "%s", json_string_value(v));
    json_decref(root);
    return k;
}

/* config "parameters": "iteration_end": a round count, "best" for the
 * model's best_iteration + 1, absent or 0 for every round (libxgboost's
 * default: it does not apply best_iteration itself). */
static int read_iteration_end(BoosterHandle h, const struct qv_backend_params *p, int *end,
                              struct qv_diag *d)
{
    const char *v = param(p, "iteration_end");
    int rounds = 0, success = 0;
    const char *best = NULL;
    char *stop;
    long n;

    *end = 0;
    if (v == NULL)
        return QV_OK;
    if (XGBoosterBoostedRounds(h, &rounds) != 0)
        return xgb_error(d, "cannot count the rounds");
    if (strcmp(v, "best") == 0) {
        if (XGBoosterGetAttr(h, "best_iteration", &best, &success) != 0 || !success ||
            best == NULL)
            return qv_fail(d, QV_EINVAL, "parameters.iteration_end: \"best\" but the model has"
                                         " no best_iteration");
        v = best;
    }
    errno = 0;
    n = strtol(v, &stop, 10);
    if (errno != 0 || stop == v || *stop != '\0' || n < 0 || n > rounds)
        return qv_fail(d, QV_EINVAL, "parameters.iteration_end: \"%s\" is not a round count"
                                     " from 0 to %d", v, rounds);
    *end = (int)n + (best != NULL ? 1 : 0);
    if (*end > rounds)
        return qv_fail(d, QV_EINVAL, "parameters.iteration_end: best_iteration %s is past the"
                                     " model's %d rounds", best, rounds);
    return QV_OK;
}

/* Builds the compiled forest from the booster's own JSON. "engine" in config
 * "parameters": absent or "auto" uses it when the model allows and falls
 * back to libxgboost (logged) otherwise; "compiled" requires it; "libxgboost"
 * never builds it. */
static int build_forest(struct xgb_model *m, const struct qv_backend_params *p, int iter_end,
                        struct qv_diag *d)
{
    const char *engine = param(p, "engine");
    const char *raw = NULL;
    bst_ulong len = 0;
    struct qv_diag why = {{0}};
    struct qv_forest_range range = {0, iter_end};
    qv_forest *f = NULL;
    int err;

    if (engine != NULL && strcmp(engine, "libxgboost") == 0)
        return QV_OK;
    if (engine != NULL && strcmp(engine, "auto") != 0 && strcmp(engine, "compiled") != 0)
        return qv_fail(d, QV_EINVAL, "parameters.engine: \"%s\" is not \"auto\", \"compiled\""
                                     " or \"libxgboost\"", engine);
    if (XGBoosterSaveModelToBuffer(m->booster, "{\"format\": \"json\"}", &len, &raw) != 0 ||
        raw == NULL) {
        qv_diag_set(&why, "cannot save the model as JSON: %s", XGBGetLastError());
        err = QV_EBACKEND;
    } else {
        err = qv_forest_build(raw, (size_t)len, range, &f, &why);
    }
    if (!err && (qv_forest_n_features(f) != m->n_features ||
                 qv_forest_n_outputs(f) != (uint32_t)m->n_outputs)) {
        qv_diag_set(&why, "the trees' shape differs from the booster's");
        err = QV_EBACKEND;
    }
    if (err) {
        qv_forest_destroy(f);
        qv_reason_clean(why.msg);
        if (engine != NULL && strcmp(engine, "compiled") == 0)
            return qv_fail(d, QV_ENOTSUP, "parameters.engine: \"compiled\" but %s", why.msg);
        qv_log(QV_LOG_INFO, "predicting with libxgboost: %s", why.msg);
        return QV_OK;
    }
    m->forest = f;
    m->memory += qv_forest_memory(f);
    return QV_OK;
}

static void xgb_unload(void *state)
{
    struct xgb_model *m = state;

    if (m == NULL)
        return;
    if (m->booster != NULL)
        XGBoosterFree(m->booster);
    qv_forest_destroy(m->forest);
    free(m);
}

static int xgb_load(const char *path, const struct qv_backend_params *p, void **state,
                    struct qv_diag *d)
{
    struct xgb_model *m = qv_xcalloc(1, sizeof(*m));
    bst_ulong feat = 0, len = 0;
    const char *raw = NULL;
    unsigned char *bytes = NULL;
    size_t n_bytes = 0;
    char nthread[16], objective[64];
    int err = QV_OK, iter_end = 0;

    /* The bytes checked are the bytes loaded: read once, check, load from memory. */
    err = qv_artifact_read(path, XGB_MAX_ARTIFACT, &bytes, &n_bytes, d);
    if (err)
        goto out;
    err = check_artifact(path, bytes, n_bytes, p, d);
    if (err)
        goto out;
    if (XGBoosterCreate(NULL, 0, &m->booster) != 0) {
        err = xgb_error(d, "cannot create booster");
        goto out;
    }
    if (XGBoosterLoadModelFromBuffer(m->booster, bytes, (bst_ulong)n_bytes) != 0) {
        err = xgb_error(d, "cannot load model");
        goto out;
    }
    snprintf(nthread, sizeof(nthread), "%d", p->threads > 0 ? p->threads : 1);
    if (XGBoosterSetParam(m->booster, "nthread", nthread) != 0) {
        err = xgb_error(d, "cannot set nthread");
        goto out;
    }
    if (XGBoosterGetNumFeature(m->booster, &feat) != 0 || feat == 0) {
        err = qv_fail(d, QV_EBACKEND, "model declares no features");
        goto out;
    }
    m->n_features = feat;
    m->n_outputs = read_num_class(m->booster, objective, sizeof(objective));
    /* multi:softmax predicts one class index per row. */
    if (m->n_outputs < 2 || strcmp(objective, "multi:softmax") == 0)
        m->n_outputs = 1;
    if (XGBoosterSaveModelToBuffer(m->booster, "{\"format\": \"ubj\"}", &len, &raw) == 0)
        m->memory = (size_t)len;
    err = read_iteration_end(m->booster, p, &iter_end, d);
    if (err)
        goto out;
    snprintf(m->config, sizeof(m->config),
             "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": %d,"
             " \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}", iter_end);
    err = build_forest(m, p, iter_end, d);
    if (err)
        goto out;
    *state = m;
    m = NULL;
out:
    free(bytes);
    xgb_unload(m);
    if (err && d != NULL)
        qv_reason_clean(d->msg);
    return err;
}

static int xgb_describe(const void *state, struct qv_signature *sig)
{
    const struct xgb_model *m = state;

    sig->n_inputs = 1;
    snprintf(sig->inputs[0].name, QV_NAME_MAX, "input__0");
    sig->inputs[0].dtype = QV_DTYPE_F32;
    sig->inputs[0].ndim = 2;
    sig->inputs[0].shape[0] = -1;
    sig->inputs[0].shape[1] = (int64_t)m->n_features;
    sig->n_outputs = 1;
    snprintf(sig->outputs[0].name, QV_NAME_MAX, "output__0");
    sig->outputs[0].dtype = QV_DTYPE_F32;
    sig->outputs[0].shape[0] = -1;
    if (m->n_outputs > 1) {
        sig->outputs[0].ndim = 2;
        sig->outputs[0].shape[1] = m->n_outputs;
    } else {
        sig->outputs[0].ndim = 1;
    }
    snprintf(sig->engine, sizeof(sig->engine), "%s", m->forest ? "compiled" : "libxgboost");
    return QV_OK;
}

static int xgb_infer(void *state, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                     int *n_out, struct qv_diag *d)
{
    struct xgb_model *m = state;
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    char iface[192];
    int64_t rows, oshape[2];
    int err;

    if (n_in != 1 || in[0].dtype != QV_DTYPE_F32 || in[0].ndim != 2 ||
        (uint64_t)in[0].shape[1] != m->n_features)
        return qv_fail(d, QV_EINVAL, "expected one FP32 input of shape [-1,%llu]",
                       (unsigned long long)m->n_features);
    rows = in[0].shape[0];
    if (m->forest != NULL) {
        oshape[0] = rows;
        oshape[1] = m->n_outputs;
        err = qv_tensor_alloc(&out[0], "output__0", QV_DTYPE_F32, m->n_outputs > 1 ? 2 : 1,
                              oshape);
        if (err)
            return qv_fail(d, err, "cannot allocate the output");
        qv_forest_predict(m->forest, in[0].data, (size_t)rows, out[0].data);
        *n_out = 1;
        return QV_OK;
    }
    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%lld, %llu], \"typestr\": \"<f4\","
             " \"version\": 3}",
             (unsigned long long)(uintptr_t)in[0].data, (long long)rows,
             (unsigned long long)m->n_features);
    if (XGBoosterPredictFromDense(m->booster, iface, m->config, NULL, &shape, &dim, &res) != 0) {
        err = xgb_error(d, "prediction failed");
        if (d != NULL)
            qv_reason_clean(d->msg);
        return err;
    }
    oshape[0] = rows;
    oshape[1] = m->n_outputs;
    err = qv_tensor_alloc(&out[0], "output__0", QV_DTYPE_F32, m->n_outputs > 1 ? 2 : 1, oshape);
    if (err)
        return qv_fail(d, err, "cannot allocate the output");
    {
        bst_ulong total = 1;
        for (bst_ulong i = 0; i < dim; i++)
            total *= shape[i];
        if (total != (bst_ulong)(rows * m->n_outputs)) {
            qv_tensor_fini(&out[0]);
            return qv_fail(d, QV_EBACKEND, "prediction has %llu values, expected %lld",
                           (unsigned long long)total, (long long)(rows * m->n_outputs));
        }
    }
    memcpy(out[0].data, res, out[0].nbytes);
    *n_out = 1;
    return QV_OK;
}

const qv_forest *qv__xgb_forest(const void *state)
{
    return state != NULL ? ((const struct xgb_model *)state)->forest : NULL;
}

static size_t xgb_memory(const void *state)
{
    return ((const struct xgb_model *)state)->memory;
}

static const char *const xgb_exts[] = {".json", ".ubj", NULL};

const struct qv_backend qv_backend_xgboost = {
    .name = "xgboost",
    .file_exts = xgb_exts,
    .flags = QV_BACKEND_REENTRANT,
    .load = xgb_load,
    .unload = xgb_unload,
    .describe = xgb_describe,
    .infer = xgb_infer,
    .memory_used = xgb_memory,
};
