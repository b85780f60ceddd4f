/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the label and feedback bodies (api/manage.c), through the
 * handlers. The first byte chooses: even, POST /v2/models/m/feedback with the
 * rest as the body (request ids "fz-1" and "fz-2" are remembered, so a good
 * body reaches the ring and the bandit); odd, PUT /v2/models/m/labels/NAME
 * where NAME is the rest up to the first newline, the body after it. The
 * route is dropped again after each label, so inputs stay independent.
 */
#include "fuzz_check.h"

#include <string.h>

static void remember(struct fz_server *s)
{
    static bool done;
    static const char *const bodies[] = {
        "{\"id\": \"fz-1\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
        "\"shape\": [1, 4], \"data\": [1, 2, 3, 4]}]}",
        "{\"id\": \"fz-2\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
        "\"shape\": [2, 4], \"data\": [[1, 2, 3, 4], [0, 0, 0, 0]]}]}",
    };

    if (done)
        return;
    done = true;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct fz_response a;
        fz_request(s, "POST", "/v2/models/m/infer", NULL, NULL, bodies[i], strlen(bodies[i]), &a);
        if (a.status != 200)
            abort();
        fz_response_free(&a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_server *s = fz_server_get();
    struct fz_response a;

    remember(s);
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0) {
        fz_request(s, "POST", "/v2/models/m/feedback", NULL, NULL, (const char *)data + 1,
                   size - 1, &a);
    } else {
        char path[256];
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);
        size_t nlen = nl ? (size_t)(nl - data - 1) : size - 1;
        const char *body = nl ? (const char *)nl + 1 : "";
        size_t blen = nl ? size - (size_t)(nl + 1 - data) : 0;
        int n;
        if (nlen > 200)
            nlen = 200;
        n = snprintf(path, sizeof(path), "/v2/models/m/labels/");
        memcpy(path + n, data + 1, nlen);
        path[(size_t)n + nlen] = '\0'; /* a NUL in the name ends it, as in a URL */
        fz_request(s, "PUT", path, NULL, NULL, body, blen, &a);
        qv_router_clear(s->router, "m");
    }
    fz_check_answer("feedback", &a);
    fz_response_free(&a);
    return 0;
}
