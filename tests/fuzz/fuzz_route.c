/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: route documents (router/route.c qv_route_parse), with
 * versions 1-3 READY. A document that parses has a canonical JSON form that
 * parses again to the same canonical form.
 */
#include "fuzz_server.h"
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_ready(void *ud, const char *model, int64_t version)
{
    (void)ud;
    (void)model;
    return version >= 1 && version <= 3;
}

static int64_t highest(void *ud, const char *model)
{
    (void)ud;
    (void)model;
    return 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct qv_resolver res = {is_ready, highest, NULL};
    struct qv_diag d = {{0}};
    qv_route *rt = NULL, *again = NULL;
    char *text = malloc(size + 1), *json = NULL, *json2 = NULL;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    qv_log_set_level(QV_LOG_ERROR);
    if (qv_route_parse(text, "m", &res, &rt, &d) != QV_OK) {
        if (d.msg[0] == '\0')
            abort(); /* every refusal says why */
        free(text);
        return 0;
    }
    if (qv_route_to_json(rt, &json) != QV_OK)
        abort();
    d.msg[0] = '\0';
    if (qv_route_parse(json, "m", &res, &again, &d) != QV_OK) {
        fprintf(stderr, "canonical route does not parse: %s\n%s\n", d.msg, json);
        abort();
    }
    if (qv_route_to_json(again, &json2) != QV_OK || strcmp(json, json2) != 0) {
        fprintf(stderr, "canonical route changed on a second parse:\n%s\n%s\n", json,
                json2 ? json2 : "(null)");
        abort();
    }
    free(json2);
    free(json);
    qv_route_free(again);
    qv_route_free(rt);
    free(text);
    return 0;
}
