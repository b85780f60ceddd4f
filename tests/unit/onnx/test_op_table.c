/* SPDX-License-Identifier: MIT
 *
 * The operator table: sorted by ONNX name in strcmp order, names unique, each
 * entry complete, and lookups by name work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "onnx/ops/op.h"
#include "onnx/ops/op_list.h"

static const char *const list_names[] = {
#define X(onnx, c) #onnx,
    QV_ONNX_OPS(X)
#undef X
};

static void test_sorted_and_unique(void **state)
{
    (void)state;
    assert_int_equal(qv_op_count(), QV_ARRAY_LEN(list_names));
    for (size_t i = 1; i < QV_ARRAY_LEN(list_names); i++) {
        if (strcmp(list_names[i - 1], list_names[i]) >= 0)
            fail_msg("op_list.h: '%s' must come after '%s'", list_names[i - 1], list_names[i]);
    }
}

static void test_entries_match_list(void **state)
{
    (void)state;
    for (size_t i = 0; i < qv_op_count(); i++) {
        const struct qv_op *op = qv_op_at(i);
        bool any = false;
        assert_non_null(op);
        if (strcmp(op->name, list_names[i]) != 0)
            fail_msg("op_list.h says %s but qv_op is named %s", list_names[i], op->name);
        assert_non_null(op->infer_shape);
        assert_true(op->since_version >= 1);
        for (int t = 0; t < QV_DTYPE_COUNT; t++)
            any = any || op->kernels[t] != NULL;
        assert_true(any);
    }
}

static void test_find(void **state)
{
    (void)state;
    assert_non_null(qv_op_find("Add"));
    assert_string_equal(qv_op_find("MatMul")->name, "MatMul");
    assert_null(qv_op_find("NoSuchOp"));
    assert_null(qv_op_find(""));
    assert_null(qv_op_find("add"));
    for (size_t i = 0; i < qv_op_count(); i++)
        assert_ptr_equal(qv_op_find(qv_op_at(i)->name), qv_op_at(i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_and_unique),
        cmocka_unit_test(test_entries_match_list),
        cmocka_unit_test(test_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
