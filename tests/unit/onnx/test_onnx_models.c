/* SPDX-License-Identifier: MIT
 *
 * The ONNX runtime and backend end to end: the example models against
 * PyTorch's reference outputs (examples/models/{mlp,cnn}/reference.json,
 * written by scripts/make_onnx_models.py), batch-size changes, concurrent
 * runs, wrong inputs, and broken model files (tests/onnx/models/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "backend/backend.h"
#include "onnx/onnx.h"

struct reference {
    char in_name[QV_NAME_MAX], out_name[QV_NAME_MAX];
    int in_ndim, out_ndim;
    int64_t in_shape[QV_MAX_DIMS], out_shape[QV_MAX_DIMS];
    float *in, *out;
    double tol;
};

static const char *src_dir(void)
{
    const char *s = getenv("QV_SOURCE_DIR");

    return s ? s : ".";
}

static void path_of(char *buf, size_t n, const char *rel)
{
    int r = snprintf(buf, n, "%s/%s", src_dir(), rel);

    assert_true(r > 0 && (size_t)r < n);
}

static float *read_array(json_t *obj, char *name, int *ndim, int64_t *shape)
{
    json_t *sh = json_object_get(obj, "shape"), *data = json_object_get(obj, "data");
    size_t i;
    json_t *v;
    float *out;

    snprintf(name, QV_NAME_MAX, "%s", json_string_value(json_object_get(obj, "name")));
    *ndim = (int)json_array_size(sh);
    json_array_foreach(sh, i, v) shape[i] = json_integer_value(v);
    out = calloc(json_array_size(data) + 1, sizeof(float));
    assert_non_null(out);
    json_array_foreach(data, i, v) out[i] = (float)json_number_value(v);
    return out;
}

static void reference_load(const char *model, struct reference *r)
{
    char path[1024], rel[256];
    json_error_t err;
    json_t *root;

    snprintf(rel, sizeof(rel), "examples/models/%s/reference.json", model);
    path_of(path, sizeof(path), rel);
    root = json_load_file(path, 0, &err);
    if (root == NULL)
        fail_msg("%s: %s", path, err.text);
    r->in = read_array(json_object_get(root, "input"), r->in_name, &r->in_ndim, r->in_shape);
    r->out = read_array(json_object_get(root, "output"), r->out_name, &r->out_ndim, r->out_shape);
    r->tol = json_number_value(json_object_get(root, "tolerance"));
    json_decref(root);
}

static void reference_free(struct reference *r)
{
    free(r->in);
    free(r->out);
}

static int64_t row_elems(const int64_t *shape, int ndim)
{
    return qv_shape_numel(shape + 1, ndim - 1);
}

/* A borrowed tensor over rows [first, first+rows) of the reference input. */
static struct qv_tensor input_rows(const struct reference *r, int64_t first, int64_t rows)
{
    struct qv_tensor t;
    int64_t per = row_elems(r->in_shape, r->in_ndim);

    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", r->in_name);
    t.dtype = QV_DTYPE_F32;
    t.ndim = r->in_ndim;
    memcpy(t.shape, r->in_shape, sizeof(t.shape));
    t.shape[0] = rows;
    t.data = r->in + first * per;
    t.nbytes = (size_t)(rows * per) * sizeof(float);
    return t;
}

static void check_rows(const struct reference *r, const struct qv_tensor *out, int64_t first,
                       int64_t rows)
{
    int64_t per = row_elems(r->out_shape, r->out_ndim);
    const float *y = out->data;

    assert_int_equal(out->dtype, QV_DTYPE_F32);
    assert_int_equal(out->ndim, r->out_ndim);
    assert_int_equal(out->shape[0], rows);
    for (int i = 1; i < r->out_ndim; i++)
        assert_int_equal(out->shape[i], r->out_shape[i]);
    for (int64_t i = 0; i < rows * per; i++) {
        double want = r->out[first * per + i];
        if (fabs(y[i] - want) > r->tol)
            fail_msg("%s[%lld] = %.7g, reference %.7g", r->out_name, (long long)i, y[i], want);
    }
}

