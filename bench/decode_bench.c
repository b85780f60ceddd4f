/* SPDX-License-Identifier: MIT
 *
 * bench/decode_bench.c -- the decode cost of one KServe v2 inference request,
 * JSON against the binary tensor data extension, in process, with quiver's
 * own decoding functions (libquiver_core): for JSON, the non-finite token
 * scan, jansson's parse and qv_tensor_from_json; for binary, the header
 * split (qv__bin_split), the same scan and parse of the JSON header, and
 * qv__bin_input, which checks the size and copies the bytes. Both build the
 * same FP32 tensor of the given shape (values sin(0.37 i)), checked equal.
 * Prints one line that bench/rows_binary.sh parses:
 *
 *   DECODE shape=1x3x224x224 json_bytes=N bin_bytes=N json_p50_us=F bin_p50_us=F ratio=F
 *
 * Usage: decode_bench RUNS D0 [D1 ...]   (from bench/rows_binary.sh, which builds it against
 * a quiver build directory as bench/rows_onnx.sh builds bench/onnx_inproc.c). Asserts nothing.
 */
#include "api/binary.h"
#include "tensor/tensor.h"
#include "util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

static char g_hlen[32];

static const char *bin_header(struct qv_http_req *h, const char *name)
{
    (void)h;
    return strcasecmp(name, QV_BIN_HEADER) == 0 ? g_hlen : NULL;
}

static json_t *parse(const char *text, size_t len)
{
    size_t ql = 0;
    char *quoted = qv_json_quote_nonfinite(text, len, &ql);
    json_t *root = quoted ? json_loadb(quoted, ql, 0, NULL) : json_loadb(text, len, 0, NULL);

    free(quoted);
    return root;
}

/* The JSON path: what the server does with a JSON body. */
static int decode_json(const char *body, size_t len, struct qv_tensor *t)
{
    struct qv_diag d = {{0}};
    json_t *root = parse(body, len);
    int err;

    if (root == NULL)
        return QV_EINVAL;
    err = qv_tensor_from_json(json_array_get(json_object_get(root, "inputs"), 0), "inputs[0]", t,
                              &d);
    json_decref(root);
    return err;
}

/* The binary path: header split, JSON header parse, binary part checked and copied. */
static int decode_bin(struct qv_http_req *h, struct qv_tensor *t)
{
    struct qv_diag d = {{0}};
    struct qv_bin bin;
    size_t jl;
    json_t *root;
    bool used = false;
    int err = qv__bin_split(h, &jl, &bin, &d);

    if (err)
        return err;
    root = parse(h->body, jl);
    if (root == NULL)
        return QV_EINVAL;
    err = qv__bin_input(json_array_get(json_object_get(root, "inputs"), 0), "inputs[0]", &bin, t,
                        &used, &d);
    json_decref(root);
    if (!err && !used)
        err = QV_EINVAL;
    return err ? err : qv__bin_finish(&bin, &d);
}

int main(int argc, char **argv)
{
    int64_t shape[QV_MAX_DIMS], n = 1;
    int ndim = argc - 2, runs;
    struct qv_buf js = {0}, hb = {0};
    struct qv_http_req h;
    uint64_t *tj, *tb;
    char *bin_body;
    float *x;
    size_t bin_len;
    char shp[160] = "";

    if (argc < 3 || ndim > QV_MAX_DIMS) {
        fprintf(stderr, "usage: %s RUNS D0 [D1 ...]\n", argv[0]);
        return 2;
    }
    runs = atoi(argv[1]);
    if (runs < 1)
        runs = 1;
    for (int k = 0; k < ndim; k++) {
        shape[k] = atoll(argv[k + 2]);
        n *= shape[k];
        snprintf(shp + strlen(shp), sizeof(shp) - strlen(shp), "%s%lld", k ? "x" : "",
                 (long long)shape[k]);
    }
    x = malloc(sizeof(float) * (size_t)n);
    tj = calloc((size_t)runs, sizeof(*tj));
    tb = calloc((size_t)runs, sizeof(*tb));
    if (x == NULL || tj == NULL || tb == NULL)
        return 1;
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)sin(0.37 * (double)i);

    /* The JSON body, floats written to round-trip as a client's json module would. */
    qv_buf_printf(&js, "{\"inputs\":[{\"name\":\"input\",\"shape\":[");
    for (int k = 0; k < ndim; k++)
        qv_buf_printf(&js, "%s%lld", k ? "," : "", (long long)shape[k]);
    qv_buf_printf(&js, "],\"datatype\":\"FP32\",\"data\":[");
    for (int64_t i = 0; i < n; i++)
        qv_buf_printf(&js, "%s%.9g", i ? "," : "", (double)x[i]);
    qv_buf_printf(&js, "]}]}");
    /* The binary body: the same header without data, then the raw floats. */
    qv_buf_printf(&hb, "{\"inputs\":[{\"name\":\"input\",\"shape\":[");
    for (int k = 0; k < ndim; k++)
        qv_buf_printf(&hb, "%s%lld", k ? "," : "", (long long)shape[k]);
    qv_buf_printf(&hb, "],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":%zu}}]}",
                  sizeof(float) * (size_t)n);
    snprintf(g_hlen, sizeof(g_hlen), "%zu", hb.len);
    bin_len = hb.len + sizeof(float) * (size_t)n;
    bin_body = malloc(bin_len);
    if (bin_body == NULL || js.data == NULL || hb.data == NULL)
        return 1;
    memcpy(bin_body, hb.data, hb.len);
    memcpy(bin_body + hb.len, x, sizeof(float) * (size_t)n);
    memset(&h, 0, sizeof(h));
    h.body = bin_body;
    h.body_len = bin_len;
    h.header = bin_header;

    for (int r = 0; r < runs + 2; r++) {
        struct qv_tensor a, b;
        uint64_t t0 = now_ns(), t1, t2;
        if (decode_json(js.data, js.len, &a) != QV_OK) {
            fprintf(stderr, "decode_bench: the JSON request did not decode\n");
            return 1;
        }
        t1 = now_ns();
        if (decode_bin(&h, &b) != QV_OK) {
            fprintf(stderr, "decode_bench: the binary request did not decode\n");
            return 1;
        }
        t2 = now_ns();
        if (a.nbytes != b.nbytes || memcmp(a.data, b.data, a.nbytes) != 0) {
            fprintf(stderr, "decode_bench: the two decodings differ\n");
            return 1;
        }
        qv_tensor_fini(&a);
        qv_tensor_fini(&b);
        if (r >= 2) { /* two unrecorded rounds first */
            tj[r - 2] = t1 - t0;
            tb[r - 2] = t2 - t1;
        }
    }
    qsort(tj, (size_t)runs, sizeof(*tj), cmp_u64);
    qsort(tb, (size_t)runs, sizeof(*tb), cmp_u64);
    printf("DECODE shape=%s json_bytes=%zu bin_bytes=%zu json_p50_us=%.1f bin_p50_us=%.1f "
           "ratio=%.1f\n", shp, js.len, bin_len, (double)tj[runs / 2] / 1e3,
           (double)tb[runs / 2] / 1e3, (double)tj[runs / 2] / (double)(tb[runs / 2] ? tb[runs / 2] : 1));
    qv_buf_free(&js);
    qv_buf_free(&hb);
    free(bin_body);
    free(x);
    free(tj);
    free(tb);
    return 0;
}
