/* SPDX-License-Identifier: MIT
 *
 * Tensor construction and slicing: Split, Pad (constant/reflect/edge), Slice,
 * Expand, Tile, Where, ConstantOfShape, Range. Inputs that define shapes
 * (split sizes, pads, starts/ends, repeats) must be known at plan time.
 */
#include "op.h"

#include <stdint.h>

/* Copies element 'src_i' of src to 'dst_i' of dst, by element size. */
static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es)
{
    switch (es) {
    case 1:
        ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si];
        break;
    case 2:
        ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si];
        break;
    case 4:
        ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si];
        break;
    default:
        ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si];
        break;
    }
}

static void strides_of(const struct qv_tensor *t, int64_t *s)
{
    int64_t acc = 1;

    for (int i = t->ndim - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= t->shape[i];
    }
}

/* ---- Split ---- */

struct split_params {
    int axis;
};

static int split_kernel(struct qv_exec *x)
{
    const struct split_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t outer = 1, inner = 1, dim = in->shape[p->axis], start = 0;

    for (int i = 0; i < p->axis; i++)
        outer *= in->shape[i];
    for (int i = p->axis + 1; i < in->ndim; i++)
        inner *= in->shape[i];
    for (int k = 0; k < x->n_out; k++) {
        struct qv_tensor *o = x->out[k];
        int64_t len = o ? o->shape[p->axis] : 0;
        if (o == NULL)
            continue;
        for (int64_t r = 0; r < outer && len * inner > 0; r++)
            memcpy((char *)o->data + (size_t)(r * len * inner) * es,
                   (const char *)in->data + (size_t)((r * dim + start) * inner) * es,
                   (size_t)(len * inner) * es);
        start += len;
    }
    return QV_OK;
}

static int split_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct split_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t sizes[256], shape[QV_MAX_DIMS], total = 0;
    int n = 0, axis, err;

    if (x->n_in < 1 || x->in[0] == NULL || x->n_out < 1 || x->n_out > 256)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs an input and 1..256 outputs");
    in = x->in[0];
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), in->ndim, &axis, d);
    if (err)
        return err;
    if (x->node->opset >= 13 || (x->node->opset == 1 && x->n_in > 1)) {
        if (x->n_in > 1 && x->in[1]) {
            err = qv_input_ints(x, 1, sizes, 256, &n, d);
            if (err)
                return err;
        }
    } else {
        const int64_t *s = qv_attr_ints(x->node, "split", &n);
        if (n > 256)
            return qv_op_fail(x->node, d, QV_EINVAL, "too many splits");
        for (int i = 0; i < n; i++)
            sizes[i] = s[i];
    }
    if (n == 0) {
        int64_t parts = x->n_out, dim = in->shape[axis];
        if (x->node->opset >= 18 && qv_attr_find(x->node, "num_outputs"))
            parts = qv_attr_int(x->node, "num_outputs", x->n_out);
        if (parts != x->n_out || parts < 1)
            return qv_op_fail(x->node, d, QV_EINVAL, "num_outputs differs from outputs");
        for (int i = 0; i < x->n_out; i++) {
            int64_t each = x->node->opset >= 18 ? (dim + parts - 1) / parts : dim / parts;
            int64_t left = dim - each * i;
            sizes[i] = left < each ? (left > 0 ? left : 0) : each;
        }
        if (x->node->opset < 18 && dim % parts != 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "dim %lld does not split in %lld",
                              (long long)dim, (long long)parts);
        n = x->n_out;
    }
    if (n != x->n_out)
        return qv_op_fail(x->node, d, QV_EINVAL, "%d split sizes for %d outputs", n, x->n_out);
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "negative split size");
        /* Sizes may come from the request: compare before adding. */
        if (sizes[i] > in->shape[axis] - total)
            return qv_op_fail(x->node, d, QV_EINVAL, "split sizes exceed dim %lld",
                              (long long)in->shape[axis]);
        total += sizes[i];
    }
    if (total != in->shape[axis])
        return qv_op_fail(x->node, d, QV_EINVAL, "split sizes sum to %lld, dim is %lld",
                          (long long)total, (long long)in->shape[axis]);
    memcpy(shape, in->shape, sizeof(shape));
    for (int i = 0; i < n; i++) {
        shape[axis] = sizes[i];
        qv_out_set(x, i, in->dtype, in->ndim, shape);
    }
    p->axis = axis;
    return QV_OK;
}

