/* SPDX-License-Identifier: MIT
 *
 * Dynamic batching: which queued requests share one backend call (the head
 * and the requests of its exact shape, past the batch dimension), and the
 * call itself: inputs concatenated along dimension 0, outputs split back,
 * every copy bounded by the buffer it writes.
 */
#include "engine_int.h"

#define QV_LOG_MODULE "engine"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qv_infer_req_fini(struct qv_infer_req *r)
{
    for (int i = 0; i < r->n_inputs; i++)
        qv_tensor_fini(&r->inputs[i]);
    for (int i = 0; i < r->n_outputs; i++)
        qv_tensor_fini(&r->outputs[i]);
    r->n_inputs = r->n_outputs = 0;
}

/* Whether r can share one backend call with the batch's head h: the same
 * inputs with the same datatypes and the same dimensions past the batch
 * dimension. A dynamic dimension (-1 in the signature) is only known per
 * request, so requests that differ in one run in different calls. */
static bool batchable(const struct qv_infer_req *h, const struct qv_infer_req *r)
{
    if (h->n_inputs != r->n_inputs)
        return false;
    for (int i = 0; i < h->n_inputs; i++) {
        const struct qv_tensor *a = &h->inputs[i], *b = &r->inputs[i];
        if (a->dtype != b->dtype || a->ndim != b->ndim)
            return false;
        if (a->dtype == QV_DTYPE_BYTES && h != r)
            return false; /* sized per element: each request runs on its own */
        for (int k = 1; k < a->ndim; k++)
            if (a->shape[k] != b->shape[k])
                return false;
    }
    return true;
}

/* How far past the head a batch looks for requests that fit it. */
#define GATHER_SCAN 1024

/* The requests for the next call on v: the head and the queued requests
 * batchable with it, oldest first, while they fit in 'max' rows. Requests
 * that differ from the head stay queued, in order, for a later call. Counts
 * them into *count and returns their rows; with 'out', also takes them off
 * the queue into out[0..*count). Called with qlock held. */
int64_t qv__batch_gather_locked(qv_version *v, int64_t max, struct qv_infer_req **out, int *count)
{
    const struct qv_infer_req *head = v->head;
    struct qv_infer_req *prev = NULL, *r = v->head;
    int64_t rows = 0;
    int n = 0;

    for (int seen = 0; r != NULL && seen < GATHER_SCAN; seen++) {
        struct qv_infer_req *next = r->next;
        if (r == head || batchable(head, r)) {
            if (n > 0 && rows + r->rows > max)
                break;
            rows += r->rows;
            if (out) {
                out[n] = r;
                if (prev)
                    prev->next = next;
                else
                    v->head = next;
                if (v->tail == r)
                    v->tail = prev;
                r->next = NULL;
            }
            n++;
            if (out) {
                r = next;
                continue;
            }
        }
        prev = r;
        r = next;
    }
    *count = n;
    return rows;
}

bool qv__batch_is_preferred(const qv_version *v, int64_t rows)
{
    for (int i = 0; i < v->n_preferred; i++)
        if (v->preferred[i] == rows)
            return true;
    return false;
}

static void concat_free(struct qv_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        qv_tensor_fini(&t[i]);
}

#define CPU_SAMPLE 64                       /* one backend call in this many ... */
#define CPU_SAMPLE_NS (100ull * 1000000ull) /* ... or one every 100 ms, if more often */

/* Whether this backend call measures its CPU time, and how many calls the
 * measurement stands for (those since the previous one). */
static uint64_t cpu_sample_weight(qv_version *v, uint64_t now)
{
    uint64_t call = atomic_fetch_add_explicit(&v->batches, 1, memory_order_relaxed) + 1;
    uint64_t last = atomic_load_explicit(&v->cpu_sampled_call, memory_order_relaxed);

    if (call - last < CPU_SAMPLE &&
        now - atomic_load_explicit(&v->cpu_sampled_ns, memory_order_relaxed) < CPU_SAMPLE_NS)
        return 0;
    /* One of the threads racing here takes the sample; the weight is the
     * calls since the previous sample, so the sum stays an unbiased total. */
    if (!atomic_compare_exchange_strong_explicit(&v->cpu_sampled_call, &last, call,
                                                 memory_order_relaxed, memory_order_relaxed) ||
        call <= last)
        return 0;
    atomic_store_explicit(&v->cpu_sampled_ns, now, memory_order_relaxed);
    return call - last;
}

