/* SPDX-License-Identifier: MIT
 *
 * The planner: for one set of input shapes, infer every value's dtype and
 * shape in topological order, fold what is known at plan time (initializer
 * arithmetic, Shape-derived subgraphs), and place every run-time value in one
 * arena so that buffers whose lifetimes do not overlap share memory. Running
 * a plan is then a loop over kernel calls that allocates nothing.
 */
#include "onnx_int.h"

#define QV_LOG_MODULE "onnx"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64

static size_t align_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void qv__onnx_plan_fini(struct qv__onnx_plan *p)
{
    for (int i = 0; i < p->n_folded; i++)
        free(p->folded[i]);
    free(p->folded);
    free(p->tensors);
    free(p->execs);
    free(p->in_ptrs);
    free(p->out_ptrs);
    free(p->kernels);
    free(p->split);
    free(p->arena);
    free(p->key);
    free(p->vkey);
    memset(p, 0, sizeof(*p));
}

/* A buffer to place in the arena: live over nodes [first, last]. */
struct block {
    size_t size, offset;
    int first, last;
    int value; /* value id, or -1 - node for a node's scratch */
};

static int cmp_block_size(const void *a, const void *b)
{
    const struct block *x = a, *y = b;

    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

/* Greedy placement, largest first: each block goes at the lowest offset that
 * does not overlap a placed block live at the same time. O(n^2) in blocks. */
static size_t place_blocks(struct block *b, int n)
{
    size_t total = 0;

    qsort(b, (size_t)n, sizeof(*b), cmp_block_size);
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        bool moved = true;
        while (moved) {
            moved = false;
            for (int j = 0; j < i; j++) {
                if (b[j].last < b[i].first || b[i].last < b[j].first)
                    continue;
                if (off < b[j].offset + b[j].size && b[j].offset < off + b[i].size) {
                    off = b[j].offset + b[j].size;
                    moved = true;
                }
            }
        }
        b[i].offset = off;
        if (off + b[i].size > total)
            total = off + b[i].size;
    }
    return total;
}

/* Refuses a plan whose working memory would pass max_bytes, naming the
 * largest graph input (the request's shapes or values drive the size). */
static int too_big(const struct qv__onnx_graph *g, const struct qv_tensor *shapes, size_t need,
                   size_t max_bytes, struct qv_diag *d)
{
    const char *name = "";
    uint64_t biggest = 0;

    for (int i = 0; i < g->n_inputs; i++) {
        int64_t n = qv_shape_numel(shapes[i].shape, shapes[i].ndim);
        uint64_t b = n < 0 ? UINT64_MAX : (uint64_t)n * qv_dtype_size(shapes[i].dtype);
        if (i == 0 || b > biggest) {
            biggest = b;
            name = g->values[g->inputs[i]].name;
        }
    }
    return qv_fail(d, QV_E2BIG,
                   "input '%s': the request needs %zu bytes of working memory, more than the "
                   "%zu allowed",
                   name, need, max_bytes);
}

static int fold_node(struct qv__onnx_plan *p, struct qv_exec *x, qv_kernel_fn k, size_t max_bytes,
                     struct qv_diag *d)
{
    void *scratch = NULL;
    size_t need = p->folded_bytes + x->scratch_bytes;
    int err;

    for (int o = 0; o < x->n_out; o++)
        if (x->out[o] != NULL)
            need += x->out[o]->nbytes;
    if (max_bytes && need > max_bytes) {
        p->folded_bytes = need; /* for the caller's message */
        return QV_E2BIG;
    }
    for (int o = 0; o < x->n_out; o++) {
        struct qv_tensor *t = x->out[o];
        void *buf;
        if (t == NULL)
            continue;
        buf = malloc(t->nbytes ? t->nbytes : 1);
        if (buf == NULL)
            return QV_ENOMEM;
        p->folded[p->n_folded++] = buf;
        p->folded_bytes += t->nbytes;
        t->data = buf;
    }
    if (x->scratch_bytes) {
        scratch = aligned_alloc(ALIGN, align_up(x->scratch_bytes));
        if (scratch == NULL)
            return QV_ENOMEM;
    }
    x->scratch = scratch;
    err = k(x);
    x->scratch = NULL;
    free(scratch);
    if (err)
        return qv_op_fail(x->node, d, err, "failed while folding constants");
    return QV_OK;
}

