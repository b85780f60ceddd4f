/* SPDX-License-Identifier: MIT
 *
 * The log line formatter: values holding quotes, backslashes, newlines,
 * control bytes, UTF-8 and invalid UTF-8 stay inside their field in logfmt,
 * bare values that need quotes get them, every printf conversion the code
 * uses still formats, an over-long line is cut without breaking its quotes,
 * and the JSON form parses with the same fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/util.h"

#define TS "2026-01-31T12:00:00.000Z"
#define PREFIX "ts=" TS " level=warn module=test "

static char line[8192];

static const char *fmt_line(enum qv_log_format form, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *fmt_line(enum qv_log_format form, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = qv_log_format_line(line, sizeof(line), form, TS, QV_LOG_WARN, "test", fmt, ap);
    va_end(ap);
    assert_int_equal(n, strlen(line));
    return line;
}

/* Splits a logfmt line into pairs the way a logfmt reader does; returns the
 * value of key, unescaped, in out ("" and false when absent). Fails the
 * test on a line that is not well formed. */
static bool logfmt_get(const char *l, const char *key, char *out, size_t cap)
{
    const char *p = l;
    bool found = false;

    out[0] = '\0';
    while (*p) {
        const char *k = p;
        size_t kn, o = 0;
        char buf[4096];
        while (*p && *p != '=' && *p != ' ' && *p != '"')
            p++;
        assert_true(*p == '=');
        kn = (size_t)(p - k);
        assert_true(kn > 0);
        p++;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    p++;
                    switch (*p) {
                    case 'n':
                        buf[o++] = '\n';
                        break;
                    case 'r':
                        buf[o++] = '\r';
                        break;
                    case 't':
                        buf[o++] = '\t';
                        break;
                    case '"':
                        buf[o++] = '"';
                        break;
                    case '\\':
                        buf[o++] = '\\';
                        break;
                    case 'u': {
                        unsigned v;
                        assert_int_equal(sscanf(p + 1, "%4x", &v), 1);
                        buf[o++] = (char)v;
                        p += 4;
                        break;
                    }
                    default:
                        fail_msg("bad escape \\%c in %s", *p, l);
                    }
                    p++;
                } else {
                    assert_true((unsigned char)*p >= 0x20);
                    buf[o++] = *p++;
                }
            }
            assert_true(*p == '"');
            p++;
        } else {
            while (*p && *p != ' ') {
                assert_true(*p != '"' && *p != '=');
                buf[o++] = *p++;
            }
        }
        assert_true(*p == '\0' || *p == ' ');
        if (*p == ' ')
            p++;
        buf[o] = '\0';
        if (strlen(key) == kn && strncmp(k, key, kn) == 0) {
            snprintf(out, cap, "%s", buf);
            found = true;
        }
    }
    return found;
}

static void test_quoted_values_escaped(void **state)
{
    char v[4096];

    (void)state;
    fmt_line(QV_LOG_LOGFMT, "model=%s msg=\"load failed: %s\" n=%d", "fraud",
             "say \"hi\"\\ now\nline two\r\tend", 3);
    assert_string_equal(line, PREFIX "model=fraud msg=\"load failed: say \\\"hi\\\"\\\\ now\\nline "
                                     "two\\r\\tend\" n=3");
    assert_true(strchr(line, '\n') == NULL);
    assert_true(logfmt_get(line, "msg", v, sizeof(v)));
    assert_string_equal(v, "load failed: say \"hi\"\\ now\nline two\r\tend");
    assert_true(logfmt_get(line, "n", v, sizeof(v)));
    assert_string_equal(v, "3");

    /* Control bytes as \u00XX; a stack trace of many lines stays one line. */
    fmt_line(QV_LOG_LOGFMT, "reason=\"%s\"",
             "a\x01"
             "b\x1f"
             "c\x7f"
             "d");
    assert_string_equal(line, PREFIX "reason=\"a\\u0001b\\u001fc\\u007fd\"");
}

