/* SPDX-License-Identifier: MIT
 *
 * The ONNX loader: ModelProto bytes (protobuf-c, generated at build time from
 * Debian's onnx.proto) to a qv__onnx_graph. The only file that sees the
 * generated protobuf code. Everything from the file is untrusted: every
 * count, size, name and index is checked, and the protobuf tree is freed
 * before returning, so the graph owns copies of all it keeps.
 */
#include "onnx_int.h"

#define QV_LOG_MODULE "onnx"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <onnx/onnx.pb-c.h>

/* ---- Pool ---- */

struct qv__pool_block {
    struct qv__pool_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *qv__pool_alloc(struct qv__pool *p, size_t n)
{
    struct qv__pool_block *b = p->head;
    size_t need = (n + 15) & ~(size_t)15;
    void *r;

    if (n > SIZE_MAX / 2)
        return NULL;
    if (need == 0)
        need = 16;
    if (b == NULL || b->cap - b->used < need) {
        size_t cap = need > 16384 ? need : 16384;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->next = p->head;
        b->used = 0;
        b->cap = cap;
        p->head = b;
        p->bytes += sizeof(*b) + cap;
    }
    r = b->data + b->used;
    b->used += need;
    memset(r, 0, need);
    return r;
}

char *qv__pool_strdup(struct qv__pool *p, const char *s, size_t len)
{
    char *r = qv__pool_alloc(p, len + 1);

    if (r == NULL)
        return NULL;
    if (len)
        memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

void qv__pool_free(struct qv__pool *p)
{
    struct qv__pool_block *b = p->head;

    while (b) {
        struct qv__pool_block *next = b->next;
        free(b);
        b = next;
    }
    p->head = NULL;
    p->bytes = 0;
}

/* ---- Tensors ---- */

/* TensorProto.DataType to qv_dtype, explicitly (the values coincide today). */
static enum qv_dtype dtype_from_onnx(int32_t t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        return QV_DTYPE_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
        return QV_DTYPE_U8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
        return QV_DTYPE_I8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
        return QV_DTYPE_U16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
        return QV_DTYPE_I16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        return QV_DTYPE_I32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        return QV_DTYPE_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return QV_DTYPE_BOOL;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
        return QV_DTYPE_F16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        return QV_DTYPE_F64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        return QV_DTYPE_U32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return QV_DTYPE_U64;
    default:
        return QV_DTYPE_UNDEF;
    }
}

static const char *onnx_type_name(int32_t t)
{
    static const char *const names[] = {
        "UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",   "INT16",
        "INT32",     "INT64",  "STRING",    "BOOL",       "FLOAT16",  "DOUBLE",
        "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
    };
    return t >= 0 && (size_t)t < QV_ARRAY_LEN(names) ? names[t] : "UNKNOWN";
}

/* Rejects locations that leave the model's directory. */
static bool location_is_safe(const char *loc)
{
    if (loc[0] == '\0' || loc[0] == '/')
        return false;
    for (const char *p = loc; *p; p++) {
        if (p[0] == '.' && p[1] == '.' && (p == loc || p[-1] == '/') &&
            (p[2] == '/' || p[2] == '\0'))
            return false;
    }
    return true;
}

/* Where external data may come from, and how much of it is left for this
 * model: the sum over every tensor is bounded, not only each tensor (many
 * initialisers may name the same region). */
struct ext_ctx {
    const char *base_dir;
    char real_base[PATH_MAX];
    size_t left;
};

static int read_external(const Onnx__TensorProto *tp, struct ext_ctx *x, void *dst,
                         size_t nbytes, struct qv_diag *d)
{
    const char *loc = NULL;
    long long offset = 0, length = -1;
    char path[4096], real[PATH_MAX];
    size_t rb, got = 0;
    struct stat st;
    int fd;

    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (e->key == NULL || e->value == NULL)
            continue;
        if (strcmp(e->key, "location") == 0)
            loc = e->value;
        else if (strcmp(e->key, "offset") == 0)
            offset = strtoll(e->value, NULL, 10);
        else if (strcmp(e->key, "length") == 0)
            length = strtoll(e->value, NULL, 10);
    }
    if (x == NULL || x->base_dir == NULL)
        return qv_fail(d, QV_EINVAL, "external data is not allowed here");
    if (loc == NULL || !location_is_safe(loc))
        return qv_fail(d, QV_EINVAL, "external data location '%s' is missing or unsafe",
                       loc ? loc : "");
    if (offset < 0 || (length >= 0 && (unsigned long long)length != nbytes))
        return qv_fail(d, QV_EINVAL, "external data '%s': offset %lld length %lld, need %zu bytes",
                       loc, offset, length, nbytes);
    if (nbytes > x->left)
        return qv_fail(d, QV_E2BIG, "external data '%s': the model's external data exceeds the limit",
                       loc);
    x->left -= nbytes;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", x->base_dir, loc) >= sizeof(path))
        return qv_fail(d, QV_EINVAL, "external data path too long");
    /* After symlinks, the file must still be inside the model's directory. */
    if (x->real_base[0] == '\0' && realpath(x->base_dir, x->real_base) == NULL)
        return qv_fail(d, QV_EINVAL, "cannot resolve the model directory: %s", strerror(errno));
    if (realpath(path, real) == NULL)
        return qv_fail(d, QV_EINVAL, "cannot open external data '%s': %s", loc, strerror(errno));
    rb = strlen(x->real_base);
    if (strncmp(real, x->real_base, rb) != 0 || (real[rb] != '/' && rb > 1))
        return qv_fail(d, QV_EINVAL, "external data '%s' is outside the model directory", loc);
    fd = open(real, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return qv_fail(d, QV_EINVAL, "cannot open external data '%s': %s", loc, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qv_fail(d, QV_EINVAL, "external data '%s' is not a regular file", loc);
    }
    if ((unsigned long long)offset > (unsigned long long)st.st_size ||
        (unsigned long long)st.st_size - (unsigned long long)offset < nbytes) {
        close(fd);
        return qv_fail(d, QV_EINVAL, "external data '%s' is shorter than %lld+%zu bytes", loc,
                       offset, nbytes);
    }
    while (got < nbytes) {
        ssize_t n = pread(fd, (char *)dst + got, nbytes - got, (off_t)offset + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return qv_fail(d, QV_EINVAL, "external data '%s' is shorter than %lld+%zu bytes",
                           loc, offset, nbytes);
        }
        got += (size_t)n;
    }
    close(fd);
    return QV_OK;
}

/* Copies a TensorProto's data into t->data (already sized). */
static int tensor_fill(const Onnx__TensorProto *tp, struct ext_ctx *x, struct qv_tensor *t,
                       struct qv_diag *d)
{
    size_t n = (size_t)qv_tensor_numel(t);
    size_t es = qv_dtype_size(t->dtype);
    const char *name = tp->name ? tp->name : "";

    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return read_external(tp, x, t->data, t->nbytes, d);
    if (tp->has_raw_data) {
        if (tp->raw_data.len != t->nbytes)
            return qv_fail(d, QV_EINVAL, "tensor '%s': raw_data has %zu bytes, shape needs %zu",
                           name, tp->raw_data.len, t->nbytes);
        if (t->nbytes)
            memcpy(t->data, tp->raw_data.data, t->nbytes);
        return QV_OK;
    }
    switch (t->dtype) {
    case QV_DTYPE_F32:
        if (tp->n_float_data != n)
            goto count;
        if (n)
            memcpy(t->data, tp->float_data, n * es);
        return QV_OK;
    case QV_DTYPE_F64:
        if (tp->n_double_data != n)
            goto count;
        if (n)
            memcpy(t->data, tp->double_data, n * es);
        return QV_OK;
    case QV_DTYPE_I64:
        if (tp->n_int64_data != n)
            goto count;
        if (n)
            memcpy(t->data, tp->int64_data, n * es);
        return QV_OK;
    case QV_DTYPE_U32:
    case QV_DTYPE_U64:
        if (tp->n_uint64_data != n)
            goto count;
        for (size_t i = 0; i < n; i++) {
            if (t->dtype == QV_DTYPE_U32)
                ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i];
            else
                ((uint64_t *)t->data)[i] = tp->uint64_data[i];
        }
        return QV_OK;
    case QV_DTYPE_I32:
    case QV_DTYPE_I16:
    case QV_DTYPE_U16:
    case QV_DTYPE_I8:
    case QV_DTYPE_U8:
    case QV_DTYPE_BOOL:
    case QV_DTYPE_F16:
        if (tp->n_int32_data != n)
            goto count;
        for (size_t i = 0; i < n; i++) {
            int32_t v = tp->int32_data[i];
            switch (t->dtype) {
            case QV_DTYPE_I32:
                ((int32_t *)t->data)[i] = v;
                break;
            case QV_DTYPE_I16:
                ((int16_t *)t->data)[i] = (int16_t)v;
                break;
            case QV_DTYPE_U16:
            case QV_DTYPE_F16:
                ((uint16_t *)t->data)[i] = (uint16_t)v;
                break;
            case QV_DTYPE_I8:
                ((int8_t *)t->data)[i] = (int8_t)v;
                break;
            case QV_DTYPE_BOOL:
                ((uint8_t *)t->data)[i] = v != 0;
                break;
            default:
                ((uint8_t *)t->data)[i] = (uint8_t)v;
                break;
            }
        }
        return QV_OK;
    default:
        break;
    }
count:
    return qv_fail(d, QV_EINVAL, "tensor '%s': typed data does not hold %zu elements", name, n);
}