static void run_model(const char *name, int threads)
{
    const struct qv_backend *be = qv_backend_find("onnx");
    struct qv_backend_params p = {.threads = threads};
    struct qv_signature sig;
    struct reference r;
    struct qv_diag d = {{0}};
    struct qv_tensor in, out[QV_MAX_IO];
    char path[1024], rel[256];
    void *state = NULL;
    int n_out = 0;

    assert_non_null(be);
    assert_true(qv_backend_flags(be) & QV_BACKEND_REENTRANT);
    reference_load(name, &r);
    snprintf(rel, sizeof(rel), "examples/models/%s/1/model.onnx", name);
    path_of(path, sizeof(path), rel);
    assert_ptr_equal(qv_backend_for_file(path), be);
    if (qv_backend_load(be, path, &p, &state, &d) != QV_OK)
        fail_msg("load %s: %s", path, d.msg);
    assert_int_equal(qv_backend_describe(be, state, &sig), QV_OK);
    assert_int_equal(sig.n_inputs, 1);
    assert_int_equal(sig.n_outputs, 1);
    assert_string_equal(sig.inputs[0].name, r.in_name);
    assert_string_equal(sig.outputs[0].name, r.out_name);
    assert_int_equal(sig.inputs[0].shape[0], -1);
    assert_int_equal(sig.inputs[0].ndim, r.in_ndim);
    assert_int_equal(sig.inputs[0].shape[1], r.in_shape[1]);
    assert_true(qv_backend_memory(be, state) > 0);

    /* All rows, then one row (a re-plan), then three rows from an offset. */
    for (int k = 0; k < 3; k++) {
        int64_t first = k == 0 ? 0 : 1, rows = k == 0 ? r.in_shape[0] : (k == 1 ? 1 : 3);
        in = input_rows(&r, first, rows);
        if (qv_backend_infer(be, state, &in, 1, out, &n_out, &d) != QV_OK)
            fail_msg("infer: %s", d.msg);
        assert_int_equal(n_out, 1);
        assert_string_equal(out[0].name, r.out_name);
        check_rows(&r, &out[0], first, rows);
        qv_tensor_fini(&out[0]);
    }
    qv_backend_unload(be, state);
    reference_free(&r);
}

static void test_mlp_matches_reference(void **state)
{
    (void)state;
    for (int t = 1; t <= 3; t++)
        run_model("mlp", t); /* 2 and 3: the intra-op pool */
}

static void test_cnn_matches_reference(void **state)
{
    (void)state;
    for (int t = 1; t <= 3; t++)
        run_model("cnn", t); /* 2 and 3: the intra-op pool; fused Conv + Relu */
}

/* ---- Concurrency ---- */

struct worker {
    qv_onnx_model *m;
    const struct reference *r;
    int id, failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (int it = 0; it < 20; it++) {
        int64_t rows = 1 + (w->id + it) % w->r->in_shape[0];
        int64_t first = w->r->in_shape[0] - rows;
        struct qv_tensor in = input_rows(w->r, first, rows), out[2];
        struct qv_diag d = {{0}};
        int64_t per = row_elems(w->r->out_shape, w->r->out_ndim);
        int n_out = 0;

        if (qv_onnx_run(w->m, &in, 1, out, 2, &n_out, &d) != QV_OK) {
            w->failures++;
            continue;
        }
        for (int64_t i = 0; i < rows * per; i++)
            if (fabs(((float *)out[0].data)[i] - w->r->out[first * per + i]) > w->r->tol)
                w->failures++;
        qv_tensor_fini(&out[0]);
    }
    return NULL;
}

static void test_concurrent_runs(void **state)
{
    struct reference r;
    struct worker w[4];
    pthread_t th[4];
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    char path[1024];

    (void)state;
    reference_load("mlp", &r);
    path_of(path, sizeof(path), "examples/models/mlp/1/model.onnx");
    assert_int_equal(qv_onnx_load_file(path, NULL, &m, &d), QV_OK);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.m = m, .r = &r, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    qv_onnx_free(m);
    reference_free(&r);
}

/* ---- Wrong inputs ---- */

static void test_wrong_inputs(void **state)
{
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    struct qv_tensor in, out[2];
    float data[4 * 30] = {0};
    int64_t i64[30] = {0};
    char path[1024];
    int n_out = -1;

    (void)state;
    path_of(path, sizeof(path), "examples/models/mlp/1/model.onnx");
    assert_int_equal(qv_onnx_load_file(path, NULL, &m, &d), QV_OK);
    assert_int_equal(qv_onnx_n_inputs(m), 1);
    assert_int_equal(qv_onnx_input(m, 0)->shape[1], 30);
    assert_null(qv_onnx_input(m, 1));
    assert_true(qv_onnx_opset(m) >= 7);

    memset(&in, 0, sizeof(in));
    in.dtype = QV_DTYPE_F32;
    in.ndim = 2;
    in.shape[0] = 4;
    in.shape[1] = 29;
    in.data = data;
    in.nbytes = sizeof(data);
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 2, &n_out, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "expected shape [-1,30], got [4,29]"));
    assert_int_equal(n_out, 0);

    memset(&d, 0, sizeof(d));
    in.shape[1] = 30;
    in.ndim = 3;
    in.shape[2] = 1;
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 2, &n_out, &d), QV_EINVAL);

    memset(&d, 0, sizeof(d));
    in.ndim = 2;
    in.dtype = QV_DTYPE_I64;
    in.shape[0] = 1;
    in.data = i64;
    in.nbytes = sizeof(i64);
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 2, &n_out, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "expected FP32, got INT64"));

    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_onnx_run(m, &in, 0, out, 2, &n_out, &d), QV_EINVAL);

    /* Data shorter than the shape says. */
    memset(&d, 0, sizeof(d));
    in.dtype = QV_DTYPE_F32;
    in.data = data;
    in.shape[0] = 4;
    in.nbytes = 10;
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 2, &n_out, &d), QV_EINVAL);

    /* A shape whose byte size overflows must not pass the length check. */
    memset(&d, 0, sizeof(d));
    in.shape[0] = (int64_t)1 << 58;
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 2, &n_out, &d), QV_EINVAL);
    in.shape[0] = 4;

    /* And a good run still works afterwards. */
    in.nbytes = sizeof(data);
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 2, &n_out, &d), QV_OK);
    assert_int_equal(n_out, 1);
    qv_tensor_fini(&out[0]);
    qv_onnx_free(m);
}


