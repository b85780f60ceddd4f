/* SPDX-License-Identifier: MIT
 *
 * router/router.c -- per-model route snapshots, picking, bandit arms and the
 * feedback join.
 *
 * Lifetimes. A snapshot (struct snap) is immutable once published, except for its
 * round-robin counter, which is atomic. The router's table lock (a rwlock) guards
 * the model table and each model's 'cur' pointer: a pick takes it for reading just
 * long enough to find the model and ref its snapshot, a publish takes it for
 * writing just long enough to swap the pointer. The last unref frees a snapshot.
 * Model entries are never freed before the router, so a pick may keep its entry
 * pointer after dropping the lock. Writers (set_route, labels, scores) are
 * serialized by write_mu, so a read-modify-write of a route cannot lose an update.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_int.h"

#define QV_LOG_MODULE "router"

#define N_BUCKETS 256
#define FB_DEFAULT_CAP 65536
#define FB_MAX_CAP (1u << 24)
#define FB_SHARDS_MAX 16  /* locks of the feedback ring */
#define FB_SHARD_MIN 4096 /* entries per shard at least: small rings keep one exact FIFO */
#define FB_CHAIN_MAX 16   /* entries per hash chain; the oldest beyond is dropped */

struct arm {
    int64_t version;
    double alpha, beta; /* Thompson: Beta(alpha, beta), starting at (1, 1) */
    double sum;         /* total reward */
    uint64_t n;         /* feedback count */
};

/* Bandit arms, shared by the snapshots of one route while its arms stay the same
 * (a label change or a score update does not reset them). Refcounted like snap. */
struct bandit {
    atomic_uint refs;
    qv_mutex mu; /* guards everything below */
    int n_arms;
    struct arm arms[QV_ROUTE_MAX_TARGETS];
    enum qv__bandit_algo algo;
    uint64_t seed;
    uint64_t rng;
};

struct snap {
    atomic_uint refs;
    uint64_t generation;
    struct qv_route rt;
    /* Weighted arms, from rt.weights: versions and weights in hundredths of a point. */
    int n_arms;
    int64_t arm_version[QV_ROUTE_MAX_TARGETS];
    uint32_t arm_bp[QV_ROUTE_MAX_TARGETS];
    /* Smooth weighted round-robin order (nginx) over the gcd-reduced weights: pick
     * k uses sched[k % sched_len]. Shares are exact over every full cycle. */
    uint8_t *sched;
    uint32_t sched_len;
    atomic_uint_fast64_t counter;
    /* Last scores (qv_router_update_scores), carried from snapshot to snapshot. */
    int n_scores;
    struct qv_score_terms scores[QV_ROUTER_MAX_SCORES];
    struct bandit *bandit; /* policy bandit only */
};

struct model_entry {
    struct model_entry *next; /* bucket chain; guarded by table */
    char name[QV_ROUTER_MODEL_MAX];
    struct snap *cur; /* guarded by table; NULL: no route */
    /* Last scores, also for models without a route; guarded by write_mu. */
    int n_scores;
    struct qv_score_terms scores[QV_ROUTER_MAX_SCORES];
};

struct fb_entry {
    char id[QV_ROUTER_ID_MAX];
    char model[QV_ROUTER_MODEL_MAX];
    int64_t version;
    int cls; /* class of the answer, -1 until qv_router_set_outcome */
    uint64_t ts_ms;
    uint64_t hash;
    int32_t next; /* next entry in the same hash bucket, -1: end */
    bool used;
    bool fed; /* a feedback was accepted for this request (qv_router_feedback_claim) */
};

/* One shard of the feedback ring: a FIFO of entries with its own hash index and
 * lock. The shard of an id is chosen by its keyed hash, so requests on different
 * shards never wait for each other. */
struct fb_shard {
    qv_mutex mu;      /* guards everything below */
    size_t cap, head; /* FIFO: e[head] is the next slot to (re)use */
    struct fb_entry *e;
    int32_t *heads; /* bucket -> first entry, -1: empty */
    size_t mask;
    uint64_t written;  /* entries ever written (e[written % cap] is the next) */
    uint64_t exported; /* qv_router_feedback_export has passed this many */
    char pad[64];      /* keeps two shards' locks off one cache line */
};

struct qv_router {
    struct qv_router_config cfg;
    pthread_rwlock_t table;
    qv_mutex write_mu;
    struct model_entry *buckets[N_BUCKETS];
    atomic_uint_fast64_t generation;
    atomic_uint_fast64_t rand_ctr;
    struct {
        /* Request ids are chosen by clients: they are hashed with SipHash-1-3 under a
         * key drawn at creation, so no client can aim many ids at one chain; chains are
         * capped at FB_CHAIN_MAX all the same. Written once at creation. */
        struct qv_sipkey key;
        size_t n_shards;
        struct fb_shard *shards;
        /* Where to look for a request this ring does not know (cluster mode); set once
         * before traffic. */
        qv_router_fb_source_fn source;
        void *source_ud;
    } fb;
};

/* ---- Snapshots ---- */

static void bandit_unref(struct bandit *b)
{
    if (b == NULL)
        return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        qv_mutex_fini(&b->mu);
        free(b);
    }
}

static void snap_unref(struct snap *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        bandit_unref(s->bandit);
        free(s->sched);
        free(s);
    }
}

/* The bandit arms for route rt: prev's object if the arms are the same, else a new
 * one that keeps the statistics of the versions that stay. NULL if rt is not a
 * bandit route. */
static struct bandit *bandit_for(const struct qv_route *rt, struct bandit *prev)
{
    int64_t v[QV_ROUTE_MAX_TARGETS];
    int n = rt->n_weights > 0 ? rt->n_weights : rt->n_compare;
    struct bandit *b;
    bool same;

