/* SPDX-License-Identifier: MIT
 *
 * The public face of the ONNX runtime: a loaded graph plus a pool of
 * execution contexts. A context owns one plan (for the input shapes it last
 * ran) and is used by one run at a time; the pool is what makes
 * qv_onnx_run() re-entrant without a lock around inference.
 */
#include "onnx_int.h"

#include "../backend/ubj_check.h"

#define QV_LOG_MODULE "onnx"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A context keeps the plans of the last few input shapes it ran (LRU), so
 * that alternating batch sizes do not re-plan at every run. */
struct slot {
    bool planned;
    uint64_t used; /* the context's clock at its last use */
    struct qv__onnx_plan plan;
};

struct ctx {
    struct ctx *next;
    uint64_t clock;
    struct qv_tpool *pool; /* intra-op threads, made at the context's first run */
    bool pool_tried;
    struct slot slot[QV_ONNX_PLAN_CACHE];
};

struct qv_onnx_model {
    struct qv__onnx_graph g;
    int threads;
    unsigned plan_flags; /* QV__PLAN_*: fusion, Winograd */
    int fused; /* nodes fused in the plan made at load */
    int prepared; /* nodes with prepared weights in the plan made at load */
    size_t max_run_bytes; /* a plan's arena and folded data; 0: no limit */
    uint64_t plans_built; /* Guarded by lock. */
    bool value_keyed; /* shapes depend on input values: plan per run's values */
    qv_mutex lock;
    struct ctx *free_ctx; /* Guarded by lock. */
    size_t ctx_bytes;     /* Guarded by lock: arenas and folded data of all contexts. */
    int n_ctx;            /* Guarded by lock. */
};

/* OpenBLAS has one process-wide thread count, so it is set once, never per
 * model load (a load would change it under runs of other models): one thread
 * per call, as runs already go in parallel on the engine's workers, unless
 * OPENBLAS_NUM_THREADS says otherwise (OpenBLAS reads it itself). */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_init(void)
{
    const char *env = getenv("OPENBLAS_NUM_THREADS");

    if (env == NULL || *env == '\0')
        openblas_set_num_threads(1);
}

static size_t plan_bytes(const struct qv__onnx_plan *p)
{
    return p->arena_bytes + p->folded_bytes;
}

static size_t ctx_bytes_of(const struct ctx *c)
{
    size_t n = 0;

    for (int i = 0; i < QV_ONNX_PLAN_CACHE; i++)
        if (c->slot[i].planned)
            n += plan_bytes(&c->slot[i].plan);
    return n;
}

static void slot_clear(struct slot *s)
{
    if (s->planned)
        qv__onnx_plan_fini(&s->plan);
    s->planned = false;
}

static void ctx_destroy(struct ctx *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < QV_ONNX_PLAN_CACHE; i++)
        slot_clear(&c->slot[i]);
    qv__tpool_free(c->pool);
    free(c);
}

/* Shapes used to plan at load time: declared dims, symbolic ones set to 1. */
static void load_shapes(const struct qv__onnx_graph *g, struct qv_tensor *shapes)
{
    for (int i = 0; i < g->n_inputs; i++) {
        const struct qv_tensor_desc *dd = &g->in_desc[i];
        memset(&shapes[i], 0, sizeof(shapes[i]));
        shapes[i].dtype = dd->dtype;
        shapes[i].ndim = dd->ndim;
        for (int j = 0; j < dd->ndim; j++)
            shapes[i].shape[j] = dd->shape[j] < 0 ? 1 : dd->shape[j];
    }
}

