/* SPDX-License-Identifier: MIT
 *
 * monitor/prometheus.c -- the Prometheus text exposition (format 0.0.4) of a
 * monitor, driven by the QV_MONITOR_METRICS table.
 *
 * The renderer copies the list of exported versions and pairs under the
 * monitor's lock, snapshots each one lock-free, and writes every family in
 * table order with all its series together, as the format requires.
 * Histograms export every other internal bucket (R5 numbers: 1, 1.6, 2.5, 4,
 * 6.3 per decade); bounds are a subset of the internal ones, so the
 * cumulative counts are exact.
 */
#include "monitor_int.h"
#include "../control/cluster.h"

#define QV_LOG_MODULE "monitor"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct qv__monitor_metric_def qv__monitor_metrics[QV__METRIC_COUNT] = {
#define X(id, name, type, labels, help) {name, type, QV__LABELS_##labels, help},
    QV_MONITOR_METRICS(X)
#undef X
};

/* ---- Writer: appends until the first error, then only remembers it ---- */

struct writer {
    struct qv_buf *b;
    int err;
};

static void put(struct writer *w, const char *s)
{
    if (w->err == QV_OK)
        w->err = qv_buf_append(w->b, s, strlen(s));
}

int qv_monitor_escape_label(struct qv_buf *out, const char *s)
{
    const char *run = s;
    int err = QV_OK;

    for (; *s != '\0' && err == QV_OK; s++) {
        const char *esc = NULL;

        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '"')
            esc = "\\\"";
        else if (*s == '\n')
            esc = "\\n";
        if (esc == NULL)
            continue;
        err = qv_buf_append(out, run, (size_t)(s - run));
        if (err == QV_OK)
            err = qv_buf_append(out, esc, 2);
        run = s + 1;
    }
    if (err == QV_OK)
        err = qv_buf_append(out, run, strlen(run));
    return err;
}

/* Seconds from ns, exact, without trailing zeros: 16000 -> "0.000016". */
static void fmt_ns_seconds(char buf[32], uint64_t ns)
{
    size_t n;

    snprintf(buf, 32, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
    n = strlen(buf);
    while (buf[n - 1] == '0')
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[n - 1] = '\0';
}

static void fmt_double(char buf[32], double d)
{
    if (isnan(d)) {
        snprintf(buf, 32, "NaN");
    } else if (isinf(d)) {
        snprintf(buf, 32, "%s", d > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, 32, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, 32, "%.17g", d);
    }
}

/* Integers are most of the text: formatted by hand, not through printf. */
static void fmt_u64(char *buf, uint64_t v) /* buf: at least 21 bytes */
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
}

static void fmt_i64(char *buf, int64_t v) /* buf: at least 21 bytes */
{
    if (v < 0) {
        buf[0] = '-';
        fmt_u64(buf + 1, (uint64_t)0 - (uint64_t)v);
    } else {
        fmt_u64(buf, (uint64_t)v);
    }
}

/* The histogram bounds as text, made once. */
static char lat_le[QV_MONITOR_LAT_BUCKETS][32];
static pthread_once_t lat_le_once = PTHREAD_ONCE_INIT;

static void make_lat_le(void)
{
    for (int i = 0; i < QV_MONITOR_LAT_BUCKETS - 1; i++)
        fmt_ns_seconds(lat_le[i], qv_monitor_lat_upper_ns(i));
}

/* The labels every series of a row carries. */
struct row {
    const char *model;
    int64_t version;
    bool pair;
    int64_t other;
    struct qv_buf labels; /* `{model="...",version="..."[,other_version="..."]`, made once */
};

