/* SPDX-License-Identifier: MIT
 *
 * tests/fault/fault_alloc.h -- a counter-based failing allocator (SQLite's
 * test harness does the same): once armed with n, the nth allocation from
 * then on fails (once), every other succeeds. A test runs an operation with
 * n = 1, 2, ... until it completes without reaching the nth allocation, so
 * every allocation the operation makes has failed once.
 *
 * How: the test binary links with -Wl,--wrap=malloc,--wrap=calloc,... (see
 * tests/fault/CMakeLists.txt), so every call from quiver's own objects (the
 * static quiver_core) and from the test comes here first; jansson's
 * allocations are routed here with json_set_alloc_funcs. This works with and
 * without ASan (__real_malloc is the sanitizer's malloc in the ASan build).
 *
 * The qv_x* allocators abort by design when malloc fails; they are meant
 * for control-plane allocations. While armed, they are counted and never
 * failed, and each distinct caller is kept, so a test can list the
 * aborting allocations that a request or load path still makes.
 *
 * Include from exactly one file of a test binary.
 */
#ifndef QV_FAULT_ALLOC_H
#define QV_FAULT_ALLOC_H

#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_qv_xmalloc(size_t n);
void *__real_qv_xcalloc(size_t n, size_t size);
void *__real_qv_xrealloc(void *p, size_t n);
char *__real_qv_xstrdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_qv_xmalloc(size_t n);
void *__wrap_qv_xcalloc(size_t n, size_t size);
void *__wrap_qv_xrealloc(void *p, size_t n);
char *__wrap_qv_xstrdup(const char *s);

#define FAULT_MAX_XCALLERS 64

static _Atomic long g_fault_at;     /* fail the allocation with this count; 0: disarmed */
static _Atomic long g_fault_count;  /* allocations since arming */
static _Atomic bool g_fault_hit;    /* the failure happened */
static _Atomic long g_fault_xcalls; /* qv_x* calls while armed */
static void *g_fault_xcallers[FAULT_MAX_XCALLERS];
static _Atomic int g_fault_n_xcallers;
static _Thread_local int g_fault_inside_x; /* inside a qv_x* call: never fail */
static _Atomic bool g_fault_json = true;    /* fail jansson's allocations too */

static bool fault_should_fail(void)
{
    long at = atomic_load(&g_fault_at);

    if (at == 0 || g_fault_inside_x)
        return false;
    if (atomic_fetch_add(&g_fault_count, 1) + 1 != at)
        return false;
    atomic_store(&g_fault_hit, true);
    return true;
}

void *__wrap_malloc(size_t n)
{
    return fault_should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fault_should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fault_should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fault_should_fail() ? NULL : __real_strdup(s);
}

static void fault_note_x(void *caller)
{
    int n;

    if (atomic_load(&g_fault_at) == 0)
        return;
    atomic_fetch_add(&g_fault_xcalls, 1);
    n = atomic_load(&g_fault_n_xcallers);
    for (int i = 0; i < n && i < FAULT_MAX_XCALLERS; i++)
        if (g_fault_xcallers[i] == caller)
            return;
    n = atomic_fetch_add(&g_fault_n_xcallers, 1);
    if (n < FAULT_MAX_XCALLERS)
        g_fault_xcallers[n] = caller;
}

#define FAULT_X(call)                                                                              \
    do {                                                                                           \
        void *r_;                                                                                  \
        fault_note_x(__builtin_return_address(0));                                                 \
        g_fault_inside_x++;                                                                        \
        r_ = (void *)(call);                                                                       \
        g_fault_inside_x--;                                                                        \
        return r_;                                                                                 \
    } while (0)

void *__wrap_qv_xmalloc(size_t n)
{
    FAULT_X(__real_qv_xmalloc(n));
}

void *__wrap_qv_xcalloc(size_t n, size_t size)
{
    FAULT_X(__real_qv_xcalloc(n, size));
}

void *__wrap_qv_xrealloc(void *p, size_t n)
{
    FAULT_X(__real_qv_xrealloc(p, n));
}

char *__wrap_qv_xstrdup(const char *s)
{
    FAULT_X(__real_qv_xstrdup(s));
}

static void *fault_json_malloc(size_t n)
{
    return atomic_load(&g_fault_json) ? __wrap_malloc(n) : __real_malloc(n);
}

/* Routes jansson through the failing allocator. */
static void fault_init(void)
{
    json_set_alloc_funcs(fault_json_malloc, free);
}

static void fault_arm(long n)
{
    atomic_store(&g_fault_count, 0);
    atomic_store(&g_fault_hit, false);
    atomic_store(&g_fault_at, n);
}

/* Disarms; true when the nth allocation was reached (and failed). */
static bool fault_disarm(void)
{
    atomic_store(&g_fault_at, 0);
    return atomic_load(&g_fault_hit);
}

/* Prints each distinct caller of a qv_x* allocator seen while armed, as
 * function and source line when addr2line can tell (the binary's own
 * symbols), else as binary+offset. */
static void fault_report_xcallers(const char *what)
{
    int n = atomic_load(&g_fault_n_xcallers);

    if (n > FAULT_MAX_XCALLERS)
        n = FAULT_MAX_XCALLERS;
    printf("[ fault ] %s: %ld calls of an aborting qv_x* allocator, %d call sites%s\n", what,
           (long)atomic_load(&g_fault_xcalls), n, n ? ":" : "");
    for (int i = 0; i < n; i++) {
        Dl_info info;
        char cmd[1200], line[512];
        FILE *p = NULL;
        uintptr_t off = (uintptr_t)g_fault_xcallers[i];
        if (dladdr(g_fault_xcallers[i], &info) && info.dli_fname) {
            off -= (uintptr_t)info.dli_fbase;
            snprintf(cmd, sizeof(cmd), "addr2line -f -s -e '%s' 0x%lx 2>/dev/null",
                     info.dli_fname, (unsigned long)(off - 1));
            p = popen(cmd, "r");
        }
        printf("[ fault ]   ");
        if (p != NULL && fgets(line, sizeof(line), p)) {
            line[strcspn(line, "\n")] = '\0';
            printf("%s ", line);
            if (fgets(line, sizeof(line), p)) {
                line[strcspn(line, "\n")] = '\0';
                printf("(%s)", line);
            }
            printf("\n");
        } else {
            printf("%s+0x%lx\n", info.dli_fname ? info.dli_fname : "?", (unsigned long)off);
        }
        if (p != NULL)
            pclose(p);
    }
    atomic_store(&g_fault_xcalls, 0);
    atomic_store(&g_fault_n_xcallers, 0);
}

#endif /* QV_FAULT_ALLOC_H */
