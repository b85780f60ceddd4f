/* SPDX-License-Identifier: MIT
 *
 * `quiver serve`: wires the store, monitor, engine, router and HTTP server
 * together, restores the persisted routes, and runs until SIGTERM/SIGINT.
 * The main thread owns the once-a-second tick (metric windows, score
 * updates, the controller) and waits for SIGTERM/SIGINT between ticks.
 */
#include "cli.h"

#define QV_LOG_MODULE "serve"
#define serve_usage qv_cli_serve_usage()

#include "../api/access_log.h"
#include "../backend/backend.h"
#include "../api/api.h"
#include "../control/cluster.h"
#include "../control/control.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

struct serve_opts {
    const char *repo, *host, *data, *tokens, *store_url, *port_file;
    const char *access_log, *node_name, *grpc_port_file;
    int grpc_port; /* -1: no gRPC service */
    long long grpc_max_msg; /* 0: --max-body-bytes */
    int access_sample;
    int port, workers, http_threads, poll_ms, spin_us, evict_idle_ms;
    int inline_us, admin_port; /* admin_port -1: no admin listener */
    int shadow_queue;
    int drain_ms, max_conns, max_conns_ip, header_timeout_ms, body_timeout_ms, idle_timeout_s;
    long long max_body, memory_budget, body_budget, decode_budget, max_request_memory;
    bool watch, explicit_mode, no_metrics, protect_inference, test_backend;
    bool lax_readiness;
};

/* In two literals: one would pass the 4095 characters C11 guarantees. */
static const char usage_head[] =
    "usage: quiver serve --repo DIR [options]\n"
    "  --repo DIR              model repository: DIR/<model>/config.json, DIR/<model>/<N>/model.*\n"
    "  --host ADDR             address to listen on (default 127.0.0.1)\n"
    "  --port N                TCP port (default 8000; 0 picks a free port)\n"
    "  --data DIR              state directory; holds the SQLite store (default ./data)\n"
    "  --store URL             sqlite:PATH (default sqlite:DATA/state.db), or\n"
    "                          postgres://USER@HOST:PORT/DB (cluster mode: nodes on one\n"
    "                          PostgreSQL share routes, labels, rollouts; docs/cluster.md)\n"
    "  --node-name NAME        this node's name in cluster mode (default: the hostname)\n"
    "  --workers N             inference worker threads (default: one per core)\n"
    "  --worker-spin-us N      an idle worker polls for work this long before sleeping\n"
    "                          (default 50; 0: sleep at once)\n"
    "  --http-threads N        HTTP threads (default: one per core)\n"
    "  --inline-threshold-us N a version without batching whose recent compute p99 is\n"
    "                          under N runs requests on the HTTP thread (default 100;\n"
    "                          0: never)\n"
    "  --shadow-queue N        shadow copies waiting for the background lane; past it\n"
    "                          a copy is dropped and counted (default 16)\n"
    "  --admin-port N          also answer /v2/health/* and /metrics on port N, on a\n"
    "                          thread of their own (0: any free port, written to the\n"
    "                          port file's second line)\n"
    "  --max-body-bytes N      larger request bodies get 413 (default 16M; K/M/G suffixes)\n"
    "  --body-budget-bytes N   all request bodies held at once; past it 429 (default 256M)\n"
    "  --decode-budget-bytes N estimated memory for decoding large JSON bodies at once\n"
    "                          (about 20x each body); past it 429 (default 1G)\n"
    "  --max-connections N     open connections at most (default 4096)\n"
    "  --max-connections-per-ip N  from one client address (default 256)\n"
    "  --header-timeout-ms N   request headers must be complete this long after the\n"
    "                          connection opened (or its next request's first byte)\n"
    "                          (default 15000)\n"
    "  --body-timeout-ms N     a request body must be complete this long after its\n"
    "                          headers (default 60000)\n"
    "  --idle-timeout-s N      an idle connection is closed (default 60)\n"
    "  --drain-timeout-ms N    at SIGTERM, how long in-flight requests may finish; those\n"
    "                          still running then are answered 503 (default 30000)\n"
    "  --memory-budget BYTES   for all loaded versions (default: half the RAM; K/M/G suffixes)\n";
