/* SPDX-License-Identifier: MIT
 *
 * The Winograd F(2x2, 3x3) kernels of the ONNX runtime called directly, each
 * implementation forced in turn (OpenBLAS with the plain transforms, and the
 * packed AVX-512 product with the AVX-512 transforms where the CPU has
 * them): on random shapes (odd sizes and channel counts, asymmetric and no
 * padding, one tile row, several blocks), with and without bias, residual
 * and each fused activation, every output agrees with a direct sum in
 * double, whether a run takes all tiles at once, splits them into ranges of
 * whole panels, or shares each block between input- and output-channel
 * ranges (as two threads do). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/ops/conv_winograd.h"
#include "onnx/ops/sgemm_packed.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int64_t irand(int64_t lo, int64_t hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int64_t)((rng >> 11) % (uint64_t)(hi - lo + 1));
}

static float *frand_n(size_t n)
{
    float *v = malloc(n * sizeof(float) + 1);

    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = frand();
    return v;
}

struct wcase {
    int64_t c, k, h, w;
    int64_t pads[4]; /* top, left, bottom, right */
};

/* Direct 3x3 convolution in double, then the bias, the residual, the
 * activation; compares got within 1e-5 of the sum of the magnitudes. */
static void check(const struct wcase *c, const struct qv_wino *p, const float *X, const float *W,
                  const float *B, const float *R, const float *Y, const char *what)
{
    for (int64_t m = 0; m < c->k; m++)
        for (int64_t i = 0; i < p->oh; i++)
            for (int64_t j = 0; j < p->ow; j++) {
                double acc = 0, mag = 0, got;
                int64_t at = (m * p->oh + i) * p->ow + j;
                for (int64_t ci = 0; ci < c->c; ci++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int64_t hi = i - c->pads[0] + ki, wj = j - c->pads[1] + kj;
                            double v;
                            if (hi < 0 || hi >= c->h || wj < 0 || wj >= c->w)
                                continue;
                            v = (double)X[(ci * c->h + hi) * c->w + wj] *
                                W[((m * c->c + ci) * 3 + ki) * 3 + kj];
                            acc += v;
                            mag += fabs(v);
                        }
                if (B) {
                    acc += B[m];
                    mag += fabs(B[m]);
                }
                if (R) {
                    acc += R[at];
                    mag += fabs(R[at]);
                }
                if (p->act == QV_CONV_ACT_RELU)
                    acc = acc > 0 ? acc : 0;
                else if (p->act == QV_CONV_ACT_CLIP)
                    acc = acc < p->act_lo ? p->act_lo : (acc > p->act_hi ? p->act_hi : acc);
                got = Y[at];
                if (!(fabs(got - acc) <= 1e-5 * (1.0 + mag)))
                    fail_msg("%s: [%lld,%lld,%lld] = %.7g, direct %.7g", what, (long long)m,
                             (long long)i, (long long)j, got, acc);
            }
}

enum { WHOLE, PANELS, SHARED, MODES };

/* One run of the case in the given mode into Y (poisoned first). */
static void run_mode(const struct qv_wino *p, int mode, const float *U, const float *B,
                     const float *R, const float *X, float *Y, float *scratch)
{
    int64_t tiles = p->th * p->tw, y_n = p->k * p->oh * p->ow;
    size_t sf = qv_wino_scratch_floats(p);

    for (int64_t i = 0; i < y_n; i++)
        Y[i] = NAN;
    if (mode == WHOLE) {
        qv_wino_run(p, U, B, R, X, Y, scratch, 0, tiles);
    } else if (mode == PANELS) {
        /* Two ranges of whole panels of 32 tiles, each with its own scratch. */
        int64_t panels = (tiles + 31) / 32, half = (panels + 1) / 2 * 32;
        if (half > tiles)
            half = tiles;
        qv_wino_run(p, U, B, R, X, Y, scratch, 0, half);
        qv_wino_run(p, U, B, R, X, Y, scratch + sf, half, tiles);
    } else {
        /* Each block: input channels in two ranges, then output channels. */
        for (int64_t b = 0, nbk = qv_wino_blocks(p, tiles); b < nbk; b++) {
            int64_t t0, nb, ch = p->c / 2, mh = p->k / 3;
            qv_wino_block(p, tiles, b, &t0, &nb);
            assert_true(nb >= 1 && nb <= p->block);
            qv_wino_input(p, X, qv_wino_v(p, scratch), t0, nb, ch, p->c,
                          qv_wino_rows(p, scratch + sf));
            qv_wino_input(p, X, qv_wino_v(p, scratch), t0, nb, 0, ch, qv_wino_rows(p, scratch));
            qv_wino_output(p, U, B, R, qv_wino_v(p, scratch), qv_wino_m(p, scratch), Y, t0, nb, mh,
                           p->k, qv_wino_rows(p, scratch + sf));
            qv_wino_output(p, U, B, R, qv_wino_v(p, scratch), qv_wino_m(p, scratch), Y, t0, nb, 0,
                           mh, qv_wino_rows(p, scratch));
        }
    }
}