/* ---- Crafted files (protobuf wire format written by hand) ---- */

/* Written back to front, so nesting costs no copies: prepend a message's
 * content, then its key and length. */
struct rbuf {
    uint8_t *p;
    size_t cap, pos; /* the content is p[pos..cap) */
};

static void rb_bytes(struct rbuf *b, const void *data, size_t n)
{
    assert_true(n <= b->pos);
    b->pos -= n;
    memcpy(b->p + b->pos, data, n);
}

static void rb_varint(struct rbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;

    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    rb_bytes(b, tmp, n);
}

static struct rbuf rb_new(size_t cap)
{
    struct rbuf b = {.p = malloc(cap), .cap = cap, .pos = cap};

    assert_non_null(b.p);
    return b;
}

/* Turns the whole content into field 'field' of an enclosing message. */
static void rb_wrap(struct rbuf *b, uint64_t field)
{
    rb_varint(b, b->cap - b->pos);
    rb_varint(b, field << 3 | 2);
}

/* Prepends message m as field 'field'. */
static void rb_msg(struct rbuf *b, uint64_t field, const struct rbuf *m)
{
    rb_bytes(b, m->p + m->pos, m->cap - m->pos);
    rb_varint(b, m->cap - m->pos);
    rb_varint(b, field << 3 | 2);
}

static void rb_str(struct rbuf *b, uint64_t field, const char *s)
{
    rb_bytes(b, s, strlen(s));
    rb_varint(b, strlen(s));
    rb_varint(b, field << 3 | 2);
}

static void rb_int(struct rbuf *b, uint64_t field, uint64_t v)
{
    rb_varint(b, v);
    rb_varint(b, field << 3);
}

/* A model whose graph input's type is a sequence of a sequence of ... of a
 * float tensor, 'depth' levels deep. */
static struct rbuf deep_model(size_t depth)
{
    struct rbuf b = rb_new(64 + depth * 8);
    size_t end;

    rb_int(&b, 1, 1);      /* TypeProto.Tensor.elem_type = FLOAT */
    rb_wrap(&b, 1);     /* TypeProto.tensor_type */
    for (size_t i = 0; i < depth; i++) {
        rb_wrap(&b, 1); /* Sequence.elem_type */
        rb_wrap(&b, 4); /* TypeProto.sequence_type */
    }
    rb_wrap(&b, 2);     /* ValueInfoProto.type */
    rb_str(&b, 1, "x");    /* ValueInfoProto.name */
    rb_wrap(&b, 11);    /* GraphProto.input */
    rb_wrap(&b, 7);     /* ModelProto.graph */
    end = b.pos;
    rb_int(&b, 2, 13);     /* OperatorSetIdProto.version */
    rb_varint(&b, end - b.pos);
    rb_varint(&b, 8 << 3 | 2); /* ModelProto.opset_import */
    rb_int(&b, 1, 8);      /* ModelProto.ir_version */
    return b;
}

/* A model whose graph has k float initializers of n elements, each stored
 * externally at offset 0 of 'location'. */
static struct rbuf external_model(int k, size_t n, const char *location)
{
    struct rbuf b = rb_new(4096 + (size_t)k * 128), g = rb_new(4096 + (size_t)k * 128);

    for (int i = 0; i < k; i++) {
        struct rbuf t = rb_new(256), e = rb_new(128);
        char name[16];

        rb_str(&e, 2, location);
        rb_str(&e, 1, "location");
        rb_int(&t, 14, 1);    /* data_location = EXTERNAL */
        rb_msg(&t, 13, &e);   /* external_data */
        snprintf(name, sizeof(name), "w%d", i);
        rb_str(&t, 8, name);
        rb_int(&t, 2, 1);     /* data_type = FLOAT */
        rb_int(&t, 1, n);     /* dims */
        rb_msg(&g, 5, &t);    /* GraphProto.initializer */
        free(t.p);
        free(e.p);
    }
    rb_msg(&b, 7, &g);
    free(g.p);
    {
        struct rbuf os = rb_new(16);
        rb_int(&os, 2, 13);
        rb_msg(&b, 8, &os);
        free(os.p);
    }
    rb_int(&b, 1, 8);
    return b;
}