    if (rt->policy != QV_POLICY_BANDIT)
        return NULL;
    for (int i = 0; i < n; i++)
        v[i] = rt->n_weights > 0 ? rt->weights[i].t.version : rt->compare[i].version;
    same = prev != NULL && prev->n_arms == n && prev->algo == rt->bandit_algo &&
           prev->seed == rt->bandit_seed;
    for (int i = 0; same && i < n; i++)
        same = prev->arms[i].version == v[i];
    if (same) {
        atomic_fetch_add_explicit(&prev->refs, 1, memory_order_relaxed);
        return prev;
    }
    b = qv_xcalloc(1, sizeof(*b));
    atomic_init(&b->refs, 1);
    qv_mutex_init(&b->mu);
    b->algo = rt->bandit_algo;
    b->seed = rt->bandit_seed;
    b->rng = rt->bandit_seed;
    b->n_arms = n;
    if (prev != NULL)
        qv_mutex_lock(&prev->mu);
    for (int i = 0; i < n; i++) {
        b->arms[i] = (struct arm){.version = v[i], .alpha = 1.0, .beta = 1.0};
        for (int j = 0; prev != NULL && j < prev->n_arms; j++)
            if (prev->arms[j].version == v[i])
                b->arms[i] = prev->arms[j];
    }
    if (prev != NULL)
        qv_mutex_unlock(&prev->mu);
    return b;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b != 0) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void build_schedule(struct snap *s)
{
    int64_t cur[QV_ROUTE_MAX_TARGETS] = {0};
    uint32_t w[QV_ROUTE_MAX_TARGETS];
    uint32_t g = 0, total = 0;

    for (int i = 0; i < s->n_arms; i++)
        g = gcd(g, s->arm_bp[i]);
    if (g == 0)
        return;
    for (int i = 0; i < s->n_arms; i++) {
        w[i] = s->arm_bp[i] / g;
        total += w[i];
    }
    s->sched = qv_xmalloc(total);
    s->sched_len = total;
    for (uint32_t k = 0; k < total; k++) {
        int best = -1;
        for (int i = 0; i < s->n_arms; i++) {
            cur[i] += w[i];
            if (w[i] > 0 && (best < 0 || cur[i] > cur[best]))
                best = i;
        }
        cur[best] -= total;
        s->sched[k] = (uint8_t)best;
    }
}

/* A new snapshot of rt (copied), carrying the scores and bandit arms of prev (may
 * be NULL). */
static struct snap *snap_build(qv_router *r, const struct qv_route *rt, const struct snap *prev)
{
    struct snap *s = qv_xcalloc(1, sizeof(*s));
    double w[QV_ROUTE_MAX_TARGETS];

    atomic_init(&s->refs, 1);
    atomic_init(&s->counter, 0);
    s->rt = *rt;
    s->generation = atomic_fetch_add(&r->generation, 1) + 1;
    s->n_arms = rt->n_weights;
    for (int i = 0; i < rt->n_weights; i++) {
        s->arm_version[i] = rt->weights[i].t.version;
        w[i] = rt->weights[i].weight;
    }
    qv__weights_bp(w, s->n_arms, s->arm_bp);
    build_schedule(s);
    if (prev != NULL) {
        /* Continue the round-robin where the old snapshot was: restarting at 0 on
         * every publish (say, a score update each tick) would always pick the head
         * of the cycle when the traffic between publishes is light. */
        atomic_store(&s->counter, atomic_load(&prev->counter));
        s->n_scores = prev->n_scores;
        memcpy(s->scores, prev->scores, sizeof(s->scores));
    }
    s->bandit = bandit_for(rt, prev != NULL ? prev->bandit : NULL);
    return s;
}

/* ---- The model table ---- */

static size_t bucket_of(const char *model)
{
    return qv_hash_keyed(model, strlen(model)) & (N_BUCKETS - 1);
}

/* Caller holds the table lock (either mode) or write_mu. */
static struct model_entry *find_entry(qv_router *r, const char *model)
{
    struct model_entry *e = r->buckets[bucket_of(model)];

    while (e != NULL && strcmp(e->name, model) != 0)
        e = e->next;
    return e;
}

/* Caller holds write_mu. */
static struct model_entry *get_or_create_entry(qv_router *r, const char *model)
{
    struct model_entry *e = find_entry(r, model);

    if (e != NULL)
        return e;
    e = qv_xcalloc(1, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", model);
    pthread_rwlock_wrlock(&r->table);
    e->next = r->buckets[bucket_of(model)];
    r->buckets[bucket_of(model)] = e;
    pthread_rwlock_unlock(&r->table);
    return e;
}

/* The current snapshot of 'model', referenced, or NULL. */
static struct snap *snap_get(qv_router *r, const char *model, struct model_entry **entry)
{
    struct model_entry *e;
    struct snap *s = NULL;