static const char usage_tail[] =
    "  --max-request-memory BYTES  working memory one request may plan in a backend that\n"
    "                          sizes it from the request (ONNX); past it 413 naming the input\n"
    "                          (default: a quarter of the memory budget)\n"
    "  --poll-ms N             repository rescan interval (default 2000)\n"
    "  --evict-idle-ms N       a version idle this long may be evicted to make room for\n"
    "                          a load that does not fit the memory budget (default 10000)\n"
    "  --no-watch              do not use inotify; rely on polling\n"
    "  --model-control MODE    poll (load what the policies select; default) or explicit\n"
    "                          (load only on POST /v2/repository/.../load)\n"
    "  --strict-readiness BOOL true (default): /v2/health/ready is 200 only when every\n"
    "                          model the repository asks for has a READY version;\n"
    "                          false: 200 whenever the server is serving\n"
    "  --tokens FILE           require bearer tokens on management endpoints\n"
    "                          (lines: name token admin|read)\n"
    "  --tokens-protect-inference  with --tokens, inference and metadata need a token too\n"
    "                          (health and /metrics stay open)\n"
    "  --port-file FILE        write the bound port to FILE once ready\n"
    "  --grpc-port N           also serve the KServe v2 gRPC service on port N (default:\n"
    "                          off; 0 picks a free port; docs/grpc.md)\n"
    "  --grpc-port-file FILE   write the bound gRPC port to FILE once ready\n"
    "  --grpc-max-message-bytes N  larger gRPC request messages are refused\n"
    "                          (RESOURCE_EXHAUSTED; default: --max-body-bytes)\n"
    "  --log-level LEVEL       debug, info (default), warn, error\n"
    "  --log-format FORMAT     logfmt (default) or json, one line per event on stderr\n"
    "  --access-log FILE       one line per request to FILE (- for stderr; default: none)\n"
    "  --access-log-sample N   log one request in N (default 1: all; errors always)\n"
    "  --enable-test-backend   allow the fault-injecting `test` backend (model.test), for\n"
    "                          tests and benchmarks; off by default\n"
    "  --no-metrics            do not record per-request metrics (to measure their cost;\n"
    "                          /metrics, /stats, scores and rollouts then see no traffic)\n";

const char *qv_cli_serve_usage(void)
{
    static char text[sizeof(usage_head) + sizeof(usage_tail)];

    if (text[0] == '\0')
        snprintf(text, sizeof(text), "%s%s", usage_head, usage_tail);
    return text;
}

