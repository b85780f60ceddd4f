/* SPDX-License-Identifier: MIT
 *
 * The common KServe v2 JSON request in one pass, straight into the input
 * tensors: no JSON tree, no allocation per value.
 *
 * Why not jansson here: building a tree for a 30-value request (one object
 * per number, each allocated, hashed keys, then freed) and converting every
 * number with strtod took about a quarter of the server's CPU per request
 * under load (perf, fraud v1 at 32 connections). This decoder takes only the
 * shape nearly every client sends and returns false on anything else, so the
 * general decoder (jansson, infer.c) still owns the grammar's corners and
 * every error message: a body is never refused here. It accepts nothing that
 * the general decoder refuses and gives the values it gives; the unit test
 * and the fuzz target compare the two on every body they try.
 *
 * Numbers: integers exactly as int64 (out of range: not taken); reals with
 * at most 19 significant digits and a decimal exponent within 22 of the
 * digits, by one correctly rounded IEEE operation on two exact doubles
 * (Clinger's fast path), which is strtod's result; any other real through
 * strtod itself. FP32 values are the double rounded to float, as the general
 * decoder does.
 */
#include "infer_fast.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* Consumes c (after white space) if it is next. */
static bool take(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static bool peek(struct scan *s, char c)
{
    skip_ws(s);
    return s->p < s->end && *s->p == c;
}

/* A string of printable ASCII without escapes: [*str, *str + *n). */
static bool string(struct scan *s, const char **str, size_t *n)
{
    const char *b;

    if (!take(s, '"'))
        return false;
    for (b = s->p; s->p < s->end; s->p++) {
        unsigned char ch = (unsigned char)*s->p;
        if (ch == '"') {
            *str = b;
            *n = (size_t)(s->p - b);
            s->p++;
            return true;
        }
        if (ch == '\\' || ch < 0x20 || ch >= 0x7f)
            return false;
    }
    return false;
}

/* A string into buf (cap bytes with the NUL). */
static bool string_to(struct scan *s, char *buf, size_t cap)
{
    const char *str;
    size_t n;

    if (!string(s, &str, &n) || n >= cap)
        return false;
    memcpy(buf, str, n);
    buf[n] = '\0';
    return true;
}

struct number {
    bool is_int;
    int64_t i;
    double d;
};

static const double k_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A JSON number (RFC 8259 grammar, checked in full). */
static bool number(struct scan *s, struct number *o)
{
    const char *p, *e = s->end, *start;
    uint64_t w = 0;
    int nd = 0, e10 = 0;
    bool neg = false, exact = true;

    skip_ws(s);
    p = start = s->p;
    o->is_int = true;
    if (p < e && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= e || !is_digit(*p))
        return false;
    if (*p == '0') {
        p++;
        if (p < e && is_digit(*p))
            return false; /* a leading zero */
    } else {
        for (; p < e && is_digit(*p); p++) {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd++;
            } else {
                exact = false;
                e10++;
            }
        }
    }
    if (p < e && *p == '.') {
        o->is_int = false;
        p++;
        if (p >= e || !is_digit(*p))
            return false;
        for (; p < e && is_digit(*p); p++) {
            if (w == 0 && *p == '0') {
                e10--; /* a leading zero of the fraction: not a significant digit */
            } else if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd++;
                e10--;
            } else {
                exact = false;
            }
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        int x = 0, sign = 1;
        o->is_int = false;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            sign = *p++ == '-' ? -1 : 1;
        if (p >= e || !is_digit(*p))
            return false;
        for (; p < e && is_digit(*p); p++)
            if (x < 100000)
                x = x * 10 + (*p - '0');
        e10 += sign * x;
    }
    s->p = p;
    if (o->is_int) {
        if (!exact)
            return false; /* more than 19 digits: past int64 */
        if (neg) {
            if (w > (uint64_t)INT64_MAX + 1)
                return false;
            o->i = w == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)w;
        } else {
            if (w > (uint64_t)INT64_MAX)
                return false;
            o->i = (int64_t)w;
        }
        return true;
    }
    if (exact && w <= (1ull << 53) && e10 >= -22 && e10 <= 22) {
        double d = (double)w;
        d = e10 < 0 ? d / k_pow10[-e10] : d * k_pow10[e10];
        o->d = neg ? -d : d;
        return true;
    }
    {
        char buf[64];
        size_t n = (size_t)(p - start);
        char *stop;
        if (n >= sizeof(buf))
            return false;
        memcpy(buf, start, n);
        buf[n] = '\0';
        errno = 0;
        o->d = strtod(buf, &stop);
        /* The general decoder refuses an overflow ("real number overflow"). */
        if (stop != buf + n || (errno == ERANGE && isinf(o->d)))
            return false;
    }
    return true;
}