    pthread_rwlock_rdlock(&r->table);
    e = find_entry(r, model);
    if (e != NULL && e->cur != NULL) {
        s = e->cur;
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&r->table);
    if (entry != NULL)
        *entry = e;
    return s;
}

/* Swap in s (may be NULL) and drop the table's reference to the old snapshot.
 * Caller holds write_mu. Takes ownership of s's reference. */
static void publish(qv_router *r, struct model_entry *e, struct snap *s)
{
    struct snap *old;

    pthread_rwlock_wrlock(&r->table);
    old = e->cur;
    e->cur = s;
    pthread_rwlock_unlock(&r->table);
    snap_unref(old);
}

/* ---- Creation ---- */

const struct qv_resolver *qv_router_resolver(const qv_router *r)
{
    return &r->cfg.resolver;
}

int qv_router_create(const struct qv_router_config *cfg, qv_router **out)
{
    qv_router *r = qv_xcalloc(1, sizeof(*r));

    if (cfg != NULL)
        r->cfg = *cfg;
    if (r->cfg.feedback_capacity == 0)
        r->cfg.feedback_capacity = FB_DEFAULT_CAP;
    if (r->cfg.feedback_capacity > FB_MAX_CAP)
        r->cfg.feedback_capacity = FB_MAX_CAP;
    pthread_rwlock_init(&r->table, NULL);
    qv_mutex_init(&r->write_mu);
    atomic_init(&r->generation, 0);
    atomic_init(&r->rand_ctr, 0);
    if (qv_sipkey_random(&r->fb.key) != 0) {
        qv_log(QV_LOG_ERROR, "msg=\"getrandom failed: no key for the feedback ring\"");
        abort();
    }
    r->fb.n_shards = r->cfg.feedback_capacity / FB_SHARD_MIN;
    if (r->fb.n_shards < 1)
        r->fb.n_shards = 1;
    if (r->fb.n_shards > FB_SHARDS_MAX)
        r->fb.n_shards = FB_SHARDS_MAX;
    r->fb.shards = qv_xcalloc(r->fb.n_shards, sizeof(struct fb_shard));
    for (size_t k = 0; k < r->fb.n_shards; k++) {
        struct fb_shard *sh = &r->fb.shards[k];
        size_t nb = 1;
        qv_mutex_init(&sh->mu);
        sh->cap = (r->cfg.feedback_capacity + r->fb.n_shards - 1) / r->fb.n_shards;
        sh->e = qv_xcalloc(sh->cap, sizeof(struct fb_entry));
        while (nb < sh->cap)
            nb <<= 1;
        sh->heads = qv_xmalloc(nb * sizeof(int32_t));
        for (size_t i = 0; i < nb; i++)
            sh->heads[i] = -1;
        sh->mask = nb - 1;
    }
    *out = r;
    return 0;
}

void qv_router_destroy(qv_router *r)
{
    if (r == NULL)
        return;
    for (int b = 0; b < N_BUCKETS; b++) {
        struct model_entry *e = r->buckets[b];
        while (e != NULL) {
            struct model_entry *next = e->next;
            snap_unref(e->cur);
            free(e);
            e = next;
        }
    }
    for (size_t k = 0; k < r->fb.n_shards; k++) {
        free(r->fb.shards[k].e);
        free(r->fb.shards[k].heads);
        qv_mutex_fini(&r->fb.shards[k].mu);
    }
    free(r->fb.shards);
    qv_mutex_fini(&r->write_mu);
    pthread_rwlock_destroy(&r->table);
    free(r);
}

/* ---- Routes ---- */

static int check_model(const char *model, struct qv_diag *d)
{
    if (model == NULL || model[0] == '\0' || strlen(model) >= QV_ROUTER_MODEL_MAX)
        return qv_fail(d, QV_EINVAL, "model: expected a name of 1 to %d bytes",
                       QV_ROUTER_MODEL_MAX - 1);
    return 0;
}

/* Runs the commit hook (if any) with the canonical text of rt (NULL rt: the route
 * is cleared). Caller holds write_mu. */
static int run_commit(const struct qv_route_commit *commit, const char *model,
                      const struct qv_route *rt, struct qv_diag *d)
{
    char *canon = NULL;
    int err;

    if (commit == NULL || commit->fn == NULL)
        return 0;
    if (rt != NULL && qv_route_to_json(rt, &canon) != 0)
        return qv_fail(d, QV_ENOMEM, "cannot encode the route of %s", model);
    err = commit->fn(commit->ud, model, canon, d);
    free(canon);
    return err;
}

/* Publish rt as the route of e, after write_mu and the commit hook. */
static int install(qv_router *r, struct model_entry *e, const struct qv_route *rt,
                   const struct qv_route_commit *commit, struct qv_diag *d)
{
    int err = run_commit(commit, e->name, rt, d);

    if (err)
        return err;
    publish(r, e, snap_build(r, rt, e->cur));
    return 0;
}

int qv_router_set_route(qv_router *r, const char *model, const char *json,
                        const struct qv_resolver *res, struct qv_diag *d)
{
    return qv_router_set_route_commit(r, model, json, res, NULL, d);
}

int qv_router_set_route_commit(qv_router *r, const char *model, const char *json,
                               const struct qv_resolver *res, const struct qv_route_commit *commit,
                               struct qv_diag *d)
{
    qv_route *rt = NULL;
    int err;

    err = check_model(model, d);
    if (err)
        return err;
    err = qv_route_parse(json, model, res, &rt, d);
    if (err)
        return err;
    qv_mutex_lock(&r->write_mu);
    err = install(r, get_or_create_entry(r, model), rt, commit, d);
    qv_mutex_unlock(&r->write_mu);
    if (!err)
        qv_log(QV_LOG_INFO, "model=%s policy=%s msg=\"route set\"", model,
               qv_policy_name(rt->policy));
    qv_route_free(rt);
    return err;
}

int qv_router_get_route(qv_router *r, const char *model, char **json)
{
    struct snap *s = snap_get(r, model, NULL);
    int err;

    if (s == NULL)
        return QV_ENOENT;
    err = qv_route_to_json(&s->rt, json);
    snap_unref(s);
    return err;
}

int qv_router_clear(qv_router *r, const char *model)
{
    return qv_router_clear_commit(r, model, NULL, NULL);
}

int qv_router_clear_commit(qv_router *r, const char *model, const struct qv_route_commit *commit,
                           struct qv_diag *d)
{
    struct model_entry *e;
    int err = 0;

    qv_mutex_lock(&r->write_mu);
    e = find_entry(r, model);
    if (e == NULL || e->cur == NULL) {
        err = QV_ENOENT;
        goto out;
    }
    err = run_commit(commit, model, NULL, d);
    if (err)
        goto out;
    publish(r, e, NULL);
out:
    qv_mutex_unlock(&r->write_mu);
    return err;
}

int qv_router_set_label(qv_router *r, const char *model, const char *label, int64_t version,
                        const struct qv_resolver *res, struct qv_diag *d)
{
    return qv_router_set_label_commit(r, model, label, version, res, NULL, d);
}

int qv_router_set_label_commit(qv_router *r, const char *model, const char *label, int64_t version,
                               const struct qv_resolver *res, const struct qv_route_commit *commit,
                               struct qv_diag *d)
{
    struct model_entry *e;
    struct qv_route *rt = NULL;
    int li, err;

