/* SPDX-License-Identifier: MIT
 *
 * The repository on disk: config.json parsing and directory scans. */
#include "repo.h"

#define QV_LOG_MODULE "repo"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_QUEUE_LIMIT 1024
#define DEFAULT_SLO_MS 10.0

void qv_model_config_defaults(struct qv_model_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->policy.kind = QV_POLICY_ALL;
    cfg->instances = 0; /* not set: the engine's default for the backend */
    cfg->queue_limit = DEFAULT_QUEUE_LIMIT;
    cfg->latency_slo_ms = DEFAULT_SLO_MS;
}

void qv_model_config_free(struct qv_model_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->warmup_json);
    free(cfg->alerts_json);
    for (int i = 0; i < cfg->n_params; i++) {
        free((char *)cfg->params[i].key);
        free((char *)cfg->params[i].value);
    }
    free(cfg->params);
    cfg->warmup_json = cfg->alerts_json = NULL;
    cfg->params = NULL;
    cfg->n_params = 0;
}

bool qv_repo_name_is_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= QV_MODEL_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

int64_t qv_repo_parse_version(const char *s)
{
    int64_t v = 0;

    if (s == NULL || *s < '1' || *s > '9')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int parse_int(const json_t *v, const char *path, const char *key, int64_t lo, int64_t hi,
                     int64_t *out, struct qv_diag *d)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return qv_fail(d, QV_EINVAL, "%s: %s: expected an integer from %lld to %lld", path, key,
                       (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return QV_OK;
}

/* Triton's data_type names ("TYPE_FP32") for the datatypes quiver serves. */
static enum qv_dtype triton_dtype(const char *s)
{
    static const struct {
        const char *name;
        enum qv_dtype t;
    } map[] = {
        {"TYPE_FP32", QV_DTYPE_F32},   {"TYPE_FP64", QV_DTYPE_F64},   {"TYPE_INT8", QV_DTYPE_I8},
        {"TYPE_INT16", QV_DTYPE_I16},  {"TYPE_INT32", QV_DTYPE_I32},  {"TYPE_INT64", QV_DTYPE_I64},
        {"TYPE_UINT8", QV_DTYPE_U8},   {"TYPE_UINT16", QV_DTYPE_U16}, {"TYPE_UINT32", QV_DTYPE_U32},
        {"TYPE_UINT64", QV_DTYPE_U64}, {"TYPE_BOOL", QV_DTYPE_BOOL},
        {"TYPE_STRING", QV_DTYPE_BYTES},
    };
    for (size_t i = 0; i < QV_ARRAY_LEN(map); i++)
        if (strcmp(map[i].name, s) == 0)
            return map[i].t;
    return QV_DTYPE_UNDEF;
}

/* Inputs/outputs in quiver's form (datatype "FP32", shape with the batch
 * dimension) or Triton's (data_type "TYPE_FP32", dims without it when
 * 'batched'); any other key is an error naming it. */
static int parse_ios(const json_t *arr, const char *path, const char *key, bool batched,
                     struct qv_tensor_desc *descs, int *n, struct qv_diag *d)
{
    static const char *const io_keys[] = {"name", "datatype", "shape", "data_type", "dims", NULL};
    size_t i, j;
    json_t *io, *dim, *val;
    const char *k2;

    if (!json_is_array(arr) || json_array_size(arr) > QV_MAX_IO)
        return qv_fail(d, QV_EINVAL, "%s: %s: expected an array of at most %d tensors", path, key,
                       QV_MAX_IO);
    json_array_foreach(arr, i, io) {
        const json_t *name = json_object_get(io, "name");
        const json_t *dt = json_object_get(io, "datatype");
        const json_t *tdt = json_object_get(io, "data_type");
        const json_t *shape = json_object_get(io, "shape");
        const json_t *dims = json_object_get(io, "dims");
        struct qv_tensor_desc *t = &descs[i];
        int off = 0;

        if (!json_is_object(io))
            return qv_fail(d, QV_EINVAL, "%s: %s[%zu]: expected an object", path, key, i);
        json_object_foreach((json_t *)io, k2, val) {
            bool known = false;
            for (const char *const *kk = io_keys; *kk; kk++)
                known = known || strcmp(*kk, k2) == 0;
            if (!known)
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].%s: unknown or unsupported key", path,
                               key, i, k2);
        }
        if (!json_is_string(name) || !qv_repo_name_is_valid(json_string_value(name)) ||
            json_string_length(name) >= QV_NAME_MAX)
            return qv_fail(d, QV_EINVAL, "%s: %s[%zu].name: expected a name of [A-Za-z0-9_.-]",
                           path, key, i);
        snprintf(t->name, sizeof(t->name), "%s", json_string_value(name));
        for (size_t k = 0; k < i; k++)
            if (strcmp(descs[k].name, t->name) == 0)
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].name: \"%s\" is already %s[%zu]",
                               path, key, i, t->name, key, k);
        if (dt != NULL && tdt != NULL)
            return qv_fail(d, QV_EINVAL, "%s: %s[%zu]: give datatype or data_type, not both",
                           path, key, i);
        if (tdt != NULL) {
            t->dtype = json_is_string(tdt) ? triton_dtype(json_string_value(tdt)) : QV_DTYPE_UNDEF;
            if (t->dtype == QV_DTYPE_UNDEF)
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].data_type: unknown or unsupported "
                               "data_type", path, key, i);
        } else {
            if (dt != NULL && !json_is_string(dt))
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].datatype: expected a string", path,
                               key, i);
            t->dtype = dt ? qv_dtype_from_name(json_string_value(dt)) : QV_DTYPE_F32;
            if (t->dtype == QV_DTYPE_UNDEF)
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].datatype: unknown datatype", path, key,
                               i);
        }
        if (shape != NULL && dims != NULL)
            return qv_fail(d, QV_EINVAL, "%s: %s[%zu]: give shape or dims, not both", path, key,
                           i);
        if (dims != NULL) {
            /* Triton's dims leave out the batch dimension that max_batch_size implies. */
            if (!json_is_array(dims) || json_array_size(dims) + (batched ? 1 : 0) == 0 ||
                json_array_size(dims) + (batched ? 1 : 0) > QV_MAX_DIMS)
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].dims: expected 1 to %d dimensions "
                               "(with the batch dimension)", path, key, i, QV_MAX_DIMS);
            shape = dims;
            off = batched ? 1 : 0;
            t->shape[0] = -1;
        } else if (!json_is_array(shape) || json_array_size(shape) == 0 ||
                   json_array_size(shape) > QV_MAX_DIMS) {
            return qv_fail(d, QV_EINVAL, "%s: %s[%zu].shape: expected 1 to %d dimensions", path,
                           key, i, QV_MAX_DIMS);
        }
        t->ndim = (int)json_array_size(shape) + off;
        json_array_foreach(shape, j, dim) {
            if (!json_is_integer(dim) || json_integer_value(dim) < -1)
                return qv_fail(d, QV_EINVAL, "%s: %s[%zu].%s[%zu]: expected -1 or a size", path,
                               key, i, dims ? "dims" : "shape", j);
            t->shape[j + (size_t)off] = json_integer_value(dim);
        }
    }
    *n = (int)json_array_size(arr);
    return QV_OK;
}

