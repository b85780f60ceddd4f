/* SPDX-License-Identifier: MIT
 *
 * util/siphash.c -- SipHash (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012),
 * the keyed hash for tables indexed by names a client chooses, so that nobody who does not know
 * the key can make many names fall into one bucket. SipHash-1-3 (one compression round per
 * block, three finalization rounds) is the variant hash tables use; SipHash-2-4 is the one the
 * paper publishes test vectors for, and both share the code below.
 *
 * The per-process key comes from getrandom() once, on first use.
 */
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define QV_LOG_MODULE "util"

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t x = 0;

    for (int i = 7; i >= 0; i--)
        x = (x << 8) | p[i];
    return x;
}

static uint64_t siphash_cd(int c, int d, const struct qv_sipkey *key, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = key->k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = key->k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = key->k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = key->k1 ^ UINT64_C(0x7465646279746573);
    uint64_t m, b = (uint64_t)len << 56;
    size_t left = len & 7;
    const unsigned char *end = p + (len - left);

    for (; p != end; p += 8) {
        m = load_le64(p);
        v3 ^= m;
        for (int i = 0; i < c; i++)
            SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < left; i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    for (int i = 0; i < c; i++)
        SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < d; i++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t qv_siphash13(const struct qv_sipkey *key, const void *data, size_t len)
{
    return siphash_cd(1, 3, key, data, len);
}

uint64_t qv_siphash24(const struct qv_sipkey *key, const void *data, size_t len)
{
    return siphash_cd(2, 4, key, data, len);
}

int qv_sipkey_random(struct qv_sipkey *key)
{
    unsigned char buf[16];
    size_t got = 0;

    while (got < sizeof(buf)) {
        ssize_t n = getrandom(buf + got, sizeof(buf) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return QV_EIO;
        }
        got += (size_t)n;
    }
    key->k0 = load_le64(buf);
    key->k1 = load_le64(buf + 8);
    return 0;
}

static struct qv_sipkey process_key;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

static void process_key_init(void)
{
    if (qv_sipkey_random(&process_key) != 0) {
        /* getrandom() cannot fail on a Linux kernel quiver supports once the pool is
         * initialized; without it, refuse to run with a guessable key. */
        qv_log(QV_LOG_ERROR, "msg=\"getrandom failed: no key for the keyed hash\"");
        abort();
    }
}

uint64_t qv_hash_keyed(const void *data, size_t len)
{
    pthread_once(&process_key_once, process_key_init);
    return qv_siphash13(&process_key, data, len);
}
