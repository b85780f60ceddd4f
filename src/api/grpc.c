/* SPDX-License-Identifier: MIT
 *
 * The KServe v2 gRPC service (inference.GRPCInferenceService) on its own
 * port, over gRPC's C core: one completion queue, a few threads that wait on
 * it, unary calls only. (A queue per thread was measured: the thread that
 * reads a call then wakes the queue's own thread for it, which costs more
 * than the threads' sharing one queue.) Each call's message becomes the REST request it
 * stands for (grpc_codec.c) and runs through qv__api_dispatch, as an HTTP
 * request does; the handler suspends it, the engine's worker completes it,
 * and the answer is sent from that worker (the core allows a batch from any
 * thread). No completion-queue thread waits for an inference.
 *
 * The service's methods are registered with the core, which reads the request
 * message before it reports the call: a call costs two completion-queue
 * events, its arrival and the end of the batch that answers it (which also
 * waits for the call's end, RECV_CLOSE_ON_SERVER). Other methods arrive as
 * unregistered calls and are answered UNIMPLEMENTED.
 *
 * A call holds one reference for the batch that answers it; the thread that
 * dispatches holds a second while it looks at the call. The last one frees
 * it. Only this file sees <grpc/...>.
 */
#include "grpc_int.h"
#include "access_log.h"

#define QV_LOG_MODULE "grpc"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define GRPC_MAX_THREADS 16
#define GRPC_INFER_ARMED 64     /* ModelInfer calls requested from the core at any time */
#define GRPC_OTHER_ARMED 2      /* ... of each other method, and of unregistered ones */
#define GRPC_MAX_HEADERS 8      /* metadata values header() hands out per call */

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_SHUTDOWN };

struct gcall;
/* A tag travels through the core to another thread: its kind is written
 * last (release) and read first (acquire), which publishes what the thread
 * that armed the call wrote into it. */
struct tag {
    _Atomic int kind;
    struct gcall *c;
};

struct gcall {
    struct qv_http_req r;   /* the REST request this call stands for */
    struct qv_grpc *g;
    grpc_call *call;
    grpc_call_details details; /* unregistered calls only */
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    grpc_slice status_msg;
    bool has_status_msg;
    int cancelled;
    struct tag t_new, t_recv, t_send;
    _Atomic int refs;
    enum qv_grpc_rpc rpc;      /* QV_GRPC_RPC_COUNT: an unregistered method */
    struct qv_grpc_rest rest;
    int n_hdr;
    char *hdr[GRPC_MAX_HEADERS];     /* header()'s answers, NUL-terminated copies */
    uint64_t t0;
    bool pended;
};

struct qv_grpc {
    struct qv_api *api;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *methods[QV_GRPC_RPC_COUNT]; /* grpc_server_register_method's handles */
    int port;
    int n_threads;
    pthread_t threads[GRPC_MAX_THREADS];
    struct tag t_shutdown;
    _Atomic bool stopping;
    _Atomic int inflight;       /* calls accepted and not yet freed */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool shutdown_done;         /* guarded by mu */
};

static void arm(struct qv_grpc *g, enum qv_grpc_rpc rpc);
static void run(struct gcall *c);

static void call_free(struct gcall *c)
{
    struct qv_grpc *g = c->g;
    bool accepted = c->call != NULL;

    if (c->call)
        grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    if (c->send)
        grpc_byte_buffer_destroy(c->send);
    if (c->has_status_msg)
        grpc_slice_unref(c->status_msg);
    for (int i = 0; i < c->n_hdr; i++)
        free(c->hdr[i]);
    qv__grpc_rest_fini(&c->rest);
    qv_buf_free(&c->r.resp);
    free(c);
    if (accepted && atomic_fetch_sub(&g->inflight, 1) == 1) {
        pthread_mutex_lock(&g->mu);
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->mu);
    }
}

