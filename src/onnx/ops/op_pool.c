/* SPDX-License-Identifier: MIT
 *
 * Pooling for any spatial rank: MaxPool (with optional Indices), AveragePool
 * (count_include_pad), LpPool, GlobalAveragePool, GlobalMaxPool, GlobalLpPool.
 * Geometry (pads, auto_pad, ceil_mode, dilations) is resolved at plan time.
 */
#include "op.h"

#define SP_MAX (QV_MAX_DIMS - 2)

struct pool_params {
    int sp;
    int64_t kernel[SP_MAX], stride[SP_MAX], dil[SP_MAX], pad_begin[SP_MAX], pad_end[SP_MAX];
    int64_t in_sp[SP_MAX], out_sp[SP_MAX];
    bool count_include_pad;
    bool col_major; /* MaxPool storage_order = 1 */
    int p;          /* LpPool */
};

_Static_assert(sizeof(struct pool_params) <= QV_EXEC_PRIV, "priv too small");

enum { POOL_MAX, POOL_AVG, POOL_LP };

static int64_t prod(const int64_t *v, int n)
{
    int64_t r = 1;

    for (int i = 0; i < n; i++)
        r *= v[i];
    return r;
}

/* The 2-D case without dilation or column-major indices: direct loops. */
static void pool2d(const struct pool_params *p, const float *in, float *out, int64_t *ind,
                   int64_t c0, int64_t c1, int kind)
{
    int64_t H = p->in_sp[0], W = p->in_sp[1], OH = p->out_sp[0], OW = p->out_sp[1];

    for (int64_t c = c0; c < c1; c++) {
        const float *xc = in + c * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * p->stride[0] - p->pad_begin[0];
            int64_t hs = h0 < 0 ? 0 : h0, he = h0 + p->kernel[0] > H ? H : h0 + p->kernel[0];
            int64_t ph =
                (h0 + p->kernel[0] > H + p->pad_end[0] ? H + p->pad_end[0] : h0 + p->kernel[0]) -
                (h0 < -p->pad_begin[0] ? -p->pad_begin[0] : h0);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * p->stride[1] - p->pad_begin[1];
                int64_t ws = w0 < 0 ? 0 : w0, we = w0 + p->kernel[1] > W ? W : w0 + p->kernel[1];
                int64_t pw = (w0 + p->kernel[1] > W + p->pad_end[1] ? W + p->pad_end[1]
                                                                    : w0 + p->kernel[1]) -
                             (w0 < -p->pad_begin[1] ? -p->pad_begin[1] : w0);
                float best = -INFINITY;
                int64_t arg = -1, count = 0;
                double acc = 0;
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) {
                        float v = xc[h * W + w];
                        if (kind == POOL_MAX) {
                            if (v > best || arg < 0) {
                                best = v;
                                arg = h * W + w;
                            }
                        } else if (kind == POOL_AVG) {
                            acc += v;
                        } else {
                            acc += p->p == 1 ? fabs(v) : pow(fabs(v), p->p);
                        }
                        count++;
                    }
                if (kind == POOL_MAX) {
                    out[(c * OH + oh) * OW + ow] = arg < 0 ? -INFINITY : best;
                    if (ind)
                        ind[(c * OH + oh) * OW + ow] = c * H * W + (arg < 0 ? 0 : arg);
                    continue;
                }
                if (kind == POOL_AVG) {
                    int64_t n = p->count_include_pad ? ph * pw : count;
                    out[(c * OH + oh) * OW + ow] = n > 0 ? (float)(acc / (double)n) : 0.0f;
                } else {
                    out[(c * OH + oh) * OW + ow] = (float)(p->p == 1 ? acc : pow(acc, 1.0 / p->p));
                }
            }
        }
    }
}

/* a or v, whichever is greater, ignoring a NaN (NaN only if both are):
 * selects without branches, which the compiler turns into vector max and
 * blend instructions. */