static void test_unicode(void **state)
{
    char v[256];

    (void)state;
    /* Valid UTF-8 is kept as is. */
    fmt_line(QV_LOG_LOGFMT, "msg=\"%s\"", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80");
    assert_string_equal(line, PREFIX "msg=\"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80\"");
    /* Invalid bytes (a stray continuation, a truncated sequence, an overlong
     * encoding, a surrogate) become U+FFFD: the line stays valid UTF-8. */
    fmt_line(QV_LOG_LOGFMT, "msg=\"%s\"",
             "a\x80"
             "b\xc3"
             "c\xc0\xaf"
             "d\xed\xa0\x80"
             "e");
    assert_true(logfmt_get(line, "msg", v, sizeof(v)));
    assert_string_equal(v, "a\xef\xbf\xbd"
                           "b\xef\xbf\xbd"
                           "c\xef\xbf\xbd\xef\xbf\xbd"
                           "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                           "e");
}

static void test_bare_values_quoted_when_needed(void **state)
{
    char v[256];

    (void)state;
    fmt_line(QV_LOG_LOGFMT, "model=%s path=%s empty=%s", "fraud", "/v2/a b", "");
    assert_string_equal(line, PREFIX "model=fraud path=\"/v2/a b\" empty=\"\"");
    /* An optional field made of arguments: " reason=\"", the value, "\"". */
    fmt_line(QV_LOG_LOGFMT, "state=%s%s%s%s n=1", "UNAVAILABLE", " reason=\"", "unknown \"onnx\"",
             "\"");
    assert_string_equal(line, PREFIX "state=UNAVAILABLE reason=\"unknown \\\"onnx\\\"\" n=1");
    assert_true(logfmt_get(line, "reason", v, sizeof(v)));
    assert_string_equal(v, "unknown \"onnx\"");
    fmt_line(QV_LOG_LOGFMT, "state=%s%s%s%s n=1", "READY", "", "", "");
    assert_string_equal(line, PREFIX "state=READY n=1");
    fmt_line(QV_LOG_LOGFMT, "model=%s x=%s", "a=b", "q\"uote");
    assert_string_equal(line, PREFIX "model=\"a=b\" x=\"q\\\"uote\"");
    assert_true(logfmt_get(line, "x", v, sizeof(v)));
    assert_string_equal(v, "q\"uote");
    /* A %s that is not a value (a caller's preformatted text) is left alone. */
    fmt_line(QV_LOG_LOGFMT, "%s", "k=v k2=\"v 2\"");
    assert_string_equal(line, PREFIX "k=v k2=\"v 2\"");
}

static void test_conversions(void **state)
{
    (void)state;
    fmt_line(QV_LOG_LOGFMT,
             "a=%d b=%lld c=%zu d=%.1f e=%5.2f f=%x g=%llu h=%s%% i=%c j=%.*s k=%*d l=%ld m=%u", -7,
             1234567890123ll, (size_t)42, 3.14159, 2.5, 255u, 18446744073709551615ull, "x", 'Z', 3,
             "abcdef", 4, 9, -5l, 6u);
    assert_string_equal(line, PREFIX "a=-7 b=1234567890123 c=42 d=3.1 e= 2.50 f=ff "
                                     "g=18446744073709551615 h=x% i=Z j=abc k=   9 l=-5 m=6");
}

static void test_long_line_cut_inside_quotes(void **state)
{
    char big[6000];
    char v[8192];

    (void)state;
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fmt_line(QV_LOG_LOGFMT, "msg=\"%s\" after=1", big);
    assert_true(strlen(line) < 4100);
    /* Well formed: the open quote is closed, no escape is cut in half. */
    assert_true(logfmt_get(line, "msg", v, sizeof(v)));
    for (size_t i = 0; v[i]; i++)
        assert_int_equal(v[i], '"');
}

static void test_json_form(void **state)
{
    json_t *j;
    json_error_t err;

    (void)state;
    fmt_line(QV_LOG_JSON, "model=%s version=%d ms=%.2f msg=\"load failed: %s\" word", "fr aud", 3,
             1.5, "bad \"x\"\n\\ caf\xc3\xa9");
    j = json_loads(line, 0, &err);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", err.text, line);
    assert_string_equal(json_string_value(json_object_get(j, "ts")), TS);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "module")), "test");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "fr aud");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
    assert_true(json_real_value(json_object_get(j, "ms")) == 1.5);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "load failed: bad \"x\"\n\\ caf\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(j, "text")), "word");
    assert_true(strchr(line, '\n') == NULL);
    json_decref(j);

    /* Invalid UTF-8 and control bytes still give valid JSON. */
    fmt_line(QV_LOG_JSON, "msg=\"%s\" v=%s", "\xff\x01", "007");
    j = json_loads(line, 0, &err);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", err.text, line);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "\xef\xbf\xbd\x01");
    assert_string_equal(json_string_value(json_object_get(j, "v")), "007"); /* not a number */
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoted_values_escaped),          cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_bare_values_quoted_when_needed), cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_long_line_cut_inside_quotes),    cmocka_unit_test(test_json_form),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
