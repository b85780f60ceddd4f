/* SPDX-License-Identifier: MIT
 *
 * Conv and ConvTranspose for any spatial rank, by im2col / col2im around one
 * OpenBLAS GEMM per (batch, group). The column buffer is the node's scratch,
 * sized at plan time, so kernels never allocate. A 1x1, stride-1, unpadded
 * Conv skips im2col and multiplies the input directly. A 3x3, stride-1 Conv
 * with constant weights and enough channels runs by Winograd F(2x2, 3x3)
 * (conv_winograd.c), its weights transformed once at plan time. Other
 * ungrouped Convs with constant weights, on CPUs with AVX-512, multiply by
 * weights packed once at plan time (sgemm_packed.c) instead of OpenBLAS.
 */
#include "conv_winograd.h"
#include "op.h"
#include "sgemm_packed.h"

#include <cblas.h>

#define SP_MAX (QV_MAX_DIMS - 2)

struct conv_params {
    int sp; /* spatial rank */
    int64_t group;
    int64_t kernel[SP_MAX], stride[SP_MAX], dil[SP_MAX];
    int64_t pad_begin[SP_MAX];
    int64_t in_sp[SP_MAX], out_sp[SP_MAX];
    int64_t c_in, c_out;         /* channels of X and Y */
    int64_t rows;                /* (channels per group) * prod(kernel) */
    bool direct;                 /* 1x1 Conv: no im2col */
    int act;                     /* fused activation (Conv only): ACT_* */
    float act_lo, act_hi;        /* ACT_CLIP bounds */
    bool wino;                   /* Winograd: wp set, the transformed weights in x->prep */
    const struct qv_tensor *res; /* a fused Add's other input (same shape as Y), or NULL */
    bool packed;                 /* the weights packed in x->prep; C^T after the column buffer */
    int64_t row_block;           /* packed in one pass over k: rows of the first output
                                  * dimension per column block (0: the whole column matrix) */
    struct qv_wino wp;
};

enum { ACT_NONE = QV_CONV_ACT_NONE, ACT_RELU = QV_CONV_ACT_RELU, ACT_CLIP = QV_CONV_ACT_CLIP };

/* Winograd pays once both channel counts reach this (below, the transforms
 * cost more than the products they save). */
#define WINO_MIN_CHANNELS 16
/* Below this many output tiles (2x2 blocks), the transformed weights, 16/9
 * the size of the plain ones, cost more to read than the products save
 * (ResNet's 7x7 layers). */
#define WINO_MIN_TILES 32

_Static_assert(sizeof(struct conv_params) <= QV_EXEC_PRIV, "priv too small");

extern const struct qv_op qv_op_conv;

static int64_t prod(const int64_t *v, int n)
{
    int64_t r = 1;

    for (int i = 0; i < n; i++)
        r *= v[i];
    return r;
}

/* Reads kernel_shape/strides/dilations/pads/auto_pad. 'in' and 'k' are the
 * spatial input and kernel sizes. For Conv (transpose false) also computes
 * the output size. */
static int read_geometry(struct qv_exec *x, struct conv_params *p, bool transpose,
                         struct qv_diag *d)
{
    const struct qv_node *n = x->node;
    const char *auto_pad = qv_attr_string(n, "auto_pad", "NOTSET");
    const int64_t *ks, *st, *di, *pa;
    int nk, ns, nd, np;

    ks = qv_attr_ints(n, "kernel_shape", &nk);
    st = qv_attr_ints(n, "strides", &ns);
    di = qv_attr_ints(n, "dilations", &nd);
    pa = qv_attr_ints(n, "pads", &np);
    if ((ks && nk != p->sp) || (st && ns != p->sp) || (di && nd != p->sp) ||
        (pa && np != 2 * p->sp))
        return qv_op_fail(n, d, QV_EINVAL, "attribute lengths do not match spatial rank %d", p->sp);
    for (int i = 0; i < p->sp; i++) {
        if (ks && ks[i] != p->kernel[i])
            return qv_op_fail(n, d, QV_EINVAL, "kernel_shape differs from the weights");
        p->stride[i] = st ? st[i] : 1;
        p->dil[i] = di ? di[i] : 1;
        if (p->stride[i] > QV_ONNX_MAX_ELEMS || p->dil[i] > QV_ONNX_MAX_ELEMS / (p->kernel[i] + 1))
            return qv_op_fail(n, d, QV_E2BIG, "strides or dilations too large");
        if (p->stride[i] < 1 || p->dil[i] < 1)
            return qv_op_fail(n, d, QV_EINVAL, "strides and dilations must be >= 1");
    }
    for (int i = 0; i < p->sp; i++) {
        int64_t pb = pa ? pa[i] : 0, pe = pa ? pa[p->sp + i] : 0;
        int64_t ek = p->dil[i] * (p->kernel[i] - 1) + 1;
        if (pb > QV_ONNX_MAX_ELEMS || pe > QV_ONNX_MAX_ELEMS)
            return qv_op_fail(n, d, QV_E2BIG, "pads too large");
        if (pb < 0 || pe < 0)
            return qv_op_fail(n, d, QV_EINVAL, "negative pads");
        if (transpose) {
            p->pad_begin[i] = pb;
            p->out_sp[i] = pe; /* end pad, resolved by the caller */
            continue;
        }
        if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
            int64_t out = (p->in_sp[i] + p->stride[i] - 1) / p->stride[i];
            int64_t total = (out - 1) * p->stride[i] + ek - p->in_sp[i];
            if (total < 0)
                total = 0;
            pb = auto_pad[5] == 'U' ? total / 2 : total - total / 2;
            pe = total - pb;
        } else if (strcmp(auto_pad, "VALID") == 0) {
            pb = pe = 0;
        } else if (strcmp(auto_pad, "NOTSET") != 0) {
            return qv_op_fail(n, d, QV_EINVAL, "unknown auto_pad '%s'", auto_pad);
        }
        p->pad_begin[i] = pb;
        if (p->in_sp[i] + pb + pe < ek)
            return qv_op_fail(n, d, QV_EINVAL, "kernel larger than the padded input");
        p->out_sp[i] = (p->in_sp[i] + pb + pe - ek) / p->stride[i] + 1;
    }
    return QV_OK;
}

/* ---- Conv ---- */

