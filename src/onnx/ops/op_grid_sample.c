/* SPDX-License-Identifier: MIT
 *
 * GridSample (opset 16), 4-D: bilinear, nearest and bicubic sampling of
 * X [N,C,H,W] at grid [N,Ho,Wo,2] points (x, y in [-1, 1]), with zeros,
 * border or reflection padding and align_corners.
 */
#include "op.h"

enum { GS_BILINEAR, GS_NEAREST, GS_BICUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

struct gs_params {
    int mode, padding;
    bool align;
};

static double unnormalize(double c, int64_t size, bool align)
{
    return align ? (c + 1) / 2 * (double)(size - 1) : ((c + 1) * (double)size - 1) / 2;
}

static double clip_coord(double c, int64_t size)
{
    return fmin((double)(size - 1), fmax(c, 0));
}

static double reflect_coord(double c, double twice_low, double twice_high)
{
    double lo, span, extra, flips;

    if (twice_low == twice_high)
        return 0;
    lo = twice_low / 2;
    span = (twice_high - twice_low) / 2;
    c = fabs(c - lo);
    extra = fmod(c, span);
    flips = floor(c / span);
    return fmod(flips, 2) == 0 ? extra + lo : span - extra + lo;
}

/* Border clipping or reflection of an unnormalized coordinate. */
static double pad_coord(const struct gs_params *p, double c, int64_t size)
{
    if (p->padding == GS_BORDER)
        return clip_coord(c, size);
    if (p->padding == GS_REFLECTION) {
        c = p->align ? reflect_coord(c, 0, 2 * (double)(size - 1))
                     : reflect_coord(c, -1, 2 * (double)size - 1);
        return clip_coord(c, size);
    }
    return c;
}

/* The pixel at integral coordinates (y, x), or 0 outside (NaN too). */
static double pixel(const float *plane, int64_t H, int64_t W, double y, double x)
{
    if (!(y >= 0 && y < (double)H && x >= 0 && x < (double)W))
        return 0.0;
    return plane[(int64_t)y * W + (int64_t)x];
}

static double cubic1(double x, double A)
{
    return ((A + 2) * x - (A + 3)) * x * x + 1;
}

static double cubic2(double x, double A)
{
    return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

static double cubic_interp(const double v[4], double t)
{
    const double A = -0.75;

    return v[0] * cubic2(t + 1, A) + v[1] * cubic1(t, A) + v[2] * cubic1(1 - t, A) +
           v[3] * cubic2(2 - t, A);
}

static int grid_sample_f32(struct qv_exec *x)
{
    const struct gs_params *p = (const void *)x->priv;
    const struct qv_tensor *X = x->in[0], *G = x->in[1];
    const float *in = X->data, *grid = G->data;
    float *out = x->out[0]->data;
    int64_t N = X->shape[0], C = X->shape[1], H = X->shape[2], W = X->shape[3];
    int64_t Ho = G->shape[1], Wo = G->shape[2];

    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < Ho * Wo; i++) {
            const float *g = grid + (n * Ho * Wo + i) * 2;
            double gx = unnormalize(g[0], W, p->align), gy = unnormalize(g[1], H, p->align);
            for (int64_t c = 0; c < C; c++) {
                const float *plane = in + (n * C + c) * H * W;
                double v;
                if (p->mode == GS_BICUBIC) {
                    double x0 = floor(gx), y0 = floor(gy), rows[4], cols[4];
                    for (int r = 0; r < 4; r++) {
                        for (int k = 0; k < 4; k++) {
                            double yy = pad_coord(p, y0 - 1 + r, H);
                            double xx = pad_coord(p, x0 - 1 + k, W);
                            cols[k] = pixel(plane, H, W, yy, xx);
                        }
                        rows[r] = cubic_interp(cols, gx - x0);
                    }
                    v = cubic_interp(rows, gy - y0);
                } else {
                    double sx = pad_coord(p, gx, W), sy = pad_coord(p, gy, H);
                    if (p->mode == GS_NEAREST) {
                        v = pixel(plane, H, W, nearbyint(sy), nearbyint(sx));
                    } else {
                        double x0 = floor(sx), y0 = floor(sy), tx = sx - x0, ty = sy - y0;
                        v = pixel(plane, H, W, y0, x0) * (1 - tx) * (1 - ty) +
                            pixel(plane, H, W, y0, x0 + 1) * tx * (1 - ty) +
                            pixel(plane, H, W, y0 + 1, x0) * (1 - tx) * ty +
                            pixel(plane, H, W, y0 + 1, x0 + 1) * tx * ty;
                    }
                }
                out[(n * C + c) * Ho * Wo + i] = (float)v;
            }
        }
    return QV_OK;
}

static int grid_sample_infer(struct qv_exec *x, struct qv_diag *d)
{
    static const char *const modes[] = {"bilinear", "nearest", "bicubic"};
    static const char *const pads[] = {"zeros", "border", "reflection"};
    struct gs_params *p = (void *)x->priv;
    const struct qv_tensor *X, *G;
    const char *mode = qv_attr_string(x->node, "mode", "bilinear");
    const char *pad = qv_attr_string(x->node, "padding_mode", "zeros");
    int64_t shape[4];
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    X = x->in[0];
    G = x->in[1];
    if (X->dtype != QV_DTYPE_F32 || G->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    if (X->ndim != 4 || G->ndim != 4 || G->shape[3] != 2 || G->shape[0] != X->shape[0])
        return qv_op_fail(x->node, d, QV_EINVAL, "needs X [N,C,H,W] and grid [N,Ho,Wo,2]");
    p->mode = p->padding = -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(mode, modes[i]) == 0)
            p->mode = i;
        if (strcmp(pad, pads[i]) == 0)
            p->padding = i;
    }
    if (p->mode < 0 || p->padding < 0)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "mode '%s' or padding_mode '%s'", mode, pad);
    p->align = qv_attr_int(x->node, "align_corners", 0) != 0;
    shape[0] = X->shape[0];
    shape[1] = X->shape[1];
    shape[2] = G->shape[1];
    shape[3] = G->shape[2];
    qv_out_set(x, 0, QV_DTYPE_F32, 4, shape);
    return QV_OK;
}

const struct qv_op qv_op_grid_sample = {
    .name = "GridSample",
    .since_version = 16,
    .infer_shape = grid_sample_infer,
    .kernels = {[QV_DTYPE_F32] = grid_sample_f32},
};