/* The data an op derives once from its constant inputs (transformed
 * weights): a buffer of x->prep_bytes kept with the plan's folded data. */
static int prepare_node(struct qv__onnx_plan *p, struct qv_exec *x, size_t max_bytes)
{
    size_t need = p->folded_bytes + x->prep_bytes;

    if (max_bytes && need > max_bytes) {
        p->folded_bytes = need; /* for the caller's message */
        return QV_E2BIG;
    }
    x->prep = aligned_alloc(ALIGN, align_up(x->prep_bytes));
    if (x->prep == NULL)
        return QV_ENOMEM;
    p->folded[p->n_folded++] = x->prep;
    p->folded_bytes += x->prep_bytes;
    p->n_prepared++;
    if (x->node->op->prepare)
        x->node->op->prepare(x);
    return QV_OK;
}

int64_t qv__onnx_value_key(const struct qv_tensor *t, const void *data, int64_t k)
{
    int64_t v = 0;

    if (t->dtype == QV_DTYPE_I64)
        return ((const int64_t *)data)[k];
    if (t->dtype == QV_DTYPE_I32)
        return ((const int32_t *)data)[k];
    memcpy(&v, (const float *)data + k, sizeof(float)); /* the bits, so NaN compares too */
    return v;
}

bool qv__onnx_is_value_input(const struct qv_tensor *t)
{
    int64_t n = qv_tensor_numel(t);

    return (t->dtype == QV_DTYPE_I64 || t->dtype == QV_DTYPE_I32 || t->dtype == QV_DTYPE_F32) &&
           t->ndim <= 1 && n >= 0 && n <= QV_VALUE_INPUT_MAX && t->data != NULL;
}

/* Largest input count of an element-wise node run on slices. */
#define SPLIT_MAX_IN 4

/* An element-wise node worth slicing: large, one output, every input of
 * the output's shape or a single element. */
static bool splittable(const struct qv_exec *x)
{
    const struct qv_tensor *o = x->out[0];
    int64_t n;

    if (!(x->node->op->flags & QV_OP_ELEMENTWISE) || x->node->opset < 7 || x->n_out != 1 ||
        o == NULL || x->n_in > SPLIT_MAX_IN)
        return false;
    n = qv_numel(o);
    if (n < 2 * QV_PAR_GRAIN)
        return false;
    for (int i = 0; i < x->n_in; i++) {
        const struct qv_tensor *t = x->in[i];
        if (t == NULL || qv_numel(t) == 1)
            continue;
        if (t->ndim != o->ndim || memcmp(t->shape, o->shape, sizeof(int64_t) * (size_t)o->ndim))
            return false;
    }
    return true;
}

/* Fusion: node i (a Relu or Clip about to be planned) folded into the Conv
 * that produces its input, if that Conv is planned at run time and its
 * output feeds nothing else. The Conv then writes i's output, whose life
 * starts at the Conv; the Conv's own output value is no longer stored. */
static bool fuse_activation(const struct qv__onnx_graph *g, struct qv__onnx_plan *p, int i,
                            const int *uses, int *def, int *last)
{
    const struct qv_node *n = &g->nodes[i];
    const struct qv_exec *x = &p->execs[i];
    bool relu = strcmp(n->op_type, "Relu") == 0;
    float lo = -FLT_MAX, hi = FLT_MAX;
    int v, c;

    if ((!relu && strcmp(n->op_type, "Clip") != 0) || n->n_in < 1 || n->n_out != 1 ||
        n->out[0] < 0 || x->kdtype != QV_DTYPE_F32 || x->out[0]->dtype != QV_DTYPE_F32)
        return false;
    v = n->in[0];
    if (v < 0 || def[v] < 0 || uses[v] != 1 || g->values[v].is_output)
        return false;
    c = def[v];
    if (p->kernels[c] == NULL || p->execs[c].n_out < 1 || p->execs[c].out[0] != &p->tensors[v])
        return false;
    if (!relu && n->opset < 11) {
        lo = qv_attr_float(n, "min", -FLT_MAX);
        hi = qv_attr_float(n, "max", FLT_MAX);
    } else if (!relu) {
        for (int k = 1; k < x->n_in && k < 3; k++) {
            if (x->in[k] == NULL)
                continue;
            if (x->in[k]->data == NULL || x->in[k]->dtype != QV_DTYPE_F32 ||
                qv_numel(x->in[k]) != 1)
                return false; /* a bound fed at run time */
            if (k == 1)
                lo = *(const float *)x->in[k]->data;
            else
                hi = *(const float *)x->in[k]->data;
        }
    }
    if (!qv_conv_fuse_activation(&p->execs[c], relu, lo, hi))
        return false;
    ((struct qv_tensor **)p->execs[c].out)[0] = &p->tensors[n->out[0]];
    def[v] = -2;
    last[v] = -1;
    def[n->out[0]] = c;
    last[n->out[0]] = i;
    return true;
}