static int parse_policy(const json_t *p, const char *path, struct qv_version_policy *pol,
                        struct qv_diag *d)
{
    const json_t *v;
    int64_t k;
    size_t i;
    json_t *e;
    int err;

    if (!json_is_object(p) || json_object_size(p) != 1)
        return qv_fail(d, QV_EINVAL,
                       "%s: version_policy: expected one of {\"all\": {}}, {\"latest\": "
                       "{\"num_versions\": N}}, {\"specific\": {\"versions\": [...]}}",
                       path);
    if (json_object_get(p, "all")) {
        pol->kind = QV_POLICY_ALL;
        return QV_OK;
    }
    v = json_object_get(p, "latest");
    if (v) {
        pol->kind = QV_POLICY_LATEST;
        err = parse_int(json_object_get(v, "num_versions"), path,
                        "version_policy.latest.num_versions", 1, QV_MAX_VERSIONS, &k, d);
        pol->num_versions = (int)k;
        return err;
    }
    v = json_object_get(json_object_get(p, "specific"), "versions");
    if (v == NULL)
        return qv_fail(d, QV_EINVAL, "%s: version_policy: unknown policy (all, latest, specific)",
                       path);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > QV_MAX_VERSIONS)
        return qv_fail(d, QV_EINVAL, "%s: version_policy.specific.versions: expected a non-empty "
                       "array of version numbers", path);
    pol->kind = QV_POLICY_SPECIFIC;
    json_array_foreach(v, i, e) {
        err = parse_int(e, path, "version_policy.specific.versions[]", 1, INT64_MAX, &k, d);
        if (err)
            return err;
        pol->versions[pol->n_versions++] = k;
    }
    return QV_OK;
}

