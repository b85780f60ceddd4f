/* SPDX-License-Identifier: MIT
 *
 * The packed-weights product of sgemm_packed.h. The micro-kernel holds a
 * 32 x 14 block of C^T in 28 AVX-512 accumulators: per k it loads the 32
 * packed A values of a panel (two vectors) and multiplies them by 14
 * broadcast values of B's row k. k goes in blocks of KC, so that a block of
 * B stays in L2 while every panel of A passes over it, and a panel's block
 * of A (KC x 32) stays in L1 across the columns.
 */
#include "sgemm_packed.h"

#define NR 14 /* columns per micro-kernel call */
#define KC QV_PK_KC

int64_t qv_pk_rows(int64_t m)
{
    return (m + QV_PK_MR - 1) / QV_PK_MR * QV_PK_MR;
}

size_t qv_pk_floats(int64_t m, int64_t k)
{
    return (size_t)(qv_pk_rows(m) * k);
}

void qv_pk_pack(const float *A, int64_t lda, int64_t m, int64_t k, float *P)
{
    for (int64_t p0 = 0; p0 < m; p0 += QV_PK_MR)
        for (int64_t kk = 0; kk < k; kk++)
            for (int64_t i = 0; i < QV_PK_MR; i++)
                *P++ = p0 + i < m ? A[(p0 + i) * lda + kk] : 0.0f;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

bool qv_pk_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

#define TARGET __attribute__((target("avx512f")))

/* ct[j][0..32) (+)= sum over kc of a[k][0..32) b[k][j], j < nr <= NR. */
TARGET static inline __attribute__((always_inline)) void kernel_n(const float *a, const float *b,
                                                                  int64_t ldb, int64_t kc,
                                                                  float *ct, int64_t ldct, int nr,
                                                                  bool add)
{
    __m512 c0[NR], c1[NR];

#pragma GCC unroll 14
    for (int j = 0; j < NR; j++)
        c0[j] = c1[j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += QV_PK_MR, b += ldb) {
        __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16);
#pragma GCC unroll 14
        for (int j = 0; j < nr; j++) {
            __m512 s = _mm512_set1_ps(b[j]);
            c0[j] = _mm512_fmadd_ps(a0, s, c0[j]);
            c1[j] = _mm512_fmadd_ps(a1, s, c1[j]);
        }
    }
    for (int j = 0; j < nr; j++) {
        float *c = ct + j * ldct;
        __m512 v0 = c0[j], v1 = c1[j];
        if (add) {
            v0 = _mm512_add_ps(v0, _mm512_loadu_ps(c));
            v1 = _mm512_add_ps(v1, _mm512_loadu_ps(c + 16));
        }
        _mm512_storeu_ps(c, v0);
        _mm512_storeu_ps(c + 16, v1);
    }
}

/* The full-width kernel, its column loop unrolled by the constant NR. */
TARGET static void kernel_full(const float *a, const float *b, int64_t ldb, int64_t kc, float *ct,
                               int64_t ldct, bool add)
{
    kernel_n(a, b, ldb, kc, ct, ldct, NR, add);
}

TARGET static void kernel_edge(const float *a, const float *b, int64_t ldb, int64_t kc, float *ct,
                               int64_t ldct, int nr, bool add)
{
    kernel_n(a, b, ldb, kc, ct, ldct, nr, add);
}

/* C's rows [0, rows) x columns [0, nr) from the C^T tile t [nr][QV_PK_MR]:
 * a row is a gather of t's column, then the bias and the activation, with
 * the comparisons of Conv's scalar epilogue (NaN stays NaN under clip, ReLU
 * makes it 0). */
TARGET static void write_rows(const float *t, int rows, int nr, float *C, int64_t ldc,
                              const float *bias, const float *R, int act, float lo, float hi)
{
    __mmask16 mk = (__mmask16)((1u << nr) - 1);
    __m512i idx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(QV_PK_MR));
    __m512 zero = _mm512_setzero_ps(), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);

    for (int i = 0; i < rows; i++) {
        __m512 v = _mm512_mask_i32gather_ps(zero, mk, idx, t + i, 4);
        v = _mm512_add_ps(v, _mm512_set1_ps(bias ? bias[i] : 0.0f));
        if (R)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, R + i * ldc));
        if (act == 1) {
            /* v > 0 ? v : 0 */
            v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
        } else if (act == 2) {
            /* v < lo ? lo : v, then v > hi ? hi : v */
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ), vlo);
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vhi, _CMP_GT_OQ), vhi);
        }
        _mm512_mask_storeu_ps(C + i * ldc, mk, v);
    }
}

