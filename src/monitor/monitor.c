/* SPDX-License-Identifier: MIT
 *
 * monitor/monitor.c -- the version registry, the lock-free recorders, the
 * snapshots and the tick ring.
 *
 * Invariant: the hot path (qv_vstats_* recorders) never takes a lock and
 * never allocates. Each recording thread writes relaxed atomics in its own
 * shard (a thread picks a shard once, round robin, so up to
 * QV_MONITOR_SHARDS threads never share a cache line); readers sum the
 * shards. Every counter only grows, so each one read later is never smaller.
 * Registry changes (new versions, pairs) take the monitor's mutex. A version
 * record is freed when it is forgotten and no longer held (the engine holds
 * each version's record for the version's life, list readers for their
 * walk), which is what lets the data plane keep raw pointers.
 */
#include "monitor_int.h"

#define QV_LOG_MODULE "monitor"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define QV_MONITOR_SHARDS 16
#define RING_FINE 64             /* one snapshot per tick */
#define RING_COARSE 64           /* one snapshot per COARSE_NS */
#define COARSE_NS 10000000000ull /* 10 s */
#define JITTER_NS 100000000ull   /* 100 ms of slack for tick timing */

/* ---- Bucket layout ---- */

/* R10 preferred numbers per decade, times m ns. */
#define DECADE(m)                                                                                  \
    10ull * (m), 125ull * (m) / 10, 16ull * (m), 20ull * (m), 25ull * (m), 32ull * (m),            \
        40ull * (m), 50ull * (m), 63ull * (m), 80ull * (m)

/* 61 real upper bounds (10 us .. 10 s) padded to 63 for the branch-free
 * search below. */
static const uint64_t lat_upper[63] = {
    DECADE(1000ull),    DECADE(10000ull),    DECADE(100000ull),
    DECADE(1000000ull), DECADE(10000000ull), DECADE(100000000ull),
    10000000000ull,     UINT64_MAX,          UINT64_MAX,
};

int qv__monitor_lat_bucket(uint64_t ns)
{
    unsigned i = 0;

    /* Counts the bounds below ns: a lower bound over 63 entries in six steps
     * the compiler turns into conditional moves. */
    for (unsigned step = 32; step > 0; step >>= 1)
        i += (lat_upper[i + step - 1] < ns) ? step : 0;
    return (int)i;
}

uint64_t qv_monitor_lat_upper_ns(int i)
{
    if (i < 0 || i >= QV_MONITOR_LAT_BUCKETS - 1)
        return UINT64_MAX;
    return lat_upper[i];
}

int qv__monitor_batch_bucket(uint32_t n)
{
    int i = 0;

    while (i < QV_MONITOR_BATCH_BUCKETS - 1 && n > (1u << i))
        i++;
    return i;
}

uint32_t qv_monitor_batch_upper(int i)
{
    if (i < 0 || i >= QV_MONITOR_BATCH_BUCKETS - 1)
        return UINT32_MAX;
    return 1u << i;
}

/* ---- Outcomes ---- */

static const char *const outcome_names[QV_OUTCOME_COUNT] = {
    [QV_OUTCOME_OK] = "ok",           [QV_OUTCOME_BAD_INPUT] = "bad_input",
    [QV_OUTCOME_BACKEND] = "backend", [QV_OUTCOME_OVERLOAD] = "overload",
    [QV_OUTCOME_TIMEOUT] = "timeout",
};

const char *qv_outcome_name(enum qv_outcome o)
{
    if ((unsigned)o >= QV_OUTCOME_COUNT)
        return "unknown";
    return outcome_names[o];
}

enum qv_outcome qv_outcome_from_err(int err)
{
    switch (err) {
    case QV_OK:
        return QV_OUTCOME_OK;
    case QV_EINVAL:
    case QV_E2BIG:
    case QV_ENOENT:
    case QV_EUNAUTH:
    case QV_EFORBIDDEN:
    case QV_ECONFLICT:
        return QV_OUTCOME_BAD_INPUT;
    case QV_EOVERLOAD:
    case QV_EBUSY:
    case QV_EUNAVAIL:
    case QV_ESHUTDOWN:
    case QV_ENOMEM:
        return QV_OUTCOME_OVERLOAD;
    case QV_ETIMEDOUT:
        return QV_OUTCOME_TIMEOUT;
    default:
        return QV_OUTCOME_BACKEND;
    }
}

/* ---- Types ---- */

typedef atomic_uint_fast64_t counter;

struct hist {
    counter buckets[QV_MONITOR_LAT_BUCKETS];
    counter sum_ns;
};

/* One thread's share of a version's counters. Aligned so that two shards
 * never share a cache line. */
struct shard {
    _Alignas(64) counter outcomes[QV_OUTCOME_COUNT];
    struct hist total, queue, compute;
    counter batch_buckets[QV_MONITOR_BATCH_BUCKETS];
    counter batch_items;
    counter cpu_ns;
    counter exec_inline, exec_queued;
    atomic_int_fast64_t inflight; /* sum of deltas recorded by this shard */
};

