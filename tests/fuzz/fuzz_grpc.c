/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: a gRPC ModelInferRequest message, end to end -- protobuf
 * decoding and its layout as a KServe v2 request with binary inputs
 * (api/grpc_codec.c), the REST pipeline on the in-memory server (checking
 * against the model's signature, batching, the `test` backend), and the
 * answer encoded back as a ModelInferResponse. A refused message must carry
 * a gRPC error code and a message; an answered one must encode; no crash,
 * leak or undefined behaviour. Model "m" takes FP32; model "b" is the test
 * backend's BYTES identity (the seeds name both).
 */
#include "fuzz_check.h"
#include "api/grpc_int.h"

#include <strings.h>

struct grpc_req {
    struct qv_http_req r;
    struct qv_grpc_rest rest;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static const char *req_header(struct qv_http_req *r, const char *name)
{
    struct grpc_req *q = (struct grpc_req *)r;

    return strcasecmp(name, "Inference-Header-Content-Length") == 0 ? q->rest.json_len_text
                                                                    : NULL;
}

static void req_suspend(struct qv_http_req *r)
{
    (void)r;
}

static void req_complete(struct qv_http_req *r)
{
    struct grpc_req *q = (struct grpc_req *)r;

    pthread_mutex_lock(&q->mu);
    q->done = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool added;
    struct fz_server *s;
    struct grpc_req req, *q = &req;
    struct qv_diag d = {{0}};
    uint8_t *out = NULL;
    size_t out_len = 0;
    int code = 0, rc;

    if (!added) {
        fz_server_add_model("b", "{\"features\": -1, \"echo\": \"BYTES\"}");
        added = true;
    }
    s = fz_server_get();
    memset(q, 0, sizeof(*q));
    rc = qv__grpc_request(QV_GRPC_MODEL_INFER, data, size, &q->rest, &code, &d);
    if (rc != QV_OK) {
        if (code == QV_GRPC_OK || d.msg[0] == '\0') {
            fprintf(stderr, "grpc: a refused message without a code or a message\n");
            abort();
        }
        qv__grpc_rest_fini(&q->rest);
        return 0;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->r.api = &s->api;
    q->r.deps = &s->api.deps;
    q->r.method = q->rest.method;
    q->r.path = q->rest.path;
    q->r.body = q->rest.body.data ? q->rest.body.data : "";
    q->r.body_len = q->rest.body.len;
    q->r.header = req_header;
    q->r.suspend = req_suspend;
    q->r.complete = req_complete;
    if (qv__api_dispatch(&q->r) == QV_API_PENDING) {
        pthread_mutex_lock(&q->mu);
        while (!q->done)
            pthread_cond_wait(&q->cv, &q->mu);
        pthread_mutex_unlock(&q->mu);
    }
    if (q->r.status == 500) {
        fprintf(stderr, "grpc: 500 from a request: %.*s\n", (int)q->r.resp.len, q->r.resp.data);
        abort();
    }
    rc = qv__grpc_response(QV_GRPC_MODEL_INFER, &q->rest, &q->r, &out, &out_len, &code, &d);
    if (q->r.status == 200 && (rc != QV_OK || code != QV_GRPC_OK)) {
        fprintf(stderr, "grpc: an answered request does not encode: %s\n", d.msg);
        abort();
    }
    if (q->r.status != 200 && (code == QV_GRPC_OK || d.msg[0] == '\0')) {
        fprintf(stderr, "grpc: status %d without a gRPC error\n", q->r.status);
        abort();
    }
    free(out);
    qv_buf_free(&q->r.resp);
    qv__grpc_rest_fini(&q->rest);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    return 0;
}