static void call_put(struct gcall *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        call_free(c);
}

/* ---- The REST request's view of the call ---- */

static const char *get_header(struct qv_http_req *r, const char *name)
{
    struct gcall *c = (struct gcall *)r;

    /* The binary part's length is ours, whatever the client's metadata says. */
    if (strcasecmp(name, "Inference-Header-Content-Length") == 0)
        return c->rpc == QV_GRPC_MODEL_INFER ? c->rest.json_len_text : NULL;
    if (strcasecmp(name, "Content-Encoding") == 0)
        return NULL; /* gRPC's own compression is undone by the core */
    /* Metadata is read where the core left it, on demand (routes and the token
     * check ask for one or two keys); a value is copied to end it with NUL. */
    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *m = &c->md.metadata[i];
        size_t kl = GRPC_SLICE_LENGTH(m->key), vl = GRPC_SLICE_LENGTH(m->value);
        char *v;
        if (kl != strlen(name) ||
            strncasecmp((const char *)GRPC_SLICE_START_PTR(m->key), name, kl) != 0)
            continue;
        if (c->n_hdr >= GRPC_MAX_HEADERS || (v = malloc(vl + 1)) == NULL)
            return NULL;
        memcpy(v, GRPC_SLICE_START_PTR(m->value), vl);
        v[vl] = '\0';
        c->hdr[c->n_hdr++] = v;
        return v;
    }
    return NULL;
}

static const char *get_query(struct qv_http_req *r, const char *name)
{
    (void)r;
    (void)name;
    return NULL;
}

static void on_suspend(struct qv_http_req *r)
{
    ((struct gcall *)r)->pended = true;
}

static void on_body_done(struct qv_http_req *r)
{
    (void)r; /* the body is the call's; it goes with the call */
}

/* ---- Answers ---- */

/* Starts the batch that answers the call: metadata, the message (bb, may be
 * NULL) and the status, and waits for the call's end (the client may have
 * gone: the batch then fails, and the call is freed all the same). Takes
 * over the answer's reference. */
static void send_answer(struct gcall *c, int code, const char *msg, grpc_byte_buffer *bb)
{
    grpc_op ops[4];
    int n = 0;

    memset(ops, 0, sizeof(ops));
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n++].data.send_initial_metadata.count = 0;
    if (bb) {
        c->send = bb;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    if (msg && msg[0]) {
        c->status_msg = grpc_slice_from_copied_string(msg);
        c->has_status_msg = true;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n++].data.send_status_from_server.status_details = c->has_status_msg ? &c->status_msg
                                                                             : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    /* What this thread wrote into c is published through c->refs: the thread
     * that gets the batch's completion frees c after an acquiring call_put
     * (the core orders the two too, in code ThreadSanitizer does not see). */
    atomic_fetch_add_explicit(&c->refs, 0, memory_order_release);
    if (grpc_call_start_batch(c->call, ops, (size_t)n, &c->t_send, NULL) != GRPC_CALL_OK)
        call_put(c);
}

/* Any thread: the REST answer is in c->r; turn it into the call's answer. */
static void finish(struct gcall *c)
{
    struct qv_diag d = {{0}};
    uint8_t *buf = NULL;
    size_t len = 0;
    int code = QV_GRPC_INTERNAL;

    qv_access_log_request(&c->r, c->t0, c->r.resp.len, NULL, c->pended);
    if (qv__grpc_response(c->rpc, &c->rest, &c->r, &buf, &len, &code, &d) == QV_OK &&
        code == QV_GRPC_OK) {
        grpc_slice s = grpc_slice_new(buf, len, free);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        send_answer(c, QV_GRPC_OK, NULL, bb);
        return;
    }
    free(buf);
    if (code == QV_GRPC_OK)
        code = QV_GRPC_INTERNAL;
    send_answer(c, code, d.msg[0] ? d.msg : "request failed", NULL);
}

