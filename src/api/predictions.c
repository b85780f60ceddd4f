/* SPDX-License-Identifier: MIT
 *
 * The classes predicted for recent requests, by request id, so that a
 * ground-truth feedback {"id", "label"} can be scored against what was
 * answered. A fixed table indexed by a hash of the id: bounded memory, and a
 * newer request overwrites an older one in its slot.
 */
#include "api_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 65536u

struct slot {
    char id[128];
    int cls;
};

struct qv_api_predictions {
    pthread_mutex_t mu;
    struct slot slots[SLOTS];
};

struct qv_api_predictions *qv__api_predictions_create(void)
{
    struct qv_api_predictions *p = qv_xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void qv__api_predictions_destroy(struct qv_api_predictions *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void qv__api_remember_prediction(struct qv_api *a, const char *id, int cls)
{
    struct qv_api_predictions *p = a ? a->predictions : NULL;
    struct slot *s;

    if (p == NULL)
        return;
    s = &p->slots[qv_hash64(id, strlen(id), 0) & (SLOTS - 1)];
    pthread_mutex_lock(&p->mu);
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->cls = cls;
    pthread_mutex_unlock(&p->mu);
}

int qv__api_predicted_class(struct qv_api *a, const char *id)
{
    struct qv_api_predictions *p = a ? a->predictions : NULL;
    struct slot *s;
    int cls = -1;

    if (p == NULL)
        return -1;
    s = &p->slots[qv_hash64(id, strlen(id), 0) & (SLOTS - 1)];
    pthread_mutex_lock(&p->mu);
    if (strcmp(s->id, id) == 0)
        cls = s->cls;
    pthread_mutex_unlock(&p->mu);
    return cls;
}

/* The class of row 0 of an output: argmax over its values, or a threshold
 * of 0.5 for a single probability. */
int qv__api_output_class(const struct qv_tensor *t)
{
    int64_t cols = t->ndim >= 2 ? qv_shape_numel(t->shape + 1, t->ndim - 1) : 1;
    int best = 0;

    if (qv_tensor_numel(t) < 1)
        return -1;
    if (cols == 1)
        return qv_tensor_get_f64(t, 0) >= 0.5 ? 1 : 0;
    for (int64_t c = 1; c < cols; c++)
        if (qv_tensor_get_f64(t, c) > qv_tensor_get_f64(t, best))
            best = (int)c;
    return best;
}
