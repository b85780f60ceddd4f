/* SPDX-License-Identifier: MIT
 *
 * The ONNX conformance runner. Reads the ONNX backend test data that
 * Debian's libonnx-testdata installs, in place:
 *   <root>/{node,pytorch-converted,pytorch-operator,simple}/<test>/model.onnx
 *   <root>/.../<test>/test_data_set_<k>/{input,output}_<i>.pb (TensorProto)
 * runs every data set through src/onnx/ and compares the outputs: same dtype
 * and shape, |out - ref| <= 1e-7 + 1e-3 * |ref|, NaN equals NaN, integers
 * and bools exact. Prints one line per test (pass / fail / unsupported) and
 * a summary line. Exits 1 if any test fails (unsupported is not a failure)
 * or an expected pass is missing.
 *
 *   onnx_conformance --all                   every test
 *   onnx_conformance --filter test_conv      tests whose name contains the text
 *   onnx_conformance --expect FILE           the tests listed in FILE; exit 1
 *                                            unless every one of them passes
 *   --root DIR (default $QV_ONNX_TESTDATA or /usr/share/libonnx-testdata/data)
 *   --quiet (only failures and the summary)  --write-pass FILE (passing names)
 */
#include "onnx/onnx.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_TENSORS 64

static const char *const suites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};

enum result { R_PASS, R_FAIL, R_UNSUPPORTED };

struct opts {
    const char *root;
    const char *filters[64];
    int n_filters;
    const char *expect;
    const char *write_pass;
    bool all, quiet;
};

/* snprintf into buf; false (and an empty buf) if it does not fit. */
static bool fmt_into(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fmt_into(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n) {
        buf[0] = '\0';
        return false;
    }
    return true;
}

static bool file_exists(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0;
}

static int read_tensor(const char *path, struct qv_tensor *t, struct qv_diag *d)
{
    char *data = NULL;
    size_t len = 0;
    int err = qv_file_read_all(path, (size_t)1 << 31, &data, &len, d);

    if (err)
        return err;
    err = qv_onnx_tensor_parse(data, len, t, d);
    free(data);
    return err;
}

static bool close_enough(double out, double ref)
{
    if (isnan(ref) || isnan(out))
        return isnan(ref) && isnan(out);
    if (isinf(ref) || isinf(out))
        return out == ref;
    return fabs(out - ref) <= 1e-7 + 1e-3 * fabs(ref);
}

static int compare(const struct qv_tensor *out, const struct qv_tensor *ref, char *why, size_t n)
{
    int64_t count;
    char a[96], b[96];

    if (out->dtype != ref->dtype) {
        fmt_into(why, n, "output '%s': dtype %s, expected %s", ref->name, qv_dtype_name(out->dtype),
                 qv_dtype_name(ref->dtype));
        return -1;
    }
    if (out->ndim != ref->ndim ||
        memcmp(out->shape, ref->shape, sizeof(int64_t) * (size_t)ref->ndim) != 0) {
        qv_shape_format(out->shape, out->ndim, a, sizeof(a));
        qv_shape_format(ref->shape, ref->ndim, b, sizeof(b));
        fmt_into(why, n, "output '%s': shape %s, expected %s", ref->name, a, b);
        return -1;
    }
    count = qv_tensor_numel(ref);
    for (int64_t i = 0; i < count; i++) {
        bool ok;
        switch (ref->dtype) {
        case QV_DTYPE_F32:
        case QV_DTYPE_F64:
            ok = close_enough(qv_tensor_get_f64(out, i), qv_tensor_get_f64(ref, i));
            break;
        case QV_DTYPE_F16:
        case QV_DTYPE_I16:
        case QV_DTYPE_U16:
            ok = ((const uint16_t *)out->data)[i] == ((const uint16_t *)ref->data)[i];
            break;
        case QV_DTYPE_I64:
            ok = ((const int64_t *)out->data)[i] == ((const int64_t *)ref->data)[i];
            break;
        case QV_DTYPE_U64:
            ok = ((const uint64_t *)out->data)[i] == ((const uint64_t *)ref->data)[i];
            break;
        default:
            ok = qv_tensor_get_f64(out, i) == qv_tensor_get_f64(ref, i);
            break;
        }
        if (!ok) {
            fmt_into(why, n, "output '%s'[%lld]: %.9g, expected %.9g", ref->name, (long long)i,
                     qv_tensor_get_f64(out, i), qv_tensor_get_f64(ref, i));
            return -1;
        }
    }
    return 0;
}