static const char *const known_keys[] = {
    "name", "backend", "platform", "inputs", "input", "outputs", "output", "version_policy",
    "max_batch_size", "max_queue_delay_us", "dynamic_batching", "preferred_batch_sizes",
    "instances", "instance_group", "threads", "queue_limit", "latency_slo_ms", "warmup",
    "alerts", "parameters", NULL,
};

int qv_model_config_parse(const char *text, const char *path, struct qv_model_config *cfg,
                          struct qv_diag *d)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    const char *key;
    json_t *v, *e;
    int64_t k;
    size_t i;
    int err = QV_OK;
    bool batched = false;

    qv_model_config_defaults(cfg);
    if (root == NULL)
        return qv_fail(d, QV_EINVAL, "%s: line %d column %d: %s", path, jerr.line, jerr.column,
                       jerr.text);
    if (!json_is_object(root)) {
        err = qv_fail(d, QV_EINVAL, "%s: expected a JSON object", path);
        goto out;
    }
    json_object_foreach(root, key, v) {
        bool known = false;
        for (const char *const *kk = known_keys; *kk; kk++)
            known = known || strcmp(*kk, key) == 0;
        if (!known) {
            err = qv_fail(d, QV_EINVAL, "%s: %s: unknown key", path, key);
            goto out;
        }
    }
    v = json_object_get(root, "backend");
    if (v == NULL)
        v = json_object_get(root, "platform");
    if (v != NULL) {
        if (!json_is_string(v) || json_string_length(v) >= sizeof(cfg->backend)) {
            err = qv_fail(d, QV_EINVAL, "%s: backend: expected a backend name", path);
            goto out;
        }
        snprintf(cfg->backend, sizeof(cfg->backend), "%s", json_string_value(v));
        if (qv_backend_find(cfg->backend) == NULL) {
            err = qv_fail(d, QV_EINVAL, "%s: backend: unknown backend \"%s\"", path,
                          cfg->backend);
            goto out;
        }
    }
    {
        json_t *mb = json_object_get(root, "max_batch_size");
        batched = json_is_integer(mb) && json_integer_value(mb) > 0;
    }
    if (json_object_get(root, "inputs") && json_object_get(root, "input")) {
        err = qv_fail(d, QV_EINVAL, "%s: give inputs or input, not both", path);
        goto out;
    }
    if (json_object_get(root, "outputs") && json_object_get(root, "output")) {
        err = qv_fail(d, QV_EINVAL, "%s: give outputs or output, not both", path);
        goto out;
    }
#define IO(name1, name2, arr, n)                                                                   \
    v = json_object_get(root, name1);                                                              \
    if (v == NULL)                                                                                 \
        v = json_object_get(root, name2);                                                          \
    if (v != NULL) {                                                                               \
        err = parse_ios(v, path, json_object_get(root, name1) ? name1 : name2, batched,             \
                        cfg->declared.arr, &cfg->declared.n, d);                                   \
        if (err)                                                                                   \
            goto out;                                                                              \
    }
    IO("inputs", "input", inputs, n_inputs)
    IO("outputs", "output", outputs, n_outputs)