/* ---- Pad ---- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

struct pad_params {
    int mode;
    int64_t begin[QV_MAX_DIMS];
    double value;
};

static int pad_kernel(struct qv_exec *x)
{
    const struct pad_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t n = qv_numel(o), idx[QV_MAX_DIMS] = {0}, is[QV_MAX_DIMS];
    int r = in->ndim;
    union {
        float f;
        double d;
        int64_t i64;
        int32_t i32;
        uint8_t u8;
        int8_t i8;
    } cv;
    const void *cval = &cv;
    const struct qv_tensor *ct = x->n_in > 2 && x->node->opset >= 11 ? x->in[2] : NULL;

    /* The constant in the output's dtype. */
    switch (in->dtype) {
    case QV_DTYPE_F32:
        cv.f = (float)p->value;
        break;
    case QV_DTYPE_F64:
        cv.d = p->value;
        break;
    case QV_DTYPE_I64:
        cv.i64 = (int64_t)p->value;
        break;
    case QV_DTYPE_I32:
        cv.i32 = (int32_t)p->value;
        break;
    case QV_DTYPE_I8:
        cv.i8 = (int8_t)p->value;
        break;
    default:
        memset(&cv, 0, sizeof(cv));
        cv.u8 = (uint8_t)p->value;
        break;
    }
    if (ct)
        cval = ct->data;
    strides_of(in, is);
    for (int64_t j = 0; j < n; j++) {
        int64_t off = 0;
        bool inside = true;
        for (int i = 0; i < r; i++) {
            int64_t pos = idx[i] - p->begin[i], len = in->shape[i];
            if (pos < 0 || pos >= len) {
                if (p->mode == PAD_CONSTANT || len == 0) {
                    inside = false;
                    break;
                }
                if (p->mode == PAD_EDGE) {
                    pos = pos < 0 ? 0 : len - 1;
                } else {
                    int64_t period = len > 1 ? 2 * (len - 1) : 1;
                    pos = pos < 0 ? -pos : pos;
                    pos %= period;
                    if (pos >= len)
                        pos = period - pos;
                }
            }
            off += pos * is[i];
        }
        if (inside)
            copy_elem(o->data, j, in->data, off, es);
        else
            copy_elem(o->data, j, cval, 0, es);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < o->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int pad_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct pad_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    const char *mode = qv_attr_string(x->node, "mode", "constant");
    int64_t pads[2 * QV_MAX_DIMS], axes[QV_MAX_DIMS], shape[QV_MAX_DIMS], full[2 * QV_MAX_DIMS];
    int n = 0, n_axes = 0, r, err;

    err = qv_op_arity(x, 1, x->node->opset >= 11 ? 4 : 1, 1, 1, d);
    if (err)
        return err;
    in = x->in[0];
    r = in->ndim;
    memset(p, 0, sizeof(*p));
    if (strcmp(mode, "constant") == 0)
        p->mode = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0)
        p->mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        p->mode = PAD_EDGE;
    else
        return qv_op_fail(x->node, d, QV_ENOTSUP, "mode '%s' is not supported", mode);
    if (x->node->opset < 11) {
        const int64_t *a = qv_attr_ints(x->node, "pads", &n);
        if (a == NULL)
            a = qv_attr_ints(x->node, "paddings", &n);
        if (n > 2 * QV_MAX_DIMS)
            return qv_op_fail(x->node, d, QV_EINVAL, "too many pads");
        for (int i = 0; i < n; i++)
            pads[i] = a[i];
        p->value = qv_attr_float(x->node, "value", 0.0f);
    } else {
        err = qv_input_ints(x, 1, pads, 2 * QV_MAX_DIMS, &n, d);
        if (err)
            return err;
        if (x->n_in > 2 && x->in[2]) {
            /* Read by the kernel: it may be fed at run time. */
            const struct qv_tensor *c = x->in[2];
            if (c->dtype != in->dtype || qv_numel(c) != 1)
                return qv_op_fail(x->node, d, QV_EINVAL, "constant_value must be one %s",
                                  qv_dtype_name(in->dtype));
        }
    }
    /* Opset 18 'axes' input: pads cover only those axes. */
    if (x->n_in > 3 && x->in[3]) {
        err = qv_input_ints(x, 3, axes, QV_MAX_DIMS, &n_axes, d);
        if (err)
            return err;
    } else {
        n_axes = r;
        for (int i = 0; i < r; i++)
            axes[i] = i;
    }
    if (n != 2 * n_axes)
        return qv_op_fail(x->node, d, QV_EINVAL, "%d pads for %d axes", n, n_axes);
    memset(full, 0, sizeof(full));
    for (int i = 0; i < n_axes; i++) {
        int a;
        err = qv_axis_norm(x, axes[i], r, &a, d);
        if (err)
            return err;
        full[a] = pads[i];
        full[r + a] = pads[n_axes + i];
    }
    for (int i = 0; i < r; i++) {
        if (full[i] > QV_ONNX_MAX_ELEMS || full[r + i] > QV_ONNX_MAX_ELEMS)
            return qv_op_fail(x->node, d, QV_E2BIG, "pads too large");
        if (full[i] < 0 || full[r + i] < 0)
            return qv_op_fail(x->node, d, QV_ENOTSUP, "negative pads are not supported");
        if (p->mode == PAD_REFLECT && in->shape[i] < 2 && (full[i] || full[r + i]))
            return qv_op_fail(x->node, d, QV_EINVAL, "reflect needs a dim of at least 2");
        if (p->mode != PAD_CONSTANT && in->shape[i] == 0 && (full[i] || full[r + i]))
            return qv_op_fail(x->node, d, QV_EINVAL, "cannot pad an empty dim");
        p->begin[i] = full[i];
        shape[i] = in->shape[i] + full[i] + full[r + i];
    }
    qv_out_set(x, 0, in->dtype, r, shape);
    return QV_OK;
}

