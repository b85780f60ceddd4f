/* SPDX-License-Identifier: MIT
 *
 * The KServe v2 gRPC messages as REST requests and back (grpc_int.h). Every
 * count and size in a message is checked against the tensor's shape and the
 * bytes the message really holds before anything is laid out; the REST
 * handlers then check the request exactly as they check an HTTP body.
 */
#include "grpc_int.h"
#include "binary.h"

#include "grpc_predict_v2.pb-c.h"

#define QV_LOG_MODULE "grpc"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE "/inference.GRPCInferenceService/"
#define JSON_DEPTH_MAX 8 /* the deepest answer converted (statistics) is 4 */

static const char *const rpc_names[QV_GRPC_RPC_COUNT] = {
    [QV_GRPC_SERVER_LIVE] = "ServerLive",
    [QV_GRPC_SERVER_READY] = "ServerReady",
    [QV_GRPC_MODEL_READY] = "ModelReady",
    [QV_GRPC_SERVER_METADATA] = "ServerMetadata",
    [QV_GRPC_MODEL_METADATA] = "ModelMetadata",
    [QV_GRPC_MODEL_INFER] = "ModelInfer",
    [QV_GRPC_MODEL_STATISTICS] = "ModelStatistics",
    [QV_GRPC_REPOSITORY_INDEX] = "RepositoryIndex",
    [QV_GRPC_REPOSITORY_LOAD] = "RepositoryModelLoad",
    [QV_GRPC_REPOSITORY_UNLOAD] = "RepositoryModelUnload",
};

enum qv_grpc_rpc qv__grpc_rpc_find(const char *method, size_t len)
{
    size_t sl = strlen(SERVICE);

    if (len <= sl || memcmp(method, SERVICE, sl) != 0)
        return QV_GRPC_RPC_COUNT;
    for (int i = 0; i < QV_GRPC_RPC_COUNT; i++)
        if (strlen(rpc_names[i]) == len - sl && memcmp(method + sl, rpc_names[i], len - sl) == 0)
            return (enum qv_grpc_rpc)i;
    return QV_GRPC_RPC_COUNT;
}

const char *qv__grpc_rpc_name(enum qv_grpc_rpc rpc)
{
    return rpc < QV_GRPC_RPC_COUNT ? rpc_names[rpc] : "unknown";
}

int qv__grpc_code_of_http(int status)
{
    switch (status) {
    case 200: return QV_GRPC_OK;
    case 400: return QV_GRPC_INVALID_ARGUMENT;
    case 401: return QV_GRPC_UNAUTHENTICATED;
    case 403: return QV_GRPC_PERMISSION_DENIED;
    case 404: return QV_GRPC_NOT_FOUND;
    case 405: case 501: return QV_GRPC_UNIMPLEMENTED;
    case 409: return QV_GRPC_FAILED_PRECONDITION;
    case 413: case 429: return QV_GRPC_RESOURCE_EXHAUSTED;
    case 503: return QV_GRPC_UNAVAILABLE;
    case 504: return QV_GRPC_DEADLINE_EXCEEDED;
    default: return status >= 400 && status < 500 ? QV_GRPC_INVALID_ARGUMENT : QV_GRPC_INTERNAL;
    }
}

void qv__grpc_rest_fini(struct qv_grpc_rest *rest)
{
    qv_buf_free(&rest->body);
}

/* A model name or version must be one path segment. */
static int check_segment(const char *field, const char *s, bool required, int *code,
                         struct qv_diag *d)
{
    if (s[0] == '\0' && !required)
        return QV_OK;
    *code = QV_GRPC_INVALID_ARGUMENT;
    if (s[0] == '\0')
        return qv_fail(d, QV_EINVAL, "%s: required", field);
    if (strlen(s) >= QV_MODEL_NAME_MAX)
        return qv_fail(d, QV_EINVAL, "%s: longer than %d bytes", field, QV_MODEL_NAME_MAX - 1);
    if (strpbrk(s, "/?#%") != NULL || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return qv_fail(d, QV_EINVAL, "%s: \"%s\" is not a name (no '/', '?', '#' or '%%')",
                       field, s);
    *code = QV_GRPC_OK;
    return QV_OK;
}

/* "/v2/models/NAME[/versions/VER]SUFFIX" */
static int model_path(struct qv_grpc_rest *out, const char *field, const char *name,
                      const char *version, const char *suffix, int *code, struct qv_diag *d)
{
    char vfield[32];
    int err = check_segment(field, name, true, code, d);

    snprintf(vfield, sizeof(vfield), "%sversion", strcmp(field, "name") == 0 ? "" : "model_");
    err = err ? err : check_segment(vfield, version, false, code, d);
    if (err)
        return err;
    if (version[0])
        snprintf(out->path, sizeof(out->path), "/v2/models/%s/versions/%s%s", name, version,
                 suffix);
    else
        snprintf(out->path, sizeof(out->path), "/v2/models/%s%s", name, suffix);
    return QV_OK;
}

/* ---- ModelInfer: the request ---- */

/* Appends one InferParameter as a JSON value. */
static int put_param(struct qv_buf *b, const Inference__InferParameter *p)
{
    if (p == NULL)
        return qv_buf_append(b, "null", 4);
    switch (p->parameter_choice_case) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
        return p->bool_param ? qv_buf_append(b, "true", 4) : qv_buf_append(b, "false", 5);
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
        return qv_buf_printf(b, "%" PRId64, p->int64_param);
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
        return qv_json_put_string(b, p->string_param);
    default:
        return qv_buf_append(b, "null", 4);
    }
}

