/* SPDX-License-Identifier: MIT
 *
 * TfIdfVectorizer over integer tokens (pool_int64s; string pools are not
 * supported): counts the pool's n-grams in each row, with items up to
 * max_skip_count apart, and reports TF, IDF or TFIDF per ngram_indexes.
 */
#include "op.h"

struct tfidf_params {
    int64_t min_n, max_n, max_skip, n_out;
    int mode; /* 0 TF, 1 IDF, 2 TFIDF */
};

static int64_t token(const struct qv_tensor *t, int64_t i)
{
    return t->dtype == QV_DTYPE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

static int tfidf_kernel(struct qv_exec *x)
{
    const struct tfidf_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    int n_counts, n_idx, n_pool, n_w;
    const int64_t *counts = qv_attr_ints(x->node, "ngram_counts", &n_counts);
    const int64_t *idx = qv_attr_ints(x->node, "ngram_indexes", &n_idx);
    const int64_t *pool = qv_attr_ints(x->node, "pool_int64s", &n_pool);
    const float *w = qv_attr_floats(x->node, "weights", &n_w);
    int64_t rows = in->ndim == 2 ? in->shape[0] : 1, len = in->shape[in->ndim - 1];
    float *out = x->out[0]->data;

    memset(out, 0, x->out[0]->nbytes);
    for (int64_t r = 0; r < rows; r++) {
        float *y = out + r * p->n_out;
        for (int64_t n = p->min_n; n <= p->max_n && n <= n_counts; n++) {
            int64_t first = counts[n - 1];
            int64_t end = n < n_counts ? counts[n] : n_pool;
            int64_t id0 = 0; /* index of this size's first n-gram among all n-grams */
            for (int64_t k = 1; k < n; k++)
                id0 += ((k < n_counts ? counts[k] : n_pool) - counts[k - 1]) / k;
            for (int64_t skip = 0; skip <= (n == 1 ? 0 : p->max_skip); skip++) {
                int64_t step = skip + 1;
                for (int64_t s = 0; s + (n - 1) * step < len; s++) {
                    for (int64_t g = 0; first + (g + 1) * n <= end; g++) {
                        bool match = true;
                        for (int64_t j = 0; j < n && match; j++)
                            match = pool[first + g * n + j] == token(in, r * len + s + j * step);
                        if (match) {
                            int64_t id = id0 + g;
                            if (id < n_idx && idx[id] >= 0 && idx[id] < p->n_out)
                                y[idx[id]] += 1;
                        }
                    }
                }
            }
        }
        for (int64_t j = 0; j < p->n_out; j++) {
            float weight = 1;
            for (int64_t id = 0; id < n_idx; id++)
                if (idx[id] == j && w && id < n_w)
                    weight = w[id];
            if (p->mode == 1)
                y[j] = y[j] > 0 ? weight : 0;
            else if (p->mode == 2)
                y[j] *= weight;
        }
    }
    return QV_OK;
}

static int tfidf_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct tfidf_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    const char *mode = qv_attr_string(x->node, "mode", "TF");
    int n_counts, n_idx, n_pool;
    const int64_t *counts = qv_attr_ints(x->node, "ngram_counts", &n_counts);
    const int64_t *idx = qv_attr_ints(x->node, "ngram_indexes", &n_idx);
    const int64_t *pool = qv_attr_ints(x->node, "pool_int64s", &n_pool);
    int64_t shape[2];
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    if ((in->dtype != QV_DTYPE_I64 && in->dtype != QV_DTYPE_I32) || in->ndim < 1 || in->ndim > 2)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "input must be int32/int64 [C] or [N, C]");
    if (pool == NULL || counts == NULL || idx == NULL)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "needs pool_int64s, ngram_counts, ngram_indexes");
    memset(p, 0, sizeof(*p));
    p->min_n = qv_attr_int(x->node, "min_gram_length", 1);
    p->max_n = qv_attr_int(x->node, "max_gram_length", 1);
    p->max_skip = qv_attr_int(x->node, "max_skip_count", 0);
    p->mode = strcmp(mode, "TF") == 0 ? 0 : (strcmp(mode, "IDF") == 0 ? 1 : 2);
    if (p->mode == 2 && strcmp(mode, "TFIDF") != 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "unknown mode '%s'", mode);
    if (p->min_n < 1 || p->max_n < p->min_n || p->max_skip < 0 || p->max_n > 64)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad gram lengths or skip count");
    for (int i = 0; i < n_counts; i++)
        if (counts[i] < 0 || counts[i] > n_pool || (i > 0 && counts[i] < counts[i - 1]))
            return qv_op_fail(x->node, d, QV_EINVAL, "ngram_counts out of order");
    for (int i = 0; i < n_idx; i++)
        if (idx[i] + 1 > p->n_out)
            p->n_out = idx[i] + 1;
    if (p->n_out > 100000000)
        return qv_op_fail(x->node, d, QV_E2BIG, "too many outputs");
    if (in->ndim == 2) {
        shape[0] = in->shape[0];
        shape[1] = p->n_out;
    } else {
        shape[0] = p->n_out;
    }
    qv_out_set(x, 0, QV_DTYPE_F32, in->ndim, shape);
    return QV_OK;
}

const struct qv_op qv_op_tf_idf_vectorizer = {
    .name = "TfIdfVectorizer",
    .since_version = 9,
    .infer_shape = tfidf_infer,
    .kernels = {[QV_DTYPE_I64] = tfidf_kernel, [QV_DTYPE_I32] = tfidf_kernel},
};
