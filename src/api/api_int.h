/* SPDX-License-Identifier: MIT
 *
 * api/api_int.h -- private to src/api/: the request/response pair every
 * handler works on, independent of the HTTP library, so handlers can also be
 * driven in memory by tests.
 *
 * A handler returns QV_OK with the response filled (status, body), an error
 * code with the diag filled (turned into {"error": "..."} with the status from
 * QV_ERR_MAP), or QV_API_PENDING after handing the request to a worker; the
 * worker then fills the response and calls qv__api_complete() exactly once.
 */
#ifndef QV_API_INT_H
#define QV_API_INT_H

#include "api.h"

#include <pthread.h>
#include <stdatomic.h>

#define QV_API_PENDING 1
#define QV_MAX_PATH_PARAMS 3
#define QV_API_MAX_HEADERS 12   /* extra response headers (qv__api_add_header) */
#define QV_API_HEADER_TEXT 768  /* bytes of their values, copied */

struct qv_http_req;
typedef int (*qv_http_handler)(struct qv_http_req *r);

enum {
    ROUTE_MANAGE = 1u << 0, /* needs a token when tokens are configured */
    ROUTE_ADMIN = 1u << 1,  /* needs an admin token */
    ROUTE_NO_LOG = 1u << 2,
    ROUTE_OPEN = 1u << 3,   /* health and metrics: never needs a token */
};

struct qv_api_route {
    const char *method;
    const char *pattern;      /* "/v2/models/{name}/versions/{ver}/infer" */
    qv_http_handler handler;
    unsigned flags;
};

struct qv_http_req {
    struct qv_api *api;
    const struct qv_api_deps *deps;
    /* Request. */
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
    const char *(*header)(struct qv_http_req *r, const char *name); /* NULL if absent */
    const char *(*query)(struct qv_http_req *r, const char *name);  /* NULL if absent */
    void *conn;               /* the library's connection */
    int n_params;
    char params[QV_MAX_PATH_PARAMS][QV_MODEL_NAME_MAX];
    const char *who;          /* token name, or "anonymous" */
    /* Response. */
    int status;
    struct qv_buf resp;
    char version_header[32];  /* X-Quiver-Version, "" for none */
    int retry_after;          /* seconds; 0 for none */
    const char *content_type; /* NULL: JSON (Prometheus text on /metrics) */
    /* More response headers, added with qv__api_add_header: the name a
     * string literal, the value copied into header_text. */
    int n_resp_headers;
    struct { const char *name; const char *value; } resp_headers[QV_API_MAX_HEADERS];
    size_t header_text_used;
    char header_text[QV_API_HEADER_TEXT];
    struct qv_diag diag;
    /* Set by the HTTP layer: a handler calls suspend() right before it hands
     * the request to another thread, which calls complete() once the
     * response is ready. */
    void (*suspend)(struct qv_http_req *r);
    void (*complete)(struct qv_http_req *r);
    /* A handler that reads the body on another thread sets keep_body before
     * it returns, and calls body_done() once the body is no longer needed
     * (before handing the request on): the body and its budget are freed. */
    bool keep_body;
    void (*body_done)(struct qv_http_req *r);
    /* A request body decoded from its Content-Encoding, which body then
     * points into (compress.c; freed with the body). */
    struct qv_buf body_plain;
};

struct MHD_Daemon;
struct qv_api_tokens;
struct conn_ctx;
struct sock_ctx;

/* Defaults of the resource bounds (docs/http.md lists them). */
#define QV_API_DEFAULT_MAX_BODY (16u << 20)          /* per request body */
#define QV_API_DEFAULT_BODY_BUDGET (256u << 20)      /* all bodies in flight */
#define QV_API_DEFAULT_MAX_CONNECTIONS 4096
#define QV_API_DEFAULT_MAX_CONNECTIONS_PER_IP 256
#define QV_API_DEFAULT_HEADER_TIMEOUT_MS 15000
#define QV_API_DEFAULT_BODY_TIMEOUT_MS 60000
#define QV_API_DEFAULT_IDLE_TIMEOUT_S 60
#define QV_API_CONNECTION_MEMORY (32u << 10)         /* request line + headers */
#define QV_API_CTL_QUEUE_MAX 16                      /* queued load/unload requests */
#define QV_API_DECODE_THREADS 2                      /* threads decoding large bodies */
#define QV_API_DECODE_QUEUE_MAX 64                   /* large bodies waiting for them */
#define QV_API_LARGE_BODY (256u << 10)               /* bodies from this size: decode lane */
#define QV_API_JSON_TREE_FACTOR 20                   /* jansson tree bytes per body byte */
#define QV_API_DEFAULT_DECODE_BUDGET (1024ull << 20) /* JSON decoding, all requests */
#define QV_API_ADMIN_CONNECTIONS 64                  /* the admin listener's connections */

