/* SPDX-License-Identifier: MIT
 *
 * The client subcommands: each is one or two HTTP calls to a running server
 * (libcurl), printing what it answers. --url and --token (or QUIVER_URL and
 * QUIVER_TOKEN) say where and as whom.
 *
 * Everything the command line says is checked before anything is sent: an
 * unknown flag, a missing argument or a malformed number exits 2 naming it,
 * and --help prints the command's help without contacting a server. Exit
 * status: 0 on a 2xx answer, 1 on an error answer (its message goes to
 * stderr), 2 on bad usage, 3 when the server cannot be reached.
 */
#include "cli.h"

#include "../util/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_POSITIONAL 8
#define MAX_FLAGS 8

struct client {
    char url[1024];
    const char *token;
};

struct reply {
    long status;
    struct qv_buf body;
};

/* A command line once the global options are taken out: its words and the
 * values of the flags the command accepts. */
struct args {
    const char *cmd;
    int n;
    const char *word[MAX_POSITIONAL];
    const char *flag_name[MAX_FLAGS];
    const char *flag_value[MAX_FLAGS];
    int n_flags;
};

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("quiver: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, " (see quiver %s --help)\n", cmd);
    else
        fputs(" (see quiver --help)\n", stderr);
    return QV_EXIT_USAGE;
}

/* ---- JSON output ----
 * jansson prints reals with %.17g, which shows 0.05 as 0.050000000000000003.
 * The printer here writes each real with the fewest digits that read back
 * as the same double, and otherwise lays documents out as jansson's
 * JSON_INDENT(2) does. */

static void real_text(double v, char *out, size_t len)
{
    int prec = 1;

    if (!isfinite(v)) {
        snprintf(out, len, "null");
        return;
    }
    for (; prec <= 17; prec++) {
        snprintf(out, len, "%.*e", prec - 1, v);
        if (strtod(out, NULL) == v || prec == 17)
            break;
    }
    /* prec significant digits suffice; plain notation in the usual range. */
    if (v == 0 || (fabs(v) >= 1e-5 && fabs(v) < 1e16)) {
        const char *e = strchr(out, 'e');
        int exp10 = e ? atoi(e + 1) : 0;
        int decimals = prec - 1 - exp10;
        snprintf(out, len, "%.*f", decimals > 0 ? decimals : 0, v);
    }
    /* Keep it a real: 1 reads back as an integer, 1.0 does not. */
    if (strpbrk(out, ".eEn") == NULL && strlen(out) + 3 < len)
        strcat(out, ".0");
}

static void dump(const json_t *j, int indent, int depth, struct qv_buf *b)
{
    char num[64];
    size_t i;
    const char *key;
    json_t *v;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        if (json_object_size(j) == 0) {
            qv_buf_append(b, "{}", 2);
            break;
        }
        qv_buf_append(b, "{", 1);
        i = 0;
        json_object_foreach((json_t *)j, key, v)
        {
            json_t *ks = json_string(key);
            char *k = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
            json_decref(ks);
            if (i++)
                qv_buf_append(b, ",", 1);
            if (indent)
                qv_buf_printf(b, "\n%*s", indent * (depth + 1), "");
            qv_buf_printf(b, "%s:%s", k ? k : "\"\"", indent ? " " : "");
            free(k);
            dump(v, indent, depth + 1, b);
        }
        if (indent)
            qv_buf_printf(b, "\n%*s", indent * depth, "");
        qv_buf_append(b, "}", 1);
        break;
    case JSON_ARRAY:
        if (json_array_size(j) == 0) {
            qv_buf_append(b, "[]", 2);
            break;
        }
        qv_buf_append(b, "[", 1);
        json_array_foreach((json_t *)j, i, v)
        {
            if (i)
                qv_buf_append(b, ",", 1);
            if (indent)
                qv_buf_printf(b, "\n%*s", indent * (depth + 1), "");
            dump(v, indent, depth + 1, b);
        }
        if (indent)
            qv_buf_printf(b, "\n%*s", indent * depth, "");
        qv_buf_append(b, "]", 1);
        break;
    case JSON_REAL:
        real_text(json_real_value(j), num, sizeof(num));
        qv_buf_append(b, num, strlen(num));
        break;
    default: {
        char *s = json_dumps(j, JSON_ENCODE_ANY);
        if (s)
            qv_buf_append(b, s, strlen(s));
        free(s);
        break;
    }
    }
}