/* Fusion: node i (an Add about to be planned) folded into the Conv that
 * produces one of its inputs, if that Conv is planned at run time, has no
 * fused activation yet and its output feeds nothing else, and the other
 * input has the output's shape and exists when the Conv runs (a constant,
 * or computed before it). The Conv adds it before its activation (a Relu
 * after the Add then fuses too: ResNet's blocks end Conv, Add, Relu) and
 * writes i's output; the other input lives until the Conv. */
static bool fuse_residual(const struct qv__onnx_graph *g, struct qv__onnx_plan *p, int i,
                          const int *uses, int *def, int *last)
{
    const struct qv_node *n = &g->nodes[i];
    const struct qv_exec *x = &p->execs[i];

    if (strcmp(n->op_type, "Add") != 0 || n->n_in != 2 || n->n_out != 1 || n->out[0] < 0 ||
        x->kdtype != QV_DTYPE_F32 || x->out[0]->dtype != QV_DTYPE_F32)
        return false;
    for (int s = 0; s < 2; s++) {
        int v = n->in[s], r = n->in[1 - s], c;
        const struct qv_tensor *rt;
        if (v < 0 || r < 0 || v == r || def[v] < 0 || uses[v] != 1 || g->values[v].is_output)
            continue;
        c = def[v];
        rt = &p->tensors[r];
        if (p->kernels[c] == NULL || p->execs[c].n_out < 1 || p->execs[c].out[0] != &p->tensors[v])
            continue;
        if (!(def[r] >= 0 && def[r] < c) && !(def[r] == -2 && rt->data != NULL))
            continue;
        if (rt->ndim != x->out[0]->ndim ||
            memcmp(rt->shape, x->out[0]->shape, sizeof(int64_t) * (size_t)rt->ndim) != 0)
            continue;
        if (!qv_conv_fuse_residual(&p->execs[c], rt))
            continue;
        ((struct qv_tensor **)p->execs[c].out)[0] = &p->tensors[n->out[0]];
        def[v] = -2;
        last[v] = -1;
        def[n->out[0]] = c;
        last[n->out[0]] = i;
        if (def[r] >= 0 && last[r] < c)
            last[r] = c;
        return true;
    }
    return false;
}

int qv__onnx_plan_build(const struct qv__onnx_graph *g, const struct qv_tensor *shapes,
                        enum qv__bind bind, int threads, unsigned flags, size_t max_bytes,
                        struct qv__onnx_plan *p, bool *needs_values, struct qv_diag *d)
{
    bool fuse = flags & QV__PLAN_FUSE;
    size_t n_in_ptrs = 0, n_out_ptrs = 0, n_folded_max = 0;
    int *def = NULL, *last = NULL, *uses = NULL;
    struct block *blocks = NULL;
    int n_blocks = 0, err = QV_OK;
    size_t k_in = 0, k_out = 0;