/* One value of data into element pos of t. */
static bool value(struct scan *s, struct qv_tensor *t, int64_t pos)
{
    struct number v;

    if (!number(s, &v))
        return false;
    switch (t->dtype) {
    case QV_DTYPE_F32:
        ((float *)t->data)[pos] = (float)(v.is_int ? (double)v.i : v.d);
        return true;
    case QV_DTYPE_F64:
        ((double *)t->data)[pos] = v.is_int ? (double)v.i : v.d;
        return true;
    case QV_DTYPE_I64:
        if (!v.is_int)
            return false;
        ((int64_t *)t->data)[pos] = v.i;
        return true;
    case QV_DTYPE_I32:
        if (!v.is_int || v.i < INT32_MIN || v.i > INT32_MAX)
            return false;
        ((int32_t *)t->data)[pos] = (int32_t)v.i;
        return true;
    default:
        return false;
    }
}

/* The data array, flat (numel values) or nested exactly as the shape; at
 * most QV_MAX_DIMS deep. */
static bool data_array(struct scan *s, struct qv_tensor *t, int dim, bool nested, int64_t *pos,
                       int64_t numel)
{
    int64_t n = 0;

    if (!take(s, '['))
        return false;
    if (!take(s, ']')) {
        do {
            if (nested && dim < t->ndim - 1) {
                if (!data_array(s, t, dim + 1, true, pos, numel))
                    return false;
            } else {
                if (*pos >= numel || !value(s, t, *pos))
                    return false;
                (*pos)++;
            }
            n++;
        } while (take(s, ','));
        if (!take(s, ']'))
            return false;
    }
    return nested ? n == t->shape[dim] : n == numel;
}

enum { K_NAME = 1, K_DATATYPE = 2, K_SHAPE = 4, K_DATA = 8 };

static bool input(struct scan *s, struct qv_tensor *t)
{
    char name[QV_NAME_MAX] = "", dtname[16];
    enum qv_dtype dt = QV_DTYPE_UNDEF;
    int64_t shape[QV_MAX_DIMS];
    int ndim = 0;
    unsigned seen = 0;

    memset(t, 0, sizeof(*t));
    if (!take(s, '{'))
        return false;
    do {
        const char *key;
        size_t kn;
        if (!string(s, &key, &kn) || !take(s, ':'))
            goto fail;
        if (kn == 4 && memcmp(key, "name", 4) == 0 && !(seen & K_NAME)) {
            seen |= K_NAME;
            if (!string_to(s, name, sizeof(name)))
                goto fail;
        } else if (kn == 8 && memcmp(key, "datatype", 8) == 0 && !(seen & K_DATATYPE)) {
            seen |= K_DATATYPE;
            if (!string_to(s, dtname, sizeof(dtname)))
                goto fail;
            dt = qv_dtype_from_name(dtname);
            if (dt != QV_DTYPE_F32 && dt != QV_DTYPE_F64 && dt != QV_DTYPE_I32 &&
                dt != QV_DTYPE_I64)
                goto fail;
        } else if (kn == 5 && memcmp(key, "shape", 5) == 0 && !(seen & K_SHAPE)) {
            seen |= K_SHAPE;
            if (!take(s, '['))
                goto fail;
            if (!take(s, ']')) {
                do {
                    struct number v;
                    if (ndim >= QV_MAX_DIMS || !number(s, &v) || !v.is_int || v.i < 0)
                        goto fail;
                    shape[ndim++] = v.i;
                } while (take(s, ','));
                if (!take(s, ']'))
                    goto fail;
            }
        } else if (kn == 4 && memcmp(key, "data", 4) == 0 && !(seen & K_DATA) &&
                   (seen & K_DATATYPE) && (seen & K_SHAPE)) {
            int64_t numel = qv_shape_numel(shape, ndim), pos = 0;
            seen |= K_DATA;
            /* Every value takes at least two bytes of the body: nothing is
             * allocated for more values than the body can hold. */
            if (numel < 0 || numel > QV_TENSOR_MAX_ELEMS || numel > (s->end - s->p) / 2 + 1 ||
                qv_tensor_alloc(t, "", dt, ndim, shape) != 0)
                goto fail;
            if (!peek(s, '['))
                goto fail;
            {
                /* Nested when the first element is an array. */
                struct scan look = *s;
                bool nested;
                look.p++;
                nested = peek(&look, '[');
                if (nested && ndim < 2)
                    goto fail;
                if (!data_array(s, t, 0, nested, &pos, numel) || pos != numel)
                    goto fail;
            }
        } else {
            goto fail; /* "parameters", another key, a repeated key, data too early */
        }
    } while (take(s, ','));
    if (!take(s, '}') || seen != (K_NAME | K_DATATYPE | K_SHAPE | K_DATA) || name[0] == '\0')
        goto fail;
    memcpy(t->name, name, sizeof(t->name));
    return true;
fail:
    qv_tensor_fini(t);
    return false;
}