/* The document as text (caller frees); indent 0: compact. */
static char *json_text(const json_t *j, int indent)
{
    struct qv_buf b = {0};

    dump(j, indent, 0, &b);
    return qv_buf_take(&b);
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;

    return qv_buf_append(&r->body, p, size * n) == QV_OK ? size * n : 0;
}

/* One HTTP call; body may be NULL. Returns QV_EXIT_OK when the server
 * answered (any status), QV_EXIT_CONNECT (message printed) when not. */
static int call(const struct client *c, const char *method, const char *path, const char *body,
                struct reply *r)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char url[2048], auth[512];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    if (h == NULL)
        return QV_EXIT_CONNECT;
    snprintf(url, sizeof(url), "%s%s", c->url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "quiver-cli/" QV_VERSION);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    else
        fprintf(stderr, "quiver: cannot reach %s: %s\n", url, curl_easy_strerror(rc));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        qv_buf_free(&r->body);
        return QV_EXIT_CONNECT;
    }
    return QV_EXIT_OK;
}

/* Prints the answer (pretty JSON when it parses) and returns the exit code. */
static int finish(struct reply *r)
{
    json_t *j = r->body.data ? json_loads(r->body.data, JSON_DECODE_ANY, NULL) : NULL;
    int code = r->status >= 200 && r->status < 300 ? QV_EXIT_OK : QV_EXIT_REFUSED;

    if (code && json_is_string(json_object_get(j, "error")))
        fprintf(stderr, "quiver: %ld: %s\n", r->status,
                json_string_value(json_object_get(j, "error")));
    else if (j) {
        char *s = json_text(j, 2);
        puts(s);
        free(s);
    } else if (r->body.data) {
        fputs(r->body.data, code ? stderr : stdout);
    } else if (code) {
        fprintf(stderr, "quiver: the server answered %ld\n", r->status);
    }
    json_decref(j);
    qv_buf_free(&r->body);
    return code;
}

static int simple(const struct client *c, const char *method, const char *path, const char *body)
{
    struct reply r;
    int rc = call(c, method, path, body, &r);

    return rc != QV_EXIT_OK ? rc : finish(&r);
}

/* GET a JSON document into *out; an exit code (message printed) on failure. */
static int get_json(const struct client *c, const char *path, json_t **out)
{
    struct reply r;
    int rc = call(c, "GET", path, NULL, &r);

    *out = NULL;
    if (rc != QV_EXIT_OK)
        return rc;
    if (r.status != 200)
        return finish(&r);
    *out = json_loads(r.body.data ? r.body.data : "", JSON_DECODE_ANY, NULL);
    qv_buf_free(&r.body);
    if (*out == NULL) {
        fprintf(stderr, "quiver: the server's answer to GET %s is not JSON\n", path);
        return QV_EXIT_REFUSED;
    }
    return QV_EXIT_OK;
}

static int put_json(const struct client *c, const char *path, json_t *doc)
{
    char *text = json_text(doc, 0);
    int rc = simple(c, "PUT", path, text);

    free(text);
    return rc;
}

/* ---- Command lines ---- */

static const char *flag(const struct args *a, const char *name)
{
    for (int i = 0; i < a->n_flags; i++)
        if (strcmp(a->flag_name[i], name) == 0)
            return a->flag_value[i];
    return NULL;
}

/* Splits argv (the command's words, global options already removed) into
 * words and the values of the flags in `allowed` (NULL-terminated, each
 * taking a value, as --flag V or --flag=V). */
static int split_args(const char *cmd, int argc, char **argv, const char *const *allowed,
                      struct args *a)
{
    memset(a, 0, sizeof(*a));
    a->cmd = cmd;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strncmp(s, "--", 2) == 0 && s[2] != '\0') {
            const char *eq = strchr(s, '=');
            size_t len = eq ? (size_t)(eq - s) : strlen(s);
            const char *const *f;
            for (f = allowed; *f; f++)
                if (strlen(*f) == len && strncmp(*f, s, len) == 0)
                    break;
            if (*f == NULL)
                return usage_error(cmd, "%s: unknown option %.*s", cmd, (int)len, s);
            if (a->n_flags == MAX_FLAGS)
                return usage_error(cmd, "%s: too many options", cmd);
            if (eq == NULL && i + 1 >= argc)
                return usage_error(cmd, "%s: %s needs a value", cmd, *f);
            a->flag_name[a->n_flags] = *f;
            a->flag_value[a->n_flags++] = eq ? eq + 1 : argv[++i];
            continue;
        }
        if (s[0] == '-' && s[1] != '\0' && strcmp(s, "--") != 0)
            return usage_error(cmd, "%s: unknown option %s", cmd, s);
        if (strcmp(s, "--") == 0)
            continue;
        if (a->n == MAX_POSITIONAL)
            return usage_error(cmd, "%s: too many arguments", cmd);
        a->word[a->n++] = s;
    }
    return QV_EXIT_OK;
}

