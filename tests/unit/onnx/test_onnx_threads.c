/* SPDX-License-Identifier: MIT
 *
 * The ONNX runtime's intra-op threads and its Conv + Relu/Clip fusion:
 * pooling and element-wise kernels on odd sizes give the same bits with 1, 2
 * and 3 threads; convolutions (plain, strided and padded, grouped, 1x1, few
 * channels) agree within 1e-5 across thread counts and within 1e-4 with a
 * direct convolution written here; and the fused
 * plan gives the same bits as the plan without fusion. 3x3 convolutions
 * with constant weights (Winograd F(2x2, 3x3)) agree with a direct sum in
 * double and with the im2col path on odd sizes, asymmetric pads, several
 * blocks of tiles and 1-3 threads; MaxPool agrees with a reference written
 * here, NaN and infinities included. Models are written here as protobuf
 * bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx.h"
#include "onnx/ops/sgemm_packed.h"

/* ---- A forward protobuf writer ---- */

struct pb {
    unsigned char *p;
    size_t n, cap;
};

static void pb_raw(struct pb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(struct pb *b, uint64_t v)
{
    unsigned char c;

    do {
        c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        pb_raw(b, &c, 1);
    } while (v);
}

static void pb_int(struct pb *b, unsigned f, uint64_t v)
{
    pb_varint(b, (uint64_t)f << 3);
    pb_varint(b, v);
}

static void pb_bytes(struct pb *b, unsigned f, const void *d, size_t n)
{
    pb_varint(b, ((uint64_t)f << 3) | 2);
    pb_varint(b, n);
    pb_raw(b, d, n);
}

static void pb_str(struct pb *b, unsigned f, const char *s)
{
    pb_bytes(b, f, s, strlen(s));
}

static void pb_msg(struct pb *b, unsigned f, struct pb *m)
{
    pb_bytes(b, f, m->p, m->n);
    free(m->p);
    memset(m, 0, sizeof(*m));
}

static void pb_float(struct pb *b, unsigned f, float v)
{
    pb_varint(b, ((uint64_t)f << 3) | 5);
    pb_raw(b, &v, 4);
}

/* AttributeProto: INT (2), INTS (7), FLOAT (1). */
static void attr_int(struct pb *node, const char *name, int64_t v)
{
    struct pb a = {0};

    pb_str(&a, 1, name);
    pb_int(&a, 3, (uint64_t)v);
    pb_int(&a, 20, 2);
    pb_msg(node, 5, &a);
}

static void attr_ints(struct pb *node, const char *name, int n, const int64_t *v)
{
    struct pb a = {0};

    pb_str(&a, 1, name);
    for (int i = 0; i < n; i++)
        pb_int(&a, 8, (uint64_t)v[i]);
    pb_int(&a, 20, 7);
    pb_msg(node, 5, &a);
}

static void attr_float(struct pb *node, const char *name, float v)
{
    struct pb a = {0};

    pb_str(&a, 1, name);
    pb_float(&a, 2, v);
    pb_int(&a, 20, 1);
    pb_msg(node, 5, &a);
}

/* ValueInfoProto of a float tensor; ndim < 0: no shape. */
static void value_info(struct pb *g, unsigned f, const char *name, int ndim, const int64_t *dims)
{
    struct pb vi = {0}, type = {0}, tensor = {0}, shape = {0};

    pb_str(&vi, 1, name);
    pb_int(&tensor, 1, 1); /* FLOAT */
    for (int i = 0; i < ndim; i++) {
        struct pb dim = {0};
        pb_int(&dim, 1, (uint64_t)dims[i]);
        pb_msg(&shape, 1, &dim);
    }
    if (ndim >= 0)
        pb_msg(&tensor, 2, &shape);
    pb_msg(&type, 1, &tensor);
    pb_msg(&vi, 2, &type);
    pb_msg(g, f, &vi);
}

static void node_start(struct pb *node, const char *op, const char *name, int n_in,
                       const char *const *ins, const char *out)
{
    for (int i = 0; i < n_in; i++)
        pb_str(node, 1, ins[i]);
    pb_str(node, 2, out);
    pb_str(node, 3, name);
    pb_str(node, 4, op);
}

static struct pb model_finish(struct pb *g, int opset)
{
    struct pb m = {0}, os = {0};

    pb_int(&m, 1, 7); /* ir_version */
    pb_msg(&m, 7, g);
    pb_int(&os, 2, (uint64_t)opset);
    pb_msg(&m, 8, &os);
    return m;
}

/* ---- Models ---- */

struct conv_case {
    int64_t n, cin, cout, h, w, k, stride, pad, group;
};

enum { ACT_NONE, ACT_RELU, ACT_CLIP };

static void initializer(struct pb *g, const char *name, int ndim, const int64_t *dims,
                        const float *v);

/* Y = act(Conv(X, W, B)) with X, W, B graph inputs, or W and B constant
 * (initializers) when Wc and Bc are given; opset 10 (Clip's bounds are
 * attributes). */
static struct pb conv_model_const(const struct conv_case *c, int act, const float *Wc,
                                  const float *Bc)
{
    struct pb g = {0}, node = {0};
    const char *ins[] = {"X", "W", "B"};
    int64_t xd[] = {c->n, c->cin, c->h, c->w};
    int64_t wd[] = {c->cout, c->cin / c->group, c->k, c->k};
    int64_t bd[] = {c->cout};
    int64_t ks[] = {c->k, c->k}, st[] = {c->stride, c->stride};
    int64_t pads[] = {c->pad, c->pad, c->pad, c->pad};

    node_start(&node, "Conv", "conv", 3, ins, act == ACT_NONE ? "Y" : "C");
    attr_ints(&node, "kernel_shape", 2, ks);
    attr_ints(&node, "strides", 2, st);
    attr_ints(&node, "pads", 4, pads);
    attr_int(&node, "group", c->group);
    pb_msg(&g, 1, &node);
    if (act != ACT_NONE) {
        const char *a[] = {"C"};
        node_start(&node, act == ACT_RELU ? "Relu" : "Clip", "act", 1, a, "Y");
        if (act == ACT_CLIP) {
            attr_float(&node, "min", -0.25f);
            attr_float(&node, "max", 0.5f);
        }
        pb_msg(&g, 1, &node);
    }
    pb_str(&g, 2, "g");
    value_info(&g, 11, "X", 4, xd);
    if (Wc) {
        initializer(&g, "W", 4, wd, Wc);
        initializer(&g, "B", 1, bd, Bc);
    } else {
        value_info(&g, 11, "W", 4, wd);
        value_info(&g, 11, "B", 1, bd);
    }
    value_info(&g, 12, "Y", -1, NULL);
    return model_finish(&g, 10);
}

static struct pb conv_model(const struct conv_case *c, int act)
{
    return conv_model_const(c, act, NULL, NULL);
}

/* TensorProto initializer of a float tensor. */
static void initializer(struct pb *g, const char *name, int ndim, const int64_t *dims,
                        const float *v)
{
    struct pb t = {0};
    int64_t n = 1;

    for (int i = 0; i < ndim; i++) {
        pb_int(&t, 1, (uint64_t)dims[i]);
        n *= dims[i];
    }
    pb_int(&t, 2, 1); /* FLOAT */
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, v, sizeof(float) * (size_t)n);
    pb_msg(g, 5, &t);
}