static int h_rm_rf(const char *dir)
{
    char cmd[700];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int load_crafted(const char *dir, const struct rbuf *b, size_t max_bytes,
                        struct qv_diag *d)
{
    struct qv_onnx_options opt = {.threads = 1, .max_bytes = max_bytes};
    qv_onnx_model *m = NULL;
    int err;

    memset(d, 0, sizeof(*d));
    err = qv_onnx_load_buffer(b->p + b->pos, b->cap - b->pos, dir, &opt, &m, d);
    qv_onnx_free(m);
    return err;
}

/* protobuf-c unpacks nested messages recursively: a deep file is refused
 * before it is unpacked, not allowed to overflow the stack. */
static void test_deep_nesting_refused(void **state)
{
    struct qv_diag d;
    struct rbuf b;

    (void)state;
    b = deep_model(200000);
    assert_int_equal(load_crafted(NULL, &b, 0, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "nests messages deeper than"));
    free(b.p);
    /* A shallow one passes the bound (and fails later for what it is). */
    b = deep_model(5);
    assert_int_not_equal(load_crafted(NULL, &b, 0, &d), QV_OK);
    assert_null(strstr(d.msg, "nests messages deeper than"));
    free(b.p);
}

/* Many initializers naming the same external region: each is within the
 * limit, their sum is not. */
static void test_external_total_bounded(void **state)
{
    char dir[] = "/tmp/qv-onnx-ext-XXXXXX", path[600];
    static float w[16384]; /* 64 KiB */
    struct qv_diag d;
    struct rbuf b;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/w.bin", dir);
    write_bytes(path, w, sizeof(w));
    /* 4 x 64 KiB within 1 MiB: on to the next check (no outputs). */
    b = external_model(4, 16384, "w.bin");
    assert_int_equal(load_crafted(dir, &b, 1 << 20, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "no outputs"));
    free(b.p);
    /* 64 x 64 KiB = 4 MiB past 1 MiB. */
    b = external_model(64, 16384, "w.bin");
    assert_int_equal(load_crafted(dir, &b, 1 << 20, &d), QV_E2BIG);
    assert_non_null(strstr(d.msg, "external data exceeds the limit"));
    free(b.p);
    unlink(path);
    rmdir(dir);
}

/* An external-data file that is a symlink out of the model's directory (or
 * a directory inside it that links out) is refused, as is a FIFO. */
static void test_external_symlink_escape(void **state)
{
    char top[] = "/tmp/qv-onnx-esc-XXXXXX", dir[600], out[600], link[600], sub[600];
    static float w[16];
    struct qv_diag d;
    struct rbuf b;

    (void)state;
    assert_non_null(mkdtemp(top));
    snprintf(dir, sizeof(dir), "%s/1", top);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(out, sizeof(out), "%s/secret.bin", top);
    write_bytes(out, w, sizeof(w));
    snprintf(link, sizeof(link), "%s/w.bin", dir);
    assert_int_equal(symlink("../secret.bin", link), 0);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    assert_int_equal(symlink("..", sub), 0);

    b = external_model(1, 16, "w.bin");
    assert_int_equal(load_crafted(dir, &b, 0, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "outside the model directory"));
    free(b.p);
    b = external_model(1, 16, "sub/secret.bin");
    assert_int_equal(load_crafted(dir, &b, 0, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "outside the model directory"));
    free(b.p);
    /* A symlink that stays inside is fine. */
    unlink(link);
    snprintf(out, sizeof(out), "%s/real.bin", dir);
    write_bytes(out, w, sizeof(w));
    assert_int_equal(symlink("real.bin", link), 0);
    b = external_model(1, 16, "w.bin");
    assert_int_equal(load_crafted(dir, &b, 0, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "no outputs"));
    free(b.p);
    /* A FIFO is not read (it would block). */
    snprintf(out, sizeof(out), "%s/fifo.bin", dir);
    assert_int_equal(mkfifo(out, 0600), 0);
    b = external_model(1, 16, "fifo.bin");
    assert_int_equal(load_crafted(dir, &b, 0, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "not a regular file"));
    free(b.p);
    assert_int_equal(h_rm_rf(top), 0);
}


/* Prepends ValueInfoProto 'name' as field 'field': a tensor of elem_type
 * (ONNX code) with 'rank' symbolic dims (rank < 0: no shape). */
static void rb_value_info(struct rbuf *b, uint64_t field, const char *name, int elem, int rank)
{
    struct rbuf tensor = rb_new(256), type = rb_new(256), vi = rb_new(512);

    if (rank >= 0) {
        struct rbuf shape = rb_new(256);
        for (int i = 0; i < rank; i++) {
            struct rbuf dim = rb_new(32);
            rb_str(&dim, 2, "n"); /* Dimension.dim_param */
            rb_msg(&shape, 1, &dim);
            free(dim.p);
        }
        rb_msg(&tensor, 2, &shape); /* TypeProto.Tensor.shape */
        free(shape.p);
    }
    rb_int(&tensor, 1, (uint64_t)elem); /* TypeProto.Tensor.elem_type */
    rb_msg(&type, 1, &tensor);          /* TypeProto.tensor_type */
    rb_msg(&vi, 2, &type);              /* ValueInfoProto.type */
    rb_str(&vi, 1, name);
    rb_msg(b, field, &vi);
    free(tensor.p);
    free(type.p);
    free(vi.p);
}

/* A one-node model: op over inputs ins (elem types, ranks) to outputs outs,
 * with one string attribute when attr is not NULL. */
static struct rbuf node_model_attr(const char *op, int opset, int n_in, const char *const *ins,
                                   const int *elems, const int *ranks, int n_out,
                                   const char *const *outs, const char *attr, const char *value)
{
    struct rbuf b = rb_new(8192), g = rb_new(8192), node = rb_new(1024), os = rb_new(16);

    for (int i = n_out - 1; i >= 0; i--)
        rb_value_info(&g, 12, outs[i], elems[0], -1); /* GraphProto.output */
    for (int i = n_in - 1; i >= 0; i--)
        rb_value_info(&g, 11, ins[i], elems[i], ranks[i]); /* GraphProto.input */
    if (attr != NULL) {
        struct rbuf a = rb_new(256);
        rb_int(&a, 20, 3);              /* AttributeProto.type = STRING */
        rb_str(&a, 4, value);           /* AttributeProto.s */
        rb_str(&a, 1, attr);            /* AttributeProto.name */
        rb_msg(&node, 5, &a);           /* NodeProto.attribute */
        free(a.p);
    }
    rb_str(&node, 4, op);               /* NodeProto.op_type */
    rb_str(&node, 3, "n0");             /* NodeProto.name */
    for (int i = n_out - 1; i >= 0; i--)
        rb_str(&node, 2, outs[i]);
    for (int i = n_in - 1; i >= 0; i--)
        rb_str(&node, 1, ins[i]);
    rb_msg(&g, 1, &node);               /* GraphProto.node */
    rb_msg(&b, 7, &g);
    rb_int(&os, 2, (uint64_t)opset);
    rb_msg(&b, 8, &os);
    rb_int(&b, 1, 8);
    free(g.p);
    free(node.p);
    free(os.p);
    return b;
}

static struct rbuf node_model(const char *op, int opset, int n_in, const char *const *ins,
                              const int *elems, const int *ranks, int n_out,
                              const char *const *outs)
{
    return node_model_attr(op, opset, n_in, ins, elems, ranks, n_out, outs, NULL, NULL);
}

static void set_input(struct qv_tensor *t, const char *name, enum qv_dtype dt, int64_t n,
                      void *data, size_t es)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = dt;
    t->ndim = 1;
    t->shape[0] = n;
    t->data = data;
    t->nbytes = (size_t)n * es;
}