/* A whole number from lo to hi; exit 2 naming the flag when not. */
static int parse_number(const char *cmd, const char *name, const char *s, long long lo,
                        long long hi, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return usage_error(cmd, "%s: expected a whole number from %lld to %lld, got \"%s\"", name,
                           lo, hi, s);
    *out = v;
    return QV_EXIT_OK;
}

/* A model name goes into a URL path: refuse what would change the path. */
static int check_name(const char *cmd, const char *what, const char *s)
{
    if (*s == '\0' || strlen(s) > 200 || strpbrk(s, "/?#% \t\r\n") != NULL)
        return usage_error(cmd, "%s: \"%s\" is not a valid name", what, s);
    return QV_EXIT_OK;
}

/* "stable=90,canary=10" into an object; NULL when malformed. */
static json_t *parse_weights(const char *s)
{
    json_t *w = json_object();
    char *copy = qv_xstrdup(s), *save = NULL;

    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end;
        long v;
        if (eq == NULL)
            goto bad;
        *eq = '\0';
        errno = 0;
        v = strtol(eq + 1, &end, 10);
        if (errno || end == eq + 1 || *end != '\0' || *tok == '\0' || v < 0 || v > 1000000)
            goto bad;
        json_object_set_new(w, tok, json_integer(v));
    }
    free(copy);
    if (json_object_size(w) == 0) {
        json_decref(w);
        return NULL;
    }
    return w;
bad:
    json_decref(w);
    free(copy);
    return NULL;
}

/* ---- Commands ---- */

static int cmd_models(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {NULL};
    struct args a;
    int rc = split_args("models", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n > 0)
        return usage_error("models", "models: unexpected argument \"%s\"", a.word[0]);
    return simple(c, "GET", "/v2/repository/index", NULL);
}

static int cmd_route(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {"--file", "--weights", "--policy", "--target", NULL};
    struct args a;
    char path[512];
    json_t *doc, *w = NULL;
    const char *file, *weights, *policy, *target;
    int rc = split_args("route", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n != 2 || (strcmp(a.word[0], "show") != 0 && strcmp(a.word[0], "set") != 0 &&
                     strcmp(a.word[0], "clear") != 0))
        return usage_error("route", "route: expected show, set or clear and a MODEL");
    if ((rc = check_name("route", "MODEL", a.word[1])) != 0)
        return rc;
    file = flag(&a, "--file");
    weights = flag(&a, "--weights");
    policy = flag(&a, "--policy");
    target = flag(&a, "--target");
    if (strcmp(a.word[0], "set") != 0 && a.n_flags > 0)
        return usage_error("route", "route %s: %s applies to route set only", a.word[0],
                           a.flag_name[0]);
    snprintf(path, sizeof(path), "/v2/models/%s/route", a.word[1]);
    if (strcmp(a.word[0], "show") == 0)
        return simple(c, "GET", path, NULL);
    if (strcmp(a.word[0], "clear") == 0)
        return simple(c, "DELETE", path, NULL);
    if (file) {
        char *text = NULL;
        struct qv_diag d = {{0}};
        if (weights || policy || target)
            return usage_error("route", "route set: --file cannot be combined with other options");
        if (qv_file_read_all(file, 1 << 20, &text, NULL, &d) != QV_OK)
            return usage_error("route", "--file: %s", d.msg);
        rc = simple(c, "PUT", path, text);
        free(text);
        return rc;
    }
    if (!weights && !policy)
        return usage_error("route", "route set MODEL needs --file, --weights or --policy");
    if (weights && (w = parse_weights(weights)) == NULL)
        return usage_error("route",
                           "--weights: expected LABEL=WEIGHT,... with whole weights "
                           "from 0 to 1000000, got \"%s\"",
                           weights);
    rc = get_json(c, path, &doc);
    if (rc) {
        json_decref(w);
        return rc;
    }
    if (w) {
        json_object_set_new(doc, "weights", w);
        if (!policy) {
            const char *cur = json_string_value(json_object_get(doc, "policy"));
            if (cur == NULL || (strcmp(cur, "sticky") != 0 && strcmp(cur, "weighted") != 0))
                json_object_set_new(doc, "policy", json_string("weighted"));
        }
    }
    if (policy)
        json_object_set_new(doc, "policy", json_string(policy));
    if (target)
        json_object_set_new(doc, "target", json_string(target));
    rc = put_json(c, path, doc);
    json_decref(doc);
    return rc;
}