struct qv_api {
    struct MHD_Daemon *daemon;
    struct MHD_Daemon *admin;       /* health and metrics only; NULL without --admin-port */
    int admin_port;
    struct qv_api_config cfg;
    struct qv_api_deps deps;
    int port;
    _Atomic int inflight;           /* requests the HTTP layer holds */
    _Atomic int pending;            /* of those, dispatched before the stop: waited for */
    _Atomic bool stopping;
    _Atomic size_t body_bytes;      /* request bodies held now (the budget) */
    _Atomic int n_abandoned;        /* answered 503 at the drain deadline */
    struct qv_api_tokens *tokens; /* NULL: management endpoints open */
    /* Suspended requests, for the drain deadline. */
    pthread_mutex_t susp_mu;
    struct conn_ctx *suspended;     /* guarded by susp_mu */
    bool abandoning;                /* guarded by susp_mu */
    /* Open connections, for the header deadline (reaper thread). */
    pthread_mutex_t sock_mu;
    pthread_cond_t reaper_cond;
    struct sock_ctx *socks;         /* guarded by sock_mu */
    bool reaper_stop;               /* guarded by sock_mu */
    pthread_t reaper;
    _Atomic long cut_connections;
    /* The main port's listening socket and the thread that accepts on it and
     * hands each connection to a pool thread (http.c). */
    int listen_fd;                  /* -1 once closed */
    int accept_wake;                /* eventfd: the stop, or a slot freed at the cap */
    pthread_t acceptor;
    bool acceptor_running;
    _Atomic bool accept_stop;
    _Atomic int open_conns;         /* handed to libmicrohttpd and not yet closed */
    /* Connections each pool thread was given, for /metrics (guarded by
     * sock_mu; a thread's slot is taken at its first connection). */
    int n_workers;
    struct qv_api_worker { const void *daemon; long accepted; } *workers;
    /* Lanes (ctl.c): work kept off the HTTP threads. */
    struct qv_api_lane *ctl;        /* repository load/unload */
    struct qv_api_lane *decode;     /* large inference bodies */
    _Atomic size_t decode_bytes;    /* estimated JSON decoding memory in use */
    bool lanes_left;                /* a lane thread was left running at the stop */
};

/* ctl.c: a lane is a few threads and a bounded queue for request work that
 * may take long (a model load, a large JSON body). */
struct qv_api_lane;
struct qv_api_lane *qv__api_lane_start(const char *what, int threads, int max_queue,
                                       struct qv_diag *d);
/* Suspends r and queues fn(r): QV_API_PENDING. fn returns an error, QV_OK
 * (r's response filled) or QV_API_PENDING (handed on; whoever holds r then
 * completes it); the lane completes r in the first two cases. QV_EOVERLOAD
 * (queue full) or QV_ESHUTDOWN, and r is not suspended. */
int qv__api_lane_submit(struct qv_api_lane *l, struct qv_http_req *r,
                        int (*fn)(struct qv_http_req *r));
/* Stops the lane: queued jobs are answered 503; returns true when every
 * thread finished (the lane is freed), false when one is still inside a job
 * (the lane is left to the process exit). */
bool qv__api_lane_stop(struct qv_api_lane *l);



/* auth.c */
int qv__api_tokens_load(struct qv_api *a, const char *path, struct qv_diag *d);
void qv__api_tokens_free(struct qv_api *a);

extern const struct qv_api_route qv__api_routes[];
extern const int qv__api_n_routes;

/* Finds the route for method+path and fills r->params. NULL with *status 404
 * or 405 when none matches. */
const struct qv_api_route *qv__api_match(struct qv_http_req *r, int *status);
/* Runs the whole pipeline for one request: match, auth, handler, and error
 * bodies. Returns QV_API_PENDING or QV_OK (response ready). */