/* col[r, o] = X[c, o*stride - pad + k*dil] over rows r = (c, k...) of one group. */
#define IM2COL(sfx, T)                                                                             \
    static inline __attribute__((always_inline)) void im2col_##sfx(                                \
        const struct conv_params *p, const T *xg, T *col, int64_t r0, int64_t r1)                  \
    {                                                                                              \
        int64_t out_n = prod(p->out_sp, p->sp), in_n = prod(p->in_sp, p->sp);                      \
        int64_t kn = prod(p->kernel, p->sp);                                                       \
        int sp = p->sp;                                                                            \
                                                                                                   \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            int64_t c = r / kn, kr = r % kn, koff[SP_MAX], o[SP_MAX] = {0};                        \
            const T *xc = xg + c * in_n;                                                           \
            T *dst = col + r * out_n;                                                              \
            for (int i = sp - 1; i >= 0; i--) {                                                    \
                koff[i] = (kr % p->kernel[i]) * p->dil[i] - p->pad_begin[i];                       \
                kr /= p->kernel[i];                                                                \
            }                                                                                      \
            for (int64_t j = 0; j < out_n;) {                                                      \
                /* Outer spatial dims: base offset, or zero if out of range. */                    \
                int64_t base = 0, last = sp - 1;                                                   \
                bool inside = true;                                                                \
                for (int i = 0; i < last; i++) {                                                   \
                    int64_t pos = o[i] * p->stride[i] + koff[i];                                   \
                    if (pos < 0 || pos >= p->in_sp[i])                                             \
                        inside = false;                                                            \
                    base = base * p->in_sp[i] + pos;                                               \
                }                                                                                  \
                base *= p->in_sp[last];                                                            \
                {                                                                                  \
                    /* Along the last dim, [lo, hi) reads the input; the rest is padding. */       \
                    int64_t st = p->stride[last], ko = koff[last], n_out = p->out_sp[last];        \
                    int64_t lo = ko >= 0 ? 0 : (-ko + st - 1) / st;                                \
                    int64_t hi =                                                                   \
                        p->in_sp[last] - ko <= 0 ? 0 : (p->in_sp[last] - ko + st - 1) / st;        \
                    T *row = dst + j;                                                              \
                    if (!inside || hi > n_out)                                                     \
                        hi = inside ? n_out : 0;                                                   \
                    if (lo > hi)                                                                   \
                        lo = hi;                                                                   \
                    for (int64_t ol = 0; ol < lo; ol++)                                            \
                        row[ol] = 0;                                                               \
                    if (st == 1 && hi - lo >= 32)                                                  \
                        memcpy(row + lo, xc + base + lo + ko, sizeof(T) * (size_t)(hi - lo));      \
                    else if (st == 1)                                                              \
                        for (int64_t ol = lo; ol < hi; ol++)                                       \
                            row[ol] = xc[base + ol + ko];                                          \
                    else if (st == 2 && hi > lo) {                                                 \
                        /* A constant stride the compiler can vectorize. */                        \
                        const T *s2 = xc + base + 2 * lo + ko;                                     \
                        for (int64_t i = 0; i < hi - lo; i++)                                      \
                            row[lo + i] = s2[2 * i];                                               \
                    } else                                                                         \
                        for (int64_t ol = lo; ol < hi; ol++)                                       \
                            row[ol] = xc[base + ol * st + ko];                                     \
                    for (int64_t ol = hi; ol < n_out; ol++)                                        \
                        row[ol] = 0;                                                               \
                }                                                                                  \
                j += p->out_sp[last];                                                              \
                for (int i = last - 1; i >= 0; i--) {                                              \
                    if (++o[i] < p->out_sp[i])                                                     \
                        break;                                                                     \
                    o[i] = 0;                                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

IM2COL(f32_body, float)
IM2COL(f64, double)

/* im2col for float, compiled for the baseline and, on x86-64, for AVX2 too
 * (wider copies and gathers of strided rows), chosen by the CPU at run time. */
static void im2col_f32_generic(const struct conv_params *p, const float *xg, float *col, int64_t r0,
                               int64_t r1)
{
    im2col_f32_body(p, xg, col, r0, r1);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) static void
im2col_f32_avx2(const struct conv_params *p, const float *xg, float *col, int64_t r0, int64_t r1)
{
    im2col_f32_body(p, xg, col, r0, r1);
}

static void im2col_f32(const struct conv_params *p, const float *xg, float *col, int64_t r0,
                       int64_t r1)
{
    if (__builtin_cpu_supports("avx2"))
        im2col_f32_avx2(p, xg, col, r0, r1);
    else
        im2col_f32_generic(p, xg, col, r0, r1);
}
#else
#define im2col_f32 im2col_f32_generic
#endif

/* One Conv run split across the intra-op pool. With one group, im2col is
 * split by rows of the column matrix and the GEMM by output channels, or by
 * output columns when there are more columns than channels (OpenBLAS packs
 * all of the operand that is not split in every part); OpenBLAS runs single-threaded
 * inside each part. With several groups, whole groups go to each thread, each
 * thread with its own column buffer. Parts are cut finer than one per
 * thread (qv_parallel_dyn) where a part needs no scratch of its own or its
 * thread's. Bias and the fused activation are applied to
 * each part of Y right after its GEMM, while it is in cache. */
struct conv_job {
    const struct conv_params *p;
    const float *W, *B, *xg, *src;
    const float *R; /* the residual of this batch image (as yg), or NULL */
    float *col, *yg;
    int64_t out_n, batch_off; /* output channels before this batch image's groups */
    const float *X;
    float *Y;
    int64_t b;
    bool split_cols;
    const float *P; /* packed weights, or NULL: OpenBLAS */
    float *ct;      /* the packed product's C^T [out_n][ldct] */
    int64_t ldct;
};

/* Floats of a column block (ROW_BLOCK_FLOATS): a quarter of a core's L2. */
#define ROW_BLOCK_FLOATS ((int64_t)64 * 1024)
#define CONV_ROW_GRAIN 16   /* output channels per GEMM part */
#define CONV_COL_GRAIN 256  /* output columns per GEMM part */
#define IM2COL_GRAIN 8      /* column-matrix rows per im2col part */
#define PACKED_COL_GRAIN 28 /* output columns per packed-product part */
/* The packed product pays where the weights are large next to the column
 * matrix; past this many output positions per output channel (ResNet's
 * first layer: 12544 positions, 64 channels) OpenBLAS is faster. */
#define PACKED_MAX_COLS_PER_CHANNEL 8

/* Y[m, n0..n1) for m in [m0, m1): bias, the residual R (laid out as Y) if
 * any, then the fused activation. */
static void conv_epilogue(const struct conv_params *p, const float *B, const float *R, float *Y,
                          int64_t ld, int64_t ch0, int64_t m0, int64_t m1, int64_t n0, int64_t n1)
{
    if (B == NULL && R == NULL && p->act == ACT_NONE)
        return;
    for (int64_t m = m0; m < m1; m++) {
        float *y = Y + m * ld;
        float bias = B ? B[ch0 + m] : 0.0f;
        if (R) {
            const float *r = R + m * ld;
            for (int64_t j = n0; j < n1; j++) {
                float v = y[j] + bias + r[j];
                if (p->act == ACT_RELU)
                    v = v > 0 ? v : 0.0f;
                else if (p->act == ACT_CLIP) {
                    v = v < p->act_lo ? p->act_lo : v;
                    v = v > p->act_hi ? p->act_hi : v;
                }
                y[j] = v;
            }
            continue;
        }
        if (p->act == ACT_RELU) {
            for (int64_t j = n0; j < n1; j++) {
                float v = y[j] + bias;
                y[j] = v > 0 ? v : 0.0f;
            }
        } else if (p->act == ACT_CLIP) {
            float lo = p->act_lo, hi = p->act_hi;
            for (int64_t j = n0; j < n1; j++) {
                float v = y[j] + bias;
                v = v < lo ? lo : v;
                y[j] = v > hi ? hi : v;
            }
        } else {
            for (int64_t j = n0; j < n1; j++)
                y[j] += bias;
        }
    }
}

static void conv_im2col_part(void *arg, int64_t r0, int64_t r1, int worker)
{
    const struct conv_job *j = arg;

    (void)worker;
    im2col_f32(j->p, j->xg, j->col, r0, r1);
}

/* Y[m][n] = act(Ct[n][m] + B[m]) for m in [m0, m1), n in [n0, n1), in
 * blocks of 16 columns so that the rows of Ct read stay in L1. */
static void conv_epilogue_t(const struct conv_params *p, const float *B, const float *R,
                            const float *ct, int64_t ldct, float *Y, int64_t ld, int64_t m0,
                            int64_t m1, int64_t n0, int64_t n1)
{
    if (R) {
        /* Transpose first, then bias, residual and activation row by row. */
        for (int64_t nb = n0; nb < n1; nb += 16) {
            int64_t ne = nb + 16 < n1 ? nb + 16 : n1;
            for (int64_t m = m0; m < m1; m++)
                for (int64_t n = nb; n < ne; n++)
                    Y[m * ld + n] = ct[n * ldct + m];
        }
        conv_epilogue(p, B, R, Y, ld, 0, m0, m1, n0, n1);
        return;
    }
    for (int64_t nb = n0; nb < n1; nb += 16) {
        int64_t ne = nb + 16 < n1 ? nb + 16 : n1;
        for (int64_t m = m0; m < m1; m++) {
            float *y = Y + m * ld;
            const float *c = ct + m;
            float bias = B ? B[m] : 0.0f;
            if (p->act == ACT_RELU) {
                for (int64_t n = nb; n < ne; n++) {
                    float v = c[n * ldct] + bias;
                    y[n] = v > 0 ? v : 0.0f;
                }
            } else if (p->act == ACT_CLIP) {
                for (int64_t n = nb; n < ne; n++) {
                    float v = c[n * ldct] + bias;
                    v = v < p->act_lo ? p->act_lo : v;
                    y[n] = v > p->act_hi ? p->act_hi : v;
                }
            } else {
                for (int64_t n = nb; n < ne; n++)
                    y[n] = c[n * ldct] + bias;
            }
        }
    }
}

/* The packed product: columns [a, e) of every channel, or panels [a, e)
 * over every column. */
static void conv_packed_part(void *arg, int64_t a, int64_t e, int worker)
{
    const struct conv_job *j = arg;
    const struct conv_params *p = j->p;
    int64_t panels = qv_pk_rows(p->c_out) / QV_PK_MR;

    (void)worker;
    if (p->rows <= QV_PK_KC) {
        /* One pass over k: C, its bias and activation written directly. */
        qv_pk_gemm_act(j->P, p->c_out, p->rows, j->split_cols ? 0 : a, j->split_cols ? panels : e,
                       j->src, j->out_n, j->split_cols ? a : 0, j->split_cols ? e : j->out_n, j->yg,
                       j->out_n, j->B, j->R, p->act, p->act_lo, p->act_hi);
        return;
    }
    if (j->split_cols) {
        qv_pk_gemm_t(j->P, p->rows, 0, panels, j->src, j->out_n, a, e, j->ct, j->ldct);
        conv_epilogue_t(p, j->B, j->R, j->ct, j->ldct, j->yg, j->out_n, 0, p->c_out, a, e);
    } else {
        int64_t m1 = e * QV_PK_MR < p->c_out ? e * QV_PK_MR : p->c_out;
        qv_pk_gemm_t(j->P, p->rows, a, e, j->src, j->out_n, 0, j->out_n, j->ct, j->ldct);
        conv_epilogue_t(p, j->B, j->R, j->ct, j->ldct, j->yg, j->out_n, a * QV_PK_MR, m1, 0,
                        j->out_n);
    }
}

/* Blocks [a, e) of p->row_block rows of the first output dimension: the
 * column matrix of those rows (im2col of the same Conv with the padding
 * moved) in this thread's buffer, then the packed product, bias, residual
 * and activation into Y. */
static void conv_row_block_part(void *arg, int64_t a, int64_t e, int worker)
{
    const struct conv_job *j = arg;
    const struct conv_params *p = j->p;
    int64_t inner = j->out_n / p->out_sp[0], panels = qv_pk_rows(p->c_out) / QV_PK_MR;
    float *col = j->col + (size_t)worker * (size_t)(p->row_block * p->rows * inner);

    /* Tasks [a, e) are blocks of p->row_block rows. */
    a *= p->row_block;
    e = e * p->row_block < p->out_sp[0] ? e * p->row_block : p->out_sp[0];

    for (int64_t o0 = a; o0 < e; o0 += p->row_block) {
        struct conv_params q = *p;
        int64_t n = e - o0 < p->row_block ? e - o0 : p->row_block, cols = n * inner;
        q.out_sp[0] = n;
        q.pad_begin[0] = p->pad_begin[0] - o0 * p->stride[0];
        im2col_f32(&q, j->xg, col, 0, p->rows);
        qv_pk_gemm_act(j->P, p->c_out, p->rows, 0, panels, col, cols, 0, cols, j->yg + o0 * inner,
                       j->out_n, j->B, j->R ? j->R + o0 * inner : NULL, p->act, p->act_lo,
                       p->act_hi);
    }
}

static void conv_gemm_part(void *arg, int64_t a, int64_t e, int worker)
{
    const struct conv_job *j = arg;
    const struct conv_params *p = j->p;
    int64_t mg = p->c_out / p->group;
    int64_t m0 = j->split_cols ? 0 : a, m1 = j->split_cols ? mg : e;
    int64_t n0 = j->split_cols ? a : 0, n1 = j->split_cols ? e : j->out_n;

    (void)worker;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(m1 - m0), (int)(n1 - n0),
                (int)p->rows, 1.0f, j->W + m0 * p->rows, (int)p->rows, j->src + n0, (int)j->out_n,
                0.0f, j->yg + m0 * j->out_n + n0, (int)j->out_n);
    conv_epilogue(p, j->B, j->R, j->yg, j->out_n, 0, m0, m1, n0, n1);
}

/* Whole groups [g0, g1) of batch image j->b, on one thread. */
static void conv_group_part(void *arg, int64_t g0, int64_t g1, int worker)
{
    const struct conv_job *j = arg;
    const struct conv_params *p = j->p;
    int64_t in_n = prod(p->in_sp, p->sp), out_n = j->out_n;
    int64_t cg = p->c_in / p->group, mg = p->c_out / p->group;
    float *col = j->col + (size_t)worker * (size_t)(p->rows * out_n);

    for (int64_t g = g0; g < g1; g++) {
        const float *xg = j->X + (j->b * p->c_in + g * cg) * in_n;
        float *yg = j->Y + (j->b * p->c_out + g * mg) * out_n;
        const float *src = xg;
        if (!p->direct) {
            im2col_f32(p, xg, col, 0, p->rows);
            src = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mg, (int)out_n, (int)p->rows,
                    1.0f, j->W + g * mg * p->rows, (int)p->rows, src, (int)out_n, 0.0f, yg,
                    (int)out_n);
        conv_epilogue(p, j->B ? j->B + g * mg : NULL,
                      p->res ? (const float *)p->res->data + (yg - j->Y) : NULL, yg, out_n, 0, 0,
                      mg, 0, out_n);
    }
}

/* Winograd over the pool. The tiles go in whole panels of 32 (the packed
 * product costs the same for a full and a partial panel), a few panels per
 * chunk (qv_parallel_dyn), each chunk in blocks in its thread's scratch:
 * each thread transforms, multiplies and writes back its own tiles, and a
 * thread that is slowed leaves its last chunks to the others. With fewer
 * than WINO_PANELS_PER_THREAD panels per thread, the threads share each
 * block instead: all transform the input (split by input channels) into one
 * V, then all multiply and transform the output (split by output channels).
 * Sharing moves V between cores, so it is kept for few panels. */
struct wino_job {
    const struct conv_params *p;
    const float *U, *B, *R, *X;
    float *Y, *scratch;
    int64_t t0, nb; /* the shared block */
};

#define WINO_PANEL 32
/* Panels per thread from which threads split tiles rather than share blocks
 * (measured on ResNet-18 with 2 threads: its 14x14 layers, 2 panels of 32
 * and 17 tiles, run 3% faster shared than with one panel per thread). */
#define WINO_PANELS_PER_THREAD 2

static void wino_tiles_part(void *arg, int64_t a, int64_t e, int worker)
{
    const struct wino_job *j = arg;
    const struct qv_wino *w = &j->p->wp;
    float *scratch = j->scratch + (size_t)worker * qv_wino_scratch_floats(w);
    int64_t tiles = w->th * w->tw, t1 = e * WINO_PANEL < tiles ? e * WINO_PANEL : tiles;

    qv_wino_run(w, j->U, j->B, j->R, j->X, j->Y, scratch, a * WINO_PANEL, t1);
}

static void wino_in_part(void *arg, int64_t c0, int64_t c1, int chunk)
{
    const struct wino_job *j = arg;
    const struct qv_wino *w = &j->p->wp;
    float *mine = j->scratch + (size_t)chunk * qv_wino_scratch_floats(w);

    qv_wino_input(w, j->X, qv_wino_v(w, j->scratch), j->t0, j->nb, c0, c1, qv_wino_rows(w, mine));
}

static void wino_out_part(void *arg, int64_t m0, int64_t m1, int chunk)
{
    const struct wino_job *j = arg;
    const struct qv_wino *w = &j->p->wp;
    float *mine = j->scratch + (size_t)chunk * qv_wino_scratch_floats(w);

    qv_wino_output(w, j->U, j->B, j->R, qv_wino_v(w, j->scratch), qv_wino_m(w, j->scratch), j->Y,
                   j->t0, j->nb, m0, m1, qv_wino_rows(w, mine));
}

static void conv_wino(struct qv_exec *x)
{
    const struct conv_params *p = (const void *)x->priv;
    const struct qv_wino *w = &p->wp;
    int64_t tiles = w->th * w->tw, batch = x->in[0]->shape[0];
    int64_t panels = (tiles + WINO_PANEL - 1) / WINO_PANEL;
    int64_t plane = w->oh * w->ow;
    struct wino_job j = {.p = p,
                         .U = x->prep,
                         .B = x->n_in > 2 && x->in[2] ? x->in[2]->data : NULL,
                         .scratch = x->scratch};
    bool shared =
        x->pool != NULL && panels < WINO_PANELS_PER_THREAD * qv_parallel_chunks(x, panels, 1);

    for (int64_t b = 0; b < batch; b++) {
        j.X = (const float *)x->in[0]->data + b * w->c * w->h * w->w;
        j.Y = (float *)x->out[0]->data + b * w->k * plane;
        j.R = p->res ? (const float *)p->res->data + b * w->k * plane : NULL;
        if (x->pool == NULL) {
            wino_tiles_part(&j, 0, panels, 0);
            continue;
        }
        if (!shared) {
            /* At most QV_DYN_CHUNKS chunks per thread: a chunk per panel
             * would read the transformed weights once per panel instead of
             * once per block of panels. */
            qv_parallel_dyn(x, panels, 1, wino_tiles_part, &j);
            continue;
        }
        for (int64_t k = 0, nbk = qv_wino_blocks(w, tiles); k < nbk; k++) {
            qv_wino_block(w, tiles, k, &j.t0, &j.nb);
            qv_parallel_for(x, w->c, IM2COL_GRAIN, wino_in_part, &j);
            qv_parallel_for(x, w->k, CONV_ROW_GRAIN, wino_out_part, &j);
        }
    }
}

static void conv_prepare(struct qv_exec *x)
{
    const struct conv_params *p = (const void *)x->priv;

    if (p->wino)
        qv_wino_weights(&p->wp, x->in[1]->data, x->prep);
    else if (p->packed)
        qv_pk_pack(x->in[1]->data, p->rows, p->c_out, p->rows, x->prep);
}

static int conv_f32(struct qv_exec *x)
{
    const struct conv_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data, *W = x->in[1]->data;
    const float *B = x->n_in > 2 && x->in[2] ? x->in[2]->data : NULL;
    float *Y = x->out[0]->data;
    int64_t batch = x->in[0]->shape[0];
    int64_t in_n = prod(p->in_sp, p->sp), out_n = prod(p->out_sp, p->sp);
    int64_t cg = p->c_in / p->group, mg = p->c_out / p->group;
    struct conv_job j = {.p = p, .W = W, .B = B, .col = x->scratch, .out_n = out_n, .X = X, .Y = Y};

    if (out_n == 0 || p->c_out == 0)
        return QV_OK;
    if (p->wino) {
        conv_wino(x);
        return QV_OK;
    }
    if (p->rows == 0) {
        memset(Y, 0, x->out[0]->nbytes);
        for (int64_t b = 0; b < batch; b++)
            conv_epilogue(p, B, p->res ? (const float *)p->res->data + b * p->c_out * out_n : NULL,
                          Y + b * p->c_out * out_n, out_n, 0, 0, p->c_out, 0, out_n);
        return QV_OK;
    }
    for (int64_t b = 0; b < batch; b++) {
        if (p->group > 1) {
            j.b = b;
            qv_parallel_dyn(x, p->group, 1, conv_group_part, &j);
            continue;
        }
        (void)cg;
        j.xg = X + b * p->c_in * in_n;
        j.yg = Y + b * p->c_out * out_n;
        j.R = p->res ? (const float *)p->res->data + b * p->c_out * out_n : NULL;
        j.src = j.xg;
        if (p->packed && p->row_block > 0) {
            j.P = x->prep;
            qv_parallel_tasks(x, (p->out_sp[0] + p->row_block - 1) / p->row_block,
                              conv_row_block_part, &j);
            continue;
        }
        if (!p->direct) {
            qv_parallel_dyn(x, p->rows, IM2COL_GRAIN, conv_im2col_part, &j);
            j.src = j.col;
        }
        /* Each part packs its share of one operand and the whole other one:
         * split the operand that is larger (the columns when out_n > mg). */
        j.split_cols = mg < 2 * CONV_ROW_GRAIN || out_n > mg;
        if (p->packed) {
            j.P = x->prep;
            j.ldct = qv_pk_rows(p->c_out);
            /* C^T after the column buffer, only for sums longer than one pass */
            j.ct =
                p->rows > QV_PK_KC ? (float *)x->scratch + (p->direct ? 0 : p->rows * out_n) : NULL;
            if (j.split_cols)
                qv_parallel_dyn(x, out_n, PACKED_COL_GRAIN, conv_packed_part, &j);
            else
                qv_parallel_tasks(x, j.ldct / QV_PK_MR, conv_packed_part, &j);
            continue;
        }
        if (j.split_cols)
            qv_parallel_dyn(x, out_n, CONV_COL_GRAIN, conv_gemm_part, &j);
        else
            qv_parallel_dyn(x, mg, CONV_ROW_GRAIN, conv_gemm_part, &j);
    }
    return QV_OK;
}

bool qv_conv_fuse_activation(struct qv_exec *x, bool relu, float lo, float hi)
{
    struct conv_params *p = (void *)x->priv;

    if (x->node->op != &qv_op_conv || x->kdtype != QV_DTYPE_F32 || p->act != ACT_NONE)
        return false;
    p->act = relu ? ACT_RELU : ACT_CLIP;
    p->act_lo = lo;
    p->act_hi = hi;
    p->wp.act = p->act;
    p->wp.act_lo = lo;
    p->wp.act_hi = hi;
    return true;
}

bool qv_conv_fuse_residual(struct qv_exec *x, const struct qv_tensor *r)
{
    struct conv_params *p = (void *)x->priv;
    const struct qv_tensor *y = x->out[0];

    if (x->node->op != &qv_op_conv || x->kdtype != QV_DTYPE_F32 || p->act != ACT_NONE ||
        p->res != NULL || r->dtype != QV_DTYPE_F32 || y->dtype != QV_DTYPE_F32 ||
        r->ndim != y->ndim || memcmp(r->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim) != 0)
        return false;
    p->res = r;
    return true;
}

/* Geometry shared by Conv, ConvInteger, QLinearConv and ConvTranspose. */
static int conv_common(struct qv_exec *x, struct conv_params *p, const struct qv_tensor *X,
                       const struct qv_tensor *W, struct qv_diag *d)
{
    if (X->ndim < 3 || W->ndim != X->ndim)
        return qv_op_fail(x->node, d, QV_EINVAL, "X and W must have the same rank >= 3");
    memset(p, 0, sizeof(*p));
    p->sp = X->ndim - 2;
    p->group = qv_attr_int(x->node, "group", 1);
    if (p->group < 1 || X->shape[1] % p->group != 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "group %lld does not divide %lld channels",
                          (long long)p->group, (long long)X->shape[1]);
    p->c_in = X->shape[1];
    for (int i = 0; i < p->sp; i++) {
        p->in_sp[i] = X->shape[2 + i];
        p->kernel[i] = W->shape[2 + i];
    }
    return QV_OK;
}

static int float_inputs(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 3, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->dtype != QV_DTYPE_F32 || x->in[1]->dtype != QV_DTYPE_F32 ||
        (x->n_in > 2 && x->in[2] && x->in[2]->dtype != QV_DTYPE_F32))
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    return QV_OK;
}

/* Conv output shape into shape[]; p fully set. */
static int conv_shape(struct qv_exec *x, struct conv_params *p, const struct qv_tensor *X,
                      const struct qv_tensor *W, const struct qv_tensor *B, int64_t *shape,
                      struct qv_diag *d)
{
    bool one = true;
    int err = conv_common(x, p, X, W, d);

    if (err)
        return err;
    p->c_out = W->shape[0];
    if (W->shape[1] * p->group != X->shape[1])
        return qv_op_fail(x->node, d, QV_EINVAL, "W has %lld input channels, X %lld / group %lld",
                          (long long)W->shape[1], (long long)X->shape[1], (long long)p->group);
    if (p->c_out % p->group != 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "group does not divide output channels");
    if (B && (B->ndim != 1 || B->shape[0] != p->c_out))
        return qv_op_fail(x->node, d, QV_EINVAL, "B must be [%lld]", (long long)p->c_out);
    err = read_geometry(x, p, false, d);
    if (err)
        return err;
    p->rows = W->shape[1] * prod(p->kernel, p->sp);
    for (int i = 0; i < p->sp; i++)
        if (p->kernel[i] != 1 || p->stride[i] != 1 || p->pad_begin[i] != 0 ||
            p->out_sp[i] != p->in_sp[i])
            one = false;
    p->direct = one;
    if (p->rows > INT32_MAX || prod(p->out_sp, p->sp) > INT32_MAX)
        return qv_op_fail(x->node, d, QV_E2BIG, "too large for BLAS");
    shape[0] = X->shape[0];
    shape[1] = p->c_out;
    for (int i = 0; i < p->sp; i++)
        shape[2 + i] = p->out_sp[i];
    return QV_OK;
}

/* A Conv Winograd F(2x2, 3x3) computes: 2-D, 3x3, stride 1, no dilation,
 * one group, weights known at plan time, enough channels. */
static bool use_winograd(const struct qv_exec *x, const struct conv_params *p)
{
    return !x->plain_conv && p->sp == 2 && p->group == 1 && p->kernel[0] == 3 &&
           p->kernel[1] == 3 && p->stride[0] == 1 && p->stride[1] == 1 && p->dil[0] == 1 &&
           p->dil[1] == 1 && p->c_in >= WINO_MIN_CHANNELS && p->c_out >= WINO_MIN_CHANNELS &&
           x->in[1]->data != NULL && x->kdtype == QV_DTYPE_F32;
}

static int conv_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct conv_params *p = (void *)x->priv;
    int64_t shape[QV_MAX_DIMS];
    int err = float_inputs(x, d);

    if (!err)
        err = conv_shape(x, p, x->in[0], x->in[1], x->n_in > 2 ? x->in[2] : NULL, shape, d);
    if (err)
        return err;
    if (use_winograd(x, p)) {
        struct qv_wino *w = &p->wp;
        int64_t copies = x->threads > 1 ? x->threads : 1;
        if (copies > QV_TPOOL_MAX)
            copies = QV_TPOOL_MAX;
        memset(w, 0, sizeof(*w));
        w->c = p->c_in;
        w->k = p->c_out;
        w->h = p->in_sp[0];
        w->w = p->in_sp[1];
        w->oh = p->out_sp[0];
        w->ow = p->out_sp[1];
        w->pt = p->pad_begin[0];
        w->pl = p->pad_begin[1];
        qv_wino_setup(w);
        if (w->th * w->tw >= WINO_MIN_TILES &&
            (uint64_t)qv_wino_scratch_floats(w) * (uint64_t)copies <= QV_ONNX_MAX_ELEMS &&
            qv_wino_weight_floats(w) <= QV_ONNX_MAX_ELEMS) {
            p->wino = true;
            x->scratch_bytes = sizeof(float) * qv_wino_scratch_floats(w) * (size_t)copies;
            x->prep_bytes = sizeof(float) * qv_wino_weight_floats(w);
        }
    }
    if (!p->direct && !p->wino) {
        /* With several groups, each thread has a column buffer of its own. */
        int64_t copies = p->group > 1 ? (x->threads > 1 ? x->threads : 1) : 1;
        if (copies > QV_TPOOL_MAX)
            copies = QV_TPOOL_MAX;
        if (p->rows * prod(p->out_sp, p->sp) > QV_ONNX_MAX_ELEMS / copies)
            return qv_op_fail(x->node, d, QV_E2BIG, "column buffer too large");
        x->scratch_bytes = sizeof(float) * (size_t)(p->rows * prod(p->out_sp, p->sp) * copies);
    }
    if (!p->wino && p->group == 1 && !x->plain_conv && x->in[1]->data != NULL &&
        x->kdtype == QV_DTYPE_F32 && p->rows > 0 &&
        (p->rows <= QV_PK_KC || prod(p->out_sp, p->sp) <= PACKED_MAX_COLS_PER_CHANNEL * p->c_out) &&
        qv_pk_available() &&
        qv_pk_rows(p->c_out) <= QV_ONNX_MAX_ELEMS / (p->rows + prod(p->out_sp, p->sp))) {
        /* The packed weights, and C^T after the column buffer. */
        p->packed = true;
        x->prep_bytes = sizeof(float) * qv_pk_floats(p->c_out, p->rows);
        if (p->rows > QV_PK_KC)
            x->scratch_bytes +=
                sizeof(float) * (size_t)(qv_pk_rows(p->c_out) * prod(p->out_sp, p->sp));
        if (p->rows <= QV_PK_KC && !p->direct && p->sp >= 2 &&
            p->rows * prod(p->out_sp, p->sp) > 2 * ROW_BLOCK_FLOATS) {
            /* A column matrix larger than a core's L2: built and multiplied
             * a block of output rows at a time, each thread in a buffer of
             * its own. */
            int64_t inner = prod(p->out_sp + 1, p->sp - 1),
                    copies = x->threads > 1 ? x->threads : 1;
            if (copies > QV_TPOOL_MAX)
                copies = QV_TPOOL_MAX;
            p->row_block = ROW_BLOCK_FLOATS / (p->rows * inner);
            if (p->row_block < 1)
                p->row_block = 1;
            if (p->row_block * p->rows * inner <= QV_ONNX_MAX_ELEMS / copies)
                x->scratch_bytes =
                    sizeof(float) * (size_t)(p->row_block * p->rows * inner * copies);
            else
                p->row_block = 0;
        }
    }
    qv_out_set(x, 0, QV_DTYPE_F32, x->in[0]->ndim, shape);
    return QV_OK;
}