static int run_crafted(const struct rbuf *b, struct qv_tensor *in, int n_in, int *n_out,
                       struct qv_diag *d)
{
    qv_onnx_model *m = NULL;
    struct qv_tensor out[4];
    int err;

    memset(d, 0, sizeof(*d));
    err = qv_onnx_load_buffer(b->p + b->pos, b->cap - b->pos, NULL, NULL, &m, d);
    if (err)
        fail_msg("crafted model does not load: %s", d->msg);
    err = qv_onnx_run(m, in, n_in, out, 4, n_out, d);
    for (int i = 0; !err && i < *n_out; i++)
        qv_tensor_fini(&out[i]);
    qv_onnx_free(m);
    return err;
}

/* Split sizes from the request summing past INT64_MAX: refused, no signed
 * overflow (UBSan aborts on it). */
static void test_split_sizes_overflow(void **state)
{
    static const char *const ins[] = {"x", "s"}, *const outs[] = {"a", "b"};
    static const int elems[] = {1, 7}, ranks[] = {1, 1};
    float x[4] = {1, 2, 3, 4};
    int64_t sizes[2];
    struct qv_tensor in[2];
    struct qv_diag d;
    struct rbuf b = node_model("Split", 13, 2, ins, elems, ranks, 2, outs);
    int n_out = 0;

    (void)state;
    set_input(&in[0], "x", QV_DTYPE_F32, 4, x, sizeof(float));
    set_input(&in[1], "s", QV_DTYPE_I64, 2, sizes, sizeof(int64_t));
    sizes[0] = 1;
    sizes[1] = 3;
    assert_int_equal(run_crafted(&b, in, 2, &n_out, &d), QV_OK);
    assert_int_equal(n_out, 2);
    sizes[0] = INT64_MAX;
    sizes[1] = 5;
    assert_int_equal(run_crafted(&b, in, 2, &n_out, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "split sizes"));
    sizes[0] = 3;
    sizes[1] = INT64_MAX;
    assert_int_equal(run_crafted(&b, in, 2, &n_out, &d), QV_EINVAL);
    free(b.p);
}

/* Slice steps from the request at the int64 extremes: one element, no
 * overflow in the length computation. */
static void test_slice_extreme_steps(void **state)
{
    static const char *const ins[] = {"x", "starts", "ends", "axes", "steps"}, *const outs[] = {"y"};
    static const int elems[] = {1, 7, 7, 7, 7}, ranks[] = {1, 1, 1, 1, 1};
    float x[4] = {1, 2, 3, 4};
    int64_t starts[1], ends[1], axes[1] = {0}, steps[1];
    struct qv_tensor in[5];
    struct qv_diag d;
    struct rbuf b = node_model("Slice", 13, 5, ins, elems, ranks, 1, outs);
    int n_out = 0;

    (void)state;
    set_input(&in[0], "x", QV_DTYPE_F32, 4, x, sizeof(float));
    set_input(&in[1], "starts", QV_DTYPE_I64, 1, starts, sizeof(int64_t));
    set_input(&in[2], "ends", QV_DTYPE_I64, 1, ends, sizeof(int64_t));
    set_input(&in[3], "axes", QV_DTYPE_I64, 1, axes, sizeof(int64_t));
    set_input(&in[4], "steps", QV_DTYPE_I64, 1, steps, sizeof(int64_t));
    starts[0] = 0;
    ends[0] = INT64_MAX;
    steps[0] = INT64_MAX;
    assert_int_equal(run_crafted(&b, in, 5, &n_out, &d), QV_OK);
    starts[0] = INT64_MAX;
    ends[0] = INT64_MIN;
    steps[0] = INT64_MIN;
    assert_int_equal(run_crafted(&b, in, 5, &n_out, &d), QV_OK);
    free(b.p);
}