/* TensorProto to an owned qv_tensor. */
static int tensor_from_proto(const Onnx__TensorProto *tp, struct ext_ctx *x, size_t max_bytes,
                             struct qv_tensor *t, struct qv_diag *d)
{
    const char *name = tp->name ? tp->name : "";
    enum qv_dtype dt = dtype_from_onnx(tp->data_type);
    int64_t shape[QV_MAX_DIMS];
    int64_t numel;
    int err;

    memset(t, 0, sizeof(*t));
    if (dt == QV_DTYPE_UNDEF)
        return qv_fail(d, QV_ENOTSUP, "tensor '%s': data type %s is not supported", name,
                       onnx_type_name(tp->data_type));
    if (tp->n_dims > QV_MAX_DIMS)
        return qv_fail(d, QV_ENOTSUP, "tensor '%s': rank %zu exceeds %d", name, tp->n_dims,
                       QV_MAX_DIMS);
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return qv_fail(d, QV_EINVAL, "tensor '%s': negative dimension", name);
        shape[i] = tp->dims[i];
    }
    numel = qv_shape_numel(shape, (int)tp->n_dims);
    if (!qv_shape_fits(shape, (int)tp->n_dims) || (uint64_t)numel > max_bytes / qv_dtype_size(dt))
        return qv_fail(d, QV_E2BIG, "tensor '%s': too large", name);
    err = qv_tensor_alloc(t, name, dt, (int)tp->n_dims, shape);
    if (err)
        return qv_fail(d, err, "tensor '%s': cannot allocate %lld elements", name,
                       (long long)numel);
    err = tensor_fill(tp, x, t, d);
    if (err)
        qv_tensor_fini(t);
    return err;
}

