/* SPDX-License-Identifier: MIT
 *
 * The client subcommands: each is one or two HTTP calls to a running server
 * (libcurl), printing what it answers. --url and --token (or QUIVER_URL and
 * QUIVER_TOKEN) say where and as whom. Exit status: 0 on a 2xx answer, 1 on
 * an error answer (its message goes to stderr), 2 on bad usage.
 */
#include "cli.h"

#include "../util/util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client {
    const char *url;
    const char *token;
};

struct reply {
    long status;
    struct qv_buf body;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;

    return qv_buf_append(&r->body, p, size * n) == QV_OK ? size * n : 0;
}

/* One HTTP call; body may be NULL. Returns 0 when the server answered. */
static int call(const struct client *c, const char *method, const char *path, const char *body,
                struct reply *r)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char url[2048], auth[512];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    if (h == NULL)
        return -1;
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
        fprintf(stderr, "quiver: %s: %s\n", url, curl_easy_strerror(rc));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}

/* Prints the answer (pretty JSON when it parses) and returns the exit code. */
static int finish(struct reply *r)
{
    json_t *j = r->body.data ? json_loads(r->body.data, 0, NULL) : NULL;
    int code = r->status >= 200 && r->status < 300 ? 0 : 1;

    if (code && json_is_string(json_object_get(j, "error")))
        fprintf(stderr, "quiver: %ld: %s\n", r->status,
                json_string_value(json_object_get(j, "error")));
    else if (j) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
    } else if (r->body.data) {
        fputs(r->body.data, code ? stderr : stdout);
    }
    json_decref(j);
    qv_buf_free(&r->body);
    return code;
}

static int simple(const struct client *c, const char *method, const char *path,
                  const char *body)
{
    struct reply r;

    if (call(c, method, path, body, &r) != 0)
        return 1;
    return finish(&r);
}

/* GET a JSON document; NULL (message printed) on failure. */
static json_t *get_json(const struct client *c, const char *path)
{
    struct reply r;
    json_t *j;

    if (call(c, "GET", path, NULL, &r) != 0)
        return NULL;
    if (r.status != 200) {
        finish(&r);
        return NULL;
    }
    j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    qv_buf_free(&r.body);
    return j;
}

static int put_json(const struct client *c, const char *path, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = simple(c, "PUT", path, text);

    free(text);
    return rc;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "quiver: %s (see quiver --help)\n", msg);
    return 2;
}

