/* SPDX-License-Identifier: MIT
 *
 * util/timeparse.c -- points in time as clients write them in query parameters
 * ("since"): milliseconds since the epoch, ISO 8601, or a duration back from now.
 */
#include "util.h"

#include <string.h>
#include <time.h>

/* Digits only, at least one, without overflow. */
static bool all_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (UINT64_MAX / 2 - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* Exactly n digits at *p, advancing it. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int qv_time_parse(const char *s, uint64_t *ms)
{
    struct tm tm;
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
    time_t t;

    if (s == NULL)
        return QV_EINVAL;
    if (all_digits(s, ms))
        return 0;
    /* A duration back from now: 90s, 10m, 2h, 7d. */
    {
        size_t len = strlen(s);
        uint64_t n, unit = 0;
        char num[24];
        if (len >= 2 && len - 1 < sizeof(num)) {
            switch (s[len - 1]) {
            case 's':
                unit = 1000;
                break;
            case 'm':
                unit = 60 * 1000;
                break;
            case 'h':
                unit = 3600 * 1000;
                break;
            case 'd':
                unit = 86400 * 1000;
                break;
            default:
                break;
            }
            memcpy(num, s, len - 1);
            num[len - 1] = '\0';
            if (unit != 0 && all_digits(num, &n)) {
                uint64_t now = qv_wall_ms();
                if (n > now / unit)
                    return QV_EINVAL;
                *ms = now - n * unit;
                return 0;
            }
        }
    }
    memset(&tm, 0, sizeof(tm));
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return QV_EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return QV_EINVAL;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return QV_EINVAL;
            if (*p == '.' || *p == ',') {
                int scale = 100;
                p++;
                if (*p < '0' || *p > '9')
                    return QV_EINVAL;
                for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    frac += (*p - '0') * scale;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!digits(&p, 2, &oh))
                return QV_EINVAL;
            if (*p == ':')
                p++;
            if (*p != '\0' && !digits(&p, 2, &om))
                return QV_EINVAL;
            if (oh > 23 || om > 59)
                return QV_EINVAL;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return QV_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1 || (int64_t)t - off < 0)
        return QV_EINVAL;
    *ms = (uint64_t)((int64_t)t - off) * 1000u + (uint64_t)frac;
    return 0;
}
