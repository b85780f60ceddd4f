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

#include "sgemm_packed.h"

#include <cblas.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Bytes of V and M one block may take: about the size of a core's L2, or
 * up to four times that when the transformed weights are large (OpenBLAS
 * packs them again for every block). */
#define BLOCK_BYTES ((int64_t)1 << 20)
#define PANEL QV_PK_MR /* tiles per panel of V (QV_WINO_AVX512) */

static int64_t round_up(int64_t v, int64_t m)
{
    return (v + m - 1) / m * m;
}

/* Floats of one row buffer: an input row segment plus room for 32-float
 * vector reads past its end. */
static int64_t row_floats(const struct qv_wino *p)
{
    return round_up(2 * p->tw + 2 + 2 * PANEL + 2, 16);
}

void qv_wino_set_isa(struct qv_wino *p, int isa)
{
    int64_t tiles = p->th * p->tw;

    p->isa = isa == QV_WINO_AVX512 && qv_pk_available() ? QV_WINO_AVX512 : QV_WINO_BLAS;
    p->ldb = p->block;
    if (p->isa == QV_WINO_AVX512) {
        /* Whole panels, so that blocks split a run at panel boundaries. */
        if (p->block < tiles)
            p->block = p->block < PANEL ? PANEL : p->block / PANEL * PANEL;
        if (p->block > tiles)
            p->block = tiles;
        p->ldb = round_up(p->block, PANEL);
    }
}

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
    qv_wino_set_isa(p, QV_WINO_AVX512);
}

size_t qv_wino_weight_floats(const struct qv_wino *p)
{
    return (size_t)(16 * p->k * p->c);
}

size_t qv_wino_scratch_floats(const struct qv_wino *p)
{
    return (size_t)(16 * (p->c + p->k) * p->ldb + 8 * row_floats(p) + 16);
}

float *qv_wino_v(const struct qv_wino *p, float *scratch)
{
    (void)p;
    return scratch;
}

float *qv_wino_m(const struct qv_wino *p, float *scratch)
{
    return scratch + 16 * p->c * p->ldb;
}

float *qv_wino_rows(const struct qv_wino *p, float *scratch)
{
    return scratch + 16 * (p->c + p->k) * p->ldb;
}

int64_t qv_wino_blocks(const struct qv_wino *p, int64_t n)
{
    return n <= 0 ? 0 : (n + p->block - 1) / p->block;
}

void qv_wino_block(const struct qv_wino *p, int64_t n, int64_t b, int64_t *off, int64_t *cnt)
{
    int64_t nbk = qv_wino_blocks(p, n), panels = (n + PANEL - 1) / PANEL;
    int64_t a = panels * b / nbk * PANEL, e = panels * (b + 1) / nbk * PANEL;

    if (p->isa != QV_WINO_AVX512) {
        a = n * b / nbk;
        e = n * (b + 1) / nbk;
    }
    *off = a;
    *cnt = (e < n ? e : n) - a;
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
            for (int e = 0; e < 16; e++) {
                size_t at = p->isa == QV_WINO_AVX512 ? (size_t)((e * p->c + c) * p->k + m)
                                                     : (size_t)((e * p->k + m) * p->c + c);
                U[at] = (float)u[e / 4][e % 4];
            }
        }
}

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* The four input rows of tile row ty of channel xc, zero-padded, into rows
 * 0..3 of 'rows' (each rw floats), and s = B^T d for the whole tile row into
 * rows 4..7, so that the loops across the row's tiles have no bounds to
 * check. */
ALWAYS_INLINE void input_rows(const struct qv_wino *p, const float *xc, int64_t ty, float *rows,
                              int64_t rw, bool with_s)
{
    int64_t cl = p->pl < rw ? p->pl : rw; /* columns of left padding */
    int64_t cn = p->w < rw - cl ? p->w : rw - cl;
    const float *restrict r0 = rows, *restrict r1 = rows + rw, *restrict r2 = rows + 2 * rw;
    const float *restrict r3 = rows + 3 * rw;
    float *restrict s0 = rows + 4 * rw, *restrict s1 = s0 + rw, *restrict s2 = s1 + rw;
    float *restrict s3 = s2 + rw;

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
    if (!with_s)
        return;
    for (int64_t q = 0; q < rw; q++) {
        s0[q] = r0[q] - r2[q];
        s1[q] = r1[q] + r2[q];
        s2[q] = r2[q] - r1[q];
        s3[q] = r1[q] - r3[q];
    }
}