/* A 3x3, stride-1 Conv with W and B constant (initializers), pads
 * {top, left, bottom, right}, then the activation. */
struct wino_case {
    int64_t n, cin, cout, h, w, pads[4];
};

static struct pb wino_model(const struct wino_case *c, int act, const float *W, const float *B)
{
    struct pb g = {0}, node = {0};
    const char *ins[] = {"X", "W", "B"};
    int64_t xd[] = {c->n, c->cin, c->h, c->w}, wd[] = {c->cout, c->cin, 3, 3}, bd[] = {c->cout};
    int64_t ks[] = {3, 3};
    int64_t pads[] = {c->pads[0], c->pads[1], c->pads[2], c->pads[3]};

    node_start(&node, "Conv", "conv", 3, ins, act == ACT_NONE ? "Y" : "C");
    attr_ints(&node, "kernel_shape", 2, ks);
    attr_ints(&node, "pads", 4, pads);
    pb_msg(&g, 1, &node);
    if (act != ACT_NONE) {
        const char *a[] = {"C"};
        node_start(&node, act == ACT_RELU ? "Relu" : "Clip", "act", 1, a, "Y");
        if (act == ACT_CLIP) {
            attr_float(&node, "min", -0.25f);
            attr_float(&node, "max", 0.5f);
        }
        pb_msg(&g, 1, &node);
    }
    pb_str(&g, 2, "g");
    initializer(&g, "W", 4, wd, W);
    initializer(&g, "B", 1, bd, B);
    value_info(&g, 11, "X", 4, xd);
    value_info(&g, 12, "Y", -1, NULL);
    return model_finish(&g, 10);
}

/* ResNet's block end: Y = act(Add(Conv(X, W, B), R)) with R = Relu(Z)
 * computed before the Conv (after it when 'late'), or R a constant
 * initializer when Rc is given; the Add's operands swapped when 'swap'. W
 * and B constant when Wc is given. */
static struct pb residual_model(const struct conv_case *c, int act, const float *Wc,
                                const float *Bc, const float *Rc, bool swap, bool late)
{
    struct pb g = {0}, node = {0}, rnode = {0};
    const char *ins[] = {"X", "W", "B"}, *z[] = {"Z"};
    const char *cr[] = {"C", "R"}, *rc[] = {"R", "C"}, *s[] = {"S"};
    int64_t o = (c->h + 2 * c->pad - c->k) / c->stride + 1;
    int64_t ow = (c->w + 2 * c->pad - c->k) / c->stride + 1;
    int64_t xd[] = {c->n, c->cin, c->h, c->w}, zd[] = {c->n, c->cout, o, ow};
    int64_t wd[] = {c->cout, c->cin / c->group, c->k, c->k}, bd[] = {c->cout};
    int64_t ks[] = {c->k, c->k}, st[] = {c->stride, c->stride};
    int64_t pads[] = {c->pad, c->pad, c->pad, c->pad};

    node_start(&rnode, "Relu", "res", 1, z, "R");
    if (!Rc && !late)
        pb_msg(&g, 1, &rnode);
    node_start(&node, "Conv", "conv", 3, ins, "C");
    attr_ints(&node, "kernel_shape", 2, ks);
    attr_ints(&node, "strides", 2, st);
    attr_ints(&node, "pads", 4, pads);
    attr_int(&node, "group", c->group);
    pb_msg(&g, 1, &node);
    if (!Rc && late)
        pb_msg(&g, 1, &rnode);
    if (Rc)
        free(rnode.p); /* no Relu: R is the initializer */
    node_start(&node, "Add", "add", 2, swap ? rc : cr, act == ACT_NONE ? "Y" : "S");
    pb_msg(&g, 1, &node);
    if (act != ACT_NONE) {
        node_start(&node, act == ACT_RELU ? "Relu" : "Clip", "act", 1, s, "Y");
        if (act == ACT_CLIP) {
            attr_float(&node, "min", -0.25f);
            attr_float(&node, "max", 0.5f);
        }
        pb_msg(&g, 1, &node);
    }
    pb_str(&g, 2, "g");
    value_info(&g, 11, "X", 4, xd);
    if (Rc)
        initializer(&g, "R", 4, zd, Rc);
    else
        value_info(&g, 11, "Z", 4, zd);
    if (Wc) {
        initializer(&g, "W", 4, wd, Wc);
        initializer(&g, "B", 1, bd, Bc);
    } else {
        value_info(&g, 11, "W", 4, wd);
        value_info(&g, 11, "B", 1, bd);
    }
    value_info(&g, 12, "Y", -1, NULL);
    return model_finish(&g, 10);
}

