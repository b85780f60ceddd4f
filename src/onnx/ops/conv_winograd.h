/* SPDX-License-Identifier: MIT
 *
 * onnx/ops/conv_winograd.h -- 3x3, stride-1, undilated, ungrouped float
 * convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2015): each 2x2
 * block of outputs ("tile") costs 16 multiplications per (input, output)
 * channel pair instead of 36. The weights are transformed once at plan time
 * into 16 matrices U[e] (K x C); a run transforms 4x4 input patches into
 * V[e] (C x tiles), multiplies U[e] V[e] with OpenBLAS, and transforms each
 * 4x4 product back into a 2x2 output block with the bias and the fused
 * activation. All transforms add and subtract only (and halve, for the
 * weights), so the result differs from the direct sum by rounding alone.
 */
#ifndef QV_ONNX_CONV_WINOGRAD_H
#define QV_ONNX_CONV_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

/* Fused activation of a convolution (shared with op_conv.c). */
enum { QV_CONV_ACT_NONE, QV_CONV_ACT_RELU, QV_CONV_ACT_CLIP };

struct qv_wino {
    int64_t c, k;   /* input and output channels */
    int64_t h, w;   /* input plane */
    int64_t oh, ow; /* output plane */
    int64_t pt, pl; /* padding before the first row and column */
    int64_t th, tw; /* tiles down and across: ceil(oh / 2), ceil(ow / 2) */
    int64_t block;  /* tiles transformed and multiplied together */
    int act;        /* QV_CONV_ACT_* */
    float act_lo, act_hi;
};

/* Fills p's derived fields (tiles, block) from the geometry already in p. */
void qv_wino_setup(struct qv_wino *p);
/* Floats of the transformed weights: 16 * k * c. */
size_t qv_wino_weight_floats(const struct qv_wino *p);
/* Floats of scratch one thread needs for one block of tiles. */
size_t qv_wino_scratch_floats(const struct qv_wino *p);
/* U[e][m][c] from W [k, c, 3, 3]. */
void qv_wino_weights(const struct qv_wino *p, const float *W, float *U);
/* Output tiles [t0, t1) (row-major over th x tw) of output channels
 * [m0, m1) of one image: X [c, h, w] in, Y [k, oh, ow] out, B the bias or
 * NULL, scratch of qv_wino_scratch_floats(). */
void qv_wino_run(const struct qv_wino *p, const float *U, const float *B, const float *X, float *Y,
                 float *scratch, int64_t t0, int64_t t1, int64_t m0, int64_t m1);

#endif