/* V[e][c][j] (leading dimension p->ldb) for tiles [t0, t0 + nb) of input
 * channels [c0, c1), tile row by tile row: V = s B, one position e per
 * pass. */
ALWAYS_INLINE void input_transform(const struct qv_wino *p, const float *X, float *V, int64_t t0,
                                   int64_t nb, int64_t c0, int64_t c1, float *rows)
{
    int64_t rw = 2 * p->tw + 2, last = t0 + nb;
    size_t es = (size_t)(p->c * p->ldb); /* stride between positions e */

    for (int64_t c = c0; c < c1; c++) {
        const float *xc = X + c * p->h * p->w;
        for (int64_t ty = t0 / p->tw; ty * p->tw < last; ty++) {
            int64_t a = ty * p->tw < t0 ? t0 - ty * p->tw : 0;
            int64_t e = (ty + 1) * p->tw > last ? last - ty * p->tw : p->tw;
            const float *s0 = rows + 4 * rw;
            float *v = V + c * p->ldb + (ty * p->tw + a - t0);
            input_rows(p, xc, ty, rows, rw, true);
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

/* s = A^T a for the n tiles of one tile row from g (M's row of channel m at
 * the row's first tile; positions e es apart) into eight rows of 'tmp'. */
ALWAYS_INLINE void output_rows(const float *g, size_t es, int64_t n, float *const s0[4],
                               float *const s1[4])
{
    for (int c = 0; c < 4; c++) {
        const float *g0 = g + (size_t)c * es, *g1 = g0 + 4 * es, *g2 = g1 + 4 * es;
        const float *g3 = g2 + 4 * es;
        float *u = s0[c], *v = s1[c];
        for (int64_t j = 0; j < n; j++) {
            u[j] = g0[j] + g1[j] + g2[j];
            v[j] = g1[j] - g2[j] - g3[j];
        }
    }
}

/* Y's 2x2 blocks of output channels [m0, m1) for tiles [t0, t0 + nb) from
 * M[e][m][j] (leading dimension p->ldb), tile row by tile row: s = A^T a
 * for the row's tiles, then y = s A, plus the bias and the residual, then
 * the activation. */
ALWAYS_INLINE void output_transform(const struct qv_wino *p, const float *M, const float *B,
                                    const float *R, float *Y, int64_t t0, int64_t nb, int64_t m0,
                                    int64_t m1, float *tmp)
{
    size_t es = (size_t)(p->k * p->ldb);
    int64_t last = t0 + nb, tw = p->tw, plane = p->oh * p->ow;
    int kind = p->act;
    float lo = p->act_lo, hi = p->act_hi;
    float *const s0[4] = {tmp, tmp + tw, tmp + 2 * tw, tmp + 3 * tw};
    float *const s1[4] = {tmp + 4 * tw, tmp + 5 * tw, tmp + 6 * tw, tmp + 7 * tw};

    for (int64_t m = m0; m < m1; m++) {
        const float *mm = M + m * p->ldb;
        float *ym = Y + m * plane;
        const float *rm = R ? R + m * plane : NULL;
        float bias = B ? B[m] : 0.0f;
        for (int64_t ty = t0 / tw; ty * tw < last; ty++) {
            int64_t a = ty * tw < t0 ? t0 - ty * tw : 0;
            int64_t e = (ty + 1) * tw > last ? last - ty * tw : tw;
            int64_t n = e - a;
            /* Tiles [a, full) write two columns; a last odd column, one. */
            int64_t full = p->ow % 2 && e == tw ? e - 1 : e;
            output_rows(mm + (ty * tw + a - t0), es, n, s0, s1);
            for (int r = 0; r < 2; r++) {
                const float *q0 = r ? s1[0] : s0[0], *q1 = r ? s1[1] : s0[1];
                const float *q2 = r ? s1[2] : s0[2], *q3 = r ? s1[3] : s0[3];
                int64_t row = (2 * ty + r) * p->ow;
                float *y = ym + row;
                if (r == 1 && 2 * ty + 1 >= p->oh)
                    break;
                if (rm) {
                    const float *res = rm + row;
                    for (int64_t j = 0; j < full - a; j++) {
                        int64_t k = 2 * (a + j);
                        y[k] = act(kind, lo, hi, q0[j] + q1[j] + q2[j] + bias + res[k]);
                        y[k + 1] = act(kind, lo, hi, q1[j] - q2[j] - q3[j] + bias + res[k + 1]);
                    }
                    if (full < e)
                        y[2 * full] = act(kind, lo, hi,
                                          q0[n - 1] + q1[n - 1] + q2[n - 1] + bias + res[2 * full]);
                    continue;
                }
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
                          int64_t c0, int64_t c1, float *rows)
{
    input_transform(p, X, V, t0, nb, c0, c1, rows);
}

static void output_generic(const struct qv_wino *p, const float *M, const float *B, const float *R,
                           float *Y, int64_t t0, int64_t nb, int64_t m0, int64_t m1, float *tmp)
{
    output_transform(p, M, B, R, Y, t0, nb, m0, m1, tmp);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_CLONES 1
__attribute__((target("avx2"))) static void input_avx2(const struct qv_wino *p, const float *X,
                                                       float *V, int64_t t0, int64_t nb, int64_t c0,
                                                       int64_t c1, float *rows)
{
    input_transform(p, X, V, t0, nb, c0, c1, rows);
}

__attribute__((target("avx2"))) static void output_avx2(const struct qv_wino *p, const float *M,
                                                        const float *B, const float *R, float *Y,
                                                        int64_t t0, int64_t nb, int64_t m0,
                                                        int64_t m1, float *tmp)
{
    output_transform(p, M, B, R, Y, t0, nb, m0, m1, tmp);
}

#define T512 __attribute__((target("avx512f")))

static inline __mmask16 mask_n(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
}

/* s = B^T d for 16 columns of a tile row from column q (of the padded
 * input) on: src[i] the input row i of the tile row shifted by the left
 * padding, or NULL for a padding row; masked loads read zeros for the
 * padding columns. */
T512 static inline __attribute__((always_inline)) void
s_cols512(const float *const src[4], int64_t q, int64_t pl, int64_t w, __m512 s[4])
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i col = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(q - pl)));
    __mmask16 k = _mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()) &
                  _mm512_cmplt_epi32_mask(col, _mm512_set1_epi32((int)w));
    __m512 a[4];

    for (int i = 0; i < 4; i++)
        a[i] = src[i] ? _mm512_maskz_loadu_ps(k, src[i] + q) : _mm512_setzero_ps();
    s[0] = _mm512_sub_ps(a[0], a[2]);
    s[1] = _mm512_add_ps(a[1], a[2]);
    s[2] = _mm512_sub_ps(a[2], a[1]);
    s[3] = _mm512_sub_ps(a[1], a[3]);
}

/* V = s B for n tiles of one tile row from tile j0 into the panel layout:
 * v the address of position 0 for tile j0, consecutive tiles consecutive
 * floats (the caller splits a row at panel boundaries), positions es apart.
 * 16 tiles at a time, all in registers: s for 48 columns, its even and odd
 * columns separated by two-source permutes. */
T512 static inline __attribute__((always_inline)) void input_seg512(const struct qv_wino *p,
                                                                    const float *const src[4],
                                                                    int64_t j0, float *v, size_t es,
                                                                    int64_t n)
{
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);

    for (int64_t j = 0; j < n; j += 16) {
        int64_t q = 2 * (j0 + j);
        __mmask16 k = mask_n(n - j);
        __m512 s0[4], s1[4], s2[4];
        s_cols512(src, q, p->pl, p->w, s0);
        s_cols512(src, q + 16, p->pl, p->w, s1);
        s_cols512(src, q + 32, p->pl, p->w, s2);
        for (int i = 0; i < 4; i++) {
            __m512 a = s0[i], b = s1[i];
            __m512 c = _mm512_castsi512_ps(
                _mm512_alignr_epi32(_mm512_castps_si512(b), _mm512_castps_si512(a), 2));
            __m512 d = _mm512_castsi512_ps(
                _mm512_alignr_epi32(_mm512_castps_si512(s2[i]), _mm512_castps_si512(b), 2));
            __m512 e0 = _mm512_permutex2var_ps(a, ev, b), o0 = _mm512_permutex2var_ps(a, od, b);
            __m512 e1 = _mm512_permutex2var_ps(c, ev, d), o1 = _mm512_permutex2var_ps(c, od, d);
            float *vi = v + (size_t)(4 * i) * es + j;
            _mm512_mask_storeu_ps(vi, k, _mm512_sub_ps(e0, e1));
            _mm512_mask_storeu_ps(vi + es, k, _mm512_add_ps(o0, e1));
            _mm512_mask_storeu_ps(vi + 2 * es, k, _mm512_sub_ps(e1, o0));
            _mm512_mask_storeu_ps(vi + 3 * es, k, _mm512_sub_ps(o0, o1));
        }
    }
}

/* input_transform for QV_WINO_AVX512: V[e][panel][c][32 tiles], the last
 * panel's unused lanes zero. */
T512 static void input_avx512(const struct qv_wino *p, const float *X, float *V, int64_t t0,
                              int64_t nb, int64_t c0, int64_t c1, float *rows)
{
    int64_t last = t0 + nb;
    size_t es = (size_t)(p->c * p->ldb), ps = (size_t)(p->c * PANEL);
    int64_t tail = nb % PANEL;

    (void)rows;
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = X + c * p->h * p->w;
        if (tail)
            for (int e = 0; e < 16; e++) {
                float *z = V + e * es + (size_t)(nb / PANEL) * ps + (size_t)(c * PANEL);
                _mm512_mask_storeu_ps(z, (__mmask16)~mask_n(tail), _mm512_setzero_ps());
                _mm512_mask_storeu_ps(z + 16, (__mmask16)~mask_n(tail - 16), _mm512_setzero_ps());
            }
        for (int64_t ty = t0 / p->tw; ty * p->tw < last; ty++) {
            int64_t a = ty * p->tw < t0 ? t0 - ty * p->tw : 0;
            int64_t e = (ty + 1) * p->tw > last ? last - ty * p->tw : p->tw;
            const float *src[4];
            for (int i = 0; i < 4; i++) {
                int64_t r = 2 * ty - p->pt + i;
                src[i] = r >= 0 && r < p->h ? xc + r * p->w - p->pl : NULL;
            }
            /* The row's tiles [a, e), split where a panel ends. */
            for (int64_t j = a; j < e;) {
                int64_t t = ty * p->tw + j - t0; /* tile within the block */
                int64_t lane = t % PANEL, n = e - j < PANEL - lane ? e - j : PANEL - lane;
                input_seg512(p, src, j, V + (size_t)(t / PANEL) * ps + (size_t)(c * PANEL + lane),
                             es, n);
                j += n;
            }
        }
    }
}

/* output_transform for QV_WINO_AVX512 (M's layout is the same), 16 tiles
 * at a time in registers: s = A^T a from the 16 positions, the two output
 * columns of each row interleaved by two-source permutes, then the bias,
 * the residual and the activation, with the sums in the order of
 * output_transform and the comparisons of act(). */
T512 static void output_avx512(const struct qv_wino *p, const float *M, const float *B,
                               const float *R, float *Y, int64_t t0, int64_t nb, int64_t m0,
                               int64_t m1, float *tmp)
{
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ih =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    size_t es = (size_t)(p->k * p->ldb);
    int64_t last = t0 + nb, tw = p->tw, plane = p->oh * p->ow;
    int kind = p->act;
    __m512 vlo = _mm512_set1_ps(p->act_lo), vhi = _mm512_set1_ps(p->act_hi);
    __m512 zero = _mm512_setzero_ps();

    (void)tmp;
    for (int64_t m = m0; m < m1; m++) {
        const float *mm = M + m * p->ldb;
        float *ym = Y + m * plane;
        const float *rm = R ? R + m * plane : NULL;
        __m512 bias = _mm512_set1_ps(B ? B[m] : 0.0f);
        for (int64_t ty = t0 / tw; ty * tw < last; ty++) {
            int64_t a = ty * tw < t0 ? t0 - ty * tw : 0;
            int64_t e = (ty + 1) * tw > last ? last - ty * tw : tw;
            int64_t n = e - a;
            /* Output columns this row segment writes (a last odd column: one). */
            int64_t cols = 2 * n < p->ow - 2 * a ? 2 * n : p->ow - 2 * a;
            const float *g = mm + (ty * tw + a - t0);
            for (int64_t j = 0; j < n; j += 16) {
                __mmask16 kt = mask_n(n - j);
                __m512 s[2][4];
                for (int c = 0; c < 4; c++) {
                    const float *gc = g + j + (size_t)c * es;
                    __m512 g0 = _mm512_maskz_loadu_ps(kt, gc);
                    __m512 g1 = _mm512_maskz_loadu_ps(kt, gc + 4 * es);
                    __m512 g2 = _mm512_maskz_loadu_ps(kt, gc + 8 * es);
                    __m512 g3 = _mm512_maskz_loadu_ps(kt, gc + 12 * es);
                    s[0][c] = _mm512_add_ps(_mm512_add_ps(g0, g1), g2);
                    s[1][c] = _mm512_sub_ps(_mm512_sub_ps(g1, g2), g3);
                }
                for (int r = 0; r < 2 && 2 * ty + r < p->oh; r++) {
                    int64_t row = (2 * ty + r) * p->ow + 2 * a + 2 * j;
                    __m512 ev = _mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]);
                    __m512 od = _mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]);
                    __m512 v[2] = {_mm512_permutex2var_ps(ev, il, od),
                                   _mm512_permutex2var_ps(ev, ih, od)};
                    for (int h = 0; h < 2; h++) {
                        int64_t at = 2 * j + 16 * h;
                        __mmask16 k = mask_n(cols - at);
                        __m512 w = _mm512_add_ps(v[h], bias);
                        if (k == 0)
                            break;
                        if (rm)
                            w = _mm512_add_ps(w, _mm512_maskz_loadu_ps(k, rm + row + 16 * h));
                        if (kind == QV_CONV_ACT_RELU) {
                            w = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(w, zero, _CMP_GT_OQ), w);
                        } else if (kind == QV_CONV_ACT_CLIP) {
                            w = _mm512_mask_mov_ps(w, _mm512_cmp_ps_mask(w, vlo, _CMP_LT_OQ), vlo);
                            w = _mm512_mask_mov_ps(w, _mm512_cmp_ps_mask(w, vhi, _CMP_GT_OQ), vhi);
                        }
                        _mm512_mask_storeu_ps(ym + row + 16 * h, k, w);
                    }
                }
            }
        }
    }
}
#endif

