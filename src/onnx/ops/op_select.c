/* SPDX-License-Identifier: MIT
 *
 * Operators whose output shape depends on input values: NonZero, Compress,
 * Unique and NonMaxSuppression. Their infer_shape needs the inputs' data
 * (qv_input_known), so the runtime plans such models for each run's values
 * and the nodes are evaluated while planning. The kernels recompute the
 * result into the sized outputs, using the node's scratch for work arrays.
 */
#include "op.h"

#include <stdint.h>
#include <stdlib.h>

static bool elem_nonzero(const struct qv_tensor *t, int64_t i)
{
    size_t es = qv_dtype_size(t->dtype);
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * es;

    if (t->dtype == QV_DTYPE_F32)
        return *(const float *)p != 0;
    if (t->dtype == QV_DTYPE_F64)
        return *(const double *)p != 0;
    for (size_t k = 0; k < es; k++)
        if (p[k])
            return true;
    return false;
}

/* ---- NonZero ---- */

static int non_zero_kernel(struct qv_exec *x)
{
    const struct qv_tensor *in = x->in[0];
    int64_t *out = x->out[0]->data, n = qv_numel(in), cols = x->out[0]->shape[1], k = 0;
    int64_t idx[QV_MAX_DIMS] = {0};

    for (int64_t i = 0; i < n; i++) {
        if (elem_nonzero(in, i)) {
            for (int dd = 0; dd < in->ndim; dd++)
                out[dd * cols + k] = idx[dd];
            k++;
        }
        for (int dd = in->ndim - 1; dd >= 0; dd--) {
            if (++idx[dd] < in->shape[dd])
                break;
            idx[dd] = 0;
        }
    }
    return QV_OK;
}

static int non_zero_infer(struct qv_exec *x, struct qv_diag *d)
{
    int64_t shape[2] = {0, 0}, n;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (!err)
        err = qv_input_known(x, 0, d);
    if (err)
        return err;
    n = qv_numel(x->in[0]);
    for (int64_t i = 0; i < n; i++)
        shape[1] += elem_nonzero(x->in[0], i);
    shape[0] = x->in[0]->ndim;
    qv_out_set(x, 0, QV_DTYPE_I64, 2, shape);
    return QV_OK;
}

/* ---- Compress ---- */

struct compress_params {
    int axis; /* -1: flattened */
};

static int compress_kernel(struct qv_exec *x)
{
    const struct compress_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0], *cond = x->in[1];
    const uint8_t *c = cond->data;
    size_t es = qv_dtype_size(in->dtype);
    int64_t outer = 1, inner = 1, dim, nc = qv_numel(cond);
    char *dst = x->out[0]->data;

    if (p->axis < 0) {
        dim = qv_numel(in);
    } else {
        dim = in->shape[p->axis];
        for (int i = 0; i < p->axis; i++)
            outer *= in->shape[i];
        for (int i = p->axis + 1; i < in->ndim; i++)
            inner *= in->shape[i];
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < dim && j < nc; j++)
            if (c[j]) {
                memcpy(dst, (const char *)in->data + (size_t)((o * dim + j) * inner) * es,
                       (size_t)inner * es);
                dst += (size_t)inner * es;
            }
    return QV_OK;
}

static int compress_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct compress_params *p = (void *)x->priv;
    const struct qv_tensor *in, *cond;
    int64_t shape[QV_MAX_DIMS], count = 0, dim;
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (!err)
        err = qv_input_known(x, 1, d);
    if (err)
        return err;
    in = x->in[0];
    cond = x->in[1];
    if (cond->dtype != QV_DTYPE_BOOL || cond->ndim != 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "condition must be a 1-D bool tensor");
    p->axis = -1;
    if (qv_attr_find(x->node, "axis")) {
        err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), in->ndim, &p->axis, d);
        if (err)
            return err;
    }
    dim = p->axis < 0 ? qv_numel(in) : in->shape[p->axis];
    if (qv_numel(cond) > dim)
        return qv_op_fail(x->node, d, QV_EINVAL, "condition is longer than the axis");
    for (int64_t j = 0; j < qv_numel(cond); j++)
        count += ((const uint8_t *)cond->data)[j] != 0;
    if (p->axis < 0) {
        qv_out_set(x, 0, in->dtype, 1, &count);
    } else {
        memcpy(shape, in->shape, sizeof(shape));
        shape[p->axis] = count;
        qv_out_set(x, 0, in->dtype, in->ndim, shape);
    }
    return QV_OK;
}

