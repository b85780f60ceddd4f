/* SPDX-License-Identifier: MIT
 *
 * Winograd F(2x2, 3x3) convolution; see conv_winograd.h. With
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * a 2x2 output block is A^T [(G g G^T) .* (B^T d B)] A for the 4x4 input
 * patch d whose top-left corner is the block's top-left output position
 * minus the padding. The element-wise product, summed over input channels,
 * is 16 matrix products, one per position e of the 4x4 grid.
 */
#include "conv_winograd.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Bytes of V and M one block may take: about the size of a core's L2, or
 * up to four times that when the transformed weights are large (OpenBLAS
 * packs them again for every block). */
#define BLOCK_BYTES ((int64_t)1 << 20)

void qv_wino_setup(struct qv_wino *p)
{
    int64_t b;

    p->th = (p->oh + 1) / 2;
    p->tw = (p->ow + 1) / 2;
    int64_t budget = 16 * (int64_t)sizeof(float) * p->k * p->c / 2;

    budget =
        budget < BLOCK_BYTES ? BLOCK_BYTES : (budget > 4 * BLOCK_BYTES ? 4 * BLOCK_BYTES : budget);
    b = budget / (16 * (int64_t)sizeof(float)) / (p->c + p->k);
    if (b < 16)
        b = 16;
    if (b > p->th * p->tw)
        b = p->th * p->tw;
    p->block = b < 1 ? 1 : b;
}

size_t qv_wino_weight_floats(const struct qv_wino *p)
{
    return (size_t)(16 * p->k * p->c);
}

size_t qv_wino_scratch_floats(const struct qv_wino *p)
{
    return (size_t)(16 * (p->c + p->k) * p->block + 8 * (2 * p->tw + 2));
}

