/* SPDX-License-Identifier: MIT
 *
 * Recurrent layers: RNN, GRU and LSTM (forward, reverse, bidirectional;
 * sequence_lens; initial states; peepholes; clip; custom activations; both
 * layouts). The input projection of every time step is one GEMM per
 * direction into scratch; each step then adds H_{t-1} R^T (another GEMM) and
 * applies the gate equations of the ONNX specification.
 */
#include "op.h"

#include <cblas.h>

enum rnn_kind { K_RNN, K_GRU, K_LSTM };

enum act {
    A_RELU,
    A_TANH,
    A_SIGMOID,
    A_AFFINE,
    A_LEAKY_RELU,
    A_THRESHOLDED_RELU,
    A_SCALED_TANH,
    A_HARD_SIGMOID,
    A_ELU,
    A_SOFTSIGN,
    A_SOFTPLUS,
};

struct act_fn {
    int kind;
    float alpha, beta;
};

struct rnn_params {
    int kind, gates, dirs; /* gates: 1, 3 or 4 */
    bool reverse_only, layout, linear_before_reset, input_forget;
    int64_t seq, batch, input, hidden;
    float clip;                                /* 0: none */
    struct act_fn act[6];                      /* per direction: f, g, h */
    size_t xw_off, h_off, c_off, g_off, r_off; /* scratch layout, in floats */
};

_Static_assert(sizeof(struct rnn_params) <= QV_EXEC_PRIV, "priv too small");

static inline float apply(const struct act_fn *a, float v)
{
    switch (a->kind) {
    case A_RELU:
        return v > 0 ? v : 0;
    case A_TANH:
        return tanhf(v);
    case A_SIGMOID:
        return v >= 0 ? 1 / (1 + expf(-v)) : expf(v) / (1 + expf(v));
    case A_AFFINE:
        return a->alpha * v + a->beta;
    case A_LEAKY_RELU:
        return v < 0 ? a->alpha * v : v;
    case A_THRESHOLDED_RELU:
        return v > a->alpha ? v : 0;
    case A_SCALED_TANH:
        return a->alpha * tanhf(a->beta * v);
    case A_HARD_SIGMOID:
        return fmaxf(0, fminf(1, a->alpha * v + a->beta));
    case A_ELU:
        return v < 0 ? a->alpha * (expf(v) - 1) : v;
    case A_SOFTSIGN:
        return v / (1 + fabsf(v));
    default:
        return v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v));
    }
}

static inline float clipped(const struct rnn_params *p, float v)
{
    if (p->clip > 0)
        return v < -p->clip ? -p->clip : (v > p->clip ? p->clip : v);
    return v;
}