/* The value of a boolean parameter: -1 absent, 0/1, or -2 not a boolean. */
static int bool_param(const Inference__InferParameter *p)
{
    if (p == NULL)
        return -1;
    if (p->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
        return -2;
    return p->bool_param ? 1 : 0;
}

/* Where one input's bytes come from and how many there are. */
struct in_bytes {
    const ProtobufCBinaryData *raw; /* raw_input_contents, or NULL: typed */
    size_t nbytes;
    enum qv_dtype dt;
    bool is_bytes;                  /* BYTES: bytes_contents, length-prefixed */
};

static const char *list_name(enum qv_dtype dt)
{
    switch (dt) {
    case QV_DTYPE_F32: return "fp32_contents";
    case QV_DTYPE_F64: return "fp64_contents";
    case QV_DTYPE_I8: case QV_DTYPE_I16: case QV_DTYPE_I32: return "int_contents";
    case QV_DTYPE_U8: case QV_DTYPE_U16: case QV_DTYPE_U32: return "uint_contents";
    case QV_DTYPE_I64: return "int64_contents";
    case QV_DTYPE_U64: return "uint64_contents";
    case QV_DTYPE_BOOL: return "bool_contents";
    default: return NULL;
    }
}

static size_t typed_count(const Inference__InferTensorContents *c, enum qv_dtype dt)
{
    if (c == NULL)
        return 0;
    switch (dt) {
    case QV_DTYPE_F32: return c->n_fp32_contents;
    case QV_DTYPE_F64: return c->n_fp64_contents;
    case QV_DTYPE_I8: case QV_DTYPE_I16: case QV_DTYPE_I32: return c->n_int_contents;
    case QV_DTYPE_U8: case QV_DTYPE_U16: case QV_DTYPE_U32: return c->n_uint_contents;
    case QV_DTYPE_I64: return c->n_int64_contents;
    case QV_DTYPE_U64: return c->n_uint64_contents;
    case QV_DTYPE_BOOL: return c->n_bool_contents;
    default: return 0;
    }
}

static bool contents_empty(const Inference__InferTensorContents *c)
{
    return c == NULL ||
           (c->n_bool_contents | c->n_int_contents | c->n_int64_contents | c->n_uint_contents |
            c->n_uint64_contents | c->n_fp32_contents | c->n_fp64_contents |
            c->n_bytes_contents) == 0;
}

/* Checks input i's data against its shape and datatype; fills ib. Inputs whose
 * datatype or shape REST refuses anyway are passed with no bytes, so that
 * REST's own message names the problem. */
static int input_bytes(const Inference__ModelInferRequest *m, size_t i, struct in_bytes *ib,
                       int *code, struct qv_diag *d)
{
    const Inference__ModelInferRequest__InferInputTensor *t = m->inputs[i];
    const Inference__InferTensorContents *c = t->contents;
    int64_t numel = -1;
    size_t n;

    memset(ib, 0, sizeof(*ib));
    ib->dt = qv_dtype_from_name(t->datatype);
    ib->is_bytes = strcmp(t->datatype, "BYTES") == 0;
    if (t->n_shape <= QV_MAX_DIMS)
        numel = qv_shape_numel(t->shape, (int)t->n_shape);
    *code = QV_GRPC_INVALID_ARGUMENT;
    if (m->n_raw_input_contents > 0) {
        if (!contents_empty(c))
            return qv_fail(d, QV_EINVAL, "inputs[%zu].contents: input \"%s\" has typed contents "
                           "and the request has raw_input_contents; use one or the other", i,
                           t->name);
        ib->raw = &m->raw_input_contents[i];
        ib->nbytes = ib->raw->len;
        *code = QV_GRPC_OK;
        return QV_OK;
    }
    if ((ib->dt == QV_DTYPE_UNDEF && !ib->is_bytes) || numel < 0) {
        *code = QV_GRPC_OK;
        return QV_OK; /* REST names the datatype or the shape */
    }
    if (ib->is_bytes) {
        n = c ? c->n_bytes_contents : 0;
        if (n != (uint64_t)numel)
            return qv_fail(d, QV_EINVAL, "inputs[%zu].contents.bytes_contents: input \"%s\" has "
                           "%zu values; its shape needs %lld", i, t->name, n, (long long)numel);
        for (size_t k = 0; k < n; k++) {
            if (c->bytes_contents[k].len > UINT32_MAX)
                return qv_fail(d, QV_EINVAL, "inputs[%zu].contents.bytes_contents[%zu]: over "
                               "4 GiB", i, k);
            ib->nbytes += 4 + c->bytes_contents[k].len;
        }
        *code = QV_GRPC_OK;
        return QV_OK;
    }
    if (list_name(ib->dt) == NULL)
        return qv_fail(d, QV_EINVAL, "inputs[%zu].contents: %s has no typed contents field; send "
                       "input \"%s\" in raw_input_contents", i, t->datatype, t->name);
    n = typed_count(c, ib->dt);
    if (n != (uint64_t)numel)
        return qv_fail(d, QV_EINVAL, "inputs[%zu].contents.%s: input \"%s\" has %zu values; its "
                       "shape needs %lld", i, list_name(ib->dt), t->name, n, (long long)numel);
    if (ib->dt == QV_DTYPE_I8 || ib->dt == QV_DTYPE_I16 || ib->dt == QV_DTYPE_U8 ||
        ib->dt == QV_DTYPE_U16) {
        bool sign = ib->dt == QV_DTYPE_I8 || ib->dt == QV_DTYPE_I16;
        int64_t lo = ib->dt == QV_DTYPE_I8 ? -128 : ib->dt == QV_DTYPE_I16 ? -32768 : 0;
        int64_t hi = ib->dt == QV_DTYPE_I8 ? 127 : ib->dt == QV_DTYPE_I16 ? 32767
                   : ib->dt == QV_DTYPE_U8 ? 255 : 65535;
        for (size_t k = 0; k < n; k++) {
            int64_t v = sign ? c->int_contents[k] : (int64_t)c->uint_contents[k];
            if (v < lo || v > hi)
                return qv_fail(d, QV_EINVAL, "inputs[%zu].contents.%s[%zu]: %lld is out of "
                               "range for %s", i, list_name(ib->dt), k, (long long)v,
                               t->datatype);
        }
    }
    ib->nbytes = n * qv_dtype_size(ib->dt);
    *code = QV_GRPC_OK;
    return QV_OK;
}

/* Appends input i's bytes, little-endian (the host is). */
static int put_input_bytes(struct qv_buf *b, const Inference__InferTensorContents *c,
                           const struct in_bytes *ib)
{
    size_t n;
    int err;

    if (ib->raw)
        return ib->raw->len ? qv_buf_append(b, ib->raw->data, ib->raw->len) : QV_OK;
    if (ib->nbytes == 0)
        return QV_OK;
    if (ib->is_bytes) {
        err = QV_OK;
        for (size_t k = 0; k < c->n_bytes_contents && !err; k++) {
            uint32_t len = (uint32_t)c->bytes_contents[k].len;
            uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                             (uint8_t)(len >> 24)};
            err = qv_buf_append(b, le, 4);
            err = err ? err : (len ? qv_buf_append(b, c->bytes_contents[k].data, len) : QV_OK);
        }
        return err;
    }
    n = typed_count(c, ib->dt);
    switch (ib->dt) {
    case QV_DTYPE_F32: return qv_buf_append(b, c->fp32_contents, n * 4);
    case QV_DTYPE_F64: return qv_buf_append(b, c->fp64_contents, n * 8);
    case QV_DTYPE_I32: return qv_buf_append(b, c->int_contents, n * 4);
    case QV_DTYPE_U32: return qv_buf_append(b, c->uint_contents, n * 4);
    case QV_DTYPE_I64: return qv_buf_append(b, c->int64_contents, n * 8);
    case QV_DTYPE_U64: return qv_buf_append(b, c->uint64_contents, n * 8);
    default: break;
    }
    /* Narrower types and BOOL: one element at a time. */
    err = QV_OK;
    for (size_t k = 0; k < n && !err; k++) {
        uint8_t v[2];
        size_t sz = qv_dtype_size(ib->dt);
        uint32_t x = ib->dt == QV_DTYPE_BOOL ? (c->bool_contents[k] != 0)
                   : (ib->dt == QV_DTYPE_I8 || ib->dt == QV_DTYPE_I16)
                       ? (uint32_t)c->int_contents[k] : c->uint_contents[k];
        v[0] = (uint8_t)x;
        v[1] = (uint8_t)(x >> 8);
        err = qv_buf_append(b, v, sz);
    }
    return err;
}

