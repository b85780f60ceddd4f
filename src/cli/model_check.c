/* SPDX-License-Identifier: MIT
 *
 * `quiver model check [--max-memory-mb N] [--timeout S] [--expect-sha256 HEX] PATH`:
 * loads a model artifact with the backend its extension names and probes it
 * with one prediction of the declared width (every dynamic dimension 1,
 * zeros), then prints one line, "ok: ..." or "error: REASON", and exits 0 or
 * 1 (2 for bad usage). The xgboost backend runs it in a child process before
 * it loads an artifact in the server, so that a library crash on a corrupt
 * file takes down the checker, not the server.
 */
#include "cli.h"

#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../backend/backend.h"
#include "../backend/ubj_check.h"
#include "../util/util.h"

/* An address-space limit cannot coexist with the sanitizers' shadow memory. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MC_NO_RLIMIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                      \
    __has_feature(memory_sanitizer)
#define MC_NO_RLIMIT 1
#endif
#endif

static const char mc_usage[] =
    "usage: quiver model check [--max-memory-mb N] [--timeout S] [--expect-sha256 HEX] PATH\n"
    "  loads the artifact and runs one prediction; prints \"ok: ...\" and exits 0,\n"
    "  or prints \"error: REASON\" and exits 1\n";

#define MC_MAX_ARTIFACT ((size_t)4 << 30)

static int verdict_error(const char *reason)
{
    char line[sizeof(((struct qv_diag *)0)->msg) + 8];

    snprintf(line, sizeof(line), "%s", reason);
    qv_reason_clean(line);
    printf("error: %s\n", line[0] ? line : "unknown failure");
    fflush(stdout);
    return 1;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && *out > 0 && *out <= max && s[0] != '-';
}

static int check_sha(const char *path, const char *want, struct qv_diag *d)
{
    unsigned char *buf = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[QV_SHA256_HEX] = "";
    size_t len = 0;
    int err = qv_artifact_read(path, MC_MAX_ARTIFACT, &buf, &len, d);

    if (err)
        return err;
    if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) == 1)
        for (unsigned i = 0; i < n && i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    free(buf);
    if (strcmp(hex, want) != 0)
        return qv_fail(d, QV_EINVAL, "the artifact changed while it was being checked");
    return QV_OK;
}

/* Loads, describes and runs one prediction with zero inputs. */
static int probe(const struct qv_backend *be, const char *path, char *summary, size_t cap,
                 struct qv_diag *d)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    struct qv_backend_params p = {.threads = 1};
    struct qv_signature sig;
    struct qv_tensor in[QV_MAX_IO], out[QV_MAX_IO];
    void *state = NULL;
    int n_out = 0, err;

    memset(in, 0, sizeof(in));
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    p.version_dir = dir;
    err = qv_backend_load(be, path, &p, &state, d);
    if (err)
        return err;
    err = qv_backend_describe(be, state, &sig);
    if (err) {
        qv_backend_unload(be, state);
        return qv_fail(d, err, "cannot describe the model");
    }
    for (int i = 0; i < sig.n_inputs && !err; i++) {
        int64_t shape[QV_MAX_DIMS];
        for (int k = 0; k < sig.inputs[i].ndim; k++)
            shape[k] = sig.inputs[i].shape[k] < 0 ? 1 : sig.inputs[i].shape[k];
        err = qv_tensor_alloc(&in[i], sig.inputs[i].name, sig.inputs[i].dtype,
                              sig.inputs[i].ndim, shape);
        if (err)
            err = qv_fail(d, err, "cannot allocate probe input %s", sig.inputs[i].name);
    }
    if (!err)
        err = qv_backend_infer(be, state, in, sig.n_inputs, out, &n_out, d);
    for (int i = 0; i < sig.n_inputs; i++)
        qv_tensor_fini(&in[i]);
    for (int i = 0; !err && i < n_out; i++)
        qv_tensor_fini(&out[i]);
    qv_backend_unload(be, state);
    if (!err)
        snprintf(summary, cap, "%s model, %d input(s), %d output(s)", qv_backend_name(be),
                 sig.n_inputs, n_out);
    return err;
}

int qv_cli_model(int argc, char **argv)
{
    unsigned long memory_mb = 0, timeout_s = 0;
    const char *want_sha = NULL, *path = NULL;
    const struct qv_backend *be;
    struct qv_diag d = {{0}};
    char summary[160];
    int i;

    if (argc < 2 || strcmp(argv[1], "check") != 0) {
        fputs(mc_usage, argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--max-memory-mb") == 0 && i + 1 < argc) {
            if (!parse_uint(argv[++i], 1ul << 24, &memory_mb)) {
                fprintf(stderr, "quiver model check: --max-memory-mb: expected 1..%lu\n",
                        1ul << 24);
                return 2;
            }
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (!parse_uint(argv[++i], 86400, &timeout_s)) {
                fprintf(stderr, "quiver model check: --timeout: expected 1..86400 seconds\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--expect-sha256") == 0 && i + 1 < argc) {
            want_sha = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(mc_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' || path != NULL) {
            fprintf(stderr, "quiver model check: unexpected argument '%s'\n%s", argv[i],
                    mc_usage);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        fputs(mc_usage, stderr);
        return 2;
    }
    /* This process is the check: it must not start another one. */
#ifdef QV_WITH_XGBOOST
    qv_xgb_check_disable();
#endif
    qv_log_set_level(QV_LOG_ERROR);
    if (timeout_s > 0)
        alarm((unsigned)timeout_s);
#ifndef MC_NO_RLIMIT
    if (memory_mb > 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)memory_mb << 20, .rlim_max = (rlim_t)memory_mb << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            return verdict_error("cannot apply the memory limit");
    }
#endif
    be = qv_backend_for_file(path);
    if (be == NULL)
        return verdict_error("no backend serves this file extension");
    if (want_sha != NULL && check_sha(path, want_sha, &d) != QV_OK)
        return verdict_error(d.msg);
    if (probe(be, path, summary, sizeof(summary), &d) != QV_OK)
        return verdict_error(d.msg[0] ? d.msg : "the probe failed");
    printf("ok: %s\n", summary);
    fflush(stdout);
    return 0;
}