static int row_labels(struct row *r)
{
    char num[32];
    int err;

    r->labels = (struct qv_buf)QV_BUF_INIT(0);
    err = qv_buf_append(&r->labels, "{model=\"", 8);
    err = err ? err : qv_monitor_escape_label(&r->labels, r->model);
    fmt_i64(num, r->version);
    err = err ? err : qv_buf_append(&r->labels, "\",version=\"", 11);
    err = err ? err : qv_buf_append(&r->labels, num, strlen(num));
    err = err ? err : qv_buf_append(&r->labels, "\"", 1);
    if (r->pair) {
        fmt_i64(num, r->other);
        err = err ? err : qv_buf_append(&r->labels, ",other_version=\"", 16);
        err = err ? err : qv_buf_append(&r->labels, num, strlen(num));
        err = err ? err : qv_buf_append(&r->labels, "\"", 1);
    }
    return err;
}

/* Writes `<name><suffix>{<row labels>[,<extra>="<extra_value>"]} <value>\n`. */
static void sample(struct writer *w, const char *name, const char *suffix, const struct row *r,
                   const char *extra, const char *extra_value, const char *value)
{
    put(w, name);
    put(w, suffix);
    if (w->err == QV_OK)
        w->err = qv_buf_append(w->b, r->labels.data, r->labels.len);
    if (extra != NULL) {
        put(w, ",");
        put(w, extra);
        put(w, "=\"");
        put(w, extra_value);
        put(w, "\"");
    }
    put(w, "} ");
    put(w, value);
    put(w, "\n");
}

static void sample_u64(struct writer *w, const char *name, const char *suffix, const struct row *r,
                       uint64_t v)
{
    char num[32];

    fmt_u64(num, v);
    sample(w, name, suffix, r, NULL, NULL, num);
}

static void sample_secs(struct writer *w, const char *name, const char *suffix, const struct row *r,
                        uint64_t ns)
{
    char num[32];

    fmt_ns_seconds(num, ns);
    sample(w, name, suffix, r, NULL, NULL, num);
}

static void sample_f64(struct writer *w, const char *name, const char *suffix, const struct row *r,
                       double v)
{
    char num[32];

    fmt_double(num, v);
    sample(w, name, suffix, r, NULL, NULL, num);
}

static void latency_histogram(struct writer *w, const char *name, const struct row *r,
                              const struct qv_lat_hist *h)
{
    char num[32];
    uint64_t cum = 0;

    pthread_once(&lat_le_once, make_lat_le);
    for (int i = 0; i < QV_MONITOR_LAT_BUCKETS - 1; i++) {
        cum += h->buckets[i];
        if (i % 2 != 0)
            continue;
        fmt_u64(num, cum);
        sample(w, name, "_bucket", r, "le", lat_le[i], num);
    }
    cum += h->buckets[QV_MONITOR_LAT_BUCKETS - 1];
    fmt_u64(num, cum);
    sample(w, name, "_bucket", r, "le", "+Inf", num);
    sample_secs(w, name, "_sum", r, h->sum_ns);
    sample_u64(w, name, "_count", r, cum);
}

static void batch_histogram(struct writer *w, const char *name, const struct row *r,
                            const struct qv_vstats_snap *sn)
{
    char le[32], num[32];
    uint64_t cum = 0;

    for (int i = 0; i < QV_MONITOR_BATCH_BUCKETS; i++) {
        cum += sn->batch_buckets[i];
        if (i == QV_MONITOR_BATCH_BUCKETS - 1)
            snprintf(le, sizeof(le), "+Inf");
        else
            snprintf(le, sizeof(le), "%" PRIu32, qv_monitor_batch_upper(i));
        fmt_u64(num, cum);
        sample(w, name, "_bucket", r, "le", le, num);
    }
    sample_u64(w, name, "_sum", r, sn->batch_items);
    sample_u64(w, name, "_count", r, cum);
}

