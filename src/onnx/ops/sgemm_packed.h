/* SPDX-License-Identifier: MIT
 *
 * onnx/ops/sgemm_packed.h -- C = A B for a constant A (convolution weights)
 * packed once at plan time, on CPUs with AVX-512. OpenBLAS packs both
 * operands on every call; for a batch-1 convolution the weights are the
 * larger one, and packing them costs a good part of the product. Here A is
 * packed once into panels of QV_PK_MR rows and B is read in place. The
 * product is written transposed (C^T, one row per column of B, QV_PK_MR-
 * aligned), and the caller's epilogue writes C with the bias and activation.
 * Elsewhere (no AVX-512) the caller uses OpenBLAS.
 *
 * Each C element is the same sequence of fused multiply-adds over k, in
 * blocks of fixed size, whatever the ranges asked for, so results do not
 * depend on how the product is split across threads.
 */
#ifndef QV_ONNX_SGEMM_PACKED_H
#define QV_ONNX_SGEMM_PACKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QV_PK_MR 32  /* rows of A per panel */
#define QV_PK_KC 256 /* k of one pass; qv_pk_gemm_act needs k <= QV_PK_KC */

/* Whether this CPU runs the packed product. */
bool qv_pk_available(void);
/* Rows of A rounded up to whole panels. */
int64_t qv_pk_rows(int64_t m);
/* Floats of A [m x k] packed: panels of QV_PK_MR rows, the last zero-padded. */
size_t qv_pk_floats(int64_t m, int64_t k);
/* Packs A (row-major, leading dimension lda) into P. */
void qv_pk_pack(const float *A, int64_t lda, int64_t m, int64_t k, float *P);
/* Ct[j][i] = sum over k of A[i][k] B[k][j] for rows i of panels [p0, p1)
 * and columns j in [n0, n1): P packed from A [m x k], B row-major with
 * leading dimension ldb, Ct row-major [n][ldct] with ldct >= qv_pk_rows(m)
 * and a multiple of 16. */
void qv_pk_gemm_t(const float *P, int64_t k, int64_t p0, int64_t p1, const float *B, int64_t ldb,
                  int64_t n0, int64_t n1, float *Ct, int64_t ldct);

/* For k <= QV_PK_KC: C[i][j] = act(sum over k of A[i][k] B[k][j] + bias[i]
 * + R[i][j]) for rows i < m of panels [p0, p1) and columns j in [n0, n1), C
 * and R row-major with leading dimension ldc; bias and R may be NULL; act 0
 * none, 1 ReLU, 2 clip to [lo, hi] (as Conv's fused activations). */
void qv_pk_gemm_act(const float *P, int64_t m, int64_t k, int64_t p0, int64_t p1, const float *B,
                    int64_t ldb, int64_t n0, int64_t n1, float *C, int64_t ldc, const float *bias,
                    const float *R, int act, float lo, float hi);

#endif