    err = check_model(model, d);
    if (err)
        return err;
    if (label == NULL || !qv__label_name_ok(label))
        return qv_fail(d, QV_EINVAL,
                       "label: a label name is a letter or '_' followed by up to 62 letters, "
                       "digits, '_', '.', '-'");
    if (version <= 0)
        return qv_fail(d, QV_EINVAL, "labels.%s: expected a positive version number", label);
    if (res != NULL && res->is_ready != NULL && !res->is_ready(res->ud, model, version))
        return qv_fail(d, QV_EINVAL, "labels.%s: version %" PRId64 " of model %s is not READY",
                       label, version, model);
    rt = qv_xcalloc(1, sizeof(*rt));
    qv_mutex_lock(&r->write_mu);
    e = get_or_create_entry(r, model);
    if (e->cur != NULL) {
        *rt = e->cur->rt;
    } else {
        rt->policy = QV_POLICY_DEFAULT;
        qv_score_cfg_default(&rt->score);
        rt->bandit_seed = 1;
    }
    li = qv__route_find_label(rt, label);
    if (li < 0) {
        if (rt->n_labels == QV_ROUTE_MAX_LABELS) {
            err = qv_fail(d, QV_EINVAL, "labels: more than %d labels", QV_ROUTE_MAX_LABELS);
            goto out;
        }
        li = rt->n_labels++;
        snprintf(rt->labels[li].name, sizeof(rt->labels[li].name), "%s", label);
    }
    rt->labels[li].version = version;
    err = qv__route_resolve(rt, model, res, d);
    if (err)
        goto out;
    err = install(r, e, rt, commit, d);
out:
    qv_mutex_unlock(&r->write_mu);
    free(rt);
    return err;
}

int qv_router_delete_label(qv_router *r, const char *model, const char *label, struct qv_diag *d)
{
    return qv_router_delete_label_commit(r, model, label, NULL, d);
}

int qv_router_delete_label_commit(qv_router *r, const char *model, const char *label,
                                  const struct qv_route_commit *commit, struct qv_diag *d)
{
    struct model_entry *e;
    struct qv_route *rt = NULL;
    char field[QV_ROUTE_NAME_MAX + 32];
    int li, err = 0;

    qv_mutex_lock(&r->write_mu);
    e = find_entry(r, model);
    if (e == NULL || e->cur == NULL) {
        err = qv_fail(d, QV_ENOENT, "model %s has no route", model);
        goto out;
    }
    rt = qv_xmalloc(sizeof(*rt));
    *rt = e->cur->rt;
    li = qv__route_find_label(rt, label);
    if (li < 0) {
        err = qv_fail(d, QV_ENOENT, "labels.%s: no such label", label);
        goto out;
    }
    if (qv__route_label_user(rt, label, field, sizeof(field)) != NULL) {
        err = qv_fail(d, QV_EINVAL, "labels.%s: still used by %s", label, field);
        goto out;
    }
    memmove(&rt->labels[li], &rt->labels[li + 1],
            sizeof(rt->labels[0]) * (size_t)(rt->n_labels - li - 1));
    rt->n_labels--;
    err = install(r, e, rt, commit, d);
out:
    qv_mutex_unlock(&r->write_mu);
    free(rt);
    return err;
}

int qv_router_get_label(qv_router *r, const char *model, const char *label, int64_t *version)
{
    struct snap *s = snap_get(r, model, NULL);
    int li, err = QV_ENOENT;

    if (s == NULL)
        return QV_ENOENT;
    li = qv__route_find_label(&s->rt, label);
    if (li >= 0) {
        *version = s->rt.labels[li].version;
        err = 0;
    }
    snap_unref(s);
    return err;
}

/* ---- Picking ---- */

static bool ready(const qv_router *r, const char *model, int64_t v)
{
    return r->cfg.resolver.is_ready == NULL ||
           r->cfg.resolver.is_ready(r->cfg.resolver.ud, model, v);
}

/* Weighted choice among the READY arms with rand; 0 when none. */
static int64_t pick_renormalized(const qv_router *r, const char *model, const struct snap *s,
                                 uint64_t rand)
{
    bool ok[QV_ROUTE_MAX_TARGETS];
    uint64_t sum = 0, x;

    for (int i = 0; i < s->n_arms; i++) {
        ok[i] = s->arm_bp[i] > 0 && ready(r, model, s->arm_version[i]);
        if (ok[i])
            sum += s->arm_bp[i];
    }
    if (sum == 0)
        return 0;
    x = rand % sum;
    for (int i = 0; i < s->n_arms; i++) {
        if (!ok[i])
            continue;
        if (x < s->arm_bp[i])
            return s->arm_version[i];
        x -= s->arm_bp[i];
    }
    return 0;
}

static int64_t pick_weighted(const qv_router *r, const char *model, struct snap *s, uint64_t rand)
{
    uint64_t k;
    int64_t v;

    if (s->sched_len == 0)
        return 0;
    k = atomic_fetch_add_explicit(&s->counter, 1, memory_order_relaxed);
    v = s->arm_version[s->sched[k % s->sched_len]];
    if (ready(r, model, v))
        return v;
    return pick_renormalized(r, model, s, rand);
}

/* Weighted rendezvous hashing: each arm scores -w / ln(u), u = hash(key, version)
 * in (0, 1); the highest READY score wins. Keys only move to an arm that gained
 * weight or away from an arm that lost weight. */
static int64_t pick_sticky(const qv_router *r, const char *model, const struct snap *s,
                           uint64_t key)
{
    double score[QV_ROUTE_MAX_TARGETS];

    for (int i = 0; i < s->n_arms; i++) {
        uint64_t h = qv_mix64(key ^ qv_mix64((uint64_t)s->arm_version[i] * 0x9e3779b97f4a7c15ull));
        double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
        score[i] = s->arm_bp[i] > 0 ? -(double)s->arm_bp[i] / log(u) : -1.0;
    }
    for (int tries = 0; tries < s->n_arms; tries++) {
        int best = -1;
        for (int i = 0; i < s->n_arms; i++)
            if (score[i] >= 0 && (best < 0 || score[i] > score[best]))
                best = i;
        if (best < 0)
            return 0;
        if (ready(r, model, s->arm_version[best]))
            return s->arm_version[best];
        score[best] = -1.0;
    }
    return 0;
}

/* Sticky keys are hashed with the fixed, unkeyed qv_hash64 on purpose: the hash only
 * orders the arms of one route (rendezvous), it indexes no table that a chosen key could
 * flood, and a fixed hash sends a key to the same version after a restart and on every
 * replica of a fleet. Knowing the hash lets a client choose its own version by choosing
 * its key, which it can do by trying keys anyway. See docs/routing.md. */
static bool sticky_key(const struct snap *s, const struct qv_pick_in *in, uint64_t *key)
{
    const char *k = NULL;

    if (in == NULL)
        return false;
    if (in->has_key) {
        *key = in->key != NULL ? qv_hash64(in->key, strlen(in->key), 0) : in->key_hash;
        return true;
    }
    if (in->get_key != NULL && s->rt.sticky_kind != QV_STICKY_NONE)
        k = in->get_key(in->get_key_ud, s->rt.sticky_kind, s->rt.sticky_name);
    if (k == NULL)
        return false;
    *key = qv_hash64(k, strlen(k), 0);
    return true;
}

static double arm_ucb(const struct arm *a, uint64_t total)
{
    return a->sum / (double)a->n + sqrt(2.0 * log((double)total) / (double)a->n);
}

static int64_t pick_bandit(const qv_router *r, const char *model, struct bandit *e)
{
    int64_t v = 0;
    double best = -INFINITY;
    uint64_t total = 0;

    qv_mutex_lock(&e->mu);
    for (int i = 0; i < e->n_arms; i++)
        total += e->arms[i].n;
    for (int i = 0; i < e->n_arms; i++) {
        struct arm *a = &e->arms[i];
        double x;
        if (!ready(r, model, a->version))
            continue;
        if (e->algo == QV__BANDIT_UCB1) {
            if (a->n == 0) {
                v = a->version; /* every arm is tried once first */
                break;
            }
            x = arm_ucb(a, total);
        } else {
            x = qv__rng_beta(&e->rng, a->alpha, a->beta);
        }
        if (x > best) {
            best = x;
            v = a->version;
        }
    }
    qv_mutex_unlock(&e->mu);
    return v;
}

static void pick_compare(const qv_router *r, const char *model, const struct snap *s,
                         struct qv_pick *out)
{
    for (int i = 0; i < s->rt.n_compare; i++) {
        int64_t v = s->rt.compare[i].version;
        if (!ready(r, model, v))
            continue;
        out->compare_score[out->n_compare] = NAN;
        for (int j = 0; j < s->n_scores; j++)
            if (s->scores[j].version == v)
                out->compare_score[out->n_compare] = s->scores[j].p;
        out->compare[out->n_compare++] = v;
    }
    out->select = s->rt.select;
    if (out->n_compare > 0)
        out->version = out->compare[0];
}

static void pick_shadows(const qv_router *r, const char *model, const struct snap *s, uint64_t rand,
                         struct qv_pick *out)
{
    for (int i = 0; i < s->rt.n_shadow; i++) {
        const struct qv__shadow *sh = &s->rt.shadow[i];
        uint64_t bp = (uint64_t)llround(sh->percent * 100.0);
        bool dup = sh->t.version == out->version;

        for (int j = 0; j < out->n_shadow; j++)
            dup = dup || out->shadow[j] == sh->t.version;
        if (dup || bp == 0)
            continue;
        if (bp < 10000 &&
            qv_mix64(rand ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1))) % 10000 >= bp)
            continue;
        if (!ready(r, model, sh->t.version))
            continue;
        out->shadow[out->n_shadow++] = sh->t.version;
    }
}