static void on_complete(struct qv_http_req *r)
{
    finish((struct gcall *)r);
}

/* ---- The call's steps ---- */

/* A call arrived: a registered one with its message, run it; an
 * unregistered one: read its message, to answer it. */
static void on_new(struct gcall *c, bool ok)
{
    struct qv_grpc *g = c->g;
    grpc_op op;

    if (!ok) { /* the server is shutting down */
        call_free(c);
        return;
    }
    atomic_fetch_add(&g->inflight, 1);
    if (!atomic_load(&g->stopping))
        arm(g, c->rpc);
    c->t0 = qv_now_ns();
    if (c->rpc != QV_GRPC_RPC_COUNT) {
        run(c);
        return;
    }
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
        call_put(c);
}

/* An unregistered method's message is in: answer UNIMPLEMENTED (or run it,
 * should a client reach one of ours by another path). */
static void on_recv(struct gcall *c, bool ok)
{
    char m[160];

    if (!ok) {
        send_answer(c, QV_GRPC_INVALID_ARGUMENT, "no request message", NULL);
        return;
    }
    c->rpc = qv__grpc_rpc_find((const char *)GRPC_SLICE_START_PTR(c->details.method),
                               GRPC_SLICE_LENGTH(c->details.method));
    if (c->rpc != QV_GRPC_RPC_COUNT) {
        run(c);
        return;
    }
    snprintf(m, sizeof(m), "unknown method %.*s", (int)GRPC_SLICE_LENGTH(c->details.method),
             (const char *)GRPC_SLICE_START_PTR(c->details.method));
    send_answer(c, QV_GRPC_UNIMPLEMENTED, m, NULL);
}

/* The request message is in c->recv: turn it into the REST request and
 * dispatch it. */
static void run(struct gcall *c)
{
    struct qv_grpc *g = c->g;
    struct qv_diag d = {{0}};
    grpc_byte_buffer_reader rd;
    grpc_slice msg;
    int code = QV_GRPC_OK, rc;

    if (c->recv == NULL) {
        /* The client sent no message (one over the limit is refused by the
         * core with RESOURCE_EXHAUSTED before the call is reported). */
        send_answer(c, QV_GRPC_INVALID_ARGUMENT, "no request message", NULL);
        return;
    }
    if (c->recv->type == GRPC_BB_RAW && c->recv->data.raw.compression == GRPC_COMPRESS_NONE &&
        c->recv->data.raw.slice_buffer.count == 1) {
        /* The usual small message: one slice, read in place, not copied. */
        msg = grpc_slice_ref(c->recv->data.raw.slice_buffer.slices[0]);
    } else {
        if (!grpc_byte_buffer_reader_init(&rd, c->recv)) {
            send_answer(c, QV_GRPC_INVALID_ARGUMENT, "cannot read the request message", NULL);
            return;
        }
        msg = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
    }
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    rc = qv__grpc_request(c->rpc, GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg), &c->rest,
                          &code, &d);
    grpc_slice_unref(msg);
    if (rc != QV_OK) {
        send_answer(c, code == QV_GRPC_OK ? QV_GRPC_INTERNAL : code, d.msg, NULL);
        return;
    }
    c->r.api = g->api;
    c->r.deps = &g->api->deps;
    c->r.method = c->rest.method;
    c->r.path = c->rest.path;
    c->r.body = c->rest.body.data ? c->rest.body.data : "";
    c->r.body_len = c->rest.body.len;
    c->r.header = get_header;
    c->r.query = get_query;
    c->r.conn = c;
    c->r.suspend = on_suspend;
    c->r.complete = on_complete;
    c->r.body_done = on_body_done;
    atomic_fetch_add(&c->refs, 1); /* this thread's, while it looks at c */
    rc = qv__api_dispatch(&c->r);
    if (rc != QV_API_PENDING)
        finish(c);
    call_put(c);
}