/* Resize's roi from the request: NaN or infinite values are refused, not
 * converted to integers. */
static void test_resize_roi_not_finite(void **state)
{
    static const char *const ins[] = {"x", "roi", "scales"}, *const outs[] = {"y"};
    static const int elems[] = {1, 1, 1}, ranks[] = {4, 1, 1};
    float x[4] = {1, 2, 3, 4}, roi[8] = {0, 0, 0, 0, 1, 1, 1, 1}, scales[4] = {1, 1, 2, 2};
    struct qv_tensor in[3];
    struct qv_diag d;
    struct rbuf b = node_model_attr("Resize", 13, 3, ins, elems, ranks, 1, outs,
                                    "coordinate_transformation_mode", "tf_crop_and_resize");
    int n_out = 0;

    (void)state;
    set_input(&in[0], "x", QV_DTYPE_F32, 4, x, sizeof(float));
    in[0].ndim = 4;
    in[0].shape[0] = in[0].shape[1] = 1;
    in[0].shape[2] = in[0].shape[3] = 2;
    set_input(&in[1], "roi", QV_DTYPE_F32, 8, roi, sizeof(float));
    set_input(&in[2], "scales", QV_DTYPE_F32, 4, scales, sizeof(float));
    assert_int_equal(run_crafted(&b, in, 3, &n_out, &d), QV_OK);
    roi[6] = NAN;
    assert_int_equal(run_crafted(&b, in, 3, &n_out, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "roi"));
    roi[6] = INFINITY;
    assert_int_equal(run_crafted(&b, in, 3, &n_out, &d), QV_EINVAL);
    roi[6] = -1e30f;
    assert_int_equal(run_crafted(&b, in, 3, &n_out, &d), QV_EINVAL);
    free(b.p);
}

/* A graph that lists one output twice is refused at load. */
static void test_duplicate_output_refused(void **state)
{
    static const char *const ins[] = {"x"}, *const outs[] = {"y"};
    static const int elems[] = {1}, ranks[] = {1};
    struct rbuf b = node_model("Relu", 13, 1, ins, elems, ranks, 1, outs);
    struct rbuf dup = rb_new(b.cap - b.pos + 64), g = rb_new(b.cap - b.pos + 64);
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};

    (void)state;
    /* The same model with a second GraphProto.output "y": rebuilt from its
     * parts is long-winded, so append the field to the graph's bytes. The
     * model is ir_version, opset_import, then graph (field 7) last. */
    {
        const uint8_t *p = b.p + b.pos, *end = b.p + b.cap;
        size_t glen = 0, hdr;
        /* Skip ir_version (2 bytes) and opset_import (tag, len, body). */
        p += 2;
        p += 2 + p[1];
        assert_int_equal(p[0], 7 << 3 | 2);
        for (hdr = 1; hdr < 6; hdr++) {
            glen |= (size_t)(p[hdr] & 0x7f) << (7 * (hdr - 1));
            if (!(p[hdr] & 0x80))
                break;
        }
        hdr++;
        assert_ptr_equal(p + hdr + glen, end);
        rb_value_info(&g, 12, "y", 1, -1);
        rb_bytes(&g, p + hdr, glen);
        rb_msg(&dup, 7, &g);
        rb_bytes(&dup, b.p + b.pos, (size_t)(p - (b.p + b.pos)));
    }
    assert_int_equal(qv_onnx_load_buffer(dup.p + dup.pos, dup.cap - dup.pos, NULL, NULL, &m, &d),
                     QV_EINVAL);
    assert_null(m);
    if (strstr(d.msg, "listed twice") == NULL)
        fail_msg("diag: %s", d.msg);
    /* The original loads. */
    assert_int_equal(qv_onnx_load_buffer(b.p + b.pos, b.cap - b.pos, NULL, NULL, &m, &d), QV_OK);
    qv_onnx_free(m);
    free(b.p);
    free(dup.p);
    free(g.p);
}

/* A FIFO as the model file is refused, not opened for a read that blocks
 * until a writer comes. */
static void test_fifo_model_refused(void **state)
{
    char dir[] = "/tmp/qv-onnx-fifo-XXXXXX", path[600];
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/model.onnx", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(qv_onnx_load_file(path, NULL, &m, &d), QV_EINVAL);
    assert_null(m);
    assert_non_null(strstr(d.msg, "not a regular file"));
    unlink(path);
    rmdir(dir);
}

/* OpenBLAS's thread count is process-wide: loading a model with another
 * 'threads' must not change it under other models' runs. */