/* ---- Slice ---- */

struct slice_params {
    int64_t start[QV_MAX_DIMS], step[QV_MAX_DIMS];
};

static int slice_kernel(struct qv_exec *x)
{
    const struct slice_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t n = qv_numel(o), idx[QV_MAX_DIMS] = {0}, is[QV_MAX_DIMS];
    int r = in->ndim;

    strides_of(in, is);
    for (int64_t j = 0; j < n; j++) {
        int64_t off = 0;
        for (int i = 0; i < r; i++)
            off += (p->start[i] + idx[i] * p->step[i]) * is[i];
        copy_elem(o->data, j, in->data, off, es);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < o->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int slice_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct slice_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t starts[QV_MAX_DIMS], ends[QV_MAX_DIMS], axes[QV_MAX_DIMS], steps[QV_MAX_DIMS];
    int64_t shape[QV_MAX_DIMS];
    int ns, ne, na, nst, err;

    err = qv_op_arity(x, 1, x->node->opset >= 10 ? 5 : 1, 1, 1, d);
    if (err)
        return err;
    in = x->in[0];
    if (x->node->opset < 10) {
        const int64_t *a = qv_attr_ints(x->node, "starts", &ns),
                      *b = qv_attr_ints(x->node, "ends", &ne);
        const int64_t *c = qv_attr_ints(x->node, "axes", &na);
        if (ns != ne || ns > QV_MAX_DIMS || (c && na != ns))
            return qv_op_fail(x->node, d, QV_EINVAL, "starts/ends/axes lengths differ");
        for (int i = 0; i < ns; i++) {
            starts[i] = a[i];
            ends[i] = b[i];
            axes[i] = c ? c[i] : i;
            steps[i] = 1;
        }
        na = nst = ns;
    } else {
        err = qv_input_ints(x, 1, starts, QV_MAX_DIMS, &ns, d);
        if (!err)
            err = qv_input_ints(x, 2, ends, QV_MAX_DIMS, &ne, d);
        if (err)
            return err;
        na = nst = ns;
        for (int i = 0; i < ns; i++) {
            axes[i] = i;
            steps[i] = 1;
        }
        if (x->n_in > 3 && x->in[3]) {
            err = qv_input_ints(x, 3, axes, QV_MAX_DIMS, &na, d);
            if (err)
                return err;
        }
        if (x->n_in > 4 && x->in[4]) {
            err = qv_input_ints(x, 4, steps, QV_MAX_DIMS, &nst, d);
            if (err)
                return err;
        }
        if (ne != ns || na != ns || nst != ns)
            return qv_op_fail(x->node, d, QV_EINVAL, "starts/ends/axes/steps lengths differ");
    }
    for (int i = 0; i < in->ndim; i++) {
        p->start[i] = 0;
        p->step[i] = 1;
        shape[i] = in->shape[i];
    }
    for (int i = 0; i < ns; i++) {
        int a;
        int64_t dim, s, e, st = steps[i], len;
        err = qv_axis_norm(x, axes[i], in->ndim, &a, d);
        if (err)
            return err;
        dim = in->shape[a];
        if (st == 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "step 0");
        s = starts[i] < 0 ? starts[i] + dim : starts[i];
        e = ends[i] < 0 ? ends[i] + dim : ends[i];
        if (st > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
            /* Steps may come from the request: no st - 1 or -st overflow. */
            len = e > s ? 1 + (e - s - 1) / st : 0;
        } else {
            s = s < 0 ? -1 : (s > dim - 1 ? dim - 1 : s);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
            len = s > e ? (int64_t)(1 + (uint64_t)(s - e - 1) / ((uint64_t)(-(st + 1)) + 1)) : 0;
        }
        p->start[a] = s;
        p->step[a] = st;
        shape[a] = len;
    }
    qv_out_set(x, 0, in->dtype, in->ndim, shape);
    return QV_OK;
}

/* ---- Expand / Tile ---- */

struct bcast_copy_params {
    bool tile;
};

/* out[j] = in[broadcast or tiled index of j]. */
static int expand_kernel(struct qv_exec *x)
{
    const struct bcast_copy_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t n = qv_numel(o), idx[QV_MAX_DIMS] = {0}, is[QV_MAX_DIMS];
    int r = o->ndim, off_dims = o->ndim - in->ndim;

    strides_of(in, is);
    for (int64_t j = 0; j < n; j++) {
        int64_t off = 0;
        for (int i = off_dims; i < r; i++) {
            int64_t len = in->shape[i - off_dims];
            int64_t pos = p->tile ? idx[i] % len : (len == 1 ? 0 : idx[i]);
            off += pos * is[i - off_dims];
        }
        copy_elem(o->data, j, in->data, off, es);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < o->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int expand_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct bcast_copy_params *p = (void *)x->priv;
    struct qv_tensor want;
    const struct qv_tensor *ops[2];
    struct qv_bcast bc;
    int64_t vals[QV_MAX_DIMS];
    int n, err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    err = qv_input_ints(x, 1, vals, QV_MAX_DIMS, &n, d);
    if (err)
        return err;
    memset(&want, 0, sizeof(want));
    want.ndim = n;
    for (int i = 0; i < n; i++) {
        if (vals[i] < 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "negative dimension");
        want.shape[i] = vals[i];
    }
    ops[0] = x->in[0];
    ops[1] = &want;
    err = qv_bcast_init(&bc, 2, ops, x->node, d);
    if (err)
        return err;
    p->tile = false;
    qv_out_set(x, 0, x->in[0]->dtype, bc.ndim, bc.shape);
    return QV_OK;
}

static int tile_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct bcast_copy_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t reps[QV_MAX_DIMS], shape[QV_MAX_DIMS];
    int n, err = qv_op_arity(x, 2, 3, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    err = qv_input_ints(x, 1, reps, QV_MAX_DIMS, &n, d);
    if (err)
        return err;
    if (n != in->ndim)
        return qv_op_fail(x->node, d, QV_EINVAL, "repeats has %d values for rank %d", n, in->ndim);
    for (int i = 0; i < n; i++) {
        if (reps[i] < 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "negative repeat");
        if (reps[i] > QV_ONNX_MAX_ELEMS ||
            (in->shape[i] && reps[i] > QV_ONNX_MAX_ELEMS / in->shape[i]))
            return qv_op_fail(x->node, d, QV_E2BIG, "repeats too large");
        shape[i] = in->shape[i] * reps[i];
    }
    p->tile = true;
    qv_out_set(x, 0, in->dtype, n, shape);
    return QV_OK;
}

/* ---- Where ---- */

static int where_kernel(struct qv_exec *x)
{
    const struct qv_tensor *ops[3] = {x->in[0], x->in[1], x->in[2]};
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(o->dtype);
    struct qv_bcast bc;
    int64_t off[QV_BCAST_MAX];
    const uint8_t *c = x->in[0]->data;

    if (qv_bcast_init(&bc, 3, ops, NULL, NULL) != 0)
        return QV_EINVAL;
    for (int64_t j = 0; j < bc.numel; j++) {
        qv_bcast_offsets(&bc, j, off);
        if (c[off[0]])
            copy_elem(o->data, j, x->in[1]->data, off[1], es);
        else
            copy_elem(o->data, j, x->in[2]->data, off[2], es);
    }
    return QV_OK;
}

static int where_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *ops[3];
    struct qv_bcast bc;
    int err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->dtype != QV_DTYPE_BOOL || x->in[1]->dtype != x->in[2]->dtype)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs a bool condition and equal types");
    for (int i = 0; i < 3; i++)
        ops[i] = x->in[i];
    err = qv_bcast_init(&bc, 3, ops, x->node, d);
    if (err)
        return err;
    x->kdtype = x->in[1]->dtype;
    qv_out_set(x, 0, x->in[1]->dtype, bc.ndim, bc.shape);
    return QV_OK;
}