static inline float nanmax(float a, float v)
{
    float m = v > a ? v : a;
    return a != a ? v : m;
}

/* Input columns one pass of maxpool_row holds (16 KiB of stack at most). */
#define MAXPOOL_SEG 4096

/* Output columns [lo, hi) of one output row o of a max pool whose windows
 * cover rows [hs, he) and lie inside the row (columns i * sw - pb + k,
 * k < kw): the window's first element if it is NaN, else the greatest of
 * its other elements that are not NaN, as the plain fold (first element,
 * then any later greater one) gives. Separable: each input column is first
 * reduced over the rows (contiguous loads), then each window along the
 * reduced row. Ties between +0 and -0 may keep either. */
static inline __attribute__((always_inline)) void maxpool_row(const float *xc, int64_t W,
                                                              int64_t hs, int64_t he, int64_t kw,
                                                              int64_t sw, int64_t pb, int64_t lo,
                                                              int64_t hi, float *o)
{
    float vm[MAXPOOL_SEG];
    int64_t per = (MAXPOOL_SEG - kw) / sw + 1; /* outputs per pass */

    for (int64_t i0 = lo; i0 < hi;) {
        int64_t i1 = hi - i0 < per ? hi : i0 + per;
        int64_t w0 = i0 * sw - pb, span = (i1 - 1 - i0) * sw + kw;
        const float *r = xc + hs * W + w0;
        for (int64_t t = 0; t < span; t++)
            vm[t] = r[t];
        for (int64_t h = hs + 1; h < he; h++) {
            r = xc + h * W + w0;
            for (int64_t t = 0; t < span; t++)
                vm[t] = nanmax(vm[t], r[t]);
        }
        /* Along the row, a window offset k at a time across the outputs. */
        {
            float *oo = o + i0;
            int64_t n = i1 - i0;
            if (sw == 2 && kw == 3) {
                for (int64_t i = 0; i < n; i++)
                    oo[i] = nanmax(nanmax(vm[2 * i], vm[2 * i + 1]), vm[2 * i + 2]);
            } else {
                for (int64_t i = 0; i < n; i++)
                    oo[i] = vm[i * sw];
                for (int64_t k = 1; k < kw; k++)
                    for (int64_t i = 0; i < n; i++)
                        oo[i] = nanmax(oo[i], vm[i * sw + k]);
            }
            /* A NaN first element is the window's value. */
            r = xc + hs * W + w0;
            for (int64_t i = 0; i < n; i++) {
                float first = r[i * sw], m = oo[i];
                oo[i] = first != first ? first : m;
            }
        }
        i0 = i1;
    }
}

/* 2-D MaxPool without indices or dilation: for each output row, the output
 * columns whose window lies inside the row by maxpool_row (loops the
 * compiler vectorizes); the few clipped columns at the edges take pool2d's
 * path. Each output is the window's first element if it is NaN, else the
 * greatest of the others that are not NaN: the values of pool2d's fold
 * (first element, then any later greater one), NaN included. */
