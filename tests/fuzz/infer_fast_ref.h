/* SPDX-License-Identifier: MIT
 *
 * The differential check of the one-pass KServe v2 decoder (api/infer_fast.c)
 * against the general one: jansson and the tensor codec, as infer.c's
 * decode_kserve uses them. ifr_check(body) decodes with both; whenever the
 * fast decoder takes a body, the general decoder must take it too and give
 * the same request, bit for bit. Used by the unit test (tests/unit/api) and
 * the fuzz target fuzz_infer_fast.
 */
#ifndef QV_TESTS_INFER_FAST_REF_H
#define QV_TESTS_INFER_FAST_REF_H

#include "api/infer_fast.h"
#include "tensor/tensor.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The general decoder's request (the subset the fast decoder can give:
 * no parameters). False when it refuses the body. */
static bool ifr_general(const char *body, size_t len, struct qv_fast_req *o)
{
    json_t *root, *inputs, *t, *outs, *id;
    struct qv_diag d = {{0}};
    size_t i, ql = 0;
    char *quoted = qv_json_quote_nonfinite(body, len, &ql);
    bool ok = false;

    memset(o, 0, sizeof(*o));
    root = quoted ? json_loadb(quoted, ql, 0, NULL) : json_loadb(body, len, 0, NULL);
    free(quoted);
    if (!json_is_object(root))
        goto out;
    id = json_object_get(root, "id");
    if (id != NULL) {
        if (!json_is_string(id) || json_string_length(id) >= sizeof(o->id))
            goto out;
        snprintf(o->id, sizeof(o->id), "%s", json_string_value(id));
        o->has_id = true;
    }
    inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0 ||
        json_array_size(inputs) > QV_MAX_IO)
        goto out;
    json_array_foreach(inputs, i, t) {
        if (qv_tensor_from_json(t, "inputs[i]", &o->inputs[i], &d) != QV_OK)
            goto out;
        o->n_inputs++;
        for (int k = 0; k + 1 < o->n_inputs; k++)
            if (strcmp(o->inputs[k].name, o->inputs[i].name) == 0)
                goto out;
    }
    outs = json_object_get(root, "outputs");
    if (outs != NULL) {
        if (!json_is_array(outs) || json_array_size(outs) > QV_MAX_IO)
            goto out;
        json_array_foreach(outs, i, t) {
            json_t *name = json_object_get(t, "name");
            if (!json_is_string(name) || json_string_length(name) >= QV_NAME_MAX)
                goto out;
            for (int k = 0; k < o->n_wanted; k++)
                if (strcmp(o->wanted[k], json_string_value(name)) == 0)
                    goto out;
            snprintf(o->wanted[o->n_wanted++], QV_NAME_MAX, "%s", json_string_value(name));
        }
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

static void ifr_free(struct qv_fast_req *o)
{
    for (int i = 0; i < o->n_inputs; i++)
        qv_tensor_fini(&o->inputs[i]);
    o->n_inputs = 0;
}

/* Where two decoded requests differ, or NULL. */
static const char *ifr_diff(const struct qv_fast_req *a, const struct qv_fast_req *b)
{
    if (a->has_id != b->has_id || strcmp(a->id, b->id) != 0)
        return "id";
    if (a->n_wanted != b->n_wanted)
        return "outputs";
    for (int i = 0; i < a->n_wanted; i++)
        if (strcmp(a->wanted[i], b->wanted[i]) != 0)
            return "outputs[].name";
    if (a->n_inputs != b->n_inputs)
        return "inputs";
    for (int i = 0; i < a->n_inputs; i++) {
        const struct qv_tensor *x = &a->inputs[i], *y = &b->inputs[i];
        if (strcmp(x->name, y->name) != 0)
            return "inputs[].name";
        if (x->dtype != y->dtype)
            return "inputs[].datatype";
        if (x->ndim != y->ndim || memcmp(x->shape, y->shape, sizeof(x->shape[0]) * (size_t)x->ndim))
            return "inputs[].shape";
        if (x->nbytes != y->nbytes || (x->nbytes && memcmp(x->data, y->data, x->nbytes) != 0))
            return "inputs[].data";
    }
    return NULL;
}

/* 1: the fast decoder took the body (and agreed); 0: it declined; -1: it
 * took a body the general decoder refuses, or gave another request ('why'
 * says what). */
static int ifr_check(const char *body, size_t len, const char **why)
{
    struct qv_fast_req *f = malloc(sizeof(*f)), *g = malloc(sizeof(*g));
    int res = 0;

    *why = NULL;
    if (f == NULL || g == NULL) {
        free(f);
        free(g);
        return 0;
    }
    if (qv__infer_fast_decode(body, len, f)) {
        res = 1;
        if (!ifr_general(body, len, g)) {
            *why = "the general decoder refuses it";
            res = -1;
        } else if ((*why = ifr_diff(f, g)) != NULL) {
            res = -1;
        }
        ifr_free(f);
    } else {
        ifr_general(body, len, g); /* declined: nothing to compare, nothing leaked */
    }
    ifr_free(g);
    free(f);
    free(g);
    return res;
}

#endif
