/* SPDX-License-Identifier: MIT
 *
 * bench/onnx_inproc.c -- quiver's own ONNX runtime called in-process, batch 1:
 * loads MODEL with the given intra-op thread count, builds one input per graph
 * input (symbolic dims set to 1, FP32 values x[i] = sin(0.37 i), the same as
 * bench/onnx/ort_inproc.js), runs WARMUP unrecorded calls, then RUNS timed
 * qv_onnx_run calls, and prints one line that bench/run.sh parses:
 *
 *   ONNX runs=N threads=T p50_us=F p99_us=F min_us=F out0=F sumabs=F
 *
 * out0 and sumabs (first output element, sum of |output|) let the script check
 * that both runtimes computed the same thing. It asserts nothing.
 *
 * Build from the repository root against a quiver build directory B (bench/run.sh
 * does this, reusing the link line of B's quiver executable):
 *   cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc bench/onnx_inproc.c \
 *      B/libquiver_core.a <the libraries of B/CMakeFiles/quiver.dir/link.txt> -o /tmp/onnx_inproc
 *   /tmp/onnx_inproc MODEL.onnx THREADS RUNS [WARMUP] [OUT.f32]
 * OUT.f32, when given, receives output 0 of the last run as raw float32
 * (bench/onnx/ort_inproc.js writes the same), for an element-wise comparison.
 */
#include "onnx/onnx.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IO 8

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

int main(int argc, char **argv)
{
    struct qv_onnx_options opt = {0};
    struct qv_tensor in[MAX_IO], out[MAX_IO];
    struct qv_diag d = {{0}};
    qv_onnx_model *m = NULL;
    uint64_t *ns = NULL;
    int n_in, n_out = 0, runs, warmup, rc = 1;
    double sumabs = 0, out0 = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.onnx THREADS RUNS [WARMUP] [OUT.f32]\n", argv[0]);
        return 2;
    }
    opt.threads = atoi(argv[2]);
    runs = atoi(argv[3]);
    warmup = argc > 4 && argv[4][0] ? atoi(argv[4]) : runs / 10 + 1;
    if (runs < 1 || opt.threads < 1) {
        fprintf(stderr, "onnx_inproc: THREADS and RUNS must be positive\n");
        return 2;
    }
    memset(in, 0, sizeof(in));
    if (qv_onnx_load_file(argv[1], &opt, &m, &d) != 0) {
        fprintf(stderr, "onnx_inproc: %s: %s\n", argv[1], d.msg);
        return 1;
    }
    n_in = qv_onnx_n_inputs(m);
    if (n_in < 1 || n_in > MAX_IO) {
        fprintf(stderr, "onnx_inproc: %d inputs, expected 1..%d\n", n_in, MAX_IO);
        goto out;
    }
    for (int i = 0; i < n_in; i++) {
        const struct qv_tensor_desc *desc = qv_onnx_input(m, i);
        int64_t shape[QV_MAX_DIMS];

        if (desc->dtype != QV_DTYPE_F32) {
            fprintf(stderr, "onnx_inproc: input %s is not FP32\n", desc->name);
            goto out;
        }
        for (int k = 0; k < desc->ndim; k++)
            shape[k] = desc->shape[k] < 0 ? 1 : desc->shape[k];
        if (qv_tensor_alloc(&in[i], desc->name, desc->dtype, desc->ndim, shape) != 0) {
            fprintf(stderr, "onnx_inproc: cannot allocate input %s\n", desc->name);
            goto out;
        }
        for (int64_t k = 0; k < qv_tensor_numel(&in[i]); k++)
            ((float *)in[i].data)[k] = (float)sin(0.37 * (double)k);
    }
    ns = calloc((size_t)runs, sizeof(*ns));
    if (!ns)
        goto out;
    for (int r = 0; r < warmup + runs; r++) {
        uint64_t t0 = now_ns();

        if (qv_onnx_run(m, in, n_in, out, MAX_IO, &n_out, &d) != 0) {
            fprintf(stderr, "onnx_inproc: run %d: %s\n", r, d.msg);
            goto out;
        }
        if (r >= warmup)
            ns[r - warmup] = now_ns() - t0;
        if (r == warmup + runs - 1) {
            int64_t n = qv_tensor_numel(&out[0]);

            for (int64_t k = 0; k < n; k++)
                sumabs += fabs(qv_tensor_get_f64(&out[0], k));
            out0 = n > 0 ? qv_tensor_get_f64(&out[0], 0) : 0;
            if (argc > 5 && out[0].dtype == QV_DTYPE_F32) {
                FILE *f = fopen(argv[5], "wb");
                if (f == NULL || fwrite(out[0].data, 1, out[0].nbytes, f) != out[0].nbytes) {
                    fprintf(stderr, "onnx_inproc: cannot write %s\n", argv[5]);
                    if (f)
                        fclose(f);
                    goto out;
                }
                fclose(f);
            }
        }
        for (int k = 0; k < n_out; k++)
            qv_tensor_fini(&out[k]);
        n_out = 0;
    }
    qsort(ns, (size_t)runs, sizeof(*ns), cmp_u64);
    printf("ONNX runs=%d threads=%d p50_us=%.1f p99_us=%.1f min_us=%.1f out0=%.6g sumabs=%.6g\n",
           runs, opt.threads, (double)ns[runs / 2] / 1e3, (double)ns[(runs * 99) / 100] / 1e3,
           (double)ns[0] / 1e3, out0, sumabs);
    rc = 0;
out:
    for (int i = 0; i < MAX_IO; i++)
        qv_tensor_fini(&in[i]);
    free(ns);
    qv_onnx_free(m);
    return rc;
}
