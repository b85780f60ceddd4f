/* SPDX-License-Identifier: MIT
 *
 * One line per event on stderr, logfmt (key=value) or JSON, written with a
 * single write(2) so that lines from different threads never interleave.
 *
 * Callers write printf formats such as `model=%s msg="load failed: %s"`. The
 * formatter here walks the format itself, so that each %s value is escaped
 * for where it stands: inside a quoted value its quotes, backslashes and
 * control bytes are escaped; right after "key=" it is quoted when it needs to
 * be. A value can then never break the line, whatever bytes it holds. The
 * JSON form is made from the finished logfmt line, which is well formed by
 * construction.
 */
#include "util.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static _Atomic int log_level = QV_LOG_INFO;
static _Atomic int log_form = QV_LOG_LOGFMT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void qv_log_set_level(enum qv_log_level lvl)
{
    atomic_store(&log_level, (int)lvl);
}

bool qv_log_enabled(enum qv_log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void qv_log_set_format(enum qv_log_format form)
{
    atomic_store(&log_form, (int)form);
}

enum qv_log_format qv_log_get_format(void)
{
    return (enum qv_log_format)atomic_load_explicit(&log_form, memory_order_relaxed);
}

/* ---- A bounded output buffer ----
 * Appends stop at cap - 2 (room for a closing quote and the NUL), and an
 * escape sequence is appended whole or not at all. */
struct out {
    char *p;
    size_t len, cap;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->cap < 2 || o->len + n > o->cap - 2) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void putc_(struct out *o, char c)
{
    put(o, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

/* The body of a quoted value (also a valid JSON string body). */
static void put_escaped(struct out *o, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char esc[8];

    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t k;

        switch (c) {
        case '"':
            put(o, "\\\"", 2);
            i++;
            continue;
        case '\\':
            put(o, "\\\\", 2);
            i++;
            continue;
        case '\n':
            put(o, "\\n", 2);
            i++;
            continue;
        case '\r':
            put(o, "\\r", 2);
            i++;
            continue;
        case '\t':
            put(o, "\\t", 2);
            i++;
            continue;
        default:
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(o, esc, 6);
            i++;
            continue;
        }
        k = utf8_len(u + i, n - i);
        if (k == 0) {
            put(o, "\xef\xbf\xbd", 3); /* U+FFFD */
            i++;
            continue;
        }
        put(o, s + i, k);
        i += k;
    }
}

static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

/* ---- The printf walk ---- */

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif

enum len_mod { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_J, LEN_T, LEN_BIG_L };

/* Formats one conversion (spec is "%...c", NUL-terminated) with its
 * argument from ap into tmp. Returns the length, or -1 for a conversion that
 * is not supported (%n, wide strings). */
static int one_conversion(char *tmp, size_t cap, const char *spec, char conv, enum len_mod lm,
                          bool star_w, bool star_p, va_list *ap)
{
    int w = star_w ? va_arg(*ap, int) : 0;
    int pr = star_p ? va_arg(*ap, int) : 0;

#define EMIT(val)                                                                                  \
    (star_w && star_p ? snprintf(tmp, cap, spec, w, pr, val)                                       \
     : star_w         ? snprintf(tmp, cap, spec, w, val)                                           \
     : star_p         ? snprintf(tmp, cap, spec, pr, val)                                          \
                      : snprintf(tmp, cap, spec, val))
    switch (conv) {
    case 'd':
    case 'i':
    case 'c':
        switch (lm) {
        case LEN_L:
            return EMIT(va_arg(*ap, long));
        case LEN_LL:
            return EMIT(va_arg(*ap, long long));
        case LEN_Z:
            return EMIT(va_arg(*ap, ptrdiff_t)); /* ssize_t */
        case LEN_J:
            return EMIT(va_arg(*ap, intmax_t));
        case LEN_T:
            return EMIT(va_arg(*ap, ptrdiff_t));
        default:
            return EMIT(va_arg(*ap, int));
        }
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        switch (lm) {
        case LEN_L:
            return EMIT(va_arg(*ap, unsigned long));
        case LEN_LL:
            return EMIT(va_arg(*ap, unsigned long long));
        case LEN_Z:
            return EMIT(va_arg(*ap, size_t));
        case LEN_J:
            return EMIT(va_arg(*ap, uintmax_t));
        case LEN_T:
            return EMIT(va_arg(*ap, size_t));
        default:
            return EMIT(va_arg(*ap, unsigned));
        }
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (lm == LEN_BIG_L)
            return EMIT(va_arg(*ap, long double));
        return EMIT(va_arg(*ap, double));
    case 'p':
        return EMIT(va_arg(*ap, void *));
    case 's':
        if (lm != LEN_NONE)
            return -1;
        {
            const char *s = va_arg(*ap, const char *);
            return EMIT(s ? s : "(null)");
        }
    default:
        return -1;
    }
#undef EMIT
}

/* Whether a cut line ends inside a quoted value. */
static bool open_quote(const char *p, size_t n)
{
    bool in = false;

    for (size_t i = 0; i < n; i++) {
        if (in && p[i] == '\\')
            i++;
        else if (p[i] == '"')
            in = !in;
    }
    return in;
}

static void format_fields(struct out *o, const char *fmt, va_list ap0)
{
    char tmp[LINE_MAX_BYTES];
    bool in_quote = false;
    char last = ' '; /* the last literal character of fmt */
    va_list ap;

    va_copy(ap, ap0);
    for (const char *f = fmt; *f;) {
        char spec[32], conv;
        size_t sn = 0;
        bool star_w = false, star_p = false;
        enum len_mod lm = LEN_NONE;
        int n;

        if (*f != '%') {
            if (*f == '"' && last != '\\')
                in_quote = !in_quote;
            last = *f;
            putc_(o, *f++);
            continue;
        }
        if (f[1] == '%') {
            putc_(o, '%');
            last = '%';
            f += 2;
            continue;
        }
        spec[sn++] = *f++;
        while (*f && strchr("-+ #0", *f) && sn < 20)
            spec[sn++] = *f++;
        if (*f == '*') {
            star_w = true;
            spec[sn++] = *f++;
        }
        while (*f >= '0' && *f <= '9' && sn < 24)
            spec[sn++] = *f++;
        if (*f == '.') {
            spec[sn++] = *f++;
            if (*f == '*') {
                star_p = true;
                spec[sn++] = *f++;
            }
            while (*f >= '0' && *f <= '9' && sn < 28)
                spec[sn++] = *f++;
        }
        if (f[0] == 'h' && f[1] == 'h')
            lm = LEN_HH, spec[sn++] = *f++, spec[sn++] = *f++;
        else if (f[0] == 'l' && f[1] == 'l')
            lm = LEN_LL, spec[sn++] = *f++, spec[sn++] = *f++;
        else if (*f == 'h')
            lm = LEN_H, spec[sn++] = *f++;
        else if (*f == 'l')
            lm = LEN_L, spec[sn++] = *f++;
        else if (*f == 'z')
            lm = LEN_Z, spec[sn++] = *f++;
        else if (*f == 'j')
            lm = LEN_J, spec[sn++] = *f++;
        else if (*f == 't')
            lm = LEN_T, spec[sn++] = *f++;
        else if (*f == 'L')
            lm = LEN_BIG_L, spec[sn++] = *f++;
        conv = *f;
        if (conv == '\0' || sn > 30)
            break;
        spec[sn++] = *f++;
        spec[sn] = '\0';
        n = one_conversion(tmp, sizeof(tmp), spec, conv, lm, star_w, star_p, &ap);
        if (n < 0)
            break; /* an unsupported conversion: the arguments cannot be followed further */
        if ((size_t)n >= sizeof(tmp))
            n = (int)sizeof(tmp) - 1;
        if (conv != 's') {
            put(o, tmp, (size_t)n);
        } else if (in_quote && n == 1 && tmp[0] == '"') {
            put(o, tmp, 1); /* a quote passed as an argument closes the value it opened */
            in_quote = false;
        } else if (in_quote) {
            put_escaped(o, tmp, (size_t)n);
        } else if (last == '=') {
            if (needs_quotes(tmp, (size_t)n)) {
                putc_(o, '"');
                put_escaped(o, tmp, (size_t)n);
                putc_(o, '"');
            } else
                put(o, tmp, (size_t)n);
        } else {
            /* Not a value: text of the line itself (" reason=\"" for an optional
             * field), kept as is, its quotes counted. */
            put(o, tmp, (size_t)n);
            for (int i = 0; i < n; i++)
                if (tmp[i] == '"' && (i == 0 || tmp[i - 1] != '\\'))
                    in_quote = !in_quote;
            if (n > 0) {
                last = tmp[n - 1];
                continue;
            }
        }
        last = 'x';
    }
    va_end(ap);
    if (o->full && open_quote(o->p, o->len)) {
        o->full = false;
        o->cap += 1; /* the reserved byte: close the open quote */
        putc_(o, '"');
    }
}

/* ---- logfmt to JSON ---- */

static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t start;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '/';
}

/* The logfmt line in (NUL-terminated) as one JSON object into o. Quoted
 * values are copied as JSON strings as they stand (their escapes are JSON's);
 * words that are not key=value are gathered under "text". */
static void logfmt_to_json(struct out *o, const char *in)
{
    struct out text = {0};
    char textbuf[LINE_MAX_BYTES];
    bool first = true;
    const char *p = in;

    text.p = textbuf;
    text.cap = sizeof(textbuf);
    putc_(o, '{');
    while (*p) {
        const char *k = p, *v, *end;
        size_t kn = 0;

        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        k = p;
        while (is_key_char(p[kn]))
            kn++;
        if (kn > 0 && p[kn] == '=') {
            v = p + kn + 1;
            if (*v == '"') {
                end = v + 1;
                while (*end && *end != '"') {
                    if (*end == '\\' && end[1])
                        end++;
                    end++;
                }
                put(o, first ? "\"" : ",\"", first ? 1 : 2);
                put(o, k, kn);
                put(o, "\":", 2);
                put(o, v, (size_t)(end - v));
                putc_(o, '"');
                p = *end ? end + 1 : end;
            } else {
                end = v;
                while (*end && *end != ' ')
                    end++;
                put(o, first ? "\"" : ",\"", first ? 1 : 2);
                put(o, k, kn);
                put(o, "\":", 2);
                if (is_json_number(v, (size_t)(end - v)))
                    put(o, v, (size_t)(end - v));
                else {
                    putc_(o, '"');
                    put_escaped(o, v, (size_t)(end - v));
                    putc_(o, '"');
                }
                p = end;
            }
            first = false;
            continue;
        }
        end = p;
        while (*end && *end != ' ')
            end++;
        if (text.len)
            putc_(&text, ' ');
        put(&text, p, (size_t)(end - p));
        p = end;
    }
    if (text.len) {
        put(o, first ? "\"text\":\"" : ",\"text\":\"", first ? 8 : 9);
        put_escaped(o, text.p, text.len);
        putc_(o, '"');
    }
    if (o->full) {
        /* Cut: end the object so that it still parses. */
        o->full = false;
        o->len = 0;
        put(o, "{\"text\":\"(line too long)\"", 25);
    }
    o->cap += 1;
    putc_(o, '}');
}

size_t qv_log_format_line(char *out, size_t cap, enum qv_log_format form, const char *ts,
                          enum qv_log_level lvl, const char *module, const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    struct out o = {0};
    int n;

    if (cap == 0)
        return 0;
    o.p = line;
    o.cap = sizeof(line);
    n = snprintf(line, sizeof(line), "ts=%s level=%s module=%s ", ts,
                 level_names[(unsigned)lvl & 3u], module);
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        return out[0] = '\0', 0;
    o.len = (size_t)n;
    format_fields(&o, fmt, ap);
    line[o.len] = '\0';
    if (form == QV_LOG_JSON) {
        struct out j = {0};
        j.p = out;
        j.cap = cap > 2 ? cap - 1 : 1; /* the closing brace uses the reserved byte */
        logfmt_to_json(&j, line);
        out[j.len] = '\0';
        return j.len;
    }
    n = snprintf(out, cap, "%s", line);
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static void vlog_fd(int fd, enum qv_log_level lvl, const char *module, const char *fmt, va_list ap)
{
    char line[2 * LINE_MAX_BYTES + 1];
    char ts[32];
    size_t n;

    qv_iso8601(qv_wall_ms(), ts);
    n = qv_log_format_line(line, sizeof(line) - 1, qv_log_get_format(), ts, lvl, module, fmt, ap);
    line[n++] = '\n';
    if (write(fd, line, n) < 0) {
        /* Nothing useful to do when the log is gone. */
    }
}

void qv_log_(enum qv_log_level lvl, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_fd(STDERR_FILENO, lvl, module, fmt, ap);
    va_end(ap);
}

void qv_log_to(int fd, enum qv_log_level lvl, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog_fd(fd, lvl, module, fmt, ap);
    va_end(ap);
}