/* ---- ConvInteger / QLinearConv ---- */

/* Integer convolution in double: X and W minus their zero points, im2col and
 * dgemm, exact for any int8/uint8 model. ConvInteger writes the int32 sums;
 * QLinearConv adds its int32 bias and requantizes. Inputs:
 *   ConvInteger  x, w, x_zero_point?, w_zero_point?
 *   QLinearConv  x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
 *                y_zero_point, B? */
static int qconv_kernel(struct qv_exec *x)
{
    const struct conv_params *p = (const void *)x->priv;
    bool ql = x->n_in >= 8;
    const struct qv_tensor *X = x->in[0], *W = x->in[ql ? 3 : 1];
    const struct qv_tensor *xz = ql ? x->in[2] : (x->n_in > 2 ? x->in[2] : NULL);
    const struct qv_tensor *wz = ql ? x->in[5] : (x->n_in > 3 ? x->in[3] : NULL);
    const struct qv_tensor *B = ql && x->n_in > 8 ? x->in[8] : NULL;
    struct qv_tensor *o = x->out[0];
    int64_t batch = X->shape[0], in_n = prod(p->in_sp, p->sp), out_n = prod(p->out_sp, p->sp);
    int64_t cg = p->c_in / p->group, mg = p->c_out / p->group;
    double *xd = x->scratch, *wd = xd + cg * in_n, *col = wd + p->c_out * p->rows;
    double *yd = col + p->rows * out_n;
    double xzv = xz ? qv_tensor_get_f64(xz, 0) : 0;

    for (int64_t m = 0; m < p->c_out; m++) {
        double z = wz ? qv_tensor_get_f64(wz, qv_tensor_numel(wz) == 1 ? 0 : m) : 0;
        for (int64_t r = 0; r < p->rows; r++)
            wd[m * p->rows + r] = qv_tensor_get_f64(W, m * p->rows + r) - z;
    }
    for (int64_t b = 0; b < batch; b++)
        for (int64_t g = 0; g < p->group; g++) {
            for (int64_t i = 0; i < cg * in_n; i++)
                xd[i] = qv_tensor_get_f64(X, (b * p->c_in + g * cg) * in_n + i) - xzv;
            if (p->direct) {
                memcpy(col, xd, sizeof(double) * (size_t)(cg * in_n));
            } else {
                im2col_f64(p, xd, col, 0, p->rows);
            }
            if (p->rows > 0 && out_n > 0 && mg > 0)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mg, (int)out_n,
                            (int)p->rows, 1.0, wd + g * mg * p->rows, (int)p->rows, col, (int)out_n,
                            0.0, yd, (int)out_n);
            else
                memset(yd, 0, sizeof(double) * (size_t)(mg * out_n));
            for (int64_t m = 0; m < mg; m++) {
                int64_t oc = g * mg + m;
                for (int64_t j = 0; j < out_n; j++) {
                    int64_t idx = (b * p->c_out + oc) * out_n + j;
                    double v = yd[m * out_n + j];
                    if (!ql) {
                        ((int32_t *)o->data)[idx] = (int32_t)v;
                        continue;
                    }
                    if (B)
                        v += qv_tensor_get_f64(B, oc);
                    {
                        double sx = qv_tensor_get_f64(x->in[1], 0);
                        double sw =
                            qv_tensor_get_f64(x->in[4], qv_tensor_numel(x->in[4]) == 1 ? 0 : oc);
                        double sy = qv_tensor_get_f64(x->in[6], 0);
                        double zy = qv_tensor_get_f64(x->in[7], 0);
                        bool sgn = o->dtype == QV_DTYPE_I8;
                        double lo = sgn ? -128 : 0, hi = sgn ? 127 : 255;
                        v = nearbyint(v * sx * sw / sy) + zy;
                        v = isnan(v) ? 0 : (v < lo ? lo : (v > hi ? hi : v));
                        if (sgn)
                            ((int8_t *)o->data)[idx] = (int8_t)v;
                        else
                            ((uint8_t *)o->data)[idx] = (uint8_t)v;
                    }
                }
            }
        }
    return QV_OK;
}

