/* SPDX-License-Identifier: MIT
 *
 * Einsum: explicit ("ij,jk->ik") and implicit ("ij,jk") equations, repeated
 * labels (diagonals, traces), and "..." broadcasting. The kernel walks every
 * label combination once (output labels outer, summed labels inner); the
 * equation is parsed again at run time into stack arrays, so nothing is
 * allocated.
 */
#include "op.h"

#define EIN_IN_MAX 8
#define EIN_LABELS 60 /* 52 letters, then up to 8 ellipsis dims */
#define EIN_ELL 52

struct einsum {
    int n_in;
    int n_labels;             /* labels in use, in loop order */
    int order[EIN_LABELS];    /* loop order: output labels, then summed */
    int n_out;                /* leading entries of order[] that are output dims */
    int64_t size[EIN_LABELS]; /* by label id */
    int64_t istride[EIN_IN_MAX][EIN_LABELS];
    int64_t ostride[EIN_LABELS];
    int out_ndim;
    int64_t out_shape[QV_MAX_DIMS];
};

static int label_id(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return 26 + c - 'A';
    return -1;
}

/* Parses one term (up to ',' '-' or end) into label ids; ellipsis dims get
 * EIN_ELL + k (right-aligned to n_ell). Returns chars consumed or -1. */
static int parse_term(const char *s, int *labels, int *n, bool *ell_at, int *ell_pos)
{
    int i = 0;

    *n = 0;
    *ell_at = false;
    while (s[i] && s[i] != ',' && s[i] != '-') {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        if (s[i] == '.') {
            if (s[i + 1] != '.' || s[i + 2] != '.' || *ell_at)
                return -1;
            *ell_at = true;
            *ell_pos = *n;
            i += 3;
            continue;
        }
        if (label_id(s[i]) < 0 || *n >= QV_MAX_DIMS)
            return -1;
        labels[(*n)++] = label_id(s[i]);
        i++;
    }
    return i;
}

static int einsum_parse(const char *eq, const struct qv_tensor *const *in, int n_in,
                        struct einsum *e)
{
    int labels[EIN_IN_MAX][QV_MAX_DIMS], n_lab[EIN_IN_MAX], ell_pos[EIN_IN_MAX];
    bool ell[EIN_IN_MAX], used[EIN_LABELS] = {false}, in_out[EIN_LABELS] = {false};
    int count[EIN_LABELS] = {0}, n_ell = 0, pos = 0, k;
    const char *arrow;

    memset(e, 0, sizeof(*e));
    if (n_in < 1 || n_in > EIN_IN_MAX)
        return -1;
    e->n_in = n_in;
    for (k = 0; k < n_in; k++) {
        int used_chars = parse_term(eq + pos, labels[k], &n_lab[k], &ell[k], &ell_pos[k]);
        int e_dims;
        if (used_chars < 0)
            return -1;
        pos += used_chars;
        e_dims = in[k]->ndim - n_lab[k];
        if (e_dims < 0 || (!ell[k] && e_dims != 0))
            return -1;
        if (e_dims > n_ell)
            n_ell = e_dims;
        if (k + 1 < n_in) {
            if (eq[pos] != ',')
                return -1;
            pos++;
        }
    }
    if (n_ell > 8)
        return -1;
    arrow = eq + pos;
    if (*arrow != '\0' && !(arrow[0] == '-' && arrow[1] == '>'))
        return -1;
    for (int i = 0; i < EIN_LABELS; i++)
        e->size[i] = 1;
    /* Label sizes (size-1 dims broadcast), then strides per input. */
    for (int pass = 0; pass < 2; pass++)
        for (k = 0; k < n_in; k++) {
            const struct qv_tensor *t = in[k];
            int64_t stride = 1, strides[QV_MAX_DIMS];
            int e_dims = t->ndim - n_lab[k];
            for (int dd = t->ndim - 1; dd >= 0; dd--) {
                strides[dd] = stride;
                stride *= t->shape[dd];
            }
            for (int dd = 0; dd < t->ndim; dd++) {
                int id;
                int64_t sz = t->shape[dd];
                if (ell[k] && dd >= ell_pos[k] && dd < ell_pos[k] + e_dims)
                    id = EIN_ELL + (n_ell - e_dims) + (dd - ell_pos[k]);
                else
                    id = labels[k][(!ell[k] || dd < ell_pos[k]) ? dd : dd - e_dims];
                if (pass == 1) {
                    if (sz != 1)
                        e->istride[k][id] += strides[dd];
                    continue;
                }
                if (!used[id] || e->size[id] == 1)
                    e->size[id] = sz;
                else if (sz != e->size[id] && sz != 1)
                    return -1;
                used[id] = true;
                if (id < EIN_ELL)
                    count[id]++;
            }
        }
    /* Output labels. */
    if (*arrow) {
        int out_lab[QV_MAX_DIMS], n_o, o_ell_pos;
        bool o_ell;
        if (parse_term(arrow + 2, out_lab, &n_o, &o_ell, &o_ell_pos) < 0)
            return -1;
        for (int i = 0; i < n_o + (o_ell ? n_ell : 0); i++) {
            int id;
            if (o_ell && i >= o_ell_pos && i < o_ell_pos + n_ell)
                id = EIN_ELL + (i - o_ell_pos);
            else
                id = out_lab[o_ell && i >= o_ell_pos + n_ell ? i - n_ell : i];
            if (!used[id] || in_out[id] || e->out_ndim >= QV_MAX_DIMS)
                return -1;
            in_out[id] = true;
            e->order[e->n_out++] = id;
            e->out_shape[e->out_ndim++] = e->size[id];
        }
    } else {
        for (int i = 0; i < n_ell; i++) {
            int id = EIN_ELL + i;
            in_out[id] = true;
            e->order[e->n_out++] = id;
            e->out_shape[e->out_ndim++] = e->size[id];
        }
        for (int id = 0; id < EIN_ELL; id++)
            if (count[id] == 1) {
                if (e->out_ndim >= QV_MAX_DIMS)
                    return -1;
                in_out[id] = true;
                e->order[e->n_out++] = id;
                e->out_shape[e->out_ndim++] = e->size[id];
            }
    }
    e->n_labels = e->n_out;
    for (int id = 0; id < EIN_LABELS; id++)
        if (used[id] && !in_out[id])
            e->order[e->n_labels++] = id;
    {
        int64_t stride = 1;
        for (int i = e->n_out - 1; i >= 0; i--) {
            e->ostride[e->order[i]] = stride;
            stride *= e->size[e->order[i]];
        }
    }
    return 0;
}