static int cmd_label(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {NULL};
    struct args a;
    char path[512];
    long long v;
    int rc = split_args("label", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n == 4 && strcmp(a.word[0], "set") == 0) {
        if ((rc = check_name("label", "MODEL", a.word[1])) != 0 ||
            (rc = check_name("label", "LABEL", a.word[2])) != 0 ||
            (rc = parse_number("label", "VERSION", a.word[3], 1, INT64_MAX, &v)) != 0)
            return rc;
        char body[64];
        snprintf(path, sizeof(path), "/v2/models/%s/labels/%s", a.word[1], a.word[2]);
        snprintf(body, sizeof(body), "{\"version\": %lld}", v);
        return simple(c, "PUT", path, body);
    }
    if (a.n == 3 && strcmp(a.word[0], "delete") == 0) {
        if ((rc = check_name("label", "MODEL", a.word[1])) != 0 ||
            (rc = check_name("label", "LABEL", a.word[2])) != 0)
            return rc;
        snprintf(path, sizeof(path), "/v2/models/%s/labels/%s", a.word[1], a.word[2]);
        return simple(c, "DELETE", path, NULL);
    }
    return usage_error("label", "label: expected set MODEL LABEL VERSION or delete MODEL LABEL");
}

/* stable := LABEL's version; LABEL removed; all weight to stable. */
static int cmd_promote(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {NULL};
    struct args a;
    const char *label;
    char path[512];
    json_t *doc, *labels, *v, *weights;
    int rc = split_args("promote", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n < 1 || a.n > 2)
        return usage_error("promote", "promote: expected MODEL [LABEL]");
    label = a.n == 2 ? a.word[1] : "canary";
    if ((rc = check_name("promote", "MODEL", a.word[0])) != 0 ||
        (rc = check_name("promote", "LABEL", label)) != 0)
        return rc;
    snprintf(path, sizeof(path), "/v2/models/%s/route", a.word[0]);
    rc = get_json(c, path, &doc);
    if (rc)
        return rc;
    labels = json_object_get(doc, "labels");
    v = json_object_get(labels, label);
    if (v == NULL) {
        fprintf(stderr, "quiver: model %s has no label \"%s\"\n", a.word[0], label);
        json_decref(doc);
        return QV_EXIT_REFUSED;
    }
    json_object_set(labels, "stable", v);
    json_object_del(labels, label);
    /* Shadow copies to the promoted label would now name nothing. */
    {
        json_t *shadow = json_object_get(doc, "shadow");
        for (size_t i = json_array_size(shadow); i-- > 0;) {
            json_t *t = json_object_get(json_array_get(shadow, i), "target");
            if (json_is_string(t) && strcmp(json_string_value(t), label) == 0)
                json_array_remove(shadow, i);
        }
        if (shadow && json_array_size(shadow) == 0)
            json_object_del(doc, "shadow");
    }
    weights = json_object();
    json_object_set_new(weights, "stable", json_integer(100));
    json_object_set_new(doc, "weights", weights);
    json_object_set_new(doc, "policy", json_string("weighted"));
    json_object_del(doc, "target");
    json_object_del(doc, "compare");
    rc = put_json(c, path, doc);
    json_decref(doc);
    return rc;
}

static int cmd_rollback(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {NULL};
    struct args a;
    char path[512];
    int rc = split_args("rollback", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n != 1)
        return usage_error("rollback", "rollback: expected MODEL");
    if ((rc = check_name("rollback", "MODEL", a.word[0])) != 0)
        return rc;
    snprintf(path, sizeof(path), "/v2/models/%s/route/rollback", a.word[0]);
    return simple(c, "POST", path, NULL);
}

/* --since: what the server takes (qv_time_parse: epoch ms, ISO 8601, or a
 * duration ago such as 10m), sent as epoch ms. 0 with *ms set, or -1. */