int qv_onnx_load_buffer(const void *data, size_t len, const char *base_dir,
                        const struct qv_onnx_options *opt, qv_onnx_model **out, struct qv_diag *d)
{
    struct qv_onnx_model *m = NULL;
    struct qv_tensor *shapes = NULL;
    struct ctx *c = NULL;
    size_t max_bytes = opt && opt->max_bytes ? opt->max_bytes : ((size_t)4 << 30);
    bool needs = false;
    int err;

    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return qv_fail(d, QV_ENOMEM, "out of memory");
    qv_mutex_init(&m->lock);
    m->threads = opt && opt->threads > 0 ? opt->threads : 1;
    if (m->threads > QV_TPOOL_MAX)
        m->threads = QV_TPOOL_MAX;
    m->plan_flags = (opt && opt->no_fusion ? 0 : QV__PLAN_FUSE) |
                    (opt && opt->plain_conv ? QV__PLAN_PLAIN_CONV : 0);
    m->max_run_bytes = opt && opt->max_run_bytes ? opt->max_run_bytes : QV_ONNX_DEFAULT_RUN_BYTES;
    pthread_once(&blas_once, blas_init);
    err = qv__onnx_graph_load(data, len, base_dir, max_bytes, &m->g, d);
    if (err) {
        qv_mutex_fini(&m->lock);
        free(m);
        return err;
    }
    /* Plan once now, so that every shape and type error surfaces at load. */
    shapes = calloc((size_t)m->g.n_inputs + 1, sizeof(*shapes));
    c = calloc(1, sizeof(*c));
    if (shapes == NULL || c == NULL) {
        err = qv_fail(d, QV_ENOMEM, "out of memory");
        goto out;
    }
    load_shapes(&m->g, shapes);
    err = qv__onnx_plan_build(&m->g, shapes, QV__BIND_NONE, m->threads, m->plan_flags,
                              m->max_run_bytes, &c->slot[0].plan, &needs, d);
    if (err == QV_ENOTSUP && needs) {
        /* Some shape depends on the values of an input fed at run time (a
         * Reshape target, Pad pads, NonZero): plan at each run for those
         * values. Every other check has passed. */
        m->value_keyed = true;
        if (d)
            d->msg[0] = '\0';
        err = QV_OK;
    } else if (err) {
        goto out;
    } else {
        c->slot[0].planned = true;
        c->slot[0].used = ++c->clock;
        m->fused = c->slot[0].plan.n_fused;
        m->prepared = c->slot[0].plan.n_prepared;
        m->plans_built = 1;
        m->ctx_bytes = ctx_bytes_of(c);
    }
    m->free_ctx = c;
    m->n_ctx = 1;
    c = NULL;
    *out = m;
    m = NULL;
out:
    free(shapes);
    ctx_destroy(c);
    qv_onnx_free(m);
    return err;
}

int qv_onnx_load_file(const char *path, const struct qv_onnx_options *opt, qv_onnx_model **out,
                      struct qv_diag *d)
{
    size_t max_bytes = opt && opt->max_bytes ? opt->max_bytes : ((size_t)4 << 30);
    char *data = NULL, *dir = NULL, *slash;
    size_t len = 0;
    int err;

    /* Not fopen: a FIFO or a device in the repository must not block. */
    err = qv_artifact_read(path, max_bytes, (unsigned char **)&data, &len, d);
    if (err)
        return err;
    dir = strdup(path);
    if (dir == NULL) {
        free(data);
        return qv_fail(d, QV_ENOMEM, "out of memory");
    }
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    err = qv_onnx_load_buffer(data, len, dir, opt, out, d);
    free(dir);
    free(data);
    return err;
}

void qv_onnx_free(qv_onnx_model *m)
{
    if (m == NULL)
        return;
    while (m->free_ctx) {
        struct ctx *c = m->free_ctx;
        m->free_ctx = c->next;
        ctx_destroy(c);
    }
    qv__onnx_graph_fini(&m->g);
    qv_mutex_fini(&m->lock);
    free(m);
}

int qv_onnx_n_inputs(const qv_onnx_model *m)
{
    return m->g.n_inputs;
}

int qv_onnx_n_outputs(const qv_onnx_model *m)
{
    return m->g.n_outputs;
}

const struct qv_tensor_desc *qv_onnx_input(const qv_onnx_model *m, int i)
{
    return i >= 0 && i < m->g.n_inputs ? &m->g.in_desc[i] : NULL;
}

const struct qv_tensor_desc *qv_onnx_output(const qv_onnx_model *m, int i)
{
    return i >= 0 && i < m->g.n_outputs ? &m->g.out_desc[i] : NULL;
}

int qv_onnx_fused_nodes(const qv_onnx_model *m)
{
    return m->fused;
}

int qv_onnx_prepared_nodes(const qv_onnx_model *m)
{
    return m->prepared;
}

int qv_onnx_opset(const qv_onnx_model *m)
{
    return m->g.opset;
}

size_t qv_onnx_memory(const qv_onnx_model *m)
{
    qv_onnx_model *mm = (qv_onnx_model *)m; /* the lock is not part of the value */
    size_t n;

    qv_mutex_lock(&mm->lock);
    n = m->ctx_bytes;
    qv_mutex_unlock(&mm->lock);
    return n + m->g.pool.bytes;
}

