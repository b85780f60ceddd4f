/* SPDX-License-Identifier: MIT
 *
 * The operator table: op_list.h expanded into a sorted array, searched by
 * binary search. The order is checked by tests/unit/onnx/test_op_table.c.
 */
#include "op.h"
#include "op_list.h"

#include <stdlib.h>
#include <string.h>

#define X(onnx, c) extern const struct qv_op qv_op_##c;
QV_ONNX_OPS(X)
#undef X

static const struct qv_op *const ops[] = {
#define X(onnx, c) &qv_op_##c,
    QV_ONNX_OPS(X)
#undef X
};

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, (*(const struct qv_op *const *)elem)->name);
}

const struct qv_op *qv_op_find(const char *op_type)
{
    const struct qv_op *const *p =
        bsearch(op_type, ops, QV_ARRAY_LEN(ops), sizeof(ops[0]), cmp_name);

    return p ? *p : NULL;
}

size_t qv_op_count(void)
{
    return QV_ARRAY_LEN(ops);
}

const struct qv_op *qv_op_at(size_t i)
{
    return i < QV_ARRAY_LEN(ops) ? ops[i] : NULL;
}