static void run_case(const struct wcase *c, int isa, int act, bool bias, bool residual,
                     const char *name)
{
    struct qv_wino p;
    float *X, *W, *B, *R, *U, *Y, *scratch;
    size_t sf;
    char what[160];

    memset(&p, 0, sizeof(p));
    p.c = c->c;
    p.k = c->k;
    p.h = c->h;
    p.w = c->w;
    p.oh = c->h + c->pads[0] + c->pads[2] - 2;
    p.ow = c->w + c->pads[1] + c->pads[3] - 2;
    p.pt = c->pads[0];
    p.pl = c->pads[1];
    p.act = act;
    p.act_lo = -0.25f;
    p.act_hi = 0.5f;
    qv_wino_setup(&p);
    qv_wino_set_isa(&p, isa);
    if (isa == QV_WINO_AVX512 && p.isa != QV_WINO_AVX512)
        return; /* not on this CPU */
    assert_int_equal(p.isa, isa);
    sf = qv_wino_scratch_floats(&p);
    X = frand_n((size_t)(c->c * c->h * c->w));
    W = frand_n((size_t)(c->k * c->c * 9));
    B = bias ? frand_n((size_t)c->k) : NULL;
    R = residual ? frand_n((size_t)(c->k * p.oh * p.ow)) : NULL;
    U = frand_n(qv_wino_weight_floats(&p));
    Y = malloc(sizeof(float) * (size_t)(c->k * p.oh * p.ow) + 1);
    scratch = frand_n(2 * sf); /* garbage, as a reused arena would be */
    assert_non_null(Y);
    qv_wino_weights(&p, W, U);
    for (int mode = 0; mode < MODES; mode++) {
        snprintf(what, sizeof(what), "%s isa %d act %d bias %d residual %d mode %d", name, isa, act,
                 bias, residual, mode);
        run_mode(&p, mode, U, B, R, X, Y, scratch);
        check(c, &p, X, W, B, R, Y, what);
    }
    free(X);
    free(W);
    free(B);
    free(R);
    free(U);
    free(Y);
    free(scratch);
}

static void test_winograd_each_isa_matches_direct(void **state)
{
    static const struct wcase fixed[] = {
        {16, 16, 12, 11, {1, 1, 1, 1}},  /* one block, odd output columns */
        {17, 19, 13, 11, {1, 1, 1, 1}},  /* odd channels */
        {24, 33, 15, 14, {0, 0, 0, 0}},  /* no padding, odd output rows */
        {16, 20, 12, 13, {2, 0, 1, 2}},  /* asymmetric pads */
        {32, 40, 2, 64, {1, 1, 1, 1}},   /* one tile row */
        {64, 64, 56, 56, {1, 1, 1, 1}},  /* ResNet's first stage: several blocks */
        {130, 70, 14, 14, {1, 1, 1, 1}}, /* 49 tiles: two panels, the last partial */
        {300, 20, 9, 9, {1, 1, 1, 1}},   /* more input channels than one pass of k */
    };
    char name[48];

    (void)state;
    for (int isa = QV_WINO_BLAS; isa <= QV_WINO_AVX512; isa++)
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
            snprintf(name, sizeof(name), "case %zu", i);
            run_case(&fixed[i], isa, (int)(i % 3), i % 2 == 0, i % 3 != 1, name);
        }
    /* Random shapes: each once per implementation. */
    for (int r = 0; r < 12; r++) {
        struct wcase c = {irand(1, 40), irand(1, 40), irand(1, 30), irand(1, 45), {0}};
        for (int i = 0; i < 4; i++)
            c.pads[i] = irand(0, 2);
        if (c.h + c.pads[0] + c.pads[2] < 3 || c.w + c.pads[1] + c.pads[3] < 3)
            continue;
        snprintf(name, sizeof(name), "random %d (%lldx%lld)", r, (long long)c.h, (long long)c.w);
        for (int isa = QV_WINO_BLAS; isa <= QV_WINO_AVX512; isa++)
            run_case(&c, isa, r % 3, r % 2 == 1, r % 4 < 2, name);
    }
}

/* The AVX-512 implementation is chosen only where the CPU has it. */
static void test_winograd_isa_follows_cpu(void **state)
{
    struct qv_wino p = {.c = 16, .k = 16, .h = 8, .w = 8, .oh = 8, .ow = 8, .pt = 1, .pl = 1};

    (void)state;
    qv_wino_setup(&p);
    assert_int_equal(p.isa, qv_pk_available() ? QV_WINO_AVX512 : QV_WINO_BLAS);
    qv_wino_set_isa(&p, QV_WINO_BLAS);
    assert_int_equal(p.isa, QV_WINO_BLAS);
    assert_int_equal(p.ldb, p.block);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_winograd_each_isa_matches_direct),
        cmocka_unit_test(test_winograd_isa_follows_cpu),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