/* ---- ConstantOfShape / Range ---- */

static int constant_of_shape_kernel(struct qv_exec *x)
{
    const struct qv_tensor *v = qv_attr_tensor(x->node, "value");
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(o->dtype);
    int64_t n = qv_numel(o);

    if (v == NULL) {
        memset(o->data, 0, o->nbytes);
        return QV_OK;
    }
    for (int64_t j = 0; j < n; j++)
        copy_elem(o->data, j, v->data, 0, es);
    return QV_OK;
}

static int constant_of_shape_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *v = qv_attr_tensor(x->node, "value");
    int64_t vals[QV_MAX_DIMS];
    int n, err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    err = qv_input_ints(x, 0, vals, QV_MAX_DIMS, &n, d);
    if (err)
        return err;
    for (int i = 0; i < n; i++)
        if (vals[i] < 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "negative dimension");
    if (v && (qv_numel(v) != 1 || qv_dtype_size(v->dtype) == 0))
        return qv_op_fail(x->node, d, QV_EINVAL, "value must be a one-element tensor");
    qv_out_set(x, 0, v ? v->dtype : QV_DTYPE_F32, n, vals);
    x->kdtype = x->out[0]->dtype;
    return QV_OK;
}

static int range_kernel(struct qv_exec *x)
{
    struct qv_tensor *o = x->out[0];
    double start = qv_tensor_get_f64(x->in[0], 0), delta = qv_tensor_get_f64(x->in[2], 0);
    int64_t n = qv_numel(o);

    for (int64_t i = 0; i < n; i++) {
        switch (o->dtype) {
        case QV_DTYPE_F32:
            ((float *)o->data)[i] = (float)(start + (double)i * delta);
            break;
        case QV_DTYPE_F64:
            ((double *)o->data)[i] = start + (double)i * delta;
            break;
        case QV_DTYPE_I32:
            ((int32_t *)o->data)[i] = (int32_t)(start + (double)i * delta);
            break;
        case QV_DTYPE_I16:
            ((int16_t *)o->data)[i] = (int16_t)(start + (double)i * delta);
            break;
        default:
            ((int64_t *)o->data)[i] =
                ((const int64_t *)x->in[0]->data)[0] + i * ((const int64_t *)x->in[2]->data)[0];
            break;
        }
    }
    return QV_OK;
}