static void test_load_leaves_blas_threads(void **state)
{
    char path[1024];
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    int before;

    (void)state;
    path_of(path, sizeof(path), "tests/onnx/models/add_relu.onnx");
    for (int t = 1; t <= 3; t++) {
        struct qv_onnx_options opt = {.threads = t};
        assert_int_equal(qv_onnx_load_file(path, &opt, &m, &d), QV_OK);
        qv_onnx_free(m);
        m = NULL;
        if (t == 1)
            before = openblas_get_num_threads();
        assert_int_equal(openblas_get_num_threads(), before);
    }
}

/* Working memory is bounded per run: a request whose values imply a huge
 * output is refused naming the input, before anything that size is
 * allocated. */
static void test_run_memory_bounded(void **state)
{
    struct qv_onnx_options opt = {.threads = 1, .max_run_bytes = (size_t)64 << 20};
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    struct qv_tensor in, out[1];
    int64_t dims[2] = {4, 8};
    char path[1024];
    int n_out = 0;

    (void)state;
    path_of(path, sizeof(path), "tests/onnx/models/const_of_shape.onnx");
    assert_int_equal(qv_onnx_load_file(path, &opt, &m, &d), QV_OK);
    set_input(&in, "shape", QV_DTYPE_I64, 2, dims, sizeof(int64_t));
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 1, &n_out, &d), QV_OK);
    assert_int_equal(qv_tensor_numel(&out[0]), 32);
    qv_tensor_fini(&out[0]);
    /* 2^34 floats: 64 GiB. */
    dims[0] = (int64_t)1 << 18;
    dims[1] = (int64_t)1 << 16;
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 1, &n_out, &d), QV_E2BIG);
    if (strstr(d.msg, "input 'shape'") == NULL || strstr(d.msg, "working memory") == NULL)
        fail_msg("diag: %s", d.msg);
    /* 128 MiB: past the limit too. */
    dims[0] = 1 << 13;
    dims[1] = 1 << 12;
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 1, &n_out, &d), QV_E2BIG);
    /* And small runs still work. */
    dims[0] = 2;
    dims[1] = 3;
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 1, &n_out, &d), QV_OK);
    qv_tensor_fini(&out[0]);
    qv_onnx_free(m);
}

/* Each batch size needs its own plan: the plans kept stay bounded however
 * many sizes come, and recent sizes are not planned again. */
static void test_plan_cache_bounded(void **state)
{
    char path[1024];
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    const struct qv_tensor_desc *dd;
    struct qv_tensor in, out[4];
    float *x;
    int n_out = 0, cached = 0;
    uint64_t built = 0, built_before = 0;

    (void)state;
    path_of(path, sizeof(path), "examples/models/mlp/1/model.onnx");
    assert_int_equal(qv_onnx_load_file(path, NULL, &m, &d), QV_OK);
    dd = qv_onnx_input(m, 0);
    assert_int_equal(dd->ndim, 2);
    x = calloc((size_t)40 * (size_t)dd->shape[1], sizeof(float));
    assert_non_null(x);
    for (int b = 1; b <= 40; b++) {
        memset(&in, 0, sizeof(in));
        snprintf(in.name, sizeof(in.name), "%s", dd->name);
        in.dtype = QV_DTYPE_F32;
        in.ndim = 2;
        in.shape[0] = b;
        in.shape[1] = dd->shape[1];
        in.data = x;
        in.nbytes = (size_t)b * (size_t)dd->shape[1] * sizeof(float);
        assert_int_equal(qv_onnx_run(m, &in, 1, out, 4, &n_out, &d), QV_OK);
        for (int i = 0; i < n_out; i++)
            qv_tensor_fini(&out[i]);
        qv_onnx_plan_stats(m, &cached, &built);
        assert_true(cached <= QV_ONNX_PLAN_CACHE);
    }
    assert_true(built >= 40);
    /* Alternating between two recent sizes plans nothing new. */
    built_before = built;
    for (int k = 0; k < 10; k++) {
        in.shape[0] = 39 + k % 2;
        in.nbytes = (size_t)in.shape[0] * (size_t)dd->shape[1] * sizeof(float);
        assert_int_equal(qv_onnx_run(m, &in, 1, out, 4, &n_out, &d), QV_OK);
        for (int i = 0; i < n_out; i++)
            qv_tensor_fini(&out[i]);
    }
    qv_onnx_plan_stats(m, &cached, &built);
    assert_int_equal(built, built_before);
    free(x);
    qv_onnx_free(m);
}

/* ---- Broken models ---- */

static void expect_load_error(const char *file, int err, const char *needle)
{
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    char path[1024], rel[256];

    snprintf(rel, sizeof(rel), "tests/onnx/models/%s", file);
    path_of(path, sizeof(path), rel);
    assert_int_equal(qv_onnx_load_file(path, NULL, &m, &d), err);
    assert_null(m);
    if (strstr(d.msg, needle) == NULL)
        fail_msg("%s: diag '%s' lacks '%s'", file, d.msg, needle);
}