void qv_pk_gemm_act(const float *P, int64_t m, int64_t k, int64_t p0, int64_t p1, const float *B,
                    int64_t ldb, int64_t n0, int64_t n1, float *C, int64_t ldc, const float *bias,
                    const float *R, int act, float lo, float hi)
{
    _Alignas(64) float t[NR * QV_PK_MR];

    /* Columns outer: the block of B (k x NR) stays in L1 across the panels. */
    for (int64_t j = n0; j < n1; j += NR) {
        int nr = (int)(n1 - j < NR ? n1 - j : NR);
        for (int64_t p = p0; p < p1; p++) {
            int64_t i0 = p * QV_PK_MR;
            int rows = (int)(m - i0 < QV_PK_MR ? m - i0 : QV_PK_MR);
            if (nr == NR)
                kernel_full(P + p * k * QV_PK_MR, B + j, ldb, k, t, QV_PK_MR, false);
            else
                kernel_edge(P + p * k * QV_PK_MR, B + j, ldb, k, t, QV_PK_MR, nr, false);
            write_rows(t, rows, nr, C + i0 * ldc + j, ldc, bias ? bias + i0 : NULL,
                       R ? R + i0 * ldc + j : NULL, act, lo, hi);
        }
    }
}

void qv_pk_gemm_t(const float *P, int64_t k, int64_t p0, int64_t p1, const float *B, int64_t ldb,
                  int64_t n0, int64_t n1, float *Ct, int64_t ldct)
{
    /* Panels outer: a panel's packed A (k x 32, contiguous) is read as one
     * stream, and its block of C^T stays in L1 across the passes over k. */
    for (int64_t p = p0; p < p1; p++) {
        for (int64_t kc = 0; kc < k; kc += KC) {
            int64_t kn = k - kc < KC ? k - kc : KC;
            const float *a = P + (p * k + kc) * QV_PK_MR;
            for (int64_t j = n0; j < n1; j += NR) {
                float *ct = Ct + j * ldct + p * QV_PK_MR;
                if (n1 - j >= NR)
                    kernel_full(a, B + kc * ldb + j, ldb, kn, ct, ldct, kc > 0);
                else
                    kernel_edge(a, B + kc * ldb + j, ldb, kn, ct, ldct, (int)(n1 - j), kc > 0);
            }
        }
    }
}
#else
bool qv_pk_available(void)
{
    return false;
}

void qv_pk_gemm_act(const float *P, int64_t m, int64_t k, int64_t p0, int64_t p1, const float *B,
                    int64_t ldb, int64_t n0, int64_t n1, float *C, int64_t ldc, const float *bias,
                    const float *R, int act, float lo, float hi)
{
    (void)P, (void)m, (void)k, (void)p0, (void)p1, (void)B, (void)ldb, (void)n0, (void)n1;
    (void)C, (void)ldc, (void)bias, (void)R, (void)act, (void)lo, (void)hi; /* not reached */
}

void qv_pk_gemm_t(const float *P, int64_t k, int64_t p0, int64_t p1, const float *B, int64_t ldb,
                  int64_t n0, int64_t n1, float *Ct, int64_t ldct)
{
    /* Not reached (callers check qv_pk_available()); plain loops keep it
     * defined. */
    for (int64_t j = n0; j < n1; j++)
        for (int64_t i = p0 * QV_PK_MR; i < p1 * QV_PK_MR; i++) {
            float s = 0;
            for (int64_t kk = 0; kk < k; kk++)
                s += P[((i / QV_PK_MR) * k + kk) * QV_PK_MR + i % QV_PK_MR] * B[kk * ldb + j];
            Ct[j * ldct + i] = s;
        }
}
#endif