    if (needs_values)
        *needs_values = false;
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < g->n_nodes; i++) {
        n_in_ptrs += (size_t)g->nodes[i].n_in;
        n_out_ptrs += (size_t)g->nodes[i].n_out;
    }
    n_folded_max = n_out_ptrs + (size_t)g->n_inputs + (size_t)g->n_nodes;
    p->tensors = calloc((size_t)g->n_values + 1, sizeof(*p->tensors));
    p->execs = calloc((size_t)g->n_nodes + 1, sizeof(*p->execs));
    p->in_ptrs = calloc(n_in_ptrs + 1, sizeof(*p->in_ptrs));
    p->out_ptrs = calloc(n_out_ptrs + 1, sizeof(*p->out_ptrs));
    p->kernels = calloc((size_t)g->n_nodes + 1, sizeof(*p->kernels));
    p->split = calloc((size_t)g->n_nodes + 1, sizeof(*p->split));
    p->folded = calloc(n_folded_max + 1, sizeof(void *));
    p->key_len = g->n_inputs * (QV_MAX_DIMS + 1);
    p->key = calloc((size_t)p->key_len + 1, sizeof(int64_t));
    p->vkey = calloc((size_t)g->n_inputs * QV_VALUE_INPUT_MAX + 1, sizeof(int64_t));
    def = malloc(((size_t)g->n_values + 1) * sizeof(int));
    last = malloc(((size_t)g->n_values + 1) * sizeof(int));
    blocks = calloc((size_t)g->n_values + (size_t)g->n_nodes + 1, sizeof(*blocks));
    uses = calloc((size_t)g->n_values + 1, sizeof(int));
    if (!p->tensors || !p->execs || !p->in_ptrs || !p->out_ptrs || !p->kernels || !p->split ||
        !p->folded || !p->key || !p->vkey || !def || !last || !blocks || !uses) {
        err = qv_fail(d, QV_ENOMEM, "out of memory while planning");
        goto out;
    }

    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] >= 0)
                uses[g->nodes[i].in[j]]++;

    /* Values known before any node runs. */
    for (int v = 0; v < g->n_values; v++) {
        const struct qv__value *val = &g->values[v];
        struct qv_tensor *t = &p->tensors[v];
        def[v] = -2; /* -2: not a run-time arena value */
        last[v] = -1;
        snprintf(t->name, sizeof(t->name), "%s", val->name);
        if (val->kind == QV__VALUE_CONST) {
            t->dtype = val->init->dtype;
            t->ndim = val->init->ndim;
            memcpy(t->shape, val->init->shape, sizeof(t->shape));
            t->data = val->init->data;
            t->nbytes = val->init->nbytes;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        struct qv_tensor *t = &p->tensors[g->inputs[i]];
        int64_t *key = p->key + (size_t)i * (QV_MAX_DIMS + 1);
        t->dtype = shapes[i].dtype;
        t->ndim = shapes[i].ndim;
        memcpy(t->shape, shapes[i].shape, sizeof(t->shape));
        if (!qv_shape_fits(t->shape, t->ndim) || qv_dtype_size(t->dtype) == 0 ||
            (uint64_t)qv_tensor_numel(t) > ((uint64_t)1 << 40) / qv_dtype_size(t->dtype)) {
            err =
                qv_fail(d, QV_E2BIG, "graph input '%s' is too large", g->values[g->inputs[i]].name);
            goto out;
        }
        t->nbytes = (size_t)qv_tensor_numel(t) * qv_dtype_size(t->dtype);
        t->data = NULL;
        key[0] = t->ndim;
        memcpy(key + 1, t->shape, sizeof(int64_t) * QV_MAX_DIMS);
        if (bind == QV__BIND_ALL) {
            t->data = shapes[i].data; /* borrowed for this run */
        } else if (bind == QV__BIND_SMALL && qv__onnx_is_value_input(&shapes[i])) {
            void *copy = malloc(t->nbytes + 1);
            int64_t n = qv_tensor_numel(t);
            if (copy == NULL) {
                err = qv_fail(d, QV_ENOMEM, "out of memory while planning");
                goto out;
            }
            if (t->nbytes)
                memcpy(copy, shapes[i].data, t->nbytes);
            p->folded[p->n_folded++] = copy;
            t->data = copy;
            for (int64_t k = 0; k < n; k++)
                p->vkey[p->vkey_len++] = qv__onnx_value_key(t, copy, k);
        }
    }

    for (int i = 0; i < g->n_nodes; i++) {
        const struct qv_node *n = &g->nodes[i];
        struct qv_exec *x = &p->execs[i];
        const struct qv_tensor **ins = p->in_ptrs + k_in;
        struct qv_tensor **outs = p->out_ptrs + k_out;
        bool known = true;
        qv_kernel_fn kern;

        k_in += (size_t)n->n_in;
        k_out += (size_t)n->n_out;
        x->node = n;
        x->n_in = n->n_in;
        x->n_out = n->n_out;
        x->in = ins;
        x->out = outs;
        x->threads = threads;
        x->plain_conv = flags & QV__PLAN_PLAIN_CONV;
        x->kdtype = QV_DTYPE_UNDEF;
        for (int j = 0; j < n->n_in; j++) {
            ins[j] = n->in[j] >= 0 ? &p->tensors[n->in[j]] : NULL;
            if (ins[j] == NULL)
                continue;
            if (x->kdtype == QV_DTYPE_UNDEF)
                x->kdtype = ins[j]->dtype;
            if (ins[j]->data == NULL)
                known = false;
        }
        for (int j = 0; j < n->n_out; j++) {
            outs[j] = n->out[j] >= 0 ? &p->tensors[n->out[j]] : NULL;
            if (outs[j]) {
                outs[j]->dtype = QV_DTYPE_UNDEF;
                outs[j]->ndim = -1;
            }
        }
        err = n->op->infer_shape(x, d);
        if (err) {
            if (needs_values)
                *needs_values = x->needs_values;
            goto out;
        }
        for (int j = 0; j < n->n_out; j++) {
            struct qv_tensor *t = outs[j];
            int64_t numel;
            size_t es;
            if (t == NULL)
                continue;
            es = qv_dtype_size(t->dtype);
            if (t->ndim < 0 || es == 0) {
                err = qv_op_fail(n, d, QV_EBACKEND, "output %d has no inferred type", j);
                goto out;
            }
            numel = qv_tensor_numel(t);
            if (!qv_shape_fits(t->shape, t->ndim) || (uint64_t)numel > ((uint64_t)1 << 40) / es) {
                err = qv_op_fail(n, d, QV_E2BIG, "output %d is too large", j);
                goto out;
            }
            t->nbytes = (size_t)numel * es;
            t->data = NULL;
        }
        if ((unsigned)x->kdtype >= QV_DTYPE_COUNT || n->op->kernels[x->kdtype] == NULL) {
            err = qv_op_fail(n, d, QV_ENOTSUP, "no kernel for data type %s",
                             qv_dtype_name(x->kdtype));
            goto out;
        }
        kern = n->op->kernels[x->kdtype];
        if (x->prep_bytes) {
            err = prepare_node(p, x, max_bytes);
            if (err) {
                if (err == QV_E2BIG)
                    err = too_big(g, shapes, p->folded_bytes, max_bytes, d);
                else
                    qv_fail(d, err, "out of memory while preparing '%s'", n->name);
                goto out;
            }
        }
        if ((known || (n->op->flags & QV_OP_SHAPE_ONLY)) && !(n->op->flags & QV_OP_NO_FOLD)) {
            err = fold_node(p, x, kern, max_bytes, d);
            if (err) {
                if (err == QV_E2BIG)
                    err = too_big(g, shapes, p->folded_bytes, max_bytes, d);
                else if (err == QV_ENOMEM)
                    qv_fail(d, err, "out of memory while folding constants");
                goto out;
            }
            continue;
        }
        if (fuse && (fuse_activation(g, p, i, uses, def, last) ||
                     fuse_residual(g, p, i, uses, def, last))) {
            p->n_fused++;
            continue;
        }
        p->kernels[i] = kern;
        p->split[i] = threads > 1 && splittable(x);
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0 && def[n->in[j]] >= 0)
                last[n->in[j]] = i;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) {
                def[n->out[j]] = i;
                last[n->out[j]] = i;
            }
        if (x->scratch_bytes) {
            struct block *b = &blocks[n_blocks++];
            b->size = align_up(x->scratch_bytes);
            b->first = b->last = i;
            b->value = -1 - i;
        }
    }

    /* Graph outputs: check declared dtypes, and keep them to the end. */
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        const struct qv_tensor_desc *dd = &g->out_desc[i];
        if (dd->dtype != QV_DTYPE_UNDEF && dd->dtype != p->tensors[v].dtype) {
            err = qv_fail(d, QV_EINVAL, "graph output '%s' is declared %s but computes %s",
                          g->values[v].name, qv_dtype_name(dd->dtype),
                          qv_dtype_name(p->tensors[v].dtype));
            goto out;
        }
        if (def[v] >= 0)
            last[v] = g->n_nodes;
    }
    for (int v = 0; v < g->n_values; v++) {
        struct block *b;
        if (def[v] < 0)
            continue;
        b = &blocks[n_blocks++];
        b->size = align_up(p->tensors[v].nbytes ? p->tensors[v].nbytes : 1);
        b->first = def[v];
        b->last = last[v];
        b->value = v;
    }
    p->arena_bytes = place_blocks(blocks, n_blocks);
    if (max_bytes && (p->arena_bytes > max_bytes || p->folded_bytes > max_bytes - p->arena_bytes)) {
        err = too_big(g, shapes, p->arena_bytes + p->folded_bytes, max_bytes, d);
        goto out;
    }
    if (p->arena_bytes) {
        p->arena = aligned_alloc(ALIGN, p->arena_bytes);
        if (p->arena == NULL) {
            err = qv_fail(d, QV_ENOMEM, "cannot allocate a %zu-byte arena", p->arena_bytes);
            goto out;
        }
    }
    for (int i = 0; i < n_blocks; i++) {
        void *ptr = (char *)p->arena + blocks[i].offset;
        if (blocks[i].value >= 0)
            p->tensors[blocks[i].value].data = ptr;
        else
            p->execs[-1 - blocks[i].value].scratch = ptr;
    }