#undef IO
    v = json_object_get(root, "version_policy");
    if (v != NULL) {
        err = parse_policy(v, path, &cfg->policy, d);
        if (err)
            goto out;
    }
    {
        static const struct {
            const char *key;
            size_t off;
            int64_t lo, hi;
            bool u64;
        } ints[] = {
            {"max_batch_size", offsetof(struct qv_model_config, max_batch_size), 0, 65536, false},
            {"max_queue_delay_us", offsetof(struct qv_model_config, max_queue_delay_us), 0,
             10000000, true},
            {"instances", offsetof(struct qv_model_config, instances), 1, 64, false},
            {"threads", offsetof(struct qv_model_config, threads), 0, 256, false},
            {"queue_limit", offsetof(struct qv_model_config, queue_limit), 1, 1000000, false},
        };
        for (size_t j = 0; j < QV_ARRAY_LEN(ints); j++) {
            v = json_object_get(root, ints[j].key);
            if (v == NULL)
                continue;
            err = parse_int(v, path, ints[j].key, ints[j].lo, ints[j].hi, &k, d);
            if (err)
                goto out;
            if (ints[j].u64)
                *(uint64_t *)((char *)cfg + ints[j].off) = (uint64_t)k;
            else
                *(int *)((char *)cfg + ints[j].off) = (int)k;
        }
    }
    v = json_object_get(root, "instance_group");
    if (v != NULL && (!json_is_array(v) || json_array_size(v) > 1)) {
        err = qv_fail(d, QV_EINVAL, "%s: instance_group: expected an array of one group", path);
        goto out;
    }
    if (json_array_size(v) == 1) {
        json_t *g = json_array_get(v, 0), *kind = json_object_get(g, "kind");
        const char *gk;
        json_t *gv;
        if (!json_is_object(g)) {
            err = qv_fail(d, QV_EINVAL, "%s: instance_group[0]: expected an object", path);
            goto out;
        }
        json_object_foreach(g, gk, gv) {
            if (strcmp(gk, "count") != 0 && strcmp(gk, "kind") != 0 && strcmp(gk, "name") != 0) {
                err = qv_fail(d, QV_EINVAL, "%s: instance_group[0].%s: unknown or unsupported key",
                              path, gk);
                goto out;
            }
        }
        if (kind != NULL && (!json_is_string(kind) ||
                             (strcmp(json_string_value(kind), "KIND_CPU") != 0 &&
                              strcmp(json_string_value(kind), "KIND_AUTO") != 0))) {
            err = qv_fail(d, QV_EINVAL, "%s: instance_group[0].kind: only KIND_CPU (or KIND_AUTO) "
                          "is supported", path);
            goto out;
        }
    }
    if (json_is_array(v) && json_array_size(v) > 0 &&
        json_object_get(json_array_get(v, 0), "count") != NULL) {
        err = parse_int(json_object_get(json_array_get(v, 0), "count"), path,
                        "instance_group[0].count", 1, 64, &k, d);
        if (err)
            goto out;
        cfg->instances = (int)k;
    }
    v = json_object_get(root, "dynamic_batching");
    if (v != NULL) {
        if (!json_is_object(v)) {
            err = qv_fail(d, QV_EINVAL, "%s: dynamic_batching: expected an object", path);
            goto out;
        }
        {
            const char *bk;
            json_t *bv;
            json_object_foreach(v, bk, bv) {
                if (strcmp(bk, "max_queue_delay_microseconds") != 0 &&
                    strcmp(bk, "preferred_batch_size") != 0) {
                    err = qv_fail(d, QV_EINVAL,
                                  "%s: dynamic_batching.%s: unknown or unsupported key", path, bk);
                    goto out;
                }
            }
        }
        e = json_object_get(v, "max_queue_delay_microseconds");
        if (e != NULL) {
            err = parse_int(e, path, "dynamic_batching.max_queue_delay_microseconds", 0, 10000000,
                            &k, d);
            if (err)
                goto out;
            cfg->max_queue_delay_us = (uint64_t)k;
        }
        e = json_object_get(v, "preferred_batch_size");
        if (e != NULL && json_object_get(root, "preferred_batch_sizes") == NULL)
            json_object_set(root, "preferred_batch_sizes", e);
    }
    v = json_object_get(root, "preferred_batch_sizes");
    if (v != NULL) {
        if (!json_is_array(v) || json_array_size(v) > QV_MAX_PREFERRED) {
            err = qv_fail(d, QV_EINVAL, "%s: preferred_batch_sizes: expected at most %d sizes",
                          path, QV_MAX_PREFERRED);
            goto out;
        }
        json_array_foreach(v, i, e) {
            err = parse_int(e, path, "preferred_batch_sizes[]", 1, 65536, &k, d);
            if (err)
                goto out;
            cfg->preferred_batch_sizes[cfg->n_preferred++] = (int)k;
        }
    }
    v = json_object_get(root, "latency_slo_ms");
    if (v != NULL) {
        if (!json_is_number(v) || json_number_value(v) <= 0) {
            err = qv_fail(d, QV_EINVAL, "%s: latency_slo_ms: expected a positive number", path);
            goto out;
        }
        cfg->latency_slo_ms = json_number_value(v);
    }
    v = json_object_get(root, "warmup");
    if (v != NULL) {
        if (!json_is_array(v)) {
            err = qv_fail(d, QV_EINVAL, "%s: warmup: expected an array of requests", path);
            goto out;
        }
        cfg->warmup_json = json_dumps(v, JSON_COMPACT);
    }
    v = json_object_get(root, "alerts");
    if (v != NULL) {
        if (!json_is_array(v)) {
            err = qv_fail(d, QV_EINVAL, "%s: alerts: expected an array of rules", path);
            goto out;
        }
        cfg->alerts_json = json_dumps(v, JSON_COMPACT);
    }
    v = json_object_get(root, "parameters");
    if (v != NULL) {
        if (!json_is_object(v)) {
            err = qv_fail(d, QV_EINVAL, "%s: parameters: expected an object", path);
            goto out;
        }
        cfg->params = qv_xcalloc(json_object_size(v) + 1, sizeof(*cfg->params));
        json_object_foreach(v, key, e) {
            char num[64];
            const char *s = num;
            if (json_is_string(e))
                s = json_string_value(e);
            else if (json_is_integer(e))
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(e));
            else if (json_is_number(e))
                snprintf(num, sizeof(num), "%.17g", json_number_value(e));
            else if (json_is_boolean(e))
                s = json_is_true(e) ? "true" : "false";
            else {
                err = qv_fail(d, QV_EINVAL, "%s: parameters.%s: expected a scalar", path, key);
                goto out;
            }
            cfg->params[cfg->n_params].key = qv_xstrdup(key);
            cfg->params[cfg->n_params].value = qv_xstrdup(s);
            cfg->n_params++;
        }
    }