void qv_wino_weights(const struct qv_wino *p, const float *W, float *U)
{
    for (int64_t m = 0; m < p->k; m++)
        for (int64_t c = 0; c < p->c; c++) {
            const float *g = W + (m * p->c + c) * 9;
            double t[4][3], u[4][4];
            /* t = G g (4x3), then u = t G^T (4x4), in double, rounded once. */
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5 * ((double)g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5 * ((double)g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                u[i][0] = t[i][0];
                u[i][1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            for (int e = 0; e < 16; e++)
                U[(e * p->k + m) * p->c + c] = (float)u[e / 4][e % 4];
        }
}

/* V[e][c][j] for tiles [t0, t0 + nb). Tile row by tile row: the four input
 * rows a tile row reads are copied, zero-padded, into 'rows' (4 x (2 tw + 2)),
 * so that the loops across the row's tiles have no bounds to check; rows
 * 4..7 of 'rows' hold B^T d for the whole tile row. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void input_transform(const struct qv_wino *p, const float *X, float *V, int64_t t0,
                                   int64_t nb, float *rows)
{
    int64_t rw = 2 * p->tw + 2, last = t0 + nb;
    size_t es = (size_t)(p->c * nb); /* stride between positions e */

    for (int64_t c = 0; c < p->c; c++) {
        const float *xc = X + c * p->h * p->w;
        for (int64_t ty = t0 / p->tw; ty * p->tw < last; ty++) {
            int64_t a = ty * p->tw < t0 ? t0 - ty * p->tw : 0;
            int64_t e = (ty + 1) * p->tw > last ? last - ty * p->tw : p->tw;
            int64_t cl = p->pl < rw ? p->pl : rw; /* columns of left padding */
            int64_t cn = p->w < rw - cl ? p->w : rw - cl;
            const float *r0 = rows, *r1 = rows + rw, *r2 = rows + 2 * rw, *r3 = rows + 3 * rw;
            float *v = V + c * nb + (ty * p->tw + a - t0);
            for (int i = 0; i < 4; i++) {
                int64_t r = 2 * ty - p->pt + i;
                float *row = rows + i * rw;
                if (r < 0 || r >= p->h || cn <= 0) {
                    memset(row, 0, sizeof(float) * (size_t)rw);
                    continue;
                }
                memset(row, 0, sizeof(float) * (size_t)cl);
                memcpy(row + cl, xc + r * p->w, sizeof(float) * (size_t)cn);
                memset(row + cl + cn, 0, sizeof(float) * (size_t)(rw - cl - cn));
            }
            /* s = B^T d, whole rows at a time, into rows 4..7 */
            {
                float *s0 = rows + 4 * rw, *s1 = s0 + rw, *s2 = s1 + rw, *s3 = s2 + rw;
                for (int64_t q = 0; q < rw; q++) {
                    s0[q] = r0[q] - r2[q];
                    s1[q] = r1[q] + r2[q];
                    s2[q] = r2[q] - r1[q];
                    s3[q] = r1[q] - r3[q];
                }
                /* V = s B, one position e per pass */
                for (int i = 0; i < 4; i++) {
                    const float *si = s0 + i * rw + 2 * a;
                    float *v0 = v + (size_t)(4 * i) * es, *v1 = v0 + es, *v2 = v1 + es;
                    float *v3 = v2 + es;
                    int64_t n = e - a;
                    for (int64_t j = 0; j < n; j++)
                        v0[j] = si[2 * j] - si[2 * j + 2];
                    for (int64_t j = 0; j < n; j++)
                        v1[j] = si[2 * j + 1] + si[2 * j + 2];
                    for (int64_t j = 0; j < n; j++)
                        v2[j] = si[2 * j + 2] - si[2 * j + 1];
                    for (int64_t j = 0; j < n; j++)
                        v3[j] = si[2 * j + 1] - si[2 * j + 3];
                }
            }
        }
    }
}

ALWAYS_INLINE float act(int kind, float lo, float hi, float v)
{
    if (kind == QV_CONV_ACT_RELU)
        return v > 0 ? v : 0.0f;
    if (kind == QV_CONV_ACT_CLIP) {
        v = v < lo ? lo : v;
        return v > hi ? hi : v;
    }
    return v;
}

/* Y's 2x2 blocks of output channels [m0, m1) for tiles [t0, t0 + nb) from
 * M[e][m - m0][j], tile row by tile row: s = A^T a for the row's tiles into
 * eight rows of 'tmp' (each a loop across tiles), then y = s A. */
ALWAYS_INLINE void output_transform(const struct qv_wino *p, const float *M, const float *B,
                                    float *Y, int64_t t0, int64_t nb, int64_t m0, int64_t m1,
                                    float *tmp)
{
    size_t es = (size_t)((m1 - m0) * nb);
    int64_t last = t0 + nb, tw = p->tw;
    int kind = p->act;
    float lo = p->act_lo, hi = p->act_hi;
    float *s0[4] = {tmp, tmp + tw, tmp + 2 * tw, tmp + 3 * tw};
    float *s1[4] = {tmp + 4 * tw, tmp + 5 * tw, tmp + 6 * tw, tmp + 7 * tw};

    for (int64_t m = m0; m < m1; m++) {
        const float *mm = M + (m - m0) * nb;
        float *ym = Y + m * p->oh * p->ow;
        float bias = B ? B[m] : 0.0f;
        for (int64_t ty = t0 / tw; ty * tw < last; ty++) {
            int64_t a = ty * tw < t0 ? t0 - ty * tw : 0;
            int64_t e = (ty + 1) * tw > last ? last - ty * tw : tw;
            int64_t n = e - a;
            /* Tiles [a, full) write two columns; a last odd column, one. */
            int64_t full = p->ow % 2 && e == tw ? e - 1 : e;
            const float *g = mm + (ty * tw + a - t0);
            float *y0 = ym + 2 * ty * p->ow, *y1 = y0 + p->ow;
            for (int c = 0; c < 4; c++) {
                const float *g0 = g + (size_t)c * es, *g1 = g0 + 4 * es, *g2 = g1 + 4 * es;
                const float *g3 = g2 + 4 * es;
                float *u = s0[c], *v = s1[c];
                for (int64_t j = 0; j < n; j++) {
                    u[j] = g0[j] + g1[j] + g2[j];
                    v[j] = g1[j] - g2[j] - g3[j];
                }
            }
            for (int r = 0; r < 2; r++) {
                const float *q0 = r ? s1[0] : s0[0], *q1 = r ? s1[1] : s0[1];
                const float *q2 = r ? s1[2] : s0[2], *q3 = r ? s1[3] : s0[3];
                float *y = r ? y1 : y0;
                if (r == 1 && 2 * ty + 1 >= p->oh)
                    break;
                for (int64_t j = 0; j < full - a; j++) {
                    y[2 * (a + j)] = act(kind, lo, hi, q0[j] + q1[j] + q2[j] + bias);
                    y[2 * (a + j) + 1] = act(kind, lo, hi, q1[j] - q2[j] - q3[j] + bias);
                }
                if (full < e)
                    y[2 * full] = act(kind, lo, hi, q0[n - 1] + q1[n - 1] + q2[n - 1] + bias);
            }
        }
    }
}

/* The transforms compiled for the baseline and, on x86-64, for AVX2 too,
 * chosen by the CPU at run time (the same arithmetic, in wider registers). */
static void input_generic(const struct qv_wino *p, const float *X, float *V, int64_t t0, int64_t nb,
                          float *rows)
{
    input_transform(p, X, V, t0, nb, rows);
}

static void output_generic(const struct qv_wino *p, const float *M, const float *B, float *Y,
                           int64_t t0, int64_t nb, int64_t m0, int64_t m1, float *tmp)
{
    output_transform(p, M, B, Y, t0, nb, m0, m1, tmp);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_CLONES 1
__attribute__((target("avx2"))) static void
input_avx2(const struct qv_wino *p, const float *X, float *V, int64_t t0, int64_t nb, float *rows)
{
    input_transform(p, X, V, t0, nb, rows);
}

__attribute__((target("avx2"))) static void output_avx2(const struct qv_wino *p, const float *M,
                                                        const float *B, float *Y, int64_t t0,
                                                        int64_t nb, int64_t m0, int64_t m1,
                                                        float *tmp)
{
    output_transform(p, M, B, Y, t0, nb, m0, m1, tmp);
}
#endif

void qv_wino_run(const struct qv_wino *p, const float *U, const float *B, const float *X, float *Y,
                 float *scratch, int64_t t0, int64_t t1, int64_t m0, int64_t m1)
{
    float *V = scratch, *M = scratch + 16 * p->c * p->block;
    float *rows = M + 16 * p->k * p->block;
    int64_t mk = m1 - m0;
#ifdef HAVE_AVX2_CLONES
    bool avx2 = __builtin_cpu_supports("avx2");
#else
    bool avx2 = false;
#define input_avx2 input_generic
#define output_avx2 output_generic
#endif

    for (int64_t b = t0; b < t1 && mk > 0; b += p->block) {
        int64_t nb = t1 - b < p->block ? t1 - b : p->block;
        if (avx2)
            input_avx2(p, X, V, b, nb, rows);
        else
            input_generic(p, X, V, b, nb, rows);
        for (int e = 0; e < 16; e++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mk, (int)nb, (int)p->c,
                        1.0f, U + (size_t)e * (size_t)(p->k * p->c) + (size_t)(m0 * p->c),
                        (int)p->c, V + (size_t)e * (size_t)(p->c * nb), (int)nb, 0.0f,
                        M + (size_t)e * (size_t)(mk * nb), (int)nb);
        if (avx2)
            output_avx2(p, M, B, Y, b, nb, m0, m1, rows);
        else
            output_generic(p, M, B, Y, b, nb, m0, m1, rows);
    }
}
