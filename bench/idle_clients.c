/* SPDX-License-Identifier: MIT
 *
 * bench/idle_clients.c: a new client's latency with and without slow clients
 * holding connections (bench/idle_clients.sh runs it against quiver).
 *
 *   idle_clients HOST PORT PATH BODY.json N_REQ N_IDLE N_TRICKLE
 *
 * First N_REQ requests, each on a new connection from HOST (as a client that
 * just arrived): POST BODY to PATH. Then N_IDLE kept-alive connections are
 * opened (each served one GET /v2/health/live, then left idle) and N_TRICKLE
 * connections that send a request line and then one header byte per 100 ms
 * (those cut by the server's header deadline are reopened), from loopback
 * addresses 127.0.0.2 and up (250 per address, under the default
 * per-address cap); and the same N_REQ requests are timed again.
 *
 * Prints one line:
 *   IDLE base_p50_us=.. base_p99_us=.. loaded_p50_us=.. loaded_p99_us=.. ok=.. of=..
 *        idle=.. trickle=.. reopened=..
 * (ok: answers with status 200 across both phases). Exits 1 when it cannot
 * open the connections.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PER_ADDR 250

static struct in_addr g_dst;
static int g_port;

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A connection from 127.0.0.<host> (0: any source address). */
static int connect_from(int host)
{
    struct sockaddr_in src, dst;
    struct timeval tv = {30, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    if (host > 0) {
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)host);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            close(fd);
            return -1;
        }
    }
    memset(&dst, 0, sizeof(dst));
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)g_port);
    dst.sin_addr = g_dst;
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one answer with a Content-Length; returns its status or -1. */
static int read_answer(int fd)
{
    char buf[65536];
    size_t n = 0, want = 0;
    char *end = NULL;

    for (;;) {
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            for (char *p = buf; p < end; p++)
                if (strncasecmp(p, "\r\nContent-Length:", 17) == 0)
                    want = (size_t)strtoul(p + 17, NULL, 10);
        }
        if (end != NULL && n - (size_t)(end + 4 - buf) >= want)
            break;
        if (n + 1 >= sizeof(buf))
            return -1;
    }
    return strncmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* N_REQ requests, a new connection each; fills p50/p99; returns the 200s. */
static int measure(const char *req, size_t req_len, int n, uint64_t *p50, uint64_t *p99)
{
    uint64_t *lat = calloc((size_t)n, sizeof(*lat));
    int ok = 0;

    if (lat == NULL)
        exit(1);
    for (int i = 0; i < n; i++) {
        uint64_t t0 = now_us();
        int fd = connect_from(0), st = -1;
        if (fd >= 0 && send_all(fd, req, req_len) == 0)
            st = read_answer(fd);
        lat[i] = now_us() - t0;
        if (st == 200)
            ok++;
        if (fd >= 0)
            close(fd);
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
    *p50 = lat[n / 2];
    *p99 = lat[(size_t)n * 99 / 100 < (size_t)n ? (size_t)n * 99 / 100 : (size_t)n - 1];
    free(lat);
    return ok;
}

static const char TRICKLE_HEAD[] = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ";

struct trickler {
    int *fds;
    int n, first_host;
    atomic_bool stop;
    atomic_int reopened;
};

static void *trickle_main(void *arg)
{
    struct trickler *t = arg;

    while (!atomic_load(&t->stop)) {
        for (int i = 0; i < t->n; i++) {
            char c;
            ssize_t got;
            if (t->fds[i] >= 0) {
                got = recv(t->fds[i], &c, 1, MSG_DONTWAIT);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                    send(t->fds[i], "a", 1, MSG_NOSIGNAL) != 1) {
                    close(t->fds[i]);
                    t->fds[i] = -1;
                }
            }
            if (t->fds[i] < 0) {
                t->fds[i] = connect_from(t->first_host + i / PER_ADDR);
                if (t->fds[i] >= 0 &&
                    send_all(t->fds[i], TRICKLE_HEAD, sizeof(TRICKLE_HEAD) - 1) != 0) {
                    close(t->fds[i]);
                    t->fds[i] = -1;
                }
                atomic_fetch_add(&t->reopened, 1);
            }
        }
        usleep(100 * 1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static char body[1 << 20];
    char *req;
    size_t body_len, req_len;
    int n_req, n_idle, n_trickle, ok, idle_open = 0;
    uint64_t b50, b99, l50, l99;
    FILE *f;
    int *idle, *tfds;
    struct trickler t;
    pthread_t th;
    struct rlimit rl;
    static const char HEALTH[] = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";

    if (argc != 8) {
        fprintf(stderr, "usage: idle_clients HOST PORT PATH BODY.json N_REQ N_IDLE N_TRICKLE\n");
        return 2;
    }
    if (inet_pton(AF_INET, argv[1], &g_dst) != 1)
        return 2;
    g_port = atoi(argv[2]);
    n_req = atoi(argv[5]);
    n_idle = atoi(argv[6]);
    n_trickle = atoi(argv[7]);
    if (n_req < 1 || n_idle < 0 || n_trickle < 0)
        return 2;
    if ((f = fopen(argv[4], "rb")) == NULL)
        return 2;
    body_len = fread(body, 1, sizeof(body) - 1, f);
    fclose(f);
    req = malloc(body_len + 512);
    if (req == NULL)
        return 1;
    req_len = (size_t)sprintf(req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                              "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                              argv[3], body_len);
    memcpy(req + req_len, body, body_len);
    req_len += body_len;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    ok = measure(req, req_len, n_req, &b50, &b99);

    idle = calloc((size_t)n_idle + 1, sizeof(int));
    tfds = calloc((size_t)n_trickle + 1, sizeof(int));
    if (idle == NULL || tfds == NULL)
        return 1;
    for (int i = 0; i < n_idle; i++) {
        idle[i] = connect_from(2 + i / PER_ADDR);
        if (idle[i] < 0 || send_all(idle[i], HEALTH, sizeof(HEALTH) - 1) != 0 ||
            read_answer(idle[i]) != 200) {
            fprintf(stderr, "idle_clients: idle connection %d not served\n", i);
            return 1;
        }
        idle_open++;
    }
    for (int i = 0; i < n_trickle; i++)
        tfds[i] = -1;
    t.fds = tfds;
    t.n = n_trickle;
    t.first_host = 2 + (n_idle + PER_ADDR - 1) / PER_ADDR;
    atomic_init(&t.stop, false);
    atomic_init(&t.reopened, 0);
    if (pthread_create(&th, NULL, trickle_main, &t) != 0)
        return 1;
    usleep(300 * 1000); /* every trickling connection open */

    ok += measure(req, req_len, n_req, &l50, &l99);

    atomic_store(&t.stop, true);
    pthread_join(th, NULL);
    printf("IDLE base_p50_us=%llu base_p99_us=%llu loaded_p50_us=%llu loaded_p99_us=%llu "
           "ok=%d of=%d idle=%d trickle=%d reopened=%d\n",
           (unsigned long long)b50, (unsigned long long)b99, (unsigned long long)l50,
           (unsigned long long)l99, ok, 2 * n_req, idle_open, n_trickle,
           atomic_load(&t.reopened) - n_trickle);
    for (int i = 0; i < n_idle; i++)
        close(idle[i]);
    for (int i = 0; i < n_trickle; i++)
        if (tfds[i] >= 0)
            close(tfds[i]);
    free(idle);
    free(tfds);
    free(req);
    return 0;
}