static void *cq_thread(void *arg)
{
    struct qv_grpc *g = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                   NULL);
        struct tag *t;

        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        t = ev.tag;
        switch (atomic_load_explicit(&t->kind, memory_order_acquire)) {
        case TAG_NEW: on_new(t->c, ev.success != 0); break;
        case TAG_RECV: on_recv(t->c, ev.success != 0); break;
        case TAG_SEND: call_put(t->c); break;
        case TAG_SHUTDOWN:
            pthread_mutex_lock(&g->mu);
            g->shutdown_done = true;
            pthread_cond_broadcast(&g->cond);
            pthread_mutex_unlock(&g->mu);
            break;
        }
    }
}

/* Asks the core for one more incoming call of method 'rpc' (QV_GRPC_RPC_COUNT:
 * of any unregistered method). */
static void arm(struct qv_grpc *g, enum qv_grpc_rpc rpc)
{
    struct gcall *c = calloc(1, sizeof(*c));
    grpc_call_error e;

    if (c == NULL) {
        qv_log(QV_LOG_WARN, "msg=\"out of memory: one call slot fewer\"");
        return;
    }
    c->g = g;
    c->rpc = rpc;
    c->t_new.c = c->t_recv.c = c->t_send.c = c;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    atomic_init(&c->refs, 1); /* the answer's */
    atomic_store_explicit(&c->t_recv.kind, TAG_RECV, memory_order_release);
    atomic_store_explicit(&c->t_send.kind, TAG_SEND, memory_order_release);
    atomic_store_explicit(&c->t_new.kind, TAG_NEW, memory_order_release);
    if (rpc == QV_GRPC_RPC_COUNT)
        e = grpc_server_request_call(g->server, &c->call, &c->details, &c->md, g->cq, g->cq,
                                     &c->t_new);
    else
        e = grpc_server_request_registered_call(g->server, g->methods[rpc], &c->call,
                                                &c->deadline, &c->md, &c->recv, g->cq, g->cq,
                                                &c->t_new);
    if (e != GRPC_CALL_OK) {
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        free(c);
    }
}

/* ---- Start and stop ---- */

int qv_grpc_start(const struct qv_grpc_config *cfg, qv_api *api, qv_grpc **out,
                  struct qv_diag *d)
{
    struct qv_grpc *g;
    grpc_server_credentials *creds;
    grpc_arg args[4];
    grpc_channel_args ca;
    char addr[300];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t max_msg = cfg->max_message_bytes ? cfg->max_message_bytes : QV_API_DEFAULT_MAX_BODY;