/* ---- Unique ---- */

struct unique_params {
    int axis; /* -1: flattened */
    bool sorted;
    int64_t slices, outer, inner; /* slices along the axis; elements before/after it */
};

static int slice_cmp(const struct unique_params *p, const struct qv_tensor *t, int64_t a, int64_t b)
{
    size_t es = qv_dtype_size(t->dtype);

    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t j = 0; j < p->inner; j++) {
            int64_t ia = (o * p->slices + a) * p->inner + j,
                    ib = (o * p->slices + b) * p->inner + j;
            double va = qv_tensor_get_f64(t, ia), vb = qv_tensor_get_f64(t, ib);
            if (t->dtype == QV_DTYPE_I64 || t->dtype == QV_DTYPE_U64) {
                int64_t xa = 0, xb = 0;
                memcpy(&xa, (const char *)t->data + (size_t)ia * es, es);
                memcpy(&xb, (const char *)t->data + (size_t)ib * es, es);
                if (xa != xb)
                    return xa < xb ? -1 : 1;
                continue;
            }
            if (va != vb)
                return va < vb ? -1 : 1;
        }
    return 0;
}

/* Fills first[] (first occurrence of each unique slice, in output order)
 * and inverse[] (output position of each slice); returns the count. Work
 * arrays come from 'work' (3 * slices int64). */
static int64_t unique_run(const struct unique_params *p, const struct qv_tensor *t, int64_t *first,
                          int64_t *inverse, int64_t *work)
{
    int64_t n_unique = 0;

    (void)work;

    for (int64_t s = 0; s < p->slices; s++) {
        int64_t k;
        for (k = 0; k < n_unique; k++)
            if (slice_cmp(p, t, first[k], s) == 0)
                break;
        if (k == n_unique)
            first[n_unique++] = s;
        inverse[s] = k;
    }
    if (p->sorted) {
        /* Insertion sort of the unique slices; then remap inverse. */
        for (int64_t i = 1; i < n_unique; i++) {
            int64_t v = first[i], j = i - 1;
            while (j >= 0 && slice_cmp(p, t, first[j], v) > 0) {
                first[j + 1] = first[j];
                j--;
            }
            first[j + 1] = v;
        }
        for (int64_t s = 0; s < p->slices; s++) {
            int64_t k;
            for (k = 0; k < n_unique; k++)
                if (slice_cmp(p, t, first[k], s) == 0)
                    break;
            inverse[s] = k;
        }
    }
    return n_unique;
}

static int unique_kernel(struct qv_exec *x)
{
    const struct unique_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    int64_t *first = x->scratch, *inverse = first + p->slices, *work = inverse + p->slices;
    int64_t n = unique_run(p, in, first, inverse, work);
    size_t es = qv_dtype_size(in->dtype);
    char *y = x->out[0]->data;

    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t k = 0; k < n; k++)
            memcpy(y + (size_t)((o * n + k) * p->inner) * es,
                   (const char *)in->data + (size_t)((o * p->slices + first[k]) * p->inner) * es,
                   (size_t)p->inner * es);
    if (x->n_out > 1 && x->out[1])
        memcpy(x->out[1]->data, first, sizeof(int64_t) * (size_t)n);
    if (x->n_out > 2 && x->out[2])
        memcpy(x->out[2]->data, inverse, sizeof(int64_t) * (size_t)p->slices);
    if (x->n_out > 3 && x->out[3]) {
        int64_t *counts = x->out[3]->data;
        memset(counts, 0, sizeof(int64_t) * (size_t)n);
        for (int64_t s = 0; s < p->slices; s++)
            counts[inverse[s]]++;
    }
    return QV_OK;
}