static void version_series(struct writer *w, enum qv__monitor_metric id, const qv_vstats *s,
                           const struct qv_vstats_snap *sn, const struct row *rp)
{
    const char *name = qv__monitor_metrics[id].name;
    struct row r = *rp; /* labels made once per render */
    uint64_t n = 0;
    char num[32];
    double weight;

    switch (id) {
    case QV__METRIC_REQUESTS:
        for (int o = 0; o < QV_OUTCOME_COUNT; o++)
            n += sn->outcomes[o];
        sample_u64(w, name, "", &r, n);
        break;
    case QV__METRIC_FAILURES:
        for (int o = 0; o < QV_OUTCOME_COUNT; o++) {
            if (o == QV_OUTCOME_OK)
                continue;
            fmt_u64(num, sn->outcomes[o]);
            sample(w, name, "", &r, "reason", qv_outcome_name((enum qv_outcome)o), num);
        }
        break;
    case QV__METRIC_REQUEST_DURATION:
        latency_histogram(w, name, &r, &sn->total);
        break;
    case QV__METRIC_QUEUE_DURATION:
        latency_histogram(w, name, &r, &sn->queue);
        break;
    case QV__METRIC_COMPUTE_DURATION:
        latency_histogram(w, name, &r, &sn->compute);
        break;
    case QV__METRIC_BATCH_SIZE:
        batch_histogram(w, name, &r, sn);
        break;
    case QV__METRIC_CPU:
        sample_secs(w, name, "", &r, sn->cpu_ns);
        break;
    case QV__METRIC_EXECUTIONS:
        fmt_u64(num, sn->exec_inline);
        sample(w, name, "", &r, "path", "inline", num);
        fmt_u64(num, sn->exec_queued);
        sample(w, name, "", &r, "path", "queued", num);
        break;
    case QV__METRIC_SHADOW_DROPPED:
        sample_u64(w, name, "", &r, sn->shadow_dropped);
        break;
    case QV__METRIC_INFLIGHT:
        fmt_i64(num, sn->inflight);
        sample(w, name, "", &r, NULL, NULL, num);
        break;
    case QV__METRIC_QUEUE_DEPTH:
        fmt_i64(num, sn->queue_depth);
        sample(w, name, "", &r, NULL, NULL, num);
        break;
    case QV__METRIC_MEMORY:
        sample_u64(w, name, "", &r, sn->memory_bytes);
        break;
    case QV__METRIC_ROUTE_WEIGHT:
        if (qv__vstats_route_weight(s, &weight))
            sample_f64(w, name, "", &r, weight);
        break;
    case QV__METRIC_FEEDBACK:
        sample_u64(w, name, "", &r, sn->feedback_count);
        break;
    case QV__METRIC_FEEDBACK_REWARD:
        sample_f64(w, name, "_sum", &r, sn->feedback_reward_sum);
        sample_u64(w, name, "_count", &r, sn->feedback_count);
        break;
    default:
        break;
    }
}

/* One pair as read for the renderer. */
struct pair_read {
    struct qv_pair_summary a;
    uint64_t primary_ns, other_ns;
    double diff_sum;
};

static void pair_series(struct writer *w, enum qv__monitor_metric id, const qv_pairstats *p,
                        const struct pair_read *pr, const struct row *rp)
{
    const char *name = qv__monitor_metrics[id].name;
    struct row r = *rp; /* labels made once per render */

    (void)p;
    switch (id) {
    case QV__METRIC_SHADOW_COMPARISONS:
        sample_u64(w, name, "", &r, pr->a.count);
        break;
    case QV__METRIC_SHADOW_AGREEMENTS:
        sample_u64(w, name, "", &r, pr->a.agreements);
        break;
    case QV__METRIC_SHADOW_ABS_DIFF:
        sample_f64(w, name, "_sum", &r, pr->diff_sum);
        sample_u64(w, name, "_count", &r, pr->a.count);
        break;
    case QV__METRIC_SHADOW_ABS_DIFF_MAX:
        sample_f64(w, name, "", &r, pr->a.abs_diff_max);
        break;
    case QV__METRIC_SHADOW_PRIMARY_SECONDS:
        sample_secs(w, name, "", &r, pr->primary_ns);
        break;
    case QV__METRIC_SHADOW_OTHER_SECONDS:
        sample_secs(w, name, "", &r, pr->other_ns);
        break;
    default:
        break;
    }
}