static inline __attribute__((always_inline)) void
maxpool2d_body(const struct pool_params *p, const float *in, float *out, int64_t c0, int64_t c1)
{
    int64_t H = p->in_sp[0], W = p->in_sp[1], OH = p->out_sp[0], OW = p->out_sp[1];
    int64_t kh = p->kernel[0], kw = p->kernel[1], sh = p->stride[0], sw = p->stride[1];
    int64_t pb = p->pad_begin[1];
    int64_t lo = (pb + sw - 1) / sw, hi = W + pb - kw >= 0 ? (W + pb - kw) / sw + 1 : 0;

    if (hi > OW)
        hi = OW;
    if (lo > hi)
        lo = hi;
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = in + c * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * sh - p->pad_begin[0];
            int64_t hs = h0 < 0 ? 0 : h0, he = h0 + kh > H ? H : h0 + kh;
            float *o = out + (c * OH + oh) * OW;
            if (hs >= he) {
                for (int64_t ow = 0; ow < OW; ow++)
                    o[ow] = -INFINITY;
                continue;
            }
            if (kw <= MAXPOOL_SEG)
                maxpool_row(xc, W, hs, he, kw, sw, pb, lo, hi, o);
            else
                for (int64_t h = hs; h < he && lo < hi; h++) {
                    for (int64_t k = 0; k < kw; k++) {
                        /* Output column lo + i reads xk[i * sw]. */
                        const float *xk = xc + h * W + (lo * sw - pb + k);
                        float *ok = o + lo;
                        if (h == hs && k == 0) {
                            for (int64_t i = 0; i < hi - lo; i++)
                                ok[i] = xk[i * sw];
                            continue;
                        }
                        for (int64_t i = 0; i < hi - lo; i++) {
                            float v = xk[i * sw];
                            ok[i] = v > ok[i] ? v : ok[i];
                        }
                    }
                }
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, ws, we;
                float best = 0;
                bool any = false;
                if (ow == lo)
                    ow = hi;
                if (ow >= OW)
                    break;
                w0 = ow * sw - pb;
                ws = w0 < 0 ? 0 : w0;
                we = w0 + kw > W ? W : w0 + kw;
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) {
                        float v = xc[h * W + w];
                        if (!any || v > best)
                            best = v;
                        any = true;
                    }
                o[ow] = any ? best : -INFINITY;
            }
        }
    }
}

/* maxpool2d_body compiled for the baseline and, on x86-64, for AVX2 too
 * (the strided loads of a stride-2 pool vectorize there), chosen at run time. */
static void maxpool2d_generic(const struct pool_params *p, const float *in, float *out,
                              int64_t c0, int64_t c1)
{
    maxpool2d_body(p, in, out, c0, c1);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) static void maxpool2d_avx2(const struct pool_params *p,
                                                             const float *in, float *out,
                                                             int64_t c0, int64_t c1)
{
    maxpool2d_body(p, in, out, c0, c1);
}

static void maxpool2d_fast(const struct pool_params *p, const float *in, float *out, int64_t c0,
                           int64_t c1)
{
    if (__builtin_cpu_supports("avx2"))
        maxpool2d_avx2(p, in, out, c0, c1);
    else
        maxpool2d_generic(p, in, out, c0, c1);
}
#else
#define maxpool2d_fast maxpool2d_generic
#endif

/* Planes [c0, c1) of a 2-D pool, for qv_parallel_dyn. */
struct pool_job {
    const struct pool_params *p;
    const float *in;
    float *out;
    int64_t *ind;
    int kind;
};

static void pool2d_part(void *arg, int64_t c0, int64_t c1, int worker)
{
    const struct pool_job *j = arg;

    (void)worker;
    if (j->kind == POOL_MAX && j->ind == NULL)
        maxpool2d_fast(j->p, j->in, j->out, c0, c1);
    else
        pool2d(j->p, j->in, j->out, j->ind, c0, c1, j->kind);
}