out:
    free(uses);
    free(def);
    free(last);
    free(blocks);
    if (err)
        qv__onnx_plan_fini(p);
    return err;
}

struct split_job {
    const struct qv_exec *x;
    qv_kernel_fn k;
    int err[QV_TPOOL_MAX];
};

static void slice(struct qv_tensor *t, int64_t b, int64_t e)
{
    size_t es = qv_dtype_size(t->dtype);

    t->ndim = 1;
    t->shape[0] = e - b;
    t->data = (char *)t->data + (size_t)b * es;
    t->nbytes = (size_t)(e - b) * es;
}

/* Elements [b, e) of an element-wise node: the kernel on slices. */
static void split_part(void *arg, int64_t b, int64_t e, int worker)
{
    struct split_job *j = arg;
    const struct qv_exec *x = j->x;
    struct qv_exec sub = *x;
    struct qv_tensor tin[SPLIT_MAX_IN], tout = *x->out[0];
    const struct qv_tensor *pin[SPLIT_MAX_IN];
    struct qv_tensor *pout[1] = {&tout};
    int err;

    for (int i = 0; i < x->n_in; i++) {
        pin[i] = x->in[i];
        if (x->in[i] == NULL || qv_numel(x->in[i]) == 1)
            continue;
        tin[i] = *x->in[i];
        slice(&tin[i], b, e);
        pin[i] = &tin[i];
    }
    slice(&tout, b, e);
    sub.in = pin;
    sub.out = pout;
    sub.pool = NULL;
    err = j->k(&sub);
    if (err)
        j->err[worker] = err;
}

