/* SPDX-License-Identifier: MIT
 *
 * api/grpc_int.h -- private to src/api/: the KServe v2 gRPC service's
 * messages (protobuf-c, generated from proto/grpc_predict_v2.proto) turned
 * into the REST requests the HTTP handlers take, and REST answers turned back
 * into messages. A gRPC call runs through qv__api_dispatch like an HTTP
 * request, so both transports share one pipeline: authentication, version
 * choice, queues, batching, metrics, audit and error messages.
 *
 * ModelInfer becomes a KServe v2 request with the binary tensor data
 * extension: a small JSON header naming the inputs, then every input's bytes
 * (typed contents are laid out little-endian first), with every output asked
 * for in binary; the answer's binary part becomes raw_output_contents or the
 * typed contents. grpc_codec.c holds all of it and does not see gRPC core, so
 * the fuzz target (tests/fuzz/fuzz_grpc.c) drives it directly.
 */
#ifndef QV_API_GRPC_INT_H
#define QV_API_GRPC_INT_H

#include "api_int.h"

#include <stdint.h>

/* The calls of inference.GRPCInferenceService. */
enum qv_grpc_rpc {
    QV_GRPC_SERVER_LIVE,
    QV_GRPC_SERVER_READY,
    QV_GRPC_MODEL_READY,
    QV_GRPC_SERVER_METADATA,
    QV_GRPC_MODEL_METADATA,
    QV_GRPC_MODEL_INFER,
    QV_GRPC_MODEL_STATISTICS,
    QV_GRPC_REPOSITORY_INDEX,
    QV_GRPC_REPOSITORY_LOAD,
    QV_GRPC_REPOSITORY_UNLOAD,
    QV_GRPC_RPC_COUNT
};

/* gRPC status codes (grpc/status.h), so that the codec needs no gRPC header. */
enum {
    QV_GRPC_OK = 0,
    QV_GRPC_INVALID_ARGUMENT = 3,
    QV_GRPC_DEADLINE_EXCEEDED = 4,
    QV_GRPC_NOT_FOUND = 5,
    QV_GRPC_ALREADY_EXISTS = 6,
    QV_GRPC_PERMISSION_DENIED = 7,
    QV_GRPC_RESOURCE_EXHAUSTED = 8,
    QV_GRPC_FAILED_PRECONDITION = 9,
    QV_GRPC_UNIMPLEMENTED = 12,
    QV_GRPC_INTERNAL = 13,
    QV_GRPC_UNAVAILABLE = 14,
    QV_GRPC_UNAUTHENTICATED = 16,
};

/* The REST request one gRPC call stands for. */
struct qv_grpc_rest {
    const char *method;          /* "GET" or "POST" */
    char path[2 * QV_MODEL_NAME_MAX + 64];
    struct qv_buf body;          /* ModelInfer: JSON header + binary part */
    size_t json_len;             /* ModelInfer: the JSON header's length */
    char json_len_text[24];      /* ... as the Inference-Header-Content-Length value */
    bool raw_out;                /* ModelInfer: answer in raw_output_contents */
};

/* "/inference.GRPCInferenceService/ModelInfer" -> QV_GRPC_MODEL_INFER;
 * QV_GRPC_RPC_COUNT when unknown. */
enum qv_grpc_rpc qv__grpc_rpc_find(const char *method, size_t len);
const char *qv__grpc_rpc_name(enum qv_grpc_rpc rpc); /* "ModelInfer" */

/* Reads one request message (len bytes) and fills out (fini it, even on
 * error). On error: the gRPC status code in *code and d's message; the call
 * is answered without going through the REST handlers. */
int qv__grpc_request(enum qv_grpc_rpc rpc, const uint8_t *msg, size_t len,
                     struct qv_grpc_rest *out, int *code, struct qv_diag *d);
void qv__grpc_rest_fini(struct qv_grpc_rest *rest);

/* The answer of a dispatched request r as a packed response message
 * (*out malloc'ed, *out_len bytes) with *code QV_GRPC_OK, or an error: *code
 * and the message in d (REST's own text for REST's errors). */
int qv__grpc_response(enum qv_grpc_rpc rpc, const struct qv_grpc_rest *rest,
                      const struct qv_http_req *r, uint8_t **out, size_t *out_len, int *code,
                      struct qv_diag *d);

/* The gRPC status code of an HTTP status. */
int qv__grpc_code_of_http(int status);

#endif /* QV_API_GRPC_INT_H */