static int pool_run(struct qv_exec *x, int kind)
{
    const struct pool_params *p = (const void *)x->priv;
    const struct qv_tensor *X = x->in[0];
    const float *in = X->data;
    float *out = x->out[0]->data;
    int64_t *ind = x->n_out > 1 && x->out[1] ? x->out[1]->data : NULL;
    int64_t planes = X->shape[0] * X->shape[1];
    int64_t in_n = prod(p->in_sp, p->sp), out_n = prod(p->out_sp, p->sp);
    int64_t kn = prod(p->kernel, p->sp);
    int sp = p->sp;

    if (sp == 2 && p->dil[0] == 1 && p->dil[1] == 1 && !p->col_major) {
        struct pool_job j = {p, in, out, ind, kind};
        int64_t per = out_n * kn; /* work per plane */
        qv_parallel_dyn(x, planes, per >= QV_PAR_GRAIN ? 1 : QV_PAR_GRAIN / (per + 1) + 1,
                        pool2d_part, &j);
        return QV_OK;
    }
    for (int64_t c = 0; c < planes; c++) {
        const float *xc = in + c * in_n;
        int64_t o[SP_MAX] = {0};
        for (int64_t j = 0; j < out_n; j++) {
            double acc = kind == POOL_MAX ? -INFINITY : 0.0;
            int64_t best = -1, count = 0, k[SP_MAX] = {0};
            for (int64_t kk = 0; kk < kn; kk++) {
                int64_t off = 0;
                bool inside = true, in_pad = true;
                for (int i = 0; i < sp; i++) {
                    int64_t pos = o[i] * p->stride[i] - p->pad_begin[i] + k[i] * p->dil[i];
                    if (pos < -p->pad_begin[i] || pos >= p->in_sp[i] + p->pad_end[i])
                        in_pad = false;
                    if (pos < 0 || pos >= p->in_sp[i])
                        inside = false;
                    off = off * p->in_sp[i] + pos;
                }
                if (inside) {
                    float v = xc[off];
                    if (kind == POOL_MAX) {
                        if (v > acc || best < 0) {
                            acc = v;
                            best = off;
                        }
                    } else if (kind == POOL_AVG) {
                        acc += v;
                    } else {
                        acc += p->p == 1 ? fabs(v) : pow(fabs(v), p->p);
                    }
                    count++;
                } else if (in_pad && p->count_include_pad) {
                    count++;
                }
                for (int i = sp - 1; i >= 0; i--) {
                    if (++k[i] < p->kernel[i])
                        break;
                    k[i] = 0;
                }
            }
            if (kind == POOL_AVG)
                acc = count ? acc / (double)count : 0.0;
            else if (kind == POOL_LP)
                acc = p->p == 1 ? acc : pow(acc, 1.0 / p->p);
            out[c * out_n + j] = (float)acc;
            if (ind) {
                int64_t idx = best < 0 ? 0 : best;
                if (p->col_major && best >= 0) {
                    /* Reverse the spatial index order. */
                    int64_t pos[SP_MAX], rem = best, cm = 0;
                    for (int i = sp - 1; i >= 0; i--) {
                        pos[i] = rem % p->in_sp[i];
                        rem /= p->in_sp[i];
                    }
                    for (int i = sp - 1; i >= 0; i--)
                        cm = cm * p->in_sp[i] + pos[i];
                    idx = cm;
                }
                ind[c * out_n + j] = c * in_n + idx;
            }
            for (int i = sp - 1; i >= 0; i--) {
                if (++o[i] < p->out_sp[i])
                    break;
                o[i] = 0;
            }
        }
    }
    return QV_OK;
}

static int max_pool_f32(struct qv_exec *x)
{
    return pool_run(x, POOL_MAX);
}

static int avg_pool_f32(struct qv_exec *x)
{
    return pool_run(x, POOL_AVG);
}

static int lp_pool_f32(struct qv_exec *x)
{
    return pool_run(x, POOL_LP);
}

