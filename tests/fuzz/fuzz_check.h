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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers write non-finite numbers as the bare tokens NaN, Infinity and
 * -Infinity (as Python's json and Triton's client do; docs/http.md), which
 * strict JSON parsers refuse: outside strings they become 0 (padded to the
 * same length) before the body is parsed. The caller frees the copy. */
static inline char *fz_json_finite_copy(const char *body, size_t len)
{
    static const char *const tokens[] = {"NaN", "Infinity"};
    char *c = malloc(len + 1);
    bool in_str = false;

    if (c == NULL)
        abort();
    memcpy(c, body, len);
    c[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (in_str) {
            if (c[i] == '\\')
                i++;
            else if (c[i] == '"')
                in_str = false;
            continue;
        }
        if (c[i] == '"') {
            in_str = true;
            continue;
        }
        for (size_t t = 0; t < 2; t++) {
            size_t n = strlen(tokens[t]);
            if (len - i >= n && memcmp(c + i, tokens[t], n) == 0) {
                c[i] = '0';
                memset(c + i + 1, ' ', n - 1);
                i += n - 1;
                break;
            }
        }
    }
    return c;
}

/* Aborts (a crash for libFuzzer, a failure for the replay) when the answer
 * breaks an invariant. */
static inline void fz_check_answer(const char *what, const struct fz_response *a)
{
    json_error_t jerr;
    json_t *root;
    char *text;

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
    text = fz_json_finite_copy(a->body, a->len);
    /* \u0000 is valid JSON (a BYTES element may hold NUL); jansson needs telling. */
    root = json_loadb(text, a->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    free(text);
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