out:
    json_decref(root);
    if (err)
        qv_model_config_free(cfg);
    return err;
}

int qv_model_config_load(const char *path, struct qv_model_config *cfg, struct qv_diag *d)
{
    char *text = NULL;
    int err;
    struct stat st;

    /* Looked at before it is opened: a FIFO would block the open. */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return qv_fail(d, QV_EINVAL, "%s: not a regular file", path);
    err = qv_file_read_all(path, 1 << 20, &text, NULL, d);
    if (err == QV_ENOENT) {
        /* No config.json: every default, backend from the artifact's extension. */
        qv_model_config_defaults(cfg);
        d->msg[0] = '\0';
        return QV_OK;
    }
    if (err)
        return err;
    err = qv_model_config_parse(text, path, cfg, d);
    free(text);
    return err;
}

static int cmp_version(const void *a, const void *b)
{
    const struct qv_repo_version *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}

int (*qv_repo_opendir_fault)(const char *path);

bool qv_file_id_equal(const struct qv_file_id *a, const struct qv_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->dir_ino == b->dir_ino;
}

static DIR *open_dir(const char *path)
{
    int fault = qv_repo_opendir_fault ? qv_repo_opendir_fault(path) : 0;

    if (fault) {
        errno = fault;
        return NULL;
    }
    return opendir(path);
}

static void find_artifact(const char *vdir, struct qv_repo_version *v)
{
    DIR *dir = open_dir(vdir);
    struct dirent *de;
    struct stat st;
    int found = 0;

    if (dir == NULL) {
        snprintf(v->problem, sizeof(v->problem), "cannot open %s: %s", vdir, strerror(errno));
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, "model.", 6) != 0)
            continue;
        if (qv_backend_for_file(de->d_name) == NULL)
            continue;
        if (found++ == 0)
            snprintf(v->artifact, sizeof(v->artifact), "%s/%s", vdir, de->d_name);
    }
    closedir(dir);
    if (found == 0) {
        snprintf(v->problem, sizeof(v->problem),
                 "no artifact: expected one file model.<ext> with a known extension in %s", vdir);
    } else if (found > 1) {
        snprintf(v->problem, sizeof(v->problem), "%d artifacts in %s: expected exactly one",
                 found, vdir);
    } else if (stat(v->artifact, &st) != 0) {
        snprintf(v->problem, sizeof(v->problem), "cannot read %s/%s: %s", vdir,
                 strrchr(v->artifact, '/') + 1, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        /* A FIFO would block whoever opens it, a device never ends. */
        snprintf(v->problem, sizeof(v->problem), "%s/%s is not a regular file", vdir,
                 strrchr(v->artifact, '/') + 1);
    } else {
        v->id.dev = (uint64_t)st.st_dev;
        v->id.ino = (uint64_t)st.st_ino;
        v->id.size = (int64_t)st.st_size;
        v->id.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
        if (stat(vdir, &st) == 0)
            v->id.dir_ino = (uint64_t)st.st_ino;
    }
}