static int unique_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct unique_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[QV_MAX_DIMS], *work, n;
    int err = qv_op_arity(x, 1, 1, 1, 4, d);

    if (!err)
        err = qv_input_known(x, 0, d);
    if (err)
        return err;
    in = x->in[0];
    memset(p, 0, sizeof(*p));
    p->sorted = qv_attr_int(x->node, "sorted", 1) != 0;
    p->axis = -1;
    p->outer = 1;
    p->inner = 1;
    if (qv_attr_find(x->node, "axis")) {
        err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), in->ndim, &p->axis, d);
        if (err)
            return err;
        p->slices = in->shape[p->axis];
        for (int i = 0; i < p->axis; i++)
            p->outer *= in->shape[i];
        for (int i = p->axis + 1; i < in->ndim; i++)
            p->inner *= in->shape[i];
    } else {
        p->slices = qv_numel(in);
    }
    if (p->slices > 100000)
        return qv_op_fail(x->node, d, QV_E2BIG, "too many elements for Unique");
    x->scratch_bytes = sizeof(int64_t) * (size_t)(3 * p->slices + 1);
    /* Count now (planning has the data); the kernel redoes it in scratch. */
    work = malloc(x->scratch_bytes);
    if (work == NULL)
        return qv_op_fail(x->node, d, QV_ENOMEM, "out of memory");
    n = unique_run(p, in, work, work + p->slices, work + 2 * p->slices);
    free(work);
    if (p->axis < 0) {
        qv_out_set(x, 0, in->dtype, 1, &n);
    } else {
        memcpy(shape, in->shape, sizeof(shape));
        shape[p->axis] = n;
        qv_out_set(x, 0, in->dtype, in->ndim, shape);
    }
    qv_out_set(x, 1, QV_DTYPE_I64, 1, &n);
    qv_out_set(x, 2, QV_DTYPE_I64, 1, &p->slices);
    qv_out_set(x, 3, QV_DTYPE_I64, 1, &n);
    return QV_OK;
}

/* ---- NonMaxSuppression ---- */

struct nms_params {
    int64_t batches, classes, boxes, max_out;
    float iou, score_min;
    bool has_score_min, center;
};

static float iou_of(const struct nms_params *p, const float *a, const float *b)
{
    float ay1, ax1, ay2, ax2, by1, bx1, by2, bx2, ih, iw, inter, uni;

    if (p->center) {
        ax1 = a[0] - a[2] / 2, ax2 = a[0] + a[2] / 2, ay1 = a[1] - a[3] / 2, ay2 = a[1] + a[3] / 2;
        bx1 = b[0] - b[2] / 2, bx2 = b[0] + b[2] / 2, by1 = b[1] - b[3] / 2, by2 = b[1] + b[3] / 2;
    } else {
        ay1 = fminf(a[0], a[2]), ay2 = fmaxf(a[0], a[2]), ax1 = fminf(a[1], a[3]),
        ax2 = fmaxf(a[1], a[3]);
        by1 = fminf(b[0], b[2]), by2 = fmaxf(b[0], b[2]), bx1 = fminf(b[1], b[3]),
        bx2 = fmaxf(b[1], b[3]);
    }
    ih = fminf(ay2, by2) - fmaxf(ay1, by1);
    iw = fminf(ax2, bx2) - fmaxf(ax1, bx1);
    if (ih <= 0 || iw <= 0)
        return 0;
    inter = ih * iw;
    uni = (ay2 - ay1) * (ax2 - ax1) + (by2 - by1) * (bx2 - bx1) - inter;
    return uni > 0 ? inter / uni : 0;
}

/* Selected (batch, class, box) triples into out (if not NULL); returns the count. */
static int64_t nms_run(const struct nms_params *p, const float *boxes, const float *scores,
                       int64_t *order, int64_t *sel, int64_t *out)
{
    int64_t total = 0;

    for (int64_t b = 0; b < p->batches; b++)
        for (int64_t c = 0; c < p->classes; c++) {
            const float *sc = scores + (b * p->classes + c) * p->boxes;
            const float *bx = boxes + b * p->boxes * 4;
            int64_t n = 0, n_sel = 0;
            for (int64_t i = 0; i < p->boxes; i++)
                if (!p->has_score_min || sc[i] > p->score_min)
                    order[n++] = i;
            /* Stable insertion sort by descending score. */
            for (int64_t i = 1; i < n; i++) {
                int64_t v = order[i], j = i - 1;
                while (j >= 0 && sc[order[j]] < sc[v]) {
                    order[j + 1] = order[j];
                    j--;
                }
                order[j + 1] = v;
            }
            for (int64_t i = 0; i < n && n_sel < p->max_out; i++) {
                bool keep = true;
                for (int64_t k = 0; k < n_sel && keep; k++)
                    if (iou_of(p, bx + order[i] * 4, bx + sel[k] * 4) > p->iou)
                        keep = false;
                if (!keep)
                    continue;
                sel[n_sel++] = order[i];
                if (out) {
                    out[total * 3] = b;
                    out[total * 3 + 1] = c;
                    out[total * 3 + 2] = order[i];
                }
                total++;
            }
        }
    return total;
}

