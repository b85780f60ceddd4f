/* SPDX-License-Identifier: MIT
 *
 * DFT and STFT (opset 17), by direct summation in double (O(n^2) per
 * transform; these are small in the models that use them). The last dim of
 * the signal is 1 (real) or 2 (complex); outputs are complex [..., 2].
 * MelWeightMatrix builds the triangular mel filter bank.
 */
#include "op.h"

struct dft_params {
    int axis;       /* transformed dim (DFT) */
    int64_t len;    /* dft_length / frame_length */
    int64_t bins;   /* output bins (onesided: len/2 + 1) */
    int64_t step;   /* STFT frame step */
    int64_t frames; /* STFT frames */
    bool inverse, onesided;
};

/* One transform: n_in complex-or-real samples with stride 'is' (in complex
 * components of 'comp' floats each), zero-padded or cut to len; writes bins
 * complex outputs with stride 'os'. 'win' (optional) multiplies the input. */
static void dft1(const struct dft_params *p, const float *in, int64_t n_in, int64_t is, int comp,
                 const float *win, float *out, int64_t os)
{
    double sign = p->inverse ? 1.0 : -1.0;

    for (int64_t k = 0; k < p->bins; k++) {
        double re = 0, im = 0;
        for (int64_t t = 0; t < p->len && t < n_in; t++) {
            double xr = in[t * is * comp], xi = comp == 2 ? in[t * is * comp + 1] : 0;
            double w = win ? win[t] : 1,
                   a = sign * 2 * M_PI * (double)(k * t % p->len) / (double)p->len;
            double c = cos(a), s = sin(a);
            xr *= w;
            xi *= w;
            re += xr * c - xi * s;
            im += xr * s + xi * c;
        }
        if (p->inverse) {
            re /= (double)p->len;
            im /= (double)p->len;
        }
        out[k * os * 2] = (float)re;
        out[k * os * 2 + 1] = (float)im;
    }
}

static int dft_f32(struct qv_exec *x)
{
    const struct dft_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    int comp = (int)in->shape[in->ndim - 1];
    int64_t outer = 1, inner = 1, n = in->shape[p->axis];

    for (int i = 0; i < p->axis; i++)
        outer *= in->shape[i];
    for (int i = p->axis + 1; i < in->ndim - 1; i++)
        inner *= in->shape[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++)
            dft1(p, (const float *)in->data + (o * n * inner + j) * comp, n, inner, comp, NULL,
                 (float *)x->out[0]->data + (o * p->bins * inner + j) * 2, inner);
    return QV_OK;
}

static int dft_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct dft_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[QV_MAX_DIMS], len;
    int n, err = qv_op_arity(x, 1, 2, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    if (in->dtype != QV_DTYPE_F32 || in->ndim < 2 ||
        (in->shape[in->ndim - 1] != 1 && in->shape[in->ndim - 1] != 2))
        return qv_op_fail(x->node, d, QV_EINVAL, "input must be float32 [..., 1 or 2]");
    memset(p, 0, sizeof(*p));
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 1), in->ndim - 1, &p->axis, d);
    if (err)
        return err;
    p->inverse = qv_attr_int(x->node, "inverse", 0) != 0;
    p->onesided = qv_attr_int(x->node, "onesided", 0) != 0;
    len = in->shape[p->axis];
    if (x->n_in > 1 && x->in[1]) {
        err = qv_input_ints(x, 1, &len, 1, &n, d);
        if (err)
            return err;
    }
    if (len < 1 || len > 1000000)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad dft_length");
    p->len = len;
    p->bins = p->onesided ? len / 2 + 1 : len;
    memcpy(shape, in->shape, sizeof(shape));
    shape[p->axis] = p->bins;
    shape[in->ndim - 1] = 2;
    qv_out_set(x, 0, QV_DTYPE_F32, in->ndim, shape);
    return QV_OK;
}

static int stft_f32(struct qv_exec *x)
{
    const struct dft_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    const float *win = x->n_in > 2 && x->in[2] ? x->in[2]->data : NULL;
    int comp = (int)in->shape[2];
    int64_t batch = in->shape[0], length = in->shape[1];

    for (int64_t b = 0; b < batch; b++)
        for (int64_t f = 0; f < p->frames; f++)
            dft1(p, (const float *)in->data + (b * length + f * p->step) * comp, p->len, 1, comp,
                 win, (float *)x->out[0]->data + ((b * p->frames + f) * p->bins) * 2, 1);
    return QV_OK;
}