struct ring {
    struct qv_vstats_snap *slots; /* cap entries, heap */
    unsigned cap;
    unsigned len;  /* valid entries, <= cap */
    unsigned head; /* next slot to write */
};

struct qv_vstats {
    struct shard shards[QV_MONITOR_SHARDS];

    /* Gauges and rare events, shared by all threads. */
    _Alignas(64) atomic_int_fast64_t queue_depth;
    counter memory_bytes;
    counter shadow_dropped;
    counter feedback_count;
    counter feedback_sum_bits; /* double, as bits */
    counter route_weight_bits; /* double, as bits */
    atomic_bool has_route_weight;

    /* Immutable after creation. */
    char *model;
    int64_t version;
    uint64_t created_ns;

    atomic_bool gone; /* forgotten: not exported */
    /* Holders (qv_monitor_hold, and readers working on a list copy); a
     * forgotten record is freed when the last one releases it. Guarded by
     * the monitor's mu. */
    unsigned holds;
    atomic_bool off;  /* recording switched off (qv_monitor_set_recording) */

    qv_mutex ring_mu; /* guards fine and coarse */
    struct ring fine, coarse;
};

struct qv_pairstats {
    char *model;            /* immutable */
    int64_t primary, other; /* immutable */
    atomic_bool gone;
    counter count, agreements;
    counter primary_ns, other_ns;
    counter diff_sum_bits; /* double, as bits */
    counter diff_max_bits; /* double, as bits */
};

struct qv_monitor {
    atomic_bool off;                          /* recording switched off for every version */
    counter refusals[QV__MONITOR_N_REFUSALS]; /* by qv__monitor_refusal_codes; rare */
    qv_mutex mu;                              /* guards the four fields below */
    qv_vstats **versions;                     /* sorted by (model, version) */
    size_t nversions, capversions;
    qv_pairstats **pairs; /* sorted by (model, primary, other) */
    size_t npairs, cappairs;
};

/* ---- Small helpers ---- */

static uint64_t dbits(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof(d));
    return d;
}

