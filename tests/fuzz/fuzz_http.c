/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: what quiver's own code does with an HTTP request line once
 * libmicrohttpd has parsed it -- the endpoint table and path matcher
 * (api/routes.c qv__api_match), path parameters and version numbers, query
 * parameters and the error bodies. The input is "METHOD PATH[?QUERY]" on its
 * first line. GET requests are dispatched in full (they change nothing);
 * other methods are matched only, so the fuzzer cannot unload the model it
 * is testing.
 */
#include "fuzz_check.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_server *s = fz_server_get();
    char line[1024], *sp, *path, *query;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;

    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = '\0'; /* a NUL ends the line early, as in a C string from the library */
    sp = strchr(line, ' ');
    if (sp == NULL)
        return 0;
    *sp = '\0';
    path = sp + 1;
    query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    if (strcmp(line, "GET") == 0) {
        struct fz_response a;
        fz_request(s, "GET", path, query, NULL, NULL, 0, &a);
        if (strcmp(path, "/metrics") != 0) /* Prometheus text, not JSON */
            fz_check_answer("http", &a);
        fz_response_free(&a);
    } else {
        struct qv_http_req r;
        int status = 0;
        const struct qv_api_route *rt;
        memset(&r, 0, sizeof(r));
        r.method = line;
        r.path = path;
        rt = qv__api_match(&r, &status);
        if (rt == NULL && status != 404 && status != 405)
            abort();
        if (rt != NULL && (strcmp(rt->method, line) != 0 || r.n_params > QV_MAX_PATH_PARAMS))
            abort();
        for (int i = 0; i < r.n_params; i++)
            if (strlen(r.params[i]) >= QV_MODEL_NAME_MAX)
                abort();
        (void)qv__api_param_version(&r, 1);
    }
    return 0;
}