static int parse_since(const char *s, long long *ms)
{
    uint64_t v;

    if (qv_time_parse(s, &v) != QV_OK || v > (uint64_t)LLONG_MAX)
        return -1;
    *ms = (long long)v;
    return 0;
}

static int cmd_events(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {"--limit", "--since", NULL};
    struct args a;
    char path[512], query[128] = "";
    const char *limit_s, *since_s;
    long long limit = 0, since = 0;
    json_t *ev, *e;
    size_t i, first = 0;
    int rc = split_args("events", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n > 1)
        return usage_error("events", "events: expected at most one MODEL");
    if (a.n == 1 && (rc = check_name("events", "MODEL", a.word[0])) != 0)
        return rc;
    limit_s = flag(&a, "--limit");
    since_s = flag(&a, "--since");
    if (limit_s && (rc = parse_number("events", "--limit", limit_s, 1, 100000, &limit)) != 0)
        return rc;
    if (since_s && parse_since(since_s, &since) != 0)
        return usage_error("events",
                           "--since: expected an ISO 8601 time (2026-01-31T12:00:00Z), "
                           "milliseconds since the epoch or a duration such as 10m, "
                           "got \"%s\"",
                           since_s);
    if (limit_s && since_s)
        snprintf(query, sizeof(query), "?limit=%lld&since=%lld", limit, since);
    else if (limit_s)
        snprintf(query, sizeof(query), "?limit=%lld", limit);
    else if (since_s)
        snprintf(query, sizeof(query), "?since=%lld", since);
    if (a.n == 1)
        snprintf(path, sizeof(path), "/v2/models/%s/events%s", a.word[0], query);
    else
        snprintf(path, sizeof(path), "/v2/events%s", query);
    rc = get_json(c, path, &ev);
    if (rc)
        return rc;
    if (!json_is_array(ev)) {
        fprintf(stderr, "quiver: the server's events are not a list\n");
        json_decref(ev);
        return QV_EXIT_REFUSED;
    }
    /* The server keeps the newest; so does an older server that ignored limit. */
    if (limit > 0 && json_array_size(ev) > (size_t)limit)
        first = json_array_size(ev) - (size_t)limit;
    json_array_foreach(ev, i, e)
    {
        const char *old = json_string_value(json_object_get(e, "old"));
        const char *now = json_string_value(json_object_get(e, "new"));
        const char *ts = json_string_value(json_object_get(e, "ts"));
        const char *model = json_string_value(json_object_get(e, "model"));
        const char *who = json_string_value(json_object_get(e, "who"));
        const char *what = json_string_value(json_object_get(e, "what"));
        if (i < first)
            continue;
        printf("%s %s %-10s %-18s %s%s%s\n", ts ? ts : "-", model ? model : "-", who ? who : "-",
               what ? what : "-", old ? old : "", old ? " -> " : "", now ? now : "");
    }
    json_decref(ev);
    return QV_EXIT_OK;
}

static int cmd_rollout(const struct client *c, int argc, char **argv)
{
    static const char *const allowed[] = {"--canary", "--steps", "--step-seconds", "--min-requests",
                                          NULL};
    struct args a;
    char path[512];
    json_t *plan;
    const char *canary, *steps, *secs, *minreq;
    long long v;
    char *text;
    int rc = split_args("rollout", argc, argv, allowed, &a);

    if (rc)
        return rc;
    if (a.n != 2 || (strcmp(a.word[0], "start") != 0 && strcmp(a.word[0], "status") != 0 &&
                     strcmp(a.word[0], "abort") != 0))
        return usage_error("rollout", "rollout: expected start, status or abort and a MODEL");
    if ((rc = check_name("rollout", "MODEL", a.word[1])) != 0)
        return rc;
    if (strcmp(a.word[0], "start") != 0 && a.n_flags > 0)
        return usage_error("rollout", "rollout %s: %s applies to rollout start only", a.word[0],
                           a.flag_name[0]);
    snprintf(path, sizeof(path), "/v2/models/%s/rollout", a.word[1]);
    if (strcmp(a.word[0], "status") == 0)
        return simple(c, "GET", path, NULL);
    if (strcmp(a.word[0], "abort") == 0)
        return simple(c, "DELETE", path, NULL);
    canary = flag(&a, "--canary");
    if (canary == NULL)
        return usage_error("rollout", "rollout start MODEL needs --canary VERSION");
    plan = json_object();
    if ((rc = parse_number("rollout", "--canary", canary, 1, INT64_MAX, &v)) != 0)
        goto out;
    json_object_set_new(plan, "canary", json_integer(v));
    steps = flag(&a, "--steps");
    if (steps) {
        json_t *arr = json_array();
        char *copy = qv_xstrdup(steps), *save = NULL;
        json_object_set_new(plan, "steps", arr);
        for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
            if ((rc = parse_number("rollout", "--steps", t, 1, 100, &v)) == 0)
                json_array_append_new(arr, json_integer(v));
        free(copy);
        if (rc == 0 && json_array_size(arr) == 0)
            rc = usage_error("rollout", "--steps: expected percentages such as 5,25,50,100");
        if (rc)
            goto out;
    }
    secs = flag(&a, "--step-seconds");
    if (secs) {
        if ((rc = parse_number("rollout", "--step-seconds", secs, 0, 7LL * 86400, &v)) != 0)
            goto out;
        json_object_set_new(plan, "step_seconds", json_integer(v));
    }
    minreq = flag(&a, "--min-requests");
    if (minreq) {
        rc = parse_number("rollout", "--min-requests", minreq, 1, 1000000000000LL, &v);
        if (rc != 0)
            goto out;
        json_object_set_new(plan, "min_requests", json_integer(v));
    }
    text = json_text(plan, 0);
    rc = simple(c, "POST", path, text);
    free(text);
out:
    json_decref(plan);
    return rc;
}