static int nms_kernel(struct qv_exec *x)
{
    const struct nms_params *p = (const void *)x->priv;
    int64_t *order = x->scratch, *sel = order + p->boxes;

    nms_run(p, x->in[0]->data, x->in[1]->data, order, sel, x->out[0]->data);
    return QV_OK;
}

static int nms_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct nms_params *p = (void *)x->priv;
    const struct qv_tensor *boxes, *scores;
    int64_t shape[2], *work;
    int err = qv_op_arity(x, 2, 5, 1, 1, d);

    for (int i = 0; i < x->n_in && !err; i++)
        if (x->in[i])
            err = qv_input_known(x, i, d);
    if (err)
        return err;
    boxes = x->in[0];
    scores = x->in[1];
    if (boxes->dtype != QV_DTYPE_F32 || scores->dtype != QV_DTYPE_F32 || boxes->ndim != 3 ||
        scores->ndim != 3 || boxes->shape[2] != 4 || boxes->shape[0] != scores->shape[0] ||
        boxes->shape[1] != scores->shape[2])
        return qv_op_fail(x->node, d, QV_EINVAL, "boxes [B,N,4] and scores [B,C,N] float32");
    memset(p, 0, sizeof(*p));
    p->batches = boxes->shape[0];
    p->boxes = boxes->shape[1];
    p->classes = scores->shape[1];
    p->center = qv_attr_int(x->node, "center_point_box", 0) != 0;
    p->max_out =
        x->n_in > 2 && x->in[2] && qv_numel(x->in[2]) ? (int64_t)qv_tensor_get_f64(x->in[2], 0) : 0;
    p->iou =
        x->n_in > 3 && x->in[3] && qv_numel(x->in[3]) ? (float)qv_tensor_get_f64(x->in[3], 0) : 0;
    p->has_score_min = x->n_in > 4 && x->in[4] && qv_numel(x->in[4]);
    p->score_min = p->has_score_min ? (float)qv_tensor_get_f64(x->in[4], 0) : 0;
    if (p->boxes > 1000000)
        return qv_op_fail(x->node, d, QV_E2BIG, "too many boxes");
    x->scratch_bytes = sizeof(int64_t) * (size_t)(2 * p->boxes + 1);
    work = malloc(x->scratch_bytes);
    if (work == NULL)
        return qv_op_fail(x->node, d, QV_ENOMEM, "out of memory");
    shape[0] = nms_run(p, boxes->data, scores->data, work, work + p->boxes, NULL);
    free(work);
    shape[1] = 3;
    qv_out_set(x, 0, QV_DTYPE_I64, 2, shape);
    return QV_OK;
}

#define ALL(fn)                                                                                    \
    {                                                                                              \
        QV_KERNELS_ALL(fn)                                                                         \
    }

const struct qv_op qv_op_compress = {.name = "Compress",
                                     .since_version = 9,
                                     .infer_shape = compress_infer,
                                     .kernels = ALL(compress_kernel)};
const struct qv_op qv_op_non_max_suppression = {.name = "NonMaxSuppression",
                                                .since_version = 10,
                                                .infer_shape = nms_infer,
                                                .kernels = {[QV_DTYPE_F32] = nms_kernel}};
const struct qv_op qv_op_non_zero = {.name = "NonZero",
                                     .since_version = 9,
                                     .infer_shape = non_zero_infer,
                                     .kernels = ALL(non_zero_kernel)};
const struct qv_op qv_op_unique = {.name = "Unique",
                                   .since_version = 11,
                                   .infer_shape = unique_infer,
                                   .kernels = ALL(unique_kernel)};