static void test_bad_models(void **state)
{
    (void)state;
    expect_load_error("unknown_op.onnx", QV_ENOTSUP,
                      "node 'mystery' (FooBar): operator not supported");
    expect_load_error("bad_shape.onnx", QV_EINVAL, "node 'add_bad' (Add): shapes [1,3] and [4]");
    expect_load_error("bad_type.onnx", QV_ENOTSUP, "STRING");
    expect_load_error("missing_input.onnx", QV_EINVAL, "input 'nowhere' is not defined");
    expect_load_error("cycle.onnx", QV_EINVAL, "cycle");
    expect_load_error("old_opset.onnx", QV_ENOTSUP, "opset 99");
    expect_load_error("no_such_file.onnx", QV_ENOENT, "");
}

static void test_corrupt_bytes(void **state)
{
    char path[1024], *data = NULL;
    size_t len = 0;
    struct qv_diag d = {{0}};
    qv_onnx_model *m = NULL;

    (void)state;
    path_of(path, sizeof(path), "examples/models/cnn/1/model.onnx");
    assert_int_equal(qv_file_read_all(path, 1 << 24, &data, &len, &d), QV_OK);
    /* Every truncation point fails cleanly (or, rarely, still parses). */
    for (size_t cut = 0; cut < len; cut += 1 + cut / 8) {
        memset(&d, 0, sizeof(d));
        if (qv_onnx_load_buffer(data, cut, NULL, NULL, &m, &d) == QV_OK) {
            qv_onnx_free(m);
            m = NULL;
        } else {
            assert_true(d.msg[0] != '\0');
        }
    }
    /* Flipped bytes. */
    for (size_t i = 0; i < len; i += 97) {
        data[i] ^= 0x5a;
        memset(&d, 0, sizeof(d));
        if (qv_onnx_load_buffer(data, len, NULL, NULL, &m, &d) == QV_OK) {
            qv_onnx_free(m);
            m = NULL;
        }
        data[i] ^= 0x5a;
    }
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_onnx_load_buffer("garbage", 7, NULL, NULL, &m, &d), QV_EINVAL);
    free(data);
}

/* A two-node model with an initializer, run through the plain API. */
static void run_add_relu(const char *rel)
{
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    struct qv_tensor in, out[1];
    float x[6] = {-1, 1, 2, -3, 0.25f, 4};
    const float want[6] = {0, 0, 2.5f, 0, 0, 4.5f};
    char path[1024];
    int n_out;

    path_of(path, sizeof(path), rel);
    assert_int_equal(qv_onnx_load_file(path, NULL, &m, &d), QV_OK);
    memset(&in, 0, sizeof(in));
    snprintf(in.name, sizeof(in.name), "x");
    in.dtype = QV_DTYPE_F32;
    in.ndim = 2;
    in.shape[0] = 2;
    in.shape[1] = 3;
    in.data = x;
    in.nbytes = sizeof(x);
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 1, &n_out, &d), QV_OK);
    assert_int_equal(n_out, 1);
    for (int i = 0; i < 6; i++)
        assert_float_equal(((float *)out[0].data)[i], want[i], 1e-6);
    qv_tensor_fini(&out[0]);
    /* max_out too small */
    assert_int_equal(qv_onnx_run(m, &in, 1, out, 0, &n_out, &d), QV_EINVAL);
    qv_onnx_free(m);
}

static void test_add_relu(void **state)
{
    (void)state;
    run_add_relu("tests/onnx/models/add_relu.onnx");
}

/* The initializer lives in add_relu_external.bin beside the model. */
static void test_external_data(void **state)
{
    char path[1024], *data = NULL;
    size_t len = 0;
    struct qv_diag d = {{0}};
    qv_onnx_model *m = NULL;

    (void)state;
    run_add_relu("tests/onnx/models/add_relu_external.onnx");
    expect_load_error("add_relu_escape.onnx", QV_EINVAL, "unsafe");
    /* From a buffer without a directory, external data is refused. */
    path_of(path, sizeof(path), "tests/onnx/models/add_relu_external.onnx");
    assert_int_equal(qv_file_read_all(path, 1 << 20, &data, &len, &d), QV_OK);
    assert_int_equal(qv_onnx_load_buffer(data, len, NULL, NULL, &m, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "external data is not allowed"));
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_matches_reference),
        cmocka_unit_test(test_cnn_matches_reference),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_wrong_inputs),
        cmocka_unit_test(test_bad_models),
        cmocka_unit_test(test_corrupt_bytes),
        cmocka_unit_test(test_add_relu),
        cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_deep_nesting_refused),
        cmocka_unit_test(test_external_total_bounded),
        cmocka_unit_test(test_external_symlink_escape),
        cmocka_unit_test(test_split_sizes_overflow),
        cmocka_unit_test(test_slice_extreme_steps),
        cmocka_unit_test(test_load_leaves_blas_threads),
        cmocka_unit_test(test_resize_roi_not_finite),
        cmocka_unit_test(test_fifo_model_refused),
        cmocka_unit_test(test_duplicate_output_refused),
        cmocka_unit_test(test_run_memory_bounded),
        cmocka_unit_test(test_plan_cache_bounded),
    };
    qv_log_set_level(QV_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
