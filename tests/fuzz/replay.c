/* SPDX-License-Identifier: MIT
 *
 * The replay driver linked with each fuzz target when it is built without
 * libFuzzer (any compiler; the plain and ASan builds): runs every file given
 * (or every file of every directory given), then a fixed number of
 * deterministic mutations of each (truncations, bit flips, interesting
 * bytes, copied runs; a fixed seed), through LLVMFuzzerTestOneInput. A crash,
 * a sanitizer report or an abort() of the target fails the run.
 *
 *   fuzz_kserve_replay [--mutations N] FILE|DIR...
 */
#include "fuzz_server.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void mutate(uint8_t *buf, size_t *n, size_t len)
{
    *n = len;
    switch (next() % 5) {
    case 0: /* truncate */
        *n = (size_t)(next() % len);
        break;
    case 1: /* flip a few bits */
        for (int j = 0; j < 1 + (int)(next() % 4); j++)
            buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
        break;
    case 2: /* an interesting byte */
        buf[next() % len] = (uint8_t[]){0x00, 0xff, 0x7f, 0x80, 0x01, '[', '{', '"', '-', '9',
                                        ']', '}', ','}[next() % 13];
        break;
    case 3: { /* a digit run: big numbers */
        size_t at = (size_t)(next() % len);
        for (size_t j = 0; j < 1 + next() % 12 && at + j < len; j++)
            buf[at + j] = (uint8_t)('0' + next() % 10);
        break;
    }
    default: { /* copy a run of bytes elsewhere */
        size_t a = (size_t)(next() % len), b = (size_t)(next() % len);
        size_t run = (size_t)(next() % 16);
        for (size_t j = 0; j < run && a + j < len && b + j < len; j++)
            buf[b + j] = buf[a + j];
        break;
    }
    }
}

static int replay_file(const char *path, int mutations)
{
    struct qv_diag d = {{0}};
    char *data = NULL;
    uint8_t *buf;
    size_t len = 0;

    if (qv_file_read_all(path, (size_t)16 << 20, &data, &len, &d) != QV_OK) {
        fprintf(stderr, "%s: %s\n", path, d.msg);
        return 1;
    }
    /* A copy of exactly len bytes, so ASan sees a read past the input. */
    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        free(data);
        return 1;
    }
    memcpy(buf, data, len);
    LLVMFuzzerTestOneInput(buf, len);
    for (int k = 0; k < mutations && len > 0; k++) {
        size_t n;
        memcpy(buf, data, len);
        mutate(buf, &n, len);
        if (next() % 4 == 0) /* and sometimes a second mutation on top */
            mutate(buf, &n, n ? n : 1);
        LLVMFuzzerTestOneInput(buf, n);
    }
    free(buf);
    free(data);
    return 0;
}

static int replay_path(const char *path, int mutations, int *files)
{
    struct stat st;
    struct dirent **list = NULL;
    int bad = 0, n;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: not found\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*files)++;
        return replay_file(path, mutations);
    }
    n = scandir(path, &list, NULL, alphasort); /* sorted: the same run every time */
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (list[i]->d_name[0] != '.' &&
            (size_t)snprintf(sub, sizeof(sub), "%s/%s", path, list[i]->d_name) < sizeof(sub))
            bad |= replay_path(sub, mutations, files);
        free(list[i]);
    }
    free(list);
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
    fz_server_destroy();
    printf("fuzz replay: %d files, %d mutations each\n", files, mutations);
    return bad || files == 0;
}