struct command {
    const char *name;
    int (*run)(const struct client *c, int argc, char **argv);
};

static const struct command commands[] = {
    {"models", cmd_models},   {"route", cmd_route},       {"label", cmd_label},
    {"promote", cmd_promote}, {"rollback", cmd_rollback}, {"events", cmd_events},
    {"rollout", cmd_rollout},
};

int qv_cli_client(int argc, char **argv)
{
    struct client c;
    const char *url = NULL, *cmd_name = NULL;
    const struct command *cmd = NULL;
    int n = 0, rc;
    size_t len;
    char **args = qv_xcalloc((size_t)argc + 1, sizeof(char *));

    memset(&c, 0, sizeof(c));
    /* Take out the global options (anywhere), keep the rest in order. */
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--url") == 0 || strcmp(s, "--token") == 0) {
            if (i + 1 >= argc) {
                free(args);
                return usage_error(NULL, "%s needs a value", s);
            }
            if (s[2] == 'u')
                url = argv[++i];
            else
                c.token = argv[++i];
            continue;
        }
        if (strncmp(s, "--url=", 6) == 0) {
            url = s + 6;
            continue;
        }
        if (strncmp(s, "--token=", 8) == 0) {
            c.token = s + 8;
            continue;
        }
        args[n++] = argv[i];
    }
    if (n > 0 && args[0][0] != '-')
        cmd_name = args[0];
    for (int i = 0; i < n; i++) {
        if (strcmp(args[i], "--") == 0)
            break;
        if (strcmp(args[i], "--help") == 0 || strcmp(args[i], "-h") == 0) {
            rc = QV_EXIT_OK;
            if (cmd_name == NULL)
                qv_cli_help(NULL, stdout);
            else if (qv_cli_help(cmd_name, stdout) != 0)
                rc = usage_error(NULL, "unknown command \"%s\"", cmd_name);
            free(args);
            return rc;
        }
    }
    if (cmd_name == NULL) {
        rc = n == 0 ? usage_error(NULL, "a command is needed after the options")
                    : usage_error(NULL, "unknown option %s", args[0]);
        free(args);
        return rc;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, cmd_name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        fprintf(stderr, "quiver: unknown command \"%s\" (see quiver --help)\n", cmd_name);
        free(args);
        return QV_EXIT_USAGE;
    }
    if (url == NULL)
        url = getenv("QUIVER_URL");
    if (url == NULL || *url == '\0')
        url = "http://127.0.0.1:8000";
    if (c.token == NULL)
        c.token = getenv("QUIVER_TOKEN");
    if (c.token && *c.token == '\0')
        c.token = NULL;
    len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (len == 0 || len >= sizeof(c.url)) {
        free(args);
        return usage_error(NULL,
                           "--url: expected a URL such as http://127.0.0.1:8000, got "
                           "\"%s\"",
                           url);
    }
    memcpy(c.url, url, len);
    c.url[len] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmd->run(&c, n - 1, args + 1);
    curl_global_cleanup();
    free(args);
    return rc;
}
