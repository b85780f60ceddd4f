/* SPDX-License-Identifier: MIT
 *
 * tests/fuzz/fuzz_check.h -- the invariants every request-path target checks
 * on an answer: a status was set, the body is JSON (unless the handler
 * chose another type: the dashboard's files and its redirect), and an error
 * body is an object that names the problem in "error".
 */
#ifndef QV_FUZZ_CHECK_H
#define QV_FUZZ_CHECK_H

#include "fuzz_server.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts (a crash for libFuzzer, a failure for the replay) when the answer
 * breaks an invariant. */
static inline void fz_check_answer(const char *what, const struct fz_response *a)
{
    json_error_t jerr;
    json_t *root;

    if (a->status < 200 || a->status > 599) {
        fprintf(stderr, "%s: status %d\n", what, a->status);
        abort();
    }
    if (a->status == 500) {
        fprintf(stderr, "%s: 500 from a request: %s\n", what, a->body);
        abort();
    }
    if (a->content_type != NULL && a->status < 400)
        return;
    root = json_loadb(a->body, a->len, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        fprintf(stderr, "%s: status %d, body is not JSON (%s): %.*s\n", what, a->status,
                jerr.text, (int)(a->len > 512 ? 512 : a->len), a->body);
        abort();
    }
    if (a->status >= 400 && !json_is_string(json_object_get(root, "error"))) {
        fprintf(stderr, "%s: status %d without \"error\": %s\n", what, a->status, a->body);
        abort();
    }
    json_decref(root);
}

#endif /* QV_FUZZ_CHECK_H */