static int stft_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct dft_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[4], v;
    int n, err = qv_op_arity(x, 2, 4, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    if (in->dtype != QV_DTYPE_F32 || in->ndim != 3 || (in->shape[2] != 1 && in->shape[2] != 2))
        return qv_op_fail(x->node, d, QV_EINVAL, "signal must be float32 [B, L, 1 or 2]");
    memset(p, 0, sizeof(*p));
    err = qv_input_ints(x, 1, &v, 1, &n, d);
    if (err)
        return err;
    p->step = v;
    p->len = 0;
    if (x->n_in > 2 && x->in[2]) {
        if (x->in[2]->dtype != QV_DTYPE_F32 || x->in[2]->ndim != 1)
            return qv_op_fail(x->node, d, QV_EINVAL, "window must be float32 1-D");
        p->len = x->in[2]->shape[0];
    }
    if (x->n_in > 3 && x->in[3]) {
        err = qv_input_ints(x, 3, &v, 1, &n, d);
        if (err)
            return err;
        if (p->len && v != p->len)
            return qv_op_fail(x->node, d, QV_EINVAL, "frame_length differs from the window");
        p->len = v;
    }
    if (p->step < 1 || p->len < 1 || p->len > in->shape[1] || p->len > 1000000)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad frame_step or frame_length");
    p->onesided = qv_attr_int(x->node, "onesided", 1) != 0;
    p->bins = p->onesided ? p->len / 2 + 1 : p->len;
    p->frames = (in->shape[1] - p->len) / p->step + 1;
    shape[0] = in->shape[0];
    shape[1] = p->frames;
    shape[2] = p->bins;
    shape[3] = 2;
    qv_out_set(x, 0, QV_DTYPE_F32, 4, shape);
    return QV_OK;
}

const struct qv_op qv_op_dft = {.name = "DFT",
                                .since_version = 17,
                                .infer_shape = dft_infer,
                                .kernels = {[QV_DTYPE_F32] = dft_f32}};
const struct qv_op qv_op_stft = {.name = "STFT",
                                 .since_version = 17,
                                 .infer_shape = stft_infer,
                                 .kernels = {[QV_DTYPE_F32] = stft_f32}};

/* ---- MelWeightMatrix ---- */

struct mel_params {
    int64_t bins, mels, dft, rate;
    double lo, hi;
};

static int mel_kernel(struct qv_exec *x)
{
    const struct mel_params *p = (const void *)x->priv;
    struct qv_tensor *o = x->out[0];
    double lo_mel = 2595 * log10(1 + p->lo / 700), hi_mel = 2595 * log10(1 + p->hi / 700);
    double step = (hi_mel - lo_mel) / (double)(p->mels + 2);
    int64_t *f = x->scratch;

    for (int64_t i = 0; i < p->mels + 2; i++) {
        double hz = 700 * (pow(10, ((double)i * step + lo_mel) / 2595) - 1);
        f[i] = (int64_t)floor((double)(p->dft + 1) * hz / (double)p->rate);
    }
    memset(o->data, 0, o->nbytes);
    for (int64_t i = 0; i < p->mels; i++) {
        int64_t l = f[i], c = f[i + 1], h = f[i + 2];
        for (int64_t j = l; j <= c; j++) {
            double v = c == l ? 1.0 : (double)(j - l) / (double)(c - l);
            if (j >= 0 && j < p->bins && (c != l || j == c)) {
                if (o->dtype == QV_DTYPE_F64)
                    ((double *)o->data)[j * p->mels + i] = v;
                else
                    ((float *)o->data)[j * p->mels + i] = (float)v;
            }
        }
        for (int64_t j = c; j < h; j++) {
            double v = (double)(h - j) / (double)(h - c);
            if (j >= 0 && j < p->bins) {
                if (o->dtype == QV_DTYPE_F64)
                    ((double *)o->data)[j * p->mels + i] = v;
                else
                    ((float *)o->data)[j * p->mels + i] = (float)v;
            }
        }
    }
    return QV_OK;
}

static int mel_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct mel_params *p = (void *)x->priv;
    int64_t dt = qv_attr_int(x->node, "output_datatype", 1), shape[2];
    int err = qv_op_arity(x, 5, 5, 1, 1, d);

    for (int i = 0; i < 5 && !err; i++) {
        err = qv_input_known(x, i, d);
        if (!err && qv_numel(x->in[i]) != 1)
            err = qv_op_fail(x->node, d, QV_EINVAL, "input %d must be a scalar", i);
    }
    if (err)
        return err;
    if (dt != 1 && dt != 11)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "output_datatype %lld", (long long)dt);
    p->mels = (int64_t)qv_tensor_get_f64(x->in[0], 0);
    p->dft = (int64_t)qv_tensor_get_f64(x->in[1], 0);
    p->rate = (int64_t)qv_tensor_get_f64(x->in[2], 0);
    p->lo = qv_tensor_get_f64(x->in[3], 0);
    p->hi = qv_tensor_get_f64(x->in[4], 0);
    if (p->mels < 1 || p->mels > 100000 || p->dft < 1 || p->dft > 10000000 || p->rate < 1 ||
        !(p->lo >= 0) || !(p->hi > p->lo))
        return qv_op_fail(x->node, d, QV_EINVAL, "bad mel parameters");
    p->bins = p->dft / 2 + 1;
    x->scratch_bytes = sizeof(int64_t) * (size_t)(p->mels + 2);
    shape[0] = p->bins;
    shape[1] = p->mels;
    x->kdtype = x->in[0]->dtype;
    qv_out_set(x, 0, dt == 1 ? QV_DTYPE_F32 : QV_DTYPE_F64, 2, shape);
    return QV_OK;
}

const struct qv_op qv_op_mel_weight_matrix = {
    .name = "MelWeightMatrix",
    .since_version = 17,
    .infer_shape = mel_infer,
    .kernels = {[QV_DTYPE_I32] = mel_kernel, [QV_DTYPE_I64] = mel_kernel},
};