/* MaxPool(X) with the given geometry; opset 12 (ceil_mode, dilations). */
static struct pb maxpool_model(const int64_t *xd, const int64_t *ks, const int64_t *st,
                               const int64_t *pads, int ceil_mode)
{
    struct pb g = {0}, node = {0};
    const char *x[] = {"X"};

    node_start(&node, "MaxPool", "max", 1, x, "Y");
    attr_ints(&node, "kernel_shape", 2, ks);
    attr_ints(&node, "strides", 2, st);
    attr_ints(&node, "pads", 4, pads);
    attr_int(&node, "ceil_mode", ceil_mode);
    pb_msg(&g, 1, &node);
    pb_str(&g, 2, "g");
    value_info(&g, 11, "X", 4, xd);
    value_info(&g, 12, "Y", -1, NULL);
    return model_finish(&g, 12);
}

/* Relu(Add(MaxPool(X), AveragePool(X))) + Sigmoid(...) on odd sizes: pooling
 * and element-wise kernels. */
static struct pb pool_model(const int64_t *xd)
{
    struct pb g = {0}, node = {0};
    int64_t ks[] = {3, 3}, st[] = {2, 2}, pads[] = {1, 1, 1, 1};
    const char *x[] = {"X"}, *ab[] = {"P", "Q"}, *s[] = {"S"}, *r[] = {"R"}, *rt[] = {"R", "T"};

    node_start(&node, "MaxPool", "max", 1, x, "P");
    attr_ints(&node, "kernel_shape", 2, ks);
    attr_ints(&node, "strides", 2, st);
    attr_ints(&node, "pads", 4, pads);
    pb_msg(&g, 1, &node);
    node_start(&node, "AveragePool", "avg", 1, x, "Q");
    attr_ints(&node, "kernel_shape", 2, ks);
    attr_ints(&node, "strides", 2, st);
    attr_ints(&node, "pads", 4, pads);
    pb_msg(&g, 1, &node);
    node_start(&node, "Add", "add", 2, ab, "S");
    pb_msg(&g, 1, &node);
    node_start(&node, "Relu", "relu", 1, s, "R");
    pb_msg(&g, 1, &node);
    node_start(&node, "Sigmoid", "sig", 1, r, "T");
    pb_msg(&g, 1, &node);
    node_start(&node, "Mul", "mul", 2, rt, "Y");
    pb_msg(&g, 1, &node);
    pb_str(&g, 2, "g");
    value_info(&g, 11, "X", 4, xd);
    value_info(&g, 12, "Y", -1, NULL);
    return model_finish(&g, 13);
}

/* InstanceNormalization(BatchNormalization(X, s, b, m, v), s, b). */
static struct pb norm_model(const int64_t *xd)
{
    struct pb g = {0}, node = {0};
    const char *bn[] = {"X", "s", "b", "m", "v"}, *in[] = {"Z", "s", "b"};
    int64_t cd[] = {xd[1]};

    node_start(&node, "BatchNormalization", "bn", 5, bn, "Z");
    pb_msg(&g, 1, &node);
    node_start(&node, "InstanceNormalization", "in", 3, in, "Y");
    pb_msg(&g, 1, &node);
    pb_str(&g, 2, "g");
    value_info(&g, 11, "X", 4, xd);
    for (int i = 1; i < 5; i++)
        value_info(&g, 11, bn[i], 1, cd);
    value_info(&g, 12, "Y", -1, NULL);
    return model_finish(&g, 13);
}

/* ---- Running ---- */

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void tensor_rand(struct qv_tensor *t, const char *name, int ndim, const int64_t *shape)
{
    assert_int_equal(qv_tensor_alloc(t, name, QV_DTYPE_F32, ndim, shape), QV_OK);
    for (int64_t i = 0; i < qv_tensor_numel(t); i++)
        ((float *)t->data)[i] = frand();
}

/* Loads 'mb' with the options and runs it twice on in[] (the second run
 * reuses the plan and the pool); out is the result of the second. */
static qv_onnx_model *load_run(const struct pb *mb, int threads, bool no_fusion,
                               struct qv_tensor *in, int n_in, struct qv_tensor *out)
{
    struct qv_onnx_options opt = {.threads = threads, .no_fusion = no_fusion};
    struct qv_diag d = {{0}};
    qv_onnx_model *m = NULL;
    int n_out = 0;

    if (qv_onnx_load_buffer(mb->p, mb->n, NULL, &opt, &m, &d) != QV_OK)
        fail_msg("load: %s", d.msg);
    for (int k = 0; k < 2; k++) {
        if (qv_onnx_run(m, in, n_in, out, 1, &n_out, &d) != QV_OK)
            fail_msg("run: %s", d.msg);
        assert_int_equal(n_out, 1);
        if (k == 0)
            qv_tensor_fini(out);
    }
    return m;
}

/* OpenBLAS blocks a product split by rows differently from the whole
 * product, so sums round differently: convolutions (outputs of order 1,
 * sums of up to 150 products here) compare within 1e-5. */