int qv__onnx_tensor_parse(const void *data, size_t len, struct qv_tensor *out, struct qv_diag *d)
{
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
    int err;

    if (tp == NULL)
        return qv_fail(d, QV_EINVAL, "not a TensorProto");
    err = tensor_from_proto(tp, NULL, (size_t)1 << 32, out, d);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return err;
}

/* ---- Graph ---- */

/* Name to value id: open addressing over the pool. */
struct name_map {
    int cap;
    int *slots; /* value id + 1; 0 empty */
};

static int map_find(const struct name_map *m, const struct qv__onnx_graph *g, const char *name)
{
    uint64_t h = qv_hash64(name, strlen(name), 0);

    for (int i = (int)(h & (uint64_t)(m->cap - 1));; i = (i + 1) & (m->cap - 1)) {
        int v = m->slots[i];
        if (v == 0)
            return -1;
        if (strcmp(g->values[v - 1].name, name) == 0)
            return v - 1;
    }
}

static void map_insert(struct name_map *m, const char *name, int id)
{
    uint64_t h = qv_hash64(name, strlen(name), 0);
    int i = (int)(h & (uint64_t)(m->cap - 1));

    while (m->slots[i] != 0)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = id + 1;
}

struct loader {
    struct qv__onnx_graph *g;
    struct name_map map;
    int max_values;
    size_t max_bytes;
    struct ext_ctx ext;
    struct qv_diag *d;
};

/* Returns the id of a value named 'name', creating it; -1 on ENOMEM. */
static int value_get(struct loader *L, const char *name, bool *created)
{
    struct qv__onnx_graph *g = L->g;
    int id = map_find(&L->map, g, name);

    *created = false;
    if (id >= 0)
        return id;
    if (g->n_values >= L->max_values)
        return -1;
    id = g->n_values++;
    g->values[id].name = qv__pool_strdup(&g->pool, name, strlen(name));
    if (g->values[id].name == NULL)
        return -1;
    g->values[id].producer = -1;
    g->values[id].desc.ndim = -1;
    map_insert(&L->map, g->values[id].name, id);
    *created = true;
    return id;
}

static int desc_from_value_info(const Onnx__ValueInfoProto *vi, struct qv_tensor_desc *desc,
                                struct qv_diag *d)
{
    const Onnx__TypeProto *tp = vi->type;
    const Onnx__TypeProto__Tensor *tt;

    snprintf(desc->name, sizeof(desc->name), "%s", vi->name ? vi->name : "");
    desc->dtype = QV_DTYPE_UNDEF;
    desc->ndim = -1;
    if (tp == NULL)
        return QV_OK;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || tp->tensor_type == NULL)
        return qv_fail(d, QV_ENOTSUP, "graph value '%s': only tensor types are supported",
                       vi->name ? vi->name : "");
    tt = tp->tensor_type;
    if (tt->has_elem_type) {
        desc->dtype = dtype_from_onnx(tt->elem_type);
        if (desc->dtype == QV_DTYPE_UNDEF)
            return qv_fail(d, QV_ENOTSUP, "graph value '%s': data type %s is not supported",
                           vi->name ? vi->name : "", onnx_type_name(tt->elem_type));
    }
    if (tt->shape == NULL)
        return QV_OK;
    if (tt->shape->n_dim > QV_MAX_DIMS)
        return qv_fail(d, QV_ENOTSUP, "graph value '%s': rank %zu exceeds %d",
                       vi->name ? vi->name : "", tt->shape->n_dim, QV_MAX_DIMS);
    desc->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < desc->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[i];
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            dim->dim_value >= 0)
            desc->shape[i] = dim->dim_value;
        else
            desc->shape[i] = -1;
    }
    return QV_OK;
}