static int cmp_int64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x < y) - (x > y);
}

int qv_repo_scan_model(const char *root, const char *name, struct qv_repo_model *m,
                       struct qv_diag *d)
{
    struct dirent *de;
    int64_t *nums = NULL;
    size_t n_nums = 0, cap = 0;
    DIR *dir;

    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->dir, sizeof(m->dir), "%s/%s", root, name);
    snprintf(m->config_path, sizeof(m->config_path), "%s/config.json", m->dir);
    dir = open_dir(m->dir);
    if (dir == NULL)
        return qv_fail(d, errno == ENOENT ? QV_ENOENT : QV_EIO, "cannot open %s: %s", m->dir,
                       strerror(errno));
    while ((de = readdir(dir)) != NULL) {
        char path[1400];
        struct stat st;
        int64_t v;

        if (de->d_name[0] == '.' || strcmp(de->d_name, "config.json") == 0)
            continue;
        v = qv_repo_parse_version(de->d_name);
        if (v < 0) {
            qv_log(QV_LOG_DEBUG, "model=%s dir=%s msg=\"ignored: not a version number\"", name,
                   de->d_name);
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", m->dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n_nums == cap) {
            cap = cap ? cap * 2 : 64;
            nums = qv_xrealloc(nums, sizeof(*nums) * cap);
        }
        nums[n_nums++] = v;
    }
    closedir(dir);
    /* The newest versions count, whatever order readdir gives. */
    if (n_nums > 0)
        qsort(nums, n_nums, sizeof(*nums), cmp_int64_desc);
    if (n_nums > QV_MAX_VERSIONS)
        qv_log(QV_LOG_WARN, "model=%s msg=\"%zu versions; only the newest %d are considered\"",
               name, n_nums, QV_MAX_VERSIONS);
    for (size_t i = 0; i < n_nums && m->n_versions < QV_MAX_VERSIONS; i++) {
        char path[1400];
        snprintf(path, sizeof(path), "%s/%lld", m->dir, (long long)nums[i]);
        m->versions[m->n_versions].version = nums[i];
        find_artifact(path, &m->versions[m->n_versions]);
        m->n_versions++;
    }
    free(nums);
    qsort(m->versions, (size_t)m->n_versions, sizeof(m->versions[0]), cmp_version);
    return QV_OK;
}

static int cmp_model(const void *a, const void *b)
{
    return strcmp(((const struct qv_repo_model *)a)->name, ((const struct qv_repo_model *)b)->name);
}

int qv_repo_scan(const char *root, struct qv_repo_model **out, int *n, struct qv_diag *d)
{
    struct qv_repo_model *models = NULL;
    int count = 0, cap = 0;
    struct dirent *de;
    DIR *dir;

    dir = open_dir(root);
    if (dir == NULL)
        return qv_fail(d, QV_EIO, "cannot open the repository %s: %s", root, strerror(errno));
    while ((de = readdir(dir)) != NULL) {
        char path[1400];
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (!qv_repo_name_is_valid(de->d_name)) {
            qv_log(QV_LOG_DEBUG, "dir=%s msg=\"ignored: not a valid model name\"", de->d_name);
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            models = qv_xrealloc(models, sizeof(*models) * (size_t)cap);
        }
        {
            struct qv_diag md = {{0}};
            int err = qv_repo_scan_model(root, de->d_name, &models[count], &md);
            if (err == QV_OK) {
                count++;
            } else if (err != QV_ENOENT) {
                /* There but unreadable (for now): not the same as removed. */
                snprintf(models[count].error, sizeof(models[count].error), "%s", md.msg);
                models[count].n_versions = 0;
                count++;
            }
        }
    }
    closedir(dir);
    if (count)
        qsort(models, (size_t)count, sizeof(*models), cmp_model);
    *out = models;
    *n = count;
    return QV_OK;
}

bool qv_repo_policy_selects(const struct qv_version_policy *p, const struct qv_repo_model *m,
                            int64_t v)
{
    int newer = 0;

    switch (p->kind) {
    case QV_POLICY_ALL:
        return true;
    case QV_POLICY_LATEST:
        for (int i = 0; i < m->n_versions; i++)
            newer += m->versions[i].version > v;
        return newer < p->num_versions;
    case QV_POLICY_SPECIFIC:
        for (int i = 0; i < p->n_versions; i++)
            if (p->versions[i] == v)
                return true;
        return false;
    }
    return false;
}