static bool outputs(struct scan *s, struct qv_fast_req *out)
{
    if (!take(s, '['))
        return false;
    if (take(s, ']'))
        return true;
    do {
        const char *key;
        size_t kn;
        char *name;
        if (out->n_wanted >= QV_MAX_IO || !take(s, '{') || !string(s, &key, &kn) || kn != 4 ||
            memcmp(key, "name", 4) != 0 || !take(s, ':'))
            return false;
        name = out->wanted[out->n_wanted];
        if (!string_to(s, name, QV_NAME_MAX) || !take(s, '}'))
            return false;
        for (int k = 0; k < out->n_wanted; k++)
            if (strcmp(out->wanted[k], name) == 0)
                return false;
        out->n_wanted++;
    } while (take(s, ','));
    return take(s, ']');
}

static bool inputs(struct scan *s, struct qv_fast_req *out)
{
    if (!take(s, '[') || peek(s, ']'))
        return false;
    do {
        struct qv_tensor *t = &out->inputs[out->n_inputs];
        if (out->n_inputs >= QV_MAX_IO || !input(s, t))
            return false;
        out->n_inputs++;
        for (int k = 0; k + 1 < out->n_inputs; k++)
            if (strcmp(out->inputs[k].name, t->name) == 0)
                return false;
    } while (take(s, ','));
    return take(s, ']');
}

bool qv__infer_fast_decode(const char *body, size_t len, struct qv_fast_req *out)
{
    struct scan s = {body, body + len};
    enum { T_ID = 1, T_INPUTS = 2, T_OUTPUTS = 4 };
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    if (!take(&s, '{'))
        return false;
    do {
        const char *key;
        size_t kn;
        if (!string(&s, &key, &kn) || !take(&s, ':'))
            goto fail;
        if (kn == 2 && memcmp(key, "id", 2) == 0 && !(seen & T_ID)) {
            seen |= T_ID;
            if (!string_to(&s, out->id, sizeof(out->id)))
                goto fail;
            out->has_id = true;
        } else if (kn == 6 && memcmp(key, "inputs", 6) == 0 && !(seen & T_INPUTS)) {
            seen |= T_INPUTS;
            if (!inputs(&s, out))
                goto fail;
        } else if (kn == 7 && memcmp(key, "outputs", 7) == 0 && !(seen & T_OUTPUTS)) {
            seen |= T_OUTPUTS;
            if (!outputs(&s, out))
                goto fail;
        } else {
            goto fail;
        }
    } while (take(&s, ','));
    if (!take(&s, '}') || !(seen & T_INPUTS))
        goto fail;
    skip_ws(&s);
    if (s.p != s.end)
        goto fail;
    return true;
fail:
    for (int i = 0; i < out->n_inputs; i++)
        qv_tensor_fini(&out->inputs[i]);
    memset(out, 0, sizeof(*out));
    return false;
}