void qv_wino_input(const struct qv_wino *p, const float *X, float *V, int64_t t0, int64_t nb,
                   int64_t c0, int64_t c1, float *rows)
{
#ifdef HAVE_X86_CLONES
    if (p->isa == QV_WINO_AVX512)
        input_avx512(p, X, V, t0, nb, c0, c1, rows);
    else if (__builtin_cpu_supports("avx2"))
        input_avx2(p, X, V, t0, nb, c0, c1, rows);
    else
#endif
        input_generic(p, X, V, t0, nb, c0, c1, rows);
}

void qv_wino_output(const struct qv_wino *p, const float *U, const float *B, const float *R,
                    const float *V, float *M, float *Y, int64_t t0, int64_t nb, int64_t m0,
                    int64_t m1, float *rows)
{
    int64_t mk = m1 - m0;

    if (mk <= 0 || nb <= 0)
        return;
#ifdef HAVE_X86_CLONES
    if (p->isa == QV_WINO_AVX512) {
        int64_t panels = (nb + PANEL - 1) / PANEL;
        for (int e = 0; e < 16; e++)
            qv_pk_gemm_t(V + (size_t)e * (size_t)(p->c * p->ldb), p->c, 0, panels,
                         U + (size_t)e * (size_t)(p->c * p->k) + m0, p->k, 0, mk,
                         M + (size_t)e * (size_t)(p->k * p->ldb) + (size_t)(m0 * p->ldb), p->ldb);
        output_avx512(p, M, B, R, Y, t0, nb, m0, m1, rows);
        return;
    }
#endif
    for (int e = 0; e < 16; e++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mk, (int)nb, (int)p->c, 1.0f,
                    U + (size_t)e * (size_t)(p->k * p->c) + (size_t)(m0 * p->c), (int)p->c,
                    V + (size_t)e * (size_t)(p->c * p->ldb), (int)p->ldb, 0.0f,
                    M + (size_t)e * (size_t)(p->k * p->ldb) + (size_t)(m0 * p->ldb), (int)p->ldb);
#ifdef HAVE_X86_CLONES
    if (__builtin_cpu_supports("avx2")) {
        output_avx2(p, M, B, R, Y, t0, nb, m0, m1, rows);
        return;
    }
#endif
    output_generic(p, M, B, R, Y, t0, nb, m0, m1, rows);
}

void qv_wino_run(const struct qv_wino *p, const float *U, const float *B, const float *R,
                 const float *X, float *Y, float *scratch, int64_t t0, int64_t t1)
{
    float *V = qv_wino_v(p, scratch), *M = qv_wino_m(p, scratch);
    float *rows = qv_wino_rows(p, scratch);
    int64_t n = t1 - t0, nbk = qv_wino_blocks(p, n);

    for (int64_t b = 0; b < nbk; b++) {
        int64_t off, nb;
        qv_wino_block(p, n, b, &off, &nb);
        qv_wino_input(p, X, V, t0 + off, nb, 0, p->c, rows);
        qv_wino_output(p, U, B, R, V, M, Y, t0 + off, nb, 0, p->k, rows);
    }
}