/* Orders the caller's tensors as the graph inputs and checks them. */
static int match_inputs(const struct qv__onnx_graph *g, const struct qv_tensor *in, int n_in,
                        const struct qv_tensor **ordered, struct qv_diag *d)
{
    bool by_name = true;

    if (n_in != g->n_inputs)
        return qv_fail(d, QV_EINVAL, "model takes %d inputs, got %d", g->n_inputs, n_in);
    for (int i = 0; i < n_in; i++)
        ordered[i] = NULL;
    for (int i = 0; i < n_in && by_name; i++) {
        int k;
        for (k = 0; k < g->n_inputs; k++)
            if (strcmp(in[i].name, g->in_desc[k].name) == 0)
                break;
        if (k == g->n_inputs || ordered[k] != NULL)
            by_name = false;
        else
            ordered[k] = &in[i];
    }
    for (int i = 0; i < n_in; i++)
        if (!by_name)
            ordered[i] = &in[i];
    for (int i = 0; i < n_in; i++) {
        const struct qv_tensor_desc *dd = &g->in_desc[i];
        const struct qv_tensor *t = ordered[i];
        char want[96], got[96];

        if (t->dtype != dd->dtype)
            return qv_fail(d, QV_EINVAL, "input '%s': expected %s, got %s", dd->name,
                           qv_dtype_name(dd->dtype), qv_dtype_name(t->dtype));
        if (t->ndim != dd->ndim || !qv_tensor_matches(t, dd)) {
            qv_shape_format(dd->shape, dd->ndim, want, sizeof(want));
            qv_shape_format(t->shape, t->ndim, got, sizeof(got));
            return qv_fail(d, QV_EINVAL, "input '%s': expected shape %s, got %s", dd->name, want,
                           got);
        }
        if (qv_tensor_numel(t) < 0 ||
            (uint64_t)qv_tensor_numel(t) > t->nbytes / qv_dtype_size(t->dtype) ||
            (t->data == NULL && qv_tensor_numel(t) > 0))
            return qv_fail(d, QV_EINVAL, "input '%s': data is shorter than its shape", dd->name);
    }
    return QV_OK;
}

static bool plan_matches(const struct qv__onnx_plan *p, const struct qv_tensor *const *ordered,
                         int n, bool value_keyed)
{
    int v = 0;

    for (int i = 0; i < n && value_keyed; i++) {
        const struct qv_tensor *t = ordered[i];
        if (!qv__onnx_is_value_input(t))
            continue;
        for (int64_t k = 0; k < qv_tensor_numel(t); k++, v++) {
            int64_t x = qv__onnx_value_key(t, t->data, k);
            if (v >= p->vkey_len || p->vkey[v] != x)
                return false;
        }
    }
    if (v != p->vkey_len)
        return false;
    for (int i = 0; i < n; i++) {
        const int64_t *key = p->key + (size_t)i * (QV_MAX_DIMS + 1);
        if (key[0] != ordered[i]->ndim)
            return false;
        for (int j = 0; j < ordered[i]->ndim; j++)
            if (key[1 + j] != ordered[i]->shape[j])
                return false;
    }
    return true;
}

/* The slot of c to plan into: an empty one, else the least recently used. */
static struct slot *slot_victim(struct ctx *c)
{
    struct slot *v = &c->slot[0];

    for (int i = 0; i < QV_ONNX_PLAN_CACHE; i++) {
        if (!c->slot[i].planned)
            return &c->slot[i];
        if (c->slot[i].used < v->used)
            v = &c->slot[i];
    }
    return v;
}

/* Keeps the plans c caches within 'limit' bytes, dropping the least recently
 * used ones other than 'keep'. */
static void ctx_trim(struct ctx *c, const struct slot *keep, size_t limit)
{
    while (limit && ctx_bytes_of(c) > limit) {
        struct slot *v = NULL;
        for (int i = 0; i < QV_ONNX_PLAN_CACHE; i++)
            if (c->slot[i].planned && &c->slot[i] != keep && (v == NULL || c->slot[i].used < v->used))
                v = &c->slot[i];
        if (v == NULL)
            return;
        slot_clear(v);
    }
}