static int qconv_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct conv_params *p = (void *)x->priv;
    bool ql = strcmp(x->node->op_type, "QLinearConv") == 0;
    const struct qv_tensor *X, *W;
    int64_t shape[QV_MAX_DIMS], in_n, out_n;
    int err = ql ? qv_op_arity(x, 8, 9, 1, 1, d) : qv_op_arity(x, 2, 4, 1, 1, d);

    if (err)
        return err;
    X = x->in[0];
    W = x->in[ql ? 3 : 1];
    if ((X->dtype != QV_DTYPE_U8 && X->dtype != QV_DTYPE_I8) ||
        (W->dtype != QV_DTYPE_U8 && W->dtype != QV_DTYPE_I8))
        return qv_op_fail(x->node, d, QV_ENOTSUP, "x and w must be int8 or uint8");
    if (ql && (x->in[7]->dtype != QV_DTYPE_U8 && x->in[7]->dtype != QV_DTYPE_I8))
        return qv_op_fail(x->node, d, QV_ENOTSUP, "y_zero_point must be int8 or uint8");
    if (ql && qv_numel(x->in[2]) != 1)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "x_zero_point must be a scalar");
    err = conv_shape(x, p, X, W, ql && x->n_in > 8 ? x->in[8] : NULL, shape, d);
    if (err)
        return err;
    in_n = prod(p->in_sp, p->sp);
    out_n = prod(p->out_sp, p->sp);
    x->scratch_bytes =
        sizeof(double) * (size_t)((p->c_in / p->group) * in_n + p->c_out * p->rows +
                                  p->rows * out_n + (p->c_out / p->group) * out_n + 1);
    if (p->direct && p->rows * out_n < (p->c_in / p->group) * in_n)
        return qv_op_fail(x->node, d, QV_EINVAL, "inconsistent 1x1 geometry");
    qv_out_set(x, 0, ql ? x->in[7]->dtype : QV_DTYPE_I32, X->ndim, shape);
    return QV_OK;
}

