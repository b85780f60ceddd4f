/* SPDX-License-Identifier: MIT
 *
 * onnx/ops/conv_winograd.h -- 3x3, stride-1, undilated, ungrouped float
 * convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2015): each 2x2
 * block of outputs ("tile") costs 16 multiplications per (input, output)
 * channel pair instead of 36. The weights are transformed once at plan time
 * into 16 matrices U[e] (K x C); a run transforms 4x4 input patches into
 * V[e] (C x tiles), multiplies U[e] V[e], and transforms each 4x4 product
 * back into a 2x2 output block with the bias, a residual input added (a
 * fused Add) and the fused activation. All transforms add and subtract only
 * (and halve, for the weights), so the result differs from the direct sum
 * by rounding alone.
 *
 * Two implementations, chosen by the CPU at setup (p->isa):
 *  - QV_WINO_BLAS: U[e] is K x C, V[e] is C x tiles, the products by
 *    OpenBLAS, the transforms in plain C (compiled for AVX2 too).
 *  - QV_WINO_AVX512: V[e] is written directly in the panel layout of
 *    sgemm_packed.h (panels of 32 tiles), U[e] is stored transposed (C x K)
 *    and read in place, so the product M[e]^T = V[e]^T U[e]^T runs on the
 *    packed kernel with nothing packed at run time; the transforms use
 *    AVX-512 across 16 tiles at a time.
 */
#ifndef QV_ONNX_CONV_WINOGRAD_H
#define QV_ONNX_CONV_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

/* Fused activation of a convolution (shared with op_conv.c). */
enum { QV_CONV_ACT_NONE, QV_CONV_ACT_RELU, QV_CONV_ACT_CLIP };

enum { QV_WINO_BLAS, QV_WINO_AVX512 };

struct qv_wino {
    int64_t c, k;   /* input and output channels */
    int64_t h, w;   /* input plane */
    int64_t oh, ow; /* output plane */
    int64_t pt, pl; /* padding before the first row and column */
    int64_t th, tw; /* tiles down and across: ceil(oh / 2), ceil(ow / 2) */
    int64_t block;  /* tiles transformed and multiplied together (at most) */
    int64_t ldb;    /* tiles a block's buffers are laid out for: block, in
                     * whole panels of 32 for QV_WINO_AVX512 */
    int isa;        /* QV_WINO_*: set by qv_wino_setup(), may be lowered
                     * before qv_wino_weights() (tests) */
    int act;        /* QV_CONV_ACT_* */
    float act_lo, act_hi;
};

/* Fills p's derived fields (tiles, block, isa) from the geometry already in
 * p. */
void qv_wino_setup(struct qv_wino *p);
/* Sets p->isa (QV_WINO_AVX512 only where the CPU has it) and the fields
 * that depend on it. */
void qv_wino_set_isa(struct qv_wino *p, int isa);
/* Floats of the transformed weights: 16 * k * c. */
size_t qv_wino_weight_floats(const struct qv_wino *p);
/* Floats of scratch one thread needs for one block of tiles: V, M and the
 * row buffers (qv_wino_v(), qv_wino_m(), qv_wino_rows() find them). */
size_t qv_wino_scratch_floats(const struct qv_wino *p);
float *qv_wino_v(const struct qv_wino *p, float *scratch);
float *qv_wino_m(const struct qv_wino *p, float *scratch);
float *qv_wino_rows(const struct qv_wino *p, float *scratch);
/* The transformed weights from W [k, c, 3, 3]: U[e][m][c] (QV_WINO_BLAS)
 * or U[e][c][m] (QV_WINO_AVX512). */
void qv_wino_weights(const struct qv_wino *p, const float *W, float *U);

/* Output tiles [t0, t1) (row-major over th x tw) of one image, every output
 * channel, in blocks: X [c, h, w] in, Y [k, oh, ow] out, B the bias or
 * NULL, R a residual [k, oh, ow] added before the activation or NULL,
 * scratch of qv_wino_scratch_floats(). */
void qv_wino_run(const struct qv_wino *p, const float *U, const float *B, const float *R,
                 const float *X, float *Y, float *scratch, int64_t t0, int64_t t1);

/* Blocks of a run over n tiles, and block b's first tile (from the run's
 * first) and tile count: whole panels of 32 tiles, spread evenly. */
int64_t qv_wino_blocks(const struct qv_wino *p, int64_t n);
void qv_wino_block(const struct qv_wino *p, int64_t n, int64_t b, int64_t *off, int64_t *cnt);

/* The two halves of one block of nb <= p->block tiles from t0, for callers
 * that split a block across threads: the input transform of input channels
 * [c0, c1) into V, then, once all of V is written, the products and output
 * transform of output channels [m0, m1) (M shared, each range its own rows;
 * rows a buffer of its own, from qv_wino_rows()). */
void qv_wino_input(const struct qv_wino *p, const float *X, float *V, int64_t t0, int64_t nb,
                   int64_t c0, int64_t c1, float *rows);
void qv_wino_output(const struct qv_wino *p, const float *U, const float *B, const float *R,
                    const float *V, float *M, float *Y, int64_t t0, int64_t nb, int64_t m0,
                    int64_t m1, float *rows);

#endif
