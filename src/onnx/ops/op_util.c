/* SPDX-License-Identifier: MIT
 *
 * Helpers every operator may use: attribute lookup, diagnostics that name
 * the node, arity and dtype checks, axis normalization, constant-input
 * reading and multidirectional broadcasting. None of them allocates.
 */
#include "op.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- Attributes ---- */

const struct qv_attr *qv_attr_find(const struct qv_node *n, const char *name)
{
    for (int i = 0; i < n->n_attr; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

static const struct qv_attr *find_typed(const struct qv_node *n, const char *name,
                                        enum qv_attr_type type)
{
    const struct qv_attr *a = qv_attr_find(n, name);

    return a && a->type == type ? a : NULL;
}

int64_t qv_attr_int(const struct qv_node *n, const char *name, int64_t dflt)
{
    const struct qv_attr *a = find_typed(n, name, QV_ATTR_INT);

    return a ? a->i : dflt;
}

float qv_attr_float(const struct qv_node *n, const char *name, float dflt)
{
    const struct qv_attr *a = find_typed(n, name, QV_ATTR_FLOAT);

    return a ? a->f : dflt;
}

const char *qv_attr_string(const struct qv_node *n, const char *name, const char *dflt)
{
    const struct qv_attr *a = find_typed(n, name, QV_ATTR_STRING);

    return a ? a->s : dflt;
}

const int64_t *qv_attr_ints(const struct qv_node *n, const char *name, int *count)
{
    const struct qv_attr *a = find_typed(n, name, QV_ATTR_INTS);

    *count = a ? a->n : 0;
    return a ? a->ints : NULL;
}

const float *qv_attr_floats(const struct qv_node *n, const char *name, int *count)
{
    const struct qv_attr *a = find_typed(n, name, QV_ATTR_FLOATS);

    *count = a ? a->n : 0;
    return a ? a->floats : NULL;
}

const struct qv_tensor *qv_attr_tensor(const struct qv_node *n, const char *name)
{
    const struct qv_attr *a = find_typed(n, name, QV_ATTR_TENSOR);

    return a ? a->t : NULL;
}

int qv_op_attr_expect(const struct qv_node *n, const char *name, enum qv_attr_type type,
                      struct qv_diag *d)
{
    const struct qv_attr *a = qv_attr_find(n, name);

    if (a && a->type != type)
        return qv_op_fail(n, d, QV_EINVAL, "attribute '%s' has the wrong type", name);
    return QV_OK;
}

/* ---- Diagnostics ---- */

int qv_op_fail(const struct qv_node *n, struct qv_diag *d, int err, const char *fmt, ...)
{
    char reason[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return qv_fail(d, err, "node '%.60s' (%.30s): %s", n->name, n->op_type, reason);
}

/* ---- Shapes ---- */

int qv_op_arity(const struct qv_exec *x, int min_in, int max_in, int min_out, int max_out,
                struct qv_diag *d)
{
    int last_in = 0;

    for (int i = 0; i < x->n_in; i++)
        if (x->in[i])
            last_in = i + 1;
    if (last_in < min_in || last_in > max_in)
        return qv_op_fail(x->node, d, QV_EINVAL, "takes %d..%d inputs, has %d", min_in, max_in,
                          last_in);
    for (int i = 0; i < min_in; i++)
        if (x->in[i] == NULL)
            return qv_op_fail(x->node, d, QV_EINVAL, "input %d is required", i);
    if (x->n_out < min_out || x->n_out > max_out)
        return qv_op_fail(x->node, d, QV_EINVAL, "has %d outputs, takes %d..%d", x->n_out, min_out,
                          max_out);
    for (int i = 0; i < min_out; i++)
        if (x->out[i] == NULL)
            return qv_op_fail(x->node, d, QV_EINVAL, "output %d is required", i);
    return QV_OK;
}

int qv_op_input_dtype(const struct qv_exec *x, int i, const enum qv_dtype *allowed,
                      struct qv_diag *d)
{
    if (i >= x->n_in || x->in[i] == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d is required", i);
    for (const enum qv_dtype *a = allowed; *a != QV_DTYPE_UNDEF; a++)
        if (x->in[i]->dtype == *a)
            return QV_OK;
    return qv_op_fail(x->node, d, QV_ENOTSUP, "input %d: data type %s is not supported", i,
                      qv_dtype_name(x->in[i]->dtype));
}

void qv_out_set(struct qv_exec *x, int o, enum qv_dtype dtype, int ndim, const int64_t *shape)
{
    struct qv_tensor *t = o < x->n_out ? x->out[o] : NULL;

    if (t == NULL)
        return;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
}

int qv_shape_same_as_input0(struct qv_exec *x, struct qv_diag *d)
{
    if (x->n_in < 1 || x->in[0] == NULL || x->n_out < 1 || x->out[0] == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs one input and one output");
    qv_out_set(x, 0, x->in[0]->dtype, x->in[0]->ndim, x->in[0]->shape);
    return QV_OK;
}

int qv_axis_norm(const struct qv_exec *x, int64_t axis, int rank, int *out, struct qv_diag *d)
{
    int64_t a = axis < 0 ? axis + rank : axis;

    if (a < 0 || a >= (rank > 0 ? rank : 1))
        return qv_op_fail(x->node, d, QV_EINVAL, "axis %lld is out of range for rank %d",
                          (long long)axis, rank);
    *out = (int)a;
    return QV_OK;
}

int qv_input_known(struct qv_exec *x, int i, struct qv_diag *d)
{
    const struct qv_tensor *t = i < x->n_in ? x->in[i] : NULL;

    if (t == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d is required", i);
    if (t->data == NULL) {
        x->needs_values = true;
        return qv_op_fail(x->node, d, QV_ENOTSUP,
                          "input %d must be known when the model is planned (a constant)", i);
    }
    return QV_OK;
}

int qv_input_ints(struct qv_exec *x, int i, int64_t *vals, int max, int *count, struct qv_diag *d)
{
    const struct qv_tensor *t = i < x->n_in ? x->in[i] : NULL;
    int64_t n;
    int err = qv_input_known(x, i, d);

    if (err)
        return err;
    if (t->dtype != QV_DTYPE_I64 && t->dtype != QV_DTYPE_I32)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d must be int64 or int32", i);
    if (t->ndim > 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d must be 1-D", i);
    n = qv_numel(t);
    if (n > max)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d has %lld values, at most %d", i,
                          (long long)n, max);
    for (int64_t k = 0; k < n; k++)
        vals[k] = t->dtype == QV_DTYPE_I64 ? ((const int64_t *)t->data)[k]
                                           : ((const int32_t *)t->data)[k];
    *count = (int)n;
    return QV_OK;
}

bool qv_shape_fits(const int64_t *shape, int ndim)
{
    int64_t n = 1;

    for (int i = 0; i < ndim; i++) {
        int64_t s = shape[i] > 1 ? shape[i] : 1;
        if (shape[i] < 0 || s > QV_ONNX_MAX_ELEMS / n)
            return false;
        n *= s;
    }
    return true;
}

/* ---- Broadcasting ---- */

int qv_bcast_init(struct qv_bcast *b, int n, const struct qv_tensor *const *ops,
                  const struct qv_node *nd, struct qv_diag *d)
{
    memset(b, 0, sizeof(*b));
    b->n = n;
    for (int k = 0; k < n; k++)
        if (ops[k]->ndim > b->ndim)
            b->ndim = ops[k]->ndim;
    for (int i = 0; i < b->ndim; i++)
        b->shape[i] = 1;
    for (int k = 0; k < n; k++) {
        int off = b->ndim - ops[k]->ndim;
        for (int i = 0; i < ops[k]->ndim; i++) {
            int64_t s = ops[k]->shape[i];
            if (s == b->shape[off + i] || s == 1)
                continue;
            if (b->shape[off + i] != 1) {
                char sa[96], sb[96];
                qv_shape_format(ops[0]->shape, ops[0]->ndim, sa, sizeof(sa));
                qv_shape_format(ops[k]->shape, ops[k]->ndim, sb, sizeof(sb));
                if (d == NULL)
                    return QV_EINVAL;
                return qv_op_fail(nd, d, QV_EINVAL, "shapes %s and %s do not broadcast", sa, sb);
            }
            b->shape[off + i] = s;
        }
    }
    b->numel = qv_shape_numel(b->shape, b->ndim);
    for (int k = 0; k < n; k++) {
        int off = b->ndim - ops[k]->ndim;
        int64_t stride = 1;
        b->same[k] = ops[k]->ndim == b->ndim;
        for (int i = b->ndim - 1; i >= 0; i--) {
            int64_t s = i >= off ? ops[k]->shape[i - off] : 1;
            b->strides[k][i] = s == 1 ? 0 : stride;
            if (s != b->shape[i])
                b->same[k] = false;
            stride = (int64_t)((uint64_t)stride * (uint64_t)s); /* shapes fit: see op.h */
        }
    }
    return QV_OK;
}

void qv_bcast_offsets(const struct qv_bcast *b, int64_t i, int64_t *off)
{
    for (int k = 0; k < b->n; k++)
        off[k] = 0;
    for (int dim = b->ndim - 1; dim >= 0; dim--) {
        int64_t s = b->shape[dim];
        int64_t idx = s ? i % s : 0;
        i = s ? i / s : 0;
        for (int k = 0; k < b->n; k++)
            off[k] += idx * b->strides[k][dim];
    }
}

_Static_assert(sizeof(struct qv_int_matmul) <= QV_EXEC_PRIV, "priv too small");

int qv_int_matmul_plan(struct qv_exec *x, const struct qv_tensor *A, const struct qv_tensor *B,
                       enum qv_dtype out_dtype, struct qv_int_matmul *p, struct qv_diag *d)
{
    int64_t shape[QV_MAX_DIMS];

    if ((A->dtype != QV_DTYPE_U8 && A->dtype != QV_DTYPE_I8) ||
        (B->dtype != QV_DTYPE_U8 && B->dtype != QV_DTYPE_I8))
        return qv_op_fail(x->node, d, QV_ENOTSUP, "inputs must be int8 or uint8");
    if (A->ndim < 2 || B->ndim < 2 || A->shape[A->ndim - 1] != B->shape[B->ndim - 2])
        return qv_op_fail(x->node, d, QV_ENOTSUP, "needs matrices with matching inner dims");
    memset(p, 0, sizeof(*p));
    p->m = A->shape[A->ndim - 2];
    p->k = A->shape[A->ndim - 1];
    p->n = B->shape[B->ndim - 1];
    p->batch = (p->m > 0 && p->k > 0) ? qv_numel(A) / (p->m * p->k) : 1;
    if (B->ndim > 2 && (p->k > 0 && p->n > 0) && qv_numel(B) / (p->k * p->n) != p->batch)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "batch broadcasting is not supported");
    p->a_batch = p->m * p->k;
    p->b_batch = B->ndim > 2 ? p->k * p->n : 0;
    if (p->m > INT32_MAX || p->n > INT32_MAX || p->k > INT32_MAX)
        return qv_op_fail(x->node, d, QV_E2BIG, "too large");
    x->scratch_bytes = sizeof(double) * (size_t)(p->m * p->k + p->k * p->n + p->m * p->n + 1);
    memcpy(shape, A->shape, sizeof(shape));
    shape[A->ndim - 1] = p->n;
    qv_out_set(x, 0, out_dtype, A->ndim, shape);
    return QV_OK;
}