static void assert_close(const struct qv_tensor *a, const struct qv_tensor *b, const char *what,
                         int threads)
{
    assert_int_equal(a->ndim, b->ndim);
    assert_memory_equal(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
    assert_int_equal(a->nbytes, b->nbytes);
    for (size_t i = 0; i < a->nbytes / sizeof(float); i++) {
        double x = ((const float *)a->data)[i], y = ((const float *)b->data)[i];
        if (!(fabs(x - y) <= 1e-5 * (1.0 + fabs(x))))
            fail_msg("%s, %d threads: element %zu is %.9g, %.9g with one thread", what, threads, i,
                     y, x);
    }
}

static void assert_same_bits(const struct qv_tensor *a, const struct qv_tensor *b, const char *what,
                             int threads)
{
    assert_int_equal(a->ndim, b->ndim);
    assert_memory_equal(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
    assert_int_equal(a->nbytes, b->nbytes);
    for (size_t i = 0; i < a->nbytes / sizeof(float); i++)
        if (memcmp((const float *)a->data + i, (const float *)b->data + i, sizeof(float)) != 0)
            fail_msg("%s, %d threads: element %zu is %.9g, %.9g with one thread", what, threads, i,
                     (double)((const float *)b->data)[i], (double)((const float *)a->data)[i]);
}

/* The convolution computed directly, in double. */
static void conv_check(const struct conv_case *c, int act, const struct qv_tensor *in,
                       const struct qv_tensor *y)
{
    const float *X = in[0].data, *W = in[1].data, *B = in[2].data, *Y = y->data;
    int64_t oh = (c->h + 2 * c->pad - c->k) / c->stride + 1;
    int64_t ow = (c->w + 2 * c->pad - c->k) / c->stride + 1;
    int64_t cg = c->cin / c->group, mg = c->cout / c->group;

    assert_int_equal(y->shape[2], oh);
    assert_int_equal(y->shape[3], ow);
    for (int64_t b = 0; b < c->n; b++)
        for (int64_t m = 0; m < c->cout; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = B[m];
                    int64_t g = m / mg;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ki = 0; ki < c->k; ki++)
                            for (int64_t kj = 0; kj < c->k; kj++) {
                                int64_t hi = i * c->stride - c->pad + ki;
                                int64_t wj = j * c->stride - c->pad + kj;
                                if (hi < 0 || hi >= c->h || wj < 0 || wj >= c->w)
                                    continue;
                                acc += (double)
                                           X[((b * c->cin + g * cg + ci) * c->h + hi) * c->w + wj] *
                                       W[((m * cg + ci) * c->k + ki) * c->k + kj];
                            }
                    if (act == ACT_RELU)
                        acc = acc > 0 ? acc : 0;
                    else if (act == ACT_CLIP)
                        acc = acc < -0.25 ? -0.25 : (acc > 0.5 ? 0.5 : acc);
                    {
                        double got = Y[((b * c->cout + m) * oh + i) * ow + j];
                        if (fabs(got - acc) > 1e-4)
                            fail_msg("conv [%lld,%lld,%lld,%lld] = %.7g, direct %.7g", (long long)b,
                                     (long long)m, (long long)i, (long long)j, got, acc);
                    }
                }
}

static const struct conv_case conv_cases[] = {
    {1, 3, 37, 23, 19, 3, 1, 1, 1}, /* 3x3, odd channels and sizes */
    {2, 5, 67, 17, 21, 3, 2, 1, 1}, /* strided, batch 2 */
    {1, 6, 9, 13, 11, 3, 1, 0, 3},  /* grouped */
    {1, 7, 7, 15, 13, 3, 1, 1, 7},  /* depthwise */
    {1, 16, 48, 9, 7, 1, 1, 0, 1},  /* 1x1: no im2col */
    {1, 4, 5, 41, 37, 5, 1, 2, 1},  /* few output channels: split by columns */
    {1, 3, 33, 29, 31, 7, 2, 3, 1}, /* ResNet's first layer, smaller */
};

static void test_conv_threads_same_bits(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(conv_cases) / sizeof(conv_cases[0]); k++) {
        const struct conv_case *c = &conv_cases[k];
        int64_t xd[] = {c->n, c->cin, c->h, c->w};
        int64_t wd[] = {c->cout, c->cin / c->group, c->k, c->k};
        int64_t bd[] = {c->cout};
        struct qv_tensor in[3], one, out;
        char what[64];

        snprintf(what, sizeof(what), "conv case %zu", k);
        tensor_rand(&in[0], "X", 4, xd);
        tensor_rand(&in[1], "W", 4, wd);
        tensor_rand(&in[2], "B", 1, bd);
        for (int act = ACT_NONE; act <= ACT_CLIP; act++) {
            struct pb mb = conv_model(c, act);
            qv_onnx_free(load_run(&mb, 1, false, in, 3, &one));
            conv_check(c, act, in, &one);
            for (int t = 2; t <= 3; t++) {
                qv_onnx_free(load_run(&mb, t, false, in, 3, &out));
                assert_close(&one, &out, what, t);
                qv_tensor_fini(&out);
            }
            qv_tensor_fini(&one);
            free(mb.p);
        }
        for (int i = 0; i < 3; i++)
            qv_tensor_fini(&in[i]);
    }
}

static void test_pool_elementwise_threads_same_bits(void **state)
{
    static const int64_t shapes[][4] = {{1, 3, 5, 7}, {2, 19, 67, 45}, {1, 64, 57, 61}};

    (void)state;
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        struct pb mb = pool_model(shapes[k]);
        struct qv_tensor in, one, out;
        char what[64];

        snprintf(what, sizeof(what), "pool case %zu", k);
        tensor_rand(&in, "X", 4, shapes[k]);
        qv_onnx_free(load_run(&mb, 1, false, &in, 1, &one));
        /* Spot-check one output against the definition. */
        {
            const float *X = in.data;
            int64_t H = shapes[k][2], W = shapes[k][3];
            float mx = -INFINITY;
            double sum = 0, v, s;
            for (int64_t i = 0; i < 2 && i < H; i++)
                for (int64_t j = 0; j < 2 && j < W; j++) {
                    mx = X[i * W + j] > mx ? X[i * W + j] : mx;
                    sum += X[i * W + j];
                }
            v = mx + sum / (double)((H < 2 ? H : 2) * (W < 2 ? W : 2));
            v = v > 0 ? v : 0;
            s = v / (1.0 + exp(-v));
            assert_true(fabs(((const float *)one.data)[0] - s) < 1e-5);
        }
        for (int t = 2; t <= 3; t++) {
            qv_onnx_free(load_run(&mb, t, false, &in, 1, &out));
            assert_same_bits(&one, &out, what, t);
            qv_tensor_fini(&out);
        }
        qv_tensor_fini(&one);
        qv_tensor_fini(&in);
        free(mb.p);
    }
}