static int rnn_f32(struct qv_exec *x)
{
    const struct rnn_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data, *W = x->in[1]->data, *R = x->in[2]->data;
    const struct qv_tensor *tb = x->n_in > 3 ? x->in[3] : NULL;
    const struct qv_tensor *tl = x->n_in > 4 ? x->in[4] : NULL;
    const struct qv_tensor *th = x->n_in > 5 ? x->in[5] : NULL;
    const struct qv_tensor *tc = x->n_in > 6 ? x->in[6] : NULL;
    const struct qv_tensor *tp = x->n_in > 7 ? x->in[7] : NULL;
    float *Y = x->n_out > 0 && x->out[0] ? x->out[0]->data : NULL;
    float *Yh = x->n_out > 1 && x->out[1] ? x->out[1]->data : NULL;
    float *Yc = x->n_out > 2 && x->out[2] ? x->out[2]->data : NULL;
    float *s = x->scratch;
    float *xw = s + p->xw_off, *h = s + p->h_off, *c = s + p->c_off, *g = s + p->g_off;
    float *rh = s + p->r_off;
    int64_t S = p->seq, B = p->batch, In = p->input, H = p->hidden, G = p->gates;

    if (Y)
        memset(Y, 0, x->out[0]->nbytes);
    for (int dir = 0; dir < p->dirs; dir++) {
        bool rev = p->reverse_only || dir == 1;
        const float *Wd = W + dir * G * H * In, *Rd = R + dir * G * H * H;
        const float *Wb = tb ? (const float *)tb->data + dir * 2 * G * H : NULL;
        const float *Rb = Wb ? Wb + G * H : NULL;
        const float *P = tp ? (const float *)tp->data + dir * 3 * H : NULL;
        const struct act_fn *f = &p->act[dir * 3], *gf = f + 1, *hf = f + 2;

        /* xw[row(t,b), :] = X[row] W^T for every step at once. */
        if (S * B > 0 && In > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(S * B), (int)(G * H),
                        (int)In, 1.0f, X, (int)In, Wd, (int)In, 0.0f, xw, (int)(G * H));
        else
            memset(xw, 0, sizeof(float) * (size_t)(S * B * G * H));
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < H; j++) {
                h[b * H + j] = th ? ((const float *)th->data)[(dir * B + b) * H + j] : 0;
                c[b * H + j] = tc ? ((const float *)tc->data)[(dir * B + b) * H + j] : 0;
            }
        for (int64_t step = 0; step < S; step++) {
            /* g = H_{t-1} R^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)(G * H), (int)H, 1.0f,
                        h, (int)H, Rd, (int)H, 0.0f, g, (int)(G * H));
            for (int64_t b = 0; b < B; b++) {
                int64_t len = tl ? (tl->dtype == QV_DTYPE_I64 ? ((const int64_t *)tl->data)[b]
                                                              : ((const int32_t *)tl->data)[b])
                                 : S;
                int64_t t = rev ? len - 1 - step : step;
                const float *xr;
                float *gr = g + b * G * H, *hb = h + b * H, *cb = c + b * H;
                if (step >= len || t < 0)
                    continue; /* past this sequence's end: state and output stay */
                xr = xw + (p->layout ? b * S + t : t * B + b) * G * H;
                if (p->kind == K_RNN) {
                    for (int64_t j = 0; j < H; j++) {
                        float v = xr[j] + gr[j] + (Wb ? Wb[j] + Rb[j] : 0);
                        hb[j] = apply(f, clipped(p, v));
                    }
                } else if (p->kind == K_GRU) {
                    /* Gate order z, r, h. rh = r (.) H_{t-1} before R_h (linear_before_reset=0). */
                    float *z = rh; /* H floats of scratch per batch row */
                    for (int64_t j = 0; j < H; j++) {
                        float zt = xr[j] + gr[j] + (Wb ? Wb[j] + Rb[j] : 0);
                        float rt = xr[H + j] + gr[H + j] + (Wb ? Wb[H + j] + Rb[H + j] : 0);
                        zt = apply(f, clipped(p, zt));
                        rt = apply(f, clipped(p, rt));
                        z[j] = zt;
                        z[H + j] = rt;
                    }
                    for (int64_t j = 0; j < H; j++) {
                        float acc = 0;
                        if (p->linear_before_reset) {
                            acc = z[H + j] * (gr[2 * H + j] + (Rb ? Rb[2 * H + j] : 0));
                        } else {
                            const float *rrow = Rd + (2 * H + j) * H;
                            for (int64_t k = 0; k < H; k++)
                                acc += z[H + k] * hb[k] * rrow[k];
                            acc += Rb ? Rb[2 * H + j] : 0;
                        }
                        z[2 * H + j] =
                            apply(gf, clipped(p, xr[2 * H + j] + acc + (Wb ? Wb[2 * H + j] : 0)));
                    }
                    for (int64_t j = 0; j < H; j++)
                        hb[j] = (1 - z[j]) * z[2 * H + j] + z[j] * hb[j];
                } else {
                    /* Gate order i, o, f, c; peepholes i, o, f. */
                    for (int64_t j = 0; j < H; j++) {
                        float gi = xr[j] + gr[j] + (Wb ? Wb[j] + Rb[j] : 0);
                        float go = xr[H + j] + gr[H + j] + (Wb ? Wb[H + j] + Rb[H + j] : 0);
                        float gfv = xr[2 * H + j] + gr[2 * H + j] +
                                    (Wb ? Wb[2 * H + j] + Rb[2 * H + j] : 0);
                        float gc = xr[3 * H + j] + gr[3 * H + j] +
                                   (Wb ? Wb[3 * H + j] + Rb[3 * H + j] : 0);
                        float it, ft, ct, ot, cnew;
                        if (P) {
                            gi += P[j] * cb[j];
                            gfv += P[2 * H + j] * cb[j];
                        }
                        it = apply(f, clipped(p, gi));
                        ft = p->input_forget ? 1 - it : apply(f, clipped(p, gfv));
                        ct = apply(gf, clipped(p, gc));
                        cnew = ft * cb[j] + it * ct;
                        if (P)
                            go += P[H + j] * cnew;
                        ot = apply(f, clipped(p, go));
                        cb[j] = cnew;
                        rh[b * H + j] = ot * apply(hf, cnew);
                    }
                    for (int64_t j = 0; j < H; j++)
                        hb[j] = rh[b * H + j];
                }
                if (Y) {
                    float *yrow = p->layout ? Y + ((b * S + t) * p->dirs + dir) * H
                                            : Y + ((t * p->dirs + dir) * B + b) * H;
                    memcpy(yrow, hb, sizeof(float) * (size_t)H);
                }
            }
        }
        for (int64_t b = 0; b < B; b++) {
            size_t off =
                p->layout ? (size_t)((b * p->dirs + dir) * H) : (size_t)((dir * B + b) * H);
            if (Yh)
                memcpy(Yh + off, h + b * H, sizeof(float) * (size_t)H);
            if (Yc)
                memcpy(Yc + off, c + b * H, sizeof(float) * (size_t)H);
        }
    }
    return QV_OK;
}