/* ---- ConvTranspose ---- */

/* Y[m, i*stride - pad + k*dil] += col[(m, k), i] for one group. */
static void col2im(const struct conv_params *p, const float *col, int64_t mg, float *yg)
{
    int64_t in_n = prod(p->in_sp, p->sp), out_n = prod(p->out_sp, p->sp);
    int64_t kn = prod(p->kernel, p->sp);
    int sp = p->sp;

    for (int64_t r = 0; r < mg * kn; r++) {
        int64_t m = r / kn, kr = r % kn, koff[SP_MAX], ii[SP_MAX] = {0};
        const float *src = col + r * in_n;
        float *ym = yg + m * out_n;
        for (int i = sp - 1; i >= 0; i--) {
            koff[i] = (kr % p->kernel[i]) * p->dil[i] - p->pad_begin[i];
            kr /= p->kernel[i];
        }
        for (int64_t j = 0; j < in_n; j++) {
            int64_t off = 0;
            bool inside = true;
            for (int i = 0; i < sp && inside; i++) {
                int64_t pos = ii[i] * p->stride[i] + koff[i];
                if (pos < 0 || pos >= p->out_sp[i])
                    inside = false;
                off = off * p->out_sp[i] + pos;
            }
            if (inside)
                ym[off] += src[j];
            for (int i = sp - 1; i >= 0; i--) {
                if (++ii[i] < p->in_sp[i])
                    break;
                ii[i] = 0;
            }
        }
    }
}