static void test_norm_threads_same_bits(void **state)
{
    static const int64_t shapes[][4] = {{1, 3, 5, 7}, {2, 37, 29, 31}, {1, 5, 131, 127}};

    (void)state;
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        struct pb mb = norm_model(shapes[k]);
        struct qv_tensor in[5], one, out;
        const char *names[] = {"X", "s", "b", "m", "v"};
        char what[64];

        snprintf(what, sizeof(what), "norm case %zu", k);
        tensor_rand(&in[0], "X", 4, shapes[k]);
        for (int i = 1; i < 5; i++)
            tensor_rand(&in[i], names[i], 1, &shapes[k][1]);
        for (int64_t c = 0; c < shapes[k][1]; c++) /* variances > 0 */
            ((float *)in[4].data)[c] = fabsf(((float *)in[4].data)[c]) + 0.5f;
        qv_onnx_free(load_run(&mb, 1, false, in, 5, &one));
        for (int t = 2; t <= 3; t++) {
            qv_onnx_free(load_run(&mb, t, false, in, 5, &out));
            assert_same_bits(&one, &out, what, t);
            qv_tensor_fini(&out);
        }
        qv_tensor_fini(&one);
        for (int i = 0; i < 5; i++)
            qv_tensor_fini(&in[i]);
        free(mb.p);
    }
}

/* The fused plan (Conv writes the activation's output) and the plan as
 * written give the same bits, Relu and Clip, with NaN and infinities in X. */
static void test_fusion_same_outputs(void **state)
{
    static const struct conv_case c = {2, 5, 33, 15, 13, 3, 1, 1, 1};
    int64_t xd[] = {c.n, c.cin, c.h, c.w}, wd[] = {c.cout, c.cin, c.k, c.k}, bd[] = {c.cout};
    struct qv_tensor in[3];

    (void)state;
    tensor_rand(&in[0], "X", 4, xd);
    tensor_rand(&in[1], "W", 4, wd);
    tensor_rand(&in[2], "B", 1, bd);
    ((float *)in[0].data)[7] = NAN;
    ((float *)in[0].data)[500] = INFINITY;
    ((float *)in[0].data)[900] = -INFINITY;
    for (int act = ACT_RELU; act <= ACT_CLIP; act++)
        for (int t = 1; t <= 2; t++) {
            struct pb mb = conv_model(&c, act);
            struct qv_tensor fused, plain;
            qv_onnx_model *mf = load_run(&mb, t, false, in, 3, &fused);
            qv_onnx_model *mp = load_run(&mb, t, true, in, 3, &plain);
            assert_int_equal(qv_onnx_fused_nodes(mf), 1);
            assert_int_equal(qv_onnx_fused_nodes(mp), 0);
            assert_same_bits(&plain, &fused, act == ACT_RELU ? "Conv+Relu" : "Conv+Clip", t);
            qv_onnx_free(mf);
            qv_onnx_free(mp);
            qv_tensor_fini(&fused);
            qv_tensor_fini(&plain);
            free(mb.p);
        }
    for (int i = 0; i < 3; i++)
        qv_tensor_fini(&in[i]);
}

/* Conv + Add (+ Relu/Clip) fused into the Conv gives the same bits as the
 * plan as written, on every convolution path (Winograd, the packed product
 * in one pass and in several, 1x1, OpenBLAS with run-time weights, groups),
 * with the residual computed before the Conv, a constant, or either Add
 * operand, at 1 and 2 threads; a residual computed after the Conv keeps the
 * Add (and what follows) as written. */
static void test_residual_fusion_same_outputs(void **state)
{
    static const struct {
        struct conv_case c;
        bool constant; /* W and B initializers */
    } cases[] = {
        {{1, 16, 24, 12, 11, 3, 1, 1, 1}, true}, /* Winograd */
        {{1, 3, 33, 29, 31, 7, 2, 3, 1}, true},  /* packed, one pass (ResNet's first layer) */
        {{1, 32, 96, 7, 7, 3, 1, 1, 1}, true},   /* packed, several passes over k */
        {{1, 3, 40, 64, 60, 7, 2, 3, 1}, true},  /* packed, blocks of output rows */
        {{1, 16, 48, 9, 7, 1, 1, 0, 1}, true},   /* 1x1 */
        {{2, 5, 33, 15, 13, 3, 1, 1, 1}, false}, /* OpenBLAS, batch 2 */
        {{2, 8, 12, 9, 9, 3, 1, 1, 2}, false},   /* groups */
    };

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct conv_case *c = &cases[k].c;
        int64_t o = (c->h + 2 * c->pad - c->k) / c->stride + 1;
        int64_t ow = (c->w + 2 * c->pad - c->k) / c->stride + 1;
        int64_t xd[] = {c->n, c->cin, c->h, c->w}, zd[] = {c->n, c->cout, o, ow};
        int64_t wd[] = {c->cout, c->cin / c->group, c->k, c->k}, bd[] = {c->cout};
        struct qv_tensor in[4], rc; /* X, then Z or W, B, Z */
        char what[96];

        tensor_rand(&in[0], "X", 4, xd);
        tensor_rand(&in[1], "W", 4, wd);
        tensor_rand(&in[2], "B", 1, bd);
        tensor_rand(&in[3], "Z", 4, zd);
        tensor_rand(&rc, "R", 4, zd);
        for (int variant = 0; variant < 4; variant++) {
            /* 0: R before the Conv; 1: swapped operands; 2: R constant; 3: R after. */
            bool swap = variant == 1, late = variant == 3;
            const float *R = variant == 2 ? rc.data : NULL;
            for (int act = ACT_NONE; act <= ACT_CLIP; act++)
                for (int t = 1; t <= 2; t++) {
                    struct pb mb = residual_model(c, act, cases[k].constant ? in[1].data : NULL,
                                                  in[2].data, R, swap, late);
                    struct qv_tensor fused, plain, run_in[4];
                    int n_in = 0;
                    qv_onnx_model *mf, *mp;
                    run_in[n_in++] = in[0];
                    if (!cases[k].constant) {
                        run_in[n_in++] = in[1];
                        run_in[n_in++] = in[2];
                    }
                    if (!R)
                        run_in[n_in++] = in[3];
                    mf = load_run(&mb, t, false, run_in, n_in, &fused);
                    mp = load_run(&mb, t, true, run_in, n_in, &plain);
                    snprintf(what, sizeof(what), "residual case %zu variant %d act %d", k, variant,
                             act);
                    if (qv_onnx_fused_nodes(mf) != (late ? 0 : (act == ACT_NONE ? 1 : 2)))
                        fail_msg("%s: %d nodes fused", what, qv_onnx_fused_nodes(mf));
                    assert_int_equal(qv_onnx_fused_nodes(mp), 0);
                    assert_same_bits(&plain, &fused, what, t);
                    qv_onnx_free(mf);
                    qv_onnx_free(mp);
                    qv_tensor_fini(&fused);
                    qv_tensor_fini(&plain);
                    free(mb.p);
                }
        }
        for (int i = 0; i < 4; i++)
            qv_tensor_fini(&in[i]);
        qv_tensor_fini(&rc);
    }
}