    *out = NULL;
    if (max_msg > (size_t)INT32_MAX)
        max_msg = (size_t)INT32_MAX;
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return qv_fail(d, QV_ENOMEM, "grpc: cannot allocate the server");
    grpc_init();
    g->api = api;
    atomic_init(&g->t_shutdown.kind, TAG_SHUTDOWN);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cond, NULL);
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)max_msg;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    /* No bandwidth-delay probing: it sends a ping with the window updates
     * of reads, and sizes windows for streams far larger than a call's. */
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = (char *)GRPC_ARG_HTTP2_BDP_PROBE;
    args[3].value.integer = 0;
    ca.num_args = 4;
    ca.args = args;
    g->server = grpc_server_create(&ca, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);
    for (int i = 0; i < QV_GRPC_RPC_COUNT; i++) {
        char method[96];
        snprintf(method, sizeof(method), "/inference.GRPCInferenceService/%s",
                 qv__grpc_rpc_name((enum qv_grpc_rpc)i));
        g->methods[i] = grpc_server_register_method(g->server, method, NULL,
                                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    snprintf(addr, sizeof(addr), strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host,
             cfg->port);
    creds = grpc_insecure_server_credentials_create();
    g->port = grpc_server_add_http2_port(g->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (g->port <= 0) {
        grpc_server_destroy(g->server);
        grpc_completion_queue_shutdown(g->cq);
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(g->cq);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cond);
        free(g);
        grpc_shutdown();
        return qv_fail(d, QV_EIO, "grpc: cannot listen on %s", addr);
    }
    grpc_server_start(g->server);
    for (int i = 0; i <= QV_GRPC_RPC_COUNT; i++)
        for (int k = 0; k < (i == QV_GRPC_MODEL_INFER ? GRPC_INFER_ARMED : GRPC_OTHER_ARMED); k++)
            arm(g, (enum qv_grpc_rpc)i);
    g->n_threads = cfg->threads > 0 ? cfg->threads : (int)(cores > 2 ? cores : 2);
    if (g->n_threads > GRPC_MAX_THREADS)
        g->n_threads = GRPC_MAX_THREADS;
    for (int i = 0; i < g->n_threads; i++) {
        if (pthread_create(&g->threads[i], NULL, cq_thread, g) != 0) {
            g->n_threads = i;
            break;
        }
    }
    if (g->n_threads == 0) {
        qv_grpc_stop(g, 0);
        return qv_fail(d, QV_EIO, "grpc: cannot start a thread");
    }
    qv_log(QV_LOG_INFO, "port=%d threads=%d max_message_bytes=%zu msg=\"gRPC listening\"",
           g->port, g->n_threads, max_msg);
    *out = g;
    return QV_OK;
}

int qv_grpc_port(const qv_grpc *g)
{
    return g ? g->port : 0;
}

/* Waits until the shutdown notification came and no call is left, up to
 * 'deadline' (CLOCK_REALTIME). */
static bool wait_drained(struct qv_grpc *g, const struct timespec *deadline)
{
    bool done;

    pthread_mutex_lock(&g->mu);
    while (!(g->shutdown_done && atomic_load(&g->inflight) == 0)) {
        if (pthread_cond_timedwait(&g->cond, &g->mu, deadline) != 0)
            break;
    }
    done = g->shutdown_done && atomic_load(&g->inflight) == 0;
    pthread_mutex_unlock(&g->mu);
    return done;
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int qv_grpc_stop(qv_grpc *g, int timeout_ms)
{
    struct timespec ts;
    int left;

    if (g == NULL)
        return 0;
    atomic_store(&g->stopping, true);
    /* No new call is taken; those in flight finish. */
    grpc_server_shutdown_and_notify(g->server, g->cq, &g->t_shutdown);
    deadline_in(&ts, timeout_ms > 0 ? timeout_ms : 0);
    if (g->n_threads > 0 && !wait_drained(g, &ts)) {
        /* Past the deadline: calls still out are cancelled (their clients
         * see CANCELLED); a call whose inference still runs frees itself
         * when the engine answers it. */
        grpc_server_cancel_all_calls(g->server);
        deadline_in(&ts, 1000);
        if (!wait_drained(g, &ts)) {
            left = atomic_load(&g->inflight);
            qv_log(QV_LOG_WARN, "calls=%d msg=\"gRPC calls still out after the drain "
                   "deadline\"", left);
            return left > 0 ? left : 1;
        }
    }
    if (g->n_threads == 0) { /* nothing polls the queue: drain it here */
        grpc_server_cancel_all_calls(g->server);
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(
                g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            struct tag *t = ev.tag;
            if (ev.type != GRPC_OP_COMPLETE)
                continue;
            if (t->kind == TAG_SHUTDOWN)
                break;
            if (t->kind == TAG_NEW)
                call_free(t->c);
        }
    }
    grpc_server_destroy(g->server);
    grpc_completion_queue_shutdown(g->cq);
    for (int i = 0; i < g->n_threads; i++)
        pthread_join(g->threads[i], NULL);
    if (g->n_threads == 0)
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
    grpc_completion_queue_destroy(g->cq);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cond);
    free(g);
    grpc_shutdown_blocking();
    return 0;
}