#define EINSUM_KERNEL(sfx, T)                                                                      \
    static int einsum_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        struct einsum e;                                                                           \
        int64_t idx[EIN_LABELS] = {0}, off[EIN_IN_MAX] = {0}, ooff = 0;                            \
        T *y = x->out[0]->data;                                                                    \
        bool empty = false;                                                                        \
        if (einsum_parse(qv_attr_string(x->node, "equation", ""), x->in, x->n_in, &e) != 0)        \
            return QV_EINVAL;                                                                      \
        memset(y, 0, x->out[0]->nbytes);                                                           \
        for (int i = 0; i < e.n_labels; i++)                                                       \
            if (e.size[e.order[i]] == 0)                                                           \
                empty = true;                                                                      \
        if (empty)                                                                                 \
            return QV_OK;                                                                          \
        for (;;) {                                                                                 \
            T prod = 1;                                                                            \
            int i;                                                                                 \
            for (int k = 0; k < e.n_in; k++)                                                       \
                prod *= ((const T *)x->in[k]->data)[off[k]];                                       \
            y[ooff] += prod;                                                                       \
            for (i = e.n_labels - 1; i >= 0; i--) {                                                \
                int id = e.order[i];                                                               \
                idx[i]++;                                                                          \
                for (int k = 0; k < e.n_in; k++)                                                   \
                    off[k] += e.istride[k][id];                                                    \
                ooff += e.ostride[id];                                                             \
                if (idx[i] < e.size[id])                                                           \
                    break;                                                                         \
                for (int k = 0; k < e.n_in; k++)                                                   \
                    off[k] -= e.istride[k][id] * e.size[id];                                       \
                ooff -= e.ostride[id] * e.size[id];                                                \
                idx[i] = 0;                                                                        \
            }                                                                                      \
            if (i < 0)                                                                             \
                break;                                                                             \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

EINSUM_KERNEL(f32, float)
EINSUM_KERNEL(f64, double)
EINSUM_KERNEL(i64, int64_t)
EINSUM_KERNEL(i32, int32_t)

static int einsum_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct einsum e;
    const char *eq = qv_attr_string(x->node, "equation", NULL);

    if (eq == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "attribute 'equation' is required");
    if (x->n_out != 1 || x->out[0] == NULL || x->n_in < 1 || x->n_in > EIN_IN_MAX)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs 1..%d inputs and one output", EIN_IN_MAX);
    for (int k = 0; k < x->n_in; k++)
        if (x->in[k] == NULL || x->in[k]->dtype != x->in[0]->dtype)
            return qv_op_fail(x->node, d, QV_EINVAL, "inputs must share one data type");
    if (einsum_parse(eq, x->in, x->n_in, &e) != 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "equation '%.60s' does not fit the inputs", eq);
    qv_out_set(x, 0, x->in[0]->dtype, e.out_ndim, e.out_shape);
    return QV_OK;
}

const struct qv_op qv_op_einsum = {
    .name = "Einsum",
    .since_version = 12,
    .infer_shape = einsum_infer,
    .kernels = {[QV_DTYPE_F32] = einsum_f32,
                [QV_DTYPE_F64] = einsum_f64,
                [QV_DTYPE_I64] = einsum_i64,
                [QV_DTYPE_I32] = einsum_i32},
};