static int run_split(struct qv_exec *x, qv_kernel_fn k)
{
    struct split_job j = {.x = x, .k = k};

    qv_parallel_dyn(x, qv_numel(x->out[0]), QV_PAR_GRAIN, split_part, &j);
    for (int c = 0; c < QV_TPOOL_MAX; c++)
        if (j.err[c])
            return j.err[c];
    return QV_OK;
}

int qv__onnx_plan_run(const struct qv__onnx_graph *g, struct qv__onnx_plan *p,
                      struct qv_tpool *pool, struct qv_diag *d)
{
    for (int i = 0; i < g->n_nodes; i++) {
        int err;
        if (p->kernels[i] == NULL)
            continue;
        p->execs[i].pool = pool;
        if (p->split[i] && pool != NULL)
            err = run_split(&p->execs[i], p->kernels[i]);
        else
            err = p->kernels[i](&p->execs[i]);
        /* QV_EINVAL from a kernel means the input data is unusable (an index
         * out of range): the caller's error, not the runtime's. */
        if (err == QV_EINVAL)
            return qv_op_fail(&g->nodes[i], d, QV_EINVAL,
                              "input data out of range (an index or a length)");
        if (err)
            return qv_op_fail(&g->nodes[i], d, QV_EBACKEND, "kernel failed: %s", qv_strerror(err));
    }
    return QV_OK;
}