static void free_tensors(struct qv_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        qv_tensor_fini(&t[i]);
}

/* Runs one data set directory against the loaded model. */
static enum result run_set(qv_onnx_model *m, const char *dir, char *why, size_t n)
{
    struct qv_tensor in[MAX_TENSORS], ref[MAX_TENSORS], out[MAX_TENSORS];
    int n_in = 0, n_ref = 0, n_out = 0, err;
    enum result r = R_PASS;
    struct qv_diag d = {{0}};
    char path[4096];

    memset(in, 0, sizeof(in));
    memset(ref, 0, sizeof(ref));
    memset(out, 0, sizeof(out));
    for (; n_in < MAX_TENSORS; n_in++) {
        fmt_into(path, sizeof(path), "%s/input_%d.pb", dir, n_in);
        if (!file_exists(path))
            break;
        err = read_tensor(path, &in[n_in], &d);
        if (err) {
            fmt_into(why, n, "input_%d.pb: %s", n_in, d.msg);
            r = err == QV_ENOTSUP || err == QV_EINVAL ? R_UNSUPPORTED : R_FAIL;
            goto out;
        }
    }
    for (; n_ref < MAX_TENSORS; n_ref++) {
        fmt_into(path, sizeof(path), "%s/output_%d.pb", dir, n_ref);
        if (!file_exists(path))
            break;
        err = read_tensor(path, &ref[n_ref], &d);
        if (err) {
            fmt_into(why, n, "output_%d.pb: %s", n_ref, d.msg);
            r = err == QV_ENOTSUP || err == QV_EINVAL ? R_UNSUPPORTED : R_FAIL;
            goto out;
        }
    }
    err = qv_onnx_run(m, in, n_in, out, MAX_TENSORS, &n_out, &d);
    if (err) {
        fmt_into(why, n, "run: %s: %s", qv_err_name(err), d.msg);
        r = err == QV_ENOTSUP ? R_UNSUPPORTED : R_FAIL;
        goto out;
    }
    if (n_out < n_ref) {
        fmt_into(why, n, "%d outputs, expected %d", n_out, n_ref);
        r = R_FAIL;
        goto out;
    }
    for (int i = 0; i < n_ref; i++)
        if (compare(&out[i], &ref[i], why, n) != 0) {
            r = R_FAIL;
            break;
        }
out:
    free_tensors(in, n_in);
    free_tensors(ref, n_ref);
    free_tensors(out, n_out);
    return r;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum result run_test(const char *tdir, char *why, size_t n)
{
    struct qv_onnx_options opt = {.threads = 1};
    qv_onnx_model *m = NULL;
    struct qv_diag d = {{0}};
    char path[4096];
    char *sets[256];
    int n_sets = 0, err;
    enum result r = R_PASS;
    DIR *dir;
    struct dirent *e;

    fmt_into(path, sizeof(path), "%s/model.onnx", tdir);
    err = qv_onnx_load_file(path, &opt, &m, &d);
    if (err) {
        fmt_into(why, n, "load: %s: %s", qv_err_name(err), d.msg);
        return err == QV_ENOTSUP ? R_UNSUPPORTED : R_FAIL;
    }
    dir = opendir(tdir);
    while (dir && (e = readdir(dir)) != NULL && n_sets < 256)
        if (strncmp(e->d_name, "test_data_set_", 14) == 0)
            sets[n_sets++] = strdup(e->d_name);
    if (dir)
        closedir(dir);
    qsort(sets, (size_t)n_sets, sizeof(sets[0]), cmp_str);
    if (n_sets == 0) {
        fmt_into(why, n, "no test data sets");
        r = R_UNSUPPORTED;
    }
    for (int i = 0; i < n_sets && r == R_PASS; i++) {
        fmt_into(path, sizeof(path), "%s/%s", tdir, sets[i]);
        r = run_set(m, path, why, n);
    }
    for (int i = 0; i < n_sets; i++)
        free(sets[i]);
    qv_onnx_free(m);
    return r;
}

static bool selected(const struct opts *o, const char *suite, const char *name)
{
    char full[512];

    if (o->all)
        return true;
    snprintf(full, sizeof(full), "%s/%s", suite, name);
    for (int i = 0; i < o->n_filters; i++)
        if (strstr(full, o->filters[i]))
            return true;
    return false;
}

/* Reads the expected-pass list: "suite/test" per line; '#' comments. */
static char **read_list(const char *path, int *count)
{
    FILE *f = fopen(path, "r");
    char line[512], **v = NULL;
    int n = 0, cap = 0;

    *count = 0;
    if (f == NULL)
        return NULL;
    while (fgets(line, sizeof(line), f)) {
        char *s = line, *end;
        while (*s == ' ' || *s == '\t')
            s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
            *--end = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            v = realloc(v, sizeof(char *) * (size_t)cap);
            if (v == NULL)
                abort();
        }
        v[n++] = strdup(s);
    }
    fclose(f);
    *count = n;
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: onnx_conformance [--all] [--filter TEXT]... [--expect FILE]\n"
                    "                        [--root DIR] [--quiet] [--write-pass FILE]\n");
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int counts[3] = {0, 0, 0}, n_expect = 0, missing = 0;
    char **expect = NULL;
    FILE *pass_out = NULL;
    static const char *const label[] = {"pass", "fail", "unsupported"};

    o.root = getenv("QV_ONNX_TESTDATA");
    if (o.root == NULL)
        o.root = "/usr/share/libonnx-testdata/data";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            o.all = true;
        else if (strcmp(argv[i], "--quiet") == 0)
            o.quiet = true;
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc && o.n_filters < 64)
            o.filters[o.n_filters++] = argv[++i];
        else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
            o.expect = argv[++i];
        else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc)
            o.root = argv[++i];
        else if (strcmp(argv[i], "--write-pass") == 0 && i + 1 < argc)
            o.write_pass = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (!o.all && o.n_filters == 0 && o.expect == NULL) {
        usage();
        return 2;
    }
    if (o.expect) {
        expect = read_list(o.expect, &n_expect);
        if (expect == NULL && n_expect == 0) {
            fprintf(stderr, "cannot read %s\n", o.expect);
            return 2;
        }
    }
    if (o.write_pass) {
        pass_out = fopen(o.write_pass, "w");
        if (pass_out == NULL) {
            fprintf(stderr, "cannot write %s\n", o.write_pass);
            return 2;
        }
    }
    qv_log_set_level(QV_LOG_ERROR);

    for (size_t s = 0; s < QV_ARRAY_LEN(suites); s++) {
        char sdir[4096];
        char *names[2048];
        int n_names = 0;
        DIR *dir;
        struct dirent *e;

        fmt_into(sdir, sizeof(sdir), "%s/%s", o.root, suites[s]);
        dir = opendir(sdir);
        if (dir == NULL)
            continue;
        while ((e = readdir(dir)) != NULL && n_names < 2048)
            if (e->d_name[0] != '.')
                names[n_names++] = strdup(e->d_name);
        closedir(dir);
        qsort(names, (size_t)n_names, sizeof(names[0]), cmp_str);
        for (int i = 0; i < n_names; i++) {
            char tdir[4096], full[512], why[512] = "";
            bool want = selected(&o, suites[s], names[i]);
            enum result r;

            snprintf(full, sizeof(full), "%s/%s", suites[s], names[i]);
            for (int k = 0; k < n_expect && !want; k++)
                want = expect[k] && strcmp(expect[k], full) == 0;
            if (!want)
                continue;
            fmt_into(tdir, sizeof(tdir), "%s/%s", sdir, names[i]);
            r = run_test(tdir, why, sizeof(why));
            counts[r]++;
            if (r == R_PASS && pass_out)
                fprintf(pass_out, "%s\n", full);
            bool miss = false;
            for (int k = 0; k < n_expect; k++)
                if (expect[k] && strcmp(expect[k], full) == 0) {
                    miss = r != R_PASS;
                    free(expect[k]);
                    expect[k] = NULL;
                }
            missing += miss;
            if (!o.quiet || r == R_FAIL || miss)
                printf("%s%-11s %s%s%s\n", miss ? "EXPECTED PASS: " : "", label[r], full,
                       why[0] ? "  " : "", why);
            fflush(stdout);
        }
        for (int i = 0; i < n_names; i++)
            free(names[i]);
    }
    for (int k = 0; k < n_expect; k++)
        if (expect[k]) {
            printf("EXPECTED PASS: missing test %s\n", expect[k]);
            missing++;
            free(expect[k]);
        }
    free(expect);
    if (pass_out)
        fclose(pass_out);
    printf("summary: %d pass, %d fail, %d unsupported, %d total", counts[R_PASS], counts[R_FAIL],
           counts[R_UNSUPPORTED], counts[0] + counts[1] + counts[2]);
    if (o.expect)
        printf("; %d expected passes missing", missing);
    printf("\n");
    return missing || counts[R_FAIL] ? 1 : 0;
}