static int parse_size(const char *s, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_int_opt(const char *name, const char *s, int lo, int hi, int *out)
{
    long long v;

    if (parse_size(s, &v) != 0 || v < lo || v > hi) {
        fprintf(stderr, "quiver serve: %s: expected a number from %d to %d, got \"%s\"\n", name,
                lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct serve_opts *o)
{
    static const struct option longopts[] = {
        {"repo", required_argument, 0, 'r'},        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},        {"data", required_argument, 0, 'd'},
        {"store", required_argument, 0, 's'},       {"workers", required_argument, 0, 'w'},
        {"http-threads", required_argument, 0, 't'}, {"max-body-bytes", required_argument, 0, 'b'},
        {"memory-budget", required_argument, 0, 'm'},
        {"max-request-memory", required_argument, 0, 'Q'}, {"poll-ms", required_argument, 0, 'P'},
        {"no-watch", no_argument, 0, 'n'},          {"model-control", required_argument, 0, 'c'},
        {"tokens", required_argument, 0, 'T'},      {"port-file", required_argument, 0, 'f'},
        {"log-level", required_argument, 0, 'l'},   {"help", no_argument, 0, 'h'},
        {"worker-spin-us", required_argument, 0, 'S'},
        {"inline-threshold-us", required_argument, 0, 0x101},
        {"admin-port", required_argument, 0, 0x102},
        {"shadow-queue", required_argument, 0, 0x103},
        {"evict-idle-ms", required_argument, 0, 'E'},
        {"no-metrics", no_argument, 0, 'M'},
        {"tokens-protect-inference", no_argument, 0, 'I'},
        {"enable-test-backend", no_argument, 0, 'X'},
        {"log-format", required_argument, 0, 'F'},
        {"access-log", required_argument, 0, 'A'},
        {"access-log-sample", required_argument, 0, 'a'},
        {"drain-timeout-ms", required_argument, 0, 'D'},
        {"body-budget-bytes", required_argument, 0, 'B'},
        {"max-connections", required_argument, 0, 'C'},
        {"max-connections-per-ip", required_argument, 0, 'i'},
        {"header-timeout-ms", required_argument, 0, 'R'},
        {"idle-timeout-s", required_argument, 0, 'L'},
        {"decode-budget-bytes", required_argument, 0, 'J'},
        {"body-timeout-ms", required_argument, 0, 'Y'},
        {"node-name", required_argument, 0, 'N'},
        {"grpc-port", required_argument, 0, 0x110},
        {"grpc-port-file", required_argument, 0, 0x111},
        {"grpc-max-message-bytes", required_argument, 0, 0x112},
        {"strict-readiness", required_argument, 0, 0x1a0},
        {0, 0, 0, 0},
    };
    int ch;

    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 8000;
    o->admin_port = -1;
    o->grpc_port = -1;
    o->data = "data";
    o->max_body = 16ll << 20;
    o->body_budget = 256ll << 20;
    o->drain_ms = 30000;
    o->watch = true;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r': o->repo = optarg; break;
        case 'H': o->host = optarg; break;
        case 'p':
            if (parse_int_opt("--port", optarg, 0, 65535, &o->port))
                return -1;
            break;
        case 'd': o->data = optarg; break;
        case 's': o->store_url = optarg; break;
        case 'N':
            if (optarg[0] == '\0' || strlen(optarg) > 63 ||
                strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
                    strlen(optarg)) {
                fprintf(stderr, "quiver serve: --node-name: expected 1 to 63 characters among "
                                "A-Z a-z 0-9 . _ -\n");
                return -1;
            }
            o->node_name = optarg;
            break;
        case 'w':
            if (parse_int_opt("--workers", optarg, 1, 256, &o->workers))
                return -1;
            break;
        case 't':
            if (parse_int_opt("--http-threads", optarg, 1, 256, &o->http_threads))
                return -1;
            break;
        case 'b':
            if (parse_size(optarg, &o->max_body) != 0 || o->max_body < 1024) {
                fprintf(stderr, "quiver serve: --max-body-bytes: expected a size of at least "
                                "1024, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'm':
            if (parse_size(optarg, &o->memory_budget) != 0 || o->memory_budget == 0) {
                fprintf(stderr, "quiver serve: --memory-budget: expected a size such as 512M, "
                                "got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'Q':
            if (parse_size(optarg, &o->max_request_memory) != 0 ||
                o->max_request_memory < (1ll << 20)) {
                fprintf(stderr, "quiver serve: --max-request-memory: expected a size of at "
                                "least 1M, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'P':
            if (parse_int_opt("--poll-ms", optarg, 10, 3600000, &o->poll_ms))
                return -1;
            break;
        case 'D':
            if (parse_int_opt("--drain-timeout-ms", optarg, 0, 3600000, &o->drain_ms))
                return -1;
            break;
        case 'B':
            if (parse_size(optarg, &o->body_budget) != 0 || o->body_budget < 1024) {
                fprintf(stderr, "quiver serve: --body-budget-bytes: expected a size of at "
                                "least 1024, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'J':
            if (parse_size(optarg, &o->decode_budget) != 0 || o->decode_budget < 1024) {
                fprintf(stderr, "quiver serve: --decode-budget-bytes: expected a size of at "
                                "least 1024, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'C':
            if (parse_int_opt("--max-connections", optarg, 1, 1000000, &o->max_conns))
                return -1;
            break;
        case 'i':
            if (parse_int_opt("--max-connections-per-ip", optarg, 1, 1000000, &o->max_conns_ip))
                return -1;
            break;
        case 'R':
            if (parse_int_opt("--header-timeout-ms", optarg, 100, 3600000,
                              &o->header_timeout_ms))
                return -1;
            break;
        case 'Y':
            if (parse_int_opt("--body-timeout-ms", optarg, 100, 3600000, &o->body_timeout_ms))
                return -1;
            break;
        case 'L':
            if (parse_int_opt("--idle-timeout-s", optarg, 1, 86400, &o->idle_timeout_s))
                return -1;
            break;
        case 'n': o->watch = false; break;
        case 'M': o->no_metrics = true; break;
        case 'I': o->protect_inference = true; break;
        case 'X': o->test_backend = true; break;
        case 'E':
            if (parse_int_opt("--evict-idle-ms", optarg, 1, 86400000, &o->evict_idle_ms))
                return -1;
            break;
        case 'S':
            if (parse_int_opt("--worker-spin-us", optarg, 0, 100000, &o->spin_us))
                return -1;
            if (o->spin_us == 0)
                o->spin_us = -1;
            break;
        case 0x101:
            if (parse_int_opt("--inline-threshold-us", optarg, 0, 1000000, &o->inline_us))
                return -1;
            if (o->inline_us == 0)
                o->inline_us = -1;
            break;
        case 0x103:
            if (parse_int_opt("--shadow-queue", optarg, 1, 65536, &o->shadow_queue))
                return -1;
            break;
        case 0x102:
            if (parse_int_opt("--admin-port", optarg, 0, 65535, &o->admin_port))
                return -1;
            break;
        case 0x110:
            if (parse_int_opt("--grpc-port", optarg, 0, 65535, &o->grpc_port))
                return -1;
            break;
        case 0x111: o->grpc_port_file = optarg; break;
        case 0x112:
            if (parse_size(optarg, &o->grpc_max_msg) != 0 || o->grpc_max_msg < 1024 ||
                o->grpc_max_msg > 0x7fffffffll) {
                fprintf(stderr, "quiver serve: --grpc-max-message-bytes: expected a size from "
                                "1K to 2G-1, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'c':
            if (strcmp(optarg, "explicit") != 0 && strcmp(optarg, "poll") != 0) {
                fprintf(stderr, "quiver serve: --model-control: expected poll or explicit, "
                                "got \"%s\"\n", optarg);
                return -1;
            }
            o->explicit_mode = strcmp(optarg, "explicit") == 0;
            break;
        case 0x1a0:
            if (strcmp(optarg, "true") != 0 && strcmp(optarg, "false") != 0) {
                fprintf(stderr, "quiver serve: --strict-readiness: expected true or false, "
                                "got \"%s\"\n", optarg);
                return -1;
            }
            o->lax_readiness = strcmp(optarg, "false") == 0;
            break;
        case 'T': o->tokens = optarg; break;
        case 'f': o->port_file = optarg; break;
        case 'l':
            if (strcmp(optarg, "debug") == 0)
                qv_log_set_level(QV_LOG_DEBUG);
            else if (strcmp(optarg, "info") == 0)
                qv_log_set_level(QV_LOG_INFO);
            else if (strcmp(optarg, "warn") == 0)
                qv_log_set_level(QV_LOG_WARN);
            else if (strcmp(optarg, "error") == 0)
                qv_log_set_level(QV_LOG_ERROR);
            else {
                fprintf(stderr, "quiver serve: --log-level: expected debug, info, warn or "
                                "error, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'F':
            if (qv_access_log_parse_format(optarg) != 0)
                return -1;
            break;
        case 'A': o->access_log = optarg; break;
        case 'a':
            if (parse_int_opt("--access-log-sample", optarg, 1, 1000000, &o->access_sample))
                return -1;
            break;
        case 'h': fputs(serve_usage, stdout); exit(0);
        case '?':
        default:
            if (optopt)
                fprintf(stderr, "quiver serve: option -%c: unknown or missing its value\n",
                        optopt);
            else
                fprintf(stderr, "quiver serve: %s: unknown option or missing its value\n",
                        argv[optind - 1]);
            fputs(serve_usage, stderr);
            return -1;
        }
    }
    if (o->protect_inference && o->tokens == NULL) {
        fprintf(stderr, "quiver serve: --tokens-protect-inference needs --tokens FILE\n");
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "quiver serve: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (o->repo == NULL) {
        fprintf(stderr, "quiver serve: --repo DIR is required\n%s", serve_usage);
        return -1;
    }
    if (o->body_budget < o->max_body) {
        fprintf(stderr, "quiver serve: --body-budget-bytes (%lld) must be at least "
                        "--max-body-bytes (%lld)\n", o->body_budget, o->max_body);
        return -1;
    }
    return 0;
}

/* ---- Signals ----
 * Libraries may start threads before main (OpenBLAS does, in a constructor),
 * so blocking SIGTERM in main cannot keep it away from every thread. A
 * handler, process-wide, turns the signal into a byte on a pipe that the
 * main loop polls, whichever thread the kernel delivered it to.
 * SIGTERM, SIGINT and SIGQUIT stop gracefully (drain, then exit 0); SIGHUP,
 * SIGUSR1, SIGUSR2 and SIGALRM are logged and otherwise ignored (their
 * default action would kill the server with requests in flight). */
static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_last;

static void on_signal(int sig)
{
    char b = (char)sig;
    int saved = errno;

    sig_last = sig;
    if (write(sig_pipe[1], &b, 1) < 0) {
        /* The pipe is full: a stop is already pending. */
    }
    errno = saved;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGALRM: return "SIGALRM";
    default: return "other";
    }
}

static int install_signals(void)
{
    struct sigaction sa;

    if (pipe(sig_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits up to ms for a stop signal; returns it, or 0. */
static int wait_signal(int ms)
{
    struct pollfd p = {sig_pipe[0], POLLIN, 0};
    char b;

    if (poll(&p, 1, ms) > 0 && read(sig_pipe[0], &b, 1) == 1)
        return (int)(unsigned char)b;
    return 0;
}

/* ---- Wiring ---- */

struct server {
    qv_store *store;
    qv_monitor *monitor;
    qv_engine *engine;
    qv_router *router;
    qv_control *control;
    qv_cluster *cluster; /* cluster mode (a postgres store) only */
    bool clustered;      /* the store is PostgreSQL: versions are the cluster's */
    qv_api *api;
    qv_grpc *grpc;       /* --grpc-port only */
};

/* The server left running at an abandoned stop (reachable until the exit). */
static struct server abandoned_server;

/* One server per --data directory: an advisory lock held for the process's
 * life (released by the kernel at exit, even after kill -9). */
static int lock_data_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        fprintf(stderr, "quiver serve: --data: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            fprintf(stderr, "quiver serve: --data: %s is in use by another quiver serve "
                            "(one server per data directory)\n", dir);
        else
            fprintf(stderr, "quiver serve: --data: cannot lock %s: %s\n", dir,
                    strerror(errno));
        close(fd);
        return -1;
    }
    return fd; /* kept open: the lock lives as long as the process */
}

#define ARTIFACT_DIFFERS "artifact differs from the cluster"

/* Cluster mode: the first node to load a version records its artifact's SHA-256; a node whose
 * artifact differs refuses the version (UNAVAILABLE) rather than serve other answers under the
 * same version number. An unreachable store refuses nothing (serving goes on). */
static int check_artifact(void *ud, const char *model, int64_t version, const char *sha256,
                          char *why, size_t why_len)
{
    struct server *s = ud;
    struct qv_store_version row;
    struct qv_diag d = {{0}};
    int differs;

    if (!s->clustered)
        return 0;
    memset(&row, 0, sizeof(row));
    if (qv_store_version_get(s->store, model, version, &row, &d) != QV_OK)
        return 0;
    differs = row.sha256[0] != '\0' && strcmp(row.sha256, sha256) != 0;
    if (differs)
        snprintf(why, why_len, ARTIFACT_DIFFERS ": sha256 %s vs %s", sha256, row.sha256);
    qv_store_version_fini(&row);
    return differs;
}

static void on_version_state(void *ud, const char *model, int64_t version, const char *sha256,
                             enum qv_version_state st, const char *reason)
{
    struct server *s = ud;
    struct qv_store_version row;
    struct qv_store_event ev;
    struct qv_diag d = {{0}};
    char what[64];

    if (s->store == NULL)
        return;
    /* A node refusing the cluster's artifact leaves the cluster's record (and hash) alone. */
    if (s->clustered && reason != NULL && strncmp(reason, ARTIFACT_DIFFERS,
                                                  strlen(ARTIFACT_DIFFERS)) == 0)
        goto audit;
    if (s->clustered && (sha256 == NULL || sha256[0] == '\0')) {
        struct qv_store_version old;

        /* Keep the hash the cluster recorded when this node reports a state without one. */
        memset(&old, 0, sizeof(old));
        if (qv_store_version_get(s->store, model, version, &old, &d) == QV_OK) {
            static _Thread_local char kept[QV_SHA256_HEX];

            memcpy(kept, old.sha256, sizeof(kept));
            sha256 = kept;
            qv_store_version_fini(&old);
        }
        memset(&d, 0, sizeof(d));
    }
    memset(&row, 0, sizeof(row));
    row.model = (char *)model;
    row.version = version;
    snprintf(row.sha256, sizeof(row.sha256), "%s", sha256 ? sha256 : "");
    snprintf(row.state, sizeof(row.state), "%s", qv_version_state_name(st));
    row.reason = (char *)reason;
    if (qv_store_version_upsert(s->store, &row, &d) != QV_OK)
        qv_log(QV_LOG_WARN, "model=%s version=%lld msg=\"cannot record the state\" reason=\"%s\"",
               model, (long long)version, d.msg);
audit:
    if (st == QV_STATE_LOADING || st == QV_STATE_DRAINING)
        return; /* transitions; the audit log keeps the outcomes */
    memset(&ev, 0, sizeof(ev));
    snprintf(what, sizeof(what), "%lld:%s", (long long)version, qv_version_state_name(st));
    ev.model = (char *)model;
    ev.who = "engine";
    ev.what = "version.state";
    ev.new_value = what;
    ev.old_value = reason && *reason ? (char *)reason : NULL;
    qv_store_event_add(s->store, &ev, NULL, &d);
}

static bool resolver_is_ready(void *ud, const char *model, int64_t version)
{
    return qv_engine_is_ready(ud, model, version);
}

static int64_t resolver_highest(void *ud, const char *model)
{
    int64_t v[QV_MAX_VERSIONS];
    int n = qv_engine_ready_versions(ud, model, v, QV_MAX_VERSIONS);

    return n > 0 ? v[n - 1] : 0;
}

static int write_port_file(const char *path, int port, int admin_port)
{
    char tmp[1100];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", port);
    if (admin_port > 0)
        fprintf(f, "%d\n", admin_port);
    fclose(f);
    return rename(tmp, path);
}

int qv_cli_serve(int argc, char **argv)
{
    struct serve_opts o;
    struct server s;
    struct qv_engine_config ecfg;
    struct qv_engine_hooks hooks;
    struct qv_router_config rcfg;
    struct qv_api_config acfg;
    struct qv_api_deps deps;
    struct qv_diag d = {{0}};
    char store_url[1200];
    uint64_t t_start = qv_now_ns();
    int rc = 1, sig = 0;

    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    memset(&s, 0, sizeof(s));

    if (install_signals() != 0) {
        fprintf(stderr, "quiver serve: cannot set up signal handling: %s\n", strerror(errno));
        return 1;
    }

    if (qv_mkdir_p(o.data) != QV_OK) {
        fprintf(stderr, "quiver serve: --data: cannot create %s: %s\n", o.data, strerror(errno));
        return 1;
    }
    if (lock_data_dir(o.data) < 0)
        return 1;
    if (o.store_url)
        snprintf(store_url, sizeof(store_url), "%s", o.store_url);
    else
        snprintf(store_url, sizeof(store_url), "sqlite:%s/state.db", o.data);
    if (qv_store_open(store_url, &s.store, &d) != QV_OK) {
        fprintf(stderr, "quiver serve: --store: %s\n", d.msg);
        return 1;
    }
    qv_monitor_create(&s.monitor);
    if (o.no_metrics)
        qv_monitor_set_recording(s.monitor, false);

    memset(&ecfg, 0, sizeof(ecfg));
    ecfg.repo_root = o.repo;
    ecfg.workers = o.workers;
    ecfg.memory_budget = (uint64_t)o.memory_budget;
    ecfg.poll_ms = o.poll_ms;
    ecfg.watch = o.watch;
    ecfg.explicit_mode = o.explicit_mode;
    ecfg.spin_us = o.spin_us;
    ecfg.inline_us = o.inline_us;
    ecfg.bg_limit = o.shadow_queue;
    ecfg.evict_idle_ms = o.evict_idle_ms;
    memset(&hooks, 0, sizeof(hooks));
    hooks.version_state = on_version_state;
    hooks.check_artifact = check_artifact;
    s.clustered = strcmp(qv_store_kind(s.store), "postgres") == 0;
    hooks.ud = &s;
    qv_backend_enable_test(o.test_backend);
    qv_backend_set_max_request_bytes(
        o.max_request_memory > 0
            ? (size_t)o.max_request_memory
            : (size_t)((o.memory_budget > 0 ? (uint64_t)o.memory_budget
                                            : qv_mem_total_bytes() / 2) / 4));
    if (qv_engine_create(&ecfg, &hooks, s.monitor, &s.engine, &d) != QV_OK) {
        fprintf(stderr, "quiver serve: %s\n", d.msg);
        goto out;
    }
    memset(&rcfg, 0, sizeof(rcfg));
    rcfg.resolver.is_ready = resolver_is_ready;
    rcfg.resolver.highest_ready = resolver_highest;
    rcfg.resolver.ud = s.engine;
    qv_router_create(&rcfg, &s.router);

    if (qv_engine_start(s.engine, &d) != QV_OK) {
        fprintf(stderr, "quiver serve: %s\n", d.msg);
        goto out;
    }
    if (qv_control_create(s.engine, s.router, s.monitor, s.store, &s.control, &d) != QV_OK) {
        fprintf(stderr, "quiver serve: %s\n", d.msg);
        goto out;
    }

    if (strcmp(qv_store_kind(s.store), "postgres") == 0) {
        char host[64] = "";

        if (o.node_name == NULL && gethostname(host, sizeof(host) - 1) != 0)
            host[0] = '\0';
        for (char *p = host; *p; p++) /* the name goes into JSON and metric labels */
            if (strchr("._-", *p) == NULL && !isalnum((unsigned char)*p))
                *p = '-';
        if (o.node_name == NULL && host[0] == '\0')
            snprintf(host, sizeof(host), "node");
        if (qv_cluster_start(store_url, s.store, s.router, o.node_name ? o.node_name : host,
                             qv_control_cluster_kv, s.control, &s.cluster, &d) != QV_OK) {
            fprintf(stderr, "quiver serve: %s\n", d.msg);
            goto out;
        }
        qv_control_set_cluster(s.control, s.cluster);
        qv_router_set_feedback_source(s.router, qv_cluster_fb_source, s.cluster);
        qv_log(QV_LOG_INFO, "node=%s msg=\"cluster mode: state shared through PostgreSQL\"",
               qv_cluster_node(s.cluster));
    }

    memset(&acfg, 0, sizeof(acfg));
    acfg.host = o.host;
    acfg.port = o.port;
    acfg.max_body_bytes = (size_t)o.max_body;
    acfg.body_budget_bytes = (size_t)o.body_budget;
    acfg.max_connections = o.max_conns;
    acfg.max_connections_per_ip = o.max_conns_ip;
    acfg.header_timeout_ms = o.header_timeout_ms;
    acfg.idle_timeout_s = o.idle_timeout_s;
    acfg.body_timeout_ms = o.body_timeout_ms;
    acfg.decode_budget_bytes = (size_t)o.decode_budget;
    acfg.threads = o.http_threads;
    acfg.tokens_file = o.tokens;
    acfg.protect_inference = o.protect_inference;
    acfg.admin = o.admin_port >= 0;
    acfg.lax_readiness = o.lax_readiness;
    acfg.admin_port = o.admin_port > 0 ? o.admin_port : 0;
    deps.engine = s.engine;
    deps.router = s.router;
    deps.monitor = s.monitor;
    deps.store = s.store;
    deps.control = s.control;
    if (qv_access_log_open(o.access_log, o.access_sample, &d) != QV_OK) {
        fprintf(stderr, "quiver serve: %s\n", d.msg);
        goto out;
    }
    if (qv_api_start(&acfg, &deps, &s.api, &d) != QV_OK) {
        fprintf(stderr, "quiver serve: %s\n", d.msg);
        goto out;
    }
    if (o.grpc_port >= 0) {
        struct qv_grpc_config gcfg = {o.host, o.grpc_port,
                                      (size_t)(o.grpc_max_msg ? o.grpc_max_msg : o.max_body),
                                      o.http_threads};
        if (qv_grpc_start(&gcfg, s.api, &s.grpc, &d) != QV_OK) {
            fprintf(stderr, "quiver serve: %s\n", d.msg);
            goto out;
        }
        if (o.grpc_port_file && write_port_file(o.grpc_port_file, qv_grpc_port(s.grpc), 0) != 0) {
            fprintf(stderr, "quiver serve: --grpc-port-file: cannot write %s\n",
                    o.grpc_port_file);
            goto out;
        }
    }
    if (o.port_file && write_port_file(o.port_file, qv_api_port(s.api), qv_api_admin_port(s.api)) != 0) {
        fprintf(stderr, "quiver serve: --port-file: cannot write %s\n", o.port_file);
        goto out;
    }
    qv_log(QV_LOG_INFO, "host=%s port=%d repo=%s store=%s startup_ms=%.1f msg=\"ready\"", o.host,
           qv_api_port(s.api), o.repo,
           s.cluster != NULL ? "postgres" : store_url /* a URL may hold a password */, (double)(qv_now_ns() - t_start) / 1e6);

    for (;;) {
        uint64_t next = qv_now_ns() + 1000000000ull;
        sig = wait_signal(1000);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
            break;
        if (sig != 0)
            qv_log(QV_LOG_INFO, "signal=%s msg=\"ignored: only SIGTERM, SIGINT and SIGQUIT "
                   "stop the server\"", sig_name(sig));
        if (qv_now_ns() >= next - 1000000ull) {
            qv_monitor_tick(s.monitor);
            qv_control_tick(s.control);
        }
    }
    qv_log(QV_LOG_INFO, "signal=%s drain_timeout_ms=%d msg=\"shutting down: finishing "
           "in-flight requests\"", sig_name(sig), o.drain_ms);
    rc = 0;
out:
    /* gRPC first: its calls run through the HTTP server's handlers. */
    if (qv_grpc_stop(s.grpc, o.drain_ms) > 0 || qv_api_stop(s.api, o.drain_ms) > 0) {
        /* Some backend call outlived the drain deadline: its request was
         * answered 503, and its thread still runs inside the engine. Nothing
         * it may touch is freed; the process exits around it. */
        qv_log(QV_LOG_WARN, "msg=\"stopped with work abandoned after the drain deadline\"");
        abandoned_server = s;
        fflush(NULL);
        _exit(rc);
    }
    qv_access_log_close();
    qv_cluster_stop(s.cluster);
    qv_control_destroy(s.control);
    qv_engine_destroy(s.engine);
    qv_router_destroy(s.router);
    qv_monitor_destroy(s.monitor);
    qv_store_close(s.store);
    if (rc == 0)
        qv_log(QV_LOG_INFO, "msg=\"stopped\"");
    return rc;
}