static void add_double(counter *c, double v)
{
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(c, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static void max_double(counter *c, double v)
{
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed);

    while (v > bitsd(old) && !atomic_compare_exchange_weak_explicit(
                                 c, &old, dbits(v), memory_order_relaxed, memory_order_relaxed))
        ;
}

static uint64_t load(const counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void bump(counter *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* The calling thread's shard index, assigned once round robin. The counter
 * is process-wide on purpose: it spreads threads over shards of every
 * monitor alike, and holds no state beyond that. */
static atomic_uint shard_next;
static _Thread_local unsigned shard_mine; /* index + 1; 0 = not yet assigned */

static struct shard *my_shard(qv_vstats *s)
{
    unsigned i = shard_mine;

    if (i == 0) {
        i = atomic_fetch_add_explicit(&shard_next, 1, memory_order_relaxed) % QV_MONITOR_SHARDS + 1;
        shard_mine = i;
    }
    return &s->shards[i - 1];
}

/* ---- Hot path ---- */

static void hist_record(struct hist *h, uint64_t ns)
{
    bump(&h->buckets[qv__monitor_lat_bucket(ns)], 1);
    bump(&h->sum_ns, ns);
}

void qv_vstats_request(qv_vstats *s, enum qv_outcome o, uint64_t queue_ns, uint64_t compute_ns,
                       uint64_t total_ns)
{
    struct shard *sh;

    if (atomic_load_explicit(&s->off, memory_order_relaxed))
        return;
    sh = my_shard(s);
    if ((unsigned)o >= QV_OUTCOME_COUNT)
        o = QV_OUTCOME_BACKEND;
    bump(&sh->outcomes[o], 1);
    if (o == QV_OUTCOME_BAD_INPUT || o == QV_OUTCOME_OVERLOAD)
        return;
    hist_record(&sh->total, total_ns);
    if (queue_ns != 0)
        hist_record(&sh->queue, queue_ns);
    if (compute_ns != 0)
        hist_record(&sh->compute, compute_ns);
}

void qv_vstats_batch(qv_vstats *s, uint32_t batch_size, uint64_t cpu_ns)
{
    struct shard *sh;

    if (atomic_load_explicit(&s->off, memory_order_relaxed))
        return;
    sh = my_shard(s);
    bump(&sh->batch_buckets[qv__monitor_batch_bucket(batch_size)], 1);
    bump(&sh->batch_items, batch_size);
    bump(&sh->cpu_ns, cpu_ns);
}

void qv_vstats_execution(qv_vstats *s, bool inline_path)
{
    struct shard *sh;

    if (atomic_load_explicit(&s->off, memory_order_relaxed))
        return;
    sh = my_shard(s);
    bump(inline_path ? &sh->exec_inline : &sh->exec_queued, 1);
}

void qv_vstats_shadow_dropped(qv_vstats *s)
{
    if (atomic_load_explicit(&s->off, memory_order_relaxed))
        return;
    bump(&s->shadow_dropped, 1);
}

void qv_vstats_inflight(qv_vstats *s, int delta)
{
    if (atomic_load_explicit(&s->off, memory_order_relaxed))
        return;
    atomic_fetch_add_explicit(&my_shard(s)->inflight, delta, memory_order_relaxed);
}

void qv_vstats_queue_depth(qv_vstats *s, int64_t depth)
{
    if (atomic_load_explicit(&s->off, memory_order_relaxed))
        return;
    atomic_store_explicit(&s->queue_depth, depth, memory_order_relaxed);
}

void qv_vstats_memory(qv_vstats *s, uint64_t bytes)
{
    atomic_store_explicit(&s->memory_bytes, bytes, memory_order_relaxed);
}

void qv_vstats_feedback(qv_vstats *s, double reward)
{
    add_double(&s->feedback_sum_bits, reward);
    bump(&s->feedback_count, 1);
}

void qv_vstats_feedback_restore(qv_vstats *s, uint64_t count, double reward_sum)
{
    add_double(&s->feedback_sum_bits, reward_sum);
    bump(&s->feedback_count, count);
}

void qv_vstats_route_weight(qv_vstats *s, double weight)
{
    atomic_store_explicit(&s->route_weight_bits, dbits(weight), memory_order_relaxed);
    atomic_store_explicit(&s->has_route_weight, true, memory_order_release);
}

void qv_pairstats_record(qv_pairstats *p, bool agree, double abs_diff_mean, double abs_diff_max,
                         uint64_t primary_ns, uint64_t other_ns)
{
    bump(&p->count, 1);
    if (agree)
        bump(&p->agreements, 1);
    bump(&p->primary_ns, primary_ns);
    bump(&p->other_ns, other_ns);
    add_double(&p->diff_sum_bits, abs_diff_mean);
    max_double(&p->diff_max_bits, abs_diff_max);
}

/* ---- Snapshots and windows ---- */

void qv_vstats_snapshot(const qv_vstats *s, struct qv_vstats_snap *out)
{
    int64_t inflight = 0;

    memset(out, 0, sizeof(*out));
    for (int k = 0; k < QV_MONITOR_SHARDS; k++) {
        const struct shard *sh = &s->shards[k];

        for (int o = 0; o < QV_OUTCOME_COUNT; o++)
            out->outcomes[o] += load(&sh->outcomes[o]);
        for (int i = 0; i < QV_MONITOR_LAT_BUCKETS; i++) {
            out->total.buckets[i] += load(&sh->total.buckets[i]);
            out->queue.buckets[i] += load(&sh->queue.buckets[i]);
            out->compute.buckets[i] += load(&sh->compute.buckets[i]);
        }
        out->total.sum_ns += load(&sh->total.sum_ns);
        out->queue.sum_ns += load(&sh->queue.sum_ns);
        out->compute.sum_ns += load(&sh->compute.sum_ns);
        for (int i = 0; i < QV_MONITOR_BATCH_BUCKETS; i++)
            out->batch_buckets[i] += load(&sh->batch_buckets[i]);
        out->batch_items += load(&sh->batch_items);
        out->cpu_ns += load(&sh->cpu_ns);
        out->exec_inline += load(&sh->exec_inline);
        out->exec_queued += load(&sh->exec_queued);
        inflight += (int64_t)atomic_load_explicit(&sh->inflight, memory_order_relaxed);
    }
    /* A request may start on one shard and end on another; between the two
     * reads the sum can dip below zero for a moment. */
    out->inflight = inflight < 0 ? 0 : inflight;
    out->queue_depth = (int64_t)atomic_load_explicit(&s->queue_depth, memory_order_relaxed);
    out->memory_bytes = load(&s->memory_bytes);
    out->shadow_dropped = load(&s->shadow_dropped);
    out->feedback_count = load(&s->feedback_count);
    out->feedback_reward_sum = bitsd(load(&s->feedback_sum_bits));
    out->created_ns = s->created_ns;
    out->t_ns = qv_now_ns();
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

uint64_t qv_lat_hist_count(const struct qv_lat_hist *h)
{
    uint64_t n = 0;

    for (int i = 0; i < QV_MONITOR_LAT_BUCKETS; i++)
        n += h->buckets[i];
    return n;
}

void qv_lat_hist_diff(const struct qv_lat_hist *newer, const struct qv_lat_hist *older,
                      struct qv_lat_hist *d)
{
    for (int i = 0; i < QV_MONITOR_LAT_BUCKETS; i++)
        d->buckets[i] = sub0(newer->buckets[i], older->buckets[i]);
    d->sum_ns = sub0(newer->sum_ns, older->sum_ns);
}

double qv_lat_hist_quantile_ms(const struct qv_lat_hist *h, double q)
{
    uint64_t n = qv_lat_hist_count(h);
    uint64_t cum = 0;
    double rank;

    if (n == 0)
        return 0.0;
    if (q < 0.0)
        q = 0.0;
    if (q > 1.0)
        q = 1.0;
    rank = q * (double)n;
    for (int i = 0; i < QV_MONITOR_LAT_BUCKETS; i++) {
        uint64_t c = h->buckets[i];

        if (c == 0 || (double)(cum + c) < rank) {
            cum += c;
            continue;
        }
        if (i == QV_MONITOR_LAT_BUCKETS - 1)
            return (double)lat_upper[i - 1] / 1e6;
        {
            double lo = i == 0 ? 0.0 : (double)lat_upper[i - 1];
            double hi = (double)lat_upper[i];

            return (lo + (hi - lo) * ((rank - (double)cum) / (double)c)) / 1e6;
        }
    }
    return (double)lat_upper[QV_MONITOR_LAT_BUCKETS - 2] / 1e6; /* not reached */
}

void qv_vstats_window(const struct qv_vstats_snap *newer, const struct qv_vstats_snap *older,
                      struct qv_window *w)
{
    uint64_t d[QV_OUTCOME_COUNT];
    uint64_t start = older->t_ns != 0 ? older->t_ns : newer->created_ns;
    struct qv_lat_hist lat;
    uint64_t batches = 0, items, cpu;

    memset(w, 0, sizeof(*w));
    w->seconds = newer->t_ns > start ? (double)(newer->t_ns - start) / 1e9 : 0.0;
    for (int o = 0; o < QV_OUTCOME_COUNT; o++) {
        d[o] = sub0(newer->outcomes[o], older->outcomes[o]);
        w->requests += d[o];
    }
    w->ok = d[QV_OUTCOME_OK];
    w->bad_input = d[QV_OUTCOME_BAD_INPUT];
    w->errors = d[QV_OUTCOME_BACKEND] + d[QV_OUTCOME_OVERLOAD] + d[QV_OUTCOME_TIMEOUT];
    w->overload = d[QV_OUTCOME_OVERLOAD];
    w->answered = d[QV_OUTCOME_OK] + d[QV_OUTCOME_BACKEND] + d[QV_OUTCOME_TIMEOUT];
    w->error_rate = w->requests ? (double)w->errors / (double)w->requests : 0.0;

    qv_lat_hist_diff(&newer->total, &older->total, &lat);
    w->latency_count = qv_lat_hist_count(&lat);
    if (w->latency_count) {
        w->mean_ms = (double)lat.sum_ns / (double)w->latency_count / 1e6;
        w->p50_ms = qv_lat_hist_quantile_ms(&lat, 0.50);
        w->p95_ms = qv_lat_hist_quantile_ms(&lat, 0.95);
        w->p99_ms = qv_lat_hist_quantile_ms(&lat, 0.99);
    }

    for (int i = 0; i < QV_MONITOR_BATCH_BUCKETS; i++)
        batches += sub0(newer->batch_buckets[i], older->batch_buckets[i]);
    items = sub0(newer->batch_items, older->batch_items);
    cpu = sub0(newer->cpu_ns, older->cpu_ns);
    w->batches = batches;
    w->mean_batch_size = batches ? (double)items / (double)batches : 0.0;
    w->cpu_ms_per_req = items ? (double)cpu / (double)items / 1e6 : 0.0;
    w->memory_bytes = newer->memory_bytes;
}

/* ---- Registry ---- */

static int cmp_key(const char *model_a, int64_t a, const char *model_b, int64_t b)
{
    int c = strcmp(model_a, model_b);

    if (c != 0)
        return c;
    return a < b ? -1 : a > b;
}

/* Index of (model, version) in m->versions, or of where it would go;
 * *found says which. */
static size_t version_pos(const qv_monitor *m, const char *model, int64_t version, bool *found)
    QV_REQUIRES(m->mu)
{
    size_t lo = 0, hi = m->nversions;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(m->versions[mid]->model, m->versions[mid]->version, model, version);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int cmp_pair(const qv_pairstats *p, const char *model, int64_t primary, int64_t other)
{
    int c = cmp_key(p->model, p->primary, model, primary);

    if (c != 0)
        return c;
    return p->other < other ? -1 : p->other > other;
}

static size_t pair_pos(const qv_monitor *m, const char *model, int64_t primary, int64_t other,
                       bool *found) QV_REQUIRES(m->mu)
{
    size_t lo = 0, hi = m->npairs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_pair(m->pairs[mid], model, primary, other);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void ring_init(struct ring *r, unsigned cap)
{
    r->slots = qv_xcalloc(cap, sizeof(*r->slots));
    r->cap = cap;
    r->len = 0;
    r->head = 0;
}

static void ring_push(struct ring *r, const struct qv_vstats_snap *snap)
{
    r->slots[r->head] = *snap;
    r->head = (r->head + 1) % r->cap;
    if (r->len < r->cap)
        r->len++;
}

/* The k-th newest entry (k = 0 is the newest); k < len. */
static const struct qv_vstats_snap *ring_at(const struct ring *r, unsigned k)
{
    return &r->slots[(r->head + r->cap - 1 - k) % r->cap];
}

static qv_vstats *vstats_new(const char *model, int64_t version)
{
    qv_vstats *s = aligned_alloc(64, sizeof(*s));
    struct qv_vstats_snap zero;

    if (s == NULL) {
        qv_log(QV_LOG_ERROR, "bytes=%zu msg=\"out of memory for version stats\"", sizeof(*s));
        abort();
    }
    /* All-zero bytes are the zero value of every atomic used here. */
    memset(s, 0, sizeof(*s));
    s->model = qv_xstrdup(model);
    s->version = version;
    s->created_ns = qv_now_ns();
    qv_mutex_init(&s->ring_mu);
    ring_init(&s->fine, RING_FINE);
    ring_init(&s->coarse, RING_COARSE);
    /* The rings start with the state at creation (all zero), so a window
     * asked for before the history is long enough starts there. */
    memset(&zero, 0, sizeof(zero));
    zero.t_ns = s->created_ns;
    zero.created_ns = s->created_ns;
    ring_push(&s->fine, &zero);
    ring_push(&s->coarse, &zero);
    return s;
}

static void vstats_free(qv_vstats *s)
{
    qv_mutex_fini(&s->ring_mu);
    free(s->fine.slots);
    free(s->coarse.slots);
    free(s->model);
    free(s);
}

/* Frees the record at pos if it is forgotten and nobody holds it. */
static void drop_if_unused(qv_monitor *m, size_t pos) QV_REQUIRES(m->mu)
{
    qv_vstats *s = m->versions[pos];

    if (s->holds > 0 || !atomic_load_explicit(&s->gone, memory_order_relaxed))
        return;
    memmove(&m->versions[pos], &m->versions[pos + 1],
            (m->nversions - pos - 1) * sizeof(*m->versions));
    m->nversions--;
    vstats_free(s);
}

/* Releases one hold on s (found by its key: the record is alive while held). */
static void release_locked(qv_monitor *m, qv_vstats *s) QV_REQUIRES(m->mu)
{
    bool found;
    size_t pos = version_pos(m, s->model, s->version, &found);

    if (!found || m->versions[pos] != s || s->holds == 0)
        return;
    s->holds--;
    drop_if_unused(m, pos);
}

int qv_monitor_create(qv_monitor **out)
{
    qv_monitor *m = qv_xcalloc(1, sizeof(*m));

    qv_mutex_init(&m->mu);
    *out = m;
    return QV_OK;
}

void qv_monitor_destroy(qv_monitor *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nversions; i++)
        vstats_free(m->versions[i]);
    for (size_t i = 0; i < m->npairs; i++) {
        free(m->pairs[i]->model);
        free(m->pairs[i]);
    }
    free(m->versions);
    free(m->pairs);
    qv_mutex_fini(&m->mu);
    free(m);
}

void qv_monitor_set_recording(qv_monitor *m, bool on)
{
    qv_mutex_lock(&m->mu);
    atomic_store(&m->off, !on);
    for (size_t i = 0; i < m->nversions; i++)
        atomic_store(&m->versions[i]->off, !on);
    qv_mutex_unlock(&m->mu);
}

static qv_vstats *version_get(qv_monitor *m, const char *model, int64_t version, bool hold)
{
    qv_vstats *s, *fresh = NULL;
    bool found;
    size_t pos;

    /* Look first; allocate outside the lock only when the version is new. */
    qv_mutex_lock(&m->mu);
    pos = version_pos(m, model, version, &found);
    if (found) {
        s = m->versions[pos];
        atomic_store_explicit(&s->gone, false, memory_order_relaxed);
        if (hold)
            s->holds++;
        qv_mutex_unlock(&m->mu);
        return s;
    }
    qv_mutex_unlock(&m->mu);
    fresh = vstats_new(model, version);
    atomic_store_explicit(&fresh->off, atomic_load(&m->off), memory_order_relaxed);

    qv_mutex_lock(&m->mu);
    pos = version_pos(m, model, version, &found);
    if (found) {
        s = m->versions[pos]; /* another thread created it meanwhile */
    } else {
        if (m->nversions == m->capversions) {
            m->capversions = m->capversions ? 2 * m->capversions : 16;
            m->versions = qv_xrealloc(m->versions, m->capversions * sizeof(*m->versions));
        }
        memmove(&m->versions[pos + 1], &m->versions[pos],
                (m->nversions - pos) * sizeof(*m->versions));
        m->versions[pos] = fresh;
        m->nversions++;
        s = fresh;
        fresh = NULL;
    }
    atomic_store_explicit(&s->gone, false, memory_order_relaxed);
    if (hold)
        s->holds++;
    qv_mutex_unlock(&m->mu);

    if (fresh != NULL)
        vstats_free(fresh);
    return s;
}

qv_vstats *qv_monitor_version(qv_monitor *m, const char *model, int64_t version)
{
    return version_get(m, model, version, false);
}

qv_vstats *qv_monitor_hold(qv_monitor *m, const char *model, int64_t version)
{
    return version_get(m, model, version, true);
}

void qv_monitor_release(qv_monitor *m, qv_vstats *s)
{
    if (s == NULL)
        return;
    qv_mutex_lock(&m->mu);
    release_locked(m, s);
    qv_mutex_unlock(&m->mu);
}

size_t qv_monitor_records(qv_monitor *m)
{
    size_t n;

    qv_mutex_lock(&m->mu);
    n = m->nversions;
    qv_mutex_unlock(&m->mu);
    return n;
}

qv_vstats *qv_monitor_find_hold(qv_monitor *m, const char *model, int64_t version)
{
    qv_vstats *s = NULL;
    bool found;
    size_t pos;

    qv_mutex_lock(&m->mu);
    pos = version_pos(m, model, version, &found);
    if (found) {
        s = m->versions[pos];
        s->holds++;
    }
    qv_mutex_unlock(&m->mu);
    return s;
}

const int qv__monitor_refusal_codes[QV__MONITOR_N_REFUSALS] = {413, 429, 503};

void qv_monitor_count_refusal(qv_monitor *m, int http_status)
{
    for (int i = 0; i < QV__MONITOR_N_REFUSALS; i++)
        if (qv__monitor_refusal_codes[i] == http_status)
            atomic_fetch_add_explicit(&m->refusals[i], 1, memory_order_relaxed);
}

void qv__monitor_refusals(qv_monitor *m, uint64_t out[QV__MONITOR_N_REFUSALS])
{
    for (int i = 0; i < QV__MONITOR_N_REFUSALS; i++)
        out[i] = atomic_load_explicit(&m->refusals[i], memory_order_relaxed);
}

int qv_monitor_each(qv_monitor *m, void (*fn)(void *ud, const char *model, int64_t version),
                    void *ud)
{
    qv_vstats **v = NULL;
    size_t n = 0;
    int err = qv__monitor_list_versions(m, &v, &n);

    if (err)
        return err;
    /* The list holds each record until unlisted; model and version are immutable. */
    for (size_t i = 0; i < n; i++)
        fn(ud, v[i]->model, v[i]->version);
    qv__monitor_unlist_versions(m, v, n);
    return QV_OK;
}

void qv_monitor_forget(qv_monitor *m, const char *model, int64_t version)
{
    bool found;
    size_t pos;

    qv_mutex_lock(&m->mu);
    pos = version_pos(m, model, version, &found);
    if (found) {
        atomic_store_explicit(&m->versions[pos]->gone, true, memory_order_relaxed);
        drop_if_unused(m, pos);
    }
    for (size_t i = 0; i < m->npairs; i++) {
        qv_pairstats *p = m->pairs[i];

        if (strcmp(p->model, model) == 0 && (p->primary == version || p->other == version))
            atomic_store_explicit(&p->gone, true, memory_order_relaxed);
    }
    qv_mutex_unlock(&m->mu);
}

qv_pairstats *qv_monitor_pair(qv_monitor *m, const char *model, int64_t primary, int64_t other)
{
    qv_pairstats *p;
    bool found;
    size_t pos;

    qv_mutex_lock(&m->mu);
    pos = pair_pos(m, model, primary, other, &found);
    if (found) {
        p = m->pairs[pos];
        atomic_store_explicit(&p->gone, false, memory_order_relaxed);
        qv_mutex_unlock(&m->mu);
        return p;
    }
    qv_mutex_unlock(&m->mu);

    /* Allocate outside the lock, then insert unless another thread won. */
    {
        qv_pairstats *fresh = qv_xcalloc(1, sizeof(*fresh));

        fresh->model = qv_xstrdup(model);
        fresh->primary = primary;
        fresh->other = other;

        qv_mutex_lock(&m->mu);
        pos = pair_pos(m, model, primary, other, &found);
        if (found) {
            p = m->pairs[pos];
        } else {
            if (m->npairs == m->cappairs) {
                m->cappairs = m->cappairs ? 2 * m->cappairs : 16;
                m->pairs = qv_xrealloc(m->pairs, m->cappairs * sizeof(*m->pairs));
            }
            memmove(&m->pairs[pos + 1], &m->pairs[pos], (m->npairs - pos) * sizeof(*m->pairs));
            m->pairs[pos] = fresh;
            m->npairs++;
            p = fresh;
            fresh = NULL;
        }
        atomic_store_explicit(&p->gone, false, memory_order_relaxed);
        qv_mutex_unlock(&m->mu);
        if (fresh != NULL) {
            free(fresh->model);
            free(fresh);
        }
    }
    return p;
}

void qv_monitor_agreement(qv_monitor *m, const char *model, int64_t primary, int64_t other,
                          bool agree, double abs_diff_mean, double abs_diff_max,
                          uint64_t primary_ns, uint64_t other_ns)
{
    qv_pairstats_record(qv_monitor_pair(m, model, primary, other), agree, abs_diff_mean,
                        abs_diff_max, primary_ns, other_ns);
}

void qv__pairstats_read(const qv_pairstats *p, struct qv_pair_summary *out, uint64_t *primary_ns,
                        uint64_t *other_ns, double *abs_diff_sum)
{
    uint64_t pns = load(&p->primary_ns), ons = load(&p->other_ns);
    double sum = bitsd(load(&p->diff_sum_bits));

    memset(out, 0, sizeof(*out));
    out->primary = p->primary;
    out->other = p->other;
    out->count = load(&p->count);
    out->agreements = load(&p->agreements);
    out->abs_diff_max = bitsd(load(&p->diff_max_bits));
    if (out->count) {
        out->agreement_rate = (double)out->agreements / (double)out->count;
        out->abs_diff_mean = sum / (double)out->count;
        out->primary_ms_mean = (double)pns / (double)out->count / 1e6;
        out->other_ms_mean = (double)ons / (double)out->count / 1e6;
    }
    if (primary_ns != NULL)
        *primary_ns = pns;
    if (other_ns != NULL)
        *other_ns = ons;
    if (abs_diff_sum != NULL)
        *abs_diff_sum = sum;
}

const char *qv__pairstats_model(const qv_pairstats *p)
{
    return p->model;
}

int qv_monitor_agreement_get(qv_monitor *m, const char *model, int64_t primary, int64_t other,
                             struct qv_pair_summary *out)
{
    qv_pairstats *p = NULL;
    bool found;
    size_t pos;

    qv_mutex_lock(&m->mu);
    pos = pair_pos(m, model, primary, other, &found);
    if (found)
        p = m->pairs[pos];
    qv_mutex_unlock(&m->mu);
    if (p == NULL) {
        memset(out, 0, sizeof(*out));
        return QV_ENOENT;
    }
    qv__pairstats_read(p, out, NULL, NULL, NULL);
    return QV_OK;
}

size_t qv_monitor_agreements(qv_monitor *m, const char *model, struct qv_pair_summary *out,
                             size_t cap)
{
    size_t n = 0;

    /* Reading a pair is a few relaxed loads and no allocation, so it is done
     * under the lock. */
    qv_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->npairs; i++) {
        if (strcmp(m->pairs[i]->model, model) != 0)
            continue;
        if (n < cap)
            qv__pairstats_read(m->pairs[i], &out[n], NULL, NULL, NULL);
        n++;
    }
    qv_mutex_unlock(&m->mu);
    return n;
}

void qv_monitor_route_weight(qv_monitor *m, const char *model, int64_t version, double weight)
{
    qv_vstats_route_weight(qv_monitor_version(m, model, version), weight);
}

int qv_monitor_feedback(qv_monitor *m, const char *model, int64_t version, double reward)
{
    qv_vstats *s = qv_monitor_find_hold(m, model, version);

    if (s == NULL)
        return QV_ENOENT;
    qv_vstats_feedback(s, reward);
    qv_monitor_release(m, s);
    return QV_OK;
}

int qv_monitor_feedback_get(qv_monitor *m, const char *model, int64_t version, uint64_t *count,
                            double *reward_sum)
{
    qv_vstats *s = qv_monitor_find_hold(m, model, version);

    *count = 0;
    *reward_sum = 0.0;
    if (s == NULL)
        return QV_ENOENT;
    *count = load(&s->feedback_count);
    *reward_sum = bitsd(load(&s->feedback_sum_bits));
    qv_monitor_release(m, s);
    return QV_OK;
}

int qv__monitor_list_versions(qv_monitor *m, qv_vstats ***out, size_t *n)
{
    qv_vstats **v = NULL;
    size_t cap = 0;

    /* Size the copy outside the lock; retry if versions were added since. */
    for (;;) {
        size_t k = 0;

        qv_mutex_lock(&m->mu);
        if (m->nversions <= cap) {
            for (size_t i = 0; i < m->nversions; i++)
                if (!atomic_load_explicit(&m->versions[i]->gone, memory_order_relaxed)) {
                    m->versions[i]->holds++;
                    v[k++] = m->versions[i];
                }
            qv_mutex_unlock(&m->mu);
            *out = v;
            *n = k;
            return QV_OK;
        }
        cap = m->nversions + 8;
        qv_mutex_unlock(&m->mu);
        free(v);
        v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return QV_ENOMEM;
    }
}

void qv__monitor_unlist_versions(qv_monitor *m, qv_vstats **v, size_t n)
{
    qv_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++)
        release_locked(m, v[i]);
    qv_mutex_unlock(&m->mu);
    free(v);
}

int qv__monitor_list_pairs(qv_monitor *m, qv_pairstats ***out, size_t *n)
{
    qv_pairstats **v = NULL;
    size_t cap = 0;

    for (;;) {
        size_t k = 0;

        qv_mutex_lock(&m->mu);
        if (m->npairs <= cap) {
            for (size_t i = 0; i < m->npairs; i++)
                if (!atomic_load_explicit(&m->pairs[i]->gone, memory_order_relaxed))
                    v[k++] = m->pairs[i];
            qv_mutex_unlock(&m->mu);
            *out = v;
            *n = k;
            return QV_OK;
        }
        cap = m->npairs + 8;
        qv_mutex_unlock(&m->mu);
        free(v);
        v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return QV_ENOMEM;
    }
}

const char *qv__vstats_model(const qv_vstats *s)
{
    return s->model;
}

int64_t qv__vstats_version(const qv_vstats *s)
{
    return s->version;
}

bool qv__vstats_route_weight(const qv_vstats *s, double *weight)
{
    if (!atomic_load_explicit(&s->has_route_weight, memory_order_acquire))
        return false;
    *weight = bitsd(load(&s->route_weight_bits));
    return true;
}

/* ---- Tick ring ---- */

static void vstats_tick(qv_vstats *s, uint64_t now_ns)
{
    struct qv_vstats_snap snap;

    qv_vstats_snapshot(s, &snap);
    snap.t_ns = now_ns;
    qv_mutex_lock(&s->ring_mu);
    ring_push(&s->fine, &snap);
    if (now_ns >= ring_at(&s->coarse, 0)->t_ns + COARSE_NS - JITTER_NS)
        ring_push(&s->coarse, &snap);
    qv_mutex_unlock(&s->ring_mu);
}

void qv_monitor_tick_at(qv_monitor *m, uint64_t now_ns)
{
    qv_vstats **v = NULL;
    size_t n = 0;

    if (qv__monitor_list_versions(m, &v, &n) != QV_OK) {
        qv_log(QV_LOG_WARN, "msg=\"tick skipped: out of memory\"");
        return;
    }
    for (size_t i = 0; i < n; i++)
        vstats_tick(v[i], now_ns);
    qv__monitor_unlist_versions(m, v, n);
}

void qv_monitor_tick(qv_monitor *m)
{
    qv_monitor_tick_at(m, qv_now_ns());
}

/* The window over `seconds` ending at the newest ring entry. */
static void vstats_ring_window(qv_vstats *s, double seconds, struct qv_window *w)
{
    const struct qv_vstats_snap *newer, *older = NULL;
    uint64_t span, target;

    if (seconds < 0.0)
        seconds = 0.0;
    span = seconds >= 1e9 ? UINT64_MAX : (uint64_t)(seconds * 1e9);

    qv_mutex_lock(&s->ring_mu);
    newer = ring_at(&s->fine, 0);
    target = newer->t_ns > span ? newer->t_ns - span : 0;
    if (target <= UINT64_MAX - JITTER_NS)
        target += JITTER_NS;
    for (unsigned k = 0; k < s->fine.len && older == NULL; k++)
        if (ring_at(&s->fine, k)->t_ns <= target)
            older = ring_at(&s->fine, k);
    for (unsigned k = 0; k < s->coarse.len && older == NULL; k++)
        if (ring_at(&s->coarse, k)->t_ns <= target)
            older = ring_at(&s->coarse, k);
    if (older == NULL) {
        /* Less history than asked for: start at the oldest entry kept. */
        const struct qv_vstats_snap *a = ring_at(&s->fine, s->fine.len - 1);
        const struct qv_vstats_snap *b = ring_at(&s->coarse, s->coarse.len - 1);

        older = a->t_ns <= b->t_ns ? a : b;
    }
    if (older->t_ns > newer->t_ns)
        older = newer;
    qv_vstats_window(newer, older, w);
    w->seconds = (double)(newer->t_ns - older->t_ns) / 1e9;
    qv_mutex_unlock(&s->ring_mu);
}

int qv_monitor_window(qv_monitor *m, const char *model, int64_t version, double seconds,
                      struct qv_window *w)
{
    qv_vstats *s = qv_monitor_find_hold(m, model, version);

    if (s == NULL) {
        memset(w, 0, sizeof(*w));
        return QV_ENOENT;
    }
    vstats_ring_window(s, seconds, w);
    qv_monitor_release(m, s);
    return QV_OK;
}

int qv_monitor_summary(qv_monitor *m, const char *model, int64_t version, double seconds,
                       struct qv_vstats_summary *out)
{
    qv_vstats *s = qv_monitor_find_hold(m, model, version);
    struct qv_vstats_snap now, zero;

    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return QV_ENOENT;
    qv_vstats_snapshot(s, &now);
    memset(&zero, 0, sizeof(zero));
    memcpy(out->outcomes, now.outcomes, sizeof(out->outcomes));
    qv_vstats_window(&now, &zero, &out->all);
    vstats_ring_window(s, seconds, &out->last);
    out->inflight = now.inflight;
    out->queue_depth = now.queue_depth;
    out->memory_bytes = now.memory_bytes;
    out->has_route_weight = qv__vstats_route_weight(s, &out->route_weight);
    out->feedback_count = now.feedback_count;
    out->feedback_reward_sum = now.feedback_reward_sum;
    if (now.feedback_count)
        out->online_accuracy = now.feedback_reward_sum / (double)now.feedback_count;
    qv_monitor_release(m, s);
    return QV_OK;
}