/* The 3x3 convolution of a wino_case in double: got must be within 1e-5 of
 * the sum of the products' magnitudes (float rounding, not a formula). */
static void wino_check(const struct wino_case *c, int act, const float *X, const float *W,
                       const float *B, const struct qv_tensor *y, const char *what)
{
    int64_t oh = c->h + c->pads[0] + c->pads[2] - 2, ow = c->w + c->pads[1] + c->pads[3] - 2;
    const float *Y = y->data;

    assert_int_equal(y->ndim, 4);
    assert_int_equal(y->shape[1], c->cout);
    assert_int_equal(y->shape[2], oh);
    assert_int_equal(y->shape[3], ow);
    for (int64_t b = 0; b < c->n; b++)
        for (int64_t m = 0; m < c->cout; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = B[m], mag = fabs(B[m]), got;
                    for (int64_t ci = 0; ci < c->cin; ci++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int64_t hi = i - c->pads[0] + ki, wj = j - c->pads[1] + kj;
                                double v;
                                if (hi < 0 || hi >= c->h || wj < 0 || wj >= c->w)
                                    continue;
                                v = (double)X[((b * c->cin + ci) * c->h + hi) * c->w + wj] *
                                    W[((m * c->cin + ci) * 3 + ki) * 3 + kj];
                                acc += v;
                                mag += fabs(v);
                            }
                    if (act == ACT_RELU)
                        acc = acc > 0 ? acc : 0;
                    else if (act == ACT_CLIP)
                        acc = acc < -0.25 ? -0.25 : (acc > 0.5 ? 0.5 : acc);
                    got = Y[((b * c->cout + m) * oh + i) * ow + j];
                    if (!(fabs(got - acc) <= 1e-5 * (1.0 + mag)))
                        fail_msg("%s: [%lld,%lld,%lld,%lld] = %.7g, direct %.7g", what,
                                 (long long)b, (long long)m, (long long)i, (long long)j, got, acc);
                }
}

static void test_winograd_matches_direct(void **state)
{
    static const struct wino_case cases[] = {
        {1, 16, 16, 12, 11, {1, 1, 1, 1}},   /* one block, odd output columns */
        {2, 17, 19, 13, 11, {1, 1, 1, 1}},   /* odd sizes and channels, batch 2 */
        {1, 24, 33, 15, 14, {0, 0, 0, 0}},   /* no padding, odd output rows */
        {1, 16, 20, 12, 13, {2, 0, 1, 2}},   /* asymmetric pads */
        {1, 32, 40, 2, 64, {1, 1, 1, 1}},    /* one tile row */
        {1, 64, 64, 30, 31, {1, 1, 1, 1}},   /* blocks of tiles across tile rows */
        {1, 200, 300, 13, 13, {1, 1, 1, 1}}, /* many channels: short blocks */
    };

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct wino_case *c = &cases[k];
        int64_t xd[] = {c->n, c->cin, c->h, c->w}, wd[] = {c->cout, c->cin, 3, 3};
        int64_t bd[] = {c->cout};
        struct qv_tensor x, w, b;
        char what[96];

        tensor_rand(&x, "X", 4, xd);
        tensor_rand(&w, "W", 4, wd);
        tensor_rand(&b, "B", 1, bd);
        int last_act = c->cin > 100 ? ACT_NONE : ACT_CLIP; /* the large case: one run */
        for (int act = ACT_NONE; act <= last_act; act += k % 2 ? 2 : 1) {
            struct pb mb = wino_model(c, act, w.data, b.data);
            struct qv_tensor plain, out;
            qv_onnx_model *m = load_run(&mb, 1, false, &x, 1, &plain);
            qv_onnx_model *mp;
            struct qv_onnx_options opt = {.threads = 1, .plain_conv = true};
            struct qv_diag d = {{0}};
            int n_out = 0;
            if (qv_onnx_prepared_nodes(m) != 1)
                fail_msg("winograd case %zu: not prepared", k);
            qv_onnx_free(m);
            snprintf(what, sizeof(what), "winograd case %zu act %d", k, act);
            wino_check(c, act, x.data, w.data, b.data, &plain, what);
            for (int t = 2; t <= 3; t++) {
                m = load_run(&mb, t, false, &x, 1, &out);
                assert_int_equal(qv_onnx_prepared_nodes(m), 1);
                snprintf(what, sizeof(what), "winograd case %zu act %d, %d threads", k, act, t);
                wino_check(c, act, x.data, w.data, b.data, &out, what);
                qv_onnx_free(m);
                qv_tensor_fini(&out);
            }
            /* The im2col path on the same model agrees with it. */
            if (qv_onnx_load_buffer(mb.p, mb.n, NULL, &opt, &mp, &d) != QV_OK)
                fail_msg("load: %s", d.msg);
            assert_int_equal(qv_onnx_prepared_nodes(mp), 0);
            if (qv_onnx_run(mp, &x, 1, &out, 1, &n_out, &d) != QV_OK)
                fail_msg("run: %s", d.msg);
            snprintf(what, sizeof(what), "im2col case %zu act %d", k, act);
            wino_check(c, act, x.data, w.data, b.data, &out, what);
            qv_onnx_free(mp);
            qv_tensor_fini(&out);
            qv_tensor_fini(&plain);
            free(mb.p);
        }
        qv_tensor_fini(&x);
        qv_tensor_fini(&w);
        qv_tensor_fini(&b);
    }
}