/* "stable=90,canary=10" into an object. */
static json_t *parse_weights(const char *s)
{
    json_t *w = json_object();
    char *copy = qv_xstrdup(s), *save = NULL;

    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end;
        long v;
        if (eq == NULL) {
            json_decref(w);
            free(copy);
            return NULL;
        }
        *eq = '\0';
        v = strtol(eq + 1, &end, 10);
        if (*end != '\0' || *tok == '\0') {
            json_decref(w);
            free(copy);
            return NULL;
        }
        json_object_set_new(w, tok, json_integer(v));
    }
    free(copy);
    return w;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static int cmd_route(const struct client *c, int argc, char **argv)
{
    char path[512];
    json_t *doc;
    const char *file, *weights, *policy, *target;
    int rc;

    if (argc < 3)
        return usage_error("route show|set|clear MODEL");
    snprintf(path, sizeof(path), "/v2/models/%s/route", argv[2]);
    if (strcmp(argv[1], "show") == 0)
        return simple(c, "GET", path, NULL);
    if (strcmp(argv[1], "clear") == 0)
        return simple(c, "DELETE", path, NULL);
    if (strcmp(argv[1], "set") != 0)
        return usage_error("route show|set|clear MODEL");
    file = opt(argc, argv, "--file");
    weights = opt(argc, argv, "--weights");
    policy = opt(argc, argv, "--policy");
    target = opt(argc, argv, "--target");
    if (file) {
        char *text = NULL;
        struct qv_diag d = {{0}};
        if (qv_file_read_all(file, 1 << 20, &text, NULL, &d) != QV_OK) {
            fprintf(stderr, "quiver: --file: %s\n", d.msg);
            return 1;
        }
        rc = simple(c, "PUT", path, text);
        free(text);
        return rc;
    }
    if (!weights && !policy)
        return usage_error("route set MODEL needs --file, --weights or --policy");
    doc = get_json(c, path);
    if (doc == NULL)
        return 1;
    if (weights) {
        json_t *w = parse_weights(weights);
        if (w == NULL) {
            json_decref(doc);
            return usage_error("--weights: expected LABEL=WEIGHT,...");
        }
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
    char path[512], body[64];

    if (argc >= 5 && strcmp(argv[1], "set") == 0) {
        snprintf(path, sizeof(path), "/v2/models/%s/labels/%s", argv[2], argv[3]);
        snprintf(body, sizeof(body), "{\"version\": \"%s\"}", argv[4]);
        return simple(c, "PUT", path, body);
    }
    if (argc >= 4 && strcmp(argv[1], "delete") == 0) {
        snprintf(path, sizeof(path), "/v2/models/%s/labels/%s", argv[2], argv[3]);
        return simple(c, "DELETE", path, NULL);
    }
    return usage_error("label set MODEL LABEL VERSION | label delete MODEL LABEL");
}

/* stable := LABEL's version; LABEL removed; all weight to stable. */
static int cmd_promote(const struct client *c, int argc, char **argv)
{
    const char *label = argc >= 3 ? argv[2] : "canary";
    char path[512];
    json_t *doc, *labels, *v, *weights;
    int rc;

    if (argc < 2)
        return usage_error("promote MODEL [LABEL]");
    snprintf(path, sizeof(path), "/v2/models/%s/route", argv[1]);
    doc = get_json(c, path);
    if (doc == NULL)
        return 1;
    labels = json_object_get(doc, "labels");
    v = json_object_get(labels, label);
    if (v == NULL) {
        fprintf(stderr, "quiver: model %s has no label \"%s\"\n", argv[1], label);
        json_decref(doc);
        return 1;
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

static int cmd_events(const struct client *c, int argc, char **argv)
{
    char path[512];
    json_t *ev;
    size_t i;
    json_t *e;

    if (argc >= 2)
        snprintf(path, sizeof(path), "/v2/models/%s/events", argv[1]);
    else
        snprintf(path, sizeof(path), "/v2/events");
    ev = get_json(c, path);
    if (ev == NULL)
        return 1;
    json_array_foreach(ev, i, e) {
        const char *old = json_string_value(json_object_get(e, "old"));
        const char *now = json_string_value(json_object_get(e, "new"));
        printf("%s %s %-10s %-18s %s%s%s\n", json_string_value(json_object_get(e, "ts")),
               json_string_value(json_object_get(e, "model")),
               json_string_value(json_object_get(e, "who")),
               json_string_value(json_object_get(e, "what")), old ? old : "",
               old ? " -> " : "", now ? now : "");
    }
    json_decref(ev);
    return 0;
}

static int cmd_rollout(const struct client *c, int argc, char **argv)
{
    char path[512];
    json_t *plan;
    const char *canary, *steps, *secs, *minreq;
    int rc;

    if (argc < 3)
        return usage_error("rollout start|status|abort MODEL");
    snprintf(path, sizeof(path), "/v2/models/%s/rollout", argv[2]);
    if (strcmp(argv[1], "status") == 0)
        return simple(c, "GET", path, NULL);
    if (strcmp(argv[1], "abort") == 0)
        return simple(c, "DELETE", path, NULL);
    if (strcmp(argv[1], "start") != 0)
        return usage_error("rollout start|status|abort MODEL");
    canary = opt(argc, argv, "--canary");
    if (canary == NULL)
        return usage_error("rollout start MODEL --canary VERSION");
    plan = json_object();
    json_object_set_new(plan, "canary", json_integer(strtoll(canary, NULL, 10)));
    steps = opt(argc, argv, "--steps");
    if (steps) {
        json_t *arr = json_array();
        char *copy = qv_xstrdup(steps), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_integer(strtoll(t, NULL, 10)));
        free(copy);
        json_object_set_new(plan, "steps", arr);
    }
    secs = opt(argc, argv, "--step-seconds");
    if (secs)
        json_object_set_new(plan, "step_seconds", json_integer(strtoll(secs, NULL, 10)));
    minreq = opt(argc, argv, "--min-requests");
    if (minreq)
        json_object_set_new(plan, "min_requests", json_integer(strtoll(minreq, NULL, 10)));
    {
        char *text = json_dumps(plan, JSON_COMPACT | JSON_PRESERVE_ORDER);
        rc = simple(c, "POST", path, text);
        free(text);
    }
    json_decref(plan);
    return rc;
}

int qv_cli_client(int argc, char **argv)
{
    struct client c;
    const char *url = opt(argc, argv, "--url");
    const char *token = opt(argc, argv, "--token");
    int n = 0, rc;
    char **args = qv_xcalloc((size_t)argc + 1, sizeof(char *));

    /* Drop the global options, keep the words. */
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--url") == 0 || strcmp(argv[i], "--token") == 0) && i + 1 < argc) {
            i++;
            continue;
        }
        args[n++] = argv[i];
    }
    c.url = url ? url : getenv("QUIVER_URL") ? getenv("QUIVER_URL") : "http://127.0.0.1:8000";
    c.token = token ? token : getenv("QUIVER_TOKEN");
    if (n == 0) {
        free(args);
        return usage_error("a command is needed after the options");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(args[0], "models") == 0)
        rc = simple(&c, "GET", "/v2/repository/index", NULL);
    else if (strcmp(args[0], "route") == 0)
        rc = cmd_route(&c, n, args);
    else if (strcmp(args[0], "label") == 0)
        rc = cmd_label(&c, n, args);
    else if (strcmp(args[0], "promote") == 0)
        rc = cmd_promote(&c, n, args);
    else if (strcmp(args[0], "rollback") == 0 && n >= 2) {
        char path[512];
        snprintf(path, sizeof(path), "/v2/models/%s/route/rollback", args[1]);
        rc = simple(&c, "POST", path, NULL);
    } else if (strcmp(args[0], "events") == 0)
        rc = cmd_events(&c, n, args);
    else if (strcmp(args[0], "rollout") == 0)
        rc = cmd_rollout(&c, n, args);
    else {
        fprintf(stderr, "quiver: unknown command \"%s\" (see quiver --help)\n", args[0]);
        rc = 2;
    }
    curl_global_cleanup();
    free(args);
    return rc;
}