/* Runs reqs[0..n) in one backend call and fills every request's outcome. */
int qv__engine_infer_batch(qv_version *v, void *state, struct qv_infer_req **reqs, int n)
{
    struct qv_tensor merged[QV_MAX_IO], out[QV_MAX_IO];
    const struct qv_tensor *in = reqs[0]->inputs;
    int n_in = reqs[0]->n_inputs, n_out = 0, err = QV_OK;
    struct qv_diag d = {{0}};
    int64_t total = 0;
    uint64_t t0, cpu0, weight;

    memset(merged, 0, sizeof(merged));
    memset(out, 0, sizeof(out));
    for (int k = 0; k < n; k++)
        total += reqs[k]->rows;
    if (n > 1) {
        for (int i = 0; i < n_in && !err; i++) {
            const struct qv_tensor *t0_in = &reqs[0]->inputs[i];
            int64_t shape[QV_MAX_DIMS];
            size_t off = 0;

            memcpy(shape, t0_in->shape, sizeof(shape));
            shape[0] = total;
            err = qv_tensor_alloc(&merged[i], t0_in->name, t0_in->dtype, t0_in->ndim, shape);
            for (int k = 0; k < n && !err; k++) {
                const struct qv_tensor *t = &reqs[k]->inputs[i];
                /* Batches hold requests of one shape (qv__batch_gather_locked); the
                 * copy is bounded by the merged buffer all the same. */
                if (!batchable(reqs[0], reqs[k]) || t->nbytes > merged[i].nbytes - off) {
                    err = QV_EINVAL;
                    break;
                }
                memcpy((char *)merged[i].data + off, t->data, t->nbytes);
                off += t->nbytes;
            }
            if (!err && off != merged[i].nbytes)
                err = QV_EINVAL;
        }
        if (err) {
            qv_fail(&d, err, "cannot merge a batch of %lld rows", (long long)total);
            goto finish;
        }
        in = merged;
    }
    /* A thread's CPU clock is a system call, not a vDSO read (on a virtual
     * machine one costs as much as the smallest models' whole call): it is
     * read around one backend call in CPU_SAMPLE, or one per CPU_SAMPLE_NS
     * at low rates, and counted for the calls since the previous sample, an
     * unbiased estimate of CPU per request at a fraction of the cost. */
    t0 = qv_now_ns();
    weight = cpu_sample_weight(v, t0);
    cpu0 = weight ? qv_thread_cpu_ns() : 0;
    for (int k = 0; k < n; k++)
        reqs[k]->t_start = t0;
    err = qv_backend_infer(v->be, state, in, n_in, out, &n_out, &d);
    qv_vstats_batch(v->stats, (uint32_t)total,
                    weight ? (qv_thread_cpu_ns() - cpu0) * weight : 0);
    if (!err && n_out < v->sig.n_outputs)
        err = qv_fail(&d, QV_EBACKEND, "backend returned %d outputs, the model declares %d",
                      n_out, v->sig.n_outputs);
    if (!err) {
        for (int j = 0; j < n_out && !err; j++) {
            /* A backend's tensor must hold exactly what its shape says: the
             * split and the encoders read numel elements from it. */
            size_t es = qv_dtype_size(out[j].dtype);
            int64_t numel = qv_shape_numel(out[j].shape, out[j].ndim);
            if (out[j].dtype == QV_DTYPE_BYTES &&
                ((out[j].data == NULL && out[j].nbytes) ||
                 qv_bytes_check(out[j].data, out[j].nbytes, numel, "backend output", &d))) {
                err = QV_EBACKEND;
                break;
            }
            if (es && (numel < 0 || (uint64_t)numel > SIZE_MAX / es ||
                       (size_t)numel * es != out[j].nbytes ||
                       (out[j].nbytes && out[j].data == NULL))) {
                err = qv_fail(&d, QV_EBACKEND, "backend output %d holds %zu bytes, its shape "
                              "needs %lld values of %zu bytes", j, out[j].nbytes,
                              (long long)numel, es);
                break;
            }
            if (out[j].ndim < 1 || out[j].shape[0] != total)
                err = qv_fail(&d, QV_EBACKEND, "backend output %d has %lld rows, expected %lld",
                              j, out[j].ndim ? (long long)out[j].shape[0] : 0LL,
                              (long long)total);
            if (j < v->sig.n_outputs)
                snprintf(out[j].name, sizeof(out[j].name), "%s", v->sig.outputs[j].name);
        }
    }
    if (!err && n == 1) {
        memcpy(reqs[0]->outputs, out, sizeof(out[0]) * (size_t)n_out);
        reqs[0]->n_outputs = n_out;
        n_out = 0;
    } else if (!err) {
        size_t off[QV_MAX_IO] = {0};
        for (int k = 0; k < n && !err; k++) {
            struct qv_infer_req *r = reqs[k];
            for (int j = 0; j < n_out && !err; j++) {
                int64_t shape[QV_MAX_DIMS];
                memcpy(shape, out[j].shape, sizeof(shape));
                shape[0] = r->rows;
                err = qv_tensor_alloc(&r->outputs[j], out[j].name, out[j].dtype, out[j].ndim,
                                      shape);
                if (err) {
                    qv_fail(&d, err, "cannot split the batch outputs");
                    break;
                }
                if (out[j].data == NULL || off[j] > out[j].nbytes ||
                    r->outputs[j].nbytes > out[j].nbytes - off[j]) {
                    r->n_outputs = j + 1;
                    err = qv_fail(&d, QV_EBACKEND, "backend output %d is smaller than its "
                                  "shape", j);
                    break;
                }
                memcpy(r->outputs[j].data, (char *)out[j].data + off[j], r->outputs[j].nbytes);
                off[j] += r->outputs[j].nbytes;
                r->n_outputs = j + 1;
            }
        }
    }
finish:
    concat_free(merged, n_in);
    concat_free(out, n_out);
    for (int k = 0; k < n; k++) {
        struct qv_infer_req *r = reqs[k];
        r->status = err;
        r->batch_size = (uint32_t)total;
        if (err) {
            for (int j = 0; j < r->n_outputs; j++)
                qv_tensor_fini(&r->outputs[j]);
            r->n_outputs = 0;
            r->diag = d;
        }
    }
    return err;
}
