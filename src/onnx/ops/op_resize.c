/* SPDX-License-Identifier: MIT
 *
 * Resize (opset 10+) and Upsample (opset 7-9): nearest, linear and cubic
 * interpolation over any number of dims, with every coordinate
 * transformation mode of opset 11-17 and exclude_outside. Interpolation is
 * separable: each output element combines, per dim, up to four (index,
 * weight) pairs computed into the node's scratch at the start of a run.
 */
#include "op.h"

enum { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC };
enum {
    CT_HALF_PIXEL,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_NN,
    CT_TF_CROP_AND_RESIZE
};
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL };

struct resize_params {
    int mode, ct, nearest;
    bool exclude_outside;
    float cubic_a, extrapolation;
    double scale[QV_MAX_DIMS];
    double roi_start[QV_MAX_DIMS], roi_end[QV_MAX_DIMS];
};

_Static_assert(sizeof(struct resize_params) <= QV_EXEC_PRIV, "priv too small");

/* One output coordinate of one dim. */
struct tap {
    int n; /* taps used; 0 means "extrapolate" */
    int64_t idx[4];
    float w[4];
};

static void taps_for(const struct resize_params *p, int dim, int64_t in_len, int64_t out_len,
                     int64_t x, struct tap *t)
{
    double s = p->scale[dim], outw = s * (double)in_len, xo = 0, ratio;
    double coef[4];
    int64_t x0, first;
    int n = p->mode == MODE_CUBIC ? 4 : 2;

    (void)out_len;
    switch (p->ct) {
    case CT_ALIGN_CORNERS:
        xo = outw == 1 ? 0.0 : (double)x * (double)(in_len - 1) / (outw - 1);
        break;
    case CT_ASYMMETRIC:
        xo = (double)x / s;
        break;
    case CT_TF_CROP_AND_RESIZE: {
        double a = p->roi_start[dim], b = p->roi_end[dim];
        xo = outw == 1 ? (b - a) * (double)(in_len - 1) / 2
                       : (double)x * (b - a) * (double)(in_len - 1) / (outw - 1);
        xo += a * (double)(in_len - 1);
        if (xo < 0 || xo > (double)(in_len - 1)) {
            t->n = 0;
            return;
        }
        break;
    }
    case CT_PYTORCH_HALF_PIXEL:
        xo = outw == 1 ? -0.5 : ((double)x + 0.5) / s - 0.5;
        break;
    case CT_TF_HALF_PIXEL_NN:
        xo = ((double)x + 0.5) / s;
        break;
    default:
        xo = ((double)x + 0.5) / s - 0.5;
        break;
    }
    x0 = (int64_t)floor(xo);
    ratio = xo - (double)x0;
    if (ratio == 0) { /* prefer the pixel on the left: ratio in (0, 1] */
        x0 -= 1;
        ratio = 1;
    }
    if (p->mode == MODE_NEAREST) {
        bool right;
        switch (p->nearest) {
        case NM_ROUND_PREFER_CEIL:
            right = ratio >= 0.5;
            break;
        case NM_FLOOR:
            right = ratio == 1;
            break;
        case NM_CEIL:
            right = true;
            break;
        default:
            right = ratio > 0.5;
            break;
        }
        coef[0] = right ? 0 : 1;
        coef[1] = right ? 1 : 0;
        first = x0;
    } else if (p->mode == MODE_LINEAR) {
        coef[0] = 1 - ratio;
        coef[1] = ratio;
        first = x0;
    } else {
        double A = p->cubic_a, r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
        coef[0] = ((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A;
        coef[1] = ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1;
        coef[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
        coef[3] = ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A;
        first = x0 - 1;
    }
    if (p->exclude_outside) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            int64_t idx = first + i;
            if (idx < 0 || idx >= in_len)
                coef[i] = 0;
            sum += coef[i];
        }
        for (int i = 0; i < n && sum != 0; i++)
            coef[i] /= sum;
    }
    t->n = 0;
    for (int i = 0; i < n; i++) {
        int64_t idx = first + i;
        if (coef[i] == 0)
            continue;
        idx = idx < 0 ? 0 : (idx >= in_len ? in_len - 1 : idx); /* edge padding */
        t->idx[t->n] = idx;
        t->w[t->n] = (float)coef[i];
        t->n++;
    }
    if (t->n == 0) { /* all weights zero: keep a zero-weight tap so it is not "extrapolate" */
        t->idx[0] = 0;
        t->w[0] = 0;
        t->n = 1;
    }
}

static int resize_f32(struct qv_exec *x)
{
    const struct resize_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    const struct qv_tensor *o = x->out[0];
    const float *src = in->data;
    float *dst = o->data;
    struct tap *taps = x->scratch, *dim_taps[QV_MAX_DIMS];
    int64_t is[QV_MAX_DIMS], idx[QV_MAX_DIMS] = {0}, n = qv_numel(o), acc = 1;
    int r = in->ndim;

    for (int i = r - 1; i >= 0; i--) {
        is[i] = acc;
        acc *= in->shape[i];
    }
    for (int i = 0; i < r; i++) {
        dim_taps[i] = taps;
        for (int64_t k = 0; k < o->shape[i]; k++)
            taps_for(p, i, in->shape[i], o->shape[i], k, &taps[k]);
        taps += o->shape[i];
    }
    for (int64_t j = 0; j < n; j++) {
        const struct tap *t[QV_MAX_DIMS];
        int c[QV_MAX_DIMS] = {0};
        bool extrapolate = false;
        double sum = 0;
        for (int i = 0; i < r; i++) {
            t[i] = &dim_taps[i][idx[i]];
            if (t[i]->n == 0)
                extrapolate = true;
        }
        if (extrapolate) {
            dst[j] = p->extrapolation;
        } else {
            for (;;) {
                int64_t off = 0;
                double w = 1;
                int i;
                for (i = 0; i < r; i++) {
                    off += t[i]->idx[c[i]] * is[i];
                    w *= t[i]->w[c[i]];
                }
                sum += w * src[off];
                for (i = r - 1; i >= 0; i--) {
                    if (++c[i] < t[i]->n)
                        break;
                    c[i] = 0;
                }
                if (i < 0)
                    break;
            }
            dst[j] = (float)sum;
        }
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < o->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Reads a float vector input known at plan time. */
static int input_floats(struct qv_exec *x, int i, double *vals, int max, int *count,
                        struct qv_diag *d)
{
    const struct qv_tensor *t = x->in[i];
    int64_t n = qv_numel(t);
    int err = qv_input_known(x, i, d);

    if (err)
        return err;
    if (t->dtype != QV_DTYPE_F32 && t->dtype != QV_DTYPE_F64)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d must be float", i);
    if (n > max)
        return qv_op_fail(x->node, d, QV_EINVAL, "input %d is too long", i);
    for (int64_t k = 0; k < n; k++)
        vals[k] = qv_tensor_get_f64(t, k);
    *count = (int)n;
    return QV_OK;
}

static int resize_infer(struct qv_exec *x, struct qv_diag *d)
{
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const cts[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                      "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    struct resize_params *p = (void *)x->priv;
    const struct qv_node *n = x->node;
    const struct qv_tensor *in;
    bool upsample = strcmp(n->op_type, "Upsample") == 0;
    bool legacy = upsample || n->opset < 11;
    double scales[QV_MAX_DIMS], roi[2 * QV_MAX_DIMS];
    int64_t sizes[QV_MAX_DIMS], shape[QV_MAX_DIMS];
    int n_scales = 0, n_sizes = 0, n_roi = 0, r, err;
    size_t taps = 0;

    err = qv_op_arity(x, 1, legacy ? 2 : 4, 1, 1, d);
    if (err)
        return err;
    in = x->in[0];
    r = in->ndim;
    if (in->dtype != QV_DTYPE_F32)
        return qv_op_fail(n, d, QV_ENOTSUP, "only float32 is supported");
    memset(p, 0, sizeof(*p));
    p->mode = lookup(qv_attr_string(n, "mode", "nearest"), modes, 3);
    if (upsample && p->mode < 0 && strcmp(qv_attr_string(n, "mode", ""), "bilinear") == 0)
        p->mode = MODE_LINEAR;
    p->ct = legacy
                ? CT_ASYMMETRIC
                : lookup(qv_attr_string(n, "coordinate_transformation_mode", "half_pixel"), cts, 6);
    p->nearest =
        legacy ? NM_FLOOR : lookup(qv_attr_string(n, "nearest_mode", "round_prefer_floor"), nms, 4);
    if (p->mode < 0 || p->ct < 0 || p->nearest < 0)
        return qv_op_fail(n, d, QV_ENOTSUP,
                          "mode, coordinate_transformation_mode or "
                          "nearest_mode not supported");
    p->cubic_a = qv_attr_float(n, "cubic_coeff_a", -0.75f);
    p->exclude_outside = qv_attr_int(n, "exclude_outside", 0) != 0;
    p->extrapolation = qv_attr_float(n, "extrapolation_value", 0.0f);
    if (upsample && n->opset < 9) {
        const float *s = qv_attr_floats(n, "scales", &n_scales);
        if (n_scales > QV_MAX_DIMS)
            return qv_op_fail(n, d, QV_EINVAL, "too many scales");
        for (int i = 0; i < n_scales; i++)
            scales[i] = s[i];
    } else if (legacy) {
        if (x->n_in < 2 || x->in[1] == NULL)
            return qv_op_fail(n, d, QV_EINVAL, "scales input is required");
        err = input_floats(x, 1, scales, QV_MAX_DIMS, &n_scales, d);
        if (err)
            return err;
    } else {
        if (x->n_in > 1 && x->in[1] && qv_numel(x->in[1]) > 0 && p->ct == CT_TF_CROP_AND_RESIZE) {
            err = input_floats(x, 1, roi, 2 * QV_MAX_DIMS, &n_roi, d);
            if (err)
                return err;
        }
        if (x->n_in > 2 && x->in[2] && qv_numel(x->in[2]) > 0) {
            err = input_floats(x, 2, scales, QV_MAX_DIMS, &n_scales, d);
            if (err)
                return err;
        }
        if (x->n_in > 3 && x->in[3] && qv_numel(x->in[3]) > 0) {
            err = qv_input_ints(x, 3, sizes, QV_MAX_DIMS, &n_sizes, d);
            if (err)
                return err;
        }
    }
    if ((n_scales > 0) == (n_sizes > 0) || (n_scales && n_scales != r) || (n_sizes && n_sizes != r))
        return qv_op_fail(n, d, QV_EINVAL, "needs exactly one of scales or sizes, one per dim");
    if (n_roi && n_roi != 2 * r)
        return qv_op_fail(n, d, QV_EINVAL, "roi must have 2 values per dim");
    for (int i = 0; i < r; i++) {
        /* roi may come from the request: NaN or infinity would reach
         * float-to-integer conversions. */
        if (n_roi && !(isfinite(roi[i]) && isfinite(roi[r + i])))
            return qv_op_fail(n, d, QV_EINVAL, "roi must be finite");
        p->roi_start[i] = n_roi ? roi[i] : 0;
        p->roi_end[i] = n_roi ? roi[r + i] : 1;
        if (n_sizes) {
            if (sizes[i] < 0 || (in->shape[i] == 0 && sizes[i] != 0))
                return qv_op_fail(n, d, QV_EINVAL, "bad size for dim %d", i);
            shape[i] = sizes[i];
            p->scale[i] = in->shape[i] ? (double)sizes[i] / (double)in->shape[i] : 1;
        } else {
            double len = (double)in->shape[i] * scales[i];
            if (p->ct == CT_TF_CROP_AND_RESIZE)
                len *= p->roi_end[i] - p->roi_start[i];
            if (!(scales[i] > 0) || !(len >= 0 && len <= 1e9))
                return qv_op_fail(n, d, QV_EINVAL, "scales must be positive");
            shape[i] = (int64_t)floor(len);
            p->scale[i] = scales[i];
        }
        taps += (size_t)shape[i];
    }
    x->scratch_bytes = taps * sizeof(struct tap) + 1;
    qv_out_set(x, 0, QV_DTYPE_F32, r, shape);
    return QV_OK;
}

const struct qv_op qv_op_resize = {
    .name = "Resize",
    .since_version = 10,
    .infer_shape = resize_infer,
    .kernels = {[QV_DTYPE_F32] = resize_f32},
};

const struct qv_op qv_op_upsample = {
    .name = "Upsample",
    .since_version = 7,
    .infer_shape = resize_infer,
    .kernels = {[QV_DTYPE_F32] = resize_f32},
};