static void pick_default(const qv_router *r, const char *model, struct qv_pick *out)
{
    out->is_default = true;
    out->n_compare = 0;
    out->n_shadow = 0;
    out->version = 0;
    if (r->cfg.resolver.highest_ready != NULL)
        out->version = r->cfg.resolver.highest_ready(r->cfg.resolver.ud, model);
}

int qv_router_pick(qv_router *r, const char *model, const struct qv_pick_in *in,
                   struct qv_pick *out)
{
    struct snap *s;
    uint64_t rand, key;

    memset(out, 0, sizeof(*out));
    s = snap_get(r, model, NULL);
    if (s == NULL) {
        pick_default(r, model, out);
        return 0;
    }
    out->policy = s->rt.policy;
    out->generation = s->generation;
    if (in != NULL && in->rand != 0)
        rand = in->rand;
    else
        rand = qv_mix64(atomic_fetch_add_explicit(&r->rand_ctr, 1, memory_order_relaxed) +
                        0x2545f4914f6cdd1dull);
    switch (s->rt.policy) {
    case QV_POLICY_DEFAULT:
        break;
    case QV_POLICY_PINNED:
        if (ready(r, model, s->rt.target.version))
            out->version = s->rt.target.version;
        break;
    case QV_POLICY_WEIGHTED:
    case QV_POLICY_SCORE:
        out->version = pick_weighted(r, model, s, rand);
        break;
    case QV_POLICY_STICKY:
        if (sticky_key(s, in, &key))
            out->version = pick_sticky(r, model, s, key);
        else
            out->version = pick_weighted(r, model, s, rand);
        break;
    case QV_POLICY_COMPARE:
        pick_compare(r, model, s, out);
        break;
    case QV_POLICY_BANDIT:
        out->version = pick_bandit(r, model, s->bandit);
        break;
    }
    if (out->version == 0)
        pick_default(r, model, out);
    if (out->version != 0)
        pick_shadows(r, model, s, rand, out);
    snap_unref(s);
    return 0;
}

/* ---- Scores ---- */

static bool route_lists(const struct qv_route *rt, int64_t v)
{
    for (int i = 0; i < rt->n_weights; i++)
        if (rt->weights[i].t.version == v)
            return true;
    for (int i = 0; i < rt->n_compare; i++)
        if (rt->compare[i].version == v)
            return true;
    return false;
}

/* Keep at most QV_ROUTER_MAX_SCORES terms in e: first the versions the route lists
 * (rt may be NULL), then the others in the given order. */
