/* SPDX-License-Identifier: MIT
 *
 * RoiAlign (opset 10/16): average or max of bilinear samples over a grid in
 * each output bin of each region of interest, for X [N,C,H,W], rois [R,4]
 * (x1, y1, x2, y2) and batch_indices [R], following ONNX Runtime for max.
 */
#include "op.h"

struct roi_params {
    int64_t oh, ow, sampling;
    float scale;
    bool half_pixel, max_mode;
};

/* Bilinear sample at (y, x); 0 outside [-1, H] x [-1, W]. In max mode the
 * four weighted corners are maxed separately, as the reference does. */
static double sample(const float *plane, int64_t H, int64_t W, double y, double x, bool max_mode)
{
    int64_t yl, xl, yh, xh;
    double ly, lx, hy, hx, v1, v2, v3, v4;

    if (y < -1.0 || y > (double)H || x < -1.0 || x > (double)W)
        return 0.0; /* all four weights are zero */
    y = y <= 0 ? 0 : y;
    x = x <= 0 ? 0 : x;
    yl = (int64_t)y;
    xl = (int64_t)x;
    if (yl >= H - 1) {
        yh = yl = H - 1;
        y = (double)yl;
    } else {
        yh = yl + 1;
    }
    if (xl >= W - 1) {
        xh = xl = W - 1;
        x = (double)xl;
    } else {
        xh = xl + 1;
    }
    ly = y - (double)yl;
    lx = x - (double)xl;
    hy = 1 - ly;
    hx = 1 - lx;
    v1 = hy * hx * plane[yl * W + xl];
    v2 = hy * lx * plane[yl * W + xh];
    v3 = ly * hx * plane[yh * W + xl];
    v4 = ly * lx * plane[yh * W + xh];
    if (max_mode)
        return fmax(fmax(v1, v2), fmax(v3, v4));
    return v1 + v2 + v3 + v4;
}

static int roi_align_f32(struct qv_exec *x)
{
    const struct roi_params *p = (const void *)x->priv;
    const struct qv_tensor *X = x->in[0], *rois = x->in[1], *bi = x->in[2];
    int64_t N = X->shape[0], C = X->shape[1], H = X->shape[2], W = X->shape[3];
    int64_t R = rois->shape[0];
    const float *r = rois->data;
    float *out = x->out[0]->data;
    double off = p->half_pixel ? 0.5 : 0.0;

    for (int64_t k = 0; k < R; k++) {
        int64_t b = bi->dtype == QV_DTYPE_I64 ? ((const int64_t *)bi->data)[k]
                                              : ((const int32_t *)bi->data)[k];
        double x1 = r[k * 4] * p->scale - off, y1 = r[k * 4 + 1] * p->scale - off;
        double x2 = r[k * 4 + 2] * p->scale - off, y2 = r[k * 4 + 3] * p->scale - off;
        double rw = x2 - x1, rh = y2 - y1, bw, bh;
        int64_t gh, gw, count;
        if (b < 0 || b >= N)
            return QV_EINVAL;
        if (!p->half_pixel) {
            rw = fmax(rw, 1.0);
            rh = fmax(rh, 1.0);
        }
        bh = rh / (double)p->oh;
        bw = rw / (double)p->ow;
        gh = p->sampling > 0 ? p->sampling : (int64_t)ceil(rh / (double)p->oh);
        gw = p->sampling > 0 ? p->sampling : (int64_t)ceil(rw / (double)p->ow);
        if (gh < 0 || gw < 0 || gh > 4096 || gw > 4096)
            return QV_EINVAL;
        count = gh * gw > 1 ? gh * gw : 1;
        for (int64_t c = 0; c < C; c++) {
            const float *plane = (const float *)X->data + (b * C + c) * H * W;
            for (int64_t ph = 0; ph < p->oh; ph++)
                for (int64_t pw = 0; pw < p->ow; pw++) {
                    double acc = p->max_mode ? -INFINITY : 0.0;
                    bool any = false;
                    for (int64_t iy = 0; iy < gh; iy++) {
                        double yy = y1 + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
                        for (int64_t ix = 0; ix < gw; ix++) {
                            double xx = x1 + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
                            double v = sample(plane, H, W, yy, xx, p->max_mode);
                            if (p->max_mode) {
                                if (!any || v > acc)
                                    acc = v;
                                any = true;
                            } else {
                                acc += v;
                            }
                        }
                    }
                    if (!p->max_mode)
                        acc /= (double)count;
                    else if (!any || isinf(acc))
                        acc = 0;
                    out[((k * C + c) * p->oh + ph) * p->ow + pw] = (float)acc;
                }
        }
    }
    return QV_OK;
}

static int roi_align_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct roi_params *p = (void *)x->priv;
    const struct qv_tensor *X, *rois, *bi;
    const char *mode = qv_attr_string(x->node, "mode", "avg");
    const char *ct = qv_attr_string(x->node, "coordinate_transformation_mode",
                                    x->node->opset >= 16 ? "half_pixel" : "output_half_pixel");
    int64_t shape[4];
    int err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    X = x->in[0];
    rois = x->in[1];
    bi = x->in[2];
    if (X->dtype != QV_DTYPE_F32 || rois->dtype != QV_DTYPE_F32 || X->ndim != 4 ||
        rois->ndim != 2 || rois->shape[1] != 4 ||
        (bi->dtype != QV_DTYPE_I64 && bi->dtype != QV_DTYPE_I32) || qv_numel(bi) != rois->shape[0])
        return qv_op_fail(x->node, d, QV_EINVAL,
                          "needs float32 X [N,C,H,W], rois [R,4], "
                          "batch_indices [R]");
    memset(p, 0, sizeof(*p));
    p->oh = qv_attr_int(x->node, "output_height", 1);
    p->ow = qv_attr_int(x->node, "output_width", 1);
    p->sampling = qv_attr_int(x->node, "sampling_ratio", 0);
    p->scale = qv_attr_float(x->node, "spatial_scale", 1.0f);
    p->max_mode = strcmp(mode, "max") == 0;
    p->half_pixel = strcmp(ct, "half_pixel") == 0;
    if ((!p->max_mode && strcmp(mode, "avg") != 0) ||
        (!p->half_pixel && strcmp(ct, "output_half_pixel") != 0))
        return qv_op_fail(x->node, d, QV_ENOTSUP, "mode '%s' or transformation '%s'", mode, ct);
    if (p->oh < 1 || p->ow < 1 || p->sampling < 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad output size or sampling_ratio");
    shape[0] = rois->shape[0];
    shape[1] = X->shape[1];
    shape[2] = p->oh;
    shape[3] = p->ow;
    qv_out_set(x, 0, QV_DTYPE_F32, 4, shape);
    return QV_OK;
}

const struct qv_op qv_op_roi_align = {
    .name = "RoiAlign",
    .since_version = 10,
    .infer_shape = roi_align_infer,
    .kernels = {[QV_DTYPE_F32] = roi_align_f32},
};
