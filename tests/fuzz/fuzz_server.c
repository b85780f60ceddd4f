/* SPDX-License-Identifier: MIT
 *
 * The in-memory server of tests/fuzz/fuzz_server.h.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz_server.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static struct fz_server *g_server;
static struct {
    char name[64], artifact[512];
} g_extra[8];
static int g_n_extra;

void fz_server_add_model(const char *name, const char *artifact)
{
    if (g_server != NULL || g_n_extra == (int)(sizeof(g_extra) / sizeof(g_extra[0])))
        abort();
    snprintf(g_extra[g_n_extra].name, sizeof(g_extra[0].name), "%s", name);
    snprintf(g_extra[g_n_extra].artifact, sizeof(g_extra[0].artifact), "%s", artifact);
    g_n_extra++;
}

int fz_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int bad;

    if (f == NULL)
        return -1;
    bad = len > 0 && fwrite(data, 1, len, f) != len;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void fz_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void must(int ok, const char *what, const struct qv_diag *d)
{
    if (!ok) {
        fprintf(stderr, "fuzz server: %s: %s\n", what, d ? d->msg : strerror(errno));
        abort();
    }
}

static void write_repo(const char *root)
{
    static const char config[] =
        "{\"backend\": \"test\", \"max_batch_size\": 8, \"max_queue_delay_us\": 100,\n"
        " \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [-1, 4]}],\n"
        " \"outputs\": [{\"name\": \"output__0\", \"datatype\": \"FP32\", \"shape\": [-1]}],\n"
        " \"version_policy\": {\"all\": {}},\n"
        " \"alerts\": [{\"name\": \"mem\", \"metric\": \"memory_bytes\", \"op\": \">=\", "
        "\"threshold\": 0}]}\n";
    static const char artifact[] = "{\"features\": 4, \"scale\": 1.0, \"linear\": true}\n";
    char path[512];

    for (int i = 0; i < g_n_extra; i++) {
        snprintf(path, sizeof(path), "%s/%s", root, g_extra[i].name);
        must(mkdir(path, 0700) == 0, path, NULL);
        snprintf(path, sizeof(path), "%s/%s/1", root, g_extra[i].name);
        must(mkdir(path, 0700) == 0, path, NULL);
        snprintf(path, sizeof(path), "%s/%s/1/model.test", root, g_extra[i].name);
        must(fz_write_file(path, g_extra[i].artifact, strlen(g_extra[i].artifact)) == 0, path,
             NULL);
    }

    snprintf(path, sizeof(path), "%s/m", root);
    must(mkdir(path, 0700) == 0, path, NULL);
    snprintf(path, sizeof(path), "%s/m/config.json", root);
    must(fz_write_file(path, config, sizeof(config) - 1) == 0, path, NULL);
    for (int v = 1; v <= 2; v++) {
        snprintf(path, sizeof(path), "%s/m/%d", root, v);
        must(mkdir(path, 0700) == 0, path, NULL);
        snprintf(path, sizeof(path), "%s/m/%d/model.test", root, v);
        must(fz_write_file(path, artifact, sizeof(artifact) - 1) == 0, path, NULL);
    }
}

static bool res_is_ready(void *ud, const char *model, int64_t version)
{
    return qv_engine_is_ready(ud, model, version);
}

static int64_t res_highest(void *ud, const char *model)
{
    int64_t v[QV_MAX_VERSIONS];
    int n = qv_engine_ready_versions(ud, model, v, QV_MAX_VERSIONS);

    return n > 0 ? v[n - 1] : 0;
}

struct fz_server *fz_server_get(void)
{
    struct qv_engine_config ecfg;
    struct qv_router_config rcfg;
    struct qv_diag d = {{0}};
    struct fz_server *s;
    const char *tmp = getenv("TMPDIR");

    if (g_server != NULL)
        return g_server;
    qv_log_set_level(QV_LOG_ERROR);
    s = calloc(1, sizeof(*s));
    must(s != NULL, "calloc", NULL);
    snprintf(s->root, sizeof(s->root), "%s/quiver-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    must(mkdtemp(s->root) != NULL, "mkdtemp", NULL);
    write_repo(s->root);

    must(qv_store_open("sqlite::memory:", &s->store, &d) == QV_OK, "store", &d);
    must(qv_monitor_create(&s->monitor) == QV_OK, "monitor", NULL);
    memset(&ecfg, 0, sizeof(ecfg));
    ecfg.repo_root = s->root;
    ecfg.workers = 2;
    ecfg.poll_ms = 3600 * 1000; /* no rescans while fuzzing: the repository never changes */
    ecfg.spin_us = -1;
    must(qv_engine_create(&ecfg, NULL, s->monitor, &s->engine, &d) == QV_OK, "engine", &d);
    memset(&rcfg, 0, sizeof(rcfg));
    rcfg.resolver.is_ready = res_is_ready;
    rcfg.resolver.highest_ready = res_highest;
    rcfg.resolver.ud = s->engine;
    rcfg.feedback_capacity = 1024;
    qv_router_create(&rcfg, &s->router);
    must(qv_engine_start(s->engine, &d) == QV_OK, "engine start", &d);
    must(qv_engine_is_ready(s->engine, "m", 1) && qv_engine_is_ready(s->engine, "m", 2),
         "model m not READY", &d);
    must(qv_control_create(s->engine, s->router, s->monitor, s->store, &s->control, &d) == QV_OK,
         "control", &d);
    s->api.cfg.max_body_bytes = 1 << 20;
    s->api.deps.engine = s->engine;
    s->api.deps.router = s->router;
    s->api.deps.monitor = s->monitor;
    s->api.deps.store = s->store;
    s->api.deps.control = s->control;
    g_server = s;
    return s;
}