static int convert_attr(struct loader *L, const struct qv_node *n, const Onnx__AttributeProto *ap,
                        struct qv_attr *a)
{
    struct qv__pool *pool = &L->g->pool;
    struct qv_diag *d = L->d;

    a->name = qv__pool_strdup(pool, ap->name ? ap->name : "", ap->name ? strlen(ap->name) : 0);
    if (a->name == NULL)
        return QV_ENOMEM;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        a->type = QV_ATTR_FLOAT;
        a->f = ap->f;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        a->type = QV_ATTR_INT;
        a->i = ap->i;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = QV_ATTR_STRING;
        a->s = qv__pool_strdup(pool, (const char *)ap->s.data, ap->s.len);
        a->s_len = ap->s.len;
        if (a->s == NULL)
            return QV_ENOMEM;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: {
        float *v = qv__pool_alloc(pool, ap->n_floats * sizeof(float));
        if (v == NULL || ap->n_floats > INT_MAX)
            return QV_ENOMEM;
        if (ap->n_floats)
            memcpy(v, ap->floats, ap->n_floats * sizeof(float));
        a->type = QV_ATTR_FLOATS;
        a->floats = v;
        a->n = (int)ap->n_floats;
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: {
        int64_t *v = qv__pool_alloc(pool, ap->n_ints * sizeof(int64_t));
        if (v == NULL || ap->n_ints > INT_MAX)
            return QV_ENOMEM;
        if (ap->n_ints)
            memcpy(v, ap->ints, ap->n_ints * sizeof(int64_t));
        a->type = QV_ATTR_INTS;
        a->ints = v;
        a->n = (int)ap->n_ints;
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: {
        char **v = qv__pool_alloc(pool, ap->n_strings * sizeof(char *));
        if (v == NULL || ap->n_strings > INT_MAX)
            return QV_ENOMEM;
        for (size_t i = 0; i < ap->n_strings; i++) {
            v[i] = qv__pool_strdup(pool, (const char *)ap->strings[i].data, ap->strings[i].len);
            if (v[i] == NULL)
                return QV_ENOMEM;
        }
        a->type = QV_ATTR_STRINGS;
        a->strings = (const char *const *)v;
        a->n = (int)ap->n_strings;
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        struct qv_tensor *t = qv__pool_alloc(pool, sizeof(*t));
        void *copy;
        int err;
        if (t == NULL)
            return QV_ENOMEM;
        if (ap->t == NULL)
            return qv_fail(d, QV_EINVAL, "node '%s' (%s): attribute '%s' has no tensor", n->name,
                           n->op_type, a->name);
        err = tensor_from_proto(ap->t, &L->ext, L->max_bytes, t, d);
        if (err)
            return qv_fail(d, err, "node '%s' (%s): attribute '%s'", n->name, n->op_type, a->name);
        /* Move the data into the pool so the graph frees it in one call. */
        copy = qv__pool_alloc(pool, t->nbytes);
        if (copy == NULL) {
            qv_tensor_fini(t);
            return QV_ENOMEM;
        }
        if (t->nbytes)
            memcpy(copy, t->data, t->nbytes);
        qv_tensor_fini(t);
        t->data = copy;
        t->owned = false;
        L->g->weight_bytes += t->nbytes;
        a->type = QV_ATTR_TENSOR;
        a->t = t;
        break;
    }
    default:
        a->type = QV_ATTR_OTHER;
        break;
    }
    return QV_OK;
}

static bool is_default_domain(const char *dom)
{
    return dom == NULL || dom[0] == '\0' || strcmp(dom, "ai.onnx") == 0;
}

/* Kahn's algorithm over value producers; fills order[] with node indices. */
static int topo_sort(struct loader *L, const Onnx__GraphProto *gp, const int *const *node_in,
                     int *order)
{
    struct qv__onnx_graph *g = L->g;
    int n = (int)gp->n_node;
    int *pending = calloc((size_t)n + 1, sizeof(int));
    int *ready = calloc((size_t)n + 1, sizeof(int));
    int *consumers_start = calloc((size_t)g->n_values + 1, sizeof(int));
    int *consumers = NULL;
    int n_edges = 0, head = 0, tail = 0, done = 0;
    int err = QV_OK;

    if (pending == NULL || ready == NULL || consumers_start == NULL) {
        err = QV_ENOMEM;
        goto out;
    }
    /* Count edges value -> consumer node (a node may read a value twice). */
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < gp->node[i]->n_input; j++)
            if (node_in[i][j] >= 0 && g->values[node_in[i][j]].producer >= 0) {
                consumers_start[node_in[i][j] + 1]++;
                pending[i]++;
                n_edges++;
            }
    for (int v = 0; v < g->n_values; v++)
        consumers_start[v + 1] += consumers_start[v];
    consumers = malloc(((size_t)n_edges + 1) * sizeof(int));
    if (consumers == NULL) {
        err = QV_ENOMEM;
        goto out;
    }
    {
        int *fill = calloc((size_t)g->n_values + 1, sizeof(int));
        if (fill == NULL) {
            err = QV_ENOMEM;
            goto out;
        }
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < gp->node[i]->n_input; j++) {
                int v = node_in[i][j];
                if (v >= 0 && g->values[v].producer >= 0)
                    consumers[consumers_start[v] + fill[v]++] = i;
            }
        free(fill);
    }
    for (int i = 0; i < n; i++)
        if (pending[i] == 0)
            ready[tail++] = i;
    while (head < tail) {
        int i = ready[head++];
        const Onnx__NodeProto *np = gp->node[i];
        order[done++] = i;
        for (size_t j = 0; j < np->n_output; j++) {
            const char *oname = np->output[j];
            int v;
            if (oname == NULL || oname[0] == '\0')
                continue;
            v = map_find(&L->map, g, oname);
            if (v < 0 || g->values[v].producer != i)
                continue;
            for (int k = consumers_start[v]; k < consumers_start[v + 1]; k++)
                if (--pending[consumers[k]] == 0)
                    ready[tail++] = consumers[k];
        }
    }
    if (done != n) {
        for (int i = 0; i < n; i++)
            if (pending[i] > 0) {
                err = qv_fail(L->d, QV_EINVAL, "node '%s' (%s): the graph has a cycle",
                              gp->node[i]->name ? gp->node[i]->name : "",
                              gp->node[i]->op_type ? gp->node[i]->op_type : "");
                break;
            }
    }