static int range_infer(struct qv_exec *x, struct qv_diag *d)
{
    double start, limit, delta, n;
    int64_t len;
    int err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    for (int i = 0; i < 3; i++) {
        err = qv_input_known(x, i, d);
        if (err)
            return err;
        if (qv_numel(x->in[i]) != 1 || x->in[i]->dtype != x->in[0]->dtype)
            return qv_op_fail(x->node, d, QV_EINVAL, "inputs must be scalars of one type");
    }
    start = qv_tensor_get_f64(x->in[0], 0);
    limit = qv_tensor_get_f64(x->in[1], 0);
    delta = qv_tensor_get_f64(x->in[2], 0);
    if (delta == 0 || isnan(delta) || isnan(start) || isnan(limit))
        return qv_op_fail(x->node, d, QV_EINVAL, "delta must be non-zero");
    n = ceil((limit - start) / delta);
    if (n > 1e9)
        return qv_op_fail(x->node, d, QV_E2BIG, "range too long");
    len = n > 0 ? (int64_t)n : 0;
    qv_out_set(x, 0, x->in[0]->dtype, 1, &len);
    return QV_OK;
}

#define ALL(fn)                                                                                    \
    {                                                                                              \
        QV_KERNELS_ALL(fn)                                                                         \
    }

const struct qv_op qv_op_constant_of_shape = {.name = "ConstantOfShape",
                                              .since_version = 9,
                                              .infer_shape = constant_of_shape_infer,
                                              .kernels = ALL(constant_of_shape_kernel)};