int qv_onnx_run(qv_onnx_model *m, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                int max_out, int *n_out, struct qv_diag *d)
{
    const struct qv__onnx_graph *g = &m->g;
    const struct qv_tensor **ordered = NULL;
    struct qv_tensor *shapes = NULL;
    struct ctx *c = NULL;
    struct slot *s = NULL;
    size_t before = 0;
    bool needs = false, transient = false, built = false;
    int err, done = 0;

    *n_out = 0;
    if (max_out < g->n_outputs)
        return qv_fail(d, QV_EINVAL, "model has %d outputs, room for %d", g->n_outputs, max_out);
    ordered = calloc((size_t)g->n_inputs + 1, sizeof(*ordered));
    if (ordered == NULL)
        return qv_fail(d, QV_ENOMEM, "out of memory");
    err = match_inputs(g, in, n_in, ordered, d);
    if (err)
        goto out;

    qv_mutex_lock(&m->lock);
    c = m->free_ctx;
    if (c) {
        m->free_ctx = c->next;
        before = ctx_bytes_of(c);
    }
    qv_mutex_unlock(&m->lock);
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            err = qv_fail(d, QV_ENOMEM, "out of memory");
            goto out;
        }
        qv_mutex_lock(&m->lock);
        m->n_ctx++;
        qv_mutex_unlock(&m->lock);
    }
    for (int i = 0; i < QV_ONNX_PLAN_CACHE && s == NULL; i++)
        if (c->slot[i].planned &&
            plan_matches(&c->slot[i].plan, ordered, g->n_inputs, m->value_keyed))
            s = &c->slot[i];
    if (s == NULL) {
        s = slot_victim(c);
        slot_clear(s);
        shapes = calloc((size_t)g->n_inputs + 1, sizeof(*shapes));
        if (shapes == NULL) {
            err = qv_fail(d, QV_ENOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < g->n_inputs; i++)
            shapes[i] = *ordered[i];
        built = true;
        err = qv__onnx_plan_build(g, shapes, m->value_keyed ? QV__BIND_SMALL : QV__BIND_NONE,
                                  m->threads, m->plan_flags, m->max_run_bytes, &s->plan, &needs, d);
        if (err == QV_ENOTSUP && needs && m->value_keyed) {
            /* Shapes depend on more than small inputs (NonZero, Unique):
             * plan with every input's values, for this run only. */
            if (d)
                d->msg[0] = '\0';
            err = qv__onnx_plan_build(g, shapes, QV__BIND_ALL, m->threads, m->plan_flags,
                                      m->max_run_bytes, &s->plan, NULL, d);
            transient = err == QV_OK;
        }
        if (err)
            goto out;
        s->planned = true;
    }
    s->used = ++c->clock;
    for (int i = 0; i < g->n_inputs; i++)
        s->plan.tensors[g->inputs[i]].data = ordered[i]->data;
    if (!c->pool_tried) {
        c->pool_tried = true;
        c->pool = qv__tpool_create(m->threads); /* NULL: this context runs on one thread */
    }
    err = qv__onnx_plan_run(g, &s->plan, c->pool, d);
    if (err)
        goto out;
    for (int i = 0; i < g->n_outputs; i++) {
        const struct qv_tensor *t = &s->plan.tensors[g->outputs[i]];
        err = qv_tensor_alloc(&out[i], g->out_desc[i].name, t->dtype, t->ndim, t->shape);
        if (err) {
            qv_fail(d, err, "cannot allocate output '%s'", g->out_desc[i].name);
            goto out;
        }
        done = i + 1;
        if (t->nbytes)
            memcpy(out[i].data, t->data, t->nbytes);
    }
    *n_out = g->n_outputs;
out:
    if (err)
        for (int i = 0; i < done; i++)
            qv_tensor_fini(&out[i]);
    if (c) {
        if (s != NULL) {
            for (int i = 0; i < g->n_inputs && s->planned; i++)
                s->plan.tensors[g->inputs[i]].data = NULL;
            if (transient)
                slot_clear(s);
            else
                ctx_trim(c, s, m->max_run_bytes);
        }
        qv_mutex_lock(&m->lock);
        if (built)
            m->plans_built++;
        m->ctx_bytes = m->ctx_bytes - before + ctx_bytes_of(c);
        c->next = m->free_ctx;
        m->free_ctx = c;
        qv_mutex_unlock(&m->lock);
    }
    free(shapes);
    free(ordered);
    return err;
}

void qv_onnx_plan_stats(qv_onnx_model *m, int *cached, uint64_t *built)
{
    int n = 0;

    qv_mutex_lock(&m->lock);
    for (const struct ctx *c = m->free_ctx; c != NULL; c = c->next)
        for (int i = 0; i < QV_ONNX_PLAN_CACHE; i++)
            n += c->slot[i].planned;
    if (built)
        *built = m->plans_built;
    qv_mutex_unlock(&m->lock);
    if (cached)
        *cached = n;
}

int qv_onnx_tensor_parse(const void *data, size_t len, struct qv_tensor *out, struct qv_diag *d)
{
    return qv__onnx_tensor_parse(data, len, out, d);
}