static int conv_transpose_f32(struct qv_exec *x)
{
    const struct conv_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data, *W = x->in[1]->data;
    const float *B = x->n_in > 2 && x->in[2] ? x->in[2]->data : NULL;
    float *Y = x->out[0]->data;
    int64_t batch = x->in[0]->shape[0];
    int64_t in_n = prod(p->in_sp, p->sp), out_n = prod(p->out_sp, p->sp);
    int64_t kn = prod(p->kernel, p->sp);
    int64_t cg = p->c_in / p->group, mg = p->c_out / p->group;
    float *col = x->scratch;

    memset(Y, 0, x->out[0]->nbytes);
    for (int64_t b = 0; b < batch && in_n > 0 && mg * kn > 0; b++)
        for (int64_t g = 0; g < p->group; g++) {
            const float *xg = X + (b * p->c_in + g * cg) * in_n;
            float *yg = Y + (b * p->c_out + g * mg) * out_n;
            /* col [mg*kn, in_n] = W_g^T [mg*kn, cg] x X_g [cg, in_n]; W_g is [cg, mg*kn]. */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(mg * kn), (int)in_n, (int)cg,
                        1.0f, W + g * cg * mg * kn, (int)(mg * kn), xg, (int)in_n, 0.0f, col,
                        (int)in_n);
            col2im(p, col, mg, yg);
        }
    if (B)
        for (int64_t b = 0; b < batch; b++)
            for (int64_t m = 0; m < p->c_out; m++) {
                float *y = Y + (b * p->c_out + m) * out_n;
                for (int64_t j = 0; j < out_n; j++)
                    y[j] += B[m];
            }
    return QV_OK;
}