const struct qv_op qv_op_expand = {.name = "Expand",
                                   .since_version = 8,
                                   .infer_shape = expand_infer,
                                   .kernels = ALL(expand_kernel)};
const struct qv_op qv_op_pad = {
    .name = "Pad", .since_version = 1, .infer_shape = pad_infer, .kernels = ALL(pad_kernel)};
const struct qv_op qv_op_range = {.name = "Range",
                                  .since_version = 11,
                                  .infer_shape = range_infer,
                                  .kernels = {[QV_DTYPE_F32] = range_kernel,
                                              [QV_DTYPE_F64] = range_kernel,
                                              [QV_DTYPE_I64] = range_kernel,
                                              [QV_DTYPE_I32] = range_kernel,
                                              [QV_DTYPE_I16] = range_kernel}};
const struct qv_op qv_op_slice = {
    .name = "Slice", .since_version = 1, .infer_shape = slice_infer, .kernels = ALL(slice_kernel)};
const struct qv_op qv_op_split = {
    .name = "Split", .since_version = 1, .infer_shape = split_infer, .kernels = ALL(split_kernel)};
const struct qv_op qv_op_tile = {
    .name = "Tile", .since_version = 1, .infer_shape = tile_infer, .kernels = ALL(expand_kernel)};
const struct qv_op qv_op_where = {
    .name = "Where", .since_version = 9, .infer_shape = where_infer, .kernels = ALL(where_kernel)};