/* Convolutions with constant weights that Winograd does not take (strides,
 * 1x1, 5x5 and 7x7 kernels, few output tiles) multiply by weights packed at
 * plan time on CPUs with AVX-512: they agree with the direct sum and with
 * the OpenBLAS path at 1-3 threads. */
static void test_packed_matches_direct(void **state)
{
    static const struct conv_case cases[] = {
        {2, 5, 67, 17, 21, 3, 2, 1, 1},  /* strided, 3 panels (67 channels), batch 2 */
        {1, 16, 48, 9, 7, 1, 1, 0, 1},   /* 1x1: no column buffer */
        {1, 4, 40, 11, 13, 5, 1, 2, 1},  /* 5x5, odd columns */
        {1, 3, 33, 29, 31, 7, 2, 3, 1},  /* ResNet's first layer, smaller */
        {1, 32, 96, 7, 7, 3, 1, 1, 1},   /* 3x3 on 16 tiles: not Winograd */
        {1, 40, 70, 30, 26, 3, 2, 1, 1}, /* columns split across threads */
        {1, 3, 40, 64, 60, 7, 2, 3, 1},  /* column matrix in blocks of output rows */
        {1, 4, 24, 70, 66, 5, 1, 2, 1},  /* the same, stride 1, padded last rows */
    };
    bool avail = qv_pk_available();

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct conv_case *c = &cases[k];
        int64_t xd[] = {c->n, c->cin, c->h, c->w}, wd[] = {c->cout, c->cin, c->k, c->k};
        int64_t bd[] = {c->cout};
        struct qv_tensor in[3], one, out;
        char what[64];

        tensor_rand(&in[0], "X", 4, xd);
        tensor_rand(&in[1], "W", 4, wd);
        tensor_rand(&in[2], "B", 1, bd);
        snprintf(what, sizeof(what), "packed case %zu", k);
        for (int act = ACT_NONE; act <= ACT_CLIP; act++) {
            struct pb mb = conv_model_const(c, act, in[1].data, in[2].data);
            struct qv_onnx_options opt = {.threads = 1, .plain_conv = true};
            struct qv_diag d = {{0}};
            qv_onnx_model *m = load_run(&mb, 1, false, in, 1, &one);
            int n_out = 0;
            assert_int_equal(qv_onnx_prepared_nodes(m), avail ? 1 : 0);
            qv_onnx_free(m);
            conv_check(c, act, in, &one);
            for (int t = 2; t <= 3; t++) {
                qv_onnx_free(load_run(&mb, t, false, in, 1, &out));
                conv_check(c, act, in, &out);
                assert_same_bits(&one, &out, what, t);
                qv_tensor_fini(&out);
            }
            if (qv_onnx_load_buffer(mb.p, mb.n, NULL, &opt, &m, &d) != QV_OK)
                fail_msg("load: %s", d.msg);
            assert_int_equal(qv_onnx_prepared_nodes(m), 0);
            if (qv_onnx_run(m, in, 1, &out, 1, &n_out, &d) != QV_OK)
                fail_msg("run: %s", d.msg);
            conv_check(c, act, in, &out);
            qv_onnx_free(m);
            qv_tensor_fini(&out);
            qv_tensor_fini(&one);
            free(mb.p);
        }
        for (int i = 0; i < 3; i++)
            qv_tensor_fini(&in[i]);
    }
}

/* Few channels, few output tiles or weights fed at run time keep off
 * Winograd (constant weights are packed instead where the CPU can). */
static void test_winograd_only_where_it_applies(void **state)
{
    static const struct wino_case few = {1, 3, 16, 9, 9, {1, 1, 1, 1}};
    static const struct wino_case small = {1, 16, 16, 7, 7, {1, 1, 1, 1}}; /* 16 tiles */
    int64_t xd[] = {few.n, few.cin, few.h, few.w}, wd[] = {few.cout, few.cin, 3, 3};
    int64_t bd[] = {few.cout};
    struct qv_tensor x, w, b, out;
    struct pb mb;
    qv_onnx_model *m;

    (void)state;
    tensor_rand(&x, "X", 4, xd);
    tensor_rand(&w, "W", 4, wd);
    tensor_rand(&b, "B", 1, bd);
    mb = wino_model(&few, ACT_NONE, w.data, b.data);
    m = load_run(&mb, 1, false, &x, 1, &out);
    assert_int_equal(qv_onnx_prepared_nodes(m), qv_pk_available() ? 1 : 0); /* packed */
    wino_check(&few, ACT_NONE, x.data, w.data, b.data, &out, "3 input channels");
    qv_onnx_free(m);
    qv_tensor_fini(&out);
    free(mb.p);
    qv_tensor_fini(&x);
    qv_tensor_fini(&w);
    {
        int64_t sxd[] = {small.n, small.cin, small.h, small.w};
        int64_t swd[] = {small.cout, small.cin, 3, 3};
        tensor_rand(&x, "X", 4, sxd);
        tensor_rand(&w, "W", 4, swd);
        mb = wino_model(&small, ACT_NONE, w.data, b.data);
        m = load_run(&mb, 1, false, &x, 1, &out);
        assert_int_equal(qv_onnx_prepared_nodes(m), qv_pk_available() ? 1 : 0); /* packed */
        wino_check(&small, ACT_NONE, x.data, w.data, b.data, &out, "16 tiles");
        qv_onnx_free(m);
        qv_tensor_fini(&out);
        free(mb.p);
    }
    {
        /* Weights fed at run time: the strided/grouped model of conv_model. */
        static const struct conv_case c = {1, 16, 16, 9, 9, 3, 1, 1, 1};
        int64_t cxd[] = {c.n, c.cin, c.h, c.w}, cwd[] = {c.cout, c.cin, 3, 3};
        struct qv_tensor in[3];
        tensor_rand(&in[0], "X", 4, cxd);
        tensor_rand(&in[1], "W", 4, cwd);
        tensor_rand(&in[2], "B", 1, bd);
        mb = conv_model(&c, ACT_NONE);
        m = load_run(&mb, 1, false, in, 3, &out);
        assert_int_equal(qv_onnx_prepared_nodes(m), 0);
        conv_check(&c, ACT_NONE, in, &out);
        qv_onnx_free(m);
        qv_tensor_fini(&out);
        free(mb.p);
        for (int i = 0; i < 3; i++)
            qv_tensor_fini(&in[i]);
    }
    qv_tensor_fini(&x);
    qv_tensor_fini(&w);
    qv_tensor_fini(&b);
}