static void keep_scores(struct model_entry *e, const struct qv_route *rt,
                        const struct qv_score_terms *terms, int n)
{
    e->n_scores = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n && e->n_scores < QV_ROUTER_MAX_SCORES; i++) {
            bool listed = rt != NULL && route_lists(rt, terms[i].version);
            if (listed == (pass == 0))
                e->scores[e->n_scores++] = terms[i];
        }
}

/* For the score policy, move rt's weights from the terms; true if they moved. */
static bool move_weights(const char *model, struct qv_route *rt, const struct qv_score_terms *terms,
                         int n)
{
    struct qv_score_terms arm[QV_ROUTE_MAX_TARGETS];
    double cur[QV_ROUTE_MAX_TARGETS], next[QV_ROUTE_MAX_TARGETS];
    int found = 0;

    for (int i = 0; i < rt->n_weights; i++) {
        cur[i] = rt->weights[i].weight;
        for (int j = 0; j < n; j++)
            if (terms[j].version == rt->weights[i].t.version) {
                arm[i] = terms[j];
                found++;
                break;
            }
    }
    /* A listed version without a window (not READY): wait rather than guess. */
    if (found < rt->n_weights || !qv_score_next_weights(&rt->score, arm, cur, rt->n_weights, next))
        return false;
    for (int i = 0; i < rt->n_weights; i++) {
        rt->weights[i].weight = next[i];
        qv_log(QV_LOG_INFO,
               "model=%s version=%" PRId64 " p=%.4f weight=%.2f->%.2f msg=\"score moved weight\"",
               model, arm[i].version, arm[i].p, cur[i], next[i]);
    }
    return true;
}

int qv_router_update_scores(qv_router *r, const char *model, const int64_t *versions,
                            const struct qv_window *w, int n)
{
    return qv_router_update_scores_ex(r, model, versions, w, n, true, NULL);
}

int qv_router_update_scores_ex(qv_router *r, const char *model, const int64_t *versions,
                               const struct qv_window *w, int n, bool move, bool *moved)
{
    struct qv_score_terms *terms = NULL;
    struct qv_score_cfg dflt;
    struct qv_route *rt = NULL;
    struct model_entry *e;
    struct snap *s;

    if (moved != NULL)
        *moved = false;
    if (n < 0 || (n > 0 && (versions == NULL || w == NULL)) || check_model(model, NULL) != 0)
        return QV_EINVAL;
    terms = qv_xmalloc(sizeof(*terms) * (size_t)(n > 0 ? n : 1));
    qv_score_cfg_default(&dflt);
    qv_mutex_lock(&r->write_mu);
    e = get_or_create_entry(r, model);
    if (e->cur != NULL) {
        rt = qv_xmalloc(sizeof(*rt));
        *rt = e->cur->rt;
    }
    qv_score_compute(rt != NULL ? &rt->score : &dflt, w, n, terms);
    for (int i = 0; i < n; i++)
        terms[i].version = versions[i];
    keep_scores(e, rt, terms, n);
    if (rt != NULL) {
        if (move && rt->policy == QV_POLICY_SCORE && move_weights(model, rt, terms, n) &&
            moved != NULL)
            *moved = true;
        s = snap_build(r, rt, e->cur);
        s->n_scores = e->n_scores;
        memcpy(s->scores, e->scores, sizeof(s->scores));
        publish(r, e, s);
    }
    qv_mutex_unlock(&r->write_mu);
    free(rt);
    free(terms);
    return 0;
}

int qv_router_get_scores(qv_router *r, const char *model, struct qv_score_terms *terms, int max)
{
    struct model_entry *e;
    int n = 0;

    qv_mutex_lock(&r->write_mu);
    e = find_entry(r, model);
    if (e != NULL) {
        n = e->n_scores < max ? e->n_scores : max;
        if (n > 0)
            memcpy(terms, e->scores, sizeof(terms[0]) * (size_t)n);
    }
    qv_mutex_unlock(&r->write_mu);
    return n;
}

/* ---- Bandit ---- */

/* The bandit of the current route of 'model', referenced through its snapshot *sp
 * (snap_unref when done), or NULL. */
static struct bandit *bandit_get(qv_router *r, const char *model, struct snap **sp)
{
    struct snap *s = snap_get(r, model, NULL);

    if (s != NULL && s->bandit == NULL) {
        snap_unref(s);
        s = NULL;
    }
    *sp = s;
    return s != NULL ? s->bandit : NULL;
}

int qv_router_feedback(qv_router *r, const char *model, int64_t version, double reward)
{
    struct snap *s;
    struct bandit *b = bandit_get(r, model, &s);
    int err = QV_ENOENT;

    if (b == NULL)
        return QV_ENOENT;
    if (!(reward >= 0.0)) /* also NaN */
        reward = 0.0;
    if (reward > 1.0)
        reward = 1.0;
    qv_mutex_lock(&b->mu);
    for (int i = 0; i < b->n_arms; i++) {
        struct arm *a = &b->arms[i];
        if (a->version != version)
            continue;
        a->alpha += reward;
        a->beta += 1.0 - reward;
        a->sum += reward;
        a->n++;
        err = 0;
        break;
    }
    qv_mutex_unlock(&b->mu);
    snap_unref(s);
    return err;
}

int qv_router_bandit_state_get(qv_router *r, const char *model, char **json)
{
    struct snap *s;
    struct bandit *b = bandit_get(r, model, &s);
    json_t *root = NULL, *arms = NULL;
    int err = 0;

    if (b == NULL)
        return QV_ENOENT;
    root = json_object();
    arms = json_array();
    if (root == NULL || arms == NULL) {
        json_decref(arms);
        err = QV_ENOMEM;
        goto out;
    }
    if (json_object_set_new(root, "algorithm",
                            json_string(b->algo == QV__BANDIT_UCB1 ? "ucb1" : "thompson")) != 0)
        err = QV_ENOMEM;
    qv_mutex_lock(&b->mu);
    for (int i = 0; i < b->n_arms; i++) {
        const struct arm *a = &b->arms[i];
        json_t *o = json_pack("{sIsfsfsfsI}", "version", (json_int_t)a->version, "alpha", a->alpha,
                              "beta", a->beta, "sum", a->sum, "n", (json_int_t)a->n);
        if (o == NULL || json_array_append_new(arms, o) != 0)
            err = QV_ENOMEM;
    }
    qv_mutex_unlock(&b->mu);
    if (json_object_set_new(root, "arms", arms) != 0)
        err = QV_ENOMEM;
    if (err == 0) {
        *json = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (*json == NULL)
            err = QV_ENOMEM;
    }
out:
    json_decref(root);
    snap_unref(s);
    return err;
}