static int pool_infer_kind(struct qv_exec *x, int kind, struct qv_diag *d)
{
    struct pool_params *p = (void *)x->priv;
    const struct qv_node *n = x->node;
    const struct qv_tensor *X;
    const char *auto_pad = qv_attr_string(n, "auto_pad", "NOTSET");
    const int64_t *ks, *st, *di, *pa;
    int nk, ns, nd, np, err;
    bool ceil_mode = qv_attr_int(n, "ceil_mode", 0) != 0;
    int64_t shape[QV_MAX_DIMS];

    err = qv_op_arity(x, 1, 1, 1, kind == POOL_MAX ? 2 : 1, d);
    if (err)
        return err;
    X = x->in[0];
    if (X->dtype != QV_DTYPE_F32)
        return qv_op_fail(n, d, QV_ENOTSUP, "only float32 is supported");
    if (X->ndim < 3)
        return qv_op_fail(n, d, QV_EINVAL, "input rank must be >= 3");
    memset(p, 0, sizeof(*p));
    p->sp = X->ndim - 2;
    ks = qv_attr_ints(n, "kernel_shape", &nk);
    st = qv_attr_ints(n, "strides", &ns);
    di = qv_attr_ints(n, "dilations", &nd);
    pa = qv_attr_ints(n, "pads", &np);
    if (ks == NULL || nk != p->sp || (st && ns != p->sp) || (di && nd != p->sp) ||
        (pa && np != 2 * p->sp))
        return qv_op_fail(n, d, QV_EINVAL, "kernel_shape/strides/pads do not match rank %d", p->sp);
    p->count_include_pad = qv_attr_int(n, "count_include_pad", 0) != 0;
    p->col_major = qv_attr_int(n, "storage_order", 0) != 0;
    p->p = (int)qv_attr_int(n, "p", 2);
    if (kind == POOL_LP && (p->p < 1 || p->p > 64))
        return qv_op_fail(n, d, QV_ENOTSUP, "p must be 1..64");
    for (int i = 0; i < p->sp; i++) {
        int64_t ek, out, num;
        p->in_sp[i] = X->shape[2 + i];
        p->kernel[i] = ks[i];
        p->stride[i] = st ? st[i] : 1;
        p->dil[i] = di ? di[i] : 1;
        p->pad_begin[i] = pa ? pa[i] : 0;
        p->pad_end[i] = pa ? pa[p->sp + i] : 0;
        if (p->kernel[i] < 1 || p->stride[i] < 1 || p->dil[i] < 1 || p->pad_begin[i] < 0 ||
            p->pad_end[i] < 0)
            return qv_op_fail(n, d, QV_EINVAL, "bad kernel, stride, dilation or pad");
        if (p->kernel[i] > QV_ONNX_MAX_ELEMS || p->stride[i] > QV_ONNX_MAX_ELEMS ||
            p->dil[i] > QV_ONNX_MAX_ELEMS / p->kernel[i] || p->pad_begin[i] > QV_ONNX_MAX_ELEMS ||
            p->pad_end[i] > QV_ONNX_MAX_ELEMS)
            return qv_op_fail(n, d, QV_E2BIG, "kernel, stride, dilation or pad too large");
        ek = p->dil[i] * (p->kernel[i] - 1) + 1;
        if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
            int64_t total;
            out = (p->in_sp[i] + p->stride[i] - 1) / p->stride[i];
            total = (out - 1) * p->stride[i] + ek - p->in_sp[i];
            if (total < 0)
                total = 0;
            p->pad_begin[i] = auto_pad[5] == 'U' ? total / 2 : total - total / 2;
            p->pad_end[i] = total - p->pad_begin[i];
        } else if (strcmp(auto_pad, "VALID") == 0) {
            p->pad_begin[i] = p->pad_end[i] = 0;
            if (p->in_sp[i] < ek)
                return qv_op_fail(n, d, QV_EINVAL, "kernel larger than the input");
            out = (p->in_sp[i] - ek) / p->stride[i] + 1;
        } else {
            num = p->in_sp[i] + p->pad_begin[i] + p->pad_end[i] - ek;
            if (num < 0)
                return qv_op_fail(n, d, QV_EINVAL, "kernel larger than the padded input");
            out = (ceil_mode ? (num + p->stride[i] - 1) / p->stride[i] : num / p->stride[i]) + 1;
            /* The last window must start inside the input or the left pad. */
            if (ceil_mode && (out - 1) * p->stride[i] >= p->in_sp[i] + p->pad_begin[i])
                out--;
        }
        p->out_sp[i] = out;
        shape[2 + i] = out;
    }
    shape[0] = X->shape[0];
    shape[1] = X->shape[1];
    qv_out_set(x, 0, QV_DTYPE_F32, X->ndim, shape);
    if (x->n_out > 1)
        qv_out_set(x, 1, QV_DTYPE_I64, X->ndim, shape);
    return QV_OK;
}