/* MaxPool's 2-D kernel against a reference: the window's first element,
 * then any later greater one (NaN first stays NaN, NaN later is skipped,
 * also when it heads a column of the window); an empty window gives -inf. */
static void test_maxpool_matches_reference(void **state)
{
    static const struct {
        int64_t x[4], k[2], s[2], pads[4];
        int ceil;
    } cases[] = {
        {{1, 64, 112, 112}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 0}, /* ResNet's */
        {{2, 5, 17, 23}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 1},
        {{1, 3, 9, 10}, {2, 3}, {1, 2}, {0, 2, 1, 0}, 0},
        {{1, 4, 7, 5}, {3, 2}, {3, 1}, {2, 1, 2, 1}, 1},
        {{1, 2, 4, 4}, {5, 5}, {1, 1}, {2, 2, 2, 2}, 0}, /* kernel wider than the row */
        {{1, 2, 3, 9001}, {2, 3}, {1, 2}, {1, 1, 0, 1}, 0}, /* rows past one pass's buffer */
        {{1, 2, 5, 9000}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 1},
    };

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const int64_t *xd = cases[k].x;
        struct pb mb = maxpool_model(xd, cases[k].k, cases[k].s, cases[k].pads, cases[k].ceil);
        struct qv_tensor x, out;
        const float *X, *Y;
        int64_t oh, ow, H = xd[2], W = xd[3];
        qv_onnx_model *m;

        tensor_rand(&x, "X", 4, xd);
        ((float *)x.data)[0] = NAN;
        ((float *)x.data)[W + 3] = NAN;
        ((float *)x.data)[2 * W + 1] = INFINITY;
        ((float *)x.data)[qv_tensor_numel(&x) - 2] = -INFINITY;
        for (int t = 1; t <= 2; t++) {
            m = load_run(&mb, t, false, &x, 1, &out);
            X = x.data;
            Y = out.data;
            oh = out.shape[2];
            ow = out.shape[3];
            for (int64_t c = 0; c < xd[0] * xd[1]; c++)
                for (int64_t i = 0; i < oh; i++)
                    for (int64_t j = 0; j < ow; j++) {
                        float best = -INFINITY, got = Y[(c * oh + i) * ow + j];
                        bool any = false;
                        for (int64_t a = 0; a < cases[k].k[0]; a++)
                            for (int64_t b = 0; b < cases[k].k[1]; b++) {
                                int64_t h = i * cases[k].s[0] - cases[k].pads[0] + a;
                                int64_t w = j * cases[k].s[1] - cases[k].pads[1] + b;
                                float v;
                                if (h < 0 || h >= H || w < 0 || w >= W)
                                    continue;
                                v = X[(c * H + h) * W + w];
                                if (!any || v > best)
                                    best = v;
                                any = true;
                            }
                        if (memcmp(&best, &got, sizeof(float)) != 0 && !(isnan(best) && isnan(got)))
                            fail_msg("maxpool case %zu, %d threads: [%lld,%lld,%lld] = %g, want %g",
                                     k, t, (long long)c, (long long)i, (long long)j, (double)got,
                                     (double)best);
                    }
            qv_onnx_free(m);
            qv_tensor_fini(&out);
        }
        qv_tensor_fini(&x);
        free(mb.p);
    }
}

/* Many runs on one model from several threads at once, each run using the
 * intra-op pool of its own context. */
struct runner {
    qv_onnx_model *m;
    struct qv_tensor *in, *want;
    int failures;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;

    for (int it = 0; it < 10; it++) {
        struct qv_tensor out;
        struct qv_diag d = {{0}};
        int n_out = 0;
        if (qv_onnx_run(r->m, r->in, 3, &out, 1, &n_out, &d) != QV_OK) {
            r->failures++;
            continue;
        }
        if (out.nbytes != r->want->nbytes || memcmp(out.data, r->want->data, out.nbytes) != 0)
            r->failures++;
        qv_tensor_fini(&out);
    }
    return NULL;
}

static void test_concurrent_runs_with_pools(void **state)
{
    static const struct conv_case c = {1, 8, 40, 21, 19, 3, 1, 1, 1};
    int64_t xd[] = {c.n, c.cin, c.h, c.w}, wd[] = {c.cout, c.cin, c.k, c.k}, bd[] = {c.cout};
    struct qv_tensor in[3], want;
    struct pb mb = conv_model(&c, ACT_RELU);
    struct runner r[3];
    pthread_t th[3];
    qv_onnx_model *m;

    (void)state;
    tensor_rand(&in[0], "X", 4, xd);
    tensor_rand(&in[1], "W", 4, wd);
    tensor_rand(&in[2], "B", 1, bd);
    m = load_run(&mb, 2, false, in, 3, &want);
    for (int i = 0; i < 3; i++) {
        r[i] = (struct runner){.m = m, .in = in, .want = &want};
        assert_int_equal(pthread_create(&th[i], NULL, runner_main, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].failures, 0);
    }
    qv_onnx_free(m);
    qv_tensor_fini(&want);
    for (int i = 0; i < 3; i++)
        qv_tensor_fini(&in[i]);
    free(mb.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_threads_same_bits),
        cmocka_unit_test(test_pool_elementwise_threads_same_bits),
        cmocka_unit_test(test_norm_threads_same_bits),
        cmocka_unit_test(test_fusion_same_outputs),
        cmocka_unit_test(test_residual_fusion_same_outputs),
        cmocka_unit_test(test_concurrent_runs_with_pools),
        cmocka_unit_test(test_winograd_matches_direct),
        cmocka_unit_test(test_winograd_only_where_it_applies),
        cmocka_unit_test(test_packed_matches_direct),
        cmocka_unit_test(test_maxpool_matches_reference),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