/* Appends a parameters map as a JSON object's members (after '{'); 'skip'
 * is left out. *n counts the members written. */
#define PUT_PARAMS(b, arr, count, skip, n, err)                                                    \
    do {                                                                                           \
        for (size_t k_ = 0; k_ < (count) && !(err); k_++) {                                        \
            if ((skip) != NULL && strcmp((arr)[k_]->key, (skip)) == 0)                             \
                continue;                                                                          \
            (err) = (*(n))++ ? qv_buf_append((b), ",", 1) : 0;                                     \
            (err) = (err) ? (err) : qv_json_put_string((b), (arr)[k_]->key);                       \
            (err) = (err) ? (err) : qv_buf_append((b), ":", 1);                                    \
            (err) = (err) ? (err) : put_param((b), (arr)[k_]->value);                              \
        }                                                                                          \
    } while (0)

static int infer_request(const Inference__ModelInferRequest *m, struct qv_grpc_rest *out,
                         int *code, struct qv_diag *d)
{
    struct in_bytes ib[QV_MAX_IO];
    struct qv_buf *b = &out->body;
    int err, n, raw = -1;

    err = model_path(out, "model_name", m->model_name, m->model_version, "/infer", code, d);
    if (err)
        return err;
    out->method = "POST";
    *code = QV_GRPC_INVALID_ARGUMENT;
    if (m->n_inputs == 0)
        return qv_fail(d, QV_EINVAL, "inputs: expected at least one tensor");
    if (m->n_inputs > QV_MAX_IO)
        return qv_fail(d, QV_EINVAL, "inputs: at most %d tensors", QV_MAX_IO);
    if (m->n_outputs > QV_MAX_IO)
        return qv_fail(d, QV_EINVAL, "outputs: at most %d tensors", QV_MAX_IO);
    if (m->n_raw_input_contents > 0 && m->n_raw_input_contents != m->n_inputs)
        return qv_fail(d, QV_EINVAL, "raw_input_contents: %zu entries for %zu inputs (one per "
                       "input, in input order)", m->n_raw_input_contents, m->n_inputs);
    for (size_t i = 0; i < m->n_inputs; i++) {
        err = input_bytes(m, i, &ib[i], code, d);
        if (err)
            return err;
    }
    *code = QV_GRPC_INTERNAL;
    /* How the outputs come back: raw when the inputs came raw (as Triton
     * answers), unless binary_data_output or an output's binary_data says. */
    if (m->n_raw_input_contents > 0)
        raw = 1;
    for (size_t k = 0; k < m->n_parameters; k++) {
        if (strcmp(m->parameters[k]->key, "binary_data_output") != 0)
            continue;
        raw = bool_param(m->parameters[k]->value);
        if (raw == -2) {
            *code = QV_GRPC_INVALID_ARGUMENT;
            return qv_fail(d, QV_EINVAL, "parameters.binary_data_output: expected a bool_param");
        }
    }
    for (size_t o = 0; o < m->n_outputs; o++)
        for (size_t k = 0; k < m->outputs[o]->n_parameters; k++) {
            int v;
            if (strcmp(m->outputs[o]->parameters[k]->key, "binary_data") != 0)
                continue;
            v = bool_param(m->outputs[o]->parameters[k]->value);
            if (v == -2) {
                *code = QV_GRPC_INVALID_ARGUMENT;
                return qv_fail(d, QV_EINVAL, "outputs[%zu].parameters.binary_data: expected a "
                               "bool_param", o);
            }
            if (v == 1)
                raw = 1;
        }
    out->raw_out = raw == 1;

    /* The JSON header: every input binary, every output asked for in binary. */
    err = qv_buf_append(b, "{", 1);
    if (m->id[0]) {
        err = err ? err : qv_buf_append(b, "\"id\":", 5);
        err = err ? err : qv_json_put_string(b, m->id);
        err = err ? err : qv_buf_append(b, ",", 1);
    }
    n = 0;
    err = err ? err : qv_buf_append(b, "\"parameters\":{", 14);
    PUT_PARAMS(b, m->parameters, m->n_parameters, "binary_data_output", &n, err);
    err = err ? err : qv_buf_printf(b, "%s\"binary_data_output\":true},\"inputs\":[", n ? "," : "");
    for (size_t i = 0; i < m->n_inputs && !err; i++) {
        const Inference__ModelInferRequest__InferInputTensor *t = m->inputs[i];
        err = qv_buf_append(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        err = err ? err : qv_json_put_string(b, t->name);
        err = err ? err : qv_buf_append(b, ",\"datatype\":", 12);
        err = err ? err : qv_json_put_string(b, t->datatype);
        err = err ? err : qv_buf_append(b, ",\"shape\":[", 10);
        for (size_t k = 0; k < t->n_shape && !err; k++)
            err = qv_buf_printf(b, "%s%" PRId64, k ? "," : "", t->shape[k]);
        n = 0;
        err = err ? err : qv_buf_append(b, "],\"parameters\":{", 16);
        PUT_PARAMS(b, t->parameters, t->n_parameters, "binary_data_size", &n, err);
        err = err ? err : qv_buf_printf(b, "%s\"binary_data_size\":%zu}}", n ? "," : "",
                                        ib[i].nbytes);
    }
    err = err ? err : qv_buf_append(b, "]", 1);
    if (m->n_outputs > 0) {
        err = err ? err : qv_buf_append(b, ",\"outputs\":[", 12);
        for (size_t o = 0; o < m->n_outputs && !err; o++) {
            const Inference__ModelInferRequest__InferRequestedOutputTensor *t = m->outputs[o];
            err = qv_buf_append(b, o ? ",{\"name\":" : "{\"name\":", o ? 9 : 8);
            err = err ? err : qv_json_put_string(b, t->name);
            n = 0;
            err = err ? err : qv_buf_append(b, ",\"parameters\":{", 15);
            PUT_PARAMS(b, t->parameters, t->n_parameters, "binary_data", &n, err);
            err = err ? err : qv_buf_printf(b, "%s\"binary_data\":true}}", n ? "," : "");
        }
        err = err ? err : qv_buf_append(b, "]", 1);
    }
    err = err ? err : qv_buf_append(b, "}", 1);
    out->json_len = b->len;
    for (size_t i = 0; i < m->n_inputs && !err; i++)
        err = put_input_bytes(b, m->inputs[i]->contents, &ib[i]);
    if (err)
        return qv_fail(d, err, "cannot lay out the request");
    snprintf(out->json_len_text, sizeof(out->json_len_text), "%zu", out->json_len);
    *code = QV_GRPC_OK;
    return QV_OK;
}

/* ---- Memory of one message ---- */

/* What a request unpacks into, or a response is built from, freed at once: a
 * bump allocator over chunks (each twice the last, at least the request), so
 * a call costs a malloc or two instead of one per field. Zeroed memory. */
struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    max_align_t data[];
};