void fz_server_destroy(void)
{
    struct fz_server *s = g_server;

    if (s == NULL)
        return;
    g_server = NULL;
    qv_control_destroy(s->control);
    qv_engine_destroy(s->engine);
    qv_router_destroy(s->router);
    qv_monitor_destroy(s->monitor);
    qv_store_close(s->store);
    qv__api_tokens_free(&s->api);
    fz_rmtree(s->root);
    free(s);
}

/* ---- One request ---- */

struct fz_req {
    struct qv_http_req r;
    const char *query;
    const char *auth;
    const char *hname, *hvalue; /* one more header, or NULL */
    char qbuf[256];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static const char *req_header(struct qv_http_req *r, const char *name)
{
    struct fz_req *q = (struct fz_req *)r;

    if (q->hname != NULL && strcasecmp(name, q->hname) == 0)
        return q->hvalue;
    return strcasecmp(name, "Authorization") == 0 ? q->auth : NULL;
}

/* "a=1&b=2": the value of name, or NULL. */
static const char *req_query(struct qv_http_req *r, const char *name)
{
    struct fz_req *q = (struct fz_req *)r;
    size_t n = strlen(name);
    const char *p = q->query;

    while (p != NULL && *p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t vlen = seg - n - 1;
            if (vlen >= sizeof(q->qbuf))
                vlen = sizeof(q->qbuf) - 1;
            memcpy(q->qbuf, p + n + 1, vlen);
            q->qbuf[vlen] = '\0';
            return q->qbuf;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void req_suspend(struct qv_http_req *r)
{
    (void)r;
}

static void req_complete(struct qv_http_req *r)
{
    struct fz_req *q = (struct fz_req *)r;

    pthread_mutex_lock(&q->mu);
    q->done = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void fz_request(struct fz_server *s, const char *method, const char *path, const char *query,
                const char *auth, const char *body, size_t body_len, struct fz_response *out)
{
    fz_request_hdr(s, method, path, query, auth, NULL, NULL, body, body_len, out);
}

void fz_request_hdr(struct fz_server *s, const char *method, const char *path, const char *query,
                    const char *auth, const char *hname, const char *hvalue, const char *body,
                    size_t body_len, struct fz_response *out)
{
    struct fz_req req, *q = &req; /* on the stack: the fault suite fails the heap */

    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->query = query;
    q->auth = auth;
    q->hname = hname;
    q->hvalue = hvalue;
    q->r.api = &s->api;
    q->r.deps = &s->api.deps;
    q->r.method = method;
    q->r.path = path;
    q->r.body = body;
    q->r.body_len = body_len;
    q->r.header = req_header;
    q->r.query = req_query;
    q->r.suspend = req_suspend;
    q->r.complete = req_complete;
    if (qv__api_dispatch(&q->r) == QV_API_PENDING) {
        pthread_mutex_lock(&q->mu);
        while (!q->done)
            pthread_cond_wait(&q->cv, &q->mu);
        pthread_mutex_unlock(&q->mu);
    }
    out->status = q->r.status;
    out->content_type = q->r.content_type;
    out->len = q->r.resp.len;
    out->body = qv_buf_take(&q->r.resp);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
}

void fz_response_free(struct fz_response *r)
{
    free(r->body);
    r->body = NULL;
}
