/* SPDX-License-Identifier: MIT
 *
 * Compare select modes (first, mean, majority, best_score) and shadow agreement.
 */
#include <math.h>

#include "router_test.h"

static void test_first_and_best_score(void **state)
{
    const float a[] = {0.1f, 0.9f}, b[] = {0.8f, 0.2f}, c[] = {0.3f, 0.7f};
    const float *outs[] = {a, b, c};
    double scores[] = {0.9, 0.4, 0.6};
    double unknown[] = {NAN, NAN, NAN};
    float comb[2] = {-1, -1};
    int chosen = -2;

    (void)state;
    assert_int_equal(qv_compare_select(QV_SELECT_FIRST, outs, 3, 1, 2, scores, comb, &chosen), 0);
    assert_int_equal(chosen, 0);
    assert_int_equal(qv_compare_select(QV_SELECT_BEST_SCORE, outs, 3, 1, 2, scores, comb, &chosen),
                     0);
    assert_int_equal(chosen, 1);
    /* No known score: falls back to the first. */
    assert_int_equal(qv_compare_select(QV_SELECT_BEST_SCORE, outs, 3, 1, 2, unknown, comb, &chosen),
                     0);
    assert_int_equal(chosen, 0);
    assert_int_equal(qv_compare_select(QV_SELECT_BEST_SCORE, outs, 3, 1, 2, NULL, comb, &chosen),
                     0);
    assert_int_equal(chosen, 0);
    assert_float_equal(comb[0], -1, 0); /* untouched */
    assert_int_equal(qv_compare_select(QV_SELECT_FIRST, outs, 0, 1, 2, NULL, comb, &chosen),
                     QV_EINVAL);
}

static void test_mean(void **state)
{
    const float a[] = {0, 1, 2, 3}, b[] = {2, 3, 4, 5};
    const float *outs[] = {a, b};
    float comb[4];
    int chosen = 0;

    (void)state;
    assert_int_equal(qv_compare_select(QV_SELECT_MEAN, outs, 2, 2, 2, NULL, comb, &chosen), 0);
    assert_int_equal(chosen, -1);
    for (int i = 0; i < 4; i++)
        assert_float_equal(comb[i], i + 1, 1e-6);
}

static void test_majority(void **state)
{
    /* Two rows, three classes. Row 0: classes 2, 1, 1 -> 1 (row of version 1).
     * Row 1: classes 0, 2, 1 -> a tie; the class voted first (0) wins. */
    const float a[] = {0.1f, 0.2f, 0.7f, 0.6f, 0.3f, 0.1f};
    const float b[] = {0.1f, 0.8f, 0.1f, 0.1f, 0.2f, 0.7f};
    const float c[] = {0.3f, 0.6f, 0.1f, 0.2f, 0.5f, 0.3f};
    const float *outs[] = {a, b, c};
    float comb[6];
    int chosen = 0;

    (void)state;
    assert_int_equal(qv_compare_select(QV_SELECT_MAJORITY, outs, 3, 2, 3, NULL, comb, &chosen), 0);
    assert_int_equal(chosen, -1);
    assert_memory_equal(comb, b, 3 * sizeof(float));
    assert_memory_equal(comb + 3, a + 3, 3 * sizeof(float));

    /* One value per row: threshold 0.5. Row 0: 1, 0, 0 -> 0 (version 1's row);
     * row 1: 1, 1, 0 -> 1 (version 0's row). */
    const float p[] = {0.9f, 0.6f}, q[] = {0.2f, 0.7f}, s[] = {0.4f, 0.1f};
    const float *bin[] = {p, q, s};
    float comb2[2];
    assert_int_equal(qv_compare_select(QV_SELECT_MAJORITY, bin, 3, 2, 1, NULL, comb2, &chosen), 0);
    assert_float_equal(comb2[0], 0.2f, 0);
    assert_float_equal(comb2[1], 0.6f, 0);
}

static void test_agreement(void **state)
{
    const float a[] = {0.1f, 0.9f, 0.8f, 0.2f, 0.5f, 0.5f};
    const float b[] = {0.2f, 0.8f, 0.3f, 0.7f, 0.5f, 0.5f};
    struct qv_agreement ag;

    (void)state;
    qv_compare_agreement(a, b, 3, 2, &ag);
    assert_int_equal(ag.rows, 3);
    assert_int_equal(ag.same_class, 2); /* rows 0 and 2 (ties: argmax takes the first) */
    assert_float_equal(ag.agree_rate, 2.0 / 3.0, 1e-12);
    assert_float_equal(ag.max_abs_diff, 0.5, 1e-6);
    assert_float_equal(ag.mean_abs_diff, (0.1 + 0.1 + 0.5 + 0.5) / 6, 1e-6);

    const float p[] = {0.4f, 0.6f}, q[] = {0.6f, 0.61f};
    qv_compare_agreement(p, q, 2, 1, &ag);
    assert_int_equal(ag.same_class, 1);
    assert_float_equal(ag.agree_rate, 0.5, 1e-12);
    qv_compare_agreement(p, q, 0, 1, &ag);
    assert_float_equal(ag.agree_rate, 1.0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_and_best_score),
        cmocka_unit_test(test_mean),
        cmocka_unit_test(test_majority),
        cmocka_unit_test(test_agreement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