struct arena {
    struct arena_chunk *head;
    bool failed;
};

static void *ar_alloc(struct arena *a, size_t n)
{
    struct arena_chunk *c = a->head;
    size_t need;
    char *p;

    if (a->failed || n > SIZE_MAX / 4) {
        a->failed = true;
        return NULL;
    }
    need = n ? (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t)
             : sizeof(max_align_t);
    if (c == NULL || c->cap - c->used < need) {
        size_t cap = c ? c->cap * 2 : 4096;
        struct arena_chunk *nc;
        if (cap < need)
            cap = need;
        nc = malloc(sizeof(*nc) + cap);
        if (nc == NULL) {
            a->failed = true;
            return NULL;
        }
        nc->next = c;
        nc->cap = cap;
        nc->used = 0;
        a->head = c = nc;
    }
    p = (char *)c->data + c->used;
    c->used += need;
    memset(p, 0, n);
    return p;
}

static char *ar_strdup(struct arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ar_alloc(a, n);

    if (p)
        memcpy(p, s, n);
    return p;
}

static void ar_free(struct arena *a)
{
    while (a->head) {
        struct arena_chunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* protobuf-c's allocator over an arena: nothing is freed one by one. */
static void *pb_alloc(void *ud, size_t n)
{
    return ar_alloc(ud, n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

int qv__grpc_request(enum qv_grpc_rpc rpc, const uint8_t *msg, size_t len,
                     struct qv_grpc_rest *out, int *code, struct qv_diag *d)
{
    static const ProtobufCMessageDescriptor *const in_desc[QV_GRPC_RPC_COUNT] = {
        [QV_GRPC_SERVER_LIVE] = &inference__server_live_request__descriptor,
        [QV_GRPC_SERVER_READY] = &inference__server_ready_request__descriptor,
        [QV_GRPC_MODEL_READY] = &inference__model_ready_request__descriptor,
        [QV_GRPC_SERVER_METADATA] = &inference__server_metadata_request__descriptor,
        [QV_GRPC_MODEL_METADATA] = &inference__model_metadata_request__descriptor,
        [QV_GRPC_MODEL_INFER] = &inference__model_infer_request__descriptor,
        [QV_GRPC_MODEL_STATISTICS] = &inference__model_statistics_request__descriptor,
        [QV_GRPC_REPOSITORY_INDEX] = &inference__repository_index_request__descriptor,
        [QV_GRPC_REPOSITORY_LOAD] = &inference__repository_model_load_request__descriptor,
        [QV_GRPC_REPOSITORY_UNLOAD] = &inference__repository_model_unload_request__descriptor,
    };
    struct arena a = {0};
    ProtobufCAllocator al = {pb_alloc, pb_free, &a};
    ProtobufCMessage *m;
    int err = QV_OK;

    memset(out, 0, sizeof(*out));
    out->method = "GET";
    *code = QV_GRPC_OK;
    if (rpc >= QV_GRPC_RPC_COUNT)
    {
        *code = QV_GRPC_UNIMPLEMENTED;
        return qv_fail(d, QV_EINVAL, "no such method");
    }
    m = protobuf_c_message_unpack(in_desc[rpc], &al, len, msg);
    if (m == NULL) {
        ar_free(&a);
        *code = QV_GRPC_INVALID_ARGUMENT;
        return qv_fail(d, QV_EINVAL, "%sRequest: not a valid protobuf message",
                       rpc_names[rpc]);
    }
    switch (rpc) {
    case QV_GRPC_SERVER_LIVE:
        snprintf(out->path, sizeof(out->path), "/v2/health/live");
        break;
    case QV_GRPC_SERVER_READY:
        snprintf(out->path, sizeof(out->path), "/v2/health/ready");
        break;
    case QV_GRPC_SERVER_METADATA:
        snprintf(out->path, sizeof(out->path), "/v2");
        break;
    case QV_GRPC_MODEL_READY: {
        const Inference__ModelReadyRequest *q = (const void *)m;
        err = model_path(out, "name", q->name, q->version, "/ready", code, d);
        break;
    }
    case QV_GRPC_MODEL_METADATA: {
        const Inference__ModelMetadataRequest *q = (const void *)m;
        err = model_path(out, "name", q->name, q->version, "", code, d);
        break;
    }
    case QV_GRPC_MODEL_STATISTICS: {
        const Inference__ModelStatisticsRequest *q = (const void *)m;
        if (q->name[0] == '\0' && q->version[0] == '\0')
            snprintf(out->path, sizeof(out->path), "/v2/models/stats");
        else
            err = model_path(out, "name", q->name, q->version, "/stats", code, d);
        break;
    }
    case QV_GRPC_REPOSITORY_INDEX: {
        const Inference__RepositoryIndexRequest *q = (const void *)m;
        /* GET (a read token may list), with the body POST would carry. */
        snprintf(out->path, sizeof(out->path), "/v2/repository/index");
        err = qv_buf_printf(&out->body, "{\"ready\":%s}", q->ready ? "true" : "false");
        break;
    }
    case QV_GRPC_REPOSITORY_LOAD:
    case QV_GRPC_REPOSITORY_UNLOAD: {
        const Inference__RepositoryModelLoadRequest *q = (const void *)m;
        out->method = "POST";
        err = model_path(out, "model_name", q->model_name, "",
                         rpc == QV_GRPC_REPOSITORY_LOAD ? "/load" : "/unload", code, d);
        if (!err) {
            /* "/v2/models/NAME/load" -> "/v2/repository/models/NAME/load" */
            char p[sizeof(out->path)];
            snprintf(p, sizeof(p), "/v2/repository%s", out->path + 3);
            memcpy(out->path, p, sizeof(p));
        }
        break;
    }
    case QV_GRPC_MODEL_INFER:
        err = infer_request((const Inference__ModelInferRequest *)m, out, code, d);
        break;
    default:
        break;
    }
    ar_free(&a); /* m and all it holds */
    if (err && *code == QV_GRPC_OK)
        *code = QV_GRPC_INTERNAL;
    return err;
}

/* ---- Answers ---- */

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *out_len, struct qv_diag *d)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    *out = malloc(n ? n : 1);
    if (*out == NULL)
        return qv_fail(d, QV_ENOMEM, "cannot allocate the response (%zu bytes)", n);
    *out_len = protobuf_c_message_pack(m, *out);
    return QV_OK;
}

/* One output of a REST answer: its head, and its bytes (in the answer's
 * binary part, or decoded from JSON "data" into t). */
struct out_view {
    const char *name, *datatype;
    int ndim;
    int64_t shape[QV_MAX_DIMS];
    enum qv_dtype dt;
    const uint8_t *data;
    size_t nbytes;
    struct qv_tensor t;
};

/* BYTES elements (4-byte little-endian length + bytes) into bytes_contents. */
static int bytes_elements(struct arena *a, const uint8_t *p, size_t n,
                          Inference__InferTensorContents *c)
{
    size_t count = 0, k = 0;

    for (size_t at = 0; at < n; count++) {
        uint32_t len;
        if (n - at < 4)
            return QV_EINVAL;
        len = (uint32_t)p[at] | (uint32_t)p[at + 1] << 8 | (uint32_t)p[at + 2] << 16 |
              (uint32_t)p[at + 3] << 24;
        if (len > n - at - 4)
            return QV_EINVAL;
        at += 4 + len;
    }
    c->bytes_contents = ar_alloc(a, count * sizeof(ProtobufCBinaryData));
    if (c->bytes_contents == NULL)
        return QV_ENOMEM;
    for (size_t at = 0; at < n; k++) {
        uint32_t len = (uint32_t)p[at] | (uint32_t)p[at + 1] << 8 | (uint32_t)p[at + 2] << 16 |
                       (uint32_t)p[at + 3] << 24;
        c->bytes_contents[k].len = len;
        c->bytes_contents[k].data = (uint8_t *)p + at + 4;
        at += 4 + len;
    }
    c->n_bytes_contents = count;
    return QV_OK;
}

/* An output's bytes as typed contents. */
static int typed_contents(struct arena *a, const struct out_view *v,
                          Inference__InferTensorContents *c)
{
    size_t sz = qv_dtype_size(v->dt), n = sz ? v->nbytes / sz : 0;
    void *arr;

    if (v->dt == QV_DTYPE_STRING)
        return bytes_elements(a, v->data, v->nbytes, c);
    switch (v->dt) {
    case QV_DTYPE_F32: case QV_DTYPE_F64: case QV_DTYPE_I32: case QV_DTYPE_U32:
    case QV_DTYPE_I64: case QV_DTYPE_U64:
        arr = ar_alloc(a, v->nbytes);
        if (arr == NULL)
            return QV_ENOMEM;
        memcpy(arr, v->data, v->nbytes);
        break;
    case QV_DTYPE_I8: case QV_DTYPE_I16: case QV_DTYPE_U8: case QV_DTYPE_U16: case QV_DTYPE_BOOL:
        arr = ar_alloc(a, n * 4);
        if (arr == NULL)
            return QV_ENOMEM;
        for (size_t k = 0; k < n; k++) {
            const uint8_t *p = v->data + k * sz;
            uint32_t u = sz == 1 ? p[0] : (uint32_t)p[0] | (uint32_t)p[1] << 8;
            int32_t *s = arr;
            uint32_t *w = arr;
            if (v->dt == QV_DTYPE_I8)
                s[k] = (int8_t)u;
            else if (v->dt == QV_DTYPE_I16)
                s[k] = (int16_t)u;
            else if (v->dt == QV_DTYPE_BOOL)
                w[k] = u != 0;
            else
                w[k] = u;
        }
        break;
    default:
        return QV_ENOTSUP;
    }
    switch (v->dt) {
    case QV_DTYPE_F32: c->n_fp32_contents = n; c->fp32_contents = arr; break;
    case QV_DTYPE_F64: c->n_fp64_contents = n; c->fp64_contents = arr; break;
    case QV_DTYPE_I8: case QV_DTYPE_I16: case QV_DTYPE_I32:
        c->n_int_contents = n; c->int_contents = arr; break;
    case QV_DTYPE_U8: case QV_DTYPE_U16: case QV_DTYPE_U32:
        c->n_uint_contents = n; c->uint_contents = arr; break;
    case QV_DTYPE_I64: c->n_int64_contents = n; c->int64_contents = arr; break;
    case QV_DTYPE_U64: c->n_uint64_contents = n; c->uint64_contents = arr; break;
    case QV_DTYPE_BOOL: c->n_bool_contents = n; c->bool_contents = arr; break;
    default: break;
    }
    return QV_OK;
}

/* A response parameter from a JSON value (objects and arrays as JSON text). */
static Inference__InferParameter *json_param(struct arena *a, const json_t *v)
{
    Inference__InferParameter *p = ar_alloc(a, sizeof(*p));

    if (p == NULL)
        return NULL;
    inference__infer_parameter__init(p);
    if (json_is_boolean(v)) {
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
        p->bool_param = json_is_true(v);
    } else if (json_is_integer(v)) {
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
        p->int64_param = json_integer_value(v);
    } else {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
        p->string_param = ar_strdup(a, json_is_string(v) ? json_string_value(v)
                                                         : (text ? text : ""));
        free(text);
        if (p->string_param == NULL)
            return NULL;
    }
    return p;
}

static int infer_response(const struct qv_grpc_rest *rest, const struct qv_http_req *r,
                          uint8_t **out, size_t *out_len, struct qv_diag *d)
{
    Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    struct out_view views[QV_MAX_IO];
    struct arena a = {0};
    size_t json_len = r->resp.len, at, n_out = 0;
    const json_t *outs, *params, *v;
    bool raw = rest->raw_out;
    json_error_t jerr;
    json_t *root = NULL;
    char *quoted = NULL;
    int err = QV_OK;

    memset(views, 0, sizeof(views));
    for (int i = 0; i < r->n_resp_headers; i++)
        if (strcmp(r->resp_headers[i].name, QV_BIN_HEADER) == 0) {
            json_len = (size_t)strtoull(r->resp_headers[i].value, NULL, 10);
            if (json_len > r->resp.len)
                return qv_fail(d, QV_EIO, "the answer's JSON header is past its end");
        }
    {
        size_t ql = 0;
        quoted = qv_json_quote_nonfinite(r->resp.data, json_len, &ql);
        root = quoted ? json_loadb(quoted, ql, 0, &jerr)
                      : json_loadb(r->resp.data ? r->resp.data : "", json_len, 0, &jerr);
        free(quoted);
    }
    outs = json_object_get(root, "outputs");
    if (root == NULL || !json_is_array(outs) || json_array_size(outs) > QV_MAX_IO) {
        json_decref(root);
        return qv_fail(d, QV_EIO, "the answer is not a KServe v2 response");
    }
    at = json_len;
    for (size_t i = 0; i < json_array_size(outs) && !err; i++) {
        const json_t *o = json_array_get(outs, i), *sz, *shape;
        struct out_view *w = &views[n_out++];
        char field[32];

        snprintf(field, sizeof(field), "outputs[%zu]", i);
        w->name = json_string_value(json_object_get(o, "name"));
        w->datatype = json_string_value(json_object_get(o, "datatype"));
        shape = json_object_get(o, "shape");
        if (w->name == NULL || w->datatype == NULL || !json_is_array(shape) ||
            json_array_size(shape) > QV_MAX_DIMS) {
            err = qv_fail(d, QV_EIO, "%s: not a tensor", field);
            break;
        }
        w->dt = qv_dtype_from_name(w->datatype);
        w->ndim = (int)json_array_size(shape);
        for (int k = 0; k < w->ndim; k++)
            w->shape[k] = json_integer_value(json_array_get(shape, (size_t)k));
        sz = json_object_get(json_object_get(o, "parameters"), "binary_data_size");
        if (json_is_integer(sz)) {
            size_t n = (size_t)json_integer_value(sz);
            if (json_integer_value(sz) < 0 || n > r->resp.len - at) {
                err = qv_fail(d, QV_EIO, "%s: binary data past the answer's end", field);
                break;
            }
            w->data = (const uint8_t *)r->resp.data + at;
            w->nbytes = n;
            at += n;
        } else {
            err = qv_tensor_from_json(o, field, &w->t, d);
            w->data = w->t.data;
            w->nbytes = w->t.nbytes;
        }
        if (w->dt == QV_DTYPE_F16 || w->dt == QV_DTYPE_BF16 || w->dt == QV_DTYPE_UNDEF)
            raw = true; /* no typed contents field for these */
    }
    if (err)
        goto out;
    /* The answer's head. */
    v = json_object_get(root, "model_name");
    resp.model_name = ar_strdup(&a, json_is_string(v) ? json_string_value(v) : "");
    v = json_object_get(root, "model_version");
    resp.model_version = ar_strdup(&a, json_is_string(v) ? json_string_value(v) : "");
    v = json_object_get(root, "id");
    resp.id = ar_strdup(&a, json_is_string(v) ? json_string_value(v) : "");
    params = json_object_get(root, "parameters");
    if (json_is_object(params) && json_object_size(params) > 0) {
        const char *key;
        json_t *pv;
        resp.parameters = ar_alloc(&a, json_object_size(params) * sizeof(*resp.parameters));
        json_object_foreach((json_t *)params, key, pv) {
            Inference__ModelInferResponse__ParametersEntry *e;
            if (resp.parameters == NULL)
                break;
            e = ar_alloc(&a, sizeof(*e));
            if (e == NULL)
                break;
            inference__model_infer_response__parameters_entry__init(e);
            e->key = ar_strdup(&a, key);
            e->value = json_param(&a, pv);
            resp.parameters[resp.n_parameters++] = e;
        }
    }
    resp.outputs = ar_alloc(&a, n_out * sizeof(*resp.outputs));
    if (raw)
        resp.raw_output_contents = ar_alloc(&a, n_out * sizeof(*resp.raw_output_contents));
    for (size_t i = 0; i < n_out && !a.failed && !err; i++) {
        Inference__ModelInferResponse__InferOutputTensor *o = ar_alloc(&a, sizeof(*o));
        if (o == NULL)
            break;
        inference__model_infer_response__infer_output_tensor__init(o);
        o->name = ar_strdup(&a, views[i].name);
        o->datatype = ar_strdup(&a, views[i].datatype);
        o->shape = ar_alloc(&a, sizeof(int64_t) * (size_t)views[i].ndim);
        if (o->shape)
            memcpy(o->shape, views[i].shape, sizeof(int64_t) * (size_t)views[i].ndim);
        o->n_shape = (size_t)views[i].ndim;
        if (raw && resp.raw_output_contents) {
            resp.raw_output_contents[i].data = (uint8_t *)views[i].data;
            resp.raw_output_contents[i].len = views[i].nbytes;
            resp.n_raw_output_contents = i + 1;
        } else if (!raw) {
            o->contents = ar_alloc(&a, sizeof(*o->contents));
            if (o->contents) {
                inference__infer_tensor_contents__init(o->contents);
                err = typed_contents(&a, &views[i], o->contents);
                if (err)
                    qv_fail(d, QV_EIO, "outputs[%zu]: cannot convert %s data", i,
                            views[i].datatype);
            }
        }
        resp.outputs[resp.n_outputs++] = o;
    }
    if (!err && a.failed)
        err = qv_fail(d, QV_ENOMEM, "cannot allocate the response");
    if (!err)
        err = pack(&resp.base, out, out_len, d);
out:
    for (size_t i = 0; i < n_out; i++)
        qv_tensor_fini(&views[i].t);
    ar_free(&a);
    json_decref(root);
    return err;
}

/* ---- Other answers: JSON into a message, field by field ---- */

static int json_to_msg(const ProtobufCMessageDescriptor *desc, const json_t *obj, int depth,
                       ProtobufCMessage **out);

static size_t elt_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 8;
}

static int64_t json_int(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

/* Sets one value at 'slot' from v. A repeated slot always gets a value (an
 * empty string or message when v does not fit), so the array stays whole. */
static int set_value(const ProtobufCFieldDescriptor *f, void *slot, const json_t *v, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        *(int32_t *)slot = (int32_t)json_int(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)slot = (uint32_t)json_int(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)slot = json_int(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)slot = json_is_string(v) ? strtoull(json_string_value(v), NULL, 10)
                                              : (uint64_t)json_int(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)slot = (float)json_number_value(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)slot = json_number_value(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return QV_OK;
    case PROTOBUF_C_TYPE_STRING: {
        char num[32], *s;
        const char *src = json_is_string(v) ? json_string_value(v) : "";
        if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            src = num;
        }
        s = strdup(src);
        if (s == NULL)
            return QV_ENOMEM;
        *(char **)slot = s;
        return QV_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return json_to_msg(f->descriptor, json_is_object(v) ? v : NULL, depth + 1,
                           (ProtobufCMessage **)slot);
    default:
        return QV_OK; /* bytes: none in the answers converted here */
    }
}

static int json_to_msg(const ProtobufCMessageDescriptor *desc, const json_t *obj, int depth,
                       ProtobufCMessage **out)
{
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    int err = QV_OK;

    *out = m;
    if (m == NULL)
        return QV_ENOMEM;
    desc->message_init(m);
    if (depth > JSON_DEPTH_MAX || obj == NULL)
        return QV_OK;
    for (unsigned i = 0; i < desc->n_fields && !err; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const json_t *v = json_object_get(obj, f->name);
        char *base = (char *)m;

        if (v == NULL || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            f->type == PROTOBUF_C_TYPE_BYTES)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = json_is_array(v) ? json_array_size(v) : 0, sz = elt_size(f);
            size_t *count = (size_t *)(base + f->quantifier_offset);
            char *arr;
            if (n == 0)
                continue;
            arr = calloc(n, sz);
            if (arr == NULL)
                return QV_ENOMEM;
            *(void **)(base + f->offset) = arr;
            for (size_t k = 0; k < n && !err; k++) {
                err = set_value(f, arr + k * sz, json_array_get(v, k), depth);
                if (!err)
                    *count = k + 1; /* only whole elements are counted (and freed) */
            }
            continue;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !json_is_object(v))
            continue;
        err = set_value(f, base + f->offset, v, depth);
    }
    return err;
}

static int generic_response(const ProtobufCMessageDescriptor *desc, const json_t *root,
                            uint8_t **out, size_t *out_len, struct qv_diag *d)
{
    ProtobufCMessage *m = NULL;
    int err = json_to_msg(desc, root, 0, &m);

    if (err)
        err = qv_fail(d, err, "cannot allocate the response");
    else
        err = pack(m, out, out_len, d);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return err;
}

int qv__grpc_response(enum qv_grpc_rpc rpc, const struct qv_grpc_rest *rest,
                      const struct qv_http_req *r, uint8_t **out, size_t *out_len, int *code,
                      struct qv_diag *d)
{
    static const ProtobufCMessageDescriptor *const out_desc[QV_GRPC_RPC_COUNT] = {
        [QV_GRPC_SERVER_LIVE] = &inference__server_live_response__descriptor,
        [QV_GRPC_SERVER_READY] = &inference__server_ready_response__descriptor,
        [QV_GRPC_MODEL_READY] = &inference__model_ready_response__descriptor,
        [QV_GRPC_SERVER_METADATA] = &inference__server_metadata_response__descriptor,
        [QV_GRPC_MODEL_METADATA] = &inference__model_metadata_response__descriptor,
        [QV_GRPC_MODEL_INFER] = &inference__model_infer_response__descriptor,
        [QV_GRPC_MODEL_STATISTICS] = &inference__model_statistics_response__descriptor,
        [QV_GRPC_REPOSITORY_INDEX] = &inference__repository_index_response__descriptor,
        [QV_GRPC_REPOSITORY_LOAD] = &inference__repository_model_load_response__descriptor,
        [QV_GRPC_REPOSITORY_UNLOAD] = &inference__repository_model_unload_response__descriptor,
    };
    bool ready_rpc = rpc == QV_GRPC_SERVER_READY || rpc == QV_GRPC_MODEL_READY;
    json_t *root = NULL;
    int err;

    *out = NULL;
    *out_len = 0;
    *code = qv__grpc_code_of_http(r->status);
    if (rpc >= QV_GRPC_RPC_COUNT)
        return qv_fail(d, QV_EINVAL, "no such method");
    if (rpc == QV_GRPC_MODEL_INFER && r->status == 200) {
        err = infer_response(rest, r, out, out_len, d);
        if (err)
            *code = QV_GRPC_INTERNAL;
        return err;
    }
    if (r->resp.len > 0)
        root = json_loadb(r->resp.data, r->resp.len, JSON_DECODE_ANY, NULL);
    /* Not ready is an answer ({"ready": false}), not an error. */
    if (ready_rpc && r->status == 503 && json_is_false(json_object_get(root, "ready")))
        *code = QV_GRPC_OK;
    if (*code != QV_GRPC_OK) {
        const char *msg = json_string_value(json_object_get(root, "error"));
        qv_diag_set(d, "%s", msg ? msg : "request failed");
        json_decref(root);
        return QV_EINVAL;
    }
    if (rpc == QV_GRPC_REPOSITORY_INDEX && json_is_array(root)) {
        json_t *wrap = json_pack("{sO}", "models", root);
        json_decref(root);
        root = wrap;
    }
    err = generic_response(out_desc[rpc], root, out, out_len, d);
    json_decref(root);
    if (err)
        *code = QV_GRPC_INTERNAL;
    return err;
}