static int conv_transpose_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct conv_params *p = (void *)x->priv;
    const struct qv_tensor *X, *W, *B;
    const char *auto_pad = qv_attr_string(x->node, "auto_pad", "NOTSET");
    const int64_t *op, *os;
    int64_t shape[QV_MAX_DIMS];
    int nop, nos, err = float_inputs(x, d);

    if (err)
        return err;
    X = x->in[0];
    W = x->in[1];
    B = x->n_in > 2 ? x->in[2] : NULL;
    err = conv_common(x, p, X, W, d);
    if (err)
        return err;
    if (W->shape[0] != X->shape[1])
        return qv_op_fail(x->node, d, QV_EINVAL, "W has %lld input channels, X %lld",
                          (long long)W->shape[0], (long long)X->shape[1]);
    p->c_out = W->shape[1] * p->group;
    if (B && (B->ndim != 1 || B->shape[0] != p->c_out))
        return qv_op_fail(x->node, d, QV_EINVAL, "B must be [%lld]", (long long)p->c_out);
    err = read_geometry(x, p, true, d);
    if (err)
        return err;
    op = qv_attr_ints(x->node, "output_padding", &nop);
    os = qv_attr_ints(x->node, "output_shape", &nos);
    if ((op && nop != p->sp) || (os && nos != p->sp && nos != p->sp + 2))
        return qv_op_fail(x->node, d, QV_EINVAL, "output_padding/output_shape length");
    for (int i = 0; i < p->sp; i++) {
        int64_t ek = p->dil[i] * (p->kernel[i] - 1) + 1;
        int64_t opad = op ? op[i] : 0;
        if (opad < 0 || opad > QV_ONNX_MAX_ELEMS || p->in_sp[i] < 1 ||
            (os && (os[nos == p->sp ? i : i + 2] < 0 ||
                    os[nos == p->sp ? i : i + 2] > QV_ONNX_MAX_ELEMS)))
            return qv_op_fail(x->node, d, QV_EINVAL, "bad output_padding or output_shape");
        if (p->stride[i] > QV_ONNX_MAX_ELEMS / p->in_sp[i])
            return qv_op_fail(x->node, d, QV_E2BIG, "strides too large");
        int64_t pe = p->out_sp[i]; /* the end pad read_geometry parked here */
        int64_t full = p->stride[i] * (p->in_sp[i] - 1) + opad + ek;
        bool same = strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0;
        if (os || same) {
            int64_t want = os ? os[nos == p->sp ? i : i + 2] : p->in_sp[i] * p->stride[i];
            int64_t total = full - want;
            if (total < 0)
                total = 0;
            if (strcmp(auto_pad, "SAME_UPPER") == 0) {
                p->pad_begin[i] = total / 2;
            } else {
                p->pad_begin[i] = total - total / 2;
            }
            p->out_sp[i] = want;
        } else {
            if (strcmp(auto_pad, "VALID") == 0)
                p->pad_begin[i] = pe = 0;
            p->out_sp[i] = full - p->pad_begin[i] - pe;
        }
        if (p->out_sp[i] < 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "negative output size");
    }
    p->rows = W->shape[1] * prod(p->kernel, p->sp);
    x->scratch_bytes = sizeof(float) * (size_t)(p->rows * prod(p->in_sp, p->sp) + 1);
    shape[0] = X->shape[0];
    shape[1] = p->c_out;
    for (int i = 0; i < p->sp; i++)
        shape[2 + i] = p->out_sp[i];
    qv_out_set(x, 0, QV_DTYPE_F32, X->ndim, shape);
    return QV_OK;
}

const struct qv_op qv_op_conv = {
    .name = "Conv",
    .since_version = 1,
    .infer_shape = conv_infer,
    .prepare = conv_prepare,
    .kernels = {[QV_DTYPE_F32] = conv_f32},
};

const struct qv_op qv_op_conv_transpose = {
    .name = "ConvTranspose",
    .since_version = 1,
    .infer_shape = conv_transpose_infer,
    .kernels = {[QV_DTYPE_F32] = conv_transpose_f32},
};

const struct qv_op qv_op_conv_integer = {
    .name = "ConvInteger",
    .since_version = 10,
    .infer_shape = qconv_infer,
    .kernels = {[QV_DTYPE_U8] = qconv_kernel, [QV_DTYPE_I8] = qconv_kernel},
};

const struct qv_op qv_op_q_linear_conv = {
    .name = "QLinearConv",
    .since_version = 10,
    .infer_shape = qconv_infer,
    .kernels = {[QV_DTYPE_U8] = qconv_kernel, [QV_DTYPE_I8] = qconv_kernel},
};