out:
    free(pending);
    free(ready);
    free(consumers_start);
    free(consumers);
    return err;
}

static int build_graph(struct loader *L, const Onnx__ModelProto *mp)
{
    struct qv__onnx_graph *g = L->g;
    const Onnx__GraphProto *gp = mp->graph;
    struct qv_diag *d = L->d;
    int **node_in = NULL, *order = NULL;
    size_t max_values;
    int n_nodes, err = QV_OK;
    bool created;

    if (gp == NULL)
        return qv_fail(d, QV_EINVAL, "model has no graph");
    g->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
        if (is_default_domain(os->domain) && os->has_version)
            g->opset = (int)os->version;
    }
    if (g->opset < 0)
        return qv_fail(d, QV_ENOTSUP, "model imports no default-domain (ai.onnx) opset");
    if (g->opset < 1 || g->opset > 18)
        return qv_fail(d, QV_ENOTSUP, "opset %d is not supported (1..18)", g->opset);
    if (gp->n_node > 1000000 || gp->n_input > 100000 || gp->n_output > 100000 ||
        gp->n_initializer > 1000000)
        return qv_fail(d, QV_E2BIG, "graph too large");
    if (gp->n_sparse_initializer > 0)
        return qv_fail(d, QV_ENOTSUP, "sparse initializers are not supported");
    n_nodes = (int)gp->n_node;

    max_values = gp->n_input + gp->n_initializer + gp->n_output;
    for (size_t i = 0; i < gp->n_node; i++)
        max_values += gp->node[i]->n_input + gp->node[i]->n_output;
    if (max_values > 10000000)
        return qv_fail(d, QV_E2BIG, "graph too large");
    L->max_values = (int)max_values;
    L->map.cap = 16;
    while ((size_t)L->map.cap < max_values * 2)
        L->map.cap *= 2;
    L->map.slots = qv__pool_alloc(&g->pool, (size_t)L->map.cap * sizeof(int));
    g->values = qv__pool_alloc(&g->pool, (max_values + 1) * sizeof(*g->values));
    g->nodes = qv__pool_alloc(&g->pool, ((size_t)n_nodes + 1) * sizeof(*g->nodes));
    if (L->map.slots == NULL || g->values == NULL || g->nodes == NULL)
        return QV_ENOMEM;

    /* Initializers first: a graph input that is also an initializer is a constant. */
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        struct qv_tensor *t;
        void *copy;
        int id;

        if (tp->name == NULL || tp->name[0] == '\0')
            return qv_fail(d, QV_EINVAL, "initializer %zu has no name", i);
        id = value_get(L, tp->name, &created);
        if (id < 0)
            return QV_ENOMEM;
        if (!created)
            return qv_fail(d, QV_EINVAL, "initializer '%s' is defined twice", tp->name);
        t = qv__pool_alloc(&g->pool, sizeof(*t));
        if (t == NULL)
            return QV_ENOMEM;
        err = tensor_from_proto(tp, &L->ext, L->max_bytes, t, d);
        if (err)
            return qv_fail(d, err, "initializer '%s'", tp->name);
        copy = qv__pool_alloc(&g->pool, t->nbytes);
        if (copy == NULL) {
            qv_tensor_fini(t);
            return QV_ENOMEM;
        }
        if (t->nbytes)
            memcpy(copy, t->data, t->nbytes);
        qv_tensor_fini(t);
        t->data = copy;
        g->weight_bytes += t->nbytes;
        g->values[id].kind = QV__VALUE_CONST;
        g->values[id].init = t;
        g->values[id].desc.dtype = t->dtype;
        g->values[id].desc.ndim = t->ndim;
        memcpy(g->values[id].desc.shape, t->shape, sizeof(t->shape));
    }

    g->inputs = qv__pool_alloc(&g->pool, (gp->n_input + 1) * sizeof(int));
    g->in_desc = qv__pool_alloc(&g->pool, (gp->n_input + 1) * sizeof(*g->in_desc));
    g->outputs = qv__pool_alloc(&g->pool, (gp->n_output + 1) * sizeof(int));
    g->out_desc = qv__pool_alloc(&g->pool, (gp->n_output + 1) * sizeof(*g->out_desc));
    if (g->inputs == NULL || g->in_desc == NULL || g->outputs == NULL || g->out_desc == NULL)
        return QV_ENOMEM;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        struct qv_tensor_desc desc;
        int id;

        if (vi->name == NULL || vi->name[0] == '\0')
            return qv_fail(d, QV_EINVAL, "graph input %zu has no name", i);
        id = value_get(L, vi->name, &created);
        if (id < 0)
            return QV_ENOMEM;
        if (!created && g->values[id].kind == QV__VALUE_CONST)
            continue; /* an initializer: a constant, not fed at run time */
        if (!created)
            return qv_fail(d, QV_EINVAL, "graph input '%s' is listed twice", vi->name);
        err = desc_from_value_info(vi, &desc, d);
        if (err)
            return err;
        if (desc.dtype == QV_DTYPE_UNDEF || desc.ndim < 0)
            return qv_fail(d, QV_ENOTSUP, "graph input '%s' has no tensor type and shape",
                           vi->name);
        g->values[id].kind = QV__VALUE_INPUT;
        g->values[id].desc = desc;
        g->in_desc[g->n_inputs] = desc;
        g->inputs[g->n_inputs++] = id;
    }

    /* Nodes: outputs get producers; inputs must resolve. */
    node_in = calloc((size_t)n_nodes + 1, sizeof(int *));
    order = calloc((size_t)n_nodes + 1, sizeof(int));
    if (node_in == NULL || order == NULL) {
        err = QV_ENOMEM;
        goto out;
    }
    for (int i = 0; i < n_nodes; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        for (size_t j = 0; j < np->n_output; j++) {
            const char *oname = np->output[j];
            int id;
            if (oname == NULL || oname[0] == '\0')
                continue;
            id = value_get(L, oname, &created);
            if (id < 0) {
                err = QV_ENOMEM;
                goto out;
            }
            if (!created) {
                err = qv_fail(d, QV_EINVAL, "node '%s' (%s): output '%s' is already defined",
                              np->name ? np->name : "", np->op_type ? np->op_type : "", oname);
                goto out;
            }
            g->values[id].producer = i;
        }
    }
    for (int i = 0; i < n_nodes; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        node_in[i] = qv__pool_alloc(&g->pool, (np->n_input + 1) * sizeof(int));
        if (node_in[i] == NULL) {
            err = QV_ENOMEM;
            goto out;
        }
        for (size_t j = 0; j < np->n_input; j++) {
            const char *iname = np->input[j];
            int id;
            if (iname == NULL || iname[0] == '\0') {
                node_in[i][j] = -1;
                continue;
            }
            id = map_find(&L->map, g, iname);
            if (id < 0) {
                err = qv_fail(d, QV_EINVAL, "node '%s' (%s): input '%s' is not defined",
                              np->name ? np->name : "", np->op_type ? np->op_type : "", iname);
                goto out;
            }
            node_in[i][j] = id;
        }
    }

    err = topo_sort(L, gp, (const int *const *)node_in, order);
    if (err)
        goto out;

    for (int k = 0; k < n_nodes; k++) {
        int i = order[k];
        const Onnx__NodeProto *np = gp->node[i];
        struct qv_node *n = &g->nodes[k];
        int *outs;
        struct qv_attr *attrs;
        char fallback[64];

        n->index = i;
        n->opset = g->opset;
        n->op_type = qv__pool_strdup(&g->pool, np->op_type ? np->op_type : "",
                                     np->op_type ? strlen(np->op_type) : 0);
        if (np->name && np->name[0])
            n->name = qv__pool_strdup(&g->pool, np->name, strlen(np->name));
        else {
            snprintf(fallback, sizeof(fallback), "%.40s_%d", np->op_type ? np->op_type : "", i);
            n->name = qv__pool_strdup(&g->pool, fallback, strlen(fallback));
        }
        if (n->op_type == NULL || n->name == NULL) {
            err = QV_ENOMEM;
            goto out;
        }
        if (np->n_input > 100000 || np->n_output > 100000 || np->n_attribute > 100000) {
            err = qv_fail(d, QV_E2BIG, "node '%s' (%s): too many inputs", n->name, n->op_type);
            goto out;
        }
        if (!is_default_domain(np->domain)) {
            err = qv_fail(d, QV_ENOTSUP, "node '%s' (%s): domain '%s' is not supported", n->name,
                          n->op_type, np->domain);
            goto out;
        }
        n->op = qv_op_find(n->op_type);
        if (n->op == NULL) {
            err = qv_fail(d, QV_ENOTSUP, "node '%s' (%s): operator not supported", n->name,
                          n->op_type);
            goto out;
        }
        if (g->opset < n->op->since_version) {
            err = qv_fail(d, QV_ENOTSUP,
                          "node '%s' (%s): opset %d is older than the %d "
                          "this runtime implements",
                          n->name, n->op_type, g->opset, n->op->since_version);
            goto out;
        }
        n->n_in = (int)np->n_input;
        n->in = node_in[i];
        n->n_out = (int)np->n_output;
        outs = qv__pool_alloc(&g->pool, (np->n_output + 1) * sizeof(int));
        attrs = qv__pool_alloc(&g->pool, (np->n_attribute + 1) * sizeof(*attrs));
        if (outs == NULL || attrs == NULL) {
            err = QV_ENOMEM;
            goto out;
        }
        for (size_t j = 0; j < np->n_output; j++)
            outs[j] =
                (np->output[j] && np->output[j][0]) ? map_find(&L->map, g, np->output[j]) : -1;
        n->out = outs;
        for (size_t j = 0; j < np->n_attribute; j++) {
            if (np->attribute[j]->ref_attr_name && np->attribute[j]->ref_attr_name[0]) {
                err = qv_fail(d, QV_ENOTSUP,
                              "node '%s' (%s): attribute references are not "
                              "supported",
                              n->name, n->op_type);
                goto out;
            }
            err = convert_attr(L, n, np->attribute[j], &attrs[j]);
            if (err)
                goto out;
        }
        n->attrs = attrs;
        n->n_attr = (int)np->n_attribute;
        if (n->op->check) {
            err = n->op->check(n, d);
            if (err)
                goto out;
        }
    }
    /* Producers now refer to the sorted positions. */
    for (int k = 0; k < n_nodes; k++)
        for (int j = 0; j < g->nodes[k].n_out; j++)
            if (g->nodes[k].out[j] >= 0)
                g->values[g->nodes[k].out[j]].producer = k;
    g->n_nodes = n_nodes;

    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        struct qv_tensor_desc desc;
        int id;

        if (vi->name == NULL || vi->name[0] == '\0') {
            err = qv_fail(d, QV_EINVAL, "graph output %zu has no name", i);
            goto out;
        }
        id = map_find(&L->map, g, vi->name);
        if (id < 0) {
            err = qv_fail(d, QV_EINVAL, "graph output '%s' is not produced by any node", vi->name);
            goto out;
        }
        /* One name, one output: the server matches requested outputs by name. */
        if (g->values[id].is_output) {
            err = qv_fail(d, QV_EINVAL, "graph output '%s' is listed twice", vi->name);
            goto out;
        }
        err = desc_from_value_info(vi, &desc, d);
        if (err)
            goto out;
        g->values[id].is_output = true;
        g->out_desc[g->n_outputs] = desc;
        g->outputs[g->n_outputs++] = id;
    }
    if (g->n_outputs == 0)
        err = qv_fail(d, QV_EINVAL, "graph has no outputs");
