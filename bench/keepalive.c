/* SPDX-License-Identifier: MIT
 *
 * bench/keepalive.c: a fixed number of POSTs on one kept-alive connection, one
 * after another, for counting the server's system calls per request
 * (bench/rows_hotpath.sh runs it under `strace -c -f -p SERVER`).
 *
 *   keepalive HOST PORT PATH BODY.json N
 *
 * Prints "KEEPALIVE requests=N ok=M" (M: answers with status 200). Exits 1
 * on a connection error or an answer it cannot read.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BODY (1 << 20)

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one answer; returns its status or -1. buf holds leftover bytes. */
static int read_answer(int fd, char *buf, size_t cap, size_t *have)
{
    char *end;
    long status, clen = -1;
    size_t head, total;

    for (;;) {
        buf[*have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL)
            break;
        if (*have + 1 >= cap)
            return -1;
        ssize_t r = read(fd, buf + *have, cap - 1 - *have);
        if (r <= 0)
            return -1;
        *have += (size_t)r;
    }
    head = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.%*d %ld", &status) != 1)
        return -1;
    for (char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = strtol(p + 15, NULL, 10);
            break;
        }
    }
    if (clen < 0 || (size_t)clen > cap - 1 - head)
        return -1;
    total = head + (size_t)clen;
    while (*have < total) {
        ssize_t r = read(fd, buf + *have, cap - 1 - *have);
        if (r <= 0)
            return -1;
        *have += (size_t)r;
    }
    memmove(buf, buf + total, *have - total);
    *have -= total;
    return (int)status;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sin;
    char *body, *req, *buf;
    size_t blen, rlen, have = 0;
    long n, ok = 0;
    int fd, one = 1;
    FILE *f;

    if (argc != 6) {
        fprintf(stderr, "usage: keepalive HOST PORT PATH BODY.json N\n");
        return 2;
    }
    n = strtol(argv[5], NULL, 10);
    f = fopen(argv[4], "rb");
    body = malloc(MAX_BODY);
    buf = malloc(MAX_BODY);
    req = malloc(MAX_BODY + 512);
    if (f == NULL || body == NULL || buf == NULL || req == NULL || n <= 0) {
        fprintf(stderr, "keepalive: cannot read %s\n", argv[4]);
        return 2;
    }
    blen = fread(body, 1, MAX_BODY, f);
    fclose(f);
    rlen = (size_t)snprintf(req, 512,
                            "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            argv[3], argv[1], argv[2], blen);
    memcpy(req + rlen, body, blen);
    rlen += blen;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
        fprintf(stderr, "keepalive: bad address %s\n", argv[1]);
        return 2;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("keepalive: connect");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (long i = 0; i < n; i++) {
        int st;
        if (write_all(fd, req, rlen) != 0) {
            perror("keepalive: write");
            return 1;
        }
        st = read_answer(fd, buf, MAX_BODY, &have);
        if (st < 0) {
            fprintf(stderr, "keepalive: cannot read answer %ld\n", i);
            return 1;
        }
        ok += st == 200;
    }
    close(fd);
    printf("KEEPALIVE requests=%ld ok=%ld\n", n, ok);
    free(body);
    free(buf);
    free(req);
    return 0;
}