static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char cb = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb)
            return false;
    }
    return *a == *b;
}

static int parse_act(const char *s, int *kind)
{
    static const char *const names[] = {
        "Relu",       "Tanh",        "Sigmoid", "Affine",   "LeakyRelu", "ThresholdedRelu",
        "ScaledTanh", "HardSigmoid", "Elu",     "Softsign", "Softplus"};

    for (size_t i = 0; i < QV_ARRAY_LEN(names); i++) {
        if (same_name(s, names[i])) {
            *kind = (int)i;
            return 0;
        }
    }
    return -1;
}

static int rnn_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct rnn_params *p = (void *)x->priv;
    const struct qv_node *n = x->node;
    const struct qv_tensor *X, *W, *R;
    const char *direction = qv_attr_string(n, "direction", "forward");
    int n_acts, n_alpha, n_beta, ia = 0, ib = 0, per_dir, err;
    const char *const *acts = NULL;
    const float *alphas = qv_attr_floats(n, "activation_alpha", &n_alpha);
    const float *betas = qv_attr_floats(n, "activation_beta", &n_beta);
    const struct qv_attr *aa = qv_attr_find(n, "activations");
    int64_t shape[4], G, H, D;
    size_t need;

    err = qv_op_arity(x, 3, strcmp(n->op_type, "LSTM") == 0 ? 8 : 6, 0, 3, d);
    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    p->kind =
        strcmp(n->op_type, "RNN") == 0 ? K_RNN : (strcmp(n->op_type, "GRU") == 0 ? K_GRU : K_LSTM);
    p->gates = p->kind == K_RNN ? 1 : (p->kind == K_GRU ? 3 : 4);
    per_dir = p->kind == K_RNN ? 1 : (p->kind == K_GRU ? 2 : 3);
    X = x->in[0];
    W = x->in[1];
    R = x->in[2];
    if (X->dtype != QV_DTYPE_F32 || W->dtype != QV_DTYPE_F32 || R->dtype != QV_DTYPE_F32)
        return qv_op_fail(n, d, QV_ENOTSUP, "only float32 is supported");
    if (strcmp(direction, "forward") == 0)
        p->dirs = 1;
    else if (strcmp(direction, "reverse") == 0)
        p->dirs = 1, p->reverse_only = true;
    else if (strcmp(direction, "bidirectional") == 0)
        p->dirs = 2;
    else
        return qv_op_fail(n, d, QV_EINVAL, "unknown direction '%s'", direction);
    p->layout = qv_attr_int(n, "layout", 0) != 0;
    p->linear_before_reset = qv_attr_int(n, "linear_before_reset", 0) != 0;
    p->input_forget = qv_attr_int(n, "input_forget", 0) != 0;
    p->clip = qv_attr_float(n, "clip", 0.0f);
    if (p->clip < 0)
        p->clip = 0;
    if (X->ndim != 3 || W->ndim != 3 || R->ndim != 3)
        return qv_op_fail(n, d, QV_EINVAL, "X, W and R must be 3-D");
    p->seq = X->shape[p->layout ? 1 : 0];
    p->batch = X->shape[p->layout ? 0 : 1];
    p->input = X->shape[2];
    G = p->gates;
    D = p->dirs;
    H = qv_attr_int(n, "hidden_size", R->shape[2]);
    p->hidden = H;
    if (W->shape[0] != D || W->shape[1] != G * H || W->shape[2] != p->input || R->shape[0] != D ||
        R->shape[1] != G * H || R->shape[2] != H)
        return qv_op_fail(n, d, QV_EINVAL, "W or R do not match hidden_size %lld", (long long)H);
    if (x->n_in > 3 && x->in[3] && qv_numel(x->in[3]) != D * 2 * G * H)
        return qv_op_fail(n, d, QV_EINVAL, "B has the wrong size");
    if (x->n_in > 4 && x->in[4] &&
        ((x->in[4]->dtype != QV_DTYPE_I32 && x->in[4]->dtype != QV_DTYPE_I64) ||
         qv_numel(x->in[4]) != p->batch))
        return qv_op_fail(n, d, QV_EINVAL, "sequence_lens must be int32 [batch]");
    for (int i = 5; i < 7 && i < x->n_in; i++)
        if (x->in[i] && qv_numel(x->in[i]) != D * p->batch * H)
            return qv_op_fail(n, d, QV_EINVAL, "initial state %d has the wrong size", i);
    if (x->n_in > 7 && x->in[7] && qv_numel(x->in[7]) != D * 3 * H)
        return qv_op_fail(n, d, QV_EINVAL, "P has the wrong size");
    for (int i = 3; i < x->n_in; i++)
        if (x->in[i] && i != 4 && x->in[i]->dtype != QV_DTYPE_F32)
            return qv_op_fail(n, d, QV_EINVAL, "input %d must be float32", i);

    /* Activations: defaults, or the list (per_dir per direction). */
    if (aa && aa->type == QV_ATTR_STRINGS) {
        acts = aa->strings;
        n_acts = aa->n;
        if (n_acts != per_dir * D)
            return qv_op_fail(n, d, QV_EINVAL, "needs %d activations", per_dir * (int)D);
    }
    for (int dir = 0; dir < D; dir++)
        for (int k = 0; k < 3; k++) {
            struct act_fn *a = &p->act[dir * 3 + k];
            if (k >= per_dir) {
                a->kind = A_TANH;
                continue;
            }
            if (acts == NULL) {
                a->kind = (p->kind == K_RNN || k > 0) ? A_TANH : A_SIGMOID;
                continue;
            }
            if (parse_act(acts[dir * per_dir + k], &a->kind) != 0)
                return qv_op_fail(n, d, QV_ENOTSUP, "activation '%s' is not supported",
                                  acts[dir * per_dir + k]);
            /* Defaults per function, then the lists in order. */
            a->alpha = a->kind == A_LEAKY_RELU ? 0.01f : (a->kind == A_HARD_SIGMOID ? 0.2f : 1.0f);
            a->beta = a->kind == A_HARD_SIGMOID ? 0.5f : (a->kind == A_AFFINE ? 0.0f : 1.0f);
            if (a->kind == A_AFFINE || a->kind == A_LEAKY_RELU || a->kind == A_THRESHOLDED_RELU ||
                a->kind == A_SCALED_TANH || a->kind == A_HARD_SIGMOID || a->kind == A_ELU) {
                if (ia < n_alpha)
                    a->alpha = alphas[ia++];
            }
            if (a->kind == A_AFFINE || a->kind == A_SCALED_TANH || a->kind == A_HARD_SIGMOID) {
                if (ib < n_beta)
                    a->beta = betas[ib++];
            }
        }

    /* Scratch: xw [S*B, G*H], h [B*H], c [B*H], g [B*G*H], r [B*3H]. */
    p->xw_off = 0;
    p->h_off = p->xw_off + (size_t)(p->seq * p->batch * G * H);
    p->c_off = p->h_off + (size_t)(p->batch * H);
    p->g_off = p->c_off + (size_t)(p->batch * H);
    p->r_off = p->g_off + (size_t)(p->batch * G * H);
    need = p->r_off + (size_t)(p->batch * 3 * H) + 1;
    if (need > ((size_t)1 << 32))
        return qv_op_fail(n, d, QV_E2BIG, "too large");
    x->scratch_bytes = need * sizeof(float);

    if (p->layout) {
        shape[0] = p->batch, shape[1] = p->seq, shape[2] = D, shape[3] = H;
    } else {
        shape[0] = p->seq, shape[1] = D, shape[2] = p->batch, shape[3] = H;
    }
    if (x->n_out > 0)
        qv_out_set(x, 0, QV_DTYPE_F32, 4, shape);
    if (p->layout) {
        shape[0] = p->batch, shape[1] = D, shape[2] = H;
    } else {
        shape[0] = D, shape[1] = p->batch, shape[2] = H;
    }
    if (x->n_out > 1)
        qv_out_set(x, 1, QV_DTYPE_F32, 3, shape);
    if (x->n_out > 2) {
        if (p->kind != K_LSTM)
            return qv_op_fail(n, d, QV_EINVAL, "too many outputs");
        qv_out_set(x, 2, QV_DTYPE_F32, 3, shape);
    }
    return QV_OK;
}

const struct qv_op qv_op_gru = {.name = "GRU",
                                .since_version = 1,
                                .infer_shape = rnn_infer,
                                .kernels = {[QV_DTYPE_F32] = rnn_f32}};
const struct qv_op qv_op_lstm = {.name = "LSTM",
                                 .since_version = 1,
                                 .infer_shape = rnn_infer,
                                 .kernels = {[QV_DTYPE_F32] = rnn_f32}};
const struct qv_op qv_op_rnn = {.name = "RNN",
                                .since_version = 1,
                                .infer_shape = rnn_infer,
                                .kernels = {[QV_DTYPE_F32] = rnn_f32}};