out:
    free(node_in);
    free(order);
    return err;
}

/* ---- Nesting bound ----
 * protobuf-c unpacks nested messages recursively without a limit, and ONNX's
 * messages nest without end (a graph in an attribute of a node of a graph, a
 * sequence type of a sequence type...). Before unpacking, a walk of the wire
 * format follows exactly the fields that lead to nested messages and refuses
 * a file nested deeper than QV_ONNX_MAX_NESTING. */

enum pmsg { PM_NONE, PM_MODEL, PM_GRAPH, PM_NODE, PM_ATTR, PM_VALUE_INFO, PM_TYPE, PM_TYPE_ELEM,
            PM_TYPE_MAP, PM_TRAINING, PM_FUNCTION, PM_TENSOR, PM_SPARSE, PM_TYPE_TENSOR,
            PM_SHAPE };

/* The message type of field 'field' of a 'in' message, or PM_NONE for
 * scalars, strings and leaf messages. From onnx.proto. */
static enum pmsg pm_child(enum pmsg in, uint64_t field)
{
    switch (in) {
    case PM_MODEL:
        return field == 7 ? PM_GRAPH : field == 20 ? PM_TRAINING : field == 25 ? PM_FUNCTION
                                                                            : PM_NONE;
    case PM_GRAPH:
        switch (field) {
        case 1: return PM_NODE;
        case 5: return PM_TENSOR;
        case 15: return PM_SPARSE;
        case 11: case 12: case 13: return PM_VALUE_INFO;
        default: return PM_NONE;
        }
    case PM_NODE:
        return field == 5 ? PM_ATTR : PM_NONE;
    case PM_ATTR:
        switch (field) {
        case 5: case 10: return PM_TENSOR;
        case 6: case 11: return PM_GRAPH;
        case 22: case 23: return PM_SPARSE;
        case 14: case 15: return PM_TYPE;
        default: return PM_NONE;
        }
    case PM_VALUE_INFO:
        return field == 2 ? PM_TYPE : PM_NONE;
    case PM_TYPE:
        switch (field) {
        case 1: case 8: return PM_TYPE_TENSOR;
        case 4: case 9: return PM_TYPE_ELEM; /* sequence_type, optional_type */
        case 5: return PM_TYPE_MAP;
        default: return PM_NONE;
        }
    case PM_TYPE_ELEM:
        return field == 1 ? PM_TYPE : PM_NONE;
    case PM_TYPE_MAP:
        return field == 2 ? PM_TYPE : PM_NONE;
    case PM_TYPE_TENSOR:
        return field == 2 ? PM_SHAPE : PM_NONE;
    case PM_TRAINING:
        return field == 1 || field == 2 ? PM_GRAPH : PM_NONE;
    case PM_FUNCTION:
        return field == 7 ? PM_NODE : field == 11 ? PM_ATTR : PM_NONE;
    case PM_SPARSE:
        return field == 1 || field == 2 ? PM_TENSOR : PM_NONE;
    default:
        return PM_NONE; /* tensors, shapes: bounded depth below them */
    }
}