int qv__api_dispatch(struct qv_http_req *r);
/* Fills the response for an error code and r->diag. */
void qv__api_error(struct qv_http_req *r, int err);
/* Checks the bearer token for a management route. */
int qv__api_auth(struct qv_http_req *r, unsigned flags);

/* Handlers (infer.c, meta.c, manage.c). */
int qv__on_infer(struct qv_http_req *r);
int qv__on_tfs_predict(struct qv_http_req *r);
int qv__on_live(struct qv_http_req *r);
int qv__on_ready(struct qv_http_req *r);
int qv__on_server_meta(struct qv_http_req *r);
int qv__on_model_meta(struct qv_http_req *r);
int qv__on_model_ready(struct qv_http_req *r);
int qv__on_model_config(struct qv_http_req *r);
int qv__on_tfs_status(struct qv_http_req *r);
int qv__on_tfs_metadata(struct qv_http_req *r);
int qv__on_tfs_label(struct qv_http_req *r); /* routes.c */
int qv__on_repo_index(struct qv_http_req *r);
int qv__on_repo_load(struct qv_http_req *r);
int qv__on_repo_unload(struct qv_http_req *r);
int qv__on_metrics(struct qv_http_req *r);
int qv__on_route_get(struct qv_http_req *r);
int qv__on_route_put(struct qv_http_req *r);
int qv__on_route_delete(struct qv_http_req *r);
int qv__on_route_rollback(struct qv_http_req *r);
int qv__on_label_put(struct qv_http_req *r);
int qv__on_label_delete(struct qv_http_req *r);
int qv__on_feedback(struct qv_http_req *r);
int qv__on_events(struct qv_http_req *r);
/* control_api.c: statistics, history, alerts and rollouts. */
int qv__on_model_stats(struct qv_http_req *r);  /* quiver's own: /quiver-stats */
int qv__on_triton_stats(struct qv_http_req *r); /* Triton's statistics extension */
int qv__on_model_history(struct qv_http_req *r);
int qv__on_model_alerts(struct qv_http_req *r);
int qv__on_rollout_get(struct qv_http_req *r);
int qv__on_rollout_post(struct qv_http_req *r);
int qv__on_rollout_delete(struct qv_http_req *r);
/* ui.c: the dashboard's embedded files. */
int qv__on_ui(struct qv_http_req *r);
int qv__on_ui_root(struct qv_http_req *r);

/* http.c: the HTTP layer's own metrics (connections per pool thread, open
 * connections), appended to /metrics in Prometheus text. */
int qv__api_http_metrics(struct qv_api *a, struct qv_buf *b);

/* Adds a response header: name a string literal, value copied. QV_ENOMEM
 * (the header not added) past QV_API_MAX_HEADERS headers or
 * QV_API_HEADER_TEXT bytes of values. */
int qv__api_add_header(struct qv_http_req *r, const char *name, const char *value);
/* The value of a response header added so far (case-insensitive), or NULL. */
const char *qv__api_resp_header(const struct qv_http_req *r, const char *name);

/* compress.c: Content-Encoding of request bodies, Accept-Encoding of responses. */
/* Decodes a gzip/deflate body into r->body_plain (bounded by the body limit)
 * and points r->body at it. On error, r->diag is set and *status is the
 * HTTP status: 413 past the limit, 415 for an unknown encoding, 400 for a
 * corrupt stream. */
int qv__api_decode_body(struct qv_http_req *r, int *status);
/* Compresses r->resp in place when the client accepts gzip and the body is
 * over the threshold, adding Content-Encoding. */
void qv__api_encode_response(struct qv_http_req *r);

/* Helpers shared by handlers. */
int qv__api_json_string(struct qv_buf *b, const char *s); /* appends a quoted JSON string */
int64_t qv__api_param_version(struct qv_http_req *r, int idx); /* -1 when not a version */
bool qv__api_shutting_down(const struct qv_api *a);
/* Appends an audit event (who is the request's token name). A store failure
 * is logged, not returned: the change it describes has already happened. */
void qv__api_audit(struct qv_http_req *r, const char *model, const char *what,
                   const char *old_value, const char *new_value);

#endif /* QV_API_INT_H */
