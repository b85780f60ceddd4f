/* SPDX-License-Identifier: MIT
 *
 * repo/repo.h -- the model repository on disk:
 *
 *   <root>/<model>/config.json
 *   <root>/<model>/<N>/model.<ext>      N a positive integer
 *
 * Scanning reads directory names and configs only; hashing an artifact is a
 * separate call made when a version is loaded. Directories whose name is not a
 * positive integer are ignored (logged once), so a version can be staged under
 * another name and renamed into place atomically. All functions: any thread;
 * they touch no shared state.
 */
#ifndef QV_REPO_H
#define QV_REPO_H

#include "../backend/backend.h"

#define QV_MODEL_NAME_MAX 128
#define QV_MAX_VERSIONS 256
#define QV_MAX_PREFERRED 8

enum qv_policy_kind { QV_POLICY_ALL, QV_POLICY_LATEST, QV_POLICY_SPECIFIC };

struct qv_version_policy {
    enum qv_policy_kind kind;
    int num_versions;                 /* LATEST */
    int n_versions;                   /* SPECIFIC */
    int64_t versions[QV_MAX_VERSIONS];
};

/* A parsed config.json. Immutable once parsed; owned by whoever parsed it
 * (qv_model_config_free). */
struct qv_model_config {
    char backend[32];
    struct qv_signature declared;     /* n_inputs/n_outputs 0 when left out */
    struct qv_version_policy policy;
    int max_batch_size;               /* 0: no batching (each request runs alone) */
    uint64_t max_queue_delay_us;
    int n_preferred;
    int preferred_batch_sizes[QV_MAX_PREFERRED];
    int instances;                    /* concurrent backend calls per version; 0: not set */
    int threads;                      /* threads per backend call (0: automatic) */
    int queue_limit;                  /* pending requests per version before 429 */
    double latency_slo_ms;            /* the latency objective used by scores */
    char *warmup_json;                /* "warmup" array as JSON text, or NULL */
    char *alerts_json;                /* "alerts" array as JSON text, or NULL */
    int n_params;
    struct qv_kv *params;             /* "parameters" as strings */
};

/* Parses config.json text. 'path' is only for messages. On error the diag
 * names the key ("config.json: version_policy.latest.num_versions: ..."). */
int qv_model_config_parse(const char *text, const char *path, struct qv_model_config *cfg,
                          struct qv_diag *d);
int qv_model_config_load(const char *path, struct qv_model_config *cfg, struct qv_diag *d);
void qv_model_config_free(struct qv_model_config *cfg);
void qv_model_config_defaults(struct qv_model_config *cfg);

/* What a file is on disk, to notice it replaced or rewritten in place
 * (all zero when unknown). */
struct qv_file_id {
    uint64_t dev, ino;
    int64_t size, mtime_ns;
    uint64_t dir_ino;                 /* of the version directory */
};
bool qv_file_id_equal(const struct qv_file_id *a, const struct qv_file_id *b);

/* One version directory found on disk. */
struct qv_repo_version {
    int64_t version;
    char artifact[1024];              /* full path of model.<ext>, "" if none found */
    char problem[256];                /* why it cannot load ("" if none yet known) */
    struct qv_file_id id;             /* of the artifact, when it is a regular file */
};

/* One model directory found on disk, with its versions sorted ascending. */
struct qv_repo_model {
    char name[QV_MODEL_NAME_MAX];
    char dir[1024];
    char config_path[1100];
    char error[256];                  /* unreadable directory: its versions are unknown */
    int n_versions;
    struct qv_repo_version versions[QV_MAX_VERSIONS];
};

/* Lists the model directories under root (sorted by name). *out is an array
 * of *n entries the caller frees with free(). A model directory that exists
 * but cannot be read is listed with 'error' set and no versions, so that a
 * caller can keep what it serves rather than take it for removed. With more
 * than QV_MAX_VERSIONS version directories, the newest are kept. */
int qv_repo_scan(const char *root, struct qv_repo_model **out, int *n, struct qv_diag *d);
/* Scans one model directory. */
int qv_repo_scan_model(const char *root, const char *name, struct qv_repo_model *m,
                       struct qv_diag *d);
/* True when version v (present on disk among 'm') is selected by the policy. */
bool qv_repo_policy_selects(const struct qv_version_policy *p, const struct qv_repo_model *m,
                            int64_t v);
/* For tests: when set, called before each directory is opened; a nonzero
 * return is taken as the errno of a failed opendir (root runs the tests, and
 * permissions do not stop root). NULL in the server. */
extern int (*qv_repo_opendir_fault)(const char *path);

/* Model names: [A-Za-z0-9_.-]{1,127}, not starting with '.'. */
bool qv_repo_name_is_valid(const char *name);
/* Parses a positive integer version ("3"); -1 if not one. */
int64_t qv_repo_parse_version(const char *s);

#endif /* QV_REPO_H */