int qv_router_bandit_state_set(qv_router *r, const char *model, const char *json, struct qv_diag *d)
{
    struct snap *s = NULL;
    struct bandit *b = NULL;
    struct arm in[QV_ROUTE_MAX_TARGETS * 4];
    json_error_t jerr;
    json_t *root = NULL, *arms, *o;
    size_t i, n = 0;
    int err = 0;

    root = json_loads(json != NULL ? json : "", 0, &jerr);
    if (root == NULL) {
        err = qv_fail(d, QV_EINVAL, "bandit state: invalid JSON: %s", jerr.text);
        goto out;
    }
    arms = json_object_get(root, "arms");
    if (!json_is_array(arms) || json_array_size(arms) > QV_ARRAY_LEN(in)) {
        err =
            qv_fail(d, QV_EINVAL, "arms: expected an array of at most %zu arms", QV_ARRAY_LEN(in));
        goto out;
    }
    json_array_foreach(arms, i, o)
    {
        json_int_t v = 0, cnt = 0;
        double alpha = 0, beta = 0, sum = 0;
        if (json_unpack(o, "{sI,sF,sF,sF,sI}", "version", &v, "alpha", &alpha, "beta", &beta, "sum",
                        &sum, "n", &cnt) != 0 ||
            v <= 0 || !(alpha > 0) || !(beta > 0) || !isfinite(alpha) || !isfinite(beta) ||
            !isfinite(sum) || sum < 0 || cnt < 0) {
            err = qv_fail(d, QV_EINVAL,
                          "arms[%zu]: expected {version > 0, alpha > 0, beta > 0, sum >= 0, "
                          "n >= 0}",
                          i);
            goto out;
        }
        in[n++] = (struct arm){
            .version = v, .alpha = alpha, .beta = beta, .sum = sum, .n = (uint64_t)cnt};
    }
    b = bandit_get(r, model, &s);
    if (b == NULL) {
        err = qv_fail(d, QV_ENOENT, "model %s has no bandit route", model);
        goto out;
    }
    qv_mutex_lock(&b->mu);
    for (int a = 0; a < b->n_arms; a++)
        for (size_t k = 0; k < n; k++)
            if (in[k].version == b->arms[a].version)
                b->arms[a] = in[k];
    qv_mutex_unlock(&b->mu);
out:
    snap_unref(s);
    json_decref(root);
    return err;
}

/* ---- Feedback join ---- */

static uint64_t fb_hash(const qv_router *r, const char *id, size_t len)
{
    return qv_siphash13(&r->fb.key, id, len);
}

/* The shard of hash h: the high bits, as the bucket uses the low ones. */
static struct fb_shard *fb_shard_of(qv_router *r, uint64_t h)
{
    return &r->fb.shards[(h >> 40) % r->fb.n_shards];
}

static void fb_unlink(struct fb_shard *sh, int32_t slot)
{
    int32_t *p = &sh->heads[sh->e[slot].hash & sh->mask];

    while (*p != slot && *p >= 0)
        p = &sh->e[*p].next;
    if (*p == slot)
        *p = sh->e[slot].next;
}

int qv_router_remember(qv_router *r, const char *id, const char *model, int64_t version)
{
    size_t id_len, model_len, chain = 0;
    uint64_t h, ts;
    int32_t slot, *last = NULL;
    struct fb_entry *f;
    struct fb_shard *sh;

    if (id == NULL || model == NULL)
        return QV_EINVAL;
    id_len = strlen(id);
    model_len = strlen(model);
    if (id_len == 0 || id_len >= QV_ROUTER_ID_MAX || model_len == 0 ||
        model_len >= QV_ROUTER_MODEL_MAX)
        return QV_EINVAL;
    h = fb_hash(r, id, id_len);
    sh = fb_shard_of(r, h);
    ts = qv_wall_ms();
    qv_mutex_lock(&sh->mu);
    /* A request id seen again replaces its older entry, so that a chain never
     * holds one id twice: repeated ids would otherwise make chains as long as
     * the ring and every eviction walk them. */
    for (int32_t *p = &sh->heads[h & sh->mask]; *p >= 0;) {
        struct fb_entry *old = &sh->e[*p];
        if (old->hash == h && strcmp(old->id, id) == 0) {
            old->used = false;
            *p = old->next;
            continue;
        }
        chain++;
        last = p;
        p = &old->next;
    }
    /* The chain is full (the key makes this a matter of chance, not of choice):
     * drop its oldest entry, the last one, so that every walk stays short. */
    if (chain >= FB_CHAIN_MAX && last != NULL) {
        sh->e[*last].used = false;
        *last = sh->e[*last].next;
    }
    slot = (int32_t)sh->head;
    f = &sh->e[slot];
    if (f->used)
        fb_unlink(sh, slot);
    memcpy(f->id, id, id_len + 1);
    memcpy(f->model, model, model_len + 1);
    f->version = version;
    f->cls = -1;
    f->ts_ms = ts;
    f->hash = h;
    f->used = true;
    f->fed = false;
    f->next = sh->heads[h & sh->mask];
    sh->heads[h & sh->mask] = slot;
    sh->head = (sh->head + 1) % sh->cap;
    sh->written++;
    qv_mutex_unlock(&sh->mu);
    return 0;
}

/* The shard of 'id' locked, and the index of its entry there (or -1). NULL when
 * the id cannot have been remembered. Unlock the shard when done. */
static struct fb_shard *fb_find_lock(qv_router *r, const char *id, int32_t *out)
{
    size_t len;
    uint64_t h;
    struct fb_shard *sh;
    int32_t i;
    int steps = 0;

