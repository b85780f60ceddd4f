/* SPDX-License-Identifier: MIT
 *
 * api/api.h -- the HTTP server: KServe v2 (Open Inference Protocol) REST,
 * TF Serving REST, Triton's repository extension, routing and management,
 * and /metrics. libmicrohttpd is seen only by api/http.c.
 */
#ifndef QV_API_H
#define QV_API_H

#include "../control/control.h"
#include "../engine/engine.h"
#include "../monitor/monitor.h"
#include "../router/router.h"
#include "../store/store.h"

typedef struct qv_api qv_api;

struct qv_api_config {
    const char *host;         /* "127.0.0.1" */
    int port;                 /* 0: an ephemeral port (see qv_api_port) */
    size_t max_body_bytes;    /* larger bodies get 413; 0: 16 MiB */
    size_t body_budget_bytes; /* all request bodies in flight; past it 429; 0: 256 MiB */
    int threads;              /* HTTP threads; 0: one per core */
    const char *tokens_file;  /* NULL: management endpoints open */
    bool protect_inference;   /* with tokens: inference and metadata need a token too */
    int max_connections;      /* 0: 4096 */
    int max_connections_per_ip; /* 0: 256 */
    int header_timeout_ms;    /* request headers complete within this; 0: 15000 */
    int body_timeout_ms;      /* the body complete within this of the headers; 0: 60000 */
    int idle_timeout_s;       /* an idle connection is closed; 0: 60 */
    size_t decode_budget_bytes; /* estimated JSON decoding memory, all requests; 0: 1 GiB */
    /* The admin listener: health and /metrics also answered on admin_port
     * (0: an ephemeral port, see qv_api_admin_port) by a daemon and thread of
     * their own, so that a flood on the main port cannot queue in front of them. */
    bool admin;
    int admin_port;
    /* /v2/health/ready is 200 while serving, whether or not the models are
     * READY (--strict-readiness=false); by default it also needs every
     * model the repository asks for to have a READY version. */
    bool lax_readiness;
};

/* What the handlers use. Borrowed: everything outlives the server. */
struct qv_api_deps {
    qv_engine *engine;
    qv_router *router;
    qv_monitor *monitor;
    qv_store *store;          /* may be NULL */
    qv_control *control;      /* may be NULL */
};

int qv_api_start(const struct qv_api_config *cfg, const struct qv_api_deps *deps, qv_api **out,
                 struct qv_diag *d);
int qv_api_port(const qv_api *a);
int qv_api_admin_port(const qv_api *a); /* 0 without an admin listener */
/* Stops taking requests (new ones get 503), lets dispatched requests finish
 * (up to timeout_ms), answers those still out 503, then stops the server.
 * Returns 0 when everything finished and the server was freed; otherwise the
 * number of requests abandoned at the deadline: their threads (a backend call
 * that hangs) may still run, so the caller must leave the engine and what it
 * uses alive until the process exits. */
int qv_api_stop(qv_api *a, int timeout_ms);

/* The KServe v2 gRPC service (inference.GRPCInferenceService, docs/grpc.md)
 * on a port of its own. Its calls run through the same handlers as HTTP
 * requests, so it needs a started api, and is stopped before it. */
typedef struct qv_grpc qv_grpc;

struct qv_grpc_config {
    const char *host;         /* "127.0.0.1" */
    int port;                 /* 0: an ephemeral port (see qv_grpc_port) */
    size_t max_message_bytes; /* larger request messages: RESOURCE_EXHAUSTED; 0: 16 MiB */
    int threads;              /* completion-queue threads; 0: one per core */
};

int qv_grpc_start(const struct qv_grpc_config *cfg, qv_api *api, qv_grpc **out,
                  struct qv_diag *d);
int qv_grpc_port(const qv_grpc *g);
/* Stops taking calls and lets those in flight finish (up to timeout_ms);
 * then cancels what is left. 0 when the server was freed; otherwise the
 * number of calls still inside the engine (leave it alive, as for
 * qv_api_stop). NULL is a no-op. */
int qv_grpc_stop(qv_grpc *g, int timeout_ms);

#endif /* QV_API_H */
