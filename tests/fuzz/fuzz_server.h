/* SPDX-License-Identifier: MIT
 *
 * tests/fuzz/fuzz_server.h -- an in-memory quiver for the fuzz targets and the
 * fault suite: a temporary repository with one model of the `test` backend
 * ("m", versions 1 and 2, FP32 [-1,4], batching on), the engine, router,
 * monitor, an in-memory store and the controller, wired as `quiver serve`
 * wires them, with no HTTP socket. Requests go through qv__api_dispatch, the
 * same function the HTTP layer calls, and are waited for when a worker
 * answers them.
 */
#ifndef QV_FUZZ_SERVER_H
#define QV_FUZZ_SERVER_H

#include "api/api_int.h"

#include <stddef.h>
#include <stdint.h>

struct fz_server {
    char root[256];        /* the repository (a mkdtemp directory) */
    qv_monitor *monitor;
    qv_engine *engine;
    qv_router *router;
    qv_store *store;
    qv_control *control;
    struct qv_api api;     /* no daemon: dispatch only */
};

/* One request and its answer. */
struct fz_response {
    int status;
    char *body;            /* NUL-terminated, malloc'ed; fz_response_free */
    size_t len;
    const char *content_type; /* NULL: JSON; else what the handler set (the dashboard) */
};

/* Builds the server (once per process; the same one afterwards). Aborts
 * when it cannot: a fuzz target without its server would prove nothing. */
struct fz_server *fz_server_get(void);
/* Adds a model of the `test` backend (version 1, no config.json: the
 * backend describes it) with the given model.test text; before the first
 * fz_server_get only. */
void fz_server_add_model(const char *name, const char *artifact);
/* Stops and frees what fz_server_get built; removes the repository. */
void fz_server_destroy(void);

/* Dispatches one request and waits for its answer. 'query' is the raw query
 * string ("limit=3&x=y", may be NULL); 'auth' the Authorization header value
 * (may be NULL). */
void fz_request(struct fz_server *s, const char *method, const char *path, const char *query,
                const char *auth, const char *body, size_t body_len, struct fz_response *out);
/* fz_request with one more request header, hname: hvalue (both NULL: none). */
void fz_request_hdr(struct fz_server *s, const char *method, const char *path, const char *query,
                    const char *auth, const char *hname, const char *hvalue, const char *body,
                    size_t body_len, struct fz_response *out);
void fz_response_free(struct fz_response *r);

/* Writes 'len' bytes to a file under the server's root (for file parsers). */
int fz_write_file(const char *path, const void *data, size_t len);
/* Removes a directory tree (the temporary repository). */
void fz_rmtree(const char *path);

/* libFuzzer's entry point, defined by each target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* QV_FUZZ_SERVER_H */