int qv_monitor_render_prometheus(qv_monitor *m, struct qv_buf *out)
{
    struct writer w = {out, QV_OK};
    qv_vstats **versions = NULL;
    qv_pairstats **pairs = NULL;
    struct qv_vstats_snap *snaps = NULL;
    struct pair_read *reads = NULL;
    struct row *vrows = NULL, *prows = NULL;
    size_t nversions = 0, npairs = 0;
    int err;

    err = qv__monitor_list_versions(m, &versions, &nversions);
    if (err)
        goto out;
    err = qv__monitor_list_pairs(m, &pairs, &npairs);
    if (err)
        goto out;
    /* Both sized by the number of versions and pairs: fallible. */
    snaps = malloc((nversions ? nversions : 1) * sizeof(*snaps));
    reads = malloc((npairs ? npairs : 1) * sizeof(*reads));
    if (snaps == NULL || reads == NULL) {
        err = QV_ENOMEM;
        goto out;
    }
    vrows = calloc(nversions ? nversions : 1, sizeof(*vrows));
    prows = calloc(npairs ? npairs : 1, sizeof(*prows));
    if (vrows == NULL || prows == NULL) {
        err = QV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nversions && !err; i++) {
        qv_vstats_snapshot(versions[i], &snaps[i]);
        vrows[i].model = qv__vstats_model(versions[i]);
        vrows[i].version = qv__vstats_version(versions[i]);
        err = row_labels(&vrows[i]);
    }
    for (size_t i = 0; i < npairs && !err; i++) {
        qv__pairstats_read(pairs[i], &reads[i].a, &reads[i].primary_ns, &reads[i].other_ns,
                           &reads[i].diff_sum);
        prows[i].model = qv__pairstats_model(pairs[i]);
        prows[i].version = reads[i].a.primary;
        prows[i].pair = true;
        prows[i].other = reads[i].a.other;
        err = row_labels(&prows[i]);
    }
    if (err)
        goto out;

    for (int id = 0; id < QV__METRIC_COUNT; id++) {
        const struct qv__monitor_metric_def *def = &qv__monitor_metrics[id];

        put(&w, "# HELP ");
        put(&w, def->name);
        put(&w, " ");
        put(&w, def->help);
        put(&w, "\n# TYPE ");
        put(&w, def->name);
        put(&w, " ");
        put(&w, def->type);
        put(&w, "\n");
        if (def->labels == QV__LABELS_CODE) {
            uint64_t counts[QV__MONITOR_N_REFUSALS];
            qv__monitor_refusals(m, counts);
            for (int i = 0; i < QV__MONITOR_N_REFUSALS; i++) {
                char line[128];
                snprintf(line, sizeof(line), "%s{code=\"%d\"} %llu\n", def->name,
                         qv__monitor_refusal_codes[i], (unsigned long long)counts[i]);
                put(&w, line);
            }
        } else if (def->labels == QV__LABELS_PAIR) {
            for (size_t i = 0; i < npairs; i++)
                pair_series(&w, (enum qv__monitor_metric)id, pairs[i], &reads[i], &prows[i]);
        } else {
            for (size_t i = 0; i < nversions; i++)
                version_series(&w, (enum qv__monitor_metric)id, versions[i], &snaps[i], &vrows[i]);
        }
    }
    /* In a cluster, an info gauge names the node (join on instance to label other series). */
    if (qv_cluster_node_name()[0] != '\0') {
        char line[160]; /* the name is at most 63 characters of [A-Za-z0-9._-] */

        put(&w, "# HELP quiver_node_info The cluster node name of this process (value 1).\n"
                "# TYPE quiver_node_info gauge\n");
        snprintf(line, sizeof(line), "quiver_node_info{node=\"%s\"} 1\n", qv_cluster_node_name());
        put(&w, line);
    }
    err = w.err;
out:
    for (size_t i = 0; vrows && i < nversions; i++)
        qv_buf_free(&vrows[i].labels);
    for (size_t i = 0; prows && i < npairs; i++)
        qv_buf_free(&prows[i].labels);
    free(vrows);
    free(prows);
    free(reads);
    free(snaps);
    free(pairs);
    qv__monitor_unlist_versions(m, versions, nversions);
    return err;
}