static bool pb_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return false;
        *v |= (uint64_t)(p[*pos] & 0x7f) << shift;
        if ((p[(*pos)++] & 0x80) == 0)
            return true;
    }
    return false;
}

static int pb_scan(const uint8_t *p, size_t len, enum pmsg type, int depth, struct qv_diag *d)
{
    size_t pos = 0;

    if (depth > QV_ONNX_MAX_NESTING)
        return qv_fail(d, QV_EINVAL, "model nests messages deeper than %d levels",
                       QV_ONNX_MAX_NESTING);
    while (pos < len) {
        uint64_t key, n;
        enum pmsg child;

        if (!pb_varint(p, len, &pos, &key))
            return qv_fail(d, QV_EINVAL, "not an ONNX model (truncated field key)");
        switch (key & 7) {
        case 0:
            if (!pb_varint(p, len, &pos, &n))
                return qv_fail(d, QV_EINVAL, "not an ONNX model (truncated varint)");
            break;
        case 1:
            if (len - pos < 8)
                return qv_fail(d, QV_EINVAL, "not an ONNX model (truncated field)");
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return qv_fail(d, QV_EINVAL, "not an ONNX model (truncated field)");
            pos += 4;
            break;
        case 2:
            if (!pb_varint(p, len, &pos, &n) || n > len - pos)
                return qv_fail(d, QV_EINVAL, "not an ONNX model (field length past the end)");
            child = pm_child(type, key >> 3);
            if (child != PM_NONE) {
                int err = pb_scan(p + pos, (size_t)n, child, depth + 1, d);
                if (err)
                    return err;
            }
            pos += (size_t)n;
            break;
        default:
            return qv_fail(d, QV_EINVAL, "not an ONNX model (wire type %u)", (unsigned)(key & 7));
        }
    }
    return QV_OK;
}

int qv__onnx_graph_load(const void *data, size_t len, const char *base_dir, size_t max_bytes,
                        struct qv__onnx_graph *g, struct qv_diag *d)
{
    Onnx__ModelProto *mp;
    struct loader L;
    int err;

    memset(g, 0, sizeof(*g));
    memset(&L, 0, sizeof(L));
    if (len == 0)
        return qv_fail(d, QV_EINVAL, "empty model file");
    err = pb_scan(data, len, PM_MODEL, 1, d);
    if (err)
        return err;
    mp = onnx__model_proto__unpack(NULL, len, data);
    if (mp == NULL)
        return qv_fail(d, QV_EINVAL, "not an ONNX model (protobuf parse failed)");
    L.g = g;
    L.ext.base_dir = base_dir;
    L.ext.left = max_bytes;
    L.max_bytes = max_bytes;
    L.d = d;
    err = build_graph(&L, mp);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (err) {
        if (err == QV_ENOMEM)
            qv_fail(d, err, "out of memory while loading the graph");
        qv__onnx_graph_fini(g);
    }
    return err;
}

void qv__onnx_graph_fini(struct qv__onnx_graph *g)
{
    qv__pool_free(&g->pool);
    memset(g, 0, sizeof(*g));
}
