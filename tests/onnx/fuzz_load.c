/* SPDX-License-Identifier: MIT
 *
 * Fuzz target for the ONNX loader and planner: any byte string must load or
 * fail with a diag, never crash, hang or leak; a model that loads is run
 * once on zero inputs of its declared shapes (symbolic dims set to 1).
 *
 * Two builds of this file:
 *   libFuzzer (clang -fsanitize=fuzzer, CMake -DQV_FUZZ=ON): fuzz_load
 *       ./fuzz_load -max_total_time=600 tests/onnx/fuzz_corpus
 *   replay (any compiler, -DQV_FUZZ_REPLAY): fuzz_load_replay FILE|DIR...
 *       runs every file, then a fixed number of deterministic mutations of
 *       it (truncations, byte flips, splices; fixed seed). CTest runs it on
 *       tests/onnx/fuzz_corpus and a few models of the ONNX test data.
 */
#include "onnx/onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUN_ELEMS 1024               /* keep each run fast */
#define MAX_RUN_BYTES ((size_t)64 << 20) /* and small */

static void run_once(qv_onnx_model *m)
{
    struct qv_tensor in[16], out[16];
    int n_in = qv_onnx_n_inputs(m), n_out = 0, made = 0;
    struct qv_diag d = {{0}};
    int64_t total = 0;

    if (n_in > 16 || qv_onnx_memory(m) > MAX_RUN_BYTES)
        return;
    memset(in, 0, sizeof(in));
    for (int i = 0; i < n_in; i++) {
        const struct qv_tensor_desc *dd = qv_onnx_input(m, i);
        int64_t shape[QV_MAX_DIMS], n;
        for (int k = 0; k < dd->ndim; k++)
            shape[k] = dd->shape[k] < 0 ? 1 : dd->shape[k];
        n = qv_shape_numel(shape, dd->ndim);
        if (n < 0 || n > MAX_RUN_ELEMS || (total += n) > MAX_RUN_ELEMS)
            goto out;
        if (qv_tensor_alloc(&in[i], dd->name, dd->dtype, dd->ndim, shape) != QV_OK)
            goto out;
        made = i + 1;
    }
    if (qv_onnx_run(m, in, n_in, out, 16, &n_out, &d) == QV_OK)
        for (int i = 0; i < n_out; i++)
            qv_tensor_fini(&out[i]);
out:
    for (int i = 0; i < made; i++)
        qv_tensor_fini(&in[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qv_onnx_options opt = {.threads = 1, .max_bytes = (size_t)64 << 20};
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};

    if (qv_onnx_load_buffer(data, size, NULL, &opt, &m, &d) == QV_OK) {
        run_once(m);
        qv_onnx_free(m);
    } else if (d.msg[0] == '\0') {
        abort(); /* every failure must say why */
    }
    return 0;
}

#ifdef QV_FUZZ_REPLAY
#include <dirent.h>
#include <sys/stat.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int replay_file(const char *path, int mutations)
{
    struct qv_diag d = {{0}};
    char *data = NULL;
    uint8_t *buf;
    size_t len = 0;

    if (qv_file_read_all(path, (size_t)64 << 20, &data, &len, &d) != QV_OK) {
        fprintf(stderr, "%s: %s\n", path, d.msg);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    buf = malloc(len + 1);
    if (buf == NULL) {
        free(data);
        return 1;
    }
    for (int k = 0; k < mutations && len > 0; k++) {
        size_t n = len;
        memcpy(buf, data, len);
        switch (next() % 4) {
        case 0: /* truncate */
            n = (size_t)(next() % len);
            break;
        case 1: /* flip a few bytes */
            for (int j = 0; j < 1 + (int)(next() % 4); j++)
                buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 2: /* set a byte to an interesting value */
            buf[next() % len] = (uint8_t[]){0x00, 0xff, 0x7f, 0x80, 0x01}[next() % 5];
            break;
        default: { /* copy a run of bytes elsewhere */
            size_t a = (size_t)(next() % len), b = (size_t)(next() % len);
            size_t run = (size_t)(next() % 16);
            for (size_t j = 0; j < run && a + j < len && b + j < len; j++)
                buf[b + j] = buf[a + j];
            break;
        }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    free(buf);
    free(data);
    return 0;
}

static int replay_path(const char *path, int mutations, int *files)
{
    struct stat st;
    DIR *dir;
    struct dirent *e;
    int bad = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: not found\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*files)++;
        return replay_file(path, mutations);
    }
    dir = opendir(path);
    while (dir && (e = readdir(dir)) != NULL) {
        char sub[4096];
        if (e->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= sizeof(sub))
            continue;
        bad |= replay_path(sub, mutations, files);
    }
    if (dir)
        closedir(dir);
    return bad;
}

int main(int argc, char **argv)
{
    int mutations = 200, files = 0, bad = 0;

    qv_log_set_level(QV_LOG_ERROR);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc)
            mutations = atoi(argv[++i]);
        else
            bad |= replay_path(argv[i], mutations, &files);
    }
    printf("fuzz replay: %d files, %d mutations each\n", files, mutations);
    return bad;
}
#endif
