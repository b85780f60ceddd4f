/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the tokens file (api/auth.c), read from a temporary file, and
 * bearer checks against what it loaded: no header, a wrong token, and each
 * whitespace-separated word of the input as a token, on a read and an
 * admin route. A file either loads or fails with a message.
 */
#include "fuzz_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char g_path[256];
static const char *g_auth; /* the Authorization header of the check being made */

static const char *hdr(struct qv_http_req *r, const char *name)
{
    (void)r;
    return strcasecmp(name, "Authorization") == 0 ? g_auth : NULL;
}

static void check(struct qv_api *a, const char *auth)
{
    static const unsigned flags[] = {0, ROUTE_MANAGE, ROUTE_MANAGE | ROUTE_ADMIN, ROUTE_OPEN};

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        struct qv_http_req r;
        int err;
        memset(&r, 0, sizeof(r));
        r.api = a;
        r.method = i % 2 ? "POST" : "GET";
        r.path = "/v2/models/m/route";
        r.header = hdr;
        g_auth = auth;
        err = qv__api_auth(&r, flags[i]);
        if (err != QV_OK && r.diag.msg[0] == '\0')
            abort(); /* every refusal says why */
        if (a->tokens == NULL && err != QV_OK)
            abort(); /* without tokens nothing is refused */
    }
}

static void cleanup(void)
{
    if (g_path[0])
        unlink(g_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qv_api a;
    struct qv_diag d = {{0}};
    char word[300];
    size_t i = 0;

    if (g_path[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        int fd;
        snprintf(g_path, sizeof(g_path), "%s/quiver-fuzz-tokens-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        fd = mkstemp(g_path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(cleanup);
        qv_log_set_level(QV_LOG_ERROR);
    }
    if (fz_write_file(g_path, data, size) != 0)
        abort();
    memset(&a, 0, sizeof(a));
    if (qv__api_tokens_load(&a, g_path, &d) != QV_OK) {
        if (d.msg[0] == '\0' || a.tokens != NULL)
            abort();
        return 0;
    }
    check(&a, NULL);
    check(&a, "Bearer");
    check(&a, "Bearer not-a-token-of-this-file");
    for (int words = 0; i < size && words < 16; words++) {
        size_t n = 0;
        while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n'))
            i++;
        memcpy(word, "Bearer ", 7);
        while (i < size && data[i] != ' ' && data[i] != '\t' && data[i] != '\n' &&
               n < sizeof(word) - 8) {
            word[7 + n] = data[i] ? (char)data[i] : '?';
            n++;
            i++;
        }
        word[7 + n] = '\0';
        check(&a, word);
    }
    qv__api_tokens_free(&a);
    return 0;
}