    if (id == NULL || id[0] == '\0' || (len = strlen(id)) >= QV_ROUTER_ID_MAX)
        return NULL;
    h = fb_hash(r, id, len);
    sh = fb_shard_of(r, h);
    qv_mutex_lock(&sh->mu);
    for (i = sh->heads[h & sh->mask]; i >= 0 && steps <= FB_CHAIN_MAX; i = sh->e[i].next, steps++)
        if (sh->e[i].hash == h && strcmp(sh->e[i].id, id) == 0)
            break;
    *out = steps <= FB_CHAIN_MAX ? i : -1;
    return sh;
}

/* A request this ring does not know, taken from the source (another node answered it). */
static int fb_import(qv_router *r, const char *id)
{
    char model[QV_ROUTER_MODEL_MAX];
    int64_t version = 0;
    int cls = -1;

    if (r->fb.source == NULL || r->fb.source(r->fb.source_ud, id, model, &version, &cls) != 0)
        return QV_ENOENT;
    if (qv_router_remember(r, id, model, version) != 0)
        return QV_ENOENT;
    if (cls >= 0)
        qv_router_set_outcome(r, id, cls);
    return 0;
}

static int lookup_local(qv_router *r, const char *id, char *model_out, int64_t *version,
                        int *cls);

int qv_router_lookup_outcome(qv_router *r, const char *id, char *model_out, int64_t *version,
                             int *cls)
{
    int err = lookup_local(r, id, model_out, version, cls);

    if (err == QV_ENOENT && fb_import(r, id) == 0)
        err = lookup_local(r, id, model_out, version, cls);
    return err;
}

void qv_router_set_feedback_source(qv_router *r, qv_router_fb_source_fn fn, void *ud)
{
    r->fb.source_ud = ud;
    r->fb.source = fn;
}

size_t qv_router_feedback_export(qv_router *r, uint64_t cutoff_ms, struct qv_router_fb_entry *out,
                                 size_t max)
{
    size_t n = 0;

    for (size_t k = 0; k < r->fb.n_shards && n < max; k++) {
        struct fb_shard *sh = &r->fb.shards[k];

        qv_mutex_lock(&sh->mu);
        if (sh->written - sh->exported > sh->cap) /* overwritten before export: lost */
            sh->exported = sh->written - sh->cap;
        while (sh->exported < sh->written && n < max) {
            const struct fb_entry *f = &sh->e[sh->exported % sh->cap];

            if (f->used && f->ts_ms > cutoff_ms)
                break; /* too young: its outcome may not be recorded yet */
            if (f->used) {
                memcpy(out[n].id, f->id, sizeof(out[n].id));
                memcpy(out[n].model, f->model, sizeof(out[n].model));
                out[n].version = f->version;
                out[n].cls = f->cls;
                out[n].ts_ms = f->ts_ms;
                n++;
            }
            sh->exported++;
        }
        qv_mutex_unlock(&sh->mu);
    }
    return n;
}

static int lookup_local(qv_router *r, const char *id, char *model_out, int64_t *version,
                        int *cls)
{
    int32_t i;
    struct fb_shard *sh = fb_find_lock(r, id, &i);

    if (sh == NULL)
        return QV_ENOENT;
    if (i >= 0) {
        const struct fb_entry *f = &sh->e[i];
        if (model_out != NULL)
            memcpy(model_out, f->model, strlen(f->model) + 1);
        if (version != NULL)
            *version = f->version;
        if (cls != NULL)
            *cls = f->cls;
    }
    qv_mutex_unlock(&sh->mu);
    return i >= 0 ? 0 : QV_ENOENT;
}

int qv_router_lookup(qv_router *r, const char *id, char *model_out, int64_t *version)
{
    return qv_router_lookup_outcome(r, id, model_out, version, NULL);
}

int qv_router_set_outcome(qv_router *r, const char *id, int cls)
{
    int32_t i;
    struct fb_shard *sh = fb_find_lock(r, id, &i);

    if (sh == NULL)
        return QV_ENOENT;
    if (i >= 0)
        sh->e[i].cls = cls;
    qv_mutex_unlock(&sh->mu);
    return i >= 0 ? 0 : QV_ENOENT;
}

int qv_router_feedback_claim(qv_router *r, const char *id, const char *model)
{
    int32_t i;
    int err = QV_ENOENT;
    struct fb_shard *sh = fb_find_lock(r, id, &i);

    if (sh == NULL)
        return QV_ENOENT;
    if (i < 0 && r->fb.source != NULL) {
        qv_mutex_unlock(&sh->mu);
        if (fb_import(r, id) != 0)
            return QV_ENOENT;
        sh = fb_find_lock(r, id, &i);
    }
    if (i >= 0 && (model == NULL || strcmp(sh->e[i].model, model) == 0)) {
        err = sh->e[i].fed ? QV_ECONFLICT : 0;
        sh->e[i].fed = true;
    }
    qv_mutex_unlock(&sh->mu);
    return err;
}

void qv_router_feedback_unclaim(qv_router *r, const char *id, const char *model)
{
    int32_t i;
    struct fb_shard *sh = fb_find_lock(r, id, &i);

    if (sh == NULL)
        return;
    if (i >= 0 && (model == NULL || strcmp(sh->e[i].model, model) == 0))
        sh->e[i].fed = false;
    qv_mutex_unlock(&sh->mu);
}

/* ---- Test hooks (router_int.h) ---- */

void qv__router_feedback_set_key(qv_router *r, const struct qv_sipkey *key)
{
    /* Only before any remember: the entries already there were hashed with the old key. */
    r->fb.key = *key;
}

size_t qv__router_feedback_longest_chain(qv_router *r)
{
    size_t longest = 0;

    for (size_t k = 0; k < r->fb.n_shards; k++) {
        struct fb_shard *sh = &r->fb.shards[k];
        qv_mutex_lock(&sh->mu);
        for (size_t b = 0; b <= sh->mask; b++) {
            size_t n = 0;
            for (int32_t i = sh->heads[b]; i >= 0; i = sh->e[i].next)
                n++;
            if (n > longest)
                longest = n;
        }
        qv_mutex_unlock(&sh->mu);
    }
    return longest;
}