static int max_pool_infer(struct qv_exec *x, struct qv_diag *d)
{
    return pool_infer_kind(x, POOL_MAX, d);
}

static int avg_pool_infer(struct qv_exec *x, struct qv_diag *d)
{
    return pool_infer_kind(x, POOL_AVG, d);
}

static int lp_pool_infer(struct qv_exec *x, struct qv_diag *d)
{
    return pool_infer_kind(x, POOL_LP, d);
}

/* ---- Global pools ---- */

static int global_run(struct qv_exec *x, int kind)
{
    const struct qv_tensor *X = x->in[0];
    const struct pool_params *p = (const void *)x->priv;
    int64_t planes = X->shape[0] * X->shape[1];
    int64_t n = planes ? qv_numel(X) / planes : 0;
    const float *in = X->data;
    float *out = x->out[0]->data;

    for (int64_t c = 0; c < planes; c++) {
        const float *xc = in + c * n;
        double acc = kind == POOL_MAX ? -INFINITY : 0.0;
        for (int64_t j = 0; j < n; j++) {
            if (kind == POOL_MAX)
                acc = xc[j] > acc ? xc[j] : acc;
            else if (kind == POOL_AVG)
                acc += xc[j];
            else
                acc += pow(fabs(xc[j]), p->p);
        }
        if (kind == POOL_AVG)
            acc = n ? acc / (double)n : 0.0;
        else if (kind == POOL_LP)
            acc = pow(acc, 1.0 / p->p);
        out[c] = (float)acc;
    }
    return QV_OK;
}

static int global_avg_f32(struct qv_exec *x)
{
    return global_run(x, POOL_AVG);
}

static int global_max_f32(struct qv_exec *x)
{
    return global_run(x, POOL_MAX);
}

static int global_lp_f32(struct qv_exec *x)
{
    return global_run(x, POOL_LP);
}

static int global_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct pool_params *p = (void *)x->priv;
    const struct qv_tensor *X;
    int64_t shape[QV_MAX_DIMS];
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    X = x->in[0];
    if (X->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    if (X->ndim < 2)
        return qv_op_fail(x->node, d, QV_EINVAL, "input rank must be >= 2");
    memset(p, 0, sizeof(*p));
    p->p = (int)qv_attr_int(x->node, "p", 2);
    for (int i = 0; i < X->ndim; i++)
        shape[i] = i < 2 ? X->shape[i] : 1;
    qv_out_set(x, 0, QV_DTYPE_F32, X->ndim, shape);
    return QV_OK;
}

const struct qv_op qv_op_average_pool = {.name = "AveragePool",
                                         .since_version = 1,
                                         .infer_shape = avg_pool_infer,
                                         .kernels = {[QV_DTYPE_F32] = avg_pool_f32}};
const struct qv_op qv_op_global_average_pool = {.name = "GlobalAveragePool",
                                                .since_version = 1,
                                                .infer_shape = global_infer,
                                                .kernels = {[QV_DTYPE_F32] = global_avg_f32}};
const struct qv_op qv_op_global_lp_pool = {.name = "GlobalLpPool",
                                           .since_version = 2,
                                           .infer_shape = global_infer,
                                           .kernels = {[QV_DTYPE_F32] = global_lp_f32}};
const struct qv_op qv_op_global_max_pool = {.name = "GlobalMaxPool",
                                            .since_version = 1,
                                            .infer_shape = global_infer,
                                            .kernels = {[QV_DTYPE_F32] = global_max_f32}};
const struct qv_op qv_op_lp_pool = {.name = "LpPool",
                                    .since_version = 2,
                                    .infer_shape = lp_pool_infer,
                                    .kernels = {[QV_DTYPE_F32] = lp_pool_f32}};
const struct qv_op qv_op_max_pool = {.name = "MaxPool",
                                     .since_version = 1,
                                     .infer_shape = max_pool_infer,
                                     .kernels = {[QV_DTYPE_F32] = max_pool_f32}};
